// Host actions at guest points on real guests (scenarios/README.md "schedule",
// tools/platform/platform_schedule.cpp): each kind of point fires exactly where it says,
// each action does what it says and is traced, and a schedule keeps runs deterministic.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <filesystem>
#include <sstream>
#include <string>

#include "tools/platform/platform.h"

using namespace pvsim;
namespace fs = std::filesystem;

namespace {

Scenario with_schedule(const std::string& file, const std::string& sched) {
  Scenario s = load_scenario(fs::path(PVSIM_SCENARIO_DIR) / file);
  add_schedule(s, parse_schedule(sched, "--schedule"), "--schedule");
  return s;
}

struct Traced {
  RunReport report;
  std::string trace;
};

Traced run_traced(const Scenario& s) {
  std::ostringstream t;
  PlatformOptions o;
  o.trace_text = &t;
  o.trace_pins = false;
  Traced r;
  r.report = run_scenario(s, o);
  r.trace = t.str();
  return r;
}

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("schedule: an instruction point fires at exactly that instruction count", "[schedule]") {
  for (uint64_t n : {0ull, 1ull, 777ull, 5000ull}) {
    const Traced t = run_traced(with_schedule("hello-O2.json", fmt::format("v0.insn={}: stop", n)));
    INFO(n);
    CHECK(t.report.stop == RunStop::Point);
    CHECK(t.report.vcpus[0].instructions == n);
    CHECK(count(t.trace, fmt::format("pvsim_action: v0.insn={}: stop", n)) == 1);
  }
}

TEST_CASE("schedule: a RIP point fires at its K-th hit, before the instruction runs", "[schedule]") {
  // hello's report lines end through putchar: it is called twice, once per "ok"/SUMMARY
  // line's newline. The first hit stops before the first of them is written, the second
  // before the second; there is no third.
  uint64_t prev_insns = 0;
  std::string prev;
  for (int k = 1; k <= 2; ++k) {
    const Traced t = run_traced(with_schedule("hello-O2.json", fmt::format("v0.rip=putchar#{}: stop", k)));
    INFO(k);
    REQUIRE(t.report.stop == RunStop::Point);
    CHECK(t.report.vcpus[0].instructions > prev_insns);
    CHECK(t.report.console.size() > prev.size());
    CHECK(t.report.console.back() != '\n');  // stopped before putchar wrote its newline
    prev = t.report.console;
    prev_insns = t.report.vcpus[0].instructions;
    // The same stop reached as an instruction point gives the same state: the hits before
    // the K-th did not change the run.
    const Traced u = run_traced(with_schedule("hello-O2.json", fmt::format("v0.insn={}: stop", prev_insns)));
    CHECK(u.report.console == t.report.console);
    CHECK(u.report.virtual_ns == t.report.virtual_ns);
  }
  const Traced none = run_traced(with_schedule("hello-O2.json", "v0.rip=putchar#3: stop"));
  CHECK(none.report.stop == RunStop::Exit);
  CHECK(none.trace.find("pvsim_action") == std::string::npos);
  // A symbol the image lacks is a scenario error naming the entry.
  CHECK_THROWS_WITH(run_scenario(with_schedule("hello-O2.json", "v0.rip=no_such_fn: stop")),
                    Catch::Contains("--schedule: entry 1: the guest image has no symbol \"no_such_fn\""));
}

TEST_CASE("schedule: a time point fires at its virtual time", "[schedule]") {
  const Traced t = run_traced(with_schedule("hello-smp4.json", "t=20us: stop"));
  REQUIRE(t.report.stop == RunStop::Point);
  CHECK(t.trace.find("0.000020000: pvsim_action: t=20us: stop") != std::string::npos);
}

TEST_CASE("schedule: preempt takes the pCPU for the given time, steal time sees it", "[schedule]") {
  const Traced base = run_traced(load_scenario(fs::path(PVSIM_SCENARIO_DIR) / "hello-O2.json"));
  const Traced t = run_traced(with_schedule("hello-O2.json", "v0.insn=500: preempt v0 50us"));
  CHECK(t.report.stop == RunStop::Exit);
  CHECK(t.report.vcpus[0].run_delay_ns == base.report.vcpus[0].run_delay_ns + 50'000);
  CHECK(count(t.trace, "pvsim_sched_out") == count(base.trace, "pvsim_sched_out") + 1);
  CHECK(t.trace.find("pvsim_action: v0.insn=500: preempt v0 50us: vCPU 0 holds no pCPU") != std::string::npos);
}

TEST_CASE("schedule: pause stops the VM and resumes it with KVM_KVMCLOCK_CTRL", "[schedule]") {
  const Traced t = run_traced(with_schedule("kvmclock-modern.json", "t=100us: pause 200us"));
  CHECK(t.trace.find("0.000100000: pvsim_host: pause: the VMM stops the VM until 0.000300000") != std::string::npos);
  CHECK(t.trace.find("0.000300000: pvsim_host: resume: KVM_KVMCLOCK_CTRL") != std::string::npos);
}

TEST_CASE("schedule: evict works without a host.memory section", "[schedule]") {
  const Traced base = run_traced(load_scenario(fs::path(PVSIM_SCENARIO_DIR) / "hello-O2.json"));
  // The image's first page: the guest touches it again after the eviction.
  const Traced t = run_traced(with_schedule("hello-O2.json", "v0.insn=2000: evict gpa=0x100000+0x4000"));
  CHECK(t.report.stop == RunStop::Exit);
  CHECK(t.report.console == base.report.console);
  CHECK(t.trace.find("pvsim_host: evict: gpa 0x100000-") != std::string::npos);
  CHECK(count(t.trace, "kvm_page_fault") > count(base.trace, "kvm_page_fault"));
}

TEST_CASE("schedule: run vN lets one vCPU run first, the run stays deterministic", "[schedule]") {
  const std::string sched = "v0.insn=0: run v3";
  const Traced a = run_traced(with_schedule("hello-smp4.json", sched));
  const Traced b = run_traced(with_schedule("hello-smp4.json", sched));
  const Traced base = run_traced(load_scenario(fs::path(PVSIM_SCENARIO_DIR) / "hello-smp4.json"));
  CHECK(a.trace == b.trace);
  CHECK(a.report.trace_hash != base.report.trace_hash);
  // vCPU 3's first event comes before any of vCPU 1's.
  const size_t v3 = a.trace.find("[003]");
  const size_t v1 = a.trace.find("[001]");
  REQUIRE(v3 != std::string::npos);
  CHECK((v1 == std::string::npos || v3 < v1));
}

TEST_CASE("schedule: snapshots keep armed entries, hits and fired state", "[schedule][snapshot]") {
  const Scenario s = with_schedule("hello-O2.json", "v0.rip=putchar#9: preempt v0 10us; v0.insn=9000: kvmclock v0");
  const Traced ref = run_traced(s);
  std::ostringstream text;
  PlatformOptions o;
  o.trace_text = &text;
  o.trace_pins = false;
  Platform p(s, o);
  REQUIRE(p.run_to({Platform::StopPoint::Kind::Insn, 0, 3000}));
  const auto snap = p.save();
  const size_t prefix = text.str().size();
  p.run();
  CHECK(text.str() == ref.trace);
  p.restore(*snap);
  std::ostringstream rest;
  p.tracer().set_text_output(&rest);
  const RunReport r = p.run();
  CHECK(rest.str() == ref.trace.substr(prefix));
  CHECK(r.trace_hash == ref.report.trace_hash);
}
