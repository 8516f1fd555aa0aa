// core/types.h — strong types for addresses and time (tools/platform/README.md §3).
//
// Gpa/Gva keep guest-physical and guest-virtual addresses apart at API boundaries;
// Tick is virtual nanoseconds, Cycles is guest clock cycles (one cycle = one TSC tick,
// see core/README.md "Time"). Hot paths use raw uint64_t internally and wrap at edges.
#pragma once
#include <compare>
#include <cstdint>

namespace pvsim {

template <class Tag>
class Strong {
 public:
  constexpr Strong() = default;
  constexpr explicit Strong(uint64_t v) : m_v(v) {}
  constexpr uint64_t value() const { return m_v; }
  constexpr auto operator<=>(const Strong&) const = default;
  constexpr Strong operator+(uint64_t d) const { return Strong(m_v + d); }
  constexpr Strong operator-(uint64_t d) const { return Strong(m_v - d); }
  constexpr uint64_t operator-(Strong o) const { return m_v - o.m_v; }
  constexpr Strong& operator+=(uint64_t d) { m_v += d; return *this; }

 private:
  uint64_t m_v = 0;
};

struct GpaTag {};
struct GvaTag {};
struct TickTag {};
struct CyclesTag {};
using Gpa = Strong<GpaTag>;       // guest-physical address
using Gva = Strong<GvaTag>;       // guest-virtual (linear) address
using Tick = Strong<TickTag>;     // virtual nanoseconds since VM start
using Cycles = Strong<CyclesTag>; // guest cycles since VM start

constexpr uint64_t kPageSize = 4096;
constexpr uint64_t kPageShift = 12;

// Converts between cycles and nanoseconds at a fixed frequency without overflow
// (128-bit intermediate; rounds down, so ns_to_cycles(cycles_to_ns(c)) <= c).
constexpr uint64_t cycles_to_ns(uint64_t cycles, uint64_t hz) {
  return static_cast<uint64_t>((static_cast<unsigned __int128>(cycles) * 1'000'000'000u) / hz);
}
constexpr uint64_t ns_to_cycles(uint64_t ns, uint64_t hz) {
  return static_cast<uint64_t>((static_cast<unsigned __int128>(ns) * hz) / 1'000'000'000u);
}

}  // namespace pvsim
