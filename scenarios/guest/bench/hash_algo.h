/* hash_algo.h - open-addressing hash table (linear probing) over 64 MiB: inserts, then
 * lookups of present and absent keys. Cache/TLB-unfriendly random access by design.
 * Shared with tests/guest/bench_check.c. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "prng.h"

#define HASH_SLOTS (1u << 22)  /* 4 Mi 16-byte slots: 64 MiB */
#define HASH_INSERTS 2800000u  /* 0.67 x HASH_SLOTS insert operations */
#define HASH_LOOKUPS 2800000u
#define HASH_SEED 0x4a5b6c7d8e9f0a1bull
/* From bench_check (host-native run of hash_run()); re-verified by ctest guest.host.bench. */
#define HASH_EXPECTED 0x266a37a766a74934ull

struct hash_slot {
    uint64_t key; /* 0 = empty (keys are forced non-zero) */
    uint64_t value;
};

static inline uint64_t hash_mix(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return k;
}

static inline void hash_insert(struct hash_slot* table, uint64_t key, uint64_t value)
{
    uint32_t i = (uint32_t)hash_mix(key) & (HASH_SLOTS - 1);
    while (table[i].key != 0 && table[i].key != key)
        i = (i + 1) & (HASH_SLOTS - 1);
    table[i].key = key;
    table[i].value += value;
}

static inline int hash_lookup(const struct hash_slot* table, uint64_t key, uint64_t* value)
{
    uint32_t i = (uint32_t)hash_mix(key) & (HASH_SLOTS - 1);
    while (table[i].key != 0) {
        if (table[i].key == key) {
            *value = table[i].value;
            return 1;
        }
        i = (i + 1) & (HASH_SLOTS - 1);
    }
    return 0;
}

/* table must hold HASH_SLOTS zeroed slots. */
static inline uint64_t hash_run(struct hash_slot* table)
{
    uint64_t state = HASH_SEED;
    for (uint32_t n = 0; n < HASH_INSERTS; ++n) {
        /* Keys from a small range so some repeat (the value accumulates). */
        uint64_t key = (splitmix64_next(&state) % (HASH_INSERTS * 2u)) + 1;
        hash_insert(table, key, n);
    }
    uint64_t found = 0, sum = 0;
    state = HASH_SEED ^ 0xffff;
    for (uint32_t n = 0; n < HASH_LOOKUPS; ++n) {
        uint64_t key = (splitmix64_next(&state) % (HASH_INSERTS * 2u)) + 1, value;
        if (hash_lookup(table, key, &value)) {
            ++found;
            sum = sum * 31 + value;
        }
    }
    return (found << 40) ^ sum;
}
