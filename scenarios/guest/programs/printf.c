/* printf - checks the runtime's snprintf against expected strings (one report per case; the
 * list is verified against the host C library by tests/guest/printf_check.c), then prints a
 * few fixed lines with printf that the scenario matches exactly. Every character printed is
 * one OUT to port 0xe9, so this guest is also the densest source of kvm_pio trace events. */
#include "libc.h"
#include "printf_cases.h"
#include "report.h"

static __attribute__((format(__printf__, 2, 3))) void check_case(const char* expected, const char* fmt, ...)
{
    char buf[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    report(strcmp(buf, expected) == 0 && n == (int)strlen(expected), "snprintf(\"%s\") = \"%s\" (%d chars)", fmt,
           buf, n);
}

int main(unsigned cpu, unsigned ncpus, unsigned long ram_bytes)
{
    (void)cpu, (void)ncpus, (void)ram_bytes;
    report_prefix_push("format");
#define RUN_CASE(expected, ...) check_case(expected, __VA_ARGS__);
    PRINTF_CASES(RUN_CASE)
#undef RUN_CASE
    report_prefix_pop();

    report_prefix_push("truncation");
    char small[5];
    int n = snprintf(small, sizeof small, "%d", 123456);
    report(n == 6 && strcmp(small, "1234") == 0, "snprintf into 5 bytes returns 6 and keeps \"1234\"");
    n = snprintf(NULL, 0, "%s-%d", "abc", 42);
    report(n == 6, "snprintf(NULL, 0) counts 6 characters");
    char one[1] = {'z'};
    n = snprintf(one, sizeof one, "xyz");
    report(n == 3 && one[0] == '\0', "snprintf into 1 byte writes only the terminator");
    report_prefix_pop();

    /* Lines the scenario expects verbatim on the console. */
    printf("console: [%5d] [%-5d] [%05d] [%x] [%s]\n", 42, 42, 42, 0xbeefu, "pvsim");
    printf("console: %lu %ld 0x%016lx %c%c\n", 18446744073709551615UL, -9223372036854775807L - 1, 0x1234abcdUL, 'o',
           'k');
    puts("console: puts adds a newline");
    report_summary();
}
