/* sieve_algo.h - sieve of Eratosthenes over a 32 MiB byte array (one byte per number):
 * strided stores that walk across the whole array for each small prime.
 * Shared with bench_check.c. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define SIEVE_LIMIT (32u << 20) /* numbers 0 .. 2^25 - 1 */
/* pi(2^25) = 2063689 (a published value; bench_check recomputes it natively). The checksum
 * also folds in the sum of the primes so a wrong sieve cannot match by count alone. */
#define SIEVE_EXPECTED_COUNT 2063689u
/* From bench_check (host-native run of sieve_run()); re-verified by ctest guest.host.bench. */
#define SIEVE_EXPECTED 0x72f746eb7c1d3d51ull

/* composite must hold SIEVE_LIMIT zeroed bytes. Returns a checksum mixing the prime count
 * and the sum of the primes; *count gets the count. */
static inline uint64_t sieve_run(uint8_t* composite, uint64_t* count_out)
{
    composite[0] = composite[1] = 1;
    for (uint32_t p = 2; (uint64_t)p * p < SIEVE_LIMIT; ++p)
        if (!composite[p])
            for (uint32_t m = p * p; m < SIEVE_LIMIT; m += p)
                composite[m] = 1;
    uint64_t count = 0, sum = 0;
    for (uint32_t n = 0; n < SIEVE_LIMIT; ++n)
        if (!composite[n]) {
            ++count;
            sum += n;
        }
    *count_out = count;
    return sum * 0x100000001b3ull ^ count;
}
