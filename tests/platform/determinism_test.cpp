// Every shipped scenario (scenarios/**, bench excluded) run twice in one process gives the
// same trace hash, console, instruction count and stop reason (architecture.md §2).
#include <catch2/catch.hpp>
#include <filesystem>
#include <string>
#include <vector>

#include "tools/platform/platform.h"

using namespace pvsim;
namespace fs = std::filesystem;

TEST_CASE("every scenario is deterministic", "[determinism]") {
  std::vector<fs::path> files;
  for (const auto& e : fs::recursive_directory_iterator(PVSIM_SCENARIO_DIR)) {
    const fs::path& p = e.path();
    if (p.extension() != ".json" || p.filename() == "scenario.schema.json") continue;
    if (p.string().find("/bench/") != std::string::npos || p.string().find("/guest/") != std::string::npos) continue;
    files.push_back(p);
  }
  std::sort(files.begin(), files.end());
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
  if (!missing.empty()) {
    std::string list;
    for (auto& m : missing) list += " " + m;
#if PVSIM_GUESTS_BUILT
    FAIL("guest images missing although the guest build is enabled:" << list);
#else
    WARN("PVSIM_BUILD_GUESTS=OFF: skipped scenarios whose images are missing:" << list);
#endif
  }
  WARN("determinism checked for " << ran << " scenario(s)");
}
