// Whole-VM runs of a REP STOSQ with RCX = 2^40: the scenario's limits stop it at their exact
// element. Every REP element counts as one instruction toward limits.max_instructions and
// the scheduler's quantum, and the virtual time limit stops a REP between two elements
// (core/README.md "REP string instructions").
#include <catch2/catch.hpp>

#include <vector>

#include "core/types.h"
#include "core/vcpu.h"
#include "tests/platform/vm_helpers.h"
#include "tools/platform/platform.h"

using namespace pvsim;
using test::FlatScenario;

namespace {
enum { RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI };

constexpr uint64_t kLoad = 0x100000;        // flat images load here (boot protocol)
constexpr uint64_t kAliasVa = 1ull << 39;   // PML4 entries 1..16: 8 TiB
constexpr uint64_t kElements = 1ull << 40;  // 2^40 quadwords = 8 TiB
constexpr uint64_t kBeforeRep = 25;         // instructions before the big REP (below)
constexpr uint64_t kRepAt = kLoad + 51;

// The guest maps 8 TiB of linear addresses onto one 4 KiB page (PML4[1..16] -> a PDPT whose
// 512 entries name one PD, whose entries name one page table, whose entries name one page),
// so REP STOSQ with RCX = 2^40 only ever writes to RAM that exists, then runs it.
std::vector<uint8_t> image() {
  static const uint8_t code[] = {
      0x0f, 0x20, 0xdf,                    // mov rdi, cr3
      0x48, 0x83, 0xc7, 0x08,              // add rdi, 8               ; &PML4[1]
      0xb8, 0x03, 0x10, 0x10, 0x00,        // mov eax, 0x101003        ; the PDPT, P|RW
      0xb9, 0x10, 0x00, 0x00, 0x00,        // mov ecx, 16
      0xf3, 0x48, 0xab,                    // rep stosq                ; 16 instructions
      0x0f, 0x20, 0xd8,                    // mov rax, cr3
      0x0f, 0x22, 0xd8,                    // mov cr3, rax             ; flush the TLB
      0x48, 0xbf, 0, 0, 0, 0, 0x80, 0, 0, 0,  // movabs rdi, 1 << 39
      0x48, 0xb9, 0, 0, 0, 0, 0, 1, 0, 0,     // movabs rcx, 1 << 40
      0xb8, 0x5a, 0x00, 0x00, 0x00,        // mov eax, 0x5a
      0xf3, 0x48, 0xab,                    // rep stosq                ; at kLoad + 51
      0xb0, 0x00, 0xe6, 0xf4, 0xf4,        // mov al, 0; out 0xf4, al; hlt (never reached)
  };
  std::vector<uint8_t> img(0x5000, 0);
  for (size_t k = 0; k < sizeof code; ++k) img[k] = code[k];
  auto table = [&](uint64_t off, uint64_t entry) {
    for (uint64_t j = 0; j < 512; ++j)
      for (unsigned b = 0; b < 8; ++b) img[off + 8 * j + b] = static_cast<uint8_t>(entry >> (8 * b));
  };
  table(0x1000, (kLoad + 0x2000) | 3);  // PDPT: every entry -> the PD
  table(0x2000, (kLoad + 0x3000) | 3);  // PD: every entry -> the page table
  table(0x3000, (kLoad + 0x4000) | 3);  // page table: every entry -> the one page
  return img;
}
}  // namespace

TEST_CASE("rep stosq with RCX = 2^40 stops at exactly limits.max_instructions",
          "[vm][limits][rep]") {
  for (bool exact_quantum : {false, true}) {
    DYNAMIC_SECTION((exact_quantum ? "exact quanta" : "slices ending at block boundaries")) {
      FlatScenario f(image());
      f.s.limits.max_instructions = 1'000'000;
      f.s.machine.exact_quantum = exact_quantum;
      Platform p(f.s);
      const RunReport r = p.run();
      CHECK(r.stop == RunStop::Limit);
      CHECK(r.stop_detail == "max_instructions (1000000) reached");
      CHECK(r.instructions == 1'000'000);
      const Vcpu& v = p.vcpu(0);
      CHECK(v.instructions() == 1'000'000);
      const uint64_t done = 1'000'000 - kBeforeRep;  // elements of the big REP
      CHECK(v.rip() == kRepAt);
      CHECK(v.gpr(RCX) == kElements - done);
      CHECK(v.gpr(RDI) == kAliasVa + 8 * done);
      // Each element costs what one STOSQ costs, 2 cycles (core/README.md "Cost model"); the
      // rest is the 25 instructions before it and a few first-touch EPT exits (1200 each).
      CHECK(r.vcpus.at(0).cycles > 2 * done);
      CHECK(r.vcpus.at(0).cycles < 2 * done + 15 * 1200);
    }
  }
}

TEST_CASE("rep stosq with RCX = 2^40 stops at the first element past the virtual time limit",
          "[vm][limits][rep]") {
  FlatScenario f(image());
  f.s.limits.max_instructions = 1'000'000'000'000ull;
  f.s.limits.max_virtual_ms = 1;
  Platform p(f.s);
  const RunReport r = p.run();
  CHECK(r.stop == RunStop::Limit);
  const Vcpu& v = p.vcpu(0);
  const uint64_t hz = f.s.machine.tsc_hz();
  const uint64_t limit_cycles = 1'000'000 * hz / 1'000'000'000;  // 1 ms, exact at this rate
  REQUIRE(limit_cycles * 1'000'000'000 == 1'000'000 * hz);
  // Stopped inside the REP at the first element boundary at or past the limit: one element
  // (2 cycles) earlier it had not reached it.
  CHECK(v.rip() == kRepAt);
  CHECK(v.cycles().value() >= limit_cycles);
  CHECK(v.cycles().value() < limit_cycles + 2);
  const uint64_t done = kElements - v.gpr(RCX);
  CHECK(v.gpr(RDI) == kAliasVa + 8 * done);
  CHECK(r.instructions == kBeforeRep + done);
}
