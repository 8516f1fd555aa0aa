#include "pvmsr/poll_control.h"

#include "core/vcpu.h"

namespace pvsim {

void PollControl::attach(Vcpu& vcpu) {
  const unsigned i = vcpu.index();
  MsrHandler h;
  h.index = kMsr;
  h.name = "MSR_KVM_POLL_CONTROL";
  h.read = [this, i](Vcpu&, uint64_t& v) {
    if (!m_enabled) return MsrStatus::Gp;  // guest_pv_has() false under enforcement
    v = m_value[i];
    return MsrStatus::Ok;
  };
  h.write = [this, i](Vcpu&, uint64_t v) {
    if (!m_enabled) return MsrStatus::Gp;
    if (v & ~1ull) return MsrStatus::Gp;  // only the enable bit exists (kvm_set_msr_common)
    m_value[i] = v;
    return MsrStatus::Ok;
  };
  vcpu.msrs().add(std::move(h));
}

}  // namespace pvsim
