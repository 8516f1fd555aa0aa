// core/trace.h — the canonical trace (tools/platform/README.md §7).
//
// One line per event in the shape of `trace-cmd report`:
//   CPU 0/KVM-0 [000] 0.000012345: kvm_msr: msr_write 4b564d02 = 0x1
// comm "CPU <i>/KVM" and pid <i> like a QEMU vCPU thread, the [cpu] column is the vCPU
// index (not a host CPU), the timestamp is virtual time in seconds with 9 decimals.
// Event names, field names and printed text follow KVM's tracepoints (newest printk
// shape, arch/x86/kvm/trace.h of Linux 6.x). Events KVM has no tracepoint for use a
// `pvsim_` prefix so nobody mistakes them for upstream ones.
//
// Each event is described once, in the event table (core/trace_event.h,
// core/trace_events.cpp): fields in KVM's order and types and KVM's print format, which a
// small compiled renderer evaluates into the text. The typed methods below only pack their
// arguments in table order for emit_event().
//
// The canonical text is always produced (events are VM exits, not per instruction) and
// hashed with XXH3-64 as it goes. Observers see every line; sinks (TraceSink) get records
// (description, values, line): the text and JSON Lines outputs are sinks, as are trace.dat,
// Perfetto and the HTML timeline. Sinks see each event once across snapshot restores; an
// event filter (--events) and time ordering (--time-order) apply to sinks, never to the
// hash or observers (tools/platform/README.md §7).
#pragma once
#include <cstdint>
#include <deque>
#include <initializer_list>
#include <iosfwd>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/trace_event.h"
#include "core/types.h"

namespace pvsim {

// VMX basic exit reasons (SDM Vol. 3C Appendix C), printed by name as KVM does.
enum class VmxExitReason : uint32_t {
  ExceptionNmi = 0,
  ExternalInterrupt = 1,
  TripleFault = 2,
  InitSignal = 3,
  Sipi = 4,
  InterruptWindow = 7,
  NmiWindow = 8,
  Cpuid = 10,
  Hlt = 12,
  Invlpg = 14,
  Rdtsc = 16,
  Vmcall = 18,
  CrAccess = 28,
  IoInstruction = 30,
  MsrRead = 31,
  MsrWrite = 32,
  PauseInstruction = 40,
  ApicAccess = 44,
  EptViolation = 48,
  Rdtscp = 51,
};
const char* vmx_exit_reason_name(VmxExitReason r);  // e.g. "MSR_WRITE", "IO_INSTRUCTION"

// One named field of a free-form line (Tracer::emit), for its JSON Lines form.
struct TraceField {
  enum class Kind : uint8_t { U64, I64, Bool, Str };
  const char* name;
  Kind kind;
  uint64_t u = 0;
  std::string_view s = {};
  static TraceField u64(const char* n, uint64_t v) { return {n, Kind::U64, v, {}}; }
  static TraceField i64(const char* n, int64_t v) { return {n, Kind::I64, static_cast<uint64_t>(v), {}}; }
  static TraceField boolean(const char* n, bool v) { return {n, Kind::Bool, v ? 1u : 0u, {}}; }
  static TraceField str(const char* n, std::string_view v) { return {n, Kind::Str, 0, v}; }
};

// Sees every canonical line as it is produced (expectations, golden comparison, size caps),
// so nothing needs the whole trace in memory. `line` ends in '\n'; line[body..] is the text
// from the event name on ("kvm_msr: msr_write ..."). Called in trace order, for every event
// (event filters and time ordering apply to sinks only), again after a snapshot restore.
class TraceObserver {
 public:
  virtual void on_trace_line(unsigned vcpu, std::string_view line, size_t body) = 0;

 protected:
  ~TraceObserver() = default;
};

// The text form as a sink: each record's canonical line, as is.
class TraceTextSink final : public TraceSink {
 public:
  explicit TraceTextSink(std::ostream* os = nullptr) : m_os(os) {}
  void set_stream(std::ostream* os) { m_os = os; }
  std::ostream* stream() const { return m_os; }
  void on_event(const TraceRecord& r) override;

 private:
  std::ostream* m_os;
};

// The JSON Lines form as a sink: one object per record (trace_render_json), '\n' after each.
class TraceJsonlSink final : public TraceSink {
 public:
  explicit TraceJsonlSink(std::ostream* os = nullptr) : m_os(os) {}
  void set_stream(std::ostream* os) { m_os = os; }
  std::ostream* stream() const { return m_os; }
  void on_event(const TraceRecord& r) override;

 private:
  std::ostream* m_os;
  std::string m_buf;
};

// Passes records on to `next` sorted by virtual time, ties in emission order (--time-order).
// Records are kept until on_finish: a vCPU's events can be stamped before events already
// emitted for another vCPU (each vCPU runs ahead in its own quantum), and nothing in the
// trace bounds how far back the next one may lie. Memory: each record's line and field
// values are copied, about 360 bytes per event (three to four times the text's size).
class TraceTimeOrderSink final : public TraceSink {
 public:
  explicit TraceTimeOrderSink(std::vector<TraceSink*> next) : m_next(std::move(next)) {}
  void on_event(const TraceRecord& r) override;
  void on_finish() override;  // sorts, passes every record on, then calls on_finish of each next
  size_t buffered() const { return m_recs.size(); }

 private:
  struct Rec {
    uint64_t index, ts;
    unsigned vcpu;
    const TraceEventDesc* desc;
    uint32_t values;  // first of desc->fields.size() entries in m_values
    size_t body;
    std::string line;
  };
  std::vector<TraceSink*> m_next;
  std::vector<Rec> m_recs;
  std::vector<TraceValue> m_values;    // strings point into m_strings
  std::deque<std::string> m_strings;  // stable addresses
};

class Tracer {
 public:
  Tracer();
  ~Tracer();
  Tracer(const Tracer&) = delete;
  Tracer& operator=(const Tracer&) = delete;

  // The text and JSON Lines outputs (tools/platform/README.md §7). Each is a sink that the
  // event filter applies to; pointing one at a new stream (or nullptr) makes it a new sink,
  // which sees events from the next one on, including events replayed after a restore.
  void set_text_output(std::ostream* os);
  void set_jsonl_output(std::ostream* os);
  // More sinks (trace.dat, Perfetto, the HTML timeline). A filtered sink sees only the
  // events the filter selects. Every sink sees each event once, in emission order: after a
  // restore, the events a sink was already given are not given again (a re-execution is
  // the same run: gdb's reverse execution goes back and forth over it). add_sink again
  // (after remove_sink) to see the events from here on instead.
  void add_sink(TraceSink* s, bool filtered);
  void remove_sink(TraceSink* s);
  // --events: one flag per table event (parse_trace_event_filter); empty selects all.
  void set_event_filter(std::vector<bool> on);
  // --time-order: the text and JSON Lines outputs are sorted by virtual time at finish()
  // (TraceTimeOrderSink; other sinks sort on their own if they need to).
  void set_time_order(bool on);
  // The run has ended: on_finish of every sink, once. pvsim_stop, the run's last event
  // (Platform::finish emits it), calls it.
  void finish();

  uint64_t hash() const;  // XXH3-64 of the canonical text emitted so far
  uint64_t event_count() const { return m_count; }
  uint64_t text_bytes() const { return m_bytes; }  // canonical text emitted so far
  void add_observer(TraceObserver* o) { m_observers.push_back(o); }

  // Snapshots (tools/platform/README.md "Snapshots"): the hash state and the counters.
  // Outputs and observers are the owner's: text already written to a stream stays written.
  struct Snapshot {
    std::shared_ptr<const void> hash;  // an XXH3 state copy (opaque here)
    uint64_t count = 0;
    uint64_t bytes = 0;
  };
  Snapshot save() const;
  void restore(const Snapshot& s);

  // One event of the table (core/trace_event.h): `values` one per field, in table order.
  // Every typed method below ends here.
  void emit_event(uint16_t id, Tick ts, unsigned vcpu, std::span<const TraceValue> values);

  // A free-form line no table event describes, for tests of the line consumers: hashed,
  // counted, seen by observers and written to the text and JSON Lines streams (`fields`
  // there), unfiltered, unsorted; other sinks do not see it.
  void emit(Tick ts, unsigned vcpu, std::string_view event, std::string_view text,
            std::initializer_list<TraceField> fields);

  // --- KVM events (arch/x86/kvm/trace.h) ---
  void kvm_exit(Tick ts, unsigned vcpu, VmxExitReason reason, uint64_t rip, uint64_t info1,
                uint64_t info2, uint32_t intr_info, uint32_t error_code);
  void kvm_entry(Tick ts, unsigned vcpu, uint64_t rip);
  void kvm_msr(Tick ts, unsigned vcpu, bool write, uint32_t ecx, uint64_t data, bool exception);
  void kvm_cpuid(Tick ts, unsigned vcpu, uint32_t function, uint32_t index, uint64_t rax,
                 uint64_t rbx, uint64_t rcx, uint64_t rdx, bool found, bool used_max_basic);
  void kvm_pio(Tick ts, unsigned vcpu, bool write, uint16_t port, unsigned size, unsigned count,
               uint32_t val);
  void kvm_inj_exception(Tick ts, unsigned vcpu, uint8_t vector, bool has_error,
                         uint32_t error_code, bool reinjected);
  void kvm_page_fault(Tick ts, unsigned vcpu, uint64_t rip, uint64_t address, uint64_t error_code);
  void kvm_hypercall(Tick ts, unsigned vcpu, uint64_t nr, uint64_t a0, uint64_t a1, uint64_t a2,
                     uint64_t a3);
  // LAPIC register access; `reg` is the xAPIC offset (x2APIC MSR 0x800+n is offset n<<4).
  void kvm_apic(Tick ts, unsigned vcpu, bool write, uint32_t reg, uint64_t val);
  // An ICR write (sender's vCPU); icr_low as written, dest_id the destination field.
  void kvm_apic_ipi(Tick ts, unsigned vcpu, uint32_t icr_low, uint32_t dest_id);
  // An interrupt accepted into a LAPIC: dm = delivery mode << 8 (KVM's encoding), tm 0 edge.
  void kvm_apic_accept_irq(Tick ts, unsigned vcpu, uint32_t apicid, uint16_t dm, uint16_t tm,
                           uint8_t vec);
  void kvm_eoi(Tick ts, unsigned vcpu, uint32_t apicid, int vector);
  // An external interrupt injected at entry (soft = INTn, never set by pvsim).
  void kvm_inj_virq(Tick ts, unsigned vcpu, unsigned vector, bool soft, bool reinjected);
  void kvm_pvclock_update(Tick ts, unsigned vcpu, uint32_t version, uint64_t tsc_timestamp,
                          uint64_t system_time, uint32_t tsc_to_system_mul, int8_t tsc_shift,
                          uint8_t flags);
  // record_steal_time looked at `preempted` (PV TLB flush offered): did it flush?
  void kvm_pv_tlb_flush(Tick ts, unsigned vcpu, bool need_flush_tlb);
  // KVM performed an EOI on the guest's behalf because it cleared the PV EOI bit.
  void kvm_pv_eoi(Tick ts, unsigned vcpu, uint32_t apicid, int vector);

  // --- async page faults (include/trace/events/kvm.h, pvmsr/README.md §5.6) ---
  // `gva` is what KVM passes: the faulting GPA under EPT (cr2_or_gpa).
  void kvm_try_async_get_page(Tick ts, unsigned vcpu, uint64_t gva, uint64_t gfn);
  // A fault on a gfn this vCPU already waits for. Same event class; the 2.6.38-3.x code
  // the orig profile follows called it kvm_async_pf_doublefault, which that profile prints.
  void kvm_async_pf_repeated_fault(Tick ts, unsigned vcpu, uint64_t gva, uint64_t gfn);
  void kvm_async_pf_doublefault(Tick ts, unsigned vcpu, uint64_t gva, uint64_t gfn);
  void kvm_async_pf_not_present(Tick ts, unsigned vcpu, uint64_t token, uint64_t gva);
  void kvm_async_pf_ready(Tick ts, unsigned vcpu, uint64_t token, uint64_t gva);
  // The host fetch finished; `address` is the host virtual address of the page.
  void kvm_async_pf_completed(Tick ts, unsigned vcpu, uint64_t address, uint64_t gva);

  // --- pvsim events (no upstream equivalent) ---
  // A guest-internal exception delivered through the guest IDT (no VM exit on real KVM).
  void pvsim_exception(Tick ts, unsigned vcpu, uint8_t vector, bool has_error, uint32_t error_code,
                       uint64_t rip, uint64_t cr2);
  // The VM or a vCPU stopped: reason is a short word (exit, finished, shutdown, deadlock,
  // limit, unhandled_io), detail a human-readable explanation. The run's last event: it
  // finishes the sinks (finish()).
  void pvsim_stop(Tick ts, unsigned vcpu, std::string_view reason, std::string_view detail);
  // An NMI injected into the vCPU (KVM has no tracepoint for NMI injection).
  void pvsim_inj_nmi(Tick ts, unsigned vcpu);
  // vCPU run-state changes that KVM does not trace: "wait-for-SIPI (INIT)", host
  // scheduler decisions ("descheduled from pcpu 1 until 0.005000000 (preempt window)"),
  // migrations. `what` is a short word (init, sipi, sched_out, sched_in, migrate).
  void pvsim_vcpu(Tick ts, unsigned vcpu, std::string_view what, std::string_view detail);
  // Async-PF state changes KVM does not trace: a synthetic halt beginning ("halt"), a
  // page-ready held back ("held"), work dropped by a disable or reset ("dropped"), a
  // wake-all queued ("wake_all"). Printed like pvsim_vcpu: "<what>: <detail>".
  void pvsim_apf(Tick ts, unsigned vcpu, std::string_view what, std::string_view detail);
  // The host side of guest memory (tools/platform/README.md §5.1): "fetch", "fetched",
  // "stall", "stall_end", "evict". Printed like pvsim_vcpu.
  void pvsim_host(Tick ts, unsigned vcpu, std::string_view what, std::string_view detail);
  // Host scheduler (tools/platform/README.md §5): the host took vCPU `vcpu`'s pCPU away
  // (`why`: "preempted", "paused", or "woken, waits for a pCPU" for a halted vCPU that woke
  // while another thread held its pCPU) until `until`; and it got a pCPU back, with its
  // thread's cumulative run delay (what steal time reports) at that instant.
  void pvsim_sched_out(Tick ts, unsigned vcpu, unsigned pcpu, uint64_t rip, std::string_view why, Tick until);
  void pvsim_sched_in(Tick ts, unsigned vcpu, unsigned pcpu, uint64_t rip, uint64_t run_delay_ns);
  // Steal-time record updates and `preempted` writes KVM does not trace: "update",
  // "preempted", "disabled". Printed like pvsim_vcpu.
  void pvsim_steal(Tick ts, unsigned vcpu, std::string_view what, std::string_view detail);
  // PV EOI arming and disarming (KVM does not trace them): "arm", "disarm". Printed like
  // pvsim_vcpu.
  void pvsim_pv_eoi(Tick ts, unsigned vcpu, std::string_view what, std::string_view detail);
  // A `schedule` entry fired (scenarios/README.md "schedule"): its guest point as written
  // canonically ("v0.insn=1200") and what the action did ("preempt v1 50us: ..."). Printed
  // like pvsim_vcpu.
  void pvsim_action(Tick ts, unsigned vcpu, std::string_view point, std::string_view action);
  // A guest marker (devices/marker.h): the text a guest wrote to the marker port, printed
  // as it is.
  void pvsim_marker(Tick ts, unsigned vcpu, std::string_view text);
  // Virtual time as the trace's timestamp column prints it: seconds with 9 decimals.
  static std::string seconds(Tick t);

 private:
  void what_detail(Tick ts, unsigned vcpu, uint16_t id, std::string_view what, std::string_view detail);
  void rewire();
  struct Slot {
    TraceSink* sink;
    bool filtered;
    uint64_t mark;  // events below this index were given to the sink already
  };
  struct HashState;
  HashState* m_hash;
  TraceTextSink m_text;
  TraceJsonlSink m_jsonl;
  std::unique_ptr<TraceTimeOrderSink> m_order;
  bool m_time_order = false;
  bool m_finished = false;
  std::vector<Slot> m_user;   // add_sink's, in order
  std::vector<Slot> m_slots;  // what emit_event feeds: the built-in outputs, then m_user
  std::vector<bool> m_filter;  // empty: everything
  uint64_t m_count = 0;
  uint64_t m_bytes = 0;
  std::vector<TraceObserver*> m_observers;
  std::string m_line;  // reused buffer
  std::string m_json;  // emit()'s JSON buffer
};

}  // namespace pvsim
