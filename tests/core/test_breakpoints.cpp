// tests/core/test_breakpoints.cpp — Vcpu::set_breakpoints (core/README.md "Breakpoints") and
// the exactness of Budget::Exact that guest points rely on.
//
// What counts as reaching a RIP: every instruction boundary where the instruction there is
// about to execute, the first instruction of a handler reached by delivery included, each
// boundary reported once; a REP string instruction resumed between elements does not count
// again, also not through the IRET of an event taken between its elements (the event pushed
// RF = 1, SDM Vol. 3B §17.3.1.1). A breakpoint that is only counted and continued from must
// leave the run exactly as it would have been.
#include <catch2/catch.hpp>
#include <map>
#include <vector>

#include "workload_rig.h"

using namespace pvsim;
using pvsim::test::Machine;
using pvsim::test::Workload;

namespace {
enum { RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI };
constexpr uint64_t kNever = ~0ull;
constexpr uint64_t kRF = 1ull << 16;
constexpr uint64_t C = Machine::kCode;

// Runs to the end, continuing after every breakpoint stop; returns the stops' RIPs.
std::vector<uint64_t> run_counting(Vcpu& v, StopReason until = StopReason::Halted,
                                   unsigned limit = 10000) {
  std::vector<uint64_t> stops;
  for (unsigned k = 0; k < limit; ++k) {
    const auto r = v.run(100000, Cycles(kNever));
    if (r.reason != StopReason::Breakpoint) {
      CHECK(r.reason == until);
      return stops;
    }
    stops.push_back(v.rip());
  }
  FAIL("no end after " << limit << " runs");
  return stops;
}

// mov eax, 1; add eax, 2; add eax, 4; add eax, 8; hlt — one decoded block.
const std::vector<uint8_t> kStraight = {
    0xb8, 0x01, 0x00, 0x00, 0x00,  // 000 mov eax, 1
    0x83, 0xc0, 0x02,              // 005 add eax, 2
    0x83, 0xc0, 0x04,              // 008 add eax, 4
    0x83, 0xc0, 0x08,              // 00b add eax, 8
    0xf4,                          // 00e hlt
};
}  // namespace

TEST_CASE("breakpoint in the middle of a block: stops before it, exactly once", "[breakpoint]") {
  Machine m;
  m.put(C, kStraight);
  m.vcpu.set_breakpoints({C + 8});
  auto r = m.run(100);
  CHECK(r.reason == StopReason::Breakpoint);
  CHECK(r.executed == 2);
  CHECK(m.vcpu.instructions() == 2);
  CHECK(m.vcpu.rip() == C + 8);
  CHECK(m.vcpu.gpr(RAX) == 3);  // the instruction at the breakpoint has not run
  r = m.run(100);
  CHECK(r.reason == StopReason::Halted);
  CHECK(r.executed == 3);
  CHECK(m.vcpu.gpr(RAX) == 15);
  CHECK(m.run(100).reason == StopReason::Halted);
}

TEST_CASE("breakpoint at a block start, and on a jump target inside a block", "[breakpoint]") {
  // The JMP to the same page is followed by the decoder: its target (017) lies inside the
  // first decoded block; the JNZ ends that block, so its target (01f) starts one.
  const std::vector<uint8_t> code = {
      0xb8, 0x01, 0x00, 0x00, 0x00,                    // 000 mov eax, 1
      0xeb, 0x10,                                      // 005 jmp 017
      0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc,  // 007 int3 (never run)
      0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc,  // 00f
      0x83, 0xc0, 0x02,                                // 017 add eax, 2
      0x85, 0xc0,                                      // 01a test eax, eax
      0x75, 0x01,                                      // 01c jnz 01f
      0xf4,                                            // 01e hlt
      0x83, 0xc0, 0x04,                                // 01f add eax, 4
      0xf4,                                            // 022 hlt
  };
  Machine m;
  m.put(C, code);
  m.vcpu.set_rip(C);
  m.vcpu.set_breakpoints({C, C + 0x17, C + 0x1f});
  std::vector<uint64_t> insns;
  for (;;) {
    const auto r = m.run(100);
    if (r.reason != StopReason::Breakpoint) {
      CHECK(r.reason == StopReason::Halted);
      break;
    }
    insns.push_back(m.vcpu.instructions());
  }
  // The first instruction of the run (nothing before it), the jump target, the branch target.
  CHECK(insns == std::vector<uint64_t>{0, 2, 5});
  CHECK(m.vcpu.gpr(RAX) == 7);
  CHECK(m.vcpu.rip() == C + 0x23);
}

TEST_CASE("breakpoint at an interrupt handler and an exception handler reached by delivery",
          "[breakpoint]") {
  Machine m;
  // sti; nop; nop; nop; ud2 — the interrupt is taken after the STI shadow, then #UD.
  m.code({0xfb, 0x90, 0x90, 0x90, 0x0f, 0x0b});
  m.put(C + 0x800, {0xba, 0x77, 0x00, 0x00, 0x00, 0x48, 0xcf});  // mov edx, 0x77; iretq
  m.put(C + 0x900, {0xbe, 0x55, 0x00, 0x00, 0x00, 0xf4});        // mov esi, 0x55; hlt
  m.set_gate(0x30, C + 0x800);
  m.set_gate(6, C + 0x900);
  bool pending = true;
  m.vcpu.set_interrupt_poll([&](Vcpu&) {
    if (!pending) return -1;
    pending = false;
    return 0x30;
  });
  m.vcpu.notify_interrupt();
  m.vcpu.set_breakpoints({C + 0x800, C + 0x900});
  auto r = m.run(100);
  REQUIRE(r.reason == StopReason::Breakpoint);
  CHECK(m.vcpu.rip() == C + 0x800);
  CHECK(r.executed == 2);                    // STI and the shadowed NOP; then the delivery
  CHECK(m.get64(m.vcpu.gpr(RSP)) == C + 2);  // the frame is there: delivery came first
  CHECK(m.vcpu.gpr(RDX) == 0);
  r = m.run(100);
  REQUIRE(r.reason == StopReason::Breakpoint);
  CHECK(m.vcpu.rip() == C + 0x900);
  CHECK(m.vcpu.gpr(RDX) == 0x77);
  CHECK(m.get64(m.vcpu.gpr(RSP)) == C + 4);  // #UD's frame: the UD2
  CHECK(m.vcpu.gpr(RSI) == 0);
  CHECK(m.run(100).reason == StopReason::Halted);
  CHECK(m.vcpu.gpr(RSI) == 0x55);
}

TEST_CASE("breakpoint inside a loop stops once per iteration", "[breakpoint]") {
  // mov ecx, 25; l: add eax, 3; add ebx, eax; dec ecx; jnz l; hlt
  const std::vector<uint8_t> code = {0xb9, 0x19, 0x00, 0x00, 0x00, 0x83, 0xc0, 0x03,
                                     0x01, 0xc3, 0xff, 0xc9, 0x75, 0xf7, 0xf4};
  Machine plain;
  plain.put(C, code);
  REQUIRE(plain.run(1000).reason == StopReason::Halted);
  for (uint64_t at : {C + 5, C + 8, C + 0xa}) {  // the loop head (block start), mid-block twice
    Machine m;
    m.put(C, code);
    m.vcpu.set_breakpoints({at});
    const std::vector<uint64_t> stops = run_counting(m.vcpu);
    CHECK(stops.size() == 25);
    CHECK(m.vcpu.dump_state() == plain.vcpu.dump_state());
    CHECK(m.vcpu.instructions() == plain.vcpu.instructions());
    CHECK(m.vcpu.cycles() == plain.vcpu.cycles());
  }
}

namespace {
// mov rsi, 0x200000; mov rdi, 0x201000; mov ecx, 50; rep movsb; hlt
const std::vector<uint8_t> kRep = {0x48, 0xc7, 0xc6, 0x00, 0x00, 0x20, 0x00, 0x48,
                                   0xc7, 0xc7, 0x00, 0x10, 0x20, 0x00, 0xb9, 0x32,
                                   0x00, 0x00, 0x00, 0xf3, 0xa4, 0xf4};
constexpr uint64_t kRepAt = C + 0x13;
void fill_source(Machine& m) {
  for (uint64_t k = 0; k < 64; k += 8) m.put64(0x200000 + k, 0x0101010101010101ull * (k + 1));
}
}  // namespace

TEST_CASE("a REP resumed between elements is reached once", "[breakpoint][rep]") {
  Machine m;
  fill_source(m);
  m.put(C, kRep);
  m.vcpu.set_breakpoints({kRepAt});
  auto r = m.run(100);
  REQUIRE(r.reason == StopReason::Breakpoint);
  CHECK(r.executed == 3);
  // Budget stops between elements: RIP stays on the REP; resuming it is no new arrival.
  for (int k = 0; k < 4; ++k) {
    r = m.run(7);
    CHECK(r.reason == StopReason::InsnLimit);
    CHECK(r.executed == 7);
    CHECK(m.vcpu.rip() == kRepAt);
  }
  CHECK(m.vcpu.gpr(RCX) == 50 - 28);
  r = m.run(100);
  CHECK(r.reason == StopReason::Halted);
  CHECK(r.executed == 22 + 1);
  for (uint64_t k = 0; k < 48; k += 8) CHECK(m.get64(0x201000 + k) == m.get64(0x200000 + k));
}

namespace {

// The REP of kRep with an IRETQ handler at vector 0x30, raised while `pending` is set, and
// IF = 1; runs to the breakpoint at the REP and 10 elements into it.
void stop_inside_rep(Machine& m, bool& pending) {
  fill_source(m);
  m.put(C, kRep);
  m.put(C + 0x800, {0x48, 0xcf});  // iretq
  m.set_gate(0x30, C + 0x800);
  m.vcpu.set_interrupt_poll([&pending](Vcpu&) {
    if (!pending) return -1;
    pending = false;
    return 0x30;
  });
  m.vcpu.set_rflags(0x202);  // IF
  m.vcpu.set_breakpoints({kRepAt});
  REQUIRE(m.run(100).reason == StopReason::Breakpoint);
  REQUIRE(m.run(10).reason == StopReason::InsnLimit);  // 10 elements
}

}  // namespace

TEST_CASE("a REP interrupted between elements pushes RF and is not reached again after IRETQ",
          "[breakpoint][rep]") {
  Machine m;
  bool pending = false;
  stop_inside_rep(m, pending);
  pending = true;
  m.vcpu.notify_interrupt();
  auto r = m.run(1);  // the delivery
  CHECK(r.executed == 0);
  CHECK(m.vcpu.rip() == C + 0x800);
  CHECK(m.get64(m.vcpu.gpr(RSP)) == kRepAt);
  CHECK((m.get64(m.vcpu.gpr(RSP) + 16) & kRF) != 0);
  r = m.run(100);  // IRETQ, the other 40 elements, HLT: no second stop at the REP
  CHECK(r.reason == StopReason::Halted);
  CHECK(r.executed == 1 + 40 + 1);
  CHECK((m.vcpu.rflags() & kRF) == 0);  // cleared as the REP resumed
}

TEST_CASE("a snapshot between REP elements keeps the REP's resumption mark",
          "[breakpoint][rep][snapshot]") {
  Machine m;
  bool pending = false;
  stop_inside_rep(m, pending);
  const Vcpu::Snapshot snap = m.vcpu.save();
  const unsigned level = m.mem.checkpoint();
  for (int round = 0; round < 3; ++round) {
    if (round > 0) {
      m.mem.rollback(level);
      m.vcpu.restore(snap);
    }
    INFO("round " << round);
    pending = true;
    m.vcpu.notify_interrupt();
    REQUIRE(m.run(1).executed == 0);  // delivered between elements: RF in the frame
    CHECK((m.get64(m.vcpu.gpr(RSP) + 16) & kRF) != 0);
    const auto r = m.run(100);
    CHECK(r.reason == StopReason::Halted);
    CHECK(r.executed == 1 + 40 + 1);
  }
}

TEST_CASE("a REP faulting between elements pushes RF and is not reached again after IRETQ",
          "[breakpoint][rep]") {
  Machine m;
  fill_source(m);
  // The destination runs from 0x400fe8 into 0x401000, whose PTE is not present: element 25
  // faults; the #PF handler maps the page and returns to the REP.
  const uint64_t pt = m.split_2m(0x400000);
  m.put64(pt + 8, 0);
  std::vector<uint8_t> code = kRep;
  code[10] = 0xe8;  // mov rdi, 0x400fe8
  code[11] = 0x0f;
  code[12] = 0x40;
  m.put(C, code);
  const uint32_t pte = static_cast<uint32_t>(pt + 8);
  m.put(C + 0x800,
        {0x48, 0xc7, 0x04, 0x25, static_cast<uint8_t>(pte), static_cast<uint8_t>(pte >> 8),
         static_cast<uint8_t>(pte >> 16), static_cast<uint8_t>(pte >> 24), 0x07, 0x10, 0x40,
         0x00,                    // mov qword [pte], 0x401007
         0x48, 0x83, 0xc4, 0x08,  // add rsp, 8 (the error code)
         0x48, 0xcf});            // iretq
  m.set_gate(14, C + 0x800);
  m.vcpu.set_breakpoints({kRepAt, C + 0x800});
  std::vector<uint64_t> stops = run_counting(m.vcpu);
  CHECK(stops == std::vector<uint64_t>{kRepAt, C + 0x800});
  CHECK(m.vcpu.cr(2) == 0x401000);
  CHECK(m.vcpu.gpr(RCX) == 0);
  for (uint64_t k = 0; k < 48; k += 8) CHECK(m.get64(0x400fe8 + k) == m.get64(0x200000 + k));
}

TEST_CASE("an IRETQ that loads RF passes over a breakpoint once", "[breakpoint]") {
  // int 0x40 (the handler sets RF in the frame); l: add eax, 1; cmp eax, 3; jb l; hlt
  Machine m;
  m.code({0xcd, 0x40, 0x83, 0xc0, 0x01, 0x83, 0xf8, 0x03, 0x72, 0xf8, 0xf4});
  m.put(C + 0x800, {0x81, 0x4c, 0x24, 0x10, 0x00, 0x00, 0x01, 0x00, 0x48,
                    0xcf});  // or dword [rsp+16], RF; iretq
  m.set_gate(0x40, C + 0x800);
  m.vcpu.set_breakpoints({C + 2});
  auto r = m.run(100);
  REQUIRE(r.reason == StopReason::Breakpoint);
  CHECK(m.vcpu.gpr(RAX) == 1);  // the first arrival, with RF set, did not stop
  CHECK((m.vcpu.rflags() & kRF) == 0);
  REQUIRE(m.run(100).reason == StopReason::Breakpoint);
  CHECK(m.vcpu.gpr(RAX) == 2);
  CHECK(m.run(100).reason == StopReason::Halted);
  // Without breakpoints RF is cleared all the same after the instruction it returns to.
  Machine n;
  n.code({0xcd, 0x40, 0x90, 0xf4});
  n.put(C + 0x800, {0x81, 0x4c, 0x24, 0x10, 0x00, 0x00, 0x01, 0x00, 0x48, 0xcf});
  n.set_gate(0x40, C + 0x800);
  REQUIRE(n.run(3).executed == 3);  // INT, OR, IRETQ
  CHECK((n.vcpu.rflags() & kRF) != 0);
  REQUIRE(n.run(1).executed == 1);  // NOP
  CHECK((n.vcpu.rflags() & kRF) == 0);
}

TEST_CASE("no stops with an empty breakpoint list", "[breakpoint]") {
  Machine m;
  m.put(C, kStraight);
  m.vcpu.set_breakpoints({C + 8, C + 11});
  m.vcpu.set_breakpoints({});
  const auto r = m.run(100);
  CHECK(r.reason == StopReason::Halted);
  CHECK(r.executed == 5);
  CHECK(m.vcpu.gpr(RAX) == 15);
}

TEST_CASE("a snapshot taken at a breakpoint stop restores to that stop", "[breakpoint][snapshot]") {
  const std::vector<uint8_t> code = {0xb9, 0x19, 0x00, 0x00, 0x00, 0x83, 0xc0, 0x03,
                                     0x01, 0xc3, 0xff, 0xc9, 0x75, 0xf7, 0xf4};
  Machine m;
  m.put(C, code);
  m.vcpu.set_breakpoints({C + 8});
  for (int k = 0; k < 3; ++k) REQUIRE(m.run(1000).reason == StopReason::Breakpoint);
  const Vcpu::Snapshot snap = m.vcpu.save();
  const unsigned level = m.mem.checkpoint();
  const std::vector<uint64_t> a = run_counting(m.vcpu);
  CHECK(a.size() == 22);  // the stop it was saved at is not reported again
  const std::string fp = m.vcpu.dump_state();
  for (int again = 0; again < 2; ++again) {
    m.mem.rollback(level);
    m.vcpu.set_breakpoints({});  // the list is part of the snapshot
    m.vcpu.restore(snap);
    CHECK(m.vcpu.rip() == C + 8);
    CHECK(run_counting(m.vcpu) == a);
    CHECK(m.vcpu.dump_state() == fp);
  }
}

TEST_CASE("breakpoints that are counted and continued from change nothing, slices included",
          "[breakpoint]") {
  Workload plain;
  const std::vector<Workload::Piece> want = plain.run_to_end();
  REQUIRE(want.back().reason == StopReason::VmExitRequested);
  const std::vector<uint64_t> points = {
      Workload::kLoop,     Workload::kLoadArr, Workload::kReadX,      Workload::kRepMovs,
      Workload::kAfterHlt, Workload::kNop,     Workload::kIrqHandler, Workload::kNmiHandler};
  Workload w;
  w.m.vcpu.set_breakpoints(points);
  const std::vector<Workload::Piece> got = w.run_to_end(true);
  CHECK(got == want);
  CHECK(w.fingerprint() == plain.fingerprint());
  CHECK(w.m.trace() == plain.m.trace());
  std::map<uint64_t, unsigned> hits;
  for (const auto& [rip, n] : w.stops) ++hits[rip];
  for (uint64_t p : points) CHECK(hits[p] > 0);
  CHECK(hits[Workload::kLoadArr] >= 40);
  CHECK(hits[Workload::kRepMovs] == 5);  // every 8th of 40 iterations, however it was split
  // Each boundary once: no two stops at the same (RIP, count).
  for (size_t k = 1; k < w.stops.size(); ++k) CHECK(w.stops[k] != w.stops[k - 1]);
  // One breakpoint at a time, so that each one also meets the pieces alone.
  for (uint64_t p : points) {
    Workload one;
    one.m.vcpu.set_breakpoints({p});
    CHECK(one.run_to_end(true) == want);
  }
}

TEST_CASE("a breakpoint inside a block cut at its length limit leaves slices where they were",
          "[breakpoint]") {
  // mov ecx, 20; l: 70 x add eax, ecx; dec ecx; jnz l; hlt. The loop body is decoded as blocks
  // of at most 32 instructions (Core::decode_block), so a block decoded from a breakpoint
  // inside the first one would run on past that block's end: the run that goes on after a
  // stop there must go on inside the block that was cut, or a slice ends elsewhere.
  std::vector<uint8_t> code = {0xb9, 0x14, 0x00, 0x00, 0x00};
  for (int k = 0; k < 70; ++k) code.insert(code.end(), {0x01, 0xc8});
  code.insert(code.end(), {0xff, 0xc9, 0x0f, 0x85, 0x6c, 0xff, 0xff, 0xff,
                           0xf4});  // dec ecx; jnz l (rel32); hlt
  const uint64_t loop = C + 5;
  auto pieces = [&](const std::vector<uint64_t>& bps, unsigned& stops) {
    Machine m;
    m.put(C, code);
    m.vcpu.set_breakpoints(bps);
    std::vector<std::pair<uint64_t, uint64_t>> out;  // (executed, rip) of every slice
    for (uint64_t k = 0; k < 10000; ++k) {
      const uint64_t n = 5 + (k * 13) % 47;
      Vcpu::RunResult r = m.vcpu.run(n, Cycles(kNever), Budget::Slice);
      uint64_t steps = m.vcpu.last_run_steps();
      while (r.reason == StopReason::Breakpoint) {
        ++stops;
        const Vcpu::RunResult more = m.vcpu.run(n - steps, Cycles(kNever), Budget::Slice);
        r.executed += more.executed;
        steps += m.vcpu.last_run_steps();
        r.reason = more.reason;
      }
      out.emplace_back(r.executed, m.vcpu.rip());
      if (r.reason == StopReason::Halted) break;
    }
    CHECK(m.vcpu.gpr(RAX) == 70ull * (20 * 21 / 2));
    return out;
  };
  unsigned none = 0;
  const auto want = pieces({}, none);
  for (uint64_t at : {loop + 2 * 10, loop + 2 * 31, loop + 2 * 40, loop + 2 * 69}) {
    unsigned stops = 0;
    INFO("breakpoint at +" << (at - C));
    CHECK(pieces({at}, stops) == want);
    CHECK(stops == 20);
  }
}

TEST_CASE("run(n, deadline, Exact) stops at exactly n instructions, mid-block too",
          "[breakpoint][control]") {
  for (uint64_t n = 1; n <= 4; ++n) {
    Machine m;
    m.put(C, kStraight);
    const auto r = m.vcpu.run(n, Cycles(kNever), Budget::Exact);
    CHECK(r.reason == StopReason::InsnLimit);
    CHECK(r.executed == n);
    CHECK(m.vcpu.instructions() == n);
    static constexpr uint64_t kAt[] = {0, 5, 8, 11, 14};
    CHECK(m.vcpu.rip() == C + kAt[n]);
  }
  // The workload up to its first HLT, against single steps; with and without breakpoints.
  Workload stepped;
  std::vector<std::string> states = {stepped.fingerprint()};
  while (!stepped.m.vcpu.halted()) {
    REQUIRE(stepped.m.step().executed == 1);
    states.push_back(stepped.fingerprint());
  }
  REQUIRE(states.size() > 200);
  for (uint64_t n = 1; n < states.size(); n += 1 + n / 8) {
    for (bool bps : {false, true}) {
      Workload w;
      if (bps) w.m.vcpu.set_breakpoints({Workload::kLoadArr, Workload::kRepMovs, Workload::kNop});
      uint64_t left = n;
      while (left > 0) {
        const auto r = w.m.vcpu.run(left, Cycles(kNever), Budget::Exact);
        left -= r.executed;
        if (r.reason != StopReason::Breakpoint) {
          CHECK(r.reason == StopReason::InsnLimit);
          break;
        }
      }
      INFO("n = " << n << (bps ? " with breakpoints" : ""));
      CHECK(left == 0);
      CHECK(w.m.vcpu.instructions() == n);
      CHECK(w.fingerprint() == states[n]);
    }
  }
}
