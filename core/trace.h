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
// The canonical text is always produced (events are VM exits, not per instruction) and
// hashed with XXH3-64 as it goes; text and JSON Lines copies go to optional streams.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <iosfwd>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

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

// One named field of an event, for the JSON Lines form.
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
// from the event name on ("kvm_msr: msr_write ..."). Called in trace order.
class TraceObserver {
 public:
  virtual void on_trace_line(unsigned vcpu, std::string_view line, size_t body) = 0;

 protected:
  ~TraceObserver() = default;
};

class Tracer {
 public:
  Tracer();
  ~Tracer();
  Tracer(const Tracer&) = delete;
  Tracer& operator=(const Tracer&) = delete;

  void set_text_output(std::ostream* os) { m_text = os; }
  void set_jsonl_output(std::ostream* os) { m_jsonl = os; }
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

  // Generic form: every typed method below ends here. `text` is the TP_printk part.
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
  // limit, unhandled_io), detail a human-readable explanation.
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
  // Virtual time as the trace's timestamp column prints it: seconds with 9 decimals.
  static std::string seconds(Tick t);

 private:
  void what_detail(Tick ts, unsigned vcpu, std::string_view event, std::string_view what, std::string_view detail);
  void async_get_page_class(Tick ts, unsigned vcpu, std::string_view event, uint64_t gva, uint64_t gfn);
  void async_pf_nopresent_ready(Tick ts, unsigned vcpu, std::string_view event, uint64_t token, uint64_t gva);
  struct HashState;
  HashState* m_hash;
  std::ostream* m_text = nullptr;
  std::ostream* m_jsonl = nullptr;
  uint64_t m_count = 0;
  uint64_t m_bytes = 0;
  std::vector<TraceObserver*> m_observers;
  std::string m_line;  // reused buffer
};

}  // namespace pvsim
