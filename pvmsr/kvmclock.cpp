// pvmsr/kvmclock.cpp — see kvmclock.h. Sections: construction and MSRs; request
// processing; the clock computation (kvm_guest_time_update); the wall clock; events.
#include "pvmsr/kvmclock.h"

#include <algorithm>

#include "core/vcpu.h"
#include "pvmsr/kvm_cpuid.h"

namespace pvsim {

namespace {

// The guest TSC of `v` at virtual time t (tools/platform/README.md §3): the vCPU's TSC
// base (tsc_start plus any IA32_TSC adjustment) plus its own cycles up to t. Unsigned wrap
// is what a 64-bit TSC does.
uint64_t tsc_at(const Vcpu& v, Tick t) {
  return (v.tsc() - v.cycles().value()) + ns_to_cycles(t.value(), v.config().tsc_hz);
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Construction and MSRs

KvmClock::KvmClock(const KvmClockConfig& cfg, GuestMemory& mem, Tracer& tracer,
                   EventQueue& events)
    : m_cfg(cfg),
      m_bugs(cfg.bugs.value_or(kvm_bug_defaults(cfg.abi))),
      m_mem(mem),
      m_tracer(tracer),
      m_events(events) {
  // Modern kvm_guest_time_update: kvm_get_time_scale(NSEC_PER_SEC, tsc_khz * 1000). The
  // 3.0 code called it as (NSEC_PER_SEC / 1000, tsc_khz): the same ratio, but the
  // truncating shifts of step 2 act on different magnitudes, so an odd kHz value can give
  // a different last bit of mul (pvmsr/README.md §4.3). Each profile uses its own call.
  m_scale = cfg.abi == AbiProfile::Modern ? kvm_get_time_scale(kNsecPerSec, cfg.tsc_khz * 1000)
                                          : kvm_get_time_scale(kNsecPerSec / 1000, cfg.tsc_khz);
  // kvm_arch_init_vm -> pvclock_update_vm_gtod_copy: the VM starts with a snapshot taken
  // at creation (Tick 0).
  m_masters.push_back(MasterClock{Tick(0), compute_master_clock()});
  // kvm_arch_vcpu_postcreate (vCPU 0) schedules kvmclock_sync_work one period after
  // creation; the work arrived in the 3.1x era (periodic global clock updates), so never for orig.
  if (cfg.abi == AbiProfile::Modern && cfg.periodic_sync_ns > 0)
    m_events.schedule(m_sync_event, Tick(cfg.periodic_sync_ns));
}

KvmClock::~KvmClock() = default;

bool KvmClock::feature_visible(unsigned bit) const {
  // guest_pv_has (pvmsr/README.md §2.2): without enforcement every PV MSR works whatever CPUID says.
  return !m_cfg.enforce_pv_cpuid || ((m_cfg.cpuid_features >> bit) & 1u) != 0;
}

void KvmClock::attach(Vcpu& v) {
  const unsigned i = v.index();
  const size_t need = std::max<size_t>(i + 1, v.config().count);
  if (m_vcpus.size() < need) m_vcpus.resize(need);
  if (m_attached.size() < need) m_attached.resize(need, nullptr);
  m_attached[i] = &v;

  struct Def {
    uint32_t index;
    const char* name;
    KvmFeature feature;
    bool system_time;
    bool old_msr;
  };
  // pvmsr/README.md §4.1: 0x11 and 0x4b564d00 alias one VM-wide value, 0x12 and 0x4b564d01 one
  // per-vCPU value; the old pair is gated by CLOCKSOURCE (bit 0), the new by CLOCKSOURCE2
  // (bit 3). No value is ever refused (no reserved-bit, alignment or RAM check).
  static constexpr Def kDefs[] = {
      {kMsrWallClock, "MSR_KVM_WALL_CLOCK", KvmFeature::Clocksource, false, true},
      {kMsrSystemTime, "MSR_KVM_SYSTEM_TIME", KvmFeature::Clocksource, true, true},
      {kMsrWallClockNew, "MSR_KVM_WALL_CLOCK_NEW", KvmFeature::Clocksource2, false, false},
      {kMsrSystemTimeNew, "MSR_KVM_SYSTEM_TIME_NEW", KvmFeature::Clocksource2, true, false},
  };
  for (const Def& d : kDefs) {
    MsrHandler h;
    h.index = d.index;
    h.name = d.name;
    const unsigned bit = static_cast<unsigned>(d.feature);
    if (d.system_time) {
      h.read = [this, i, bit](Vcpu&, uint64_t& value) {
        if (!feature_visible(bit)) return MsrStatus::Gp;
        value = m_vcpus[i].msr;  // kvm_get_msr_common: vcpu->arch.time, verbatim
        return MsrStatus::Ok;
      };
      const bool old_msr = d.old_msr;
      h.write = [this, bit, old_msr](Vcpu& vcpu, uint64_t value) {
        if (!feature_visible(bit)) return MsrStatus::Gp;
        write_system_time_msr(vcpu, value, old_msr);
        return MsrStatus::Ok;
      };
    } else {
      h.read = [this, bit](Vcpu&, uint64_t& value) {
        if (!feature_visible(bit)) return MsrStatus::Gp;
        value = m_wall_clock;  // kvm->arch.wall_clock: the last value any vCPU wrote
        return MsrStatus::Ok;
      };
      h.write = [this, bit](Vcpu& vcpu, uint64_t value) {
        if (!feature_visible(bit)) return MsrStatus::Gp;
        write_wall_clock_msr(vcpu, value);
        return MsrStatus::Ok;
      };
    }
    v.msrs().add(std::move(h));
  }
}

// pvmsr/README.md §4.8 (kvm_set_msr_common MSR_KVM_WALL_CLOCK[_NEW] -> kvm_write_wall_clock): store
// the raw value, then publish at GPA = value right away; 0 means "nothing", and a struct
// not wholly in RAM is silently skipped (the guest read/write helpers fail).
void KvmClock::write_wall_clock_msr(Vcpu& v, uint64_t value) {
  m_wall_clock = value;
  if (value == 0) return;
  pvclock_write_wall_clock(m_mem, Gpa(value), wall_clock_epoch_ns(v));
}

// pvmsr/README.md §4.1. Modern kvm_write_system_time; orig = the 3.0 case body in kvm_set_msr_common.
void KvmClock::write_system_time_msr(Vcpu& v, uint64_t value, bool old_msr) {
  VcpuClock& c = state(v.index());
  if (m_cfg.abi == AbiProfile::Modern) {
    // A boot vCPU on the old MSR mishandles TSC_STABLE (pvmsr/README.md §4.13): KVM remembers which
    // MSR vCPU 0 used and recomputes the master clock when that changes.
    if (v.index() == 0) {
      if (m_boot_vcpu_old_msr != old_msr) c.requests |= kReqMasterclockUpdate;
      m_boot_vcpu_old_msr = old_msr;
    }
    c.msr = value;
    // This vCPU now, every vCPU KVMCLOCK_UPDATE_DELAY later (7e44e4495a39).
    c.requests |= kReqGlobalClockUpdate;
  } else {
    c.msr = value;
    c.requests |= kReqClockUpdate;  // 3.0: only the writing vCPU
  }
  // Bit 0 set activates updates at value & ~1, clear stops them and leaves guest memory
  // alone: both are read from c.msr at update time. The WRMSR is a VM exit; the request
  // is serviced at the entry that ends it (Hypervisor::on_entry through the vCPU's entry
  // hook), so the struct is in memory before the guest's next instruction and the trace
  // reads kvm_msr before kvm_pvclock_update, as on KVM. The exit samples the guest TSC the
  // orig clamp uses (3.0 vcpu_enter_guest read it after every exit).
  on_exit(v);
}

// ---------------------------------------------------------------------------------------
// Request processing

void KvmClock::on_exit(Vcpu& v) { state(v.index()).last_guest_tsc = v.tsc(); }

void KvmClock::service_requests(Vcpu& v, HostStores& out) {
  VcpuClock& c = state(v.index());
  const Tick now = v.now();
  // Updates requested "as of" a virtual time this vCPU has now reached (see
  // request_clock_update).
  while (!c.deferred.empty() && c.deferred.front() <= now) {
    c.deferred.erase(c.deferred.begin());
    c.requests |= kReqClockUpdate;
  }
  // vcpu_enter_guest services these in this order: MASTERCLOCK_UPDATE,
  // GLOBAL_CLOCK_UPDATE, CLOCK_UPDATE.
  if (c.requests & kReqMasterclockUpdate) {
    c.requests &= static_cast<uint8_t>(~kReqMasterclockUpdate);
    master_clock_update(now);
  }
  if (c.requests & kReqGlobalClockUpdate) {
    // kvm_gen_kvmclock_update: this vCPU now, and the delayed work for all of them.
    // schedule_delayed_work on work already pending leaves its expiry alone, so a burst of
    // requests produces one fan-out, KVMCLOCK_UPDATE_DELAY after the first.
    c.requests &= static_cast<uint8_t>(~kReqGlobalClockUpdate);
    c.requests |= kReqClockUpdate;
    if (!m_fan_out_event.scheduled())
      m_events.schedule(m_fan_out_event, now + m_cfg.update_delay_ns);
  }
  if (c.requests & kReqClockUpdate) {
    c.requests &= static_cast<uint8_t>(~kReqClockUpdate);
    guest_time_update(c, v, out);
  }
}

bool KvmClock::update_pending(unsigned vcpu) const {
  const VcpuClock& c = m_vcpus.at(vcpu);
  return c.requests != 0 || !c.deferred.empty();
}

void KvmClock::on_migrate(unsigned vcpu) {
  VcpuClock& c = state(vcpu);
  if (m_cfg.abi == AbiProfile::Modern) {
    // kvm_arch_vcpu_load: only without the master clock (0061d53daf26); with it every
    // vCPU's struct already derives from the one VM-wide snapshot.
    if (!master_clock_active()) c.requests |= kReqGlobalClockUpdate;
  } else {
    c.requests |= kReqClockUpdate;  // 3.0 kvm_arch_vcpu_load: this vCPU only
  }
}

void KvmClock::on_reset(unsigned vcpu) {
  VcpuClock& c = state(vcpu);
  c.msr = 0;
  c.published = false;
  // Requests still pending are harmless: an update with bit 0 clear writes nothing. A
  // pending "guest stopped" request survives too (kvmclock_reset leaves
  // pvclock_set_guest_stopped_request alone; only an update that reaches the guest
  // consumes it).
}

// kvm_set_guest_paused (KVM_KVMCLOCK_CTRL). "Enabled" is modern KVM's pv_time.active: set
// by any system-time write with bit 0, whether or not the address is in RAM.
int KvmClock::kvmclock_ctrl(unsigned vcpu) {
  VcpuClock& c = state(vcpu);
  if (m_cfg.abi == AbiProfile::Orig) return -kEinval;
  if ((c.msr & 1u) == 0) return -kEinval;
  c.stop_request = true;
  c.requests |= kReqClockUpdate;
  return 0;
}

// pvmsr/README.md §4.7: master-clock conditions. The host clocksource is TSC and no backwards host
// TSC is ever seen in pvsim, so the scenario's TSC matching and the boot-vCPU MSR decide.
bool KvmClock::compute_master_clock() const {
  return m_cfg.abi == AbiProfile::Modern && m_cfg.master_clock_allowed && m_cfg.tsc_matched &&
         !m_boot_vcpu_old_msr;
}

// kvm_update_masterclock: re-snapshot (pvclock_update_vm_gtod_copy), recompute the mode,
// then KVM_REQ_CLOCK_UPDATE for every vCPU (kvm_end_pvclock_update).
void KvmClock::master_clock_update(Tick at) {
  if (m_masters.back().at == at)
    m_masters.back().active = compute_master_clock();
  else
    m_masters.push_back(MasterClock{at, compute_master_clock()});
  // Forget master-clock decisions no attached vCPU can still be behind.
  Tick oldest(UINT64_MAX);
  for (const Vcpu* a : m_attached)
    if (a) oldest = std::min(oldest, a->now());
  size_t drop = 0;
  while (drop + 1 < m_masters.size() && m_masters[drop + 1].at <= oldest) ++drop;
  m_masters.erase(m_masters.begin(), m_masters.begin() + static_cast<std::ptrdiff_t>(drop));
  for (unsigned j = 0; j < m_vcpus.size(); ++j) request_clock_update(j, at);
}

const KvmClock::MasterClock& KvmClock::master_at(Tick t) const {
  for (size_t k = m_masters.size(); k-- > 1;)
    if (m_masters[k].at <= t) return m_masters[k];
  return m_masters.front();
}

// Virtual-time causality. On KVM the host TSC is global: a master-clock update blocks
// every vCPU's entry and rewrites every struct before any guest instruction runs again.
// In pvsim vCPUs have their own local times, and another vCPU may still be behind the
// instant `at` of the update (by up to a quantum, or longer while halted). Writing it a
// struct sampled at `at` would put tsc_timestamp in that vCPU's future, and its first
// read would compute a wrapped (huge) delta. So the request takes effect when the vCPU's
// local time reaches `at`; until then it keeps the struct that was valid at its own time,
// and a no-op event at `at` ends its run slice there, so the update lands at `at` exactly.
void KvmClock::request_clock_update(unsigned vcpu, Tick at) {
  VcpuClock& c = m_vcpus.at(vcpu);
  const Vcpu* attached = vcpu < m_attached.size() ? m_attached[vcpu] : nullptr;
  if (!attached) return;
  if (attached->now() >= at) {
    c.requests |= kReqClockUpdate;
    return;
  }
  auto it = std::lower_bound(c.deferred.begin(), c.deferred.end(), at);
  if (it == c.deferred.end() || *it != at) c.deferred.insert(it, at);
  if (!m_boundary_event.scheduled() || at < m_boundary_event.when())
    m_events.schedule(m_boundary_event, at);
}

// ---------------------------------------------------------------------------------------
// The clock computation: kvm_guest_time_update

void KvmClock::guest_time_update(VcpuClock& c, Vcpu& v, HostStores& out) {
  // Neither profile computes anything while kvmclock is off (3.0 returns when there is no
  // time_page; modern writes only through an active pv_time cache).
  if ((c.msr & 1u) == 0) return;
  const Gpa gpa(c.msr & ~1ull);
  const Tick now = v.now();
  PvclockVcpuTimeInfo hv = c.hv;
  if (m_cfg.abi == AbiProfile::Modern) {
    // pvmsr/README.md §4.4: in master-clock mode the VM-wide (host TSC, host ns) pair,
    // identical for every vCPU; otherwise this vCPU reads the host TSC and the host clock
    // at this entry of its own (rdtsc + get_kvmclock_base_ns), so two vCPUs that service
    // one global update at different instants carry different pairs. The guest TSC is
    // the vCPU's own, to the cycle, not rounded to the nanosecond of system_time:
    // system_time = kernel_ns + kvmclock_offset = (host_monotonic_ns + t) -
    // host_monotonic_ns = t.
    const MasterClock& s = master_at(now);
    if (s.active) {
      hv.tsc_timestamp = tsc_at(v, s.at);
      hv.system_time = s.at.value();
    } else {
      hv.tsc_timestamp = v.tsc();
      hv.system_time = now.value();
    }
    hv.tsc_to_system_mul = m_scale.mul;
    hv.tsc_shift = m_scale.shift;
    hv.flags = s.active ? PVCLOCK_TSC_STABLE_BIT : 0;
    // KVM_KVMCLOCK_CTRL's request: ORed in and consumed only by an update that reaches
    // the guest (kvm_setup_guest_pvclock; not consumed while the struct is unreachable).
    if (c.stop_request) hv.flags |= PVCLOCK_GUEST_STOPPED;
  } else {
    // 3.0: an unmappable page leaves time_page NULL, and the update returns before any of
    // the bookkeeping below.
    if (!m_mem.contains(gpa, sizeof(PvclockVcpuTimeInfo))) {
      c.published = false;
      return;
    }
    const uint64_t tsc_timestamp = v.tsc();
    int64_t kernel_ns = static_cast<int64_t>(m_cfg.host_monotonic_ns + now.value());
    // Commit 1d5f066e0b63 (2.6.37, "possible backwards warp"): the guest may already have
    // extrapolated the previous (system_time, tsc) pair up to the TSC of the last exit; the
    // new base must not lie below that value. Computed, as in 3.0, from the previous host
    // copy's scale and last_kernel_ns, and only when both TSC values are non-zero. Unsigned
    // sums then a signed compare, as the kernel (built with -fno-strict-overflow) does.
    // machine.kvm.bugs.kvmclock_no_backwards_clamp (pvmsr/README.md §2.5) takes the host
    // back to before that commit: the new pair is published as sampled.
    int64_t max_kernel_ns = 0;
    if (!m_bugs.kvmclock_no_backwards_clamp && c.hv.tsc_timestamp != 0 && c.last_guest_tsc != 0) {
      const uint64_t extrapolated = pvclock_scale_delta(
          c.last_guest_tsc - c.hv.tsc_timestamp, c.hv.tsc_to_system_mul, c.hv.tsc_shift);
      max_kernel_ns = static_cast<int64_t>(extrapolated + static_cast<uint64_t>(c.last_kernel_ns));
    }
    if (max_kernel_ns > kernel_ns) kernel_ns = max_kernel_ns;
    hv.tsc_timestamp = tsc_timestamp;
    hv.system_time = static_cast<uint64_t>(kernel_ns) - m_cfg.host_monotonic_ns;
    hv.tsc_to_system_mul = m_scale.mul;
    hv.tsc_shift = m_scale.shift;
    hv.flags = 0;  // no TSC_STABLE before the master clock (3.8)
    c.last_kernel_ns = kernel_ns;
    c.last_guest_tsc = tsc_timestamp;
  }
  // The profile's publisher (pvmsr/README.md §4.6): reads the guest copy now, queues the
  // stores. A struct not wholly inside RAM is silently not written (pvmsr/README.md §4.1);
  // then nothing is traced either (modern kvm_setup_guest_pvclock returns before
  // trace_kvm_pvclock_update). Under "orig" the seed era's one-copy store is the bug
  // kvmclock_even_version_copy (pvmsr/README.md §2.5); without it the fixed odd/even
  // protocol publishes the same values.
  const PvclockProtocol protocol = m_cfg.abi == AbiProfile::Modern ? PvclockProtocol::OddEvenStop
                                   : m_bugs.kvmclock_even_version_copy ? PvclockProtocol::SeedCopy
                                                                       : PvclockProtocol::OddEven;
  c.published = pvclock_publish_vcpu_time_info(m_mem, gpa, hv, protocol, out);
  if (!c.published) return;
  c.stop_request = false;
  c.hv = hv;
  m_tracer.kvm_pvclock_update(now, v.index(), hv.version, hv.tsc_timestamp, hv.system_time,
                              hv.tsc_to_system_mul, hv.tsc_shift, hv.flags);
}

// ---------------------------------------------------------------------------------------
// The wall clock epoch (pvmsr/README.md §4.8)
//
// The guest computes wall time as sec*1e9 + nsec + kvmclock, so the epoch has to be
// realtime - kvmclock with both taken at one instant. Modern KVM in master-clock mode
// evaluates the master snapshot at a host TSC read paired with realtime
// (kvm_get_wall_clock_epoch); pvsim evaluates this vCPU's published struct at its TSC
// now, which is the same value whenever the struct carries the current snapshot (always,
// at a guest instruction: KVM rewrites every struct before re-entry after a snapshot).
// Without a master clock KVM subtracts the host clock (realtime - (monotonic + offset)),
// and 3.0 published boot time - kvmclock_offset, which is the same quantity; the guest's
// own extrapolation from a struct sampled earlier differs from the host clock by the
// scale rounding and the vCPU's TSC frequency error, so that form leaves the guest's wall
// clock off by those nanoseconds. pvsim deliberately uses the struct there too, so that
// the guest's wall clock equals host realtime exactly at the write (scenarios/wallclock.json checks it).
// With no struct published the host-clock form is used (nothing to be consistent with).
uint64_t KvmClock::wall_clock_epoch_ns(Vcpu& v) const {
  const VcpuClock& c = m_vcpus.at(v.index());
  const Tick now = v.now();
  const uint64_t realtime = m_cfg.host_wall_clock_ns + now.value();
  uint64_t kvmclock = now.value();  // host monotonic now + kvmclock_offset
  if ((c.msr & 1u) != 0 && c.published) {
    kvmclock = pvclock_read_ns(c.hv, v.tsc());
  } else if (const MasterClock& s = master_at(now); s.active) {
    PvclockVcpuTimeInfo ref;
    ref.system_time = s.at.value();
    ref.tsc_timestamp = tsc_at(v, s.at);
    ref.tsc_to_system_mul = m_scale.mul;
    ref.tsc_shift = m_scale.shift;
    kvmclock = pvclock_read_ns(ref, v.tsc());
  }
  return realtime - kvmclock;
}

// ---------------------------------------------------------------------------------------
// Events (they only raise requests; on_entry computes the updates and queues their stores)

// kvmclock_update_fn: KVM_REQ_CLOCK_UPDATE for every vCPU, plus a kick.
void KvmClock::fan_out() {
  const Tick at = m_fan_out_event.when();
  for (unsigned j = 0; j < m_vcpus.size(); ++j) request_clock_update(j, at);
}

// kvmclock_sync_fn: queue the fan-out with no delay (a no-op while it is already pending),
// then rearm one KVMCLOCK_SYNC_PERIOD later.
void KvmClock::periodic_sync() {
  const Tick at = m_sync_event.when();
  if (!m_fan_out_event.scheduled()) m_events.schedule(m_fan_out_event, at);
  m_events.schedule(m_sync_event, at + m_cfg.periodic_sync_ns);
}

// Nothing to do at the deferred time itself: the point is that run slices end here, so
// the next on_entry of a lagging vCPU happens at this time. Rearm for the next one.
void KvmClock::boundary() {
  const Tick at = m_boundary_event.when();
  Tick next(UINT64_MAX);
  for (const VcpuClock& c : m_vcpus) {
    auto it = std::upper_bound(c.deferred.begin(), c.deferred.end(), at);
    if (it != c.deferred.end()) next = std::min(next, *it);
  }
  if (next != Tick(UINT64_MAX)) m_events.schedule(m_boundary_event, next);
}

}  // namespace pvsim
