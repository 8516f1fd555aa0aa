// tests/core/legacy_machine.h — a test machine for code outside 64-bit mode (real mode,
// 16/32-bit protected mode, compatibility mode): 16 MiB of RAM, paging off, the vCPU put in
// the INIT state (Vcpu::reset_to_init, SDM Vol. 3A Table 9-1) and started by a start-up IPI
// with vector 0x08, so it begins in real mode at CS 0x0800 (base 0x8000), IP 0.
//
// Layout (GPA = linear while paging is off):
//   0x00000 real-mode IVT (the INIT state's IDTR is {0, 0xffff})
//   0x005f0 GDTR image {limit 0x3f, base 0x600} for LGDT [0x5f0]
//   0x00600 GDT: 0x08 code16, 0x10 data16 (64 KiB), 0x18 code32 flat, 0x20 data32 flat
//           4 GiB, 0x28 code64, 0x30 TSS (for 64-bit delivery)
//   0x01000 TSS, 0x03000 64-bit IDT (install_idt64), 0x04000 + v * 16 its handlers (HLT)
//   0x08000 code (CS 0x0800 in real mode), 0x20000 PML4, 0x21000 PDPT, 0x22000 PD
//           (identity map of the first 1 GiB with 2 MiB pages, for IA-32e mode)
//
// Outside 64-bit mode Vcpu::rip() is the LINEAR address CS.base + EIP (core/README.md);
// ip() gives the offset.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <sstream>
#include <vector>

#include "machine.h"  // TestEnv

namespace pvsim::test {

class LegacyMachine {
 public:
  static constexpr uint64_t kRam = 16ull << 20;
  static constexpr uint64_t kGdtr = 0x5f0, kGdt = 0x600, kTss = 0x1000;
  static constexpr uint64_t kIdt64 = 0x3000, kHandlers = 0x4000;
  static constexpr uint64_t kCode = 0x8000;
  static constexpr uint64_t kPml4 = 0x20000, kPdpt = 0x21000, kPd = 0x22000;
  enum : uint16_t {
    kCode16 = 0x08,
    kData16 = 0x10,
    kCode32 = 0x18,
    kData32 = 0x20,
    kCode64 = 0x28,
    kTssSel = 0x30
  };
  // Descriptor attribute words as SegmentCache keeps them (type | S | DPL | P in 7:0,
  // AVL/L/DB/G in 15:12).
  static constexpr uint16_t kAttrCode16 = 0x009b, kAttrData16 = 0x0093;
  static constexpr uint16_t kAttrCode32 = 0xc09b, kAttrData32 = 0xc093, kAttrCode64 = 0xa09b;

  GuestMemory mem{kRam};
  Tracer tracer;
  std::ostringstream trace_text;
  TestEnv env;
  Vcpu vcpu;

  LegacyMachine() : vcpu(cfg(), mem, env, tracer) {
    tracer.set_text_output(&trace_text);
    put64(kGdt + 0x00, 0);
    put64(kGdt + 0x08, 0x00009b000000ffffull);  // code16, base 0, limit 0xffff
    put64(kGdt + 0x10, 0x000093000000ffffull);  // data16, base 0, limit 0xffff
    put64(kGdt + 0x18, 0x00cf9b000000ffffull);  // code32 flat (D=1, G=1)
    put64(kGdt + 0x20, 0x00cf93000000ffffull);  // data32 flat (B=1, G=1)
    put64(kGdt + 0x28, 0x00af9b000000ffffull);  // code64 (L=1)
    put64(kGdt + 0x30, 0x67 | ((kTss & 0xffffff) << 16) | (0x8bull << 40));  // TSS (busy)
    put64(kGdt + 0x38, 0);
    mem.write_obj(Gpa(kGdtr), static_cast<uint16_t>(0x3f));
    put32(kGdtr + 2, static_cast<uint32_t>(kGdt));
    put64(kPml4, kPdpt | 3);
    put64(kPdpt, kPd | 3);
    for (uint64_t j = 0; j < 512; ++j) put64(kPd + j * 8, (j << 21) | 0x83);
    vcpu.reset_to_init();
    vcpu.start_at_sipi(0x08);
  }

  void put(uint64_t addr, std::initializer_list<uint8_t> bytes) {
    std::vector<uint8_t> v(bytes);
    put(addr, v);
  }
  void put(uint64_t addr, const std::vector<uint8_t>& bytes) {
    mem.write(Gpa(addr), bytes.data(), bytes.size());
  }
  void put16(uint64_t addr, uint16_t v) { mem.write_obj(Gpa(addr), v); }
  void put32(uint64_t addr, uint32_t v) { mem.write_obj(Gpa(addr), v); }
  void put64(uint64_t addr, uint64_t v) { mem.write_obj(Gpa(addr), v); }
  template <typename T>
  T get(uint64_t addr) const {
    T v{};
    mem.read_obj(Gpa(addr), v);
    return v;
  }
  uint8_t get8(uint64_t a) const { return get<uint8_t>(a); }
  uint16_t get16(uint64_t a) const { return get<uint16_t>(a); }
  uint32_t get32(uint64_t a) const { return get<uint32_t>(a); }
  uint64_t get64(uint64_t a) const { return get<uint64_t>(a); }

  // Real-mode IVT entry `vec` = seg:off.
  void ivt(unsigned vec, uint16_t seg, uint16_t off) {
    put32(vec * 4u, static_cast<uint32_t>(seg) << 16 | off);
  }
  // Places `bytes` at `addr` and points the vCPU there (linear).
  void code_at(uint64_t addr, const std::vector<uint8_t>& bytes) {
    put(addr, bytes);
    vcpu.set_rip(addr);
  }
  void code(const std::vector<uint8_t>& bytes) { code_at(kCode, bytes); }

  // A segment register as real mode loads it: selector, base = selector * 16, the 64 KiB
  // limit and data (or code) attributes the INIT state has.
  void real_seg(SegReg s, uint16_t sel) {
    SegmentCache c = vcpu.seg(s);
    c.selector = sel;
    c.base = static_cast<uint64_t>(sel) << 4;
    vcpu.set_seg(s, c);
  }
  uint16_t sel(SegReg s) const { return vcpu.seg(s).selector; }
  uint64_t base(SegReg s) const { return vcpu.seg(s).base; }
  // The offset part of the current instruction pointer (IP / EIP).
  uint64_t ip() const { return vcpu.rip() - vcpu.seg(SegReg::CS).base; }
  uint16_t sp() const { return static_cast<uint16_t>(vcpu.gpr(4)); }
  uint16_t ax() const { return static_cast<uint16_t>(vcpu.gpr(0)); }

  // 32-bit protected mode with flat segments, paging off (what a Multiboot loader leaves).
  void enter_pm32(uint64_t eip, uint32_t esp = 0x7000) {
    vcpu.set_gdtr({kGdt, 0x3f});
    vcpu.set_cr(0, 0x11);  // PE | ET
    vcpu.set_seg(SegReg::CS, {kCode32, 0, 0xffffffff, kAttrCode32});
    for (SegReg s : {SegReg::DS, SegReg::ES, SegReg::SS, SegReg::FS, SegReg::GS})
      vcpu.set_seg(s, {kData32, 0, 0xffffffff, kAttrData32});
    vcpu.set_gpr(4, esp);
    vcpu.set_rip(eip);
  }
  // IA-32e mode with 4-level paging (identity map), CS = `cs_sel` (kCode64: 64-bit mode,
  // kCode32: compatibility mode), flat data, the TSS and a 64-bit IDT whose vector v
  // handler is a HLT at handler(v).
  void enter_ia32e(uint16_t cs_sel, uint64_t rip, uint64_t rsp = 0x7000) {
    vcpu.set_gdtr({kGdt, 0x3f});
    vcpu.set_cr(4, 0x20);  // PAE
    vcpu.set_cr(3, kPml4);
    vcpu.set_efer(0x500);  // LME | LMA
    vcpu.set_cr(0, 0x80000011);
    vcpu.set_seg(SegReg::CS, {cs_sel, 0, 0xffffffff,
                              cs_sel == kCode64 ? kAttrCode64 : kAttrCode32});
    for (SegReg s : {SegReg::DS, SegReg::ES, SegReg::SS, SegReg::FS, SegReg::GS})
      vcpu.set_seg(s, {kData32, 0, 0xffffffff, kAttrData32});
    vcpu.set_tr({kTssSel, kTss, 0x67, 0x8b});
    vcpu.set_gpr(4, rsp);
    vcpu.set_rip(rip);
    install_idt64();
  }
  static uint64_t handler(unsigned vec) { return kHandlers + vec * 16; }
  void install_idt64() {
    for (unsigned v = 0; v < 256; ++v) {
      const uint64_t h = handler(v);
      put(h, {0xf4});  // hlt
      put64(kIdt64 + v * 16, (h & 0xffff) | (static_cast<uint64_t>(kCode64) << 16) |
                                 (0x8eull << 40) | (((h >> 16) & 0xffff) << 48));
      put64(kIdt64 + v * 16 + 8, h >> 32);
    }
    vcpu.set_idtr({kIdt64, 0xfff});
  }

  Vcpu::RunResult step() { return vcpu.step(); }
  Vcpu::RunResult run(uint64_t n) { return vcpu.run(n, Cycles(~0ull)); }
  // Steps until rip() == linear (at most `limit` steps); true when it got there.
  bool run_to(uint64_t linear, unsigned limit = 200) {
    for (unsigned k = 0; k < limit && vcpu.rip() != linear; ++k) {
      const auto r = step();
      if (r.reason != StopReason::InsnLimit && r.reason != StopReason::None) break;
    }
    return vcpu.rip() == linear;
  }
  std::string trace() const { return trace_text.str(); }

 private:
  static VcpuConfig cfg() {
    VcpuConfig c;
    c.tsc_hz = 1'000'000'000;
    return c;
  }
};

}  // namespace pvsim::test
