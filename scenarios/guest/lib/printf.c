/* printf.c - one formatting engine for printf (debug console) and snprintf (buffer).
 * Supports %d %i %u %x %X %o %p %s %c %%, length modifiers hh h l ll z j t, flags '-', '0',
 * '+', ' ', '#', field width and precision (also as '*'). No floating point: the guests are
 * built with -mgeneral-regs-only. */
#include "libc.h"
#include "processor.h"

struct sink {
    char* buf;     /* NULL: write to the debug console */
    size_t size;   /* capacity of buf including the NUL */
    size_t length; /* characters produced so far (may exceed size, as C requires) */
};

static void emit(struct sink* s, char c)
{
    if (!s->buf)
        outb((uint8_t)c, DEBUGCON_PORT);
    else if (s->length + 1 < s->size)
        s->buf[s->length] = c;
    s->length++;
}

static void emit_padding(struct sink* s, char c, int count)
{
    for (; count > 0; --count)
        emit(s, c);
}

enum { FLAG_LEFT = 1, FLAG_ZERO = 2, FLAG_PLUS = 4, FLAG_SPACE = 8, FLAG_ALT = 16 };

/* Integer conversion: digits of the magnitude, then sign/prefix, precision zeros and
 * padding in the order C11 7.21.6.1 describes. */
static void format_integer(struct sink* s, unsigned long long magnitude, bool negative, unsigned base, bool upper,
                           int flags, int width, int precision, const char* prefix)
{
    char digits[24];
    int n = 0;
    const char* set = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    while (magnitude) {
        digits[n++] = set[magnitude % base];
        magnitude /= base;
    }
    if (precision < 0 && n == 0)
        digits[n++] = '0'; /* "%d" of 0 prints "0", but "%.0d" of 0 prints nothing */
    char sign = negative ? '-' : (flags & FLAG_PLUS) ? '+' : (flags & FLAG_SPACE) ? ' ' : 0;
    int prefix_len = (int)strlen(prefix);
    int zeros = precision > n ? precision - n : 0;
    int body = n + zeros + prefix_len + (sign ? 1 : 0);
    int pad = width > body ? width - body : 0;
    /* '0' is ignored with '-' or an explicit precision. */
    bool zero_pad = (flags & FLAG_ZERO) && !(flags & FLAG_LEFT) && precision < 0;
    if (!(flags & FLAG_LEFT) && !zero_pad)
        emit_padding(s, ' ', pad);
    if (sign)
        emit(s, sign);
    for (int i = 0; i < prefix_len; ++i)
        emit(s, prefix[i]);
    if (zero_pad)
        emit_padding(s, '0', pad);
    emit_padding(s, '0', zeros);
    while (n)
        emit(s, digits[--n]);
    if (flags & FLAG_LEFT)
        emit_padding(s, ' ', pad);
}

static void format(struct sink* s, const char* fmt, va_list ap)
{
    for (; *fmt; ++fmt) {
        if (*fmt != '%') {
            emit(s, *fmt);
            continue;
        }
        ++fmt;
        int flags = 0;
        for (;; ++fmt) {
            if (*fmt == '-')
                flags |= FLAG_LEFT;
            else if (*fmt == '0')
                flags |= FLAG_ZERO;
            else if (*fmt == '+')
                flags |= FLAG_PLUS;
            else if (*fmt == ' ')
                flags |= FLAG_SPACE;
            else if (*fmt == '#')
                flags |= FLAG_ALT;
            else
                break;
        }
        int width = 0;
        if (*fmt == '*') {
            width = va_arg(ap, int);
            if (width < 0) {
                flags |= FLAG_LEFT;
                width = -width;
            }
            ++fmt;
        } else {
            while (*fmt >= '0' && *fmt <= '9')
                width = width * 10 + (*fmt++ - '0');
        }
        int precision = -1;
        if (*fmt == '.') {
            ++fmt;
            precision = 0;
            if (*fmt == '*') {
                precision = va_arg(ap, int);
                if (precision < 0)
                    precision = -1;
                ++fmt;
            } else {
                while (*fmt >= '0' && *fmt <= '9')
                    precision = precision * 10 + (*fmt++ - '0');
            }
        }
        /* Length: 0 = int, 1 = long, 2 = long long, -1 = short, -2 = char. */
        int length = 0;
        if (*fmt == 'h') {
            length = -1;
            if (*++fmt == 'h') {
                length = -2;
                ++fmt;
            }
        } else if (*fmt == 'l') {
            length = 1;
            if (*++fmt == 'l') {
                length = 2;
                ++fmt;
            }
        } else if (*fmt == 'z' || *fmt == 'j' || *fmt == 't') {
            length = 2; /* size_t, intmax_t, ptrdiff_t are 64-bit on x86-64 */
            ++fmt;
        }

        switch (*fmt) {
        case 'd':
        case 'i': {
            long long v;
            if (length >= 1)
                v = length == 1 ? va_arg(ap, long) : va_arg(ap, long long);
            else
                v = va_arg(ap, int);
            if (length == -1)
                v = (short)v;
            else if (length == -2)
                v = (signed char)v;
            /* Negate in unsigned arithmetic so LLONG_MIN does not overflow. */
            unsigned long long mag = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
            format_integer(s, mag, v < 0, 10, false, flags, width, precision, "");
            break;
        }
        case 'u':
        case 'x':
        case 'X':
        case 'o': {
            unsigned long long v;
            if (length >= 1)
                v = length == 1 ? va_arg(ap, unsigned long) : va_arg(ap, unsigned long long);
            else
                v = va_arg(ap, unsigned int);
            if (length == -1)
                v = (unsigned short)v;
            else if (length == -2)
                v = (unsigned char)v;
            unsigned base = *fmt == 'u' ? 10 : *fmt == 'o' ? 8 : 16;
            const char* prefix = "";
            if ((flags & FLAG_ALT) && v != 0)
                prefix = *fmt == 'x' ? "0x" : *fmt == 'X' ? "0X" : *fmt == 'o' ? "0" : "";
            format_integer(s, v, false, base, *fmt == 'X', flags & ~(FLAG_PLUS | FLAG_SPACE), width, precision, prefix);
            break;
        }
        case 'p': {
            uintptr_t v = (uintptr_t)va_arg(ap, void*);
            format_integer(s, v, false, 16, false, flags & ~(FLAG_PLUS | FLAG_SPACE), width, precision, "0x");
            break;
        }
        case 's': {
            const char* str = va_arg(ap, const char*);
            if (!str)
                str = "(null)";
            int n = 0;
            while (str[n] && (precision < 0 || n < precision))
                ++n;
            int pad = width > n ? width - n : 0;
            if (!(flags & FLAG_LEFT))
                emit_padding(s, ' ', pad);
            for (int i = 0; i < n; ++i)
                emit(s, str[i]);
            if (flags & FLAG_LEFT)
                emit_padding(s, ' ', pad);
            break;
        }
        case 'c': {
            int pad = width > 1 ? width - 1 : 0;
            if (!(flags & FLAG_LEFT))
                emit_padding(s, ' ', pad);
            emit(s, (char)va_arg(ap, int));
            if (flags & FLAG_LEFT)
                emit_padding(s, ' ', pad);
            break;
        }
        case '%':
            emit(s, '%');
            break;
        case '\0':
            return; /* a lone '%' at the end: print nothing more */
        default:
            /* Unknown conversion: print it literally so the mistake is visible. */
            emit(s, '%');
            emit(s, *fmt);
            break;
        }
    }
}

int vsnprintf(char* buf, size_t size, const char* fmt, va_list ap)
{
    /* A NULL or zero-sized buffer only counts; it must not fall back to the console. */
    static char scratch;
    struct sink s = {size ? buf : &scratch, size, 0};
    format(&s, fmt, ap);
    if (size)
        buf[s.length < size ? s.length : size - 1] = '\0';
    return (int)s.length;
}

int snprintf(char* buf, size_t size, const char* fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    return n;
}

int vprintf(const char* fmt, va_list ap)
{
    struct sink s = {NULL, 0, 0};
    format(&s, fmt, ap);
    return (int)s.length;
}

int printf(const char* fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vprintf(fmt, ap);
    va_end(ap);
    return n;
}

int putchar(int c)
{
    outb((uint8_t)c, DEBUGCON_PORT);
    return (unsigned char)c;
}

int puts(const char* s)
{
    while (*s)
        putchar(*s++);
    putchar('\n');
    return 1;
}
