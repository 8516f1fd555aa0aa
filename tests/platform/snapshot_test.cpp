// Snapshots of a whole Platform (tools/platform/README.md "Snapshots"), checked on every
// shipped scenario: stopping at a point changes nothing (the run that stopped and went on
// writes the same trace as one that never stopped), and a run restored from a snapshot
// continues byte for byte as the uninterrupted one did — from several points, from one
// snapshot twice, and from an older snapshot after a newer one was restored.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "tests/platform/shipped_scenarios.h"
#include "tools/platform/platform.h"

using namespace pvsim;
namespace fs = std::filesystem;

namespace {


struct Reference {
  std::string trace;
  RunReport report;
};

Reference reference_run(const Scenario& s) {
  std::ostringstream text;
  PlatformOptions o;
  o.trace_text = &text;
  Platform p(s, o);
  Reference r;
  r.report = p.run();
  r.trace = text.str();
  return r;
}

// The report fields a restored run must reproduce.
void check_same_report(const RunReport& a, const RunReport& b) {
  CHECK(a.trace_hash == b.trace_hash);
  CHECK(a.trace_events == b.trace_events);
  CHECK(a.console == b.console);
  CHECK(a.instructions == b.instructions);
  CHECK(a.virtual_ns == b.virtual_ns);
  CHECK(a.stop == b.stop);
  CHECK(a.stop_detail == b.stop_detail);
  CHECK(a.exit_status == b.exit_status);
  CHECK(a.expectation_failures == b.expectation_failures);
  REQUIRE(a.vcpus.size() == b.vcpus.size());
  for (size_t i = 0; i < a.vcpus.size(); ++i) {
    CHECK(a.vcpus[i].instructions == b.vcpus[i].instructions);
    CHECK(a.vcpus[i].cycles == b.vcpus[i].cycles);
    CHECK(a.vcpus[i].run_delay_ns == b.vcpus[i].run_delay_ns);
    CHECK(a.vcpus[i].state == b.vcpus[i].state);
  }
}

// Three instruction points on the busiest vCPU and one time point, all inside the run.
std::vector<Platform::StopPoint> points_for(const RunReport& r) {
  unsigned busiest = 0;
  for (unsigned i = 0; i < r.vcpus.size(); ++i)
    if (r.vcpus[i].instructions > r.vcpus[busiest].instructions) busiest = i;
  const uint64_t n = r.vcpus[busiest].instructions;
  std::vector<Platform::StopPoint> pts;
  using K = Platform::StopPoint::Kind;
  pts.push_back({K::Insn, busiest, n / 4});
  pts.push_back({K::Time, 0, r.virtual_ns / 2});
  pts.push_back({K::Insn, busiest, (3 * n) / 4});
  return pts;
}

}  // namespace

TEST_CASE("every scenario restores from snapshots byte for byte", "[snapshot]") {
  unsigned checked = 0;
  for (const fs::path& f : shipped_scenarios()) {
    Scenario s;
    try {
      s = load_scenario(f);
    } catch (const ScenarioError& e) {
      FAIL(e.what());  // the determinism test names missing images; here any error fails
    }
    INFO(f.string());
    const Reference ref = reference_run(s);

    std::ostringstream text;
    PlatformOptions o;
    o.trace_text = &text;
    Platform p(s, o);
    struct Taken {
      std::shared_ptr<const Platform::Snapshot> snap;
      size_t prefix;  // trace bytes written when it was taken
    };
    std::vector<Taken> taken;
    for (const Platform::StopPoint& pt : points_for(ref.report)) {
      if (!p.run_to(pt)) break;  // the run ended first (a point at its very end)
      taken.push_back({p.save(), text.str().size()});
    }
    // Stopping (and saving) changed nothing.
    const RunReport whole = p.run();
    CHECK(text.str() == ref.trace);
    check_same_report(whole, ref.report);
    REQUIRE(!taken.empty());

    // Newest first: each restore keeps the older snapshots valid.
    for (size_t k = taken.size(); k-- > 0;) {
      for (int again = 0; again < (k == 0 ? 2 : 1); ++again) {
        INFO("snapshot " << k << (again ? ", restored a second time" : ""));
        p.restore(*taken[k].snap);
        std::ostringstream rest;
        p.tracer().set_text_output(&rest);
        const RunReport r = p.run();
        CHECK(rest.str() == ref.trace.substr(taken[k].prefix));
        check_same_report(r, ref.report);
      }
    }
    // Restoring the oldest one invalidated the newer ones.
    if (taken.size() > 1) CHECK_THROWS_AS(p.restore(*taken.back().snap), std::logic_error);
    ++checked;
  }
  CHECK(checked >= 60);
  WARN("snapshot equivalence checked for " << checked << " scenario(s)");
}

TEST_CASE("a restore copies back only the pages written since the snapshot", "[snapshot]") {
  // A 1 GiB guest: restoring must not cost anything per page of RAM.
  Scenario s = load_scenario(fs::path(PVSIM_SCENARIO_DIR) / "quicksort-O2.json");
  s.machine.ram_mib = 1024;
  Platform p(s);
  const RunReport probe = [&] {
    Platform q(s);
    return q.run();
  }();
  const uint64_t n = probe.vcpus[0].instructions;
  REQUIRE(p.run_to({Platform::StopPoint::Kind::Insn, 0, n / 2}));
  const auto snap = p.save();
  CHECK(p.restore_cost_pages(*snap) == 0);
  REQUIRE(p.run_to({Platform::StopPoint::Kind::Insn, 0, n / 2 + 20000}));
  const uint64_t pages = p.restore_cost_pages(*snap);
  // 20 000 instructions of a sort touch a handful of pages (its array and stack), not the
  // 262 144 pages of RAM.
  CHECK(pages > 0);
  CHECK(pages < 64);
  p.restore(*snap);
  CHECK(p.restore_cost_pages(*snap) == 0);
  const RunReport r = p.run();
  CHECK(r.trace_hash == probe.trace_hash);
}

TEST_CASE("run_to refuses what cannot be a point", "[snapshot]") {
  Scenario s = load_scenario(fs::path(PVSIM_SCENARIO_DIR) / "hello-O2.json");
  Platform p(s);
  CHECK_THROWS_AS(p.run_to({Platform::StopPoint::Kind::Insn, 7, 10}), std::invalid_argument);
  // A point beyond the end of the run is never reached.
  CHECK_FALSE(p.run_to({Platform::StopPoint::Kind::Insn, 0, UINT64_MAX}));
  const RunReport r = p.run();
  CHECK(r.stop == RunStop::Exit);
}
