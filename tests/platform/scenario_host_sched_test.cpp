// Scenario parsing of the host scheduler's windows (host.preempt / noise / pause, in µs or
// ns), host.pv_store_ns, machine.cpu_vendor and the hypercall / migration-control knobs of
// machine.kvm (scenarios/README.md "host", "machine.kvm").
#include <catch2/catch.hpp>
#include <string>

#include "tests/platform/scenario_fixture.h"
#include "tools/platform/scenario.h"

using namespace pvsim;
using namespace pvsim::test;

namespace {
struct Dir : ScenarioDir {
  Dir() : ScenarioDir("scenario-host-sched") {}
};
}  // namespace

TEST_CASE("host windows, pv_store_ns, cpu_vendor and the machine.kvm knobs: defaults", "[scenario][host-sched]") {
  Dir d;
  const Scenario s = parse_scenario(with(""), d.file());
  CHECK(s.host.noise.empty());
  CHECK(s.host.pause.empty());
  CHECK(s.host.pv_store_ns == 0);
  CHECK(s.machine.cpu_vendor == CpuVendor::Intel);
  CHECK(s.machine.kvm.fix_hypercall_insn);
  CHECK_FALSE(s.machine.kvm.map_gpa_range_exit);
  CHECK(s.machine.kvm.map_gpa_range_ret == 0);
  CHECK_FALSE(s.machine.kvm.migration_control);
}

TEST_CASE("host windows in µs and ns, every key", "[scenario][host-sched]") {
  Dir d;
  const Scenario s = parse_scenario(with(R"(
    "machine": {"vcpus": 4, "cpu_vendor": "amd",
                "kvm": {"fix_hypercall_insn": false, "map_gpa_range_exit": true, "map_gpa_range_ret": -22,
                        "migration_control": true}},
    "host": {"pcpus": 2, "pv_store_ns": 1000000,
             "preempt": [{"vcpu": 3, "from_us": 5, "to_us": 7}, {"vcpu": 1, "from_ns": 1234, "to_ns": 1235}],
             "noise": [{"pcpu": 1, "from_us": 100, "to_us": 300}, {"pcpu": 0, "from_ns": 0, "to_ns": 1000000000000000000}],
             "pause": [{"from_us": 1000, "to_us": 1500}, {"from_ns": 7, "to_ns": 8}]})"),
                                    d.file());
  CHECK(s.machine.cpu_vendor == CpuVendor::Amd);
  CHECK_FALSE(s.machine.kvm.fix_hypercall_insn);
  CHECK(s.machine.kvm.map_gpa_range_exit);
  CHECK(s.machine.kvm.map_gpa_range_ret == -22);
  CHECK(s.machine.kvm.migration_control);
  CHECK(s.host.pv_store_ns == 1'000'000);
  REQUIRE(s.host.preempt.size() == 2);
  CHECK(s.host.preempt[0].vcpu == 3);
  CHECK(s.host.preempt[0].from_ns == 5000);
  CHECK(s.host.preempt[0].to_ns == 7000);
  CHECK(s.host.preempt[1].vcpu == 1);
  CHECK(s.host.preempt[1].from_ns == 1234);
  CHECK(s.host.preempt[1].to_ns == 1235);
  REQUIRE(s.host.noise.size() == 2);
  CHECK(s.host.noise[0].pcpu == 1);
  CHECK(s.host.noise[0].from_ns == 100'000);
  CHECK(s.host.noise[0].to_ns == 300'000);
  CHECK(s.host.noise[1].pcpu == 0);
  CHECK(s.host.noise[1].to_ns == 1'000'000'000'000'000'000ull);
  REQUIRE(s.host.pause.size() == 2);
  CHECK(s.host.pause[0].from_ns == 1'000'000);
  CHECK(s.host.pause[0].to_ns == 1'500'000);
  CHECK(s.host.pause[1].from_ns == 7);
  CHECK(s.host.pause[1].to_ns == 8);
}

TEST_CASE("bad host windows and machine.kvm knobs: one exact line with file and JSON pointer",
          "[scenario][host-sched]") {
  Dir d;
  const std::string f = d.file().string() + ": ";
  auto host = [&](const std::string& h) { return parse_error(d, with(R"("machine": {"vcpus": 2}, "host": )" + h)); };
  CHECK(host(R"({"noise": {}})") == f + "/host/noise: must be an array, got {}");
  CHECK(host(R"({"noise": [{"from_us": 1, "to_us": 2}]})") == f + "/host/noise/0: missing required key \"pcpu\"");
  CHECK(host(R"({"noise": [{"pcpu": 2, "from_us": 1, "to_us": 2}]})") ==
        f + "/host/noise/0/pcpu: must be an integer from 0 to 1, got 2");
  CHECK(host(R"({"noise": [{"pcpu": 0, "from_us": 1, "to_ns": 2}]})") ==
        f + "/host/noise/0: give the window in microseconds (from_us, to_us) or in nanoseconds (from_ns, to_ns), not both");
  CHECK(host(R"({"pause": [{"from_ns": 5}]})") == f + "/host/pause/0: missing required key \"to_ns\"");
  CHECK(host(R"({"pause": [{}]})") == f + "/host/pause/0: missing required key \"from_us\"");
  CHECK(host(R"({"pause": [{"from_ns": 5, "to_ns": 5}]})") ==
        f + "/host/pause/0/to_ns: must be greater than from_ns (5), got 5");
  CHECK(host(R"({"pause": [{"vcpu": 0, "from_us": 5, "to_us": 6}]})") ==
        f + "/host/pause/0/vcpu: unknown key (allowed here: from_us, to_us, from_ns, to_ns)");
  CHECK(host(R"({"preempt": [{"vcpu": 0, "from_ns": 0, "to_ns": 1000000000000000001}]})") ==
        f + "/host/preempt/0/to_ns: must be an integer from 0 to 1000000000000000000, got 1000000000000000001");
  CHECK(host(R"({"pv_store_ns": 1000001})") == f + "/host/pv_store_ns: must be an integer from 0 to 1000000, got 1000001");
  auto machine = [&](const std::string& m) { return parse_error(d, with(R"("machine": )" + m)); };
  CHECK(machine(R"({"cpu_vendor": "via"})") == f + "/machine/cpu_vendor: must be \"intel\" or \"amd\", got \"via\"");
  CHECK(machine(R"({"kvm": {"fix_hypercall_insn": 1}})") ==
        f + "/machine/kvm/fix_hypercall_insn: must be true or false, got 1");
  CHECK(machine(R"({"kvm": {"map_gpa_range_ret": 0}})") ==
        f + "/machine/kvm/map_gpa_range_ret: only meaningful with \"map_gpa_range_exit\": true");
}
