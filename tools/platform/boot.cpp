#include "tools/platform/boot.h"

#include <fmt/format.h>

#include <stdexcept>

#include "core/guest_memory.h"
#include "core/vcpu.h"
#include "tools/platform/multiboot.h"

namespace pvsim {

void build_boot_memory(GuestMemory& mem) {
  using namespace boot;
  // 64-bit TSS descriptor (SDM Vol. 3A §8.2.3, Figure 8-4): 16 bytes, type 0xB = busy
  // 64-bit TSS, P=1, limit 0x67, base 0x1080.
  const uint64_t tss_lo = (kTssLimit & 0xffff) | ((kTssBase & 0xffffff) << 16) | (0x8bull << 40) |
                          (uint64_t{(kTssLimit >> 16) & 0xf} << 48) | (((kTssBase >> 24) & 0xff) << 56);
  const uint64_t tss_hi = kTssBase >> 32;
  const uint64_t gdt[5] = {0, kCodeDesc, kDataDesc, tss_lo, tss_hi};
  mem.write(Gpa(kGdtBase), gdt, sizeof gdt);
  const uint8_t tss[kTssLimit + 1] = {};
  mem.write(Gpa(kTssBase), tss, sizeof tss);

  // Identity map of 0-4 GiB with 2 MiB pages (SDM Vol. 3A §4.5): PML4[0] → PDPT,
  // PDPT[0..3] → four page directories. Entries 3-4 GiB get PWT|PCD: that gigabyte holds
  // the LAPIC/IOAPIC windows, which must be uncached.
  const uint64_t pml4e = kPdpt | 0x3;
  mem.write(Gpa(kPml4), &pml4e, sizeof pml4e);
  for (uint64_t i = 0; i < 4; ++i) {
    const uint64_t e = (kPd + i * 0x1000) | 0x3;
    mem.write(Gpa(kPdpt + i * 8), &e, sizeof e);
  }
  uint64_t pdes[2048];
  for (uint64_t j = 0; j < 2048; ++j) pdes[j] = (j << 21) | (j < 1536 ? 0x83 : 0x9b);
  mem.write(Gpa(kPd), pdes, sizeof pdes);
}

namespace {
void boot_msr(Vcpu& v, uint32_t index, uint64_t value) {
  if (v.msrs().write(v, index, value) != MsrStatus::Ok)
    throw std::logic_error(fmt::format("boot: vCPU {} refused MSR 0x{:x} = 0x{:x}", v.index(), index, value));
}
}  // namespace

void init_vcpu_boot_state(Vcpu& v, unsigned i, unsigned n, uint64_t ram_bytes, uint64_t entry) {
  using namespace boot;
  for (unsigned r = 0; r < 16; ++r) v.set_gpr(r, 0);
  v.set_gpr(4, kStackTop - uint64_t{i} * kStackSize);  // RSP (vCPUs >= 32 get a value below 0x20000: the guest must set its own)
  v.set_gpr(7, i);          // RDI
  v.set_gpr(6, n);          // RSI
  v.set_gpr(2, ram_bytes);  // RDX
  v.set_rip(entry);
  v.set_rflags(0x2);

  v.set_efer(kEfer);
  v.set_cr(4, kCr4);
  v.set_cr(3, kPml4);
  v.set_cr(2, 0);
  v.set_cr(8, 0);
  v.set_cr(0, kCr0);

  // Hidden descriptor caches in VMX access-rights layout (SDM Vol. 3C §24.4.1), matching
  // the GDT entries: code 0xa09b (G L P S type 0xb), data 0xc093 (G D/B P S type 3).
  const SegmentCache code{kCodeSel, 0, 0xffffffff, 0xa09b};
  const SegmentCache data{kDataSel, 0, 0xffffffff, 0xc093};
  v.set_seg(SegReg::CS, code);
  for (SegReg s : {SegReg::SS, SegReg::DS, SegReg::ES, SegReg::FS, SegReg::GS}) v.set_seg(s, data);
  v.set_tr(SegmentCache{kTssSel, kTssBase, kTssLimit, 0x008b});  // busy 64-bit TSS, P
  v.set_ldtr(SegmentCache{});
  v.set_gdtr(DescriptorTable{kGdtBase, kGdtLimit});
  v.set_idtr(DescriptorTable{0, 0});  // first exception is a triple fault, by design

  boot_msr(v, kMsrApicBase, i == 0 ? kApicBaseBsp : kApicBaseAp);
  boot_msr(v, kMsrPat, kPat);
  boot_msr(v, kMsrMiscEnable, 1);
  boot_msr(v, kMsrFsBase, 0);
  boot_msr(v, kMsrGsBase, 0);
  boot_msr(v, kMsrKernelGsBase, 0);
  // KVM PV MSRs: only POLL_CONTROL exists so far (pvmsr/poll_control.cpp registers it with
  // its reset value 1); the others arrive with their features and start at 0.
}

void init_vcpu_multiboot_state(Vcpu& v, unsigned i, uint64_t entry) {
  using namespace multiboot;
  if (i != 0) {
    boot_msr(v, boot::kMsrApicBase, boot::kApicBaseAp);
    return;
  }
  // Multiboot 0.6.96, "Machine state": EAX the magic, EBX the MBI's physical address, CS a
  // 32-bit read/execute code segment and DS/ES/FS/GS/SS read/write data segments, all with
  // offset 0 and limit 0xffffffff, A20 on, CR0.PG = 0 and CR0.PE = 1, EFLAGS.VM = 0 and
  // IF = 0. The specification leaves ESP, GDTR and IDTR to the kernel; pvsim gives QEMU's
  // values (a stack below the MBI, the firmware GDT, the real-mode IVT).
  for (unsigned r = 0; r < 16; ++r) v.set_gpr(r, 0);
  v.set_gpr(0, kBootMagic);   // EAX
  v.set_gpr(3, kMbiAddr);     // EBX
  v.set_gpr(4, kStackPointer);  // ESP
  v.set_rip(entry);
  v.set_rflags(0x2);

  v.set_efer(0);
  v.set_cr(4, 0);
  v.set_cr(3, 0);
  v.set_cr(2, 0);
  v.set_cr(8, 0);
  v.set_cr(0, kCr0);

  // Hidden descriptor caches in VMX access-rights layout (SDM Vol. 3C §24.4.1), matching the
  // firmware GDT's entries: code 0xc09b (G D/B P S type 0xb), data 0xc093 (G D/B P S type 3).
  v.set_seg(SegReg::CS, SegmentCache{kCodeSel, 0, 0xffffffff, kCodeAttrs});
  for (SegReg s : {SegReg::SS, SegReg::DS, SegReg::ES, SegReg::FS, SegReg::GS})
    v.set_seg(s, SegmentCache{kDataSel, 0, 0xffffffff, kDataAttrs});
  // TR and LDTR as after reset (SDM Vol. 3A Table 9-1): nothing loaded, the caches valid
  // (busy 32-bit TSS type, LDT type) with base 0 and limit 0xffff.
  v.set_tr(SegmentCache{0, 0, 0xffff, 0x8b});
  v.set_ldtr(SegmentCache{0, 0, 0xffff, 0x82});
  v.set_gdtr(DescriptorTable{kGdtBase, kGdtLimit});
  v.set_idtr(DescriptorTable{0, 0x3ff});

  boot_msr(v, boot::kMsrApicBase, boot::kApicBaseBsp);
  boot_msr(v, boot::kMsrPat, boot::kPat);
  boot_msr(v, boot::kMsrMiscEnable, 1);
  boot_msr(v, boot::kMsrFsBase, 0);
  boot_msr(v, boot::kMsrGsBase, 0);
  boot_msr(v, boot::kMsrKernelGsBase, 0);
}

}  // namespace pvsim
