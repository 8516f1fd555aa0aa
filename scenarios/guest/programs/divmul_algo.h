/* divmul_algo.h - inputs and the C computation of the divmul guest, shared verbatim with the
 * host check tests/guest/divmul_check.c, which generated divmul_expected.h from it
 * (`divmul_check --generate`) and re-verifies that table on every ctest run. */
#pragma once

#include <stdint.h>

#include "prng.h"

struct divmul_input {
    uint64_t a, b;
};

struct divmul_result {
    uint64_t uq, ur;     /* a / b, a % b (64-bit unsigned: DIV r/m64) */
    int64_t sq, sr;      /* the same, signed (IDIV r/m64) */
    uint32_t uq32, ur32; /* low halves, 32-bit (DIV r/m32) */
    int32_t sq32, sr32;  /* (IDIV r/m32) */
    uint64_t mul_lo;     /* a * b mod 2^64 (IMUL r64, r/m64) */
    uint64_t umul_hi;    /* high half of the unsigned 128-bit product (MUL r/m64) */
    int64_t smul_hi;     /* high half of the signed 128-bit product (IMUL r/m64) */
};

/* Edge cases first: zero, one, all-ones, the signed extremes, sign combinations,
 * powers of two. A divisor of 0, or INT_MIN / -1 for the signed forms, is undefined in C:
 * those slots compute 0 here and the #DE they raise in hardware is tested with inline
 * assembly in divmul.c instead. */
static const struct divmul_input divmul_edges[] = {
    {0, 1},
    {1, 1},
    {0xffffffffffffffffull, 1},
    {0xffffffffffffffffull, 0xffffffffffffffffull},
    {0xffffffffffffffffull, 2},
    {0x8000000000000000ull, 0xffffffffffffffffull}, /* INT64_MIN / -1: signed slot skipped */
    {0x8000000000000000ull, 1},
    {0x8000000000000000ull, 2},
    {0x8000000000000000ull, 0x8000000000000000ull},
    {0x7fffffffffffffffull, 0x8000000000000000ull},
    {0x7fffffffffffffffull, 0xffffffffffffffffull},
    {(uint64_t)-7, 2},
    {7, (uint64_t)-2},
    {(uint64_t)-7, (uint64_t)-2},
    {7, 2},
    {0x123456789abcdef0ull, 0x1000},
    {0x123456789abcdef0ull, 0x0fedcba987654321ull},
    {0xfedcba9876543210ull, 0x00000000ffffffffull},
    {0x00000001ffffffffull, 0x0000000100000000ull},
    {0xffffffff80000000ull, 0xffffffffffffffffull}, /* 32-bit: INT32_MIN / -1 skipped */
    {0x0000000080000000ull, 0x00000000ffffffffull}, /* 32-bit: INT32_MIN / -1 skipped */
    {1000000007ull, 0}, /* division by zero: only the products are computed */
    {0xdeadbeefcafebabeull, 0x100000000ull}, /* 32-bit divisor 0: 32-bit slots skipped */
    {3, 0xffffffff00000000ull},
};
#define DIVMUL_EDGE_COUNT (sizeof(divmul_edges) / sizeof(divmul_edges[0]))
#define DIVMUL_RANDOM_COUNT 40u
#define DIVMUL_CASE_COUNT (DIVMUL_EDGE_COUNT + DIVMUL_RANDOM_COUNT)
#define DIVMUL_SEED 0xd1f0d1f0d1f0d1f0ull

/* Case i: an edge case, or a pseudo-random pair whose divisor is shifted right by a random
 * amount so quotients of every magnitude appear. */
static inline struct divmul_input divmul_case(unsigned i)
{
    if (i < DIVMUL_EDGE_COUNT)
        return divmul_edges[i];
    uint64_t state = DIVMUL_SEED + i;
    struct divmul_input in;
    in.a = splitmix64_next(&state);
    uint64_t b = splitmix64_next(&state);
    in.b = b >> (splitmix64_next(&state) % 64);
    return in;
}

static inline void divmul_compute(struct divmul_input in, struct divmul_result* r)
{
    /* Volatile copies: the compiler cannot fold or strength-reduce the operations, so every
     * -O level emits real DIV/IDIV/MUL/IMUL instructions. */
    volatile uint64_t va = in.a, vb = in.b;
    uint64_t a = va, b = vb;
    int64_t sa = (int64_t)a, sb = (int64_t)b;
    uint32_t a32 = (uint32_t)a, b32 = (uint32_t)b;
    int32_t sa32 = (int32_t)a32, sb32 = (int32_t)b32;

    r->uq = b ? a / b : 0;
    r->ur = b ? a % b : 0;
    int signed_ok = b != 0 && !(sa == INT64_MIN && sb == -1);
    r->sq = signed_ok ? sa / sb : 0;
    r->sr = signed_ok ? sa % sb : 0;
    r->uq32 = b32 ? a32 / b32 : 0;
    r->ur32 = b32 ? a32 % b32 : 0;
    int signed32_ok = b32 != 0 && !(sa32 == INT32_MIN && sb32 == -1);
    r->sq32 = signed32_ok ? sa32 / sb32 : 0;
    r->sr32 = signed32_ok ? sa32 % sb32 : 0;
    r->mul_lo = a * b;
    r->umul_hi = (uint64_t)(((unsigned __int128)a * b) >> 64);
    r->smul_hi = (int64_t)(((__int128)sa * sb) >> 64);
}
