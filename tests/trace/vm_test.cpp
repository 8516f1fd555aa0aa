// Sinks on whole runs (tools/platform/platform.h wires them from PlatformOptions): each event
// once across snapshot restores, time order of a 4-vCPU run, --events on a real trace.
#include <catch2/catch.hpp>

#include <algorithm>
#include <sstream>
#include <string>
#include <vector>

#include "tools/platform/platform.h"

using namespace pvsim;

namespace {

Scenario load(const char* name) {
  try {
    return load_scenario(std::string(PVSIM_SCENARIO_DIR) + "/" + name);
  } catch (const ScenarioError& e) {
    FAIL(std::string(e.what()) + " (the guest images come from the `guests` target)");
  }
  return {};
}

struct Indices final : TraceSink {
  std::vector<uint64_t> idx;
  std::string lines;
  int finished = 0;
  void on_event(const TraceRecord& r) override {
    idx.push_back(r.index);
    lines.append(r.line);
  }
  void on_finish() override { ++finished; }
};

std::vector<std::string> split(const std::string& t) {
  std::vector<std::string> out;
  std::istringstream in(t);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

// The timestamp column of a canonical line, in ns.
uint64_t ts_of(const std::string& l) {
  const size_t close = l.find("] ");
  const size_t dot = l.find('.', close);
  return std::stoull(l.substr(close + 2, dot - close - 2)) * 1'000'000'000ull + std::stoull(l.substr(dot + 1, 9));
}

}  // namespace

TEST_CASE("a run restored and re-run gives every sink each event once", "[trace][sinks][snapshot]") {
  const Scenario s = load("ipi.json");
  std::ostringstream ref_text;
  PlatformOptions ro;
  ro.trace_text = &ref_text;
  ro.keep_console = false;
  const RunReport ref = run_scenario(s, ro);
  REQUIRE(ref.trace_events > 100);

  std::ostringstream text;
  Indices sink;
  PlatformOptions o;
  o.trace_text = &text;
  o.trace_sinks.push_back(&sink);
  o.keep_console = false;
  o.trace_pins = false;
  {
    Platform p(s, o);
    REQUIRE(p.run_to({Platform::StopPoint::Kind::Insn, 1, 2000}));
    const auto early = p.save();
    REQUIRE(p.run_to({Platform::StopPoint::Kind::Insn, 0, 6000}));
    const auto late = p.save();
    // Back and forth, as gdb's reverse execution does, then on to the end.
    p.restore(*late);
    p.restore(*early);
    REQUIRE(p.run_to({Platform::StopPoint::Kind::Insn, 0, 6000}));
    const RunReport r1 = p.run();
    CHECK(r1.trace_hash == ref.trace_hash);
    p.restore(*early);
    const RunReport r2 = p.run();
    CHECK(r2.trace_hash == ref.trace_hash);
  }
  CHECK(text.str() == ref_text.str());
  CHECK(sink.lines == ref_text.str());
  REQUIRE(sink.idx.size() == ref.trace_events);
  for (size_t k = 0; k < sink.idx.size(); ++k) REQUIRE(sink.idx[k] == k);
  CHECK(sink.finished == 1);  // at the first run's pvsim_stop, once
}

TEST_CASE("time order (--time-order) of a 4-vCPU run: sorted, and the same lines as emission order", "[trace][order]") {
  const Scenario s = load("ipi.json");
  std::ostringstream plain, plain_j, sorted, sorted_j;
  PlatformOptions o;
  o.keep_console = false;
  o.trace_text = &plain;
  o.trace_jsonl = &plain_j;
  const RunReport a = run_scenario(s, o);
  o.trace_text = &sorted;
  o.trace_jsonl = &sorted_j;
  o.trace_time_order = true;
  const RunReport b = run_scenario(s, o);
  CHECK(a.trace_hash == b.trace_hash);  // the canonical trace is the emission order still
  const auto pl = split(plain.str()), so = split(sorted.str());
  // Emission order goes back in time between vCPUs: the test has something to sort.
  size_t backwards = 0;
  for (size_t k = 1; k < pl.size(); ++k) backwards += ts_of(pl[k]) < ts_of(pl[k - 1]);
  CHECK(backwards > 5);
  for (size_t k = 1; k < so.size(); ++k) REQUIRE(ts_of(so[k - 1]) <= ts_of(so[k]));
  // A permutation, stable: within one timestamp the emission order is kept.
  REQUIRE(so.size() == pl.size());
  std::vector<std::pair<uint64_t, size_t>> keyed;
  for (size_t k = 0; k < pl.size(); ++k) keyed.push_back({ts_of(pl[k]), k});
  std::stable_sort(keyed.begin(), keyed.end(), [](const auto& x, const auto& y) { return x.first < y.first; });
  for (size_t k = 0; k < so.size(); ++k) REQUIRE(so[k] == pl[keyed[k].second]);
  // JSON Lines in the same order.
  const auto pj = split(plain_j.str()), sj = split(sorted_j.str());
  REQUIRE(sj.size() == pj.size());
  for (size_t k = 0; k < sj.size(); ++k) REQUIRE(sj[k] == pj[keyed[k].second]);
}

TEST_CASE("event filter (--events) on a real run: only those lines, the same hash and expectations", "[trace][filter]") {
  const Scenario s = load("apf-orig-2.json");
  std::ostringstream all, some;
  PlatformOptions o;
  o.keep_console = false;
  o.trace_text = &all;
  const RunReport a = run_scenario(s, o);
  o.trace_text = &some;
  REQUIRE_FALSE(parse_trace_event_filter("kvm_async_pf*,kvm_msr", o.trace_events));
  const RunReport b = run_scenario(s, o);
  CHECK(a.trace_hash == b.trace_hash);
  CHECK(a.expectation_failures == b.expectation_failures);
  CHECK(a.success() == b.success());
  std::string want;
  for (const std::string& l : split(all.str())) {
    const size_t at = l.find(": ", l.find("] ")) + 2;
    const std::string ev = l.substr(at, l.find(':', at) - at);
    if (ev.rfind("kvm_async_pf", 0) == 0 || ev == "kvm_msr") want += l + "\n";
  }
  CHECK(want.find("kvm_async_pf_ready") != std::string::npos);
  CHECK(want.find("kvm_msr") != std::string::npos);
  CHECK(some.str() == want);
}
