// tools/platform/perfetto.cpp — the Perfetto writer (perfetto.h).
//
// Packets are written in timestamp order (ties keep the order they were made in, so a
// slice's end comes before the next slice's begin on the same track). The file is a
// `Trace` message written packet by packet: field 1, length-delimited, per packet, which
// is byte for byte what serialising one Trace holding them all would give, without
// holding them all.
#include "tools/platform/perfetto.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "tools/platform/perfetto_trace.pb.h"

namespace pvsim {

namespace {

namespace pp = perfetto::protos;

// Track uuids: disjoint ranges per kind (any value but 0, Perfetto's implicit global track).
uint64_t vcpu_uuid(unsigned v) { return 0x1000 + v; }
uint64_t exits_uuid(unsigned v) { return 0x2000 + v; }
uint64_t apf_uuid(unsigned v, unsigned lane) { return 0x100000 + (uint64_t{v} << 12) + lane; }
uint64_t counter_uuid(size_t i) { return 0x200000 + i; }
uint64_t pcpu_uuid(unsigned p) { return 0x3000 + p; }

// One event before serialisation; names index a local table.
struct Ev {
  uint64_t ts;
  uint64_t track;
  int64_t value;     // counter value
  uint32_t name;     // index into names
  uint32_t apf;      // async PF index + 1 (0: none)
  uint8_t type;      // pp::TrackEvent::Type
  uint8_t flow;      // 0 none, 1 flow_ids (start/step), 2 terminating_flow_ids
};

class Writer {
 public:
  Writer(const TimelineModel& m, std::ostream& os) : m_model(m), m_os(os) {}

  void run() {
    descriptors();
    events();
  }

 private:
  uint32_t name(const std::string& s) {
    auto [it, fresh] = m_name_ids.emplace(s, static_cast<uint32_t>(m_names.size()));
    if (fresh) m_names.push_back(s);
    return it->second;
  }

  void put(pp::TracePacket& p) {
    p.set_trusted_packet_sequence_id(1);
    if (m_first) {
      p.set_sequence_flags(1);  // SEQ_INCREMENTAL_STATE_CLEARED
      m_first = false;
    }
    m_buf.clear();
    p.SerializeToString(&m_buf);
    // Trace.packet (field 1, wire type 2): tag, varint length, bytes.
    char head[11];
    size_t n = 0;
    head[n++] = 0x0a;
    for (uint64_t len = m_buf.size();; len >>= 7) {
      if (len < 0x80) {
        head[n++] = static_cast<char>(len);
        break;
      }
      head[n++] = static_cast<char>((len & 0x7f) | 0x80);
    }
    m_os.write(head, static_cast<std::streamsize>(n));
    m_os.write(m_buf.data(), static_cast<std::streamsize>(m_buf.size()));
  }

  void track(uint64_t uuid, const std::string& nm, int rank, const std::string& description = {},
             std::optional<CounterUnit> unit = std::nullopt) {
    pp::TracePacket p;
    pp::TrackDescriptor* d = p.mutable_track_descriptor();
    d->set_uuid(uuid);
    d->set_name(nm);
    if (uuid == kPerfettoRootUuid) {
      d->set_child_ordering(pp::TrackDescriptor::EXPLICIT);
    } else {
      d->set_parent_uuid(kPerfettoRootUuid);
      d->set_sibling_order_rank(rank);
    }
    if (!description.empty()) d->set_description(description);
    if (unit)
      d->mutable_counter()->set_unit(*unit == CounterUnit::Ns ? pp::CounterDescriptor::UNIT_TIME_NS
                                                             : pp::CounterDescriptor::UNIT_COUNT);
    put(p);
  }

  std::string counter_name(const CounterTrack& c) {
    return c.vcpu < 0 ? c.name : fmt::format("vCPU {} {}", c.vcpu, c.name);
  }

  void descriptors() {
    const TimelineInfo& info = m_model.info;
    track(kPerfettoRootUuid, fmt::format("pvsim: {}", info.name.empty() ? "run" : info.name), 0, info.description);
    // Ranks: 1000 per vCPU block, then pCPUs, then VM-wide counters.
    for (unsigned v = 0; v < m_model.vcpus.size(); ++v) {
      const int base = static_cast<int>(v) * 1000;
      track(vcpu_uuid(v), fmt::format("vCPU {}", v), base,
            "running / halted / descheduled by the host / stalled on a host fault-in; async PF and "
            "marker instants");
      track(exits_uuid(v), fmt::format("vCPU {} exits", v), base + 1, "one instant per VM exit");
      for (unsigned l = 0; l < m_model.vcpus[v].apf_lanes; ++l)
        track(apf_uuid(v, l), fmt::format("vCPU {} async PF", v), base + 2 + static_cast<int>(l),
              "from kvm_async_pf_not_present to kvm_async_pf_ready");
    }
    for (size_t i = 0; i < m_model.counters.size(); ++i) {
      const CounterTrack& c = m_model.counters[i];
      const int rank = c.vcpu < 0 ? 2'000'000 + static_cast<int>(i) : c.vcpu * 1000 + 500 + static_cast<int>(i);
      track(counter_uuid(i), counter_name(c), rank, {}, c.unit);
    }
    for (unsigned p = 0; p < m_model.pcpus.size(); ++p)
      track(pcpu_uuid(p), fmt::format("pCPU {}", p), 1'000'000 + static_cast<int>(p),
            "which vCPU thread holds this physical CPU; host: other host work while a vCPU waited");
  }

  void slice(uint64_t track, uint64_t start, uint64_t end, uint32_t nm, uint32_t apf = 0, uint8_t flow = 0) {
    m_evs.push_back({start, track, 0, nm, apf, pp::TrackEvent::TYPE_SLICE_BEGIN, flow});
    m_evs.push_back({end, track, 0, nm, 0, pp::TrackEvent::TYPE_SLICE_END, 0});
  }

  void events() {
    for (unsigned v = 0; v < m_model.vcpus.size(); ++v) {
      const VcpuLanes& l = m_model.vcpus[v];
      for (const StateSlice& s : l.states) slice(vcpu_uuid(v), s.start, s.end, name(vcpu_state_name(s.state)));
      for (const Instant& i : l.instants) {
        const std::string& text = m_model.strings[i.text];
        switch (i.kind) {
          case InstantKind::Exit:
            m_evs.push_back({i.ts, exits_uuid(v), 0, name(text), 0, pp::TrackEvent::TYPE_INSTANT, 0});
            break;
          case InstantKind::NotPresent:
            m_evs.push_back({i.ts, vcpu_uuid(v), 0, name("page not present"), i.apf + 1, pp::TrackEvent::TYPE_INSTANT, 1});
            break;
          case InstantKind::Ready:
            m_evs.push_back({i.ts, vcpu_uuid(v), 0, name("page ready"), i.apf + 1, pp::TrackEvent::TYPE_INSTANT, 2});
            break;
          default:
            m_evs.push_back({i.ts, vcpu_uuid(v), 0, name(text), 0, pp::TrackEvent::TYPE_INSTANT, 0});
            break;
        }
      }
    }
    for (size_t k = 0; k < m_model.apfs.size(); ++k) {
      const TimelineApf& a = m_model.apfs[k];
      const std::string nm = a.ready ? fmt::format("async PF {:#x}", a.token)
                                     : fmt::format("async PF {:#x} (no page ready)", a.token);
      slice(apf_uuid(a.vcpu, a.lane), a.start, a.end, name(nm), static_cast<uint32_t>(k + 1), 1);
    }
    for (unsigned p = 0; p < m_model.pcpus.size(); ++p)
      for (const PcpuSlice& s : m_model.pcpus[p])
        slice(pcpu_uuid(p), s.start, s.end,
              name(s.vcpu >= 0 ? fmt::format("vCPU {}", s.vcpu) : s.vcpu == kVmPaused ? "VM paused" : "host"));
    for (size_t i = 0; i < m_model.counters.size(); ++i)
      for (const auto& [ts, value] : m_model.counters[i].points)
        m_evs.push_back({ts, counter_uuid(i), value, 0, 0, pp::TrackEvent::TYPE_COUNTER, 0});

    std::stable_sort(m_evs.begin(), m_evs.end(), [](const Ev& a, const Ev& b) { return a.ts < b.ts; });
    pp::TracePacket p;
    for (const Ev& e : m_evs) {
      p.Clear();
      p.set_timestamp(e.ts);
      pp::TrackEvent* t = p.mutable_track_event();
      t->set_type(static_cast<pp::TrackEvent::Type>(e.type));
      t->set_track_uuid(e.track);
      if (e.type == pp::TrackEvent::TYPE_COUNTER) {
        t->set_counter_value(e.value);
      } else if (e.type != pp::TrackEvent::TYPE_SLICE_END) {
        t->set_name(m_names[e.name]);
      }
      if (e.apf) {
        const TimelineApf& a = m_model.apfs[e.apf - 1];
        if (e.flow == 1) t->add_flow_ids(a.flow);
        if (e.flow == 2) t->add_terminating_flow_ids(a.flow);
        if (e.type == pp::TrackEvent::TYPE_SLICE_BEGIN) {
          annotate(t, "token", a.token);
          annotate(t, "gva", a.gva);
          annotate(t, "vcpu", a.vcpu);
        }
      }
      put(p);
    }
  }

  static void annotate(pp::TrackEvent* t, const char* key, uint64_t value) {
    pp::DebugAnnotation* d = t->add_debug_annotations();
    d->set_name(key);
    d->set_uint_value(value);
  }

  const TimelineModel& m_model;
  std::ostream& m_os;
  std::vector<Ev> m_evs;
  std::vector<std::string> m_names;
  std::map<std::string, uint32_t> m_name_ids;
  std::string m_buf;
  bool m_first = true;
};

}  // namespace

void write_perfetto(const TimelineModel& m, std::ostream& os) { Writer(m, os).run(); }

}  // namespace pvsim
