// tests/core/test_control.cpp — control flow, self-modifying code (also across a page
// boundary), privilege changes: IRETQ to CPL3, INT n back through a DPL3 gate with the
// TSS.RSP0 stack switch, IST, far return, segment loads, I/O permission bitmap.
#include <catch2/catch.hpp>

#include "machine.h"

using namespace pvsim;
using pvsim::test::Machine;

namespace {
enum { RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8, R9, R10, R11 };
}

TEST_CASE("conditional branches, loops, indirect calls", "[control]") {
  Machine m;
  m.code({0xb9, 0x0a, 0x00, 0x00, 0x00, 0x31, 0xc0, 0x01, 0xc8, 0xff, 0xc9, 0x75, 0xfa, 0x83, 0xf8, 0x37, 0x74, 0x02, 0x0f, 0x0b, 0x48, 0x8d, 0x1d, 0x03, 0x00, 0x00, 0x00, 0xff, 0xd3, 0xf4, 0xba, 0x07, 0x00, 0x00, 0x00, 0xc3}  /* mov ecx, 10; xor eax, eax; l: add eax, ecx; dec ecx; jnz l; cmp eax, 55; je ok; ud2; ok: lea rbx, [rip+f]; call rbx; hlt; f: mov edx, 7; ret */);
  auto r = m.run(1000);
  CHECK(r.reason == StopReason::Halted);
  CHECK(m.vcpu.gpr(RAX) == 55);
  CHECK(m.vcpu.gpr(RDX) == 7);
  CHECK(m.vcpu.halted());
}

TEST_CASE("step() executes exactly one instruction, run() honours the deadline", "[control]") {
  Machine m;
  m.code({0x48, 0xff, 0xc0, 0xeb, 0xfb} /* l: inc rax; jmp l */);
  for (int k = 0; k < 5; ++k) CHECK(m.step().executed == 1);
  CHECK(m.vcpu.instructions() == 5);
  CHECK(m.vcpu.gpr(RAX) == 3);
  const uint64_t c0 = m.vcpu.cycles().value();
  auto r = m.vcpu.run(1000000, Cycles(c0 + 100));
  CHECK(r.reason == StopReason::Deadline);
  CHECK(m.vcpu.cycles().value() >= c0 + 100);
  CHECK(m.vcpu.cycles().value() < c0 + 104);
  CHECK(m.vcpu.run(7, Cycles(~0ull)).executed == 7);
}

TEST_CASE("self-modifying code executes the new bytes", "[control][smc]") {
  Machine m;
  // The first instruction overwrites the imm8 of the third (mov al, 1 -> mov al, 0x42).
  m.code({0xc6, 0x05, 0x02, 0x00, 0x00, 0x00, 0x42, 0x90, 0xb0, 0x01,
          0xf4} /* mov byte ptr [rip+2], 0x42; nop; mov al, 1; hlt */);
  auto r = m.run(10);
  CHECK(r.reason == StopReason::Halted);
  CHECK((m.vcpu.gpr(RAX) & 0xff) == 0x42);
  CHECK(m.mem.code_write_count() >= 1);

  // Execute once, patch from the host side (loader-style write), execute again.
  Machine h;
  h.code({0xb8, 0x01, 0x00, 0x00, 0x00, 0xf4} /* mov eax, 1; hlt */);
  h.run(5);
  CHECK(h.vcpu.gpr(RAX) == 1);
  h.put(Machine::kCode + 1, {0x02});
  h.vcpu.set_halted(false);
  h.vcpu.set_rip(Machine::kCode);
  h.run(5);
  CHECK(h.vcpu.gpr(RAX) == 2);
}

TEST_CASE("self-modifying code across a page boundary", "[control][smc]") {
  Machine m;
  // A 10-byte movabs straddling 0x101000: 4 bytes on the first page, 6 on the next.
  const uint64_t at = 0x101000 - 4;
  m.put(at, {0x48, 0xb8, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11,
             0x11} /* movabs rax, 0x1111111111111111 */);
  m.put(at + 10, {0xf4});
  // Code elsewhere patches the byte on the second page, then jumps to the movabs.
  m.put(0x105000, {0xc6, 0x03, 0x22, 0xff, 0xe1} /* mov byte ptr [rbx], 0x22; jmp rcx */);
  m.vcpu.set_gpr(RCX, at);
  m.vcpu.set_rip(at);
  m.run(2);
  CHECK(m.vcpu.gpr(RAX) == 0x1111111111111111ull);
  m.vcpu.set_halted(false);
  m.vcpu.set_gpr(RBX, 0x101005);  // last byte of the immediate (second page)
  m.vcpu.set_rip(0x105000);
  m.run(4);
  CHECK(m.vcpu.gpr(RAX) == 0x2211111111111111ull);
  CHECK(m.vcpu.halted());
}

TEST_CASE("ring 3: iretq to CPL3, INT n back through a DPL3 gate with TSS.RSP0",
          "[control][ring3]") {
  Machine m;
  m.install_idt_all_hlt();
  m.set_gate(0x80, m.handler_addr(0x80), 3);
  m.split_2m(0);                        // U=1 for code, user stack
  m.put64(Machine::kTss + 4, 0x70000);  // RSP0
  m.code({0x6a, 0x2b, 0x68, 0x00, 0xf0, 0x07, 0x00, 0x68, 0x02, 0x02, 0x00, 0x00, 0x6a, 0x33, 0x48, 0x8d, 0x0d, 0x03, 0x00, 0x00, 0x00, 0x51, 0x48, 0xcf, 0xb8, 0x34, 0x12, 0x00, 0x00, 0xcd, 0x80}  /* push 0x2b; push 0x7f000; push 0x202; push 0x33; lea rcx, [rip+u]; push rcx; iretq; u: mov eax, 0x1234; int 0x80 */);
  m.run(7);
  CHECK(m.vcpu.cpl() == 3);
  CHECK(m.vcpu.seg(SegReg::CS).selector == 0x33);
  CHECK(m.vcpu.seg(SegReg::SS).selector == 0x2b);
  CHECK(m.vcpu.gpr(RSP) == 0x7f000);
  CHECK((m.vcpu.rflags() & 0x200) != 0);
  const uint64_t user_int = m.vcpu.rip() + 5;
  m.run(2);  // mov, int 0x80
  CHECK(m.vcpu.cpl() == 0);
  CHECK(m.vcpu.rip() == m.handler_addr(0x80));
  CHECK(m.vcpu.gpr(RSP) == 0x70000 - 40);
  CHECK(m.get64(0x70000 - 40) == user_int + 2);  // return RIP after INT
  CHECK(m.get64(0x70000 - 32) == 0x33);
  CHECK(m.get64(0x70000 - 16) == 0x7f000);
  CHECK(m.get64(0x70000 - 8) == 0x2b);
  CHECK(m.vcpu.seg(SegReg::SS).selector == 0);  // null SS, RPL 0

  // And back to CPL3 with IRETQ from the handler.
  m.put(m.handler_addr(0x80), {0x48, 0xcf} /* iretq */);
  m.run(1);
  CHECK(m.vcpu.cpl() == 3);
  CHECK(m.vcpu.rip() == user_int + 2);
  CHECK(m.vcpu.gpr(RSP) == 0x7f000);
  // CPL3 cannot HLT, CLI, or write CRs: #GP(0).
  m.put(m.vcpu.rip(), {0xfa} /* cli */);
  m.run(1);
  CHECK(m.vcpu.rip() == m.handler_addr(13));
}

TEST_CASE("IST stack for an exception at CPL0", "[control]") {
  Machine m;
  m.install_idt_all_hlt();
  m.put64(Machine::kTss + 0x24 + 8, 0x60008);  // IST2 (aligned down to 0x60000)
  m.set_gate(6, m.handler_addr(6), 0, 2);
  m.code({0x0f, 0x0b} /* ud2 */);
  m.step();
  CHECK(m.vcpu.rip() == m.handler_addr(6));
  CHECK(m.vcpu.gpr(RSP) == 0x60000 - 40);
  CHECK(m.get64(0x60000 - 16) == Machine::kStack);  // old RSP
}

TEST_CASE("far return reloads CS, MOV/POP Sreg load descriptors", "[control][segments]") {
  Machine m;
  m.code({0x6a, 0x08, 0x48, 0x8d, 0x05, 0x03, 0x00, 0x00, 0x00, 0x50, 0x48, 0xcb, 0xb8, 0x10, 0x00, 0x00, 0x00, 0x8e, 0xd8, 0x8e, 0xd0}  /* push 0x08; lea rax, [rip+n]; push rax; retfq; n: mov eax, 0x10; mov ds, eax; mov ss, eax */);
  m.run(6);
  CHECK(m.vcpu.seg(SegReg::CS).selector == 0x08);
  CHECK(m.vcpu.seg(SegReg::DS).selector == 0x10);
  CHECK(m.vcpu.gpr(RSP) == Machine::kStack);
  // Accessed bit now set in the data descriptor.
  CHECK((m.get64(0x1010) >> 40 & 1) == 1);

  Machine g;
  g.install_idt_all_hlt();
  g.vcpu.set_gpr(RAX, 0x40);  // beyond the GDT limit (0x37)
  g.code({0x8e, 0xd8} /* mov ds, eax */);
  g.step();
  CHECK(g.vcpu.rip() == g.handler_addr(13));
  CHECK(g.get64(g.vcpu.gpr(RSP)) == 0x40);
  Machine s;
  s.install_idt_all_hlt();
  s.vcpu.set_gpr(RAX, 0x2b);  // DPL3 data into SS at CPL0 -> #GP(sel)
  s.code({0x8e, 0xd0} /* mov ss, eax */);
  s.step();
  CHECK(s.vcpu.rip() == s.handler_addr(13));
  CHECK(s.get64(s.vcpu.gpr(RSP)) == 0x28);
  Machine np;
  np.install_idt_all_hlt();
  np.put64(0x1010, 0x00cf13000000ffffull);  // data, not present
  np.vcpu.set_gpr(RAX, 0x10);
  np.code({0x8e, 0xc0} /* mov es, eax */);
  np.step();
  CHECK(np.vcpu.rip() == np.handler_addr(11));
}

TEST_CASE("FS/GS bases via MSRs, segment overrides, SWAPGS", "[control][segments]") {
  Machine m;
  m.put64(0x5010, 0xaaaa);
  m.put64(0x6010, 0xbbbb);
  m.vcpu.set_gpr(RCX, 0xC0000100);
  m.vcpu.set_gpr(RAX, 0x5000);
  m.vcpu.set_gpr(RDX, 0);
  m.code({0x0f, 0x30, 0x64, 0x48, 0x8b, 0x1c, 0x25, 0x10, 0x00, 0x00, 0x00, 0xb9, 0x02, 0x01, 0x00, 0xc0, 0xb8, 0x00, 0x60, 0x00, 0x00, 0x0f, 0x30, 0x0f, 0x01, 0xf8, 0x65, 0x48, 0x8b, 0x34, 0x25, 0x10, 0x00, 0x00, 0x00, 0x64, 0x48, 0x8d, 0x3c, 0x25, 0x10, 0x00, 0x00, 0x00}  /* wrmsr; mov rbx, fs:[0x10]; mov ecx, 0xC0000102; mov eax, 0x6000; wrmsr; swapgs; mov rsi, gs:[0x10]; lea rdi, fs:[0x10] */);
  m.run(8);
  CHECK(m.vcpu.gpr(RBX) == 0xaaaa);
  CHECK(m.vcpu.gpr(RSI) == 0xbbbb);
  CHECK(m.vcpu.gpr(RDI) == 0x10);  // LEA ignores segment bases
  CHECK(m.vcpu.seg(SegReg::GS).base == 0x6000);
}

TEST_CASE("I/O permission: IOPL and the TSS bitmap at CPL3", "[control][io]") {
  Machine m;
  m.install_idt_all_hlt();
  m.split_2m(0);
  // TSS with an I/O bitmap at offset 0x68: ports 0x80-0x87 allowed, 0x88 denied.
  m.put(Machine::kTss + 0x66, {0x68, 0x00});
  m.put(Machine::kTss + 0x68 + 0x10, {0x00, 0x01});  // byte for ports 0x80-0x87 = 0, 0x88 bit set
  SegmentCache tr = m.vcpu.tr();
  tr.limit = 0x68 + 0x20;
  m.vcpu.set_tr(tr);
  m.put64(Machine::kTss + 4, 0x70000);
  m.vcpu.set_seg(SegReg::CS, {0x33, 0, 0xffffffff, 0xa0fb});
  m.vcpu.set_seg(SegReg::SS, {0x2b, 0, 0xffffffff, 0xc0f3});
  m.vcpu.set_gpr(RSP, 0x7f000);
  m.vcpu.set_gpr(RAX, 0x41);
  m.code({0xe6, 0x80, 0xe6, 0x88} /* out 0x80, al; out 0x88, al */);
  m.step();
  REQUIRE(m.env.log.size() == 1);
  CHECK(m.env.log[0].port == 0x80);
  m.step();
  CHECK(m.env.log.size() == 1);
  CHECK(m.vcpu.rip() == m.handler_addr(13));
}

TEST_CASE("cross-vCPU self-modifying code: stale write-TLB entries are dropped", "[control][smc]") {
  Machine m;  // vCPU 0
  VcpuConfig cfg1;
  cfg1.index = 1;
  Vcpu v1(cfg1, m.mem, m.env, m.tracer);
  // Same long-mode state for vCPU 1.
  v1.set_gdtr(m.vcpu.gdtr());
  v1.set_cr(0, m.vcpu.cr(0));
  v1.set_cr(3, m.vcpu.cr(3));
  v1.set_cr(4, m.vcpu.cr(4));
  v1.set_efer(m.vcpu.efer());
  for (SegReg s : {SegReg::CS, SegReg::SS, SegReg::DS, SegReg::ES, SegReg::FS, SegReg::GS})
    v1.set_seg(s, m.vcpu.seg(s));
  v1.set_gpr(RSP, 0x70000);
  // vCPU 1's code at 0x200000 stores AL to [rbx] (page 0x300000) and halts.
  m.put(0x200000, {0x88, 0x03, 0xf4} /* mov [rbx], al; hlt */);
  v1.set_gpr(RBX, 0x300001);
  v1.set_gpr(RAX, 0x05);
  v1.set_rip(0x200000);
  v1.run(10, Cycles(~0ull));  // write TLB entry for page 0x300000 now exists in vCPU 1
  // vCPU 0 runs "mov al, imm8; hlt" at 0x300000: decodes the page (marks it as code).
  m.put(0x300000, {0xb0, 0x11, 0xf4} /* mov al, 0x11; hlt */);
  m.vcpu.set_rip(0x300000);
  m.vcpu.run(10, Cycles(~0ull));
  CHECK((m.vcpu.gpr(RAX) & 0xff) == 0x11);
  // vCPU 1 patches the immediate through what used to be a fast write-TLB entry.
  v1.set_halted(false);
  v1.set_rip(0x200000);
  v1.set_gpr(RAX, 0x22);
  v1.run(10, Cycles(~0ull));
  m.vcpu.set_halted(false);
  m.vcpu.set_rip(0x300000);
  m.vcpu.run(10, Cycles(~0ull));
  CHECK((m.vcpu.gpr(RAX) & 0xff) == 0x22);
}

TEST_CASE("SYSCALL / SYSRET through STAR/LSTAR/FMASK", "[control][ring3]") {
  Machine m;
  m.install_idt_all_hlt();
  m.split_2m(0);
  // STAR: kernel CS 0x08 (SS 0x10), user base 0x20 (SS 0x2b, CS 0x33).
  auto wrmsr = [&](uint32_t msr, uint64_t v) {
    m.vcpu.set_gpr(RCX, msr);
    m.vcpu.set_gpr(RAX, v & 0xffffffff);
    m.vcpu.set_gpr(RDX, v >> 32);
    m.code({0x0f, 0x30});
    m.step();
  };
  wrmsr(0xC0000080, 0xd01);  // SCE
  wrmsr(0xC0000081, (0x20ull << 48) | (0x08ull << 32));
  wrmsr(0xC0000082, 0x104000);
  wrmsr(0xC0000084, 0x200);  // mask IF
  m.put(0x104000, {0x48, 0x89, 0xcb, 0x48, 0x0f, 0x07} /* mov rbx, rcx; sysretq */);
  m.vcpu.set_gpr(RSP, 0x7f000);
  m.vcpu.set_gpr(RCX, 0x105000);
  m.vcpu.set_gpr(R11, 0x202);
  m.code({0x48, 0x0f, 0x07} /* sysretq */);
  m.step();
  CHECK(m.vcpu.cpl() == 3);
  CHECK(m.vcpu.rip() == 0x105000);
  CHECK(m.vcpu.seg(SegReg::CS).selector == 0x33);
  CHECK(m.vcpu.seg(SegReg::SS).selector == 0x2b);
  m.put(0x105000, {0x0f, 0x05, 0x90} /* syscall; nop */);
  m.step();
  CHECK(m.vcpu.cpl() == 0);
  CHECK(m.vcpu.rip() == 0x104000);
  CHECK(m.vcpu.gpr(RCX) == 0x105002);
  CHECK(m.vcpu.gpr(R11) == 0x202);
  CHECK((m.vcpu.rflags() & 0x200) == 0);
  m.run(2);
  CHECK(m.vcpu.cpl() == 3);
  CHECK(m.vcpu.rip() == 0x105002);
  CHECK(m.vcpu.gpr(RBX) == 0x105002);
}
