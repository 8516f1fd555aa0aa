// pvmsr/pv_eoi.h — the hypervisor side of PV EOI: MSR_KVM_PV_EOI_EN (0x4b564d04) and the
// arm / disarm protocol around one byte of guest memory (pvmsr/README.md §7).
//
// Why: an EOI register write is a VM exit. With PV EOI the host, when it knows the
// interrupt it just injected is the only thing the guest's next EOI can concern, sets bit 0
// of a guest byte; the guest's EOI then is one `btr` on that byte and no exit. The host
// finds out at the guest's next VM exit, whatever its reason, and retires the vector then.
//
// Index:
//   PvEoiConfig .......... what the scenario decides (profile, enforcement, CPUID)
//   PvEoi
//     attach ............. registers the MSR handler, binds the vCPU's LocalApic
//     after_injection .... arming (apic_sync_pv_eoi_to_guest)
//     on_exit ............ disarming, EOI on the guest's behalf (apic_sync_pv_eoi_from_guest)
//     reset .............. INIT/RESET (kvm_lapic_reset)
//     queries ............ armed, msr, counters (tests, reports)
//
// PV EOI arrived in Linux 3.6; the orig profile is KVM as it was from then until the two
// 5.16 changes below (the bad-value store and the unconditional clear), the modern one is 6.x.
//
// What was checked against KVM (arch/x86/kvm):
//   lapic.c  kvm_lapic_set_pv_eoi (kvm_lapic_enable_pv_eoi before commit 77c3323f4875),
//            pv_eoi_set_pending, pv_eoi_test_and_clr_pending (commit 51b1209c6125, Linux
//            5.16; before it pv_eoi_get_pending + pv_eoi_clr_pending), apic_sync_pv_eoi_to_guest,
//            apic_sync_pv_eoi_from_guest, kvm_lapic_sync_to_vapic, kvm_lapic_sync_from_vapic,
//            apic_set_eoi, apic_set_isr / apic_clear_isr (highest_isr_cache),
//            apic_clear_irr (irr_pending), kvm_ioapic_handles_vector, kvm_lapic_reset.
//   x86.c    the MSR_KVM_PV_EOI_EN cases of kvm_set_msr_common / kvm_get_msr_common
//            (guest_pv_has(KVM_FEATURE_PV_EOI)), vcpu_enter_guest: kvm_lapic_sync_to_vapic
//            runs inside the KVM_REQ_EVENT block after event injection, only while
//            kvm_lapic_enabled(); kvm_lapic_sync_from_vapic runs right after every exit
//            (before the exit handler) and on the cancel_injection path.
//   virt/kvm/kvm_main.c __kvm_gfn_to_hva_cache_init: a failed set-up leaves the cache
//            pointing at an error address, so every later access through it fails.
//
// The MSR (WRMSR, in KVM's order):
//   1. under KVM_CAP_ENFORCE_PV_FEATURE_CPUID with feature 6 hidden: #GP (RDMSR too);
//   2. GPA = value & ~1; bit 1 set (GPA not 4-byte aligned): #GP, even when disabling;
//   3. enabling: the 1-byte area must be in RAM, else #GP. Modern: the old value is kept
//      (commit afd67ee3cbbd, Vitaly Kuznetsov, Linux 5.16). Orig: the bad value is stored
//      although #GP is raised (the value was stored before the cache set-up). The flag
//      machine.kvm.bugs.pv_eoi_keeps_bad_value decides (README §2.5; default on under orig,
//      off under modern; either profile may set it). Either way the
//      area is unusable afterwards (the cache was re-aimed at the bad GPA), so PV EOI never
//      arms until a successful enable;
//   4. store the value; disabling does not touch the area. RDMSR returns the stored value.
//
// Arming (after_injection), all of: the MSR's enable bit; the LAPIC hardware- and
// software-enabled (kvm_lapic_enabled); no IRR bit set (irr_pending); a valid
// highest_isr_cache (an interrupt was acked and nothing EOI'd since); and that vector not
// one the I/O APIC must see an EOI for. Then byte 0 = 1 (KVM_PV_EOI_ENABLED) and the host
// flag (KVM_APIC_PV_EOI_PENDING) is set; traced pvsim_pv_eoi "arm". A failed write arms
// nothing. pvsim has no I/O APIC: KVM's ioapic_handled_vectors holds the vectors of
// level-triggered I/O APIC routes (and the RTC's), whose EOI must reach the I/O APIC to
// clear Remote IRR; pvsim takes a level-triggered vector (TMR bit set) as such a vector,
// which is conservative (a level-triggered IPI would arm on KVM). While armed, the LAPIC
// notifies every interrupt it accepts (LocalApic::set_notify_every_accept): KVM kicks the
// vCPU for each one, and that exit is where an EOI done in memory is noticed; without it an
// interrupt of the retired vector's class would wait for some unrelated exit.
//
// Disarming (on_exit, only while the flag is set): read byte 0.
//   bit 0 still set: the guest has not EOI'd: write 0, clear the flag, nothing else
//                    (traced pvsim_pv_eoi "disarm"); the guest will write the EOI register.
//   bit 0 clear:     the guest EOI'd in memory: clear the flag and EOI on its behalf through
//                    LocalApic::eoi(), the register path (kvm_eoi), then kvm_pv_eoi.
//   Modern writes the 0 only when bit 0 was set (commit 51b1209c6125); orig wrote byte 0 = 0
//   on every disarm. A failed access (possible only through an unusable area) leaves the
//   flag set and EOIs on the guest's behalf, in both profiles, as KVM's code paths do.
// A guest that clears the bit AND writes the EOI register gets two EOIs (the second
// retires the next vector in service): KVM's behaviour, a guest bug.
//
// INIT/RESET (kvm_lapic_reset): the MSR value becomes 0 and the host flag is dropped; the
// guest byte is left as it is.
#pragma once
#include <cstdint>
#include <optional>
#include <vector>

#include "core/guest_memory.h"
#include "core/msr_registry.h"
#include "core/trace.h"
#include "core/types.h"
#include "core/vcpu.h"
#include "pvmsr/kvm_bugs.h"
#include "pvmsr/pvclock.h"

namespace pvsim {

class LocalApic;

struct PvEoiConfig {
  AbiProfile abi = AbiProfile::Modern;  // pvmsr/README.md §2.1
  bool enforce_pv_cpuid = false;        // KVM_CAP_ENFORCE_PV_FEATURE_CPUID (§2.2)
  uint32_t cpuid_features = ~0u;        // leaf 0x40000001 EAX as the guest sees it
  // Historic bugs (pvmsr/README.md §2.5); empty: the profile's defaults (kvm_bug_defaults).
  std::optional<KvmBugs> bugs;
};

// What PvEoi changes after construction, kept apart so that a snapshot copies all of it
// (pvmsr/README.md §1.3). The bound vCPU and LocalApic are links, not state: they stay in
// PvEoi.
struct PvEoiState {
  struct VcpuPvEoi {
    uint64_t msr = 0;
    Gpa area{};            // GPA of the byte (MSR value & ~1) the cache was last set up for
    bool area_ok = false;  // that set-up succeeded (the gfn_to_hva_cache is usable)
    int armed_vector = -1; // highest_isr_cache when armed (trace detail only)
    uint64_t arms = 0, eois = 0;
  };
  std::vector<VcpuPvEoi> m_st;
  std::vector<uint8_t> m_pending;  // KVM_APIC_PV_EOI_PENDING per vCPU (read at every exit)
};

class PvEoi : private PvEoiState {
 public:
  static constexpr uint32_t kMsr = 0x4b564d04;  // MSR_KVM_PV_EOI_EN
  static constexpr unsigned kFeatureBit = 6;    // KVM_FEATURE_PV_EOI
  static constexpr uint64_t kEnable = 1;        // KVM_MSR_ENABLED (MSR bit 0)
  static constexpr uint8_t kPending = 1;        // KVM_PV_EOI_ENABLED (bit 0 of the guest byte)

  PvEoi(const PvEoiConfig& cfg, unsigned vcpus, GuestMemory& mem, Tracer& tracer);
  PvEoi(const PvEoi&) = delete;
  PvEoi& operator=(const PvEoi&) = delete;

  // Registers the MSR handler in the vCPU's registry and binds the vCPU's LocalApic (the
  // platform owns both; `this` must outlive their use).
  void attach(Vcpu& v, LocalApic& apic);

  // apic_sync_pv_eoi_to_guest: arms PV EOI when every condition above holds. The platform
  // calls it right after it injected an interrupt into `v` (KVM: at the entry that evaluated
  // events, after the injection); calling it at any other entry is harmless (KVM evaluates
  // it at every KVM_REQ_EVENT entry). KVM always arrives here disarmed (every exit
  // disarmed); should the flag still be set, the disarm runs first.
  void after_injection(Vcpu& v);
  // apic_sync_pv_eoi_from_guest: at EVERY VM exit of the vCPU, before the exit is handled,
  // and before the platform injects another interrupt. One load when not armed.
  void on_exit(Vcpu& v) {
    if (m_pending[v.index()]) [[unlikely]] sync_from_guest(v);
  }

  bool armed(unsigned vcpu) const { return m_pending.at(vcpu) != 0; }
  // kvm_lapic_reset: MSR value 0, host flag cleared (the guest byte is not touched).
  void reset(unsigned vcpu);
  uint64_t msr(unsigned vcpu) const { return m_st.at(vcpu).msr; }
  // Times PV EOI was armed, and EOIs done on the guest's behalf (kvm_pv_eoi), per vCPU.
  uint64_t arm_count(unsigned vcpu) const { return m_st.at(vcpu).arms; }
  uint64_t eoi_on_behalf_count(unsigned vcpu) const { return m_st.at(vcpu).eois; }
  const KvmBugs& bugs() const { return m_bugs; }

  // Snapshots (pvmsr/README.md §1.3): every vCPU's MSR, area cache, counters and host flag.
  // The LocalApic's "notify every accept" flag, which arming and disarming set, is the
  // LocalApic's own state and is restored with it.
  struct Snapshot {
    PvEoiState state;
  };
  Snapshot save() const { return {static_cast<const PvEoiState&>(*this)}; }
  void restore(const Snapshot& s) { static_cast<PvEoiState&>(*this) = s.state; }

 private:
  bool feature_visible() const;
  MsrStatus write_msr(unsigned vcpu, uint64_t value);
  void sync_from_guest(Vcpu& v);
  // pv_eoi_put_user / pv_eoi_get_user through the cache: false when it is unusable.
  bool put_byte(const VcpuPvEoi& s, uint8_t value);
  bool get_byte(const VcpuPvEoi& s, uint8_t& value) const;

  PvEoiConfig m_cfg;
  KvmBugs m_bugs;  // m_cfg.bugs, or the profile's defaults
  GuestMemory& m_mem;
  Tracer& m_tracer;
  std::vector<LocalApic*> m_apic;  // per vCPU, bound by attach()
};

}  // namespace pvsim
