// tests/core/test_deadline.cpp — exact instruction-boundary semantics of Vcpu::run().
//
// Contract (core/vcpu.h, core/README.md "Execution model"): run(max, deadline) stops at
// the FIRST instruction boundary where local cycles >= deadline or `max` steps are done,
// whatever the interpreter does internally (decoded blocks, per-block cycle accounting,
// threaded dispatch). The oracle is step(): a second vCPU in the same VM single-steps
// the same program from the same state, and its sequence of boundaries (RIP, cycles,
// instructions, GPRs, RFLAGS, data memory) is what every run() must land on exactly.
//
// Programs are straight-line mixes of 1..40 instructions drawn from a fixed-seed
// splitmix64 stream (core/prng.h): ALU, shifts, IMUL, loads/stores/read-modify-write,
// push/pop, a load from a never-touched page (a first-touch EPT violation, +1200 cycles,
// in the middle of a block), REP STOS/MOVS (every element is an instruction boundary of its
// own, core/README.md "REP string instructions"), a taken and a not-taken
// Jcc and Jccs whose direction depends on the data. An interrupt made pending between
// two run() calls (the scheduler stopped the vCPU at a deadline in the middle of a
// block, the platform then called notify_interrupt()) must be delivered at exactly that
// boundary (SDM Vol. 3A §6.8: external interrupts are recognised at instruction
// boundaries).
#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
#include <vector>

#include "core/prng.h"
#include "machine.h"

using namespace pvsim;
using pvsim::test::Machine;

namespace {
enum { RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8, R9, R10, R11, R12, R13, R14, R15 };

constexpr uint64_t kNever = ~0ull;
constexpr uint64_t kProg = Machine::kCode;          // program start
constexpr uint64_t kData = 0x180000;                // R14: data the program reads and writes
constexpr uint64_t kDataLen = 0x800;
constexpr uint64_t kStackLo = Machine::kStack - 0x400, kStackLen = 0x800;
constexpr uint64_t kFreshFirst = 0x200000;          // R15: pages never touched by the guest
constexpr uint64_t kFreshEnd = Machine::kRam;
constexpr uint8_t kIrqVector = 0x40;
constexpr uint64_t kRflags = 0x202;                 // IF=1: interrupts can be taken

// Registers a generated instruction may write (not RSP, R14 = data base, R15 = fresh page).
constexpr std::array<unsigned, 13> kPool = {RAX, RCX, RDX, RBX, RBP, RSI, RDI,
                                            R8,  R9,  R10, R11, R12, R13};

// ---- a tiny x86-64 encoder for the forms the generator uses (SDM Vol. 2 §2.2.1 REX) ----
using Bytes = std::vector<uint8_t>;
uint8_t rex(unsigned w, unsigned r, unsigned b) {
  return static_cast<uint8_t>(0x40 | (w << 3) | ((r >> 3) << 2) | (b >> 3));
}
uint8_t modrm(unsigned mod, unsigned reg, unsigned rm) {
  return static_cast<uint8_t>((mod << 6) | ((reg & 7) << 3) | (rm & 7));
}
void put_le(Bytes& b, uint64_t v, unsigned n) {
  for (unsigned k = 0; k < n; ++k) b.push_back(static_cast<uint8_t>(v >> (8 * k)));
}

struct Program {
  Bytes code;                // ends with HLT, which no run reaches (max <= N)
  std::vector<uint64_t> ept_offsets;  // offsets of loads from the fresh page (R15)
  bool has_string = false, has_taken = false, has_not_taken = false;
};

class Generator {
 public:
  explicit Generator(uint64_t seed) : m_rng(seed) {}
  SplitMix64& rng() { return m_rng; }

  Program make(unsigned slots) {
    Program p;
    std::vector<int> kinds(slots);
    for (int& k : kinds) k = static_cast<int>(m_rng.below(100));
    // Long enough programs get every special item at least once, at a random slot.
    if (slots >= 8) {
      const int must[] = {kEpt, kString, kTaken, kNotTaken};
      for (int m : must) kinds[m_rng.below(slots)] = m;
    }
    for (int k : kinds) emit(p, k);
    p.code.push_back(0xf4);  // hlt
    return p;
  }

 private:
  // Kind thresholds over [0, 100): plain instructions are the bulk.
  static constexpr int kEpt = 90, kString = 93, kTaken = 95, kNotTaken = 97, kDataJcc = 99;

  unsigned reg() { return kPool[m_rng.below(kPool.size())]; }
  uint8_t disp8() { return static_cast<uint8_t>(8 * m_rng.below(16)); }  // [r14 + 0..120]

  void alu_rr(Bytes& b) {
    static constexpr uint8_t ops[] = {0x01, 0x09, 0x11, 0x19, 0x21, 0x29, 0x31, 0x39, 0x85, 0x89};
    const unsigned d = reg(), s = reg();
    b.insert(b.end(), {rex(1, s, d), ops[m_rng.below(10)], modrm(3, s, d)});
  }

  void emit(Program& p, int kind) {
    Bytes& b = p.code;
    if (kind == kEpt) {
      // mov r64, [r15 + disp8]: the first access to R15's page is an EPT violation.
      const unsigned d = reg();
      p.ept_offsets.push_back(b.size());
      b.insert(b.end(), {rex(1, d, R15), 0x8b, modrm(1, d, R15), disp8()});
      return;
    }
    if (kind == kString) {
      p.has_string = true;
      const unsigned form = static_cast<unsigned>(m_rng.below(3));
      // Element counts stay small: every element is a boundary of the reference, and every
      // boundary is a run() the test checks.
      const uint64_t n = form == 2 ? 2 + m_rng.below(20) : 2 + m_rng.below(40);
      b.push_back(0xb9);  // mov ecx, n
      put_le(b, n, 4);
      // lea rdi, [r14 + 0x400 + off] (disp32)
      const uint64_t off = form == 2 ? 0 : m_rng.below(0x400 - 41 + 1);
      b.insert(b.end(), {rex(1, RDI, R14), 0x8d, modrm(2, RDI, R14)});
      put_le(b, 0x400 + off, 4);
      if (form == 0) {
        b.insert(b.end(), {0xf3, 0xaa});  // rep stosb
      } else if (form == 1) {
        // lea rsi, [r14 + off8]; rep movsb
        b.insert(b.end(), {rex(1, RSI, R14), 0x8d, modrm(1, RSI, R14), disp8(), 0xf3, 0xa4});
      } else {
        b.insert(b.end(), {0xf3, 0x48, 0xab});  // rep stosq
      }
      return;
    }
    if (kind == kTaken) {
      p.has_taken = true;
      b.insert(b.end(), {0xf9, 0x72, 0x02, 0x0f, 0x0b});  // stc; jc +2; (ud2 skipped)
      return;
    }
    if (kind == kNotTaken) {
      p.has_not_taken = true;
      b.insert(b.end(), {0xf8, 0x72, 0x01, 0x90});  // clc; jc +1 (not taken); nop
      return;
    }
    if (kind >= kDataJcc) {
      // jcc +3 over a 3-byte ALU instruction; the direction depends on earlier results.
      b.insert(b.end(), {static_cast<uint8_t>(0x70 | m_rng.below(16)), 0x03});
      alu_rr(b);
      return;
    }
    const unsigned d = reg(), s = reg();
    switch (m_rng.below(14)) {
      case 0:
      case 1:
        alu_rr(b);
        break;
      case 2: {  // group-1 ALU r64, imm8 (add/or/adc/sbb/and/sub/xor/cmp)
        const unsigned ext = static_cast<unsigned>(m_rng.below(8));
        b.insert(b.end(), {rex(1, 0, d), 0x83, modrm(3, ext, d),
                           static_cast<uint8_t>(m_rng.next())});
        break;
      }
      case 3:  // mov r32, imm32
        if (d >= 8) b.push_back(0x41);
        b.push_back(static_cast<uint8_t>(0xb8 + (d & 7)));
        put_le(b, m_rng.next(), 4);
        break;
      case 4:  // imul r64, r64 (3 cycles)
        b.insert(b.end(), {rex(1, d, s), 0x0f, 0xaf, modrm(3, d, s)});
        break;
      case 5: {  // shl/shr/sar/rol/ror r64, imm8
        static constexpr unsigned exts[] = {4, 5, 7, 0, 1};
        b.insert(b.end(), {rex(1, 0, d), 0xc1, modrm(3, exts[m_rng.below(5)], d),
                           static_cast<uint8_t>(m_rng.below(64))});
        break;
      }
      case 6: {  // inc/dec/not/neg r64
        static constexpr uint8_t op[] = {0xff, 0xff, 0xf7, 0xf7};
        static constexpr unsigned ext[] = {0, 1, 2, 3};
        const unsigned k = static_cast<unsigned>(m_rng.below(4));
        b.insert(b.end(), {rex(1, 0, d), op[k], modrm(3, ext[k], d)});
        break;
      }
      case 7:  // mov r64, [r14 + disp8]
        b.insert(b.end(), {rex(1, d, R14), 0x8b, modrm(1, d, R14), disp8()});
        break;
      case 8:  // mov [r14 + disp8], r64
        b.insert(b.end(), {rex(1, s, R14), 0x89, modrm(1, s, R14), disp8()});
        break;
      case 9:  // add r64, [r14 + disp8]
        b.insert(b.end(), {rex(1, d, R14), 0x03, modrm(1, d, R14), disp8()});
        break;
      case 10:  // add [r14 + disp8], r64 (read-modify-write)
        b.insert(b.end(), {rex(1, s, R14), 0x01, modrm(1, s, R14), disp8()});
        break;
      case 11:  // push r64 / pop r64
        if (s >= 8) b.push_back(0x41);
        b.push_back(static_cast<uint8_t>((m_rng.below(2) ? 0x50 : 0x58) + (s & 7)));
        break;
      case 12:  // xchg r64, r64 (2 cycles)
        b.insert(b.end(), {rex(1, s, d), 0x87, modrm(3, s, d)});
        break;
      default:  // lea r64, [r14 + disp8]
        b.insert(b.end(), {rex(1, d, R14), 0x8d, modrm(1, d, R14), disp8()});
        break;
    }
  }

  SplitMix64 m_rng;
};

// One instruction boundary of the reference (single-stepped) execution.
struct Boundary {
  uint64_t rip = 0, rflags = 0, dcycles = 0, dinsns = 0;
  std::array<uint64_t, 16> gpr{};
  std::vector<uint8_t> data;  // kData..kData+kDataLen
};

struct Fixture {
  Machine m;
  std::unique_ptr<Vcpu> dut;  // vCPU 1: the one run() is tested on
  Bytes data0, stack0;
  std::array<uint64_t, 16> gpr0{};
  uint64_t next_fresh = kFreshFirst;
  bool irq_armed = false;

  Fixture() {
    m.tracer.set_text_output(nullptr);  // EPT exits are traced; keep no text copy
    VcpuConfig cfg;
    cfg.index = 1;
    cfg.count = 2;
    dut = std::make_unique<Vcpu>(cfg, m.mem, m.env, m.tracer);
    Vcpu& v = *dut;
    v.set_gdtr(m.vcpu.gdtr());
    v.set_cr(0, m.vcpu.cr(0));
    v.set_cr(3, m.vcpu.cr(3));
    v.set_cr(4, m.vcpu.cr(4));
    v.set_efer(m.vcpu.efer());
    for (SegReg s : {SegReg::CS, SegReg::SS, SegReg::DS, SegReg::ES, SegReg::FS, SegReg::GS})
      v.set_seg(s, m.vcpu.seg(s));
    v.set_tr(m.vcpu.tr());
    // Vector 0x40: an interrupt gate whose handler is IRETQ (back to the interrupted
    // boundary). Both vCPUs share the IDT.
    m.put(m.handler_addr(kIrqVector), {0x48, 0xcf});
    m.set_gate(kIrqVector, m.handler_addr(kIrqVector));
    v.set_idtr(m.vcpu.idtr());
    // One interrupt per notify_interrupt() while armed.
    auto poll = [this](Vcpu&) {
      if (!irq_armed) return -1;
      irq_armed = false;
      return static_cast<int>(kIrqVector);
    };
    m.vcpu.set_interrupt_poll(poll);
    dut->set_interrupt_poll(poll);
  }

  uint64_t fresh_page() {
    if (next_fresh >= kFreshEnd) FAIL("the program needs more never-touched pages than RAM has");
    return next_fresh;
  }
  void consume_fresh_page() { next_fresh += 0x1000; }

  // Puts `v` at the program start with the initial state; R15 = `fresh`.
  void reset(Vcpu& v, uint64_t fresh) {
    // (no Catch2 assertion per run: ~300k runs)
    if (!m.mem.write(Gpa(kData), data0.data(), data0.size()) ||
        !m.mem.write(Gpa(kStackLo), stack0.data(), stack0.size()))
      FAIL("cannot restore the data and stack regions");
    for (unsigned r = 0; r < 16; ++r) v.set_gpr(r, gpr0[r]);
    v.set_gpr(R15, fresh);
    v.set_rip(kProg);
    v.set_rflags(kRflags);
    v.set_halted(false);
  }

  Boundary capture(const Vcpu& v, uint64_t c0, uint64_t i0) const {
    Boundary b;
    b.rip = v.rip();
    b.rflags = v.rflags();
    b.dcycles = v.cycles().value() - c0;
    b.dinsns = v.instructions() - i0;
    for (unsigned r = 0; r < 16; ++r) b.gpr[r] = v.gpr(r);
    b.data.resize(kDataLen);
    m.mem.read(Gpa(kData), b.data.data(), kDataLen);
    return b;
  }
};

// Compares the dut's state after a run with reference boundary `want` (R15 differs by
// design: each run that reaches the EPT load gets its own never-touched page). The fast
// path compares without Catch2 assertions (there are ~300k runs); a mismatch reports
// every differing field.
bool same_state(const Fixture& f, const Boundary& want, uint64_t c0, uint64_t i0,
                uint64_t fresh) {
  const Vcpu& v = *f.dut;
  if (v.rip() != want.rip || v.cycles().value() - c0 != want.dcycles ||
      v.instructions() - i0 != want.dinsns || v.rflags() != want.rflags || v.gpr(R15) != fresh)
    return false;
  for (unsigned r = 0; r < 15; ++r)
    if (v.gpr(r) != want.gpr[r]) return false;
  const uint8_t* d = f.m.mem.host_ptr(Gpa(kData), kDataLen);
  return d && std::memcmp(d, want.data.data(), kDataLen) == 0;
}

void check_boundary(const Fixture& f, const Boundary& want, uint64_t c0, uint64_t i0,
                    uint64_t fresh) {
  if (same_state(f, want, c0, i0, fresh)) return;
  const Boundary got = f.capture(*f.dut, c0, i0);
  CHECK(got.rip == want.rip);
  CHECK(got.dcycles == want.dcycles);
  CHECK(got.dinsns == want.dinsns);
  CHECK(got.rflags == want.rflags);
  for (unsigned r = 0; r < 15; ++r) {
    INFO("GPR " << r);
    CHECK(got.gpr[r] == want.gpr[r]);
  }
  CHECK(got.gpr[R15] == fresh);
  CHECK(got.data == want.data);
}

struct Totals {
  uint64_t programs = 0, runs = 0, irq_cases = 0, max_len = 0, with_ept = 0, with_string = 0,
           with_both_jcc = 0, irq_overhead = 0, fresh_pages_max = 0, slice_cut = 0;
};

// Generates one program, single-steps the reference, then checks every run() form.
void check_program(Generator& gen, unsigned slots, Totals& tot) {
  Fixture f;
  const Program prog = gen.make(slots);
  SplitMix64& rng = gen.rng();
  f.m.put(kProg, prog.code);
  f.data0.resize(kDataLen);
  for (uint8_t& x : f.data0) x = static_cast<uint8_t>(rng.next());
  f.stack0.assign(kStackLen, 0);
  for (unsigned r = 0; r < 16; ++r) f.gpr0[r] = rng.next();
  f.gpr0[RSP] = Machine::kStack;
  f.gpr0[R14] = kData;
  const uint64_t hlt_at = kProg + prog.code.size() - 1;

  // Warm-up on vCPU 0: an interrupt at the first boundary and the whole program, so every
  // page except the fresh R15 pages has had its first-touch EPT exit (IDT, GDT, handler,
  // stack, data, code, page tables) before anything is measured.
  Vcpu& ref = f.m.vcpu;
  f.reset(ref, f.fresh_page());
  f.consume_fresh_page();
  f.irq_armed = true;
  ref.notify_interrupt();
  auto w = ref.run(1000, Cycles(kNever));
  REQUIRE(w.reason == StopReason::Halted);
  REQUIRE(ref.rip() == hlt_at + 1);
  REQUIRE(!f.irq_armed);

  // Reference: single steps of vCPU 0 up to the HLT.
  const uint64_t ref_page = f.fresh_page();
  f.consume_fresh_page();
  f.reset(ref, ref_page);
  std::vector<Boundary> traj;
  uint64_t c0 = ref.cycles().value(), i0 = ref.instructions();
  traj.push_back(f.capture(ref, c0, i0));
  uint64_t first_ept_step = kNever;  // first boundary at which R15's page has been touched
  while (ref.rip() != hlt_at) {
    for (uint64_t off : prog.ept_offsets)
      if (ref.rip() == kProg + off && first_ept_step == kNever) first_ept_step = traj.size();
    auto r = ref.step();
    if (r.executed != 1 || r.reason != StopReason::InsnLimit || traj.size() > 2000) {
      INFO("reference step " << traj.size() << " at rip " << ref.rip());
      REQUIRE(r.executed == 1);
      REQUIRE(r.reason == StopReason::InsnLimit);
      REQUIRE(traj.size() <= 2000);
    }
    traj.push_back(f.capture(ref, c0, i0));
  }
  const uint64_t n = traj.size() - 1;  // instructions before the HLT
  const uint64_t total = traj[n].dcycles;
  for (uint64_t k = 1; k <= n; ++k)
    if (traj[k].dcycles <= traj[k - 1].dcycles) FAIL("step " << k << " cost no cycles");
  if (first_ept_step != kNever) {
    ++tot.with_ept;
    // The EPT violation is the big step: it costs more than the load itself.
    CHECK(traj[first_ept_step].dcycles - traj[first_ept_step - 1].dcycles > 100);
  }
  tot.max_len = std::max(tot.max_len, n);
  tot.with_string += prog.has_string ? 1 : 0;
  tot.with_both_jcc += prog.has_taken && prog.has_not_taken ? 1 : 0;

  // Expected stop for run(max, deadline) from boundary `from`.
  auto expected = [&](uint64_t from, uint64_t max, uint64_t deadline_rel) {
    uint64_t k = from;
    while (k < n && k - from < max && traj[k].dcycles < deadline_rel) ++k;
    return k;
  };

  auto one_run = [&](uint64_t max, uint64_t deadline_rel) {
    const uint64_t k = expected(0, max, deadline_rel);
    const bool touches = first_ept_step != kNever && k >= first_ept_step;
    const uint64_t page = f.fresh_page();
    f.reset(*f.dut, page);
    const uint64_t dc0 = f.dut->cycles().value(), di0 = f.dut->instructions();
    const uint64_t dl = deadline_rel == kNever ? kNever : dc0 + deadline_rel;
    auto r = f.dut->run(max, Cycles(dl));
    const bool by_deadline = traj[k].dcycles >= deadline_rel;
    const bool by_max = k == max;
    // When both hold at the stop boundary either reason is right.
    const bool reason_ok = (by_deadline && by_max) ||
                           (by_deadline && r.reason == StopReason::Deadline) ||
                           (by_max && r.reason == StopReason::InsnLimit);
    if (r.executed != k || !reason_ok || !same_state(f, traj[k], dc0, di0, page)) {
      INFO("program of " << n << " insns, " << total << " cycles; run(max=" << max
                         << ", deadline=+" << deadline_rel << ") expected boundary " << k);
      CHECK(r.executed == k);
      if (by_deadline && !by_max) CHECK(r.reason == StopReason::Deadline);
      if (by_max && !by_deadline) CHECK(r.reason == StopReason::InsnLimit);
      check_boundary(f, traj[k], dc0, di0, page);
    }
    if (touches) f.consume_fresh_page();
    ++tot.runs;
    return k;
  };

  // Every deadline from +0 to +total+1 (max = n, so nothing runs into the HLT).
  for (uint64_t d = 0; d <= total + 1; ++d) one_run(n, d);
  // Every instruction budget, no deadline.
  for (uint64_t mx = 1; mx <= n; ++mx) one_run(mx, kNever);
  // Both at once.
  for (uint64_t j = 0; j < 2 * n; ++j) one_run(1 + rng.below(n), rng.below(total + 2));

  // Budget::Slice (the scheduler's quantum): it lands on one of the reference's boundaries,
  // never past where Budget::Exact stops, and earlier only because the next decoded block
  // (at most 32 instructions, core/cpu/core.h kBlockMaxInsns) did not fit in the budget,
  // after at least one instruction. Deadlines bind exactly as before.
  auto slice_run = [&](uint64_t max, uint64_t deadline_rel) {
    const uint64_t k = expected(0, max, deadline_rel);
    const uint64_t page = f.fresh_page();
    f.reset(*f.dut, page);
    const uint64_t dc0 = f.dut->cycles().value(), di0 = f.dut->instructions();
    const uint64_t dl = deadline_rel == kNever ? kNever : dc0 + deadline_rel;
    auto r = f.dut->run(max, Cycles(dl), Budget::Slice);
    const uint64_t got = r.executed;
    const bool cut = r.reason == StopReason::InsnLimit && got > 0 && got + 32 > max;
    if (got > k || (got != k && !cut) || !same_state(f, traj[got], dc0, di0, page)) {
      INFO("program of " << n << " insns, " << total << " cycles; run(max=" << max << ", deadline=+"
                         << deadline_rel << ", Slice) stopped at " << got << ", Exact stops at " << k);
      CHECK(got <= k);
      CHECK((got == k || cut));
      if (got <= k) check_boundary(f, traj[got], dc0, di0, page);
    }
    if (first_ept_step != kNever && got >= first_ept_step) f.consume_fresh_page();
    ++tot.runs;
    if (got < k) ++tot.slice_cut;
  };
  for (uint64_t mx = 1; mx <= n; ++mx) slice_run(mx, kNever);
  for (uint64_t d = 0; d <= total + 1; d += 1 + total / 64) slice_run(n, d);
  for (uint64_t d = 0; d <= total + 1; d += 1 + total / 16)
    for (uint64_t mx = 1; mx <= n; mx += 3) slice_run(mx, d);

  // Chained runs from wherever the previous one stopped (resuming mid-block).
  {
    const uint64_t page = f.fresh_page();
    f.reset(*f.dut, page);
    const uint64_t dc0 = f.dut->cycles().value(), di0 = f.dut->instructions();
    uint64_t at = 0, d = 0;
    while (at < n) {
      const uint64_t max = 1 + rng.below(n - at);  // never into the HLT
      d += rng.below(total / 4 + 2);
      const uint64_t k = expected(at, max, d);
      auto r = f.dut->run(max, Cycles(dc0 + d));
      if (r.executed != k - at || !same_state(f, traj[k], dc0, di0, page)) {
        INFO("chained run from boundary " << at << ": run(max=" << max << ", deadline=+" << d
                                          << ") expected boundary " << k);
        CHECK(r.executed == k - at);
        check_boundary(f, traj[k], dc0, di0, page);
        break;
      }
      at = k;
      ++tot.runs;
    }
    f.consume_fresh_page();
  }

  // An interrupt made pending where a deadline stopped the vCPU is taken at exactly that
  // boundary, and after its IRETQ the program ends in the reference's final state.
  for (int j = 0; j < 4; ++j) {
    const uint64_t d = rng.below(total + 1);
    const uint64_t k = expected(0, n, d);
    if (k >= n) continue;
    const uint64_t page = f.fresh_page();
    f.reset(*f.dut, page);
    const uint64_t dc0 = f.dut->cycles().value(), di0 = f.dut->instructions();
    auto r = f.dut->run(n, Cycles(dc0 + d));
    INFO("interrupt after run(max=" << n << ", deadline=+" << d << "), boundary " << k);
    REQUIRE(r.executed == k);
    f.irq_armed = true;
    f.dut->notify_interrupt();
    auto r2 = f.dut->run(1, Cycles(kNever));
    CHECK(r2.executed == 0);  // the step was the delivery
    CHECK(!f.irq_armed);
    CHECK(f.dut->rip() == f.m.handler_addr(kIrqVector));
    const uint64_t sp = f.dut->gpr(RSP);
    CHECK(f.m.get64(sp) == traj[k].rip);          // return RIP: the stop boundary
    CHECK(f.m.get64(sp + 8) == 0x08);             // CS
    // RFLAGS, with RF set when the boundary lies between two elements of a REP (the step
    // before it left RIP where it was): SDM Vol. 3B §17.3.1.1.
    const bool mid_rep = k > 0 && traj[k - 1].rip == traj[k].rip;
    CHECK(f.m.get64(sp + 16) == (traj[k].rflags | (mid_rep ? 1ull << 16 : 0)));
    CHECK(f.m.get64(sp + 24) == traj[k].gpr[RSP]);
    auto r3 = f.dut->run(1 + n - k, Cycles(kNever));  // IRETQ + the rest
    CHECK(r3.executed == 1 + n - k);
    const Boundary got = f.capture(*f.dut, dc0, di0);
    CHECK(got.rip == traj[n].rip);
    CHECK(got.dinsns == traj[n].dinsns + 1);
    for (unsigned reg = 0; reg < 15; ++reg) CHECK(got.gpr[reg] == traj[n].gpr[reg]);
    CHECK(got.data == traj[n].data);
    REQUIRE(got.dcycles > traj[n].dcycles);
    // Delivery + IRETQ cost the same wherever the interrupt lands.
    if (tot.irq_overhead == 0) tot.irq_overhead = got.dcycles - traj[n].dcycles;
    CHECK(got.dcycles - traj[n].dcycles == tot.irq_overhead);
    f.consume_fresh_page();  // the program ran to its end
    ++tot.irq_cases;
  }
  tot.fresh_pages_max = std::max(tot.fresh_pages_max, (f.next_fresh - kFreshFirst) >> 12);
  ++tot.programs;
}
}  // namespace

TEST_CASE("run(max, deadline) stops at exactly the boundary single-stepping reaches",
          "[deadline][control]") {
  Generator gen(0x9e3779b97f4a7c15ull);
  Totals tot;
  // 1..40 slots, each length several times, then random lengths: 240 programs.
  for (unsigned slots = 1; slots <= 40; ++slots)
    for (int rep = 0; rep < 3; ++rep) check_program(gen, slots, tot);
  for (int j = 0; j < 120; ++j)
    check_program(gen, 1 + static_cast<unsigned>(gen.rng().below(40)), tot);
  CHECK(tot.programs == 240);
  CHECK(tot.with_ept >= 170);
  CHECK(tot.with_string >= 170);
  CHECK(tot.with_both_jcc >= 170);
  CHECK(tot.max_len >= 40);
  CHECK(tot.slice_cut >= 1000);  // Budget::Slice did end before Exact, often
  WARN("deadline/step equivalence: " << tot.programs << " programs, " << tot.runs
                                     << " runs, " << tot.irq_cases << " interrupt cases, up to "
                                     << tot.fresh_pages_max << " fresh pages per program, "
                                     << tot.slice_cut << " slices ended early at a block boundary");
}
