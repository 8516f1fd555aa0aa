// pvmsr/steal_time.h — the hypervisor side of steal time: MSR_KVM_STEAL_TIME (0x4b564d03),
// the 64-byte record KVM keeps in guest memory, and the `preempted` byte that PV TLB flush
// rides on (pvmsr/README.md §6).
//
// Why: a vCPU is a host thread. While it is runnable but waiting for a host CPU, guest time
// passes without the guest running; the host scheduler counts that wait as the thread's
// run delay (sched_info.run_delay). Steal time publishes it, per vCPU, so the guest can
// charge it to "steal" instead of to whatever task it interrupted. The same record carries
// `preempted`: set by the host when it takes the CPU away from the vCPU, it lets other vCPUs
// skip a TLB-shootdown IPI to a vCPU that is not running (they set FLUSH_TLB in it and the
// host flushes at that vCPU's next entry).
//
// Index:
//   StealTimeConfig ... what the scenario decides (profile, enforcement, CPUID, sched_info)
//   StealTime
//     attach .......... the MSR handler (kvm_set_msr_common / kvm_get_msr_common)
//     on_load ......... kvm_arch_vcpu_load: raise KVM_REQ_STEAL_UPDATE
//     record .......... the request serviced at guest entry (record_steal_time)
//     on_put .......... kvm_arch_vcpu_put of a preempted vCPU (kvm_steal_time_set_preempted)
//     reset ........... INIT/RESET (kvm_vcpu_reset)
//     queries ......... MSR value, host-side state and counters for tests and reports
//
// The record (struct kvm_steal_time, uapi asm/kvm_para.h): u64 steal @0, u32 version @8,
// u32 flags @12 (never written by KVM), u8 preempted @16 (bit 0 KVM_VCPU_PREEMPTED, bit 1
// KVM_VCPU_FLUSH_TLB), padding to 64 bytes. The MSR: bit 0 enable, bits 5:1 reserved,
// bits 63:6 the GPA (so the record is 64-byte aligned and never crosses a page).
//
// Profiles (pvmsr/README.md §2.1). What was checked against KVM's arch/x86/kvm/x86.c:
//
//   Modern (6.x: kvm_set_msr_common, kvm_get_msr_common, record_steal_time,
//   kvm_steal_time_set_preempted, kvm_arch_vcpu_put, kvm_vcpu_reset):
//   - WRMSR: feature 5 gate (guest_pv_has), #GP without sched_info, #GP on bits 5:1, store
//     the raw value, KVM_REQ_STEAL_UPDATE when bit 0 is set. No RAM check: the host's
//     gfn->hva cache of the record is (re)built by record_steal_time when the MSR's GPA
//     differs from the cached one ("revalidate steal time cache if MSR value changes", a
//     fix to 7e2175ebd695), and an unusable GPA just means nothing is written.
//     `last_steal` is not re-based at enable: it starts at 0 when the vCPU is created and
//     only a completed update moves it, so the first update after an enable reports
//     everything since the previous update (or since creation).
//   - record: with PV_TLB_FLUSH visible (feature 9 through guest_pv_has; always, without
//     enforcement) an atomic exchange of `preempted` with 0, the kvm_pv_tlb_flush
//     tracepoint, and a guest TLB flush when FLUSH_TLB was set (b043138246a4, 5.6);
//     otherwise a plain store of 0. Then version: the guest's value, +1 if odd (junk), +1
//     and stored (odd); steal = guest's steal + (run_delay - last_steal), stored; version
//     +1 and stored (even). Three separate stores, net +2.
//   - put: only for a vCPU preempted at an instruction boundary (the caller's job), only
//     when enabled, only when the host's own copy of `preempted` is 0 (a second put must
//     not overwrite a FLUSH_TLB the guest added, the 5.6 fix "be careful not to clear
//     KVM_VCPU_FLUSH_TLB bit"), and only when the cache is valid for the MSR's current
//     GPA (the "do not report preemption if the steal time cache is stale" fix to
//     7e2175ebd695, the kexec bug of 5.16-5.19). It stores PREEMPTED and sets the copy.
//   - INIT/RESET: the MSR value becomes 0; the host copy of `preempted`, `last_steal` and
//     the cache are left as they are.
//
//   Orig — a merged profile: the host CVE-2019-3016 was found on. It combines 3.1's
//   whole-record write with the `preempted` byte of 4.10+ and the copy-side xchg of 4.16+:
//   - WRMSR: as modern, but the cache is initialised at WRMSR time for the 64 bytes at the
//     GPA, before the value is stored (3.x-5.5): a record not wholly in RAM is #GP and the
//     MSR keeps its old value, yet the cache now points at the failed GPA, so the record
//     registered before stops being updated. This is checked in the source: the 3.x/4.x
//     MSR_KVM_STEAL_TIME case calls kvm_gfn_to_hva_cache_init and returns 1 when it fails,
//     a disable included, since the call precedes the enable test. 3.x hosts then re-based
//     `last_steal` to the thread's current run delay at enable (set_run_delay_source());
//     the 4.x code read for this no longer does.
//   - record: read the whole record into a host copy now; if the copy's `preempted` has
//     FLUSH_TLB, the caller flushes (4.16-5.5 did the xchg on this copy, not on guest
//     memory); clear the copy's `preempted`, steal += run_delay - last_steal, version += 2
//     (no odd phase, as 3.1), and store the whole 64-byte copy back in one store. A
//     FLUSH_TLB the guest stores between the read and that store is overwritten with 0:
//     the flush never happens (CVE-2019-3016). The kvm_pv_tlb_flush tracepoint ("KVM: X86:
//     Add pv tlb shootdown tracepoint", 2019) is emitted at every such update, with the
//     copy's FLUSH_TLB and no feature test, as the hosts of late 2019 did.
//     Not KVM verbatim: 4.x-5.5 used the odd/even protocol and wrote the whole copy three
//     times (version odd, steal, version even). The merged profile keeps 3.1's single
//     write; both lose the flag the same way.
//   - put: when enabled, a plain one-byte store of PREEMPTED through the WRMSR-time cache,
//     with no check of a host copy (4.10-5.5): a second put overwrites PREEMPTED|FLUSH_TLB
//     with PREEMPTED. The cache always follows the last WRMSR, so no stale-GPA check exists.
//   - INIT/RESET: the MSR value becomes 0 (as in every era).
//
// Historic-bug flags (pvmsr/README.md §2.5), both on the paths above:
//   - steal_time_write_back (orig, on by default): the record's whole-record write-back and
//     the put's unconditional store, i.e. both halves of CVE-2019-3016. Off: the record's
//     `preempted` is exchanged on guest memory at once and only bytes 0-15 (steal,
//     version, flags) are written back, version still += 2 (b043138246a4); the put skips a
//     byte its own copy says is already PREEMPTED (8c6de56a42e0), and that copy is kept.
//   - steal_time_stale_cache (modern, off by default): 5.16-5.19, after 7e2175ebd695 and
//     before 901d3765fa80 / c3c28d24d910: a usable cache is not compared with the MSR's
//     GPA, so after the guest moves its record both the updates and the put keep writing
//     the old one (as long as the cache stays usable: pvsim's memslots never change).
//
// Enforcement (guest_pv_has) applies in both profiles when the scenario asks for it, as for
// kvmclock and async PF.
//
// Trace (core/trace.h): kvm_pv_tlb_flush as KVM emits it (above); pvsim_steal "update"
// ("steal S delta D version V", the values stored), "preempted" ("0xOLD -> 0x1", the byte
// before and after the put's store) and "disabled" (a WRMSR that turns an enabled record
// off; KVM then stops updating and leaves guest memory as it is).
//
// What the caller (the Hypervisor and the host model) does:
//   - on_load(i) whenever vCPU i's thread is scheduled in (kvm_arch_vcpu_load): every run
//     slice that follows a deschedule, and the first one.
//   - record(v, run_delay_ns(i), stores) in step 4 of vcpu_enter_guest's order (after the
//     clock requests, before async-PF page-ready): it consumes the request itself and does
//     nothing when none is pending, so it may be called at every entry. Apply `stores`
//     (spaced by host.pv_store_ns); call v.flush_tlb() when it returns true.
//   - on_put(i, t) when the host model preempts vCPU i involuntarily at an instruction
//     boundary (not when it blocks in HLT or is halted). Writes guest memory at once.
//   - reset(i) on INIT/RESET; set_run_delay_source() once, for the orig enable re-base.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "core/guest_memory.h"
#include "core/trace.h"
#include "core/types.h"
#include "pvmsr/host_stores.h"
#include "pvmsr/kvm_bugs.h"
#include "pvmsr/pvclock.h"

namespace pvsim {

class Vcpu;

struct StealTimeConfig {
  AbiProfile abi = AbiProfile::Modern;  // pvmsr/pvclock.h
  bool enforce_pv_cpuid = false;        // KVM_CAP_ENFORCE_PV_FEATURE_CPUID
  uint32_t cpuid_features = ~0u;        // leaf 0x40000001 EAX as the guest sees it
  bool host_sched_info = true;          // sched_info_on(): false -> WRMSR #GPs
  // Historic bugs (pvmsr/README.md §2.5); empty: the profile's defaults (kvm_bug_defaults).
  std::optional<KvmBugs> bugs;
};

// What StealTime changes after construction, kept apart so that a snapshot copies all of
// it (pvmsr/README.md §1.3).
struct StealTimeState {
  struct Counters {
    uint64_t updates = 0;            // records that stored an update
    uint64_t skipped = 0;            // requests serviced while enabled but with no usable record
    uint64_t flushes = 0;            // record() returned true
    uint64_t preempted_set = 0;      // on_put stored PREEMPTED
    uint64_t preempted_skipped = 0;  // on_put while enabled that stored nothing
  };
  struct VcpuSteal {
    uint64_t msr = 0;         // vcpu->arch.st.msr_val
    uint64_t last_steal = 0;  // run delay already published
    uint8_t preempted = 0;    // modern host copy of `preempted`
    bool requested = false;   // KVM_REQ_STEAL_UPDATE
    uint64_t cache_gpa = 0;   // gfn_to_hva_cache: GPA it was built for
    bool cache_ok = false;    //   ... and whether that worked (a new vCPU's cache is unusable)
    Counters counters;
  };
  std::vector<VcpuSteal> m_vcpus;
};

class StealTime : private StealTimeState {
 public:
  static constexpr uint32_t kMsr = 0x4b564d03;
  static constexpr unsigned kFeatureBit = 5;          // KVM_FEATURE_STEAL_TIME
  static constexpr unsigned kTlbFlushFeatureBit = 9;  // KVM_FEATURE_PV_TLB_FLUSH
  static constexpr uint64_t kEnabled = 1;             // KVM_MSR_ENABLED
  static constexpr uint64_t kReservedMask = 0x3e;     // KVM_STEAL_RESERVED_MASK
  static constexpr uint64_t kGpaMask = ~0x3full;      // KVM_STEAL_VALID_BITS
  static constexpr uint8_t kPreempted = 1;            // KVM_VCPU_PREEMPTED
  static constexpr uint8_t kFlushTlb = 2;             // KVM_VCPU_FLUSH_TLB
  // struct kvm_steal_time
  static constexpr uint64_t kOffSteal = 0, kOffVersion = 8, kOffFlags = 12, kOffPreempted = 16;
  static constexpr uint64_t kSize = 64;

  StealTime(const StealTimeConfig& cfg, unsigned vcpus, GuestMemory& mem, Tracer& tracer);
  StealTime(const StealTime&) = delete;
  StealTime& operator=(const StealTime&) = delete;

  // Orig only: the host run delay of vCPU i's thread at the moment of an enabling WRMSR,
  // which 3.1 made the new `last_steal`. Without a source the re-base is skipped (what
  // 4.x-5.5 did; modern never re-bases).
  void set_run_delay_source(std::function<uint64_t(unsigned)> source);

  // Registers 0x4b564d03 (read and write) in v.msrs(); the "disabled" trace uses v.now().
  // `this` must outlive every MSR access of the vCPU.
  void attach(Vcpu& v);

  void on_load(unsigned vcpu);  // KVM_REQ_STEAL_UPDATE
  // Inline: the Hypervisor asks at every entry (every instruction at quantum 1).
  bool update_requested(unsigned vcpu) const { return m_vcpus[vcpu].requested; }
  // KVM_REQ_STEAL_UPDATE at guest entry (record_steal_time). Consumes the request; does
  // nothing (and returns false) when none is pending. `run_delay_ns` is the vCPU thread's
  // cumulative run delay from the host model. Reads happen now, and so does the modern
  // xchg of `preempted` (it is one atomic instruction); the other stores go to `out` in
  // KVM's order, labelled "preempted", "version", "steal" (modern) or "record" (orig, all
  // 64 bytes). Returns true when the guest TLB must be flushed (FLUSH_TLB found); the
  // caller then calls Vcpu::flush_tlb().
  bool record(Vcpu& v, uint64_t run_delay_ns, HostStores& out);
  // kvm_arch_vcpu_put of a vCPU the host preempted (involuntary, at an instruction
  // boundary): kvm_steal_time_set_preempted, written straight to guest memory (one byte
  // store). `at` is the trace timestamp.
  void on_put(unsigned vcpu, Tick at);
  void reset(unsigned vcpu);  // INIT/RESET (kvm_vcpu_reset): the MSR value only

  // --- queries for tests and reports ---
  using Counters = StealTimeState::Counters;
  uint64_t msr(unsigned vcpu) const { return st(vcpu).msr; }
  bool enabled(unsigned vcpu) const { return (st(vcpu).msr & kEnabled) != 0; }
  uint64_t gpa(unsigned vcpu) const { return st(vcpu).msr & kGpaMask; }
  uint64_t last_steal(unsigned vcpu) const { return st(vcpu).last_steal; }
  // Modern, and orig without steal_time_write_back: the host's copy of `preempted`
  // (vcpu->arch.st.preempted). Orig with it: 0 (no copy is consulted).
  uint8_t preempted_copy(unsigned vcpu) const { return st(vcpu).preempted; }
  // The gfn->hva cache of the record: the GPA it was last built for and whether it works.
  uint64_t cache_gpa(unsigned vcpu) const { return st(vcpu).cache_gpa; }
  bool cache_valid(unsigned vcpu) const { return st(vcpu).cache_ok; }
  const Counters& counters(unsigned vcpu) const { return st(vcpu).counters; }
  const StealTimeConfig& config() const { return m_cfg; }
  const KvmBugs& bugs() const { return m_bugs; }

  // Snapshots (pvmsr/README.md §1.3): every vCPU's MSR value, pending request, the run
  // delay already published, the host copy of `preempted`, the record's cache and the
  // counters. The run-delay source is the host model's, which restores its own clock.
  struct Snapshot {
    StealTimeState state;
  };
  Snapshot save() const { return {static_cast<const StealTimeState&>(*this)}; }
  void restore(const Snapshot& s) { static_cast<StealTimeState&>(*this) = s.state; }

 private:
  const VcpuSteal& st(unsigned v) const { return m_vcpus.at(v); }
  VcpuSteal& st(unsigned v) { return m_vcpus.at(v); }
  bool feature_visible(unsigned bit) const;
  bool write_msr(Vcpu& v, uint64_t value);  // false = #GP
  bool record_modern(Vcpu& v, VcpuSteal& s, uint64_t run_delay_ns, HostStores& out);
  bool record_orig(Vcpu& v, VcpuSteal& s, uint64_t run_delay_ns, HostStores& out);
  void trace_update(Vcpu& v, uint64_t steal, uint64_t delta, uint32_t version);

  StealTimeConfig m_cfg;
  KvmBugs m_bugs;  // m_cfg.bugs, or the profile's defaults
  GuestMemory& m_mem;
  Tracer& m_tracer;
  std::function<uint64_t(unsigned)> m_run_delay;
};

}  // namespace pvsim
