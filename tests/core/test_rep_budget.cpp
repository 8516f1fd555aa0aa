// tests/core/test_rep_budget.cpp — REP string instructions under instruction budgets,
// deadlines and events (core/README.md "REP string instructions").
//
// Contract: every element (iteration) of a REP instruction is one instruction. It counts
// toward run()'s budget (Budget::Exact and Budget::Slice), RunResult::executed and
// instructions(), and costs what the instruction costs without REP, so a REP of N elements
// is N instructions however it is cut up. An iteration boundary is an instruction boundary:
// run() stops there when the budget is used up or the deadline is reached, with RCX/RSI/RDI
// updated for the finished iterations, the flags of the last one (CMPS/SCAS) and RIP on the
// REP's first prefix byte, as hardware leaves a REP when it takes an interrupt between
// iterations (SDM Vol. 2B "REP/REPE/REPZ/REPNE/REPNZ"). An event is delivered there with
// that RIP, and the next run resumes the REP.
//
// The oracle is step(), which runs one element of a REP. For every string form, with
// RCX = 2^40 and with a moderate RCX (where CMPS/SCAS also end on their ZF condition), every
// budget and every deadline (every third one past 64 cycles), Budget::Exact and
// Budget::Slice, must stop at exactly the boundary single-stepping reaches: RIP, RFLAGS,
// every GPR, cycles, instructions and both data regions. The REP sits in a block of
// 29 instructions (REP OUTS, a VM exit, ends a block of 4), so small budgets and deadlines
// before the block's static cost run it on the per-instruction path and the others in
// whole-block (threaded) execution (Core::run's two paths). REP OUTS included: a REP
// INS/OUTS stopped by the budget or a deadline keeps its VM exit open, so its trace and
// cycles do not depend on where runs end either.
#include <catch2/catch.hpp>

#include <array>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/prng.h"
#include "machine.h"

using namespace pvsim;
using pvsim::test::Machine;

namespace {
enum { RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8, R9, R10, R11, R12, R13, R14, R15 };

constexpr uint64_t kNever = ~0ull;
constexpr uint64_t kHuge = 1ull << 40;
constexpr uint64_t kSrc = 0x300000, kDst = 0x400000, kRegion = 0x2000;
constexpr uint64_t kMmio = 0x2000000;  // beyond the 16 MiB of RAM: MMIO
constexpr uint64_t kRflags = 0x202;    // IF = 1
constexpr uint8_t kIrqVector = 0x40;

// mov ebx, 1; add rbx, rbx; nop | the REP instruction | 24 x lea rbx, [rbx+1]; hlt
constexpr unsigned kPrefixInsns = 3, kSuffixInsns = 24;
constexpr uint64_t kRepAt = Machine::kCode + 9;
constexpr uint64_t kRF = 1ull << 16;  // RFLAGS.RF
constexpr unsigned kBlockInsns = kPrefixInsns + 1 + kSuffixInsns + 1;
static_assert(kBlockInsns <= 32, "the program is one decoded block (core.h kBlockMaxInsns)");
std::vector<uint8_t> program(const std::vector<uint8_t>& rep) {
  std::vector<uint8_t> p;
  p.reserve(9 + rep.size() + 4 * kSuffixInsns + 1);
  for (uint8_t b : {0xbb, 0x01, 0x00, 0x00, 0x00, 0x48, 0x01, 0xdb, 0x90}) p.push_back(b);
  for (uint8_t b : rep) p.push_back(b);
  for (unsigned k = 0; k < kSuffixInsns; ++k)
    for (uint8_t b : {0x48, 0x8d, 0x5b, 0x01}) p.push_back(b);
  p.push_back(0xf4);
  return p;
}

uint8_t pattern(uint64_t j) {
  return static_cast<uint8_t>((j * 7 + 3) & 0x7f);
}

// One REP form. `fill` writes both data regions; `stop_at` >= 0 plants what ends a
// REPE/REPNE CMPS/SCAS at that element (moderate variant), -1 plants nothing.
struct Case {
  const char* name;
  std::vector<uint8_t> insn;  // the REP instruction, prefixes included
  unsigned size;              // element size
  bool rsi, rdi;              // which pointers the form advances
  uint64_t rax;
  bool io = false;            // REP OUTS to port 0x80 (TestEnv logs each element)
  bool a32 = false;           // 67 prefix: ECX/ESI/EDI
  bool stops_on_zf = false;   // CMPS/SCAS with REPE/REPNE
  std::function<void(Machine&, int64_t stop_at)> fill;
};

void fill_src(Machine& m) {
  std::vector<uint8_t> s(kRegion);
  for (uint64_t j = 0; j < kRegion; ++j) s[j] = pattern(j);
  m.put(kSrc, s);
}
void fill_dst(Machine& m, const std::function<uint8_t(uint64_t)>& f) {
  std::vector<uint8_t> d(kRegion);
  for (uint64_t j = 0; j < kRegion; ++j) d[j] = f(j);
  m.put(kDst, d);
}

std::vector<Case> cases() {
  std::vector<Case> c;
  auto zero_dst = [](Machine& m, int64_t) {
    fill_src(m);
    fill_dst(m, [](uint64_t) { return uint8_t{0}; });
  };
  c.push_back({"rep stosq", {0xf3, 0x48, 0xab}, 8, false, true, 0x1122334455667788ull, false,
               false, false, zero_dst});
  c.push_back({"rep movsb", {0xf3, 0xa4}, 1, true, true, 0, false, false, false, zero_dst});
  c.push_back({"rep lodsd", {0xf3, 0xad}, 4, true, false, 0, false, false, false, zero_dst});
  c.push_back({"repe cmpsb", {0xf3, 0xa6}, 1, true, true, 0, false, false, true,
               [](Machine& m, int64_t at) {
                 fill_src(m);  // equal regions; a difference ends REPE at `at`
                 fill_dst(m, [at](uint64_t j) {
                   return static_cast<uint8_t>(pattern(j) ^ (static_cast<int64_t>(j) == at ? 1 : 0));
                 });
               }});
  c.push_back({"repne cmpsb", {0xf2, 0xa6}, 1, true, true, 0, false, false, true,
               [](Machine& m, int64_t at) {
                 fill_src(m);  // bytes never equal; an equal one ends REPNE at `at`
                 fill_dst(m, [at](uint64_t j) {
                   return static_cast<uint8_t>(pattern(j) ^ (static_cast<int64_t>(j) == at ? 0 : 0xff));
                 });
               }});
  c.push_back({"repne scasq", {0xf2, 0x48, 0xaf}, 8, false, true, 0x8080808080808080ull, false,
               false, true, [](Machine& m, int64_t at) {
                 fill_src(m);  // qwords of bytes below 0x80 never equal RAX; one is at `at`
                 fill_dst(m, [at](uint64_t j) {
                   return static_cast<int64_t>(j / 8) == at ? uint8_t{0x80} : pattern(j);
                 });
               }});
  c.push_back({"repe scasq", {0xf3, 0x48, 0xaf}, 8, false, true, 0, false, false, true,
               [](Machine& m, int64_t at) {
                 fill_src(m);  // zero qwords equal RAX = 0; a non-zero one ends REPE at `at`
                 fill_dst(m, [at](uint64_t j) {
                   return static_cast<int64_t>(j / 8) == at && j % 8 == 3 ? uint8_t{1} : uint8_t{0};
                 });
               }});
  c.push_back({"rep stosb, 32-bit addressing (67: ECX, EDI)", {0x67, 0xf3, 0xaa}, 1, false, true,
               0x5a, false, true, false, zero_dst});
  c.push_back({"rep outsd", {0xf3, 0x6f}, 4, true, false, 0, true, false, false, zero_dst});
  return c;
}

// One instruction boundary of the single-stepped reference.
struct Boundary {
  uint64_t rip = 0, rflags = 0, dcycles = 0, dinsns = 0, mem_hash = 0, ports = 0;
  std::array<uint64_t, 16> gpr{};
};

// A hash of n bytes (n a multiple of 8), a word at a time: the runs compare two 8 KiB
// regions at every stop.
uint64_t hash_words(const uint8_t* p, size_t n, uint64_t h = 0xcbf29ce484222325ull) {
  for (size_t k = 0; k < n; k += 8) {
    uint64_t w;
    std::memcpy(&w, p + k, 8);
    h = (h ^ w) * 0x100000001b3ull;
    h ^= h >> 29;
  }
  return h;
}

// A warm machine running one case: every page the runs touch has had its first-touch EPT
// exit, so the only differences between runs are the ones under test.
struct Rig {
  const Case& c;
  Machine m;
  uint64_t count;       // initial RCX
  int64_t stop_at;      // element at which CMPS/SCAS end on ZF (moderate), else -1
  uint64_t elements;    // elements the REP runs in all (kNever: more than any run reaches)
  bool armed = false;   // the interrupt poll answers kIrqVector once
  std::vector<Boundary> traj;
  uint64_t n = 0;       // boundaries in the reference: traj[0..n]

  Rig(const Case& cs, uint64_t rcx, int64_t at) : c(cs), count(rcx), stop_at(at) {
    m.tracer.set_text_output(nullptr);
    m.put(Machine::kCode, program(c.insn));
    m.put(m.handler_addr(kIrqVector), {0x48, 0xcf});  // iretq
    m.set_gate(kIrqVector, m.handler_addr(kIrqVector));
    m.vcpu.set_interrupt_poll([this](Vcpu&) {
      if (!armed) return -1;
      armed = false;
      return static_cast<int>(kIrqVector);
    });
    const uint64_t n_mask = c.a32 ? 0xffffffffull : ~0ull;
    if (stop_at >= 0)
      elements = static_cast<uint64_t>(stop_at) + 1;
    else
      elements = (count & n_mask) < 100000 ? count & n_mask : kNever;
  }

  void reset() {
    Vcpu& v = m.vcpu;
    for (unsigned r = 0; r < 16; ++r) v.set_gpr(r, 0);
    v.set_gpr(RAX, c.rax);
    v.set_gpr(RCX, count);
    v.set_gpr(RDX, 0x80);
    v.set_gpr(RSI, kSrc);
    v.set_gpr(RDI, kDst);
    v.set_gpr(RSP, Machine::kStack);
    v.set_rip(Machine::kCode);
    v.set_rflags(kRflags);
    v.set_halted(false);
    c.fill(m, stop_at);
    m.env.log.clear();
  }

  Boundary capture(uint64_t c0, uint64_t i0) const {
    Boundary b;
    const Vcpu& v = m.vcpu;
    b.rip = v.rip();
    b.rflags = v.rflags();
    b.dcycles = v.cycles().value() - c0;
    b.dinsns = v.instructions() - i0;
    for (unsigned r = 0; r < 16; ++r) b.gpr[r] = v.gpr(r);
    b.mem_hash = hash_words(m.mem.host_ptr(Gpa(kSrc), kRegion), kRegion);
    b.mem_hash = hash_words(m.mem.host_ptr(Gpa(kDst), kRegion), kRegion, b.mem_hash);
    b.ports = m.env.log.size();
    return b;
  }

  // Single-steps the reference up to the HLT, or `limit` boundaries for a REP that does
  // not end. Warm-up first: an interrupt at the first boundary and the same steps, so the
  // IDT, handler, stack, code and data pages have all been touched.
  void reference(uint64_t limit) {
    const uint64_t hlt_at = Machine::kCode + program(c.insn).size() - 1;
    reset();
    armed = true;
    m.vcpu.notify_interrupt();
    REQUIRE(m.vcpu.run(1, Cycles(kNever)).executed == 0);
    const auto w = m.vcpu.run(1 + limit, Cycles(kNever));
    REQUIRE((w.executed == 1 + limit || w.reason == StopReason::Halted));
    reset();
    const uint64_t c0 = m.vcpu.cycles().value(), i0 = m.vcpu.instructions();
    traj.clear();
    traj.push_back(capture(c0, i0));
    while (m.vcpu.rip() != hlt_at && traj.size() <= limit) {
      const auto r = m.vcpu.step();
      if (r.executed != 1 || r.reason != StopReason::InsnLimit) {
        INFO("reference step " << traj.size());
        REQUIRE(r.executed == 1);
        REQUIRE(r.reason == StopReason::InsnLimit);
      }
      traj.push_back(capture(c0, i0));
    }
    n = traj.size() - 1;
  }

  // Cycles at boundary s: the same however the REP was cut up.
  uint64_t dc(uint64_t s) const { return traj[s].dcycles; }
  // Where run(max, deadline) from the program start must stop.
  uint64_t expected(uint64_t max, uint64_t deadline_rel) const {
    uint64_t k = 0;
    while (k < n && k < max && dc(k) < deadline_rel) ++k;
    return k;
  }

  bool same(const Boundary& want, uint64_t want_dcycles, uint64_t c0, uint64_t i0) const {
    const Boundary got = capture(c0, i0);
    return got.rip == want.rip && got.rflags == want.rflags && got.dcycles == want_dcycles &&
           got.dinsns == want.dinsns && got.gpr == want.gpr && got.mem_hash == want.mem_hash &&
           got.ports == want.ports;
  }
  void explain(const Boundary& want, uint64_t want_dcycles, uint64_t c0, uint64_t i0) const {
    const Boundary got = capture(c0, i0);
    CHECK(got.rip == want.rip);
    CHECK(got.rflags == want.rflags);
    CHECK(got.dcycles == want_dcycles);
    CHECK(got.dinsns == want.dinsns);
    for (unsigned r = 0; r < 16; ++r) {
      INFO("GPR " << r);
      CHECK(got.gpr[r] == want.gpr[r]);
    }
    CHECK(got.mem_hash == want.mem_hash);
    CHECK(got.ports == want.ports);
  }
};

// The reference itself, against the SDM's description of an interrupted REP: after k
// elements RCX = count - k, the pointers moved by k elements, RIP on the instruction until
// the last element, one instruction per element.
void check_reference_shape(const Rig& g) {
  const uint64_t len = g.c.insn.size();
  const uint64_t mask = g.c.a32 ? 0xffffffffull : ~0ull;
  for (uint64_t s = kPrefixInsns; s <= g.n && s - kPrefixInsns <= g.elements; ++s) {
    const uint64_t k = s - kPrefixInsns;
    const Boundary& b = g.traj[s];
    const bool done = k == g.elements;
    // With a 67 prefix the count is ECX (a 32-bit register write once an element ran).
    const uint64_t rcx = k == 0 ? g.count : (g.count & mask) - k;
    if (b.rip != (done ? kRepAt + len : kRepAt) || b.gpr[RCX] != rcx ||
        b.gpr[RSI] != kSrc + (g.c.rsi ? g.c.size * k : 0) ||
        b.gpr[RDI] != kDst + (g.c.rdi ? g.c.size * k : 0) || b.dinsns != s ||
        b.ports != (g.c.io ? k : 0)) {
      INFO(g.c.name << ": reference boundary " << s << " (" << k << " elements)");
      CHECK(b.rip == (done ? kRepAt + len : kRepAt));
      CHECK(b.gpr[RCX] == rcx);
      CHECK(b.gpr[RSI] == kSrc + (g.c.rsi ? g.c.size * k : 0));
      CHECK(b.gpr[RDI] == kDst + (g.c.rdi ? g.c.size * k : 0));
      CHECK(b.dinsns == s);
      CHECK(b.ports == (g.c.io ? k : 0));
      return;
    }
    // Memory forms: each element costs the instruction's cost (1) plus one element cycle.
    // REP OUTS: the exit round trip (1200) with the first element, then one cycle each.
    const uint64_t cost = g.c.io ? (k == 1 ? 1200 + 1 : 1) : 2;
    if (k > 0 && b.dcycles - g.traj[s - 1].dcycles != cost) {
      INFO(g.c.name << ": element " << k);
      CHECK(b.dcycles - g.traj[s - 1].dcycles == cost);
      return;
    }
  }
  if (g.c.stops_on_zf && g.stop_at >= 0) {
    // REPE ends on ZF = 0, REPNE on ZF = 1: the last element's flags.
    const bool repe = g.c.insn[0] == 0xf3;
    const uint64_t zf = g.traj[kPrefixInsns + g.elements].rflags & 0x40;
    CHECK(zf == (repe ? 0u : 0x40u));
  }
}

struct Totals {
  uint64_t runs = 0, stopped_in_rep = 0, slice_cuts = 0, irq_in_rep = 0;
};

// Every budget and every deadline from the program start, Exact and Slice.
void sweep(Rig& g, Totals& tot) {
  const bool rep_ends = g.elements != kNever;
  auto one = [&](uint64_t max, uint64_t deadline_rel, Budget budget) {
    const uint64_t k = g.expected(max, deadline_rel);
    g.reset();
    const uint64_t c0 = g.m.vcpu.cycles().value(), i0 = g.m.vcpu.instructions();
    const auto r = g.m.vcpu.run(max, Cycles(deadline_rel == kNever ? kNever : c0 + deadline_rel), budget);
    uint64_t got = r.executed;
    const bool in_rep = k > kPrefixInsns && k - kPrefixInsns < g.elements;
    // A slice may end early at a block boundary, never inside the REP: a REP that alone
    // exceeds what is left of the budget stops at the budget.
    const bool cut = budget == Budget::Slice && r.reason == StopReason::InsnLimit && got < k &&
                     got + 32 > max && rep_ends && got >= kPrefixInsns + g.elements;
    const bool by_max = k == max, by_deadline = k < g.n && g.dc(k) >= deadline_rel;
    const bool reason_exact = cut || (by_max && by_deadline) ||
                              (by_max && r.reason == StopReason::InsnLimit) ||
                              (by_deadline && r.reason == StopReason::Deadline) ||
                              (!by_max && !by_deadline);
    if ((got != k && !cut) || !reason_exact ||
        !g.same(g.traj[got], g.dc(got), c0, i0)) {
      INFO(g.c.name << " RCX " << g.count << ": run(max=" << max << ", deadline=+" << deadline_rel
                    << (budget == Budget::Slice ? ", Slice" : ", Exact") << ") expected boundary "
                    << k << " of " << g.n << ", got " << got);
      CHECK(got == k);
      CHECK(reason_exact);
      if (got <= g.n) g.explain(g.traj[got], g.dc(got), c0, i0);
      return false;
    }
    ++tot.runs;
    if (in_rep && got == k) ++tot.stopped_in_rep;
    if (got != k) ++tot.slice_cuts;
    return true;
  };
  for (Budget budget : {Budget::Exact, Budget::Slice}) {
    for (uint64_t max = 1; max <= g.n; ++max)
      if (!one(max, kNever, budget)) return;
    // Every deadline through the block's static cost (where the per-instruction path
    // runs), then every third one: elements cost 2 cycles, so both parities still come up.
    for (uint64_t d = 0; d <= g.dc(g.n); d += d < 64 ? 1 : 3)
      if (!one(g.n, d, budget)) return;
  }
  SplitMix64 rng(g.count ^ g.c.insn.back());
  for (int j = 0; j < 200; ++j)
    if (!one(1 + rng.below(g.n), rng.below(g.dc(g.n) + 1),
             rng.below(2) ? Budget::Slice : Budget::Exact))
      return;
}

// Runs of random budgets and deadlines, each resuming where the previous one stopped
// (inside the REP most of the time): every stop is a reference boundary, and the end is
// the reference's end, the same as one uninterrupted run.
void chained(Rig& g, Totals& tot, uint64_t seed) {
  SplitMix64 rng(seed);
  for (int round = 0; round < 20; ++round) {
    g.reset();
    const uint64_t c0 = g.m.vcpu.cycles().value(), i0 = g.m.vcpu.instructions();
    uint64_t at = 0, d = 0;
    while (at < g.n) {
      const uint64_t max = 1 + rng.below(std::min<uint64_t>(g.n - at, 1 + rng.below(60)));
      d += rng.below(40);
      const Budget budget = rng.below(2) ? Budget::Slice : Budget::Exact;
      uint64_t k = at;
      while (k < g.n && k - at < max && g.traj[k].dcycles < d) ++k;
      const auto r = g.m.vcpu.run(max, Cycles(c0 + d), budget);
      const uint64_t got = at + r.executed;
      const bool cut = budget == Budget::Slice && got < k && r.reason == StopReason::InsnLimit &&
                       got + 32 > max;
      if ((got != k && !cut) || !g.same(g.traj[got], g.traj[got].dcycles, c0, i0)) {
        INFO(g.c.name << " RCX " << g.count << ": chained run from boundary " << at << ", max "
                      << max << ", deadline +" << d << " expected " << k << ", got " << got);
        CHECK(got == k);
        if (got <= g.n) g.explain(g.traj[got], g.traj[got].dcycles, c0, i0);
        return;
      }
      at = got;
      ++tot.runs;
    }
  }
}

// A deadline stops the REP between elements; an interrupt made pending there (as the
// platform does when an event fires) is delivered at that boundary: the frame holds the
// REP's own address and the flags of its last element. After IRETQ the REP resumes and the
// program ends in the reference's final state.
void interrupt_mid_rep(Rig& g, Totals& tot) {
  uint64_t overhead = 0;
  const uint64_t first = g.dc(kPrefixInsns) + 1, last = g.dc(g.n);
  for (uint64_t d = first; d <= last; d += 1 + (last - first) / 40) {
    const uint64_t k = g.expected(g.n, d);
    if (k <= kPrefixInsns || k >= kPrefixInsns + g.elements) continue;
    g.reset();
    const uint64_t c0 = g.m.vcpu.cycles().value(), i0 = g.m.vcpu.instructions();
    const auto r = g.m.vcpu.run(g.n, Cycles(c0 + d));
    INFO(g.c.name << " RCX " << g.count << ": interrupt at boundary " << k << " (deadline +" << d
                  << ")");
    REQUIRE(r.executed == k);
    REQUIRE(r.reason == StopReason::Deadline);
    REQUIRE(g.m.vcpu.rip() == kRepAt);
    g.armed = true;
    g.m.vcpu.notify_interrupt();
    const auto r2 = g.m.vcpu.run(1, Cycles(kNever));
    CHECK(r2.executed == 0);  // the step was the delivery
    CHECK(!g.armed);
    CHECK(g.m.vcpu.rip() == g.m.handler_addr(kIrqVector));
    const uint64_t sp = g.m.vcpu.gpr(RSP);
    CHECK(g.m.get64(sp) == kRepAt);  // the REP's first prefix byte
    CHECK(g.m.get64(sp + 8) == 0x08);
    // The image has RF set: an interrupt between two iterations of a REP pushes RF = 1
    // (SDM Vol. 3B §17.3.1.1), so that the IRETQ resumes it without an instruction
    // breakpoint firing again; RF is clear again once the REP has resumed (below).
    CHECK(g.m.get64(sp + 16) == (g.traj[k].rflags | kRF));
    CHECK(g.m.vcpu.gpr(RCX) == g.traj[k].gpr[RCX]);
    CHECK(g.m.vcpu.gpr(RSI) == g.traj[k].gpr[RSI]);
    CHECK(g.m.vcpu.gpr(RDI) == g.traj[k].gpr[RDI]);
    const auto r3 = g.m.vcpu.run(1 + g.n - k, Cycles(kNever));  // IRETQ + the rest
    CHECK(r3.executed == 1 + g.n - k);
    const Boundary got = g.capture(c0, i0);
    const Boundary& want = g.traj[g.n];
    CHECK(got.rip == want.rip);
    CHECK(got.dinsns == want.dinsns + 1);
    CHECK(got.gpr == want.gpr);
    CHECK(got.rflags == want.rflags);
    CHECK(got.mem_hash == want.mem_hash);
    CHECK(got.ports == want.ports);
    REQUIRE(got.dcycles > g.dc(g.n));
    // Delivery + IRETQ cost the same wherever the interrupt lands (REP OUTS also pays one
    // more exit for its resumption).
    if (overhead == 0) overhead = got.dcycles - g.dc(g.n);
    CHECK(got.dcycles - g.dc(g.n) == overhead);
    ++tot.irq_in_rep;
  }
}
}  // namespace

TEST_CASE("REP string instructions: every element is an instruction boundary for run()",
          "[rep][deadline][control]") {
  Totals tot;
  for (const Case& c : cases()) {
    // RCX = 2^40: the REP outlasts every run, 700 reference boundaries.
    {
      Rig g(c, c.a32 ? 0xabcd0000ffffffffull : kHuge, -1);
      g.reference(700);
      REQUIRE(g.n == 700);
      check_reference_shape(g);
      sweep(g, tot);
      chained(g, tot, 0x5eed0000 + c.insn.back());
    }
    // A REP that ends: 300 elements, or CMPS/SCAS ending on ZF at element 200.
    {
      Rig g(c, 300, c.stops_on_zf ? 200 : -1);
      g.reference(2000);
      REQUIRE(g.n == kPrefixInsns + g.elements + kSuffixInsns);
      check_reference_shape(g);
      CHECK(g.traj[g.n].gpr[RCX] == 300 - g.elements);
      sweep(g, tot);
      chained(g, tot, 0xc4a10000 + c.insn.back());
      interrupt_mid_rep(g, tot);
    }
  }
  CHECK(tot.stopped_in_rep > 30000);
  CHECK(tot.irq_in_rep > 200);
  CHECK(tot.slice_cuts > 100);  // slices ending at the block boundary after a finished REP
  WARN("REP budget/deadline equivalence: " << tot.runs << " runs, " << tot.stopped_in_rep
                                           << " stopped inside a REP, " << tot.irq_in_rep
                                           << " interrupts between elements, " << tot.slice_cuts
                                           << " slices ended after a finished REP");
}

TEST_CASE("REP counting: N elements are N instructions and N times the one-element cost",
          "[rep][control]") {
  struct Row {
    const char* name;
    std::vector<uint8_t> code;
    uint64_t rcx, insns, cycles;
  };
  const Row rows[] = {
      {"rep stosq, RCX = 0: one instruction, the table cost", {0xf3, 0x48, 0xab}, 0, 1, 1},
      {"stosq without REP: one instruction, one element", {0x48, 0xab}, 0, 1, 2},
      {"rep stosq, RCX = 1", {0xf3, 0x48, 0xab}, 1, 1, 2},
      {"rep stosq, RCX = 5", {0xf3, 0x48, 0xab}, 5, 5, 10},
      {"repe cmpsb, RCX = 0", {0xf3, 0xa6}, 0, 1, 1},
      {"rep outsb, RCX = 3: one exit, three elements", {0xf3, 0x6e}, 3, 3, 1200 + 3},
  };
  for (const Row& row : rows) {
    SECTION(row.name) {
      Machine m;
      std::vector<uint8_t> code = row.code;
      code.push_back(0xf4);  // hlt
      m.put(Machine::kCode, code);
      m.vcpu.set_rip(Machine::kCode);
      m.vcpu.set_gpr(RCX, row.rcx);
      m.vcpu.set_gpr(RDX, 0x80);
      m.vcpu.set_gpr(RSI, kSrc);
      m.vcpu.set_gpr(RDI, kDst);
      // Warm the pages so the first-touch EPT exits are not in the count.
      const auto w = m.run(1000);
      REQUIRE(w.reason == StopReason::Halted);
      m.vcpu.set_halted(false);
      m.vcpu.set_rip(Machine::kCode);
      m.vcpu.set_gpr(RCX, row.rcx);
      m.vcpu.set_gpr(RSI, kSrc);
      m.vcpu.set_gpr(RDI, kDst);
      const uint64_t c0 = m.vcpu.cycles().value(), i0 = m.vcpu.instructions();
      const auto r = m.run(row.insns);
      CHECK(r.executed == row.insns);
      CHECK(m.vcpu.instructions() - i0 == row.insns);
      CHECK(m.vcpu.cycles().value() - c0 == row.cycles);
      CHECK(m.vcpu.rip() == Machine::kCode + row.code.size());
      CHECK(m.vcpu.gpr(RCX) == 0);
    }
  }
}

TEST_CASE("REP: an interrupt raised by an element is taken at the next iteration boundary",
          "[rep][irq]") {
  // rep stosd into MMIO; the device raises an event on the 7th write. The REP stops after
  // that element (RCX = 100 - 7, RDI advanced by 7 elements) and the event is delivered
  // with the REP's address in the frame; before, it waited for all 100 elements.
  for (bool nmi : {false, true}) {
    DYNAMIC_SECTION((nmi ? "NMI" : "maskable interrupt")) {
      Machine m;
      m.install_idt_all_hlt();
      int writes = 0;
      m.env.on_mmio_write = [&](Gpa, unsigned, uint64_t) {
        if (++writes == 7) {
          if (nmi)
            m.vcpu.inject_nmi();
          else
            m.vcpu.notify_interrupt();
        }
        return IoStatus::Ok;
      };
      int polls = 0;
      m.vcpu.set_interrupt_poll([&](Vcpu&) { return polls++ == 0 ? 0x30 : -1; });
      m.code({0x90, 0x48, 0xc7, 0xc0, 0x44, 0x33, 0x22, 0x11, 0xf3, 0xab, 0x90,
              0xf4} /* nop; mov rax, 0x11223344; rep stosd; nop; hlt */);
      m.vcpu.set_gpr(RCX, 100);
      m.vcpu.set_gpr(RDI, kMmio);
      m.vcpu.set_rflags(nmi ? 0x2 : kRflags);  // an NMI does not need IF
      const auto r = m.run(1000);
      CHECK(r.reason == StopReason::Halted);
      CHECK(writes == 7);
      CHECK(r.executed == 2 + 7 + 1);  // nop, mov, 7 elements, the handler's hlt
      const unsigned vec = nmi ? 2 : 0x30;
      CHECK(m.vcpu.rip() == m.handler_addr(vec) + 1);
      const uint64_t sp = m.vcpu.gpr(RSP);
      CHECK(m.get64(sp) == Machine::kCode + 8);  // the REP prefix
      CHECK(m.vcpu.gpr(RCX) == 93);
      CHECK(m.vcpu.gpr(RDI) == kMmio + 28);
      CHECK(polls == (nmi ? 0 : 1));
      if (nmi) CHECK(m.vcpu.nmi_blocked());
    }
  }
}

TEST_CASE("REP after STI with an interrupt pending: one element, then the interrupt",
          "[rep][irq]") {
  // The STI shadow covers one instruction boundary (SDM Vol. 2B "STI"); each REP element is
  // an instruction, so the interrupt comes after the first element, with RIP on the REP.
  Machine m;
  m.install_idt_all_hlt();
  int polls = 0;
  m.vcpu.set_interrupt_poll([&](Vcpu&) { return polls++ == 0 ? 0x30 : -1; });
  m.code({0xfb, 0xf3, 0x48, 0xab, 0xf4} /* sti; rep stosq; hlt */);
  m.vcpu.set_gpr(RCX, 50);
  m.vcpu.set_gpr(RDI, kDst);
  m.vcpu.notify_interrupt();
  const auto r = m.run(1000);
  CHECK(r.reason == StopReason::Halted);
  CHECK(r.executed == 3);  // sti, one element, the handler's hlt
  CHECK(m.vcpu.gpr(RCX) == 49);
  CHECK(m.vcpu.gpr(RDI) == kDst + 8);
  CHECK(m.get64(m.vcpu.gpr(RSP)) == Machine::kCode + 1);
  CHECK(m.vcpu.rip() == m.handler_addr(0x30) + 1);
}

TEST_CASE("REP OUTS: stopped between elements its exit stays open, an event ends it",
          "[rep][io]") {
  // rep outsd of 10 elements from kSrc to port 0x80, then hlt. The vector 0x40 handler is
  // IRETQ.
  Machine m;
  std::vector<uint8_t> src(40);
  for (unsigned j = 0; j < 40; ++j) src[j] = static_cast<uint8_t>(j + 1);
  m.put(kSrc, src);
  m.put(m.handler_addr(kIrqVector), {0x48, 0xcf});
  m.set_gate(kIrqVector, m.handler_addr(kIrqVector));
  int polls = 0;
  m.vcpu.set_interrupt_poll([&](Vcpu&) { return polls++ == 0 ? kIrqVector : -1; });
  m.vcpu.set_rflags(kRflags);
  m.code({0xf3, 0x6f, 0xf4} /* rep outsd; hlt */);
  m.vcpu.set_gpr(RCX, 10);
  m.vcpu.set_gpr(RDX, 0x80);
  m.vcpu.set_gpr(RSI, kSrc);
  // Warm-up: the first-touch exits for the code, source, IDT, handler and stack pages.
  m.vcpu.notify_interrupt();
  CHECK(m.run(12).executed == 11);  // the delivery (a step), iretq, ten elements
  CHECK(m.vcpu.rip() == Machine::kCode + 2);
  m.vcpu.set_rip(Machine::kCode);
  m.vcpu.set_gpr(RCX, 10);
  m.vcpu.set_gpr(RSI, kSrc);
  m.vcpu.set_gpr(RSP, Machine::kStack);
  m.env.log.clear();
  m.trace_text.str("");
  polls = 0;
  const uint64_t c0 = m.vcpu.cycles().value(), i0 = m.vcpu.instructions();
  // Timestamps in ns = cycles (1 GHz).
  auto ts = [&](uint64_t cyc) {
    char b[32];
    std::snprintf(b, sizeof b, "%llu.%09llu", static_cast<unsigned long long>(cyc / 1000000000),
                  static_cast<unsigned long long>(cyc % 1000000000));
    return "CPU 0/KVM-0 [000] " + std::string(b) + ": ";
  };
  auto pio = [&](uint64_t cyc, unsigned j) {
    uint32_t v;
    std::memcpy(&v, src.data() + 4 * j, 4);
    char b[96];
    std::snprintf(b, sizeof b, "kvm_pio: pio_write at 0x80 size 4 count 1 val %#x \n", v);
    return ts(cyc) + b;
  };
  // Qualification (SDM Vol. 3C Table 28-5): size 4 (3), string, REP, port 0x80.
  const std::string exit_line = "kvm_exit: vcpu 0 reason IO_INSTRUCTION rip 0x100000 info1 "
                                "0x0000000000800033 info2 0x0000000000000000 intr_info 0x00000000 "
                                "error_code 0x00000000\n";

  // Budget 4: the exit, four elements, no entry: the vCPU is still in the exit.
  auto r = m.run(4);
  CHECK(r.executed == 4);
  CHECK(r.reason == StopReason::InsnLimit);
  CHECK(m.vcpu.rip() == Machine::kCode);
  CHECK(m.vcpu.gpr(RCX) == 6);
  CHECK(m.vcpu.gpr(RSI) == kSrc + 16);
  CHECK(m.env.log.size() == 4);
  CHECK(m.vcpu.cycles().value() - c0 == 1200 + 4);
  CHECK(m.trace() == ts(c0) + exit_line + pio(c0 + 1200, 0) + pio(c0 + 1201, 1) +
                         pio(c0 + 1202, 2) + pio(c0 + 1203, 3));

  // A deadline three cycles on: the same exit goes on for three elements (no new exit, no
  // second round trip) and stops at the first element boundary at the deadline.
  m.trace_text.str("");
  const uint64_t c1 = m.vcpu.cycles().value();
  r = m.vcpu.run(100, Cycles(c1 + 3));
  CHECK(r.reason == StopReason::Deadline);
  CHECK(r.executed == 3);
  CHECK(m.vcpu.gpr(RCX) == 3);
  CHECK(m.vcpu.cycles().value() - c1 == 3);
  CHECK(m.trace() == pio(c1, 4) + pio(c1 + 1, 5) + pio(c1 + 2, 6));

  // An interrupt now: the exit ends with the injection (kvm_entry at the REP), the frame
  // holds the REP's address, and after IRETQ the REP resumes with a new exit.
  m.trace_text.str("");
  m.vcpu.notify_interrupt();
  const uint64_t c2 = m.vcpu.cycles().value();
  r = m.run(1);
  CHECK(r.executed == 0);
  CHECK(m.vcpu.rip() == m.handler_addr(kIrqVector));
  CHECK(m.get64(m.vcpu.gpr(RSP)) == Machine::kCode);
  CHECK(m.trace() == ts(c2) + "kvm_inj_virq: IRQ 0x40\n" + ts(c2) +
                         "kvm_entry: vcpu 0, rip 0x100000\n");
  r = m.run(100);
  CHECK(r.reason == StopReason::Halted);
  CHECK(r.executed == 1 + 3 + 1);  // iretq, the three elements left, hlt
  CHECK(m.vcpu.gpr(RCX) == 0);
  CHECK(m.vcpu.instructions() - i0 == 10 + 1 + 1);
  REQUIRE(m.env.log.size() == 10);
  for (unsigned j = 0; j < 10; ++j) {
    uint32_t want;
    std::memcpy(&want, src.data() + 4 * j, 4);
    CHECK(m.env.log[j].value == want);
  }
  const std::string t = m.trace();
  const size_t second_exit = t.find(exit_line);
  REQUIRE(second_exit != std::string::npos);
  CHECK(t.find("kvm_entry: vcpu 0, rip 0x100002", second_exit) != std::string::npos);
  // Two exits in all (the second after the interrupt), ten elements, the delivery and
  // IRETQ, the HLT's exit: an uninterrupted run would have had one exit fewer.
  const uint64_t irq = m.vcpu.cycles().value() - c0 - (2 * 1200 + 10 + 1200);
  CHECK(irq == 50 + 20);  // kExceptionCycles + IRETQ (core/README.md "Cost model")
}

TEST_CASE("REP OUTS to the exit port: the run ends after that element, RIP on the REP",
          "[rep][io]") {
  Machine m;
  m.put(kSrc, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0});
  m.code({0xf3, 0x6e, 0xf4} /* rep outsb; hlt */);
  m.vcpu.set_gpr(RCX, 10);
  m.vcpu.set_gpr(RDX, 0xf4);
  m.vcpu.set_gpr(RSI, kSrc);
  const auto r = m.run(100);
  CHECK(r.reason == StopReason::VmExitRequested);
  CHECK(r.executed == 1);
  CHECK(m.env.log.size() == 1);
  CHECK(m.vcpu.gpr(RCX) == 9);
  CHECK(m.vcpu.rip() == Machine::kCode);
  const std::string t = m.trace();  // the VM ends: no re-entry after the element
  REQUIRE(t.rfind("kvm_pio") != std::string::npos);
  CHECK(t.find("kvm_entry", t.rfind("kvm_pio")) == std::string::npos);
}

TEST_CASE("REP INS/OUTS: a fault on an element inside the exit is injected at entry",
          "[rep][io]") {
  // The buffer runs into a not-present page at 0x301000 on the third element. KVM's
  // emulator meets that #PF after the exit, so it injects it: kvm_inj_exception, kvm_entry
  // at the REP (which keeps its two finished elements), no pvsim_exception. Single steps
  // give the same trace as one run.
  for (bool in : {false, true}) {
    DYNAMIC_SECTION((in ? "rep insb" : "rep outsb")) {
      auto make = [&](Machine& m) {
        m.install_idt_all_hlt();
        m.split_2m(0x300000);
        m.put64(m.pte_addr(0x301000), 0);  // not present
        m.code({0xf3, static_cast<uint8_t>(in ? 0x6c : 0x6e), 0xf4});
        m.vcpu.set_gpr(RCX, 5);
        m.vcpu.set_gpr(RDX, 0x80);
        m.vcpu.set_gpr(in ? RDI : RSI, 0x300ffe);
      };
      Machine a, b;
      make(a);
      make(b);
      const auto r = a.run(100);
      CHECK(r.reason == StopReason::Halted);
      CHECK(r.executed == 2 + 1);  // two elements, the #PF handler's hlt
      for (int k = 0; k < 3; ++k) CHECK(b.step().reason == StopReason::InsnLimit);
      CHECK(b.step().reason == StopReason::Halted);
      CHECK(a.trace() == b.trace());
      CHECK(a.vcpu.cycles() == b.vcpu.cycles());
      for (Machine* m : {&a, &b}) {
        CHECK(m->vcpu.gpr(RCX) == 3);
        CHECK(m->vcpu.gpr(in ? RDI : RSI) == 0x301000);
        CHECK(m->vcpu.cr(2) == 0x301000);
        CHECK(m->vcpu.rip() == m->handler_addr(14) + 1);
        CHECK(m->get64(m->vcpu.gpr(RSP)) == (in ? 2u : 0u));            // error code: W for INS
        CHECK(m->get64(m->vcpu.gpr(RSP) + 8) == Machine::kCode);        // the REP
        CHECK(m->env.log.size() == (in ? 3u : 2u));  // INS read the port before the write failed
      }
      const std::string t = a.trace();
      const std::string inj = std::string("kvm_inj_exception: #PF (0x") + (in ? "2" : "0") + ")\n";
      const size_t at = t.find(inj);
      REQUIRE(at != std::string::npos);
      CHECK(t.find("kvm_entry: vcpu 0, rip 0x100000\n", at) == t.find("kvm_entry", at));
      CHECK(t.find("pvsim_exception") == std::string::npos);
      CHECK(t.find("reason IO_INSTRUCTION") < at);
    }
  }
}
