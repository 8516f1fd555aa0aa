// Host check of the scale guest's answer (scenarios/guest/programs/scale.c): every vCPU
// compares alu_run(SCALE_ITERATIONS) with SCALE_EXPECTED, and this test recomputes that
// value natively from the same C header, so code and constant cannot drift apart.
#include <catch2/catch.hpp>
#include <cinttypes>
#include <cstdio>

#include "alu_algo.h"
#include "scale_params.h"

TEST_CASE("scale guest: SCALE_EXPECTED is alu_run(SCALE_ITERATIONS) computed natively", "[scale]") {
  const uint64_t r = alu_run(SCALE_ITERATIONS);
  if (r != SCALE_EXPECTED) std::printf("alu_run(%u) = 0x%016" PRIx64 "\n", SCALE_ITERATIONS, r);
  CHECK(r == SCALE_EXPECTED);
}
