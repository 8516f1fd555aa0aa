// tests/fuzz/scenario_checks.h — what a successfully parsed Scenario must satisfy.
//
// Each check is a promise written in tools/platform/scenario.h or scenarios/README.md
// that the code after the parser relies on without checking again (the scheduler indexes
// host.pin by vCPU, the TSC arithmetic divides by rates it assumes positive, ...). The
// accessors are called for every vCPU so UBSan sees their arithmetic on extreme values.
#pragma once
#include <fmt/format.h>

#include <stdexcept>

#include "tests/fuzz/fuzz_check.h"
#include "tools/platform/host_memory.h"
#include "tools/platform/scenario.h"

namespace pvsim::fuzz {

inline void check_scenario(const Scenario& s) {
  const MachineConfig& m = s.machine;
  fuzz_check(!s.description.empty(), "description is empty");
  fuzz_check(!s.guest.image_as_written.empty(), "guest.image is empty");
  fuzz_check(m.vcpus >= 1 && m.vcpus <= 64, "machine.vcpus outside 1..64", fmt::format("{}", m.vcpus));
  fuzz_check(m.ram_mib >= 2 && m.ram_mib <= 65536, "machine.ram_mib outside 2..65536", fmt::format("{}", m.ram_mib));
  fuzz_check(m.tsc_khz >= 1000, "machine.tsc_khz below 1000 (scenario.h: vcpu_tsc_hz needs it)");
  fuzz_check(m.quantum >= 1, "machine.quantum is 0");
  unsigned skew_seen = 0;
  for (unsigned i = 0; i < m.vcpus; ++i) {
    fuzz_check(m.vcpu_tsc_hz(i) > 0, "vcpu_tsc_hz is 0 (scenario.h: always > 0)", fmt::format("vCPU {}", i));
    (void)m.vcpu_tsc_start(i);
    if (const TscSkew* t = m.skew_of(i)) {
      fuzz_check(t->vcpu == i, "skew_of(i) returned another vCPU's entry");
      ++skew_seen;
    }
  }
  fuzz_check(skew_seen == m.tsc_skew.size(), "machine.tsc_skew names a vCPU twice or one that does not exist");
  (void)m.tsc_matched();

  const HostConfig& h = s.host;
  fuzz_check(h.pcpus >= 1, "host.pcpus not resolved (scenario.h: always resolved after parsing)");
  if (h.policy == HostPolicy::Pinned) {
    fuzz_check(h.pin.size() == m.vcpus, "host.pin does not have one entry per vCPU",
               fmt::format("{} entries, {} vCPUs", h.pin.size(), m.vcpus));
    for (unsigned p : h.pin) fuzz_check(p < h.pcpus, "host.pin names a pCPU >= host.pcpus");
  }
  fuzz_check(h.slice_ns >= 1, "host.slice is 0");
  for (const PreemptWindow& w : h.preempt) {
    fuzz_check(w.vcpu < m.vcpus, "host.preempt names a vCPU that does not exist");
    fuzz_check(w.from_ns < w.to_ns, "host.preempt window is empty or reversed");
  }

  // host.memory: HostMemory refuses (std::invalid_argument) exactly what the parser must
  // have refused already — ranges not page-aligned, empty or outside RAM, overlapping
  // latency ranges, a limit below the pages resident at time 0, no I/O worker.
  {
    const HostMemoryConfig& hm = h.memory;
    fuzz_check(hm.io_workers >= 1 && hm.io_workers <= 1024, "host.memory.io_workers outside 1..1024");
    fuzz_check(hm.fault_in.lo_ns <= hm.fault_in.hi_ns, "host.memory.fault_in_ns: lo above hi");
    // Only for small RAM: the model's bitmaps are proportional to it.
    if (m.ram_mib <= 256) {
      try {
        HostMemory model(hm, m.ram_bytes(), s.seed);
        (void)model.describe();
      } catch (const std::invalid_argument& e) {
        fuzz_check(false, "host.memory accepted by the parser but refused by HostMemory", e.what());
      }
    }
  }

  fuzz_check(s.limits.max_instructions >= 1, "limits.max_instructions is 0");
  fuzz_check(s.limits.max_virtual_ms >= 1, "limits.max_virtual_ms is 0");
  for (const RegisterExpect& r : s.expect.registers)
    fuzz_check(r.vcpu < m.vcpus, "expect.registers names a vCPU that does not exist");
  for (const MsrExpect& r : s.expect.msrs)
    fuzz_check(r.vcpu < m.vcpus, "expect.msrs names a vCPU that does not exist");
}

}  // namespace pvsim::fuzz
