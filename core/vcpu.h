// core/vcpu.h — one virtual CPU: architectural state, MSRs, and the run loop.
//
// PUBLIC CONTRACT: the platform (tools/platform), the tests and later modules rely on
// every declaration in the public section below; extend it, do not change it.
// The private section belongs to the CPU core implementation (core/cpu/).
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/env.h"
#include "core/guest_memory.h"
#include "core/msr_registry.h"
#include "core/trace.h"
#include "core/types.h"

namespace pvsim {

namespace cpu {
class Core;
struct CoreSnapshot;
}

// Segment registers in SDM encoding order (Vol. 2A §3.1.1.3, Sreg field).
enum class SegReg : uint8_t { ES = 0, CS = 1, SS = 2, DS = 3, FS = 4, GS = 5 };

// A hidden segment-descriptor cache. attrs uses the VMX access-rights layout
// (SDM Vol. 3C §24.4.1): type[3:0], S[4], DPL[6:5], P[7], AVL[12], L[13], D/B[14], G[15].
struct SegmentCache {
  uint16_t selector = 0;
  uint64_t base = 0;
  uint32_t limit = 0;
  uint16_t attrs = 0;
};

struct DescriptorTable {
  uint64_t base = 0;
  uint16_t limit = 0;
};

// How run() treats its instruction budget.
enum class Budget : uint8_t {
  // Exactly max_insns steps unless something stops the vCPU first (tests, single-step,
  // the scenario's max_instructions).
  Exact,
  // A scheduler slice: at most max_insns steps, ending at the last decoded-block boundary
  // that fits (a block that would cross the budget is left for the next slice), so a
  // slice never ends inside a block with the per-instruction path. When not even the
  // first block fits (a budget shorter than a block), it runs up to the budget exactly.
  // A REP string instruction whose elements alone pass what is left stops between two
  // elements at exactly the budget (core/README.md "REP string instructions").
  Slice,
};

enum class StopReason : uint8_t {
  None,             // still running
  InsnLimit,        // run(): max_insns executed (Budget::Slice: or the next block would pass it)
  Deadline,         // run(): local cycles reached the deadline
  Halted,           // HLT with nothing deliverable; the scheduler parks the vCPU
  VcpuFinished,     // the guest wrote port 0xf5 (this vCPU is done)
  VmExitRequested,  // the guest wrote port 0xf4 (the whole VM ends), or the platform asked
  Shutdown,         // triple fault (SDM Vol. 3A §6.15, #DF "Interrupt 8"): stop_detail() says why
  IoError,          // a port/MMIO access nothing claims, or a RAM hole: stop_detail() says which
  Breakpoint,       // run(): RIP is on an instruction set with Vcpu::set_breakpoints, not run yet
  Unsupported,      // the guest did something the core does not model (32-bit paging, ...):
                    // stop_detail() names it; the run ends (scenarios/README.md `unsupported`)
};

// An exception the hypervisor injects into the guest (kvm_queue_exception and friends):
// traced kvm_inj_exception at the entry, delivered through the guest's IDT. `cr2` is loaded
// into CR2 for a #PF.
struct GuestException {
  uint8_t vector = 0;
  bool has_error = false;
  uint32_t error = 0;
  uint64_t cr2 = 0;
};

// KVM's hypercall instructions (pvmsr/hypercalls.h): VMCALL (0F 01 C1, Intel) and VMMCALL
// (0F 01 D9, AMD).
enum class HypercallInsn : uint8_t { Vmcall, Vmmcall };
// What the hypervisor did with an executed VMCALL / VMMCALL (Vcpu::set_hypercall_handler).
enum class HypercallAction : uint8_t {
  Done,    // handled (the handler set RAX): RIP moves past the instruction
  Ud,      // #UD injected (kvm_queue_exception(UD_VECTOR)); RIP stays on the instruction
  Retry,   // the instruction was rewritten in guest memory: re-execute it (RIP unchanged)
  Inject,  // HypercallResult::exception injected (#GP(0), the #PF of the rewrite); RIP stays
};
struct HypercallResult {
  HypercallAction action = HypercallAction::Done;
  GuestException exception;  // Inject only
};

// Outcome of a host-side access to guest-linear memory (Vcpu::write_linear).
enum class LinearAccess : uint8_t {
  Ok,
  Fault,    // the guest page tables refuse it: the fault is what the guest must get
  Stopped,  // the vCPU stopped (a page table outside RAM): stop_detail() says why
};

struct VcpuConfig {
  unsigned index = 0;        // vCPU number (0 = BSP)
  unsigned count = 1;        // vCPUs in the VM
  uint64_t tsc_hz = 2'500'000'000;  // guest cycle = one TSC tick at this frequency
  uint64_t tsc_start = 0;    // TSC value at cycle 0
};

class Vcpu {
 public:
  Vcpu(const VcpuConfig& cfg, GuestMemory& mem, CpuEnv& env, Tracer& tracer);
  ~Vcpu();
  Vcpu(const Vcpu&) = delete;
  Vcpu& operator=(const Vcpu&) = delete;

  unsigned index() const { return m_cfg.index; }
  const VcpuConfig& config() const { return m_cfg; }
  MsrRegistry& msrs() { return m_msrs; }
  GuestMemory& memory() { return m_mem; }
  Tracer& tracer() { return m_tracer; }

  // --- architectural state (boot, tests, reports) ---
  // GPR numbering is the SDM's: 0 RAX, 1 RCX, 2 RDX, 3 RBX, 4 RSP, 5 RBP, 6 RSI, 7 RDI, 8-15 R8-R15.
  uint64_t gpr(unsigned r) const;
  void set_gpr(unsigned r, uint64_t v);
  uint64_t rip() const;
  void set_rip(uint64_t v);
  uint64_t rflags() const;        // materialised (bit 1 always set)
  void set_rflags(uint64_t v);
  uint64_t cr(unsigned n) const;  // n in {0,2,3,4,8}; CR8 through the CR8 hooks when set
  // Raw set (no checks); flushes the TLB as needed. CR8 (low 4 bits) goes through the
  // write hook when set and, like notify_interrupt(), makes the run loop poll again.
  void set_cr(unsigned n, uint64_t v);
  uint64_t efer() const;
  void set_efer(uint64_t v);
  // INIT (SDM Vol. 3A §9.1.1, Table 9-1; KVM's kvm_vcpu_reset with init_event): real mode
  // at F000:FFF0 (CS.base 0xffff0000), CR0 0x60000010, EFER 0, flat 64 KiB data segments,
  // GDTR/IDTR {0, 0xffff}, DR6/DR7 at their reset values, EDX 0x600; MSRs, the x87 state and
  // the LAPIC (LocalApic::init_reset) are not the core's business here.
  void reset_to_init();
  // A start-up IPI with `vector` to a vCPU waiting for one: real mode at CS = vector << 8,
  // CS.base = vector << 12, IP = 0 (SDM Vol. 3A §9.4.4.1). rip() is then vector << 12: outside
  // 64-bit mode rip() is the linear address CS.base + EIP (core/README.md "Legacy modes").
  void start_at_sipi(uint8_t vector);
  SegmentCache seg(SegReg s) const;
  void set_seg(SegReg s, const SegmentCache& c);
  SegmentCache tr() const;
  void set_tr(const SegmentCache& c);
  SegmentCache ldtr() const;
  void set_ldtr(const SegmentCache& c);
  DescriptorTable gdtr() const;
  void set_gdtr(const DescriptorTable& t);
  DescriptorTable idtr() const;
  void set_idtr(const DescriptorTable& t);
  unsigned cpl() const;

  // --- time ---
  Cycles cycles() const;          // guest cycles consumed (charged by the cost table) + idle
  Tick now() const { return Tick(cycles_to_ns(cycles().value(), m_cfg.tsc_hz)); }
  // Guest TSC: tsc_start + cycles, plus the adjustment made by guest writes to IA32_TSC.
  uint64_t tsc() const;
  uint64_t instructions() const;  // instructions retired
  void advance_to(Cycles c);      // let idle time pass (halted or descheduled); never backwards

  // --- running ---
  struct RunResult {
    StopReason reason = StopReason::None;
    uint64_t executed = 0;        // instructions retired in this call
  };
  // Runs until max_insns steps are used, local cycles reach `deadline`, or something
  // stops the vCPU (see StopReason). A step is one retired instruction or one exception
  // / interrupt delivery (which retires nothing), so InsnLimit may come back with
  // executed < max_insns; instructions() counts retired instructions only. Each element
  // of a REP string instruction is one instruction, and the run may stop between two
  // elements with RIP on the REP, which the next run() resumes (core/README.md "REP
  // string instructions").
  // `stop_at`: the run also stops (InsnLimit) at the boundary where instructions() reaches
  // it, without changing anything else: slice ends are still decided by max_insns and the
  // budget, so a run that would have ended before the point ends where it would have
  // (the platform's instruction points, scenarios/README.md "schedule").
  RunResult run(uint64_t max_insns, Cycles deadline, Budget budget = Budget::Exact,
                uint64_t stop_at = UINT64_MAX);
  // Steps of max_insns the last run() used: its `executed` plus the event deliveries. (Not a
  // RunResult field: 16 bytes come back in two registers, and the platform calls run()
  // once per quantum.)
  uint64_t last_run_steps() const;
  // Executes exactly one instruction (one REP element), or delivers one pending
  // exception; for tests.
  RunResult step() { return run(1, Cycles(~0ull)); }
  // Breakpoints on linear RIPs (core/README.md "Breakpoints"); an empty list removes them.
  // While any is set, run() returns StopReason::Breakpoint at every instruction boundary
  // where the instruction at one of them is about to execute — before it is fetched or
  // runs, after pending events were taken (the first instruction of a handler reached by
  // delivery counts) — and reports each boundary once: the next run() executes that
  // instruction without stopping there again. A REP string instruction resumed between
  // elements is not reached again (also not after an event taken between elements and its
  // IRET: RFLAGS.RF, SDM Vol. 3B §17.3.1.1). A run() that stops at a breakpoint and is
  // continued with the rest of its budget (max_insns - last_run_steps()), the same deadline
  // and mode, does exactly what one run() without the breakpoint would have done, slices
  // included. Unset, breakpoints cost one predictable branch per decoded block; set, blocks
  // are not chained. The list is part of the vCPU's snapshot.
  // `every_boundary`: every instruction boundary is reached as if it held a breakpoint (a
  // debugger's single step, with the same guarantee: stopping and continuing changes nothing).
  // Changing the list between a stop and the run() that continues it keeps that guarantee.
  void set_breakpoints(std::vector<uint64_t> rips, bool every_boundary = false);

  // --- snapshots (core/README.md "Snapshots") ---
  // Everything the vCPU carries from one run() to the next: registers, MSRs, cycles and
  // instruction count, pending events and exits, halt and shutdown state, breakpoints and
  // their marks, and the translations its TLB held. Not in it: guest RAM (GuestMemory's
  // undo log: roll memory back first, then restore the vCPU), the MSR registry (handlers
  // only) and the hooks. A snapshot is restored into the vCPU it was taken from, any
  // number of times; the next run() then does exactly what the vCPU did after the save.
  struct Snapshot {
    std::shared_ptr<const cpu::CoreSnapshot> core;  // immutable, so copies share it
  };
  Snapshot save() const;
  void restore(const Snapshot& s);
  // Devices call this from an I/O callback (exit ports); takes effect after the
  // current instruction completes.
  void request_stop(StopReason r);
  bool halted() const;
  void set_halted(bool h);
  // Human-readable explanation of the last Shutdown/IoError (e.g. the #GP → #DF →
  // triple fault chain with vectors, error codes and RIPs; or the unclaimed port).
  const std::string& stop_detail() const;
  // Register dump in the shape of QEMU's `-d cpu` (RAX=... RIP=... CR0=...).
  std::string dump_state() const;

  // --- hooks for later modules (cheap when unused) ---
  // Pending-interrupt hook: after notify_interrupt(), the run loop calls `poll` at the
  // next instruction boundary where RFLAGS.IF=1, no STI/MOV-SS shadow is active and no NMI
  // is deliverable (and to wake a HLT). `poll` returns the vector to deliver
  // (acknowledging it) or -1, which clears the notification until the next
  // notify_interrupt() or CR8 write. A delivered vector is traced as kvm_inj_virq.
  void set_interrupt_poll(std::function<int(Vcpu&)> poll);
  // Called right after an interrupt from the poll was injected (after its kvm_inj_virq line,
  // before it is delivered through the IDT): where KVM runs kvm_lapic_sync_to_vapic, which
  // arms PV EOI (pvmsr/README.md §7).
  void set_injection_hook(std::function<void(Vcpu&)> hook);
  void notify_interrupt();
  // Hypercall hook (pvmsr/hypercalls.h). The vendor's own instruction is a VM exit at every
  // CPL (VMCALL: SDM Vol. 3C §26.1.2); the other vendor's raises #UD, which KVM always
  // intercepts. With a handler, the
  // `native` instruction traces kvm_exit(VMCALL), the other one kvm_exit(EXCEPTION_NMI) with
  // #UD's interruption info (0x80000306, what handle_ud's exit shows), and then the handler
  // learns which one ran and says what happens (HypercallAction); the instruction's 1200
  // cycles (a VM-exit round trip) are charged either way, and a Retry counts as one
  // retired instruction, as KVM's emulator counts the instruction it emulated
  // (x86_emulate_instruction: kvm_pmu_instruction_retired). Without a
  // handler both raise a plain #UD in the guest (a bare vCPU with no hypervisor).
  void set_hypercall_handler(std::function<HypercallResult(Vcpu&, HypercallInsn)> handler,
                             HypercallInsn native = HypercallInsn::Vmcall);
  // Time-observation gate (tools/platform/README.md §4.4, causally monotonic clocks): before RDTSC,
  // RDTSCP or RDMSR of IA32_TSC (0x10) / IA32_TSC_DEADLINE (0x6e0) / the x2APIC current
  // count (0x839) executes, the core asks `gate`; when it returns false the instruction
  // does not execute (RIP stays on it, no cycles charged) and run() returns
  // StopReason::Deadline so the scheduler can run the vCPUs that are behind in virtual
  // time first.
  void set_time_gate(std::function<bool(Vcpu&)> gate);
  // MMIO reads observe time through the same rule: CpuEnv::mmio_read returns
  // IoStatus::Retry and the instruction is abandoned the same way (core/env.h).

  // NMI (SDM Vol. 3A §6.7.1, §6.8.1 Table 6-2). inject_nmi() latches one pending NMI
  // (another one while it is pending is lost: a single latch); callable while the vCPU is
  // not running (from an event). It is delivered at the next instruction boundary outside
  // an STI / MOV SS shadow, whatever RFLAGS.IF, before any maskable interrupt, through IDT
  // vector 2 as an external event (no error code), traced as pvsim_inj_nmi. Delivery
  // blocks further NMIs until the next IRET executes (even one that faults). A pending,
  // unblocked NMI ends HLT even with IF=0: run() on a halted vCPU delivers it.
  void inject_nmi();
  bool nmi_pending() const;
  bool nmi_blocked() const;
  // CR8 <-> LAPIC TPR (SDM Vol. 3A §10.8.6.1: CR8[3:0] = TPR[7:4]). When set, MOV from CR8
  // returns read(v) (low 4 bits) and MOV to CR8, after the reserved-bit #GP(0) check, calls
  // write(v, value) instead of storing; either way a CR8 write makes the run loop poll the
  // interrupt hook again at the next boundary (a lower TPR can unmask an interrupt).
  // Vcpu::cr(8) / set_cr(8) use the hooks too.
  void set_cr8_hooks(std::function<uint64_t(Vcpu&)> read,
                     std::function<void(Vcpu&, uint64_t)> write);

  // --- the hypervisor side (pvmsr/hypervisor.h) ---
  // Guest entry (KVM's vcpu_enter_guest): called at every VM entry the core makes after an
  // exit it traced (before kvm_inj_exception / kvm_entry of that entry), so requests raised
  // by an MSR write are serviced before the guest runs again, in KVM's trace order:
  // kvm_exit, kvm_msr, kvm_pvclock_update, kvm_entry. The platform also calls its
  // hypervisor before every run() (a vCPU that was not running re-enters the guest).
  void set_entry_hook(std::function<void(Vcpu&)> hook);
  // Guest exit: called at every VM exit the core traces, right after its kvm_exit line and
  // before the exit is handled (the exit's own events, e.g. kvm_msr, kvm_hypercall,
  // kvm_page_fault, come after): where KVM's vcpu_enter_guest calls
  // kvm_lapic_sync_from_vapic (the PV EOI read-back) after the guest has left. Unset, it
  // costs one predictable branch per exit.
  void set_exit_hook(std::function<void(Vcpu&)> hook);
  // The guest changed CR0.PG with MOV to CR0 (`paging_now` = the new PG): what KVM's
  // kvm_post_set_cr0 does about it (async page faults, pvmsr/README.md §5).
  void set_paging_hook(std::function<void(Vcpu&, bool paging_now)> hook);
  // EPT violations (core/README.md "EPT model and host memory"): the first access to a
  // guest-physical RAM page that is not mapped in the modelled EPT (GuestMemory::ept_mapped)
  // traces kvm_exit(EPT_VIOLATION) and kvm_page_fault, then asks the hook what the host
  // does. Without a hook every page is mapped at its first access.
  struct EptFault {
    Gpa gpa;
    uint64_t qualification = 0;    // SDM Vol. 3C Table 28-7 (bits 0-2 access, 7, 8)
    unsigned cpl = 0;
    bool interrupts_allowed = false;  // RFLAGS.IF = 1 and no STI / MOV SS shadow
    bool event_delivery = false;      // an implicit access while an event is being delivered
  };
  enum class EptAction : uint8_t {
    Map,              // the host maps the page; the access proceeds
    Stall,            // synchronous fault-in: stall_ns of the vCPU's time pass, then Map
    InjectPageFault,  // async PF "not present": #PF with error code 0 and CR2 = token is
                      // injected, the instruction does not execute (it is retried after IRET)
    Halt,             // synthetic halt: the instruction does not execute, the vCPU halts
                      // (Vcpu::halted()) with RIP on it until the platform wakes it
  };
  struct EptResult {
    EptAction action = EptAction::Map;
    uint64_t stall_ns = 0;  // Stall
    uint32_t token = 0;     // InjectPageFault
  };
  // Never InjectPageFault or Halt for an access with event_delivery set: KVM handles those
  // synchronously (kvm_can_do_async_pf is false while an event awaits re-injection).
  void set_ept_hook(std::function<EptResult(Vcpu&, const EptFault&)> hook);
  // Queues an exception the hypervisor injects (kvm_queue_exception / kvm_inject_page_fault):
  // traced kvm_inj_exception now, delivered at the next instruction boundary before any
  // interrupt, whatever RFLAGS.IF and the interrupt shadow; a HLT in progress ends. For a
  // #PF, `cr2` is loaded into CR2 at delivery.
  void inject_exception(uint8_t vector, bool has_error, uint32_t error, uint64_t cr2);
  // Drops every cached translation of this vCPU, global pages included, and the cached
  // host pointers that ride on them: what KVM's kvm_vcpu_flush_tlb_guest does for a PV TLB
  // flush request found in the steal-time record (pvmsr/README.md §6).
  void flush_tlb();
  // Drops only the read translations to these guest-physical pages (a debugger's read
  // watchpoint: the reads must take the slow path, GuestMemory::set_watches). A guest that
  // relied on a stale read translation of such a page would walk its page tables instead.
  void drop_read_translations(const std::vector<uint64_t>& pfns);
  // STI / MOV SS shadow in effect at the current instruction boundary.
  bool interrupt_shadow() const;
  // 64-bit mode: EFER.LMA and CS.L (KVM's is_64_bit_mode). Outside it KVM truncates
  // hypercall numbers, arguments and results to 32 bits.
  bool long_mode_64() const;
  // Writes `len` bytes at guest-linear address `la` as KVM's emulator writes guest memory
  // for an emulated instruction (emulator_write_emulated): through the guest page tables
  // for the current CPL (a user access at CPL 3), with write permission (CR0.WP for a
  // supervisor), setting A and D bits, one page at a time (a page is written before the
  // next one is translated, as emulator_read_write does). The host reads the page tables
  // through its own mappings: no EPT exit. Decoded code on the written pages dies
  // (GuestMemory::note_write). On Fault, `fault` is the exception for the guest (a #PF
  // with the walk's error code and CR2 = the failing address, or #GP(0) for a
  // non-canonical one) and nothing of the failing page was written. A target outside RAM
  // stops the vCPU (Stopped, IoError).
  LinearAccess write_linear(uint64_t la, const void* data, size_t len, GuestException& fault);
  // An exception is queued and not yet delivered (an injected one included): KVM's
  // kvm_event_needs_reinjection / kvm_is_exception_pending.
  bool exception_pending() const;

 private:
  friend class cpu::Core;
  VcpuConfig m_cfg;
  GuestMemory& m_mem;
  CpuEnv& m_env;
  Tracer& m_tracer;
  MsrRegistry m_msrs;
  // ---- CPU core implementation state below (core/cpu/) ----
  std::unique_ptr<cpu::Core> m_core;  // all architectural and run-loop state (core/cpu/core.h)
};

}  // namespace pvsim
