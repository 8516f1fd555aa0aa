// Unit tests of tools/platform/inspect.h: the --dump, --dump-vcpu and --stop-at parsers
// (exact one-line messages with positions) and the JUnit/TAP reports.
#include <fmt/format.h>

#include <catch2/catch.hpp>

#include "tools/platform/inspect.h"
#include "tools/platform/platform.h"

using namespace pvsim;

namespace {
std::string dump_error(std::string_view text) {
  try {
    parse_dump(text, "--dump");
  } catch (const InspectError& e) {
    return e.what();
  }
  return "no error";
}
std::string vcpu_error(std::string_view text, unsigned n) {
  try {
    parse_vcpu_selection(text, "--dump-vcpu", n);
  } catch (const InspectError& e) {
    return e.what();
  }
  return "no error";
}
std::string stop_error(std::string_view text) {
  try {
    parse_stop_at(text, "--stop-at");
  } catch (const InspectError& e) {
    return e.what();
  }
  return "no error";
}
}  // namespace

TEST_CASE("dump items and ranges", "[inspect]") {
  DumpSpec d = parse_dump("regs,pv", "--dump");
  CHECK(d.regs);
  CHECK(d.pv);
  CHECK_FALSE(d.msrs);
  CHECK_FALSE(d.lapic);
  d = parse_dump("all", "--dump");
  CHECK((d.regs && d.msrs && d.lapic && d.pv));
  d = parse_dump("mem=0x1000+64,mem=4096..0x1010,mem=0x0+4K", "--dump");
  REQUIRE(d.mem.size() == 3);
  CHECK(d.mem[0].gpa == 0x1000);
  CHECK(d.mem[0].len == 64);
  CHECK(d.mem[1].gpa == 4096);
  CHECK(d.mem[1].len == 16);
  CHECK(d.mem[2].len == 4096);
  CHECK(parse_dump("mem=0+1M", "--dump").mem[0].len == (1u << 20));
}

TEST_CASE("dump errors name the position", "[inspect]") {
  CHECK(dump_error("") == "--dump: position 1: empty (expected regs, msrs, lapic, pv, all or mem=GPA+LEN, comma-separated)");
  CHECK(dump_error("regs,cpu") ==
        "--dump: position 6: unknown item \"cpu\" (expected regs, msrs, lapic, pv, all or mem=GPA+LEN)");
  CHECK(dump_error("regs,") == "--dump: position 5: a trailing comma");
  CHECK(dump_error("mem=0x") == "--dump: position 5: hex digits expected after 0x");
  CHECK(dump_error("mem=0x1000") == "--dump: position 11: expected +LEN or ..END after mem=GPA");
  CHECK(dump_error("mem=0x1000+0") == "--dump: position 1: an empty range");
  CHECK(dump_error("mem=0+2M") == "--dump: position 1: more than 1 MiB asked (mem= dumps at most 1M)");
  CHECK(dump_error("mem=0+1048577") == "--dump: position 1: more than 1 MiB asked (mem= dumps at most 1M)");
  CHECK(dump_error("mem=0x2000..0x1000") == "--dump: position 13: the end must be above the start (END is exclusive)");
  CHECK(dump_error("mem=0+16x") == "--dump: position 9: unexpected text after the range (items are separated by commas)");
  CHECK(dump_error("mem=99999999999999999999+1") == "--dump: position 5: number does not fit in 64 bits");
}

TEST_CASE("dump-vcpu selections", "[inspect]") {
  CHECK(parse_vcpu_selection("all", "--dump-vcpu", 3) == std::vector<unsigned>{0, 1, 2});
  CHECK(parse_vcpu_selection("2,0,v2", "--dump-vcpu", 3) == std::vector<unsigned>{0, 2});
  CHECK(vcpu_error("3", 3) == "--dump-vcpu: position 1: vCPU 3 does not exist (machine.vcpus is 3)");
  CHECK(vcpu_error("0;1", 3) == "--dump-vcpu: position 2: expected ',' between vCPU indices");
  CHECK(vcpu_error("", 3) == "--dump-vcpu: position 1: empty (expected all or vCPU indices such as 0,2)");
  CHECK(vcpu_error("x", 3) == "--dump-vcpu: position 1: a vCPU index expected");
}

TEST_CASE("stop-at takes one guest point", "[inspect]") {
  ScheduleEntry e = parse_stop_at("v1.insn=500", "--stop-at");
  CHECK(e.at.kind == GuestPoint::Kind::Insn);
  CHECK(e.at.vcpu == 1);
  CHECK(e.at.insn == 500);
  CHECK(e.action.kind == ActionKind::Stop);
  e = parse_stop_at("t=2ms", "--stop-at");
  CHECK(e.at.kind == GuestPoint::Kind::Time);
  CHECK(e.at.time_ns == 2'000'000);
  e = parse_stop_at("v0.rip=kvm_clock_read+4#3", "--stop-at");
  CHECK(e.at.symbol == "kvm_clock_read");
  CHECK(e.at.sym_offset == 4);
  CHECK(e.at.hit == 3);
  CHECK(stop_error("t=1ms: stop") ==
        "--stop-at: position 6: a guest point only (vN.insn=COUNT, vN.rip=ADDRESS|SYMBOL[+OFF][#K] or t=TIME); the "
        "action is always stop");
  // The schedule parser's own message, with the option's name.
  CHECK(stop_error("v1.insm=5").rfind("--stop-at: position ", 0) == 0);
}

TEST_CASE("CI reports: one case per expectation, failures matched by name", "[inspect]") {
  Scenario s;
  s.name = fmt::format("{}", "demo<&>");
  s.file = "demo.json";
  s.expect.exit_status = 0;
  s.expect.registers.push_back(RegisterExpect{});
  s.expect.registers.push_back(RegisterExpect{});
  s.expect.trace_hash = 1;
  RunReport r;
  r.stop = RunStop::Exit;
  r.exit_status = 0;
  r.expectations_given = true;
  r.expectation_failures = {"expect.registers[1]: vCPU 0 rax expected 0x1, got 0x2"};
  const auto cases = case_results(s, r, true);
  REQUIRE(cases.size() == 5);
  CHECK(cases[0].name == "expect.exit_status");
  CHECK(cases[0].ok);
  CHECK(cases[1].name == "expect.registers[0]");
  CHECK(cases[1].ok);
  CHECK(cases[2].name == "expect.registers[1]");
  CHECK_FALSE(cases[2].ok);
  CHECK(cases[2].message == r.expectation_failures[0]);
  CHECK(cases[3].name == "expect.trace_hash");
  CHECK(cases[4].name == "run");
  CHECK_FALSE(cases[4].ok);  // an expectation failed, so the run's verdict is a failure too
  CHECK(case_results(s, r, false).size() == 4);  // without trace pins there is no trace_hash case

  const std::string x = junit_report(s, r, cases);
  CHECK(x.find("<testsuite name=\"demo&lt;&amp;&gt;\" tests=\"5\" failures=\"2\"") != std::string::npos);
  CHECK(x.find("<failure message=\"expect.registers[1]: vCPU 0 rax expected 0x1, got 0x2\">") != std::string::npos);
  CHECK(x.find("time=") == std::string::npos);  // deterministic: no host time
  const std::string t = tap_report(s, r, cases);
  CHECK(t.rfind("TAP version 13\n1..5\nok 1 - demo<&>: expect.exit_status\n", 0) == 0);
  CHECK(t.find("not ok 3 - demo<&>: expect.registers[1]\n  ---\n") != std::string::npos);
}

TEST_CASE("CI reports: a failure no expectation claims still fails the run case", "[inspect]") {
  Scenario s;
  // fmt::format, not a literal assignment: GCC 12 reports a bogus -Wrestrict for the latter.
  s.name = fmt::format("{}", "x");
  RunReport r;
  r.stop = RunStop::Exit;
  r.exit_status = 0;
  r.expectation_failures = {"something else: went wrong"};
  const auto cases = case_results(s, r, true);
  REQUIRE(cases.size() == 1);
  CHECK_FALSE(cases[0].ok);
  CHECK(cases[0].message.find("something else: went wrong") != std::string::npos);
}
