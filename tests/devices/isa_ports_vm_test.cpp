// Whole-VM tests of the ports kvm-unit-tests expects of QEMU's pc machine
// (scenarios/guest/boot.md §4): hand-assembled flat guests print through the 16550A UART,
// read fw_cfg and power off through port 0x8900.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "tests/platform/vm_helpers.h"
#include "tools/platform/platform.h"

using namespace pvsim;
using test::FlatScenario;
using test::cat;

namespace {
std::vector<uint8_t> bytes(const std::string& s) { return {s.begin(), s.end()}; }
}  // namespace

TEST_CASE("16550A in a VM: polled output joins the debug console's stream", "[uart][vm]") {
  const std::vector<uint8_t> code = cat({
      {0x66, 0xba, 0xfb, 0x03},  // 00 mov dx, 0x3fb (LCR)
      {0xb0, 0x83, 0xee},        // 04 mov al, 0x83; out dx, al (DLAB on)
      {0x66, 0xba, 0xf8, 0x03},  // 07 mov dx, 0x3f8
      {0xb0, 'X', 0xee},         // 0b mov al, 'X'; out dx, al (DLL, not a character)
      {0x66, 0xba, 0xfb, 0x03},  // 0e mov dx, 0x3fb
      {0xb0, 0x03, 0xee},        // 12 mov al, 3; out dx, al (8N1, DLAB off)
      {0x66, 0xba, 0xff, 0x03},  // 15 mov dx, 0x3ff (SCR)
      {0xb0, 0x5a, 0xee},        // 19 mov al, 0x5a; out dx, al
      {0xec, 0x3c, 0x5a},        // 1c in al, dx; cmp al, 0x5a
      {0x75, 0x29},              // 1f jne fail
      {0xb0, '[', 0xe6, 0xe9},   // 21 mov al, '['; out 0xe9, al (the debug console)
      {0x48, 0x8d, 0x35, 0x23, 0, 0, 0},  // 25 lea rsi, [rip + msg]
      {0x66, 0xba, 0xfd, 0x03},  // 2c next: mov dx, 0x3fd (LSR)
      {0xec, 0xa8, 0x20},        // 30 wait: in al, dx; test al, 0x20 (THRE)
      {0x74, 0xfb},              // 33 jz wait
      {0xac, 0x84, 0xc0},        // 35 lodsb; test al, al
      {0x74, 0x07},              // 38 jz done
      {0x66, 0xba, 0xf8, 0x03},  // 3a mov dx, 0x3f8 (THR)
      {0xee, 0xeb, 0xeb},        // 3e out dx, al; jmp next
      {0xb0, ']', 0xe6, 0xe9},   // 41 done: mov al, ']'; out 0xe9, al
      {0xb0, 0x00, 0xe6, 0xf4, 0xf4},  // 45 mov al, 0; out 0xf4, al; hlt
      {0xb0, 0x55, 0xe6, 0xf4, 0xf4},  // 4a fail: mov al, 0x55; out 0xf4, al; hlt
      bytes(std::string("uart says hi\n") + '\0'),  // 4f msg
  });
  FlatScenario f(code);
  f.s.expect.console = "[uart says hi\n]";
  const RunReport r = run_scenario(f.s);
  CHECK(r.stop == RunStop::Exit);
  CHECK(r.exit_status == uint8_t{1});
  CHECK(r.console == "[uart says hi\n]");
  CHECK(r.console_bytes == 15);
  CHECK(r.expectation_failures.empty());
}

TEST_CASE("16550A in a VM: UART bytes count against limits.max_console_bytes", "[uart][vm]") {
  // mov dx, 0x3f8; mov al, 'u'; out dx, al; jmp $-3 (prints forever)
  FlatScenario f({0x66, 0xba, 0xf8, 0x03, 0xb0, 'u', 0xee, 0xeb, 0xfd});
  f.s.limits.max_console_bytes = 10;
  const RunReport r = run_scenario(f.s);
  CHECK(r.stop == RunStop::Limit);
  CHECK(r.console == std::string(10, 'u'));
}

namespace {
// vCPU 0 checks the signature (then 0 past its end) and exits with status (count << 1) | 1;
// the other vCPUs finish at once.
const std::vector<uint8_t> kFwCfgGuest = {
    0xb8, 0x01, 0x00, 0x00, 0x00,  // 00 mov eax, 1
    0x0f, 0xa2,                    // 05 cpuid
    0xc1, 0xeb, 0x18,              // 07 shr ebx, 24 (initial APIC ID)
    0x74, 0x03,                    // 0a jz bsp
    0xe6, 0xf5, 0xf4,              // 0c out 0xf5, al; hlt (the APs are done)
    0x66, 0xba, 0x10, 0x05,        // 0f bsp: mov dx, 0x510
    0x31, 0xc0,                    // 13 xor eax, eax
    0x66, 0xef,                    // 15 out dx, ax (select FW_CFG_SIGNATURE)
    0x66, 0xff, 0xc2,              // 17 inc dx (0x511)
    0xec, 0x3c, 'Q', 0x75, 0x2d,   // 1a in al, dx; cmp al, 'Q'; jne fail
    0xec, 0x3c, 'E', 0x75, 0x28,   // 1f
    0xec, 0x3c, 'M', 0x75, 0x23,   // 24
    0xec, 0x3c, 'U', 0x75, 0x1e,   // 29
    0xec, 0x3c, 0x00, 0x75, 0x19,  // 2e past the end: 0
    0x66, 0xff, 0xca,              // 33 dec dx
    0x66, 0xb8, 0x05, 0x00,        // 36 mov ax, 5 (FW_CFG_NB_CPUS)
    0x66, 0xef,                    // 3a out dx, ax
    0x66, 0xff, 0xc2,              // 3c inc dx
    0xec, 0x88, 0xc3,              // 3f in al, dx; mov bl, al
    0xec, 0x3c, 0x00, 0x75, 0x05,  // 42 in al, dx; cmp al, 0; jne fail (high byte)
    0x88, 0xd8,                    // 47 mov al, bl
    0xe6, 0xf4, 0xf4,              // 49 out 0xf4, al; hlt: status (count << 1) | 1
    0xb0, 0x55, 0xe6, 0xf4, 0xf4,  // 4c fail: mov al, 0x55; out 0xf4, al; hlt
};
}  // namespace

TEST_CASE("fw_cfg in a VM: the signature and the CPU count of a 3-vCPU machine", "[fw_cfg][vm]") {
  FlatScenario f(kFwCfgGuest, 3);
  const RunReport r = run_scenario(f.s);
  CHECK(r.stop == RunStop::Exit);
  CHECK(r.stop_vcpu == 0);
  CHECK(r.exit_status == uint8_t{(3 << 1) | 1});
}

TEST_CASE("fw_cfg in a VM: the selection and offset are part of a platform snapshot", "[fw_cfg][vm]") {
  FlatScenario f(kFwCfgGuest, 1);
  f.s.machine.quantum = 1;
  Platform p(f.s, PlatformOptions{});
  // After 9 instructions vCPU 0 has selected the signature and read its 'Q'.
  REQUIRE(p.run_to(Platform::StopPoint{Platform::StopPoint::Kind::Insn, 0, 9}));
  const auto snap = p.save();
  CHECK(p.run().exit_status == uint8_t{3});  // ended with FW_CFG_NB_CPUS selected
  p.restore(*snap);
  CHECK(p.run().exit_status == uint8_t{3});  // reads 'E' next again, not the old item's end
}

namespace {
// lea rsi, [rip + data]; mov dx, 0x8900; mov ecx, len; rep outsb;
// mov al, 0x55; out 0xf4, al; hlt; data
RunReport write_8900(const std::string& data) {
  const auto len = static_cast<uint8_t>(data.size());
  const std::vector<uint8_t> code = cat({
      {0x48, 0x8d, 0x35, 0x10, 0, 0, 0},  // 00 lea rsi, [rip + 0x10] (-> 0x17)
      {0x66, 0xba, 0x00, 0x89},           // 07 mov dx, 0x8900
      {0xb9, len, 0, 0, 0},               // 0b mov ecx, len
      {0xf3, 0x6e},                       // 10 rep outsb
      {0xb0, 0x55, 0xe6, 0xf4, 0xf4},     // 12 mov al, 0x55; out 0xf4, al; hlt
      bytes(data),                        // 17
  });
  FlatScenario f(code);
  return run_scenario(f.s);
}
}  // namespace

TEST_CASE("0x8900 in a VM: \"Shutdown\" powers off with stop exit and status 0", "[poweroff][vm]") {
  const RunReport r = write_8900("S!Shutdown");
  CHECK(r.stop == RunStop::Exit);
  CHECK(r.exit_status == uint8_t{0});
  CHECK(r.stop_detail == "vCPU 0 powered off (\"Shutdown\" to port 0x8900)");
}

TEST_CASE("0x8900 in a VM: a broken sequence does not power off", "[poweroff][vm]") {
  const RunReport r = write_8900("SShutdown!Shutdow");
  CHECK(r.stop == RunStop::Exit);
  CHECK(r.exit_status == uint8_t{0xab});  // the guest went on to port 0xf4 with 0x55
  CHECK(r.stop_detail == "vCPU 0 wrote port 0xf4");
}

TEST_CASE("pc-testdev in a VM: scratch at 0xe0 and the IRQ ports are claimed", "[testdev][vm]") {
  const std::vector<uint8_t> code = {
      0xb8, 0x78, 0x56, 0x34, 0x12,  // mov eax, 0x12345678
      0xe7, 0xe0,                    // out 0xe0, eax
      0x31, 0xc0,                    // xor eax, eax
      0x66, 0xe5, 0xe2,              // in ax, 0xe2: 0x1234
      0x89, 0xc3,                    // mov ebx, eax
      0x66, 0xba, 0x0b, 0x20,        // mov dx, 0x200b (IRQ 11)
      0xb0, 0x01, 0xee,              // mov al, 1; out dx, al
      0xe7, 0xe4,                    // out 0xe4, eax (flush)
      0x88, 0xd8,                    // mov al, bl (0x34)
      0xe6, 0xf4, 0xf4,              // out 0xf4, al; hlt
  };
  FlatScenario f(code);
  const RunReport r = run_scenario(f.s);
  CHECK(r.stop == RunStop::Exit);
  CHECK(r.exit_status == uint8_t{(0x34 << 1 | 1) & 0xff});
}
