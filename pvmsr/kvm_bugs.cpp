// pvmsr/kvm_bugs.cpp — the table of historic KVM bugs (pvmsr/README.md §2.5) and each
// profile's defaults. The commit ids and kernel ranges are the ones pvmsr/README.md §2.5
// gives with their sources; an id that could not be checked says so.
#include "pvmsr/kvm_bugs.h"

namespace pvsim {

const std::array<KvmBugInfo, 10>& kvm_bug_table() {
  static const std::array<KvmBugInfo, 10> kTable = {{
      {"kvmclock_even_version_copy", &KvmBugs::kvmclock_even_version_copy, true, false, true,
       "a vCPU's kvmclock structure is one 32-byte copy with version += 2, never odd: a reader "
       "on another vCPU can take old and new fields under one even version (torn read)",
       "until the 4.x rework", "odd/even version stores (4.x; commit unverified)"},
      {"kvmclock_no_backwards_clamp", &KvmBugs::kvmclock_no_backwards_clamp, true, false, false,
       "a re-based (system_time, tsc) pair may lie behind what the guest already extrapolated "
       "from the previous one: kvmclock steps backwards on one vCPU",
       "before 2.6.37", "1d5f066e0b63 (2.6.37)"},
      {"steal_time_write_back", &KvmBugs::steal_time_write_back, true, false, true,
       "the steal-time update writes the whole record back, `preempted` = 0 included, and a put "
       "stores PREEMPTED over the byte: a FLUSH_TLB the guest set meanwhile is lost "
       "(CVE-2019-3016)",
       "4.16-5.5", "b043138246a4 and 8c6de56a42e0 (5.6)"},
      {"steal_time_stale_cache", &KvmBugs::steal_time_stale_cache, false, true, false,
       "after the guest moves its steal-time record (a new GPA in MSR_KVM_STEAL_TIME), updates "
       "and `preempted` still go through the cache built for the old GPA",
       "5.16-5.19", "901d3765fa80 and c3c28d24d910 (6.0-rc1; also in 5.15.y and 5.18.y stable)"},
      {"apf_ready_without_not_present", &KvmBugs::apf_ready_without_not_present, false, true,
       false,
       "page-ready (token and interrupt) also for a fault that only halted the vCPU: the guest "
       "gets a token it never waited for",
       "5.8 merge window", "2a18b7e7cd88 (5.8-rc1)"},
      {"apf_ready_lost_lapic_disabled", &KvmBugs::apf_ready_lost_lapic_disabled, false, true,
       false,
       "a page-ready dequeued while the LAPIC is software-disabled: the token is written, the "
       "interrupt is dropped, the slot stays busy and every later page-ready waits forever",
       "5.8-5.12", "2f15d027c05f (5.13)"},
      {"apf_token_zero", &KvmBugs::apf_token_zero, false, true, false,
       "vCPU 0's first async-PF token is 0, the value that means \"slot free\": its page-ready "
       "leaves the slot reading 0 and the next one overwrites it",
       "5.8-5.16", "6f3c1fc53d86 (5.17)"},
      {"apf_pg_toggle_drops_work", &KvmBugs::apf_pg_toggle_drops_work, false, true, false,
       "a CR0.PG change (e.g. an SMI) drops every outstanding and completed async PF with no "
       "page-ready: the waiting guest tasks never wake",
       "5.8-6.18", "ab4e41eb9fab (6.19-rc1; stable backports)"},
      {"apf_ready_on_pending_pf", &KvmBugs::apf_ready_on_pending_pf, true, false, false,
       "a page-ready #PF is queued on top of a pending page-not-present #PF: the two merge "
       "into #DF (carried by the platform)",
       "4.13-5.7", "9a6e7c39810e (cancels the pending not-present); the interrupt page-ready of "
       "2635b5c4a0e4 (5.8) removed the path"},
      {"pv_eoi_keeps_bad_value", &KvmBugs::pv_eoi_keeps_bad_value, true, true, true,
       "an MSR_KVM_PV_EOI_EN enable refused with #GP (area not in RAM) still stores the value: "
       "RDMSR returns it",
       "3.6-5.15", "afd67ee3cbbd (5.16)"},
  }};
  return kTable;
}

KvmBugs kvm_bug_defaults(AbiProfile abi) {
  KvmBugs b;
  if (abi != AbiProfile::Orig) return b;  // modern: every fix in place
  for (const KvmBugInfo& info : kvm_bug_table())
    if (info.orig_default) b.*info.flag = true;
  return b;
}

}  // namespace pvsim
