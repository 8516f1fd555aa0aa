// core/cpu/snapshot.cpp — saving and restoring a vCPU (Vcpu::save / Vcpu::restore;
// core/README.md "Snapshots").
//
// The state is CoreState, copied whole. Guest RAM is not part of it: GuestMemory's undo log
// restores RAM (rollback) and moves the code generation of every restored code page
// forward, so decoded blocks made from contents that are gone never match again; blocks of
// pages nobody wrote stay valid, as their bytes are the same.
#include "core/cpu/core.h"

namespace pvsim::cpu {

namespace {
constexpr uint64_t kVpnMask = (1ull << 52) - 1;  // Core::tlb_key: the page number below the salt
}

CoreSnapshot Core::save() const {
  CoreSnapshot s;
  s.state = static_cast<const CoreState&>(*this);
  s.tlb_flush_pending = unmap_epoch_seen != mem.host_unmap_epoch();
  if (s.tlb_flush_pending) return s;
  // Valid entries carry the current salt (Core::tlb_key); the arrays are lazily backed, so
  // this reads the host's zero page where the guest never had a translation.
  for (uint8_t t : {uint8_t{0}, uint8_t{2}}) {
    const TlbEntry* tab = tlb[t];
    for (unsigned k = 0; k < kTlbSize; ++k) {
      const TlbEntry& e = tab[k];
      if (e.tag == 0 || (e.tag & ~kVpnMask) != tlb_salt) continue;
      s.tlb.push_back({e.tag & kVpnMask, tlb_gpa(e), t, tlb_glob[t * kTlbSize + k] != 0});
    }
  }
  return s;
}

void Core::restore(const CoreSnapshot& s) {
  static_cast<CoreState&>(*this) = s.state;
  // Scratch of the run() that was going on, if any: nothing may point into a block now.
  blk = nullptr;
  xfail = false;
  abandoned = false;
  // Every translation made since the save goes (the page tables they came from may have
  // been rolled back), write entries included; those the TLB held at the save come back,
  // under the new salt.
  tlb_flush_all();
  if (!s.tlb_flush_pending) {
    for (const CoreSnapshot::Translation& t : s.tlb) {
      const unsigned slot = static_cast<unsigned>(t.vpn & kTlbMask);
      TlbEntry& e = tlb[t.table][slot];
      e.tag = t.vpn | tlb_salt;
      e.host = mem.base() + t.gpa_page;
      tlb_glob[t.table * kTlbSize + slot] = t.global;
      tlb_has_global = tlb_has_global || t.global;
    }
  }
  // The TLB now reflects the memory as it is (after GuestMemory::rollback): nothing for the
  // next run() to catch up on. A flush that was pending at the save has been done above.
  code_epoch_seen = mem.code_mark_epoch();
  unmap_epoch_seen = mem.host_unmap_epoch();
  tlb_epoch_seen = mem.tlb_epoch();
}

}  // namespace pvsim::cpu
