// tools/platform/platform.h — one whole virtual machine (tools/platform/README.md).
//
// A Platform owns guest RAM, the tracer, the port bus, the devices and the vCPUs, and
// implements the CpuEnv the vCPUs call on port I/O, MMIO outside RAM and CPUID. It has
// no globals: two Platforms may run in one process (the determinism test does).
//
// Scheduler (tools/platform/README.md §4): one global EventQueue (LAPIC timers, IPIs in flight,
// kvmclock requests) and per-vCPU local virtual time. Events at time T fire once every
// runnable vCPU has reached T; otherwise the runnable vCPU with the smallest local time
// runs next (ties to the lowest index) for at most `quantum` instructions (ending at the
// last decoded-block boundary inside them unless machine.exact_quantum, vcpu.h Budget) and
// never past the next event, the end of its host run window or the time limit. Halted, finished and
// wait-for-SIPI vCPUs are skipped; a halted vCPU woken at T continues at T. The run ends
// when the guest exits (port 0xf4), every vCPU finished (0xf5), a vCPU shuts down (triple
// fault) or hits unclaimed I/O, a SIPI asks for a real-mode start, a limit is reached, or
// nothing can ever run again (deadlock).
#pragma once
#include <cstdint>
#include <iosfwd>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/env.h"
#include "core/event_queue.h"
#include "core/guest_memory.h"
#include "core/pio_bus.h"
#include "core/trace.h"
#include "core/vcpu.h"
#include "devices/debugcon.h"
#include "devices/exit_ports.h"
#include "devices/fw_cfg.h"
#include "devices/marker.h"
#include "devices/lapic.h"
#include "devices/pc_testdev.h"
#include "devices/pic8259.h"
#include "devices/pit8254.h"
#include "devices/poweroff_port.h"
#include "devices/uart16550.h"
#include "pvmsr/hypervisor.h"
#include "tools/platform/cpuid_table.h"
#include "tools/platform/host_memory.h"
#include "tools/platform/host_model.h"
#include "tools/platform/loader.h"
#include "tools/platform/scenario.h"
#include "tools/platform/trace_check.h"

namespace pvsim {

struct VcpuReport {
  unsigned index = 0;
  uint64_t instructions = 0;
  uint64_t cycles = 0;
  uint64_t virtual_ns = 0;
  uint64_t run_delay_ns = 0;  // runnable but not holding a pCPU (host model)
  std::string state;  // "running", "halted", "finished", "stopped (...)"
};

struct RunReport {
  RunStop stop = RunStop::Limit;
  std::optional<uint8_t> exit_status;  // for exit (port 0xf4; 0 after a 0x8900 power-off) and finished (0)
  unsigned stop_vcpu = 0;              // the vCPU that caused the stop
  std::string stop_detail;             // human-readable: chain, unclaimed port, deadlock states
  std::string stop_dump;               // register dump of stop_vcpu for shutdown/unhandled_io
  uint64_t instructions = 0;           // all vCPUs
  uint64_t virtual_ns = 0;             // the furthest vCPU's local time
  std::vector<VcpuReport> vcpus;
  std::string console;          // kept only when PlatformOptions::keep_console
  uint64_t console_bytes = 0;   // written by the guest (up to limits.max_console_bytes)
  bool console_ends_with_newline = true;
  uint64_t trace_hash = 0;
  uint64_t trace_events = 0;
  bool expectations_given = false;
  std::vector<std::string> expectation_failures;  // one line each
  std::string golden_report;  // the first difference from the golden trace, with context ("" if none)
  // Exit code policy of `pvsim run`: 0 = every expectation met, or none given and the VM
  // ended through the exit/finished ports; 1 otherwise.
  bool success() const;
};

// Golden traces are read whole; the largest shipped one is a few MiB.
constexpr uint64_t kMaxGoldenBytes = 256ull << 20;

struct PlatformOptions {
  std::ostream* console_live = nullptr;  // debug console bytes as they are written
  std::ostream* trace_text = nullptr;    // canonical trace lines
  std::ostream* trace_jsonl = nullptr;   // JSON Lines copy
  std::vector<TraceSink*> trace_sinks;   // more sinks (Perfetto, HTML timeline), unfiltered
  // More sinks that --events applies to, as it does to trace_text and trace_jsonl.
  std::vector<TraceSink*> trace_filtered_sinks;
  // --events (parse_trace_event_filter): one flag per table event, empty for all. It selects
  // what the outputs above write; the hash, expectations and golden comparison see everything.
  std::vector<bool> trace_events;
  // --time-order: trace_text and trace_jsonl sorted by virtual time (Tracer::set_time_order).
  bool trace_time_order = false;
  // Keep the console text in RunReport::console. The CLI keeps it only when an
  // expectation needs it, so a console flood costs no memory.
  bool keep_console = true;
  // When set, the canonical text also goes here (to rewrite the golden trace) and the
  // golden comparison is skipped.
  std::ostream* golden_update = nullptr;
  // Check expect.trace_hash and expect.golden_trace. They pin the scenario's own run; a run
  // with more schedule entries (pvsim run --schedule, pvsim explore) is another run.
  bool trace_pins = true;
};

class Platform final : public CpuEnv, public ApfHost, public HypercallHost {
 public:
  // Builds the machine, loads the image (LoadError → ScenarioError naming /guest/image)
  // and puts every vCPU in its boot state.
  Platform(const Scenario& s, const PlatformOptions& opts = {});
  ~Platform() override;
  Platform(const Platform&) = delete;
  Platform& operator=(const Platform&) = delete;

  // Runs to the end and reports (once; a restored snapshot may run again).
  RunReport run();

  // ---- stepping and snapshots (tools/platform/README.md "Snapshots") ----
  // A place to stop at without disturbing the run: the machine stops at the last boundary
  // between two scheduling steps before the point could be passed, so running on from
  // there (or from a snapshot taken there) does exactly what a run that never stopped does.
  //   Insn: before the step of vCPU `vcpu` that could retire its `at`-th instruction;
  //   Time: at the first step boundary where every runnable vCPU has reached `at` ns.
  //   Steps: before the step of vCPU `vcpu` that could bring its step count (vcpu_steps:
  //   instructions plus event deliveries) to `at`.
  struct StopPoint {
    enum class Kind : uint8_t { Insn, Time, Steps };
    Kind kind = Kind::Time;
    unsigned vcpu = 0;
    uint64_t at = 0;
  };
  // Runs until the point (true) or until the run ends first (false; run() then reports).
  bool run_to(const StopPoint& p);
  bool stopped() const { return m_stopped; }
  uint64_t instructions() const { return m_total; }

  // The whole machine in memory: CPU state, LAPICs, hypervisor, host model, event queue,
  // console, trace hash and checkers, and guest RAM through GuestMemory's undo log (a
  // restore copies back only the pages written since). Snapshots nest: restoring one
  // invalidates those taken after it; restore() of an invalid one throws logic_error.
  // Text already written to the trace or console streams stays written: point them
  // elsewhere (tracer().set_text_output) before running again if that matters.
  struct Snapshot;
  std::shared_ptr<const Snapshot> save();
  void restore(const Snapshot& s);
  // Pages guest RAM would copy back to restore `s` (what a restore costs).
  uint64_t restore_cost_pages(const Snapshot& s) const;
  // Drops a live snapshot that is not the oldest: its RAM level folds into the one below,
  // and the others stay valid (a debugger keeping a bounded number of checkpoints).
  void forget(const Snapshot& s);

  // Arms one more schedule entry on a live machine (pvsim explore: after a restore);
  // `where` names it in messages. A restore drops entries armed after its snapshot.
  void arm(const ScheduleEntry& e, std::string where);

  // ---- debugging (tools/platform/gdb_engine.h; tools/platform/README.md "Debugging with gdb") ----
  // A debugger stops the run only where that changes nothing: at an instruction boundary a
  // vCPU reaches as a breakpoint (core/README.md "Breakpoints": the step goes on from there
  // exactly as if it had not stopped) or between two scheduling steps.
  struct DebugObserver {
    virtual ~DebugObserver() = default;
    // vCPU `vcpu` stands at a boundary it reached as a breakpoint (a debugger breakpoint,
    // step mode, or a schedule RIP point), inside its step. True pauses the run there.
    virtual bool debug_boundary(unsigned vcpu) = 0;
    // A watched range (set_debug_watches) was accessed. `vcpu`: the vCPU whose instruction
    // did it, or in whose entry or exit the hypervisor did it; -1 for an event between steps.
    virtual void debug_watch(const GuestMemory::Watch& w, uint64_t gpa, uint64_t len, bool write, bool host,
                             int vcpu) = 0;
  };
  void set_debug_observer(DebugObserver* o) { m_debug = o; }
  // Debugger breakpoints (linear RIPs, on every vCPU), on top of the schedule's RIP points.
  void set_debug_breakpoints(std::vector<uint64_t> rips);
  // Step mode: every boundary of the vCPU is reached as a breakpoint.
  void set_step_mode(unsigned vcpu, bool on);
  void set_step_mode_all(bool on);
  // Guest-physical watch ranges (GuestMemory::set_watches); empty: none.
  void set_debug_watches(std::vector<GuestMemory::Watch> w);
  enum class DebugStop : uint8_t {
    Paused,  // the observer paused a step at a boundary (paused_vcpu())
    Point,   // the stop point was reached (between steps)
    Alarm,   // instructions() reached the alarm (between steps)
    Break,   // debug_break() was called (between steps)
    Ended,   // the run is over (run() reports it)
  };
  // Runs (resuming a paused step first) until one of the DebugStop reasons.
  DebugStop debug_run(const std::optional<StopPoint>& p, uint64_t alarm_instructions = UINT64_MAX);
  // From an observer: end debug_run at the next boundary between steps.
  void debug_break() {
    m_debug_break = true;
    update_extras();
  }
  bool paused() const { return m_paused.has_value(); }
  int paused_vcpu() const { return m_paused ? static_cast<int>(m_paused->i) : -1; }
  // Steps vCPU i has taken: instructions retired plus exception and interrupt deliveries
  // (Vcpu::run). Between two of its breakpoint-style boundaries it always grows.
  uint64_t vcpu_steps(unsigned i) const;
  // The host model's view (for `monitor host`): the pCPU a vCPU last ran on and whether it
  // holds it now.
  int vcpu_pcpu(unsigned i) const;
  std::string vcpu_state_name(unsigned i) const;
  const HostModel& host_model() const { return m_host; }
  // The exit status so far (set when the guest ended the run through the exit ports).
  std::optional<uint8_t> exit_status() const { return m_report.exit_status; }
  bool run_over() const { return m_stopped; }
  // Keeps the last `n` canonical trace lines in memory (`monitor trace`; 0: stop keeping).
  // A restore drops the lines of events after the snapshot.
  void keep_recent_trace(size_t n);
  std::vector<std::string> recent_trace(size_t n) const;

  // A register by its expect.registers name (rax..r15, rip, rflags, cr0..cr8, efer).
  uint64_t register_value(unsigned vcpu, const std::string& name) const;
  static bool is_register_name(std::string_view name);

  GuestMemory& memory() { return m_mem; }
  Tracer& tracer() { return m_tracer; }
  Vcpu& vcpu(unsigned i) { return *m_vcpus.at(i); }
  unsigned vcpu_count() const { return static_cast<unsigned>(m_vcpus.size()); }
  const DebugCon& console() const { return m_console; }
  const LoadedImage& image() const { return m_image; }

  // CpuEnv
  IoStatus pio_read(Vcpu& vcpu, uint16_t port, unsigned size, uint32_t& value) override;
  IoStatus pio_write(Vcpu& vcpu, uint16_t port, unsigned size, uint32_t value) override;
  IoStatus mmio_read(Vcpu& vcpu, Gpa gpa, unsigned size, uint64_t& value) override;
  IoStatus mmio_write(Vcpu& vcpu, Gpa gpa, unsigned size, uint64_t value) override;
  CpuidResult cpuid(Vcpu& vcpu, uint32_t leaf, uint32_t subleaf) override;

  LocalApic& lapic(unsigned i);
  KvmClock& kvmclock() { return m_hv.kvmclock(); }
  Hypervisor& hypervisor() { return m_hv; }
  EventQueue& events() { return m_events; }
  uint64_t run_delay_ns(unsigned i) const;
  const HostMemory& host_memory() const { return m_host_mem; }

  // ApfHost (platform_memory.cpp): what the async-PF state machine asks of the platform.
  void apf_inject_page_fault(unsigned vcpu, uint32_t cr2) override;
  void apf_inject_interrupt(unsigned vcpu, uint8_t vector) override;
  bool apf_lapic_enabled(unsigned vcpu) override;
  bool apf_can_inject_present(unsigned vcpu) override;
  void apf_wake(unsigned vcpu) override;
  void apf_request_ready(unsigned vcpu) override;
  void apf_kick(unsigned vcpu) override;

  // HypercallHost (platform_apic.cpp): what KVM's hypercalls ask of the platform.
  int hc_deliver_ipi(unsigned src_vcpu, uint32_t dest_apic_id, uint32_t icr_low) override;
  void hc_kick(unsigned src_vcpu, uint32_t dest_apic_id) override;
  void hc_sched_yield(unsigned src_vcpu, uint32_t dest_apic_id) override;
  bool hc_clock_pairing(unsigned vcpu, int64_t& sec, int64_t& nsec, uint64_t& guest_tsc) override;

 private:
  // Descheduled: runnable as far as the guest is concerned, but the host model gives its
  // thread no pCPU until its wake event (host_wake) fires or a directed yield boosts it.
  enum class VState : uint8_t { Runnable, Halted, Finished, AtLimit, WaitSipi, Descheduled };
  struct Cpu;
  struct IpiInFlight;
  std::string describe(unsigned i) const;
  void check_expectations(RunReport& r);

  // Host memory glue (platform_memory.cpp): the EPT-violation path, fetches in flight and
  // scheduled evictions (tools/platform/README.md §5.1).
  struct Fetch;
  Vcpu::EptResult on_ept_violation(unsigned i, const Vcpu::EptFault& f);
  Fetch& start_fetch(uint64_t pfn, Tick now, HostMemory::FaultIn& fi);
  void fetch_done(Fetch& f);
  void evict_due();
  void unmap_pages(const std::vector<uint64_t>& pfns, Tick at, unsigned vcpu, const char* why);
  // The LAPIC of vCPU i may have been software-enabled by a register write (KVM's
  // apic_set_spiv raises KVM_REQ_APF_READY then, commit 2f15d027c05f).
  void note_lapic_enable(unsigned i, bool was_enabled);

  // LAPIC glue (platform_apic.cpp).
  void attach_lapic(unsigned i);
  void send_ipi(unsigned src, const IpiRequest& req);
  void post_ipi(unsigned src, const IpiRequest& req, bool kick);
  std::vector<unsigned> ipi_receivers(const IpiRequest& req) const;
  void deliver_ipi(IpiInFlight& f);
  void wake(unsigned i, Tick at);
  void deliver_nmi(unsigned i);
  bool may_observe_time(unsigned i);
  // The running vCPU must stop and let the scheduler look again (a new event may now be
  // due before its deadline, or a vCPU changed state).
  void reschedule_if_needed();

  // Scheduler order (tools/platform/README.md §4.1): among runnable vCPUs the smallest effective
  // time runs next, ties to the lowest index. A tournament tree keeps that minimum: leaf i
  // holds vCPU i's key (time, index), or kNotRunnable; each inner node the smaller of its
  // children, so the pick is the root and one vCPU's change costs O(log n). Every change
  // of a vCPU's state, cycles (other than inside its own Vcpu::run) or reservation is
  // followed by sched_update(i); the running vCPU's leaf is refreshed when run() returns.
  struct SchedKey {
    uint64_t time;
    uint32_t index;
    bool operator<(const SchedKey& o) const { return time != o.time ? time < o.time : index < o.index; }
  };
  static constexpr SchedKey kNotRunnable{UINT64_MAX, UINT32_MAX};
  void sched_update(unsigned i);
  void set_state(unsigned i, VState st) {
    m_state[i] = st;
    sched_update(i);
  }
  // Smallest key among runnable vCPUs other than `i` (kNotRunnable if none): O(log n).
  SchedKey sched_min_excluding(unsigned i) const;
  void sched_check() const;  // debug builds: the tree agrees with a full scan

  // Scheduler helpers (platform.cpp).
  bool enter_host_window(unsigned i);
  inline void load_if_put(unsigned i);
  void host_wake(unsigned i, Tick at);  // a descheduled vCPU's thread gets its pCPU back
  // KVM_HC_SCHED_YIELD / the yield after KVM_HC_KICK_CPU: kvm_vcpu_yield_to(target).
  void directed_yield(unsigned src, unsigned target, Tick at);
  // The vCPU whose LAPIC answers to physical APIC ID `id` (KVM's phys_map), if any.
  std::optional<unsigned> vcpu_by_apic_id(uint32_t id) const;
  // KVM_HC_KICK_CPU arrived (APIC_DM_REMRD): pv_unhalted, then the directed yield.
  void deliver_kick(IpiInFlight& f);
  void hc_kick_one(unsigned src, unsigned target);
  void pause_step();  // host.pause: the VMM resumes the VM and issues KVM_KVMCLOCK_CTRL
  void add_pause(Tick from, Tick to);
  void fire_events(Tick t);
  bool anything_can_wake() const;
  bool pic_reaches_bsp() const;  // KVM's kvm_apic_accept_pic_intr for vCPU 0
  void report_no_runnable(bool waiting_past_limit);
  bool drive();  // the scheduler loop: true when m_stop_point is reached, false at the end

  // Schedule: host actions at guest points (platform_schedule.cpp, scenarios/README.md
  // "schedule"). Each entry is armed once and fires once.
  struct Armed {
    ScheduleEntry entry;
    uint64_t rip = 0;       // Rip points: the address, symbols resolved
    std::string text;       // "v0.insn=1200: preempt v1 50us", for the trace
    uint64_t hits = 0;      // Rip points: times the vCPU reached it so far
    bool done = false;
  };
  void arm_schedule();
  bool fire_insn_points(unsigned i);  // points of vCPU i at its current instruction count
  bool fire_rip_points(unsigned i);   // after a breakpoint stop of vCPU i
  uint64_t insn_point_room(unsigned i) const;  // instructions before its next insn point
  void schedule_time_points();
  void time_points_due();
  void fire(Armed& a, unsigned vcpu, Tick at);
  void update_breakpoints(unsigned i);
  Fetch* fetch_for(const HostAction& a);
  bool at_stop_point(int pick, uint64_t budget, Tick g) const;
  unsigned snapshot_level(const Snapshot& s) const;
  // One scheduling step's run of a vCPU, which a debugger may pause at a breakpoint-style
  // boundary and resume later (drive()).
  struct StepRun {
    unsigned i = 0;
    uint64_t budget = 0;
    uint64_t used = 0;
    Cycles deadline{};
    Budget mode = Budget::Exact;
    uint64_t stop_at = UINT64_MAX;
    Vcpu::RunResult res;
    bool asked = false;  // the observer has seen this boundary
  };
  bool continue_step(StepRun& c);  // false: paused (m_paused holds it)
  void end_step(StepRun& c);
  struct WatchRelay;
  struct TraceRing;
  std::unique_ptr<TraceRing> m_trace_ring;
  DebugObserver* m_debug = nullptr;
  std::unique_ptr<WatchRelay> m_watch_relay;
  std::vector<uint64_t> m_debug_bps;
  std::vector<uint8_t> m_step_mode;  // per vCPU
  std::optional<StepRun> m_paused;
  bool m_debug_break = false;
  uint64_t m_alarm = UINT64_MAX;
  DebugStop m_drive_stop = DebugStop::Ended;
  int m_ctx_vcpu = -1;  // the vCPU the platform acts for (its step: entry, run, exit)
  RunReport finish();
  void stop_run(RunStop why, unsigned who, std::string detail);

  const Scenario m_scenario;
  GuestMemory m_mem;
  Tracer m_tracer;
  PioBus m_bus;
  DebugCon m_console;
  ExitPorts m_exit;
  MarkerPort m_marker;  // port 0x4f0: guest markers (devices/marker.h)
  // The 8259A pair delivers to vCPU 0's LINT0 (ExtINT, Platform::attach_lapic) and the PIT
  // drives its IRQ 0 (devices/pic8259.h, devices/pit8254.h).
  Pic8259Pair m_pic;
  Pit8254 m_pit;
  // The ports kvm-unit-tests expects of QEMU's pc machine (scenarios/guest/boot.md §4).
  Uart16550 m_uart;         // 0x3f8: output joins m_console's stream
  FwCfg m_fw_cfg;           // 0x510/0x511
  // 0xe0-0xe7, 0x2000-0x2017: lines 0-15 are the ISA IRQs of the 8259 pair (there is no
  // IOAPIC); the others are only recorded.
  PcTestDev m_testdev{[this](unsigned line, bool level) {
    if (line < 16) m_pic.set_irq(line, level);
  }};
  PowerOffPort m_poweroff;  // 0x8900 "Shutdown"
  EventQueue m_events;
  Hypervisor m_hv;     // every PV feature (pvmsr/hypervisor.h)
  CpuidTable m_cpuid;  // architectural leaves + the hypervisor's KVM leaves
  HostModel m_host;
  HostMemory m_host_mem;
  std::map<uint64_t, Fetch*> m_fetches;              // fetches in flight, by pfn
  std::vector<std::unique_ptr<Fetch>> m_fetch_pool;  // owned fetch events (reused)
  std::vector<Fetch*> m_fetch_free;
  size_t m_next_eviction = 0;  // index into m_host_mem.evictions()
  std::unique_ptr<MemberEvent<&Platform::evict_due>> m_evict_event;
  std::unique_ptr<MemberEvent<&Platform::pause_step>> m_pause_event;
  bool m_pause_resuming = false;  // the pause event's next firing is a pause's end
  LoadedImage m_image;
  std::vector<std::unique_ptr<Vcpu>> m_vcpus;
  std::vector<std::unique_ptr<Cpu>> m_cpus;  // per-vCPU glue: LAPIC, sink, host state
  std::vector<VState> m_state;
  std::vector<SchedKey> m_sched;  // tournament tree, root at 1, leaves at m_sched_leaves + i
  unsigned m_sched_leaves = 1;    // power of two >= vCPU count
  std::vector<std::unique_ptr<IpiInFlight>> m_ipi_pool;  // owned IPI events (reused)
  std::vector<IpiInFlight*> m_ipi_free;
  unsigned m_ipis_in_flight = 0;
  int m_running = -1;            // vCPU inside Vcpu::run(), or -1
  Tick m_run_deadline{};         // its deadline
  bool m_stopped = false;        // the run is over (stop_run called)
  bool m_firing = false;         // inside fire_events(m_fire_time)
  Tick m_fire_time{};
  RunReport m_report;
  bool m_ran = false;
  uint64_t m_total = 0;  // instructions retired by all vCPUs
  bool m_trace_pins = true;  // PlatformOptions::trace_pins
  std::optional<StopPoint> m_stop_point;  // run_to's target while it runs
  std::vector<Armed> m_armed;
  bool m_has_insn_points = false;
  std::vector<uint8_t> m_has_rip_points;  // per vCPU
  int m_run_first = -1;  // `run vN`: the vCPU that runs whenever it can (-1: default order)
  // Anything rare in effect (a stop point, instruction points, `run vN`): drive() looks at
  // them only then, since at quantum 1 its loop runs once per instruction.
  bool m_extras = false;
  void update_extras() {
    m_extras = m_stop_point.has_value() || m_has_insn_points || m_run_first >= 0 || m_debug_break ||
               m_alarm != UINT64_MAX;
  }
  std::unique_ptr<MemberEvent<&Platform::time_points_due>> m_point_event;
  // Snapshot bookkeeping: m_snap_ids[k] is the snapshot that owns GuestMemory level k + 1.
  std::vector<uint64_t> m_snap_ids;
  uint64_t m_next_snap_id = 1;

  // Trace observers (trace_check.h and the caps, platform.cpp).
  struct TraceCap;
  struct TraceCopy;
  std::unique_ptr<TraceCap> m_trace_cap;
  std::unique_ptr<TraceCopy> m_golden_copy;
  std::unique_ptr<TraceExpectChecker> m_trace_check;
  std::unique_ptr<GoldenChecker> m_golden;
};

// "FILE: /machine/ram_mib: ..." for a host that refused guest RAM's address space.
std::string ram_reserve_message(const Scenario& s, const std::exception& e);

// Runs a scenario from file to report (the CLI's `run` and the tests use it).
RunReport run_scenario(const Scenario& s, const PlatformOptions& opts = {});

}  // namespace pvsim
