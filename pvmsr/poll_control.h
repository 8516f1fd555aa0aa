// pvmsr/poll_control.h — MSR_KVM_POLL_CONTROL (0x4b564d05, pvmsr/README.md §8).
//
// Bit 0 = 1 lets the host poll a halted vCPU; the guest clears it to turn host-side
// polling off. pvsim has no halt-polling model, so the value is only stored, which is
// all the guest can observe. Reset value 1 (scenarios/guest/boot.md §3; KVM kvm_arch_vcpu_postcreate).
#pragma once
#include <cstdint>
#include <vector>

namespace pvsim {

class Vcpu;

// What PollControl changes after construction, kept apart so that a snapshot copies all
// of it (pvmsr/README.md §1.3).
struct PollControlState {
  std::vector<uint64_t> m_value;  // per vCPU
};

class PollControl : private PollControlState {
 public:
  static constexpr uint32_t kMsr = 0x4b564d05;
  // `enforce`: KVM_CAP_ENFORCE_PV_FEATURE_CPUID (machine.kvm.enforce_pv_cpuid); then a
  // guest whose CPUID 0x40000001 hides KVM_FEATURE_POLL_CONTROL (bit 12) gets #GP on both
  // RDMSR and WRMSR, as kvm_get_msr_common / kvm_set_msr_common do through guest_pv_has()
  // (commit 66570e966dd9, pvmsr/README.md §2.2).
  // `exists`: false under the orig profile (pvmsr/README.md §2.1): KVM added the MSR in 5.2
  // (KVM_FEATURE_POLL_CONTROL), so a seed-era host has no case for it and both RDMSR and
  // WRMSR raise #GP, as for ASYNC_PF_INT/ACK there.
  explicit PollControl(unsigned vcpu_count, bool enforce = false, uint32_t cpuid_features = ~0u,
                       bool exists = true)
      : m_enabled(exists && (!enforce || (cpuid_features & (1u << kFeatureBit)))) {
    m_value.assign(vcpu_count, 1);
  }
  static constexpr unsigned kFeatureBit = 12;
  // Registers the MSR handler in the vCPU's registry; `this` must outlive the vCPU.
  void attach(Vcpu& vcpu);
  uint64_t value(unsigned vcpu) const { return m_value.at(vcpu); }

  // Snapshots (pvmsr/README.md §1.3): every vCPU's MSR value.
  struct Snapshot {
    PollControlState state;
  };
  Snapshot save() const { return {static_cast<const PollControlState&>(*this)}; }
  void restore(const Snapshot& s) { static_cast<PollControlState&>(*this) = s.state; }

 private:
  bool m_enabled;
};

}  // namespace pvsim
