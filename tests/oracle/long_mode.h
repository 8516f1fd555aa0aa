// tests/oracle/long_mode.h — puts a bare Vcpu + GuestMemory into 64-bit long mode.
//
// Mirrors scenarios/guest/boot.md (§2 "Memory at entry", §3 "Every vCPU at entry") with the Vcpu's raw
// setters, so the oracle and robustness suites do not depend on the platform loader:
// GDT at 0x1000 (64-bit code 0x08, data 0x10, busy TSS 0x18), PML4 at 0x10000, PDPT at
// 0x11000, 2048 PDEs mapping GPA 0–4 GiB with 2 MiB pages, CR0=0x80010033 CR4=0x20
// EFER=0x500. Used by tests/oracle and tests/robustness (header-only on purpose).
#pragma once
#include <cstdint>

#include "core/env.h"
#include "core/guest_memory.h"
#include "core/vcpu.h"
#include "tests/cpu_envs.h"

namespace pvsim::oracle {

using test::NullEnv;

constexpr uint64_t kGdtBase = 0x1000;
constexpr uint64_t kTssBase = 0x1080;
constexpr uint64_t kPml4 = 0x10000;
constexpr uint64_t kPdpt = 0x11000;
constexpr uint64_t kPd = 0x12000;

// Writes the GDT, TSS and identity page tables (scenarios/guest/boot.md §2) into RAM.
// Requires RAM to reach 0x16000.
inline bool write_boot_tables(GuestMemory& mem) {
  const uint64_t gdt[5] = {
      0,
      0x00af9b000000ffffull,  // 0x08: 64-bit code, DPL 0, L=1
      0x00cf93000000ffffull,  // 0x10: data, 4 GiB, D/B=1
      // 0x18: 64-bit TSS descriptor (SDM Vol. 3A §8.2.3, Figure 8-4), busy (type 0xb),
      // base 0x1080, limit 0x67; the second quadword holds base[63:32] = 0.
      0x00008b0000000067ull | ((kTssBase & 0xffffff) << 16),
      0,
  };
  bool ok = mem.write(Gpa(kGdtBase), gdt, sizeof gdt);
  const uint64_t pml4e = kPdpt | 0x3;
  ok = ok && mem.write_obj(Gpa(kPml4), pml4e);
  for (uint64_t i = 0; i < 4; ++i) {
    const uint64_t pdpte = (kPd + i * 0x1000) | 0x3;
    ok = ok && mem.write_obj(Gpa(kPdpt + i * 8), pdpte);
  }
  for (uint64_t j = 0; j < 2048; ++j) {
    // Present, writable, PS (2 MiB); PWT|PCD above 3 GiB (LAPIC/IOAPIC range).
    const uint64_t pde = (j << 21) | (j >= 1536 ? 0x9b : 0x83);
    ok = ok && mem.write_obj(Gpa(kPd + j * 8), pde);
  }
  return ok;
}

// Segment attributes in the VMX access-rights layout used by SegmentCache::attrs
// (SDM Vol. 3C §24.4.1): type[3:0] S[4] DPL[6:5] P[7] L[13] D/B[14] G[15].
constexpr uint16_t kCode64Attrs = 0xb | 0x10 | 0x80 | 0x2000 | 0x8000;  // 0xa09b
constexpr uint16_t kData32Attrs = 0x3 | 0x10 | 0x80 | 0x4000 | 0x8000;  // 0xc093
constexpr uint16_t kTss64BusyAttrs = 0xb | 0x80;                        // 0x008b

// Sets the control/segment/descriptor-table state of scenarios/guest/boot.md §3 on `v`;
// GPRs, RIP and RFLAGS are left to the caller.
inline void enter_long_mode(Vcpu& v) {
  v.set_efer(0x500);  // LME | LMA
  v.set_cr(4, 0x20);  // PAE
  v.set_cr(3, kPml4);
  v.set_cr(0, 0x80010033);  // PE MP ET NE WP PG
  v.set_cr(2, 0);
  v.set_cr(8, 0);
  v.set_seg(SegReg::CS, SegmentCache{0x08, 0, 0xffffffff, kCode64Attrs});
  for (SegReg s : {SegReg::SS, SegReg::DS, SegReg::ES, SegReg::FS, SegReg::GS})
    v.set_seg(s, SegmentCache{0x10, 0, 0xffffffff, kData32Attrs});
  v.set_tr(SegmentCache{0x18, kTssBase, 0x67, kTss64BusyAttrs});
  v.set_gdtr(DescriptorTable{kGdtBase, 0x27});
  v.set_idtr(DescriptorTable{0, 0});
  v.set_rflags(0x2);
}


}  // namespace pvsim::oracle
