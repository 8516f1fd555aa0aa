/* sort_algo.h - bottom-up merge sort of 4 Mi 64-bit keys (32 MiB + 32 MiB scratch): long
 * sequential streams, a data-dependent branch per element. Like library merge sorts it
 * starts from short insertion-sorted runs, which saves three of the 22 merge passes (and
 * keeps the run near 1.1e9 guest instructions). Shared with bench_check.c. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "prng.h"

#define SORT_COUNT (1u << 22)
#define SORT_RUN 8 /* keys per insertion-sorted run */
#define SORT_SEED 0x50e7b3ac4ull
/* From bench_check (host-native run of sort_run()); re-verified by ctest guest.host.bench. */
#define SORT_EXPECTED 0x73067a792495fa84ull

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
    for (size_t lo = 0; lo < SORT_COUNT; lo += SORT_RUN) {
        size_t hi = lo + SORT_RUN < SORT_COUNT ? lo + SORT_RUN : SORT_COUNT;
        for (size_t i = lo + 1; i < hi; ++i) {
            uint64_t v = keys[i];
            size_t j = i;
            for (; j > lo && keys[j - 1] > v; --j)
                keys[j] = keys[j - 1];
            keys[j] = v;
        }
    }
    uint64_t* src = keys;
    uint64_t* dst = scratch;
    for (size_t width = SORT_RUN; width < SORT_COUNT; width *= 2) {
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
