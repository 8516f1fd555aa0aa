/* report.h - kvm-unit-tests style result reporting (lib/report.c conventions):
 * "PASS: <prefix: >msg", "FAIL: ...", "SKIP: ...", then
 * "SUMMARY: <n> tests[, <f> unexpected failures][, <s> skipped]". */
#pragma once

#include <stdbool.h>

void report(bool pass, const char* fmt, ...) __attribute__((format(__printf__, 2, 3)));
void report_skip(const char* fmt, ...) __attribute__((format(__printf__, 1, 2)));
void report_info(const char* fmt, ...) __attribute__((format(__printf__, 1, 2)));
void report_prefix_push(const char* prefix);
void report_prefix_pop(void);
/* Prints the SUMMARY line and ends the VM: code 0 if all passed, 1 on any failure,
 * 77 >> 1 if every test was skipped (debug-exit then reports 77, the "skip" status). */
__attribute__((noreturn)) void report_summary(void);
