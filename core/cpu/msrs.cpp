// core/cpu/msrs.cpp — architectural MSRs the core owns, registered in the vCPU's
// MsrRegistry (the platform adds LAPIC and KVM PV MSRs). Reserved-bit rules follow the SDM
// Vol. 4 MSR tables and KVM's kvm_set_msr_common where the SDM leaves room.
#include "core/cpu/core.h"

namespace pvsim::cpu {

namespace {
using R = std::function<MsrStatus(Vcpu&, uint64_t&)>;
using W = std::function<MsrStatus(Vcpu&, uint64_t)>;

// Plain storage in a Core field with a reserved-bit mask (#GP when any is set).
MsrHandler storage(uint32_t index, const char* name, uint64_t Core::*field, uint64_t reserved) {
  MsrHandler h;
  h.index = index;
  h.name = name;
  h.read = [field](Vcpu& v, uint64_t& out) {
    out = Core::of(v).*field;
    return MsrStatus::Ok;
  };
  h.write = [field, reserved](Vcpu& v, uint64_t val) {
    if (val & reserved) return MsrStatus::Gp;
    Core::of(v).*field = val;
    return MsrStatus::Ok;
  };
  return h;
}

// Storage that must hold a canonical address (FS/GS bases, LSTAR, ...).
MsrHandler canonical(uint32_t index, const char* name, uint64_t Core::*field) {
  MsrHandler h = storage(index, name, field, 0);
  h.write = [field](Vcpu& v, uint64_t val) {
    if (!is_canonical(val)) return MsrStatus::Gp;
    Core::of(v).*field = val;
    return MsrStatus::Ok;
  };
  return h;
}

// Segment bases live in the segment caches.
MsrHandler seg_base(uint32_t index, const char* name, unsigned s) {
  MsrHandler h;
  h.index = index;
  h.name = name;
  h.read = [s](Vcpu& v, uint64_t& out) {
    out = Core::of(v).seg[s].base;
    return MsrStatus::Ok;
  };
  h.write = [s](Vcpu& v, uint64_t val) {
    if (!is_canonical(val)) return MsrStatus::Gp;
    Core::of(v).seg[s].base = val;
    return MsrStatus::Ok;
  };
  return h;
}

// Each PAT entry must be a valid memory type: 0 UC, 1 WC, 4 WT, 5 WP, 6 WB, 7 UC-
// (SDM Vol. 3A §11.12.2); 2, 3 and 8..255 are reserved.
bool pat_valid(uint64_t v) {
  for (unsigned k = 0; k < 8; ++k) {
    const unsigned t = (v >> (8 * k)) & 0xff;
    if (t == 2 || t == 3 || t > 7) return false;
  }
  return true;
}
}  // namespace

void Core::register_msrs() {
  MsrRegistry& r = vcpu.msrs();
  {
    // IA32_TSC: a write sets the TSC by adjusting an offset (KVM: kvm_synchronize_tsc /
    // adjust_tsc_offset_guest), reads see tsc_start + cycles + offset.
    MsrHandler h;
    h.index = 0x10;
    h.name = "IA32_TIME_STAMP_COUNTER";
    h.read = [](Vcpu& v, uint64_t& out) {
      out = Core::of(v).guest_tsc();
      return MsrStatus::Ok;
    };
    h.write = [](Vcpu& v, uint64_t val) {
      Core& c = Core::of(v);
      c.tsc_offset += val - c.guest_tsc();
      return MsrStatus::Ok;
    };
    r.add(std::move(h));
  }
  // IA32_APIC_BASE: BSP (8), x2APIC enable (10), global enable (11), base (12..MAXPHYADDR-1).
  r.add(storage(0x1b, "IA32_APIC_BASE", &Core::apic_base,
                ~((1ull << 8) | (1ull << 10) | (1ull << 11) | kPhysAddrMask)));
  r.add(storage(0x1a0, "IA32_MISC_ENABLE", &Core::misc_enable, 0));
  {
    MsrHandler h = storage(0x277, "IA32_PAT", &Core::pat, 0);
    h.write = [](Vcpu& v, uint64_t val) {
      if (!pat_valid(val)) return MsrStatus::Gp;
      Core::of(v).pat = val;
      return MsrStatus::Ok;
    };
    r.add(std::move(h));
  }
  // Machine check (SDM Vol. 3B §16.3.1; KVM's get_msr_mce / set_msr_mce): no banks and no
  // MCG_CTL_P, so IA32_MCG_CAP reads 0 and guest writes to it #GP, IA32_MCG_STATUS is
  // storage, and IA32_MCG_CTL and every IA32_MCi_* MSR (none registered) #GP.
  {
    MsrHandler h;
    h.index = 0x179;
    h.name = "IA32_MCG_CAP";
    h.read = [](Vcpu&, uint64_t& out) {
      out = 0;
      return MsrStatus::Ok;
    };
    h.write = [](Vcpu&, uint64_t) { return MsrStatus::Gp; };
    r.add(std::move(h));
  }
  r.add(storage(0x17a, "IA32_MCG_STATUS", &Core::mcg_status, 0));
  r.add(storage(0x174, "IA32_SYSENTER_CS", &Core::sysenter_cs, ~0xffffull));
  r.add(canonical(0x175, "IA32_SYSENTER_ESP", &Core::sysenter_esp));
  r.add(canonical(0x176, "IA32_SYSENTER_EIP", &Core::sysenter_eip));
  {
    // EFER: only SCE, LME, NXE are writable; LMA is read-only (it follows CR0.PG and LME).
    // Changing LME while paging is on is #GP (SDM Vol. 3A §9.8.5; KVM set_efer).
    MsrHandler h;
    h.index = 0xC0000080;
    h.name = "IA32_EFER";
    h.read = [](Vcpu& v, uint64_t& out) {
      out = Core::of(v).efer;
      return MsrStatus::Ok;
    };
    h.write = [](Vcpu& v, uint64_t val) {
      Core& c = Core::of(v);
      const uint64_t writable = efer::SCE | efer::LME | efer::NXE;
      if (val & ~(writable | efer::LMA)) return MsrStatus::Gp;
      if ((c.cr0 & cr0::PG) && ((val ^ c.efer) & efer::LME)) return MsrStatus::Gp;
      const uint64_t nv = (val & writable) | (c.efer & efer::LMA);
      if ((nv ^ c.efer) & efer::NXE) c.tlb_flush_all();
      c.efer = nv;
      return MsrStatus::Ok;
    };
    r.add(std::move(h));
  }
  r.add(storage(0xC0000081, "IA32_STAR", &Core::star, 0));
  r.add(canonical(0xC0000082, "IA32_LSTAR", &Core::lstar));
  r.add(canonical(0xC0000083, "IA32_CSTAR", &Core::cstar));
  r.add(storage(0xC0000084, "IA32_FMASK", &Core::sfmask, ~0xffffffffull));
  r.add(seg_base(0xC0000100, "IA32_FS_BASE", 4));
  r.add(seg_base(0xC0000101, "IA32_GS_BASE", 5));
  r.add(canonical(0xC0000102, "IA32_KERNEL_GS_BASE", &Core::kernel_gs_base));
  r.add(storage(0xC0000103, "IA32_TSC_AUX", &Core::tsc_aux, ~0xffffffffull));
  {
    MsrHandler h;
    h.index = 0xFE;
    h.name = "IA32_MTRRCAP";
    h.read = [](Vcpu&, uint64_t& out) {
      out = 0;  // no variable or fixed MTRRs, no WC
      return MsrStatus::Ok;
    };
    r.add(std::move(h));  // read-only: writes #GP
  }
  // MTRRdefType: type (7:0), FE (10), E (11); the rest is reserved.
  r.add(storage(0x2FF, "IA32_MTRR_DEF_TYPE", &Core::mtrr_def_type, ~0xcffull));
}

}  // namespace pvsim::cpu
