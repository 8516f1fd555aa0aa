// tests/core/test_exceptions.cpp — exception delivery through the IDT: frames, error
// codes, #DE/#UD/#GP/#PF, #DF and triple fault (SDM Vol. 3A §6.14, §6.15, Table 6-5).
#include <catch2/catch.hpp>

#include "machine.h"

using namespace pvsim;
using pvsim::test::Machine;

namespace {
enum { RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI };
// After delivery with an error code at CPL0 (no stack switch): frame at RSP.
struct Frame {
  uint64_t err, rip, cs, rflags, rsp, ss;
};
Frame frame_with_error(Machine& m) {
  const uint64_t sp = m.vcpu.gpr(RSP);
  return {m.get64(sp),      m.get64(sp + 8),  m.get64(sp + 16),
          m.get64(sp + 24), m.get64(sp + 32), m.get64(sp + 40)};
}
}  // namespace

TEST_CASE("#DE on divide by zero and on quotient overflow", "[exceptions]") {
  Machine m;
  m.install_idt_all_hlt();
  m.vcpu.set_gpr(RAX, 1);
  m.vcpu.set_gpr(RDX, 0);
  m.vcpu.set_gpr(RCX, 0);
  m.code({0x48, 0xf7, 0xf1} /* div rcx */);
  m.step();
  CHECK(m.vcpu.rip() == m.handler_addr(0));
  // No error code for #DE: frame is RIP, CS, RFLAGS, RSP, SS.
  const uint64_t sp = m.vcpu.gpr(RSP);
  CHECK(m.get64(sp) == Machine::kCode);
  CHECK(m.get64(sp + 8) == 0x08);
  CHECK(m.get64(sp + 24) == Machine::kStack);
  CHECK(m.vcpu.gpr(RAX) == 1);  // unchanged

  Machine m2;
  m2.install_idt_all_hlt();
  m2.vcpu.set_gpr(RAX, 0x8000000000000000ull);
  m2.vcpu.set_gpr(RDX, ~0ull);
  m2.vcpu.set_gpr(RCX, ~0ull);  // INT64_MIN / -1 overflows
  m2.code({0x48, 0xf7, 0xf9} /* idiv rcx */);
  m2.step();
  CHECK(m2.vcpu.rip() == m2.handler_addr(0));
  CHECK(m2.trace().find("pvsim_exception") != std::string::npos);
}

TEST_CASE("#UD for invalid opcodes and LOCK misuse", "[exceptions]") {
  Machine m;
  m.install_idt_all_hlt();
  m.code({0x0f, 0x0b} /* ud2 */);
  m.step();
  CHECK(m.vcpu.rip() == m.handler_addr(6));
  Machine m2;
  m2.install_idt_all_hlt();
  m2.code({0xf0, 0x48, 0x01, 0xc0});  // lock add rax, rax
  m2.step();
  CHECK(m2.vcpu.rip() == m2.handler_addr(6));
  Machine m3;
  m3.install_idt_all_hlt();
  m3.code({0x06});  // push es: invalid in 64-bit mode
  m3.step();
  CHECK(m3.vcpu.rip() == m3.handler_addr(6));
}

TEST_CASE("#GP error code, frame alignment and interrupt gate IF clearing", "[exceptions]") {
  Machine m;
  m.install_idt_all_hlt();
  m.vcpu.set_gpr(RSP, Machine::kStack - 8);  // misaligned: the frame goes to a 16-byte boundary
  m.vcpu.set_rflags(0x202);
  m.vcpu.set_gpr(RAX, 0x8000000000000000ull);  // non-canonical
  m.code({0x48, 0x8b, 0x18} /* mov rbx, [rax] */);
  m.step();
  CHECK(m.vcpu.rip() == m.handler_addr(13));
  const uint64_t sp = m.vcpu.gpr(RSP);
  CHECK(sp == Machine::kStack - 16 - 48);
  Frame f = frame_with_error(m);
  CHECK(f.err == 0);
  CHECK(f.rip == Machine::kCode);
  CHECK(f.rflags == 0x202);
  CHECK(f.rsp == Machine::kStack - 8);
  CHECK(f.ss == 0x10);
  CHECK((m.vcpu.rflags() & 0x200) == 0);  // interrupt gate cleared IF

  // A trap gate leaves IF set.
  Machine t;
  t.install_idt_all_hlt();
  t.set_gate(13, t.handler_addr(13), 0, 0, 0xF);
  t.vcpu.set_rflags(0x202);
  t.vcpu.set_gpr(RAX, 0x8000000000000000ull);
  t.code({0x48, 0x8b, 0x18} /* mov rbx, [rax] */);
  t.step();
  CHECK((t.vcpu.rflags() & 0x200) != 0);
}

TEST_CASE("INT n: gate DPL check gives #GP(vector*8+2)", "[exceptions]") {
  Machine m;
  m.install_idt_all_hlt();
  // Run at CPL3 with a DPL0 gate for 0x40: INT 0x40 -> #GP(0x40*8+2).
  m.split_2m(Machine::kCode);
  m.vcpu.set_seg(SegReg::CS, {0x33, 0, 0xffffffff, 0xa0fb});
  m.vcpu.set_seg(SegReg::SS, {0x2b, 0, 0xffffffff, 0xc0f3});
  m.put64(Machine::kTss + 4, 0x70000);  // RSP0
  m.code({0xcd, 0x40} /* int 0x40 */);
  m.vcpu.set_gpr(RSP, 0x7f000);
  // User stack and code pages need U=1: split_2m made the 2 MiB region user-accessible.
  m.split_2m(0x7f000);
  m.step();
  CHECK(m.vcpu.rip() == m.handler_addr(13));
  CHECK(m.vcpu.cpl() == 0);
  CHECK(m.get64(m.vcpu.gpr(RSP)) == 0x40 * 8 + 2);
}

TEST_CASE("#PF: CR2 and error code", "[exceptions]") {
  Machine m;
  m.install_idt_all_hlt();
  const uint64_t pt = m.split_2m(0x400000);
  m.put64(pt + 5 * 8, 0);  // 0x405000 not present
  m.vcpu.set_cr(3, Machine::kPml4);
  m.vcpu.set_gpr(RAX, 0x405123);
  m.code({0x48, 0xc7, 0x00, 0x01, 0x00, 0x00, 0x00} /* mov qword ptr [rax], 1 */);
  m.step();
  CHECK(m.vcpu.rip() == m.handler_addr(14));
  CHECK(m.vcpu.cr(2) == 0x405123);
  CHECK(m.get64(m.vcpu.gpr(RSP)) == 0x2);  // W, not present, supervisor
}

TEST_CASE("#DF: contributory fault while delivering a contributory fault", "[exceptions]") {
  Machine m;
  m.install_idt_all_hlt();
  // #GP's gate is not present -> #NP while delivering #GP -> #DF.
  m.set_gate(13, m.handler_addr(13), 0, 0, 0xE, 0x08, false);
  m.vcpu.set_gpr(RAX, 0x8000000000000000ull);
  m.code({0x48, 0x8b, 0x18} /* mov rbx, [rax] */);
  m.step();
  CHECK(m.vcpu.rip() == m.handler_addr(8));
  CHECK(m.get64(m.vcpu.gpr(RSP)) == 0);  // #DF error code 0

  // A benign fault (#UD) whose gate is absent gets #NP delivered serially (no #DF).
  Machine b;
  b.install_idt_all_hlt();
  b.set_gate(6, b.handler_addr(6), 0, 0, 0xE, 0x08, false);
  b.code({0x0f, 0x0b} /* ud2 */);
  b.step();
  CHECK(b.vcpu.rip() == b.handler_addr(11));
  CHECK(b.get64(b.vcpu.gpr(RSP)) == 6 * 8 + 2 + 1);  // IDT, EXT
}

TEST_CASE("#PF during delivery of #PF gives #DF", "[exceptions]") {
  Machine m;
  m.install_idt_all_hlt();
  const uint64_t pt = m.split_2m(0x400000);
  m.put64(pt + 5 * 8, 0);  // data page not present
  m.put64(pt + 6 * 8, 0);  // stack page not present
  m.vcpu.set_gpr(RSP, 0x407000);
  m.vcpu.set_gpr(RAX, 0x405000);
  m.put64(Machine::kTss + 0x24, 0x60000);  // IST1 for #DF
  m.set_gate(8, m.handler_addr(8), 0, 1);
  m.code({0x48, 0x8b, 0x18} /* mov rbx, [rax] */);
  m.step();
  CHECK(m.vcpu.rip() == m.handler_addr(8));
  CHECK(m.vcpu.gpr(RSP) == 0x60000 - 48);
  CHECK(m.vcpu.cr(2) == 0x406ff8);  // the second #PF (frame push) loaded CR2 last
}

TEST_CASE("triple fault with IDTR {0,0}", "[exceptions]") {
  Machine m;
  m.code({0x0f, 0x0b} /* ud2 */);
  auto r = m.step();
  CHECK(r.reason == StopReason::Shutdown);
  CHECK(m.vcpu.stop_detail().find("triple fault") != std::string::npos);
  CHECK(m.vcpu.stop_detail().find("#UD") != std::string::npos);
  CHECK(m.vcpu.stop_detail().find("#DF") != std::string::npos);
  CHECK(m.trace().find("TRIPLE_FAULT") != std::string::npos);
  // It stays down.
  CHECK(m.step().reason == StopReason::Shutdown);
}

TEST_CASE("#AC(0) for a misaligned user access with CR0.AM and RFLAGS.AC", "[exceptions]") {
  Machine m;
  m.install_idt_all_hlt();
  m.split_2m(0);
  m.put64(Machine::kTss + 4, 0x70000);
  m.vcpu.set_cr(0, 0x80050033);  // + AM
  m.vcpu.set_seg(SegReg::CS, {0x33, 0, 0xffffffff, 0xa0fb});
  m.vcpu.set_seg(SegReg::SS, {0x2b, 0, 0xffffffff, 0xc0f3});
  m.vcpu.set_gpr(RSP, 0x7f000);
  m.vcpu.set_rflags(0x2 | (1u << 18));
  m.vcpu.set_gpr(RAX, 0x5001);
  m.code({0x48, 0x8b, 0x58, 0xff, 0x48, 0x8b, 0x18} /* mov rbx, [rax-1]; mov rbx, [rax] */);
  m.step();
  CHECK(m.vcpu.rip() == Machine::kCode + 4);  // aligned: fine
  m.step();
  CHECK(m.vcpu.rip() == m.handler_addr(17));
  CHECK(m.get64(m.vcpu.gpr(RSP)) == 0);  // error code 0
}

TEST_CASE("non-canonical RSP/RBP-based operand is #SS(0), with FS override #GP(0)",
          "[exceptions]") {
  Machine m;
  m.install_idt_all_hlt();
  m.vcpu.set_gpr(RBX, 0x8000000000000000ull);
  m.code({0x48, 0x8b, 0x04, 0x1c} /* mov rax, [rsp+rbx] */);
  m.step();
  CHECK(m.vcpu.rip() == m.handler_addr(12));
  Machine b;
  b.install_idt_all_hlt();
  b.vcpu.set_gpr(RBP, 0x8000000000000000ull);
  b.code({0x48, 0x8b, 0x45, 0x08} /* mov rax, [rbp+8] */);
  b.step();
  CHECK(b.vcpu.rip() == b.handler_addr(12));
  Machine f;
  f.install_idt_all_hlt();
  f.vcpu.set_gpr(RBP, 0x8000000000000000ull);
  f.code({0x64, 0x48, 0x8b, 0x45, 0x08} /* mov rax, fs:[rbp+8] */);
  f.step();
  CHECK(f.vcpu.rip() == f.handler_addr(13));
}

TEST_CASE("a stack push that runs past the canonical boundary is #SS(0), not #GP(0)",
          "[exceptions]") {
  // The check is on the whole access (SDM Vol. 3A §6.15 "Interrupt 12"): a push whose first
  // byte is canonical but whose last byte lies at 0x0000800000000000 still faults as #SS(0).
  Machine m;
  m.install_idt_all_hlt();
  // Map the last 2 MiB below the canonical hole (PML4[255] → PDPT[511] → PD[511]) onto GPA 4 MiB.
  m.put64(Machine::kPml4 + 255 * 8, 0x30000 | 3);
  m.put64(0x30000 + 511 * 8, 0x31000 | 3);
  m.put64(0x31000 + 511 * 8, 0x400000 | 0x83);
  m.vcpu.set_cr(3, Machine::kPml4);
  m.vcpu.set_gpr(RSP, 0x0000800000000004ull);  // push writes 0x7ffffffffffc..0x800000000003
  m.code({0x50} /* push rax */);
  m.step();
  CHECK(m.vcpu.rip() == m.handler_addr(12));
  // Control: an 8-byte push that ends exactly at the boundary is fine.
  Machine ok;
  ok.install_idt_all_hlt();
  ok.put64(Machine::kPml4 + 255 * 8, 0x30000 | 3);
  ok.put64(0x30000 + 511 * 8, 0x31000 | 3);
  ok.put64(0x31000 + 511 * 8, 0x400000 | 0x83);
  ok.vcpu.set_cr(3, Machine::kPml4);
  ok.vcpu.set_gpr(RSP, 0x0000800000000000ull);
  ok.code({0x50});
  ok.step();
  CHECK(ok.vcpu.rip() == Machine::kCode + 1);
  CHECK(ok.vcpu.gpr(RSP) == 0x00007ffffffffff8ull);
}
