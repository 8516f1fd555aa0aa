// tools/platform/platform_apic.cpp — the platform's LAPIC glue: one LocalApic per vCPU,
// its register interfaces (xAPIC page, x2APIC MSRs, IA32_APIC_BASE, IA32_TSC_DEADLINE,
// CR8), interrupt and NMI delivery into the vCPU, and the APIC bus that carries IPIs
// (tools/platform/README.md §2: the LAPIC only knows an InterruptSink; routing lives here).
#include <fmt/format.h>

#include <vector>

#include "devices/apic_bus.h"
#include "tools/platform/platform.h"
#include "tools/platform/platform_cpu.h"

namespace pvsim {

namespace {
constexpr uint32_t kMsrApicBase = 0x1b;      // IA32_APIC_BASE (SDM Vol. 3A §11.4.4)
constexpr uint32_t kMsrTscDeadline = 0x6e0;  // IA32_TSC_DEADLINE (SDM Vol. 3A §11.5.4.1)
constexpr uint32_t kMsrX2apicFirst = 0x800, kMsrX2apicLast = 0x8ff;  // SDM §11.12.1.2
constexpr uint32_t kApicPageSize = 0x1000;
constexpr uint32_t kRegCurrentCount = 0x390;  // timer current count (observes time)
}  // namespace

void Platform::attach_lapic(unsigned i) {
  Vcpu& v = *m_vcpus[i];
  auto cpu = std::make_unique<Cpu>(*this, i, v);
  LapicConfig lc;
  lc.apic_id = i;
  lc.bsp = i == 0;
  lc.bus_hz = m_scenario.machine.apic_bus_mhz * 1'000'000ull;
  lc.tsc_hz = v.config().tsc_hz;
  lc.phys_addr_bits = 46;
  lc.vcpu = i;
  cpu->apic = std::make_unique<LocalApic>(lc, m_events, *cpu, *cpu);
  LocalApic& apic = *cpu->apic;
  // scenarios/guest/boot.md §3 (local APIC): every LVT masked after reset, except that the BSP's LINT0 is
  // in ExtINT mode (0x700), as firmware leaves it for the 8259 PIC (virtual-wire mode,
  // MP spec §3.6.2.2). Set before tracing starts: it is not a guest access.
  if (i == 0) apic.set_bsp_lint0_extint();
  apic.set_tracer(&m_tracer);

  // The CPU takes an interrupt at a boundary with IF=1 and no shadow (core/cpu): the LAPIC
  // moves the highest deliverable IRR vector to ISR (SDM §11.8.4 "Interrupt Acceptance
  // for Fixed Interrupts").
  //
  // PV EOI (pvmsr/README.md §7): in KVM an interrupt reaches a running vCPU through an exit
  // (the kick), whose sync-from-guest first performs an EOI the guest made by clearing its
  // PV EOI bit; after the injection KVM arms PV EOI again if it can.
  PvEoi& pv_eoi = m_hv.pv_eoi();
  v.set_interrupt_poll([this, i, &apic, &pv_eoi](Vcpu& vc) {
    pv_eoi.on_exit(vc);
    // An 8259 interrupt (ExtINT) goes before the LAPIC's and ignores TPR/PPR, as in KVM's
    // kvm_cpu_get_interrupt (kvm_cpu_get_extint first).
    if (i == 0 && m_pic.output() && pic_reaches_bsp()) return static_cast<int>(m_pic.acknowledge());
    const std::optional<uint8_t> vec = apic.ack();
    return vec ? static_cast<int>(*vec) : -1;
  });
  v.set_injection_hook([&pv_eoi](Vcpu& vc) { pv_eoi.after_injection(vc); });
  // Causally monotonic clocks (tools/platform/README.md §4.4).
  v.set_time_gate([this, i](Vcpu&) { return may_observe_time(i); });
  // CR8 is the TPR's priority class (SDM §11.8.6.1: CR8[3:0] = TPR[7:4]).
  v.set_cr8_hooks([&apic](Vcpu&) -> uint64_t { return (apic.tpr() >> 4) & 0xf; },
                  [this, &apic](Vcpu&, uint64_t cr8) {
                    apic.set_tpr(static_cast<uint32_t>(cr8 & 0xf) << 4);
                    reschedule_if_needed();
                  });

  MsrRegistry& msrs = v.msrs();
  {
    MsrHandler h;
    h.index = kMsrApicBase;
    h.name = "IA32_APIC_BASE";
    h.read = [&apic](Vcpu&, uint64_t& out) {
      out = apic.apic_base();
      return MsrStatus::Ok;
    };
    h.write = [this, i, &apic](Vcpu&, uint64_t val) {
      // KVM's kvm_set_apic_base: EXTD (bit 10) is reserved when the guest's CPUID lacks
      // x2APIC (machine.x2apic false, scenarios/README.md `machine`).
      if (!m_scenario.machine.x2apic && (val & (1ull << 10))) return MsrStatus::Gp;
      const bool was = apf_lapic_enabled(i);
      const MsrStatus st = apic.set_apic_base(val);
      note_lapic_enable(i, was);
      return st;
    };
    msrs.add(std::move(h));
  }
  {
    // The LAPIC counts TSC-deadline time from the vCPU's cycle 0; the guest writes TSC
    // values, which also hold tsc_start and any IA32_TSC adjustment. Convert both ways.
    MsrHandler h;
    h.index = kMsrTscDeadline;
    h.name = "IA32_TSC_DEADLINE";
    h.read = [&apic](Vcpu& vc, uint64_t& out) {
      const uint64_t d = apic.tsc_deadline();
      out = d == 0 ? 0 : d + (vc.tsc() - vc.cycles().value());
      return MsrStatus::Ok;
    };
    h.write = [this, &apic](Vcpu& vc, uint64_t val) {
      const uint64_t base = vc.tsc() - vc.cycles().value();
      // 0 disarms; a deadline already in the past fires at once (SDM §11.5.4.1), which
      // the LAPIC does for any value not above the current count.
      apic.set_tsc_deadline(val == 0 ? 0 : (val > base ? val - base : 1));
      reschedule_if_needed();
      return MsrStatus::Ok;
    };
    msrs.add(std::move(h));
  }
  for (uint32_t idx = kMsrX2apicFirst; idx <= kMsrX2apicLast; ++idx) {
    MsrHandler h;
    h.index = idx;
    h.name = "IA32_X2APIC";
    h.read = [&apic, idx](Vcpu&, uint64_t& out) { return apic.msr_read(idx, out); };
    h.write = [this, i, &apic, idx](Vcpu&, uint64_t val) {
      const bool was = apf_lapic_enabled(i);
      const MsrStatus st = apic.msr_write(idx, val);
      note_lapic_enable(i, was);
      reschedule_if_needed();
      return st;
    };
    msrs.add(std::move(h));
  }
  m_cpus.push_back(std::move(cpu));
}

// xAPIC page (SDM §11.4.1): decoded at the vCPU's own IA32_APIC_BASE while its LAPIC is in
// xAPIC mode; in x2APIC or disabled mode the page is not there (§11.12.2) and the access
// is a hole like any other address outside RAM.
IoStatus Platform::mmio_read(Vcpu& vcpu, Gpa gpa, unsigned size, uint64_t& value) {
  LocalApic& apic = *m_cpus[vcpu.index()]->apic;
  const uint64_t base = apic.mmio_base();
  if (apic.mode() == ApicMode::XApic && gpa.value() >= base && gpa.value() - base < kApicPageSize) {
    const uint32_t off = static_cast<uint32_t>(gpa.value() - base);
    if ((off & ~0xfu) == kRegCurrentCount && !may_observe_time(vcpu.index())) return IoStatus::Retry;
    // Without APICv every access to the xAPIC page is a VM exit on KVM, and PV EOI's
    // sync-from-guest runs before it is handled (pvmsr/README.md §7).
    m_hv.pv_eoi().on_exit(vcpu);
    value = apic.mmio_read(off, size);
    return IoStatus::Ok;
  }
  // KVM_X86_QUIRK_LAPIC_MMIO_HOLE (on by default): while the LAPIC is disabled in
  // IA32_APIC_BASE or in x2APIC mode, its MMIO page reads all-ones and drops writes
  // (KVM's apic_mmio_read / apic_mmio_write).
  if (gpa.value() >= base && gpa.value() - base < kApicPageSize) {
    value = size >= 8 ? ~0ull : (1ull << (size * 8)) - 1;
    return IoStatus::Ok;
  }
  if (!m_scenario.machine.ignore_unhandled_io) return IoStatus::Unhandled;
  value = size >= 8 ? ~0ull : (1ull << (size * 8)) - 1;
  return IoStatus::Ok;
}

IoStatus Platform::mmio_write(Vcpu& vcpu, Gpa gpa, unsigned size, uint64_t value) {
  LocalApic& apic = *m_cpus[vcpu.index()]->apic;
  const uint64_t base = apic.mmio_base();
  if (apic.mode() == ApicMode::XApic && gpa.value() >= base && gpa.value() - base < kApicPageSize) {
    m_hv.pv_eoi().on_exit(vcpu);  // as in mmio_read: the exit disarms PV EOI first
    const bool was = apf_lapic_enabled(vcpu.index());
    apic.mmio_write(static_cast<uint32_t>(gpa.value() - base), size, static_cast<uint32_t>(value));
    note_lapic_enable(vcpu.index(), was);
    reschedule_if_needed();
    return IoStatus::Ok;
  }
  if (gpa.value() >= base && gpa.value() - base < kApicPageSize) return IoStatus::Ok;  // the hole (mmio_read)
  return m_scenario.machine.ignore_unhandled_io ? IoStatus::Ok : IoStatus::Unhandled;
}

// Causally monotonic clocks (tools/platform/README.md §4.4): a vCPU may observe time only while no
// other runnable vCPU is behind it, so a reading taken later in emulation order is never
// smaller than one a lagging vCPU could still take.
//
// The gate runs with the instruction's cost already charged, so the vCPU the scheduler
// picked as the earliest can still find another vCPU inside that cost. Re-picking it
// would loop forever; instead the failed attempt leaves a reservation (observe_at) and the
// scheduler orders the vCPU by it (Cpu::effective_time): the others run until they reach
// it, and from then on the reservation also covers them — a vCPU whose reservation is at
// T will not observe before T, so others may observe up to T meanwhile. In the rare case
// that the reserving vCPU first runs something else (an interrupt handler) and observes
// time there, earlier than its reservation, it waits (idles) until the reservation: it
// must not read a value below one the others were allowed to read in the meantime.
//
// Cost: one Vcpu::now() for this vCPU and an O(log n) walk of the scheduler tree, whose
// leaves for the other vCPUs are current (only the running vCPU's time moves during a
// slice, and the gate is asked by the running vCPU).
bool Platform::may_observe_time(unsigned i) {
  Cpu& c = *m_cpus[i];
  Vcpu& v = *m_vcpus[i];
  Tick t = v.now();
  if (t < c.observe_at) {
    v.advance_to(Cycles(cycles_at(c.observe_at, v.config().tsc_hz)));
    t = v.now();
  }
  const SchedKey other = sched_min_excluding(i);
  const bool behind = other.index != kNotRunnable.index && other.time < t.value();
  c.observe_at = behind ? t : Tick(0);
  // The running vCPU's leaf is refreshed when its slice ends.
  if (m_running != static_cast<int>(i)) sched_update(i);
  return !behind;
}

void Platform::reschedule_if_needed() {
  if (m_running < 0) return;
  const std::optional<Tick> next = m_events.next_time();
  if (next && *next < m_run_deadline)
    m_vcpus[static_cast<unsigned>(m_running)]->request_stop(StopReason::Deadline);
}

// An interrupt became deliverable on vCPU i (or may have): make it look at the next
// boundary, and wake it if it is halted. Waking at `at` never moves it backwards.
void Platform::wake(unsigned i, Tick at) {
  Vcpu& v = *m_vcpus[i];
  v.notify_interrupt();
  if (m_state[i] == VState::Halted) {
    m_state[i] = VState::Runnable;
    advance_vcpu_to(v, at);
    sched_update(i);
  }
}

// NMI (SDM §6.7): not masked by IF, so it also ends a HLT entered with IF=0. A vCPU in
// wait-for-SIPI keeps it latched but does not run (§9.4.4 / §11.4.7.3).
void Platform::deliver_nmi(unsigned i) {
  Vcpu& v = *m_vcpus[i];
  v.inject_nmi();
  if (m_state[i] == VState::Halted) set_state(i, VState::Runnable);
}

// The ICR was written (from a running vCPU): the IPI travels as an event, so the target
// takes it at the sender's time plus the bus latency and never earlier in virtual time.
void Platform::send_ipi(unsigned src, const IpiRequest& req) { post_ipi(src, req, false); }

// One message on the APIC bus: from the free list (a busy guest does not allocate per IPI),
// arriving at the sender's time plus the bus latency.
void Platform::post_ipi(unsigned src, const IpiRequest& req, bool kick) {
  IpiInFlight* f;
  if (!m_ipi_free.empty()) {
    f = m_ipi_free.back();
    m_ipi_free.pop_back();
  } else {
    m_ipi_pool.push_back(std::make_unique<IpiInFlight>(*this));
    f = m_ipi_pool.back().get();
  }
  f->req = req;
  f->source = src;
  f->kick = kick;
  ++m_ipis_in_flight;
  m_events.schedule(f->event, m_vcpus[src]->now() + m_scenario.machine.ipi_latency_ns,
                    EventPriority::Default);
  reschedule_if_needed();
}

// Who receives `req` on the APIC bus now, from every LAPIC's current state (route_ipi).
std::vector<unsigned> Platform::ipi_receivers(const IpiRequest& req) const {
  std::vector<ApicTarget> targets;
  targets.reserve(vcpu_count());
  for (unsigned i = 0; i < vcpu_count(); ++i) targets.push_back(apic_target(*m_cpus[i]->apic));
  return route_ipi(req, targets);
}

void Platform::deliver_ipi(IpiInFlight& f) {
  --m_ipis_in_flight;
  const IpiRequest req = f.req;
  m_ipi_free.push_back(&f);

  for (unsigned t : ipi_receivers(req)) {
    LocalApic& apic = *m_cpus[t]->apic;
    // The APIC applies the delivery mode (fixed and lowest priority into IRR, NMI to the
    // sink, SMI ignored, de-asserts dropped); INIT and SIPI change the vCPU's run state,
    // which is the platform's business.
    switch (apic.receive_ipi(req)) {
      case IpiEffect::None:
        break;
      case IpiEffect::Init:
        // A vCPU that reported itself finished is left alone.
        if (m_state[t] == VState::Finished) break;
        apic.init_reset();
        m_vcpus[t]->reset_to_init();  // the architectural INIT state (SDM Vol. 3A Table 9-1)
        // kvm_vcpu_reset: INIT also zeroes the vCPU's kvmclock system-time MSR (pvmsr/README.md §2.3).
        m_hv.on_reset(t);
        m_cpus[t]->observe_at = Tick(0);
        set_state(t, VState::WaitSipi);
        m_tracer.pvsim_vcpu(m_fire_time, t, "init", "INIT received: waiting for a start-up IPI");
        break;
      case IpiEffect::StartUp:
        // SIPIs are ignored unless the target waits for one (SDM §9.4.4.1).
        if (m_state[t] != VState::WaitSipi) break;
        m_tracer.pvsim_vcpu(m_fire_time, t, "sipi", fmt::format("start-up IPI, vector 0x{:02x}", req.vector));
        // The AP starts in real mode at CS = vector << 8, IP = 0 (SDM Vol. 3A §9.4.4.1), its
        // clock at the instant the IPI arrived.
        m_vcpus[t]->start_at_sipi(req.vector);
        advance_vcpu_to(*m_vcpus[t], m_fire_time);
        set_state(t, VState::Runnable);
        break;
    }
  }
}

// ---------------------------------------------------------------------------------------
// HypercallHost (pvmsr/hypercalls.h, pvmsr/README.md §10)

std::optional<unsigned> Platform::vcpu_by_apic_id(uint32_t id) const {
  // KVM's phys_map holds the vCPUs whose LAPIC is enabled in IA32_APIC_BASE
  // (kvm_recalculate_apic_map skips the others), by their current APIC ID.
  for (unsigned i = 0; i < vcpu_count(); ++i) {
    const LocalApic& a = *m_cpus[i]->apic;
    if (a.mode() != ApicMode::Disabled && a.id() == id) return i;
  }
  return std::nullopt;
}

// KVM_HC_SEND_IPI delivers through kvm_apic_set_irq straight into the target's LAPIC and
// counts what __apic_accept_irq accepted. pvsim decides acceptance the same way at the
// hypercall, and the IPI itself travels like an ICR write (send_ipi): the target takes it
// at the sender's time plus the bus latency, never earlier in virtual time.
int Platform::hc_deliver_ipi(unsigned src, uint32_t dest, uint32_t icr_low) {
  const std::optional<unsigned> t = vcpu_by_apic_id(dest);
  if (!t) return -1;
  const LocalApic& apic = *m_cpus[*t]->apic;
  const unsigned mode = (icr_low >> 8) & 7;
  const bool level = (icr_low >> 14) & 1;
  const bool level_trigger = (icr_low >> 15) & 1;
  if (mode == 3) {  // APIC_DM_REMRD: what KICK_CPU sends, pv_unhalted (result 1)
    hc_kick_one(src, *t);
    return 1;
  }
  int accepted = 0;
  switch (mode) {
    case 0:  // fixed
    case 1:  // lowest priority: no arbitration on this path, the named vCPU takes it
      accepted = !(level_trigger && !level) && apic.software_enabled();
      break;
    case 2:  // SMI (pvsim has no SMM: the LAPIC ignores it, KVM still counts it)
    case 4:  // NMI
    case 6:  // start-up
      accepted = 1;
      break;
    case 5:  // INIT: a level de-assert is not accepted
      accepted = !level_trigger || level;
      break;
    default:  // ExtINT: only a LINT0 source, never an IPI
      return 0;
  }
  IpiRequest req;
  req.source = m_cpus[src]->apic->id();
  req.vector = static_cast<uint8_t>(icr_low & 0xff);
  req.delivery = static_cast<IpiDelivery>(mode);
  req.dest_mode = DestMode::Physical;
  req.shorthand = Shorthand::None;
  req.trigger = level_trigger ? TriggerMode::Level : TriggerMode::Edge;
  req.level_assert = level;
  req.destination = dest;
  req.x2apic = apic.mode() == ApicMode::X2Apic;
  send_ipi(src, req);
  return accepted;
}

// KVM_HC_KICK_CPU: kvm_pv_kick_cpu_op sends an APIC_DM_REMRD message to physical APIC ID
// `dest` (0xff in xAPIC mode is the broadcast), then kvm_sched_yield(dest). The message
// travels like an IPI (deliver_kick); the yield follows at its arrival, once the target
// is runnable again (KVM's kick makes it `ready`).
void Platform::hc_kick(unsigned src, uint32_t dest) {
  IpiRequest req;
  req.source = m_cpus[src]->apic->id();
  req.delivery = IpiDelivery::Fixed;  // routing only: deliver_kick applies REMRD itself
  req.dest_mode = DestMode::Physical;
  req.destination = dest;
  req.x2apic = m_cpus[src]->apic->mode() == ApicMode::X2Apic;
  post_ipi(src, req, true);
}

void Platform::deliver_kick(IpiInFlight& f) {
  --m_ipis_in_flight;
  const IpiRequest req = f.req;
  const unsigned src = f.source;
  f.kick = false;
  m_ipi_free.push_back(&f);
  for (unsigned t : ipi_receivers(req)) {
    hc_kick_one(src, t);
    directed_yield(src, t, m_fire_time);
  }
}

// __apic_accept_irq, APIC_DM_REMRD: pv_unhalted, and the vCPU is kicked. A halted vCPU
// becomes runnable whatever its IF (kvm_arch_vcpu_runnable); one that is not halted keeps
// the flag, and its next HLT does not block.
void Platform::hc_kick_one(unsigned src, unsigned t) {
  const Tick at = m_firing ? m_fire_time : m_vcpus[src]->now();
  Vcpu& v = *m_vcpus[t];
  if (m_state[t] == VState::Halted) {
    m_tracer.pvsim_vcpu(at, t, "kick", fmt::format("pv_unhalted by vCPU {}: leaves HLT", src));
    v.set_halted(false);
    m_state[t] = VState::Runnable;
    advance_vcpu_to(v, at);
    sched_update(t);
  } else if (m_state[t] != VState::Finished && m_state[t] != VState::WaitSipi) {
    m_tracer.pvsim_vcpu(at, t, "kick", fmt::format("pv_unhalted by vCPU {}: its next HLT will not block", src));
    m_cpus[t]->pv_unhalted = true;
  }
}

void Platform::hc_sched_yield(unsigned src, uint32_t dest) {
  const std::optional<unsigned> t = vcpu_by_apic_id(dest);
  const Tick at = m_vcpus[src]->now();
  if (!t) {
    m_tracer.pvsim_vcpu(at, src, "yield", fmt::format("to APIC ID {}: no such vCPU, no yield", dest));
    return;
  }
  directed_yield(src, *t, at);
}

// KVM_HC_CLOCK_PAIRING: host realtime and the guest TSC at one host instant. The host
// model's clocksource is the TSC and there is no TSC catch-up, so KVM's conditions for
// -KVM_EOPNOTSUPP never hold here.
bool Platform::hc_clock_pairing(unsigned vcpu, int64_t& sec, int64_t& nsec, uint64_t& guest_tsc) {
  Vcpu& v = *m_vcpus.at(vcpu);
  const uint64_t realtime = m_host.host_realtime_ns(v.now());
  sec = static_cast<int64_t>(realtime / 1'000'000'000u);
  nsec = static_cast<int64_t>(realtime % 1'000'000'000u);
  guest_tsc = v.tsc();
  return true;
}

}  // namespace pvsim
