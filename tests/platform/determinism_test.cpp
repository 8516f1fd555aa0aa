// Every shipped scenario (scenarios/**, bench excluded) run twice in one process gives the
// same trace hash, console, instruction count and stop reason (tools/platform/README.md §8); and
// again with the machine widened to 8 vCPUs (determinism must hold with 8 vCPUs too),
// where guests written for one vCPU run on all eight at once and race on shared data —
// the outcome may be odd, but it must be the same odd outcome every time.
#include <catch2/catch.hpp>
#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "tests/platform/shipped_scenarios.h"
#include "tools/platform/platform.h"

using namespace pvsim;
namespace fs = std::filesystem;


TEST_CASE("every scenario is deterministic", "[determinism]") {
  const std::vector<fs::path> files = shipped_scenarios();
  std::vector<std::string> missing;
  unsigned ran = 0;
  for (const fs::path& f : files) {
    Scenario s;
    try {
      s = load_scenario(f);
    } catch (const ScenarioError& e) {
      const std::string msg = e.what();
      if (msg.find("/guest/image: image file not found") != std::string::npos) {
        missing.push_back(f.filename().string());
        continue;
      }
      FAIL(msg);
    }
    INFO(f.string());
    const RunReport a = run_scenario(s);
    const RunReport b = run_scenario(s);
    CHECK(a.trace_hash == b.trace_hash);
    CHECK(a.trace_events == b.trace_events);
    CHECK(a.console == b.console);
    CHECK(a.instructions == b.instructions);
    CHECK(a.stop == b.stop);
    ++ran;
  }
  // A missing image is a failure, never a warning: a determinism check that quietly ran
  // nothing would pass forever (the images are built by the `guests` target, which this
  // test depends on).
  if (!missing.empty()) {
    std::string list;
    for (auto& m : missing) list += " " + m;
    FAIL("guest images missing, so these scenarios were not checked:" << list
         << " (build the `guests` target; PVSIM_BUILD_GUESTS=OFF builds no scenario tests)");
  }
  CHECK(ran > 0);
  WARN("determinism checked for " << ran << " scenario(s)");
}

TEST_CASE("every scenario is deterministic on 8 vCPUs", "[determinism]") {
  unsigned ran = 0;
  for (const fs::path& f : shipped_scenarios()) {
    Scenario s;
    try {
      s = load_scenario(f);
    } catch (const ScenarioError& e) {
      FAIL(e.what());  // missing images are reported by the test above, as failures
    }
    INFO(f.string());
    // Widen only machines whose host description does not depend on the vCPU count.
    if (s.machine.vcpus < 8 && s.host.pin.empty() && s.host.preempt.empty() && s.machine.tsc_skew.empty()) {
      s.machine.vcpus = 8;
      s.host.pcpus = 8;
    }
    // Enough instructions for every vCPU to get going; the runs compare, not finish.
    s.limits.max_instructions = std::min<uint64_t>(s.limits.max_instructions, 3'000'000);
    s.expect = Expectations{};
    const RunReport a = run_scenario(s);
    const RunReport b = run_scenario(s);
    CHECK(a.trace_hash == b.trace_hash);
    CHECK(a.trace_events == b.trace_events);
    CHECK(a.console == b.console);
    CHECK(a.stop == b.stop);
    REQUIRE(a.vcpus.size() == b.vcpus.size());
    for (size_t i = 0; i < a.vcpus.size(); ++i) {
      CHECK(a.vcpus[i].instructions == b.vcpus[i].instructions);
      CHECK(a.vcpus[i].cycles == b.vcpus[i].cycles);
    }
    ++ran;
  }
  WARN("8-vCPU determinism checked for " << ran << " scenario(s)");
}
