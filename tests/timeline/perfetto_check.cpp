// tests/timeline/perfetto_check.cpp — decodes a `pvsim run --perfetto` file with the
// generated messages of tools/platform/perfetto_trace.proto and checks it against the
// canonical trace (`--trace`) of the same run: every expected number comes from that text,
// none is written here.
//
//   pvsim_perfetto_check FILE.pftrace TRACE.txt VCPUS PCPUS
//
// Prints one line per failed check and exits 1 if any; prints a summary and exits 0.
#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tools/platform/perfetto_trace.pb.h"

namespace pp = perfetto::protos;

namespace {

int g_failures = 0;
void fail(const std::string& what) {
  ++g_failures;
  std::cout << "FAIL " << what << "\n";
}
template <typename A, typename B>
void expect_eq(const A& got, const B& want, const std::string& what) {
  if (!(got == want)) fail(fmt::format("{}: got {}, expected {}", what, got, want));
}

// One canonical line: "CPU 1/KVM-1 [001] 0.000371113: kvm_async_pf_ready: token 0x1001 gva ..."
struct Line {
  unsigned vcpu;
  uint64_t ts;
  std::string event, text;
};

std::vector<Line> read_canonical(const std::string& path) {
  std::ifstream in(path);
  std::vector<Line> out;
  std::string s;
  while (std::getline(in, s)) {
    const size_t lb = s.find(" ["), rb = s.find("] ");
    if (s.rfind("CPU ", 0) != 0 || lb == std::string::npos || rb == std::string::npos) continue;
    Line l;
    l.vcpu = static_cast<unsigned>(std::stoul(s.substr(lb + 2, rb - lb - 2)));
    const size_t colon = s.find(": ", rb);
    const std::string t = s.substr(rb + 2, colon - rb - 2);  // "0.000371113"
    const size_t dot = t.find('.');
    l.ts = std::stoull(t.substr(0, dot)) * 1'000'000'000ull + std::stoull(t.substr(dot + 1));
    const size_t ev_end = s.find(": ", colon + 2);
    l.event = s.substr(colon + 2, ev_end - colon - 2);
    l.text = ev_end == std::string::npos ? std::string() : s.substr(ev_end + 2);
    out.push_back(std::move(l));
  }
  return out;
}

// The number after `key` ("token 0x1001" -> 0x1001; "%#llx" prints 0 as "0").
uint64_t num_after(const std::string& text, const std::string& key) {
  const size_t at = text.find(key);
  if (at == std::string::npos) return UINT64_MAX;
  return std::stoull(text.substr(at + key.size()), nullptr, 0);
}
// "0.000150000" after `key`, in ns.
uint64_t seconds_after(const std::string& text, const std::string& key) {
  const size_t at = text.find(key);
  if (at == std::string::npos) return UINT64_MAX;
  const std::string t = text.substr(at + key.size(), text.find(' ', at + key.size()) - at - key.size());
  const size_t dot = t.find('.');
  return std::stoull(t.substr(0, dot)) * 1'000'000'000ull + std::stoull(t.substr(dot + 1));
}

struct Slice {
  uint64_t start, end;
  std::string name;
  std::vector<uint64_t> flows;
};
struct Inst {
  uint64_t ts;
  std::string name;
  std::vector<uint64_t> flows, terminating;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::cerr << "usage: pvsim_perfetto_check FILE.pftrace TRACE.txt VCPUS PCPUS\n";
    return 2;
  }
  const unsigned vcpus = static_cast<unsigned>(std::atoi(argv[3])), pcpus = static_cast<unsigned>(std::atoi(argv[4]));
  std::ifstream f(argv[1], std::ios::binary);
  std::stringstream buf;
  buf << f.rdbuf();
  pp::Trace trace;
  if (!trace.ParseFromString(buf.str())) {
    fail("the file does not decode as perfetto.protos.Trace");
    return 1;
  }
  const std::vector<Line> lines = read_canonical(argv[2]);
  if (lines.empty()) fail("the canonical trace has no lines");

  // ---- the Perfetto side: tracks, slices, instants, counters ----
  std::map<uint64_t, std::string> track;  // uuid -> name
  std::map<std::string, int> track_name_count;
  std::map<std::string, std::vector<Slice>> slices;  // by track name (async PF lanes of a vCPU share one)
  std::map<std::string, std::vector<Inst>> instants;
  std::map<std::string, std::vector<std::pair<uint64_t, int64_t>>> counters;
  std::map<uint64_t, std::vector<Slice>> open;
  uint64_t last_ts = 0;
  for (const pp::TracePacket& p : trace.packet()) {
    if (p.trusted_packet_sequence_id() != 1) fail("a packet is not on sequence 1");
    if (p.has_track_descriptor()) {
      const auto& d = p.track_descriptor();
      if (track.count(d.uuid())) fail(fmt::format("track uuid {} described twice", d.uuid()));
      track[d.uuid()] = d.name();
      ++track_name_count[d.name()];
      continue;
    }
    if (!p.has_track_event()) {
      fail("a packet with neither a track nor an event");
      continue;
    }
    if (p.timestamp() < last_ts) fail(fmt::format("timestamps go back at {}", p.timestamp()));
    last_ts = p.timestamp();
    const pp::TrackEvent& e = p.track_event();
    if (!track.count(e.track_uuid())) {
      fail(fmt::format("event on undescribed track {}", e.track_uuid()));
      continue;
    }
    const std::string& tn = track[e.track_uuid()];
    std::vector<uint64_t> flows(e.flow_ids().begin(), e.flow_ids().end());
    std::vector<uint64_t> term(e.terminating_flow_ids().begin(), e.terminating_flow_ids().end());
    switch (e.type()) {
      case pp::TrackEvent::TYPE_SLICE_BEGIN:
        if (!open[e.track_uuid()].empty()) fail(fmt::format("nested slice on {} at {}", tn, p.timestamp()));
        open[e.track_uuid()].push_back({p.timestamp(), 0, e.name(), flows});
        break;
      case pp::TrackEvent::TYPE_SLICE_END: {
        auto& st = open[e.track_uuid()];
        if (st.empty()) {
          fail(fmt::format("slice end without begin on {} at {}", tn, p.timestamp()));
          break;
        }
        Slice s = st.back();
        st.pop_back();
        s.end = p.timestamp();
        if (s.end <= s.start) fail(fmt::format("empty slice '{}' on {} at {}", s.name, tn, s.start));
        slices[tn].push_back(std::move(s));
        break;
      }
      case pp::TrackEvent::TYPE_INSTANT:
        instants[tn].push_back({p.timestamp(), e.name(), flows, term});
        break;
      case pp::TrackEvent::TYPE_COUNTER:
        counters[tn].emplace_back(p.timestamp(), e.counter_value());
        break;
      default:
        fail("an event of unknown type");
    }
  }
  for (const auto& [u, st] : open)
    if (!st.empty()) fail(fmt::format("slice left open on {}", track[u]));

  // ---- tracks: one per vCPU and per pCPU, nothing else with those names ----
  for (unsigned v = 0; v < vcpus; ++v) {
    expect_eq(track_name_count[fmt::format("vCPU {}", v)], 1, fmt::format("tracks named 'vCPU {}'", v));
    expect_eq(track_name_count[fmt::format("vCPU {} exits", v)], 1, fmt::format("tracks named 'vCPU {} exits'", v));
  }
  for (unsigned p = 0; p < pcpus; ++p)
    expect_eq(track_name_count[fmt::format("pCPU {}", p)], 1, fmt::format("tracks named 'pCPU {}'", p));
  unsigned vcpu_tracks = 0, pcpu_tracks = 0;
  for (const auto& [n, c] : track_name_count) {
    unsigned k;
    char rest;
    if (std::sscanf(n.c_str(), "vCPU %u%c", &k, &rest) == 1) vcpu_tracks += c;
    if (std::sscanf(n.c_str(), "pCPU %u%c", &k, &rest) == 1) pcpu_tracks += c;
  }
  expect_eq(vcpu_tracks, vcpus, "vCPU state tracks");
  expect_eq(pcpu_tracks, pcpus, "pCPU tracks");

  uint64_t end = 0;
  for (const Line& l : lines) end = std::max(end, l.ts);

  // ---- per vCPU: states, exits, async PFs, flows, counters ----
  std::vector<std::pair<uint64_t, int>> outstanding_steps;
  uint64_t total_np = 0, total_paired = 0;
  for (unsigned v = 0; v < vcpus; ++v) {
    const std::string vt = fmt::format("vCPU {}", v);
    std::vector<const Line*> mine;
    for (const Line& l : lines)
      if (l.vcpu == v) mine.push_back(&l);
    // States cover the run without gaps.
    const auto& st = slices[vt];
    if (st.empty()) fail(vt + ": no state slices");
    else {
      expect_eq(st.front().start, uint64_t{0}, vt + ": first state starts at");
      expect_eq(st.back().end, end, vt + ": last state ends at (the run's last timestamp)");
      for (size_t i = 1; i < st.size(); ++i)
        if (st[i].start != st[i - 1].end) fail(fmt::format("{}: gap or overlap between states at {}", vt, st[i].start));
    }
    auto count_slices = [&](const std::string& prefix) {
      return static_cast<uint64_t>(std::count_if(st.begin(), st.end(), [&](const Slice& s) { return s.name.rfind(prefix, 0) == 0; }));
    };
    auto count_lines = [&](const std::string& event, const std::string& text_prefix) {
      return static_cast<uint64_t>(std::count_if(mine.begin(), mine.end(), [&](const Line* l) {
        return l->event == event && l->text.rfind(text_prefix, 0) == 0;
      }));
    };
    expect_eq(count_slices("halted (async PF)"), count_lines("pvsim_apf", "halt:"), vt + ": APF-halted slices vs pvsim_apf halt lines");
    expect_eq(count_slices("stalled"), count_lines("pvsim_host", "stall:"), vt + ": stalled slices vs pvsim_host stall lines");
    expect_eq(count_slices("descheduled"), count_lines("pvsim_sched_out", ""), vt + ": descheduled slices vs pvsim_sched_out lines");
    // Every HLT exit that the next entry follows later is a halted slice.
    {
      uint64_t want = 0;
      for (size_t i = 0; i < mine.size(); ++i) {
        if (mine[i]->event != "kvm_exit" || mine[i]->text.find(" reason HLT ") == std::string::npos) continue;
        for (size_t j = i + 1; j < mine.size(); ++j)
          if (mine[j]->event == "kvm_entry" || mine[j]->event == "pvsim_sched_out") {
            want += mine[j]->ts > mine[i]->ts;
            break;
          }
      }
      expect_eq(count_slices("halted (HLT)"), want, vt + ": HLT-halted slices");
    }
    // Exits: one instant each, named by the reason the text prints.
    {
      std::multiset<std::string> want, got;
      for (const Line* l : mine)
        if (l->event == "kvm_exit") {
          const size_t at = l->text.find(" reason ") + 8;
          want.insert(l->text.substr(at, l->text.find(' ', at) - at));
        }
      for (const Inst& i : instants[vt + " exits"]) got.insert(i.name);
      expect_eq(got.size(), want.size(), vt + ": exit instants");
      if (got != want) fail(vt + ": exit instant names differ from the trace's reasons");
    }
    // Async PFs: a slice per not-present, pairing with the next ready of its token.
    std::map<uint64_t, std::vector<uint64_t>> open_tokens;  // token -> not-present ts
    std::vector<std::pair<uint64_t, uint64_t>> want_apf;    // (start, token)
    uint64_t paired = 0, unpaired_ready = 0;
    std::map<uint64_t, uint64_t> want_end;  // start -> end (tokens per vCPU are in flight once)
    for (const Line* l : mine) {
      if (l->event == "kvm_async_pf_not_present") {
        const uint64_t tok = num_after(l->text, "token ");
        want_apf.emplace_back(l->ts, tok);
        open_tokens[tok].push_back(l->ts);
        outstanding_steps.emplace_back(l->ts, +1);
      } else if (l->event == "kvm_async_pf_ready") {
        const uint64_t tok = num_after(l->text, "token ");
        auto it = open_tokens.find(tok);
        if (it != open_tokens.end() && !it->second.empty()) {
          want_end[it->second.front()] = l->ts;
          it->second.erase(it->second.begin());
          ++paired;
          outstanding_steps.emplace_back(l->ts, -1);
        } else {
          ++unpaired_ready;
        }
      }
    }
    total_np += want_apf.size();
    total_paired += paired;
    const auto& apf = slices[vt + " async PF"];
    expect_eq(apf.size(), want_apf.size(), vt + ": async PF slices vs kvm_async_pf_not_present lines");
    std::map<uint64_t, const Inst*> np_by_flow, ready_by_flow;
    for (const Inst& i : instants[vt]) {
      if (i.name == "page not present")
        for (uint64_t fl : i.flows) np_by_flow[fl] = &i;
      if (i.name == "page ready")
        for (uint64_t fl : i.terminating) ready_by_flow[fl] = &i;
    }
    uint64_t ready_instants = 0, wake_alls = 0;
    for (const Inst& i : instants[vt]) {
      ready_instants += i.name == "page ready";
      wake_alls += i.name.rfind("page ready, no fault waits", 0) == 0;
    }
    expect_eq(ready_instants, paired, vt + ": page ready instants vs paired kvm_async_pf_ready lines");
    expect_eq(wake_alls, unpaired_ready, vt + ": page ready without a fault (wake-alls)");
    std::set<std::pair<uint64_t, uint64_t>> want_set(want_apf.begin(), want_apf.end()), got_set;
    for (const Slice& s : apf) {
      const uint64_t tok = num_after(s.name, "async PF ");
      got_set.emplace(s.start, tok);
      if (s.flows.size() != 1) {
        fail(fmt::format("{}: async PF slice at {} has {} flow ids", vt, s.start, s.flows.size()));
        continue;
      }
      const uint64_t fl = s.flows[0];
      auto np = np_by_flow.find(fl);
      if (np == np_by_flow.end() || np->second->ts != s.start)
        fail(fmt::format("{}: async PF at {}: no 'page not present' instant with its flow at its start", vt, s.start));
      auto we = want_end.find(s.start);
      if (we != want_end.end()) {
        expect_eq(s.end, we->second, fmt::format("{}: async PF at {} ends at its page ready", vt, s.start));
        auto rd = ready_by_flow.find(fl);
        if (rd == ready_by_flow.end() || rd->second->ts != s.end)
          fail(fmt::format("{}: async PF at {}: its flow does not end at a 'page ready' instant at {}", vt, s.start, s.end));
      } else {
        expect_eq(s.end, end, fmt::format("{}: async PF at {} without page ready lasts to the end", vt, s.start));
        if (ready_by_flow.count(fl)) fail(fmt::format("{}: async PF at {} without page ready has a flow end", vt, s.start));
      }
    }
    if (got_set != want_set) fail(vt + ": async PF slices (start, token) differ from the not-present lines");
    // Counters.
    {
      std::vector<std::pair<uint64_t, int64_t>> want_rd, want_ver;
      for (const Line* l : mine) {
        if (l->event == "pvsim_sched_in") want_rd.emplace_back(l->ts, static_cast<int64_t>(num_after(l->text, "run_delay ")));
        if (l->event == "kvm_pvclock_update") want_ver.emplace_back(l->ts, static_cast<int64_t>(num_after(l->text, "version ")));
      }
      std::stable_sort(want_ver.begin(), want_ver.end(), [](auto& a, auto& b) { return a.first < b.first; });
      if (counters[vt + " run delay"] != want_rd) fail(vt + ": run delay counter differs from pvsim_sched_in's run_delay");
      if (counters[vt + " kvmclock version"] != want_ver) fail(vt + ": kvmclock version counter differs from kvm_pvclock_update");
    }
  }
  // VM-wide: async PFs outstanding.
  if (total_np) {
    std::stable_sort(outstanding_steps.begin(), outstanding_steps.end(), [](auto& a, auto& b) { return a.first < b.first; });
    std::vector<std::pair<uint64_t, int64_t>> want;
    int64_t n = 0;
    for (size_t i = 0; i < outstanding_steps.size(); ++i) {
      n += outstanding_steps[i].second;
      if (i + 1 < outstanding_steps.size() && outstanding_steps[i + 1].first == outstanding_steps[i].first) continue;
      want.emplace_back(outstanding_steps[i].first, n);
    }
    if (counters["async PFs outstanding"] != want) fail("async PFs outstanding differs from the trace's not-present/ready lines");
    expect_eq(n, static_cast<int64_t>(total_np - total_paired), "async PFs outstanding at the end");
  }
  // pCPUs: where a vCPU alone on its pCPU was preempted, the pCPU ran host work meanwhile.
  if (pcpus == vcpus) {
    for (const Line& l : lines) {
      if (l.event != "pvsim_sched_out" || l.text.find(" preempted until ") == std::string::npos) continue;
      const uint64_t p = num_after(l.text, "pcpu "), until = seconds_after(l.text, "until ");
      const auto& ps = slices[fmt::format("pCPU {}", p)];
      const bool found = std::any_of(ps.begin(), ps.end(), [&](const Slice& s) {
        return s.name == "host" && s.start == l.ts && s.end == std::min(until, end);
      });
      if (!found) fail(fmt::format("pCPU {}: no host slice from {} to {} (vCPU {} preempted)", p, l.ts, until, l.vcpu));
      const auto& vs = slices[fmt::format("vCPU {}", l.vcpu)];
      const bool held = std::any_of(ps.begin(), ps.end(), [&](const Slice& s) { return s.name == fmt::format("vCPU {}", l.vcpu); });
      if (!held) fail(fmt::format("pCPU {}: never shows vCPU {}", p, l.vcpu));
      (void)vs;
    }
  }
  uint64_t n_slices = 0, n_instants = 0, n_counter_points = 0;
  for (const auto& [k, s] : slices) n_slices += s.size();
  for (const auto& [k, s] : instants) n_instants += s.size();
  for (const auto& [k, s] : counters) n_counter_points += s.size();
  std::cout << fmt::format("{} packets, {} tracks, {} slices, {} instants, {} counter values, {} async PFs ({} paired); "
                           "{} canonical lines\n",
                           trace.packet_size(), track.size(), n_slices, n_instants, n_counter_points, total_np, total_paired,
                           lines.size());
  if (g_failures) std::cout << g_failures << " check(s) failed\n";
  return g_failures ? 1 : 0;
}
