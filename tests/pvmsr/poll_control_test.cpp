// MSR_KVM_POLL_CONTROL: value, reserved bits, and PV-CPUID enforcement (pvmsr/README.md §8).
#include "pvmsr/poll_control.h"

#include <catch2/catch.hpp>

#include "core/env.h"
#include "core/guest_memory.h"
#include "core/trace.h"
#include "core/vcpu.h"
#include "tests/cpu_envs.h"

using namespace pvsim;

using pvsim::test::NullEnv;

TEST_CASE("POLL_CONTROL: reset 1, only bit 0 writable, #GP under enforcement without bit 12", "[poll_control]") {
  for (bool enforce : {false, true})
    for (uint32_t features : {0u, 1u << PollControl::kFeatureBit, ~0u}) {
      INFO("enforce " << enforce << " features " << features);
      GuestMemory mem(16 * kPageSize);
      Tracer tracer;
      NullEnv env;
      VcpuConfig vc;
      Vcpu v(vc, mem, env, tracer);
      PollControl pc(1, enforce, features);
      pc.attach(v);
      const bool gated = enforce && !(features & (1u << PollControl::kFeatureBit));
      uint64_t x = 7;
      // Before the enforcement gate (commit 66570e966dd9) this MSR answered whatever CPUID said.
      CHECK(v.msrs().read(v, PollControl::kMsr, x) == (gated ? MsrStatus::Gp : MsrStatus::Ok));
      if (!gated) CHECK(x == 1);
      CHECK(v.msrs().write(v, PollControl::kMsr, 0) == (gated ? MsrStatus::Gp : MsrStatus::Ok));
      CHECK(pc.value(0) == (gated ? 1u : 0u));
      CHECK(v.msrs().write(v, PollControl::kMsr, 2) == MsrStatus::Gp);  // reserved bit
      CHECK(pc.value(0) == (gated ? 1u : 0u));
    }
}

TEST_CASE("POLL_CONTROL under the orig profile: no such MSR on a seed-era host, #GP both ways", "[poll_control]") {
  for (bool enforce : {false, true}) {
    GuestMemory mem(16 * kPageSize);
    Tracer tracer;
    NullEnv env;
    VcpuConfig vc;
    Vcpu v(vc, mem, env, tracer);
    PollControl pc(1, enforce, ~0u, /*exists=*/false);
    pc.attach(v);
    uint64_t x = 7;
    CHECK(v.msrs().read(v, PollControl::kMsr, x) == MsrStatus::Gp);
    CHECK(v.msrs().write(v, PollControl::kMsr, 0) == MsrStatus::Gp);
    CHECK(pc.value(0) == 1u);
  }
}
