// SMP and kvmclock scenario keys: machine.start/apic_bus_mhz/ipi_latency_ns/tsc_skew/kvm, the
// host section and expect.stop "unsupported": defaults, full parses, the per-vCPU TSC
// helpers, and one exact error line per kind of mistake.
#include <catch2/catch.hpp>
#include <cstdint>

#include "tests/platform/scenario_fixture.h"
#include "tools/platform/scenario.h"

using namespace pvsim;
using namespace pvsim::test;

namespace {

struct Dir : ScenarioDir {
  Dir() : ScenarioDir("scenario-smp-test") {}
};

std::string error_of(const Dir& d, const std::string& body) { return parse_error(d, with(body)); }

Scenario parse(const Dir& d, const std::string& body) {
  return parse_scenario(with(body), d.file());
}

}  // namespace

TEST_CASE("SMP keys get the README defaults", "[scenario]") {
  Dir d;
  const Scenario s = parse(d, R"("machine": {"vcpus": 3, "tsc_start": "0x1000"})");
  const MachineConfig& m = s.machine;
  CHECK(m.start == StartMode::All);
  CHECK(m.apic_bus_mhz == 1000);
  CHECK(m.ipi_latency_ns == 0);
  CHECK(m.tsc_skew.empty());
  CHECK(m.kvm.abi == KvmAbi::Modern);
  CHECK_FALSE(m.kvm.enforce_pv_cpuid);
  CHECK(m.kvm.master_clock);
  CHECK(m.kvm.kvmclock_sync_ms == 300'000);
  CHECK(m.kvm.clock_update_delay_ms == 100);
  CHECK(m.tsc_matched());
  for (unsigned i = 0; i < 3; ++i) {
    CHECK(m.vcpu_tsc_hz(i) == 2'500'000'000ull);
    CHECK(m.vcpu_tsc_start(i) == 0x1000);
  }
  // No host section: one pCPU per vCPU, pinned 1:1, and the documented host clocks.
  const HostConfig& h = s.host;
  CHECK(h.pcpus == 3);
  CHECK(h.policy == HostPolicy::Pinned);
  CHECK(h.pin == std::vector<unsigned>{0, 1, 2});
  CHECK(h.slice_ns == 3'000'000);
  CHECK(h.preempt.empty());
  CHECK(h.wall_clock_ns == 1'700'000'000'000'000'000ull);
  CHECK(h.monotonic_ns == 1'000'000'000'000ull);
  CHECK_FALSE(s.expect.stop);
}

TEST_CASE("host defaults follow machine.vcpus and pcpus", "[scenario]") {
  Dir d;
  // Fewer pCPUs than vCPUs: the default pin wraps (vCPU i -> pCPU i % pcpus).
  Scenario s = parse(d, R"("host": {"pcpus": 2}, "machine": {"vcpus": 5})");
  CHECK(s.host.pcpus == 2);
  CHECK(s.host.pin == std::vector<unsigned>{0, 1, 0, 1, 0});
  // time_sliced has no pin list at all.
  s = parse(
      d,
      R"("machine": {"vcpus": 4}, "host": {"policy": "time_sliced", "pcpus": 3, "slice_us": 250})");
  CHECK(s.host.policy == HostPolicy::TimeSliced);
  CHECK(s.host.pin.empty());
  CHECK(s.host.slice_ns == 250'000);
  // An empty host object is the same as none; a single-vCPU "bsp" start is fine.
  s = parse(d, R"("host": {}, "machine": {"start": "bsp"})");
  CHECK(s.host.pcpus == 1);
  CHECK(s.host.pin == std::vector<unsigned>{0});
  CHECK(s.machine.start == StartMode::Bsp);
}

TEST_CASE("every SMP key parses", "[scenario]") {
  Dir d;
  const Scenario s = parse(d, R"(
    "machine": {"vcpus": 4, "start": "bsp", "apic_bus_mhz": 10000, "ipi_latency_ns": 1000000000,
                "tsc_skew": [{"vcpu": 3, "offset": -9007199254740992, "ppm": -100000},
                             {"vcpu": 1, "offset": 250},
                             {"vcpu": 2, "ppm": 100000}],
                "kvm": {"abi": "orig", "enforce_pv_cpuid": true, "master_clock": false,
                        "kvmclock_sync_ms": 0, "clock_update_delay_ms": 1000000000000}},
    "host": {"pcpus": 256, "policy": "pinned", "pin": [255, 0, 255, 7], "slice_us": 1000000,
             "preempt": [{"vcpu": 1, "from_us": 2000, "to_us": 5000},
                         {"vcpu": 3, "from_us": 0, "to_us": 1000000000000000}],
             "wall_clock_ns": "9223372036854775807", "monotonic_ns": 9007199254740992},
    "expect": {"stop": "unsupported"})");
  const MachineConfig& m = s.machine;
  CHECK(m.start == StartMode::Bsp);
  CHECK(m.apic_bus_mhz == 10000);
  CHECK(m.ipi_latency_ns == 1'000'000'000);
  REQUIRE(m.tsc_skew.size() == 3);
  CHECK(m.tsc_skew[0].vcpu == 3);
  CHECK(m.tsc_skew[0].offset == -9007199254740992ll);
  CHECK(m.tsc_skew[0].ppm == -100000);
  CHECK(m.tsc_skew[1].vcpu == 1);
  CHECK(m.tsc_skew[1].offset == 250);
  CHECK(m.tsc_skew[1].ppm == 0);
  CHECK(m.tsc_skew[2].offset == 0);
  CHECK(m.kvm.abi == KvmAbi::Orig);
  CHECK(m.kvm.enforce_pv_cpuid);
  CHECK_FALSE(m.kvm.master_clock);
  CHECK(m.kvm.kvmclock_sync_ms == 0);
  CHECK(m.kvm.clock_update_delay_ms == 1'000'000'000'000ull);
  const HostConfig& h = s.host;
  CHECK(h.pcpus == 256);
  CHECK(h.pin == std::vector<unsigned>{255, 0, 255, 7});
  CHECK(h.slice_ns == 1'000'000'000);
  REQUIRE(h.preempt.size() == 2);
  CHECK(h.preempt[0].vcpu == 1);
  CHECK(h.preempt[0].from_ns == 2'000'000);
  CHECK(h.preempt[0].to_ns == 5'000'000);
  CHECK(h.preempt[1].vcpu == 3);
  CHECK(h.preempt[1].from_ns == 0);
  CHECK(h.preempt[1].to_ns == 1'000'000'000'000'000'000ull);
  CHECK(h.wall_clock_ns == 9'223'372'036'854'775'807ull);
  CHECK(h.monotonic_ns == 9'007'199'254'740'992ull);
  CHECK(s.expect.stop == RunStop::Unsupported);
  CHECK(std::string(run_stop_name(RunStop::Unsupported)) == "unsupported");
}

TEST_CASE("per-vCPU TSC rate and start after skew", "[scenario]") {
  Dir d;
  // tsc_khz 1001: 1001000 Hz, so ppm 500 is 500.5 Hz faster: rounds away from zero.
  const Scenario s = parse(d, R"("machine": {"vcpus": 6, "tsc_khz": 1001, "tsc_start": "0x10",
    "tsc_skew": [{"vcpu": 0, "ppm": 500}, {"vcpu": 1, "ppm": -500}, {"vcpu": 2, "ppm": 1, "offset": -17},
                 {"vcpu": 3, "ppm": -1, "offset": 9007199254740992}, {"vcpu": 4, "ppm": -100000}]})");
  const MachineConfig& m = s.machine;
  CHECK(m.vcpu_tsc_hz(0) == 1'001'501);  // 1001000 + 500.5 -> +501
  CHECK(m.vcpu_tsc_hz(1) == 1'000'499);  // 1001000 - 500.5 -> -501
  CHECK(m.vcpu_tsc_hz(2) == 1'001'001);  // +1.001 -> +1
  CHECK(m.vcpu_tsc_hz(3) == 1'000'999);  // -1.001 -> -1
  CHECK(m.vcpu_tsc_hz(4) == 900'900);    // -10% exactly
  CHECK(m.vcpu_tsc_hz(5) == 1'001'000);  // not listed: nominal
  CHECK(m.vcpu_tsc_start(0) == 0x10);
  CHECK(m.vcpu_tsc_start(2) == UINT64_MAX);  // 0x10 - 17 wraps like the 64-bit counter
  CHECK(m.vcpu_tsc_start(3) == 0x10 + 9'007'199'254'740'992ull);
  CHECK(m.vcpu_tsc_start(5) == 0x10);
  CHECK_FALSE(m.tsc_matched());
  CHECK(m.skew_of(5) == nullptr);
  REQUIRE(m.skew_of(4) != nullptr);
  CHECK(m.skew_of(4)->ppm == -100000);

  // Entries that skew nothing leave the TSCs matched; any offset or ppm does not.
  CHECK(parse(d, R"("machine": {"vcpus": 2, "tsc_skew": [{"vcpu": 1, "offset": 0, "ppm": 0}]})")
            .machine.tsc_matched());
  CHECK_FALSE(parse(d, R"("machine": {"vcpus": 2, "tsc_skew": [{"vcpu": 1, "offset": 1}]})")
                  .machine.tsc_matched());
  CHECK_FALSE(parse(d, R"("machine": {"vcpus": 2, "tsc_skew": [{"vcpu": 0, "ppm": -1}]})")
                  .machine.tsc_matched());
}

TEST_CASE("bad SMP keys: one exact line with file and JSON pointer", "[scenario]") {
  Dir d;
  const std::string f = d.file().string() + ": ";
  // machine
  CHECK(error_of(d, R"("machine": {"cpus": 2})") ==
        f + "/machine/cpus: unknown key (allowed here: vcpus, ram_mib, tsc_khz, tsc_start, "
            "quantum, exact_quantum, kvm_cpuid, "
            "ignore_unhandled_io, start, apic_bus_mhz, ipi_latency_ns, tsc_skew, kvm, irqchip, cpu_vendor, x2apic)");
  CHECK(error_of(d, R"("machine": {"start": "ap"})") ==
        f + "/machine/start: must be \"all\" or \"bsp\", got \"ap\"");
  CHECK(error_of(d, R"("machine": {"start": 0})") ==
        f + "/machine/start: must be \"all\" or \"bsp\", got 0");
  CHECK(error_of(d, R"("machine": {"apic_bus_mhz": 0})") ==
        f + "/machine/apic_bus_mhz: must be an integer from 1 to 10000, got 0");
  CHECK(error_of(d, R"("machine": {"ipi_latency_ns": 1000000001})") ==
        f + "/machine/ipi_latency_ns: must be an integer from 0 to 1000000000, got 1000000001");
  // machine.tsc_skew
  CHECK(error_of(d, R"("machine": {"tsc_skew": {"vcpu": 0}})") ==
        f + "/machine/tsc_skew: must be an array, got {\"vcpu\":0}");
  CHECK(error_of(d, R"("machine": {"tsc_skew": [{"ppm": 5}]})") ==
        f + "/machine/tsc_skew/0: missing required key \"vcpu\"");
  CHECK(error_of(d, R"("machine": {"tsc_skew": [{"vcpu": 0, "drift": 5}]})") ==
        f + "/machine/tsc_skew/0/drift: unknown key (allowed here: vcpu, offset, ppm)");
  CHECK(error_of(d, R"("machine": {"vcpus": 2, "tsc_skew": [{"vcpu": 2}]})") ==
        f + "/machine/tsc_skew/0/vcpu: must be an integer from 0 to 1, got 2");
  CHECK(
      error_of(
          d,
          R"("machine": {"vcpus": 3, "tsc_skew": [{"vcpu": 1}, {"vcpu": 2}, {"vcpu": 1, "ppm": 3}]})") ==
      f + "/machine/tsc_skew/2/vcpu: vCPU 1 is already listed at /machine/tsc_skew/0");
  CHECK(error_of(d, R"("machine": {"tsc_skew": [{"vcpu": 0, "ppm": 100001}]})") ==
        f + "/machine/tsc_skew/0/ppm: must be an integer from -100000 to 100000, got 100001");
  CHECK(error_of(d, R"("machine": {"tsc_skew": [{"vcpu": 0, "ppm": -100001}]})") ==
        f + "/machine/tsc_skew/0/ppm: must be an integer from -100000 to 100000, got -100001");
  CHECK(error_of(d, R"("machine": {"tsc_skew": [{"vcpu": 0, "offset": "5"}]})") ==
        f + "/machine/tsc_skew/0/offset: must be an integer from -9007199254740992 to "
            "9007199254740992, got \"5\"");
  CHECK(error_of(d, R"("machine": {"tsc_skew": [{"vcpu": 0, "offset": 1.5}]})") ==
        f + "/machine/tsc_skew/0/offset: must be an integer from -9007199254740992 to "
            "9007199254740992, got 1.5");
  CHECK(error_of(d, R"("machine": {"tsc_skew": [{"vcpu": 0, "offset": -9007199254740993}]})") ==
        f + "/machine/tsc_skew/0/offset: must be an integer from -9007199254740992 to "
            "9007199254740992, got -9007199254740993");
  CHECK(error_of(d, R"("machine": {"tsc_skew": [{"vcpu": 0, "offset": 18446744073709551615}]})") ==
        f + "/machine/tsc_skew/0/offset: must be an integer from -9007199254740992 to "
            "9007199254740992, got 18446744073709551615");
  // machine.kvm
  CHECK(error_of(d, R"("machine": {"kvm": {"steal": true}})") ==
        f + "/machine/kvm/steal: unknown key (allowed here: abi, enforce_pv_cpuid, master_clock, "
            "kvmclock_sync_ms, "
            "clock_update_delay_ms, fix_hypercall_insn, map_gpa_range_exit, map_gpa_range_ret, migration_control, bugs)");
  CHECK(error_of(d, R"("machine": {"kvm": []})") == f + "/machine/kvm: must be an object, got []");
  CHECK(error_of(d, R"("machine": {"kvm": {"abi": "seed"}})") ==
        f + "/machine/kvm/abi: must be \"modern\" or \"orig\", got \"seed\"");
  CHECK(error_of(d, R"("machine": {"kvm": {"enforce_pv_cpuid": "yes"}})") ==
        f + "/machine/kvm/enforce_pv_cpuid: must be true or false, got \"yes\"");
  CHECK(error_of(d, R"("machine": {"kvm": {"master_clock": 1}})") ==
        f + "/machine/kvm/master_clock: must be true or false, got 1");
  CHECK(error_of(d, R"("machine": {"kvm": {"kvmclock_sync_ms": -1}})") ==
        f + "/machine/kvm/kvmclock_sync_ms: must be an integer from 0 to 1000000000000, got -1");
  CHECK(error_of(d, R"("machine": {"kvm": {"clock_update_delay_ms": 1000000000001}})") ==
        f + "/machine/kvm/clock_update_delay_ms: must be an integer from 0 to 1000000000000, got "
            "1000000000001");
  // host
  CHECK(error_of(d, R"("host": 1)") == f + "/host: must be an object, got 1");
  CHECK(error_of(d, R"("host": {"cpus": 1})") ==
        f + "/host/cpus: unknown key (allowed here: pcpus, policy, pin, slice_us, preempt, noise, pause, "
            "pv_store_ns, wall_clock_ns, monotonic_ns, memory)");
  CHECK(error_of(d, R"("host": {"pcpus": 0})") ==
        f + "/host/pcpus: must be an integer from 1 to 256, got 0");
  CHECK(error_of(d, R"("host": {"pcpus": 257})") ==
        f + "/host/pcpus: must be an integer from 1 to 256, got 257");
  CHECK(error_of(d, R"("host": {"policy": "fair"})") ==
        f + "/host/policy: must be \"pinned\" or \"time_sliced\", got \"fair\"");
  CHECK(error_of(d, R"("host": {"pin": [0], "policy": "time_sliced"})") ==
        f + "/host/pin: only allowed with \"policy\": \"pinned\"");
  CHECK(error_of(d, R"("host": {"pin": 0})") ==
        f + "/host/pin: must be an array of pCPU numbers, got 0");
  CHECK(error_of(d, R"("machine": {"vcpus": 2}, "host": {"pin": [0]})") ==
        f + "/host/pin: must have one entry per vCPU (2), got 1");
  CHECK(error_of(d, R"("machine": {"vcpus": 2}, "host": {"pin": [0, 0, 1]})") ==
        f + "/host/pin: must have one entry per vCPU (2), got 3");
  // pcpus defaults to vcpus (2), so pCPU 2 does not exist.
  CHECK(error_of(d, R"("machine": {"vcpus": 2}, "host": {"pin": [0, 2]})") ==
        f + "/host/pin/1: must be an integer from 0 to 1, got 2");
  CHECK(error_of(d, R"("machine": {"vcpus": 3}, "host": {"pin": [0, 1, 1], "pcpus": 1})") ==
        f + "/host/pin/1: must be an integer from 0 to 0, got 1");
  CHECK(error_of(d, R"("host": {"slice_us": 0})") ==
        f + "/host/slice_us: must be an integer from 1 to 1000000, got 0");
  CHECK(error_of(d, R"("host": {"slice_us": 1000001})") ==
        f + "/host/slice_us: must be an integer from 1 to 1000000, got 1000001");
  // host.preempt
  CHECK(error_of(d, R"("host": {"preempt": {}})") == f + "/host/preempt: must be an array, got {}");
  CHECK(error_of(d, R"("host": {"preempt": [{"vcpu": 0, "from_us": 1}]})") ==
        f + "/host/preempt/0: missing required key \"to_us\"");
  CHECK(error_of(d, R"("host": {"preempt": [{"from_us": 1, "to_us": 2}]})") ==
        f + "/host/preempt/0: missing required key \"vcpu\"");
  CHECK(error_of(d, R"("host": {"preempt": [{"vcpu": 0, "from_us": 1, "to_us": 2, "pcpu": 0}]})") ==
        f + "/host/preempt/0/pcpu: unknown key (allowed here: vcpu, from_us, to_us, from_ns, to_ns)");
  CHECK(
      error_of(
          d,
          R"("host": {"preempt": [{"vcpu": 0, "from_us": 1, "to_us": 2}, {"vcpu": 1, "from_us": 1, "to_us": 2}]})") ==
      f + "/host/preempt/1/vcpu: must be an integer from 0 to 0, got 1");
  CHECK(error_of(d, R"("host": {"preempt": [{"vcpu": 0, "from_us": 5000, "to_us": 5000}]})") ==
        f + "/host/preempt/0/to_us: must be greater than from_us (5000), got 5000");
  CHECK(error_of(d, R"("host": {"preempt": [{"vcpu": 0, "from_us": 5000, "to_us": 2000}]})") ==
        f + "/host/preempt/0/to_us: must be greater than from_us (5000), got 2000");
  CHECK(error_of(d, R"("host": {"preempt": [{"vcpu": 0, "from_us": -1, "to_us": 2000}]})") ==
        f + "/host/preempt/0/from_us: must be an integer from 0 to 1000000000000000, got -1");
  CHECK(error_of(
            d, R"("host": {"preempt": [{"vcpu": 0, "from_us": 0, "to_us": 1000000000000001}]})") ==
        f + "/host/preempt/0/to_us: must be an integer from 0 to 1000000000000000, got "
            "1000000000000001");
  // host clocks
  CHECK(
      error_of(d, R"("host": {"wall_clock_ns": "9223372036854775808"})") ==
      f + "/host/wall_clock_ns: must be at most 9223372036854775807, got \"9223372036854775808\"");
  CHECK(error_of(d, R"("host": {"wall_clock_ns": "1.7e18"})") ==
        f + "/host/wall_clock_ns: must be a decimal string like \"1700000000000000000\" or an "
            "integer, got \"1.7e18\"");
  CHECK(error_of(d, R"("host": {"monotonic_ns": -1})") ==
        f + "/host/monotonic_ns: must be a decimal string like \"1700000000000000000\" or an "
            "integer, got -1");
  CHECK(error_of(d, R"("host": {"monotonic_ns": 9007199254740993})") ==
        f + "/host/monotonic_ns: integer 9007199254740993 does not fit in 53 bits; write it as a "
            "decimal string");
}
