// Scenario parsing of host.memory and machine.irqchip (scenarios/README.md): defaults, every
// key, and one exact one-line error per kind of mistake.
#include <catch2/catch.hpp>
#include <filesystem>
#include <string>

#include "tests/platform/scenario_fixture.h"
#include "tools/platform/host_memory.h"
#include "tools/platform/scenario.h"

using namespace pvsim;
using namespace pvsim::test;
namespace fs = std::filesystem;

namespace {

struct Dir : ScenarioDir {
  Dir() : ScenarioDir("scenario-memory-test") {}
};

// A scenario with 16 MiB of RAM (0x1000000 bytes, 4096 pages) and `memory` as host.memory.
std::string with_memory(const std::string& memory) {
  return with(R"("machine": {"ram_mib": 16}, "host": {"memory": )" + memory + "}");
}

}  // namespace

TEST_CASE("host.memory and machine.irqchip defaults: all resident, in-kernel LAPIC", "[scenario][host-memory]") {
  Dir d;
  const Scenario s = parse_scenario(with(""), d.file());
  CHECK(s.machine.irqchip == IrqChip::Kernel);
  const HostMemoryConfig& m = s.host.memory;
  CHECK(m.swapped_out.empty());
  CHECK(m.evict.empty());
  CHECK(m.resident_limit_pages == 0);
  CHECK(m.fault_in.lo_ns == 200'000);
  CHECK(m.fault_in.hi_ns == 200'000);
  CHECK_FALSE(m.fault_in.uniform);
  CHECK(m.latency_ranges.empty());
  CHECK(m.io_workers == 1);
  CHECK_FALSE(HostMemory(m, s.machine.ram_bytes(), s.seed).active());
  // An empty memory object is the same as none.
  const Scenario e = parse_scenario(with_memory("{}"), d.file());
  CHECK(e.host.memory.swapped_out.empty());
  CHECK(e.host.memory.io_workers == 1);
}

TEST_CASE("host.memory: every key, in every accepted number form", "[scenario][host-memory]") {
  Dir d;
  const Scenario s = parse_scenario(with(R"(
    "machine": {"ram_mib": 65536, "irqchip": "userspace"},
    "host": {"memory": {
      "resident_limit_pages": 16777213,
      "swapped_out": [{"gpa": "0xffffff000", "size": "0x1000"}, {"gpa": 4194304, "size": "8192"},
                      {"gpa": "0x400000", "size": "0x1000"}],
      "evict": [{"at_us": 1500, "gpa": "0x0", "size": "0x1000"},
                {"at_us": 1000000000000000, "gpa": "0x1000", "size": "0xfffff000"}],
      "fault_in_ns": {"uniform_ns": [0, 1000000000000]},
      "latency_ranges": [{"gpa": "0x600000", "size": "0x100000", "fault_in_ns": 2000000},
                         {"gpa": "0x700000", "size": "0x1000", "fault_in_ns": {"uniform_ns": [5, 5]}}],
      "io_workers": 1024}})"),
                                    d.file());
  CHECK(s.machine.irqchip == IrqChip::Userspace);
  const HostMemoryConfig& m = s.host.memory;
  REQUIRE(m.swapped_out.size() == 3);
  CHECK(m.swapped_out[0].gpa == 0xffffff000);
  CHECK(m.swapped_out[0].size == 0x1000);
  CHECK(m.swapped_out[1].gpa == 0x400000);
  CHECK(m.swapped_out[1].size == 0x2000);
  REQUIRE(m.evict.size() == 2);
  CHECK(m.evict[0].at_ns == 1'500'000);
  CHECK(m.evict[0].range.gpa == 0);
  CHECK(m.evict[1].at_ns == 1'000'000'000'000'000'000ull);
  CHECK(m.evict[1].range.size == 0xfffff000);
  // 16 Mi pages, 3 of them swapped out (two entries share page 0x400): the smallest limit.
  CHECK(m.resident_limit_pages == 16'777'213);
  CHECK(m.fault_in.uniform);
  CHECK(m.fault_in.lo_ns == 0);
  CHECK(m.fault_in.hi_ns == 1'000'000'000'000);
  REQUIRE(m.latency_ranges.size() == 2);
  CHECK(m.latency_ranges[0].range.gpa == 0x600000);
  CHECK(m.latency_ranges[0].range.size == 0x100000);
  CHECK_FALSE(m.latency_ranges[0].latency.uniform);
  CHECK(m.latency_ranges[0].latency.lo_ns == 2'000'000);
  CHECK(m.latency_ranges[1].latency.uniform);
  CHECK(m.latency_ranges[1].latency.hi_ns == 5);
  CHECK(m.io_workers == 1024);
}

TEST_CASE("the good fixture with every host.memory key loads and builds the model it describes",
          "[scenario][host-memory]") {
  // tests/platform/good/host-memory.json: the schema test checks the same file.
  const Scenario s = load_scenario(fs::path(PVSIM_TEST_DATA_DIR) / "good" / "host-memory.json");
  CHECK(s.machine.irqchip == IrqChip::Userspace);
  const HostMemory m(s.host.memory, s.machine.ram_bytes(), s.seed);
  CHECK(m.active());
  CHECK(m.resident_pages() == 3072);
  CHECK_FALSE(m.resident(0x400));
  CHECK(m.resident(0x3ff));
  CHECK(m.evictions() == std::vector<HostMemory::Eviction>{{Tick(1'500'000), 0x800, 16}});
  CHECK(m.latency_of(0x650).lo_ns == 2'000'000);
  CHECK(m.describe() ==
        "1024 of 4096 pages swapped out, 1 eviction, resident limit 3072 pages, fault-in uniform 100 us to 400 us "
        "(1 range with its own), 2 I/O workers");
}

TEST_CASE("machine.irqchip: QEMU's kernel_irqchip names map onto KVM's lapic_in_kernel()", "[scenario][host-memory]") {
  Dir d;
  const std::pair<const char*, IrqChip> rows[] = {{"kernel", IrqChip::Kernel},
                                                  {"split", IrqChip::Kernel},
                                                  {"none", IrqChip::Userspace},
                                                  {"userspace", IrqChip::Userspace}};
  for (const auto& [name, want] : rows) {
    INFO(name);
    const std::string machine = std::string(R"("machine": {"irqchip": ")") + name + "\"}";
    CHECK(parse_scenario(with(machine), d.file()).machine.irqchip == want);
  }
}

TEST_CASE("bad machine.irqchip and host.memory: one exact line with file and JSON pointer",
          "[scenario][host-memory]") {
  Dir d;
  const std::string f = d.file().string() + ": ";
  auto error_of = [&](const std::string& text) { return parse_error(d, text); };
  auto mem = [&](const std::string& memory) { return error_of(with_memory(memory)); };
  const std::string p = f + "/host/memory";

  // machine.irqchip
  CHECK(error_of(with(R"("machine": {"irqchip": "off"})")) ==
        f + "/machine/irqchip: must be \"kernel\", \"split\", \"none\" or \"userspace\", got \"off\"");
  CHECK(error_of(with(R"("machine": {"irqchip": true})")) ==
        f + "/machine/irqchip: must be \"kernel\", \"split\", \"none\" or \"userspace\", got true");

  // The object and its keys.
  CHECK(mem("1") == p + ": must be an object, got 1");
  CHECK(mem(R"({"swap": []})") ==
        p + "/swap: unknown key (allowed here: swapped_out, evict, resident_limit_pages, fault_in_ns, "
            "latency_ranges, io_workers)");
  CHECK(mem(R"({"swapped_out": {}})") == p + "/swapped_out: must be an array, got {}");
  CHECK(mem(R"({"evict": "0x0"})") == p + "/evict: must be an array, got \"0x0\"");
  CHECK(mem(R"({"latency_ranges": null})") == p + "/latency_ranges: must be an array, got null");

  // Ranges: required keys, page alignment, size > 0, inside RAM, no wrap-around.
  CHECK(mem(R"({"swapped_out": [{"gpa": "0x400000"}]})") == p + "/swapped_out/0: missing required key \"size\"");
  CHECK(mem(R"({"swapped_out": [{"size": "0x1000"}]})") == p + "/swapped_out/0: missing required key \"gpa\"");
  CHECK(mem(R"({"swapped_out": [{"gpa": "0x0", "size": "0x1000", "at_us": 1}]})") ==
        p + "/swapped_out/0/at_us: unknown key (allowed here: gpa, size)");
  CHECK(mem(R"({"swapped_out": [{"gpa": "0x400800", "size": "0x1000"}]})") ==
        p + "/swapped_out/0/gpa: must be a multiple of the page size 0x1000, got \"0x400800\"");
  CHECK(mem(R"({"swapped_out": [{"gpa": "4M", "size": "0x1000"}]})") ==
        p + "/swapped_out/0/gpa: must be a hex string like \"0x1f\" or a decimal string, got \"4M\"");
  CHECK(mem(R"({"swapped_out": [{"gpa": "0x1000000", "size": "0x1000"}]})") ==
        p + "/swapped_out/0/gpa: must be below the end of RAM at 0x1000000 (machine.ram_mib 16), got \"0x1000000\"");
  CHECK(mem(R"({"swapped_out": [{"gpa": "0x0", "size": "0x1000"}, {"gpa": "0x1000", "size": 0}]})") ==
        p + "/swapped_out/1/size: must not be 0");
  CHECK(mem(R"({"swapped_out": [{"gpa": "0x0", "size": "0x1800"}]})") ==
        p + "/swapped_out/0/size: must be a multiple of the page size 0x1000, got \"0x1800\"");
  CHECK(mem(R"({"swapped_out": [{"gpa": "0xf00000", "size": "0x200000"}]})") ==
        p + "/swapped_out/0/size: must be at most 0x100000: RAM ends at 0x1000000 (machine.ram_mib 16), got "
            "\"0x200000\"");
  // gpa + size would wrap around 2^64 to 0: still refused.
  CHECK(mem(R"({"swapped_out": [{"gpa": "0xfff000", "size": "0xfffffffffffff000"}]})") ==
        p + "/swapped_out/0/size: must be at most 0x1000: RAM ends at 0x1000000 (machine.ram_mib 16), got "
            "\"0xfffffffffffff000\"");

  // Evictions.
  CHECK(mem(R"({"evict": [{"gpa": "0x0", "size": "0x1000"}]})") == p + "/evict/0: missing required key \"at_us\"");
  CHECK(mem(R"({"evict": [{"at_us": 1000000000000001, "gpa": "0x0", "size": "0x1000"}]})") ==
        p + "/evict/0/at_us: must be an integer from 0 to 1000000000000000, got 1000000000000001");
  CHECK(mem(R"({"evict": [{"at_us": -1, "gpa": "0x0", "size": "0x1000"}]})") ==
        p + "/evict/0/at_us: must be an integer from 0 to 1000000000000000, got -1");
  CHECK(mem(R"({"evict": [{"at_us": 5, "gpa": "0x1000", "size": "0x0"}]})") == p + "/evict/0/size: must not be 0");
  CHECK(mem(R"({"evict": [{"at_us": 5, "gpa": "0x1000", "size": "0x1000", "vcpu": 0}]})") ==
        p + "/evict/0/vcpu: unknown key (allowed here: at_us, gpa, size)");

  // Latencies.
  CHECK(mem(R"({"fault_in_ns": "200us"})") ==
        p + "/fault_in_ns: must be an integer of ns or {\"uniform_ns\": [lo, hi]}, got \"200us\"");
  CHECK(mem(R"({"fault_in_ns": 1000000000001})") ==
        p + "/fault_in_ns: must be an integer from 0 to 1000000000000, got 1000000000001");
  CHECK(mem(R"({"fault_in_ns": -5})") == p + "/fault_in_ns: must be an integer from 0 to 1000000000000, got -5");
  CHECK(mem(R"({"fault_in_ns": 1.5})") == p + "/fault_in_ns: must be an integer from 0 to 1000000000000, got 1.5");
  CHECK(mem(R"({"fault_in_ns": {"uniform": [1, 2]}})") ==
        p + "/fault_in_ns/uniform: unknown key (allowed here: uniform_ns)");
  CHECK(mem(R"({"fault_in_ns": {}})") == p + "/fault_in_ns: missing required key \"uniform_ns\"");
  CHECK(mem(R"({"fault_in_ns": {"uniform_ns": [1]}})") ==
        p + "/fault_in_ns/uniform_ns: must be [lo, hi], two integers of ns, got [1]");
  CHECK(mem(R"({"fault_in_ns": {"uniform_ns": [1, 2, 3]}})") ==
        p + "/fault_in_ns/uniform_ns: must be [lo, hi], two integers of ns, got [1,2,3]");
  CHECK(mem(R"({"fault_in_ns": {"uniform_ns": [400000, 100000]}})") ==
        p + "/fault_in_ns/uniform_ns/1: must be at least the lower bound 400000 (both ends are included), got 100000");
  CHECK(mem(R"({"fault_in_ns": {"uniform_ns": ["1", 2]}})") ==
        p + "/fault_in_ns/uniform_ns/0: must be an integer from 0 to 1000000000000, got \"1\"");
  CHECK(mem(R"({"latency_ranges": [{"gpa": "0x0", "size": "0x1000"}]})") ==
        p + "/latency_ranges/0: missing required key \"fault_in_ns\"");
  CHECK(mem(R"({"latency_ranges": [{"gpa": "0x0", "size": "0x1000", "fault_in_ns": {"uniform_ns": [2, 1]}}]})") ==
        p + "/latency_ranges/0/fault_in_ns/uniform_ns/1: must be at least the lower bound 2 (both ends are included), "
            "got 1");
  CHECK(mem(R"({"latency_ranges": [{"gpa": "0x0", "size": "0x1000", "fault_in_ns": 1, "latency": 1}]})") ==
        p + "/latency_ranges/0/latency: unknown key (allowed here: gpa, size, fault_in_ns)");

  // Overlapping latency ranges are refused, naming both entries.
  CHECK(mem(R"({"latency_ranges": [{"gpa": "0x600000", "size": "0x100000", "fault_in_ns": 1},
                                   {"gpa": "0x100000", "size": "0x1000", "fault_in_ns": 2},
                                   {"gpa": "0x6ff000", "size": "0x2000", "fault_in_ns": 3}]})") ==
        p + "/latency_ranges/2: overlaps /host/memory/latency_ranges/0 (0x600000-0x6fffff); latency ranges may not "
            "overlap");
  CHECK(mem(R"({"latency_ranges": [{"gpa": "0x100000", "size": "0x100000", "fault_in_ns": 1},
                                   {"gpa": "0x110000", "size": "0x1000", "fault_in_ns": 2}]})") ==
        p + "/latency_ranges/1: overlaps /host/memory/latency_ranges/0 (0x100000-0x1fffff); latency ranges may not "
            "overlap");
  // Of several overlapping pairs, the one whose later entry comes first in the file (not
  // the lowest addresses).
  CHECK(mem(R"({"latency_ranges": [{"gpa": "0x800000", "size": "0x1000", "fault_in_ns": 1},
                                   {"gpa": "0x800000", "size": "0x1000", "fault_in_ns": 2},
                                   {"gpa": "0x100000", "size": "0x2000", "fault_in_ns": 3},
                                   {"gpa": "0x101000", "size": "0x1000", "fault_in_ns": 4}]})") ==
        p + "/latency_ranges/1: overlaps /host/memory/latency_ranges/0 (0x800000-0x800fff); latency ranges may not "
            "overlap");
  // Touching is not overlapping.
  CHECK(mem(R"({"latency_ranges": [{"gpa": "0x100000", "size": "0x1000", "fault_in_ns": 1},
                                   {"gpa": "0x101000", "size": "0x1000", "fault_in_ns": 2}]})") == "(no error)");

  // Workers and the limit.
  CHECK(mem(R"({"io_workers": 0})") == p + "/io_workers: must be an integer from 1 to 1024, got 0");
  CHECK(mem(R"({"io_workers": 1025})") == p + "/io_workers: must be an integer from 1 to 1024, got 1025");
  CHECK(mem(R"({"resident_limit_pages": 4097})") ==
        p + "/resident_limit_pages: must be an integer from 0 to 4096, got 4097");
  // 0x400000-0x9fffff swapped out (two overlapping entries: 1536 pages), so 2560 resident.
  const std::string swapped =
      R"("swapped_out": [{"gpa": "0x400000", "size": "0x400000"}, {"gpa": "0x600000", "size": "0x400000"}])";
  CHECK(mem("{" + swapped + R"(, "resident_limit_pages": 2559})") ==
        p + "/resident_limit_pages: must be 0 (no limit) or at least the 2560 pages resident at time 0 (RAM's 4096 "
            "pages minus 1536 swapped out), got 2559; list more of RAM in swapped_out for a smaller limit");
  CHECK(mem(R"({"resident_limit_pages": 2560, )" + swapped + "}") == "(no error)");  // key order does not matter
  CHECK(mem(R"({"resident_limit_pages": 0, )" + swapped + "}") == "(no error)");
  CHECK(mem(R"({"resident_limit_pages": 4095})") ==
        p + "/resident_limit_pages: must be 0 (no limit) or at least the 4096 pages resident at time 0 (RAM's 4096 "
            "pages minus 0 swapped out), got 4095; list more of RAM in swapped_out for a smaller limit");
}

TEST_CASE("the bad-memory fixture gives its one line through load_scenario", "[scenario][host-memory]") {
  const fs::path bad = fs::path(PVSIM_TEST_DATA_DIR) / "bad" / "bad-memory.json";
  try {
    load_scenario(bad);
    FAIL("no error");
  } catch (const ScenarioError& e) {
    CHECK(std::string(e.what()) ==
          bad.string() + ": /host/memory/swapped_out/0/gpa: must be a multiple of the page size 0x1000, got \"0x400800\"");
  }
}
