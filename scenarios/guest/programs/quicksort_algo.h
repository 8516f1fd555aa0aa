/* quicksort_algo.h - the algorithm of the quicksort guest, shared verbatim with the host
 * check tests/guest/quicksort_check.c so the expected checksum can never drift from the code.
 * Plain C, no guest runtime dependencies. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "prng.h"

#define QS_COUNT 100000u
#define QS_SEED 0x5eed0f9a1c0ffee5ull

/* Obtained by compiling this header natively on the host (gcc 12, x86-64) and running
 * qs_run() over QS_COUNT keys from QS_SEED; tests/guest/quicksort_check.c recomputes it on
 * every ctest run, so a change to the algorithm or the inputs fails there first. */
#define QS_EXPECTED_CHECKSUM 0xa7c8932a555c2fe4ull

static inline void qs_fill(uint64_t* keys, size_t n, uint64_t seed)
{
    uint64_t state = seed;
    for (size_t i = 0; i < n; ++i)
        keys[i] = splitmix64_next(&state);
}

static inline void qs_swap(uint64_t* a, uint64_t* b)
{
    uint64_t t = *a;
    *a = *b;
    *b = t;
}

/* Hoare partition around the median of first/middle/last. Recurse into the smaller side and
 * loop on the larger one, so the stack depth stays below log2(n) frames whatever the input
 * (the guest runs on a 16 KiB boot stack). */
static void qs_sort(uint64_t* keys, long lo, long hi)
{
    while (lo < hi) {
        long mid = lo + (hi - lo) / 2;
        if (keys[mid] < keys[lo])
            qs_swap(&keys[mid], &keys[lo]);
        if (keys[hi] < keys[lo])
            qs_swap(&keys[hi], &keys[lo]);
        if (keys[hi] < keys[mid])
            qs_swap(&keys[hi], &keys[mid]);
        uint64_t pivot = keys[mid];
        long i = lo - 1, j = hi + 1;
        for (;;) {
            do
                ++i;
            while (keys[i] < pivot);
            do
                --j;
            while (keys[j] > pivot);
            if (i >= j)
                break;
            qs_swap(&keys[i], &keys[j]);
        }
        if (j - lo < hi - j) {
            qs_sort(keys, lo, j);
            lo = j + 1;
        } else {
            qs_sort(keys, j + 1, hi);
            hi = j;
        }
    }
}

/* Order-dependent checksum: FNV-1a style mixing of each key with its index, so a sorted
 * array with one pair swapped or one key changed gives a different value. */
static inline uint64_t qs_checksum(const uint64_t* keys, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; ++i) {
        h ^= keys[i] + i;
        h *= 0x100000001b3ull;
        h ^= h >> 29;
    }
    return h;
}

/* Order-independent fingerprint (sum and xor) to check the sort is a permutation. */
static inline void qs_fingerprint(const uint64_t* keys, size_t n, uint64_t* sum, uint64_t* xor_all)
{
    uint64_t s = 0, x = 0;
    for (size_t i = 0; i < n; ++i) {
        s += keys[i];
        x ^= keys[i];
    }
    *sum = s;
    *xor_all = x;
}

static inline size_t qs_first_unsorted(const uint64_t* keys, size_t n)
{
    for (size_t i = 1; i < n; ++i)
        if (keys[i - 1] > keys[i])
            return i;
    return 0;
}
