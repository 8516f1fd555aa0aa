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
//     save/restore ..... snapshots of all of the above
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "core/event_queue.h"
#include "core/guest_memory.h"
#include "core/trace.h"
#include "core/vcpu.h"
#include "pvmsr/async_pf.h"
#include "pvmsr/host_stores.h"
#include "pvmsr/hypercalls.h"
#include "pvmsr/kvm_bugs.h"
#include "pvmsr/pv_eoi.h"
#include "pvmsr/kvm_cpuid.h"
#include "pvmsr/kvmclock.h"
#include "pvmsr/poll_control.h"
#include "pvmsr/steal_time.h"

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
  uint64_t pv_store_ns = 0;  // host.pv_store_ns (pvmsr/host_stores.h)
  HypercallConfig hypercalls;  // its enforcement/features/irqchip fields are taken from above
  // MSR_KVM_MIGRATION_CONTROL (0x4b564d08) has no handler in KVM; a VMM may implement it
  // through userspace MSR exits (machine.kvm.migration_control). pvmsr/README.md §9.
  bool migration_control = false;
  // machine.kvm.bugs (pvmsr/README.md §2.5): the profile's defaults with the scenario's
  // overrides applied. Empty: kvm_bug_defaults(abi). Every component gets the same set.
  std::optional<KvmBugs> bugs;
};

// What the Hypervisor itself changes after construction (its components keep their own),
// kept apart so that a snapshot copies all of it (pvmsr/README.md §1.3).
struct HypervisorState {
  std::vector<uint8_t> m_apf_ready;  // KVM_REQ_APF_READY per vCPU
  uint64_t m_migration_control = 1;  // VM-wide; KVM_MIGRATION_READY for a plain guest
  std::vector<HostStores> m_stores;  // per vCPU: host stores not yet in guest memory
  std::vector<Tick> m_store_due;     // per vCPU: when the next of them lands
};

class Hypervisor : private HypervisorState {
 public:
  static constexpr uint32_t kMsrMigrationControl = 0x4b564d08;
  // `apf_host` is the platform side of async PF (injection, the LAPIC, waking vCPUs).
  Hypervisor(const HypervisorConfig& cfg, unsigned vcpus, GuestMemory& mem, Tracer& tracer,
             EventQueue& events, ApfHost& apf_host, HypercallHost& hypercall_host);
  ~Hypervisor();
  Hypervisor(const Hypervisor&) = delete;
  Hypervisor& operator=(const Hypervisor&) = delete;

  // Registers every PV MSR in the vCPU's registry, installs on_entry() as its entry hook,
  // PV EOI's sync as its exit hook and the hypercall handler. `apic` is the vCPU's local
  // APIC (PV EOI lives in it, as in KVM's lapic.c). `this` must outlive the vCPU's use of
  // them.
  void attach(Vcpu& v, LocalApic& apic);

  // vcpu_enter_guest's request servicing, in KVM's order (the list in hypervisor.cpp).
  // Inline: the platform calls it before every run slice (every instruction at quantum 1).
  void on_entry(Vcpu& v) {
    m_kvmclock->on_entry(v, m_stores[v.index()]);                          // steps 1-3
    if (m_steal->update_requested(v.index())) [[unlikely]] service_steal(v);  // step 4
    if (m_apf_ready[v.index()]) [[unlikely]] service_apf_ready(v);          // step 5
  }
  // The host model's run delay of each vCPU thread (runnable, waiting for a pCPU): what
  // steal time reports. Set by the platform before the first entry.
  void set_run_delay_source(std::function<uint64_t(unsigned)> f);
  // The platform's entry before a run slice: services the requests like on_entry, then
  // applies the host's stores to guest memory (pvmsr/host_stores.h) spaced by
  // host.pv_store_ns. Returns true when the vCPU may run now; false when stores are still
  // due, after which the caller lets the vCPU's time pass to pending_until() and asks again
  // (other vCPUs run meanwhile, and may see a half-written structure).
  bool enter(Vcpu& v) {
    HostStores& q = m_stores[v.index()];
    if (!q.empty()) return apply_due_stores(v);  // an earlier entry still waits for its stores
    on_entry(v);
    if (q.empty()) [[likely]] return true;
    return begin_stores(v);
  }
  Tick pending_until(unsigned vcpu) const { return m_store_due.at(vcpu); }
  // kvm_arch_vcpu_load / kvm_arch_vcpu_put (the host model scheduled the vCPU's thread in or
  // out; `preempted`: out involuntarily, at an instruction boundary).
  void on_load(unsigned vcpu);
  // KVM_KVMCLOCK_CTRL from the VMM (a paused VM resumes): 0, or negative when the vCPU's
  // kvmclock is not enabled (-EINVAL).
  int kvmclock_ctrl(unsigned vcpu);
  void on_put(unsigned vcpu, bool preempted, Tick at);
  // After a run slice (a VM exit): the guest TSC the orig kvmclock clamp has seen.
  void on_exit(Vcpu& v) { m_kvmclock->on_exit(v); }
  void on_migrate(unsigned vcpu);
  // INIT/RESET of one vCPU (kvm_vcpu_reset, pvmsr/README.md §2.3).
  void on_reset(unsigned vcpu);
  // KVM_REQ_APF_READY for `vcpu` (ApfHost::apf_request_ready): serviced at its next entry.
  void request_apf_ready(unsigned vcpu) { m_apf_ready.at(vcpu) = 1; }
  // Host actions of a scenario's `schedule` (scenarios/README.md "schedule"):
  // KVM_REQ_CLOCK_UPDATE and KVM_REQ_STEAL_UPDATE raised from outside, serviced at the
  // vCPU's next entry; and the next pending host store of `vcpu` landing now, ahead of its
  // spacing (the stores after it keep their times). False when none is pending.
  void host_clock_update(unsigned vcpu, Tick at) { m_kvmclock->request_clock_update(vcpu, at); }
  void host_steal_update(unsigned vcpu) { m_steal->on_load(vcpu); }
  bool host_apply_store(unsigned vcpu, Tick at);
  bool apf_ready_requested(unsigned vcpu) const { return m_apf_ready.at(vcpu) != 0; }

  const HypervisorConfig& config() const { return m_cfg; }
  // The historic-bug flags in effect (the config's, or the profile's defaults).
  KvmBugs bugs() const { return m_cfg.bugs.value_or(kvm_bug_defaults(m_cfg.abi)); }
  const KvmCpuid& cpuid() const { return m_cpuid; }
  KvmClock& kvmclock() { return *m_kvmclock; }
  const PollControl& poll_control() const { return m_poll_control; }
  StealTime& steal_time() { return *m_steal; }
  PvEoi& pv_eoi() { return *m_pv_eoi; }
  Hypercalls& hypercalls() { return *m_hypercalls; }
  AsyncPf& async_pf() { return *m_apf; }
  const AsyncPf& async_pf() const { return *m_apf; }

  // Snapshots (pvmsr/README.md §1.3): every PV component's state and the hypervisor's own
  // (page-ready requests, MIGRATION_CONTROL, the host stores still due and their times).
  // Configuration, the CPUID leaves and the hooks are not state. restore() touches no
  // event, no vCPU and no guest memory: the platform restores those (the EventQueue
  // re-links kvmclock's events) from the same instant, in any order relative to this.
  struct Snapshot {
    HypervisorState own;
    PollControl::Snapshot poll_control;
    KvmClock::Snapshot kvmclock;
    AsyncPf::Snapshot async_pf;
    StealTime::Snapshot steal_time;
    PvEoi::Snapshot pv_eoi;
    Hypercalls::Snapshot hypercalls;
  };
  Snapshot save() const;
  void restore(const Snapshot& s);

 private:
  void service_apf_ready(Vcpu& v);
  void service_steal(Vcpu& v);
  bool begin_stores(Vcpu& v);
  bool apply_due_stores(Vcpu& v);
  void apply_store(unsigned vcpu, Tick at);
  void attach_migration_control(Vcpu& v);

  HypervisorConfig m_cfg;
  GuestMemory& m_mem;
  Tracer& m_tracer;
  KvmCpuid m_cpuid;
  PollControl m_poll_control;
  std::unique_ptr<KvmClock> m_kvmclock;
  std::unique_ptr<AsyncPf> m_apf;
  std::unique_ptr<StealTime> m_steal;
  std::unique_ptr<PvEoi> m_pv_eoi;
  std::unique_ptr<Hypercalls> m_hypercalls;
  std::function<uint64_t(unsigned)> m_run_delay;
};

}  // namespace pvsim
