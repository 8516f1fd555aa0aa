// `pvsim diff` (tools/platform/trace_diff.h): reading text and JSON Lines traces, the first
// difference with its context, --ignore-time, --vcpu, and every kind of bad input.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <cctype>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "core/trace.h"
#include "tools/platform/platform.h"
#include "tools/platform/trace_diff.h"

using namespace pvsim;

namespace {

// A trace written by a real Tracer, in both forms.
struct Written {
  std::ostringstream text, jsonl;
  Tracer t;
  Written() {
    t.set_text_output(&text);
    t.set_jsonl_output(&jsonl);
  }
};

// (vCPU, time in ns, "event: text") → the canonical text of those events.
struct Ev {
  unsigned vcpu;
  uint64_t ns;
  std::string body;
};
std::string text_of(const std::vector<Ev>& evs) {
  std::string out;
  for (const Ev& e : evs) out += fmt::format("CPU {}/KVM-{} [{:03}] {}.{:09}: {}\n", e.vcpu, e.vcpu, e.vcpu, e.ns / 1'000'000'000u, e.ns % 1'000'000'000u, e.body);
  return out;
}

std::vector<Ev> numbered(unsigned n, unsigned vcpu = 0) {
  std::vector<Ev> evs;
  for (unsigned i = 1; i <= n; ++i) evs.push_back({vcpu, 1000u * i, fmt::format("kvm_entry: vcpu {}, rip 0x{:x}", vcpu, i)});
  return evs;
}

TraceDiffResult diff(const std::string& a, const std::string& b, TraceDiffOptions o = {}) {
  std::istringstream ia(a), ib(b);
  TraceReader ra(ia, "a.txt"), rb(ib, "b.txt");
  return diff_traces(ra, rb, o);
}

// The message diff() fails with on bad input ("" when it does not fail).
std::string diff_error(const std::string& a, const std::string& b) {
  try {
    (void)diff(a, b);
  } catch (const TraceDiffError& e) {
    return e.what();
  }
  return {};
}

}  // namespace

TEST_CASE("trace diff: the difference block GoldenChecker prints too", "[trace-diff]") {
  CHECK(format_difference({{7, "seven", false}}, {{8, "a\x1b[31m", false}}, {{8, {}, true}}) ==
        "           7  seven\n"
        "  -        8  a\\u001b[31m\n"
        "  +        8  (end of trace)\n");
  CHECK(format_difference({}, {}, {}).empty());
  RecentLines r(3);
  CHECK(r.lines().empty());
  for (uint64_t i = 1; i <= 5; ++i) r.push(i, std::to_string(i));
  const auto l = r.lines();
  REQUIRE(l.size() == 3);
  CHECK((l[0].number == 3 && l[0].text == "3" && l[1].number == 4 && l[2].number == 5 && l[2].text == "5"));
  RecentLines none(0);
  none.push(1, "x");
  CHECK(none.lines().empty());
}

TEST_CASE("trace diff: identical traces", "[trace-diff]") {
  const std::string t = text_of(numbered(6));
  const auto r = diff(t, t);
  CHECK(r.identical);
  CHECK(r.events == 6);
  CHECK(r.report == "traces are identical: 6 events\n");
  CHECK(diff("", "").report == "traces are identical: 0 events\n");
  CHECK(diff(text_of(numbered(1)), text_of(numbered(1))).report == "traces are identical: 1 event\n");
  // A last line without its '\n' is still an event.
  std::string cut = t;
  cut.pop_back();
  CHECK(diff(cut, t).identical);
}

TEST_CASE("trace diff: a difference in the middle, with context on both sides", "[trace-diff]") {
  auto a = numbered(10), b = numbered(10);
  b[5].body = "kvm_entry: vcpu 0, rip 0xbad";
  const auto r = diff(text_of(a), text_of(b));
  CHECK_FALSE(r.identical);
  CHECK(r.events == 5);
  CHECK(r.report ==
        "traces differ at event 6: A line 6, B line 6 (- A = a.txt, + B = b.txt)\n"
        "           3  CPU 0/KVM-0 [000] 0.000003000: kvm_entry: vcpu 0, rip 0x3\n"
        "           4  CPU 0/KVM-0 [000] 0.000004000: kvm_entry: vcpu 0, rip 0x4\n"
        "           5  CPU 0/KVM-0 [000] 0.000005000: kvm_entry: vcpu 0, rip 0x5\n"
        "  -        6  CPU 0/KVM-0 [000] 0.000006000: kvm_entry: vcpu 0, rip 0x6\n"
        "  -        7  CPU 0/KVM-0 [000] 0.000007000: kvm_entry: vcpu 0, rip 0x7\n"
        "  -        8  CPU 0/KVM-0 [000] 0.000008000: kvm_entry: vcpu 0, rip 0x8\n"
        "  -        9  CPU 0/KVM-0 [000] 0.000009000: kvm_entry: vcpu 0, rip 0x9\n"
        "  +        6  CPU 0/KVM-0 [000] 0.000006000: kvm_entry: vcpu 0, rip 0xbad\n"
        "  +        7  CPU 0/KVM-0 [000] 0.000007000: kvm_entry: vcpu 0, rip 0x7\n"
        "  +        8  CPU 0/KVM-0 [000] 0.000008000: kvm_entry: vcpu 0, rip 0x8\n"
        "  +        9  CPU 0/KVM-0 [000] 0.000009000: kvm_entry: vcpu 0, rip 0x9\n");
  // --context 1: one line before, one after; the end of a side shows inside the context.
  TraceDiffOptions o;
  o.context = 1;
  b = numbered(7);
  b[6].body = "kvm_entry: vcpu 0, rip 0xbad";
  CHECK(diff(text_of(numbered(7)), text_of(b), o).report ==
        "traces differ at event 7: A line 7, B line 7 (- A = a.txt, + B = b.txt)\n"
        "           6  CPU 0/KVM-0 [000] 0.000006000: kvm_entry: vcpu 0, rip 0x6\n"
        "  -        7  CPU 0/KVM-0 [000] 0.000007000: kvm_entry: vcpu 0, rip 0x7\n"
        "  -        8  (end of trace)\n"
        "  +        7  CPU 0/KVM-0 [000] 0.000007000: kvm_entry: vcpu 0, rip 0xbad\n"
        "  +        8  (end of trace)\n");
  // A difference at the first event has no context; --context 0 shows only the two events.
  o.context = 0;
  CHECK(diff(text_of(numbered(3)), text_of(numbered(3, 1)), o).report ==
        "traces differ at event 1: A line 1, B line 1 (- A = a.txt, + B = b.txt)\n"
        "  -        1  CPU 0/KVM-0 [000] 0.000001000: kvm_entry: vcpu 0, rip 0x1\n"
        "  +        1  CPU 1/KVM-1 [001] 0.000001000: kvm_entry: vcpu 1, rip 0x1\n");
}

TEST_CASE("trace diff: one trace a prefix of the other, both ways", "[trace-diff]") {
  const std::string longer = text_of(numbered(6)), shorter = text_of(numbered(4));
  const auto r = diff(longer, shorter);
  CHECK_FALSE(r.identical);
  CHECK(r.events == 4);
  CHECK(r.report ==
        "traces differ at event 5: B ends after 4 events; A continues at line 5 (- A = a.txt, + B = b.txt)\n"
        "           2  CPU 0/KVM-0 [000] 0.000002000: kvm_entry: vcpu 0, rip 0x2\n"
        "           3  CPU 0/KVM-0 [000] 0.000003000: kvm_entry: vcpu 0, rip 0x3\n"
        "           4  CPU 0/KVM-0 [000] 0.000004000: kvm_entry: vcpu 0, rip 0x4\n"
        "  -        5  CPU 0/KVM-0 [000] 0.000005000: kvm_entry: vcpu 0, rip 0x5\n"
        "  -        6  CPU 0/KVM-0 [000] 0.000006000: kvm_entry: vcpu 0, rip 0x6\n"
        "  -        7  (end of trace)\n"
        "  +        5  (end of trace)\n");
  const auto back = diff(shorter, longer);
  CHECK_FALSE(back.identical);
  CHECK(back.report.substr(0, back.report.find('\n')) ==
        "traces differ at event 5: A ends after 4 events; B continues at line 5 (- A = a.txt, + B = b.txt)");
  CHECK(back.report.find("  -        5  (end of trace)\n  +        5  CPU 0/KVM-0 [000] 0.000005000") != std::string::npos);
  // An empty trace is a prefix of every trace.
  CHECK(diff("", shorter).report.substr(0, 71) ==
        "traces differ at event 1: A ends after 0 events; B continues at line 1 ");
}

TEST_CASE("trace diff: --ignore-time compares without the timestamp column", "[trace-diff]") {
  std::vector<Ev> a = numbered(5), b = numbered(5);
  for (Ev& e : b) e.ns += 250;  // the same things, 250 ns later
  const auto timed = diff(text_of(a), text_of(b));
  CHECK_FALSE(timed.identical);
  CHECK(timed.events == 0);
  CHECK(timed.report.find("traces differ at event 1: A line 1, B line 1") == 0);
  CHECK(timed.report.find("  (the same event at another time; --ignore-time compares without the timestamp)\n") !=
        std::string::npos);
  TraceDiffOptions o;
  o.ignore_time = true;
  const auto untimed = diff(text_of(a), text_of(b), o);
  CHECK(untimed.identical);
  CHECK(untimed.report == "traces are identical: 5 events (timestamps ignored)\n");
  // Still a difference when the event or its vCPU differs.
  b[3].body = "kvm_entry: vcpu 0, rip 0x99";
  const auto r = diff(text_of(a), text_of(b), o);
  CHECK_FALSE(r.identical);
  CHECK(r.report.find("traces differ at event 4 (timestamps ignored): A line 4, B line 4") == 0);
  CHECK(r.report.find("(the same event at another time") == std::string::npos);
  b = a;
  b[2].vcpu = 1;
  CHECK(diff(text_of(a), text_of(b), o).report.find("traces differ at event 3 (timestamps ignored)") == 0);
}

TEST_CASE("trace diff: --vcpu compares one vCPU's events across interleavings", "[trace-diff]") {
  // The same per-vCPU stories, interleaved differently (another quantum).
  const std::vector<Ev> v0 = numbered(4, 0), v1 = numbered(4, 1);
  std::vector<Ev> a, b;
  for (unsigned i = 0; i < 4; ++i) {
    a.push_back(v0[i]);
    a.push_back(v1[i]);
  }
  for (unsigned i = 0; i < 4; ++i) b.push_back(v0[i]);
  for (unsigned i = 0; i < 4; ++i) b.push_back(v1[i]);
  CHECK_FALSE(diff(text_of(a), text_of(b)).identical);
  TraceDiffOptions o;
  for (unsigned v : {0u, 1u}) {
    o.vcpu = v;
    const auto r = diff(text_of(a), text_of(b), o);
    CHECK(r.identical);
    CHECK(r.report == fmt::format("traces are identical: 4 events of vCPU {}\n", v));
  }
  o.vcpu = 7;
  CHECK(diff(text_of(a), text_of(b), o).report == "traces are identical: 0 events of vCPU 7\n");
  // vCPU 1's third event differs: event 3 of vCPU 1, at line 6 of A and line 7 of B.
  b[6].body = "kvm_entry: vcpu 1, rip 0x33";
  o.vcpu = 1;
  o.context = 1;
  CHECK(diff(text_of(a), text_of(b), o).report ==
        "traces differ at event 3 of vCPU 1: A line 6, B line 7 (- A = a.txt, + B = b.txt)\n"
        "           2  CPU 1/KVM-1 [001] 0.000002000: kvm_entry: vcpu 1, rip 0x2\n"
        "  -        3  CPU 1/KVM-1 [001] 0.000003000: kvm_entry: vcpu 1, rip 0x3\n"
        "  -        4  CPU 1/KVM-1 [001] 0.000004000: kvm_entry: vcpu 1, rip 0x4\n"
        "  +        3  CPU 1/KVM-1 [001] 0.000003000: kvm_entry: vcpu 1, rip 0x33\n"
        "  +        4  CPU 1/KVM-1 [001] 0.000004000: kvm_entry: vcpu 1, rip 0x4\n");
  o.vcpu = 0;
  CHECK(diff(text_of(a), text_of(b), o).identical);
  // Prefix, counted among the vCPU's events.
  b.pop_back();
  o.vcpu = 1;
  CHECK(diff(text_of(a), text_of(b), o).report.find(
            "traces differ at event 3 of vCPU 1: A line 6, B line 7") == 0);
  b = a;
  b.pop_back();
  CHECK(diff(text_of(a), text_of(b), o).report.find(
            "traces differ at event 4 of vCPU 1: B ends after 3 events of vCPU 1; A continues at line 8 ") == 0);
}

TEST_CASE("trace diff: a JSON Lines event is rebuilt as the text line pvsim writes", "[trace-diff]") {
  // Every event method of core/trace.h, with values at the edges of their formats.
  Written w;
  Tracer& t = w.t;
  const Tick ts(1'234'567'890'123);
  t.kvm_exit(ts, 0, VmxExitReason::MsrWrite, 0x101fa6, 0, UINT64_MAX, 0x80000b0e, 0xffffffffu);
  t.kvm_exit(ts, 0, static_cast<VmxExitReason>(77), 1, 2, 3, 4, 5);  // a reason with no name
  t.kvm_entry(Tick(0), 63, 0xffffffff81000000);
  t.kvm_msr(ts, 1, true, 0xc0000100, 0x800000000000, true);
  t.kvm_msr(ts, 1, false, 0x4b564d01, 0, false);
  t.kvm_cpuid(ts, 2, 0x40000001, 0, 1, 2, 3, 4, true, false);
  t.kvm_cpuid(ts, 2, 0x80000099, 7, 0, 0, 0, 0, false, true);
  t.kvm_pio(ts, 0, true, 0xe9, 1, 1, 0x68);
  t.kvm_pio(ts, 0, false, 0xffff, 4, 12, 0xffffffffu);
  t.kvm_inj_exception(ts, 0, 14, true, 0x2, false);
  t.kvm_inj_exception(ts, 0, 0x99, false, 0, true);
  t.kvm_page_fault(ts, 0, 0x100000, 0x10000, 0x181);
  t.kvm_hypercall(ts, 0, 5, 0, 1, UINT64_MAX, 3);
  t.kvm_apic(ts, 0, true, 0x300, 0x40e1);
  t.kvm_apic(ts, 0, false, 0x3f8, 7);  // no register name
  t.kvm_apic_ipi(ts, 0, 0xc4ee1, 0xff);
  t.kvm_apic_accept_irq(ts, 1, 3, 4 << 8, 1, 255);
  t.kvm_eoi(ts, 1, 3, -1);
  t.kvm_inj_virq(ts, 1, 0xe1, false, true);
  t.kvm_inj_virq(ts, 1, 0x20, true, false);
  t.kvm_pvclock_update(ts, 3, 4, 0xac88, 0x4503, 0xcccccccc, -1, 0x3);
  t.kvm_pvclock_update(ts, 3, 0xffffffffu, 0, 0, 0, 127, 0xff);
  t.kvm_pv_tlb_flush(ts, 1, true);
  t.kvm_pv_tlb_flush(ts, 1, false);
  t.kvm_pv_eoi(ts, 1, 1, 236);
  t.kvm_try_async_get_page(ts, 0, 0, 0x10);
  t.kvm_async_pf_repeated_fault(ts, 0, 0x10000, 0x10);
  t.kvm_async_pf_doublefault(ts, 0, 0x10000, 0x10);
  t.kvm_async_pf_not_present(ts, 0, 0x80000001, 0x10000);
  t.kvm_async_pf_ready(ts, 0, 0xffffffff, 0);
  t.kvm_async_pf_completed(ts, 0, 0x7f0000001000, 0x10000);
  t.pvsim_exception(ts, 0, 13, true, 0, 0x1234, 0);
  t.pvsim_exception(ts, 0, 3, false, 0, 0x1234, 0xdead);
  t.pvsim_stop(ts, 0, "shutdown", "triple fault\nRAX=0 RBX=1\n  \n");
  t.pvsim_stop(ts, 0, "exit", "");
  t.pvsim_inj_nmi(ts, 2);
  t.pvsim_vcpu(ts, 1, "init", "wait-for-SIPI \"quoted\" \\ back\tslash \x01 and \xc3\xa9");
  t.pvsim_vcpu(ts, 1, "sipi", "");
  t.pvsim_apf(ts, 1, "halt", "token 0x1");
  t.pvsim_host(ts, 1, "store", "record (64 bytes at gpa 0x236d40), entry follows");
  t.pvsim_steal(ts, 1, "preempted", "0x0 -> 0x1");
  t.pvsim_pv_eoi(ts, 1, "arm", "vector 236");
  t.pvsim_sched_out(ts, 1, 1, 0x10500c, "preempted", Tick(699'800));
  t.pvsim_sched_in(ts, 1, 0, 0x10500c, 399'800);
  t.pvsim_action(ts, 0, "v0.insn=1200", "preempt v1 50us: vCPU 1 holds no pCPU from 0.000001000 to 0.000051000");
  t.pvsim_marker(ts, 2, "phase 2: \"go\" \x01");
  std::istringstream jl(w.jsonl.str()), tx(w.text.str());
  std::string j, want;
  unsigned n = 0;
  std::set<std::string> events;
  while (std::getline(jl, j)) {
    REQUIRE(std::getline(tx, want));
    TraceEvent e;
    rebuild_trace_jsonl_line(j, e);
    CHECK(e.line == want);
    CHECK(e.body == want.find(": ") + 2);
    events.insert(e.line.substr(e.body, e.line.find(':', e.body) - e.body));
    ++n;
  }
  CHECK(n == 46);
  // Every name the rebuilder knows was exercised above, and every event method of
  // core/trace.h has a rebuilder: a new event without one fails here, not in a user's diff.
  const auto known = jsonl_rebuildable_events();
  CHECK(std::set<std::string>(known.begin(), known.end()) == events);
  std::ifstream h(PVSIM_TEST_DATA_DIR "/../../core/trace.h");
  REQUIRE(h);
  const std::string header((std::istreambuf_iterator<char>(h)), std::istreambuf_iterator<char>());
  // "void kvm_xxx(Tick ts" / "void pvsim_xxx(Tick ts": a plain scan (std::regex trips
  // GCC 12's -Wmaybe-uninitialized inside <regex> at -O2).
  std::set<std::string> declared;
  for (size_t at = header.find("void "); at != std::string::npos; at = header.find("void ", at + 5)) {
    const size_t name = at + 5;
    if (header.compare(name, 4, "kvm_") != 0 && header.compare(name, 6, "pvsim_") != 0) continue;
    size_t end = name;
    while (end < header.size() && (std::islower(static_cast<unsigned char>(header[end])) ||
                                   std::isdigit(static_cast<unsigned char>(header[end])) || header[end] == '_'))
      ++end;
    if (header.compare(end, 8, "(Tick ts") == 0) declared.insert(header.substr(name, end - name));
  }
  CHECK(declared.size() >= 30);
  CHECK(declared == events);

  // The same two events as text and as JSON Lines compare equal, in either order.
  std::istringstream ia(w.text.str()), ib(w.jsonl.str());
  TraceReader ra(ia, "t.txt"), rb(ib, "t.jsonl");
  const auto r = diff_traces(ra, rb, {});
  CHECK(r.report == "traces are identical: 46 events\n");
  CHECK(ra.format() == TraceReader::Format::Text);
  CHECK(rb.format() == TraceReader::Format::JsonLines);

  // Key order and JSON whitespace do not matter; field values do.
  TraceEvent e;
  rebuild_trace_jsonl_line(R"( { "vcpu" : 1, "event":"kvm_entry", "rip": 16, "ts_ns": 5, "immediate_exit": false, "vcpu_id": 1 } )", e);
  CHECK(e.line == "CPU 1/KVM-1 [001] 0.000000005: kvm_entry: vcpu 1, rip 0x10");
  CHECK(e.ts_ns == 5);
  CHECK(e.vcpu == 1);
  rebuild_trace_jsonl_line(R"({"ts_ns":0,"vcpu":0,"event":"pvsim_vcpu","what":"a\u00e9\ud83d\ude00\/","detail":""})", e);
  CHECK(e.line == "CPU 0/KVM-0 [000] 0.000000000: pvsim_vcpu: a\xc3\xa9\xf0\x9f\x98\x80/");
}

TEST_CASE("trace diff: text against JSON Lines of real runs of shipped scenarios", "[trace-diff]") {
  // ipi: 4 vCPUs and every IPI form; pv-tlb-orig: the host model's preemptions, steal time
  // and spaced stores; default: async page faults; init: INIT and wait-for-SIPI. The JSON
  // Lines copy is also compared with the golden text trace kept in scenarios/golden/.
  for (const char* name : {"ipi", "pv-tlb-orig", "default", "init"}) {
    INFO(name);
    const std::string dir = PVSIM_TEST_DATA_DIR "/../../scenarios/";
    Scenario s;
    try {
      s = load_scenario(dir + name + ".json");
    } catch (const ScenarioError& e) {
      FAIL(std::string(e.what()) + " (the guest images come from the `guests` target)");
    }
    std::ostringstream text, jsonl;
    PlatformOptions po;
    po.trace_text = &text;
    po.trace_jsonl = &jsonl;
    po.keep_console = false;
    const RunReport rep = run_scenario(s, po);
    REQUIRE(rep.trace_events > 500);
    {
      std::istringstream ia(text.str()), ib(jsonl.str());
      TraceReader ra(ia, "t.txt"), rb(ib, "t.jsonl");
      const auto r = diff_traces(ra, rb, {});
      CHECK(r.report == fmt::format("traces are identical: {} events\n", rep.trace_events));
    }
    {
      std::ifstream golden(dir + "golden/" + name + ".txt");
      REQUIRE(golden);
      std::istringstream ib(jsonl.str());
      TraceReader ra(golden, "golden"), rb(ib, "t.jsonl");
      CHECK(diff_traces(ra, rb, {}).identical);
    }
    // One changed field in the JSON Lines copy is a difference at that event, shown as text.
    std::string changed = jsonl.str();
    const size_t at = changed.find("\"event\":\"kvm_entry\",\"vcpu_id\":");
    REQUIRE(at != std::string::npos);
    const size_t digit = changed.find("\"rip\":", at) + 6;
    changed.insert(digit, "1");
    const uint64_t event_no = static_cast<uint64_t>(std::count(changed.begin(), changed.begin() + static_cast<long>(at), '\n')) + 1;
    std::istringstream ia(text.str()), ib(changed);
    TraceReader ra(ia, "t.txt"), rb(ib, "t.jsonl");
    const auto r = diff_traces(ra, rb, {});
    CHECK_FALSE(r.identical);
    CHECK(r.events == event_no - 1);
    CHECK(r.report.find(fmt::format("traces differ at event {}: A line {}, B line {} (- A = t.txt, + B = t.jsonl)\n",
                                    event_no, event_no, event_no)) == 0);
    CHECK(r.report.find(fmt::format("  +{:>9}  CPU ", event_no)) != std::string::npos);
    CHECK(r.report.find(": kvm_entry: vcpu ") != std::string::npos);
  }
}

TEST_CASE("trace diff: bad input is one line naming the file, the line and the problem", "[trace-diff]") {
  const std::string good = text_of(numbered(3));
  CHECK(diff_error(good + "garbage\n", good) ==
        "a.txt: line 4: not a pvsim trace line (\"CPU <n>/KVM-<n> [<nnn>] <seconds>: <event>: <text>\" or a JSON "
        "object): \"garbage\"");
  // Bad input is reported even after the traces have parted, as long as it is read.
  CHECK(diff_error(good, text_of(numbered(2)) + "CPU 0/KVM-0 [000] 0.00000300: kvm_entry: x\n").find(
            "b.txt: line 3: not a pvsim trace line") == 0);
  // Non-canonical headers: the vCPU numbers disagree, no zero padding, short nanoseconds,
  // a bad event name, no ": " after it, control characters shown escaped.
  for (const char* bad : {"CPU 0/KVM-1 [000] 0.000000001: kvm_entry: x", "CPU 1/KVM-1 [1] 0.000000001: kvm_entry: x",
                          "CPU 0/KVM-0 [000] 0.00000001: kvm_entry: x", "CPU 0/KVM-0 [000] 0.000000001: kvm entry: x",
                          "CPU 0/KVM-0 [000] 0.000000001: kvm_entry", "CPU 0/KVM-0 [000] 0.000000001 kvm_entry: x",
                          "CPU 99999999999/KVM-99999999999 [99999999999] 0.000000001: e: x",
                          "CPU 0/KVM-0 [000] 99999999999.000000001: e: x"}) {
    INFO(bad);
    CHECK(diff_error(std::string(bad) + "\n", good).find("a.txt: line 1: not a pvsim trace line") == 0);
  }
  CHECK(diff_error("\x1b[2J\n", good).find("\"\\u001b[2J\"") != std::string::npos);
  CHECK(diff_error(good + "\n" + good, good) ==
        "a.txt: line 4: an empty line (a pvsim trace has one event on every line)");
  CHECK(diff_error(good + R"({"ts_ns":1,"vcpu":0,"event":"pvsim_inj_nmi"})" "\n", good) ==
        "a.txt: line 4: a JSON line in a text trace (line 1 is text; JSON Lines and text cannot mix in one file)");
  const std::string nmi = R"({"ts_ns":1,"vcpu":0,"event":"pvsim_inj_nmi"})" "\n";
  CHECK(diff_error(nmi + good, good).find(
            "a.txt: line 2: not a JSON object (line 1 starts with '{', so this file is JSON Lines): \"CPU 0/KVM-0") == 0);
  // JSON that is not a pvsim event.
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"ts_ns":1,"vcpu":0,"event":"pvsim_inj_nmi")", "not a pvsim JSON Lines event: expected ',' or '}' at column 44"},
      {R"({"ts_ns":1,"vcpu":0,"event":"pvsim_inj_nmi"} x)", "not a pvsim JSON Lines event: text after the end of the object at column 46"},
      {R"({"ts_ns":1.5,"vcpu":0,"event":"pvsim_inj_nmi"})",
       "not a pvsim JSON Lines event: a number that is not an integer (pvsim writes integers) at column 11"},
      {R"({"ts_ns":[[[1]]],"vcpu":0})",
       "not a pvsim JSON Lines event: a nested object or array (pvsim's fields are numbers, booleans and strings) at column 10"},
      {R"({"ts_ns":18446744073709551616,"vcpu":0})", "not a pvsim JSON Lines event: an integer out of the 64-bit range at column 10"},
      {R"({"ts_ns":1,"ts_ns":2})", "not a pvsim JSON Lines event: duplicate key \"ts_ns\" at column 12"},
      {R"({"ts_ns":1,"vcpu":0,"event":"kvm_entry","vcpu_id":0,"rip":"0x10","immediate_exit":false})", "field \"rip\" of kvm_entry must be an unsigned integer, got \"0x10\""},
      {R"({"ts_ns":1,"vcpu":0,"event":"kvm_entry"})", "kvm_entry has no field \"rip\""},
      {R"({"ts_ns":1,"vcpu":0,"event":"kvm_frobnicate"})", "event \"kvm_frobnicate\" is not one pvsim writes"},
      {R"({"vcpu":0,"event":"kvm_entry","rip":1})", "the event has no field \"ts_ns\""},
      {R"({"ts_ns":1,"vcpu":-1,"event":"kvm_entry","rip":1})", "field \"vcpu\" of the event must be an unsigned integer, got -1"},
      {R"({"ts_ns":1,"vcpu":4294967296,"event":"kvm_entry","rip":1})",
       "field \"vcpu\" of the event is 4294967296, above its largest value 4294967295"},
      // Types from the table: KVM's bool fields are JSON booleans, its integer fields numbers.
      {R"({"ts_ns":1,"vcpu":0,"event":"kvm_cpuid","function":1,"index":0,"rax":0,"rbx":0,"rcx":0,"rdx":0,"found":1,"used_max_basic":false})",
       "field \"found\" of kvm_cpuid must be true or false, got 1"},
      {R"({"ts_ns":1,"vcpu":0,"event":"kvm_msr","write":true,"ecx":1,"data":1,"exception":0})",
       "field \"write\" of kvm_msr must be an unsigned integer, got true"},
      {R"({"ts_ns":1,"vcpu":0,"event":"kvm_inj_exception","exception":256,"has_error":0,"error_code":0,"reinjected":false})",
       "field \"exception\" of kvm_inj_exception is 256, above its largest value 255"},
      {R"({"ts_ns":1,"vcpu":0,"event":"kvm_pvclock_update","vcpu_id":0,"version":0,"tsc_timestamp":0,"system_time":0,"tsc_to_system_mul":0,"tsc_shift":-129,"flags":0})",
       "field \"tsc_shift\" of kvm_pvclock_update is -129, outside -128..127"},
      {R"({"ts_ns":1,"vcpu":0,"event":"pvsim_marker","text":7})", "field \"text\" of pvsim_marker must be a string, got 7"},
      {R"({"ts_ns":1,"vcpu":0,"event":"kvm_entry","rip":1,"extra":true})", "kvm_entry has a field \"extra\" that pvsim does not write"},
      // The fields KVM keeps the vCPU in: present, and the event's vCPU.
      {R"({"ts_ns":1,"vcpu":0,"event":"kvm_exit","exit_reason":32,"reason":"HLT","guest_rip":1,"isa":1,"info1":0,"info2":0,"intr_info":0,"error_code":0,"vcpu_id":0})",
       "kvm_exit has a field \"reason\" that pvsim does not write"},
      {R"({"ts_ns":1,"vcpu":2,"event":"kvm_pv_tlb_flush","need_flush_tlb":true})", "kvm_pv_tlb_flush has no field \"vcpu_id\""},
      {R"({"ts_ns":1,"vcpu":2,"event":"kvm_pv_tlb_flush","vcpu_id":3,"need_flush_tlb":true})",
       "field \"vcpu_id\" of kvm_pv_tlb_flush is 3, but pvsim writes 2 (the event's vcpu)"},
      {R"({"ts_ns":1,"vcpu":0,"event":"kvm_eoi","apicid":0,"vector":-9223372036854775809})",
       "not a pvsim JSON Lines event: an integer out of the 64-bit range at column 59"},
      {R"({"ts_ns":1,"vcpu":0,"event":"pvsim_stop","reason":"x","detail":"a\q"})",
       "not a pvsim JSON Lines event: an unknown escape in a string at column 67"},
      {"{\"ts_ns\":1,\"vcpu\":0,\"event\":\"a\x01\"}", "not a pvsim JSON Lines event: a control character inside a string at column 31"},
      {R"({"ts_ns":null})", "not a pvsim JSON Lines event: null (pvsim's fields are numbers, booleans and strings) at column 10"},
      {R"({"ts_ns":01})", "not a pvsim JSON Lines event: a number with a leading zero at column 10"},
      {R"({ts_ns:1})", "not a pvsim JSON Lines event: expected a key in double quotes at column 2"},
      {R"({"a":"\ud800x"})", "not a pvsim JSON Lines event: a high surrogate without its low surrogate at column 13"},
      {R"({"a":"\udc00"})", "not a pvsim JSON Lines event: a low surrogate without its high surrogate at column 13"},
  };
  for (const auto& [json, want] : cases) {
    INFO(json);
    const std::string got = diff_error(nmi + json + "\n", good);
    CHECK(got.find("a.txt: line 2: " + want) == 0);
  }
  // A line of 1 MiB and more (a /dev/zero) stops at the cap instead of filling memory.
  CHECK(diff_error(std::string(3u << 20, '\0'), good) == "a.txt: line 1: longer than 1 MiB: not a pvsim trace line");
  // Files: missing, a directory.
  try {
    (void)open_trace_file("/nonexistent/t.txt");
    FAIL("opened a missing file");
  } catch (const TraceDiffError& e) {
    CHECK(std::string(e.what()) == "/nonexistent/t.txt: cannot open trace file: No such file or directory");
  }
  try {
    (void)open_trace_file(PVSIM_TEST_DATA_DIR);
    FAIL("opened a directory");
  } catch (const TraceDiffError& e) {
    CHECK(std::string(e.what()) == std::string(PVSIM_TEST_DATA_DIR) + ": trace file is a directory, not a trace");
  }
  CHECK(trace_display_name("-") == "standard input");
  CHECK(trace_display_name("a\nb") == "a\\nb");
}

TEST_CASE("trace diff: README.md's pv-tlb example is the output of a real diff", "[trace-diff]") {
  // README.md "The trace" quotes `pvsim diff` on the two PV TLB flush scenarios; both runs
  // and both diffs are redone here, so the quote cannot go stale.
  const std::string root = PVSIM_TEST_DATA_DIR "/../../";
  const auto trace_of = [&root](const char* name) {
    Scenario s;
    try {
      s = load_scenario(root + "scenarios/" + name + ".json");
    } catch (const ScenarioError& e) {
      FAIL(std::string(e.what()) + " (the guest images come from the `guests` target)");
    }
    std::ostringstream text;
    PlatformOptions po;
    po.trace_text = &text;
    po.keep_console = false;
    (void)run_scenario(s, po);
    return text.str();
  };
  const std::string orig = trace_of("pv-tlb-orig"), modern = trace_of("pv-tlb-modern");
  const auto run_diff = [](const std::string& a, const std::string& b, const char* na, const char* nb, unsigned context) {
    std::istringstream ia(a), ib(b);
    TraceReader ra(ia, na), rb(ib, nb);
    TraceDiffOptions o;
    o.context = context;
    return diff_traces(ra, rb, o).report;
  };
  // grep -E 'kvm_pv_tlb_flush|kvm_apic_ipi|pvsim_stop'
  const auto grep = [](const std::string& t) {
    std::istringstream in(t);
    std::string l, out;
    while (std::getline(in, l))
      for (const char* w : {"kvm_pv_tlb_flush", "kvm_apic_ipi", "pvsim_stop"})
        if (l.find(w) != std::string::npos) {
          out += l + "\n";
          break;
        }
    return out;
  };
  const std::string full = run_diff(orig, modern, "orig.txt", "modern.txt", 3);
  const std::string narrowed = run_diff(grep(orig), grep(modern), "orig-tlb.txt", "modern-tlb.txt", 2);
  std::ifstream f(root + "README.md");
  REQUIRE(f);
  const std::string readme((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const std::string begin = "<!-- diff-example: begin (tests/platform/trace_diff_test.cpp checks this block) -->\n```\n";
  const size_t b = readme.find(begin), e = readme.find("```\n<!-- diff-example: end -->");
  REQUIRE(b != std::string::npos);
  REQUIRE(e != std::string::npos);
  CHECK(readme.substr(b + begin.size(), e - b - begin.size()) == narrowed);
  // The whole traces part at the event the README names.
  const std::string first = full.substr(0, full.find(':'));
  CHECK(first == "traces differ at event 94");
  CHECK(full.find("kvm_pvclock_update") != std::string::npos);
  CHECK(readme.find("# exit 1: " + first + " (kvm_pvclock_update)") != std::string::npos);
}
