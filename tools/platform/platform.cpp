#include "tools/platform/platform.h"

#include <fmt/format.h>

#include <algorithm>
#include <deque>
#include <stdexcept>

#include "core/vcpu.h"
#include "tools/platform/platform_cpu.h"
#include "tools/platform/boot.h"
#include "tools/platform/files.h"
#include "tools/platform/text.h"

namespace pvsim {

namespace {

uint64_t size_mask(unsigned size) { return size >= 8 ? ~0ull : (1ull << (size * 8)) - 1; }

}  // namespace

// Ends the run once the canonical text passes limits.max_trace_bytes. The line that
// crosses the cap is still written (a trace never ends inside a line), and the few lines
// of the instruction in progress and the final pvsim_stop follow it.
struct Platform::TraceCap final : TraceObserver {
  Platform& p;
  uint64_t max;
  TraceCap(Platform& pl, uint64_t m) : p(pl), max(m) {}
  void on_trace_line(unsigned vcpu, std::string_view, size_t) override {
    if (p.m_tracer.text_bytes() > max && !p.m_stopped)
      p.stop_run(RunStop::Limit, vcpu,
                 fmt::format("the trace reached limits.max_trace_bytes ({})", size_words(max)));
  }
};

// A second copy of the canonical text (pvsim run --update-golden).
struct Platform::TraceCopy final : TraceObserver {
  std::ostream& out;
  explicit TraceCopy(std::ostream& o) : out(o) {}
  void on_trace_line(unsigned, std::string_view line, size_t) override {
    out.write(line.data(), static_cast<std::streamsize>(line.size()));
  }
};

std::string ram_reserve_message(const Scenario& s, const std::exception& e) {
  return fmt::format("{}: /machine/ram_mib: {} MiB of guest RAM: {} (the host limits this process's address space, "
                     "ulimit -v; a smaller ram_mib will do)",
                     escape_display(s.file.string(), 400), s.machine.ram_mib, e.what());
}

bool RunReport::success() const {
  if (expectations_given) return expectation_failures.empty();
  return stop == RunStop::Exit || stop == RunStop::Finished;
}

namespace {

HypervisorConfig hypervisor_config(const Scenario& s) {
  HypervisorConfig h;
  h.abi = s.machine.kvm.abi == KvmAbi::Orig ? AbiProfile::Orig : AbiProfile::Modern;
  h.enforce_pv_cpuid = s.machine.kvm.enforce_pv_cpuid;
  h.cpuid_features = s.machine.kvm_features;
  h.cpuid_hints = s.machine.kvm_hints;
  h.signature_eax = s.machine.kvm_signature_eax;
  h.irqchip_in_kernel = s.machine.irqchip == IrqChip::Kernel;
  KvmClockConfig& c = h.kvmclock;
  c.tsc_khz = s.machine.tsc_khz;
  c.master_clock_allowed = s.machine.kvm.master_clock;
  c.tsc_matched = s.machine.tsc_matched();
  c.host_monotonic_ns = s.host.monotonic_ns;
  c.host_wall_clock_ns = s.host.wall_clock_ns;
  c.periodic_sync_ns = s.machine.kvm.kvmclock_sync_ms * 1'000'000ull;
  c.update_delay_ns = s.machine.kvm.clock_update_delay_ms * 1'000'000ull;
  h.pv_store_ns = s.host.pv_store_ns;
  h.migration_control = s.machine.kvm.migration_control;
  h.bugs = s.machine.kvm.bugs;  // already the profile's defaults plus the scenario's settings
  h.hypercalls.amd = s.machine.cpu_vendor == CpuVendor::Amd;
  h.hypercalls.fix_hypercall_insn = s.machine.kvm.fix_hypercall_insn;
  h.hypercalls.map_gpa_range_exit = s.machine.kvm.map_gpa_range_exit;
  h.hypercalls.map_gpa_range_ret = s.machine.kvm.map_gpa_range_ret;
  return h;
}

}  // namespace

// A function-try-block: guest RAM is reserved in the member initialisers, and a host that
// cannot give that much address space is the scenario's problem to report (exit 2), not an
// internal error.
Platform::Platform(const Scenario& s, const PlatformOptions& opts) try
    : m_scenario(s),
      m_mem(s.machine.ram_bytes()),
      m_exit(s.machine.vcpus),
      m_marker(s.machine.vcpus,
               [this](Vcpu& v, std::string_view text) { m_tracer.pvsim_marker(v.now(), v.index(), text); }),
      // UART bytes take the debug console's own path, so its cap, live stream and kept text
      // (expect.console*) cover both.
      m_uart([this](Vcpu& v, uint8_t byte) { m_console.pio_write(v, 0, 1, byte); }),
      m_fw_cfg(s.machine.vcpus, s.machine.ram_bytes()),
      m_hv(hypervisor_config(s), s.machine.vcpus, m_mem, m_tracer, m_events, *this, *this),
      m_cpuid(s.machine.vcpus, m_hv.cpuid(), s.machine.cpu_vendor == CpuVendor::Amd, s.machine.x2apic),
      m_host(s.host, s.machine.vcpus),
      m_host_mem(s.host.memory, s.machine.ram_bytes(), s.seed) {
  m_trace_pins = opts.trace_pins;
  m_tracer.set_text_output(opts.trace_text);
  m_tracer.set_jsonl_output(opts.trace_jsonl);
  m_tracer.set_event_filter(opts.trace_events);
  m_tracer.set_time_order(opts.trace_time_order);
  for (TraceSink* sink : opts.trace_sinks) m_tracer.add_sink(sink, false);
  for (TraceSink* sink : opts.trace_filtered_sinks) m_tracer.add_sink(sink, true);
  m_console.set_live_output(opts.console_live);
  m_console.set_keep(opts.keep_console);
  // Output caps (scenarios/README.md "limits"): reaching one ends the run as a limit,
  // exactly where it happened, so the capped run is as deterministic as any other.
  if (s.limits.max_console_bytes)
    m_console.set_limit(s.limits.max_console_bytes, [this] {
      stop_run(RunStop::Limit, m_running >= 0 ? static_cast<unsigned>(m_running) : 0,
               fmt::format("the guest console reached limits.max_console_bytes ({}); later output was dropped",
                           size_words(m_scenario.limits.max_console_bytes)));
    });
  if (s.limits.max_trace_bytes) {
    m_trace_cap = std::make_unique<TraceCap>(*this, s.limits.max_trace_bytes);
    m_tracer.add_observer(m_trace_cap.get());
  }
  if (!s.expect.trace.empty()) {
    m_trace_check = std::make_unique<TraceExpectChecker>(s.expect.trace);
    m_tracer.add_observer(m_trace_check.get());
  }
  if (opts.golden_update) {
    m_golden_copy = std::make_unique<TraceCopy>(*opts.golden_update);
    m_tracer.add_observer(m_golden_copy.get());
  } else if (s.expect.golden_trace && opts.trace_pins) {
    std::string text;
    try {
      text = read_regular_file(*s.expect.golden_trace, kMaxGoldenBytes, "golden trace");
    } catch (const FileError& e) {
      throw ScenarioError(fmt::format("{}: /expect/golden_trace: {} (pvsim run --update-golden writes it)",
                                      escape_display(s.file.string(), 400), e.what()));
    }
    m_golden = std::make_unique<GoldenChecker>(std::move(text), escape_display(s.expect.golden_trace_as_written, 200));
    m_tracer.add_observer(m_golden.get());
  }
  // Fixed wiring: a failure here is a programming error, not a scenario problem.
  if (!m_bus.add(DebugCon::kPort, 1, m_console, "debugcon") ||
      !m_bus.add(ExitPorts::kBase, ExitPorts::kCount, m_exit, "exit-ports") ||
      !m_bus.add(MarkerPort::kPort, 1, m_marker, "marker") ||
      !m_bus.add(Uart16550::kBase, Uart16550::kCount, m_uart, "uart16550") ||
      !m_bus.add(FwCfg::kBase, FwCfg::kCount, m_fw_cfg, "fw_cfg") ||
      !m_bus.add(PcTestDev::kBase, PcTestDev::kCount, m_testdev, "pc-testdev") ||
      !m_bus.add(PcTestDev::kIrqBase, PcTestDev::kIrqCount, m_testdev.irq_ports(), "pc-testdev-irq") ||
      !m_bus.add(PowerOffPort::kPort, 1, m_poweroff, "poweroff") ||
      !m_bus.add(Pic8259Pair::kMasterBase, Pic8259::kPorts, m_pic.master(), "pic-master") ||
      !m_bus.add(Pic8259Pair::kSlaveBase, Pic8259::kPorts, m_pic.slave(), "pic-slave") ||
      !m_bus.add(Pic8259Elcr::kBase, Pic8259Elcr::kPorts, m_pic.elcr(), "elcr") ||
      !m_bus.add(Pit8254::kBase, Pit8254::kPorts, m_pit, "pit") ||
      !m_bus.add(Pit8254::kPort61, 1, m_pit.port61(), "port61"))
    throw std::logic_error("platform: overlapping port claims");
  // PIT counter 0 is ISA IRQ 0; the pair's INT output goes to vCPU 0's LINT0 (its interrupt
  // poll takes the PIC's vector first, attach_lapic). A rising output is a notification at
  // the instant it happens: the PIT's event, or the port access that caused it.
  m_pit.on_irq([this](bool level) { m_pic.set_irq(0, level); });
  m_pic.on_output_change([this](bool level) {
    if (!level || m_vcpus.empty()) return;
    const Tick at = m_firing ? m_fire_time : m_running >= 0 ? m_vcpus[static_cast<unsigned>(m_running)]->now()
                                                            : m_vcpus[0]->now();
    wake(0, at);
  });
  m_pit.attach_events(m_events, Tick(0));

  m_hv.set_run_delay_source([this](unsigned i) { return m_cpus.at(i)->run_delay_ns; });
  // The boot structures (direct) or the firmware and boot information (Multiboot), and the
  // image: loader.h load_guest.
  m_image = load_guest(m_mem, s);

  const unsigned n = s.machine.vcpus;
  for (unsigned i = 0; i < n; ++i) {
    VcpuConfig cfg;
    cfg.index = i;
    cfg.count = n;
    // Per-vCPU TSC skew (scenarios/README.md `tsc_skew`): offset and frequency error live in the vCPU's
    // own clock; KVM, and so kvmclock, only knows the nominal tsc_khz.
    cfg.tsc_hz = s.machine.vcpu_tsc_hz(i);
    cfg.tsc_start = s.machine.vcpu_tsc_start(i);
    m_vcpus.push_back(std::make_unique<Vcpu>(cfg, m_mem, *this, m_tracer));
    Vcpu& v = *m_vcpus.back();
    if (s.guest.boot == BootProtocol::Multiboot) {
      init_vcpu_multiboot_state(v, i, m_image.entry);
      // The APs wait for INIT and SIPI in the state INIT gives (SDM Vol. 3A Table 9-1), as
      // after the firmware's INIT (scenarios/guest/boot.md "Multiboot").
      if (i > 0) v.reset_to_init();
    } else
      init_vcpu_boot_state(v, i, n, s.machine.ram_bytes(), m_image.entry);
    attach_lapic(i);
    m_hv.attach(v, *m_cpus[i]->apic);
    v.set_paging_hook([this, i](Vcpu&, bool paging_now) { m_hv.async_pf().on_paging_changed(i, paging_now); });
    // The host memory model only has a say when a page can be non-resident; otherwise every
    // page is mapped at its first access, as before (no hook, no cost).
    if (m_host_mem.active())
      v.set_ept_hook([this, i](Vcpu&, const Vcpu::EptFault& f) { return on_ept_violation(i, f); });
  }
  // What the firmware leaves for a Multiboot kernel: the 8259 pair programmed (bases 0x08 and
  // 0x70, IRQ 0-2 and 6 unmasked) and PIT counter 0 ticking at 18.2 Hz, as SeaBIOS does
  // (scenarios/guest/boot.md "Multiboot"); the IVT's timer stub EOIs each tick.
  if (s.guest.boot == BootProtocol::Multiboot) {
    m_pic.set_post_bios_state();
    m_pit.set_bios_state(Tick(0));
  }
  if (!m_host_mem.evictions().empty()) {
    m_evict_event = std::make_unique<MemberEvent<&Platform::evict_due>>(*this, "host_evict");
    m_events.schedule(*m_evict_event, m_host_mem.evictions().front().at, EventPriority::HostCompletion);
  }
  m_pause_event = std::make_unique<MemberEvent<&Platform::pause_step>>(*this, "host_pause");
  if (m_host.has_pauses())
    m_events.schedule(*m_pause_event, Tick(m_host.pauses().front().from_ns), EventPriority::HostCompletion);
  m_state.assign(n, VState::Runnable);
  // machine.start = "bsp": the application processors sit in wait-for-SIPI from time 0,
  // as after the INIT IPI that firmware sends them (SDM Vol. 3A §9.4 "Multiple-Processor
  // (MP) Initialization").
  // They wait in the INIT state (SDM Vol. 3A Table 9-1), whatever the boot protocol gave
  // them, so a start-up IPI starts them in real mode.
  if (s.machine.start == StartMode::Bsp)
    for (unsigned i = 1; i < n; ++i) {
      m_state[i] = VState::WaitSipi;
      m_vcpus[i]->reset_to_init();
    }
  while (m_sched_leaves < n) m_sched_leaves *= 2;
  m_sched.assign(2 * m_sched_leaves, kNotRunnable);
  for (unsigned i = 0; i < n; ++i) sched_update(i);
  arm_schedule();
} catch (const GuestMemory::ReserveError& e) {
  throw ScenarioError(ram_reserve_message(s, e));
}

void Platform::sched_update(unsigned i) {
  unsigned node = m_sched_leaves + i;
  m_sched[node] = m_state[i] == VState::Runnable
                      ? SchedKey{m_cpus[i]->effective_time().value(), i}
                      : kNotRunnable;
  for (node /= 2; node >= 1; node /= 2) {
    const SchedKey& l = m_sched[2 * node];
    const SchedKey& r = m_sched[2 * node + 1];
    const SchedKey m = r < l ? r : l;
    // Nothing above changes once a node keeps its value (each node is the minimum of its
    // subtree, and only this leaf's subtree changed).
    if (m_sched[node].time == m.time && m_sched[node].index == m.index) break;
    m_sched[node] = m;
  }
}

Platform::SchedKey Platform::sched_min_excluding(unsigned i) const {
  SchedKey best = kNotRunnable;
  // The vCPUs other than i are exactly the siblings' subtrees along i's path to the root.
  for (unsigned node = m_sched_leaves + i; node > 1; node /= 2) {
    const SchedKey& sib = m_sched[node ^ 1];
    if (sib < best) best = sib;
  }
  return best;
}

void Platform::sched_check() const {
#ifndef NDEBUG
  // Recompute the pick the way the scheduler did before it kept a tree: a full scan with
  // fresh Vcpu::now() values. Any place that changes a vCPU's time or state without
  // sched_update() shows up here (the debug and sanitizer builds run every scenario).
  SchedKey best = kNotRunnable;
  for (unsigned i = 0; i < vcpu_count(); ++i) {
    if (m_state[i] != VState::Runnable) continue;
    const Cpu& c = *m_cpus[i];
    const Tick now = m_vcpus[i]->now();
    const SchedKey k{(c.observe_at > now ? c.observe_at : now).value(), i};
    if (k < best) best = k;
  }
  if (best.time != m_sched[1].time || best.index != m_sched[1].index)
    throw std::logic_error(fmt::format("scheduler tree out of date: scan picks vCPU {} at {}, tree vCPU {} at {}",
                                       best.index, best.time, m_sched[1].index, m_sched[1].time));
#endif
}

Platform::~Platform() = default;

LocalApic& Platform::lapic(unsigned i) { return *m_cpus.at(i)->apic; }
uint64_t Platform::run_delay_ns(unsigned i) const { return m_cpus.at(i)->run_delay_ns; }

IoStatus Platform::pio_read(Vcpu& vcpu, uint16_t port, unsigned size, uint32_t& value) {
  if (m_bus.read(vcpu, port, size, value) == IoStatus::Ok) {
    value &= static_cast<uint32_t>(size_mask(size));
    return IoStatus::Ok;
  }
  if (!m_scenario.machine.ignore_unhandled_io) return IoStatus::Unhandled;
  value = static_cast<uint32_t>(size_mask(size));  // floating bus: all ones
  return IoStatus::Ok;
}

IoStatus Platform::pio_write(Vcpu& vcpu, uint16_t port, unsigned size, uint32_t value) {
  if (m_bus.write(vcpu, port, size, value) == IoStatus::Ok) return IoStatus::Ok;
  return m_scenario.machine.ignore_unhandled_io ? IoStatus::Ok : IoStatus::Unhandled;
}

CpuidResult Platform::cpuid(Vcpu& vcpu, uint32_t leaf, uint32_t subleaf) {
  CpuidResult r = m_cpuid.lookup(vcpu.index(), leaf, subleaf);
  // CPUID.1:EDX.APIC[bit 9] follows IA32_APIC_BASE.EN (SDM Vol. 3A §11.4.3; KVM's
  // kvm_update_cpuid_runtime).
  if (leaf == 1 && vcpu.index() < m_cpus.size()) {
    if (m_cpus[vcpu.index()]->apic->mode() == ApicMode::Disabled)
      r.edx &= ~(1u << 9);
    else
      r.edx |= 1u << 9;
  }
  return r;
}

std::string Platform::describe(unsigned i) const {
  const Vcpu& v = *m_vcpus[i];
  const char* word = "running";
  switch (m_state[i]) {
    case VState::Runnable: word = "runnable"; break;
    case VState::Halted: word = "halted"; break;
    case VState::Finished: word = "finished"; break;
    case VState::AtLimit: word = "at the virtual time limit"; break;
    case VState::WaitSipi: word = "waiting for SIPI"; break;
    case VState::Descheduled: word = "descheduled by the host"; break;
  }
  std::string sym = m_image.symbolize(v.rip());
  return fmt::format("vCPU {} {} at rip 0x{:x}{}{} (IF={})", i, word, v.rip(), sym.empty() ? "" : " ",
                     sym, (v.rflags() >> 9) & 1);
}

void Platform::stop_run(RunStop why, unsigned who, std::string detail) {
  if (m_stopped) return;  // the first reason wins
  m_report.stop = why;
  m_report.stop_vcpu = who;
  m_report.stop_detail = std::move(detail);
  m_stopped = true;
  if (m_running >= 0)
    m_vcpus[static_cast<unsigned>(m_running)]->request_stop(StopReason::VmExitRequested);
}

// kvm_arch_vcpu_load after a put (descheduled or blocked): KVM_REQ_STEAL_UPDATE, serviced
// by the entry that follows.
inline void Platform::load_if_put(unsigned i) {
  Cpu& c = *m_cpus[i];
  if (!c.descheduled && !c.blocked) [[likely]] return;
  c.descheduled = false;
  c.blocked = false;
  m_hv.on_load(i);
}

// Host model (tools/platform/README.md §5): before vCPU i runs, make sure it holds a pCPU at
// its local time. If it does not, the host has its thread waiting: it becomes Descheduled
// until its next run window (host_wake), and that gap is run delay — time it was runnable
// but not running, which steal time reports. Returns false when the vCPU cannot run now
// (the scheduler must pick again).
bool Platform::enter_host_window(unsigned i) {
  Cpu& c = *m_cpus[i];
  Vcpu& v = *m_vcpus[i];
  if (m_host.always_running(i)) {
    c.window_end = Tick(UINT64_MAX);
    c.pcpu = static_cast<int>(i);
    load_if_put(i);
    return true;
  }
  const Tick now = v.now();
  if (c.boost_until > now) {
    // A directed yield put it on its pCPU ahead of its schedule (directed_yield).
    c.window_end = c.boost_until;
    if (c.pcpu < 0) c.pcpu = static_cast<int>(m_host.window_at(i, now).pcpu);
    if (c.descheduled) m_tracer.pvsim_sched_in(now, i, static_cast<unsigned>(c.pcpu), v.rip(), c.run_delay_ns);
    load_if_put(i);
    return true;
  }
  const RunWindow w = m_host.window_at(i, now);
  c.window_end = w.end;
  if (w.start > now) {
    const bool paused = m_host.paused_at(now);
    const char* why = paused ? "paused" : c.blocked ? "woken, waits for a pCPU" : "preempted";
    m_tracer.pvsim_sched_out(now, i, c.pcpu < 0 ? w.pcpu : static_cast<unsigned>(c.pcpu), v.rip(), why, w.start);
    // kvm_arch_vcpu_put of a thread the host scheduler took the CPU from (kvm_sched_out
    // with the task still runnable): KVM marks it preempted in its steal-time record. Not
    // when it had halted (that put happened at the HLT, voluntarily) and not for a pause
    // (the thread left KVM_RUN for the VMM: "do not set st->preempted when going back to
    // user space").
    if (!c.blocked && !c.descheduled) m_hv.on_put(i, !paused, now);
    c.descheduled = true;
    // The thread waits for its pCPU; the host model wakes it at the schedule's next window
    // (host_wake), unless a directed yield does so earlier. Its virtual time (and TSC) still
    // passes meanwhile.
    c.out_at = now;
    c.back_at = w.start;
    m_events.schedule(c.host_event, w.start, EventPriority::VcpuSchedule);
    set_state(i, VState::Descheduled);
    return false;
  }
  // sched_in first: the migration is noticed inside the load (kvm_arch_vcpu_load compares
  // the CPU it last ran on), and its kvmclock update follows at the entry.
  if (c.descheduled) m_tracer.pvsim_sched_in(now, i, w.pcpu, v.rip(), c.run_delay_ns);
  if (c.pcpu != static_cast<int>(w.pcpu)) {
    if (c.pcpu >= 0) {
      m_tracer.pvsim_vcpu(now, i, "migrate", fmt::format("pcpu {} -> pcpu {}", c.pcpu, w.pcpu));
      // The thread was preempted on one pCPU and loaded on another: a put, then a load
      // that, without the master clock, requests a kvmclock update (pvmsr/README.md §4.5,
      // commit 0061d53daf26).
      if (!c.blocked && !c.descheduled) m_hv.on_put(i, true, now);
      m_hv.on_migrate(i);
      c.descheduled = true;
    }
    c.pcpu = static_cast<int>(w.pcpu);
  }
  load_if_put(i);
  return true;
}

// The run delay of the gap that ends at `at`: the time a runnable thread waited for a pCPU.
// The part spent paused is not run delay (the vCPU threads wait in the VMM, not on a host
// run queue).
void Platform::host_wake(unsigned i, Tick at) {
  Cpu& c = *m_cpus[i];
  if (m_state[i] != VState::Descheduled) return;
  if (c.host_event.scheduled()) m_events.cancel(c.host_event);
  c.run_delay_ns += (at - c.out_at) - m_host.paused_ns(c.out_at, at);
  advance_vcpu_to(*m_vcpus[i], at);
  set_state(i, VState::Runnable);
}

// kvm_vcpu_yield_to(target) asks the host scheduler to run the target next; it succeeds
// only for a target whose thread is runnable but waits for a CPU (KVM's `ready`). The host
// model honours it by giving the target its pCPU from the yield instant until its schedule
// would have given it back. That time is not taken from whatever the host ran on that pCPU
// meanwhile (the static schedule does not move): the host is assumed to have the capacity
// (tools/platform/README.md §5). A paused VM's vCPUs cannot be boosted.
void Platform::directed_yield(unsigned src, unsigned target, Tick at) {
  Cpu& c = *m_cpus[target];
  auto no = [&](const char* why) {
    m_tracer.pvsim_vcpu(at, src, "yield", fmt::format("to vCPU {}: {}, no yield", target, why));
  };
  if (target == src) return no("itself");
  if (m_host.paused_at(at)) return no("the VM is paused");
  if (m_state[target] == VState::Descheduled) {
    const Tick from = at > c.out_at ? at : c.out_at;
    c.boost_until = c.back_at;
    m_tracer.pvsim_vcpu(at, src, "yield",
                        fmt::format("to vCPU {}: it runs on pcpu {} from {} instead of {}", target, c.pcpu,
                                    Tracer::seconds(from), Tracer::seconds(c.back_at)));
    host_wake(target, from);
    return;
  }
  // Just made runnable (a kick woke it from HLT) but its schedule gives it no pCPU now: it
  // waits on a run queue, KVM's `ready`, and the yield lets it run at once.
  Vcpu& t = *m_vcpus[target];
  if (m_state[target] == VState::Runnable && !m_host.always_running(target) && t.now() >= at) {
    const RunWindow w = m_host.window_at(target, t.now());
    if (w.start > t.now()) {
      c.boost_until = w.start;
      m_tracer.pvsim_vcpu(at, src, "yield",
                          fmt::format("to vCPU {}: it runs from {} instead of {}", target,
                                      Tracer::seconds(t.now()), Tracer::seconds(w.start)));
      return;
    }
  }
  no("not waiting for a pCPU");
}


RunReport Platform::run() {
  if (m_ran) throw std::logic_error("Platform::run called twice (restore a snapshot to run again)");
  m_stop_point.reset();
  update_extras();
  drive();
  m_ran = true;
  return finish();
}

bool Platform::run_to(const StopPoint& p) {
  if (m_ran) throw std::logic_error("Platform::run_to after the run was reported");
  if (p.kind != StopPoint::Kind::Time && p.vcpu >= vcpu_count())
    throw std::invalid_argument("Platform::run_to: no such vCPU");
  m_stop_point = p;
  update_extras();
  const bool reached = drive();
  m_stop_point.reset();
  update_extras();
  return reached;
}

// ---- debugging (tools/platform/README.md "Debugging with gdb") ----

// GuestMemory's watch reports, with the vCPU the platform is acting for at that moment.
struct Platform::WatchRelay final : GuestMemory::Watcher {
  Platform& p;
  explicit WatchRelay(Platform& pl) : p(pl) {}
  void on_watch(const GuestMemory::Watch& w, uint64_t gpa, uint64_t len, GuestMemory::WatchAccess a,
                bool host) override {
    if (!p.m_debug) return;
    const int who = p.m_running >= 0 ? p.m_running : p.m_ctx_vcpu;
    p.m_debug->debug_watch(w, gpa, len, a == GuestMemory::WatchAccess::Write, host, who);
  }
};

void Platform::keep_recent_trace(size_t n) {
  if (!m_trace_ring) {
    m_trace_ring = std::make_unique<TraceRing>(m_tracer);
    m_tracer.add_observer(m_trace_ring.get());
  }
  m_trace_ring->keep = n;
  while (m_trace_ring->lines.size() > n) m_trace_ring->lines.pop_front();
}

std::vector<std::string> Platform::recent_trace(size_t n) const {
  std::vector<std::string> out;
  if (!m_trace_ring) return out;
  const auto& l = m_trace_ring->lines;
  for (size_t k = l.size() > n ? l.size() - n : 0; k < l.size(); ++k) out.push_back(l[k].second);
  return out;
}

Platform::DebugStop Platform::debug_run(const std::optional<StopPoint>& p, uint64_t alarm_instructions) {
  if (m_ran) throw std::logic_error("Platform::debug_run after the run was reported");
  if (p && p->kind != StopPoint::Kind::Time && p->vcpu >= vcpu_count())
    throw std::invalid_argument("Platform::debug_run: no such vCPU");
  m_stop_point = p;
  m_alarm = alarm_instructions;
  update_extras();
  m_drive_stop = DebugStop::Ended;
  const bool early = drive();
  m_stop_point.reset();
  m_alarm = UINT64_MAX;
  update_extras();
  return early ? m_drive_stop : DebugStop::Ended;
}

void Platform::set_debug_breakpoints(std::vector<uint64_t> rips) {
  std::sort(rips.begin(), rips.end());
  rips.erase(std::unique(rips.begin(), rips.end()), rips.end());
  m_debug_bps = std::move(rips);
  for (unsigned i = 0; i < vcpu_count(); ++i) update_breakpoints(i);
}

void Platform::set_step_mode(unsigned vcpu, bool on) {
  if (m_step_mode.size() != vcpu_count()) m_step_mode.assign(vcpu_count(), 0);
  if (m_step_mode.at(vcpu) == (on ? 1 : 0)) return;
  m_step_mode[vcpu] = on;
  update_breakpoints(vcpu);
}

void Platform::set_step_mode_all(bool on) {
  for (unsigned i = 0; i < vcpu_count(); ++i) set_step_mode(i, on);
}

void Platform::set_debug_watches(std::vector<GuestMemory::Watch> w) {
  if (!m_watch_relay) m_watch_relay = std::make_unique<WatchRelay>(*this);
  std::vector<uint64_t> read_pages;
  for (const GuestMemory::Watch& x : w)
    if (x.access & static_cast<uint8_t>(GuestMemory::WatchAccess::Read))
      for (uint64_t pfn = x.gpa >> kPageShift; x.len && pfn <= (x.gpa + x.len - 1) >> kPageShift; ++pfn)
        read_pages.push_back(pfn);
  m_mem.set_watches(std::move(w), m_watch_relay.get());
  for (auto& v : m_vcpus) v->drop_read_translations(read_pages);
}

uint64_t Platform::vcpu_steps(unsigned i) const { return m_cpus.at(i)->steps; }

int Platform::vcpu_pcpu(unsigned i) const { return m_cpus.at(i)->pcpu; }

std::string Platform::vcpu_state_name(unsigned i) const {
  switch (m_state.at(i)) {
    case VState::Runnable: return "runnable";
    case VState::Halted: return "halted";
    case VState::Finished: return "finished";
    case VState::AtLimit: return "at the time limit";
    case VState::WaitSipi: return "waiting for SIPI";
    case VState::Descheduled: return "descheduled by the host";
  }
  return "?";
}

// Is the machine, standing between two scheduling steps, at the stop point? The next step
// runs vCPU `pick` (-1: none) with `budget` instructions, or fires events first. A point
// is reached at the last step boundary before anything could pass it, so stopping there
// changes nothing about the steps that follow (tools/platform/README.md "Snapshots").
bool Platform::at_stop_point(int pick, uint64_t budget, Tick g) const {
  const StopPoint& p = *m_stop_point;
  if (p.kind == StopPoint::Kind::Insn) {
    if (pick != static_cast<int>(p.vcpu)) return false;
    // The step about to run could retire instruction `at` (or is already there).
    return m_vcpus[p.vcpu]->instructions() + budget >= p.at;
  }
  if (p.kind == StopPoint::Kind::Steps) return pick == static_cast<int>(p.vcpu) && m_cpus[p.vcpu]->steps + budget >= p.at;
  // Time: every vCPU that can run has reached it, and no event before it is left.
  return pick >= 0 && g.value() >= p.at;
}

bool Platform::drive() {
  const Scenario& s = m_scenario;
  const Tick limit_tick(s.limits.max_virtual_ms * 1'000'000ull);
  if (m_paused) [[unlikely]] {
    // A step a debugger paused goes on where it stopped (Platform::continue_step).
    StepRun c = *m_paused;
    m_paused.reset();
    m_ctx_vcpu = static_cast<int>(c.i);
    m_running = static_cast<int>(c.i);
    if (!continue_step(c)) return true;
    end_step(c);
  }

  while (!m_stopped) {
    // Smallest local time among runnable vCPUs, ties to the lowest index. A vCPU waiting
    // at the time gate counts at its reservation (may_observe_time). The tree's root.
    sched_check();
    const SchedKey top = m_sched[1];
    int pick = top.index == kNotRunnable.index ? -1 : static_cast<int>(top.index);
    const Tick g(top.time);
    const std::optional<Tick> next = m_events.next_time();
    // A `run vN` schedule action: vN runs whenever it can — runnable, not waiting at the
    // time gate, and short of the next event (which needs every vCPU to have reached it).
    // One flag for everything rare (a stop point, instruction points, `run vN`): at quantum 1
    // this loop runs once per instruction.
    const bool extras = m_extras;
    bool forced = false;
    if (extras && m_run_first >= 0) [[unlikely]] {
      const unsigned f = static_cast<unsigned>(m_run_first);
      const Tick tf = m_cpus[f]->local_time();
      if (m_state[f] == VState::Runnable && m_cpus[f]->observe_at <= tf && tf < limit_tick && (!next || *next > tf)) {
        forced = true;
        pick = static_cast<int>(f);
      }
    }
    // Events fire once every runnable vCPU has reached their time; with nobody runnable,
    // idle time jumps to the next event — if that event can wake anybody at all.
    if (!forced && next && *next < limit_tick && (pick >= 0 ? *next <= g : anything_can_wake())) {
      fire_events(*next);
      continue;
    }
    // A quantum is a slice that ends at the last decoded-block boundary inside it (vcpu.h
    // Budget::Slice), unless the scenario asks for exact quanta; what is left of
    // max_instructions is always exact, so the limit stops at its instruction.
    const uint64_t left = s.limits.max_instructions - m_total;
    const bool slice = s.machine.quantum < left && !s.machine.exact_quantum;
    const uint64_t budget = std::min(s.machine.quantum, left);
    if (extras) [[unlikely]] {
      if (m_debug_break) {
        m_debug_break = false;
        update_extras();
        m_drive_stop = DebugStop::Break;
        return true;
      }
      if (m_total >= m_alarm) {
        m_drive_stop = DebugStop::Alarm;
        return true;
      }
      if (m_stop_point && at_stop_point(pick, budget, g)) {
        m_drive_stop = DebugStop::Point;
        return true;
      }
    }
    if (pick < 0) {
      report_no_runnable(next.has_value() && anything_can_wake());
      break;
    }
    const unsigned i = static_cast<unsigned>(pick);
    Vcpu& v = *m_vcpus[i];
    // Schedule entries at this vCPU's current instruction count fire before it runs on
    // (an action may change what runs next, so the scheduler looks again).
    const Budget mode = slice ? Budget::Slice : Budget::Exact;
    uint64_t stop_at = UINT64_MAX;
    if (extras && m_has_insn_points) [[unlikely]] {
      if (fire_insn_points(i)) {
        sched_update(i);
        continue;
      }
      // The step ends exactly at the next one if it gets there, and is otherwise the step
      // it would have been (Vcpu::run's stop_at): arming a point changes nothing before it.
      const uint64_t room = insn_point_room(i);
      if (room != UINT64_MAX) stop_at = v.instructions() + room;
    }
    m_ctx_vcpu = static_cast<int>(i);
    if (!enter_host_window(i)) {
      m_ctx_vcpu = -1;
      continue;
    }
    // Requests raised for this vCPU while it was not running are serviced at entry
    // (vcpu_enter_guest, pvmsr/hypervisor.h). With host.pv_store_ns the host's stores take
    // time: the vCPU waits for them while the others run (pvmsr/host_stores.h).
    if (!m_hv.enter(v)) [[unlikely]] {
      advance_vcpu_to(v, m_hv.pending_until(i));
      sched_update(i);
      m_ctx_vcpu = -1;
      continue;
    }
    Tick until = limit_tick;
    if (next && *next < until) until = *next;
    if (m_cpus[i]->window_end < until) until = m_cpus[i]->window_end;
    StepRun c;
    c.i = i;
    c.budget = budget;
    c.deadline = m_cpus[i]->deadline_for(until);
    c.mode = mode;
    c.stop_at = stop_at;
    m_running = static_cast<int>(i);
    m_run_deadline = until;
    c.res = v.run(budget, c.deadline, mode, stop_at);
    c.used = v.last_run_steps();
    m_cpus[i]->steps += c.used;
    if (!continue_step(c)) return true;
    end_step(c);
  }
  return false;
}

// A RIP point's earlier hits do not end the step: it goes on with what is left of its
// budget, counted in steps (instructions and event deliveries, as the core counts them), so
// the step ends where it would have without the breakpoint. The hit that fires an entry
// ends it. A debugger may pause at any such boundary; the step goes on from there later,
// with the same budget, deadline and mode (core/README.md "Breakpoints").
bool Platform::continue_step(StepRun& c) {
  Vcpu& v = *m_vcpus[c.i];
  while (c.res.reason == StopReason::Breakpoint) {
    if (m_debug && !c.asked && !m_stopped) {
      c.asked = true;
      if (m_debug->debug_boundary(c.i)) [[unlikely]] {
        m_running = -1;
        m_paused = c;
        m_drive_stop = DebugStop::Paused;
        return false;
      }
    }
    c.asked = false;
    if (fire_rip_points(c.i) || m_stopped || c.used >= c.budget) break;
    m_running = static_cast<int>(c.i);
    const Vcpu::RunResult more = v.run(c.budget - c.used, c.deadline, c.mode, c.stop_at);
    c.res.executed += more.executed;
    c.used += v.last_run_steps();
    m_cpus[c.i]->steps += v.last_run_steps();
    c.res.reason = more.reason;
  }
  return true;
}

void Platform::end_step(StepRun& c) {
  const unsigned i = c.i;
  Vcpu& v = *m_vcpus[i];
  const Vcpu::RunResult& res = c.res;
  const Tick limit_tick(m_scenario.limits.max_virtual_ms * 1'000'000ull);
  m_running = -1;
  m_hv.on_exit(v);  // the orig profile's clamp tracks the TSC the guest has seen
  m_ctx_vcpu = -1;
  m_total += res.executed;
  if (m_stopped) return;  // a device ended the run (a SIPI) during this slice
  switch (res.reason) {
    case StopReason::None:
    case StopReason::InsnLimit:
    case StopReason::Deadline:
    case StopReason::Breakpoint:
      break;
    case StopReason::Halted:
      if (m_cpus[i]->pv_unhalted) {
        // A KICK_CPU arrived before this HLT: kvm_vcpu_block finds the vCPU runnable and
        // does not sleep; the flag is consumed (KVM clears pv_unhalted there).
        m_cpus[i]->pv_unhalted = false;
        v.set_halted(false);
        m_tracer.pvsim_vcpu(v.now(), i, "kick", "HLT does not block: pv_unhalted was set");
        break;
      }
      m_state[i] = VState::Halted;
      // kvm_vcpu_block: the thread sleeps, a voluntary put (never marked preempted).
      m_cpus[i]->blocked = true;
      break;
    case StopReason::VcpuFinished:
      m_state[i] = VState::Finished;
      break;
    case StopReason::VmExitRequested:
      // Port 0xf4 or the power-off sequence; the run ends at the first, so only one is set.
      if (!m_exit.exit_requested() && m_poweroff.requested()) {
        stop_run(RunStop::Exit, m_poweroff.vcpu(),
                 fmt::format("vCPU {} powered off (\"Shutdown\" to port 0x8900)", m_poweroff.vcpu()));
        m_report.exit_status = 0;  // QEMU's status on power-off (devices/poweroff_port.h)
        break;
      }
      stop_run(RunStop::Exit, m_exit.exit_vcpu(), fmt::format("vCPU {} wrote port 0xf4", m_exit.exit_vcpu()));
      m_report.exit_status = m_exit.exit_status();
      break;
    case StopReason::Shutdown:
      stop_run(RunStop::Shutdown, i, fmt::format("vCPU {} shut down: {}", i, v.stop_detail()));
      m_report.stop_dump = v.dump_state();
      break;
    case StopReason::IoError:
      stop_run(RunStop::UnhandledIo, i, fmt::format("vCPU {}: {}", i, v.stop_detail()));
      m_report.stop_dump = v.dump_state();
      break;
    case StopReason::Unsupported:
      stop_run(RunStop::Unsupported, i, v.stop_detail());
      m_report.stop_dump = v.dump_state();
      break;
  }
  if (m_extras && m_has_insn_points) [[unlikely]] fire_insn_points(i);
  if (m_stopped) return;
  if (m_state[i] == VState::Runnable && m_cpus[i]->local_time() >= limit_tick) m_state[i] = VState::AtLimit;
  sched_update(i);  // its time moved and maybe its state
  if (m_total >= m_scenario.limits.max_instructions)
    stop_run(RunStop::Limit, i, fmt::format("max_instructions ({}) reached", m_scenario.limits.max_instructions));
}

RunReport Platform::finish() {
  RunReport& r = m_report;
  const unsigned n = vcpu_count();
  r.instructions = m_total;
  for (unsigned i = 0; i < n; ++i) {
    const Vcpu& v = *m_vcpus[i];
    VcpuReport vr{i, v.instructions(), v.cycles().value(), v.now().value(),
                  m_cpus[i]->run_delay_ns, describe(i)};
    r.virtual_ns = std::max(r.virtual_ns, vr.virtual_ns);
    r.vcpus.push_back(std::move(vr));
  }
  // The stop is the last canonical event, stamped with the stopping vCPU's time (the
  // furthest time for VM-wide stops such as deadlock and limit).
  const bool vm_wide = r.stop == RunStop::Deadlock || r.stop == RunStop::Limit || r.stop == RunStop::Finished;
  const Tick ts = vm_wide ? Tick(r.virtual_ns) : m_vcpus[r.stop_vcpu]->now();
  m_tracer.pvsim_stop(ts, r.stop_vcpu, run_stop_name(r.stop), r.stop_detail);

  r.console = m_console.output();
  r.console_bytes = m_console.bytes();
  r.console_ends_with_newline = m_console.ends_with_newline();
  r.trace_hash = m_tracer.hash();
  r.trace_events = m_tracer.event_count();
  check_expectations(r);
  return r;
}

// Fires every event due at `t`. Idle vCPUs (halted, waiting for SIPI) are first brought
// to `t`: their time passes while they wait, so a device that reads their clock (the
// LAPIC timer) and a vCPU woken by the event see the right time.
void Platform::fire_events(Tick t) {
  for (unsigned i = 0; i < vcpu_count(); ++i)
    if (m_state[i] == VState::Halted || m_state[i] == VState::WaitSipi || m_state[i] == VState::Descheduled) {
      Vcpu& v = *m_vcpus[i];
      advance_vcpu_to(v, t);
    }
  m_firing = true;
  m_fire_time = t;
  m_events.run_until(t);
  m_firing = false;
}

// Can a pending event ever make a vCPU runnable? IPIs in flight and LAPIC timers armed on
// a halted vCPU can; kvmclock's periodic sync cannot, so a VM whose only future is that
// timer is stuck and is reported as such instead of idling to the time limit.
bool Platform::anything_can_wake() const {
  if (m_ipis_in_flight > 0) return true;
  // A fetch in flight completes an async PF work, which wakes its vCPU (or ends a halt).
  if (!m_fetches.empty()) return true;
  // A descheduled vCPU gets its pCPU back at its host event.
  for (unsigned i = 0; i < vcpu_count(); ++i)
    if (m_state[i] == VState::Descheduled) return true;
  for (unsigned i = 0; i < vcpu_count(); ++i)
    if (m_state[i] == VState::Halted && m_cpus[i]->apic->timer_armed()) return true;
  // The PIT's next tick reaches a halted vCPU 0 when IRQ 0 is unmasked at the master and
  // LINT0 takes the PIC's interrupts.
  if (vcpu_count() && m_state[0] == VState::Halted && m_pit.irq_armed() && !(m_pic.master().imr() & 1) &&
      pic_reaches_bsp())
    return true;
  return false;
}

// KVM's kvm_apic_accept_pic_intr: the 8259's INT reaches the BSP when its LAPIC is disabled
// in IA32_APIC_BASE or LINT0 is unmasked in ExtINT mode.
bool Platform::pic_reaches_bsp() const {
  const LocalApic& apic = *m_cpus[0]->apic;
  if (apic.mode() == ApicMode::Disabled) return true;
  const uint32_t lvt0 = apic.peek(0x350).value_or(0x10000);
  return (lvt0 & 0x10700) == 0x700;
}

void Platform::report_no_runnable(bool waiting_past_limit) {
  const Scenario& s = m_scenario;
  if (waiting_past_limit ||
      std::any_of(m_state.begin(), m_state.end(), [](VState st) { return st == VState::AtLimit; })) {
    stop_run(RunStop::Limit, 0, fmt::format("max_virtual_ms ({} ms) reached", s.limits.max_virtual_ms));
  } else if (std::all_of(m_state.begin(), m_state.end(), [](VState st) { return st == VState::Finished; })) {
    stop_run(RunStop::Finished, 0, "every vCPU wrote port 0xf5");
    m_report.exit_status = 0;
  } else {
    std::string d = "every vCPU is halted, finished or waiting for SIPI and nothing can wake one:";
    for (unsigned i = 0; i < vcpu_count(); ++i) d += (i ? "; " : " ") + describe(i);
    stop_run(RunStop::Deadlock, 0, d);
  }
}

// host.pause: the VM stops at a pause's start (every vCPU's run window ends there, see
// HostModel) and resumes at its end, where the VMM, as QEMU does when it continues a
// stopped VM, issues KVM_KVMCLOCK_CTRL on every vCPU: the next kvmclock update sets
// PVCLOCK_GUEST_STOPPED, so the guest's watchdogs do not mistake the pause for a lockup
// (pvmsr/README.md §4). The event alternates between the starts and ends of the windows.
void Platform::pause_step() {
  const Tick at = m_pause_event->when();
  if (!m_pause_resuming) {
    const PauseWindow* w = m_host.pause_containing(at);
    if (!w) return;  // cannot happen: the event is only scheduled at a pause's start
    m_tracer.pvsim_host(at, 0, "pause", fmt::format("the VMM stops the VM until {}", Tracer::seconds(Tick(w->to_ns))));
    m_pause_resuming = true;
    m_events.schedule(*m_pause_event, Tick(w->to_ns), EventPriority::HostCompletion);
    return;
  }
  std::string ctrl;
  for (unsigned i = 0; i < vcpu_count(); ++i) {
    // KVM_KVMCLOCK_CTRL fails (-EINVAL) for a vCPU whose kvmclock is off; QEMU ignores that.
    if (m_hv.kvmclock_ctrl(i) == 0) ctrl += fmt::format("{}{}", ctrl.empty() ? "" : ",", i);
  }
  m_tracer.pvsim_host(at, 0, "resume",
                      fmt::format("KVM_KVMCLOCK_CTRL on vCPUs {}", ctrl.empty() ? "none (no kvmclock)" : ctrl));
  m_pause_resuming = false;
  if (const PauseWindow* next = m_host.next_pause_after(at))
    m_events.schedule(*m_pause_event, Tick(next->from_ns), EventPriority::HostCompletion);
}

// A `pause` action (platform_schedule.cpp): the host model cuts [from, to) out of every
// vCPU's schedule, and the pause event moves to whichever boundary now comes first.
void Platform::add_pause(Tick from, Tick to) {
  m_host.add_pause(from.value(), to.value());
  if (m_pause_resuming) {
    // Inside a pause already: the merged pause may end later now.
    const PauseWindow* w = m_host.pause_containing(from);
    m_events.schedule(*m_pause_event, Tick(w->to_ns), EventPriority::HostCompletion);
  } else if (!m_pause_event->scheduled() || m_pause_event->when() > from) {
    m_events.schedule(*m_pause_event, from, EventPriority::HostCompletion);
  }
}

RunReport run_scenario(const Scenario& s, const PlatformOptions& opts) {
  Platform p(s, opts);
  return p.run();
}

}  // namespace pvsim
