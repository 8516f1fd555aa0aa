/* libc.c - the memory/string functions GCC may call even in freestanding code (GCC manual,
 * "Standards": memcpy, memmove, memset, memcmp must be provided), plus exit paths.
 * Built with -fno-tree-loop-distribute-patterns so these loops are not turned back into
 * calls to themselves. */
#include "libc.h"
#include "processor.h"

void* memset(void* dst, int c, size_t n)
{
    unsigned char* d = dst;
    while (n--)
        *d++ = (unsigned char)c;
    return dst;
}

void* memcpy(void* dst, const void* src, size_t n)
{
    unsigned char* d = dst;
    const unsigned char* s = src;
    while (n--)
        *d++ = *s++;
    return dst;
}

void* memmove(void* dst, const void* src, size_t n)
{
    unsigned char* d = dst;
    const unsigned char* s = src;
    if (d < s) {
        while (n--)
            *d++ = *s++;
    } else {
        while (n--)
            d[n] = s[n];
    }
    return dst;
}

int memcmp(const void* a, const void* b, size_t n)
{
    const unsigned char* x = a;
    const unsigned char* y = b;
    for (; n; --n, ++x, ++y)
        if (*x != *y)
            return *x < *y ? -1 : 1;
    return 0;
}

size_t strlen(const char* s)
{
    size_t n = 0;
    while (s[n])
        ++n;
    return n;
}

int strcmp(const char* a, const char* b)
{
    while (*a && *a == *b)
        ++a, ++b;
    return (unsigned char)*a - (unsigned char)*b;
}

int strncmp(const char* a, const char* b, size_t n)
{
    for (; n; --n, ++a, ++b) {
        if (*a != *b)
            return (unsigned char)*a - (unsigned char)*b;
        if (!*a)
            return 0;
    }
    return 0;
}

void exit(int code)
{
    /* isa-debug-exit semantics: the platform ends the VM with status (code << 1) | 1. */
    outl((uint32_t)code, EXIT_PORT);
    /* Not reached on pvsim; on a platform without the port, stop here rather than run on. */
    for (;;) {
        cli();
        hlt();
    }
}

void vcpu_finish(void)
{
    outb(0, VCPU_DONE_PORT);
    for (;;) {
        cli();
        hlt();
    }
}
