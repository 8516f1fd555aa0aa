// pvmsr/steal_time.cpp — see steal_time.h. Function names in comments are KVM's
// (arch/x86/kvm/x86.c); pvmsr/README.md §6 describes the behaviour in prose.
#include "pvmsr/steal_time.h"

#include <fmt/format.h>

#include <array>
#include <cstring>

#include "core/vcpu.h"

namespace pvsim {

StealTime::StealTime(const StealTimeConfig& cfg, unsigned vcpus, GuestMemory& mem, Tracer& tracer)
    : m_cfg(cfg), m_bugs(cfg.bugs.value_or(kvm_bug_defaults(cfg.abi))), m_mem(mem), m_tracer(tracer) {
  m_vcpus.resize(vcpus);
}

void StealTime::set_run_delay_source(std::function<uint64_t(unsigned)> source) {
  m_run_delay = std::move(source);
}

bool StealTime::feature_visible(unsigned bit) const {
  // guest_pv_has (pvmsr/README.md §2.2): without enforcement every feature is "present".
  return !m_cfg.enforce_pv_cpuid || ((m_cfg.cpuid_features >> bit) & 1u) != 0;
}

void StealTime::attach(Vcpu& v) {
  const unsigned i = v.index();
  MsrHandler h;
  h.index = kMsr;
  h.name = "MSR_KVM_STEAL_TIME";
  // kvm_get_msr_common: the feature gate only (no sched_info test on reads), then the raw
  // value as last stored.
  h.read = [this, i](Vcpu&, uint64_t& value) {
    if (!feature_visible(kFeatureBit)) return MsrStatus::Gp;
    value = st(i).msr;
    return MsrStatus::Ok;
  };
  h.write = [this](Vcpu& vcpu, uint64_t value) {
    return write_msr(vcpu, value) ? MsrStatus::Ok : MsrStatus::Gp;
  };
  v.msrs().add(std::move(h));
}

// The MSR_KVM_STEAL_TIME case of kvm_set_msr_common, in its order.
bool StealTime::write_msr(Vcpu& v, uint64_t value) {
  const unsigned i = v.index();
  VcpuSteal& s = st(i);
  if (!feature_visible(kFeatureBit)) return false;
  if (!m_cfg.host_sched_info) return false;  // no run delay to report (sched_info_on())
  if (value & kReservedMask) return false;
  if (m_cfg.abi == AbiProfile::Orig) {
    // kvm_gfn_to_hva_cache_init at WRMSR time: the cache is overwritten with the new GPA
    // whether or not it succeeds, and a failure is #GP before the value is stored.
    s.cache_gpa = value & kGpaMask;
    s.cache_ok = m_mem.contains(Gpa(s.cache_gpa), kSize);
    if (!s.cache_ok) return false;
  }
  const bool was_enabled = (s.msr & kEnabled) != 0;
  s.msr = value;
  if (!(value & kEnabled)) {
    // KVM just stops updating; the record, `preempted` included, stays as the guest left it.
    if (was_enabled) m_tracer.pvsim_steal(v.now(), i, "disabled", "");
    return true;
  }
  // 3.1: an enable publishes only the run delay from now on.
  if (m_cfg.abi == AbiProfile::Orig && m_run_delay) s.last_steal = m_run_delay(i);
  s.requested = true;
  return true;
}

void StealTime::on_load(unsigned vcpu) { st(vcpu).requested = true; }

bool StealTime::record(Vcpu& v, uint64_t run_delay_ns, HostStores& out) {
  VcpuSteal& s = st(v.index());
  if (!s.requested) return false;
  s.requested = false;  // kvm_check_request clears it whatever record_steal_time then does
  if (!(s.msr & kEnabled)) return false;
  const bool flush = m_cfg.abi == AbiProfile::Orig ? record_orig(v, s, run_delay_ns, out)
                                                   : record_modern(v, s, run_delay_ns, out);
  if (flush) ++s.counters.flushes;
  return flush;
}

void StealTime::trace_update(Vcpu& v, uint64_t steal, uint64_t delta, uint32_t version) {
  m_tracer.pvsim_steal(v.now(), v.index(), "update",
                       fmt::format("steal {} delta {} version {}", steal, delta, version));
}

// record_steal_time, 6.x.
bool StealTime::record_modern(Vcpu& v, VcpuSteal& s, uint64_t run_delay_ns, HostStores& out) {
  const unsigned i = v.index();
  // The cache is rebuilt when it is unusable or was built for another GPA; a failed build
  // still records the GPA it tried (kvm_gfn_to_hva_cache_init), and the update is skipped
  // without touching last_steal, so the delay keeps accumulating. The GPA comparison is
  // 901d3765fa80; with steal_time_stale_cache (5.16-5.19, pvmsr/README.md §2.5) a usable
  // cache is kept after the guest moved its record, and the update goes to the old one.
  const uint64_t msr_gpa = s.msr & kGpaMask;
  if (!s.cache_ok || (!m_bugs.steal_time_stale_cache && s.cache_gpa != msr_gpa)) {
    s.cache_gpa = msr_gpa;
    s.cache_ok = m_mem.contains(Gpa(msr_gpa), kSize);
    if (!s.cache_ok) {
      ++s.counters.skipped;
      return false;
    }
  }
  const uint64_t gpa = s.cache_gpa;  // where the cache points: the MSR's GPA unless stale

  bool flush = false;
  if (feature_visible(kTlbFlushFeatureBit)) {
    // xchgb on guest memory: atomic, so it happens now and cannot interleave with a guest
    // CAS on the same byte; a FLUSH_TLB stored after it is found by the next update.
    uint8_t old = 0;
    const uint8_t zero = 0;
    m_mem.read(Gpa(gpa + kOffPreempted), &old, 1);
    m_mem.write(Gpa(gpa + kOffPreempted), &zero, 1);
    s.preempted = 0;
    flush = (old & kFlushTlb) != 0;
    m_tracer.kvm_pv_tlb_flush(v.now(), i, flush);
  } else {
    const uint8_t zero = 0;
    out.push(gpa + kOffPreempted, &zero, 1, "preempted");
    s.preempted = 0;
  }

  // The seqcount, starting from the guest's own value: an odd one is junk left by the
  // guest and is first made even, so the reader sees odd exactly while steal changes.
  uint32_t version = 0;
  m_mem.read(Gpa(gpa + kOffVersion), &version, sizeof(version));
  if (version & 1) version += 1;
  version += 1;
  out.push_obj(gpa + kOffVersion, version, "version");

  uint64_t steal = 0;
  m_mem.read(Gpa(gpa + kOffSteal), &steal, sizeof(steal));
  const uint64_t delta = run_delay_ns - s.last_steal;  // u64 arithmetic, as KVM's
  steal += delta;
  s.last_steal = run_delay_ns;
  out.push_obj(gpa + kOffSteal, steal, "steal");

  version += 1;
  out.push_obj(gpa + kOffVersion, version, "version");

  ++s.counters.updates;
  trace_update(v, steal, delta, version);
  return flush;
}

// The orig profile's record_steal_time (steal_time.h): one read of the whole record, one
// write of the whole record.
bool StealTime::record_orig(Vcpu& v, VcpuSteal& s, uint64_t run_delay_ns, HostStores& out) {
  const unsigned i = v.index();
  // kvm_read_guest_cached through the WRMSR-time cache: a cache whose init failed makes
  // every access fail, so nothing is read or written.
  std::array<uint8_t, kSize> copy{};
  if (!s.cache_ok || !m_mem.read(Gpa(s.cache_gpa), copy.data(), kSize)) {
    ++s.counters.skipped;
    return false;
  }
  bool flush;
  if (m_bugs.steal_time_write_back) {
    flush = (copy[kOffPreempted] & kFlushTlb) != 0;
    copy[kOffPreempted] = 0;  // the xchg of 4.16-5.5, on the host's copy
  } else {
    // The CVE-2019-3016 fix b043138246a4 (5.6): the exchange is done on guest memory, now
    // (one atomic instruction), and `preempted` is no longer part of what is written back
    // below, so a FLUSH_TLB stored after it waits for the next update instead of being
    // overwritten. The host's copy of the flag follows the byte (8c6de56a42e0, on_put).
    uint8_t old = 0;
    const uint8_t zero = 0;
    m_mem.read(Gpa(s.cache_gpa + kOffPreempted), &old, 1);
    m_mem.write(Gpa(s.cache_gpa + kOffPreempted), &zero, 1);
    s.preempted = 0;
    flush = (old & kFlushTlb) != 0;
  }
  m_tracer.kvm_pv_tlb_flush(v.now(), i, flush);

  uint64_t steal = 0;
  uint32_t version = 0;
  std::memcpy(&steal, copy.data() + kOffSteal, sizeof(steal));
  std::memcpy(&version, copy.data() + kOffVersion, sizeof(version));
  const uint64_t delta = run_delay_ns - s.last_steal;
  steal += delta;
  s.last_steal = run_delay_ns;
  version += 2;  // 3.1: never odd, whatever the guest left there
  std::memcpy(copy.data() + kOffSteal, &steal, sizeof(steal));
  std::memcpy(copy.data() + kOffVersion, &version, sizeof(version));
  // Everything read above goes back, `preempted` = 0 included: this store is what
  // overwrites a FLUSH_TLB the guest set since the read (CVE-2019-3016). With the fix only
  // steal, version and flags (bytes 0-15) go back; the rest of the update stays 3.1's.
  if (m_bugs.steal_time_write_back)
    out.push(s.cache_gpa, copy.data(), kSize, "record");
  else
    out.push(s.cache_gpa, copy.data(), kOffPreempted, "record");

  ++s.counters.updates;
  trace_update(v, steal, delta, version);
  return flush;
}

void StealTime::on_put(unsigned vcpu, Tick at) {
  VcpuSteal& s = st(vcpu);
  if (!(s.msr & kEnabled)) return;
  uint64_t where = 0;
  if (m_cfg.abi == AbiProfile::Orig) {
    // 4.10-5.5: through the WRMSR-time cache, no look at what is already there. Without
    // steal_time_write_back, 8c6de56a42e0 (5.6, the other half of CVE-2019-3016): not
    // again while the host's own copy says the byte is already PREEMPTED, which would
    // wipe a FLUSH_TLB the guest added in between.
    if (!s.cache_ok || (!m_bugs.steal_time_write_back && s.preempted)) {
      ++s.counters.preempted_skipped;
      return;
    }
    where = s.cache_gpa + kOffPreempted;
  } else {
    // kvm_steal_time_set_preempted, 6.x: not over a value the host itself stored and the
    // next update has not cleared yet (the guest may have added FLUSH_TLB to it), and only
    // through a cache built for the GPA the MSR holds now (c3c28d24d910; without it, under
    // steal_time_stale_cache, the store lands in the record the guest left).
    const uint64_t gpa = s.msr & kGpaMask;
    if (s.preempted || !s.cache_ok || (!m_bugs.steal_time_stale_cache && s.cache_gpa != gpa)) {
      ++s.counters.preempted_skipped;
      return;
    }
    where = s.cache_gpa + kOffPreempted;
  }
  uint8_t old = 0;
  m_mem.read(Gpa(where), &old, 1);
  const uint8_t value = kPreempted;
  m_mem.write(Gpa(where), &value, 1);
  if (m_cfg.abi == AbiProfile::Modern || !m_bugs.steal_time_write_back) s.preempted = kPreempted;
  ++s.counters.preempted_set;
  m_tracer.pvsim_steal(at, vcpu, "preempted", fmt::format("{:#x} -> {:#x}", old, value));
}

void StealTime::reset(unsigned vcpu) {
  // kvm_vcpu_reset zeroes msr_val only, for INIT and RESET alike; the host copy of
  // `preempted`, last_steal and the cache survive (checked in 6.x and 4.x x86.c).
  st(vcpu).msr = 0;
}

}  // namespace pvsim
