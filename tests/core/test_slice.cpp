// tests/core/test_slice.cpp — Budget::Slice, the scheduler's quantum (core/vcpu.h).
//
// A slice runs at most max_insns instructions and ends at the last decoded-block boundary
// that fits, instead of finishing a block's head instruction by instruction; when not even
// the first block fits it runs up to the budget exactly (so quantum 1 still interleaves
// per instruction). Deadlines stay exact. Budget::Exact keeps the old contract. The
// randomized check against single-stepping for both budgets is in test_deadline.cpp, the
// STI shadow under both budgets in test_nmi_irq.cpp.
#include <catch2/catch.hpp>

#include "machine.h"

using namespace pvsim;
using pvsim::test::Machine;

namespace {
constexpr uint64_t kNever = ~0ull;
enum { RAX, RCX, RDX, RBX };

// L: add rax,1; add rbx,2; add rcx,3; dec rdx; jnz L; hlt — one five-instruction block
// per iteration (a Jcc ends a block, core/README.md "Execution model").
void loop_program(Machine& m, uint64_t iterations) {
  m.code({0x48, 0x83, 0xc0, 0x01,   // add rax, 1
          0x48, 0x83, 0xc3, 0x02,   // add rbx, 2
          0x48, 0x83, 0xc1, 0x03,   // add rcx, 3
          0x48, 0xff, 0xca,         // dec rdx
          0x75, 0xef,               // jnz L (-17)
          0xf4});                   // hlt
  m.vcpu.set_gpr(RDX, iterations);
}
constexpr uint64_t kLoopLen = 17;  // bytes of one iteration
constexpr uint64_t kDecAt = 12;    // offset of "dec rdx"
}  // namespace

TEST_CASE("Budget::Slice ends at the last block boundary within the budget", "[slice][control]") {
  Machine m;
  loop_program(m, 100);
  // Blocks of 5: 5 and 10 fit in 12, 15 does not.
  auto r = m.vcpu.run(12, Cycles(kNever), Budget::Slice);
  CHECK(r.reason == StopReason::InsnLimit);
  CHECK(r.executed == 10);
  CHECK(m.vcpu.rip() == Machine::kCode);
  CHECK(m.vcpu.gpr(RAX) == 2);
  CHECK(m.vcpu.gpr(RDX) == 98);
  // A budget that fits whole blocks exactly uses all of it.
  r = m.vcpu.run(15, Cycles(kNever), Budget::Slice);
  CHECK(r.executed == 15);
  CHECK(m.vcpu.gpr(RDX) == 95);
  // The same budget with Budget::Exact stops inside the block.
  r = m.vcpu.run(12, Cycles(kNever));
  CHECK(r.reason == StopReason::InsnLimit);
  CHECK(r.executed == 12);
  CHECK(m.vcpu.rip() == Machine::kCode + 8);  // after two of the three ADDs
  CHECK(m.vcpu.gpr(RDX) == 93);
}

TEST_CASE("Budget::Slice shorter than a block still makes progress, exactly", "[slice][control]") {
  Machine m;
  loop_program(m, 100);
  auto r = m.vcpu.run(3, Cycles(kNever), Budget::Slice);
  CHECK(r.reason == StopReason::InsnLimit);
  CHECK(r.executed == 3);
  CHECK(m.vcpu.rip() == Machine::kCode + kDecAt);
  // Quantum 1: one instruction per call, as with Budget::Exact.
  r = m.vcpu.run(1, Cycles(kNever), Budget::Slice);
  CHECK(r.executed == 1);
  CHECK(m.vcpu.gpr(RDX) == 99);
  // Resuming mid-block: the block from the JNZ (1), then whole iterations (5 each).
  r = m.vcpu.run(12, Cycles(kNever), Budget::Slice);
  CHECK(r.executed == 11);
  CHECK(m.vcpu.rip() == Machine::kCode);
  CHECK(m.vcpu.gpr(RDX) == 97);
}

TEST_CASE("Budget::Slice keeps deadlines exact and stops at a HLT", "[slice][control]") {
  // Reference: the boundary where single-stepping first reaches each deadline.
  Machine ref;
  loop_program(ref, 20);
  std::vector<uint64_t> cyc{ref.vcpu.cycles().value()};
  for (int k = 0; k < 100; ++k) {
    REQUIRE(ref.vcpu.step().executed == 1);
    cyc.push_back(ref.vcpu.cycles().value());
  }
  for (uint64_t d = 1; d <= cyc.back() - cyc.front(); d += 3) {
    Machine m;
    loop_program(m, 20);
    const uint64_t c0 = m.vcpu.cycles().value();
    auto r = m.vcpu.run(1000, Cycles(c0 + d), Budget::Slice);
    uint64_t k = 0;
    while (cyc[k] - cyc[0] < d) ++k;
    INFO("deadline +" << d);
    CHECK(r.reason == StopReason::Deadline);
    CHECK(r.executed == k);
    CHECK(m.vcpu.cycles().value() - c0 == cyc[k] - cyc[0]);
  }
  // The whole loop then HLT: the budget is never what stops it.
  Machine m;
  loop_program(m, 20);
  auto r = m.vcpu.run(1000, Cycles(kNever), Budget::Slice);
  CHECK(r.reason == StopReason::Halted);
  CHECK(r.executed == 101);
  CHECK(m.vcpu.rip() == Machine::kCode + kLoopLen + 1);
}
