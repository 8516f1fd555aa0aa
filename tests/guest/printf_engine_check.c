/* Host-native run of the GUEST's formatting engine (scenarios/guest/lib/printf.c, compiled
 * for the host with its entry points renamed so they do not clash with the host libc) over
 * printf_cases.h. Catches engine bugs without needing the emulator; the guest printf
 * scenario then checks the same engine running under pvsim. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "printf_cases.h"

int guest_vsnprintf(char* buf, size_t size, const char* fmt, va_list ap);
int guest_snprintf(char* buf, size_t size, const char* fmt, ...);

static unsigned cases, failures;

static void check_case(const char* expected, const char* fmt, ...)
{
    char buf[64];
    va_list ap;
    va_start(ap, fmt);
    int n = guest_vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    ++cases;
    if (strcmp(buf, expected) != 0 || n != (int)strlen(expected)) {
        printf("FAIL: format \"%s\": guest engine gives \"%s\" (%d), expected \"%s\"\n", fmt, buf, n, expected);
        ++failures;
    }
}

static void check_int(const char* what, int got, int want)
{
    ++cases;
    if (got != want) {
        printf("FAIL: %s: got %d, expected %d\n", what, got, want);
        ++failures;
    }
}

int main(void)
{
#define RUN_CASE(expected, ...) check_case(expected, __VA_ARGS__);
    PRINTF_CASES(RUN_CASE)
#undef RUN_CASE
    char small[5];
    check_int("truncated length", guest_snprintf(small, sizeof small, "%d", 123456), 6);
    check_int("truncated content", strcmp(small, "1234"), 0);
    check_int("count-only length", guest_snprintf(NULL, 0, "%s-%d", "abc", 42), 6);
    char one[1] = {'z'};
    check_int("1-byte buffer length", guest_snprintf(one, sizeof one, "xyz"), 3);
    check_int("1-byte buffer terminator", one[0], 0);
    printf("guest printf engine: %u checks, %u failures\n", cases, failures);
    return failures ? 1 : 0;
}
