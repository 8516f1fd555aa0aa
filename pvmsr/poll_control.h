// pvmsr/poll_control.h — MSR_KVM_POLL_CONTROL (0x4b564d05, kvm-pv-spec.md §2.7).
//
// Bit 0 = 1 lets the host poll a halted vCPU; the guest clears it to turn host-side
// polling off. pvsim has no halt-polling model, so the value is only stored, which is
// all the guest can observe. Reset value 1 (boot-protocol.md, KVM kvm_vcpu_reset).
#pragma once
#include <cstdint>
#include <vector>

namespace pvsim {

class Vcpu;

class PollControl {
 public:
  static constexpr uint32_t kMsr = 0x4b564d05;
  explicit PollControl(unsigned vcpu_count) : m_value(vcpu_count, 1) {}
  // Registers the MSR handler in the vCPU's registry; `this` must outlive the vCPU.
  void attach(Vcpu& vcpu);
  uint64_t value(unsigned vcpu) const { return m_value.at(vcpu); }

 private:
  std::vector<uint64_t> m_value;
};

}  // namespace pvsim
