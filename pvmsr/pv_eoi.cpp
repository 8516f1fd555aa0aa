// pvmsr/pv_eoi.cpp — MSR_KVM_PV_EOI_EN and the PV EOI protocol; see pv_eoi.h for the rules
// and the KVM functions each step follows.
#include "pvmsr/pv_eoi.h"

#include <fmt/format.h>

#include "core/vcpu.h"
#include "devices/lapic.h"

namespace pvsim {

PvEoi::PvEoi(const PvEoiConfig& cfg, unsigned vcpus, GuestMemory& mem, Tracer& tracer)
    : m_cfg(cfg),
      m_bugs(cfg.bugs.value_or(kvm_bug_defaults(cfg.abi))),
      m_mem(mem),
      m_tracer(tracer),
      m_apic(vcpus, nullptr) {
  m_st.resize(vcpus);
  m_pending.assign(vcpus, 0);
}

bool PvEoi::feature_visible() const {
  // guest_pv_has (pvmsr/README.md §2.2): without enforcement every feature is "present";
  // as for the other PV MSRs, enforcement applies in both profiles when the scenario asks.
  return !m_cfg.enforce_pv_cpuid || ((m_cfg.cpuid_features >> kFeatureBit) & 1u) != 0;
}

void PvEoi::attach(Vcpu& v, LocalApic& apic) {
  const unsigned i = v.index();
  m_apic.at(i) = &apic;
  MsrHandler h;
  h.index = kMsr;
  h.name = "MSR_KVM_PV_EOI_EN";
  h.read = [this, i](Vcpu&, uint64_t& value) {
    if (!feature_visible()) return MsrStatus::Gp;
    value = m_st[i].msr;  // the raw stored value, whatever it is (kvm_get_msr_common)
    return MsrStatus::Ok;
  };
  h.write = [this, i](Vcpu&, uint64_t value) {
    if (!feature_visible()) return MsrStatus::Gp;
    return write_msr(i, value);
  };
  v.msrs().add(std::move(h));
}

// kvm_lapic_set_pv_eoi (modern) / kvm_lapic_enable_pv_eoi (orig), after the feature gate.
MsrStatus PvEoi::write_msr(unsigned vcpu, uint64_t value) {
  VcpuPvEoi& s = m_st[vcpu];
  const uint64_t gpa = value & ~kEnable;
  // IS_ALIGNED(addr, 4): bit 1 is the only bit that can break it once bit 0 is masked off.
  // Checked before anything else, so it faults even when the write disables PV EOI.
  if (gpa & 3) return MsrStatus::Gp;
  if (!(value & kEnable)) {
    // Disabling leaves the cache alone; PV EOI cannot arm while the enable bit is clear.
    s.msr = value;
    return MsrStatus::Ok;
  }
  // kvm_gfn_to_hva_cache_init for the one byte the host touches. It re-aims the cache at
  // the new GPA whether it succeeds or not (a failure leaves an error address behind).
  s.area = Gpa(gpa);
  s.area_ok = m_mem.contains(s.area, 1);
  if (!s.area_ok) {
    // Before commit afd67ee3cbbd (5.16) the value was stored before the set-up, so the bad
    // value stays although the guest gets #GP (pvmsr/README.md §7.4); since then the old
    // one is kept. machine.kvm.bugs.pv_eoi_keeps_bad_value chooses (§2.5): on by default
    // under "orig", off under "modern", and either profile may turn it the other way.
    if (m_bugs.pv_eoi_keeps_bad_value) s.msr = value;
    return MsrStatus::Gp;
  }
  s.msr = value;
  return MsrStatus::Ok;
}

bool PvEoi::put_byte(const VcpuPvEoi& s, uint8_t value) {
  return s.area_ok && m_mem.write(s.area, &value, 1);
}

bool PvEoi::get_byte(const VcpuPvEoi& s, uint8_t& value) const {
  return s.area_ok && m_mem.read(s.area, &value, 1);
}

// apic_sync_pv_eoi_to_guest (with kvm_lapic_sync_to_vapic's kvm_lapic_enabled condition)
// and pv_eoi_set_pending.
void PvEoi::after_injection(Vcpu& v) {
  const unsigned i = v.index();
  // KVM cannot get here armed: the exit before this entry disarmed. Keep that invariant
  // even if a caller skipped on_exit, rather than arm twice.
  if (m_pending[i]) [[unlikely]] sync_from_guest(v);
  VcpuPvEoi& s = m_st[i];
  LocalApic* const lapic = m_apic[i];
  if (!(s.msr & kEnable) || !lapic) return;
  const LocalApic& apic = *lapic;
  if (apic.mode() == ApicMode::Disabled || !apic.software_enabled()) return;
  // Another interrupt waiting in IRR could nest: its EOI would need the real register.
  if (apic.irr_pending()) return;
  // Only while the vector just acked is known to be the highest in service.
  const int vector = apic.highest_isr_cache();
  if (vector < 0) return;
  // kvm_ioapic_handles_vector: the I/O APIC must see this EOI. Without an I/O APIC, pvsim
  // counts every level-triggered vector as one (pv_eoi.h top).
  if (apic.tmr_bit(static_cast<uint8_t>(vector))) return;
  if (!put_byte(s, kPending)) return;  // the flag is set only when the write landed
  m_pending[i] = 1;
  s.armed_vector = vector;
  ++s.arms;
  // KVM kicks the vCPU for every accepted interrupt; while armed, that exit matters.
  lapic->set_notify_every_accept(true);
  m_tracer.pvsim_pv_eoi(v.now(), i, "arm", fmt::format("vector {}", vector));
}

// apic_sync_pv_eoi_from_guest with pv_eoi_test_and_clr_pending (modern) or
// pv_eoi_get_pending + pv_eoi_clr_pending (orig).
void PvEoi::sync_from_guest(Vcpu& v) {
  const unsigned i = v.index();
  VcpuPvEoi& s = m_st[i];
  LocalApic* const apic = m_apic[i];
  if (!(s.msr & kEnable) || !apic) {
    // KVM's BUG_ON: the flag is cleared at every exit, before a WRMSR could disable PV EOI.
    // Unreachable when the platform calls on_exit as documented; drop the flag quietly.
    m_pending[i] = 0;
    if (apic) apic->set_notify_every_accept(false);
    return;
  }
  uint8_t byte = 0;
  bool ok = get_byte(s, byte);
  const bool still_set = ok && (byte & kPending);
  // Modern writes only when the bit is still set; orig cleared the byte at every disarm.
  if (ok && (still_set || m_cfg.abi == AbiProfile::Orig)) ok = put_byte(s, 0);
  if (ok) {
    m_pending[i] = 0;  // cleared "in any case" once the guest memory was dealt with
    apic->set_notify_every_accept(false);
    if (still_set) {
      m_tracer.pvsim_pv_eoi(v.now(), i, "disarm",
                            fmt::format("vector {} not EOI'd by the guest", s.armed_vector));
      return;
    }
  }
  // The guest cleared the bit (or the area could not be accessed, which KVM's code treats
  // the same way while leaving the flag set): EOI through the register path (apic_set_eoi,
  // traced kvm_eoi), then kvm_pv_eoi.
  const int vector = apic->eoi();
  ++s.eois;
  m_tracer.kvm_pv_eoi(v.now(), i, apic->vcpu_id(), vector);
}

void PvEoi::reset(unsigned vcpu) {
  VcpuPvEoi& s = m_st.at(vcpu);
  s.msr = 0;
  s.armed_vector = -1;
  m_pending[vcpu] = 0;  // kvm_lapic_reset: apic_attention = 0
  if (m_apic[vcpu]) m_apic[vcpu]->set_notify_every_accept(false);
}

}  // namespace pvsim
