// The Tracer's sinks (core/trace.h): records, filtered and unfiltered sinks, each event once
// across snapshot restores, the event filter leaving the hash and observers alone, and the
// time-ordered text and JSON Lines outputs.
#include <xxhash.h>

#include <catch2/catch.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "core/trace.h"

using namespace pvsim;

namespace {

// Keeps what it is given, copied out of the record.
struct Collect final : TraceSink {
  struct Ev {
    uint64_t index;
    uint64_t ts;
    unsigned vcpu;
    std::string name;
    std::vector<uint64_t> u;
    std::vector<std::string> s;
    std::string line;
    size_t body;
  };
  std::vector<Ev> evs;
  int finished = 0;
  void on_event(const TraceRecord& r) override {
    Ev e{r.index, r.ts.value(), r.vcpu, r.desc->name, {}, {}, std::string(r.line), r.body};
    REQUIRE(r.values.size() == r.desc->fields.size());
    for (const TraceValue& v : r.values) {
      e.u.push_back(v.u);
      e.s.emplace_back(v.s);
    }
    evs.push_back(std::move(e));
  }
  void on_finish() override { ++finished; }
  std::vector<uint64_t> indices() const {
    std::vector<uint64_t> out;
    for (const Ev& e : evs) out.push_back(e.index);
    return out;
  }
};

struct Lines final : TraceObserver {
  std::vector<std::string> lines;
  void on_trace_line(unsigned, std::string_view line, size_t) override { lines.emplace_back(line); }
};

std::vector<bool> only(const char* spec) {
  std::vector<bool> on;
  REQUIRE_FALSE(parse_trace_event_filter(spec, on));
  return on;
}

}  // namespace

TEST_CASE("a sink gets each event's description, values in table order and canonical line", "[trace][sinks]") {
  Tracer t;
  Collect c;
  std::ostringstream text;
  t.set_text_output(&text);
  t.add_sink(&c, false);
  t.kvm_msr(Tick(1'000'000'001), 2, true, 0x4b564d02, 0x1001, false);
  t.pvsim_apf(Tick(5), 1, "halt", "token 0x1");
  t.pvsim_inj_nmi(Tick(6), 0);
  REQUIRE(c.evs.size() == 3);
  const auto& m = c.evs[0];
  CHECK(m.index == 0);
  CHECK(m.ts == 1'000'000'001);
  CHECK(m.vcpu == 2);
  CHECK(m.name == "kvm_msr");
  CHECK(m.u == std::vector<uint64_t>{1, 0x4b564d02, 0x1001, 0});
  CHECK(m.line == "CPU 2/KVM-2 [002] 1.000000001: kvm_msr: msr_write 4b564d02 = 0x1001\n");
  CHECK(m.line.substr(m.body) == "kvm_msr: msr_write 4b564d02 = 0x1001\n");
  CHECK(c.evs[1].s == std::vector<std::string>{"halt", "token 0x1"});
  CHECK(c.evs[2].u.empty());
  CHECK(c.indices() == std::vector<uint64_t>{0, 1, 2});
  // The text output is a sink of the same records.
  CHECK(text.str() == c.evs[0].line + c.evs[1].line + c.evs[2].line);
  CHECK(c.finished == 0);
  t.finish();
  t.finish();
  CHECK(c.finished == 1);
}

TEST_CASE("sinks see each event once across snapshot restores, observers see every emission", "[trace][sinks]") {
  // gdb's reverse execution restores a snapshot and runs forward again over the same events.
  Tracer t;
  Collect c;
  Lines obs;
  std::ostringstream text, jsonl;
  t.set_text_output(&text);
  t.set_jsonl_output(&jsonl);
  t.add_sink(&c, false);
  t.add_observer(&obs);
  const auto ev = [&t](unsigned i) { t.kvm_entry(Tick(100 * i), i % 2, 0x1000 + i); };
  ev(0);
  ev(1);
  const Tracer::Snapshot s1 = t.save();
  ev(2);
  ev(3);
  const Tracer::Snapshot s3 = t.save();
  ev(4);
  t.restore(s1);  // back two and a bit
  ev(2);
  ev(3);
  t.restore(s3);
  ev(4);
  ev(5);
  t.restore(s1);
  ev(2);
  CHECK(c.indices() == std::vector<uint64_t>{0, 1, 2, 3, 4, 5});
  CHECK(obs.lines.size() == 10);
  // The text and JSON Lines outputs are sinks too: the same six events, once each.
  Tracer straight;
  std::ostringstream want_text, want_jsonl;
  straight.set_text_output(&want_text);
  straight.set_jsonl_output(&want_jsonl);
  for (unsigned i = 0; i < 6; ++i) straight.kvm_entry(Tick(100 * i), i % 2, 0x1000 + i);
  CHECK(text.str() == want_text.str());
  CHECK(jsonl.str() == want_jsonl.str());
  // The hash follows the restores (it is the machine's state), the sinks do not.
  ev(3);
  ev(4);
  ev(5);
  CHECK(t.hash() == straight.hash());
  CHECK(t.event_count() == 6);

  // A sink added (or a text stream set) after a restore starts there: it has seen nothing.
  t.restore(s1);
  Collect late;
  t.add_sink(&late, true);
  std::ostringstream again;
  t.set_text_output(&again);
  ev(2);
  ev(3);
  CHECK(late.indices() == std::vector<uint64_t>{2, 3});
  std::vector<std::string> want_lines;
  {
    std::istringstream in(want_text.str());
    for (std::string l; std::getline(in, l);) want_lines.push_back(l + "\n");
  }
  REQUIRE(want_lines.size() == 6);
  CHECK(again.str() == want_lines[2] + want_lines[3]);
  CHECK(c.indices() == std::vector<uint64_t>{0, 1, 2, 3, 4, 5});
  t.remove_sink(&late);
  ev(4);
  CHECK(late.indices() == std::vector<uint64_t>{2, 3});
}

TEST_CASE("event filter (--events) applies to the text and JSON Lines outputs and filtered sinks only", "[trace][sinks][filter]") {
  const auto run = [](const std::vector<bool>& filter, Tracer& t, std::ostringstream& text, std::ostringstream& jsonl,
                      Collect& filtered, Collect& all, Lines& obs) {
    t.set_text_output(&text);
    t.set_jsonl_output(&jsonl);
    t.add_sink(&filtered, true);
    t.add_sink(&all, false);
    t.add_observer(&obs);
    t.set_event_filter(filter);
    t.kvm_exit(Tick(1), 0, VmxExitReason::MsrWrite, 0x10, 0, 0, 0, 0);
    t.kvm_msr(Tick(2), 0, true, 0x4b564d02, 1, false);
    t.kvm_entry(Tick(3), 0, 0x12);
    t.kvm_async_pf_ready(Tick(4), 1, 0x1000, 0x5000);
    t.kvm_apic(Tick(5), 1, true, 0xb0, 0);
  };
  Tracer plain, filt;
  std::ostringstream pt, pj, ft, fj;
  Collect pf, pa, ff, fa;
  Lines po, fo;
  run({}, plain, pt, pj, pf, pa, po);
  run(only("kvm_async_pf*,kvm_msr"), filt, ft, fj, ff, fa, fo);
  CHECK(pf.evs.size() == 5);
  CHECK(ft.str() ==
        "CPU 0/KVM-0 [000] 0.000000002: kvm_msr: msr_write 4b564d02 = 0x1\n"
        "CPU 1/KVM-1 [001] 0.000000004: kvm_async_pf_ready: token 0x1000 gva 0x5000\n");
  CHECK(fj.str() ==
        "{\"ts_ns\":2,\"vcpu\":0,\"event\":\"kvm_msr\",\"write\":1,\"ecx\":1263947010,\"data\":1,\"exception\":0}\n"
        "{\"ts_ns\":4,\"vcpu\":1,\"event\":\"kvm_async_pf_ready\",\"token\":4096,\"gva\":20480}\n");
  REQUIRE(ff.evs.size() == 2);
  CHECK((ff.evs[0].name == "kvm_msr" && ff.evs[0].index == 1 && ff.evs[1].index == 3));
  // Unfiltered sinks, observers and the hash see everything.
  CHECK(fa.evs.size() == 5);
  CHECK(fo.lines == po.lines);
  CHECK(filt.hash() == plain.hash());
  CHECK(filt.event_count() == 5);
  // kvm_*,-kvm_apic: the same run without its kvm_apic line.
  Tracer t2;
  std::ostringstream t2t, t2j;
  Collect a, b;
  Lines o;
  run(only("kvm_*,-kvm_apic"), t2, t2t, t2j, a, b, o);
  CHECK(t2t.str() == pt.str().substr(0, pt.str().rfind("CPU 1/KVM-1 [001] 0.000000005: kvm_apic")));
}

TEST_CASE("time order (--time-order): text and JSON Lines sorted by time at finish, ties in emission order", "[trace][sinks][order]") {
  Tracer t;
  std::ostringstream text, jsonl;
  Collect c;
  t.set_text_output(&text);
  t.set_jsonl_output(&jsonl);
  t.set_time_order(true);
  t.add_sink(&c, false);
  // vCPU 1 runs its quantum after vCPU 0's, so its early events come after later ones.
  t.kvm_entry(Tick(50), 0, 0xa);
  t.kvm_entry(Tick(70), 0, 0xb);
  t.kvm_entry(Tick(10), 1, 0xc);
  t.pvsim_vcpu(Tick(50), 1, "tie", "after vCPU 0's 50 in emission order");
  t.kvm_entry(Tick(60), 1, 0xd);
  CHECK(text.str().empty());  // kept until the run ends
  CHECK(c.evs.size() == 5);   // other sinks get emission order, as it happens
  CHECK(c.finished == 0);
  t.pvsim_stop(Tick(70), 0, "exit", "");  // the run's last event finishes the sinks
  CHECK(c.finished == 1);
  t.finish();
  CHECK(text.str() ==
        "CPU 1/KVM-1 [001] 0.000000010: kvm_entry: vcpu 1, rip 0xc\n"
        "CPU 0/KVM-0 [000] 0.000000050: kvm_entry: vcpu 0, rip 0xa\n"
        "CPU 1/KVM-1 [001] 0.000000050: pvsim_vcpu: tie: after vCPU 0's 50 in emission order\n"
        "CPU 1/KVM-1 [001] 0.000000060: kvm_entry: vcpu 1, rip 0xd\n"
        "CPU 0/KVM-0 [000] 0.000000070: kvm_entry: vcpu 0, rip 0xb\n"
        "CPU 0/KVM-0 [000] 0.000000070: pvsim_stop: reason exit\n");
  std::istringstream js(jsonl.str());
  std::string l;
  std::vector<std::string> ts;
  while (std::getline(js, l)) ts.push_back(l.substr(0, l.find(',')));
  CHECK(ts == std::vector<std::string>{"{\"ts_ns\":10", "{\"ts_ns\":50", "{\"ts_ns\":50", "{\"ts_ns\":60",
                                       "{\"ts_ns\":70", "{\"ts_ns\":70"});
  CHECK(jsonl.str().find("\"what\":\"tie\",\"detail\":\"after vCPU 0's 50 in emission order\"") != std::string::npos);
  CHECK(c.finished == 1);
  // Without a pvsim_stop, finish() writes them.
  std::ostringstream late;
  Tracer u;
  u.set_text_output(&late);
  u.set_time_order(true);
  u.kvm_entry(Tick(2), 0, 1);
  u.kvm_entry(Tick(1), 1, 1);
  CHECK(late.str().empty());
  u.finish();
  CHECK(late.str() == "CPU 1/KVM-1 [001] 0.000000001: kvm_entry: vcpu 1, rip 0x1\n"
                      "CPU 0/KVM-0 [000] 0.000000002: kvm_entry: vcpu 0, rip 0x1\n");
}

TEST_CASE("time order and filter together, and time order turned off again writes as it goes", "[trace][sinks][order]") {
  Tracer t;
  std::ostringstream text;
  t.set_text_output(&text);
  t.set_event_filter(only("kvm_msr"));
  t.set_time_order(true);
  t.kvm_msr(Tick(9), 0, false, 1, 2, false);
  t.kvm_entry(Tick(1), 0, 1);
  t.kvm_msr(Tick(3), 1, false, 3, 4, true);
  t.finish();
  CHECK(text.str() == "CPU 1/KVM-1 [001] 0.000000003: kvm_msr: msr_read 3 = 0x4 (#GP)\n"
                      "CPU 0/KVM-0 [000] 0.000000009: kvm_msr: msr_read 1 = 0x2\n");
  Tracer u;
  std::ostringstream now;
  u.set_text_output(&now);
  u.set_time_order(true);
  u.set_time_order(false);
  u.kvm_entry(Tick(5), 0, 1);
  CHECK(now.str() == "CPU 0/KVM-0 [000] 0.000000005: kvm_entry: vcpu 0, rip 0x1\n");
}
