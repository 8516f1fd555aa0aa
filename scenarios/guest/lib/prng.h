/* prng.h - the deterministic generators the guests use (header-only so host-side checks
 * compile the very same code). */
#pragma once

#include <stdint.h>

/* splitmix64 (Steele, Lea, Flood 2014): each call advances the state by the golden-ratio
 * increment and mixes it. */
static inline uint64_t splitmix64_next(uint64_t* state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* xorshift64* (Vigna 2014); the state must be non-zero. */
static inline uint64_t xorshift64star_next(uint64_t* state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545f4914f6cdd1dull;
}
