// core/prng.h — the project's one pseudo-random generator (tools/platform/README.md §8).
//
// splitmix64 (Steele, Lea, Flood 2014): one 64-bit state, full period, the same stream on
// every compiler and standard library. Anything random that can reach output — scenario
// seeds later, test-case generation now — draws from this, never from std::
// distributions, whose results differ between standard libraries.
#pragma once
#include <cstdint>

namespace pvsim {

class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : m_state(seed) {}
  uint64_t next() {
    uint64_t z = (m_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // [0, n) by Lemire's multiply-shift: no division, bias below n / 2^64. n = 0 gives 0.
  uint64_t below(uint64_t n) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(next()) * n) >> 64);
  }
  bool one_in(uint64_t n) { return below(n) == 0; }

 private:
  uint64_t m_state;
};

}  // namespace pvsim
