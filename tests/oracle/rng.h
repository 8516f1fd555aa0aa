// tests/oracle/rng.h — the test suites' only source of randomness.
//
// splitmix64 (Steele, Lea, Flood 2014; the seeding generator recommended for
// xoshiro256**): one 64-bit state, full period, trivially reproducible from a seed that
// the failing-case report prints. Never std:: distributions (their output differs between
// standard libraries, tools/platform/README.md §8).
//
// The edge-biased generators make the values that break ALU code — 0, 1, -1, the sign
// bit and its neighbours, shift counts 0/1/width-1/width/≥width — come up in roughly
// half of all draws instead of once per 2^64.
#pragma once
#include <cstdint>

#include "core/prng.h"

namespace pvsim::oracle {

using pvsim::SplitMix64;  // core/prng.h

constexpr uint64_t width_mask(unsigned bits) {
  return bits >= 64 ? ~0ull : (1ull << bits) - 1;
}

// A 64-bit register value whose low `bits` bits are edge-biased; the bits above are
// zero, all-ones or random (so 8/16/32-bit forms also prove they preserve or zero the
// upper part as the SDM says).
inline uint64_t edge_value(SplitMix64& rng, unsigned bits) {
  const uint64_t mask = width_mask(bits);
  const uint64_t sign = 1ull << (bits - 1);
  uint64_t low;
  switch (rng.below(16)) {
    case 0: low = 0; break;
    case 1: low = 1; break;
    case 2: low = mask; break;                       // -1
    case 3: low = sign; break;                       // most negative
    case 4: low = sign - 1; break;                   // most positive
    case 5: low = sign + 1; break;
    case 6: low = rng.below(bits + 3); break;        // small, also a shift count
    case 7: low = mask - rng.below(bits + 3); break; // small negative
    case 8: low = 1ull << rng.below(bits); break;    // one bit set
    case 9: low = ~(1ull << rng.below(bits)); break; // one bit clear
    case 10: low = rng.next() & 0x0f0f0f0f0f0f0f0full; break;  // nibble carries (AF)
    default: low = rng.next(); break;
  }
  low &= mask;
  if (bits >= 64) return low;
  uint64_t high;
  switch (rng.below(4)) {
    case 0: high = 0; break;
    case 1: high = ~0ull; break;
    default: high = rng.next(); break;
  }
  return (high & ~mask) | low;
}

// A shift/rotate/bit-index count (the raw 8-bit value before the CPU masks it) biased to
// the boundaries where masking and flag rules change: 0, 1, width-1, width, width+1 and
// the 5-/6-bit mask edges.
inline uint8_t count_value(SplitMix64& rng, unsigned bits) {
  static constexpr uint8_t kFixed[] = {0, 1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 255, 128};
  switch (rng.below(4)) {
    case 0: {
      const uint8_t rel[] = {0, 1, static_cast<uint8_t>(bits - 1), static_cast<uint8_t>(bits),
                             static_cast<uint8_t>(bits + 1), static_cast<uint8_t>(2 * bits - 1)};
      return rel[rng.below(sizeof rel)];
    }
    case 1: return kFixed[rng.below(sizeof kFixed)];
    case 2: return static_cast<uint8_t>(rng.below(bits + 2));
    default: return static_cast<uint8_t>(rng.next());
  }
}

}  // namespace pvsim::oracle
