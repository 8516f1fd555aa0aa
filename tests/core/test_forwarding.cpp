// tests/core/test_forwarding.cpp — register forwarding between threaded handlers, fused
// compare-and-branch, and blocks that continue through JMPs (the last two test cases).
//
// In whole-block execution each threaded handler passes the value it wrote to the next
// handler in a host register (`last`, core/cpu/insn.h), and Core::finish_block picks, for
// every operand that the previous instruction wrote, the handler variant that takes it
// from there instead of the register file (core/README.md "Execution model"). A wrong
// pick reads a stale or unrelated value. The oracle is single-stepping (Vcpu::step()),
// which never uses threaded handlers: the same program must end in the same registers,
// flags, memory, cycles and instruction count.
//
// Programs are dependency chains drawn from a fixed-seed splitmix64 stream: each step
// writes a register with one of the forwarding forms (MOV, ALU, shift, IMUL, LEA, loads,
// MOVZX/MOVSXD, both operand sizes), then reads it back in one operand slot of another
// form: ALU destination or source or both, immediate ALU, shift, IMUL factor, one-operand
// MUL/IMUL source (RDX:RAX = RAX * r, RAX forwarded when it was written last), MOV source,
// extension source, store data, read-modify-write source, base or index or both of an
// address, PUSH data. Between them go instructions that must pass the forwarded value on
// (CMP, TEST, stores, NOP) or must stop it (PUSH/POP, CMOVcc, SETcc, a generic form).
#include <catch2/catch.hpp>

#include <array>
#include <cstring>
#include <vector>

#include "core/prng.h"
#include "machine.h"

using namespace pvsim;
using pvsim::test::Machine;

namespace {
enum { RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8, R9, R10, R11, R12, R13, R14, R15 };
using Bytes = std::vector<uint8_t>;

constexpr uint64_t kData = 0x180000;  // R14 points here; every access stays in 0x800 bytes
constexpr uint64_t kDataLen = 0x800;   // index 0x78 * 8 + disp 0x78 + 8 bytes < 0x800
constexpr unsigned kPool[] = {RAX, RCX, RDX, RBX, RBP, RSI, RDI, R8, R9, R10, R11, R12, R13};
constexpr unsigned kNoIndex = 4;  // SIB.index 100 without REX.X: no index

// Which consumer slots the generator produced (coverage check at the end).
enum Slot : unsigned {
  kAluDst, kAluSrc, kAluBoth, kAluImm, kShift, kImulA, kImulB, kImulImm, kMovSrc, kExtSrc,
  kStoreData, kMulSrc, kRmwSrc, kAluMemReg, kBase, kIndex, kBaseIndex, kPushData, kSlotCount
};

class Gen {
 public:
  explicit Gen(uint64_t seed) : m_rng(seed) {}
  SplitMix64& rng() { return m_rng; }

  Bytes program(unsigned steps, std::array<uint64_t, kSlotCount>& seen) {
    m_code.clear();
    for (unsigned k = 0; k < steps; ++k) {
      const unsigned p = reg();
      if (m_rng.one_in(3)) {
        pointer(p);
        filler(p, true);
        seen[address_use(p)]++;
      } else {
        value(p);
        filler(p, false);
        seen[value_use(p)]++;
      }
    }
    m_code.push_back(0xf4);  // hlt
    return m_code;
  }

 private:
  unsigned reg() { return kPool[m_rng.below(std::size(kPool))]; }
  unsigned other(unsigned p) {
    unsigned q;
    do q = reg(); while (q == p);
    return q;
  }
  bool w() { return !m_rng.one_in(4); }  // mostly 64-bit, some 32-bit forms
  uint8_t d8() { return static_cast<uint8_t>(8 * m_rng.below(16)); }  // 0..120

  // REX (always present: byte registers are then SPL..DIL, the same for both paths) +
  // opcode bytes + ModRM for a register operand.
  void rr(bool w64, std::initializer_list<uint8_t> op, unsigned reg_field, unsigned rm) {
    m_code.push_back(static_cast<uint8_t>(0x40 | (w64 << 3) | ((reg_field >> 3) << 2) | (rm >> 3)));
    m_code.insert(m_code.end(), op);
    m_code.push_back(static_cast<uint8_t>(0xc0 | ((reg_field & 7) << 3) | (rm & 7)));
  }
  // The same with a memory operand [base + index*2^scale + disp8] (SIB form).
  void rm(bool w64, std::initializer_list<uint8_t> op, unsigned reg_field, unsigned base,
          unsigned index, unsigned scale, uint8_t disp) {
    m_code.push_back(static_cast<uint8_t>(0x40 | (w64 << 3) | ((reg_field >> 3) << 2) |
                                          ((index >> 3) << 1) | (base >> 3)));
    m_code.insert(m_code.end(), op);
    m_code.push_back(static_cast<uint8_t>(0x44 | ((reg_field & 7) << 3)));  // mod 01, SIB
    m_code.push_back(static_cast<uint8_t>((scale << 6) | ((index & 7) << 3) | (base & 7)));
    m_code.push_back(disp);
  }
  void imm8(uint8_t v) { m_code.push_back(v); }
  void imm32(uint32_t v) {
    for (unsigned k = 0; k < 4; ++k) m_code.push_back(static_cast<uint8_t>(v >> (8 * k)));
  }

  // Writes a value into p with one of the forwarding forms.
  void value(unsigned p) {
    const unsigned q = other(p);
    switch (m_rng.below(11)) {
      case 0: rr(w(), {0xc7}, 0, p); imm32(static_cast<uint32_t>(m_rng.next())); break;  // mov p, imm32
      case 1:  // mov p, imm32 (B8+r; REX.W makes it imm64)
        m_code.push_back(static_cast<uint8_t>(0x40 | (p >> 3)));
        m_code.push_back(static_cast<uint8_t>(0xb8 + (p & 7)));
        imm32(static_cast<uint32_t>(m_rng.next()));
        break;
      case 2: rr(w(), {m_rng.one_in(2) ? uint8_t{0x89} : uint8_t{0x8b}}, m_rng.one_in(2) ? q : p, m_rng.one_in(2) ? p : q);
        break;  // mov between p and q (either direction: p may end up the source)
      case 3: rr(w(), {static_cast<uint8_t>(0x01 + 8 * m_rng.below(7))}, q, p); break;  // alu p, q
      case 4: rr(w(), {0x83}, static_cast<unsigned>(m_rng.below(7)), p); imm8(static_cast<uint8_t>(m_rng.next())); break;
      case 5: {  // shl/shr/sar/rol/ror p, 1..31
        static constexpr unsigned ext[] = {4, 5, 7, 0, 1};
        rr(w(), {0xc1}, ext[m_rng.below(5)], p);
        imm8(static_cast<uint8_t>(1 + m_rng.below(31)));
        break;
      }
      case 6: rr(w(), {0x0f, 0xaf}, p, q); break;                                      // imul p, q
      case 7: rr(w(), {0x6b}, p, q); imm8(static_cast<uint8_t>(m_rng.next())); break;   // imul p, q, imm8
      case 8: rm(w(), {0x8b}, p, R14, kNoIndex, 0, d8()); break;                        // mov p, [r14+d]
      case 9: rr(w(), {0x0f, m_rng.one_in(2) ? uint8_t{0xb6} : uint8_t{0xbe}}, p, q); break;  // movzx/movsx p, q8
      default: rr(true, {0x63}, p, q); break;                                            // movsxd p, q32
    }
  }
  // Makes p a pointer into the data area (base use) or a small offset (index use).
  void pointer(unsigned p) {
    if (m_rng.one_in(2)) {
      rm(true, {0x8d}, p, R14, kNoIndex, 0, d8());  // lea p, [r14 + d]: base use
      m_base = true;
    } else {
      rr(w(), {0x83}, 4, p);  // and p, 0x78: index use (0..120, scale 1..8 keeps it inside)
      imm8(0x78);
      m_base = false;
    }
  }
  // Zero or more instructions between producer and consumer. The ones that stop
  // forwarding also overwrite p itself half of the time (not when p is an address), so a
  // stale `last` is visible.
  void filler(unsigned p, bool p_is_address) {
    const unsigned q = other(p), r = other(p);
    const unsigned k = !p_is_address && m_rng.one_in(2) ? p : q;  // what a stopping form writes
    switch (m_rng.below(12)) {
      case 0: rr(true, {0x39}, q, r); break;                          // cmp r, q: passes p on
      case 1: rr(true, {0x85}, q, m_rng.one_in(2) ? p : r); break;    // test: passes p on
      case 2: rm(true, {0x89}, q, R14, kNoIndex, 0, d8()); break;    // store: passes p on
      case 3: m_code.insert(m_code.end(), {0x0f, 0x1f, 0x00}); break;  // nop [rax]
      case 4:                                                          // push q; pop k: stops
        m_code.insert(m_code.end(), {static_cast<uint8_t>(0x40 | (q >> 3)), static_cast<uint8_t>(0x50 + (q & 7)),
                                     static_cast<uint8_t>(0x40 | (k >> 3)), static_cast<uint8_t>(0x58 + (k & 7))});
        break;
      case 5: rr(true, {0x0f, static_cast<uint8_t>(0x40 + m_rng.below(16))}, k, r); break;  // cmovcc k, r
      case 6: rr(false, {0x0f, static_cast<uint8_t>(0x90 + m_rng.below(16))}, 0, k); break;  // setcc k8
      case 7: rr(true, {0xf7}, 3, k); break;  // neg k: a generic form, stops forwarding
      default: break;
    }
  }
  Slot value_use(unsigned p) {
    const unsigned q = other(p);
    const Slot s = static_cast<Slot>(m_rng.below(kMulSrc + 3));
    switch (s) {
      case kAluDst: rr(w(), {static_cast<uint8_t>(0x01 + 8 * m_rng.below(7))}, q, p); break;
      case kAluSrc: rr(w(), {static_cast<uint8_t>(0x01 + 8 * m_rng.below(7))}, p, q); break;
      case kAluBoth: rr(w(), {static_cast<uint8_t>(0x01 + 8 * m_rng.below(7))}, p, p); break;
      case kAluImm: rr(w(), {0x81}, static_cast<unsigned>(m_rng.below(8)), p); imm32(static_cast<uint32_t>(m_rng.next())); break;
      case kShift: rr(w(), {0xc1}, 4 + static_cast<unsigned>(m_rng.below(2)), p); imm8(static_cast<uint8_t>(1 + m_rng.below(30))); break;
      case kImulA: rr(w(), {0x0f, 0xaf}, p, q); break;  // p = p * q: p is the reg factor
      case kImulB: rr(w(), {0x0f, 0xaf}, q, p); break;  // q = q * p: p is the rm factor
      case kImulImm: rr(w(), {0x69}, q, p); imm32(static_cast<uint32_t>(m_rng.next())); break;
      case kMovSrc: rr(w(), {0x89}, p, q); break;  // mov q, p
      case kExtSrc: rr(w(), {0x0f, m_rng.one_in(2) ? uint8_t{0xb7} : uint8_t{0xbe}}, q, p); break;
      case kStoreData: rm(w(), {0x89}, p, R14, kNoIndex, 0, d8()); break;  // mov [r14+d], p
      case kMulSrc: rr(w(), {0xf7}, 4 + static_cast<unsigned>(m_rng.below(2)), p); break;  // mul/imul p: RDX:RAX
      case kMulSrc + 1:  // add/sub/cmp [r14+d], p
        rm(w(), {static_cast<uint8_t>(0x01 + 8 * m_rng.below(8))}, p, R14, kNoIndex, 0, d8());
        return kRmwSrc;
      default:  // add/cmp p, [r14+d]
        rm(w(), {m_rng.one_in(2) ? uint8_t{0x03} : uint8_t{0x3b}}, p, R14, kNoIndex, 0, d8());
        return kAluMemReg;
    }
    return s;
  }
  Slot address_use(unsigned p) {
    const unsigned q = other(p);
    if (m_rng.one_in(8)) {  // push p; pop q
      m_code.insert(m_code.end(), {static_cast<uint8_t>(0x40 | (p >> 3)), static_cast<uint8_t>(0x50 + (p & 7)),
                                   static_cast<uint8_t>(0x40 | (q >> 3)), static_cast<uint8_t>(0x58 + (q & 7))});
      return kPushData;
    }
    // A load, store, read-modify-write, LEA or MOVZX load with p as base or index.
    static constexpr std::initializer_list<uint8_t> ops[] = {{0x8b}, {0x89}, {0x01}, {0x8d}, {0x0f, 0xb6}, {0x3b}};
    const auto& op = ops[m_rng.below(std::size(ops))];
    if (m_base) {
      if (m_rng.one_in(3) && *op.begin() == 0x8d) {  // lea q, [p + p*2^s + d]: both from p
        rm(true, op, q, p, p, static_cast<unsigned>(m_rng.below(4)), d8());
        return kBaseIndex;
      }
      rm(w(), op, q, p, kNoIndex, 0, d8());
      return kBase;
    }
    rm(w(), op, q, R14, p, static_cast<unsigned>(m_rng.below(4)), d8());  // p <= 0x78: inside kDataLen
    return kIndex;
  }

  SplitMix64 m_rng;
  Bytes m_code;
  bool m_base = false;
};

struct State {
  uint64_t rip = 0, rflags = 0, cycles = 0, insns = 0;
  std::array<uint64_t, 16> gpr{};
  Bytes data;
};

State capture(Machine& m, uint64_t c0, uint64_t i0) {
  State s;
  s.rip = m.vcpu.rip();
  s.rflags = m.vcpu.rflags();
  s.cycles = m.vcpu.cycles().value() - c0;
  s.insns = m.vcpu.instructions() - i0;
  for (unsigned r = 0; r < 16; ++r) s.gpr[r] = m.vcpu.gpr(r);
  s.data.resize(kDataLen);
  m.mem.read(Gpa(kData), s.data.data(), kDataLen);
  return s;
}

}  // namespace

TEST_CASE("forwarded register operands match single-stepping", "[cpu][threaded]") {
  Gen gen(0x5eed0f0f0f0f0f0full);
  std::array<uint64_t, kSlotCount> seen{};
  uint64_t programs = 0, insns = 0;
  for (unsigned n = 0; n < 1000; ++n) {
    Machine m;
    m.tracer.set_text_output(nullptr);
    const Bytes code = gen.program(1 + static_cast<unsigned>(gen.rng().below(12)), seen);
    m.put(Machine::kCode, code);
    Bytes data0(kDataLen);
    for (uint8_t& x : data0) x = static_cast<uint8_t>(gen.rng().next());
    std::array<uint64_t, 16> gpr0{};
    for (uint64_t& r : gpr0) r = gen.rng().next();
    gpr0[RSP] = Machine::kStack;
    gpr0[R14] = kData;
    auto reset = [&] {
      m.mem.write(Gpa(kData), data0.data(), kDataLen);
      for (unsigned r = 0; r < 16; ++r) m.vcpu.set_gpr(r, gpr0[r]);
      m.vcpu.set_rip(Machine::kCode);
      m.vcpu.set_rflags(0x2);
      m.vcpu.set_halted(false);
    };
    // Warm-up: the first touch of each page is an EPT exit (extra cycles) on either path.
    reset();
    REQUIRE(m.run(10000).reason == StopReason::Halted);

    reset();
    uint64_t c0 = m.vcpu.cycles().value(), i0 = m.vcpu.instructions();
    while (!m.vcpu.halted()) REQUIRE(m.step().executed == 1);  // up to and including the HLT
    const State want = capture(m, c0, i0);

    reset();
    // Every other program starts with a cold TLB: the first access to each page then
    // misses and its handler falls back to the generic one, which must forward the
    // register from the register file.
    if (n % 2) m.vcpu.set_cr(3, m.vcpu.cr(3));
    c0 = m.vcpu.cycles().value();
    i0 = m.vcpu.instructions();
    const auto r = m.run(10000);  // whole blocks (chained) up to and including the HLT
    const State got = capture(m, c0, i0);
    if (r.reason != StopReason::Halted || r.executed != want.insns || got.rip != want.rip || got.rflags != want.rflags ||
        got.cycles != want.cycles || got.gpr != want.gpr || got.data != want.data) {
      INFO("program " << n << " (" << code.size() << " bytes)");
      CHECK(r.reason == StopReason::Halted);
      CHECK(r.executed == want.insns);
      CHECK(got.rip == want.rip);
      CHECK(got.rflags == want.rflags);
      CHECK(got.cycles == want.cycles);
      for (unsigned k = 0; k < 16; ++k) {
        INFO("GPR " << k);
        CHECK(got.gpr[k] == want.gpr[k]);
      }
      CHECK(got.data == want.data);
    }
    ++programs;
    insns += want.insns;
  }
  INFO(programs << " programs, " << insns << " instructions");
  // Every consumer slot was generated many times.
  for (unsigned s = 0; s < kSlotCount; ++s) {
    INFO("slot " << s);
    CHECK(seen[s] >= 20);
  }
}

// Compare-and-branch fusion (fast.cpp, t_cmp_jcc, t_cmpm_jcc): a CMP/TEST right before the
// block's Jcc runs as one handler that takes the condition from the operands. Every
// condition code, both operand sizes (and CMP of a byte in memory with an immediate),
// register, immediate and memory forms (memory first or second, base register forwarded
// or not, TLB cold or warm), with operands at the
// edges that separate the conditions (equal, unsigned and signed wrap, sign bit, parity,
// garbage in the upper half of 32-bit operands), the forwarded operand in either slot;
// the branch direction and RFLAGS afterwards must match single-stepping.
TEST_CASE("fused compare-and-branch matches single-stepping", "[cpu][threaded]") {
  static constexpr uint64_t kEdges[] = {0,
                                        1,
                                        2,
                                        3,
                                        0x7f,
                                        0x80,
                                        0xff,
                                        0x7fffffff,
                                        0x80000000,
                                        0xffffffff,
                                        0x100000000,
                                        0x1234567880000000,
                                        0x7fffffffffffffff,
                                        0x8000000000000000,
                                        0xfffffffffffffffe,
                                        0xffffffffffffffff};
  SplitMix64 rng(0xc0ffee0f0f0full);
  auto pick = [&] { return rng.one_in(4) ? rng.next() : kEdges[rng.below(std::size(kEdges))]; };
  uint64_t taken = 0, not_taken = 0;
  std::array<unsigned, 16> per_cc{};
  for (unsigned n = 0; n < 5000; ++n) {
    Machine m;
    m.tracer.set_text_output(nullptr);
    const uint64_t a = pick(), b = rng.one_in(3) ? a : pick();
    const unsigned cc = static_cast<unsigned>(rng.below(16));
    const unsigned form = static_cast<unsigned>(rng.below(15));
    const bool w = !rng.one_in(3);
    const uint8_t rexw = w ? 0x48 : 0x40;
    Bytes code;
    auto movabs = [&](unsigned r, uint64_t v) {  // mov r64, imm64
      code.push_back(0x48);
      code.push_back(static_cast<uint8_t>(0xb8 + r));
      for (unsigned k = 0; k < 8; ++k) code.push_back(static_cast<uint8_t>(v >> (8 * k)));
    };
    if (rng.one_in(2)) {  // the register written last is forwarded to the compare
      movabs(RAX, a);
      movabs(RCX, b);
    } else {
      movabs(RCX, b);
      movabs(RAX, a);
    }
    const uint32_t i32 = static_cast<uint32_t>(b);
    auto imm32 = [&] {
      for (unsigned k = 0; k < 4; ++k) code.push_back(static_cast<uint8_t>(i32 >> (8 * k)));
    };
    // Memory forms compare a (stored at kData + 8) with b; RBX is the base, written by the
    // instruction right before (forwarded) or earlier.
    const bool fwd_base = rng.one_in(2);
    const Bytes lea_rbx = {0x49, 0x8d, 0x5e, 0x00};  // lea rbx, [r14]
    if (form >= 8 && !fwd_base) code.insert(code.begin(), lea_rbx.begin(), lea_rbx.end());
    if (form >= 8 && fwd_base) code.insert(code.end(), lea_rbx.begin(), lea_rbx.end());
    switch (form) {
      case 8: code.insert(code.end(), {rexw, 0x81, 0x7b, 0x08}); imm32(); break;  // cmp [rbx+8], imm32
      case 9: code.insert(code.end(), {rexw, 0x39, 0x4b, 0x08}); break;            // cmp [rbx+8], rcx
      case 10: code.insert(code.end(), {rexw, 0x3b, 0x4b, 0x08}); break;           // cmp rcx, [rbx+8]
      case 11: code.insert(code.end(), {rexw, 0x85, 0x4b, 0x08}); break;           // test [rbx+8], rcx
      case 12: code.insert(code.end(), {rexw, 0xf7, 0x43, 0x08}); imm32(); break;  // test [rbx+8], imm32
      case 13: code.insert(code.end(), {rexw, 0x83, 0x7b, 0x08, static_cast<uint8_t>(b)}); break;  // cmp [rbx+8], imm8
      case 14: code.insert(code.end(), {0x80, 0x7b, 0x08, static_cast<uint8_t>(b)}); break;  // cmp byte [rbx+8], imm8
      case 0: code.insert(code.end(), {rexw, 0x39, 0xc8}); break;  // cmp rax, rcx
      case 1: code.insert(code.end(), {rexw, 0x3b, 0xc1}); break;  // cmp rax, rcx (G form)
      case 2: code.insert(code.end(), {rexw, 0x85, 0xc8}); break;  // test rax, rcx
      case 3: code.insert(code.end(), {rexw, 0x81, 0xf8}); imm32(); break;  // cmp rax, imm32
      case 4: code.insert(code.end(), {rexw, 0x83, 0xf8, static_cast<uint8_t>(b)}); break;  // cmp rax, imm8
      case 5: code.insert(code.end(), {rexw, 0x3d}); imm32(); break;  // cmp rax, imm32 (rAX form)
      case 6: code.insert(code.end(), {rexw, 0xf7, 0xc0}); imm32(); break;  // test rax, imm32
      default: code.insert(code.end(), {rexw, 0xa9}); imm32(); break;  // test rax, imm32 (rAX form)
    }
    code.insert(code.end(), {static_cast<uint8_t>(0x70 | cc), 0x07});  // jcc +7
    code.insert(code.end(), {0x41, 0xb8, 0x02, 0x00, 0x00, 0x00, 0xf4});  // mov r8d, 2; hlt
    code.insert(code.end(), {0x41, 0xb8, 0x01, 0x00, 0x00, 0x00, 0xf4});  // mov r8d, 1; hlt
    m.put(Machine::kCode, code);
    auto reset = [&] {
      for (unsigned r = 0; r < 16; ++r) m.vcpu.set_gpr(r, 0);
      m.vcpu.set_gpr(RSP, Machine::kStack);
      m.vcpu.set_gpr(R14, kData);
      m.put64(kData + 8, a);  // the memory operand; RCX = b (form 10 compares b with a)
      m.vcpu.set_rip(Machine::kCode);
      m.vcpu.set_rflags(0x2);
      m.vcpu.set_halted(false);
    };
    reset();
    REQUIRE(m.run(100).reason == StopReason::Halted);  // warm-up (first-touch EPT exits)
    reset();
    uint64_t c0 = m.vcpu.cycles().value();
    while (!m.vcpu.halted()) REQUIRE(m.step().executed == 1);
    const State want = capture(m, c0, 0);
    reset();
    if (n % 3 == 0) m.vcpu.set_cr(3, m.vcpu.cr(3));  // cold TLB: the memory forms fall back
    c0 = m.vcpu.cycles().value();
    REQUIRE(m.run(100).reason == StopReason::Halted);
    const State got = capture(m, c0, 0);
    if (got.rip != want.rip || got.rflags != want.rflags || got.cycles != want.cycles || got.gpr != want.gpr) {
      INFO("form " << form << (w ? " 64-bit" : " 32-bit") << ", cc " << cc << ", a 0x" << std::hex << a
                   << ", b 0x" << b);
      CHECK(got.rip == want.rip);
      CHECK(got.rflags == want.rflags);
      CHECK(got.cycles == want.cycles);
      CHECK(got.gpr[R8] == want.gpr[R8]);
    }
    (want.gpr[R8] == 1 ? taken : not_taken)++;
    per_cc[cc]++;
  }
  INFO(taken << " taken, " << not_taken << " not taken");
  CHECK(taken > 1000);
  CHECK(not_taken > 1000);
  for (unsigned cc = 0; cc < 16; ++cc) CHECK(per_cc[cc] > 100);
}

// Blocks continue through a direct JMP whose target is on the same page (core.cpp,
// Core::decode_block): the instructions after it in the block are the target's, the JMP's
// taken-branch cycle is a static cost, and Insn::end may go backwards. Programs are
// segments of register instructions placed in a shuffled order on one page and linked in
// program order by JMPs (rel8 and rel32, forward and backward), so one block holds
// instructions from several places; one segment ends at the last bytes of the page so
// the next decodes across the page boundary (the JMP before it must then end its block).
// Every instruction budget and every deadline must stop at exactly the boundary
// single-stepping reaches, with the same registers, flags and cycles.
TEST_CASE("blocks that continue through JMPs stop where single-stepping does", "[cpu][threaded]") {
  SplitMix64 rng(0x1ca7ed0bb5ull);
  uint64_t programs = 0, runs = 0, crossing = 0;
  for (unsigned n = 0; n < 150; ++n) {
    Machine m;
    m.tracer.set_text_output(nullptr);
    // Segments: a few register instructions, then a JMP to the next segment (the last one
    // ends with HLT). Placed at shuffled 64-byte slots of the code page.
    const unsigned segs = 2 + static_cast<unsigned>(rng.below(9));
    std::vector<unsigned> slot(segs);
    for (unsigned k = 0; k < segs; ++k) slot[k] = k;
    for (unsigned k = segs; k-- > 1;) std::swap(slot[k], slot[rng.below(k + 1)]);
    const bool cross = rng.one_in(3);  // the last segment straddles the page end
    auto addr = [&](unsigned k) {
      if (cross && k == segs - 1) return Machine::kCode + 4096 - 2;  // a MOV whose third byte is on the next page
      return Machine::kCode + 64 * slot[k];
    };
    for (unsigned k = 0; k < segs; ++k) {
      Bytes b;
      const unsigned ops = static_cast<unsigned>(rng.below(4));
      for (unsigned j = 0; j < ops; ++j) {
        const unsigned d = static_cast<unsigned>(rng.below(4)), s = static_cast<unsigned>(rng.below(4));
        switch (rng.below(4)) {
          case 0: b.insert(b.end(), {0x48, 0x01, static_cast<uint8_t>(0xc0 | (s << 3) | d)}); break;  // add d, s
          case 1: b.insert(b.end(), {0x48, 0x39, static_cast<uint8_t>(0xc0 | (s << 3) | d)}); break;  // cmp d, s
          case 2: b.insert(b.end(), {0x48, 0xc1, static_cast<uint8_t>(0xc0 | (4 << 3) | d), 3}); break;  // shl d, 3
          default: b.insert(b.end(), {0x48, 0x0f, 0xaf, static_cast<uint8_t>(0xc0 | (d << 3) | s)}); break;  // imul d, s
        }
      }
      if (cross && k == segs - 1) {
        b = {0x48, 0x89, 0xc1, 0xf4};  // mov rcx, rax (crosses the page end); hlt
      } else if (k == segs - 1) {
        b.push_back(0xf4);
      } else {
        const uint64_t from = addr(k) + b.size();
        const int64_t rel8 = static_cast<int64_t>(addr(k + 1)) - static_cast<int64_t>(from + 2);
        if (rel8 >= -128 && rel8 <= 127 && rng.one_in(2)) {
          b.insert(b.end(), {0xeb, static_cast<uint8_t>(rel8)});
        } else {
          const int64_t rel32 = static_cast<int64_t>(addr(k + 1)) - static_cast<int64_t>(from + 5);
          b.push_back(0xe9);
          for (unsigned j = 0; j < 4; ++j) b.push_back(static_cast<uint8_t>(static_cast<uint64_t>(rel32) >> (8 * j)));
        }
      }
      m.put(addr(k), b);
    }
    std::array<uint64_t, 4> r0{};
    for (uint64_t& r : r0) r = rng.next() | 1;
    auto reset = [&] {
      for (unsigned r = 0; r < 16; ++r) m.vcpu.set_gpr(r, r < 4 ? r0[r] : 0);
      m.vcpu.set_gpr(RSP, Machine::kStack);
      m.vcpu.set_rip(Machine::kCode + 64 * slot[0]);
      m.vcpu.set_rflags(0x2);
      m.vcpu.set_halted(false);
    };
    reset();
    REQUIRE(m.run(1000).reason == StopReason::Halted);  // warm-up (first-touch EPT exits)
    reset();
    const uint64_t c0 = m.vcpu.cycles().value(), i0 = m.vcpu.instructions();
    std::vector<State> traj{capture(m, c0, i0)};
    while (!m.vcpu.halted()) {
      REQUIRE(m.step().executed == 1);
      traj.push_back(capture(m, c0, i0));
    }
    const uint64_t steps = traj.size() - 1;  // including the HLT
    auto check = [&](uint64_t max, uint64_t deadline_rel) {
      uint64_t k = 0;
      while (k < steps && k < max && traj[k].cycles < deadline_rel) ++k;
      reset();
      const uint64_t d0 = m.vcpu.cycles().value(), j0 = m.vcpu.instructions();
      const auto r = m.vcpu.run(max, Cycles(deadline_rel == ~0ull ? ~0ull : d0 + deadline_rel));
      const State got = capture(m, d0, j0);
      const State& want = traj[k];
      if (r.executed != k || got.rip != want.rip || got.cycles != want.cycles || got.rflags != want.rflags ||
          got.gpr != want.gpr) {
        INFO("program " << n << ", " << segs << " segments, max " << max << ", deadline +" << deadline_rel
                        << ": expected boundary " << k);
        CHECK(r.executed == k);
        CHECK(got.rip == want.rip);
        CHECK(got.cycles == want.cycles);
        CHECK(got.rflags == want.rflags);
        CHECK(got.gpr == want.gpr);
      }
      ++runs;
    };
    for (uint64_t mx = 1; mx <= steps; ++mx) check(mx, ~0ull);
    for (uint64_t d = 0; d <= traj[steps].cycles + 1; ++d) check(steps, d);
    ++programs;
    crossing += cross ? 1 : 0;
  }
  INFO(programs << " programs, " << runs << " runs");
  CHECK(crossing > 20);
  CHECK(runs > 10000);
}
