// core/env.h — the narrow interface a vCPU sees of the platform (tools/platform/README.md §2).
//
// The CPU core knows nothing of devices or PV MSRs: port I/O, MMIO outside RAM and
// CPUID go through this interface, MSRs through core/msr_registry.h. Calls here happen
// only on instructions that would be VM exits on real KVM, never per instruction.
#pragma once
#include <cstdint>

#include "core/types.h"

namespace pvsim {

class Vcpu;

// Outcome of a port or MMIO access as seen by the core.
enum class IoStatus : uint8_t {
  Ok,         // handled; for reads the value is filled in
  Unhandled,  // nothing claims it: the core stops the VM with an "unhandled I/O" report
  // mmio_read only: the access observes time (e.g. the LAPIC current-count register) and
  // this vCPU is not at the smallest local time, so the instruction must not execute now
  // (tools/platform/README.md §4.4). The device must not have changed or traced anything. The core
  // abandons the instruction without side effects (no fault, RIP stays on it, its cost is
  // un-charged) and run() returns StopReason::Deadline; the scheduler runs it again later.
  // Returned by a pio_*/mmio_write call it counts as Unhandled.
  Retry,
};

struct CpuidResult {
  uint32_t eax = 0, ebx = 0, ecx = 0, edx = 0;
  bool found = true;           // kvm_cpuid's "cpuid entry found"
  bool used_max_basic = false; // kvm_cpuid's "used max basic"
};

class CpuEnv {
 public:
  virtual ~CpuEnv() = default;
  // size is 1, 2 or 4 bytes. A device may call vcpu.request_stop() (exit ports).
  virtual IoStatus pio_read(Vcpu& vcpu, uint16_t port, unsigned size, uint32_t& value) = 0;
  virtual IoStatus pio_write(Vcpu& vcpu, uint16_t port, unsigned size, uint32_t value) = 0;
  // Accesses to guest-physical addresses outside RAM (LAPIC page etc.); size 1/2/4/8.
  virtual IoStatus mmio_read(Vcpu& vcpu, Gpa gpa, unsigned size, uint64_t& value) = 0;
  virtual IoStatus mmio_write(Vcpu& vcpu, Gpa gpa, unsigned size, uint64_t value) = 0;
  // CPUID leaf/subleaf for this vCPU (the platform owns the table).
  virtual CpuidResult cpuid(Vcpu& vcpu, uint32_t leaf, uint32_t subleaf) = 0;
};

}  // namespace pvsim
