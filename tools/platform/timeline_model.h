// tools/platform/timeline_model.h — what a run looked like, derived from its trace events
// alone: the shared input of `--perfetto` (perfetto.h) and `--timeline` (timeline_html.h).
//
// TimelineBuilder is a TraceSink (core/trace_event.h) that sees every event, unfiltered,
// and turns the stream into lanes a person can look at (tools/platform/README.md
// "Seeing a run: the exporters"):
//  - per vCPU, a sequence of states that never overlap: running (guest code or KVM
//    handling an exit for it: the vCPU thread holds its pCPU), halted after a HLT exit,
//    halted by async PF (pvsim_apf halt .. halt_end), descheduled by the host
//    (pvsim_sched_out .. pvsim_sched_in: preempted, woken but waiting for a pCPU, or VM
//    paused), stalled on a synchronous host fault (pvsim_host stall .. stall_end), waiting
//    for a start-up IPI (pvsim_vcpu init .. sipi);
//  - per vCPU, instants: every VM exit, page not present / page ready, guest markers
//    (pvsim_marker), schedule actions, stops, migrations;
//  - per pCPU, which vCPU thread holds it (from pvsim_sched_in/out and migrations), and
//    "host" where a vCPU waited for that pCPU and no vCPU held it (another host thread:
//    a preemption window or host noise, tools/platform/README.md §5);
//  - one async PF per kvm_async_pf_not_present, ending at the kvm_async_pf_ready with the
//    same vCPU and token (pvsim traces the ready when it injects page-ready, as KVM's
//    kvm_arch_async_page_present does, so that is also where the guest is told);
//  - counters: cumulative run delay per vCPU (pvsim_sched_in), steal time as the guest's
//    record holds it (pvsim_steal update), kvmclock version and tsc_timestamp per vCPU
//    (kvm_pvclock_update), async PFs outstanding in the VM.
// Fields are looked up by name (value_of), never by position, so the table may grow.
//
// Events arrive in emission order, in which timestamps of different vCPUs interleave and
// host completions may be a little behind a vCPU's own events; the builder keeps per-vCPU
// state and sorts what needs sorting in finish().
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/trace_event.h"

namespace pvsim {

// The value of `field` in r (nullptr when the event has no such field).
const TraceValue* value_of(const TraceRecord& r, std::string_view field);

// What the trace cannot say and the scenario can: names, and where each vCPU's thread
// starts (a vCPU the host never moves leaves no scheduling event to learn it from).
struct TimelineInfo {
  std::string name;         // the scenario's name
  std::string description;  // the scenario's description
  unsigned vcpus = 1;
  unsigned pcpus = 0;                 // 0: learnt from the events
  std::vector<unsigned> start_pcpu;   // per vCPU; empty: learnt from the events
  std::string host;                   // HostModel::describe(), for the page's header
};

struct Scenario;
// name, description, vCPUs, pCPUs, where each vCPU starts (HostModel at time 0), host line.
TimelineInfo timeline_info_for(const Scenario& s);

enum class VcpuState : uint8_t {
  Running,
  Halted,       // HLT exit until the next entry
  ApfHalted,    // async-PF synthetic halt (pvsim_apf halt .. halt_end)
  Preempted,    // descheduled while runnable (run delay, steal time)
  WaitPcpu,     // woke from a halt, its pCPU is busy (run delay)
  Paused,       // the VMM stopped the VM (host.pause)
  Stalled,      // synchronous fault-in by the host (pvsim_host stall .. stall_end)
  WaitSipi,     // INIT received, waiting for a start-up IPI
};
inline constexpr unsigned kVcpuStateCount = 8;
const char* vcpu_state_name(VcpuState s);  // "running", "halted (HLT)", ...

struct StateSlice {
  uint64_t start = 0;
  uint64_t end = 0;
  VcpuState state = VcpuState::Running;
};

enum class InstantKind : uint8_t {
  Exit,        // a VM exit; text = reason name
  NotPresent,  // kvm_async_pf_not_present; apf = index
  Ready,       // kvm_async_pf_ready that ends an async PF; apf = index
  WakeAll,     // kvm_async_pf_ready with no async PF of its token (a wake-all)
  Marker,      // pvsim_marker; text = the guest's string
  Action,      // pvsim_action (a schedule entry fired)
  Stop,        // pvsim_stop
  Migrate,     // pvsim_vcpu migrate
  Other,       // pvsim_apf held/dropped, pvsim_host pause/resume
};

struct Instant {
  uint64_t ts = 0;
  InstantKind kind = InstantKind::Other;
  uint32_t text = 0;     // index into TimelineModel::strings
  uint32_t apf = 0;      // NotPresent/Ready: index into TimelineModel::apfs
  uint64_t index = 0;    // the event's position in the canonical trace
};

struct TimelineApf {
  unsigned vcpu = 0;
  uint64_t token = 0;
  uint64_t gva = 0;
  uint64_t start = 0;   // kvm_async_pf_not_present
  uint64_t end = 0;     // kvm_async_pf_ready (or the end of the run)
  bool ready = false;   // false: the run ended (or the work was dropped) first
  unsigned lane = 0;    // per vCPU, so that async PFs drawn on one lane never overlap
  uint64_t flow = 0;    // flow id linking not present to page ready (1, 2, ...)
};

struct PcpuSlice {
  uint64_t start = 0;
  uint64_t end = 0;
  int vcpu = -1;  // >= 0: that vCPU's thread; kHostThread or kVmPaused otherwise
};
inline constexpr int kHostThread = -1;
inline constexpr int kVmPaused = -2;

enum class CounterUnit : uint8_t { Ns, Count };

struct CounterTrack {
  std::string name;   // "run delay", "steal time", "kvmclock version", ...
  int vcpu = -1;      // -1: VM-wide
  CounterUnit unit = CounterUnit::Count;
  std::vector<std::pair<uint64_t, int64_t>> points;  // (ts, value), ascending ts after finish()
};

struct VcpuLanes {
  std::vector<StateSlice> states;  // ascending, non-overlapping, no empty slices
  std::vector<Instant> instants;   // ascending ts after finish()
  unsigned apf_lanes = 0;          // lanes used by this vCPU's async PFs
};

struct TimelineModel {
  TimelineInfo info;
  uint64_t end = 0;             // the last timestamp of the run
  uint64_t events = 0;          // events seen
  std::vector<VcpuLanes> vcpus;
  std::vector<std::vector<PcpuSlice>> pcpus;  // per pCPU: ascending, non-overlapping
  std::vector<TimelineApf> apfs;                  // in not-present order
  std::vector<CounterTrack> counters;         // per-vCPU counters first, by vCPU, then VM-wide
  std::vector<std::string> strings;           // instant texts, deduplicated
  std::map<std::string, uint64_t> exit_counts;  // VM exits by reason, whole run
};

class TimelineBuilder final : public TraceSink {
 public:
  explicit TimelineBuilder(TimelineInfo info);
  void on_event(const TraceRecord& r) override;
  void on_finish() override { finish(); }
  // Closes what is still open at the end of the run and sorts; later calls do nothing.
  void finish();
  const TimelineModel& model() const { return m_model; }

 private:
  struct VcpuTrack {
    VcpuState state = VcpuState::Running;
    uint64_t since = 0;
    bool seen = false;
    int pcpu = -1;           // the pCPU its thread holds (or last held); -1 unknown
    bool on_cpu = true;      // holds pCPU `pcpu` since on_since
    uint64_t on_since = 0;
    bool stopped = false;
  };
  struct Occupancy {
    uint64_t start, end;
    unsigned vcpu;
    int pcpu;  // -1: learnt later (the first scheduling event names it)
  };
  struct Wait {
    uint64_t start, end;
    unsigned pcpu;
    bool paused;
  };
  VcpuTrack& vcpu(unsigned v);
  void set_state(unsigned v, uint64_t ts, VcpuState s);
  void leave_pcpu(unsigned v, uint64_t ts, unsigned pcpu);
  void take_pcpu(unsigned v, uint64_t ts, unsigned pcpu);
  void instant(unsigned v, uint64_t ts, InstantKind k, std::string_view text, uint64_t index,
               uint32_t apf = 0);
  CounterTrack& counter(const std::string& name, int vcpu, CounterUnit unit);
  uint32_t intern(std::string_view s);
  void build_pcpus();

  TimelineModel m_model;
  std::vector<VcpuTrack> m_tracks;
  std::vector<Occupancy> m_occupancy;
  std::vector<Wait> m_waits;
  std::map<std::pair<unsigned, uint64_t>, std::vector<uint32_t>> m_open_apfs;  // (vCPU, token) -> apfs
  std::map<std::string, uint32_t> m_string_ids;
  std::map<std::pair<int, std::string>, size_t> m_counter_ids;
  int64_t m_outstanding = 0;
  bool m_finished = false;
};

}  // namespace pvsim
