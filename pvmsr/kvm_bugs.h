// pvmsr/kvm_bugs.h — historic KVM bugs a scenario can turn back on, one at a time
// (scenario key machine.kvm.bugs; pvmsr/README.md §2.5).
//
// Each flag brings back the behaviour KVM had before one fix, and nothing else, so a
// scenario pair that differs in one flag shows exactly what that fix changed. A flag
// belongs to the profile (machine.kvm.abi) whose code it changes: the seed-era ("orig")
// bugs default to on under "orig", the 5.x bugs default to off under "modern"; a scenario
// may turn a flag of its own profile either way, and naming a flag of the other profile is
// a scenario error (the other profile's code does not have that path).
//
// Components take the flags through their config's `std::optional<KvmBugs> bugs`; an empty
// one means kvm_bug_defaults(abi), so a caller that never heard of the flags gets the
// profile's historic behaviour. The flags are configuration, not state: snapshots carry
// nothing of them.
#pragma once
#include <array>
#include <cstdint>
#include <string_view>

#include "pvmsr/pvclock.h"

namespace pvsim {

struct KvmBugs {
  // kvmclock (§4.6, §4.4)
  bool kvmclock_even_version_copy = false;  // orig: one 32-byte copy, version += 2, never odd
  bool kvmclock_no_backwards_clamp = false; // orig: no clamp of a re-based pair (before 2.6.37)
  // steal time (§6.3)
  bool steal_time_write_back = false;       // orig: whole record read, preempted cleared, written back; a put overwrites FLUSH_TLB (CVE-2019-3016)
  bool steal_time_stale_cache = false;      // modern: after a new GPA, updates and the put's `preempted` go through the cache built for the old one
  // async PF (§5.6)
  bool apf_ready_without_not_present = false;  // modern: page-ready also for works that only halted
  bool apf_ready_lost_lapic_disabled = false;  // modern: page-ready dequeued into a disabled LAPIC, no SVR re-check
  bool apf_token_zero = false;                 // modern: the token counter starts at 0, so vCPU 0's first token is 0
  bool apf_pg_toggle_drops_work = false;       // modern: a CR0.PG change drops every outstanding and completed work, 0->1 re-checks nothing
  bool apf_ready_on_pending_pf = false;        // orig: page-ready #PF queued on top of a pending not-present #PF (#DF); the platform's (Platform::apf_can_inject_present)
  // PV EOI (§7.3)
  bool pv_eoi_keeps_bad_value = false;         // orig and modern: the refused value stays stored after #GP
};

struct KvmBugInfo {
  std::string_view name;          // the scenario key
  bool KvmBugs::*flag;
  // Which profiles have the code path: a scenario may set the flag only under these.
  bool in_orig;
  bool in_modern;
  bool orig_default;              // value under "orig" when the scenario does not say
  std::string_view what;          // one line: what goes wrong
  std::string_view kernels;       // e.g. "5.8-5.12"
  std::string_view fix;           // "2f15d027c05f (5.13)"
};

// Every flag, in the order `pvsim bugs` prints them.
const std::array<KvmBugInfo, 10>& kvm_bug_table();

// The defaults of a profile (orig: the flags whose orig_default is true; modern: none).
KvmBugs kvm_bug_defaults(AbiProfile abi);

}  // namespace pvsim
