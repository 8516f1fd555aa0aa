// tests/cpu_envs.h — the two stand-in platforms the tests give a bare vCPU (core/env.h).
#pragma once
#include <cstdint>

#include "core/env.h"
#include "core/vcpu.h"

namespace pvsim::test {

// A platform with nothing on it: every port and MMIO access is unclaimed (the core stops
// with IoError), CPUID answers zeros. For tests whose vCPUs never do I/O, or must stop at it.
class NullEnv final : public CpuEnv {
 public:
  IoStatus pio_read(Vcpu&, uint16_t, unsigned, uint32_t&) override { return IoStatus::Unhandled; }
  IoStatus pio_write(Vcpu&, uint16_t, unsigned, uint32_t) override { return IoStatus::Unhandled; }
  IoStatus mmio_read(Vcpu&, Gpa, unsigned, uint64_t&) override { return IoStatus::Unhandled; }
  IoStatus mmio_write(Vcpu&, Gpa, unsigned, uint64_t) override { return IoStatus::Unhandled; }
  CpuidResult cpuid(Vcpu&, uint32_t, uint32_t) override { return CpuidResult{}; }
};

// A platform that claims every port and MMIO address (reads return all-ones, as
// `ignore_unhandled_io` does), so garbage and fuzzed guests run long instead of stopping
// at their first stray access; ports 0xf4/0xf5 still end the run like the real exit
// ports. CPUID echoes the leaf and subleaf in EAX and ECX.
class PermissiveEnv final : public CpuEnv {
 public:
  IoStatus pio_read(Vcpu&, uint16_t, unsigned, uint32_t& value) override {
    value = 0xffffffffu;
    return IoStatus::Ok;
  }
  IoStatus pio_write(Vcpu& v, uint16_t port, unsigned, uint32_t) override {
    if (port == 0xf4) v.request_stop(StopReason::VmExitRequested);
    if (port == 0xf5) v.request_stop(StopReason::VcpuFinished);
    return IoStatus::Ok;
  }
  IoStatus mmio_read(Vcpu&, Gpa, unsigned, uint64_t& value) override {
    value = ~0ull;
    return IoStatus::Ok;
  }
  IoStatus mmio_write(Vcpu&, Gpa, unsigned, uint64_t) override { return IoStatus::Ok; }
  CpuidResult cpuid(Vcpu&, uint32_t leaf, uint32_t sub) override {
    CpuidResult r;
    r.eax = leaf;
    r.ecx = sub;
    return r;
  }
};

}  // namespace pvsim::test
