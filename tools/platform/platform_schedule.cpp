// tools/platform/platform_schedule.cpp — host actions at exact guest points (scenario key
// `schedule`, `pvsim run --schedule`; scenarios/README.md "schedule").
//
// Points: a vCPU's instruction count (its step is cut to end exactly there), the K-th
// time a vCPU reaches a RIP (a breakpoint in the core: earlier hits do not end the step),
// or a virtual time (an event on the queue, so every vCPU stops at the first boundary at or
// after it, as for a timer). An entry fires once: a pvsim_action trace line naming the
// point and what happened, then the action. An action at an instruction or RIP point ends
// that vCPU's step there, as a VM exit would; the scheduler then picks again.
#include <fmt/format.h>

#include <algorithm>

#include "tools/platform/platform.h"
#include "tools/platform/platform_cpu.h"
#include "tools/platform/text.h"

namespace pvsim {

void Platform::arm_schedule() {
  const Schedule& sch = m_scenario.schedule;
  m_has_rip_points.assign(vcpu_count(), 0);
  m_point_event = std::make_unique<MemberEvent<&Platform::time_points_due>>(*this, "schedule_point");
  for (size_t k = 0; k < sch.entries.size(); ++k)
    arm(sch.entries[k], k < m_scenario.schedule_where.size() ? m_scenario.schedule_where[k] : "schedule");
}

void Platform::arm(const ScheduleEntry& e, std::string where) {
  if (e.at.kind != GuestPoint::Kind::Time && e.at.vcpu >= vcpu_count())
    throw std::invalid_argument("Platform::arm: no such vCPU");
  Armed a;
  a.entry = e;
  a.rip = e.at.rip;
  if (e.at.kind == GuestPoint::Kind::Rip && !e.at.symbol.empty()) {
    const Symbol* found = m_image.find(e.at.symbol);
    if (!found)
      throw ScenarioError(fmt::format("{}: {}", where, m_image.missing_symbol(e.at.symbol)));
    a.rip = found->addr + e.at.sym_offset;
  }
  a.text = format_point(e.at);
  // An evict action needs pages that can be non-resident, and the EPT path that notices.
  if (e.action.kind == ActionKind::Evict && !m_host_mem.active()) {
    m_host_mem.activate();
    for (unsigned i = 0; i < vcpu_count(); ++i)
      m_vcpus[i]->set_ept_hook([this, i](Vcpu&, const Vcpu::EptFault& f) { return on_ept_violation(i, f); });
  }
  if (e.at.kind == GuestPoint::Kind::Insn) m_has_insn_points = true;
  update_extras();
  if (e.at.kind == GuestPoint::Kind::Rip) m_has_rip_points[e.at.vcpu] = 1;
  m_armed.push_back(std::move(a));
  if (e.at.kind == GuestPoint::Kind::Rip) update_breakpoints(e.at.vcpu);
  if (e.at.kind == GuestPoint::Kind::Time) schedule_time_points();
}

void Platform::update_breakpoints(unsigned i) {
  std::vector<uint64_t> rips;
  for (const Armed& a : m_armed)
    if (!a.done && a.entry.at.kind == GuestPoint::Kind::Rip && a.entry.at.vcpu == i) rips.push_back(a.rip);
  // A debugger's breakpoints and step mode (Platform::set_debug_breakpoints) ride on the same
  // list: a boundary reached for either is one stop of the core.
  rips.insert(rips.end(), m_debug_bps.begin(), m_debug_bps.end());
  std::sort(rips.begin(), rips.end());
  rips.erase(std::unique(rips.begin(), rips.end()), rips.end());
  const bool every = i < m_step_mode.size() && m_step_mode[i];
  m_vcpus[i]->set_breakpoints(std::move(rips), every);
}

uint64_t Platform::insn_point_room(unsigned i) const {
  const uint64_t now = m_vcpus[i]->instructions();
  uint64_t room = UINT64_MAX;
  for (const Armed& a : m_armed)
    if (!a.done && a.entry.at.kind == GuestPoint::Kind::Insn && a.entry.at.vcpu == i && a.entry.at.insn > now)
      room = std::min(room, a.entry.at.insn - now);
  return room;
}

bool Platform::fire_insn_points(unsigned i) {
  const uint64_t now = m_vcpus[i]->instructions();
  bool fired = false;
  for (Armed& a : m_armed)
    if (!a.done && a.entry.at.kind == GuestPoint::Kind::Insn && a.entry.at.vcpu == i && a.entry.at.insn == now) {
      fire(a, i, m_vcpus[i]->now());
      fired = true;
      if (m_stopped) break;
    }
  return fired;
}

bool Platform::fire_rip_points(unsigned i) {
  Vcpu& v = *m_vcpus[i];
  const uint64_t rip = v.rip();
  bool fired = false;
  for (Armed& a : m_armed) {
    if (a.done || a.entry.at.kind != GuestPoint::Kind::Rip || a.entry.at.vcpu != i || a.rip != rip) continue;
    if (++a.hits < a.entry.at.hit) continue;
    fire(a, i, v.now());
    fired = true;
    if (m_stopped) break;
  }
  if (fired) update_breakpoints(i);
  return fired;
}

void Platform::schedule_time_points() {
  uint64_t next = UINT64_MAX;
  for (const Armed& a : m_armed)
    if (!a.done && a.entry.at.kind == GuestPoint::Kind::Time) next = std::min(next, a.entry.at.time_ns);
  if (next != UINT64_MAX) m_events.schedule(*m_point_event, Tick(next), EventPriority::Default);
}

void Platform::time_points_due() {
  const Tick at = m_point_event->when();
  for (Armed& a : m_armed) {
    if (a.done || a.entry.at.kind != GuestPoint::Kind::Time || a.entry.at.time_ns != at.value()) continue;
    fire(a, 0, at);
    if (m_stopped) return;
  }
  schedule_time_points();
}

Platform::Fetch* Platform::fetch_for(const HostAction& a) {
  if (!a.by_token) {
    auto it = m_fetches.find(a.gpa >> kPageShift);
    return it == m_fetches.end() ? nullptr : it->second;
  }
  for (const auto& [pfn, f] : m_fetches)  // by pfn: a deterministic order
    for (const auto& [vcpu, token] : f->waiters)
      if (token == a.token) return f;
  return nullptr;
}

void Platform::fire(Armed& a, unsigned vcpu, Tick at) {
  a.done = true;
  const HostAction& x = a.entry.action;
  const std::string what = format_action(x);
  auto trace = [&](std::string_view detail) {
    m_tracer.pvsim_action(at, vcpu, a.text, detail.empty() ? what : fmt::format("{}: {}", what, detail));
  };
  switch (x.kind) {
    case ActionKind::Preempt: {
      // From the point's instant, or from the target's own time if it is already past it:
      // a vCPU cannot lose a pCPU in its own past.
      const Tick from = std::max(at, m_vcpus[x.vcpu]->now());
      m_host.add_preempt(x.vcpu, from.value(), from.value() + x.ns);
      trace(fmt::format("vCPU {} holds no pCPU from {} to {}", x.vcpu, Tracer::seconds(from),
                        Tracer::seconds(Tick(from.value() + x.ns))));
      break;
    }
    case ActionKind::Migrate: {
      const Tick from = std::max(at, m_vcpus[x.vcpu]->now());
      m_host.migrate(x.vcpu, x.pcpu, from.value());
      trace(fmt::format("vCPU {} runs on pCPU {} from {}", x.vcpu, x.pcpu, Tracer::seconds(from)));
      break;
    }
    case ActionKind::Complete:
    case ActionKind::Delay: {
      Fetch* f = fetch_for(x);
      if (!f) {
        trace("no fetch of that page is in flight, nothing to do");
        break;
      }
      const Tick done = x.kind == ActionKind::Complete ? at : Tick(f->event.when().value() + x.ns);
      m_host_mem.set_done(f->pfn, done);
      m_events.schedule(f->event, done, EventPriority::HostCompletion);
      trace(fmt::format("the fetch of gpa {:#x} ends at {}", f->pfn << kPageShift, Tracer::seconds(done)));
      break;
    }
    case ActionKind::Evict: {
      const std::vector<uint64_t> gone = m_host_mem.evict(x.gpa >> kPageShift, x.size >> kPageShift);
      trace(gone.empty() ? "nothing resident to evict" : "");
      unmap_pages(gone, at, vcpu, "schedule");
      break;
    }
    case ActionKind::Ipi:
      trace("");
      apf_inject_interrupt(x.vcpu, x.vector);  // a fixed, edge interrupt into its LAPIC
      break;
    case ActionKind::KvmclockUpdate:
      trace("");
      m_hv.host_clock_update(x.vcpu, at);
      break;
    case ActionKind::StealUpdate:
      trace("");
      m_hv.host_steal_update(x.vcpu);
      break;
    case ActionKind::Pause:
      trace(fmt::format("the VMM stops the VM until {}", Tracer::seconds(Tick(at.value() + x.ns))));
      add_pause(at, Tick(at.value() + x.ns));
      break;
    case ActionKind::Store:
      trace(m_hv.host_apply_store(x.vcpu, at) ? "" : "no store pending, nothing to do");
      break;
    case ActionKind::Run:
      trace("");
      m_run_first = static_cast<int>(x.vcpu);
      update_extras();
      break;
    case ActionKind::RunAuto:
      trace("");
      m_run_first = -1;
      update_extras();
      break;
    case ActionKind::Stop:
      trace("");
      stop_run(RunStop::Point, vcpu, fmt::format("schedule: {}: {}", a.text, what));
      break;
  }
  reschedule_if_needed();
}

}  // namespace pvsim
