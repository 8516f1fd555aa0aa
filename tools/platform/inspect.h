// tools/platform/inspect.h — stopping and looking without a debugger: what `pvsim run
// --stop-at POINT --dump WHAT` prints at the stop, and the CI reports of `--junit FILE` and
// `--tap FILE` (tools/platform/README.md "Stopping, dumping and CI reports").
//
// Every parse problem is one InspectError whose what() is a single line naming the option
// and the position in its value ("--dump: position 6: ..."), for exit status 2.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "tools/platform/scenario.h"

namespace pvsim {

class Platform;
struct RunReport;

class InspectError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// --dump's value: a comma-separated list of
//   regs           general, segment, control and descriptor-table registers (QEMU's
//                  `info registers` shape), TSC, instruction count
//   msrs           every MSR the vCPU's registry answers (architectural and KVM PV), by name
//   lapic          the local APIC's registers, ISR/IRR/TMR vectors and timer
//   pv             the PV structures the guest registered, decoded from guest memory:
//                  kvmclock (pvclock_vcpu_time_info), steal time, the async-PF area, PV EOI
//   mem=GPA+LEN    LEN bytes of guest-physical memory from GPA (hex dump; LEN ≤ 1 MiB,
//                  K/M suffixes), also mem=GPA..END (END exclusive)
//   all            regs, msrs, lapic and pv
struct DumpSpec {
  bool regs = false, msrs = false, lapic = false, pv = false;
  struct Range {
    uint64_t gpa = 0;
    uint64_t len = 0;
  };
  std::vector<Range> mem;
  bool empty() const { return !regs && !msrs && !lapic && !pv && mem.empty(); }
};
DumpSpec parse_dump(std::string_view text, std::string_view option);

// --dump-vcpu's value: "all" or a comma-separated list of vCPU indices (each < vcpus).
// Returns the indices in increasing order without repeats.
std::vector<unsigned> parse_vcpu_selection(std::string_view text, std::string_view option, unsigned vcpus);

// --stop-at's value: one guest point (scenarios/README.md "Guest points"), as the schedule
// entry "POINT: stop". The scenario's symbols are resolved when the machine is built.
ScheduleEntry parse_stop_at(std::string_view text, std::string_view option);

// The dump of the machine as it stands (after run() returned): a header line per vCPU,
// then the sections asked for. Reads only: no trace line, no guest-visible effect.
std::string dump_machine(Platform& p, const DumpSpec& spec, const std::vector<unsigned>& vcpus);

// One test case per expectation of the scenario (expect.stop, expect.registers[2], ...),
// plus "run" (the run's own verdict: RunReport::success), in JUnit XML and in TAP version 13.
// Deterministic: no host time or host name in either (a JUnit `time` would make two runs
// of one scenario differ); virtual time and the trace hash are properties.
struct CaseResult {
  std::string name;     // "expect.registers[2]"
  bool ok = true;
  bool skipped = false;  // not checked (ok stays true); message says why
  std::string message;   // the failure line ("" when ok)
};
std::vector<CaseResult> case_results(const Scenario& s, const RunReport& r, bool trace_pins);
std::string junit_report(const Scenario& s, const RunReport& r, const std::vector<CaseResult>& cases);
std::string tap_report(const Scenario& s, const RunReport& r, const std::vector<CaseResult>& cases);

}  // namespace pvsim
