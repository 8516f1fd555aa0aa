// tests/core/test_main_helpers.cpp — the Machine helper (see machine.h).
#include "machine.h"

namespace pvsim::test {

namespace {
VcpuConfig cfg0() {
  VcpuConfig c;
  c.tsc_hz = 1'000'000'000;  // 1 cycle = 1 ns keeps timestamps readable
  return c;
}
SegmentCache seg(uint16_t sel, uint16_t attrs, uint32_t limit = 0xffffffff) {
  SegmentCache s;
  s.selector = sel;
  s.base = 0;
  s.limit = limit;
  s.attrs = attrs;
  return s;
}
}  // namespace

Machine::Machine() : vcpu(cfg0(), mem, env, tracer) {
  tracer.set_text_output(&trace_text);
  // GDT
  put64(0x1000, 0);
  put64(0x1008, 0x00af9b000000ffffull);  // code64 DPL0
  put64(0x1010, 0x00cf93000000ffffull);  // data DPL0
  const uint64_t tss_lo = 0x67 | ((kTss & 0xffffff) << 16) | (0x8bull << 40) | ((kTss >> 24) << 56);
  put64(0x1018, tss_lo);
  put64(0x1020, 0);
  put64(0x1028, 0x00cff3000000ffffull);  // data DPL3
  put64(0x1030, 0x00affb000000ffffull);  // code64 DPL3
  // Page tables: identity map of the first 1 GiB with 2 MiB pages.
  put64(kPml4, kPdpt | 3);
  put64(kPdpt, kPd | 3);
  for (uint64_t j = 0; j < 512; ++j) put64(kPd + j * 8, (j << 21) | 0x83);
  vcpu.set_gdtr({0x1000, 0x37});
  vcpu.set_idtr({0, 0});
  vcpu.set_cr(0, 0x80010033);
  vcpu.set_cr(3, kPml4);
  vcpu.set_cr(4, 0x20);
  vcpu.set_efer(0x500);
  vcpu.set_seg(SegReg::CS, seg(0x08, 0xa09b));
  for (SegReg s : {SegReg::SS, SegReg::DS, SegReg::ES, SegReg::FS, SegReg::GS})
    vcpu.set_seg(s, seg(0x10, 0xc093));
  SegmentCache tr = seg(0x18, 0x8b, 0x67);
  tr.base = kTss;
  vcpu.set_tr(tr);
  vcpu.set_rflags(0x2);
  vcpu.set_gpr(4, kStack);
  vcpu.set_rip(kCode);
}

void Machine::put(uint64_t addr, std::initializer_list<uint8_t> bytes) {
  std::vector<uint8_t> v(bytes);
  put(addr, v);
}
void Machine::put(uint64_t addr, const std::vector<uint8_t>& bytes) {
  mem.write(Gpa(addr), bytes.data(), bytes.size());
}

void Machine::set_gate(unsigned vec, uint64_t h, unsigned dpl, unsigned ist, unsigned type,
                       uint16_t sel, bool present) {
  const uint64_t lo = (h & 0xffff) | (static_cast<uint64_t>(sel) << 16) |
                      (static_cast<uint64_t>(ist & 7) << 32) | (static_cast<uint64_t>(type) << 40) |
                      (static_cast<uint64_t>(dpl) << 45) | (present ? (1ull << 47) : 0) |
                      (((h >> 16) & 0xffff) << 48);
  put64(kIdt + vec * 16, lo);
  put64(kIdt + vec * 16 + 8, h >> 32);
  vcpu.set_idtr({kIdt, 0xfff});
}

void Machine::install_idt_all_hlt() {
  for (unsigned v = 0; v < 256; ++v) {
    put(handler_addr(v), {0xf4});  // hlt
    set_gate(v, handler_addr(v));
  }
}

uint64_t Machine::split_2m(uint64_t va) {
  const uint64_t pt = m_next_pt;
  m_next_pt += 0x1000;
  const uint64_t region = va & ~((1ull << 21) - 1);
  for (uint64_t k = 0; k < 512; ++k) put64(pt + k * 8, (region + (k << 12)) | 0x7);
  put64(kPd + ((va >> 21) & 511) * 8, pt | 0x7);
  // Upper levels need U=1 for user tests.
  put64(kPml4, kPdpt | 7);
  put64(kPdpt, kPd | 7);
  vcpu.set_cr(3, vcpu.cr(3));  // flush
  return pt;
}

uint64_t Machine::pte_addr(uint64_t va) const {
  const uint64_t pde = get64(kPd + ((va >> 21) & 511) * 8);
  return (pde & ~0xfffull) + ((va >> 12) & 511) * 8;
}

}  // namespace pvsim::test
