/* libc.h - the freestanding C library of the guests: console output on the debug port
 * (0xe9, boot.md §4), formatted printing, string helpers, exit through port 0xf4. */
#pragma once

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#define DEBUGCON_PORT 0xe9
#define EXIT_PORT 0xf4
#define VCPU_DONE_PORT 0xf5

int putchar(int c);
int puts(const char* s); /* like C: appends '\n' */
int printf(const char* fmt, ...) __attribute__((format(__printf__, 1, 2)));
int vprintf(const char* fmt, va_list ap);
int snprintf(char* buf, size_t size, const char* fmt, ...) __attribute__((format(__printf__, 3, 4)));
int vsnprintf(char* buf, size_t size, const char* fmt, va_list ap);

void* memset(void* dst, int c, size_t n);
void* memcpy(void* dst, const void* src, size_t n);
void* memmove(void* dst, const void* src, size_t n);
int memcmp(const void* a, const void* b, size_t n);
size_t strlen(const char* s);
int strcmp(const char* a, const char* b);
int strncmp(const char* a, const char* b, size_t n);

/* Ends the whole VM with status ((code << 1) | 1) & 0xff (isa-debug-exit convention). */
__attribute__((noreturn)) void exit(int code);
/* Marks this vCPU finished (port 0xf5) and parks it. */
__attribute__((noreturn)) void vcpu_finish(void);

const char* exception_mnemonic(unsigned vector);

/* Entry point every program defines. Runs on vCPU 0 after the descriptor tables are up;
 * its return value goes to exit(). */
int main(unsigned cpu, unsigned ncpus, unsigned long ram_bytes);
