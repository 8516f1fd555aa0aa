// Scenario parsing: defaults, comments, and one exact one-line error per kind of mistake.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "tests/platform/scenario_fixture.h"
#include "tools/platform/scenario.h"

using namespace pvsim;
using namespace pvsim::test;
namespace fs = std::filesystem;

namespace {

struct Dir : ScenarioDir {
  Dir() : ScenarioDir("scenario-test") {}
};

std::string error_of(const Dir& d, const std::string& text) { return parse_error(d, text); }

}  // namespace

TEST_CASE("minimal scenario gets the README defaults", "[scenario]") {
  Dir d;
  Scenario s = parse_scenario("// comment\n{ /* c */ \"description\": \"x\", " + kGuest + "}", d.file());
  CHECK(s.name == "s");
  CHECK(s.seed == 0);
  CHECK(s.machine.vcpus == 1);
  CHECK(s.machine.ram_mib == 128);
  CHECK(s.machine.tsc_khz == 2'500'000);
  CHECK(s.machine.tsc_start == 0);
  CHECK(s.machine.quantum == 10'000);
  CHECK_FALSE(s.machine.exact_quantum);
  CHECK(s.machine.kvm_features == 0x01007efb);
  CHECK(s.machine.kvm_hints == 0);
  CHECK(s.machine.kvm_signature_eax == 0x40000001);
  CHECK_FALSE(s.machine.ignore_unhandled_io);
  CHECK(s.guest.format == ImageFormat::Auto);
  CHECK(s.guest.image == d.path / "img.bin");
  CHECK(s.limits.max_instructions == 10'000'000'000ull);
  CHECK(s.limits.max_virtual_ms == 60'000);
  CHECK_FALSE(s.expect.any());
}

TEST_CASE("full scenario parses every key", "[scenario]") {
  Dir d;
  Scenario s = parse_scenario(R"({
    "name": "n", "description": "d", "seed": 18446744073709551615,
    "machine": {"vcpus": 4, "ram_mib": 64, "tsc_khz": 1000000, "tsc_start": "0xffffffffffffffff",
                "quantum": 1, "exact_quantum": true, "ignore_unhandled_io": true,
                "kvm_cpuid": {"features": ["CLOCKSOURCE2", "ASYNC_PF"], "hints": "1", "signature_eax": 0}},
    "guest": {"image": "img.bin", "format": "flat"},
    "limits": {"max_instructions": 5, "max_virtual_ms": 7},
    "expect": {"stop": "unhandled_io", "exit_status": 3, "console": "c", "console_contains": ["a"],
               "console_excludes": ["b"], "registers": [{"vcpu": 3, "reg": "r15", "value": "0x10"}],
               "msrs": [{"vcpu": 0, "msr": "0x4b564d05", "value": 1}], "trace_hash": "0x0123456789abcdef"}
  })", d.file());
  CHECK(s.seed == ~0ull);
  CHECK(s.machine.vcpus == 4);
  CHECK(s.machine.tsc_start == ~0ull);
  CHECK(s.machine.kvm_features == 0x18);
  CHECK(s.machine.kvm_hints == 1);
  CHECK(s.machine.kvm_signature_eax == 0);
  CHECK(s.machine.ignore_unhandled_io);
  CHECK(s.machine.exact_quantum);
  CHECK(s.guest.format == ImageFormat::Flat);
  CHECK(s.limits.max_virtual_ms == 7);
  CHECK(s.expect.stop == RunStop::UnhandledIo);
  CHECK(s.expect.exit_status == 3u);
  REQUIRE(s.expect.registers.size() == 1);
  CHECK(s.expect.registers[0].vcpu == 3);
  CHECK(s.expect.registers[0].reg == "r15");
  CHECK(s.expect.registers[0].value == 0x10);
  REQUIRE(s.expect.msrs.size() == 1);
  CHECK(s.expect.msrs[0].msr == 0x4b564d05);
  CHECK(*s.expect.trace_hash == 0x0123456789abcdefull);
}

TEST_CASE("bad scenarios: one exact line with file and JSON pointer", "[scenario]") {
  Dir d;
  const std::string f = d.file().string() + ": ";
  CHECK(error_of(d, "{\"description\": \"x\",, }") ==
        f + "invalid JSON: line 1, column 21: syntax error while parsing object key - unexpected ','; expected string literal");
  CHECK(error_of(d, "[1]") == f + "/: must be an object, got [1]");
  CHECK(error_of(d, with("\"descripton\": \"typo\"")) ==
        f + "/descripton: unknown key (allowed here: name, description, seed, machine, host, guest, limits, expect, schedule, explore)");
  CHECK(error_of(d, "{" + kGuest + "}") == f + "/: missing required key \"description\"");
  CHECK(error_of(d, with("\"machine\": {\"vcpus\": 0}")) == f + "/machine/vcpus: must be an integer from 1 to 64, got 0");
  CHECK(error_of(d, with("\"machine\": {\"vcpus\": \"4\"}")) == f + "/machine/vcpus: must be an integer from 1 to 64, got \"4\"");
  CHECK(error_of(d, with("\"machine\": {\"vcpus\": 2.5}")) == f + "/machine/vcpus: must be an integer from 1 to 64, got 2.5");
  CHECK(error_of(d, with("\"machine\": {\"ram_mib\": 65537}")) ==
        f + "/machine/ram_mib: must be an integer from 2 to 65536, got 65537");
  CHECK(error_of(d, with("\"machine\": {\"tsc_start\": \"0xZZ\"}")) ==
        f + "/machine/tsc_start: must be a hex string like \"0x1f\" or a decimal string, got \"0xZZ\"");
  CHECK(error_of(d, with("\"machine\": {\"tsc_start\": \"0x10000000000000000\"}")) ==
        f + "/machine/tsc_start: must be a hex string like \"0x1f\" or a decimal string, got \"0x10000000000000000\"");
  CHECK(error_of(d, with("\"machine\": {\"kvm_cpuid\": {\"features\": [\"ASYNC_PF\", \"ASYNCPF\"]}}")) ==
        f + "/machine/kvm_cpuid/features/1: unknown KVM feature name \"ASYNCPF\" (the KVM_FEATURE_* names without the "
            "prefix, e.g. \"ASYNC_PF\"; pvmsr/README.md lists them)");
  CHECK(error_of(d, with("\"machine\": {\"kvm_cpuid\": {\"hints\": \"0x100000000\"}}")) ==
        f + "/machine/kvm_cpuid/hints: must be at most 0xffffffff, got \"0x100000000\"");
  CHECK(error_of(d, with("\"machine\": {\"kvm_cpuid\": {\"leaf\": 1}}")) ==
        f + "/machine/kvm_cpuid/leaf: unknown key (allowed here: features, hints, signature_eax)");
  CHECK(error_of(d, with("\"machine\": {\"ignore_unhandled_io\": 1}")) ==
        f + "/machine/ignore_unhandled_io: must be true or false, got 1");
  CHECK(error_of(d, with("\"machine\": {\"exact_quantum\": \"yes\"}")) ==
        f + "/machine/exact_quantum: must be true or false, got \"yes\"");
  CHECK(error_of(d, "{\"description\": \"d\", \"guest\": {\"image\": \"missing.elf\"}}") ==
        f + "/guest/image: image file not found: " + (d.path / "missing.elf").string());
  CHECK(error_of(d, "{\"description\": \"d\", \"guest\": {\"image\": \"img.bin\", \"format\": \"exe\"}}") ==
        f + "/guest/format: must be \"elf\" or \"flat\", got \"exe\"");
  CHECK(error_of(d, "{\"description\": \"d\", \"guest\": {}}") == f + "/guest: missing required key \"image\"");
  CHECK(error_of(d, with("\"limits\": {\"max_instructions\": 0}")) ==
        f + "/limits/max_instructions: must be an integer from 1 to 9007199254740992, got 0");
  CHECK(error_of(d, with("\"expect\": {\"stop\": \"crashed\"}")) ==
        f + "/expect/stop: must be one of \"exit\", \"finished\", \"shutdown\", \"deadlock\", \"limit\", \"unhandled_io\", \"unsupported\", \"point\", got \"crashed\"");
  CHECK(error_of(d, with("\"expect\": {\"exit_status\": 256}")) ==
        f + "/expect/exit_status: must be an integer from 0 to 255, got 256");
  CHECK(error_of(d, with("\"expect\": {\"console_contains\": [\"a\", 3]}")) ==
        f + "/expect/console_contains/1: must be a string, got 3");
  CHECK(error_of(d, with("\"expect\": {\"registers\": [{\"vcpu\": 1, \"reg\": \"rax\", \"value\": \"0x0\"}]}")) ==
        f + "/expect/registers/0/vcpu: must be an integer from 0 to 0, got 1");
  CHECK(error_of(d, with("\"expect\": {\"registers\": [{\"vcpu\": 0, \"reg\": \"eax\", \"value\": \"0x0\"}]}")) ==
        f + "/expect/registers/0/reg: unknown register \"eax\" (rax..r15, rip, rflags, cr0, cr2, cr3, cr4, cr8, efer)");
  CHECK(error_of(d, with("\"expect\": {\"registers\": [{\"vcpu\": 0, \"reg\": \"rax\"}]}")) ==
        f + "/expect/registers/0: missing required key \"value\"");
  CHECK(error_of(d, with("\"expect\": {\"msrs\": [{\"vcpu\": 0, \"msr\": \"0x10\", \"value\": 18014398509481984}]}")) ==
        f + "/expect/msrs/0/value: integer 18014398509481984 does not fit in 53 bits; write it as a hex string");
  CHECK(error_of(d, with("\"expect\": {\"msrs\": [{\"vcpu\": 0, \"msr\": \"0x10\", \"value\": 1, \"x\": 1}]}")) ==
        f + "/expect/msrs/0/x: unknown key (allowed here: vcpu, msr, value)");
  CHECK(error_of(d, with("\"expect\": {\"trace_hash\": 5}")) ==
        f + "/expect/trace_hash: must be a hex string like \"0x0123456789abcdef\", got 5");
  // JSON Pointer escaping of odd key names (RFC 6901).
  CHECK(error_of(d, with("\"a/b~c\": 1")) ==
        f + "/a~1b~0c: unknown key (allowed here: name, description, seed, machine, host, guest, limits, expect, schedule, explore)");
}

TEST_CASE("load_scenario reads files and names unreadable ones", "[scenario]") {
  const fs::path good = fs::path(PVSIM_TEST_DATA_DIR) / "good" / "good-flat.json";
  Scenario s = load_scenario(good);
  CHECK(s.name == "good-flat");
  CHECK(s.machine.ram_mib == 4);
  CHECK(s.expect.console == std::string("hi\n"));
  try {
    load_scenario("/nonexistent/x.json");
    FAIL("no error");
  } catch (const ScenarioError& e) {
    CHECK(std::string(e.what()) == "/nonexistent/x.json: cannot open scenario file: No such file or directory");
  }
  const fs::path bad = fs::path(PVSIM_TEST_DATA_DIR) / "bad" / "bad-vcpus.json";
  try {
    load_scenario(bad);
    FAIL("no error");
  } catch (const ScenarioError& e) {
    CHECK(std::string(e.what()) == bad.string() + ": /machine/vcpus: must be an integer from 1 to 64, got 0");
  }
}

TEST_CASE("parse_u64_string", "[scenario]") {
  CHECK(parse_u64_string("0x0") == 0u);
  CHECK(parse_u64_string("0XfF") == 0xffu);
  CHECK(parse_u64_string("18446744073709551615") == ~0ull);
  CHECK_FALSE(parse_u64_string("18446744073709551616"));
  CHECK_FALSE(parse_u64_string("0x"));
  CHECK_FALSE(parse_u64_string(""));
  CHECK_FALSE(parse_u64_string("-1"));
  CHECK_FALSE(parse_u64_string("1 "));
}

// machine.kvm.bugs (pvmsr/README.md §2.5): the profile's defaults, then the scenario's own.
TEST_CASE("machine.kvm.bugs resolves against the profile's defaults", "[scenario]") {
  Dir d;
  const auto bugs = [&](const std::string& kvm) {
    return parse_scenario("{\"description\": \"x\", \"machine\": {\"kvm\": " + kvm + "}, " + kGuest + "}", d.file())
        .machine.kvm.bugs;
  };
  const KvmBugs modern = bugs("{}");
  for (const KvmBugInfo& b : kvm_bug_table()) CHECK_FALSE(modern.*b.flag);
  const KvmBugs orig = bugs(R"({"abi": "orig"})");
  for (const KvmBugInfo& b : kvm_bug_table()) CHECK(orig.*b.flag == (b.in_orig && b.orig_default));
  CHECK(orig.steal_time_write_back);
  const KvmBugs fixed = bugs(R"({"abi": "orig", "bugs": {"steal_time_write_back": false, "apf_ready_on_pending_pf": true}})");
  CHECK_FALSE(fixed.steal_time_write_back);
  CHECK(fixed.apf_ready_on_pending_pf);
  CHECK(fixed.kvmclock_even_version_copy);  // untouched: the profile's default
  const KvmBugs listed = bugs(R"({"bugs": ["apf_token_zero", "apf_ready_lost_lapic_disabled"]})");
  CHECK(listed.apf_token_zero);
  CHECK(listed.apf_ready_lost_lapic_disabled);
  CHECK_FALSE(listed.apf_pg_toggle_drops_work);
  // The key order in the file does not matter: "bugs" before "abi" still resolves against orig.
  CHECK_FALSE(bugs(R"({"bugs": {"steal_time_write_back": false}, "abi": "orig"})").steal_time_write_back);
  CHECK(error_of(d, "{\"description\": \"x\", \"machine\": {\"kvm\": {\"bugs\": [\"apf_token_zero\"], \"abi\": \"orig\"}}, " +
                        kGuest + "}") ==
        d.file().string() + ": /machine/kvm/bugs/0: \"apf_token_zero\" is a bug of the modern profile (machine.kvm.abi \"modern\"); "
        "this scenario uses \"orig\"");
}

// The explore section goes through the option parsers: same spec as the command line's.
TEST_CASE("explore section: spec and counts", "[scenario]") {
  Dir d;
  const Scenario s = parse_scenario(
      "{\"description\": \"x\", \"machine\": {\"vcpus\": 3}, " + kGuest +
          R"(, "explore": {"window": "v1.insn=10..19", "interleave": "v0,v2", "bound": 2,
              "outcome": ["stop", "reg:v2.rax"], "expect": {"failing": 3, "groups": 2}}})",
      d.file());
  REQUIRE(s.explore);
  const ExploreSpec& x = s.explore->spec;
  CHECK(x.vary == ExploreSpec::Vary::Interleave);
  CHECK(x.vcpu == 1);
  CHECK(x.from == 10);
  CHECK(x.to == 19);
  CHECK(x.vcpus == std::vector<unsigned>{0, 2});
  CHECK(x.bound == 2);
  CHECK(x.outcome == std::vector<std::string>{"stop", "reg:v2.rax"});
  CHECK(s.explore->expect.failing == 3u);
  CHECK(s.explore->expect.groups == 2u);
  CHECK_FALSE(s.explore->expect.variants);
  const Scenario p = parse_scenario("{\"description\": \"x\", \"seed\": 77, \"machine\": {\"vcpus\": 2}, " + kGuest +
                                        R"(, "explore": {"window": "v0.insn=1..5", "pct": 40, "depth": 3}})",
                                    d.file());
  REQUIRE(p.explore);
  CHECK(p.explore->spec.vary == ExploreSpec::Vary::Pct);
  CHECK(p.explore->spec.seed == 77);
  CHECK(p.explore->spec.schedules == 40);
  CHECK(p.explore->spec.depth == 3);
  CHECK(p.explore->spec.vcpus == std::vector<unsigned>{0, 1});
  CHECK(p.explore->spec.outcome == std::vector<std::string>{"stop", "exit"});
}
