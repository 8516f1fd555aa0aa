// tools/platform/timeline_model.cpp — deriving the timeline from the event stream
// (timeline_model.h).
#include "tools/platform/timeline_model.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>

#include "core/trace.h"
#include "tools/platform/host_model.h"
#include "tools/platform/scenario.h"

namespace pvsim {

const TraceValue* value_of(const TraceRecord& r, std::string_view field) {
  if (!r.desc) return nullptr;
  const auto& fields = r.desc->fields;
  for (size_t i = 0; i < fields.size() && i < r.values.size(); ++i)
    if (field == fields[i].name) return &r.values[i];
  return nullptr;
}

TimelineInfo timeline_info_for(const Scenario& s) {
  TimelineInfo info;
  info.name = s.name;
  info.description = s.description;
  info.vcpus = s.machine.vcpus;
  const HostModel host(s.host, s.machine.vcpus);
  info.pcpus = host.pcpus();
  for (unsigned v = 0; v < s.machine.vcpus; ++v) info.start_pcpu.push_back(host.window_at(v, Tick{0}).pcpu);
  info.host = host.describe();
  return info;
}

const char* vcpu_state_name(VcpuState s) {
  switch (s) {
    case VcpuState::Running: return "running";
    case VcpuState::Halted: return "halted (HLT)";
    case VcpuState::ApfHalted: return "halted (async PF)";
    case VcpuState::Preempted: return "descheduled (preempted)";
    case VcpuState::WaitPcpu: return "descheduled (woken, waits for a pCPU)";
    case VcpuState::Paused: return "descheduled (VM paused)";
    case VcpuState::Stalled: return "stalled (host fault-in)";
    case VcpuState::WaitSipi: return "waiting for SIPI";
  }
  return "?";
}

namespace {

uint64_t u_of(const TraceRecord& r, std::string_view field, uint64_t fallback = 0) {
  const TraceValue* v = value_of(r, field);
  return v ? v->u : fallback;
}

std::string_view s_of(const TraceRecord& r, std::string_view field) {
  const TraceValue* v = value_of(r, field);
  return v ? v->s : std::string_view{};
}

// The first unsigned number after `key` in `text` ("steal 1200 delta ..." -> 1200).
std::optional<uint64_t> number_after(std::string_view text, std::string_view key) {
  const size_t at = text.find(key);
  if (at == std::string_view::npos) return std::nullopt;
  const char* p = text.data() + at + key.size();
  const char* end = text.data() + text.size();
  uint64_t n = 0;
  auto [q, ec] = std::from_chars(p, end, n);
  if (ec != std::errc{} || q == p) return std::nullopt;
  return n;
}

// VMX basic exit reason 12 (SDM Vol. 3C Appendix C): HLT.
constexpr uint64_t kExitHlt = 12;

}  // namespace

TimelineBuilder::TimelineBuilder(TimelineInfo info) {
  m_model.info = std::move(info);
  const unsigned n = std::max(1u, m_model.info.vcpus);
  m_model.info.vcpus = n;
  m_tracks.resize(n);
  m_model.vcpus.resize(n);
  for (unsigned v = 0; v < n; ++v)
    if (v < m_model.info.start_pcpu.size()) m_tracks[v].pcpu = static_cast<int>(m_model.info.start_pcpu[v]);
}

TimelineBuilder::VcpuTrack& TimelineBuilder::vcpu(unsigned v) {
  // A record naming a vCPU beyond the scenario's count (hand-built input) grows the model
  // rather than indexing out of range.
  if (v >= m_tracks.size()) {
    m_tracks.resize(v + 1);
    m_model.vcpus.resize(v + 1);
    m_model.info.vcpus = v + 1;
  }
  return m_tracks[v];
}

uint32_t TimelineBuilder::intern(std::string_view s) {
  auto it = m_string_ids.find(std::string(s));
  if (it != m_string_ids.end()) return it->second;
  const auto id = static_cast<uint32_t>(m_model.strings.size());
  m_model.strings.emplace_back(s);
  m_string_ids.emplace(std::string(s), id);
  return id;
}

void TimelineBuilder::set_state(unsigned v, uint64_t ts, VcpuState s) {
  VcpuTrack& t = vcpu(v);
  if (t.state == s) return;
  // A state never starts before the one it ends (host completions can be logged a little
  // behind a vCPU's own events; state changes are not, but stay safe).
  ts = std::max(ts, t.since);
  if (ts > t.since) m_model.vcpus[v].states.push_back({t.since, ts, t.state});
  t.state = s;
  t.since = ts;
}

void TimelineBuilder::leave_pcpu(unsigned v, uint64_t ts, unsigned pcpu) {
  VcpuTrack& t = vcpu(v);
  if (t.on_cpu) {
    // The first scheduling event of a vCPU whose start pCPU was unknown names it.
    const int p = t.pcpu >= 0 ? t.pcpu : static_cast<int>(pcpu);
    if (ts > t.on_since) m_occupancy.push_back({t.on_since, ts, v, p});
  }
  t.pcpu = static_cast<int>(pcpu);
  t.on_cpu = false;
}

void TimelineBuilder::take_pcpu(unsigned v, uint64_t ts, unsigned pcpu) {
  VcpuTrack& t = vcpu(v);
  if (t.on_cpu && t.pcpu != static_cast<int>(pcpu)) leave_pcpu(v, ts, pcpu);
  if (!t.on_cpu) {
    t.on_cpu = true;
    t.on_since = ts;
  }
  t.pcpu = static_cast<int>(pcpu);
}

void TimelineBuilder::instant(unsigned v, uint64_t ts, InstantKind k, std::string_view text, uint64_t index,
                              uint32_t apf) {
  vcpu(v);
  m_model.vcpus[v].instants.push_back({ts, k, intern(text), apf, index});
}

CounterTrack& TimelineBuilder::counter(const std::string& name, int v, CounterUnit unit) {
  auto key = std::make_pair(v, name);
  auto it = m_counter_ids.find(key);
  if (it == m_counter_ids.end()) {
    it = m_counter_ids.emplace(key, m_model.counters.size()).first;
    m_model.counters.push_back({name, v, unit, {}});
  }
  return m_model.counters[it->second];
}

void TimelineBuilder::on_event(const TraceRecord& r) {
  if (m_finished || !r.desc) return;
  const uint64_t ts = r.ts.value();
  const unsigned v = r.vcpu;
  VcpuTrack& t = vcpu(v);
  t.seen = true;
  ++m_model.events;
  m_model.end = std::max(m_model.end, ts);
  const std::string_view name = r.desc->name;

  if (name == "kvm_entry") {
    set_state(v, ts, VcpuState::Running);
  } else if (name == "kvm_exit") {
    const uint64_t code = u_of(r, "exit_reason", UINT64_MAX);
    // KVM's kvm_exit carries the number only and prints the name (__print_symbolic).
    std::string reason_text = vmx_exit_reason_name(static_cast<VmxExitReason>(static_cast<uint32_t>(code)));
    if (reason_text == "UNKNOWN") reason_text = fmt::format("exit reason {}", code);
    ++m_model.exit_counts[reason_text];
    instant(v, ts, InstantKind::Exit, reason_text, r.index);
    if (code == kExitHlt) set_state(v, ts, VcpuState::Halted);
  } else if (name == "pvsim_apf") {
    const std::string_view what = s_of(r, "what");
    if (what == "halt") set_state(v, ts, VcpuState::ApfHalted);
    else if (what == "halt_end") set_state(v, ts, VcpuState::Running);
    else if (what == "held" || what == "dropped")
      instant(v, ts, InstantKind::Other, fmt::format("async PF {}", what), r.index);
  } else if (name == "pvsim_host") {
    const std::string_view what = s_of(r, "what");
    if (what == "stall") set_state(v, ts, VcpuState::Stalled);
    else if (what == "stall_end") set_state(v, ts, VcpuState::Running);
    else if (what == "pause" || what == "resume")
      instant(v, ts, InstantKind::Other, fmt::format("VMM {}", what), r.index);
  } else if (name == "pvsim_sched_out") {
    const std::string_view why = s_of(r, "why");
    const bool paused = why == "paused";
    const VcpuState s = paused ? VcpuState::Paused
                        : why.find("woken") != std::string_view::npos ? VcpuState::WaitPcpu
                                                                      : VcpuState::Preempted;
    set_state(v, ts, s);
    const auto pcpu = static_cast<unsigned>(u_of(r, "pcpu"));
    leave_pcpu(v, ts, pcpu);
    const uint64_t until = u_of(r, "until_ns", ts);
    if (until > ts) m_waits.push_back({ts, until, pcpu, paused});
  } else if (name == "pvsim_sched_in") {
    set_state(v, ts, VcpuState::Running);
    take_pcpu(v, ts, static_cast<unsigned>(u_of(r, "pcpu")));
    if (const TraceValue* d = value_of(r, "run_delay_ns"))
      counter("run delay", static_cast<int>(v), CounterUnit::Ns).points.emplace_back(ts, static_cast<int64_t>(d->u));
  } else if (name == "pvsim_vcpu") {
    const std::string_view what = s_of(r, "what");
    if (what == "init") set_state(v, ts, VcpuState::WaitSipi);
    else if (what == "sipi") set_state(v, ts, VcpuState::Running);
    else if (what == "migrate") {
      // "pcpu A -> pcpu B" (platform.cpp): the thread now holds pCPU B.
      const std::string_view detail = s_of(r, "detail");
      const size_t arrow = detail.find("->");
      if (arrow != std::string_view::npos) {
        const auto from = number_after(detail.substr(0, arrow), "pcpu ");
        const auto to = number_after(detail.substr(arrow), "pcpu ");
        if (to) {
          if (t.on_cpu) {
            if (t.pcpu < 0 && from) t.pcpu = static_cast<int>(*from);
            take_pcpu(v, ts, static_cast<unsigned>(*to));
          } else {
            t.pcpu = static_cast<int>(*to);
          }
        }
      }
      instant(v, ts, InstantKind::Migrate, fmt::format("migrate: {}", detail), r.index);
    }
  } else if (name == "pvsim_stop") {
    const std::string_view reason = s_of(r, "reason");
    instant(v, ts, InstantKind::Stop, fmt::format("stop: {}", reason), r.index);
  } else if (name == "pvsim_marker") {
    instant(v, ts, InstantKind::Marker, s_of(r, "text"), r.index);
  } else if (name == "pvsim_action") {
    const std::string_view what = s_of(r, "detail");
    instant(v, ts, InstantKind::Action, fmt::format("action: {}", what.empty() ? s_of(r, "what") : what), r.index);
  } else if (name == "kvm_async_pf_not_present") {
    TimelineApf a;
    a.vcpu = v;
    a.token = u_of(r, "token");
    a.gva = u_of(r, "gva");
    a.start = ts;
    a.end = ts;
    a.flow = m_model.apfs.size() + 1;
    const auto idx = static_cast<uint32_t>(m_model.apfs.size());
    m_model.apfs.push_back(a);
    m_open_apfs[{v, a.token}].push_back(idx);
    instant(v, ts, InstantKind::NotPresent, fmt::format("page not present (token {:#x})", a.token), r.index, idx);
  } else if (name == "kvm_async_pf_ready") {
    const uint64_t token = u_of(r, "token");
    auto it = m_open_apfs.find({v, token});
    if (it != m_open_apfs.end() && !it->second.empty()) {
      const uint32_t idx = it->second.front();
      it->second.erase(it->second.begin());
      TimelineApf& a = m_model.apfs[idx];
      a.end = std::max(ts, a.start);
      a.ready = true;
      instant(v, ts, InstantKind::Ready, fmt::format("page ready (token {:#x})", token), r.index, idx);
    } else {
      // No async PF of this vCPU has the token: the wake-all (0xffffffff; 0 in the
      // seed era) or a page-ready the guest never had a not-present for.
      instant(v, ts, InstantKind::WakeAll, fmt::format("page ready, no fault waits (token {:#x})", token), r.index);
    }
  } else if (name == "kvm_pvclock_update") {
    if (const TraceValue* ver = value_of(r, "version"))
      counter("kvmclock version", static_cast<int>(v), CounterUnit::Count)
          .points.emplace_back(ts, static_cast<int64_t>(ver->u));
    if (const TraceValue* tsc = value_of(r, "tsc_timestamp"))
      counter("kvmclock tsc_timestamp", static_cast<int>(v), CounterUnit::Count)
          .points.emplace_back(ts, static_cast<int64_t>(tsc->u));
  } else if (name == "pvsim_steal") {
    if (s_of(r, "what") == "update")
      if (auto steal = number_after(s_of(r, "detail"), "steal "))
        counter("steal time", static_cast<int>(v), CounterUnit::Ns).points.emplace_back(ts, static_cast<int64_t>(*steal));
  }
}

void TimelineBuilder::build_pcpus() {
  unsigned n = m_model.info.pcpus;
  for (const Occupancy& o : m_occupancy) n = std::max(n, static_cast<unsigned>(o.pcpu + 1));
  for (const Wait& w : m_waits) n = std::max(n, w.pcpu + 1);
  auto& lanes = m_model.pcpus;
  lanes.assign(n, {});
  // vCPU threads: sorted by start; where two overlap (a vCPU notices the end of its window
  // only at its next instruction, the next holder's sched_in carries the exact time), the
  // later start wins.
  std::vector<std::vector<PcpuSlice>> held(n);
  for (const Occupancy& o : m_occupancy)
    if (o.pcpu >= 0) held[o.pcpu].push_back({o.start, o.end, static_cast<int>(o.vcpu)});
  for (auto& h : held) {
    std::stable_sort(h.begin(), h.end(), [](const PcpuSlice& a, const PcpuSlice& b) { return a.start < b.start; });
    for (size_t i = 0; i + 1 < h.size(); ++i) h[i].end = std::min(h[i].end, h[i + 1].start);
    std::erase_if(h, [](const PcpuSlice& s) { return s.end <= s.start; });
  }
  // Other host work: where a vCPU waited for this pCPU (not because the VM was paused) and
  // no vCPU thread held it, something else of the host's did.
  std::vector<std::vector<PcpuSlice>> other(n);
  for (const Wait& w : m_waits) {
    const auto& h = held[w.pcpu];
    uint64_t cur = w.start;
    auto it = std::lower_bound(h.begin(), h.end(), w.start, [](const PcpuSlice& s, uint64_t t) { return s.end <= t; });
    for (; it != h.end() && it->start < w.end && cur < w.end; ++it) {
      if (it->start > cur) other[w.pcpu].push_back({cur, it->start, w.paused ? kVmPaused : kHostThread});
      cur = std::max(cur, it->end);
    }
    if (cur < w.end) other[w.pcpu].push_back({cur, w.end, w.paused ? kVmPaused : kHostThread});
  }
  for (unsigned p = 0; p < n; ++p) {
    auto& o = other[p];
    std::stable_sort(o.begin(), o.end(), [](const PcpuSlice& a, const PcpuSlice& b) {
      return a.start != b.start ? a.start < b.start : a.vcpu < b.vcpu;
    });
    std::vector<PcpuSlice> merged;
    for (const PcpuSlice& s : o) {
      if (!merged.empty() && s.start <= merged.back().end) {
        PcpuSlice& m = merged.back();
        if (s.vcpu == m.vcpu) {
          m.end = std::max(m.end, s.end);
          continue;
        }
        if (s.end <= m.end) continue;  // covered by a slice of the other kind
        PcpuSlice rest = s;
        rest.start = m.end;
        merged.push_back(rest);
        continue;
      }
      merged.push_back(s);
    }
    auto& out = lanes[p];
    out.reserve(held[p].size() + merged.size());
    std::merge(held[p].begin(), held[p].end(), merged.begin(), merged.end(), std::back_inserter(out),
               [](const PcpuSlice& a, const PcpuSlice& b) { return a.start < b.start; });
  }
}

void TimelineBuilder::finish() {
  if (m_finished) return;
  m_finished = true;
  const uint64_t end = m_model.end;
  for (unsigned v = 0; v < m_tracks.size(); ++v) {
    VcpuTrack& t = m_tracks[v];
    if (end > t.since) m_model.vcpus[v].states.push_back({t.since, end, t.state});
    t.since = end;
    if (t.on_cpu && end > t.on_since)
      m_occupancy.push_back({t.on_since, end, v, t.pcpu >= 0 ? t.pcpu : -1});
  }
  build_pcpus();
  // Async PFs still waiting when the run ended last until the end.
  for (TimelineApf& a : m_model.apfs)
    if (!a.ready) a.end = std::max(end, a.start);
  // Lanes per vCPU: the first lane whose last async PF has ended (interval partitioning,
  // in not-present order, which is start order per vCPU).
  std::vector<std::vector<uint64_t>> lane_end(m_model.vcpus.size());
  for (TimelineApf& a : m_model.apfs) {
    auto& le = lane_end[a.vcpu];
    unsigned lane = 0;
    while (lane < le.size() && le[lane] > a.start) ++lane;
    if (lane == le.size()) le.push_back(0);
    le[lane] = a.end;
    a.lane = lane;
    m_model.vcpus[a.vcpu].apf_lanes = std::max<unsigned>(m_model.vcpus[a.vcpu].apf_lanes, lane + 1);
  }
  // Async PFs outstanding, VM-wide: +1 at each not-present, -1 at its page-ready.
  if (!m_model.apfs.empty()) {
    std::vector<std::pair<uint64_t, int>> steps;
    for (const TimelineApf& a : m_model.apfs) {
      steps.emplace_back(a.start, +1);
      if (a.ready) steps.emplace_back(a.end, -1);
    }
    std::stable_sort(steps.begin(), steps.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    CounterTrack& c = counter("async PFs outstanding", -1, CounterUnit::Count);
    int64_t n = 0;
    for (size_t i = 0; i < steps.size(); ++i) {
      n += steps[i].second;
      if (i + 1 < steps.size() && steps[i + 1].first == steps[i].first) continue;  // one point per instant
      c.points.emplace_back(steps[i].first, n);
    }
  }
  for (VcpuLanes& l : m_model.vcpus)
    std::stable_sort(l.instants.begin(), l.instants.end(), [](const Instant& a, const Instant& b) { return a.ts < b.ts; });
  for (CounterTrack& c : m_model.counters)
    std::stable_sort(c.points.begin(), c.points.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  // Per-vCPU counters by vCPU then name order of first appearance; VM-wide ones last.
  std::stable_sort(m_model.counters.begin(), m_model.counters.end(), [](const CounterTrack& a, const CounterTrack& b) {
    const unsigned ka = a.vcpu < 0 ? UINT32_MAX : static_cast<unsigned>(a.vcpu);
    const unsigned kb = b.vcpu < 0 ? UINT32_MAX : static_cast<unsigned>(b.vcpu);
    return ka < kb;
  });
  m_counter_ids.clear();
}

}  // namespace pvsim
