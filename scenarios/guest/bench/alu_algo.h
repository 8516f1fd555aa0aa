/* alu_algo.h - register-only integer loop (shared with tests/guest/bench_check.c).
 * Each iteration: an LCG step, xorshift mixing, a rotate, add/sub/and/or: about a dozen
 * ALU instructions and a loop branch, no memory traffic at -O2. */
#pragma once

#include <stdint.h>

#define ALU_ITERATIONS 20000000u /* x 16 instructions at -O2 = 3.2e8 */
/* From bench_check (host-native run of alu_run()); re-verified by ctest guest.host.bench. */
#define ALU_EXPECTED 0xeea24d9fdb8f9044ull

static inline uint64_t alu_run(uint32_t iterations)
{
    uint64_t x = 0x243f6a8885a308d3ull, y = 0x13198a2e03707344ull, z = 0xa4093822299f31d0ull;
    for (uint32_t i = 0; i < iterations; ++i) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        y ^= x >> 17;
        y = (y << 13) | (y >> 51);
        z += y - (x & 0xffff);
        z ^= (z >> 7) | i;
    }
    return x ^ y ^ z;
}
