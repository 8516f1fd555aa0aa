// tests/core/test_code_coherence.cpp — the decoded-code cache must never run stale bytes
// (the requirement: "self-modifying code, cross-page instructions, code written by DMA-like host
// writes and INVLPG/CR3 changes are covered by tests").
//
// Architectural basis: SDM Vol. 3A §8.1.3 (self- and cross-modifying code: a store to
// code is seen by the instruction fetch of later instructions), §4.10.4 (INVLPG and
// MOV to CR3 invalidate TLB entries; both are serializing, §8.3, so the next fetch uses
// the new translation), §4.10.2.3 / §4.10.4.1 (global pages and CR4.PGE), §6.15 "#PF"
// (an instruction fetch that crosses into a not-present page faults with CR2 = the
// faulting linear address). Everything goes through the public API only (core/vcpu.h,
// core/guest_memory.h), so the tests survive a rewrite of the interpreter's dispatch.
//
// What test_control.cpp / test_mmu.cpp already pin and is not repeated here: a byte
// store two instructions ahead, one host patch between runs, a guest store into the
// second page of a crossing movabs, the cross-vCPU stale write-TLB case, a stale data
// translation until INVLPG, and a global data page surviving one CR3 write.
#include <catch2/catch.hpp>

#include <cstring>
#include <memory>
#include <vector>

#include "machine.h"

using namespace pvsim;
using pvsim::test::Machine;

namespace {
enum { RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8, R9, R10, R11, R12, R13, R14, R15 };

constexpr uint64_t kPteP = 1, kPteW = 2, kPteG = 0x100;
constexpr uint64_t kNoDeadline = ~0ull;

// A second vCPU in the same VM (same GuestMemory, env and tracer) in the Machine's
// long-mode state, with its own stack.
std::unique_ptr<Vcpu> second_vcpu(Machine& m, uint64_t stack_top) {
  VcpuConfig cfg;
  cfg.index = 1;
  cfg.count = 2;
  auto v = std::make_unique<Vcpu>(cfg, m.mem, m.env, m.tracer);
  v->set_gdtr(m.vcpu.gdtr());
  v->set_idtr(m.vcpu.idtr());
  v->set_cr(0, m.vcpu.cr(0));
  v->set_cr(3, m.vcpu.cr(3));
  v->set_cr(4, m.vcpu.cr(4));
  v->set_efer(m.vcpu.efer());
  for (SegReg s : {SegReg::CS, SegReg::SS, SegReg::DS, SegReg::ES, SegReg::FS, SegReg::GS})
    v->set_seg(s, m.vcpu.seg(s));
  v->set_tr(m.vcpu.tr());
  v->set_rflags(0x2);
  v->set_gpr(RSP, stack_top);
  return v;
}

// Starts `v` at `rip` (clearing a HLT from the previous run) and runs up to n steps.
Vcpu::RunResult run_at(Vcpu& v, uint64_t rip, uint64_t n = 10000) {
  v.set_halted(false);
  v.set_rip(rip);
  return v.run(n, Cycles(kNoDeadline));
}

std::vector<uint8_t> cat(std::initializer_list<std::vector<uint8_t>> parts) {
  std::vector<uint8_t> out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

// 4 KiB mappings for the 2 MiB region at 0x400000 (identity until a test remaps a page).
// Returns the page-table GPA; PTE of linear page 0x400000 + k*4096 is at pt + k*8.
uint64_t map_4k_region(Machine& m) {
  return m.split_2m(0x400000);
}
}  // namespace

// ---------------------------------------------------------------------------------------
// 1. Self-modifying code
// ---------------------------------------------------------------------------------------

TEST_CASE("SMC: stores of every size and kind patch the very next instruction of the block",
          "[smc][coherence]") {
  // The patching instruction is immediately followed by "movabs rax, imm64" in the same
  // decoded block (nothing between them ends a block), so the block was decoded with the
  // old immediate before the store executed. SDM Vol. 3A §8.1.3: the store must be seen.
  const std::vector<uint8_t> movabs = {0x48, 0xb8, 0x11, 0x11, 0x11, 0x11,
                                       0x11, 0x11, 0x11, 0x11};  // movabs rax, 0x1111111111111111
  const uint64_t kOld = 0x1111111111111111ull;
  const uint64_t kV = 0x0123456789abcdefull;
  struct Form {
    const char* name;
    std::vector<uint8_t> patch;
    uint64_t expect_rax;
    uint64_t rax = 0, rcx = 0, rsi = 0;  // inputs (RDI is set to the immediate's address)
    bool rdi = false;
    uint64_t expect_rcx = ~0ull;  // ~0: not checked
  };
  const std::vector<Form> forms = {
      {"mov byte [rip+2], imm8", {0xc6, 0x05, 0x02, 0x00, 0x00, 0x00, 0x42}, 0x1111111111111142ull},
      {"mov word [rip+2], imm16",
       {0x66, 0xc7, 0x05, 0x02, 0x00, 0x00, 0x00, 0x42, 0x42},
       0x1111111111114242ull},
      {"mov dword [rip+2], imm32",
       {0xc7, 0x05, 0x02, 0x00, 0x00, 0x00, 0x42, 0x42, 0x42, 0x42},
       0x1111111142424242ull},
      {"mov qword [rip+2], rcx", {0x48, 0x89, 0x0d, 0x02, 0x00, 0x00, 0x00}, kV, 0, kV},
      {"rep stosb (8 elements)", {0xf3, 0xaa}, 0x5a5a5a5a5a5a5a5aull, 0x5a, 8, 0, true, 0},
      {"rep movsb (8 elements)", {0xf3, 0xa4}, kV, 0, 8, 0x180000, true, 0},
      {"lock xchg [rdi], rcx", {0xf0, 0x48, 0x87, 0x0f}, kV, 0, kV, 0, true, kOld},
      {"xchg [rdi], rcx (implicitly locked)", {0x48, 0x87, 0x0f}, kV, 0, kV, 0, true, kOld},
      {"lock xadd [rdi], rcx",
       {0xf0, 0x48, 0x0f, 0xc1, 0x0f},
       0x1212121212121212ull,
       0,
       0x0101010101010101ull,
       0,
       true,
       kOld},
      {"lock cmpxchg [rdi], rcx (match: stores rcx)", {0xf0, 0x48, 0x0f, 0xb1, 0x0f}, kV, kOld, kV,
       0, true},
      {"lock cmpxchg [rdi], rcx (mismatch: code unchanged)",
       {0xf0, 0x48, 0x0f, 0xb1, 0x0f},
       kOld,
       5,
       kV,
       0,
       true},
  };
  for (const Form& f : forms) {
    SECTION(f.name) {
      Machine m;
      m.put64(0x180000, kV);  // rep movsb source
      m.put(Machine::kCode, cat({f.patch, movabs, {0xf4} /* hlt */}));
      const uint64_t imm = Machine::kCode + f.patch.size() + 2;
      m.vcpu.set_gpr(RAX, f.rax);
      m.vcpu.set_gpr(RCX, f.rcx);
      m.vcpu.set_gpr(RSI, f.rsi);
      if (f.rdi) m.vcpu.set_gpr(RDI, imm);
      auto r = m.run(20);
      CHECK(r.reason == StopReason::Halted);
      // Each REP element is one instruction (core/README.md "REP string instructions").
      const uint64_t patch_insns = f.patch[0] == 0xf3 ? f.rcx : 1;
      CHECK(m.vcpu.instructions() == patch_insns + 2);
      CHECK(m.vcpu.gpr(RAX) == f.expect_rax);
      CHECK(m.get64(imm) == f.expect_rax);
      if (f.expect_rcx != ~0ull) CHECK(m.vcpu.gpr(RCX) == f.expect_rcx);
    }
  }
}

TEST_CASE("SMC: a store into a later, already cached block on the same page", "[smc][coherence]") {
  Machine m;
  // kCode:       mov dword [rip+0x1f7], 0x77   ; the imm32 of B's mov eax
  //              jmp B
  // kCode+0x200: B: mov eax, 1; hlt
  m.put(Machine::kCode, {0xc7, 0x05, 0xf7, 0x01, 0x00, 0x00, 0x77, 0x00, 0x00, 0x00, 0xe9, 0xf1,
                         0x01, 0x00, 0x00});
  m.put(Machine::kCode + 0x200, {0xb8, 0x01, 0x00, 0x00, 0x00, 0xf4} /* mov eax, 1; hlt */);
  for (int k = 0; k < 3; ++k) {  // B is decoded and hot before the patch
    m.vcpu.set_gpr(RAX, 0);
    CHECK(run_at(m.vcpu, Machine::kCode + 0x200).reason == StopReason::Halted);
    CHECK(m.vcpu.gpr(RAX) == 1);
  }
  CHECK(run_at(m.vcpu, Machine::kCode).reason == StopReason::Halted);
  CHECK(m.vcpu.gpr(RAX) == 0x77);
  CHECK(m.vcpu.rip() == Machine::kCode + 0x206);
}

TEST_CASE("SMC: a hot loop on another page, patched between runs and on every iteration",
          "[smc][coherence]") {
  Machine m;
  const uint64_t loop = 0x104000;
  // loop: mov ecx, 1000; l: add eax, 1; dec ecx; jnz l; hlt
  m.put(loop, {0xb9, 0xe8, 0x03, 0x00, 0x00, 0x83, 0xc0, 0x01, 0xff, 0xc9, 0x75, 0xf9, 0xf4});
  m.vcpu.set_gpr(RAX, 0);
  CHECK(run_at(m.vcpu, loop, 5000).reason == StopReason::Halted);
  CHECK(m.vcpu.gpr(RAX) == 1000);
  // Guest code on kCode's page patches the add's imm8 (loop+7) to 5.
  m.put(Machine::kCode, {0xc6, 0x02, 0x05, 0xf4} /* mov byte [rdx], 5; hlt */);
  m.vcpu.set_gpr(RDX, loop + 7);
  CHECK(run_at(m.vcpu, Machine::kCode).reason == StopReason::Halted);
  m.vcpu.set_gpr(RAX, 0);
  CHECK(run_at(m.vcpu, loop, 5000).reason == StopReason::Halted);
  CHECK(m.vcpu.gpr(RAX) == 5000);

  // Every iteration rewrites the immediate of a function on another page, then calls it:
  //   f (0x106000): mov eax, imm32; ret
  //   l: mov [rbx+1], ecx; call rbx; add esi, eax; dec ecx; jnz l; hlt
  m.put(0x106000, {0xb8, 0x00, 0x00, 0x00, 0x00, 0xc3});
  m.put(Machine::kCode,
        {0x89, 0x4b, 0x01, 0xff, 0xd3, 0x01, 0xc6, 0xff, 0xc9, 0x75, 0xf5, 0xf4});
  m.vcpu.set_gpr(RBX, 0x106000);
  m.vcpu.set_gpr(RCX, 100);
  m.vcpu.set_gpr(RSI, 0);
  CHECK(run_at(m.vcpu, Machine::kCode, 100000).reason == StopReason::Halted);
  CHECK(m.vcpu.gpr(RSI) == 5050);  // 100 + 99 + ... + 1: every patch was executed
  CHECK(m.vcpu.gpr(RAX) == 1);
}

TEST_CASE("SMC: code written by another vCPU between interleaved run slices",
          "[smc][coherence][smp]") {
  Machine m;
  auto v1 = second_vcpu(m, 0x70000);
  // vCPU 0: l: call rbx; add esi, eax; dec ecx; jnz l; hlt   (6 instructions per iteration)
  // f (0x106000): mov eax, imm32; ret
  m.put(Machine::kCode, {0xff, 0xd3, 0x01, 0xc6, 0xff, 0xc9, 0x75, 0xf8, 0xf4});
  m.put(0x106000, {0xb8, 0x00, 0x00, 0x00, 0x00, 0xc3});
  m.vcpu.set_gpr(RBX, 0x106000);
  m.vcpu.set_gpr(RCX, 50);
  m.vcpu.set_gpr(RSI, 0);
  m.vcpu.set_rip(Machine::kCode);
  // vCPU 1 (0x200000): mov [rbx+1], ecx; hlt. Its first store happens before vCPU 0 has
  // decoded f, so vCPU 1 may hold a fast write translation for f's page at that point.
  m.put(0x200000, {0x89, 0x4b, 0x01, 0xf4});
  v1->set_gpr(RBX, 0x106000);
  uint64_t sum = 0;
  for (uint64_t k = 1; k <= 50; ++k) {
    v1->set_gpr(RCX, 7 * k);
    CHECK(run_at(*v1, 0x200000).reason == StopReason::Halted);
    auto r = m.vcpu.run(6, Cycles(kNoDeadline));
    CHECK(r.executed == 6);
    CHECK(m.vcpu.gpr(RAX) == 7 * k);
    sum += 7 * k;
  }
  CHECK(m.vcpu.gpr(RSI) == sum);
  CHECK(m.vcpu.run(10, Cycles(kNoDeadline)).reason == StopReason::Halted);

  // vCPU 0 stopped in the middle of a decoded block (by the instruction budget, then by a
  // deadline); vCPU 1 rewrites an instruction later in that block; vCPU 0 resumes.
  // 0x108000: nop; nop; mov eax, 0x11111111; mov edx, 0x22222222; hlt
  m.put(0x108000, {0x90, 0x90, 0xb8, 0x11, 0x11, 0x11, 0x11, 0xba, 0x22, 0x22, 0x22, 0x22, 0xf4});
  m.put(0x200000, {0x89, 0x0b, 0xf4} /* mov [rbx], ecx; hlt */);
  for (int how = 0; how < 2; ++how) {
    m.put(0x108003, {0x11, 0x11, 0x11, 0x11});
    for (int warm = 0; warm < 2; ++warm) CHECK(run_at(m.vcpu, 0x108000).reason == StopReason::Halted);
    CHECK(m.vcpu.gpr(RAX) == 0x11111111);
    m.vcpu.set_halted(false);
    m.vcpu.set_rip(0x108000);
    if (how == 0) {
      CHECK(m.vcpu.run(2, Cycles(kNoDeadline)).reason == StopReason::InsnLimit);
    } else {
      // nop costs 1 cycle: a deadline 2 cycles ahead stops after both nops.
      const uint64_t c0 = m.vcpu.cycles().value();
      CHECK(m.vcpu.run(1000, Cycles(c0 + 2)).reason == StopReason::Deadline);
    }
    REQUIRE(m.vcpu.rip() == 0x108002);
    v1->set_gpr(RBX, 0x108003);
    v1->set_gpr(RCX, 0x33333333 + how);
    CHECK(run_at(*v1, 0x200000).reason == StopReason::Halted);
    CHECK(m.vcpu.run(10, Cycles(kNoDeadline)).reason == StopReason::Halted);
    CHECK(m.vcpu.gpr(RAX) == 0x33333333u + how);
    CHECK(m.vcpu.gpr(RDX) == 0x22222222);
  }
}

TEST_CASE("SMC: the hypervisor rewrites code (Vcpu::write_linear) in a block another vCPU "
          "stopped in", "[smc][coherence][smp]") {
  // KVM's emulator rewrites a wrong-vendor hypercall through emulator_write_emulated, on
  // behalf of whichever vCPU trapped; the decoded blocks are per VM, so a block another
  // vCPU has cached from that page must not run again with the old bytes.
  Machine m;
  auto v1 = second_vcpu(m, 0x70000);
  // 0x109000: nop; nop; mov eax, imm32; hlt
  m.put(0x109000, {0x90, 0x90, 0xb8, 0x11, 0x11, 0x11, 0x11, 0xf4});
  for (uint8_t k = 0x44; k < 0x48; ++k) {
    for (int warm = 0; warm < 2; ++warm) CHECK(run_at(m.vcpu, 0x109000).reason == StopReason::Halted);
    const uint8_t imm[4] = {k, k, k, k};
    GuestException f;
    REQUIRE(v1->write_linear(0x109003, imm, 4, f) == LinearAccess::Ok);
    CHECK(run_at(m.vcpu, 0x109000).reason == StopReason::Halted);
    CHECK(m.vcpu.gpr(RAX) == 0x01010101u * k);
  }
}

// ---------------------------------------------------------------------------------------
// 2. Instructions that cross a page boundary
// ---------------------------------------------------------------------------------------

TEST_CASE("cross-page instruction: the second page is wherever paging maps it",
          "[crosspage][coherence]") {
  Machine m;
  const uint64_t pt = map_4k_region(m);
  // Linear 0x401000 -> GPA 0x905000, linear 0x402000 -> GPA 0x903000 (not 0x906000).
  m.put64(pt + 1 * 8, 0x905000 | kPteP | kPteW);
  m.put64(pt + 2 * 8, 0x903000 | kPteP | kPteW);
  m.vcpu.set_cr(3, m.vcpu.cr(3));
  // movabs rax, imm64 straddling: 4 bytes at the end of GPA 0x905000, 6 at GPA 0x903000.
  m.put(0x905ffc, {0x48, 0xb8, 0x11, 0x22});
  m.put(0x903000, {0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0xf4});
  // The physically next page holds different bytes: reading GPA+4096 would give these.
  m.put(0x906000, {0x99, 0x99, 0x99, 0x99, 0x99, 0x99, 0xf4});
  // The same first page seen through its identity mapping (linear 0x905ffc) continues into
  // GPA 0x906000: the same start GPA decodes to a different instruction, so a decode of a
  // crossing instruction must never be reused by GPA alone.
  for (int k = 0; k < 3; ++k) {
    m.vcpu.set_gpr(RAX, 0);
    CHECK(run_at(m.vcpu, 0x401ffc).reason == StopReason::Halted);
    CHECK(m.vcpu.gpr(RAX) == 0x8877665544332211ull);
    CHECK(m.vcpu.rip() == 0x402007);
    m.vcpu.set_gpr(RAX, 0);
    CHECK(run_at(m.vcpu, 0x905ffc).reason == StopReason::Halted);
    CHECK(m.vcpu.gpr(RAX) == 0x9999999999992211ull);
    CHECK(m.vcpu.rip() == 0x906007);
  }
}

TEST_CASE("cross-page instruction: a not-present second page is #PF with CR2 = that page",
          "[crosspage][coherence]") {
  for (const bool nxe : {false, true}) {
    SECTION(nxe ? "EFER.NXE=1 (I/D bit reported)" : "EFER.NXE=0") {
      Machine m;
      m.install_idt_all_hlt();
      const uint64_t pt = map_4k_region(m);
      if (nxe) m.vcpu.set_efer(m.vcpu.efer() | 0x800);
      m.put64(pt + 2 * 8, 0);  // linear 0x402000 not present
      m.vcpu.set_cr(3, m.vcpu.cr(3));
      m.put(0x401ffc, {0x48, 0xb8, 0x11, 0x22});
      m.put(0x402000, {0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0xf4});
      m.vcpu.set_gpr(RAX, 0xabcd);
      m.vcpu.set_rip(0x401ffc);
      auto r = m.step();
      CHECK(r.executed == 0);  // a delivery, nothing retired
      CHECK(m.vcpu.rip() == m.handler_addr(14));
      CHECK(m.vcpu.cr(2) == 0x402000);
      const uint64_t sp = m.vcpu.gpr(RSP);
      // Error code (SDM Vol. 3A §4.7): P=0, W=0, U/S=0, I/D only with NXE.
      CHECK(m.get64(sp) == (nxe ? 0x10u : 0u));
      CHECK(m.get64(sp + 8) == 0x401ffc);  // RIP = start of the instruction
      CHECK(m.vcpu.gpr(RAX) == 0xabcd);
      CHECK(m.vcpu.instructions() == 0);
      // Make it present and retry: the instruction now completes.
      m.put64(pt + 2 * 8, 0x402000 | kPteP | kPteW);
      m.vcpu.set_cr(3, m.vcpu.cr(3));
      m.vcpu.set_gpr(RSP, Machine::kStack);
      CHECK(run_at(m.vcpu, 0x401ffc).reason == StopReason::Halted);
      CHECK(m.vcpu.gpr(RAX) == 0x8877665544332211ull);
    }
  }
}

TEST_CASE("cross-page instruction: either page rewritten by the host or the guest between runs",
          "[crosspage][coherence][dma]") {
  Machine m;
  const uint64_t at = 0x101ffc;  // identity mapped: 4 bytes on page 0x101, 6 on 0x102
  m.put(at, {0x48, 0xb8, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0xf4});
  CHECK(run_at(m.vcpu, at).reason == StopReason::Halted);
  CHECK(m.vcpu.gpr(RAX) == 0x8877665544332211ull);
  // Host write (GuestMemory::write) into the second page.
  const uint8_t second[] = {0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8};
  REQUIRE(m.mem.write(Gpa(0x102000), second, sizeof second));
  CHECK(run_at(m.vcpu, at).reason == StopReason::Halted);
  CHECK(m.vcpu.gpr(RAX) == 0xa8a7a6a5a4a32211ull);
  // DMA-style: host pointer + note_write, into the first page's half.
  uint8_t* h = m.mem.host_ptr(Gpa(0x101ffe), 2);
  REQUIRE(h != nullptr);
  h[0] = 0xb1;
  h[1] = 0xb2;
  m.mem.note_write(Gpa(0x101ffe), 2);
  CHECK(run_at(m.vcpu, at).reason == StopReason::Halted);
  CHECK(m.vcpu.gpr(RAX) == 0xa8a7a6a5a4a3b2b1ull);
  // Guest store into the first page's half from code on another page.
  m.put(0x105000, {0x66, 0xc7, 0x03, 0xcd, 0xab, 0xff, 0xe1} /* mov word [rbx], 0xabcd; jmp rcx */);
  m.vcpu.set_gpr(RBX, 0x101ffe);
  m.vcpu.set_gpr(RCX, at);
  CHECK(run_at(m.vcpu, 0x105000).reason == StopReason::Halted);
  CHECK(m.vcpu.gpr(RAX) == 0xa8a7a6a5a4a3abcdull);
  // A store that itself straddles both halves (2 bytes on each page).
  m.put(0x105000, {0x89, 0x13, 0xff, 0xe1} /* mov [rbx], edx; jmp rcx */);
  m.vcpu.set_gpr(RBX, 0x101ffe);
  m.vcpu.set_gpr(RDX, 0x04030201);
  CHECK(run_at(m.vcpu, 0x105000).reason == StopReason::Halted);
  CHECK(m.vcpu.gpr(RAX) == 0xa8a7a6a504030201ull);
}

TEST_CASE("cross-page instruction: the second page remapped by paging, then INVLPG",
          "[crosspage][coherence][mmu]") {
  Machine m;
  const uint64_t pt = map_4k_region(m);
  m.put64(pt + 2 * 8, 0x903000 | kPteP | kPteW);
  m.vcpu.set_cr(3, m.vcpu.cr(3));
  m.put(0x401ffc, {0x48, 0xb8, 0x11, 0x22});
  m.put(0x903000, {0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0xf4});
  m.put(0x904000, {0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xf4});
  CHECK(run_at(m.vcpu, 0x401ffc).reason == StopReason::Halted);
  CHECK(m.vcpu.gpr(RAX) == 0x8877665544332211ull);
  // Guest: mov [rbx], rcx (new PTE for 0x402000); invlpg [rdx]; jmp rsi
  m.put(Machine::kCode, {0x48, 0x89, 0x0b, 0x0f, 0x01, 0x3a, 0xff, 0xe6});
  m.vcpu.set_gpr(RBX, pt + 2 * 8);
  m.vcpu.set_gpr(RCX, 0x904000 | kPteP | kPteW);
  m.vcpu.set_gpr(RDX, 0x402000);
  m.vcpu.set_gpr(RSI, 0x401ffc);
  CHECK(run_at(m.vcpu, Machine::kCode).reason == StopReason::Halted);
  CHECK(m.vcpu.gpr(RAX) == 0xc8c7c6c5c4c32211ull);
}

TEST_CASE("aliased linear addresses: one physical code page, RIP-relative results per alias",
          "[alias][coherence][smc]") {
  Machine m;
  const uint64_t pt = map_4k_region(m);
  // Linear 0x401000 and 0x403000 both map GPA 0x901000.
  const uint64_t L1 = 0x401000, L2 = 0x403000;
  m.put64(pt + 1 * 8, 0x901000 | kPteP | kPteW);
  m.put64(pt + 3 * 8, 0x901000 | kPteP | kPteW);
  m.vcpu.set_cr(3, m.vcpu.cr(3));
  // 0: mov esi, 0x11111111; 5: lea rax, [rip]; 12: call f; 17: hlt; 18: f: pop rdx; push rdx; ret
  m.put(0x901000, {0xbe, 0x11, 0x11, 0x11, 0x11, 0x48, 0x8d, 0x05, 0x00, 0x00, 0x00, 0x00, 0xe8,
                   0x01, 0x00, 0x00, 0x00, 0xf4, 0x5a, 0x52, 0xc3});
  // Before the page holds decoded code, the guest writes data through the L2 alias, so a
  // fast write translation for L2 may exist when L1's decode marks the page as code.
  m.put(Machine::kCode, {0x48, 0x89, 0x0b, 0xf4} /* mov [rbx], rcx; hlt */);
  m.vcpu.set_gpr(RBX, L2 + 0x800);
  m.vcpu.set_gpr(RCX, 0x5555);
  CHECK(run_at(m.vcpu, Machine::kCode).reason == StopReason::Halted);
  CHECK(m.get64(0x901800) == 0x5555);

  auto check_at = [&](uint64_t base, uint32_t esi) {
    CHECK(run_at(m.vcpu, base).reason == StopReason::Halted);
    CHECK(m.vcpu.gpr(RSI) == esi);
    CHECK(m.vcpu.gpr(RAX) == base + 12);  // lea rax, [rip]: the linear address
    CHECK(m.vcpu.gpr(RDX) == base + 17);  // the return address CALL pushed
    CHECK(m.vcpu.rip() == base + 18);
    CHECK(m.vcpu.gpr(RSP) == Machine::kStack);
  };
  for (int k = 0; k < 2; ++k) {
    check_at(L1, 0x11111111);
    check_at(L2, 0x11111111);
  }
  // Patch the code through L2 (mov [rbx], ecx at the imm32 of mov esi); run through L1.
  m.put(Machine::kCode, {0x89, 0x0b, 0xf4} /* mov [rbx], ecx; hlt */);
  m.vcpu.set_gpr(RBX, L2 + 1);
  m.vcpu.set_gpr(RCX, 0x22222222);
  CHECK(run_at(m.vcpu, Machine::kCode).reason == StopReason::Halted);
  check_at(L1, 0x22222222);
  // And through L1 (identity-mapped GPA alias is a third one), run through L2.
  m.vcpu.set_gpr(RBX, 0x901001);
  m.vcpu.set_gpr(RCX, 0x33333333);
  CHECK(run_at(m.vcpu, Machine::kCode).reason == StopReason::Halted);
  check_at(L2, 0x33333333);
  check_at(0x901000, 0x33333333);
}

// ---------------------------------------------------------------------------------------
// 3. DMA-like host writes
// ---------------------------------------------------------------------------------------

TEST_CASE("host writes into a cached hot loop: between runs and while stopped mid-block",
          "[dma][coherence]") {
  // kCode: mov ecx, 100; l: add eax, 1; add edx, 2; dec ecx; jnz l; hlt
  // The loop body (4 instructions, one decoded block) starts at kCode+5.
  enum HostWay { kWrite, kHostPtr };
  for (const HostWay way : {kWrite, kHostPtr}) {
    SECTION(way == kWrite ? "GuestMemory::write" : "host_ptr + note_write") {
      Machine m;
      m.code({0xb9, 0x64, 0x00, 0x00, 0x00, 0x83, 0xc0, 0x01, 0x83, 0xc2, 0x02, 0xff, 0xc9, 0x75,
              0xf6, 0xf4});
      auto host_patch = [&](uint64_t gpa, uint8_t v) {
        if (way == kWrite) {
          REQUIRE(m.mem.write(Gpa(gpa), &v, 1));
        } else {
          uint8_t* p = m.mem.host_ptr(Gpa(gpa), 1);
          REQUIRE(p != nullptr);
          *p = v;
          m.mem.note_write(Gpa(gpa), 1);
        }
      };
      CHECK(m.run(1000).reason == StopReason::Halted);
      CHECK(m.vcpu.gpr(RAX) == 100);
      CHECK(m.vcpu.gpr(RDX) == 200);
      // Between runs: add eax, 1 -> add eax, 3.
      host_patch(Machine::kCode + 7, 3);
      m.vcpu.set_gpr(RAX, 0);
      m.vcpu.set_gpr(RDX, 0);
      CHECK(run_at(m.vcpu, Machine::kCode, 1000).reason == StopReason::Halted);
      CHECK(m.vcpu.gpr(RAX) == 300);
      CHECK(m.vcpu.gpr(RDX) == 200);
      // Mid-block: stop after mov ecx + 10 iterations + the 11th "add eax" (42 steps), so
      // RIP is on "add edx, 2" inside the hot block; patch it to "add edx, 5".
      m.vcpu.set_gpr(RAX, 0);
      m.vcpu.set_gpr(RDX, 0);
      m.vcpu.set_halted(false);
      m.vcpu.set_rip(Machine::kCode);
      CHECK(m.vcpu.run(42, Cycles(kNoDeadline)).reason == StopReason::InsnLimit);
      REQUIRE(m.vcpu.rip() == Machine::kCode + 8);
      host_patch(Machine::kCode + 10, 5);
      CHECK(m.vcpu.run(1000, Cycles(kNoDeadline)).reason == StopReason::Halted);
      CHECK(m.vcpu.gpr(RAX) == 300);
      CHECK(m.vcpu.gpr(RDX) == 10 * 2 + 90 * 5);
    }
  }
}

TEST_CASE("writes that touch only data bytes on a code page keep execution right",
          "[dma][smc][coherence]") {
  Machine m;
  // mov ecx, 50; l: add dword [rip+d], 3; dec ecx; jnz l; mov eax, [rip+d]; hlt; d: dd 0
  m.code({0xb9, 0x32, 0x00, 0x00, 0x00, 0x83, 0x05, 0x0b, 0x00, 0x00, 0x00, 0x03, 0xff, 0xc9, 0x75,
          0xf5, 0x8b, 0x05, 0x01, 0x00, 0x00, 0x00, 0xf4, 0x00, 0x00, 0x00, 0x00});
  const uint64_t d = Machine::kCode + 0x17;
  CHECK(m.run(1000).reason == StopReason::Halted);  // the guest's own data stores
  CHECK(m.vcpu.gpr(RAX) == 150);
  CHECK(m.vcpu.instructions() == 1 + 3 * 50 + 2);
  // Host rewrites only the data word, both ways, between runs.
  m.put32(d, 1000);
  CHECK(run_at(m.vcpu, Machine::kCode, 1000).reason == StopReason::Halted);
  CHECK(m.vcpu.gpr(RAX) == 1150);
  uint8_t* p = m.mem.host_ptr(Gpa(d), 4);
  REQUIRE(p != nullptr);
  const uint32_t v = 2000;
  std::memcpy(p, &v, 4);
  m.mem.note_write(Gpa(d), 4);
  CHECK(run_at(m.vcpu, Machine::kCode, 1000).reason == StopReason::Halted);
  CHECK(m.vcpu.gpr(RAX) == 2150);
  // And while the vCPU is stopped mid-block (on "dec ecx" of the 3rd iteration).
  m.put32(d, 0);
  m.vcpu.set_halted(false);
  m.vcpu.set_rip(Machine::kCode);
  CHECK(m.vcpu.run(1 + 3 * 2 + 1, Cycles(kNoDeadline)).reason == StopReason::InsnLimit);
  REQUIRE(m.vcpu.rip() == Machine::kCode + 12);
  m.put32(d, 100);
  CHECK(m.vcpu.run(1000, Cycles(kNoDeadline)).reason == StopReason::Halted);
  CHECK(m.vcpu.gpr(RAX) == 100 + 3 * 47);
}

// ---------------------------------------------------------------------------------------
// 4. INVLPG and CR3
// ---------------------------------------------------------------------------------------

TEST_CASE("INVLPG after remapping a code page runs the new code, also from that page itself",
          "[mmu][coherence][invlpg]") {
  Machine m;
  const uint64_t pt = map_4k_region(m);
  const uint64_t pte = pt + 1 * 8;  // linear 0x401000
  m.put64(pte, 0x901000 | kPteP | kPteW);
  m.vcpu.set_cr(3, m.vcpu.cr(3));
  m.put(0x901000, {0xb8, 0x01, 0x00, 0x00, 0x00, 0xf4} /* mov eax, 1; hlt */);
  m.put(0x902000, {0xb8, 0x02, 0x00, 0x00, 0x00, 0xf4} /* mov eax, 2; hlt */);
  CHECK(run_at(m.vcpu, 0x401000).reason == StopReason::Halted);
  CHECK(m.vcpu.gpr(RAX) == 1);

  // From another page: mov [rbx], rcx; invlpg [rdx]; jmp rdx
  m.put(Machine::kCode, {0x48, 0x89, 0x0b, 0x0f, 0x01, 0x3a, 0xff, 0xe2});
  m.vcpu.set_gpr(RBX, pte);
  m.vcpu.set_gpr(RCX, 0x902000 | kPteP | kPteW);
  m.vcpu.set_gpr(RDX, 0x401000);
  CHECK(run_at(m.vcpu, Machine::kCode).reason == StopReason::Halted);
  CHECK(m.vcpu.gpr(RAX) == 2);

  // Without INVLPG the SDM allows either translation (§4.10.4.2: a stale TLB entry may be
  // used), so only "one of the two, and nothing else" is required here.
  m.put(Machine::kCode, {0x48, 0x89, 0x0b, 0xff, 0xe2} /* mov [rbx], rcx; jmp rdx */);
  m.vcpu.set_gpr(RCX, 0x901000 | kPteP | kPteW);
  m.vcpu.set_gpr(RAX, 0);
  CHECK(run_at(m.vcpu, Machine::kCode).reason == StopReason::Halted);
  const uint64_t no_invlpg = m.vcpu.gpr(RAX);
  CHECK((no_invlpg == 1 || no_invlpg == 2));
  // Then INVLPG (from the TLB's point of view nothing changed in the PTE) gives the new one.
  m.put(Machine::kCode, {0x0f, 0x01, 0x3a, 0xff, 0xe2} /* invlpg [rdx]; jmp rdx */);
  CHECK(run_at(m.vcpu, Machine::kCode).reason == StopReason::Halted);
  CHECK(m.vcpu.gpr(RAX) == 1);

  // The page remaps itself: INVLPG is serializing (SDM Vol. 3A §8.3), so the instruction
  // after it is fetched through the new translation. Both physical pages hold the same
  // two instructions at offset 0x100, then different code.
  //   0x100: mov [rbx], rcx; invlpg [rdx]; mov eax, imm32; hlt
  for (uint64_t g : {0x901000ull, 0x902000ull}) {
    m.put(g + 0x100, {0x48, 0x89, 0x0b, 0x0f, 0x01, 0x3a, 0xb8, static_cast<uint8_t>(g >> 12),
                      static_cast<uint8_t>(g >> 20), 0x00, 0x00, 0xf4});
  }
  for (int k = 0; k < 4; ++k) {
    const uint64_t to = (k % 2 == 0) ? 0x902000 : 0x901000;
    m.vcpu.set_gpr(RCX, to | kPteP | kPteW);
    m.vcpu.set_gpr(RAX, 0);
    CHECK(run_at(m.vcpu, 0x401100).reason == StopReason::Halted);
    CHECK(m.vcpu.gpr(RAX) == (to >> 12));
  }
}

namespace {
// A second address space: a copy of the Machine's identity map in which linear page
// 0x401000 maps GPA `code_gpa` and 0x402000 maps `data_gpa` (PML4 at 0x40000).
constexpr uint64_t kPml4B = 0x40000, kPdptB = 0x41000, kPdB = 0x42000, kPtB = 0x43000;
void build_space_b(Machine& m, uint64_t code_gpa, uint64_t data_gpa) {
  m.put64(kPml4B, kPdptB | 7);
  m.put64(kPdptB, kPdB | 7);
  for (uint64_t j = 0; j < 512; ++j) m.put64(kPdB + j * 8, (j << 21) | 0x83);
  for (uint64_t k = 0; k < 512; ++k) m.put64(kPtB + k * 8, (0x400000 + (k << 12)) | 7);
  m.put64(kPtB + 1 * 8, code_gpa | 7);
  m.put64(kPtB + 2 * 8, data_gpa | 7);
  m.put64(kPdB + 2 * 8, kPtB | 7);
}
}  // namespace

TEST_CASE("CR3 reload: the next instruction comes from the new address space",
          "[mmu][coherence][cr3]") {
  Machine m;
  const uint64_t pt = map_4k_region(m);
  m.put64(pt + 1 * 8, 0x901000 | 7);
  m.vcpu.set_cr(3, m.vcpu.cr(3));
  build_space_b(m, 0x902000, 0x402000);
  // Same linear page, two physical pages; MOV CR3 is serializing (SDM Vol. 3A §8.3), so the
  // instruction after it is fetched through the new CR3:
  //   A (GPA 0x901000): mov cr3, rsi; mov eax, 0xA; hlt
  //   B (GPA 0x902000): mov cr3, rdi; mov eax, 0xB; hlt
  m.put(0x901000, {0x0f, 0x22, 0xde, 0xb8, 0x0a, 0x00, 0x00, 0x00, 0xf4});
  m.put(0x902000, {0x0f, 0x22, 0xdf, 0xb8, 0x0b, 0x00, 0x00, 0x00, 0xf4});
  m.vcpu.set_gpr(RSI, kPml4B);
  m.vcpu.set_gpr(RDI, Machine::kPml4);
  for (int k = 0; k < 6; ++k) {
    const bool in_a = m.vcpu.cr(3) == Machine::kPml4;
    CHECK(run_at(m.vcpu, 0x401000).reason == StopReason::Halted);
    CHECK(m.vcpu.gpr(RAX) == (in_a ? 0xBu : 0xAu));
    CHECK(m.vcpu.cr(3) == (in_a ? kPml4B : Machine::kPml4));
  }
  // Host-side CR3 switch between runs (a scheduler restoring a context).
  m.vcpu.set_cr(3, kPml4B);
  m.put(Machine::kCode, {0xff, 0xe2} /* jmp rdx */);
  m.vcpu.set_gpr(RDX, 0x401003);
  CHECK(run_at(m.vcpu, Machine::kCode).reason == StopReason::Halted);
  CHECK(m.vcpu.gpr(RAX) == 0xB);
  m.vcpu.set_cr(3, Machine::kPml4);
  CHECK(run_at(m.vcpu, Machine::kCode).reason == StopReason::Halted);
  CHECK(m.vcpu.gpr(RAX) == 0xA);
}

TEST_CASE("global code and data pages: kept across CR3 writes with CR4.PGE, dropped by "
          "INVLPG and by toggling CR4.PGE",
          "[mmu][coherence][cr3][global]") {
  Machine m;
  const uint64_t pt = map_4k_region(m);
  // Space A: 0x401000 -> GPA 0x901000 (code "mov eax, 1"), 0x402000 -> 0x903000 (data 1),
  // both global. Space B: the same linear pages -> 0x902000 ("mov eax, 2") / 0x904000 (2).
  m.put64(pt + 1 * 8, 0x901000 | 7 | kPteG);
  m.put64(pt + 2 * 8, 0x903000 | 7 | kPteG);
  build_space_b(m, 0x902000, 0x904000);
  m.put(0x901000, {0xb8, 0x01, 0x00, 0x00, 0x00, 0xf4});
  m.put(0x902000, {0xb8, 0x02, 0x00, 0x00, 0x00, 0xf4});
  m.put64(0x903000, 1);
  m.put64(0x904000, 2);
  m.vcpu.set_cr(4, m.vcpu.cr(4) | 0x80);  // CR4.PGE
  m.vcpu.set_cr(3, m.vcpu.cr(3));
  m.vcpu.set_gpr(RBX, 0x401000);
  m.vcpu.set_gpr(RDX, 0x402000);
  m.vcpu.set_gpr(RSI, kPml4B);
  m.vcpu.set_gpr(RDI, Machine::kPml4);
  auto run_prog = [&](std::initializer_list<uint8_t> prefix) {
    // <prefix>; mov rcx, [rdx]; jmp rbx   (kCode is identity-mapped in both spaces)
    std::vector<uint8_t> p(prefix);
    for (uint8_t b : {0x48, 0x8b, 0x0a, 0xff, 0xe3}) p.push_back(b);
    m.put(Machine::kCode, p);
    m.vcpu.set_gpr(RAX, 0);
    m.vcpu.set_gpr(RCX, 0);
    CHECK(run_at(m.vcpu, Machine::kCode).reason == StopReason::Halted);
    return std::make_pair(m.vcpu.gpr(RAX), m.vcpu.gpr(RCX));
  };
  using P = std::pair<uint64_t, uint64_t>;
  CHECK(run_prog({}) == P{1, 1});  // A's global translations are now cached
  // MOV CR3 to B keeps global entries (SDM Vol. 3A §4.10.4.1). The SDM lets a processor
  // drop any TLB entry at any time, so this pins pvsim's documented TLB model
  // (core/README.md "MMU": global entries survive CR3 writes when CR4.PGE) rather than an
  // architectural guarantee.
  CHECK(run_prog({0x0f, 0x22, 0xde} /* mov cr3, rsi */) == P{1, 1});
  // INVLPG drops a global entry too (SDM Vol. 3A §4.10.4.1): B's translations now.
  CHECK(run_prog({0x0f, 0x01, 0x3b, 0x0f, 0x01, 0x3a} /* invlpg [rbx]; invlpg [rdx] */) ==
        P{2, 2});
  // B's entries are not global: a CR3 write back to A drops them.
  CHECK(run_prog({0x0f, 0x22, 0xdf} /* mov cr3, rdi */) == P{1, 1});
  CHECK(run_prog({0x0f, 0x22, 0xde} /* mov cr3, rsi */) == P{1, 1});  // model, as above
  // Clearing and setting CR4.PGE flushes everything, global entries included (§4.10.4.1).
  // mov rax, cr4; btr rax, 7; mov cr4, rax; bts rax, 7; mov cr4, rax
  CHECK(run_prog({0x0f, 0x20, 0xe0, 0x48, 0x0f, 0xba, 0xf0, 0x07, 0x0f, 0x22, 0xe0, 0x48, 0x0f,
                  0xba, 0xe8, 0x07, 0x0f, 0x22, 0xe0}) == P{2, 2});
  CHECK((m.vcpu.cr(4) & 0x80) != 0);
  // Back to A and cache A's globals again; a CR4.PGE toggle from the host (set_cr) in B
  // must flush them as well.
  CHECK(run_prog({0x0f, 0x22, 0xdf} /* mov cr3, rdi */) == P{1, 1});
  m.vcpu.set_cr(3, kPml4B);
  m.vcpu.set_cr(4, m.vcpu.cr(4) & ~0x80ull);
  m.vcpu.set_cr(4, m.vcpu.cr(4) | 0x80);
  CHECK(run_prog({}) == P{2, 2});
}
