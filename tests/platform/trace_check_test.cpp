// The streaming trace checks: pattern matching, expect.trace claims, golden comparison.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "core/trace.h"
#include "tools/platform/trace_check.h"

using namespace pvsim;

namespace {

// Feeds lines through a real Tracer, so the checkers see exactly what runs produce.
struct Feed {
  Tracer t;
  void line(unsigned vcpu, const char* event, const char* text, uint64_t ns = 0) {
    t.emit(Tick(ns), vcpu, event, text, {});
  }
};

TraceExpect in_order(std::vector<std::string> p, bool consecutive = false, std::optional<unsigned> vcpu = {}) {
  TraceExpect x;
  x.name = std::string(1, 'x');  // not = "x": g++ 12 -Wrestrict false positive
  x.kind = TraceExpect::Kind::InOrder;
  x.patterns = std::move(p);
  x.consecutive = consecutive;
  x.vcpu = vcpu;
  return x;
}

std::vector<std::string> check(const std::vector<TraceExpect>& xs, const std::vector<std::pair<unsigned, std::string>>& lines) {
  Feed f;
  TraceExpectChecker c(xs);
  f.t.add_observer(&c);
  for (const auto& [v, l] : lines) {
    const size_t colon = l.find(": ");
    f.line(v, l.substr(0, colon).c_str(), l.substr(colon + 2).c_str());
  }
  std::vector<std::string> out;
  c.failures(out);
  return out;
}

}  // namespace

TEST_CASE("trace patterns: substrings with * wildcards", "[trace-check]") {
  CHECK(trace_pattern_matches("kvm_msr", "kvm_msr: msr_write 4b564d01 = 0x1"));
  CHECK(trace_pattern_matches("msr_write 4b564d0*= 0x1", "kvm_msr: msr_write 4b564d01 = 0x1"));
  CHECK(trace_pattern_matches("*", "anything"));
  CHECK(trace_pattern_matches("a*b*c", "xaxxbxxcx"));
  CHECK_FALSE(trace_pattern_matches("a*b*c", "xaxxcxxbx"));
  CHECK_FALSE(trace_pattern_matches("kvm_msr: msr_read", "kvm_msr: msr_write"));
  CHECK(trace_pattern_matches("ab*ab", "abab"));
  CHECK_FALSE(trace_pattern_matches("ab*ab", "aba"));
}

TEST_CASE("in_order: subsequence, per vCPU, with a failure that says where it stopped", "[trace-check]") {
  const std::vector<std::pair<unsigned, std::string>> lines = {
      {0, "kvm_exit: vcpu 0 reason MSR_WRITE"}, {1, "kvm_exit: vcpu 1 reason HLT"},
      {0, "kvm_pvclock_update: vcpu_id 0"},     {0, "kvm_msr: msr_write 4b564d01 = 0x1"},
      {0, "kvm_entry: vcpu 0, rip 0x1"}};
  CHECK(check({in_order({"MSR_WRITE", "kvm_pvclock_update", "kvm_msr", "kvm_entry"})}, lines).empty());
  const auto f = check({in_order({"MSR_WRITE", "kvm_msr", "kvm_pvclock_update"})}, lines);
  REQUIRE(f.size() == 1);
  CHECK(f[0] == "expect.trace[0] [x]: 2 of 3 patterns found in order (the last at line 4); no line after line 4 matches "
                "pattern 2 \"kvm_pvclock_update\"");
  CHECK(check({in_order({"HLT", "kvm_entry"}, false, 1u)}, lines) ==
        std::vector<std::string>{"expect.trace[0] [x]: 1 of 2 patterns found in order (the last at line 2); no line "
                                 "of vCPU 1 after line 2 matches pattern 1 \"kvm_entry\""});
  CHECK(check({in_order({"nothing"})}, lines) ==
        std::vector<std::string>{"expect.trace[0] [x]: 0 of 1 patterns found in order; no line matches pattern 0 "
                                 "\"nothing\""});
}

TEST_CASE("in_order consecutive: adjacent lines, overlapping starts found", "[trace-check]") {
  const std::vector<std::pair<unsigned, std::string>> lines = {
      {0, "kvm_exit: a"}, {0, "kvm_exit: a"}, {0, "kvm_msr: b"}, {1, "other: z"}, {0, "kvm_entry: c"}};
  // "a a b": the second a starts the run that completes (the first one breaks at it).
  CHECK(check({in_order({"kvm_exit: a", "kvm_msr: b"}, true)}, lines).empty());
  // vCPU 1's line sits between b and c, so they are adjacent only among vCPU 0's lines.
  CHECK(check({in_order({"kvm_msr: b", "kvm_entry: c"}, true, 0u)}, lines).empty());
  const auto f = check({in_order({"kvm_msr: b", "kvm_entry: c"}, true)}, lines);
  REQUIRE(f.size() == 1);
  CHECK(f[0] == "expect.trace[0] [x]: the longest run of consecutive lines matches 1 of 2 patterns (from line 3); then "
                "came \"CPU 1/KVM-1 [001] 0.000000000: other: z\" where pattern 1 \"kvm_entry: c\" was expected");
  const auto g = check({in_order({"kvm_entry: c", "more"}, true)}, lines);
  REQUIRE(g.size() == 1);
  CHECK(g[0] == "expect.trace[0] [x]: the longest run of consecutive lines matches 1 of 2 patterns (from line 5); then "
                "the trace ended where pattern 1 \"more\" was expected");
}

TEST_CASE("absent and count", "[trace-check]") {
  TraceExpect absent;
  absent.name = "no-nmi";
  absent.kind = TraceExpect::Kind::Absent;
  absent.patterns = {"pvsim_inj_nmi"};
  TraceExpect count;
  count.name = "two";
  count.kind = TraceExpect::Kind::Count;
  count.patterns = {"kvm_entry"};
  count.min = count.max = 2;
  const std::vector<std::pair<unsigned, std::string>> lines = {
      {0, "kvm_entry: a"}, {1, "pvsim_inj_nmi: NMI"}, {0, "kvm_entry: b"}, {0, "kvm_entry: c"}};
  const auto f = check({absent, count}, lines);
  REQUIRE(f.size() == 2);
  CHECK(f[0] == "expect.trace[0] [no-nmi]: \"pvsim_inj_nmi\" matches 1 line(s), the first at line 2: \"CPU 1/KVM-1 "
                "[001] 0.000000000: pvsim_inj_nmi: NMI\"");
  CHECK(f[1] == "expect.trace[1] [two]: \"kvm_entry\" matches 3 line(s), expected exactly 2");
  count.max = UINT64_MAX;
  CHECK(check({count}, lines).empty());
  absent.vcpu = 0;
  CHECK(check({absent}, lines).empty());
}

TEST_CASE("golden traces: equal, first difference with context, shorter and longer", "[trace-check][golden]") {
  const auto run = [](const std::string& golden, int lines) {
    Feed f;
    GoldenChecker g(golden, "golden/x.txt");
    f.t.add_observer(&g);
    for (int i = 0; i < lines; ++i) f.line(0, "ev", std::to_string(i).c_str(), 1);
    return std::make_pair(g.failure(), g.report());
  };
  std::string golden;
  for (int i = 0; i < 6; ++i) golden += "CPU 0/KVM-0 [000] 0.000000001: ev: " + std::to_string(i) + "\n";
  CHECK_FALSE(run(golden, 6).first);
  CHECK(run(golden, 6).second.empty());

  std::string changed = golden;
  changed.replace(changed.find("ev: 4"), 5, "ev: X");
  auto [fail, report] = run(changed, 6);
  REQUIRE(fail);
  CHECK(*fail == "expect.golden_trace: the trace differs from golden/x.txt at line 5: expected \"CPU 0/KVM-0 [000] "
                 "0.000000001: ev: X\", got \"CPU 0/KVM-0 [000] 0.000000001: ev: 4\"");
  CHECK(report ==
        "  first difference from golden/x.txt (- golden, + this run):\n"
        "           2  CPU 0/KVM-0 [000] 0.000000001: ev: 1\n"
        "           3  CPU 0/KVM-0 [000] 0.000000001: ev: 2\n"
        "           4  CPU 0/KVM-0 [000] 0.000000001: ev: 3\n"
        "  -        5  CPU 0/KVM-0 [000] 0.000000001: ev: X\n"
        "  +        5  CPU 0/KVM-0 [000] 0.000000001: ev: 4\n");
  // A difference late in a long line is shown from shortly before it.
  {
    Feed f;
    const std::string pad(150, 'p');
    GoldenChecker g("CPU 0/KVM-0 [000] 0.000000001: ev: " + pad + "A tail\n", "g");
    f.t.add_observer(&g);
    f.line(0, "ev", (pad + "B tail").c_str(), 1);
    REQUIRE(g.failure());
    CHECK(*g.failure() == "expect.golden_trace: the trace differs from g at line 1: expected ...\"" +
                              std::string(40, 'p') + "A tail\", got ...\"" + std::string(40, 'p') + "B tail\"");
  }
  auto shorter = run(golden, 4);
  REQUIRE(shorter.first);
  CHECK(*shorter.first == "expect.golden_trace: the trace ends at line 4, but golden/x.txt goes on: \"CPU 0/KVM-0 [000] "
                          "0.000000001: ev: 4\"");
  auto longer = run(golden, 7);
  REQUIRE(longer.first);
  CHECK(*longer.first == "expect.golden_trace: golden/x.txt ends at line 6, but the trace goes on: \"CPU 0/KVM-0 [000] "
                         "0.000000001: ev: 6\"");
}
