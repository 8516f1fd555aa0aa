// pvmsr/hypercalls.h — KVM's hypercall interface, host side (pvmsr/README.md §10).
//
// Why: a KVM guest asks its host for things no MSR expresses — wake a vCPU that waits on
// a PV spinlock (KICK_CPU), send one IPI to many vCPUs in a single exit (SEND_IPI), give
// the rest of its time slice to a preempted lock holder (SCHED_YIELD), pair the host's
// wall clock with its own TSC (CLOCK_PAIRING, the ptp_kvm clock) — by executing VMCALL
// (Intel) or VMMCALL (AMD) with the number in RAX and up to four arguments in RBX, RCX, RDX
// and RSI. The answer comes back in RAX; every other register is preserved.
//
// The core (core/vcpu.h, set_hypercall_handler) makes the instruction an exit and asks
// Hypercalls what happens; everything KVM decides is here:
//   - the vendor's own instruction: KVM's hypercall dispatcher (below), RIP moves on;
//   - the other vendor's instruction (a #UD exit): with KVM_X86_QUIRK_FIX_HYPERCALL_INSN
//     (on by default) the 3 bytes at RIP are rewritten to the native instruction through
//     the guest's page tables and the instruction runs again; a rewrite that faults gives
//     the guest that #PF; without the quirk the guest gets #UD. On AMD a VMCALL at CPL > 0
//     gets #GP(0) instead (the emulator's opcode table marks VMCALL privileged, VMMCALL not).
//
// The dispatcher, in KVM's order:
//   1. trace kvm_hypercall with the registers as they are (64 bits);
//   2. outside 64-bit mode (EFER.LMA && CS.L) truncate nr and a0..a3 to 32 bits;
//   3. CPL != 0 -> -KVM_EPERM;
//   4. by number (feature bits gate only under KVM_CAP_ENFORCE_PV_FEATURE_CPUID, and a
//      gated call is -KVM_ENOSYS):
//        1  VAPIC_POLL_IRQ  0 (the exit itself lets pending interrupts in)
//        5  KICK_CPU        feature 7: "remote read" message to APIC ID a1 (pv_unhalted and
//                           a kick), then a directed yield to a1; 0
//        9  CLOCK_PAIRING   a1 (type) must be 0, else -KVM_EOPNOTSUPP; no TSC-based host
//                           clock (or TSC catch-up) -> -KVM_EOPNOTSUPP; writes struct
//                           kvm_clock_pairing at GPA a0 (-KVM_EFAULT when it cannot); 0
//        10 SEND_IPI        feature 11: ICR a3 with a destination-mode or shorthand bit ->
//                           -KVM_EINVAL; no APIC map -> -KVM_EOPNOTSUPP; else one IPI to
//                           APIC ID a2 + i for each bit i of a0, and to a2 + 64 + i (+32
//                           outside 64-bit mode) for each bit i of a1; the number accepted
//        11 SCHED_YIELD     feature 13: directed yield to APIC ID a0; 0
//        12 MAP_GPA_RANGE   -KVM_ENOSYS unless the VMM enabled the exit; a0 not page-aligned,
//                           a1 = 0 or a range that wraps -> -KVM_EINVAL; else the VMM's value
//        anything else (2 MMU_OP, 3 FEATURES included) -> -KVM_ENOSYS;
//   5. RAX = the result, truncated to 32 bits outside 64-bit mode.
//
// Checked against the Linux 6.12 sources and a 6.18-era tree: arch/x86/kvm/x86.c
// ____kvm_emulate_hypercall, complete_hypercall_exit, kvm_pv_kick_cpu_op, kvm_sched_yield,
// kvm_pv_clock_pairing, emulator_fix_hypercall, handle_ud; arch/x86/kvm/lapic.c
// kvm_pv_send_ipi, __pv_send_ipi, __apic_accept_irq (APIC_DM_REMRD); arch/x86/kvm/emulate.c
// em_hypercall and the group 7 opcode tables; include/uapi/linux/kvm_para.h and
// arch/x86/include/uapi/asm/kvm_para.h (numbers, error values, struct kvm_clock_pairing).
//
// Index:
//   kvm_hc, kvm_err ........ hypercall numbers and error values (uapi kvm_para.h)
//   HypercallConfig ......... what the scenario decides (vendor, quirk, enforcement, VMM)
//   HypercallHost ........... what a hypercall asks of the platform (LAPICs, scheduler, clock)
//   KvmClockPairing ......... the structure CLOCK_PAIRING writes
//   HypercallRegs, hypercall_truncate, hypercall_ret ... the 32-bit rules as pure functions
//   Hypercalls .............. the handler: attach() installs it, handle() is it, counters
#pragma once
#include <array>
#include <cstdint>

#include "core/guest_memory.h"
#include "core/trace.h"
#include "core/vcpu.h"

namespace pvsim {

// Hypercall numbers (include/uapi/linux/kvm_para.h, KVM_HC_*).
namespace kvm_hc {
constexpr uint64_t kVapicPollIrq = 1;
constexpr uint64_t kMmuOp = 2;
constexpr uint64_t kFeatures = 3;
constexpr uint64_t kKickCpu = 5;
constexpr uint64_t kClockPairing = 9;
constexpr uint64_t kSendIpi = 10;
constexpr uint64_t kSchedYield = 11;
constexpr uint64_t kMapGpaRange = 12;
constexpr uint64_t kMax = 12;  // highest number pvsim counts on its own (calls() below)
}  // namespace kvm_hc

// Error values, returned negated in RAX (include/uapi/linux/kvm_para.h).
namespace kvm_err {
constexpr int64_t kEnosys = 1000;
constexpr int64_t kEfault = 14;
constexpr int64_t kEinval = 22;
constexpr int64_t kE2big = 7;
constexpr int64_t kEperm = 1;
constexpr int64_t kEopnotsupp = 95;
}  // namespace kvm_err

struct HypercallConfig {
  bool enforce_pv_cpuid = false;  // KVM_CAP_ENFORCE_PV_FEATURE_CPUID (pvmsr/README.md §2.2)
  uint32_t cpuid_features = ~0u;  // leaf 0x40000001 EAX as the guest sees it
  bool amd = false;               // CPU vendor: the native instruction is VMMCALL when true
  bool fix_hypercall_insn = true; // KVM_X86_QUIRK_FIX_HYPERCALL_INSN (on unless the VMM disables it)
  bool map_gpa_range_exit = false;  // the VMM enabled KVM_CAP_EXIT_HYPERCALL for nr 12
  int64_t map_gpa_range_ret = 0;    // what that VMM answers
  // KVM keeps an APIC map only with its own LAPIC (irqchip in kernel): without one,
  // SEND_IPI is -KVM_EOPNOTSUPP and KICK_CPU / SCHED_YIELD find no target.
  bool irqchip_in_kernel = true;
};

// What a hypercall asks of the platform. Implemented by the platform; called only from
// Hypercalls::handle, inside the exit of vCPU `src_vcpu` (or `vcpu`).
class HypercallHost {
 public:
  virtual ~HypercallHost() = default;
  // One IPI to the vCPU whose physical APIC ID is `dest_apic_id`, straight into its LAPIC
  // as kvm_apic_set_irq does (no arbitration: a lowest-priority IPI goes to that vCPU).
  // `icr_low` holds only what KVM takes from the ICR: vector (7:0), delivery mode (10:8),
  // level (14) and trigger mode (15). Returns 1 when the LAPIC accepted it, 0 when it did
  // not (e.g. a fixed IPI to a software-disabled LAPIC), -1 when no vCPU has that APIC ID
  // (an empty slot of KVM's phys_map).
  virtual int hc_deliver_ipi(unsigned src_vcpu, uint32_t dest_apic_id, uint32_t icr_low) = 0;
  // KICK_CPU: a "remote read" (APIC_DM_REMRD) message, physical destination, no source
  // LAPIC, as kvm_pv_kick_cpu_op sends it through kvm_irq_delivery_to_apic: the target's
  // pv_unhalted is set and it is kicked (a HLTed target becomes runnable). Destination
  // matching is the LAPIC's (0xff in xAPIC mode is a broadcast).
  virtual void hc_kick(unsigned src_vcpu, uint32_t dest_apic_id) = 0;
  // kvm_sched_yield: a directed yield to the vCPU with that physical APIC ID. The host
  // model decides (no target, the caller itself, a target that is not runnable, or a host
  // CPU running nothing else: nothing happens).
  virtual void hc_sched_yield(unsigned src_vcpu, uint32_t dest_apic_id) = 0;
  // Host wall-clock time (sec, nsec) and the guest TSC of `vcpu` at one host instant
  // (kvm_get_walltime_and_clockread + kvm_read_l1_tsc). False when KVM answers
  // -KVM_EOPNOTSUPP: the host clocksource is not TSC-based, or the vCPU is in permanent
  // TSC catch-up.
  virtual bool hc_clock_pairing(unsigned vcpu, int64_t& sec, int64_t& nsec, uint64_t& guest_tsc) = 0;
};

// struct kvm_clock_pairing (arch/x86/include/uapi/asm/kvm_para.h), written by CLOCK_PAIRING.
struct KvmClockPairing {
  int64_t sec;
  int64_t nsec;
  uint64_t tsc;
  uint32_t flags;   // always 0
  uint32_t pad[9];  // always 0
};
static_assert(sizeof(KvmClockPairing) == 64, "struct kvm_clock_pairing is 64 bytes");

// RAX, RBX, RCX, RDX, RSI at the hypercall.
struct HypercallRegs {
  uint64_t nr = 0, a0 = 0, a1 = 0, a2 = 0, a3 = 0;
};
// ____kvm_emulate_hypercall: outside 64-bit mode the number and the arguments keep their
// low 32 bits (after the kvm_hypercall trace, which shows them whole).
HypercallRegs hypercall_truncate(const HypercallRegs& r, bool op_64_bit);
// complete_hypercall_exit: the value written to RAX, truncated to 32 bits outside 64-bit
// mode (so -KVM_EPERM is 0xffffffff there).
uint64_t hypercall_ret(int64_t ret, bool op_64_bit);

// What Hypercalls changes after construction (its counters), kept apart so that a snapshot
// copies all of it (pvmsr/README.md §1.3).
struct HypercallsState {
  std::array<uint64_t, kvm_hc::kMax + 1> m_calls{};
  uint64_t m_calls_other = 0;
  uint64_t m_rewrites = 0;
  uint64_t m_refused = 0;
};

class Hypercalls : private HypercallsState {
 public:
  static constexpr unsigned kFeatureKickCpu = 7;     // KVM_FEATURE_PV_UNHALT
  static constexpr unsigned kFeatureSendIpi = 11;    // KVM_FEATURE_PV_SEND_IPI
  static constexpr unsigned kFeatureSchedYield = 13; // KVM_FEATURE_PV_SCHED_YIELD

  Hypercalls(const HypercallConfig& cfg, GuestMemory& mem, Tracer& tracer, HypercallHost& host);
  Hypercalls(const Hypercalls&) = delete;
  Hypercalls& operator=(const Hypercalls&) = delete;

  // Installs handle() as the vCPU's hypercall handler, with the configured vendor's
  // instruction as the native one. `this` must outlive the vCPU's use of it.
  void attach(Vcpu& v);
  // The handler: what KVM does with an executed VMCALL / VMMCALL (the comment at the top).
  // Public so that tests can call it on a vCPU in a state the core does not run (32-bit
  // code).
  HypercallResult handle(Vcpu& v, HypercallInsn insn);

  HypercallInsn native() const { return m_native; }
  const HypercallConfig& config() const { return m_cfg; }

  // Counters (reports, tests). calls(nr): hypercalls with that number (after truncation)
  // that reached the dispatcher, -KVM_EPERM ones included; numbers above kvm_hc::kMax
  // count together in calls_other(). rewrites(): wrong-vendor instructions rewritten in
  // guest memory; refused(): wrong-vendor instructions that got #UD or #GP instead.
  uint64_t calls(uint64_t nr) const { return nr <= kvm_hc::kMax ? m_calls[nr] : 0; }
  uint64_t calls_other() const { return m_calls_other; }
  uint64_t calls_total() const;
  uint64_t rewrites() const { return m_rewrites; }
  uint64_t refused() const { return m_refused; }

  // Snapshots (pvmsr/README.md §1.3): the counters; a rewrite is in guest memory.
  struct Snapshot {
    HypercallsState state;
  };
  Snapshot save() const { return {static_cast<const HypercallsState&>(*this)}; }
  void restore(const Snapshot& s) { static_cast<HypercallsState&>(*this) = s.state; }

 private:
  bool pv_has(unsigned bit) const {
    return !m_cfg.enforce_pv_cpuid || (m_cfg.cpuid_features & (1u << bit));
  }
  int64_t dispatch(Vcpu& v, const HypercallRegs& r, bool op_64_bit);
  int64_t send_ipi(unsigned src, uint64_t low, uint64_t high, uint32_t min, uint64_t icr,
                   bool op_64_bit);
  int send_ipi_half(unsigned src, uint64_t bitmap, uint32_t min, uint32_t icr_low);
  void sched_yield(unsigned src, uint64_t dest_id);
  int64_t clock_pairing(unsigned vcpu, uint64_t gpa, uint64_t clock_type);
  HypercallResult wrong_instruction(Vcpu& v, HypercallInsn insn);

  HypercallConfig m_cfg;
  GuestMemory& m_mem;
  Tracer& m_tracer;
  HypercallHost& m_host;
  HypercallInsn m_native;
};

}  // namespace pvsim
