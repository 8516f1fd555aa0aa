// tools/platform/host_model.h — the host scheduler under the VM: when each vCPU thread
// holds a physical CPU, and which one (scenario key `host`, scenarios/README.md).
//
// The schedule is static: a fixed-share host whose decisions never depend on what the
// guest does (a halted vCPU still owns its slices, as an idle-polling vCPU thread would).
// That keeps it a pure function of (HostConfig, vCPU, time), so the platform can ask
// "when does vCPU v next run?" at any moment without simulating the host step by step,
// and two runs of one scenario see the same schedule. Explicit preemption windows are
// then cut out of it. Nothing here reads host time: host clocks are scenario values.
//
// What the platform does with a window (tools/platform/README.md §5): a vCPU executes
// only inside its windows; across a gap its virtual time (and TSC) jumps to the next
// window's start and the jump counts as run delay (runnable but not running), the
// quantity KVM's steal time later reports from the host scheduler's run_delay.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/types.h"
#include "tools/platform/scenario.h"

namespace pvsim {

inline constexpr Tick kForever{UINT64_MAX};

// [start, end) in virtual ns during which a vCPU holds pCPU `pcpu`; end == kForever means
// it never loses it. Two windows of one vCPU may touch (end == next start) only when the
// pCPU changes there: that instant is a migration (what makes KVM refresh kvmclock when
// the master clock is off, kvm_arch_vcpu_load -> KVM_REQ_GLOBAL_CLOCK_UPDATE).
struct RunWindow {
  Tick start;
  Tick end;
  unsigned pcpu = 0;
  bool operator==(const RunWindow&) const = default;
};

class HostModel {
 public:
  // `host` as load_scenario() returns it. Also accepts a hand-built HostConfig: pcpus 0
  // means `vcpus`, an empty pin list means vCPU i -> pCPU i % pcpus. Anything the parser
  // would reject (pin out of range, slice 0, empty or foreign preempt window) throws
  // std::invalid_argument: that is a programming error, not bad input.
  HostModel(const HostConfig& host, unsigned vcpus);

  // The first interval at or after `t` during which vCPU v holds a pCPU, with the
  // preemption windows cut out; start <= t exactly when t is inside one (start is then
  // the true start of that interval, not t). Never empty. O(log W + W_v) for W_v
  // preemption windows of v, independent of t: no walk over slots from time 0.
  // Times are virtual ns; results saturate at 2^64 - 1 (far beyond the 10^18 ns that
  // limits.max_virtual_ms allows), and a window that would end there reads as kForever.
  RunWindow window_at(unsigned v, Tick t) const;

  // True when v owns a pCPU alone for the whole run and has no preemption window, no pause
  // and no host noise on its pCPU, so the platform can skip window_at() for it entirely.
  bool always_running(unsigned v) const { return m_always[v] != 0; }

  // Why vCPU v holds no pCPU at time t (t must lie in a gap of its schedule): the VM is
  // paused (host.pause; not run delay, and KVM does not mark the vCPU preempted because its
  // thread went back to the VMM), or it waits on a host run queue (another vCPU's slice, a
  // preemption window, host noise: involuntary, run delay).
  bool paused_at(Tick t) const;
  // Nanoseconds of [from, to) that fall in pauses: the part of a gap that is not run delay.
  uint64_t paused_ns(Tick from, Tick to) const;
  bool has_pauses() const { return !m_pause.empty(); }
  const std::vector<PauseWindow>& pauses() const { return m_pause; }

  // The merged pause containing t, if any; the first one starting after t, if any.
  const PauseWindow* pause_containing(Tick t) const;
  const PauseWindow* next_pause_after(Tick t) const;

  // Changes made during a run by `schedule` actions (scenarios/README.md "schedule"): the
  // schedule stays a pure function of time, now with these cut in. Each takes effect from
  // `from` on; what lies before it is unchanged, so windows the platform already used stay
  // true.
  void add_preempt(unsigned v, uint64_t from_ns, uint64_t to_ns);
  void add_pause(uint64_t from_ns, uint64_t to_ns);
  // vCPU v's thread runs on pCPU `pcpu` from `from_ns` on (its slots keep their times).
  void migrate(unsigned v, unsigned pcpu, uint64_t from_ns);

  // One line for reports, e.g. "4 vCPUs on 2 pCPUs, time-sliced 3 ms".
  std::string describe() const;

  // Host clocks at virtual time t (tools/platform/README.md §5).
  uint64_t host_monotonic_ns(Tick t) const { return m_monotonic_ns + t.value(); }
  uint64_t host_realtime_ns(Tick t) const { return m_wall_clock_ns + t.value(); }

  unsigned vcpus() const { return m_vcpus; }
  unsigned pcpus() const { return m_pcpus; }

 private:
  // One slot of a vCPU's periodic schedule: slot `index` (0 <= index < period) of each
  // period, on `pcpu`.
  struct Slot {
    uint64_t index;
    unsigned pcpu;
  };
  // A vCPU's base schedule (before preemption): periodic with `period` slots of
  // m_slice_ns, running in `slots` (ascending index); period 0 = always on `pcpu`.
  struct Schedule {
    uint64_t period = 0;
    unsigned pcpu = 0;
    std::vector<Slot> slots;
  };
  // Preemption window [from, to) in ns; per vCPU sorted, merged, never touching.
  struct Span {
    uint64_t from;
    uint64_t to;
  };

  RunWindow base_window(unsigned v, uint64_t t) const;
  RunWindow slot_window(unsigned v, uint64_t t) const;  // base_window before migrations
  static void merge(std::vector<Span>& spans);

  unsigned m_vcpus;
  unsigned m_pcpus;
  HostPolicy m_policy;
  uint64_t m_slice_ns;
  uint64_t m_wall_clock_ns;
  uint64_t m_monotonic_ns;
  size_t m_preempt_count = 0;                // windows as written, for describe()
  std::vector<Schedule> m_schedule;          // per vCPU
  std::vector<std::vector<Span>> m_preempt;  // per vCPU, pauses included
  std::vector<std::vector<Span>> m_noise;    // per pCPU
  std::vector<PauseWindow> m_pause;          // merged, ascending
  size_t m_noise_count = 0;
  std::vector<uint8_t> m_always;             // always_running(), per vCPU (asked every slice)
  // migrate(): per vCPU, (from_ns, pcpu) in ascending from_ns.
  std::vector<std::vector<std::pair<uint64_t, unsigned>>> m_moves;
  std::vector<unsigned> m_pin;               // Pinned: resolved pCPU per vCPU
};

}  // namespace pvsim
