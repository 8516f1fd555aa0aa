// tests/pvmsr/snapshot_check.h — the save / mutate / restore / compare check every PV
// component's snapshot test runs (pvmsr/README.md §1.3).
//
// A rig is one VM as a component test builds it (guest memory, an event queue where the
// component has events, vCPUs, the component). The check:
//   A: make() (the rig after a common prefix), save, mutate(), then for each base time:
//      restore, branch(base);
//   B: for each base time a fresh make(), branch(base) — the untouched copy;
//   C: a fresh make(), mutate(), branch(first base) — the same branch without the restore.
// Every branch of A must produce exactly what B's produces (its log: trace lines emitted
// during the branch plus whatever the branch records of the component's observable state)
// and leave guest memory byte-identical; C must differ from B, or the mutation did not touch
// anything the branch observes and the check would prove nothing.
//
// Virtual time. vCPU time only moves forward (Vcpu::advance_to) and the vCPU's own snapshot
// is not this component's, so a branch never assumes where the vCPUs are: it starts by
// advancing every vCPU to `base`, which lies after everything mutate() did. A vCPU's clock
// then reads the same in A, B and C at every step of the branch, whatever happened before.
// A second base restores the same snapshot a second time.
//
// The rig provides:
//   Snap save();              component snapshot + GuestMemory::checkpoint() + EventQueue
//   void restore(const Snap&); the three restored
//   std::vector<uint8_t> ram() const;
#pragma once
#include <catch2/catch.hpp>

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "core/guest_memory.h"

namespace pvsim::test {

inline std::vector<uint8_t> ram_image(const GuestMemory& mem) {
  std::vector<uint8_t> b(mem.size());
  REQUIRE(mem.read(Gpa(0), b.data(), b.size()));
  return b;
}

// "equal", or where two RAM images first differ (a readable failure for megabytes of RAM).
inline std::string ram_difference(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  if (a.size() != b.size()) return "sizes differ";
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i] != b[i]) {
      std::ostringstream os;
      os << "first difference at gpa 0x" << std::hex << i << ": 0x" << int(a[i]) << " vs 0x"
         << int(b[i]);
      return os.str();
    }
  return "equal";
}

template <class MakeRig, class Mutate, class Branch>
void check_snapshot(MakeRig make, Mutate mutate, Branch branch,
                    std::initializer_list<uint64_t> bases) {
  REQUIRE(bases.size() > 0);
  auto a = make();
  const std::vector<uint8_t> ram_at_save = a->ram();
  const auto snap = a->save();
  mutate(*a);
  for (uint64_t base : bases) {
    INFO("branch at " << base << " ns");
    a->restore(snap);
    CHECK(ram_difference(a->ram(), ram_at_save) == "equal");
    const std::string got = branch(*a, base);
    auto b = make();
    const std::string want = branch(*b, base);
    CHECK(got == want);
    CHECK(ram_difference(a->ram(), b->ram()) == "equal");
  }
  // The mutation must matter to the branch, or the comparison above is empty.
  auto b = make();
  const std::string want = branch(*b, *bases.begin());
  auto c = make();
  mutate(*c);
  const std::string unrestored = branch(*c, *bases.begin());
  CHECK(unrestored != want);
}

}  // namespace pvsim::test
