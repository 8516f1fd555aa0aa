/* sort_algo.h - bottom-up merge sort of 1 Mi 64-bit keys (8 MiB + 8 MiB scratch): long
 * sequential streams, a data-dependent branch per element. Shared with bench_check.c. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "prng.h"

#define SORT_COUNT (1u << 20)
#define SORT_SEED 0x50e7b3ac4ull
/* From bench_check (host-native run of sort_run()); re-verified by ctest guest.host.bench. */
#define SORT_EXPECTED 0x0c3cb9ee8b8c4bffull

static inline void sort_merge(const uint64_t* src, uint64_t* dst, size_t lo, size_t mid, size_t hi)
{
    size_t i = lo, j = mid, k = lo;
    while (i < mid && j < hi)
        dst[k++] = src[j] < src[i] ? src[j++] : src[i++];
    while (i < mid)
        dst[k++] = src[i++];
    while (j < hi)
        dst[k++] = src[j++];
}

/* Sorts keys (using scratch, both SORT_COUNT long); returns a checksum of the sorted array,
 * or 0 if it is not sorted. */
static inline uint64_t sort_run(uint64_t* keys, uint64_t* scratch)
{
    uint64_t state = SORT_SEED;
    for (size_t i = 0; i < SORT_COUNT; ++i)
        keys[i] = splitmix64_next(&state);
    uint64_t* src = keys;
    uint64_t* dst = scratch;
    for (size_t width = 1; width < SORT_COUNT; width *= 2) {
        for (size_t lo = 0; lo < SORT_COUNT; lo += 2 * width) {
            size_t mid = lo + width < SORT_COUNT ? lo + width : SORT_COUNT;
            size_t hi = lo + 2 * width < SORT_COUNT ? lo + 2 * width : SORT_COUNT;
            sort_merge(src, dst, lo, mid, hi);
        }
        uint64_t* t = src;
        src = dst;
        dst = t;
    }
    uint64_t h = 0;
    for (size_t i = 0; i < SORT_COUNT; ++i) {
        if (i && src[i - 1] > src[i])
            return 0;
        h = (h ^ src[i]) * 0x100000001b3ull;
    }
    return h;
}
