// pvmsr/kvmclock.h — the hypervisor side of kvmclock: MSRs 0x11/0x12 and
// 0x4b564d00/0x4b564d01, clock update requests, master-clock mode, both ABI profiles
// (pvmsr/README.md §2.1, §2.2, §4).
//
// Index:
//   KvmClockConfig ..... what the scenario decides (ABI, enforcement, host clocks, periods)
//   KvmClock
//     attach ........... registers the four MSRs in a vCPU's MsrRegistry
//     on_entry/on_exit . KVM_REQ_* processing at guest entry (vcpu_enter_guest): the
//                        structure's stores are queued in a HostStores; the TSC sample
//                        KVM 3.0 took after every exit
//     kvmclock_ctrl .... KVM_KVMCLOCK_CTRL (kvm_set_guest_paused): PVCLOCK_GUEST_STOPPED
//     on_migrate ....... kvm_arch_vcpu_load on another host CPU
//     queries .......... raw MSR values, the per-vCPU host copy, master-clock state
//     save/restore ..... snapshots (KvmClockState)
//
// Time model (tools/platform/README.md §5, pvmsr/README.md §4.4): host monotonic at Tick t is
// host_monotonic_ns + t and kvmclock_offset = -host_monotonic_ns, so a struct sampled at t
// carries system_time = t. KVM derives mul/shift from the nominal tsc_khz only; a vCPU's
// real TSC rate (VcpuConfig::tsc_hz) may differ, which is how frequency error shows up.
//
// Requests follow KVM's split between "raise a request" and "service it at the next guest
// entry": events (the delayed fan-out, the periodic sync) only set request bits; a
// vCPU's structure is computed only in on_entry() (pvmsr/hypervisor.h: at every guest
// entry, including the one that ends the system-time WRMSR's exit), at THAT vCPU's local
// time, and reaches guest memory as the separate stores KVM makes (pvmsr/host_stores.h),
// which the caller applies. The wall-clock structure is written at once by the WRMSR.
#pragma once
#include <cstdint>
#include <optional>
#include <vector>

#include "core/event_queue.h"
#include "core/guest_memory.h"
#include "core/trace.h"
#include "core/types.h"
#include "core/vcpu.h"
#include "pvmsr/host_stores.h"
#include "pvmsr/kvm_bugs.h"
#include "pvmsr/pvclock.h"

namespace pvsim {

class Vcpu;

struct KvmClockConfig {
  AbiProfile abi = AbiProfile::Modern;
  bool enforce_pv_cpuid = false;     // pvmsr/README.md §2.2 (KVM_CAP_ENFORCE_PV_FEATURE_CPUID)
  uint32_t cpuid_features = 0;       // leaf 0x40000001 EAX as the guest sees it
  uint64_t tsc_khz = 2'500'000;      // what KVM believes the guest TSC runs at (nominal)
  bool master_clock_allowed = true;  // scenario machine.kvm.master_clock
  bool tsc_matched = true;           // all vCPUs' TSCs synchronised (no per-vCPU skew)
  uint64_t host_monotonic_ns = 1'000'000'000'000;           // host CLOCK_MONOTONIC at Tick 0
  uint64_t host_wall_clock_ns = 1'700'000'000'000'000'000;  // host CLOCK_REALTIME at Tick 0
  uint64_t periodic_sync_ns = 300'000'000'000;  // 0 = off (kvmclock_periodic_sync)
  uint64_t update_delay_ns = 100'000'000;       // KVMCLOCK_UPDATE_DELAY fan-out
  // Historic bugs (pvmsr/README.md §2.5); empty: the profile's defaults (kvm_bug_defaults).
  std::optional<KvmBugs> bugs;
};

// What KvmClock changes after construction, kept apart so that a snapshot copies all of it
// (pvmsr/README.md §1.3). Its three events are not here: the platform's EventQueue snapshot
// holds whether each is pending and its key, and every handler reads only the `when()` it
// was scheduled for while it fires.
struct KvmClockState {
  struct VcpuClock {
    uint64_t msr = 0;            // vcpu->arch.time: the raw system-time MSR value
    PvclockVcpuTimeInfo hv{};    // host copy (vcpu->arch.hv_clock) as last published
    bool published = false;      // the last update was queued for msr & ~1 (all in RAM)
    uint8_t requests = 0;        // KvmClock::kReq* bits
    bool stop_request = false;   // vcpu->arch.pvclock_set_guest_stopped_request
    std::vector<Tick> deferred;  // clock updates due once local time reaches these (sorted)
    // Orig backwards-warp clamp state (3.0 vcpu->arch.last_guest_tsc / last_kernel_ns).
    uint64_t last_guest_tsc = 0;
    int64_t last_kernel_ns = 0;
  };
  // One master-clock decision (pvclock_update_vm_gtod_copy): from `at` on, every struct
  // carries (system_time = at, tsc_timestamp = TSC at `at`) when `active`.
  struct MasterClock {
    Tick at;
    bool active = false;
  };
  uint64_t m_wall_clock = 0;         // kvm->arch.wall_clock (VM-wide)
  bool m_boot_vcpu_old_msr = false;  // ka->boot_vcpu_runs_old_kvmclock
  std::vector<MasterClock> m_masters;  // ascending `at`; never empty
  std::vector<VcpuClock> m_vcpus;      // per attached vCPU index
};

class KvmClock : private KvmClockState {
 public:
  static constexpr uint32_t kMsrWallClock = 0x11;            // MSR_KVM_WALL_CLOCK
  static constexpr uint32_t kMsrSystemTime = 0x12;           // MSR_KVM_SYSTEM_TIME
  static constexpr uint32_t kMsrWallClockNew = 0x4b564d00;   // MSR_KVM_WALL_CLOCK_NEW
  static constexpr uint32_t kMsrSystemTimeNew = 0x4b564d01;  // MSR_KVM_SYSTEM_TIME_NEW
  static constexpr int kEinval = 22;  // Linux EINVAL: kvmclock_ctrl fails with -kEinval

  KvmClock(const KvmClockConfig& cfg, GuestMemory& mem, Tracer& tracer, EventQueue& events);
  ~KvmClock();
  KvmClock(const KvmClock&) = delete;
  KvmClock& operator=(const KvmClock&) = delete;

  // Registers 0x11, 0x12, 0x4b564d00 and 0x4b564d01 in the vCPU's registry. `this` must
  // outlive every MSR access of the vCPU; the vCPU must outlive `this`'s use of it.
  void attach(Vcpu& v);

  // KVM_REQ_MASTERCLOCK_UPDATE, KVM_REQ_GLOBAL_CLOCK_UPDATE and KVM_REQ_CLOCK_UPDATE, in
  // vcpu_enter_guest's order. A clock update is computed at the vCPU's current local time
  // (without the master clock: its own TSC and host clock at this entry); the guest copy is
  // read now and the structure's stores are appended to `out` in KVM's program order
  // (pvclock_publish_vcpu_time_info). The caller applies them to guest memory — all at
  // once, or spaced so that other vCPUs run in between — before the vCPU runs guest code.
  // The kvm_pvclock_update trace line is emitted here, with the values the guest will see
  // once every store has landed.
  // Inline fast path: nothing requested and nothing deferred is the common case at every
  // entry, and it needs no local time (Vcpu::now() is a 128-bit division).
  void on_entry(Vcpu& v, HostStores& out) {
    const VcpuClock& c = m_vcpus[v.index()];
    if (c.requests == 0 && c.deferred.empty()) [[likely]] return;
    service_requests(v, out);
  }
  // The guest TSC at the end of a run slice (3.0 vcpu_enter_guest read it after every
  // exit into last_guest_tsc). Only the orig profile's backwards-warp clamp uses it; a
  // platform that never calls this leaves the clamp seeing only MSR exits.
  void on_exit(Vcpu& v);
  bool update_pending(unsigned vcpu) const;
  // Host scheduler moved the vCPU to another pCPU (kvm_arch_vcpu_load): modern requests a
  // GLOBAL update unless the master clock is in use (0061d53daf26); orig updates this
  // vCPU only.
  void on_migrate(unsigned vcpu);
  bool master_clock_active() const { return m_masters.back().active; }
  // INIT/RESET (kvm_vcpu_reset -> kvmclock_reset, pvmsr/README.md §2.3): the system-time MSR reads 0
  // again and updates stop; guest memory and the VM-wide wall clock are left alone.
  void on_reset(unsigned vcpu);
  // KVM_KVMCLOCK_CTRL on `vcpu` (kvm_set_guest_paused, pvmsr/README.md §4.2): the VMM
  // says it paused the VM. Modern: -EINVAL (negative) unless the vCPU's kvmclock is
  // enabled (system-time MSR bit 0); else 0, with a per-vCPU "set guest stopped" request
  // and KVM_REQ_CLOCK_UPDATE: the next update that reaches guest memory ORs
  // PVCLOCK_GUEST_STOPPED into flags and drops the request; later updates keep the bit as
  // long as the guest copy still has it. Orig: always -EINVAL — the ioctl arrived in 3.5
  // (1c0b28c2a46d), and 3.0's kvm_arch_vcpu_ioctl answers an unknown ioctl so.
  int kvmclock_ctrl(unsigned vcpu);
  bool guest_stopped_requested(unsigned vcpu) const { return m_vcpus.at(vcpu).stop_request; }
  // Raises KVM_REQ_CLOCK_UPDATE for `vcpu` as of virtual time `at` (see kvmclock.cpp); also
  // what a `schedule` kvmclock action does.
  void request_clock_update(unsigned vcpu, Tick at);

  // Raw MSR values (RDMSR returns them verbatim) and the per-vCPU host copy as last
  // published (version/flags as the guest sees them once that update's stores landed).
  uint64_t wall_clock_msr() const { return m_wall_clock; }
  uint64_t system_time_msr(unsigned vcpu) const { return m_vcpus.at(vcpu).msr; }
  const PvclockVcpuTimeInfo& hv_clock(unsigned vcpu) const { return m_vcpus.at(vcpu).hv; }

  // --- extras for tests and reports ---
  const KvmClockConfig& config() const { return m_cfg; }
  const KvmBugs& bugs() const { return m_bugs; }
  TimeScale scale() const { return m_scale; }
  bool boot_vcpu_runs_old_kvmclock() const { return m_boot_vcpu_old_msr; }
  // Tick of the newest master-clock snapshot (KVM master_kernel_ns - host_monotonic_ns).
  Tick master_snapshot_tick() const { return m_masters.back().at; }
  // Guest epoch (ns since 1970) a wall-clock write by `v` would publish right now.
  uint64_t wall_clock_epoch_ns(Vcpu& v) const;

  // Snapshots (pvmsr/README.md §1.3): the MSR values, requests, deferred updates, host
  // copies, clamp state and master-clock decisions. Restore with the EventQueue (which
  // re-links this object's events) and guest memory of the same instant.
  struct Snapshot {
    KvmClockState state;
  };
  Snapshot save() const { return {static_cast<const KvmClockState&>(*this)}; }
  void restore(const Snapshot& s) { static_cast<KvmClockState&>(*this) = s.state; }

 private:
  // KVM_REQ_* bits this model needs (values are ours, not KVM's).
  static constexpr uint8_t kReqClockUpdate = 1u << 0;
  static constexpr uint8_t kReqGlobalClockUpdate = 1u << 1;
  static constexpr uint8_t kReqMasterclockUpdate = 1u << 2;

  void service_requests(Vcpu& v, HostStores& out);
  bool feature_visible(unsigned bit) const;
  VcpuClock& state(unsigned vcpu) { return m_vcpus.at(vcpu); }
  void write_wall_clock_msr(Vcpu& v, uint64_t value);
  void write_system_time_msr(Vcpu& v, uint64_t value, bool old_msr);
  void master_clock_update(Tick at);
  void guest_time_update(VcpuClock& c, Vcpu& v, HostStores& out);
  const MasterClock& master_at(Tick t) const;
  void schedule_boundary();
  bool compute_master_clock() const;

  // Event handlers.
  void fan_out();        // kvmclock_update_fn
  void periodic_sync();  // kvmclock_sync_fn
  void boundary();       // no-op slice boundary at a deferred update time

  KvmClockConfig m_cfg;
  KvmBugs m_bugs;  // m_cfg.bugs, or the profile's defaults
  GuestMemory& m_mem;
  Tracer& m_tracer;
  EventQueue& m_events;
  TimeScale m_scale;
  std::vector<Vcpu*> m_attached;  // per vCPU index, bound by attach() (null: not attached)
  MemberEvent<&KvmClock::fan_out> m_fan_out_event{*this, "kvmclock_update_work"};
  MemberEvent<&KvmClock::periodic_sync> m_sync_event{*this, "kvmclock_sync_work"};
  MemberEvent<&KvmClock::boundary> m_boundary_event{*this, "kvmclock_boundary"};
};

}  // namespace pvsim
