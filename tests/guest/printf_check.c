/* Host-native check for the printf guest: every expected string in printf_cases.h must be
 * what the host C library's vsnprintf produces for the same format and arguments. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "printf_cases.h"

static unsigned cases, failures;

static __attribute__((format(printf, 2, 3))) void check_case(const char* expected, const char* fmt, ...)
{
    char buf[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    ++cases;
    if (strcmp(buf, expected) != 0 || n != (int)strlen(expected)) {
        printf("FAIL: format \"%s\": host libc gives \"%s\", printf_cases.h expects \"%s\"\n", fmt, buf, expected);
        ++failures;
    }
}

int main(void)
{
#define RUN_CASE(expected, ...) check_case(expected, __VA_ARGS__);
    PRINTF_CASES(RUN_CASE)
#undef RUN_CASE
    printf("printf cases: %u, mismatches with the host libc: %u\n", cases, failures);
    return failures ? 1 : 0;
}
