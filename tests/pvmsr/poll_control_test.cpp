// MSR_KVM_POLL_CONTROL: value, reserved bits, and PV-CPUID enforcement (pvmsr/README.md §8).
#include "pvmsr/poll_control.h"

#include <catch2/catch.hpp>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "core/env.h"
#include "core/guest_memory.h"
#include "core/trace.h"
#include "core/vcpu.h"
#include "tests/cpu_envs.h"
#include "tests/pvmsr/snapshot_check.h"

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

namespace {

// Two vCPUs with the MSR, for the snapshot test (tests/pvmsr/snapshot_check.h).
struct PollRig {
  GuestMemory mem{16 * kPageSize};
  Tracer tracer;
  NullEnv env;
  std::vector<std::unique_ptr<Vcpu>> vcpus;
  PollControl pc{2};
  PollRig() {
    for (unsigned i = 0; i < 2; ++i) {
      VcpuConfig vc;
      vc.index = i;
      vc.count = 2;
      vcpus.push_back(std::make_unique<Vcpu>(vc, mem, env, tracer));
      pc.attach(*vcpus.back());
    }
  }
  MsrStatus wr(unsigned i, uint64_t value) { return vcpus[i]->msrs().write(*vcpus[i], PollControl::kMsr, value); }
  uint64_t rd(unsigned i) {
    uint64_t x = 7;
    REQUIRE(vcpus[i]->msrs().read(*vcpus[i], PollControl::kMsr, x) == MsrStatus::Ok);
    return x;
  }
  struct Snap {
    PollControl::Snapshot pc;
    unsigned level;
  };
  Snap save() { return Snap{pc.save(), mem.checkpoint()}; }
  void restore(const Snap& s) {
    pc.restore(s.pc);
    mem.rollback(s.level);
  }
  std::vector<uint8_t> ram() const { return pvsim::test::ram_image(mem); }
};

}  // namespace

TEST_CASE("POLL_CONTROL snapshot: restore brings back every vCPU's value", "[poll_control][snapshot]") {
  auto make = [] {
    auto r = std::make_unique<PollRig>();
    REQUIRE(r->wr(0, 0) == MsrStatus::Ok);
    return r;
  };
  auto mutate = [](PollRig& r) {
    REQUIRE(r.wr(0, 1) == MsrStatus::Ok);
    REQUIRE(r.wr(1, 0) == MsrStatus::Ok);
  };
  auto branch = [](PollRig& r, uint64_t) {
    std::ostringstream log;
    log << r.rd(0) << r.rd(1) << r.pc.value(0) << r.pc.value(1);
    REQUIRE(r.wr(1, 1) == MsrStatus::Ok);
    log << r.rd(0) << r.rd(1);
    return log.str();
  };
  pvsim::test::check_snapshot(make, mutate, branch, {0, 1});
}
