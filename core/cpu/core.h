// core/cpu/core.h — the CPU core behind pvsim::Vcpu: state, memory access, run loop.
//
// Index of the module (one concern per file):
//   core.h / core.cpp      state, register/memory helpers (inline fast paths), run loop,
//                          decoded-block cache, interrupt hook, HLT
//   decoder.{h,cpp}        opcodes.def-driven decoder; insn.h = pre-decoded instruction
//   mmu.cpp                4-level page walk, software TLB, slow memory paths, EPT model
//   exceptions.cpp         IDT delivery (#DF / triple fault), IRET/RETF/far JMP, segment loads
//   exec_alu.cpp           ALU, shifts, multiply/divide, bit operations
//   exec_move.cpp          MOV family, stack, string instructions, flag instructions
//   exec_branch.cpp        Jcc/JMP/CALL/RET/LOOP/INT
//   exec_system.cpp        CR/descriptor-table/MSR/CPUID/TSC/port I/O/HLT/SWAPGS ...
//   msrs.cpp               architectural MSRs registered in the vCPU's MsrRegistry
//   dump.cpp               QEMU `-d cpu` style register dump
//   breakpoints.cpp        host-side breakpoints on linear RIPs (the run loop's slow path)
//   snapshot.cpp           Vcpu::save / Vcpu::restore (CoreState, TLB translations)
//
// Faults are values: a helper that faults records it (raise()) and returns false; the
// handler returns false; the run loop delivers it through the IDT. No longjmp.
#pragma once
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/cpu/flags.h"
#include "core/cpu/insn.h"
#include "core/vcpu.h"

namespace pvsim::cpu {

// ---- cost model constants (documented in core/README.md "Cost model") ----
constexpr uint16_t kMemOperandCycles = 2;     // added to a form's cost when ModRM names memory
constexpr uint64_t kExceptionCycles = 50;     // delivering one event through the IDT
constexpr uint64_t kVmExitCycles = 1200;      // a VM exit + entry round trip (EPT violation)
constexpr uint64_t kStringElementCycles = 1;  // per element of a string instruction

// Guest physical-address width reported as MAXPHYADDR: bits above it in paging entries
// and CR3 are reserved (SDM Vol. 3A §4.5, Table 4-14 "M").
constexpr unsigned kMaxPhysAddrBits = 46;
constexpr uint64_t kPhysAddrMask = ((1ull << kMaxPhysAddrBits) - 1) & ~0xfffull;

// CR0 / CR4 / EFER bits used by the core.
namespace cr0 {
constexpr uint64_t PE = 1u << 0, MP = 1u << 1, EM = 1u << 2, TS = 1u << 3, ET = 1u << 4,
                   NE = 1u << 5, WP = 1u << 16, AM = 1u << 18, NW = 1u << 29, CD = 1u << 30,
                   PG = 1u << 31;
}
namespace cr4 {
constexpr uint64_t VME = 1u << 0, PVI = 1u << 1, TSD = 1u << 2, DE = 1u << 3, PSE = 1u << 4,
                   PAE = 1u << 5, MCE = 1u << 6, PGE = 1u << 7, PCE = 1u << 8, OSFXSR = 1u << 9,
                   OSXMMEXCPT = 1u << 10;
// CR4 bits this core accepts; the rest are reserved for MOV CR4 (#GP), because the
// features behind them (PCID, SMEP, SMAP, LA57, XSAVE, ...) are not implemented.
constexpr uint64_t kSupported =
    VME | PVI | TSD | DE | PSE | PAE | MCE | PGE | PCE | OSFXSR | OSXMMEXCPT;
}  // namespace cr4
namespace efer {
constexpr uint64_t SCE = 1u << 0, LME = 1u << 8, LMA = 1u << 10, NXE = 1u << 11;
}

// Exception vectors (SDM Vol. 3A Table 6-1).
enum Vector : uint8_t {
  kDE = 0,
  kDB = 1,
  kNMI = 2,
  kBP = 3,
  kOF = 4,
  kBR = 5,
  kUD = 6,
  kNM = 7,
  kDF = 8,
  kTS = 10,
  kNP = 11,
  kSS = 12,
  kGP = 13,
  kPF = 14,
  kMF = 16,
  kAC = 17,
  kMC = 18,
  kXM = 19,
};

// Contributory exceptions (SDM Vol. 3A Table 6-4): two in a row, or a #PF followed by one
// of them or by another #PF, make a #DF (Table 6-5).
inline bool contributory(uint8_t v) {
  return v == kDE || v == kTS || v == kNP || v == kSS || v == kGP;
}
// Table 6-5: `second` raised while `first` is being delivered (or is still pending) is a #DF.
inline bool makes_double_fault(uint8_t first, uint8_t second) {
  return (contributory(first) && contributory(second)) || (first == kPF && (contributory(second) || second == kPF));
}

// #PF error-code bits (SDM Vol. 3A §4.7, Figure 4-12).
namespace pfec {
constexpr uint32_t P = 1, W = 2, U = 4, RSVD = 8, ID = 16;
}

enum class Acc : uint8_t { Read = 0, Write = 1, Fetch = 2 };

struct Fault {
  uint8_t vector = 0;
  bool has_error = false;
  uint32_t error = 0;
  uint64_t cr2 = 0;       // for #PF
  bool injected = false;  // injected by the hypervisor (kvm_inj_exception already traced)
};

// Software TLB entry: one virtual page -> host pointer of the guest-physical RAM page.
// 16 bytes, so a hit costs one cache line; the guest-physical address is host - RAM base
// and the G bit lives in Core::tlb_glob (only flushes need it).
struct TlbEntry {
  uint64_t tag;   // tlb_key(): page number | flush salt; 0 = empty (the salt is never 0)
  uint8_t* host;  // host address of the 4 KiB guest page
};
// 32768 entries per TLB map 128 MiB: the benchmarks' 32 and 64 MiB working sets fit, so
// a sweep over them does not walk the guest page tables on every page.
constexpr unsigned kTlbBits = 15;
constexpr unsigned kTlbSize = 1u << kTlbBits;
constexpr uint64_t kTlbMask = kTlbSize - 1;

constexpr unsigned kBlockMaxInsns = 32;
constexpr unsigned kBlockCacheBits = 12;
// A decoded block: straight-line instructions from one guest-physical page, followed by a
// sentinel whose threaded handler ends whole-block execution (Core::finish_block).
struct Block {
  uint64_t tag;    // start GPA + 1; 0 = empty (calloc'd cache starts empty)
  uint32_t gen;    // GuestMemory::code_generation of the page when decoded
  uint32_t count;  // instructions, not counting the sentinel
  uint32_t total;  // static cycles of all instructions (= insns[count - 1].cum)
  // Successor cache for chaining (fast.cpp, chain()): taken / fall-through target block on
  // the same page; validated by tag and generation before every use.
  mutable const Block* link[2];
  Insn insns[kBlockMaxInsns + 1];
};

// Direct-mapped block cache index: multiplicative hash of the start GPA.
PVSIM_ALWAYS_INLINE unsigned block_slot(uint64_t gpa) {
  return static_cast<unsigned>((gpa * 0x9E3779B97F4A7C15ull) >> (64 - kBlockCacheBits));
}

// Event classes for delivery through the IDT.
enum class EventKind : uint8_t { Exception, SoftInt, External };

PVSIM_ALWAYS_INLINE uint64_t load_le(const uint8_t* p, unsigned size) {
  switch (size) {
    case 1:
      return *p;
    case 2: {
      uint16_t v;
      std::memcpy(&v, p, 2);
      return v;
    }
    case 4: {
      uint32_t v;
      std::memcpy(&v, p, 4);
      return v;
    }
    default: {
      uint64_t v;
      std::memcpy(&v, p, 8);
      return v;
    }
  }
}
PVSIM_ALWAYS_INLINE void store_le(uint8_t* p, unsigned size, uint64_t v) {
  switch (size) {
    case 1:
      *p = static_cast<uint8_t>(v);
      break;
    case 2: {
      uint16_t t = static_cast<uint16_t>(v);
      std::memcpy(p, &t, 2);
      break;
    }
    case 4: {
      uint32_t t = static_cast<uint32_t>(v);
      std::memcpy(p, &t, 4);
      break;
    }
    default:
      std::memcpy(p, &v, 8);
      break;
  }
}
PVSIM_ALWAYS_INLINE bool is_canonical(uint64_t la) {
  return static_cast<uint64_t>(static_cast<int64_t>(la << 16) >> 16) == la;
}

// Instructions one fast-path entry may run through chained blocks (fast.cpp, chain()):
// bounds the recursion depth in builds that may not turn the threaded handlers' calls into
// jumps (no optimisation, or sanitizers, which can keep frames alive); optimised builds
// chain much further. With breakpoints set nothing chains (Core::chain_max).
#if !defined(__OPTIMIZE__) || defined(__SANITIZE_ADDRESS__)
constexpr uint64_t kChainInsns = 64;
#else
constexpr uint64_t kChainInsns = 1u << 16;
#endif

// Everything a vCPU snapshot holds (Vcpu::save / Vcpu::restore): the architectural state and
// the run-control state that carries from one run() to the next. Core inherits it, so the
// handlers name these members directly and a member added here is saved and restored
// without further code. What stays in Core is configuration, references, hooks, the
// software TLB and block-cache pointers (rebuilt or re-derived by restore()) and the
// scratch state of one run() call.
struct CoreState {
  // ---- architectural state ----
  // gpr[16] is not a register: it always holds 0, so the threaded memory forms can add
  // "base" and "index" without testing for their absence (Insn::fb / Insn::fi).
  uint64_t gpr[17] = {};
  uint64_t rip = 0;
  uint64_t next_rip = 0;  // RIP of the next instruction while a handler runs
  // RFLAGS. The six arithmetic flags are lazy (core/README.md "Execution model"): the common ALU
  // ops record their operands and result in `lz` and the flags are computed only when
  // something reads them (flags(), cond()). In `rf` the non-arithmetic bits are always
  // current; the arithmetic bits are current only when lz.op == kLazyNone.
  uint64_t rf = fl::Reserved1;
  LazyFlags lz;
  uint64_t cr0 = cr0::ET, cr2 = 0, cr3 = 0, cr4 = 0, cr8 = 0, efer = 0;
  SegmentCache seg[6] = {};
  SegmentCache tr{}, ldtr{};
  DescriptorTable gdtr{}, idtr{};
  unsigned cpl = 0;
  // The code mode (insn.h kMode64 / kMode32 / kMode16), derived from CR0.PE, EFER.LMA and
  // CS.L / CS.D by update_mode() whenever one of them changes. Outside 64-bit mode `rip`
  // holds the LINEAR address of the instruction (CS.base + EIP), so fetch, the TLB and the
  // block cache work as in 64-bit mode; the handlers that see EIP itself (near branches,
  // pushed return addresses, event frames) convert (core/README.md "Legacy modes").
  uint8_t cmode = kMode64;
  // x87 control state (FNINIT / FNSTCW / FLDCW / FNSTSW; no x87 arithmetic): the control word
  // at reset is 0x0040 (SDM Vol. 3A Table 9-1), FNINIT makes it 0x037f.
  uint16_t fcw = 0x0040, fsw = 0, ftw = 0xffff;
  // Debug registers: storage only (no hardware breakpoints); DR6 / DR7 hold their fixed bits
  // (SDM Vol. 3B §17.2).
  uint64_t dr[4] = {};
  uint64_t dr6 = 0xffff0ff0, dr7 = 0x400;
  // MSR storage (handlers in msrs.cpp)
  uint64_t apic_base = 0, misc_enable = 1, pat = 0x0007040600070406ull;
  uint64_t sysenter_cs = 0, sysenter_esp = 0, sysenter_eip = 0;
  uint64_t star = 0, lstar = 0, cstar = 0, sfmask = 0, kernel_gs_base = 0, tsc_aux = 0;
  uint64_t mtrr_def_type = 0;
  uint64_t mcg_status = 0;
  uint64_t tsc_offset = 0;  // IA32_TSC writes adjust this (added modulo 2^64)
  // Alignment checking (CR0.AM, RFLAGS.AC, CPL 3) is on: Core::update_ac.
  bool ac_check = false;

  // ---- time and run control ----
  uint64_t cycles = 0;
  uint64_t insns = 0;
  bool halted = false;
  bool dead = false;           // after a triple fault
  bool brk = false;            // leave the current block at the next boundary
  bool entry_pending = false;  // a VM exit was traced; kvm_entry when the vCPU resumes
  // A REP INS/OUTS at this RIP stopped between elements with its exit still open
  // (entry_pending): resuming it continues that exit (exec_system.cpp, do_string_io).
  uint64_t io_rep_rip = ~0ull;
  StopReason stop = StopReason::None;
  StopReason requested = StopReason::None;
  std::string stop_detail;
  uint64_t inhibit_at = ~0ull;  // STI / MOV SS shadow: no interrupt at boundary insns == this
  bool shadow_next = false;     // set by STI / MOV SS; the run loop turns it into inhibit_at
  bool fault_pending = false;
  Fault fault;
  bool noncanonical_fault = false;  // the pending #GP(0) is a non-canonical linear address
  // Pending events. `irq_check` is the one flag the run loop tests per boundary: it is
  // set while a maskable notification is outstanding (`irq_notified`, from
  // notify_interrupt() or a CR8 write) or an NMI is pending and not blocked; the slow
  // path check_interrupts() sorts out which, and clears it when nothing can be delivered.
  bool irq_check = false;
  bool irq_notified = false;
  // NMI (SDM Vol. 3A §6.7.1): one latch, and blocking from delivery until the next IRET.
  bool nmi_pending = false;
  bool nmi_blocked = false;
  bool entry_hook_ran = false;  // the hook ran for the entry that ends the current exit
  bool inject_pending = false;  // inject_fault waits for the next boundary
  Fault inject_fault;
  // Only inside ept_violation's async-PF injection, while the entry hook runs: the
  // "page not present" #PF is queued (KVM has it pending from kvm_inject_page_fault), so
  // the hook sees an exception pending, and one it queues on top merges with it
  // (Vcpu::inject_exception); np_merged then says the not-present went into that merge.
  bool np_queued = false;
  bool np_merged = false;

  // ---- breakpoints (core/README.md "Breakpoints"; Core::bp_boundary) ----
  // The linear RIPs, sorted and unique (Vcpu::set_breakpoints).
  std::vector<uint64_t> bp_rips;
  // Every boundary counts as a breakpoint (Vcpu::set_breakpoints' `every`: a debugger's
  // single step, tools/platform/README.md "Debugging with gdb").
  bool bp_all = false;
  // The run loop's one test per block: breakpoints are set, or RFLAGS.RF must be cleared
  // as the next instruction starts (an IRET loaded it).
  bool bp_check = false;
  uint64_t chain_max = kChainInsns;  // 0 while breakpoints are set: no block chaining
  // Boundaries are named by (instruction count, RIP): the count grows at every retired
  // instruction, so a boundary never repeats except when nothing retired in between.
  // The boundary where a breakpoint was reported (or RF suppressed it): not reported again.
  uint64_t bp_seen_insns = ~0ull, bp_seen_rip = ~0ull;
  // The boundary that resumes a REP between two elements (Core::rep_resume_at).
  uint64_t rep_insns = ~0ull, rep_rip = ~0ull;
  // The boundary at index mid_k of the decoded block that starts at linear mid_base, where
  // the run loop cut that block for a breakpoint. Execution goes on inside that block when
  // the breakpoint there is reported in the run that cut it (mid_continue: the run after
  // that stop resumes the block); a run that ended there for another reason is followed,
  // as without breakpoints, by one that decodes a block from there.
  uint64_t mid_insns = ~0ull, mid_rip = ~0ull, mid_base = 0;
  uint32_t mid_k = 0;
  bool mid_continue = false;
  // A breakpoint stopped a Budget::Slice run at a block boundary after instructions had run:
  // the run that continues there applies the slice rule it skipped (Core::bp_boundary).
  bool bp_slice_defer = false;
};

// What Vcpu::Snapshot holds (Vcpu::save): the CoreState and the translations the software
// TLB held for reads and fetches. Those are not a pure cache: like a hardware TLB, an entry
// keeps a translation the guest has since changed in its page tables until something
// flushes it (pv-tlb-orig reads through one), so a restored vCPU gets them back. Write
// entries are not kept: GuestMemory's checkpoint and rollback drop every write mapping
// (a store through one would bypass the undo log), so the vCPU that went on from the save
// had none either at its next run().
struct CoreSnapshot {
  CoreState state;
  struct Translation {
    uint64_t vpn;       // linear page number
    uint64_t gpa_page;  // guest-physical address of the 4 KiB page
    uint8_t table;      // 0 read, 2 fetch
    bool global;
  };
  std::vector<Translation> tlb;
  // The TLB was to be flushed at the next run() (GuestMemory::host_unmap_epoch moved since
  // this vCPU last looked): nothing to keep.
  bool tlb_flush_pending = false;
};

class Core : public CoreState {
 public:
  Core(Vcpu& v, GuestMemory& mem, CpuEnv& env, Tracer& tracer, const VcpuConfig& cfg);
  ~Core();
  Core(const Core&) = delete;
  Core& operator=(const Core&) = delete;
  static Core& of(Vcpu& v) { return *v.m_core; }

  // Snapshots (Vcpu::save / Vcpu::restore; core/README.md "Snapshots").
  CoreSnapshot save() const;
  void restore(const CoreSnapshot& s);

  Vcpu& vcpu;
  GuestMemory& mem;
  CpuEnv& env;
  Tracer& tracer;
  const VcpuConfig cfg;

  // ---- run-loop state of one run() call (not part of a snapshot) ----
  // Whole-block (threaded) execution, core.cpp "Execution model": while a block runs,
  // `cycles`, `insns`, `rip` and `next_rip` are not updated per instruction; they are
  // blk_cyc0 + Insn::cum, blk_insns0 + index, blk_rip + Insn::end - len and
  // blk_rip + Insn::end. sync_to() makes them current for a complete-semantics handler.
  uint64_t blk_rip = 0;
  uint64_t blk_cyc0 = 0;    // cycles at block entry plus dynamic extras so far
  uint64_t blk_insns0 = 0;  // insns at block entry plus REP elements beyond one per execution
  uint64_t run_deadline = 0;    // the deadline of the current run() (REP elements check it)
  uint64_t run_insn_limit = 0;  // chaining may not take `insns` past this (Core::run)
  // `insns` may not pass this before the run loop looks again: the end of the current
  // run()'s instruction budget (one instruction on in an STI / MOV SS shadow with an event
  // pending). The per-instruction path stops at it, whole-block execution only enters
  // blocks that fit in it, and REP elements count against it (rep_next).
  uint64_t run_insn_end = 0;
  uint64_t run_steps = 0;       // steps the last run() used (Vcpu::last_run_steps)
  uint64_t stop_at_insns = UINT64_MAX;  // Vcpu::run's stop_at for the current run()
  uint64_t blk_gpa_page = 0;    // guest-physical page of the running block
  const Block* blk = nullptr;  // the running block
  bool xfail = false;       // the instruction the threaded run stopped at failed
  // REP string instructions (core/README.md "REP string instructions"). Called between two
  // elements of a REP instruction with elements left: the element just done retires as one
  // instruction, and the boundary between elements is an instruction boundary as on
  // hardware, where interrupts are taken with RCX/RSI/RDI updated for the finished
  // iterations and RIP on the instruction (SDM Vol. 2B "REP/REPE/REPZ/REPNE/REPNZ").
  // Returns true when the next element may run: the finished one is counted in `insns`
  // (exact while a handler runs) and in blk_insns0, brk is set so that whole-block
  // execution leaves the block after this instruction (the rest of the block may no longer
  // fit the budget; the run loop decides), and the next element is charged `next_cost`
  // (the instruction's own cost again for memory string instructions; 0 for INS/OUTS,
  // whose one VM exit covers all elements). Returns false, with RIP left on the
  // instruction (next_rip = rip) and brk set, when the run must stop here: the budget is
  // used up, the deadline is reached, an event waits to be looked at, or a device asked
  // the vCPU to stop. The handler then returns success: the execution retires its
  // finished elements and the next run() resumes the REP (the boundary after them is
  // marked as a resumption, rep_resume_at, so a breakpoint does not fire there again).
  bool rep_next(uint64_t next_cost) {
    brk = true;
    if (insns + 1 >= run_insn_end || cycles >= run_deadline || irq_check ||
        requested != StopReason::None) [[unlikely]] {
      next_rip = rip;
      rep_resume_at(insns + 1);
      return false;
    }
    ++insns;
    ++blk_insns0;  // whole-block execution counts from it (unused on the per-instruction path)
    cycles += next_cost;
    return true;
  }
  // The boundary (RIP here, instruction count n) resumes the REP instruction at RIP between
  // two elements: breakpoints do not fire there, and an event delivered there pushes RF = 1
  // (Core::deliver), as hardware does for an interrupt between iterations (SDM Vol. 3B
  // §17.3.1.1), so the handler's IRET resumes it without a breakpoint either.
  void rep_resume_at(uint64_t n) {
    rep_rip = rip;
    rep_insns = n;
  }
  // Where the instruction after i starts (Insn::end is signed: see Insn).
  __attribute__((always_inline)) uint64_t end_la(const Insn* i) const { return i->end_from(blk_rip); }
  __attribute__((always_inline)) void sync_to(const Insn* i) {
    next_rip = end_la(i);
    rip = next_rip - i->len;
    cycles = blk_cyc0 + i->cum;
    insns = blk_insns0 + static_cast<uint64_t>(i - blk->insns);
  }
  std::function<int(Vcpu&)> irq_poll;
  std::function<void(Vcpu&)> injected_hook;  // after kvm_inj_virq (Vcpu::set_injection_hook)
  std::function<HypercallResult(Vcpu&, HypercallInsn)> hypercall;
  HypercallInsn hypercall_native = HypercallInsn::Vmcall;  // exits as VMCALL, the other as #UD
  std::function<bool(Vcpu&)> time_gate;
  // The hypervisor side (Vcpu::set_entry_hook, set_exit_hook, set_ept_hook, inject_exception).
  std::function<void(Vcpu&)> entry_hook;
  std::function<void(Vcpu&)> exit_hook;
  std::function<void(Vcpu&, bool)> paging_hook;  // Vcpu::set_paging_hook
  // A host-side page walk (Vcpu::write_linear) is running: the host reads guest memory
  // through its own mappings, so a page the modelled EPT does not map is no VM exit.
  bool host_walk = false;
  std::function<Vcpu::EptResult(Vcpu&, const Vcpu::EptFault&)> ept_hook;
  bool in_delivery = false;     // deliver() is running (implicit accesses of event delivery)
  uint64_t unmap_epoch_seen = 0;  // GuestMemory::host_unmap_epoch() this vCPU's TLB reflects
  uint64_t tlb_epoch_seen = ~0ull;  // GuestMemory::tlb_epoch() at the last look (run())
  // Runs the entry hook once per entry (before the injection and kvm_entry of that entry).
  void entry_requests() {
    if (entry_hook && !entry_hook_ran) {
      entry_hook_ran = true;
      entry_hook(vcpu);
    }
  }
  // CR8 <-> LAPIC TPR (SDM Vol. 3A §10.8.6.1); without hooks CR8 is plain storage (cr8).
  std::function<uint64_t(Vcpu&)> cr8_read;
  std::function<void(Vcpu&, uint64_t)> cr8_write;
  // Set by abandon(): the current instruction must not execute now (a time-observing
  // access while this vCPU is ahead). The run loop un-charges its cost and returns.
  bool abandoned = false;
  bool abandon() {
    abandoned = true;
    return stop_with(StopReason::Deadline, {});
  }
  // True when the instruction may observe time now; otherwise abandons it, so it does not
  // execute and the run stops with Deadline (see Vcpu::set_time_gate).
  bool may_observe_time() {
    if (!time_gate || time_gate(vcpu)) return true;
    return abandon();
  }
  uint64_t get_cr8() const { return cr8_read ? cr8_read(vcpu) & 0xf : cr8; }
  // Stores CR8 (already validated) and makes the run loop ask the interrupt source again
  // at the next boundary: a lower TPR can unmask a pending interrupt.
  void put_cr8(uint64_t v) {
    if (cr8_write)
      cr8_write(vcpu, v);
    else
      cr8 = v;
    irq_notified = true;
    irq_check = true;
    brk = true;
  }
  uint64_t code_epoch_seen = 0;

  // ---- software TLB and decoded-block cache ----
  // tlb[0] read, tlb[1] write, tlb[2] fetch: kTlbSize entries each, one calloc'd block
  // (the host backs only the pages a guest's working set touches).
  TlbEntry* tlb[3] = {};
  uint8_t* tlb_glob = nullptr;  // [t * kTlbSize + index]: the entry maps a global page
  // Whole-TLB flushes (CPL change, CR3 without global entries, CR0/CR4/EFER changes) are
  // O(1): the tag is the linear page number (52 bits) ORed with a salt in bits 63:52, and
  // a flush changes the salt. The salt is never 0, so no key equals the empty tag 0; when
  // it would wrap, the arrays are really cleared and the salt restarts at 1. The write
  // TLB has its own salt so that dropping every write entry (a page became code, here or
  // on another vCPU) is O(1) too.
  uint64_t tlb_salt = 1ull << 52;
  uint64_t tlb_wsalt = 1ull << 52;
  bool tlb_has_global = false;  // a global entry exists: CR3 writes must keep it
  __attribute__((always_inline)) uint64_t tlb_key(uint64_t la) const {
    return (la >> 12) | tlb_salt;
  }
  __attribute__((always_inline)) uint64_t tlb_wkey(uint64_t la) const {
    return (la >> 12) | tlb_wsalt;
  }
  uint64_t tlb_gpa(const TlbEntry& e) const { return static_cast<uint64_t>(e.host - mem.base()); }
  void tlb_flush_write();
  Block* blocks = nullptr;  // the VM's block cache (GuestMemory::cpu_cache), a NORESERVE mmap
  const uint32_t* code_gen = nullptr;  // GuestMemory::code_generations(), cached
  Block tmp_block{};  // page-crossing instruction: decoded every time, never cached

  // ================= registers =================
  __attribute__((always_inline)) uint64_t getr(unsigned r, unsigned size, const Insn& i) const {
    switch (size) {
      case 1:
        if (!(i.pfx & P_REX) && r >= 4 && r < 8) return (gpr[r - 4] >> 8) & 0xff;  // AH..BH
        return gpr[r] & 0xff;
      case 2:
        return gpr[r] & 0xffff;
      case 4:
        return gpr[r] & 0xffffffff;
      default:
        return gpr[r];
    }
  }
  // Writes follow SDM Vol. 1 §3.4.1.1: 32-bit results zero-extend, 8/16-bit merge.
  __attribute__((always_inline)) void setr(unsigned r, unsigned size, const Insn& i, uint64_t v) {
    switch (size) {
      case 1:
        if (!(i.pfx & P_REX) && r >= 4 && r < 8)
          gpr[r - 4] = (gpr[r - 4] & ~0xff00ull) | ((v & 0xff) << 8);
        else
          gpr[r] = (gpr[r] & ~0xffull) | (v & 0xff);
        break;
      case 2:
        gpr[r] = (gpr[r] & ~0xffffull) | (v & 0xffff);
        break;
      case 4:
        gpr[r] = v & 0xffffffff;
        break;
      default:
        gpr[r] = v;
        break;
    }
  }
  __attribute__((always_inline)) void set_arith(uint64_t f) {
    lz.op = kLazyNone;
    rf = (rf & ~fl::kArith) | f;
  }
  __attribute__((always_inline)) void set_lazy(uint8_t op, uint64_t a, uint64_t b, uint64_t r,
                                               unsigned size) {
    lz.op = op;
    lz.size = static_cast<uint8_t>(size);
    lz.a = a;
    lz.b = b;
    lz.r = r;
  }
  // Materialised RFLAGS (also makes `rf` current).
  __attribute__((always_inline)) uint64_t flags() {
    if (lz.op != kLazyNone) {
      rf = (rf & ~fl::kArith) | lazy_arith(lz);
      lz.op = kLazyNone;
    }
    return rf;
  }
  uint64_t flags_value() const {
    return lz.op != kLazyNone ? (rf & ~fl::kArith) | lazy_arith(lz) : rf;
  }
  void set_flags_raw(uint64_t v) {
    lz.op = kLazyNone;
    rf = (v & fl::kDefined) | fl::Reserved1;
    if (rf & fl::IF) rearm_irq_check();
    // RF (set by IRET from a frame that holds it) lasts until the next instruction starts
    // (SDM Vol. 3B §17.3.1.1): the run loop's breakpoint path clears it there.
    if (rf & fl::RF) bp_check = true;
    update_ac();
  }
  // A maskable notification that arrived while IF = 0 is parked (check_interrupts clears
  // irq_check so the run loop does not poll it at every block); whatever sets IF
  // (STI, POPF, IRET, SYSRET, Vcpu::set_rflags) re-arms the boundary check.
  void rearm_irq_check() {
    if (irq_notified) irq_check = true;
  }
  // Alignment checking (SDM Vol. 3A §6.15 "Interrupt 17"): CR0.AM, RFLAGS.AC and CPL 3.
  // While it is on (CoreState::ac_check), user data accesses bypass the TLB fast path so
  // access_slow can check alignment; it is re-evaluated whenever one of the three inputs
  // changes.
  void update_ac() {
    const bool want = (cr0 & cr0::AM) && (rf & fl::AC) && cpl == 3;
    if (want != ac_check) {
      ac_check = want;
      if (want) tlb_flush_all();
    }
  }
  // Condition codes; after CMP/SUB and for ZF tests no flags are materialised.
  __attribute__((always_inline)) bool cond(unsigned cc) {
    if (lz.op == kLazySub) {
      const uint64_t a = lz.a, b = lz.b;
      bool r;
      switch (cc >> 1) {
        case 1:
          r = a < b;
          break;  // B  (CF)
        case 2:
          r = a == b;
          break;  // E  (ZF)
        case 3:
          r = a <= b;
          break;  // BE (CF|ZF)
        case 6:
          r = sext(a, lz.size) < sext(b, lz.size);
          break;  // L  (SF!=OF)
        case 7:
          r = sext(a, lz.size) <= sext(b, lz.size);
          break;  // LE
        default:
          return cond_slow(cc);
      }
      return (cc & 1) ? !r : r;
    }
    if (lz.op != kLazyNone && (cc >> 1) == 2) return ((cc & 1) != 0) != (lz.r == 0);
    if (lz.op == kLazyNone) return cond_holds(cc, rf);
    return cond_slow(cc);
  }
  // Out of line so the inline condition tests stay small (they sit in every Jcc).
  __attribute__((noinline)) bool cond_slow(unsigned cc) { return cond_holds(cc, flags()); }
  unsigned iopl() const { return (rf >> 12) & 3; }

  // ================= faults and stops =================
  bool raise(uint8_t vec, bool has_err = false, uint32_t err = 0, uint64_t cr2v = 0) {
    fault = Fault{vec, has_err, err, cr2v, false};
    fault_pending = true;
    noncanonical_fault = false;
    return false;
  }
  bool gp(uint32_t err = 0) { return raise(kGP, true, err); }
  bool ud() { return raise(kUD); }
  bool stop_with(StopReason r, std::string detail);

  // ================= memory =================
  // Base + index * scale + displacement of the ModRM memory operand, before the address
  // size is applied (SDM Vol. 1 §3.7.5).
  __attribute__((always_inline)) uint64_t ea_sum(const Insn& i) const {
    uint64_t a = static_cast<uint64_t>(static_cast<int64_t>(i.disp));
    if (i.base == kRegRip)
      a += next_rip;
    else if (i.base != kRegNone)
      a += gpr[i.base];
    if (i.index != kRegNone) a += gpr[i.index] << i.scale;
    return a;
  }
  // Effective linear address of the ModRM memory operand.
  __attribute__((always_inline)) uint64_t ea(const Insn& i) const {
    uint64_t a = ea_sum(i);
    if (i.pfx & P_LEG) [[unlikely]]
      return seg_linear(i.seg, a & addr_mask(i.asz));
    if (i.asz == 4) a &= 0xffffffff;
    if (i.seg) a += seg[i.seg].base;  // FS/GS; other bases are ignored in 64-bit mode
    return a;
  }
  // The offset part only (LEA): no segment base.
  uint64_t ea_offset(const Insn& i) const { return ea_sum(i) & addr_mask(i.asz); }
  static constexpr uint64_t addr_mask(unsigned asz) {
    return asz == 8 ? ~0ull : asz == 4 ? 0xffffffffull : 0xffffull;
  }
  // (R/E)SI, (R/E)DI, (R/E)CX as the address size sees them (string instructions, LOOP,
  // JCXZ, XLAT): a 16-bit update merges into the low word, a 32-bit one zero-extends.
  uint64_t addr_reg(const Insn& i, unsigned r) const { return gpr[r] & addr_mask(i.asz); }
  void set_addr_reg(const Insn& i, unsigned r, uint64_t v) {
    gpr[r] = i.asz == 8 ? v : i.asz == 4 ? v & 0xffffffff : (gpr[r] & ~0xffffull) | (v & 0xffff);
  }
  // Outside 64-bit mode a linear address is segment base + offset, truncated to 32 bits
  // (SDM Vol. 3A §3.4). The offset of the access's first byte is checked against the
  // segment limit (SDM Vol. 3A §5.3: expand-up segments allow 0..limit, expand-down ones
  // limit+1..0xffff or 0xffffffff by the B bit); beyond it the result is kLimitFault, a
  // non-canonical address, so the access raises #GP(0) in translate() and the SS users turn
  // that into #SS(0) (stack_fault(), Insn::ss_operand()).
  static constexpr uint64_t kLimitFault = 1ull << 63;
  uint64_t seg_linear(unsigned s, uint64_t off) const {
    const SegmentCache& c = seg[s];
    const bool expand_down = (c.attrs & 0xc) == 0x4;  // data segment (type bit 3 clear), E set
    if (expand_down ? off <= c.limit || off > ((c.attrs & (1u << 14)) ? 0xffffffffull : 0xffffull)
                    : off > c.limit) [[unlikely]]
      return kLimitFault;
    return (c.base + off) & 0xffffffffull;
  }
  // The linear address of a string or XLAT source operand at offset `off`: the effective
  // segment outside 64-bit mode, else only an FS/GS override adds a base.
  uint64_t src_linear(const Insn& i, uint64_t off) const {
    if (i.pfx & P_LEG) return seg_linear(i.seg, off);
    return off + (i.seg ? seg[i.seg].base : 0);
  }
  // String destinations are always ES:(E)DI (no override).
  uint64_t dst_linear(const Insn& i, uint64_t off) const {
    return (i.pfx & P_LEG) ? seg_linear(0, off) : off;
  }
  // Data accesses at the current privilege (CPL 3 = user). Fast path: TLB hit inside one page.
  __attribute__((always_inline)) bool read(uint64_t la, unsigned size, uint64_t& v) {
    const TlbEntry& e = tlb[0][(la >> 12) & kTlbMask];
    const uint64_t off = la & 0xfff;
    if (e.tag == tlb_key(la) && off + size <= 4096) [[likely]] {
      v = load_le(e.host + off, size);
      return true;
    }
    return access_slow(la, size, &v, Acc::Read, false);
  }
  __attribute__((always_inline)) bool write(uint64_t la, unsigned size, uint64_t v) {
    const TlbEntry& e = tlb[1][(la >> 12) & kTlbMask];
    const uint64_t off = la & 0xfff;
    if (e.tag == tlb_wkey(la) && off + size <= 4096) [[likely]] {
      store_le(e.host + off, size, v);
      return true;
    }
    return access_slow(la, size, &v, Acc::Write, false);
  }
  // Host pointer for a write that hits the write TLB inside one page, else nullptr.
  __attribute__((always_inline)) uint8_t* write_ptr(uint64_t la, unsigned size) {
    const TlbEntry& e = tlb[1][(la >> 12) & kTlbMask];
    const uint64_t off = la & 0xfff;
    return (e.tag == tlb_wkey(la) && off + size <= 4096) ? e.host + off : nullptr;
  }
  // Checks that a write of `size` bytes at la cannot fault (translates every page for
  // write, setting A/D bits), so read-modify-write instructions fault before changing state.
  bool probe_write(uint64_t la, unsigned size);
  // Implicit supervisor-mode accesses (GDT, IDT, TSS) and stack pushes during delivery.
  bool read_sys(uint64_t la, unsigned size, uint64_t& v) {
    return access_slow(la, size, &v, Acc::Read, true);
  }
  bool write_sys(uint64_t la, unsigned size, uint64_t v) {
    return access_slow(la, size, &v, Acc::Write, true);
  }
  bool access_slow(uint64_t la, unsigned size, uint64_t* v, Acc acc, bool supervisor);
  // Page walk: la -> guest-physical address, checking permissions for `acc` by a user
  // (CPL 3, not implicit) or supervisor access. Fills TLB entry `fill` when given and allowed.
  bool translate(uint64_t la, Acc acc, bool user, uint64_t& gpa, TlbEntry* fill);
  // EPT model (see mmu.cpp): an access to a guest-physical RAM page not mapped in the
  // modelled EPT is a VM exit. False when the access must not proceed (an async PF was
  // injected or the vCPU halts): the caller fails like a faulting access.
  bool ept_check(uint64_t gpa, uint64_t qualification) {
    if (gpa >= mem.size() || mem.ept_mapped(gpa >> 12)) [[likely]] return true;
    return ept_violation(gpa, qualification);
  }
  bool ept_violation(uint64_t gpa, uint64_t qualification);
  void tlb_flush_all();
  void tlb_flush_nonglobal();
  void tlb_flush_page(uint64_t la);
  // Drops the read-TLB entries that map these guest-physical pages (read watchpoints).
  void tlb_drop_reads_of(const std::vector<uint64_t>& pfns);

  // Operand helpers.
  __attribute__((always_inline)) bool read_E(const Insn& i, unsigned size, uint64_t& v) {
    if (i.mod3()) {
      v = getr(i.rm, size, i);
      return true;
    }
    return read(ea(i), size, v);
  }
  __attribute__((always_inline)) bool write_E(const Insn& i, unsigned size, uint64_t v) {
    if (i.mod3()) {
      setr(i.rm, size, i, v);
      return true;
    }
    return write(ea(i), size, v);
  }
  // Stack (SS base is 0 in 64-bit mode; a non-canonical stack address is #SS(0)). Outside
  // 64-bit mode SS.B picks SP or ESP and SS.base applies (push_legacy, pop_legacy).
  __attribute__((always_inline)) bool push(uint64_t v, unsigned size) {
    if (cmode != kMode64) [[unlikely]] return push_legacy(v, size);
    const uint64_t sp = gpr[4] - size;
    if (!write(sp, size, v)) return stack_fault();
    gpr[4] = sp;
    return true;
  }
  __attribute__((always_inline)) bool pop(unsigned size, uint64_t& v) {
    if (cmode != kMode64) [[unlikely]] return pop_legacy(size, v);
    if (!read(gpr[4], size, v)) return stack_fault();
    gpr[4] += size;
    return true;
  }
  bool push_legacy(uint64_t v, unsigned size);
  bool pop_legacy(unsigned size, uint64_t& v);
  // The stack pointer as the stack-address size sees it (SP or ESP), and its update.
  bool stack32() const { return seg[2].attrs & (1u << 14); }
  uint64_t sp_value() const { return stack32() ? gpr[4] & 0xffffffff : gpr[4] & 0xffff; }
  void set_sp(uint64_t v) {
    gpr[4] = stack32() ? v & 0xffffffff : (gpr[4] & ~0xffffull) | (v & 0xffff);
  }
  // EIP of a linear instruction address outside 64-bit mode (rip = CS.base + EIP).
  uint64_t eip_of(uint64_t la) const { return (la - seg[1].base) & 0xffffffffull; }
  // The RIP the trace shows: KVM's kvm_rip_read is the guest's RIP/EIP, not CS.base + EIP.
  uint64_t trace_rip(uint64_t la) const { return cmode == kMode64 ? la : eip_of(la); }
  // The linear address of near-branch target offset `eip` (masked to the operand size,
  // SDM Vol. 2A "JMP": a 16-bit operand size clears EIP[31:16]).
  uint64_t near_target(uint64_t eip, unsigned osz) const {
    return (seg[1].base + (eip & (osz == 2 ? 0xffffull : 0xffffffffull))) & 0xffffffffull;
  }
  // An access through SS to a non-canonical address is #SS(0), not #GP(0) (SDM Vol. 3A
  // §6.15 "Interrupt 12"), judged on the whole access. translate() raises #GP(0) and sets
  // noncanonical_fault; the SS users — pushes and pops here and in IRET, and RSP/RBP-based
  // operands (Insn::ss_operand(), checked in the run loop) — convert it with this one helper.
  bool stack_fault() {
    if (fault_pending && noncanonical_fault && fault.vector == kGP) fault.vector = kSS;
    return false;
  }

  // ================= control =================
  void set_cpl(unsigned c) {
    if (c != cpl) {
      cpl = c;
      tlb_flush_all();
      update_ac();
    }
  }
  bool in_long_mode() const {
    return (cr0 & cr0::PG) && (efer & efer::LMA) && (seg[1].attrs & (1u << 13));
  }
  bool legacy() const { return cmode != kMode64; }
  bool real_mode() const { return !(cr0 & cr0::PE); }
  // Recomputes cmode from CR0.PE, EFER.LMA, CS.L and CS.D (SDM Vol. 3A §9.8.5 / §5.2.1);
  // a change ends the block (brk) so the next fetch decodes in the new mode.
  void update_mode() {
    const uint8_t m = ((efer & efer::LMA) && (seg[1].attrs & (1u << 13))) ? kMode64
                      : (seg[1].attrs & (1u << 14))                       ? kMode32
                                                                          : kMode16;
    if (m != cmode) {
      cmode = m;
      brk = true;
    }
  }
  // Block-cache tags carry the mode in bits 63:60 (0 in 64-bit mode): the same bytes decode
  // differently in 16-, 32- and 64-bit code.
  uint64_t mode_tag() const { return static_cast<uint64_t>(cmode) << 60; }

  // Run loop (core.cpp).
  // slice: Budget::Slice (vcpu.h), stop at the last block boundary within max_insns.
  Vcpu::RunResult run(uint64_t max_insns, uint64_t deadline, bool slice);
  // Breakpoints (core.cpp; core/README.md "Breakpoints").
  void set_breakpoints(std::vector<uint64_t> rips, bool every = false);
  bool bp_has(uint64_t la) const;
  // What the run loop does at a boundary while bp_check is set.
  enum class BpAt : uint8_t {
    Run,       // go on as usual with block b (fetched here; nullptr: the fetch failed)
    Range,     // run [from, to) of block b per instruction, its instructions' addresses
               // counted from linear `base`
    Stop,      // report a breakpoint (RIP on the instruction, nothing fetched)
    SliceEnd,  // end the Budget::Slice run before this block (StopReason::InsnLimit)
  };
  BpAt bp_boundary(Block*& b, uint64_t left, bool slice, bool ran, const Insn*& from,
                   const Insn*& to, uint64_t& base);
  // Fetch: RIP -> fetch TLB -> GPA -> decoded block (valid for the page's code generation).
  __attribute__((always_inline)) Block* fetch_block() {
    const TlbEntry& e = tlb[2][(rip >> 12) & kTlbMask];
    if (e.tag == tlb_key(rip)) [[likely]] {
      const uint64_t gpa = tlb_gpa(e) | (rip & 0xfff);
      Block& b = blocks[block_slot(gpa)];
      if (b.tag == gpa + 1 + mode_tag() && b.gen == code_gen[gpa >> 12]) [[likely]]
        return &b;
    }
    return fetch_block_slow();
  }
  Block* fetch_block_slow();
  Block* decode_block(Block& b, uint64_t gpa, uint8_t* page_host);
  void finish_block(Block& b, unsigned n);  // offsets, cumulative costs, handlers (fast.cpp)
  Block* decode_crossing(uint64_t gpa, uint8_t* page_host);
  bool check_interrupts();  // NMI, then the pending-interrupt hook, at a boundary
  bool try_wake();
  bool deliver_external(uint8_t vector);
  // IRET ends NMI blocking (SDM Vol. 3A §6.7.1), even when it faults.
  void iret_unblocks_nmi() {
    if (!nmi_blocked) return;
    nmi_blocked = false;
    if (nmi_pending) {
      irq_check = true;
      brk = true;
    }
  }

  // Exceptions and privilege transfers (exceptions.cpp).
  bool deliver(uint8_t vector, EventKind kind, bool has_err, uint32_t err, uint64_t ret_rip);
  void deliver_fault();
  bool load_descriptor(uint16_t sel, uint64_t& lo, uint32_t ext, uint64_t* hi = nullptr);
  bool load_seg(SegReg s, uint16_t sel);  // MOV/POP Sreg (SS and data segments)
  bool far_return(unsigned osz, bool is_iret, uint16_t pop_extra);
  bool far_jump(uint16_t sel, uint64_t offset);
  bool far_target(uint16_t sel, uint64_t& cd);  // checks shared by far_jump and far_jump_legacy
  // Outside 64-bit mode (exceptions.cpp): real-mode IVT delivery, far JMP / CALL / RET and
  // IRET between real, 16/32-bit protected, compatibility and 64-bit code.
  bool deliver_real(uint8_t vector, EventKind kind, uint64_t ret_rip);
  bool deliver_protected(uint8_t vector, EventKind kind, bool has_err, uint32_t err, uint64_t ret_rip);
  bool far_jump_legacy(uint16_t sel, uint64_t offset, unsigned osz, bool call);
  bool far_return_legacy(unsigned osz, bool is_iret, uint16_t pop_extra);
  // Loads CS in real mode (selector and base only: limit and attributes stay, SDM Vol. 3A
  // Vol. 3A chapter 20,
  // real-address mode) or from a code descriptor, then recomputes the mode.
  void set_cs_real(uint16_t sel) {
    seg[1].selector = sel;
    seg[1].base = static_cast<uint64_t>(sel) << 4;
    update_mode();
  }
  static SegmentCache cache_from_descriptor(uint16_t sel, uint64_t lo);

  // VM exits (exec_system.cpp): kvm_exit at the start of the instruction, kvm_entry now.
  void trace_exit(VmxExitReason r, uint64_t info1, uint64_t cost_so_far, uint32_t intr_info = 0);
  // Every kvm_exit line goes through here: the line, then the exit hook (Vcpu::set_exit_hook).
  void exit_event(Tick ts, VmxExitReason r, uint64_t info1, uint32_t intr_info) {
    tracer.kvm_exit(ts, cfg.index, r, trace_rip(rip), info1, 0, intr_info, 0);
    if (exit_hook) [[unlikely]] exit_hook(vcpu);
  }
  // An exception the hypervisor injects at the entry that ends the current exit
  // (requests, kvm_inj_exception, kvm_entry at the instruction); returns false so the
  // handler fails and the run loop delivers it (no pvsim_exception).
  bool inject_at_entry(const GuestException& e);
  // Vcpu::write_linear (mmu.cpp).
  LinearAccess write_linear(uint64_t la, const uint8_t* src, size_t len, GuestException& out);
  void trace_entry(uint64_t at_rip);
  // The entry itself: requests (entry hook), then kvm_entry; trace_entry() also closes the
  // exit (entry_pending), which an EPT violation inside another exit must leave open.
  void enter_guest(uint64_t at_rip);
  Tick tick_at(uint64_t cyc) const { return Tick(cycles_to_ns(cyc, cfg.tsc_hz)); }
  Tick now() const { return tick_at(cycles); }
  bool io_permitted(uint16_t port, unsigned size);
  bool port_in(const Insn& i, uint16_t port, unsigned size, uint32_t& v, uint64_t qual);
  bool port_out(const Insn& i, uint16_t port, unsigned size, uint32_t v, uint64_t qual);
  uint64_t guest_tsc() const { return cfg.tsc_start + cycles + tsc_offset; }

  void register_msrs();      // msrs.cpp
  std::string dump() const;  // dump.cpp
};

}  // namespace pvsim::cpu
