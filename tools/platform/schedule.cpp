#include "tools/platform/schedule.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "tools/platform/json_text.h"
#include "tools/platform/text.h"

namespace pvsim {

const char* action_name(ActionKind k) {
  switch (k) {
    case ActionKind::Preempt: return "preempt";
    case ActionKind::Migrate: return "migrate";
    case ActionKind::Complete: return "complete";
    case ActionKind::Delay: return "delay";
    case ActionKind::Evict: return "evict";
    case ActionKind::Ipi: return "ipi";
    case ActionKind::KvmclockUpdate: return "kvmclock";
    case ActionKind::StealUpdate: return "steal";
    case ActionKind::Pause: return "pause";
    case ActionKind::Store: return "store";
    case ActionKind::Run:
    case ActionKind::RunAuto: return "run";
    case ActionKind::Stop: return "stop";
  }
  return "?";
}

namespace {

constexpr std::string_view kActions =
    "preempt, migrate, complete, delay, evict, ipi, kvmclock, steal, pause, store, run, stop";
constexpr uint32_t kWakeAllToken = 0xffffffffu;  // pvmsr/README.md §5: the "wake all" completion

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_word(char c) { return is_alpha(c) || is_digit(c) || c == '_'; }
bool is_symbol_start(char c) { return is_alpha(c) || c == '_' || c == '.' || c == '$'; }
bool is_symbol(char c) { return is_symbol_start(c) || is_digit(c); }
int hex_value(char c) {
  if (is_digit(c)) return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// A hand-written descent parser over one piece of text. Each reader skips the whitespace in
// front of what it reads. The grammar has no nesting, so nothing recurses and no input can
// exhaust the stack; every index is checked against the text's end.
class Parser {
 public:
  Parser(std::string_view text, std::string_view origin) : m_s(text), m_origin(origin) {
    if (m_s.size() > kMaxScheduleTextBytes)
      fail(kMaxScheduleTextBytes, fmt::format("the text is longer than 1 MiB ({} bytes)", kMaxScheduleTextBytes));
  }

  Schedule schedule() {
    ws();
    if (end()) fail(m_i, "empty schedule (expected at least one entry POINT: ACTION, such as t=1ms: stop)");
    Schedule s;
    for (;;) {
      ws();
      if (s.entries.size() == kMaxScheduleEntries)
        fail(m_i, fmt::format("more than {} entries", kMaxScheduleEntries));
      s.entries.push_back(entry());
      ws();
      if (end()) break;
      if (peek() != ';') fail(m_i, "expected ';' or the end of the text after the action, got " + got(m_i));
      ++m_i;
      ws();
      if (end()) break;  // a trailing ';'
    }
    return s;
  }

  ScheduleEntry single_entry() {
    ScheduleEntry e = entry();
    ws();
    if (!end())
      fail(m_i, "expected the end of the entry, got " + got(m_i) +
                    (peek() == ';' ? " (one entry per array element)" : ""));
    return e;
  }

  GuestPoint single_point() {
    GuestPoint p = point();
    ws();
    if (!end()) fail(m_i, "expected the end of the guest point, got " + got(m_i));
    return p;
  }

  HostAction single_action() {
    HostAction a = action();
    ws();
    if (!end()) fail(m_i, "expected the end of the action, got " + got(m_i));
    return a;
  }

 private:
  [[noreturn]] void fail(size_t pos, std::string_view problem) const {
    throw ScheduleError(fmt::format("{}: position {}: {}", m_origin, pos + 1, problem));
  }

  void ws() {
    while (m_i < m_s.size() && is_space(m_s[m_i])) ++m_i;
  }
  bool end() const { return m_i >= m_s.size(); }
  char peek() const { return end() ? '\0' : m_s[m_i]; }

  // [A-Za-z0-9_]* from here.
  std::string_view word() {
    const size_t start = m_i;
    while (!end() && is_word(m_s[m_i])) ++m_i;
    return m_s.substr(start, m_i - start);
  }

  // What the text holds at `pos`, for "got ...": a word or number whole (at most 64 bytes),
  // otherwise one character; escaped (text.h) and quoted.
  std::string got(size_t pos) const {
    if (pos >= m_s.size()) return "the end of the text";
    // Bytes >= 0x80 count as word characters, so a word with a non-ASCII letter in it
    // ("stöp") is shown whole rather than cut before that letter.
    const auto wordish = [](char c) { return is_symbol(c) || static_cast<unsigned char>(c) >= 0x80; };
    size_t n = 1;
    if (wordish(m_s[pos]))
      while (pos + n < m_s.size() && n < 64 && wordish(m_s[pos + n])) ++n;
    return shown(m_s.substr(pos, n));
  }
  static std::string shown(std::string_view s) { return fmt::format("'{}'", escape_display(s, 40)); }

  void expect(char c, std::string_view context) {
    ws();
    if (peek() != c) fail(m_i, fmt::format("expected '{}' {}, got {}", c, context, got(m_i)));
    ++m_i;
  }

  // UINT: decimal or 0x hex, 64 bits. `what` names it for "expected ...".
  uint64_t number(std::string_view what) {
    ws();
    const size_t start = m_i;
    if (!is_digit(peek())) fail(start, fmt::format("expected {}, got {}", what, got(start)));
    uint64_t v = 0;
    bool overflow = false;
    if (m_s[m_i] == '0' && m_i + 1 < m_s.size() && (m_s[m_i + 1] == 'x' || m_s[m_i + 1] == 'X')) {
      m_i += 2;
      if (hex_value(peek()) < 0)
        fail(m_i, fmt::format("expected hex digits after '{}', got {}", m_s.substr(start, 2), got(m_i)));
      for (int d; (d = hex_value(peek())) >= 0; ++m_i) {
        overflow |= (v >> 60) != 0;
        v = (v << 4) | static_cast<uint64_t>(d);
      }
    } else {
      for (; is_digit(peek()); ++m_i) {
        const uint64_t d = static_cast<uint64_t>(peek() - '0');
        overflow |= v > (UINT64_MAX - d) / 10;
        v = v * 10 + d;
      }
    }
    if (overflow)
      fail(start, fmt::format("number {} does not fit in 64 bits", shown(m_s.substr(start, m_i - start))));
    return v;
  }

  // HEX: a number that must be written 0x...
  uint64_t hex(std::string_view what) {
    ws();
    const size_t start = m_i;
    if (!(peek() == '0' && m_i + 1 < m_s.size() && (m_s[m_i + 1] == 'x' || m_s[m_i + 1] == 'X')))
      fail(start, fmt::format("expected {} in hex (0x...), got {}", what, got(start)));
    return number(what);
  }

  // A guest-physical page address; `start` is where it was written.
  uint64_t page_gpa() {
    ws();
    const size_t start = m_i;
    const uint64_t gpa = hex("a guest-physical address");
    if (gpa % kSchedulePageSize != 0)
      fail(start, fmt::format("gpa 0x{:x} is not page-aligned (a multiple of 0x1000); its page is 0x{:x}", gpa,
                              gpa & ~(kSchedulePageSize - 1)));
    return gpa;
  }

  // DURATION: UINT then ns, us, ms or s (whitespace between them is allowed).
  uint64_t duration(std::string_view what, bool positive) {
    ws();
    const size_t start = m_i;
    if (!is_digit(peek()))
      fail(start, fmt::format("expected {} such as 50us (a number, then ns, us, ms or s), got {}", what, got(start)));
    const uint64_t v = number(what);
    const std::string_view as_written = m_s.substr(start, m_i - start);
    ws();
    const size_t ustart = m_i;
    const std::string_view unit = word();
    uint64_t scale = 0;
    if (unit == "ns") scale = 1;
    else if (unit == "us") scale = 1'000;
    else if (unit == "ms") scale = 1'000'000;
    else if (unit == "s") scale = 1'000'000'000;
    else if (unit.empty())
      fail(ustart, fmt::format("expected a unit after {} (ns, us, ms or s), got {}", as_written, got(ustart)));
    else
      fail(ustart, fmt::format("unknown unit {} (expected ns, us, ms or s)", shown(unit)));
    if (v > kMaxScheduleNs / scale)
      fail(start, fmt::format("{}{} is more than 10^18 ns, the longest run there can be", as_written, unit));
    if (positive && v == 0) fail(start, fmt::format("{} must be more than 0", what));
    return v * scale;
  }

  // True when the word `w` has the shape vN (prefix 'v') or pM (prefix 'p'), so callers
  // can try another form when it has not.
  bool cpu_word(std::string_view w, char prefix) const {
    if (w.size() < 2 || w[0] != prefix) return false;
    for (size_t k = 1; k < w.size(); ++k)
      if (!is_digit(w[k])) return false;
    return true;
  }
  // The index of a word of that shape written at `start`, at most kMaxScheduleCpuIndex
  // (checked digit by digit, so no number of digits can overflow).
  unsigned cpu_index(std::string_view w, size_t start, std::string_view what) const {
    uint64_t v = 0;
    for (size_t k = 1; k < w.size(); ++k) {
      v = v * 10 + static_cast<uint64_t>(w[k] - '0');
      if (v > kMaxScheduleCpuIndex)
        fail(start, fmt::format("{} index {} is out of range (at most {})", what, escape_display(w.substr(1), 40),
                                kMaxScheduleCpuIndex));
    }
    return static_cast<unsigned>(v);
  }
  unsigned cpu(char prefix, std::string_view what, std::string_view after) {
    ws();
    const size_t start = m_i;
    const std::string_view w = word();
    if (!cpu_word(w, prefix))
      fail(start, fmt::format("expected a {} such as {}0 after '{}', got {}", what, prefix, after, got(start)));
    return cpu_index(w, start, what);
  }

  ScheduleEntry entry() {
    ScheduleEntry e;
    e.at = point();
    expect(':', "after the guest point");
    e.action = action();
    return e;
  }

  GuestPoint point() {
    ws();
    const size_t start = m_i;
    const std::string_view w = word();
    GuestPoint p;
    if (w == "t") {
      expect('=', "after 't'");
      p.kind = GuestPoint::Kind::Time;
      p.time_ns = duration("a virtual time", false);
      return p;
    }
    if (!cpu_word(w, 'v'))
      fail(start, "expected a guest point (vN.insn=COUNT, vN.rip=ADDRESS or t=TIME), got " + got(start));
    p.vcpu = cpu_index(w, start, "vCPU");
    const std::string v = fmt::format("v{}", p.vcpu);
    ws();
    if (peek() != '.') fail(m_i, fmt::format("expected '.insn=' or '.rip=' after '{}', got {}", v, got(m_i)));
    ++m_i;
    ws();
    const size_t kstart = m_i;
    const std::string_view k = word();
    if (k == "insn") {
      expect('=', "after 'insn'");
      p.kind = GuestPoint::Kind::Insn;
      p.insn = number("an instruction count");
      return p;
    }
    if (k != "rip") fail(kstart, fmt::format("expected 'insn' or 'rip' after '{}.', got {}", v, got(kstart)));
    expect('=', "after 'rip'");
    p.kind = GuestPoint::Kind::Rip;
    ws();
    if (is_digit(peek())) {
      p.rip = hex("an address");
      ws();
      if (peek() == '+')
        fail(m_i, "an offset (+N) may only follow a symbol; add it to the address instead");
    } else if (is_symbol_start(peek())) {
      const size_t sstart = m_i;
      while (!end() && is_symbol(m_s[m_i])) ++m_i;
      p.symbol = std::string(m_s.substr(sstart, m_i - sstart));
      ws();
      if (peek() == '+') {
        ++m_i;
        p.sym_offset = number("an offset after '+'");
      }
    } else {
      fail(m_i, "expected an address (0x...) or a symbol after 'rip=', got " + got(m_i));
    }
    ws();
    if (peek() == '#') {
      ++m_i;
      ws();
      const size_t hstart = m_i;
      p.hit = number("a hit count after '#'");
      if (p.hit == 0) fail(hstart, "the hit count must be at least 1 (#1 is the first time the vCPU gets there)");
    }
    return p;
  }

  // TARGET: gpa=HEX (a page) or token=HEX (an async PF token, 32 bits).
  void target(HostAction& a, std::string_view after) {
    ws();
    const size_t start = m_i;
    const std::string_view w = word();
    if (w == "gpa") {
      expect('=', "after 'gpa'");
      a.gpa = page_gpa();
    } else if (w == "token") {
      expect('=', "after 'token'");
      ws();
      const size_t tstart = m_i;
      const uint64_t t = hex("a token");
      if (t > UINT32_MAX) fail(tstart, fmt::format("token 0x{:x} does not fit in 32 bits (tokens are u32)", t));
      if (t == kWakeAllToken) fail(tstart, "token 0xffffffff is the wake-all, which no fault-in stands behind");
      a.by_token = true;
      a.token = static_cast<uint32_t>(t);
    } else {
      fail(start, fmt::format("expected gpa=ADDRESS or token=TOKEN after '{}', got {}", after, got(start)));
    }
  }

  HostAction action() {
    ws();
    const size_t start = m_i;
    const std::string_view w = word();
    HostAction a;
    if (w.empty() || is_digit(w[0]))
      fail(start, fmt::format("expected an action ({}), got {}", kActions, got(start)));
    if (w == "preempt") {
      a.kind = ActionKind::Preempt;
      a.vcpu = cpu('v', "vCPU", "preempt");
      a.ns = duration("the preemption's length", true);
    } else if (w == "migrate") {
      a.kind = ActionKind::Migrate;
      a.vcpu = cpu('v', "vCPU", "migrate");
      a.pcpu = cpu('p', "pCPU", fmt::format("migrate v{}", a.vcpu));
    } else if (w == "complete") {
      a.kind = ActionKind::Complete;
      target(a, "complete");
    } else if (w == "delay") {
      a.kind = ActionKind::Delay;
      target(a, "delay");
      a.ns = duration("the delay", true);
    } else if (w == "evict") {
      a.kind = ActionKind::Evict;
      ws();
      const size_t gstart = m_i;
      if (word() != "gpa") fail(gstart, "expected gpa=ADDRESS after 'evict', got " + got(gstart));
      expect('=', "after 'gpa'");
      a.gpa = page_gpa();
      a.size = kSchedulePageSize;
      ws();
      if (peek() == '+') {
        ++m_i;
        ws();
        const size_t sstart = m_i;
        a.size = number("a size in bytes after '+'");
        if (a.size == 0 || a.size % kSchedulePageSize != 0)
          fail(sstart, fmt::format("size {} is not a non-zero multiple of 4096 (0x1000)",
                                   shown(m_s.substr(sstart, m_i - sstart))));
      }
      if (a.size > UINT64_MAX - a.gpa)
        fail(gstart, fmt::format("the range 0x{:x}+0x{:x} runs past the end of the 64-bit address space", a.gpa,
                                 a.size));
    } else if (w == "ipi") {
      a.kind = ActionKind::Ipi;
      a.vcpu = cpu('v', "vCPU", "ipi");
      ws();
      const size_t vstart = m_i;
      const uint64_t v = number(fmt::format("a vector (16 to 255) after 'ipi v{}'", a.vcpu));
      // SDM Vol. 3A "Error Handling" (local APIC): vectors 0-15 are illegal for a fixed
      // interrupt (the receiver sets "Received Illegal Vector" and drops it).
      if (v < 16 || v > 255)
        fail(vstart, fmt::format("vector {} is out of range (16 to 255; 0 to 15 are illegal for a fixed interrupt)",
                                 shown(m_s.substr(vstart, m_i - vstart))));
      a.vector = static_cast<uint8_t>(v);
    } else if (w == "kvmclock") {
      a.kind = ActionKind::KvmclockUpdate;
      a.vcpu = cpu('v', "vCPU", "kvmclock");
    } else if (w == "steal") {
      a.kind = ActionKind::StealUpdate;
      a.vcpu = cpu('v', "vCPU", "steal");
    } else if (w == "pause") {
      a.kind = ActionKind::Pause;
      a.ns = duration("the pause's length", true);
    } else if (w == "store") {
      a.kind = ActionKind::Store;
      a.vcpu = cpu('v', "vCPU", "store");
    } else if (w == "run") {
      ws();
      const size_t rstart = m_i;
      const std::string_view r = word();
      if (r == "auto") {
        a.kind = ActionKind::RunAuto;
      } else if (cpu_word(r, 'v')) {
        a.kind = ActionKind::Run;
        a.vcpu = cpu_index(r, rstart, "vCPU");
      } else {
        fail(rstart, "expected a vCPU such as v0, or 'auto', after 'run', got " + got(rstart));
      }
    } else if (w == "stop") {
      a.kind = ActionKind::Stop;
    } else {
      fail(start, fmt::format("unknown action {} (expected {})", got(start), kActions));
    }
    return a;
  }

  std::string_view m_s;
  std::string_view m_origin;
  size_t m_i = 0;
};

// ---- the JSON section ----------------------------------------------------------------------

template <class J>
Schedule parse_json(const J& j, std::string_view file) {
  const auto fail = [&](const std::string& path, std::string_view problem) {
    throw ScheduleError(fmt::format("{}: {}: {}", file, path, problem));
  };
  const std::string base = "/schedule";
  if (!j.is_array()) fail(base, "must be an array of entries, got " + show(j));
  if (j.size() > kMaxScheduleEntries)
    fail(base, fmt::format("has {} entries, more than {}", j.size(), kMaxScheduleEntries));
  size_t text_bytes = 0;
  const auto text_of = [&](const J& v, const std::string& path) -> std::string_view {
    const std::string& s = v.template get_ref<const std::string&>();
    text_bytes += s.size();
    if (text_bytes > kMaxScheduleTextBytes)
      fail(path, fmt::format("the schedule's strings exceed 1 MiB ({} bytes) in all", kMaxScheduleTextBytes));
    return s;
  };
  Schedule out;
  out.entries.reserve(j.size());
  for (size_t i = 0; i < j.size(); ++i) {
    const std::string ip = fmt::format("{}/{}", base, i);
    const J& e = j[i];
    if (e.is_string()) {
      const std::string origin = fmt::format("{}: {}", file, ip);
      out.entries.push_back(Parser(text_of(e, ip), origin).single_entry());
      continue;
    }
    if (!e.is_object())
      fail(ip, "must be a string \"POINT: ACTION\" or an object with \"at\" and \"do\", got " + show(e));
    for (auto it = e.begin(); it != e.end(); ++it) {
      const std::string& k = it.key();
      if (k != "at" && k != "do" && k != "why")
        fail(ip + "/" + pointer_token(k),
             fmt::format("unknown key{} (allowed here: at, do, why)", k.empty() ? " \"\" (the empty string)" : ""));
    }
    ScheduleEntry entry;
    const auto at = e.find("at");
    const auto act = e.find("do");
    if (at == e.end()) fail(ip, "missing required key \"at\"");
    if (act == e.end()) fail(ip, "missing required key \"do\"");
    if (!at->is_string()) fail(ip + "/at", "must be a string such as \"v0.insn=1200\", got " + show(*at));
    entry.at = Parser(text_of(*at, ip + "/at"), fmt::format("{}: {}/at", file, ip)).single_point();
    if (!act->is_string()) fail(ip + "/do", "must be a string such as \"preempt v1 50us\", got " + show(*act));
    entry.action = Parser(text_of(*act, ip + "/do"), fmt::format("{}: {}/do", file, ip)).single_action();
    if (const auto why = e.find("why"); why != e.end()) {
      if (!why->is_string()) fail(ip + "/why", "must be a string, got " + show(*why));
      entry.why = why->template get<std::string>();
    }
    out.entries.push_back(std::move(entry));
  }
  return out;
}

}  // namespace

Schedule parse_schedule(std::string_view text, std::string_view origin) {
  return Parser(text, origin).schedule();
}

GuestPoint parse_point(std::string_view text, std::string_view origin) {
  return Parser(text, origin).single_point();
}

HostAction parse_action(std::string_view text, std::string_view origin) {
  return Parser(text, origin).single_action();
}

Schedule parse_schedule_json(const nlohmann::json& j, std::string_view file) { return parse_json(j, file); }
Schedule parse_schedule_json(const nlohmann::ordered_json& j, std::string_view file) { return parse_json(j, file); }

// ---- canonical form ------------------------------------------------------------------------

std::string format_duration(uint64_t ns) {
  if (ns != 0) {
    if (ns % 1'000'000'000 == 0) return fmt::format("{}s", ns / 1'000'000'000);
    if (ns % 1'000'000 == 0) return fmt::format("{}ms", ns / 1'000'000);
    if (ns % 1'000 == 0) return fmt::format("{}us", ns / 1'000);
  }
  return fmt::format("{}ns", ns);
}

std::string format_point(const GuestPoint& p) {
  switch (p.kind) {
    case GuestPoint::Kind::Insn: return fmt::format("v{}.insn={}", p.vcpu, p.insn);
    case GuestPoint::Kind::Rip: {
      std::string s = fmt::format("v{}.rip=", p.vcpu);
      if (p.symbol.empty()) {
        s += fmt::format("0x{:x}", p.rip);
      } else {
        s += p.symbol;
        if (p.sym_offset != 0) s += fmt::format("+0x{:x}", p.sym_offset);
      }
      if (p.hit != 1) s += fmt::format("#{}", p.hit);
      return s;
    }
    case GuestPoint::Kind::Time: return "t=" + format_duration(p.time_ns);
  }
  return "?";
}

std::string format_action(const HostAction& a) {
  const auto target = [&] {
    return a.by_token ? fmt::format("token=0x{:x}", a.token) : fmt::format("gpa=0x{:x}", a.gpa);
  };
  switch (a.kind) {
    case ActionKind::Preempt: return fmt::format("preempt v{} {}", a.vcpu, format_duration(a.ns));
    case ActionKind::Migrate: return fmt::format("migrate v{} p{}", a.vcpu, a.pcpu);
    case ActionKind::Complete: return "complete " + target();
    case ActionKind::Delay: return fmt::format("delay {} {}", target(), format_duration(a.ns));
    case ActionKind::Evict:
      return a.size == kSchedulePageSize ? fmt::format("evict gpa=0x{:x}", a.gpa)
                                         : fmt::format("evict gpa=0x{:x}+0x{:x}", a.gpa, a.size);
    case ActionKind::Ipi: return fmt::format("ipi v{} {}", a.vcpu, a.vector);
    case ActionKind::KvmclockUpdate: return fmt::format("kvmclock v{}", a.vcpu);
    case ActionKind::StealUpdate: return fmt::format("steal v{}", a.vcpu);
    case ActionKind::Pause: return "pause " + format_duration(a.ns);
    case ActionKind::Store: return fmt::format("store v{}", a.vcpu);
    case ActionKind::Run: return fmt::format("run v{}", a.vcpu);
    case ActionKind::RunAuto: return "run auto";
    case ActionKind::Stop: return "stop";
  }
  return "?";
}

std::string format_schedule(const Schedule& s) {
  std::string out;
  for (const ScheduleEntry& e : s.entries) {
    if (!out.empty()) out += "; ";
    out += format_point(e.at);
    out += ": ";
    out += format_action(e.action);
  }
  return out;
}

}  // namespace pvsim
