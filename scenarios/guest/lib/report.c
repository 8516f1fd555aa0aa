/* report.c - PASS/FAIL/SKIP lines and the SUMMARY line, in kvm-unit-tests' format so its
 * runner scripts and people's habits apply unchanged. */
#include "report.h"

#include "libc.h"

static unsigned tests, failures, skipped;
static char prefix[256];
static size_t prefix_len;

void report_prefix_push(const char* p)
{
    /* Stacked prefixes are joined with ": " as kvm-unit-tests does. */
    int n = snprintf(prefix + prefix_len, sizeof(prefix) - prefix_len, "%s: ", p);
    if (n > 0)
        prefix_len += (size_t)n;
    if (prefix_len >= sizeof(prefix))
        prefix_len = sizeof(prefix) - 1;
}

void report_prefix_pop(void)
{
    if (prefix_len < 2)
        return;
    /* Drop the last "xxx: ": find the ": " before the trailing one. */
    size_t end = prefix_len - 2;
    size_t i = end;
    while (i >= 2 && !(prefix[i - 2] == ':' && prefix[i - 1] == ' '))
        --i;
    prefix_len = i >= 2 ? i : 0;
    prefix[prefix_len] = '\0';
}

static void report_line(const char* kind, const char* fmt, va_list ap)
{
    printf("%s: %s", kind, prefix);
    vprintf(fmt, ap);
    putchar('\n');
}

void report(bool pass, const char* fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ++tests;
    if (!pass)
        ++failures;
    report_line(pass ? "PASS" : "FAIL", fmt, ap);
    va_end(ap);
}

void report_skip(const char* fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ++tests;
    ++skipped;
    report_line("SKIP", fmt, ap);
    va_end(ap);
}

void report_info(const char* fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    report_line("INFO", fmt, ap);
    va_end(ap);
}

void report_summary(void)
{
    printf("SUMMARY: %u tests", tests);
    if (failures)
        printf(", %u unexpected failures", failures);
    if (skipped)
        printf(", %u skipped", skipped);
    putchar('\n');
    if (failures)
        exit(1);
    /* kvm-unit-tests: all skipped -> 77 ("skip") once debug-exit has applied (v << 1) | 1. */
    if (tests > 0 && skipped == tests)
        exit(77 >> 1);
    exit(0);
}
