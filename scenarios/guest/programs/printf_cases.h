/* printf_cases.h - (expected output, format, arguments...) triples for the printf guest.
 * tests/guest/printf_check.c runs the very same list through the HOST C library's
 * vsnprintf, so every expected string here is what ISO C printf produces. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define PRINTF_CASES(X)                                                                                      \
    X("42", "%d", 42)                                                                                        \
    X("-42", "%i", -42)                                                                                      \
    X("0", "%d", 0)                                                                                          \
    X("4294967295", "%u", 4294967295u)                                                                       \
    X("ff", "%x", 255)                                                                                       \
    X("FF", "%X", 255)                                                                                       \
    X("777", "%o", 511)                                                                                      \
    X("0x7f", "%#x", 127)                                                                                    \
    X("0", "%#x", 0)                                                                                         \
    X("   42", "%5d", 42)                                                                                    \
    X("42   |", "%-5d|", 42)                                                                                 \
    X("00042", "%05d", 42)                                                                                   \
    X("-0042", "%05d", -42)                                                                                  \
    X("+42", "%+d", 42)                                                                                      \
    X(" 42", "% d", 42)                                                                                      \
    X("00042", "%.5d", 42)                                                                                   \
    X("   00042", "%8.5d", 42)                                                                               \
    X("", "%.0d", 0)                                                                                         \
    X("   -42", "%*d", 6, -42)                                                                               \
    X("-42   |", "%-*d|", 6, -42)                                                                            \
    X("-9223372036854775808", "%lld", -9223372036854775807LL - 1)                                            \
    X("9223372036854775807", "%ld", 9223372036854775807L)                                                    \
    X("18446744073709551615", "%llu", 18446744073709551615ULL)                                               \
    X("ffffffffffffffff", "%lx", 0xffffffffffffffffUL)                                                       \
    X("FFFFFFFFFFFFFFFF", "%llX", 0xffffffffffffffffULL)                                                     \
    X("123456789012", "%ld", 123456789012L)                                                                  \
    X("4096", "%zu", (size_t)4096)                                                                           \
    X("1000", "%zx", (size_t)4096)                                                                           \
    X("-1", "%hd", (short)-1)                                                                                \
    X("65535", "%hu", (unsigned short)65535)                                                                 \
    X("-128", "%hhd", (signed char)-128)                                                                     \
    X("255", "%hhu", (unsigned char)255)                                                                     \
    X("deadbeef", "%08x", 0xdeadbeefu)                                                                       \
    X("0000beef", "%08x", 0xbeefu)                                                                           \
    X("0x00000000001000", "%#016lx", 0x1000UL)                                                               \
    X("0x1000", "%p", (void*)0x1000)                                                                         \
    X("0xffffffff81000000", "%p", (void*)0xffffffff81000000UL)                                               \
    X("hello", "%s", "hello")                                                                                \
    X("   hi", "%5s", "hi")                                                                                  \
    X("hi   |", "%-5s|", "hi")                                                                               \
    X("hel", "%.3s", "hello")                                                                                \
    X("  hel", "%5.3s", "hello")                                                                             \
    X("x", "%c", 'x')                                                                                        \
    X("  x", "%3c", 'x')                                                                                     \
    X("x  |", "%-3c|", 'x')                                                                                  \
    X("100%", "%d%%", 100)                                                                                   \
    X("a=1 b=-2 c=ff d=str", "a=%d b=%d c=%x d=%s", 1, -2, 255, "str")
