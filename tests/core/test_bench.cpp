// tests/core/test_bench.cpp — a quick throughput measurement of the run loop on a tight
// ALU loop (4 instructions per iteration). It checks the architectural result; the MIPS
// figure is printed, not asserted (sanitizer and debug builds are much slower). The test
// reads host time only to report speed; nothing it measures feeds the simulation.
#include <catch2/catch.hpp>
#include <chrono>

#include "machine.h"

using pvsim::test::Machine;

TEST_CASE("tight ALU loop throughput", "[bench]") {
  Machine m;
  // mov ecx, 10000000; l: add rax, rcx; xor rdx, rax; sub ecx, 1; jnz l; hlt
  m.code({0xb9, 0x80, 0x96, 0x98, 0x00, 0x48, 0x01, 0xc8, 0x48, 0x31, 0xc2, 0x83, 0xe9, 0x01, 0x75,
          0xf5, 0xf4});
  const auto t0 = std::chrono::steady_clock::now();
  auto r = m.run(100'000'000);
  const auto t1 = std::chrono::steady_clock::now();
  REQUIRE(r.reason == pvsim::StopReason::Halted);
  const uint64_t n = 10'000'000;
  CHECK(m.vcpu.gpr(0) == n * (n + 1) / 2);
  CHECK(r.executed == 1 + 4 * n + 1);
  const double s = std::chrono::duration<double>(t1 - t0).count();
  WARN("tight loop: " << r.executed << " instructions in " << s
                      << " s = " << (static_cast<double>(r.executed) / s / 1e6) << " MIPS");
}
