// pvmsr/async_pf.h — the hypervisor side of asynchronous page faults: MSRs 0x4b564d02,
// 0x4b564d06 and 0x4b564d07, the per-vCPU gfn table, tokens, "page not present" and "page
// ready" delivery, in both ABI profiles (pvmsr/README.md §5).
//
// Index:
//   ApfGfnTable ...... the 64-slot open-addressed table of gfns with outstanding work
//   apf_next_token ... token allocation (kvm_arch_setup_async_pf / alloc_apf_token)
//   AsyncPfConfig .... what the scenario decides
//   ApfVcpuState ..... what the fault path knows of the faulting vCPU
//   ApfHost .......... what the component asks of the platform (injection, LAPIC, wake-up)
//   AsyncPfState ..... everything AsyncPf changes after construction (what a snapshot holds)
//   AsyncPf .......... the MSRs and the state machine; queries for tests and reports
//
// The component is self-contained: it owns no vCPU, no LAPIC and no scheduler. The
// platform calls on_fault() from its EPT-violation path, complete() when the modelled
// host fetch of a page finishes, and check_completion() when it services the request
// raised through ApfHost::apf_request_ready() at the vCPU's next entry. Everything else
// reaches the platform through ApfHost. pvmsr/README.md §5.6 describes the contract.
//
// What was checked against KVM's source (the two eras the profiles reproduce):
//   modern: arch/x86/kvm/x86.c of a 6.18-era tree (kvm_pv_enable_async_pf,
//           kvm_pv_enable_async_pf_int, the MSR_KVM_ASYNC_PF_{EN,INT,ACK} cases of
//           kvm_set_msr_common / kvm_get_msr_common, kvm_can_deliver_async_pf,
//           kvm_can_do_async_pf, kvm_arch_async_page_not_present / _present /
//           _present_queued, kvm_arch_can_dequeue_async_page_present, the gfn table
//           helpers, apf_put_user_notpresent / _ready, apf_pageready_slot_free,
//           kvm_vcpu_reset), mmu.c alloc_apf_token and __kvm_mmu_faultin_pfn's async branch,
//           virt/kvm/async_pf.c (async_pf_execute, kvm_check_async_pf_completion,
//           kvm_setup_async_pf, kvm_async_pf_wakeup_all, kvm_clear_async_pf_completion_queue),
//           include/trace/events/kvm.h, lapic.c apic_set_spiv (KVM_REQ_APF_READY).
//   bugs:   machine.kvm.bugs (pvmsr/README.md §2.5) brings back four 5.8-6.18 behaviours in
//           the modern profile: page-ready for works that only halted (before
//           2a18b7e7cd88), dequeueing into a disabled LAPIC with no re-check at SVR enable
//           (before 2f15d027c05f), token 0 (before 6f3c1fc53d86) and the CR0.PG flush
//           (before ab4e41eb9fab).
//   orig:   arch/x86/kvm/x86.c of the 3.0/3.1 era (the same functions under their old
//           names: kvm_arch_can_inject_async_page_present, apf_put_user, __vcpu_run,
//           kvm_arch_vcpu_reset, kvm_set_cr0), mmu.c try_async_pf / can_do_async_pf,
//           include/linux/hash.h (hash_32 with GOLDEN_RATIO_PRIME_32 before Linux 4.7).
#pragma once
#include <array>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "core/guest_memory.h"
#include "core/trace.h"
#include "core/types.h"
#include "pvmsr/kvm_bugs.h"
#include "pvmsr/kvm_cpuid.h"
#include "pvmsr/pvclock.h"

namespace pvsim {

class Vcpu;

// ---------------------------------------------------------------------------------------
// The gfn table (vcpu->arch.apf.gfns): which guest frames have async work outstanding on
// one vCPU, so that a second fault on the same frame halts instead of queueing twice.
//
// 64 slots (ASYNC_PF_PER_VCPU), empty = ~0. Home slot = hash_32(gfn & 0xffffffff, 6), i.e.
// the top 6 bits of the 32-bit product (gfn * multiplier). The multiplier is
// GOLDEN_RATIO_32 = 0x61C88647 since Linux 4.7 (include/linux/hash.h); before that
// hash_32 used GOLDEN_RATIO_PRIME_32 = 0x9e370001, which is what the orig profile's KVM
// (2.6.38-3.x) computed. Insertion probes linearly (+1 mod 64) to the first empty slot;
// lookup probes at most 64 slots and stops at a match or an empty slot
// (kvm_async_pf_gfn_slot); deletion refills the hole by backward shifting
// (kvm_del_async_pf_gfn), so lookups never need tombstones.
class ApfGfnTable {
 public:
  static constexpr unsigned kSlots = 64;
  static constexpr uint64_t kEmpty = ~0ull;
  static constexpr uint32_t kMultiplierModern = 0x61C88647u;  // GOLDEN_RATIO_32 (4.7+)
  static constexpr uint32_t kMultiplierOrig = 0x9e370001u;    // GOLDEN_RATIO_PRIME_32

  explicit ApfGfnTable(AbiProfile abi = AbiProfile::Modern) : m_abi(abi) { reset(); }

  // kvm_async_pf_hash_fn: the home slot of `gfn` (only its low 32 bits take part).
  static unsigned home_slot(uint64_t gfn, AbiProfile abi);
  unsigned home_slot(uint64_t gfn) const { return home_slot(gfn, m_abi); }

  void reset();                        // kvm_async_pf_hash_reset: every slot empty
  // kvm_add_async_pf_gfn. KVM never adds to a full table (at most 64 works, one gfn
  // each, and a gfn already present is never added again); neither may callers here.
  void add(uint64_t gfn);
  bool find(uint64_t gfn) const;       // kvm_find_async_pf_gfn
  // kvm_del_async_pf_gfn. Modern KVM returns without touching anything when the gfn is
  // absent (its WARN_ON_ONCE check); the orig code had no such check and cleared
  // whatever slot the lookup stopped at. Both are reproduced.
  void del(uint64_t gfn);

  uint64_t slot(unsigned i) const { return m_slots.at(i); }
  unsigned size() const;               // occupied slots
  AbiProfile abi() const { return m_abi; }

 private:
  unsigned probe_slot(uint64_t gfn) const;  // kvm_async_pf_gfn_slot
  AbiProfile m_abi;
  std::array<uint64_t, kSlots> m_slots{};
};

// Allocates the next token of a vCPU from its counter `id` (vcpu->arch.apf.id, a u32):
// token = (id << 12) | vcpu_id, id post-incremented. Modern (alloc_apf_token, commit
// 6f3c1fc53d86, Linux 5.17): when (id << 12) is 0 as a u32 (the first token, and again
// after every 2^20) id becomes 1 first, so a token is never 0. Orig: no such step, so
// vCPU 0's first token is 0 and the counter wraps silently. `never_zero`: the skip applies
// (modern without machine.kvm.bugs.apf_token_zero, README §2.5).
uint32_t apf_next_token(uint32_t& id, unsigned vcpu_id, bool never_zero);

// ---------------------------------------------------------------------------------------

struct AsyncPfConfig {
  AbiProfile abi = AbiProfile::Modern;   // pvmsr/pvclock.h: Orig = 2.6.38-3.x seed era, Modern = 5.17+/6.x
  bool enforce_pv_cpuid = false;         // KVM_CAP_ENFORCE_PV_FEATURE_CPUID
  uint32_t cpuid_features = KvmCpuid::kDefaultFeatures;  // leaf 0x40000001 EAX as the guest sees it
  bool irqchip_in_kernel = true;         // scenario machine.irqchip "kernel" (default) | "none"
  uint64_t hva_base = 0x7f0000000000ull; // modelled host virtual address of GPA 0 (for kvm_async_pf_completed's "address")
  // Historic bugs (pvmsr/README.md §2.5); empty: the profile's defaults (kvm_bug_defaults).
  std::optional<KvmBugs> bugs;
};

// What the fault path knows of the faulting vCPU (inputs of kvm_can_do_async_pf /
// kvm_can_deliver_async_pf).
struct ApfVcpuState {
  unsigned cpl = 0;
  bool paging = true;              // CR0.PG
  bool interrupts_allowed = true;  // RFLAGS.IF = 1 and no STI / MOV SS shadow
  bool event_pending = false;      // an exception is pending or an event awaits re-injection (e.g. the access is part of event delivery)
};

// Implemented by the platform.
class ApfHost {
 public:
  virtual void apf_inject_page_fault(unsigned vcpu, uint32_t cr2) = 0;   // orig page-ready: queue #PF, error code 0, CR2 = token
  virtual void apf_inject_interrupt(unsigned vcpu, uint8_t vector) = 0;  // modern page-ready: fixed, edge interrupt through the local APIC
  virtual bool apf_lapic_enabled(unsigned vcpu) = 0;       // kvm_lapic_enabled(): hardware- and software-enabled
  virtual bool apf_can_inject_present(unsigned vcpu) = 0;  // orig: no re-injection and interrupts allowed now (IF=1, no shadow)
  virtual void apf_wake(unsigned vcpu) = 0;          // the vCPU becomes runnable (ends HLT and the synthetic halt): kvm_vcpu_kick + mp_state RUNNABLE
  virtual void apf_request_ready(unsigned vcpu) = 0; // KVM_REQ_APF_READY raised; the platform calls check_completion() at that vCPU's next entry
  // kvm_vcpu_kick alone, as kvm_arch_async_page_present_queued does after raising the
  // request unless a page-ready still awaits its ACK: a vCPU in guest mode leaves it so
  // the request is serviced now rather than at its next natural exit; a blocked vCPU
  // re-evaluates its wake-up conditions (has_done() is one). apf_request_ready() alone
  // must not kick. Default: nothing (requests then wait for the next exit).
  virtual void apf_kick(unsigned vcpu) { (void)vcpu; }

 protected:
  ~ApfHost() = default;
};

// What AsyncPf changes after construction, kept apart so that a snapshot copies all of it
// (pvmsr/README.md §1.3): per vCPU the MSR values, the area cache, the token counter, the
// gfn table, the outstanding and completed works (values: a work is its token, gfn and
// address) and the counters. The bound vCPUs are links, not state: they stay in AsyncPf.
struct AsyncPfState {
  struct Counters {
    uint64_t sync = 0;            // on_fault -> Sync (both reasons)
    uint64_t sync_limit = 0;      //   of which because 64 were outstanding
    uint64_t repeated = 0;        // on_fault -> RepeatedHalt
    uint64_t injected = 0;        // on_fault -> Injected
    uint64_t halted = 0;          // on_fault -> Halt
    uint64_t completed = 0;       // complete() of an outstanding token
    uint64_t ignored = 0;         // complete() of a token no longer outstanding
    uint64_t ready_delivered = 0; // page-ready injected (interrupt or #PF), wake-alls included
    uint64_t ready_silent = 0;    // works dequeued without an injection
    uint64_t wake_alls = 0;       // wake-all works queued
    uint64_t dropped = 0;         // works dropped by disable, reset or (orig) a CR0.PG toggle
  };
  struct Work {
    uint32_t token = 0;
    uint64_t gfn = 0;
    uint64_t gpa = 0;                  // cr2_or_gpa (0 for a wake-all)
    bool wakeup_all = false;
    bool notpresent_injected = false;
  };
  // Why a page-ready waits; pvsim_apf "held" is traced when this changes.
  enum class Held : uint8_t { None, LapicDisabled, SlotBusy, SlotUnreadable, AwaitAck, IrqBlocked };
  struct VcpuApf {
    uint64_t msr_en = 0;               // msr_en_val (orig: msr_val)
    uint64_t msr_int = 0;              // msr_int_val
    uint8_t vec = 0;                   // apf.vec (not cleared by reset, as in kvm_vcpu_reset)
    bool send_always = false;          // modern apf.send_always
    bool send_user_only = false;       // orig apf.send_user_only (zero until an enable latches it)
    bool delivery_as_pf_vmexit = false;
    bool pageready_pending = false;
    bool halted = false;
    uint32_t id = 0;                   // token counter
    // The gfn_to_hva_cache of the shared area: set by every enable that reaches the
    // cache init, usable only when that init succeeded.
    uint64_t area = 0;
    bool area_ok = false;
    ApfGfnTable gfns;
    std::deque<Work> queue;            // outstanding (async_pf.queue minus completed ones)
    std::deque<Work> done;             // completed, not yet dequeued (async_pf.done)
    unsigned queued = 0;               // async_pf.queued: outstanding + done
    Held held = Held::None;
    uint32_t held_value = 0;
    Counters counters;
  };
  std::vector<VcpuApf> m_vcpus;
};

class AsyncPf : private AsyncPfState {
 public:
  static constexpr uint32_t kMsrEn = 0x4b564d02, kMsrInt = 0x4b564d06, kMsrAck = 0x4b564d07;
  static constexpr unsigned kMaxOutstanding = 64;      // ASYNC_PF_PER_VCPU
  static constexpr uint32_t kWakeAllToken = 0xffffffffu;

  // MSR_KVM_ASYNC_PF_EN bits (uapi asm/kvm_para.h).
  static constexpr uint64_t kEnabled = 1u << 0;           // KVM_ASYNC_PF_ENABLED
  static constexpr uint64_t kSendAlways = 1u << 1;        // KVM_ASYNC_PF_SEND_ALWAYS
  static constexpr uint64_t kDeliveryAsPfVmexit = 1u << 2;  // KVM_ASYNC_PF_DELIVERY_AS_PF_VMEXIT
  static constexpr uint64_t kDeliveryAsInt = 1u << 3;     // KVM_ASYNC_PF_DELIVERY_AS_INT
  // `flags` (seed era: `reason`) values and the `token` slot of kvm_vcpu_pv_apf_data.
  static constexpr uint32_t kReasonPageNotPresent = 1;    // KVM_PV_REASON_PAGE_NOT_PRESENT
  static constexpr uint32_t kReasonPageReady = 2;         // KVM_PV_REASON_PAGE_READY (seed era only)
  static constexpr uint64_t kTokenOffset = 4;             // offsetof(kvm_vcpu_pv_apf_data, token)

  AsyncPf(const AsyncPfConfig& cfg, unsigned vcpus, GuestMemory& mem, Tracer& tracer, ApfHost& host);
  AsyncPf(const AsyncPf&) = delete;
  AsyncPf& operator=(const AsyncPf&) = delete;

  // Registers 0x4b564d02 (and, modern only, 0x4b564d06/07) in v.msrs(); trace timestamps
  // of MSR-driven events and of reset() come from v.now(). `this` must outlive every MSR
  // access of the vCPU.
  void attach(Vcpu& v);

  enum class FaultKind : uint8_t { Sync, RepeatedHalt, Injected, Halt };
  struct FaultResult { FaultKind kind = FaultKind::Sync; uint32_t token = 0; };
  // __kvm_mmu_faultin_pfn's async branch, called when a guest access (gpa) needs a page the host must fetch.
  //  Sync: !can_do_async_pf, or 64 outstanding -> the caller fetches synchronously (no trace here except what KVM traces).
  //  RepeatedHalt: gfn already outstanding on this vCPU -> synthetic halt (KVM_REQ_APF_HALT).
  //  Injected: new work; not-present delivered (flags/reason written); the CALLER raises #PF error 0 CR2 = token.
  //  Halt: new work, but not delivered (can_deliver false / write failed) -> synthetic halt.
  // For Injected and Halt the caller starts the fetch and later calls complete(vcpu, token, t).
  // `token` is set for Injected and Halt (and for a Sync caused by the 64 limit, whose
  // token KVM allocated and threw away).
  FaultResult on_fault(unsigned vcpu, Tick now, uint64_t gpa, const ApfVcpuState& st);
  // The fetch for an outstanding work finished (async_pf_execute): trace kvm_async_pf_completed, move it to
  // the done list, KVM_REQ_APF_READY / kick as KVM does. A token no longer outstanding (cancelled by disable/reset) is ignored.
  void complete(unsigned vcpu, uint32_t token, Tick now);
  // KVM_REQ_APF_READY serviced at entry (kvm_check_async_pf_completion): modern loops while done non-empty and
  // can_dequeue; orig delivers at most one per call and only when apf_can_inject_present().
  void check_completion(unsigned vcpu, Tick now);
  bool halted(unsigned vcpu) const;        // synthetic halt in effect (vcpu->arch.apf.halted)
  void clear_halt(unsigned vcpu);          // the vCPU woke for another reason (vcpu_block: apf.halted = false)
  bool has_done(unsigned vcpu) const;      // done list non-empty (a wake-up condition, kvm_vcpu_has_events)
  void on_lapic_sw_enable(unsigned vcpu);  // SVR software enable -> KVM_REQ_APF_READY (commit 2f15d027c05f; not under apf_ready_lost_lapic_disabled)
  // CR0.PG 0->1 -> KVM_REQ_APF_READY (commit ab4e41eb9fab, modern only). In the orig
  // profile this is the toggle of on_paging_changed() below.
  void on_paging_enabled(unsigned vcpu);
  // Any CR0.PG change (the platform may call this instead of on_paging_enabled). Orig
  // (3.0 kvm_set_cr0), and modern with apf_pg_toggle_drops_work (pvmsr/README.md §2.5): a
  // toggle either way drops every work and resets the gfn table, as KVM did until
  // ab4e41eb9fab. Modern: 0->1 is on_paging_enabled(), 1->0 does nothing.
  void on_paging_changed(unsigned vcpu, bool paging_now);
  void reset(unsigned vcpu);               // INIT/RESET (kvm_vcpu_reset): MSR values 0, queue and gfn table cleared, halted cleared, silently

  // --- queries for tests and reports ---
  using Counters = AsyncPfState::Counters;
  uint64_t msr_en(unsigned v) const { return st(v).msr_en; }
  uint64_t msr_int(unsigned v) const { return st(v).msr_int; }
  uint8_t vector(unsigned v) const { return st(v).vec; }
  bool enabled(unsigned v) const;          // kvm_pv_async_pf_enabled (orig: bit 0)
  unsigned queued(unsigned v) const { return st(v).queued; }  // vcpu->async_pf.queued
  size_t outstanding(unsigned v) const { return st(v).queue.size(); }
  size_t done_count(unsigned v) const { return st(v).done.size(); }
  bool pageready_pending(unsigned v) const { return st(v).pageready_pending; }
  const ApfGfnTable& gfn_table(unsigned v) const { return st(v).gfns; }
  uint32_t token_counter(unsigned v) const { return st(v).id; }
  const Counters& counters(unsigned v) const { return st(v).counters; }
  const AsyncPfConfig& config() const { return m_cfg; }
  const KvmBugs& bugs() const { return m_bugs; }

  // Snapshots (pvmsr/README.md §1.3). The fetches in flight are the platform's: it restores
  // them with this, so that each calls complete() for a token this snapshot has outstanding.
  struct Snapshot {
    AsyncPfState state;
  };
  Snapshot save() const { return {static_cast<const AsyncPfState&>(*this)}; }
  void restore(const Snapshot& s) { static_cast<AsyncPfState&>(*this) = s.state; }

 private:
  const VcpuApf& st(unsigned v) const { return m_vcpus.at(v); }
  VcpuApf& st(unsigned v) { return m_vcpus.at(v); }
  bool feature_visible(unsigned bit) const;
  Tick vcpu_now(unsigned v) const;
  bool write_area_u32(VcpuApf& s, uint64_t offset, uint32_t value);
  bool read_area_u32(const VcpuApf& s, uint64_t offset, uint32_t& value) const;

  bool write_en(unsigned v, uint64_t value);   // false = #GP
  bool write_int(unsigned v, uint64_t value);
  void write_ack(unsigned v, uint64_t value);
  void wakeup_all(unsigned v, Tick now);
  void present_queued(unsigned v, Tick now);
  void clear_queue(unsigned v, Tick now, const char* why);
  bool present(unsigned v, const Work& w, Tick now);  // true = a page-ready was injected
  void set_held(unsigned v, Tick now, Held why, uint32_t value);
  void end_halt(unsigned v, Tick now, const char* why);
  void apf_trace(unsigned v, Tick now, std::string_view what, const std::string& detail);

  AsyncPfConfig m_cfg;
  KvmBugs m_bugs;  // m_cfg.bugs, or the profile's defaults
  GuestMemory& m_mem;
  Tracer& m_tracer;
  ApfHost& m_host;
  std::vector<Vcpu*> m_attached;  // per vCPU, bound by attach()
};

}  // namespace pvsim
