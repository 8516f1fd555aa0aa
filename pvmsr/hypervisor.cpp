// pvmsr/hypervisor.cpp — see hypervisor.h.
#include "pvmsr/hypervisor.h"

#include "core/vcpu.h"

namespace pvsim {

namespace {

KvmClockConfig clock_config(const HypervisorConfig& cfg) {
  KvmClockConfig c = cfg.kvmclock;
  c.abi = cfg.abi;
  c.enforce_pv_cpuid = cfg.enforce_pv_cpuid;
  c.cpuid_features = cfg.cpuid_features;
  return c;
}

AsyncPfConfig apf_config(const HypervisorConfig& cfg) {
  AsyncPfConfig c;
  c.abi = cfg.abi;
  c.enforce_pv_cpuid = cfg.enforce_pv_cpuid;
  c.cpuid_features = cfg.cpuid_features;
  c.irqchip_in_kernel = cfg.irqchip_in_kernel;
  return c;
}

}  // namespace

Hypervisor::Hypervisor(const HypervisorConfig& cfg, unsigned vcpus, GuestMemory& mem, Tracer& tracer,
                       EventQueue& events, ApfHost& apf_host)
    : m_cfg(cfg),
      m_cpuid(cfg.cpuid_features, cfg.cpuid_hints, cfg.signature_eax),
      m_poll_control(vcpus, cfg.enforce_pv_cpuid, cfg.cpuid_features),
      m_kvmclock(std::make_unique<KvmClock>(clock_config(cfg), mem, tracer, events)),
      m_apf(std::make_unique<AsyncPf>(apf_config(cfg), vcpus, mem, tracer, apf_host)),
      m_apf_ready(vcpus, 0) {}

Hypervisor::~Hypervisor() = default;

void Hypervisor::attach(Vcpu& v) {
  m_poll_control.attach(v);
  m_kvmclock->attach(v);
  m_apf->attach(v);
  v.set_entry_hook([this](Vcpu& vcpu) { on_entry(vcpu); });
}

// vcpu_enter_guest (arch/x86/kvm/x86.c) checks its requests in a fixed order before it
// injects events and enters; the ones pvsim models, in that order:
//   1. KVM_REQ_MASTERCLOCK_UPDATE   kvmclock: re-snapshot the VM-wide clock
//   2. KVM_REQ_GLOBAL_CLOCK_UPDATE  kvmclock: this vCPU now, the others after the delay
//   3. KVM_REQ_CLOCK_UPDATE         kvmclock: kvm_guest_time_update for this vCPU
//   4. KVM_REQ_STEAL_UPDATE         steal time (not offered yet, pvmsr/README.md §6)
//   5. KVM_REQ_APF_READY            async PF page-ready (pvmsr/README.md §5)
//   6. PV EOI sync                  (not offered yet, pvmsr/README.md §7)
//   7. event injection              the CPU core, after this returns (exceptions queued by
//                                   the steps above, then interrupts: kvm_inj_exception,
//                                   kvm_inj_virq) and kvm_entry.
// Hypervisor::on_entry (inline in hypervisor.h) runs them: steps 1-3 are KvmClock::on_entry,
// which keeps KVM's order among them, step 5 is service_apf_ready().
void Hypervisor::service_apf_ready(Vcpu& v) {
  const unsigned i = v.index();
  m_apf_ready[i] = 0;
  m_apf->check_completion(i, v.now());
}

void Hypervisor::on_migrate(unsigned vcpu) { m_kvmclock->on_migrate(vcpu); }

void Hypervisor::on_reset(unsigned vcpu) {
  m_kvmclock->on_reset(vcpu);
  m_apf->reset(vcpu);
  m_apf_ready.at(vcpu) = 0;
}

}  // namespace pvsim
