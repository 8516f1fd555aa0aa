// Scenario text that is valid JSON in spirit but hostile in fact: nesting without limit,
// numbers that overflow, duplicate keys, NULs and control characters in names. Each was
// once a crash, an internal error or silently accepted (the comments say which).
#include <catch2/catch.hpp>
#include <string>

#include "tests/platform/scenario_fixture.h"
#include "tools/platform/scenario.h"

using namespace pvsim;
using namespace pvsim::test;

namespace {
struct Dir : ScenarioDir {
  Dir() : ScenarioDir("scenario-edges") {}
};
}  // namespace

TEST_CASE("deep nesting is refused at a bounded depth, not by a stack overflow", "[scenario][edges]") {
  Dir d;
  const std::string f = d.file().string() + ": ";
  // 10^5 levels crashed validate (SIGSEGV while printing the value for the message).
  const std::string deep =
      "{\"description\": \"x\", \"vcpus\": " + std::string(100000, '[') + std::string(100000, ']') + "}";
  const std::string e = parse_error(d, deep);
  CHECK(e.rfind(f + "/vcpus/0/0/0/", 0) == 0);
  CHECK(e.find("nested deeper than 32 levels (at line 1, column 62)") != std::string::npos);
  CHECK(e.size() < 400);
  // Exactly at the bound is fine (and then fails for being the wrong type, shortly).
  std::string ok31 = "{\"description\": \"x\", " + kGuest + ", \"machine\": {\"vcpus\": " + std::string(30, '[') +
                     std::string(30, ']') + "}}";
  CHECK(parse_error(d, ok31).find("/machine/vcpus: must be an integer from 1 to 64, got [[[[") != std::string::npos);
  std::string bad33 = "{\"description\": \"x\", " + kGuest + ", \"machine\": {\"vcpus\": " + std::string(31, '[') +
                      std::string(31, ']') + "}}";
  CHECK(parse_error(d, bad33).find("nested deeper than 32 levels") != std::string::npos);
}

TEST_CASE("an object with very many keys is refused before it costs quadratic time", "[scenario][edges]") {
  Dir d;
  // 80 000 keys in one object took a minute to parse (a linear key lookup per insert).
  std::string many = "{\"description\": \"x\", \"machine\": {";
  for (int i = 0; i < 80000; ++i) many += "\"k" + std::to_string(i) + "\": 1,";
  many += "\"last\": 1}}";
  const std::string e = parse_error(d, many);
  CHECK(e == d.file().string() + ": /machine/k256: more than 256 keys in one object (at line 1, column 2484); no "
                                 "scenario needs that");
}

TEST_CASE("the 'got ...' part of a message is bounded", "[scenario][edges]") {
  Dir d;
  std::string wide = "[";
  for (int i = 0; i < 10000; ++i) wide += "{\"k\": [1, 2, 3]},";
  wide += "1]";
  const std::string e = parse_error(d, with("\"machine\": {\"vcpus\": " + wide + "}"));
  CHECK(e == d.file().string() + ": /machine/vcpus: must be an integer from 1 to 64, got "
                                 "[{\"k\":[1,2,3]},{\"k\":[1,2,3]},{\"k\":[1,2,3]},{\"k\":[1,2,3]},...");
}

TEST_CASE("number overflow is a scenario error with path and position", "[scenario][edges]") {
  Dir d;
  // It was an internal error (exit 1): nlohmann's out_of_range escaped.
  CHECK(parse_error(d, "{\"description\": \"x\", \"machine\": {\"vcpus\": 1e400}}") ==
        d.file().string() + ": /machine/vcpus: number 1e400 is out of range (at line 1, column 43)");
  CHECK(parse_error(d, "{\"seed\": [0, -1e999]}") ==
        d.file().string() + ": /seed/1: number -1e999 is out of range (at line 1, column 14)");
}

TEST_CASE("duplicate keys are refused, naming both", "[scenario][edges]") {
  Dir d;
  // {"vcpus":1,"vcpus":99}: the last one won silently.
  CHECK(parse_error(d, "{\"description\": \"x\",\n \"machine\": {\"vcpus\": 1,\n  \"vcpus\": 99}}") ==
        d.file().string() +
            ": /machine/vcpus: duplicate key \"vcpus\" at line 3, column 3 (first at line 2, column 14); a key may "
            "appear once per object");
  // Escaped quotes inside the key do not confuse the position.
  CHECK(parse_error(d, "{\"a\\\"b\": 1, \"a\\\"b\": 2}") ==
        d.file().string() + ": /a\"b: duplicate key \"a\\\"b\" at line 1, column 13 (first at line 1, column 2); a key "
                            "may appear once per object");
  // The same key in two different objects is fine.
  CHECK(parse_error(d, with("\"machine\": {\"kvm\": {\"abi\": \"orig\"}}, \"limits\": {\"max_virtual_ms\": 5}")) ==
        "(no error)");
}

TEST_CASE("NUL and control characters: refused or escaped, never raw", "[scenario][edges]") {
  Dir d;
  const std::string f = d.file().string() + ": ";
  // "hello.elf\u0000junk" booted hello.elf.
  CHECK(parse_error(d, "{\"description\": \"d\", \"guest\": {\"image\": \"img.bin\\u0000junk\"}}") ==
        f + "/guest/image: contains a NUL character, which no file name can: \"img.bin\\u0000junk\"");
  // Line breaks and ANSI escapes in keys, register and feature names produced multi-line
  // errors and reached the terminal.
  CHECK(parse_error(d, with("\"a\\nb\\u001b[31m\": 1")) ==
        f + "/a\\nb\\u001b[31m: unknown key (allowed here: name, description, seed, machine, host, guest, limits, "
            "expect, schedule, explore)");
  CHECK(parse_error(d, with("\"expect\": {\"registers\": [{\"vcpu\": 0, \"reg\": \"r\\r\\n\", \"value\": 1}]}")) ==
        f + "/expect/registers/0/reg: unknown register \"r\\r\\n\" (rax..r15, rip, rflags, cr0, cr2, cr3, cr4, cr8, "
            "efer)");
  CHECK(parse_error(d, with("\"machine\": {\"vcpus\": \"\\u009b2J\"}")) ==
        f + "/machine/vcpus: must be an integer from 1 to 64, got \"\\u009b2J\"");
  const std::string e = parse_error(d, "{\"description\": \"d\", \"guest\": {\"image\": \"x\\n\\u001b.bin\"}}");
  CHECK(e.find('\n') == std::string::npos);
  CHECK(e.find('\x1b') == std::string::npos);
  CHECK(e.find("image file not found: ") != std::string::npos);
  CHECK(e.find("x\\n\\u001b.bin") != std::string::npos);
  // Raw control characters in the JSON text itself are quoted escaped in the JSON error.
  const std::string j = parse_error(d, "{\"description\": \"a\x1b[2Jb\"}");
  CHECK(j.find('\x1b') == std::string::npos);
  CHECK(j.rfind(f + "invalid JSON: line 1, column ", 0) == 0);
}

TEST_CASE("output caps: limits.max_console_bytes and limits.max_trace_bytes", "[scenario][edges]") {
  Dir d;
  Scenario s = parse_scenario(with(""), d.file());
  CHECK(s.limits.max_console_bytes == 16ull << 20);
  CHECK(s.limits.max_trace_bytes == 1ull << 30);
  s = parse_scenario(with("\"limits\": {\"max_console_bytes\": 0, \"max_trace_bytes\": 4096}"), d.file());
  CHECK(s.limits.max_console_bytes == 0);
  CHECK(s.limits.max_trace_bytes == 4096);
  CHECK(parse_error(d, with("\"limits\": {\"max_trace_bytes\": -1}")) ==
        d.file().string() + ": /limits/max_trace_bytes: must be an integer from 0 to 9007199254740992, got -1");
}

TEST_CASE("trace expectations parse and are cited by the description", "[scenario][trace-expect]") {
  Dir d;
  const std::string f = d.file().string() + ": ";
  const auto sc = [&](const std::string& desc, const std::string& trace) {
    return "{\"description\": \"" + desc + "\", " + kGuest + ", \"machine\": {\"vcpus\": 2}, \"expect\": {\"trace\": " +
           trace + "}}";
  };
  Scenario s = parse_scenario(
      sc("The MSR write comes first [msr-first]; no NMI [no-nmi]; three entries [entries].",
         "[{\"name\": \"msr-first\", \"in_order\": [\"kvm_exit: *MSR_WRITE\", \"kvm_msr\"], \"consecutive\": true, "
         "\"vcpu\": 1}, {\"name\": \"no-nmi\", \"absent\": \"pvsim_inj_nmi\"}, {\"name\": \"entries\", \"count\": "
         "\"kvm_entry\", \"min\": 3, \"max\": 3}]"),
      d.file());
  REQUIRE(s.expect.trace.size() == 3);
  CHECK(s.expect.trace[0].kind == TraceExpect::Kind::InOrder);
  CHECK(s.expect.trace[0].consecutive);
  CHECK(s.expect.trace[0].vcpu == 1u);
  CHECK(s.expect.trace[0].patterns.size() == 2);
  CHECK(s.expect.trace[1].kind == TraceExpect::Kind::Absent);
  CHECK(s.expect.trace[2].kind == TraceExpect::Kind::Count);
  CHECK(s.expect.trace[2].min == 3);
  CHECK(s.expect.trace[2].max == 3);
  CHECK(s.expect.any());

  CHECK(parse_error(d, sc("no citation", "[{\"name\": \"a\", \"absent\": \"x\"}]")) ==
        f + "/expect/trace/0/name: \"a\" is not cited in /description; write [a] where the description makes the "
            "claim it checks");
  CHECK(parse_error(d, sc("cites [b]", "[{\"name\": \"a\", \"absent\": \"x\"}]")) ==
        f + "/description: cites [b], but /expect/trace has no entry named \"b\"");
  CHECK(parse_error(d, sc("[a]", "[{\"name\": \"a\"}]")) ==
        f + "/expect/trace/0: must have exactly one of \"in_order\", \"absent\" and \"count\"");
  CHECK(parse_error(d, sc("[a]", "[{\"name\": \"a\", \"absent\": \"x\", \"count\": \"y\"}]")) ==
        f + "/expect/trace/0: must have exactly one of \"in_order\", \"absent\" and \"count\"");
  CHECK(parse_error(d, sc("[a]", "[{\"name\": \"A b\", \"absent\": \"x\"}]")) ==
        f + "/expect/trace/0/name: must be lower-case letters, digits and '-', starting with a letter, at most 40 "
            "characters, got \"A b\"");
  CHECK(parse_error(d, sc("[a]", "[{\"name\": \"a\", \"absent\": \"x\"}, {\"name\": \"a\", \"absent\": \"y\"}]")) ==
        f + "/expect/trace/1/name: name \"a\" is already used at /expect/trace/0");
  CHECK(parse_error(d, sc("[a]", "[{\"name\": \"a\", \"in_order\": []}]")) ==
        f + "/expect/trace/0/in_order: must be a non-empty array of patterns, got []");
  CHECK(parse_error(d, sc("[a]", "[{\"name\": \"a\", \"in_order\": [\"x\\ny\"]}]")) ==
        f + "/expect/trace/0/in_order/0: a trace line has no line break, so this never matches: \"x\\ny\"");
  CHECK(parse_error(d, sc("[a]", "[{\"name\": \"a\", \"absent\": \"**\"}]")) ==
        f + "/expect/trace/0/absent: must contain more than wildcards");
  CHECK(parse_error(d, sc("[a]", "[{\"name\": \"a\", \"count\": \"x\"}]")) ==
        f + "/expect/trace/0: \"count\" needs \"min\", \"max\" or both");
  CHECK(parse_error(d, sc("[a]", "[{\"name\": \"a\", \"count\": \"x\", \"min\": 5, \"max\": 4}]")) ==
        f + "/expect/trace/0/max: must be an integer from 5 to 9007199254740992, got 4");
  CHECK(parse_error(d, sc("[a]", "[{\"name\": \"a\", \"absent\": \"x\", \"min\": 1}]")) ==
        f + "/expect/trace/0/min: only allowed with \"count\"");
  CHECK(parse_error(d, sc("[a]", "[{\"name\": \"a\", \"absent\": \"x\", \"consecutive\": true}]")) ==
        f + "/expect/trace/0/consecutive: only allowed with \"in_order\"");
  CHECK(parse_error(d, sc("[a]", "[{\"name\": \"a\", \"absent\": \"x\", \"vcpu\": 2}]")) ==
        f + "/expect/trace/0/vcpu: must be an integer from 0 to 1, got 2");
  // Brackets that are not citations stay prose: numbers, upper case, KVM's own words.
  CHECK(parse_error(d, sc("a [0x10] range, [IRQ] and [GP] [a]", "[{\"name\": \"a\", \"absent\": \"x\"}]")) ==
        "(no error)");
}

TEST_CASE("expect.golden_trace resolves against the scenario's directory", "[scenario][golden]") {
  Dir d;
  Scenario s = parse_scenario(with("\"expect\": {\"golden_trace\": \"golden/x.txt\"}"), d.file());
  REQUIRE(s.expect.golden_trace);
  CHECK(*s.expect.golden_trace == d.path / "golden" / "x.txt");
  CHECK(s.expect.golden_trace_as_written == "golden/x.txt");
  CHECK(parse_error(d, with("\"expect\": {\"golden_trace\": \"\"}")) ==
        d.file().string() + ": /expect/golden_trace: must not be empty");
}
