// The schedule syntax (scenarios/README.md "schedule"): host actions at exact guest points,
// as the `--schedule` string and as the scenario's `schedule` section. Every form parses to
// the struct it names, the canonical form parses back to the same struct, every bad input
// gets one exact line naming its position, and no input makes the parser do anything but
// return or throw ScheduleError.
#include "tools/platform/schedule.h"

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/prng.h"

using namespace pvsim;

namespace Catch {
template <>
struct StringMaker<GuestPoint> {
  static std::string convert(const GuestPoint& p) {
    return fmt::format("{} [kind {} rip 0x{:x} sym '{}' off 0x{:x}]", format_point(p), static_cast<int>(p.kind), p.rip,
                       p.symbol, p.sym_offset);
  }
};
template <>
struct StringMaker<HostAction> {
  static std::string convert(const HostAction& a) {
    return fmt::format("{} [kind {} v{} p{} ns {} gpa 0x{:x} size 0x{:x} by_token {} token 0x{:x} vector {}]",
                       format_action(a), static_cast<int>(a.kind), a.vcpu, a.pcpu, a.ns, a.gpa, a.size, a.by_token,
                       a.token, a.vector);
  }
};
template <>
struct StringMaker<Schedule> {
  static std::string convert(const Schedule& s) { return fmt::format("{{{}}}", format_schedule(s)); }
};
}  // namespace Catch

namespace {

// The message parse_schedule throws for `text`, or "(no error)".
std::string error_of(std::string_view text) {
  try {
    parse_schedule(text, "--schedule");
  } catch (const ScheduleError& e) {
    return e.what();
  }
  return "(no error)";
}

template <class J>
std::string json_error_of(const std::string& text) {
  try {
    parse_schedule_json(J::parse(text), "s.json");
  } catch (const ScheduleError& e) {
    return e.what();
  }
  return "(no error)";
}

GuestPoint insn(unsigned v, uint64_t n) {
  GuestPoint p;
  p.kind = GuestPoint::Kind::Insn;
  p.vcpu = v;
  p.insn = n;
  return p;
}
GuestPoint rip(unsigned v, uint64_t addr, uint64_t hit = 1) {
  GuestPoint p;
  p.kind = GuestPoint::Kind::Rip;
  p.vcpu = v;
  p.rip = addr;
  p.hit = hit;
  return p;
}
GuestPoint sym(unsigned v, std::string name, uint64_t off = 0, uint64_t hit = 1) {
  GuestPoint p;
  p.kind = GuestPoint::Kind::Rip;
  p.vcpu = v;
  p.symbol = std::move(name);
  p.sym_offset = off;
  p.hit = hit;
  return p;
}
GuestPoint at_time(uint64_t ns) {
  GuestPoint p;
  p.kind = GuestPoint::Kind::Time;
  p.time_ns = ns;
  return p;
}

HostAction act(ActionKind k) {
  HostAction a;
  a.kind = k;
  return a;
}
HostAction on_vcpu(ActionKind k, unsigned v) {
  HostAction a = act(k);
  a.vcpu = v;
  return a;
}
HostAction preempt(unsigned v, uint64_t ns) {
  HostAction a = on_vcpu(ActionKind::Preempt, v);
  a.ns = ns;
  return a;
}
HostAction migrate(unsigned v, unsigned p) {
  HostAction a = on_vcpu(ActionKind::Migrate, v);
  a.pcpu = p;
  return a;
}
HostAction by_gpa(ActionKind k, uint64_t gpa, uint64_t ns = 0) {
  HostAction a = act(k);
  a.gpa = gpa;
  a.ns = ns;
  return a;
}
HostAction by_token(ActionKind k, uint32_t token, uint64_t ns = 0) {
  HostAction a = act(k);
  a.by_token = true;
  a.token = token;
  a.ns = ns;
  return a;
}
HostAction evict(uint64_t gpa, uint64_t size) {
  HostAction a = act(ActionKind::Evict);
  a.gpa = gpa;
  a.size = size;
  return a;
}
HostAction ipi(unsigned v, uint8_t vector) {
  HostAction a = on_vcpu(ActionKind::Ipi, v);
  a.vector = vector;
  return a;
}
HostAction pause(uint64_t ns) {
  HostAction a = act(ActionKind::Pause);
  a.ns = ns;
  return a;
}

ScheduleEntry entry(GuestPoint p, HostAction a, std::string why = {}) {
  return ScheduleEntry{std::move(p), a, std::move(why)};
}

}  // namespace

TEST_CASE("schedule: every point form parses to its struct", "[schedule]") {
  const struct {
    const char* text;
    GuestPoint want;
  } cases[] = {
      {"v0.insn=1200", insn(0, 1200)},
      {"v3.insn=0", insn(3, 0)},
      {"v1023.insn=0xffffffffffffffff", insn(1023, UINT64_MAX)},
      {"v1.insn=18446744073709551615", insn(1, UINT64_MAX)},
      {"v1.rip=0x401000", rip(1, 0x401000)},
      {"v1.rip=0X40100A#3", rip(1, 0x40100a, 3)},
      {"v2.rip=0x0", rip(2, 0)},
      {"v1.rip=kvm_clock_read", sym(1, "kvm_clock_read")},
      {"v1.rip=kvm_clock_read+4#3", sym(1, "kvm_clock_read", 4, 3)},
      {"v1.rip=kvm_clock_read+0x10", sym(1, "kvm_clock_read", 0x10)},
      {"v0.rip=_start#18446744073709551615", sym(0, "_start", 0, UINT64_MAX)},
      {"v0.rip=.L$x.1_2", sym(0, ".L$x.1_2")},
      {"v0.rip=$a", sym(0, "$a")},
      {"t=0ns", at_time(0)},
      {"t=2ms", at_time(2'000'000)},
      {"t=1500ns", at_time(1500)},
      {"t=7us", at_time(7000)},
      {"t=3s", at_time(3'000'000'000)},
      {"t=1000000000s", at_time(kMaxScheduleNs)},
      {"t=0x10us", at_time(16'000)},
  };
  for (const auto& c : cases) {
    INFO(c.text);
    CHECK(parse_point(c.text, "at") == c.want);
  }
}

TEST_CASE("schedule: every action form parses to its struct", "[schedule]") {
  const struct {
    const char* text;
    HostAction want;
  } cases[] = {
      {"preempt v1 50us", preempt(1, 50'000)},
      {"preempt v0 1ns", preempt(0, 1)},
      {"migrate v1 p3", migrate(1, 3)},
      {"migrate v1023 p1023", migrate(1023, 1023)},
      {"complete gpa=0x5000", by_gpa(ActionKind::Complete, 0x5000)},
      {"complete gpa=0x0", by_gpa(ActionKind::Complete, 0)},
      {"complete token=0x1000", by_token(ActionKind::Complete, 0x1000)},
      {"complete token=0x0", by_token(ActionKind::Complete, 0)},
      {"complete token=0xfffffffe", by_token(ActionKind::Complete, 0xfffffffe)},
      {"delay gpa=0x7000 2ms", by_gpa(ActionKind::Delay, 0x7000, 2'000'000)},
      {"delay token=0x1001 150us", by_token(ActionKind::Delay, 0x1001, 150'000)},
      {"evict gpa=0x5000", evict(0x5000, 4096)},
      {"evict gpa=0x5000+8192", evict(0x5000, 8192)},
      {"evict gpa=0x5000+0x100000", evict(0x5000, 0x100000)},
      {"evict gpa=0xffffffffffffe000", evict(0xffffffffffffe000, 4096)},
      {"ipi v2 236", ipi(2, 236)},
      {"ipi v2 0xec", ipi(2, 0xec)},
      {"ipi v0 16", ipi(0, 16)},
      {"ipi v0 255", ipi(0, 255)},
      {"kvmclock v1", on_vcpu(ActionKind::KvmclockUpdate, 1)},
      {"steal v3", on_vcpu(ActionKind::StealUpdate, 3)},
      {"pause 100us", pause(100'000)},
      {"store v0", on_vcpu(ActionKind::Store, 0)},
      {"run v1", on_vcpu(ActionKind::Run, 1)},
      {"run auto", act(ActionKind::RunAuto)},
      {"stop", act(ActionKind::Stop)},
  };
  for (const auto& c : cases) {
    INFO(c.text);
    CHECK(parse_action(c.text, "do") == c.want);
    // The canonical form of each parses back to the same action.
    CHECK(parse_action(format_action(c.want), "do") == c.want);
  }
}

TEST_CASE("schedule: the string form, its separators and free whitespace", "[schedule]") {
  CHECK(parse_schedule("v0.insn=1200: preempt v1 50us; t=2ms: pause 100us", "o") ==
        Schedule{{entry(insn(0, 1200), preempt(1, 50'000)), entry(at_time(2'000'000), pause(100'000))}});
  CHECK(parse_schedule("v1.rip=kvm_clock_read+4#3: store v0", "o") ==
        Schedule{{entry(sym(1, "kvm_clock_read", 4, 3), on_vcpu(ActionKind::Store, 0))}});
  CHECK(parse_schedule("v0.insn=105: run v1; v1.insn=230: run v0", "o") ==
        Schedule{{entry(insn(0, 105), on_vcpu(ActionKind::Run, 1)), entry(insn(1, 230), on_vcpu(ActionKind::Run, 0))}});
  // Whitespace (space, tab, CR, LF) around every token, a unit apart from its number, a
  // trailing ';' and the same text packed tight all mean the same.
  const Schedule want{{entry(rip(2, 0x401000, 2), migrate(1, 3)), entry(sym(0, "f", 8), by_token(ActionKind::Delay, 0x1000, 5'000'000))}};
  CHECK(parse_schedule(" \t v2 . rip = 0X401000 # 2 :\n migrate  v1   p3 ;\r\n v0 .rip= f + 8 : delay token = 0x1000 5 ms ; ", "o") == want);
  CHECK(parse_schedule("v2.rip=0x401000#2:migrate v1 p3;v0.rip=f+8:delay token=0x1000 5ms", "o") == want);
  CHECK(parse_schedule("v2.rip=0x401000#2:migrate v1 p3;v0.rip=f+8:delay token=0x1000 5ms;", "o") == want);
  // Entries keep the order written, duplicates included.
  const Schedule three = parse_schedule("t=2ms: stop; t=1ms: stop; t=2ms: stop", "o");
  REQUIRE(three.entries.size() == 3);
  CHECK(three.entries[0].at.time_ns == 2'000'000);
  CHECK(three.entries[1].at.time_ns == 1'000'000);
  CHECK(three.entries[2] == three.entries[0]);
}

TEST_CASE("schedule: the canonical form", "[schedule]") {
  CHECK(format_duration(0) == "0ns");
  CHECK(format_duration(1500) == "1500ns");
  CHECK(format_duration(2'000'000) == "2ms");
  CHECK(format_duration(2'500'000) == "2500us");
  CHECK(format_duration(60'000'000'000) == "60s");
  CHECK(format_duration(1'000'000'001) == "1000000001ns");
  CHECK(format_duration(kMaxScheduleNs) == "1000000000s");
  CHECK(format_point(insn(0, 1200)) == "v0.insn=1200");
  CHECK(format_point(rip(1, 0x401000)) == "v1.rip=0x401000");
  CHECK(format_point(rip(1, 0x401000, 3)) == "v1.rip=0x401000#3");
  CHECK(format_point(sym(1, "sym", 4, 2)) == "v1.rip=sym+0x4#2");
  CHECK(format_point(sym(1, "sym")) == "v1.rip=sym");
  CHECK(format_point(at_time(2'000'000)) == "t=2ms");
  CHECK(format_action(preempt(1, 50'000)) == "preempt v1 50us");
  CHECK(format_action(migrate(1, 3)) == "migrate v1 p3");
  CHECK(format_action(by_gpa(ActionKind::Complete, 0xABC000)) == "complete gpa=0xabc000");
  CHECK(format_action(by_token(ActionKind::Complete, 0x1000)) == "complete token=0x1000");
  CHECK(format_action(by_gpa(ActionKind::Delay, 0x5000, 1'000'000)) == "delay gpa=0x5000 1ms");
  CHECK(format_action(by_token(ActionKind::Delay, 0x2001, 1)) == "delay token=0x2001 1ns");
  CHECK(format_action(evict(0x5000, 4096)) == "evict gpa=0x5000");
  CHECK(format_action(evict(0x5000, 8192)) == "evict gpa=0x5000+0x2000");
  CHECK(format_action(ipi(3, 0xec)) == "ipi v3 236");
  CHECK(format_action(on_vcpu(ActionKind::KvmclockUpdate, 1)) == "kvmclock v1");
  CHECK(format_action(on_vcpu(ActionKind::StealUpdate, 2)) == "steal v2");
  CHECK(format_action(pause(100'000)) == "pause 100us");
  CHECK(format_action(on_vcpu(ActionKind::Store, 0)) == "store v0");
  CHECK(format_action(on_vcpu(ActionKind::Run, 4)) == "run v4");
  CHECK(format_action(act(ActionKind::RunAuto)) == "run auto");
  CHECK(format_action(act(ActionKind::Stop)) == "stop");
  CHECK(format_schedule(Schedule{}) == "");
  CHECK(format_schedule(parse_schedule(" t = 2000 us :pause 0x64 us ;v0.rip=f+0#1:stop;", "o")) ==
        "t=2ms: pause 100us; v0.rip=f: stop");
  // `why` is not part of the string form.
  CHECK(format_schedule(Schedule{{entry(at_time(1000), act(ActionKind::Stop), "because")}}) == "t=1us: stop");
  CHECK(std::string(action_name(ActionKind::KvmclockUpdate)) == "kvmclock");
  CHECK(std::string(action_name(ActionKind::RunAuto)) == "run");
}

namespace {

// ---- random schedules from a fixed seed ----

uint64_t any_u64(SplitMix64& r) {
  switch (r.below(4)) {
    case 0: return r.next();
    case 1: return r.below(16);
    case 2: return UINT64_MAX - r.below(4);
    default: return r.below(1'000'000);
  }
}

uint64_t any_duration(SplitMix64& r, bool positive) {
  static constexpr uint64_t kScale[] = {1, 1'000, 1'000'000, 1'000'000'000};
  const uint64_t scale = kScale[r.below(4)];
  const uint64_t top = kMaxScheduleNs / scale;
  uint64_t v = r.one_in(3) ? r.below(top + 1) : r.below(5000);
  if (r.one_in(50)) v = top;
  if (positive && v == 0) v = 1;
  return v * scale;
}

unsigned any_cpu(SplitMix64& r) {
  return static_cast<unsigned>(r.one_in(8) ? kMaxScheduleCpuIndex - r.below(2) : r.below(8));
}

std::string any_symbol(SplitMix64& r) {
  static constexpr std::string_view kStart = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_.$";
  static constexpr std::string_view kRest = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_.$0123456789";
  std::string s(1, kStart[r.below(kStart.size())]);
  for (uint64_t n = r.below(24); n > 0; --n) s += kRest[r.below(kRest.size())];
  return s;
}

GuestPoint any_point(SplitMix64& r) {
  switch (r.below(3)) {
    case 0: return insn(any_cpu(r), any_u64(r));
    case 1: {
      const uint64_t hit = r.one_in(2) ? 1 : std::max<uint64_t>(1, any_u64(r));
      if (r.one_in(2)) return rip(any_cpu(r), any_u64(r), hit);
      return sym(any_cpu(r), any_symbol(r), r.one_in(2) ? 0 : any_u64(r), hit);
    }
    default: return at_time(any_duration(r, false));
  }
}

uint64_t any_page(SplitMix64& r) { return r.one_in(4) ? r.below(64) * kSchedulePageSize : r.next() & ~0xfffull; }

HostAction any_target(SplitMix64& r, ActionKind k) {
  if (r.one_in(2)) return by_gpa(k, any_page(r));
  return by_token(k, static_cast<uint32_t>(r.one_in(2) ? r.below(0x10000) : r.below(0xffffffffull)));
}

HostAction any_action(SplitMix64& r) {
  const auto k = static_cast<ActionKind>(r.below(static_cast<uint64_t>(ActionKind::Stop) + 1));
  switch (k) {
    case ActionKind::Preempt: return preempt(any_cpu(r), any_duration(r, true));
    case ActionKind::Migrate: return migrate(any_cpu(r), any_cpu(r));
    case ActionKind::Complete: return any_target(r, k);
    case ActionKind::Delay: {
      HostAction a = any_target(r, k);
      a.ns = any_duration(r, true);
      return a;
    }
    case ActionKind::Evict: {
      const uint64_t size = r.one_in(2) ? kSchedulePageSize : (1 + r.below(1024)) * kSchedulePageSize;
      const uint64_t gpa = r.one_in(4) ? r.below(64) * kSchedulePageSize
                                       : r.below((UINT64_MAX - size) / kSchedulePageSize + 1) * kSchedulePageSize;
      return evict(gpa, size);
    }
    case ActionKind::Ipi: return ipi(any_cpu(r), static_cast<uint8_t>(16 + r.below(240)));
    case ActionKind::Pause: return pause(any_duration(r, true));
    case ActionKind::RunAuto:
    case ActionKind::Stop: return act(k);
    default: return on_vcpu(k, any_cpu(r));
  }
}

Schedule any_schedule(SplitMix64& r) {
  Schedule s;
  for (uint64_t n = 1 + r.below(6); n > 0; --n) s.entries.push_back(entry(any_point(r), any_action(r)));
  return s;
}

// An independent writer of the same schedule in a random legal spelling (not the
// canonical one): whitespace between tokens, decimal or hex of either case, any unit that
// divides the duration, explicit defaults (#1, +0, +4096).
struct Spelling {
  SplitMix64& r;
  std::string ws() {
    static constexpr const char* kWs[] = {"", "", "", " ", "  ", "\t", "\n", "\r\n"};
    return kWs[r.below(8)];
  }
  std::string num(uint64_t v) {
    switch (r.below(4)) {
      case 0: return fmt::format("0x{:x}", v);
      case 1: return fmt::format("0X{:X}", v);
      case 2: return fmt::format("0x000{:x}", v);
      default: return fmt::format("{}", v);
    }
  }
  std::string hex(uint64_t v) { return r.one_in(2) ? fmt::format("0x{:x}", v) : fmt::format("0X{:X}", v); }
  std::string duration(uint64_t ns) {
    static constexpr struct {
      uint64_t scale;
      const char* unit;
    } kUnits[] = {{1, "ns"}, {1'000, "us"}, {1'000'000, "ms"}, {1'000'000'000, "s"}};
    std::vector<size_t> fit;
    for (size_t i = 0; i < 4; ++i)
      if (ns % kUnits[i].scale == 0) fit.push_back(i);
    const auto& u = kUnits[fit[r.below(fit.size())]];
    return ws() + num(ns / u.scale) + ws() + u.unit;
  }
  std::string cpu(char prefix, unsigned i) { return ws() + prefix + (r.one_in(8) ? "00" : "") + std::to_string(i); }
  std::string point(const GuestPoint& p) {
    switch (p.kind) {
      case GuestPoint::Kind::Insn: return cpu('v', p.vcpu) + ws() + "." + ws() + "insn" + ws() + "=" + ws() + num(p.insn);
      case GuestPoint::Kind::Rip: {
        std::string s = cpu('v', p.vcpu) + ws() + "." + ws() + "rip" + ws() + "=" + ws();
        if (p.symbol.empty()) s += hex(p.rip);
        else s += p.symbol;
        if (!p.symbol.empty() && (p.sym_offset != 0 || r.one_in(4))) s += ws() + "+" + ws() + num(p.sym_offset);
        if (p.hit != 1 || r.one_in(4)) s += ws() + "#" + ws() + num(p.hit);
        return s;
      }
      case GuestPoint::Kind::Time: return ws() + "t" + ws() + "=" + duration(p.time_ns);
    }
    return "?";
  }
  std::string target(const HostAction& a) {
    return a.by_token ? ws() + " token" + ws() + "=" + ws() + hex(a.token) : ws() + " gpa" + ws() + "=" + ws() + hex(a.gpa);
  }
  std::string action(const HostAction& a) {
    // A keyword and what follows it need at least one space between them.
    const std::string sp = fmt::format(" {}", ws());
    switch (a.kind) {
      case ActionKind::Preempt: return "preempt" + sp + cpu('v', a.vcpu) + " " + duration(a.ns);
      case ActionKind::Migrate: return "migrate" + sp + cpu('v', a.vcpu) + " " + cpu('p', a.pcpu);
      case ActionKind::Complete: return "complete" + target(a);
      case ActionKind::Delay: return "delay" + target(a) + " " + duration(a.ns);
      case ActionKind::Evict: {
        std::string s = "evict" + sp + "gpa" + ws() + "=" + ws() + hex(a.gpa);
        if (a.size != kSchedulePageSize || r.one_in(3)) s += ws() + "+" + ws() + num(a.size);
        return s;
      }
      case ActionKind::Ipi: return "ipi" + sp + cpu('v', a.vcpu) + " " + ws() + num(a.vector);
      case ActionKind::KvmclockUpdate: return "kvmclock" + sp + cpu('v', a.vcpu);
      case ActionKind::StealUpdate: return "steal" + sp + cpu('v', a.vcpu);
      case ActionKind::Pause: return "pause" + sp + duration(a.ns);
      case ActionKind::Store: return "store" + sp + cpu('v', a.vcpu);
      case ActionKind::Run: return "run" + sp + cpu('v', a.vcpu);
      case ActionKind::RunAuto: return "run" + sp + "auto";
      case ActionKind::Stop: return "stop";
    }
    return "?";
  }
  std::string schedule(const Schedule& s) {
    std::string out;
    for (size_t i = 0; i < s.entries.size(); ++i) {
      if (i > 0) out += ws() + ";";
      out += ws() + point(s.entries[i].at) + ws() + ":" + ws() + action(s.entries[i].action);
    }
    if (r.one_in(3)) out += ws() + ";";
    return out + ws();
  }
};

}  // namespace

TEST_CASE("schedule: random schedules survive format and parse, in any spelling", "[schedule]") {
  SplitMix64 r(0x5c4ed01e);
  Spelling spell{r};
  std::vector<bool> kinds_seen(static_cast<size_t>(ActionKind::Stop) + 1);
  for (int i = 0; i < 3000; ++i) {
    const Schedule s = any_schedule(r);
    for (const ScheduleEntry& e : s.entries) kinds_seen[static_cast<size_t>(e.action.kind)] = true;
    const std::string canonical = format_schedule(s);
    INFO(canonical);
    REQUIRE(parse_schedule(canonical, "o") == s);
    CHECK(format_schedule(parse_schedule(canonical, "o")) == canonical);
    const std::string other = spell.schedule(s);
    INFO(other);
    REQUIRE(parse_schedule(other, "o") == s);
  }
  for (size_t k = 0; k < kinds_seen.size(); ++k) {
    INFO("action kind " << k);
    CHECK(kinds_seen[k]);
  }
}

TEST_CASE("schedule: bad inputs, each with its exact message", "[schedule]") {
  const std::string kActions =
      "(preempt, migrate, complete, delay, evict, ipi, kvmclock, steal, pause, store, run, stop)";
  const std::string kList = "(expected " + kActions.substr(1);
  const std::string kPoint = "expected a guest point (vN.insn=COUNT, vN.rip=ADDRESS or t=TIME), got ";
  const struct {
    std::string text;
    std::string message;
  } cases[] = {
      {"", "position 1: empty schedule (expected at least one entry POINT: ACTION, such as t=1ms: stop)"},
      {" \t\n ", "position 5: empty schedule (expected at least one entry POINT: ACTION, such as t=1ms: stop)"},
      {";", "position 1: " + kPoint + "';'"},
      {"v0.insn=5: stop;;", "position 17: " + kPoint + "';'"},
      {"v0.insn=1200: preemt v1 50us", "position 15: unknown action 'preemt' " + kList},
      {"t=1ms: Stop", "position 8: unknown action 'Stop' " + kList},
      {"t=1ms: st\xc3\xb6p", "position 8: unknown action 'st\xc3\xb6p' " + kList},
      {"t=1ms: 5", "position 8: expected an action " + kActions + ", got '5'"},
      {"t=1ms:", "position 7: expected an action " + kActions + ", got the end of the text"},
      {"v0.insn=5 stop", "position 11: expected ':' after the guest point, got 'stop'"},
      {"t=1ms: stop now", "position 13: expected ';' or the end of the text after the action, got 'now'"},
      {"t=1ms: stop \x1b[2J", "position 13: expected ';' or the end of the text after the action, got '\\u001b'"},
      {"x.insn=1: stop", "position 1: " + kPoint + "'x.insn'"},
      {"v.insn=1: stop", "position 1: " + kPoint + "'v.insn'"},
      {"v0insn=1: stop", "position 1: " + kPoint + "'v0insn'"},
      {"v1024.insn=1: stop", "position 1: vCPU index 1024 is out of range (at most 1023)"},
      {"v99999999999999999999999.insn=1: stop",
       "position 1: vCPU index 99999999999999999999999 is out of range (at most 1023)"},
      {"v0:insn=1: stop", "position 3: expected '.insn=' or '.rip=' after 'v0', got ':'"},
      {"v0.ins=1: stop", "position 4: expected 'insn' or 'rip' after 'v0.', got 'ins'"},
      {"v0.insn 1: stop", "position 9: expected '=' after 'insn', got '1'"},
      {"v0.insn=: stop", "position 9: expected an instruction count, got ':'"},
      {"v0.insn=0x: stop", "position 11: expected hex digits after '0x', got ':'"},
      {"v0.insn=18446744073709551616: stop", "position 9: number '18446744073709551616' does not fit in 64 bits"},
      {"v0.insn=0x10000000000000000: stop", "position 9: number '0x10000000000000000' does not fit in 64 bits"},
      {"v0.rip=4096: stop", "position 8: expected an address in hex (0x...), got '4096'"},
      {"v0.rip=0x1000+4: stop", "position 14: an offset (+N) may only follow a symbol; add it to the address instead"},
      {"v0.rip=-1: stop", "position 8: expected an address (0x...) or a symbol after 'rip=', got '-'"},
      {"v0.rip=foo+: stop", "position 12: expected an offset after '+', got ':'"},
      {"v0.rip=foo#0: stop",
       "position 12: the hit count must be at least 1 (#1 is the first time the vCPU gets there)"},
      {"v0.rip=foo#: stop", "position 12: expected a hit count after '#', got ':'"},
      {"t: stop", "position 2: expected '=' after 't', got ':'"},
      {"t=5: stop", "position 4: expected a unit after 5 (ns, us, ms or s), got ':'"},
      {"t=5xs: stop", "position 4: unknown unit 'xs' (expected ns, us, ms or s)"},
      {"t=ms: stop",
       "position 3: expected a virtual time such as 50us (a number, then ns, us, ms or s), got 'ms'"},
      {"t=1000000001s: stop", "position 3: 1000000001s is more than 10^18 ns, the longest run there can be"},
      {"t=18446744073709551615ns: stop",
       "position 3: 18446744073709551615ns is more than 10^18 ns, the longest run there can be"},
      {"t=1ms: preempt v1 0us", "position 19: the preemption's length must be more than 0"},
      {"t=1ms: preempt 50us", "position 16: expected a vCPU such as v0 after 'preempt', got '50us'"},
      {"t=1ms: preempt v1",
       "position 18: expected the preemption's length such as 50us (a number, then ns, us, ms or s), got the end of "
       "the text"},
      {"t=1ms: migrate v1 3", "position 19: expected a pCPU such as p0 after 'migrate v1', got '3'"},
      {"t=1ms: migrate v1 p1024", "position 19: pCPU index 1024 is out of range (at most 1023)"},
      {"t=1ms: complete 0x5000", "position 17: expected gpa=ADDRESS or token=TOKEN after 'complete', got '0x5000'"},
      {"t=1ms: complete gpa=0x5123",
       "position 21: gpa 0x5123 is not page-aligned (a multiple of 0x1000); its page is 0x5000"},
      {"t=1ms: complete gpa=20480", "position 21: expected a guest-physical address in hex (0x...), got '20480'"},
      {"t=1ms: complete token=0xffffffff",
       "position 23: token 0xffffffff is the wake-all, which no fault-in stands behind"},
      {"t=1ms: complete token=0x100000000",
       "position 23: token 0x100000000 does not fit in 32 bits (tokens are u32)"},
      {"t=1ms: delay gpa=0x5000 0ms", "position 25: the delay must be more than 0"},
      {"t=1ms: delay ram=0x5000 1ms", "position 14: expected gpa=ADDRESS or token=TOKEN after 'delay', got 'ram'"},
      {"t=1ms: evict 0x5000", "position 14: expected gpa=ADDRESS after 'evict', got '0x5000'"},
      {"t=1ms: evict gpa=0x5000+100", "position 25: size '100' is not a non-zero multiple of 4096 (0x1000)"},
      {"t=1ms: evict gpa=0x5000+0", "position 25: size '0' is not a non-zero multiple of 4096 (0x1000)"},
      {"t=1ms: evict gpa=0xfffffffffffff000",
       "position 14: the range 0xfffffffffffff000+0x1000 runs past the end of the 64-bit address space"},
      {"t=1ms: evict gpa=0x1000+0xfffffffffffff000",
       "position 14: the range 0x1000+0xfffffffffffff000 runs past the end of the 64-bit address space"},
      {"t=1ms: ipi v1 15",
       "position 15: vector '15' is out of range (16 to 255; 0 to 15 are illegal for a fixed interrupt)"},
      {"t=1ms: ipi v1 0x100",
       "position 15: vector '0x100' is out of range (16 to 255; 0 to 15 are illegal for a fixed interrupt)"},
      {"t=1ms: ipi v1", "position 14: expected a vector (16 to 255) after 'ipi v1', got the end of the text"},
      {"t=1ms: kvmclock", "position 16: expected a vCPU such as v0 after 'kvmclock', got the end of the text"},
      {"t=1ms: steal p1", "position 14: expected a vCPU such as v0 after 'steal', got 'p1'"},
      {"t=1ms: store v1x", "position 14: expected a vCPU such as v0 after 'store', got 'v1x'"},
      {"t=1ms: pause 0s", "position 14: the pause's length must be more than 0"},
      {"t=1ms: run", "position 11: expected a vCPU such as v0, or 'auto', after 'run', got the end of the text"},
      {"t=1ms: run Auto", "position 12: expected a vCPU such as v0, or 'auto', after 'run', got 'Auto'"},
      {"t=1ms: run v2000", "position 12: vCPU index 2000 is out of range (at most 1023)"},
  };
  STATIC_REQUIRE(sizeof(cases) / sizeof(cases[0]) >= 30);
  for (const auto& c : cases) {
    INFO(c.text);
    CHECK(error_of(c.text) == "--schedule: " + c.message);
  }
}

TEST_CASE("schedule: bounds on the text and on the entries", "[schedule]") {
  // 100000 entries of 10 characters: 10^6 bytes, inside 1 MiB.
  std::string text;
  for (int i = 0; i < 100'000; ++i) text += "t=1s:stop;";
  const Schedule s = parse_schedule(text, "o");
  CHECK(s.entries.size() == 100'000);
  CHECK(s.entries.back() == entry(at_time(1'000'000'000), act(ActionKind::Stop)));
  CHECK(error_of(text + "t=1s:stop") == "--schedule: position 1000001: more than 100000 entries");
  std::string long_text = "t=1s: stop;" + std::string(kMaxScheduleTextBytes, ' ');
  CHECK(error_of(long_text) == "--schedule: position 1048577: the text is longer than 1 MiB (1048576 bytes)");
  long_text.resize(kMaxScheduleTextBytes);
  CHECK(parse_schedule(long_text, "o").entries.size() == 1);
}

TEST_CASE("schedule: mangled schedules give one line or parse, never anything else", "[schedule]") {
  // Bytes that matter to the grammar, plus the awkward ones: NUL, DEL, a lone UTF-8 lead
  // byte, a continuation byte, 0xff.
  static constexpr char kBytes[] = {';', ':', '#', '+', '=', '.', 'x', 'X', 'v', 'p', 't', '0', '9', 'f',
                                    's', ' ', '\t', '\n', '\0', '\x7f', '\xc3', '\x80', '\xff', '$', '_'};
  SplitMix64 r(0xf022);
  int parsed = 0, refused = 0;
  for (int i = 0; i < 4000; ++i) {
    std::string text = format_schedule(any_schedule(r));
    for (uint64_t m = 1 + r.below(3); m > 0; --m) {
      const size_t at = r.below(text.size() + 1);
      switch (r.below(4)) {
        case 0:
          if (at < text.size()) text.erase(at, 1 + r.below(4));
          break;
        case 1: text.insert(at, 1, kBytes[r.below(sizeof(kBytes))]); break;
        case 2:
          if (at < text.size()) text[at] = kBytes[r.below(sizeof(kBytes))];
          break;
        default: text.insert(at, text.substr(r.below(text.size() + 1), r.below(12))); break;
      }
    }
    INFO(text);
    try {
      const Schedule s = parse_schedule(text, "--schedule");
      ++parsed;
      CHECK(parse_schedule(format_schedule(s), "o") == s);
    } catch (const ScheduleError& e) {
      ++refused;
      const std::string msg = e.what();
      CHECK(msg.rfind("--schedule: position ", 0) == 0);
      CHECK(msg.find_first_of(std::string("\n\r\0\x1b", 4)) == std::string::npos);
      CHECK(msg.size() < 400);
    }
    // Anything else thrown fails the test case here.
  }
  // Both outcomes occur, so neither branch is dead.
  CHECK(parsed > 100);
  CHECK(refused > 1000);
}

TEST_CASE("schedule: the JSON section, strings and objects", "[schedule]") {
  const auto j = nlohmann::ordered_json::parse(R"([
      "v0.insn=1200: preempt v1 50us",
      {"at": "v1.rip=kvm_clock_read+4#3", "do": "store v0", "why": "the store lands mid-read"},
      {"do": "pause 100us", "at": " t = 2ms "}
    ])");
  const Schedule want{{entry(insn(0, 1200), preempt(1, 50'000)),
                       entry(sym(1, "kvm_clock_read", 4, 3), on_vcpu(ActionKind::Store, 0), "the store lands mid-read"),
                       entry(at_time(2'000'000), pause(100'000))}};
  CHECK(parse_schedule_json(j, "s.json") == want);
  // The other JSON flavour takes the same path.
  CHECK(parse_schedule_json(nlohmann::json(j), "s.json") == want);
  CHECK(parse_schedule_json(nlohmann::ordered_json::array(), "s.json").entries.empty());
  // Same entries as the string form, minus `why`.
  Schedule no_why = want;
  no_why.entries[1].why.clear();
  CHECK(parse_schedule(format_schedule(want), "o") == no_why);
}

TEST_CASE("schedule: JSON section errors name the JSON pointer", "[schedule]") {
  using OJ = nlohmann::ordered_json;
  const std::string kActions =
      "(preempt, migrate, complete, delay, evict, ipi, kvmclock, steal, pause, store, run, stop)";
  const std::string kList = "(expected " + kActions.substr(1);
  const struct {
    std::string json;
    std::string message;
  } cases[] = {
      {R"({})", "/schedule: must be an array of entries, got {}"},
      {R"("t=1ms: stop")", "/schedule: must be an array of entries, got \"t=1ms: stop\""},
      {R"(["t=1ms: stop", 5])",
       "/schedule/1: must be a string \"POINT: ACTION\" or an object with \"at\" and \"do\", got 5"},
      {R"([null])", "/schedule/0: must be a string \"POINT: ACTION\" or an object with \"at\" and \"do\", got null"},
      {R"([{"at": "t=1ms"}])", "/schedule/0: missing required key \"do\""},
      {R"([{"do": "stop"}])", "/schedule/0: missing required key \"at\""},
      {R"([{"at": "t=1ms", "do": "stop", "when": 1}])", "/schedule/0/when: unknown key (allowed here: at, do, why)"},
      {R"([{"zz": 1, "at": "t=1ms", "do": "stop", "aa": 1}])",
       "/schedule/0/zz: unknown key (allowed here: at, do, why)"},
      {R"([{"at": "t=1ms", "do": "stop", "": 1}])",
       "/schedule/0/: unknown key \"\" (the empty string) (allowed here: at, do, why)"},
      {R"([{"at": "t=1ms", "do": "stop", "a/b~\n": 1}])",
       "/schedule/0/a~1b~0\\n: unknown key (allowed here: at, do, why)"},
      {R"([{"at": 5, "do": "stop"}])", "/schedule/0/at: must be a string such as \"v0.insn=1200\", got 5"},
      {R"([{"at": "t=1ms", "do": ["stop"]}])",
       "/schedule/0/do: must be a string such as \"preempt v1 50us\", got [\"stop\"]"},
      {R"([{"at": "t=1ms", "do": "stop", "why": 1}])", "/schedule/0/why: must be a string, got 1"},
      {R"(["t=1ms: stop", "t=1ms: stop; t=2ms: stop"])",
       "/schedule/1: position 12: expected the end of the entry, got ';' (one entry per array element)"},
      {R"(["t=1ms: stop;"])",
       "/schedule/0: position 12: expected the end of the entry, got ';' (one entry per array element)"},
      {R"(["t=1ms: preemt v1 1us"])", "/schedule/0: position 8: unknown action 'preemt' " + kList},
      {R"(["", "t=1ms: stop"])",
       "/schedule/0: position 1: expected a guest point (vN.insn=COUNT, vN.rip=ADDRESS or t=TIME), got the end of "
       "the text"},
      {R"(["t=1ms: stop", {"at": "t=1ms: stop", "do": "stop"}])",
       "/schedule/1/at: position 6: expected the end of the guest point, got ':'"},
      {R"(["t=1ms: stop", {"at": "t=1ms", "do": "stop; t=2ms: stop"}])",
       "/schedule/1/do: position 5: expected the end of the action, got ';'"},
      {R"(["t=1ms: stop", "t=2ms: stop", {"at": "v0.insn=1", "do": "preempt v9 0ms"}])",
       "/schedule/2/do: position 12: the preemption's length must be more than 0"},
      {R"([{"at": "t=1ms", "do": ""}])",
       "/schedule/0/do: position 1: expected an action " + kActions + ", got the end of the text"},
      {R"([{"at": "v0.rip=\u001b[31m", "do": "stop"}])",
       "/schedule/0/at: position 8: expected an address (0x...) or a symbol after 'rip=', got '\\u001b'"},
  };
  for (const auto& c : cases) {
    INFO(c.json);
    CHECK(json_error_of<OJ>(c.json) == "s.json: " + c.message);
  }
  // With nlohmann::json (keys sorted), the first unknown key is the first in that order.
  CHECK(json_error_of<nlohmann::json>(R"([{"zz": 1, "at": "t=1ms", "do": "stop", "aa": 1}])") ==
        "s.json: /schedule/0/aa: unknown key (allowed here: at, do, why)");
}

TEST_CASE("schedule: the JSON section's bounds", "[schedule]") {
  using OJ = nlohmann::ordered_json;
  OJ many = OJ::array();
  for (size_t i = 0; i < kMaxScheduleEntries; ++i) many.push_back("t=1s:stop");
  CHECK(parse_schedule_json(many, "s.json").entries.size() == kMaxScheduleEntries);
  many.push_back("t=1s:stop");
  CHECK_THROWS_WITH(parse_schedule_json(many, "s.json"), "s.json: /schedule: has 100001 entries, more than 100000");
  // 1 MiB of text in all: two strings of 600 KiB pass one by one but not together.
  const std::string big = "t=1s: stop" + std::string(600 << 10, ' ');
  CHECK(parse_schedule_json(OJ::array({big}), "s.json").entries.size() == 1);
  CHECK_THROWS_WITH(parse_schedule_json(OJ::array({big, OJ{{"at", big}, {"do", "stop"}}}), "s.json"),
                    "s.json: /schedule/1/at: the schedule's strings exceed 1 MiB (1048576 bytes) in all");
}
