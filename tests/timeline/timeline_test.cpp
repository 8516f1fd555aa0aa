// tests/timeline/timeline_test.cpp — the timeline model (tools/platform/timeline_model.h)
// from hand-built trace records, its Perfetto encoding decoded back with the same
// generated messages, and the HTML page's escaping and size bound.
#include <catch2/catch.hpp>

#include <deque>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tools/platform/perfetto.h"
#include "tools/platform/perfetto_trace.pb.h"
#include "tools/platform/timeline_html.h"
#include "tools/platform/timeline_model.h"

using namespace pvsim;

namespace {

// Records as a sink sees them, with descriptions made up here: the builder must find
// fields by name, whatever their order and whatever else the table holds.
class Feeder {
 public:
  struct F {
    std::string name;
    uint64_t u = 0;
    std::string s;
    bool is_str = false;
  };
  static F u(std::string n, uint64_t v) { return {std::move(n), v, {}, false}; }
  static F s(std::string n, std::string v) { return {std::move(n), 0, std::move(v), true}; }

  void feed(TraceSink& sink, const std::string& event, unsigned vcpu, uint64_t ts, const std::vector<F>& fields) {
    auto& names = m_names.emplace_back();
    auto& descs = m_fields.emplace_back();
    std::vector<TraceValue> values;
    names.push_back(event);
    for (const F& f : fields) names.push_back(f.name);
    // names is a deque of one vector: its strings stay put once the vector is complete.
    for (size_t i = 0; i < fields.size(); ++i)
      descs.push_back({names[i + 1].c_str(), fields[i].is_str ? TraceType::Str : TraceType::U64, "u64"});
    for (const F& f : fields) values.push_back({f.u, f.is_str ? std::string_view(m_strs.emplace_back(f.s)) : std::string_view{}});
    TraceEventDesc& d = m_descs.emplace_back();
    d.id = 0;
    d.system = "pvsim";
    d.name = names[0].c_str();
    d.fields = descs;
    d.print_fmt = "";
    TraceRecord r;
    r.index = m_index++;
    r.ts = Tick{ts};
    r.vcpu = vcpu;
    r.desc = &d;
    r.values = values;
    sink.on_event(r);
  }

 private:
  std::deque<std::vector<std::string>> m_names;
  std::deque<std::vector<TraceFieldDesc>> m_fields;
  std::deque<TraceEventDesc> m_descs;
  std::deque<std::string> m_strs;
  uint64_t m_index = 0;
};
using F = Feeder;

TimelineInfo info(unsigned vcpus, unsigned pcpus, std::vector<unsigned> start = {}) {
  TimelineInfo i;
  i.name = "unit";
  i.description = "hand-built";
  i.vcpus = vcpus;
  i.pcpus = pcpus;
  i.start_pcpu = std::move(start);
  return i;
}

std::vector<std::tuple<uint64_t, uint64_t, VcpuState>> states(const TimelineModel& m, unsigned v) {
  std::vector<std::tuple<uint64_t, uint64_t, VcpuState>> out;
  for (const StateSlice& s : m.vcpus[v].states) out.emplace_back(s.start, s.end, s.state);
  return out;
}

}  // namespace

TEST_CASE("timeline: vCPU states come from entries, HLT exits, APF halts, host stalls and scheduling") {
  TimelineBuilder b(info(1, 1, {0}));
  Feeder fd;
  fd.feed(b, "kvm_exit", 0, 100, {F::u("exit_reason", 12), F::u("guest_rip", 0x1000)});
  fd.feed(b, "kvm_entry", 0, 300, {F::u("rip", 0x1001)});
  fd.feed(b, "pvsim_apf", 0, 400, {F::s("what", "halt"), F::s("detail", "token 0x1000 gfn 0x1000")});
  fd.feed(b, "pvsim_apf", 0, 900, {F::s("what", "halt_end"), F::s("detail", "its page is in")});
  fd.feed(b, "pvsim_sched_out", 0, 1000,
          {F::u("pcpu", 0), F::u("rip", 1), F::s("why", "preempted"), F::u("until_ns", 1500)});
  fd.feed(b, "pvsim_sched_in", 0, 1500, {F::u("pcpu", 0), F::u("rip", 1), F::u("run_delay_ns", 500)});
  fd.feed(b, "pvsim_host", 0, 2000, {F::s("what", "stall"), F::s("detail", "gpa 0x1000000 not resident")});
  fd.feed(b, "pvsim_host", 0, 2600, {F::s("what", "stall_end"), F::s("detail", "")});
  fd.feed(b, "kvm_exit", 0, 2700, {F::u("exit_reason", 32)});
  fd.feed(b, "pvsim_marker", 0, 2800, {F::s("text", "phase 2")});
  fd.feed(b, "pvsim_stop", 0, 3000, {F::s("reason", "exit"), F::s("detail", "vCPU 0 wrote port 0xf4")});
  b.finish();
  const TimelineModel& m = b.model();
  using S = VcpuState;
  const std::vector<std::tuple<uint64_t, uint64_t, VcpuState>> want{
      {0, 100, S::Running},      {100, 300, S::Halted},   {300, 400, S::Running},    {400, 900, S::ApfHalted},
      {900, 1000, S::Running},   {1000, 1500, S::Preempted}, {1500, 2000, S::Running}, {2000, 2600, S::Stalled},
      {2600, 3000, S::Running}};
  CHECK(states(m, 0) == want);
  CHECK(m.end == 3000);
  // Exits by name (KVM's kvm_exit carries the number), the marker's own text.
  std::vector<std::string> exits, marks;
  for (const Instant& i : m.vcpus[0].instants)
    (i.kind == InstantKind::Exit ? exits : marks).push_back(m.strings[i.text]);
  CHECK(exits == std::vector<std::string>{"HLT", "MSR_WRITE"});
  CHECK(marks == std::vector<std::string>{"phase 2", "stop: exit"});
  CHECK(m.exit_counts.at("HLT") == 1);
  // Run delay as pvsim_sched_in reports it; the pCPU: the vCPU, host work, the vCPU.
  REQUIRE(m.counters.size() == 1);
  CHECK(m.counters[0].name == "run delay");
  CHECK(m.counters[0].points == std::vector<std::pair<uint64_t, int64_t>>{{1500, 500}});
  REQUIRE(m.pcpus.size() == 1);
  std::vector<std::tuple<uint64_t, uint64_t, int>> p;
  for (const PcpuSlice& s : m.pcpus[0]) p.emplace_back(s.start, s.end, s.vcpu);
  CHECK(p == std::vector<std::tuple<uint64_t, uint64_t, int>>{{0, 1000, 0}, {1000, 1500, kHostThread}, {1500, 3000, 0}});
}

TEST_CASE("timeline: fields are found by name, in any order") {
  TimelineBuilder b(info(1, 1));
  Feeder fd;
  // gva before token, and an extra field the builder does not know.
  fd.feed(b, "kvm_async_pf_not_present", 0, 10, {F::u("gva", 0x1000000), F::u("extra", 7), F::u("token", 0x1000)});
  fd.feed(b, "kvm_async_pf_ready", 0, 90, {F::u("token", 0x1000), F::u("gva", 0x1000000)});
  b.finish();
  REQUIRE(b.model().apfs.size() == 1);
  CHECK(b.model().apfs[0].token == 0x1000);
  CHECK(b.model().apfs[0].gva == 0x1000000);
  CHECK(b.model().apfs[0].ready);
  CHECK(b.model().apfs[0].end == 90);
}

TEST_CASE("timeline: async PFs pair by vCPU and token, wake-alls and lanes") {
  TimelineBuilder b(info(2, 2));
  Feeder fd;
  auto np = [&](unsigned v, uint64_t ts, uint64_t token) {
    fd.feed(b, "kvm_async_pf_not_present", v, ts, {F::u("token", token), F::u("gva", token << 12)});
  };
  auto ready = [&](unsigned v, uint64_t ts, uint64_t token) {
    fd.feed(b, "kvm_async_pf_ready", v, ts, {F::u("token", token), F::u("gva", 0)});
  };
  np(0, 10, 0x1000);
  np(1, 20, 0x1000);  // the same token on another vCPU (the seed era's tokens need not be unique)
  np(0, 30, 0x2000);  // overlaps the first: a second lane
  ready(1, 50, 0x1000);
  ready(0, 60, 0xffffffff);  // wake-all: no async PF
  ready(0, 80, 0x1000);
  b.finish();
  const TimelineModel& m = b.model();
  REQUIRE(m.apfs.size() == 3);
  CHECK((m.apfs[0].vcpu == 0 && m.apfs[0].end == 80 && m.apfs[0].lane == 0 && m.apfs[0].ready));
  CHECK((m.apfs[1].vcpu == 1 && m.apfs[1].end == 50 && m.apfs[1].lane == 0 && m.apfs[1].ready));
  CHECK((m.apfs[2].vcpu == 0 && m.apfs[2].lane == 1 && !m.apfs[2].ready && m.apfs[2].end == 80));
  CHECK(m.vcpus[0].apf_lanes == 2);
  std::set<uint64_t> flows;
  for (const TimelineApf& a : m.apfs) flows.insert(a.flow);
  CHECK(flows.size() == 3);
  size_t wake_all = 0;
  for (const Instant& i : m.vcpus[0].instants) wake_all += i.kind == InstantKind::WakeAll;
  CHECK(wake_all == 1);
  const CounterTrack& out = m.counters.back();
  CHECK(out.name == "async PFs outstanding");
  CHECK(out.points == std::vector<std::pair<uint64_t, int64_t>>{{10, 1}, {20, 2}, {30, 3}, {50, 2}, {80, 1}});
}

TEST_CASE("timeline: pCPU lanes from scheduling events, a late sched_out yields to the next holder") {
  // Two vCPUs share pCPU 0 (pinned, turns of 100 ns): vCPU 1 waits from the start; vCPU 0
  // notices its turn ended only at 102, after vCPU 1's sched_in at 100.
  TimelineBuilder b(info(2, 1, {0, 0}));
  Feeder fd;
  fd.feed(b, "pvsim_sched_out", 1, 0, {F::u("pcpu", 0), F::s("why", "preempted"), F::u("until_ns", 100)});
  fd.feed(b, "pvsim_sched_in", 1, 100, {F::u("pcpu", 0), F::u("run_delay_ns", 100)});
  fd.feed(b, "pvsim_sched_out", 0, 102, {F::u("pcpu", 0), F::s("why", "preempted"), F::u("until_ns", 200)});
  fd.feed(b, "pvsim_sched_out", 1, 200, {F::u("pcpu", 0), F::s("why", "paused"), F::u("until_ns", 300)});
  fd.feed(b, "pvsim_sched_in", 0, 200, {F::u("pcpu", 0), F::u("run_delay_ns", 98)});
  fd.feed(b, "pvsim_vcpu", 0, 250, {F::s("what", "migrate"), F::s("detail", "pcpu 0 -> pcpu 1")});
  fd.feed(b, "kvm_entry", 1, 400, {});
  b.finish();
  const TimelineModel& m = b.model();
  REQUIRE(m.pcpus.size() == 2);
  std::vector<std::tuple<uint64_t, uint64_t, int>> p0, p1;
  for (const PcpuSlice& s : m.pcpus[0]) p0.emplace_back(s.start, s.end, s.vcpu);
  for (const PcpuSlice& s : m.pcpus[1]) p1.emplace_back(s.start, s.end, s.vcpu);
  CHECK(p0 == std::vector<std::tuple<uint64_t, uint64_t, int>>{{0, 100, 0}, {100, 200, 1}, {200, 250, 0}, {250, 300, kVmPaused}});
  CHECK(p1 == std::vector<std::tuple<uint64_t, uint64_t, int>>{{250, 400, 0}});
  using S = VcpuState;
  CHECK(states(m, 1) ==
        std::vector<std::tuple<uint64_t, uint64_t, VcpuState>>{{0, 100, S::Preempted}, {100, 200, S::Running}, {200, 400, S::Paused}});
}

namespace {

namespace pp = perfetto::protos;

// The Perfetto file of a model, decoded with the generated messages.
pp::Trace perfetto_of(const TimelineModel& m) {
  std::ostringstream os;
  write_perfetto(m, os);
  pp::Trace t;
  REQUIRE(t.ParseFromString(os.str()));
  return t;
}

}  // namespace

TEST_CASE("perfetto: tracks, balanced slices, flows from not-present to page ready") {
  TimelineBuilder b(info(2, 2, {0, 1}));
  Feeder fd;
  fd.feed(b, "kvm_exit", 0, 100, {F::u("exit_reason", 12)});
  fd.feed(b, "kvm_async_pf_not_present", 1, 150, {F::u("token", 0x1001), F::u("gva", 0x1006000)});
  fd.feed(b, "kvm_entry", 0, 300, {});
  fd.feed(b, "kvm_async_pf_ready", 1, 700, {F::u("token", 0x1001), F::u("gva", 0x1006000)});
  fd.feed(b, "kvm_pvclock_update", 0, 800, {F::u("version", 4), F::u("tsc_timestamp", 123456)});
  fd.feed(b, "pvsim_stop", 0, 1000, {F::s("reason", "exit"), F::s("detail", "")});
  b.finish();
  const pp::Trace t = perfetto_of(b.model());
  std::map<uint64_t, std::string> names;
  std::map<uint64_t, std::vector<uint64_t>> open;  // track -> begin timestamps (a stack)
  std::map<std::string, std::vector<std::string>> slices_by_track;
  std::map<uint64_t, int> flow_starts, flow_ends;
  uint64_t last_ts = 0;
  for (const pp::TracePacket& p : t.packet()) {
    CHECK(p.trusted_packet_sequence_id() == 1);
    if (p.has_track_descriptor()) {
      names[p.track_descriptor().uuid()] = p.track_descriptor().name();
      continue;
    }
    REQUIRE(p.has_track_event());
    CHECK(p.timestamp() >= last_ts);
    last_ts = p.timestamp();
    const pp::TrackEvent& e = p.track_event();
    REQUIRE(names.count(e.track_uuid()));
    if (e.type() == pp::TrackEvent::TYPE_SLICE_BEGIN) {
      open[e.track_uuid()].push_back(p.timestamp());
      slices_by_track[names[e.track_uuid()]].push_back(e.name());
    } else if (e.type() == pp::TrackEvent::TYPE_SLICE_END) {
      REQUIRE(!open[e.track_uuid()].empty());
      CHECK(open[e.track_uuid()].back() < p.timestamp());
      open[e.track_uuid()].pop_back();
    }
    for (uint64_t f : e.flow_ids()) ++flow_starts[f];
    for (uint64_t f : e.terminating_flow_ids()) ++flow_ends[f];
  }
  for (const auto& [track, stack] : open) CHECK(stack.empty());
  CHECK(names.at(kPerfettoRootUuid) == "pvsim: unit");
  std::set<std::string> track_names;
  for (const auto& [u, n] : names) track_names.insert(n);
  for (const char* n : {"vCPU 0", "vCPU 1", "vCPU 0 exits", "vCPU 1 async PF", "pCPU 0", "pCPU 1",
                        "vCPU 0 kvmclock version", "async PFs outstanding"})
    CHECK(track_names.count(n) == 1);
  CHECK(slices_by_track["vCPU 0"] == std::vector<std::string>{"running", "halted (HLT)", "running"});
  CHECK(slices_by_track["vCPU 1 async PF"] == std::vector<std::string>{"async PF 0x1001"});
  // The flow: the not-present instant and the async PF slice carry it, page ready ends it.
  CHECK(flow_starts == std::map<uint64_t, int>{{1, 2}});
  CHECK(flow_ends == std::map<uint64_t, int>{{1, 1}});
}

TEST_CASE("perfetto: the same model gives the same bytes") {
  TimelineBuilder b(info(1, 1));
  Feeder fd;
  fd.feed(b, "kvm_exit", 0, 5, {F::u("exit_reason", 10)});
  fd.feed(b, "pvsim_marker", 0, 6, {F::s("text", "x")});
  b.finish();
  std::ostringstream a, c;
  write_perfetto(b.model(), a);
  write_perfetto(b.model(), c);
  CHECK(a.str() == c.str());
  CHECK(!a.str().empty());
}

TEST_CASE("html: escaping makes any text safe XML") {
  CHECK(html_escape("a<b>&\"c'") == "a&lt;b&gt;&amp;&quot;c&#39;");
  CHECK(html_escape("µs") == "µs");                        // valid UTF-8 is kept
  CHECK(html_escape("\x01x\x7f") == "\xEF\xBF\xBDx\xEF\xBF\xBD");  // controls
  CHECK(html_escape("\xff\xc3") == "\xEF\xBF\xBD\xEF\xBF\xBD");    // invalid / truncated
  CHECK(html_escape("\xed\xa0\x80") == "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // a surrogate
  CHECK(html_escape("\xc0\xaf") == "\xEF\xBF\xBD\xEF\xBF\xBD");  // overlong '/'
  CHECK(html_escape("tab\there") == "tab\there");
}

TEST_CASE("html: a long run stays within the element budget and says what it merged") {
  TimelineInfo i = info(2, 2, {0, 1});
  i.description = "<script>alert(1)</script> & more";
  TimelineBuilder b(i);
  Feeder fd;
  // 100000 HLT exits and entries per vCPU, 10 ns apart: far more slices than pixels.
  for (uint64_t k = 0; k < 100000; ++k)
    for (unsigned v = 0; v < 2; ++v) {
      fd.feed(b, "kvm_exit", v, k * 20 + 5, {F::u("exit_reason", 12)});
      fd.feed(b, "kvm_entry", v, k * 20 + 15, {});
    }
  b.finish();
  std::ostringstream os;
  const TimelineHtmlStats st = write_timeline_html(b.model(), os);
  const std::string page = os.str();
  CHECK(st.elements < 40000);
  CHECK(st.merged_slices >= 300000);
  CHECK(st.merged_marks > 0);
  CHECK(page.find("were merged into") != std::string::npos);
  CHECK(page.find("<script>") == std::string::npos);
  CHECK(page.find("&lt;script&gt;alert(1)&lt;/script&gt; &amp; more") != std::string::npos);
  // Every merged mark stands for slices of both states, and says so.
  CHECK(page.find("halted (HLT) 50%") != std::string::npos);
}
