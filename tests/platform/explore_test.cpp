// pvsim explore (tools/platform/explore.h): shards merge to exactly the single run, threads
// change nothing, and every group's replay command reproduces its variant's trace.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "tools/platform/explore.h"
#include "tools/platform/platform.h"

using namespace pvsim;
namespace fs = std::filesystem;

namespace {

ExploreSpec preempt_spec() {
  ExploreSpec spec;
  spec.vcpu = 1;
  spec.from = 3000;
  spec.to = 3119;
  spec.action = parse_action("preempt v1 30us", "test");
  spec.outcome = {"stop", "exit", "console"};
  return spec;
}

// pv-steal with every run cut soon after the window (the entry is in each replay command).
Scenario steal_scenario() {
  Scenario s = load_scenario(fs::path(PVSIM_SCENARIO_DIR) / "pv-steal.json");
  add_schedule(s, parse_schedule("v1.insn=9000: stop", "--schedule"), "--schedule");
  return s;
}

std::vector<VariantResult> run_all(const Scenario& s, const ExploreSpec& spec, ExploreResult* out = nullptr) {
  std::vector<VariantResult> got;
  const ExploreResult r = explore(s, spec, [&](const VariantResult& v) { got.push_back(v); }, nullptr);
  if (out) *out = r;
  return got;
}

}  // namespace

TEST_CASE("explore: shards merge to exactly the single run, and threads change nothing", "[explore]") {
  const Scenario s = steal_scenario();
  ExploreSpec spec = preempt_spec();
  ExploreResult single;
  const std::vector<VariantResult> all = run_all(s, spec, &single);
  REQUIRE(all.size() == 120);
  CHECK(single.variants == 120);
  for (size_t k = 0; k < all.size(); ++k) CHECK(all[k].index == k);

  std::vector<VariantResult> merged;
  for (uint64_t i = 1; i <= 3; ++i) {
    ExploreSpec sh = spec;
    sh.shard = i;
    sh.shards = 3;
    for (const VariantResult& v : run_all(s, sh)) {
      CHECK(v.index % 3 == i - 1);
      // Through JSON Lines and back, as `pvsim explore --merge` reads them.
      merged.push_back(parse_variant_json(variant_json(v), "test", 1));
    }
  }
  const std::vector<OutcomeGroup> a = single.groups;
  const std::vector<OutcomeGroup> b = group_results(merged);
  REQUIRE(a.size() == b.size());
  for (size_t g = 0; g < a.size(); ++g) {
    CHECK(a[g].count == b[g].count);
    CHECK(a[g].outcome == b[g].outcome);
    CHECK(a[g].first.index == b[g].first.index);
    CHECK(a[g].first.trace_hash == b[g].first.trace_hash);
  }

  ExploreSpec two = spec;
  two.jobs = 2;
  const std::vector<VariantResult> threaded = run_all(s, two);
  REQUIRE(threaded.size() == all.size());
  for (size_t k = 0; k < all.size(); ++k) {
    CHECK(threaded[k].trace_hash == all[k].trace_hash);
    CHECK(threaded[k].outcome == all[k].outcome);
  }
}

TEST_CASE("explore: each variant replays from scratch with its schedule entry", "[explore]") {
  const Scenario s = steal_scenario();
  const ExploreSpec spec = preempt_spec();
  const std::vector<VariantResult> all = run_all(s, spec);
  // Variants differ (the preemption lands at different places), so the check is not vacuous.
  bool differ = false;
  for (const VariantResult& v : all) differ |= v.trace_hash != all.front().trace_hash;
  CHECK(differ);
  for (size_t k = 0; k < all.size(); k += 17) {
    CHECK(all[k].entry.rfind("v1.insn=9000: stop; v1.insn=", 0) == 0);
    Scenario r = load_scenario(fs::path(PVSIM_SCENARIO_DIR) / "pv-steal.json");
    add_schedule(r, parse_schedule(all[k].entry, "replay"), "replay");
    PlatformOptions o;
    o.trace_pins = false;
    const RunReport rep = run_scenario(r, o);
    INFO(all[k].entry);
    CHECK(rep.trace_hash == all[k].trace_hash);
  }
}

TEST_CASE("explore: bad windows and outcome fields are refused", "[explore]") {
  const Scenario s = load_scenario(fs::path(PVSIM_SCENARIO_DIR) / "pv-steal.json");
  ExploreSpec spec = preempt_spec();
  spec.from = spec.to = UINT64_MAX / 2;
  CHECK_THROWS_WITH(run_all(s, spec), Catch::Contains("the run ends before vCPU 1 retires"));
  spec = preempt_spec();
  spec.outcome = {"reg:v9.rax"};
  CHECK_THROWS_WITH(run_all(s, spec), Catch::Contains("is not an outcome field"));
  spec = preempt_spec();
  spec.vcpu = 5;
  CHECK_THROWS_WITH(run_all(s, spec), Catch::Contains("vCPU 5 does not exist"));
  ExploreSpec w;
  CHECK_THROWS_WITH(parse_window("v1.insn=10..5", w), Catch::Contains("ends before it starts"));
  CHECK_THROWS_WITH(parse_window("t=1ms..2ms", w), Catch::Contains("one vCPU's instruction counts"));
  parse_window("v1.insn=10..20", w);
  CHECK((w.vcpu == 1 && w.from == 10 && w.to == 20));
}

TEST_CASE("explore: turn orders (interleavings, PCT) replay, and shards merge exactly", "[explore]") {
  Scenario s = load_scenario(fs::path(PVSIM_SCENARIO_DIR) / "pv-tlb-orig.json");
  // Cut every variant shortly after the window: the entry is part of each replay command.
  add_schedule(s, parse_schedule("v0.insn=21000: stop", "--schedule"), "--schedule");
  ExploreSpec il;
  il.vary = ExploreSpec::Vary::Interleave;
  il.vcpu = 0;
  il.from = 20000;
  il.to = 20019;
  il.vcpus = {0, 1};
  il.bound = 2;
  il.outcome = {"stop", "reg:v0.rip", "reg:v1.rip"};
  // 2 first vCPUs x C(20, 2) offset pairs x 1 target per switch.
  CHECK(variant_count(il) == 2 * 190);
  ExploreSpec pct = il;
  pct.vary = ExploreSpec::Vary::Pct;
  pct.schedules = 60;
  pct.depth = 3;
  pct.seed = 0x1234;
  CHECK(variant_count(pct) == 60);
  CHECK(pct_bound_one(pct) == Approx(1.0 / (2 * 20.0 * 20.0)));
  CHECK(pct_bound_all(pct) == Approx(1.0 - std::pow(1.0 - 1.0 / 800.0, 60)));

  for (const ExploreSpec& spec : {il, pct}) {
    ExploreResult single;
    const std::vector<VariantResult> all = run_all(s, spec, &single);
    REQUIRE(all.size() == variant_count(spec));
    // The turn orders do differ, and every entry list starts with the --schedule entry.
    bool differ = false;
    for (const VariantResult& v : all) {
      differ |= v.trace_hash != all.front().trace_hash;
      CHECK(v.entry.rfind("v0.insn=21000: stop; v0.insn=20000: run v", 0) == 0);
    }
    CHECK(differ);
    for (size_t k = 0; k < all.size(); k += 29) {
      Scenario r = load_scenario(fs::path(PVSIM_SCENARIO_DIR) / "pv-tlb-orig.json");
      add_schedule(r, parse_schedule(all[k].entry, "replay"), "replay");
      PlatformOptions o;
      o.trace_pins = false;
      INFO(all[k].entry);
      CHECK(run_scenario(r, o).trace_hash == all[k].trace_hash);
    }
    std::vector<VariantResult> merged;
    for (uint64_t i = 1; i <= 2; ++i) {
      ExploreSpec sh = spec;
      sh.shard = i;
      sh.shards = 2;
      for (const VariantResult& v : run_all(s, sh)) merged.push_back(v);
    }
    const std::vector<OutcomeGroup> b = group_results(merged);
    REQUIRE(b.size() == single.groups.size());
    for (size_t g = 0; g < b.size(); ++g) {
      CHECK(b[g].count == single.groups[g].count);
      CHECK(b[g].first.index == single.groups[g].first.index);
    }
  }
  // PCT draws from the seed: another seed, other schedules; the same seed, the same ones.
  ExploreSpec other = pct;
  other.seed = 0x1235;
  const auto a1 = run_all(s, pct), a2 = run_all(s, pct), b1 = run_all(s, other);
  bool same = true, moved = false;
  for (size_t k = 0; k < a1.size(); ++k) {
    same = same && a1[k].entry == a2[k].entry;
    moved = moved || a1[k].entry != b1[k].entry;
  }
  CHECK(same);
  CHECK(moved);
}
