// tools/platform/platform_cpu.h — Platform internals shared by platform.cpp (scheduler)
// and platform_apic.cpp (LAPIC glue). Not part of the platform's public interface.
#pragma once
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <utility>

#include "core/event_queue.h"
#include "core/types.h"
#include "core/vcpu.h"
#include "devices/lapic.h"
#include "tools/platform/platform.h"

namespace pvsim {

// First cycle count at which a vCPU running at `hz` has reached Tick t. cycles_to_ns
// rounds down, so this is the ceiling of t * hz / 1e9 (saturating).
inline uint64_t cycles_at(Tick t, uint64_t hz) {
  const unsigned __int128 n = static_cast<unsigned __int128>(t.value()) * hz + 999'999'999u;
  const unsigned __int128 c = n / 1'000'000'000u;
  return c > UINT64_MAX ? UINT64_MAX : static_cast<uint64_t>(c);
}

// Lets idle time pass on `v` until its local time is at least `t` (never backwards).
inline void advance_vcpu_to(Vcpu& v, Tick t) {
  if (v.now() < t) v.advance_to(Cycles(cycles_at(t, v.config().tsc_hz)));
}

// Per-vCPU glue: the LAPIC's view of the world (its clock is the vCPU's local time, its
// sink is the platform) plus the host-model state of the vCPU thread.
// The plain, copyable part of a Cpu: everything a snapshot saves (tools/platform/README.md
// "Snapshots"). A field added here is saved and restored without further code.
struct CpuState {
  uint64_t run_delay_ns = 0;  // runnable but descheduled by the host model
  uint64_t steps = 0;         // Vcpu::run steps so far (Platform::vcpu_steps)
  int pcpu = -1;              // pCPU it last ran on (-1: not yet)
  // kvm_arch_vcpu_put happened and the matching load has not: `descheduled` after the host
  // took the pCPU away (traced sched_out; the load traces sched_in), `blocked` after the
  // vCPU halted (its thread sleeps in kvm_vcpu_block; the wake-up is a load too).
  bool descheduled = false;
  bool blocked = false;
  // While VState::Descheduled: when it lost its pCPU, when the schedule gives one back
  // (host_event fires then) and whether that gap began inside a pause.
  Tick out_at{};
  Tick back_at{};
  // A directed yield let it run before its schedule would have: the host model keeps it on
  // its pCPU until this instant, when its ordinary schedule takes over again.
  Tick boost_until{};
  // KVM's vcpu->arch.pv.pv_unhalted: a KICK_CPU arrived while the vCPU was not halted; its
  // next HLT does not block (kvm_arch_vcpu_runnable), and the flag is consumed then.
  bool pv_unhalted = false;
  Tick window_end{};  // end of its current host run window
  // Time-gate reservation: the vCPU tried to observe time at this Tick while another
  // runnable vCPU was behind it; it does not execute that instruction before every other
  // vCPU has caught up (0 = none). See Platform::may_observe_time.
  Tick observe_at{};
  // Local time as of the last Platform::sched_update(index): Vcpu::now() is a 128-bit
  // division, so the scheduler keeps it per vCPU and recomputes it only when the cycle
  // count it came from changed (UINT64_MAX: never computed).
  uint64_t time_cycles = UINT64_MAX;
  Tick time{};
  // cycles_at(deadline_tick, tsc_hz), kept because most slices end at the same Tick (the
  // next event or the time limit) as the previous one.
  Tick deadline_tick{UINT64_MAX};
  uint64_t deadline_cycles = 0;  // set by Cpu's constructor
};

// Per-vCPU glue: the LAPIC's view of the world (its clock is the vCPU's local time, its
// sink is the platform) plus the host-model state of the vCPU thread (CpuState).
struct Platform::Cpu final : CpuState, InterruptSink, ApicClock {
  Cpu(Platform& p, unsigned i, Vcpu& vc) : platform(p), index(i), vcpu(vc) {
    deadline_cycles = cycles_at(Tick(UINT64_MAX), vcpu.config().tsc_hz);
  }
  Platform& platform;
  unsigned index;
  Vcpu& vcpu;
  std::unique_ptr<LocalApic> apic;
  struct HostEvent final : Event {
    explicit HostEvent(Cpu& c) : Event(&HostEvent::fire, &c, "host_sched_in") {}
    static void fire(void* self, Event&) {
      auto* c = static_cast<Cpu*>(self);
      c->platform.host_wake(c->index, c->platform.m_fire_time);
    }
  };
  HostEvent host_event{*this};
  Tick local_time() {
    const uint64_t c = vcpu.cycles().value();
    if (c != time_cycles) {
      time_cycles = c;
      time = vcpu.now();
    }
    return time;
  }
  // The time the scheduler orders this vCPU by: its local time, or its reservation.
  Tick effective_time() {
    const Tick t = local_time();
    return observe_at > t ? observe_at : t;
  }
  Cycles deadline_for(Tick t) {
    if (t != deadline_tick) {
      deadline_tick = t;
      deadline_cycles = cycles_at(t, vcpu.config().tsc_hz);
    }
    return Cycles(deadline_cycles);
  }

  // While an event fires, the LAPIC lives at the event's time (a timer expiry or an IPI
  // arrival is traced at exactly that Tick); otherwise at its vCPU's local time.
  Tick now() const override { return platform.m_firing ? platform.m_fire_time : vcpu.now(); }
  void interrupt_pending(uint32_t) override { platform.wake(index, vcpu.now()); }
  void nmi_pending(uint32_t) override { platform.deliver_nmi(index); }
  void send_ipi(const IpiRequest& req) override { platform.send_ipi(index, req); }
};

// An IPI between the sender's ICR write and its arrival (an Event on the global queue,
// reused through a free list so a busy guest does not allocate per IPI).
struct Platform::IpiInFlight {
  explicit IpiInFlight(Platform& p) : platform(p), event(&IpiInFlight::fire, this, "ipi") {}
  static void fire(void* self, Event&) {
    auto* f = static_cast<IpiInFlight*>(self);
    if (f->kick)
      f->platform.deliver_kick(*f);
    else
      f->platform.deliver_ipi(*f);
  }
  Platform& platform;
  Event event;
  IpiRequest req;
  unsigned source = 0;  // sending vCPU index
  bool kick = false;    // KVM_HC_KICK_CPU's remote-read message, not an ICR write
};

// A fetch in flight: one event per page, with every (vCPU, token) waiting for it.
struct Platform::Fetch {
  explicit Fetch(Platform& p) : platform(p), event(&Fetch::fire, this, "host_fetch") {}
  static void fire(void* self, Event&) {
    auto* f = static_cast<Fetch*>(self);
    f->platform.fetch_done(*f);
  }
  Platform& platform;
  Event event;
  uint64_t pfn = 0;
  std::vector<std::pair<unsigned, uint32_t>> waiters;  // async PF works on this page
};

// The last canonical lines, with their event numbers (a restore drops the later ones).
struct Platform::TraceRing final : TraceObserver {
  const Tracer& tracer;
  size_t keep = 0;
  std::deque<std::pair<uint64_t, std::string>> lines;
  explicit TraceRing(const Tracer& t) : tracer(t) {}
  void on_trace_line(unsigned, std::string_view line, size_t) override {
    if (keep == 0) return;
    lines.emplace_back(tracer.event_count(), std::string(line));
    while (lines.size() > keep) lines.pop_front();
  }
};

}  // namespace pvsim
