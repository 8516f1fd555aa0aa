// tools/platform/platform_memory.cpp — the host memory behind guest RAM and async page
// faults, as the platform wires them (tools/platform/README.md §5.1):
//
//   guest access to a page the EPT does not map (Core::ept_violation)
//     -> on_ept_violation: resident in the host model? map it.
//        Not resident: KVM's __kvm_mmu_faultin_pfn async branch (AsyncPf::on_fault) says
//          Sync          -> the vCPU stalls until the host has fetched the page
//          RepeatedHalt  -> synthetic halt until a completion (or an interrupt) wakes it
//          Injected      -> the fetch starts, #PF(token) goes to the guest
//          Halt          -> the fetch starts, synthetic halt
//   fetch done (an event at HostCompletion priority)
//     -> the page becomes resident (HostMemory::complete; a resident-set limit may evict
//        another page), every vCPU waiting on it gets AsyncPf::complete
//   scheduled evictions (host.memory.evict)
//     -> HostMemory::evict + GuestMemory::ept_unmap: the next access exits again.
//
// The ApfHost side (injection through the LAPIC or as #PF, waking vCPUs, requests) is here
// too. Nothing here runs unless the scenario has a host.memory section that can make a
// page non-resident (HostMemory::active), or the guest enables async PF.
#include <fmt/format.h>

#include "tools/platform/platform.h"
#include "tools/platform/platform_cpu.h"

namespace pvsim {

namespace {

std::string ns_words(uint64_t ns) {
  if (ns % 1000 != 0) return fmt::format("{} ns", ns);
  if (ns % 1'000'000 != 0) return fmt::format("{} us", ns / 1000);
  return fmt::format("{} ms", ns / 1'000'000);
}

}  // namespace

Platform::Fetch& Platform::start_fetch(uint64_t pfn, Tick now, HostMemory::FaultIn& fi) {
  fi = m_host_mem.fault_in(pfn, now);  // joins the fetch in flight, if any
  auto it = m_fetches.find(pfn);
  if (it != m_fetches.end()) return *it->second;
  Fetch* f;
  if (!m_fetch_free.empty()) {
    f = m_fetch_free.back();
    m_fetch_free.pop_back();
  } else {
    m_fetch_pool.push_back(std::make_unique<Fetch>(*this));
    f = m_fetch_pool.back().get();
  }
  f->pfn = pfn;
  f->waiters.clear();
  m_fetches.emplace(pfn, f);
  // The completion is a host-side state change: it goes before anything else at its tick
  // (EventPriority::HostCompletion), so a vCPU woken then sees the page resident.
  m_events.schedule(f->event, fi.done, EventPriority::HostCompletion);
  return *f;
}

Vcpu::EptResult Platform::on_ept_violation(unsigned i, const Vcpu::EptFault& f) {
  Vcpu::EptResult r;
  // The vCPU is executing, so any synthetic halt it was in has ended (vcpu_block clears
  // apf.halted whatever woke it: a completion, or an interrupt).
  if (m_hv.async_pf().halted(i)) m_hv.async_pf().clear_halt(i);
  const uint64_t pfn = f.gpa.value() >> kPageShift;
  if (m_host_mem.resident(pfn)) return r;  // a minor fault: the host maps it at once
  Vcpu& v = *m_vcpus[i];
  const Tick now = v.now();
  ApfVcpuState st;
  st.cpl = f.cpl;
  st.paging = (v.cr(0) >> 31) & 1;
  st.interrupts_allowed = f.interrupts_allowed;
  st.event_pending = f.event_delivery;
  const AsyncPf::FaultResult ar = m_hv.async_pf().on_fault(i, now, f.gpa.value(), st);
  switch (ar.kind) {
    case AsyncPf::FaultKind::Sync: {
      // The vCPU thread faults the page in itself (get_user_pages with I/O allowed): it
      // waits for a free I/O worker and the fetch, or joins a fetch already in flight.
      const HostMemory::FaultIn fi = m_host_mem.fault_in(pfn, now);
      const Tick done = fi.done > now ? fi.done : now;
      r.action = Vcpu::EptAction::Stall;
      r.stall_ns = done - now;
      m_tracer.pvsim_host(now, i, "stall",
                 fmt::format("gpa {:#x} not resident, vCPU waits {} for the host to read it in{}", f.gpa.value(),
                             ns_words(r.stall_ns), fi.joined ? " (joins a fetch in flight)" : ""));
      // Resident from the end of the stall on. A fetch this vCPU started has no event;
      // a joined one keeps its event, which then finds the page resident already.
      // A fetch event already scheduled for this page (async-PF works wait on it) still
      // fires: fetch_done() finds the page resident and only completes the works.
      const std::vector<uint64_t> evicted = m_host_mem.complete(pfn);
      m_tracer.pvsim_host(done, i, "stall_end", fmt::format("gpa {:#x} resident", f.gpa.value()));
      unmap_pages(evicted, done, i, "resident-set limit");
      return r;
    }
    case AsyncPf::FaultKind::RepeatedHalt:
      r.action = Vcpu::EptAction::Halt;
      return r;
    case AsyncPf::FaultKind::Injected:
    case AsyncPf::FaultKind::Halt: {
      HostMemory::FaultIn fi;
      Fetch& fe = start_fetch(pfn, now, fi);
      fe.waiters.emplace_back(i, ar.token);
      m_tracer.pvsim_host(now, i, "fetch",
                 fmt::format("gpa {:#x} token {:#x}: worker {} reads it in from {} to {}", f.gpa.value(), ar.token,
                             fi.worker, Tracer::seconds(fi.start), Tracer::seconds(fi.done)));
      if (ar.kind == AsyncPf::FaultKind::Injected) {
        r.action = Vcpu::EptAction::InjectPageFault;
        r.token = ar.token;
      } else {
        r.action = Vcpu::EptAction::Halt;
      }
      reschedule_if_needed();
      return r;
    }
  }
  return r;
}

void Platform::fetch_done(Fetch& f) {
  const Tick at = f.event.when();
  const uint64_t pfn = f.pfn;
  m_fetches.erase(pfn);
  std::vector<std::pair<unsigned, uint32_t>> waiters;
  waiters.swap(f.waiters);
  m_fetch_free.push_back(&f);
  const unsigned owner = waiters.empty() ? 0 : waiters.front().first;
  if (m_host_mem.in_flight(pfn)) {
    const std::vector<uint64_t> evicted = m_host_mem.complete(pfn);
    m_tracer.pvsim_host(at, owner, "fetched", fmt::format("gpa {:#x} resident", pfn << kPageShift));
    unmap_pages(evicted, at, owner, "resident-set limit");
  }
  // async_pf_execute for every work waiting on this page, in the order they were set up.
  for (const auto& [vcpu, token] : waiters) m_hv.async_pf().complete(vcpu, token, at);
}

void Platform::unmap_pages(const std::vector<uint64_t>& pfns, Tick at, unsigned vcpu, const char* why) {
  if (pfns.empty()) return;
  for (uint64_t p : pfns) m_mem.ept_unmap(p);
  // One line per contiguous run of pages.
  size_t k = 0;
  while (k < pfns.size()) {
    size_t e = k + 1;
    while (e < pfns.size() && pfns[e] == pfns[e - 1] + 1) ++e;
    m_tracer.pvsim_host(at, vcpu, "evict",
               fmt::format("gpa {:#x}-{:#x} ({} page{}) no longer resident ({})", pfns[k] << kPageShift,
                           ((pfns[e - 1] + 1) << kPageShift) - 1, e - k, e - k == 1 ? "" : "s", why));
    k = e;
  }
}

void Platform::evict_due() {
  const Tick at = m_evict_event->when();
  const auto& list = m_host_mem.evictions();
  while (m_next_eviction < list.size() && list[m_next_eviction].at <= at) {
    const HostMemory::Eviction& e = list[m_next_eviction++];
    const std::vector<uint64_t> gone = m_host_mem.evict(e.first_pfn, e.pages);
    if (gone.empty())
      m_tracer.pvsim_host(at, 0, "evict",
                 fmt::format("gpa {:#x}-{:#x}: nothing resident to evict", e.first_pfn << kPageShift,
                             ((e.first_pfn + e.pages) << kPageShift) - 1));
    unmap_pages(gone, at, 0, "host.memory.evict");
  }
  if (m_next_eviction < list.size())
    m_events.schedule(*m_evict_event, list[m_next_eviction].at, EventPriority::HostCompletion);
}

// ---------------------------------------------------------------------------------------
// ApfHost

// Seed era: "page ready" is a second #PF, injected at entry (kvm_inject_page_fault).
void Platform::apf_inject_page_fault(unsigned vcpu, uint32_t cr2) {
  m_vcpus.at(vcpu)->inject_exception(14, true, 0, cr2);
}

// Modern: a fixed, edge-triggered interrupt on the vector of MSR_KVM_ASYNC_PF_INT,
// through the vCPU's own local APIC (kvm_apic_set_irq), as an IPI to itself would arrive.
void Platform::apf_inject_interrupt(unsigned vcpu, uint8_t vector) {
  LocalApic& apic = *m_cpus.at(vcpu)->apic;
  IpiRequest req;
  req.source = apic.id();
  req.vector = vector;
  req.delivery = IpiDelivery::Fixed;
  req.dest_mode = DestMode::Physical;
  req.trigger = TriggerMode::Edge;
  req.destination = apic.id();
  req.x2apic = apic.mode() == ApicMode::X2Apic;
  apic.receive_ipi(req);
}

// kvm_lapic_enabled: hardware-enabled (IA32_APIC_BASE.EN) and software-enabled (SVR).
bool Platform::apf_lapic_enabled(unsigned vcpu) {
  const LocalApic& apic = *m_cpus.at(vcpu)->apic;
  return apic.mode() != ApicMode::Disabled && apic.software_enabled();
}

// 3.0 kvm_arch_can_inject_async_page_present: no event awaiting re-injection and
// interrupts allowed now (RFLAGS.IF = 1, no STI / MOV SS shadow). A page-ready #PF queued
// at an earlier entry and not delivered yet counts as an event awaiting injection: a
// second one must wait, or the first would be lost.
// With machine.kvm.bugs apf_ready_on_pending_pf (pvmsr/README.md §2.5) it does not: from
// the split of pending and injected exceptions KVM's check looked only
// at exceptions already injected, so a page-ready #PF could be queued on top of a pending
// not-present #PF, and the two made a #DF (Vcpu::inject_exception, kvm_multiple_exception).
bool Platform::apf_can_inject_present(unsigned vcpu) {
  const Vcpu& v = *m_vcpus.at(vcpu);
  const bool pending_blocks = !m_scenario.machine.kvm.bugs.apf_ready_on_pending_pf;
  return ((v.rflags() >> 9) & 1) && !v.interrupt_shadow() && !(pending_blocks && v.exception_pending());
}

// kvm_arch_async_page_present: apf.halted = false and mp_state RUNNABLE. That also ends a
// genuine HLT (the guest resumes after it).
void Platform::apf_wake(unsigned vcpu) {
  Vcpu& v = *m_vcpus.at(vcpu);
  v.set_halted(false);
  if (m_state[vcpu] == VState::Halted) {
    m_state[vcpu] = VState::Runnable;
    if (m_firing) advance_vcpu_to(v, m_fire_time);
    sched_update(vcpu);
  }
}

void Platform::apf_request_ready(unsigned vcpu) { m_hv.request_apf_ready(vcpu); }

// kvm_vcpu_kick of a blocked vCPU: it re-checks kvm_vcpu_has_events, and a non-empty done
// list is one (kvm_arch_vcpu_runnable): the vCPU leaves its halt — a genuine HLT included —
// and services the request at entry. A running vCPU meets the request at its next entry.
void Platform::apf_kick(unsigned vcpu) {
  if (m_state[vcpu] != VState::Halted) return;
  if (!m_hv.async_pf().has_done(vcpu)) return;
  apf_wake(vcpu);
}

void Platform::note_lapic_enable(unsigned i, bool was_enabled) {
  if (!was_enabled && apf_lapic_enabled(i)) m_hv.async_pf().on_lapic_sw_enable(i);
}

}  // namespace pvsim
