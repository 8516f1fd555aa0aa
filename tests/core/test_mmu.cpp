// tests/core/test_mmu.cpp — paging: 4 KiB / 2 MiB / 1 GiB pages, U/S, R/W with CR0.WP,
// NX with EFER.NXE, reserved bits, A/D bits, INVLPG and CR3/CR4.PGE TLB behaviour
// (SDM Vol. 3A §4.5-§4.10).
#include <catch2/catch.hpp>

#include "machine.h"

using namespace pvsim;
using pvsim::test::Machine;

namespace {
enum { RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI };
constexpr uint64_t A = 1u << 5, D = 1u << 6;

// Runs one instruction and returns the #PF error code pushed (or ~0 if no #PF).
uint64_t pf_code(Machine& m) {
  m.step();
  if (m.vcpu.rip() != m.handler_addr(14)) return ~0ull;
  return m.get64(m.vcpu.gpr(RSP));
}
}  // namespace

TEST_CASE("4 KiB pages remap and A/D bits", "[mmu]") {
  Machine m;
  m.install_idt_all_hlt();
  const uint64_t pt = m.split_2m(0x400000);
  // Map VA 0x401000 -> GPA 0x900000.
  m.put64(pt + 1 * 8, 0x900000 | 0x3);
  m.put64(0x900010, 0x1234);
  m.vcpu.set_gpr(RAX, 0x401010);
  m.code({0x48, 0x8b, 0x18} /* mov rbx, [rax] */);
  m.step();
  CHECK(m.vcpu.gpr(RBX) == 0x1234);
  CHECK((m.get64(pt + 8) & (A | D)) == A);
  m.code({0x48, 0x89, 0x00} /* mov [rax], rax */);
  m.step();
  CHECK(m.get64(0x900010) == 0x401010);
  CHECK((m.get64(pt + 8) & (A | D)) == (A | D));
  // Upper levels got A too.
  CHECK((m.get64(Machine::kPml4) & A) != 0);
}

TEST_CASE("1 GiB page", "[mmu]") {
  Machine m;
  m.install_idt_all_hlt();
  // PDPT entry 1 (VA 1 GiB..2 GiB) -> GPA 0 as a 1 GiB page.
  m.put64(Machine::kPdpt + 8, 0x83);
  m.put64(0x5000, 0xfeed);
  m.vcpu.set_gpr(RAX, 0x40005000);
  m.code({0x48, 0x8b, 0x18} /* mov rbx, [rax] */);
  m.step();
  CHECK(m.vcpu.gpr(RBX) == 0xfeed);
  // Reserved bits 29:13 set in a 1 GiB entry -> #PF with RSVD.
  m.put64(Machine::kPdpt + 16, 0x83 | (1u << 13));
  m.vcpu.set_gpr(RAX, 0x80005000);
  m.code({0x48, 0x8b, 0x18} /* mov rbx, [rax] */);
  CHECK(pf_code(m) == (1 | 8));
}

TEST_CASE("U/S, R/W with CR0.WP, NX", "[mmu]") {
  Machine m;
  m.install_idt_all_hlt();
  const uint64_t pt = m.split_2m(0x400000);
  m.put64(pt + 2 * 8, 0x402000 | 0x1);  // present, read-only, supervisor
  m.vcpu.set_gpr(RAX, 0x402000);
  // Supervisor write to a read-only page with WP=1: #PF(P|W).
  m.code({0x48, 0xc7, 0x00, 0x01, 0x00, 0x00, 0x00} /* mov qword ptr [rax], 1 */);
  CHECK(pf_code(m) == 0x3);
  // With WP=0 the supervisor write succeeds.
  Machine w;
  w.install_idt_all_hlt();
  const uint64_t pt2 = w.split_2m(0x400000);
  w.put64(pt2 + 2 * 8, 0x402000 | 0x1);
  w.vcpu.set_cr(0, 0x80000033);
  w.vcpu.set_gpr(RAX, 0x402000);
  w.code({0x48, 0xc7, 0x00, 0x01, 0x00, 0x00, 0x00} /* mov qword ptr [rax], 1 */);
  w.step();
  CHECK(w.vcpu.rip() == Machine::kCode + 7);
  CHECK(w.get64(0x402000) == 1);

  // NX: with EFER.NXE, fetching from an XD page is #PF(P|ID); without NXE bit 63 is reserved.
  Machine n;
  n.install_idt_all_hlt();
  const uint64_t pt3 = n.split_2m(0x400000);
  n.put64(pt3 + 3 * 8, 0x403000 | 0x3 | (1ull << 63));
  n.put(0x403000, {0x90});
  n.vcpu.set_efer(0x500 | 0x800);
  n.code({0xff, 0xe0} /* jmp rax */);
  n.vcpu.set_gpr(RAX, 0x403000);
  n.step();  // the jmp itself
  CHECK(n.vcpu.rip() == 0x403000);
  CHECK(pf_code(n) == (0x1 | 0x10));
  CHECK(n.vcpu.cr(2) == 0x403000);
  Machine r;
  r.install_idt_all_hlt();
  const uint64_t pt4 = r.split_2m(0x400000);
  r.put64(pt4 + 3 * 8, 0x403000 | 0x3 | (1ull << 63));
  r.vcpu.set_gpr(RAX, 0x403000);
  r.code({0x48, 0x8b, 0x18} /* mov rbx, [rax] */);
  CHECK(pf_code(r) == (0x1 | 0x8));
}

TEST_CASE("user access to a supervisor page from CPL3", "[mmu]") {
  Machine m;
  m.install_idt_all_hlt();
  const uint64_t pt = m.split_2m(0x400000);
  m.put64(pt + 4 * 8, 0x404000 | 0x3);  // supervisor only
  m.split_2m(Machine::kCode);
  m.split_2m(0x7f000);
  m.put64(Machine::kTss + 4, 0x70000);
  m.vcpu.set_seg(SegReg::CS, {0x33, 0, 0xffffffff, 0xa0fb});
  m.vcpu.set_seg(SegReg::SS, {0x2b, 0, 0xffffffff, 0xc0f3});
  m.vcpu.set_gpr(RSP, 0x7f000);
  m.vcpu.set_gpr(RAX, 0x404008);
  m.code({0x48, 0x8b, 0x18} /* mov rbx, [rax] */);
  CHECK(pf_code(m) == (0x1 | 0x4));
  CHECK(m.vcpu.cr(2) == 0x404008);
  CHECK(m.vcpu.gpr(RSP) == 0x70000 - 48);  // stack switch to RSP0
}

TEST_CASE("TLB: stale until INVLPG, CR3 write flushes non-global, PGE keeps global", "[mmu]") {
  Machine m;
  m.install_idt_all_hlt();
  const uint64_t pt = m.split_2m(0x400000);
  m.put64(pt + 1 * 8, 0x900000 | 0x3);
  m.put64(0x900000, 111);
  m.put64(0x901000, 222);
  m.vcpu.set_gpr(RAX, 0x401000);
  m.code({0x48, 0x8b, 0x18, 0x48, 0x8b, 0x18, 0x0f, 0x01, 0x38, 0x48, 0x8b,
          0x18} /* mov rbx, [rax]; mov rbx, [rax]; invlpg [rax]; mov rbx, [rax] */);
  m.step();
  CHECK(m.vcpu.gpr(RBX) == 111);
  m.put64(pt + 1 * 8, 0x901000 | 0x3);  // guest changes the PTE without invalidating
  m.step();
  CHECK(m.vcpu.gpr(RBX) == 111);  // stale TLB entry, as on hardware
  m.step();                       // invlpg
  m.step();
  CHECK(m.vcpu.gpr(RBX) == 222);

  // Global page survives a CR3 write when CR4.PGE=1; a non-global one does not.
  Machine g;
  g.install_idt_all_hlt();
  const uint64_t gpt = g.split_2m(0x400000);
  g.put64(gpt + 1 * 8, 0x900000 | 0x3 | 0x100);  // G
  g.put64(gpt + 2 * 8, 0x902000 | 0x3);
  g.put64(0x900000, 1);
  g.put64(0x902000, 2);
  g.put64(0x901000, 10);
  g.put64(0x903000, 20);
  g.vcpu.set_cr(4, 0x20 | 0x80);
  g.vcpu.set_gpr(RAX, 0x401000);
  g.vcpu.set_gpr(RCX, 0x402000);
  g.vcpu.set_gpr(RDX, Machine::kPml4);
  g.code({0x48, 0x8b, 0x18, 0x48, 0x8b, 0x31, 0x0f, 0x22, 0xda, 0x48, 0x8b, 0x18, 0x48, 0x8b,
          0x31} /* mov rbx, [rax]; mov rsi, [rcx]; mov cr3, rdx; mov rbx, [rax]; mov rsi, [rcx] */);
  g.run(2);
  g.put64(gpt + 1 * 8, 0x901000 | 0x3 | 0x100);
  g.put64(gpt + 2 * 8, 0x903000 | 0x3);
  g.run(3);
  CHECK(g.vcpu.gpr(RBX) == 1);   // global: still the old translation
  CHECK(g.vcpu.gpr(RSI) == 20);  // non-global: re-walked
}

TEST_CASE("page walk outside RAM stops with IoError, unclaimed MMIO too", "[mmu]") {
  Machine m;
  m.put64(Machine::kPd + 2 * 8, 0x40000000 | 0x3);  // PD entry -> page table at 1 GiB (no RAM)
  m.vcpu.set_gpr(RAX, 0x400000);
  m.code({0x48, 0x8b, 0x18} /* mov rbx, [rax] */);
  auto r = m.step();
  CHECK(r.reason == StopReason::IoError);
  CHECK(m.vcpu.stop_detail().find("page table at GPA 0x40000000 outside RAM") != std::string::npos);

  Machine io;
  io.vcpu.set_gpr(RAX, 0x20000000);  // identity-mapped, but no RAM there (16 MiB guest)
  io.code({0x48, 0x8b, 0x18} /* mov rbx, [rax] */);
  auto r2 = io.step();
  CHECK(r2.reason == StopReason::IoError);
  CHECK(io.vcpu.stop_detail().find("MMIO read at GPA 0x20000000") != std::string::npos);
  CHECK(io.vcpu.rip() == Machine::kCode);
}

TEST_CASE("EPT model: first touch of each RAM page is one EPT violation", "[mmu][trace]") {
  Machine m;
  m.vcpu.set_gpr(RAX, 0x300000);
  m.code({0x48, 0x8b, 0x18, 0x48, 0x89, 0x58, 0x08, 0x48, 0x8b, 0x88, 0x00, 0x10, 0x00,
          0x00} /* mov rbx, [rax]; mov [rax+8], rbx; mov rcx, [rax+0x1000] */);
  m.run(3);
  const std::string t = m.trace();
  auto count = [&](const std::string& needle) {
    size_t n = 0;
    for (size_t p = t.find(needle); p != std::string::npos; p = t.find(needle, p + 1)) ++n;
    return n;
  };
  // code page (fetch, final: 0x184), 3 table pages (0x81), data pages 0x300000 and
  // 0x301000 (read, final: 0x181).
  CHECK(count("EPT_VIOLATION") == 6);
  CHECK(count("kvm_page_fault") == 6);
  CHECK(t.find("address 0x0000000000300000 error_code 0x181") != std::string::npos);
  CHECK(t.find("address 0x0000000000100000 error_code 0x184") != std::string::npos);
  CHECK(t.find("address 0x0000000000010000 error_code 0x81") != std::string::npos);
  CHECK(m.mem.ept_touched(0x301));
}

TEST_CASE("TLB flush salt wrap-around keeps translations correct", "[mmu]") {
  Machine m;
  m.install_idt_all_hlt();
  const uint64_t pt = m.split_2m(0x400000);
  m.put64(pt + 1 * 8, 0x900000 | 0x3);
  m.put64(0x900000, 5);
  m.put64(0x901000, 6);
  m.vcpu.set_gpr(RAX, 0x401000);
  m.vcpu.set_gpr(RDX, Machine::kPml4);
  m.code({0x48, 0x8b, 0x18, 0xb9, 0x88, 0x13, 0x00, 0x00, 0x0f, 0x22, 0xda, 0x48, 0x8b, 0x30, 0xff, 0xc9, 0x75, 0xf6, 0x48, 0x8b, 0x38}  /* mov rbx, [rax]; mov ecx, 5000; l: mov cr3, rdx; mov rsi, [rax]; dec ecx; jnz l; mov rdi, [rax] */);
  m.step();
  CHECK(m.vcpu.gpr(RBX) == 5);
  m.put64(pt + 1 * 8, 0x901000 | 0x3);  // takes effect at the first CR3 write
  m.run(2 + 4 * 5000 + 1);
  CHECK(m.vcpu.gpr(RSI) == 6);
  CHECK(m.vcpu.gpr(RDI) == 6);
  CHECK(m.vcpu.gpr(RCX) == 0);
}
