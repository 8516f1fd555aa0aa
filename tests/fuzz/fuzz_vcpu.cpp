// tests/fuzz/fuzz_vcpu.cpp — fuzz target: a bare vCPU running fuzzed code.
//
// Input: code bytes, placed at GPA 0x100f00 in a 2 MiB guest (so every input longer than
// 256 bytes runs across a page boundary) and followed by 4 KiB of HLT on the boot protocol's long-mode tables
// (tests/oracle/long_mode.h), with all 256 IDT gates leading back to the start of the
// code, so exceptions are delivered and handled by fuzzed code instead of ending in a
// triple fault at once. Every port and MMIO access is claimed (reads give all-ones), and
// ports 0xf4/0xf5 stop the vCPU as the platform's exit ports do — the same permissive
// platform as tests/robustness/test_garbage_guests.cpp. Each input runs for at most
// kSteps steps twice, on two fresh machines:
//   * once through run() — decoded blocks, threaded handlers, register forwarding and
//     fused compare-and-branch (core/README.md "Execution model");
//   * once single-stepped with step(), the per-instruction path the project's own tests
//     use as the oracle for the block path (tests/core/test_forwarding.cpp).
// Both must end with the same stop reason, instruction and cycle counts, registers,
// control registers, RAM and canonical trace, and the stop must be a clean one
// (never None or Deadline: there is no deadline here). Sanitizers check that no guest
// action reaches host memory outside the guest's RAM. Nothing is written outside RAM.
#include <cstddef>
#include <cstdint>
#include <algorithm>
#include <cstring>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "core/guest_memory.h"
#include "core/trace.h"
#include "tests/cpu_envs.h"
#include "core/vcpu.h"
#include "tests/fuzz/fuzz_check.h"
#include "tests/oracle/long_mode.h"

namespace {

using namespace pvsim;
using pvsim::test::PermissiveEnv;

constexpr uint64_t kRam = 2ull << 20;
constexpr uint64_t kCode = 0x100f00;
constexpr uint64_t kIdt = 0x16000;  // just above the boot page tables (long_mode.h)
constexpr uint64_t kSteps = 500;    // per run: a fuzzed loop costs at most this much
constexpr uint64_t kHltFill = 4096;


struct Machine {
  GuestMemory mem{kRam};
  PermissiveEnv env;
  Tracer tracer;
  std::ostringstream trace_text;  // for the report when the two traces differ
  Vcpu v{VcpuConfig{}, mem, env, tracer};

  Machine(const uint8_t* code, size_t size) {
    tracer.set_text_output(&trace_text);
    oracle::write_boot_tables(mem);
    // 64-bit interrupt gates (SDM Vol. 3A §6.14.1, Figure 6-8): selector 0x08, P=1, DPL=3
    // (so INT n from ring 3 code reaches them too), type 0xE, IST 0, offset = kCode.
    const uint64_t lo = (kCode & 0xffff) | (0x08ull << 16) | (0xeeull << 40) | (((kCode >> 16) & 0xffff) << 48);
    const uint64_t hi = kCode >> 32;
    for (unsigned vec = 0; vec < 256; ++vec) {
      mem.write_obj(Gpa(kIdt + vec * 16), lo);
      mem.write_obj(Gpa(kIdt + vec * 16 + 8), hi);
    }
    mem.write(Gpa(kCode), code, size);
    // HLT after the code: falling off the end of the input stops the run at once instead
    // of executing thousands of "add [rax], al" (00 00) steps through zeroed RAM.
    const std::vector<uint8_t> hlt(kHltFill, 0xf4);
    mem.write(Gpa(kCode + size), hlt.data(), std::min<uint64_t>(kHltFill, kRam - kCode - size));
    oracle::enter_long_mode(v);
    v.set_idtr(DescriptorTable{kIdt, 0xfff});
    // Registers point into RAM (above the code) so memory operands mostly hit RAM; RSP
    // in the boot stacks (0x20000-0x9ffff).
    for (unsigned r = 0; r < 16; ++r) v.set_gpr(r, 0x180000 + r * 0x1008);
    v.set_gpr(4, 0x80000);
    v.set_rflags(0x2);
    v.set_rip(kCode);
  }
};

struct Outcome {
  StopReason reason = StopReason::None;
  uint64_t executed = 0;
};

// The first line where two trace texts differ, for the failure message.
std::string first_difference(const std::string& a, const std::string& b) {
  std::istringstream sa(a), sb(b);
  std::string la, lb;
  for (unsigned n = 1;; ++n) {
    const bool ga = static_cast<bool>(std::getline(sa, la)), gb = static_cast<bool>(std::getline(sb, lb));
    if (!ga && !gb) return "no textual difference";
    if (!ga || !gb || la != lb)
      return fmt::format("line {}: block path \"{}\", single-stepping \"{}\"", n, ga ? la : "(end)", gb ? lb : "(end)");
  }
}

bool clean(StopReason r) {
  return r == StopReason::InsnLimit || r == StopReason::Halted || r == StopReason::VcpuFinished ||
         r == StopReason::VmExitRequested || r == StopReason::Shutdown || r == StopReason::IoError ||
         r == StopReason::Unsupported;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using pvsim::fuzz::fuzz_check;
  // Only what fits below the end of RAM; libFuzzer's -max_len keeps inputs far smaller.
  if (size > kRam - kCode) size = kRam - kCode;
  auto a = std::make_unique<Machine>(data, size);
  auto b = std::make_unique<Machine>(data, size);

  const Vcpu::RunResult ra = a->v.run(kSteps, Cycles(~0ull));
  Outcome ob;
  for (uint64_t n = 0; n < kSteps; ++n) {
    const Vcpu::RunResult r = b->v.step();
    ob.executed += r.executed;
    ob.reason = r.reason;
    if (r.reason != StopReason::InsnLimit) break;
  }

  fuzz_check(clean(ra.reason), "run() ended without a clean stop reason",
             fmt::format("reason {}", static_cast<int>(ra.reason)));
  fuzz_check(ra.executed <= kSteps, "run() executed more instructions than asked");
  fuzz_check(ra.executed == a->v.instructions(), "run()'s executed count differs from instructions()");
  if (ra.reason == StopReason::Shutdown || ra.reason == StopReason::IoError ||
      ra.reason == StopReason::Unsupported)
    fuzz_check(!a->v.stop_detail().empty(), "Shutdown/IoError/Unsupported without stop_detail()");
  (void)a->v.dump_state();

  // The block path against single-stepping.
  const std::string where = fmt::format("block path: reason {} after {}, rip {:#x}; single-stepping: reason {} after {}, rip {:#x}",
                                        static_cast<int>(ra.reason), ra.executed, a->v.rip(),
                                        static_cast<int>(ob.reason), ob.executed, b->v.rip());
  fuzz_check(ra.reason == ob.reason, "run() and single-stepping stop for different reasons", where);
  fuzz_check(ra.executed == ob.executed && a->v.instructions() == b->v.instructions(),
             "run() and single-stepping retire different instruction counts", where);
  fuzz_check(a->v.rip() == b->v.rip(), "run() and single-stepping end at different RIPs", where);
  fuzz_check(a->v.rflags() == b->v.rflags(), "run() and single-stepping end with different RFLAGS",
             fmt::format("{:#x} vs {:#x}; {}", a->v.rflags(), b->v.rflags(), where));
  for (unsigned r = 0; r < 16; ++r)
    fuzz_check(a->v.gpr(r) == b->v.gpr(r), "run() and single-stepping end with different GPRs",
               fmt::format("GPR {}: {:#x} vs {:#x}; {}", r, a->v.gpr(r), b->v.gpr(r), where));
  for (unsigned c : {0u, 2u, 3u, 4u, 8u})
    fuzz_check(a->v.cr(c) == b->v.cr(c), "run() and single-stepping end with different control registers",
               fmt::format("CR{}: {:#x} vs {:#x}; {}", c, a->v.cr(c), b->v.cr(c), where));
  fuzz_check(a->v.efer() == b->v.efer(), "run() and single-stepping end with different EFER", where);
  fuzz_check(a->v.cycles().value() == b->v.cycles().value(), "run() and single-stepping charge different cycles",
             fmt::format("{} vs {}; {}", a->v.cycles().value(), b->v.cycles().value(), where));
  fuzz_check(a->v.stop_detail() == b->v.stop_detail(), "run() and single-stepping give different stop details",
             fmt::format("\"{}\" vs \"{}\"", a->v.stop_detail(), b->v.stop_detail()));
  fuzz_check(std::memcmp(a->mem.base(), b->mem.base(), kRam) == 0, "run() and single-stepping leave different RAM",
             where);
  fuzz_check(a->tracer.event_count() == b->tracer.event_count() && a->tracer.hash() == b->tracer.hash(),
             "run() and single-stepping produce different traces",
             fmt::format("{} vs {} events, {}; {}", a->tracer.event_count(), b->tracer.event_count(),
                         first_difference(a->trace_text.str(), b->trace_text.str()), where));
  return 0;
}
