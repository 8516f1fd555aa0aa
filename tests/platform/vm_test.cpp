// Whole-VM behaviour with hand-assembled flat images: devices, stop reasons, scheduler,
// limits, expectations.
#include <catch2/catch.hpp>
#include <algorithm>
#include <sstream>

#include "core/vcpu.h"
#include "tests/platform/vm_helpers.h"
#include "tools/platform/platform.h"

using namespace pvsim;
using test::FlatScenario;
using test::cat;

namespace {
// Byte strings of the instructions used below (64-bit mode).
std::vector<uint8_t> out_imm(uint8_t port) { return {0xe6, port}; }  // out imm8, al
std::vector<uint8_t> mov_al(uint8_t v) { return {0xb0, v}; }
const std::vector<uint8_t> kHlt = {0xf4};
const std::vector<uint8_t> kHello =
    cat({mov_al('h'), out_imm(0xe9), mov_al('i'), out_imm(0xe9), mov_al('\n'), out_imm(0xe9), mov_al(0),
         out_imm(0xf4), kHlt});
}  // namespace

TEST_CASE("hello: debug console and exit port", "[vm]") {
  FlatScenario f(kHello);
  f.s.expect.stop = RunStop::Exit;
  f.s.expect.exit_status = 1;
  f.s.expect.console = "hi\n";
  std::ostringstream live, text;
  PlatformOptions o;
  o.console_live = &live;
  o.trace_text = &text;
  RunReport r = run_scenario(f.s, o);
  CHECK(r.stop == RunStop::Exit);
  CHECK(r.exit_status == uint8_t{1});
  CHECK(r.console == "hi\n");
  CHECK(live.str() == "hi\n");
  CHECK(r.instructions == 8);
  CHECK(r.expectations_given);
  CHECK(r.expectation_failures.empty());
  CHECK(r.success());
  CHECK(r.trace_events > 0);
  CHECK(text.str().find("kvm_pio: pio_write at 0xe9 size 1 count 1 val 0x68 \n") != std::string::npos);
  CHECK(text.str().find("pvsim_stop: reason exit: vCPU 0 wrote port 0xf4\n") != std::string::npos);
}

TEST_CASE("exit status is ((v << 1) | 1) & 0xff, and in 0xe9 reads 0xe9", "[vm]") {
  // in al, 0xe9; out 0xf4, al  →  ((0xe9 << 1) | 1) & 0xff = 0xd3
  FlatScenario f(cat({{0xe4, 0xe9}, out_imm(0xf4), kHlt}));
  RunReport r = run_scenario(f.s);
  CHECK(r.stop == RunStop::Exit);
  CHECK(r.exit_status == uint8_t{0xd3});
}

TEST_CASE("rep outsb writes each byte, outl writes the low byte", "[vm]") {
  // movabs rsi, 0x100100; mov ecx, 3; mov dx, 0xe9; rep outsb; mov eax, 0x4142; out 0xe9, eax; exit
  std::vector<uint8_t> code = cat({{0x48, 0xbe, 0x00, 0x01, 0x10, 0, 0, 0, 0, 0},
                                   {0xb9, 3, 0, 0, 0},
                                   {0x66, 0xba, 0xe9, 0x00},
                                   {0xf3, 0x6e},
                                   {0xb8, 0x42, 0x41, 0, 0},
                                   {0xe7, 0xe9},
                                   mov_al(0), out_imm(0xf4), kHlt});
  code.resize(0x100, 0x90);
  code.insert(code.end(), {'a', 'b', 'c'});
  FlatScenario f(code);
  RunReport r = run_scenario(f.s);
  CHECK(r.stop == RunStop::Exit);
  CHECK(r.console == "abcB");
}

TEST_CASE("all vCPUs writing 0xf5 end the VM with status 0, scheduler order", "[vm]") {
  // mov eax, edi; add al, '0'; out 0xe9, al; out 0xf5, al; hlt
  const auto code = cat({{0x89, 0xf8}, {0x04, 0x30}, out_imm(0xe9), out_imm(0xf5), kHlt});
  SECTION("a quantum longer than the program: each vCPU runs to its end in one turn") {
    // All start at time 0: ties go to the lowest index, so the order is 0, 1, 2
    // whatever the cost model says.
    FlatScenario f(code, 3);
    RunReport r = run_scenario(f.s);
    CHECK(r.stop == RunStop::Finished);
    CHECK(r.exit_status == uint8_t{0});
    CHECK(r.console == "012");
    REQUIRE(r.vcpus.size() == 3);
    for (auto& v : r.vcpus) CHECK(v.instructions == 4);
    CHECK(r.success());
  }
  SECTION("quantum 1: interleaved by local time, same order on every run") {
    // vCPU 0 takes the first-touch EPT exits for the shared code page, so it falls
    // behind the others in virtual time; the order depends on costs, but not on chance.
    FlatScenario f(code, 3);
    f.s.machine.quantum = 1;
    RunReport a = run_scenario(f.s), b = run_scenario(f.s);
    std::string sorted = a.console;
    std::sort(sorted.begin(), sorted.end());
    CHECK(sorted == "012");
    CHECK(a.console == b.console);
    CHECK(a.trace_hash == b.trace_hash);
    CHECK(a.stop == RunStop::Finished);
  }
}

TEST_CASE("hlt with IF=0 and nothing pending is a deadlock naming each vCPU", "[vm]") {
  // test edi, edi; jne +2; out 0xf5, al; hlt  — vCPU 0 finishes, vCPU 1 halts with IF=0.
  std::vector<uint8_t> code = cat({{0x85, 0xff}, {0x75, 0x02}, out_imm(0xf5), kHlt});
  FlatScenario g(code, 2);
  RunReport r = run_scenario(g.s);
  CHECK(r.stop == RunStop::Deadlock);
  CHECK_FALSE(r.exit_status);
  CHECK(r.stop_detail.find("vCPU 0 finished") != std::string::npos);
  CHECK(r.stop_detail.find("vCPU 1 halted at rip 0x10000") != std::string::npos);
  CHECK_FALSE(r.success());
}

TEST_CASE("an exception before the guest has an IDT is a triple fault: shutdown", "[vm]") {
  FlatScenario f({0x0f, 0x0b});  // ud2
  RunReport r = run_scenario(f.s);
  CHECK(r.stop == RunStop::Shutdown);
  CHECK_FALSE(r.stop_detail.empty());
  CHECK_FALSE(r.stop_dump.empty());
  CHECK_FALSE(r.success());
}

TEST_CASE("unclaimed ports end the run unless ignored", "[vm]") {
  const auto code = cat({out_imm(0x80), {0xe4, 0x81}, out_imm(0xf4), kHlt});  // out 0x80; in al,0x81; exit(al)
  FlatScenario f(code);
  RunReport r = run_scenario(f.s);
  CHECK(r.stop == RunStop::UnhandledIo);
  CHECK(r.stop_detail.find("0x80") != std::string::npos);
  FlatScenario g(code);
  g.s.machine.ignore_unhandled_io = true;
  RunReport r2 = run_scenario(g.s);
  CHECK(r2.stop == RunStop::Exit);
  CHECK(r2.exit_status == uint8_t{0xff});  // al = 0xff from the floating bus
}

TEST_CASE("reads of unmapped guest-physical memory are unhandled I/O", "[vm]") {
  // mov eax, [0xfed00000]  (where an HPET would be; nothing there) via moffs: a1 imm64
  FlatScenario f({0xa1, 0x00, 0x00, 0xd0, 0xfe, 0, 0, 0, 0, 0xf4});
  RunReport r = run_scenario(f.s);
  CHECK(r.stop == RunStop::UnhandledIo);
  CHECK(r.stop_detail.find("0xfed00000") != std::string::npos);
}

TEST_CASE("the xAPIC page answers at IA32_APIC_BASE", "[vm]") {
  // mov eax, [0xfee00030] (LAPIC version register); hlt with IF=0 ends in a deadlock.
  FlatScenario f({0xa1, 0x30, 0x00, 0xe0, 0xfe, 0, 0, 0, 0, 0xf4});
  Platform p(f.s);
  RunReport r = p.run();
  CHECK(r.stop == RunStop::Deadlock);
  CHECK(p.vcpu(0).gpr(0) == 0x50014);  // scenarios/guest/boot.md §3: version 0x50014
}

TEST_CASE("limits: max_instructions and max_virtual_ms", "[vm]") {
  FlatScenario f({0xeb, 0xfe});  // jmp $
  f.s.limits.max_instructions = 12345;
  f.s.machine.quantum = 1000;
  RunReport r = run_scenario(f.s);
  CHECK(r.stop == RunStop::Limit);
  CHECK(r.instructions == 12345);
  CHECK(r.stop_detail == "max_instructions (12345) reached");

  FlatScenario g({0xeb, 0xfe});
  g.s.limits.max_instructions = 1'000'000'000;
  g.s.limits.max_virtual_ms = 1;
  RunReport r2 = run_scenario(g.s);
  CHECK(r2.stop == RunStop::Limit);
  CHECK(r2.stop_detail == "max_virtual_ms (1 ms) reached");
  CHECK(r2.virtual_ns >= 1'000'000);
  CHECK(r2.virtual_ns < 1'100'000);
}

TEST_CASE("CPUID goes through the platform table (KVM signature)", "[vm]") {
  // mov eax, 0x40000000; cpuid; mov eax, ebx; out 0xe9, al; shr eax, 8; out 0xe9, al; exit
  FlatScenario f(cat({{0xb8, 0, 0, 0, 0x40}, {0x0f, 0xa2}, {0x89, 0xd8}, out_imm(0xe9), {0xc1, 0xe8, 8},
                      out_imm(0xe9), mov_al(0), out_imm(0xf4), kHlt}));
  std::ostringstream text;
  PlatformOptions o;
  o.trace_text = &text;
  RunReport r = run_scenario(f.s, o);
  CHECK(r.console == "KV");
  CHECK(text.str().find("kvm_cpuid: func 40000000 idx 0 rax 40000001 rbx 4b4d564b rcx 564b4d56 rdx 4d, cpuid entry found") !=
        std::string::npos);
}

TEST_CASE("expectation failures are one line each with the actual value", "[vm]") {
  FlatScenario f(kHello);
  f.s.expect.stop = RunStop::Finished;
  f.s.expect.exit_status = 3;
  f.s.expect.console = "ho\n";
  f.s.expect.console_contains = {"hi", "bye"};
  f.s.expect.console_excludes = {"i"};
  f.s.expect.registers = {RegisterExpect{0, "rax", 0}, RegisterExpect{0, "cr3", 0x10000}};
  f.s.expect.msrs = {MsrExpect{0, 0x4b564d05, 0}, MsrExpect{0, 0xdeadbeef, 0}};
  f.s.expect.trace_hash = 0;
  RunReport r = run_scenario(f.s);
  REQUIRE(r.expectation_failures.size() == 8);
  CHECK(r.expectation_failures[0] == "expect.stop: expected \"finished\", got \"exit\" (vCPU 0 wrote port 0xf4)");
  CHECK(r.expectation_failures[1] == "expect.exit_status: expected 3, got 1");
  CHECK(r.expectation_failures[2] == "expect.console: expected \"ho\\n\", got \"hi\\n\"");
  CHECK(r.expectation_failures[3] == "expect.console_contains[1]: \"bye\" does not occur in the console output");
  CHECK(r.expectation_failures[4] == "expect.console_excludes[0]: \"i\" occurs in the console output at byte 1");
  // rax is 0 (al = 0 before the exit) and cr3 is 0x10000: both met.
  CHECK(r.expectation_failures[5] == "expect.msrs[0]: vCPU 0 MSR 0x4b564d05 expected 0x0, got 0x1");
  CHECK(r.expectation_failures[6] == "expect.msrs[1]: vCPU 0 MSR 0xdeadbeef expected 0x0, but reading it raises #GP");
  CHECK(r.expectation_failures[7].rfind("expect.trace_hash: expected 0000000000000000, got ", 0) == 0);
  CHECK_FALSE(r.success());
}

TEST_CASE("a bad image becomes a ScenarioError naming /guest/image", "[vm]") {
  FlatScenario f({0x7f, 'E', 'L', 'F', 2});
  f.s.guest.format = ImageFormat::Auto;
  try {
    Platform p(f.s);
    FAIL("no error");
  } catch (const ScenarioError& e) {
    CHECK(std::string(e.what()) == "test.json: /guest/image: " + f.image.string() + ": truncated ELF header");
  }
}

TEST_CASE("two platforms in one process do not interfere", "[vm]") {
  FlatScenario f(kHello);
  Platform a(f.s), b(f.s);
  RunReport ra = a.run();
  RunReport rb = b.run();
  CHECK(ra.console == "hi\n");
  CHECK(rb.console == "hi\n");
  CHECK(ra.trace_hash == rb.trace_hash);
}
