// pvmsr/hypervisor.h — the hypervisor side of one VM: every KVM paravirtual feature it
// offers, and the one place the platform calls at guest entry, exit, migration and
// INIT/reset (pvmsr/README.md §1.1).
//
// KVM splits PV work into "raise a request" and "service it at the next guest entry"
// (vcpu_enter_guest). pvsim keeps that split: MSR handlers only gate (PV-CPUID
// enforcement), validate, store and raise a request; on_entry() services the requests in
// one fixed order. The CPU core calls on_entry() at every VM entry that ends an exit it
// traced (Vcpu::set_entry_hook), so a WRMSR to 0x4b564d01 reads, as on KVM:
//   kvm_exit (MSR_WRITE) -> kvm_msr -> kvm_pvclock_update -> kvm_entry
// and the platform calls it before each run slice (a vCPU that was descheduled re-enters
// the guest then).
//
// Index:
//   HypervisorConfig ... what the scenario decides (profile, enforcement, CPUID, kvmclock)
//   Hypervisor
//     attach ........... registers the PV MSRs of a vCPU and its entry hook
//     on_entry ......... request servicing in vcpu_enter_guest's order
//     on_exit .......... what KVM samples after an exit (the orig clamp's guest TSC)
//     on_migrate ....... kvm_arch_vcpu_load on another host CPU
//     on_reset ......... INIT/RESET (kvm_vcpu_reset)
//     features ......... the CPUID leaves, kvmclock, poll control, async PF
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "core/event_queue.h"
#include "core/guest_memory.h"
#include "core/trace.h"
#include "core/vcpu.h"
#include "pvmsr/async_pf.h"
#include "pvmsr/kvm_cpuid.h"
#include "pvmsr/kvmclock.h"
#include "pvmsr/poll_control.h"

namespace pvsim {

class Vcpu;

struct HypervisorConfig {
  AbiProfile abi = AbiProfile::Modern;
  bool enforce_pv_cpuid = false;  // KVM_CAP_ENFORCE_PV_FEATURE_CPUID (pvmsr/README.md §2.2)
  uint32_t cpuid_features = KvmCpuid::kDefaultFeatures;
  uint32_t cpuid_hints = 0;
  uint32_t signature_eax = KvmCpuid::kDefaultSignatureEax;
  bool irqchip_in_kernel = true;  // machine.irqchip (async PF needs KVM's own LAPIC)
  KvmClockConfig kvmclock;  // its abi/enforcement/features fields are taken from above
};

class Hypervisor {
 public:
  // `apf_host` is the platform side of async PF (injection, the LAPIC, waking vCPUs).
  Hypervisor(const HypervisorConfig& cfg, unsigned vcpus, GuestMemory& mem, Tracer& tracer,
             EventQueue& events, ApfHost& apf_host);
  ~Hypervisor();
  Hypervisor(const Hypervisor&) = delete;
  Hypervisor& operator=(const Hypervisor&) = delete;

  // Registers every PV MSR in the vCPU's registry and installs on_entry() as its entry
  // hook. `this` must outlive the vCPU's use of them.
  void attach(Vcpu& v);

  // vcpu_enter_guest's request servicing, in KVM's order (the list in hypervisor.cpp).
  // Inline: the platform calls it before every run slice (every instruction at quantum 1).
  void on_entry(Vcpu& v) {
    m_kvmclock->on_entry(v);                               // steps 1-3
    if (m_apf_ready[v.index()]) [[unlikely]] service_apf_ready(v);  // step 5
  }
  // After a run slice (a VM exit): the guest TSC the orig kvmclock clamp has seen.
  void on_exit(Vcpu& v) { m_kvmclock->on_exit(v); }
  void on_migrate(unsigned vcpu);
  // INIT/RESET of one vCPU (kvm_vcpu_reset, pvmsr/README.md §2.3).
  void on_reset(unsigned vcpu);
  // KVM_REQ_APF_READY for `vcpu` (ApfHost::apf_request_ready): serviced at its next entry.
  void request_apf_ready(unsigned vcpu) { m_apf_ready.at(vcpu) = 1; }
  bool apf_ready_requested(unsigned vcpu) const { return m_apf_ready.at(vcpu) != 0; }

  const HypervisorConfig& config() const { return m_cfg; }
  const KvmCpuid& cpuid() const { return m_cpuid; }
  KvmClock& kvmclock() { return *m_kvmclock; }
  const PollControl& poll_control() const { return m_poll_control; }
  AsyncPf& async_pf() { return *m_apf; }
  const AsyncPf& async_pf() const { return *m_apf; }

 private:
  void service_apf_ready(Vcpu& v);

  HypervisorConfig m_cfg;
  KvmCpuid m_cpuid;
  PollControl m_poll_control;
  std::unique_ptr<KvmClock> m_kvmclock;
  std::unique_ptr<AsyncPf> m_apf;
  std::vector<uint8_t> m_apf_ready;  // KVM_REQ_APF_READY per vCPU
};

}  // namespace pvsim
