// tools/platform/inspect.cpp — --stop-at, --dump, --junit and --tap (see inspect.h).
#include "tools/platform/inspect.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/vcpu.h"
#include "tools/platform/platform.h"
#include "tools/platform/schedule.h"
#include "tools/platform/text.h"

namespace pvsim {

namespace {

[[noreturn]] void fail(std::string_view option, size_t pos, std::string_view what) {
  throw InspectError(fmt::format("{}: position {}: {}", option, pos + 1, what));
}

// A number at text[i..]: "0x" hex or decimal, 64 bits. Advances i past it.
uint64_t number_at(std::string_view text, size_t& i, std::string_view option) {
  const size_t start = i;
  uint64_t v = 0;
  const bool hex = text.substr(i, 2) == "0x" || text.substr(i, 2) == "0X";
  if (hex) i += 2;
  const size_t digits = i;
  for (; i < text.size(); ++i) {
    const char c = text[i];
    unsigned d;
    if (c >= '0' && c <= '9') d = static_cast<unsigned>(c - '0');
    else if (hex && c >= 'a' && c <= 'f') d = static_cast<unsigned>(c - 'a' + 10);
    else if (hex && c >= 'A' && c <= 'F') d = static_cast<unsigned>(c - 'A' + 10);
    else break;
    const unsigned base = hex ? 16 : 10;
    if (v > (UINT64_MAX - d) / base) fail(option, start, "number does not fit in 64 bits");
    v = v * base + d;
  }
  if (i == digits) fail(option, start, hex ? "hex digits expected after 0x" : "a number expected (decimal, or hex with 0x)");
  return v;
}

constexpr uint64_t kMaxDumpBytes = 1ull << 20;

}  // namespace

DumpSpec parse_dump(std::string_view text, std::string_view option) {
  DumpSpec d;
  if (text.empty()) fail(option, 0, "empty (expected regs, msrs, lapic, pv, all or mem=GPA+LEN, comma-separated)");
  size_t i = 0;
  while (true) {
    const size_t start = i;
    const size_t end = std::min(text.find(',', i), text.size());
    const std::string_view item = text.substr(i, end - i);
    if (item == "regs") d.regs = true;
    else if (item == "msrs") d.msrs = true;
    else if (item == "lapic") d.lapic = true;
    else if (item == "pv") d.pv = true;
    else if (item == "all") d.regs = d.msrs = d.lapic = d.pv = true;
    else if (item.substr(0, 4) == "mem=") {
      size_t k = start + 4;
      const uint64_t gpa = number_at(text, k, option);
      uint64_t len = 0;
      if (text.substr(k, 1) == "+") {
        ++k;
        len = number_at(text, k, option);
        if (k < end && (text[k] == 'K' || text[k] == 'k' || text[k] == 'M' || text[k] == 'm')) {
          const unsigned shift = (text[k] == 'K' || text[k] == 'k') ? 10 : 20;
          if (len > (kMaxDumpBytes >> shift)) fail(option, start, "more than 1 MiB asked (mem= dumps at most 1M)");
          len <<= shift;
          ++k;
        }
      } else if (text.substr(k, 2) == "..") {
        k += 2;
        const size_t at = k;
        const uint64_t last = number_at(text, k, option);
        if (last <= gpa) fail(option, at, "the end must be above the start (END is exclusive)");
        len = last - gpa;
      } else {
        fail(option, k, "expected +LEN or ..END after mem=GPA");
      }
      if (k != end) fail(option, k, "unexpected text after the range (items are separated by commas)");
      if (len == 0) fail(option, start, "an empty range");
      if (len > kMaxDumpBytes) fail(option, start, "more than 1 MiB asked (mem= dumps at most 1M)");
      d.mem.push_back({gpa, len});
    } else {
      fail(option, start,
           fmt::format("unknown item {} (expected regs, msrs, lapic, pv, all or mem=GPA+LEN)", quote_display(item, 40)));
    }
    if (end == text.size()) break;
    i = end + 1;
    if (i == text.size()) fail(option, i - 1, "a trailing comma");
  }
  return d;
}

std::vector<unsigned> parse_vcpu_selection(std::string_view text, std::string_view option, unsigned vcpus) {
  std::vector<unsigned> out;
  if (text == "all") {
    for (unsigned i = 0; i < vcpus; ++i) out.push_back(i);
    return out;
  }
  if (text.empty()) fail(option, 0, "empty (expected all or vCPU indices such as 0,2)");
  size_t i = 0;
  while (true) {
    const size_t start = i;
    if (text.substr(i, 1) == "v") ++i;  // "v1" reads like a guest point's vCPU
    if (i >= text.size() || text[i] < '0' || text[i] > '9') fail(option, i, "a vCPU index expected");
    const uint64_t n = number_at(text, i, option);
    if (n >= vcpus) fail(option, start, fmt::format("vCPU {} does not exist (machine.vcpus is {})", n, vcpus));
    out.push_back(static_cast<unsigned>(n));
    if (i == text.size()) break;
    if (text[i] != ',') fail(option, i, "expected ',' between vCPU indices");
    ++i;
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

ScheduleEntry parse_stop_at(std::string_view text, std::string_view option) {
  // The schedule parser reports positions in its own input; the point comes first, so its
  // positions are ours too. An action is not this option's business.
  if (auto c = text.find_first_of(":;"); c != std::string_view::npos)
    fail(option, c, "a guest point only (vN.insn=COUNT, vN.rip=ADDRESS|SYMBOL[+OFF][#K] or t=TIME); the action is "
                    "always stop");
  ScheduleEntry e;
  try {
    e.at = parse_point(text, option);
  } catch (const ScheduleError& err) {
    throw InspectError(err.what());
  }
  e.action.kind = ActionKind::Stop;
  return e;
}

// ---- the dump ----

namespace {

void hexdump(std::string& o, const GuestMemory& mem, uint64_t gpa, uint64_t len) {
  fmt::format_to(std::back_inserter(o), "memory 0x{:x}..0x{:x} ({} bytes, guest-physical):\n", gpa, gpa + len, len);
  // Rows of 16 bytes aligned to 16, as xxd and QEMU's xp print them.
  for (uint64_t row = gpa & ~15ull; row < gpa + len; row += 16) {
    fmt::format_to(std::back_inserter(o), "  {:016x}:", row);
    std::string ascii;
    for (uint64_t a = row; a < row + 16; ++a) {
      uint8_t b = 0;
      if (a < gpa || a >= gpa + len) {
        o += "   ";
        ascii += ' ';
      } else if (!mem.read(Gpa(a), &b, 1)) {
        o += " --";  // outside guest RAM: nothing there to read
        ascii += ' ';
      } else {
        fmt::format_to(std::back_inserter(o), " {:02x}", b);
        ascii += (b >= 0x20 && b < 0x7f) ? static_cast<char>(b) : '.';
      }
    }
    fmt::format_to(std::back_inserter(o), "  |{}|\n", ascii);
  }
}

// MSR names for the dump (the registry's own names where it has them).
void dump_msrs(std::string& o, Vcpu& v) {
  o += "msrs:\n";
  for (const MsrHandler& h : v.msrs().entries()) {
    // The x2APIC registers are the lapic section's business.
    if (h.index >= 0x800 && h.index <= 0x8ff) continue;
    if (!h.read) {
      fmt::format_to(std::back_inserter(o), "  {:08x} {:<28} (write-only)\n", h.index, h.name);
      continue;
    }
    uint64_t val = 0;
    if (h.read(v, val) != MsrStatus::Ok)
      fmt::format_to(std::back_inserter(o), "  {:08x} {:<28} (#GP on read)\n", h.index, h.name);
    else
      fmt::format_to(std::back_inserter(o), "  {:08x} {:<28} 0x{:016x}\n", h.index, h.name, val);
  }
}

std::string vectors_of(const LocalApic& a, bool (LocalApic::*bit)(uint8_t) const) {
  std::string s;
  for (unsigned v = 0; v < 256; ++v)
    if ((a.*bit)(static_cast<uint8_t>(v))) s += fmt::format("{}{}", s.empty() ? "" : " ", v);
  return s.empty() ? "-" : s;
}

void dump_lapic(std::string& o, LocalApic& a) {
  const char* mode = a.mode() == ApicMode::X2Apic ? "x2APIC" : a.mode() == ApicMode::XApic ? "xAPIC" : "disabled";
  fmt::format_to(std::back_inserter(o), "lapic: {} (IA32_APIC_BASE 0x{:x}), ID 0x{:x}, {}\n", mode, a.apic_base(),
                 a.id(), a.software_enabled() ? "software-enabled" : "software-disabled (SVR bit 8 clear)");
  if (a.mode() == ApicMode::Disabled) return;
  struct Reg {
    uint32_t off;
    const char* name;
  };
  static constexpr Reg kRegs[] = {{0x20, "ID"},     {0x30, "LVR"},   {0x80, "TPR"},    {0xa0, "PPR"},
                                  {0xd0, "LDR"},    {0xe0, "DFR"},   {0xf0, "SVR"},    {0x280, "ESR"},
                                  {0x300, "ICR"},   {0x310, "ICR2"}, {0x320, "LVTT"},  {0x330, "LVTTHMR"},
                                  {0x340, "LVTPC"}, {0x350, "LVT0"}, {0x360, "LVT1"},  {0x370, "LVTERR"},
                                  {0x380, "TMICT"}, {0x390, "TMCCT"}, {0x3e0, "TDCR"}};
  std::string line;
  unsigned n = 0;
  for (const Reg& r : kRegs) {
    const auto val = a.peek(r.off);
    if (!val) continue;  // not in this mode (DFR, ICR2 in x2APIC)
    line += fmt::format("  {:<7} {:08x}", r.name, *val);
    if (++n % 4 == 0) {
      o += line + "\n";
      line.clear();
    }
  }
  if (!line.empty()) o += line + "\n";
  fmt::format_to(std::back_inserter(o), "  ISR: {}\n  IRR: {}\n  TMR: {}\n", vectors_of(a, &LocalApic::isr_bit),
                 vectors_of(a, &LocalApic::irr_bit), vectors_of(a, &LocalApic::tmr_bit));
  fmt::format_to(std::back_inserter(o), "  timer: {}", a.timer_armed() ? "armed" : "not armed");
  if (a.tsc_deadline()) fmt::format_to(std::back_inserter(o), ", TSC deadline 0x{:x}", a.tsc_deadline());
  o += '\n';
}

bool read_msr(Vcpu& v, uint32_t index, uint64_t& val) { return v.msrs().read(v, index, val) == MsrStatus::Ok; }

template <typename T>
bool load(const GuestMemory& m, uint64_t gpa, T& out) {
  return m.read(Gpa(gpa), &out, sizeof(T));
}

// The structures of pvmsr/README.md, decoded from guest memory where the MSRs point.
void dump_pv(std::string& o, Vcpu& v, const GuestMemory& mem) {
  o += "pv:\n";
  uint64_t msr = 0;
  bool any = false;
  // kvmclock: MSR_KVM_SYSTEM_TIME_NEW, or the old MSR_KVM_SYSTEM_TIME (bit 0 enables;
  // pvclock_vcpu_time_info, 32 bytes).
  // KVM keeps one value behind both MSRs (vcpu->arch.time): show it once.
  uint64_t shown = 0;
  for (uint32_t idx : {0x4b564d01u, 0x12u}) {
    if (!read_msr(v, idx, msr) || !(msr & 1) || msr == shown) continue;
    shown = msr;
    any = true;
    const uint64_t gpa = msr & ~1ull;
    uint32_t version = 0, mul = 0;
    uint64_t tsc = 0, sys = 0;
    int8_t shift = 0;
    uint8_t flags = 0;
    if (!load(mem, gpa, version) || !load(mem, gpa + 8, tsc) || !load(mem, gpa + 16, sys) ||
        !load(mem, gpa + 24, mul) || !load(mem, gpa + 28, shift) || !load(mem, gpa + 29, flags)) {
      fmt::format_to(std::back_inserter(o), "  kvmclock (MSR 0x{:x}) at GPA 0x{:x}: outside guest RAM\n", idx, gpa);
      continue;
    }
    fmt::format_to(std::back_inserter(o),
                   "  kvmclock (MSR 0x{:x}) at GPA 0x{:x}: version {}{}, tsc_timestamp 0x{:x}, system_time 0x{:x} "
                   "({} ns), tsc_to_system_mul 0x{:x}, tsc_shift {}, flags 0x{:x}{}{}\n",
                   idx, gpa, version, (version & 1) ? " (odd: an update is in progress)" : "", tsc, sys, sys, mul,
                   static_cast<int>(shift), static_cast<unsigned>(flags), (flags & 1) ? " TSC_STABLE" : "",
                   (flags & 2) ? " GUEST_STOPPED" : "");
  }
  // Steal time: MSR_KVM_STEAL_TIME, 64-byte aligned record.
  if (read_msr(v, 0x4b564d03, msr) && (msr & 1)) {
    any = true;
    const uint64_t gpa = msr & ~63ull;
    uint64_t steal = 0;
    uint32_t version = 0, flags = 0;
    uint8_t preempted = 0;
    if (!load(mem, gpa, steal) || !load(mem, gpa + 8, version) || !load(mem, gpa + 12, flags) ||
        !load(mem, gpa + 16, preempted))
      fmt::format_to(std::back_inserter(o), "  steal time at GPA 0x{:x}: outside guest RAM\n", gpa);
    else
      fmt::format_to(std::back_inserter(o),
                     "  steal time at GPA 0x{:x}: steal {} ns, version {}, flags 0x{:x}, preempted 0x{:x}{}{}\n", gpa,
                     steal, version, flags, static_cast<unsigned>(preempted), (preempted & 1) ? " PREEMPTED" : "",
                     (preempted & 2) ? " FLUSH_TLB" : "");
  }
  // Async PF: MSR_KVM_ASYNC_PF_EN (bit 0 enable, 1 send-always, 2 delivery as #PF VM exit,
  // 3 delivery as interrupt), the 64-byte area, and MSR_KVM_ASYNC_PF_INT's vector.
  if (read_msr(v, 0x4b564d02, msr) && (msr & 1)) {
    any = true;
    const uint64_t gpa = msr & ~63ull;
    uint32_t w0 = 0, token = 0, enabled = 0;
    uint64_t vec = 0;
    const bool have_vec = read_msr(v, 0x4b564d06, vec);
    if (!load(mem, gpa, w0) || !load(mem, gpa + 4, token) || !load(mem, gpa + 64, enabled))
      fmt::format_to(std::back_inserter(o), "  async PF area at GPA 0x{:x}: outside guest RAM\n", gpa);
    else
      fmt::format_to(std::back_inserter(o),
                     "  async PF (MSR value 0x{:x}{}{}{}) area at GPA 0x{:x}: flags/reason 0x{:x}, token 0x{:x}, "
                     "enabled {}{}\n",
                     msr, (msr & 2) ? " SEND_ALWAYS" : "", (msr & 4) ? " DELIVERY_AS_PF_VMEXIT" : "",
                     (msr & 8) ? " DELIVERY_AS_INT" : "", gpa, w0, token, enabled,
                     have_vec ? fmt::format(", page-ready vector {}", vec & 0xff) : std::string());
  }
  // PV EOI: MSR_KVM_PV_EOI_EN (bit 0 enables), a 4-byte word whose bit 0 is the pending flag.
  if (read_msr(v, 0x4b564d04, msr) && (msr & 1)) {
    any = true;
    const uint64_t gpa = msr & ~1ull;
    uint32_t w = 0;
    if (!load(mem, gpa, w))
      fmt::format_to(std::back_inserter(o), "  PV EOI at GPA 0x{:x}: outside guest RAM\n", gpa);
    else
      fmt::format_to(std::back_inserter(o), "  PV EOI at GPA 0x{:x}: 0x{:x}{}\n", gpa, w,
                     (w & 1) ? " (armed: the next EOI may skip the exit)" : "");
  }
  if (read_msr(v, 0x4b564d05, msr))
    fmt::format_to(std::back_inserter(o), "  poll control: 0x{:x}{}\n", msr, (msr & 1) ? " (host-side haltpoll on)" : " (host-side haltpoll off)");
  if (!any) o += "  (no kvmclock, steal time, async PF or PV EOI area registered)\n";
}

}  // namespace

std::string dump_machine(Platform& p, const DumpSpec& spec, const std::vector<unsigned>& vcpus) {
  std::string o;
  for (unsigned i : vcpus) {
    Vcpu& v = p.vcpu(i);
    fmt::format_to(std::back_inserter(o), "=== vCPU {}: {} instructions, virtual time {}, rip 0x{:x} ===\n", i,
                   v.instructions(), Tracer::seconds(v.now()), v.rip());
    if (spec.regs) o += v.dump_state();
    if (spec.msrs) dump_msrs(o, v);
    if (spec.lapic) dump_lapic(o, p.lapic(i));
    if (spec.pv) dump_pv(o, v, p.memory());
  }
  for (const DumpSpec::Range& r : spec.mem) hexdump(o, p.memory(), r.gpa, r.len);
  return o;
}

// ---- CI reports ----

std::vector<CaseResult> case_results(const Scenario& s, const RunReport& r, bool trace_pins) {
  const Expectations& e = s.expect;
  std::vector<std::string> names;
  if (e.stop) names.push_back("expect.stop");
  if (e.exit_status) names.push_back("expect.exit_status");
  if (e.console) names.push_back("expect.console");
  for (size_t i = 0; i < e.console_contains.size(); ++i) names.push_back(fmt::format("expect.console_contains[{}]", i));
  for (size_t i = 0; i < e.console_excludes.size(); ++i) names.push_back(fmt::format("expect.console_excludes[{}]", i));
  for (size_t i = 0; i < e.registers.size(); ++i) names.push_back(fmt::format("expect.registers[{}]", i));
  for (size_t i = 0; i < e.msrs.size(); ++i) names.push_back(fmt::format("expect.msrs[{}]", i));
  if (e.trace_hash && trace_pins) names.push_back("expect.trace_hash");
  for (size_t i = 0; i < e.trace.size(); ++i) names.push_back(fmt::format("expect.trace[{}] [{}]", i, e.trace[i].name));
  if (e.golden_trace && trace_pins) names.push_back("expect.golden_trace");

  std::vector<CaseResult> out;
  std::vector<bool> used(r.expectation_failures.size(), false);
  for (const std::string& n : names) {
    CaseResult c{n, true, false, {}};
    // Every failure line starts with its expectation's name and a colon (expectations.cpp,
    // trace_check.cpp).
    for (size_t k = 0; k < r.expectation_failures.size(); ++k) {
      const std::string& f = r.expectation_failures[k];
      if (!used[k] && f.size() > n.size() && f.compare(0, n.size(), n) == 0 && f[n.size()] == ':') {
        c.ok = false;
        c.message += (c.message.empty() ? "" : "\n") + f;
        used[k] = true;
      }
    }
    out.push_back(std::move(c));
  }
  CaseResult run{"run", r.success(), false, {}};
  if (!run.ok)
    run.message = r.expectation_failures.empty()
                      ? fmt::format("the run ended by \"{}\": {}", run_stop_name(r.stop), r.stop_detail)
                      : fmt::format("{} expectation(s) failed", r.expectation_failures.size());
  // A failure no name claimed (none today) must not vanish from the report.
  for (size_t k = 0; k < used.size(); ++k)
    if (!used[k]) {
      run.ok = false;
      run.message += (run.message.empty() ? "" : "\n") + r.expectation_failures[k];
    }
  out.push_back(std::move(run));
  return out;
}

namespace {

std::string xml_escape(std::string_view s) {
  std::string o;
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      case '\'': o += "&apos;"; break;
      case '\n': o += "&#10;"; break;
      case '\t': o += "&#9;"; break;
      default:
        // XML 1.0 admits no other control characters, even escaped.
        if (u < 0x20) o += fmt::format("\\x{:02x}", u);
        else o += c;
    }
  }
  return o;
}

}  // namespace

std::string junit_report(const Scenario& s, const RunReport& r, const std::vector<CaseResult>& cases) {
  size_t failures = 0;
  size_t skipped = 0;
  for (const CaseResult& c : cases) {
    failures += !c.ok;
    skipped += c.skipped;
  }
  const std::string suite = xml_escape(s.name);
  std::string o = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  fmt::format_to(std::back_inserter(o), "<testsuites tests=\"{}\" failures=\"{}\" errors=\"0\">\n", cases.size(), failures);
  fmt::format_to(std::back_inserter(o), "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"{}\">\n",
                 suite, cases.size(), failures, skipped);
  o += "    <properties>\n";
  auto prop = [&](std::string_view k, const std::string& v) {
    fmt::format_to(std::back_inserter(o), "      <property name=\"{}\" value=\"{}\"/>\n", k, xml_escape(v));
  };
  prop("scenario", s.file.string());
  prop("stop", run_stop_name(r.stop));
  prop("exit_status", r.exit_status ? std::to_string(*r.exit_status) : "none");
  prop("virtual_time", Tracer::seconds(Tick(r.virtual_ns)));
  prop("instructions", std::to_string(r.instructions));
  prop("trace_hash", fmt::format("{:016x}", r.trace_hash));
  prop("trace_events", std::to_string(r.trace_events));
  o += "    </properties>\n";
  for (const CaseResult& c : cases) {
    fmt::format_to(std::back_inserter(o), "    <testcase classname=\"{}\" name=\"{}\"", suite, xml_escape(c.name));
    if (c.skipped) {
      fmt::format_to(std::back_inserter(o), ">\n      <skipped message=\"{}\"/>\n    </testcase>\n", xml_escape(c.message));
      continue;
    }
    if (c.ok) {
      o += "/>\n";
      continue;
    }
    const std::string first = c.message.substr(0, c.message.find('\n'));
    fmt::format_to(std::back_inserter(o), ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>\n",
                   xml_escape(first), xml_escape(c.message));
  }
  o += "  </testsuite>\n</testsuites>\n";
  return o;
}

std::string tap_report(const Scenario& s, const RunReport& r, const std::vector<CaseResult>& cases) {
  // TAP version 13: the plan first, one line per case, a YAML block under each failure.
  std::string o = fmt::format("TAP version 13\n1..{}\n", cases.size());
  size_t n = 0;
  for (const CaseResult& c : cases) {
    // '#' starts a directive in TAP; a name never carries one.
    std::string name = c.name;
    std::replace(name.begin(), name.end(), '#', '_');
    fmt::format_to(std::back_inserter(o), "{} {} - {}: {}{}\n", c.ok ? "ok" : "not ok", ++n, escape_display(s.name, 200),
                   name, c.skipped ? " # SKIP " + escape_display(c.message, 200) : std::string());
    if (!c.ok) {
      o += "  ---\n  message: |\n";
      size_t at = 0;
      while (at <= c.message.size()) {
        const size_t nl = std::min(c.message.find('\n', at), c.message.size());
        fmt::format_to(std::back_inserter(o), "    {}\n", escape_display(c.message.substr(at, nl - at), 2000));
        at = nl + 1;
      }
      fmt::format_to(std::back_inserter(o), "  stop: {}\n  ...\n", run_stop_name(r.stop));
    }
  }
  return o;
}

}  // namespace pvsim
