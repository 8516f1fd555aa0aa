// tools/platform/expectations.cpp — checks a scenario's `expect` block against a finished
// run (scenarios/README.md). Each failure is one line naming the expectation, the
// expected and the actual value, so a student can see at once what went wrong.
#include <fmt/format.h>

#include "core/vcpu.h"
#include "tools/platform/platform.h"

namespace pvsim {

namespace {

// Quotes a console string for a one-line report: escapes control characters, cuts long text.
std::string console_quote(std::string_view s) {
  std::string out = "\"";
  size_t n = 0;
  for (char c : s) {
    if (++n > 200) { out += "...(" + std::to_string(s.size()) + " bytes)"; break; }
    if (c == '\n') out += "\\n";
    else if (c == '"' || c == '\\') { out += '\\'; out += c; }
    else if (static_cast<unsigned char>(c) < 0x20) out += fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
    else out += c;
  }
  return out + "\"";
}

uint64_t read_register(const Vcpu& v, const std::string& reg) {
  static constexpr const char* kGprs[16] = {"rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
                                            "r8",  "r9",  "r10", "r11", "r12", "r13", "r14", "r15"};
  for (unsigned i = 0; i < 16; ++i)
    if (reg == kGprs[i]) return v.gpr(i);
  if (reg == "rip") return v.rip();
  if (reg == "rflags") return v.rflags();
  if (reg == "efer") return v.efer();
  // cr0, cr2, cr3, cr4, cr8 (the scenario parser admits no other names)
  return v.cr(static_cast<unsigned>(reg[2] - '0'));
}

}  // namespace

bool Platform::is_register_name(std::string_view name) {
  for (const char* n : {"rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12",
                        "r13", "r14", "r15", "rip", "rflags", "cr0", "cr2", "cr3", "cr4", "cr8", "efer"})
    if (name == n) return true;
  return false;
}

uint64_t Platform::register_value(unsigned vcpu, const std::string& name) const {
  return read_register(*m_vcpus.at(vcpu), name);
}

void Platform::check_expectations(RunReport& r) {
  const Expectations& e = m_scenario.expect;
  r.expectations_given = e.any();
  if (!m_trace_pins) {
    // Without its trace pins, does the scenario still expect anything?
    Expectations rest = e;
    rest.trace_hash.reset();
    rest.golden_trace.reset();
    r.expectations_given = rest.any();
  }
  auto fail = [&](std::string line) { r.expectation_failures.push_back(std::move(line)); };

  if (e.stop && *e.stop != r.stop)
    fail(fmt::format("expect.stop: expected \"{}\", got \"{}\" ({})", run_stop_name(*e.stop),
                     run_stop_name(r.stop), r.stop_detail));
  if (e.exit_status) {
    if (!r.exit_status)
      fail(fmt::format("expect.exit_status: expected {}, got none (the run ended by \"{}\")", *e.exit_status,
                       run_stop_name(r.stop)));
    else if (*r.exit_status != *e.exit_status)
      fail(fmt::format("expect.exit_status: expected {}, got {}", *e.exit_status, *r.exit_status));
  }
  if (e.console && *e.console != r.console)
    fail(fmt::format("expect.console: expected {}, got {}", console_quote(*e.console), console_quote(r.console)));
  for (size_t i = 0; i < e.console_contains.size(); ++i)
    if (r.console.find(e.console_contains[i]) == std::string::npos)
      fail(fmt::format("expect.console_contains[{}]: {} does not occur in the console output", i,
                       console_quote(e.console_contains[i])));
  for (size_t i = 0; i < e.console_excludes.size(); ++i)
    if (auto at = r.console.find(e.console_excludes[i]); at != std::string::npos)
      fail(fmt::format("expect.console_excludes[{}]: {} occurs in the console output at byte {}", i,
                       console_quote(e.console_excludes[i]), at));
  for (size_t i = 0; i < e.registers.size(); ++i) {
    const RegisterExpect& x = e.registers[i];
    const uint64_t got = read_register(*m_vcpus[x.vcpu], x.reg);
    if (got != x.value)
      fail(fmt::format("expect.registers[{}]: vCPU {} {} expected 0x{:x}, got 0x{:x}", i, x.vcpu, x.reg,
                       x.value, got));
  }
  for (size_t i = 0; i < e.msrs.size(); ++i) {
    const MsrExpect& x = e.msrs[i];
    Vcpu& v = *m_vcpus[x.vcpu];
    uint64_t got = 0;
    if (v.msrs().read(v, x.msr, got) != MsrStatus::Ok)
      fail(fmt::format("expect.msrs[{}]: vCPU {} MSR 0x{:x} expected 0x{:x}, but reading it raises #GP", i,
                       x.vcpu, x.msr, x.value));
    else if (got != x.value)
      fail(fmt::format("expect.msrs[{}]: vCPU {} MSR 0x{:x} expected 0x{:x}, got 0x{:x}", i, x.vcpu, x.msr,
                       x.value, got));
  }
  if (m_trace_pins && e.trace_hash && *e.trace_hash != r.trace_hash)
    fail(fmt::format("expect.trace_hash: expected {:016x}, got {:016x}", *e.trace_hash, r.trace_hash));
  if (m_trace_check) m_trace_check->failures(r.expectation_failures);
  if (m_golden)
    if (auto f = m_golden->failure()) {
      fail(*f);
      r.golden_report = m_golden->report();
    }
}

}  // namespace pvsim
