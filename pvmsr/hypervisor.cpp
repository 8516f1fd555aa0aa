// pvmsr/hypervisor.cpp — see hypervisor.h.
#include "pvmsr/hypervisor.h"

#include <fmt/format.h>

#include "core/vcpu.h"

namespace pvsim {

namespace {

// Every feature's config starts with what the VM decides once for all of them.
template <class C>
C with_common(const HypervisorConfig& cfg, C c) {
  if constexpr (requires { c.abi; }) c.abi = cfg.abi;
  c.enforce_pv_cpuid = cfg.enforce_pv_cpuid;
  c.cpuid_features = cfg.cpuid_features;
  if constexpr (requires { c.irqchip_in_kernel; }) c.irqchip_in_kernel = cfg.irqchip_in_kernel;
  if constexpr (requires { c.bugs; }) c.bugs = cfg.bugs.value_or(kvm_bug_defaults(cfg.abi));
  return c;
}

}  // namespace

Hypervisor::Hypervisor(const HypervisorConfig& cfg, unsigned vcpus, GuestMemory& mem, Tracer& tracer,
                       EventQueue& events, ApfHost& apf_host, HypercallHost& hypercall_host)
    : m_cfg(cfg),
      m_mem(mem),
      m_tracer(tracer),
      m_cpuid(cfg.cpuid_features, cfg.cpuid_hints, cfg.signature_eax),
      m_poll_control(vcpus, cfg.enforce_pv_cpuid, cfg.cpuid_features, cfg.abi == AbiProfile::Modern),
      m_kvmclock(std::make_unique<KvmClock>(with_common(cfg, cfg.kvmclock), mem, tracer, events)),
      m_apf(std::make_unique<AsyncPf>(with_common(cfg, AsyncPfConfig{}), vcpus, mem, tracer, apf_host)),
      m_steal(std::make_unique<StealTime>(with_common(cfg, StealTimeConfig{}), vcpus, mem, tracer)),
      m_pv_eoi(std::make_unique<PvEoi>(with_common(cfg, PvEoiConfig{}), vcpus, mem, tracer)),
      m_hypercalls(std::make_unique<Hypercalls>(with_common(cfg, cfg.hypercalls), mem, tracer, hypercall_host)) {
  m_apf_ready.assign(vcpus, 0);
  m_stores.resize(vcpus);
  m_store_due.assign(vcpus, Tick(0));
}

Hypervisor::~Hypervisor() = default;

void Hypervisor::attach(Vcpu& v, LocalApic& apic) {
  m_poll_control.attach(v);
  m_kvmclock->attach(v);
  m_apf->attach(v);
  m_steal->attach(v);
  m_pv_eoi->attach(v, apic);
  m_hypercalls->attach(v);
  // kvm_lapic_sync_from_vapic runs right after every VM exit, before the exit is handled:
  // a WRMSR or an EOI-register write finds PV EOI disarmed (pvmsr/README.md §7).
  v.set_exit_hook([this](Vcpu& vcpu) { m_pv_eoi->on_exit(vcpu); });
  if (m_cfg.migration_control) attach_migration_control(v);
  // The entry that ends an exit the core traced (an MSR write, a hypercall): the stores of
  // the updates it services land at once — the exit's handling already took the time.
  v.set_entry_hook([this](Vcpu& vcpu) {
    on_entry(vcpu);
    HostStores& q = m_stores[vcpu.index()];
    if (!q.empty()) [[unlikely]] q.apply_all(m_mem);
  });
}

// vcpu_enter_guest (arch/x86/kvm/x86.c) checks its requests in a fixed order before it
// injects events and enters; the ones pvsim models, in that order:
//   1. KVM_REQ_MASTERCLOCK_UPDATE   kvmclock: re-snapshot the VM-wide clock
//   2. KVM_REQ_GLOBAL_CLOCK_UPDATE  kvmclock: this vCPU now, the others after the delay
//   3. KVM_REQ_CLOCK_UPDATE         kvmclock: kvm_guest_time_update for this vCPU
//   4. KVM_REQ_STEAL_UPDATE         steal time: record_steal_time (pvmsr/README.md §6)
//   5. KVM_REQ_APF_READY            async PF page-ready (pvmsr/README.md §5)
//   6. event injection              the CPU core, after this returns (exceptions queued by
//                                   the steps above, then interrupts: kvm_inj_exception,
//                                   kvm_inj_virq) and kvm_entry.
//   7. PV EOI arming                kvm_lapic_sync_to_vapic, right after an interrupt was
//                                   injected: the platform's interrupt poll calls
//                                   PvEoi::after_injection (pvmsr/README.md §7).
// Hypervisor::on_entry (inline in hypervisor.h) runs them: steps 1-3 are KvmClock::on_entry,
// which keeps KVM's order among them, step 5 is service_apf_ready().
void Hypervisor::service_apf_ready(Vcpu& v) {
  const unsigned i = v.index();
  m_apf_ready[i] = 0;
  m_apf->check_completion(i, v.now());
}

// MSR_KVM_MIGRATION_CONTROL as a VMM that implements it would (KVM's own MSR switch has
// no case for it, so without a VMM handler the access raises #GP like any unknown MSR):
// one VM-wide value, bit 0 KVM_MIGRATION_READY, initially 1 for a guest without encrypted
// memory; the other bits are reserved. A VMM that advertises the MSR sets CPUID feature
// 17; under enforcement a guest that was not told about it gets #GP, as for KVM's own.
void Hypervisor::attach_migration_control(Vcpu& v) {
  constexpr unsigned kFeature = 17;
  const bool visible = !m_cfg.enforce_pv_cpuid || (m_cfg.cpuid_features & (1u << kFeature));
  MsrHandler h;
  h.index = kMsrMigrationControl;
  h.name = "MSR_KVM_MIGRATION_CONTROL";
  h.read = [this, visible](Vcpu&, uint64_t& value) {
    if (!visible) return MsrStatus::Gp;
    value = m_migration_control;
    return MsrStatus::Ok;
  };
  h.write = [this, visible](Vcpu&, uint64_t value) {
    if (!visible || (value & ~1ull)) return MsrStatus::Gp;
    m_migration_control = value;
    return MsrStatus::Ok;
  };
  v.msrs().add(std::move(h));
}

// This entry's requests queued stores: without spacing they all land now; otherwise the
// first lands one spacing from now and the vCPU waits (apply_due_stores).
bool Hypervisor::begin_stores(Vcpu& v) {
  const unsigned i = v.index();
  if (m_cfg.pv_store_ns == 0) {
    m_stores[i].apply_all(m_mem);
    return true;
  }
  m_store_due[i] = v.now() + m_cfg.pv_store_ns;
  return false;
}

// Called again once the vCPU's time reached m_store_due: the stores due land, and the vCPU
// enters the guest only after the last one.
bool Hypervisor::apply_due_stores(Vcpu& v) {
  const unsigned i = v.index();
  HostStores& q = m_stores[i];
  while (!q.empty() && v.now() >= m_store_due[i]) {
    apply_store(i, m_store_due[i]);
    m_store_due[i] = m_store_due[i] + m_cfg.pv_store_ns;
  }
  return q.empty();
}

void Hypervisor::apply_store(unsigned vcpu, Tick at) {
  HostStores& q = m_stores[vcpu];
  const HostStore& s = q.front();
  m_tracer.pvsim_host(at, vcpu, "store",
                      fmt::format("{} ({} bytes at gpa 0x{:x}){}", s.what, s.len, s.gpa,
                                  q.size() > 1 ? "" : ", entry follows"));
  q.apply_front(m_mem);
}

bool Hypervisor::host_apply_store(unsigned vcpu, Tick at) {
  if (m_stores.at(vcpu).empty()) return false;
  apply_store(vcpu, at);
  m_store_due[vcpu] = m_store_due[vcpu] + m_cfg.pv_store_ns;  // the next keeps its own time
  return true;
}

int Hypervisor::kvmclock_ctrl(unsigned vcpu) { return m_kvmclock->kvmclock_ctrl(vcpu); }

void Hypervisor::set_run_delay_source(std::function<uint64_t(unsigned)> f) {
  m_run_delay = f;
  // The orig profile re-bases last_steal at enable to the run delay of that moment (3.x).
  m_steal->set_run_delay_source(std::move(f));
}

// kvm_arch_vcpu_load always raises KVM_REQ_STEAL_UPDATE (the kvmclock side of a load on
// another pCPU is on_migrate).
void Hypervisor::on_load(unsigned vcpu) { m_steal->on_load(vcpu); }

// kvm_arch_vcpu_put: a vCPU taken off its CPU involuntarily is marked preempted
// (kvm_steal_time_set_preempted); a halted or paused one is not.
void Hypervisor::on_put(unsigned vcpu, bool preempted, Tick at) {
  if (preempted) m_steal->on_put(vcpu, at);
}

// Step 4, KVM_REQ_STEAL_UPDATE: record_steal_time. A FLUSH_TLB the guest left in
// `preempted` is honoured here, before the guest runs (kvm_vcpu_flush_tlb_guest): the
// vCPU's cached translations, and the host pointers that ride on them, are dropped.
void Hypervisor::service_steal(Vcpu& v) {
  const unsigned i = v.index();
  const uint64_t delay = m_run_delay ? m_run_delay(i) : 0;
  if (m_steal->record(v, delay, m_stores[i])) v.flush_tlb();
}

Hypervisor::Snapshot Hypervisor::save() const {
  Snapshot s;
  s.own = static_cast<const HypervisorState&>(*this);
  s.poll_control = m_poll_control.save();
  s.kvmclock = m_kvmclock->save();
  s.async_pf = m_apf->save();
  s.steal_time = m_steal->save();
  s.pv_eoi = m_pv_eoi->save();
  s.hypercalls = m_hypercalls->save();
  return s;
}

void Hypervisor::restore(const Snapshot& s) {
  static_cast<HypervisorState&>(*this) = s.own;
  m_poll_control.restore(s.poll_control);
  m_kvmclock->restore(s.kvmclock);
  m_apf->restore(s.async_pf);
  m_steal->restore(s.steal_time);
  m_pv_eoi->restore(s.pv_eoi);
  m_hypercalls->restore(s.hypercalls);
}

void Hypervisor::on_migrate(unsigned vcpu) { m_kvmclock->on_migrate(vcpu); }

void Hypervisor::on_reset(unsigned vcpu) {
  m_kvmclock->on_reset(vcpu);
  m_steal->reset(vcpu);
  m_pv_eoi->reset(vcpu);  // kvm_lapic_reset zeroes the PV EOI MSR
  m_apf->reset(vcpu);
  m_apf_ready.at(vcpu) = 0;
}

}  // namespace pvsim
