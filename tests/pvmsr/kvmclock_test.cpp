// tests/pvmsr/kvmclock_test.cpp — the kvmclock MSRs and update machinery (pvmsr/kvmclock.h;
// pvmsr/README.md §2.2, §4, §4.13) on real Vcpu objects. Time is moved with
// Vcpu::advance_to and events with EventQueue::run_until, as the platform does.
#include "pvmsr/kvmclock.h"

#include <catch2/catch.hpp>
#include <cstring>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "core/env.h"
#include "core/event_queue.h"
#include "core/vcpu.h"
#include "tests/cpu_envs.h"
#include "tests/pvmsr/snapshot_check.h"

using namespace pvsim;
using pvsim::test::NullEnv;

namespace {

constexpr uint64_t kRam = 64 * kPageSize;
constexpr uint64_t kWall = 1'700'000'000'000'000'000ull;  // KvmClockConfig default
constexpr uint64_t kMs = 1'000'000;
constexpr uint32_t kWallOld = KvmClock::kMsrWallClock, kWallNew = KvmClock::kMsrWallClockNew;
constexpr uint32_t kSysOld = KvmClock::kMsrSystemTime, kSysNew = KvmClock::kMsrSystemTimeNew;


struct VcpuSpec {
  uint64_t tsc_hz = 2'500'000'000;
  uint64_t tsc_start = 0;
};

struct Rig {
  GuestMemory mem{kRam};
  Tracer tracer;
  std::ostringstream text;
  NullEnv env;
  EventQueue events;
  std::vector<std::unique_ptr<Vcpu>> vcpus;
  HostStores stores;
  std::unique_ptr<KvmClock> clock;  // declared last: destroyed before the vCPUs and queue

  explicit Rig(const KvmClockConfig& cfg, std::vector<VcpuSpec> specs = {VcpuSpec{}}) {
    tracer.set_text_output(&text);
    clock = std::make_unique<KvmClock>(cfg, mem, tracer, events);
    const unsigned n = static_cast<unsigned>(specs.size());
    for (unsigned i = 0; i < n; ++i) {
      VcpuConfig vc;
      vc.index = i;
      vc.count = n;
      vc.tsc_hz = specs[i].tsc_hz;
      vc.tsc_start = specs[i].tsc_start;
      vcpus.push_back(std::make_unique<Vcpu>(vc, mem, env, tracer));
      clock->attach(*vcpus.back());
    }
  }
  Vcpu& v(unsigned i) { return *vcpus.at(i); }
  // A guest WRMSR: the handler, then the entry that ends the exit services the requests
  // (the CPU core calls the entry hook there, pvmsr/hypervisor.h).
  MsrStatus wr(unsigned i, uint32_t msr, uint64_t value) {
    const MsrStatus st = v(i).msrs().write(v(i), msr, value);
    enter(i);
    return st;
  }
  // Guest entry of vCPU i: the requests are serviced and the host's stores land at once.
  void enter(unsigned i) {
    clock->on_entry(v(i), stores);
    stores.apply_all(mem);
  }
  MsrStatus rd(unsigned i, uint32_t msr, uint64_t& value) { return v(i).msrs().read(v(i), msr, value); }
  uint64_t rd_ok(unsigned i, uint32_t msr) {
    uint64_t value = 0xdeadbeef;
    REQUIRE(rd(i, msr, value) == MsrStatus::Ok);
    return value;
  }
  // Local time of vCPU i becomes exactly t (cycles rounded up; exact for rates > 1 GHz).
  void advance(unsigned i, uint64_t t) {
    const uint64_t hz = v(i).config().tsc_hz;
    const auto c = static_cast<uint64_t>(
        (static_cast<unsigned __int128>(t) * hz + 999'999'999u) / 1'000'000'000u);
    v(i).advance_to(Cycles(c));
    REQUIRE(v(i).now().value() == t);
  }
  void advance_all(uint64_t t) {
    for (unsigned i = 0; i < vcpus.size(); ++i) advance(i, t);
  }
  PvclockVcpuTimeInfo vti(uint64_t gpa) const {
    PvclockVcpuTimeInfo t;
    REQUIRE(mem.read(Gpa(gpa), &t, sizeof(t)));
    return t;
  }
  PvclockWallClock wc(uint64_t gpa) const {
    PvclockWallClock w;
    REQUIRE(mem.read(Gpa(gpa), &w, sizeof(w)));
    return w;
  }
  void fill(uint64_t gpa, uint64_t len, uint8_t byte) {
    std::vector<uint8_t> b(len, byte);
    REQUIRE(mem.write(Gpa(gpa), b.data(), len));
  }
  bool all_bytes(uint64_t gpa, uint64_t len, uint8_t byte) const {
    std::vector<uint8_t> b(len);
    REQUIRE(mem.read(Gpa(gpa), b.data(), len));
    for (uint8_t x : b)
      if (x != byte) return false;
    return true;
  }
  // Snapshots (tests/pvmsr/snapshot_check.h): the component, guest RAM and the queue that
  // holds kvmclock's events.
  struct Snap {
    KvmClock::Snapshot clock;
    unsigned level;
    EventQueue::Snapshot events;
  };
  Snap save() {
    REQUIRE(stores.empty());
    return Snap{clock->save(), mem.checkpoint(), events.save()};
  }
  void restore(const Snap& s) {
    clock->restore(s.clock);
    mem.rollback(s.level);
    events.restore(s.events);
  }
  std::vector<uint8_t> ram() const { return pvsim::test::ram_image(mem); }
};

KvmClockConfig modern() { return KvmClockConfig{}; }
KvmClockConfig modern_unmatched() {
  KvmClockConfig c;
  c.tsc_matched = false;
  return c;
}
KvmClockConfig orig() {
  KvmClockConfig c;
  c.abi = AbiProfile::Orig;
  return c;
}

}  // namespace

TEST_CASE("wall clock MSRs: valid, zero, misaligned and beyond-RAM values never #GP",
          "[kvmclock]") {
  for (uint32_t msr : {kWallOld, kWallNew}) {
    for (KvmClockConfig cfg : {modern(), orig()}) {
      INFO("msr " << std::hex << msr << " abi " << (cfg.abi == AbiProfile::Modern ? "modern" : "orig"));
      Rig r(cfg);
      // Valid: written at once; at Tick 0 with no system-time struct kvmclock reads 0, so
      // the epoch is the host realtime at Tick 0.
      REQUIRE(r.wr(0, msr, 0x1000) == MsrStatus::Ok);
      CHECK(r.rd_ok(0, msr) == 0x1000);
      CHECK(r.clock->wall_clock_msr() == 0x1000);
      PvclockWallClock w = r.wc(0x1000);
      CHECK(w.version == 2);
      CHECK(w.sec == kWall / 1'000'000'000u);
      CHECK(w.nsec == kWall % 1'000'000'000u);
      REQUIRE(r.wr(0, msr, 0x1000) == MsrStatus::Ok);
      CHECK(r.wc(0x1000).version == 4);  // updated only at WRMSR time, +2 each time

      // Zero: stored, nothing written anywhere (GPA 0 is not a struct address).
      r.fill(0, 16, 0xa5);
      REQUIRE(r.wr(0, msr, 0) == MsrStatus::Ok);
      CHECK(r.rd_ok(0, msr) == 0);
      CHECK(r.all_bytes(0, 16, 0xa5));

      // Misaligned: no check, the struct lands at the odd address.
      REQUIRE(r.wr(0, msr, 0x2003) == MsrStatus::Ok);
      CHECK(r.rd_ok(0, msr) == 0x2003);
      CHECK(r.wc(0x2003).version == 2);
      CHECK(r.wc(0x2003).sec == kWall / 1'000'000'000u);

      // Beyond RAM, crossing the end of RAM, and an address that wraps: stored, silently
      // not written.
      r.fill(kRam - 16, 16, 0x5a);
      for (uint64_t bad : std::vector<uint64_t>{kRam, kRam + 0x1000, kRam - 8, ~0ull - 3}) {
        REQUIRE(r.wr(0, msr, bad) == MsrStatus::Ok);
        CHECK(r.rd_ok(0, msr) == bad);
      }
      CHECK(r.all_bytes(kRam - 16, 16, 0x5a));
    }
  }
}

TEST_CASE("system time MSRs: valid, zero, misaligned and beyond-RAM values never #GP",
          "[kvmclock]") {
  for (uint32_t msr : {kSysOld, kSysNew}) {
    for (KvmClockConfig cfg : {modern(), orig()}) {
      INFO("msr " << std::hex << msr << " abi " << (cfg.abi == AbiProfile::Modern ? "modern" : "orig"));
      // vCPU 1 does the writes: vCPU 0 on 0x12 would also switch the master clock off,
      // which has its own test.
      Rig r(cfg, {VcpuSpec{}, VcpuSpec{}});
      r.advance(1, 3 * kMs);

      // Valid (bit 0 set): the struct is at value & ~1 before the WRMSR returns.
      REQUIRE(r.wr(1, msr, 0x2001) == MsrStatus::Ok);
      CHECK(r.rd_ok(1, msr) == 0x2001);
      CHECK(r.clock->system_time_msr(1) == 0x2001);
      PvclockVcpuTimeInfo t = r.vti(0x2000);
      CHECK(t.version == 2);
      CHECK(t.tsc_to_system_mul == 0xCCCCCCCCu);
      CHECK(t.tsc_shift == -1);
      CHECK(std::memcmp(&t, &r.clock->hv_clock(1), sizeof(t)) == 0);

      // Bit 0 clear: stored raw, updates stop and guest memory is left alone.
      std::vector<uint8_t> before(32), after(32);
      REQUIRE(r.mem.read(Gpa(0x2000), before.data(), 32));
      REQUIRE(r.wr(1, msr, 0x2000) == MsrStatus::Ok);
      CHECK(r.rd_ok(1, msr) == 0x2000);
      r.advance_all(500 * kMs);
      r.events.run_until(Tick(500 * kMs));  // the delayed fan-out (modern) fires here
      r.enter(0);
      r.enter(1);
      REQUIRE(r.mem.read(Gpa(0x2000), after.data(), 32));
      CHECK(before == after);
      CHECK_FALSE(r.clock->update_pending(1));

      // Zero: stored, nothing written.
      r.fill(0, 32, 0xa5);
      REQUIRE(r.wr(1, msr, 0) == MsrStatus::Ok);
      CHECK(r.rd_ok(1, msr) == 0);
      CHECK(r.all_bytes(0, 32, 0xa5));

      // Misaligned (0x1002 | enable): bit 1 is part of the address.
      REQUIRE(r.wr(1, msr, 0x1002 | 1) == MsrStatus::Ok);
      CHECK(r.rd_ok(1, msr) == 0x1003);
      // Modern starts from the guest copy's version (0 here); orig continues its own
      // host-side counter (2 from the first enable above).
      CHECK(r.vti(0x1002).version == (cfg.abi == AbiProfile::Modern ? 2u : 4u));
      CHECK(r.vti(0x1002).tsc_to_system_mul == 0xCCCCCCCCu);

      // Beyond RAM, crossing the end of RAM, wrapping: stored, no #GP, nothing written.
      r.fill(kRam - 32, 32, 0x5a);
      for (uint64_t bad : std::vector<uint64_t>{kRam | 1, (kRam + 0x5000) | 1, (kRam - 16) | 1, ~0ull}) {
        REQUIRE(r.wr(1, msr, bad) == MsrStatus::Ok);
        CHECK(r.rd_ok(1, msr) == bad);
      }
      CHECK(r.all_bytes(kRam - 32, 32, 0x5a));
    }
  }
}

TEST_CASE("0x11/0x4b564d00 alias one VM-wide value, 0x12/0x4b564d01 one per-vCPU value",
          "[kvmclock]") {
  Rig r(modern(), {VcpuSpec{}, VcpuSpec{}});
  REQUIRE(r.wr(0, kWallOld, 0x1000) == MsrStatus::Ok);
  CHECK(r.rd_ok(1, kWallNew) == 0x1000);
  CHECK(r.rd_ok(1, kWallOld) == 0x1000);
  REQUIRE(r.wr(1, kWallNew, 0x1100) == MsrStatus::Ok);
  CHECK(r.rd_ok(0, kWallOld) == 0x1100);
  CHECK(r.rd_ok(0, kWallNew) == 0x1100);

  REQUIRE(r.wr(0, kSysNew, 0x2001) == MsrStatus::Ok);
  CHECK(r.rd_ok(0, kSysOld) == 0x2001);
  CHECK(r.rd_ok(1, kSysOld) == 0);  // per vCPU: vCPU 1 untouched
  CHECK(r.rd_ok(1, kSysNew) == 0);
  REQUIRE(r.wr(1, kSysOld, 0x3001) == MsrStatus::Ok);
  CHECK(r.rd_ok(1, kSysNew) == 0x3001);
  CHECK(r.rd_ok(0, kSysNew) == 0x2001);
}

TEST_CASE("PV CPUID enforcement: #GP on read and write exactly when the bit is hidden",
          "[kvmclock]") {
  struct Case {
    uint32_t features;
    bool old_ok, new_ok;
  };
  for (bool enforce : {false, true}) {
    for (Case k : {Case{0, false, false}, Case{1u << 0, true, false}, Case{1u << 3, false, true},
                   Case{(1u << 0) | (1u << 3), true, true}}) {
      KvmClockConfig cfg;
      cfg.enforce_pv_cpuid = enforce;
      cfg.cpuid_features = k.features;
      Rig r(cfg);
      INFO("enforce " << enforce << " features " << k.features);
      const MsrStatus old_st = (!enforce || k.old_ok) ? MsrStatus::Ok : MsrStatus::Gp;
      const MsrStatus new_st = (!enforce || k.new_ok) ? MsrStatus::Ok : MsrStatus::Gp;
      uint64_t v = 0;
      CHECK(r.wr(0, kWallOld, 0x1000) == old_st);
      CHECK(r.rd(0, kWallOld, v) == old_st);
      CHECK(r.wr(0, kSysOld, 0x2001) == old_st);
      CHECK(r.rd(0, kSysOld, v) == old_st);
      CHECK(r.wr(0, kWallNew, 0x1100) == new_st);
      CHECK(r.rd(0, kWallNew, v) == new_st);
      CHECK(r.wr(0, kSysNew, 0x3001) == new_st);
      CHECK(r.rd(0, kSysNew, v) == new_st);
      // A refused write changes nothing.
      if (old_st == MsrStatus::Gp) CHECK(r.all_bytes(0x2000, 32, 0));
    }
  }
}

TEST_CASE("modern updates: odd/even version from the guest copy, orig: host counter += 2, flags 0",
          "[kvmclock]") {
  SECTION("modern") {
    Rig r(modern(), {VcpuSpec{}, VcpuSpec{}});
    const uint32_t junk = 5;  // odd junk left by the guest is rounded up first
    REQUIRE(r.mem.write(Gpa(0x2000), &junk, 4));
    REQUIRE(r.wr(1, kSysNew, 0x2001) == MsrStatus::Ok);
    CHECK(r.vti(0x2000).version == 8);  // (5 + 1) | 1 = 7 during the copy, 8 after
    CHECK(r.vti(0x2000).flags == PVCLOCK_TSC_STABLE_BIT);
    REQUIRE(r.wr(1, kSysNew, 0x2001) == MsrStatus::Ok);
    CHECK(r.vti(0x2000).version == 10);
    CHECK(r.clock->hv_clock(1).version == 10);
  }
  SECTION("orig") {
    Rig r(orig(), {VcpuSpec{}, VcpuSpec{}});
    const uint32_t junk = 5;  // the 3.0 host neither reads nor fixes the guest's version
    REQUIRE(r.mem.write(Gpa(0x2000), &junk, 4));
    REQUIRE(r.wr(1, kSysNew, 0x2001) == MsrStatus::Ok);
    CHECK(r.vti(0x2000).version == 2);
    CHECK(r.vti(0x2000).flags == 0);
    r.advance(1, 10 * kMs);
    REQUIRE(r.wr(1, kSysNew, 0x2001) == MsrStatus::Ok);
    CHECK(r.vti(0x2000).version == 4);
    CHECK(r.vti(0x2000).flags == 0);
    CHECK(r.vti(0x2000).system_time == 10 * kMs);  // per-vCPU sampling, no master clock
    CHECK_FALSE(r.clock->master_clock_active());
  }
}

TEST_CASE("master clock: TSC_STABLE and one (system_time, TSC) snapshot for every vCPU",
          "[kvmclock]") {
  Rig r(modern(), {VcpuSpec{2'500'000'000, 1000}, VcpuSpec{2'500'000'000, 1000}});
  REQUIRE(r.clock->master_clock_active());
  r.advance(1, 5 * kMs);
  r.advance(0, 7 * kMs);
  REQUIRE(r.wr(1, kSysNew, 0x2001) == MsrStatus::Ok);
  REQUIRE(r.wr(0, kSysNew, 0x3001) == MsrStatus::Ok);
  const PvclockVcpuTimeInfo a = r.vti(0x3000), b = r.vti(0x2000);
  CHECK(a.flags == PVCLOCK_TSC_STABLE_BIT);
  CHECK(b.flags == PVCLOCK_TSC_STABLE_BIT);
  // The snapshot taken at VM creation (Tick 0), whenever each vCPU enabled its clock.
  CHECK(a.system_time == 0);
  CHECK(b.system_time == 0);
  CHECK(a.tsc_timestamp == 1000);
  CHECK(b.tsc_timestamp == 1000);
  // Both vCPUs read the same clock at the same TSC.
  r.advance(1, 7 * kMs);
  CHECK(pvclock_read_ns(a, r.v(0).tsc()) == pvclock_read_ns(b, r.v(1).tsc()));
}

TEST_CASE("boot vCPU on MSR 0x12 disables the master clock, back on 0x4b564d01 re-enables it",
          "[kvmclock]") {
  Rig r(modern(), {VcpuSpec{}, VcpuSpec{}});
  r.advance_all(1 * kMs);
  // vCPU 1 on the old MSR does not matter (only the boot vCPU is tracked).
  REQUIRE(r.wr(1, kSysOld, 0x2001) == MsrStatus::Ok);
  CHECK(r.clock->master_clock_active());
  CHECK(r.vti(0x2000).flags == PVCLOCK_TSC_STABLE_BIT);

  REQUIRE(r.wr(0, kSysOld, 0x3001) == MsrStatus::Ok);
  CHECK(r.clock->boot_vcpu_runs_old_kvmclock());
  CHECK_FALSE(r.clock->master_clock_active());
  PvclockVcpuTimeInfo a = r.vti(0x3000);
  CHECK(a.flags == 0);
  CHECK(a.system_time == 1 * kMs);  // sampled at vCPU 0's own time
  // The master-clock update asked every vCPU for a clock update.
  CHECK(r.clock->update_pending(1));
  r.enter(1);
  CHECK(r.vti(0x2000).flags == 0);
  CHECK(r.vti(0x2000).system_time == 1 * kMs);

  // Back on the new MSR at 2 ms: a fresh snapshot at 2 ms. vCPU 1 is still at 1 ms.
  r.advance(0, 2 * kMs);
  REQUIRE(r.wr(0, kSysNew, 0x3001) == MsrStatus::Ok);
  CHECK_FALSE(r.clock->boot_vcpu_runs_old_kvmclock());
  CHECK(r.clock->master_clock_active());
  CHECK(r.clock->master_snapshot_tick() == Tick(2 * kMs));
  a = r.vti(0x3000);
  CHECK(a.flags == PVCLOCK_TSC_STABLE_BIT);
  CHECK(a.system_time == 2 * kMs);
  // vCPU 1 lags: its update is due once it reaches 2 ms (a struct stamped in its future
  // would make its reads wrap); a slice boundary event is queued at 2 ms.
  CHECK(r.clock->update_pending(1));
  CHECK(r.events.next_time() == Tick(2 * kMs));
  const uint32_t version_before = r.vti(0x2000).version;
  r.enter(1);
  CHECK(r.vti(0x2000).version == version_before);
  CHECK(r.vti(0x2000).flags == 0);
  r.advance(1, 2 * kMs);
  r.events.run_until(Tick(2 * kMs));
  r.enter(1);
  const PvclockVcpuTimeInfo b = r.vti(0x2000);
  CHECK(b.version == version_before + 2);
  CHECK(b.flags == PVCLOCK_TSC_STABLE_BIT);
  CHECK(b.system_time == 2 * kMs);
  CHECK(b.tsc_timestamp == a.tsc_timestamp);
  CHECK_FALSE(r.clock->update_pending(1));
}

TEST_CASE("unmatched TSCs or master_clock=false: no master clock, per-vCPU sampling",
          "[kvmclock]") {
  KvmClockConfig off = modern();
  off.master_clock_allowed = false;
  for (KvmClockConfig cfg : {modern_unmatched(), off}) {
    Rig r(cfg, {VcpuSpec{2'500'000'000, 0}, VcpuSpec{2'500'000'000, 77'777}});
    CHECK_FALSE(r.clock->master_clock_active());
    r.advance(0, 3 * kMs);
    r.advance(1, 4 * kMs);
    REQUIRE(r.wr(0, kSysNew, 0x2001) == MsrStatus::Ok);
    REQUIRE(r.wr(1, kSysNew, 0x3001) == MsrStatus::Ok);
    CHECK(r.vti(0x2000).flags == 0);
    CHECK(r.vti(0x2000).system_time == 3 * kMs);
    CHECK(r.vti(0x2000).tsc_timestamp == r.v(0).tsc());
    CHECK(r.vti(0x3000).flags == 0);
    CHECK(r.vti(0x3000).system_time == 4 * kMs);
    CHECK(r.vti(0x3000).tsc_timestamp == 77'777 + 10'000'000);
  }
}

TEST_CASE("GLOBAL update: the writer now, every vCPU update_delay later, one fan-out per burst",
          "[kvmclock]") {
  Rig r(modern_unmatched(), {VcpuSpec{}, VcpuSpec{}});
  r.advance(1, 1 * kMs);
  REQUIRE(r.wr(1, kSysNew, 0x2001) == MsrStatus::Ok);
  r.advance(0, 3 * kMs);
  REQUIRE(r.wr(0, kSysNew, 0x3001) == MsrStatus::Ok);  // fan-out already pending: unchanged
  CHECK(r.events.next_time() == Tick(101 * kMs));
  CHECK_FALSE(r.clock->update_pending(0));
  CHECK_FALSE(r.clock->update_pending(1));

  r.advance_all(100 * kMs);
  r.events.run_until(Tick(100 * kMs));
  CHECK_FALSE(r.clock->update_pending(1));
  r.advance_all(101 * kMs);
  r.events.run_until(Tick(101 * kMs));
  CHECK(r.clock->update_pending(0));
  CHECK(r.clock->update_pending(1));
  // Requests never write memory by themselves.
  CHECK(r.vti(0x2000).version == 2);
  r.enter(0);
  r.enter(1);
  CHECK(r.vti(0x2000).version == 4);
  CHECK(r.vti(0x3000).version == 4);
  CHECK(r.vti(0x2000).system_time == 101 * kMs);
  CHECK(r.vti(0x3000).system_time == 101 * kMs);
  CHECK(r.events.next_time() == Tick(300'000 * kMs));  // only the periodic sync is left
}

TEST_CASE("migration: GLOBAL update without master clock, none with it, orig: this vCPU only",
          "[kvmclock]") {
  SECTION("modern, master clock") {
    Rig r(modern(), {VcpuSpec{}, VcpuSpec{}});
    REQUIRE(r.wr(1, kSysNew, 0x2001) == MsrStatus::Ok);
    r.advance_all(200 * kMs);
    r.events.run_until(Tick(200 * kMs));
    r.enter(1);
    const uint32_t version = r.vti(0x2000).version;
    r.clock->on_migrate(1);
    CHECK_FALSE(r.clock->update_pending(1));
    r.enter(1);
    CHECK(r.vti(0x2000).version == version);
    CHECK(r.events.next_time() == Tick(r.clock->config().periodic_sync_ns));
  }
  SECTION("modern, no master clock") {
    Rig r(modern_unmatched(), {VcpuSpec{}, VcpuSpec{}});
    REQUIRE(r.wr(0, kSysNew, 0x2001) == MsrStatus::Ok);
    REQUIRE(r.wr(1, kSysNew, 0x3001) == MsrStatus::Ok);
    r.advance_all(200 * kMs);
    r.events.run_until(Tick(200 * kMs));
    r.enter(0);
    r.enter(1);
    r.advance(1, 250 * kMs);
    r.clock->on_migrate(1);
    CHECK(r.clock->update_pending(1));
    CHECK_FALSE(r.clock->update_pending(0));
    r.enter(1);
    CHECK(r.vti(0x3000).system_time == 250 * kMs);
    CHECK(r.events.next_time() == Tick(350 * kMs));  // the fan-out for everybody
    r.advance_all(350 * kMs);
    r.events.run_until(Tick(350 * kMs));
    CHECK(r.clock->update_pending(0));
  }
  SECTION("orig") {
    Rig r(orig(), {VcpuSpec{}, VcpuSpec{}});
    REQUIRE(r.wr(0, kSysNew, 0x2001) == MsrStatus::Ok);
    REQUIRE(r.wr(1, kSysNew, 0x3001) == MsrStatus::Ok);
    CHECK(r.events.empty());  // no delayed fan-out and no periodic sync in 3.0
    r.advance(1, 250 * kMs);
    r.clock->on_migrate(1);
    CHECK(r.clock->update_pending(1));
    CHECK_FALSE(r.clock->update_pending(0));
    r.enter(1);
    CHECK(r.vti(0x3000).system_time == 250 * kMs);
    CHECK(r.vti(0x3000).version == 4);
    CHECK(r.events.empty());
  }
}

TEST_CASE("periodic sync: every period all vCPUs get an update (modern only)", "[kvmclock]") {
  KvmClockConfig cfg = modern();
  cfg.periodic_sync_ns = 1'000 * kMs;
  Rig r(cfg, {VcpuSpec{}, VcpuSpec{}});
  REQUIRE(r.wr(0, kSysNew, 0x2001) == MsrStatus::Ok);
  REQUIRE(r.wr(1, kSysNew, 0x3001) == MsrStatus::Ok);
  r.advance_all(100 * kMs);
  r.events.run_until(Tick(100 * kMs));  // the GLOBAL fan-out of the writes above
  r.enter(0);
  r.enter(1);
  CHECK(r.vti(0x2000).version == 4);
  CHECK(r.events.next_time() == Tick(1'000 * kMs));
  for (uint64_t period = 1; period <= 3; ++period) {
    r.advance_all(period * 1'000 * kMs);
    r.events.run_until(Tick(period * 1'000 * kMs));
    CHECK(r.clock->update_pending(0));
    CHECK(r.clock->update_pending(1));
    r.enter(0);
    r.enter(1);
    CHECK(r.vti(0x2000).version == 4 + 2 * period);
    CHECK(r.vti(0x3000).version == 4 + 2 * period);
    CHECK(r.events.next_time() == Tick((period + 1) * 1'000 * kMs));
  }
  KvmClockConfig off = modern();
  off.periodic_sync_ns = 0;
  Rig quiet(off);
  CHECK(quiet.events.empty());
  Rig old(orig());
  CHECK(old.events.empty());
}

TEST_CASE("wall clock: sec*1e9 + nsec + the guest's kvmclock == host realtime, exactly",
          "[kvmclock]") {
  struct Mode {
    const char* name;
    KvmClockConfig cfg;
  };
  // vCPU 1 runs 37 ppm fast / 50 ppm slow and starts elsewhere: its extrapolated
  // kvmclock drifts away from the host clock, which is what makes exactness non-trivial.
  const std::vector<VcpuSpec> specs = {VcpuSpec{2'500'000'000, 0},
                                       VcpuSpec{2'500'092'500, 123'456}};
  const std::vector<VcpuSpec> slow = {VcpuSpec{2'500'000'000, 0},
                                      VcpuSpec{2'499'875'000, 9'999'999}};
  bool saw_drift = false;
  for (const Mode& m : {Mode{"master", modern()}, Mode{"no master", modern_unmatched()},
                        Mode{"orig", orig()}}) {
    for (const auto& sp : {specs, slow}) {
      Rig r(m.cfg, sp);
      for (unsigned i = 0; i < 2; ++i) {
        const uint64_t st = 0x2000 + 0x100 * i, wall = 0x3000 + 0x100 * i;
        r.advance(i, 1 * kMs + i);
        REQUIRE(r.wr(i, kSysNew, st | 1) == MsrStatus::Ok);
        for (uint64_t t : std::vector<uint64_t>{1 * kMs + 1, 7'777'777, 1'000'000'001, 45'678'901'234}) {
          INFO(m.name << " vcpu " << i << " t " << t);
          r.advance(i, t);
          REQUIRE(r.wr(i, kWallNew, wall) == MsrStatus::Ok);
          const PvclockWallClock w = r.wc(wall);
          const uint64_t kvmclock = pvclock_read_ns(r.vti(st), r.v(i).tsc());
          CHECK(uint64_t{w.sec} * 1'000'000'000u + w.nsec + kvmclock == kWall + t);
          CHECK(w.nsec < 1'000'000'000u);
          if (kvmclock != t) saw_drift = true;
        }
      }
    }
  }
  CHECK(saw_drift);  // the host-clock epoch (realtime - t) would have failed above
}

TEST_CASE("kvm_pvclock_update trace lines carry the published values", "[kvmclock]") {
  {
    Rig r(modern(), {VcpuSpec{2'500'000'000, 0x1000}});
    r.advance(0, 1'500'000);
    REQUIRE(r.wr(0, kSysNew, 0x2001) == MsrStatus::Ok);
    CHECK(r.text.str() ==
          "CPU 0/KVM-0 [000] 0.001500000: kvm_pvclock_update: vcpu_id 0, pvclock { version 2, "
          "tsc_timestamp 0x1000, system_time 0x0, tsc_to_system_mul 0xcccccccc, tsc_shift -1, "
          "flags 0x1 }\n");
  }
  {
    Rig r(modern_unmatched(), {VcpuSpec{}, VcpuSpec{2'500'000'000, 0x1000}});
    r.advance(1, 1'500'000);
    REQUIRE(r.wr(1, kSysNew, 0x2001) == MsrStatus::Ok);
    REQUIRE(r.wr(1, kSysNew, kRam | 1) == MsrStatus::Ok);  // not written, so not traced
    CHECK(r.text.str() ==
          "CPU 1/KVM-1 [001] 0.001500000: kvm_pvclock_update: vcpu_id 1, pvclock { version 2, "
          "tsc_timestamp 0x394870, system_time 0x16e360, tsc_to_system_mul 0xcccccccc, "
          "tsc_shift -1, flags 0x0 }\n");
  }
}

TEST_CASE("orig: the 1d5f066e0b63 clamp keeps system_time at or above the guest's extrapolation",
          "[kvmclock]") {
  // 1000 ppm fast TSC: the previous pair extrapolates ahead of the host clock.
  const VcpuSpec fast{2'502'500'000, 0};
  SECTION("clamped when the exit TSC extrapolates past the host clock") {
    Rig r(orig(), {fast});
    r.advance(0, 1 * kMs);
    REQUIRE(r.wr(0, kSysNew, 0x2001) == MsrStatus::Ok);
    const PvclockVcpuTimeInfo first = r.vti(0x2000);
    CHECK(first.system_time == 1 * kMs);
    r.advance(0, 1'000 * kMs);
    r.clock->on_exit(r.v(0));
    const uint64_t seen = pvclock_read_ns(first, r.v(0).tsc());
    REQUIRE(seen > 1'000 * kMs);
    r.clock->on_migrate(0);
    r.enter(0);
    CHECK(r.vti(0x2000).system_time == seen);
    CHECK(r.vti(0x2000).tsc_timestamp == r.v(0).tsc());
  }
  SECTION("not clamped when the last exit was at the previous update") {
    Rig r(orig(), {fast});
    r.advance(0, 1 * kMs);
    REQUIRE(r.wr(0, kSysNew, 0x2001) == MsrStatus::Ok);
    r.advance(0, 1'000 * kMs);
    r.clock->on_migrate(0);
    r.enter(0);
    CHECK(r.vti(0x2000).system_time == 1'000 * kMs);
  }
  SECTION("modern has no such clamp") {
    Rig r(modern_unmatched(), {fast});
    r.advance(0, 1 * kMs);
    REQUIRE(r.wr(0, kSysNew, 0x2001) == MsrStatus::Ok);
    r.advance(0, 1'000 * kMs);
    r.clock->on_exit(r.v(0));
    r.clock->on_migrate(0);
    r.enter(0);
    CHECK(r.vti(0x2000).system_time == 1'000 * kMs);
  }
}

TEST_CASE("INIT/RESET zeroes the system-time MSR and stops updates, wall clock stays",
          "[kvmclock]") {
  Rig r(modern_unmatched(), {VcpuSpec{}, VcpuSpec{}});
  REQUIRE(r.wr(1, kWallNew, 0x1000) == MsrStatus::Ok);
  REQUIRE(r.wr(1, kSysNew, 0x2001) == MsrStatus::Ok);
  const PvclockVcpuTimeInfo before = r.vti(0x2000);
  r.clock->on_reset(1);
  CHECK(r.rd_ok(1, kSysNew) == 0);
  CHECK(r.rd_ok(1, kWallNew) == 0x1000);
  r.advance_all(200 * kMs);
  r.events.run_until(Tick(200 * kMs));  // the fan-out of the write above
  r.enter(1);
  const PvclockVcpuTimeInfo after = r.vti(0x2000);
  CHECK(std::memcmp(&before, &after, sizeof(before)) == 0);
}

TEST_CASE("after a global update each vCPU samples at its own entry without the master clock",
          "[kvmclock]") {
  // kvmclock_update_fn raises KVM_REQ_CLOCK_UPDATE on every vCPU; without the master clock
  // kvm_guest_time_update reads the host TSC and clock when THAT vCPU next enters, so two
  // vCPUs entering at different instants carry different pairs. vCPU 1 enters 2 TSC cycles
  // (0.8 ns) after vCPU 0: the same nanosecond, a later TSC.
  for (bool master : {false, true}) {
    KvmClockConfig cfg = modern();
    cfg.master_clock_allowed = master;
    INFO("master clock " << master);
    Rig r(cfg, {VcpuSpec{}, VcpuSpec{}});
    REQUIRE(r.clock->master_clock_active() == master);
    REQUIRE(r.wr(0, kSysNew, 0x2001) == MsrStatus::Ok);
    REQUIRE(r.wr(1, kSysNew, 0x3001) == MsrStatus::Ok);
    const uint64_t fan_out = 100 * kMs;  // KVMCLOCK_UPDATE_DELAY after the first write
    REQUIRE(r.events.next_time() == Tick(fan_out));
    r.advance_all(fan_out);
    r.v(1).advance_to(Cycles(r.v(1).cycles().value() + 2));
    REQUIRE(r.v(1).now() == Tick(fan_out));
    r.events.run_until(Tick(fan_out));
    REQUIRE(r.clock->update_pending(0));
    REQUIRE(r.clock->update_pending(1));
    r.enter(0);
    r.enter(1);
    const PvclockVcpuTimeInfo a = r.vti(0x2000), b = r.vti(0x3000);
    if (master) {
      // One VM-wide snapshot (taken at creation): the same pair on both vCPUs.
      CHECK(a.system_time == 0);
      CHECK(b.system_time == 0);
      CHECK(a.tsc_timestamp == b.tsc_timestamp);
      CHECK(a.flags == PVCLOCK_TSC_STABLE_BIT);
    } else {
      CHECK(a.system_time == fan_out);
      CHECK(a.tsc_timestamp == r.v(0).tsc());
      CHECK(b.system_time == fan_out);
      CHECK(b.tsc_timestamp == r.v(1).tsc());
      CHECK(b.tsc_timestamp == a.tsc_timestamp + 2);
      CHECK(a.flags == 0);
    }
  }
}

TEST_CASE("on_entry computes the update and queues KVM's stores, memory changes only as they land",
          "[kvmclock]") {
  struct Mode {
    KvmClockConfig cfg;
    std::vector<std::string> what;
  };
  for (const Mode& m : {Mode{modern_unmatched(), {"version", "body", "version"}},
                        Mode{orig(), {"version", "tsc_timestamp", "system_time", "mul_shift_flags"}}}) {
    INFO("abi " << (m.cfg.abi == AbiProfile::Modern ? "modern" : "orig"));
    Rig r(m.cfg);
    r.advance(0, 2 * kMs);
    r.fill(0x2000, 32, 0);
    REQUIRE(r.v(0).msrs().write(r.v(0), kSysNew, 0x2001) == MsrStatus::Ok);
    HostStores q;
    r.clock->on_entry(r.v(0), q);
    // Computed and traced now; nothing in guest memory yet.
    CHECK(r.all_bytes(0x2000, 32, 0));
    CHECK(r.text.str().find("kvm_pvclock_update: vcpu_id 0, pvclock { version 2,") != std::string::npos);
    CHECK(r.clock->hv_clock(0).system_time == 2 * kMs);
    REQUIRE(q.size() == m.what.size());
    for (const std::string& w : m.what) {
      CHECK(std::string(q.front().what) == w);
      REQUIRE(q.apply_front(r.mem));
    }
    const PvclockVcpuTimeInfo t = r.vti(0x2000);
    CHECK(std::memcmp(&t, &r.clock->hv_clock(0), sizeof(t)) == 0);
    CHECK(t.version == 2);
    CHECK(t.system_time == 2 * kMs);
    // A struct outside RAM queues nothing.
    REQUIRE(r.v(0).msrs().write(r.v(0), kSysNew, kRam | 1) == MsrStatus::Ok);
    r.clock->on_entry(r.v(0), q);
    CHECK(q.empty());
  }
}

TEST_CASE("a reader on another vCPU between the stores: torn under orig, never under modern",
          "[kvmclock][race]") {
  // vCPU 0's structure is refreshed at 1 ms (migration: a clock update for it alone in
  // both profiles' terms below); vCPU 1 reads vCPU 0's structure at its own TSC between the
  // host's stores, with the guest's read loop, whole between two stores.
  for (KvmClockConfig cfg : {orig(), modern_unmatched()}) {
    const bool is_orig = cfg.abi == AbiProfile::Orig;
    INFO("abi " << (is_orig ? "orig" : "modern"));
    Rig r(cfg, {VcpuSpec{}, VcpuSpec{}});
    REQUIRE(r.wr(0, kSysNew, 0x2001) == MsrStatus::Ok);  // the first sample, at 0
    r.advance(0, 1 * kMs);
    r.advance(1, 1 * kMs + 40);
    r.clock->on_migrate(0);
    HostStores q;
    r.clock->on_entry(r.v(0), q);
    const PvclockVcpuTimeInfo next = r.clock->hv_clock(0);
    const uint64_t tsc1 = r.v(1).tsc();
    const uint64_t truth = pvclock_read_ns(next, tsc1);
    bool torn = false;
    unsigned accepted = 0;
    for (;;) {
      const PvclockVcpuTimeInfo seen = r.vti(0x2000);  // one whole pass of the read loop
      if ((seen.version & 1u) == 0) {
        ++accepted;
        const uint64_t ns = pvclock_read_ns(seen, tsc1);
        // A consistent old struct extrapolates to the same line (matched TSCs, one host
        // clock) to within the scale's rounding; a torn one is off by about 1 ms.
        if (ns + 1000 < truth || ns > truth + 1000) torn = true;
      }
      if (q.empty()) break;
      REQUIRE(q.apply_front(r.mem));
    }
    CHECK(accepted >= 2);
    CHECK(torn == is_orig);
  }
}

TEST_CASE("KVM_KVMCLOCK_CTRL: GUEST_STOPPED set by the next update, kept until the guest clears it",
          "[kvmclock]") {
  constexpr uint64_t kFlags = 0x2000 + 29;
  SECTION("modern") {
    Rig r(modern(), {VcpuSpec{}, VcpuSpec{}});
    // kvmclock not enabled on the vCPU: -EINVAL, nothing requested.
    CHECK(r.clock->kvmclock_ctrl(0) == -KvmClock::kEinval);
    REQUIRE(r.wr(0, kSysNew, 0x2000) == MsrStatus::Ok);  // bit 0 clear: still not enabled
    CHECK(r.clock->kvmclock_ctrl(0) < 0);
    CHECK_FALSE(r.clock->guest_stopped_requested(0));

    REQUIRE(r.wr(0, kSysNew, 0x2001) == MsrStatus::Ok);
    CHECK(r.vti(0x2000).flags == PVCLOCK_TSC_STABLE_BIT);
    CHECK(r.clock->kvmclock_ctrl(0) == 0);
    CHECK(r.clock->guest_stopped_requested(0));
    CHECK(r.clock->update_pending(0));
    CHECK_FALSE(r.clock->update_pending(1));
    const uint32_t version = r.vti(0x2000).version;
    r.advance(0, 5 * kMs);
    r.enter(0);
    CHECK(r.vti(0x2000).version == version + 2);
    CHECK(r.vti(0x2000).flags == (PVCLOCK_TSC_STABLE_BIT | PVCLOCK_GUEST_STOPPED));
    CHECK(r.clock->hv_clock(0).flags == (PVCLOCK_TSC_STABLE_BIT | PVCLOCK_GUEST_STOPPED));
    CHECK_FALSE(r.clock->guest_stopped_requested(0));
    CHECK(r.text.str().find("flags 0x3 }") != std::string::npos);

    // A later update (the periodic sync here) keeps the bit the guest has not consumed.
    r.advance_all(r.clock->config().periodic_sync_ns);
    r.events.run_until(Tick(r.clock->config().periodic_sync_ns));
    r.enter(0);
    CHECK(r.vti(0x2000).version == version + 4);
    CHECK(r.vti(0x2000).flags == (PVCLOCK_TSC_STABLE_BIT | PVCLOCK_GUEST_STOPPED));
    // The guest clears it (a plain store) and pets its watchdogs: the next update leaves
    // it clear.
    const uint8_t cleared = PVCLOCK_TSC_STABLE_BIT;
    REQUIRE(r.mem.write(Gpa(kFlags), &cleared, 1));
    REQUIRE(r.wr(0, kSysNew, 0x2001) == MsrStatus::Ok);
    CHECK(r.vti(0x2000).flags == PVCLOCK_TSC_STABLE_BIT);

    // Enabled on a struct outside RAM: the ioctl succeeds (KVM's pv_time.active), but the
    // request waits for an update that reaches the guest.
    REQUIRE(r.wr(1, kSysNew, kRam | 1) == MsrStatus::Ok);
    CHECK(r.clock->kvmclock_ctrl(1) == 0);
    r.enter(1);
    CHECK(r.clock->guest_stopped_requested(1));
    REQUIRE(r.wr(1, kSysNew, 0x3001) == MsrStatus::Ok);
    CHECK(r.vti(0x3000).flags == (PVCLOCK_TSC_STABLE_BIT | PVCLOCK_GUEST_STOPPED));
    CHECK_FALSE(r.clock->guest_stopped_requested(1));

    // INIT zeroes the MSR: kvmclock is off again.
    r.clock->on_reset(1);
    CHECK(r.clock->kvmclock_ctrl(1) == -KvmClock::kEinval);
  }
  SECTION("orig: no KVM_KVMCLOCK_CTRL before 3.5") {
    Rig r(orig());
    REQUIRE(r.wr(0, kSysNew, 0x2001) == MsrStatus::Ok);
    CHECK(r.clock->kvmclock_ctrl(0) == -KvmClock::kEinval);
    CHECK_FALSE(r.clock->guest_stopped_requested(0));
    CHECK_FALSE(r.clock->update_pending(0));
    // And a stop bit the guest left in its copy is overwritten by the host's flags.
    const uint8_t stopped = PVCLOCK_GUEST_STOPPED;
    REQUIRE(r.mem.write(Gpa(kFlags), &stopped, 1));
    REQUIRE(r.wr(0, kSysNew, 0x2001) == MsrStatus::Ok);
    CHECK(r.vti(0x2000).flags == 0);
  }
}

TEST_CASE("boot vCPU MSR switches: a master-clock update only on a change, never under orig",
          "[kvmclock]") {
  SECTION("modern") {
    Rig r(modern(), {VcpuSpec{}, VcpuSpec{}});
    r.advance_all(1 * kMs);
    REQUIRE(r.wr(1, kSysNew, 0x3001) == MsrStatus::Ok);
    REQUIRE(r.wr(0, kSysOld, 0x2001) == MsrStatus::Ok);  // change: off, snapshot at 1 ms
    CHECK_FALSE(r.clock->master_clock_active());
    CHECK(r.clock->master_snapshot_tick() == Tick(1 * kMs));
    r.enter(1);
    CHECK(r.vti(0x3000).flags == 0);
    // The same MSR again: no change, no KVM_REQ_MASTERCLOCK_UPDATE, no new snapshot.
    r.advance_all(2 * kMs);
    REQUIRE(r.wr(0, kSysOld, 0x2001) == MsrStatus::Ok);
    CHECK(r.clock->master_snapshot_tick() == Tick(1 * kMs));
    CHECK_FALSE(r.clock->update_pending(1));
    // Disabling through 0x12 still records the old MSR (the check precedes bit 0).
    REQUIRE(r.wr(0, kSysOld, 0x2000) == MsrStatus::Ok);
    CHECK(r.clock->boot_vcpu_runs_old_kvmclock());
    // Back on the new MSR at 3 ms, even with bit 0 clear: master clock and TSC_STABLE on
    // for every vCPU, from a snapshot at 3 ms.
    r.advance_all(3 * kMs);
    REQUIRE(r.wr(0, kSysNew, 0x2000) == MsrStatus::Ok);
    CHECK(r.clock->master_clock_active());
    CHECK(r.clock->master_snapshot_tick() == Tick(3 * kMs));
    CHECK(r.clock->update_pending(1));
    r.enter(1);
    CHECK(r.vti(0x3000).flags == PVCLOCK_TSC_STABLE_BIT);
    CHECK(r.vti(0x3000).system_time == 3 * kMs);
  }
  SECTION("modern with master_clock=false stays off") {
    KvmClockConfig cfg = modern();
    cfg.master_clock_allowed = false;
    Rig r(cfg, {VcpuSpec{}, VcpuSpec{}});
    REQUIRE(r.wr(0, kSysOld, 0x2001) == MsrStatus::Ok);
    REQUIRE(r.wr(0, kSysNew, 0x2001) == MsrStatus::Ok);
    CHECK_FALSE(r.clock->master_clock_active());
    CHECK(r.vti(0x2000).flags == 0);
  }
  SECTION("orig") {
    Rig r(orig(), {VcpuSpec{}, VcpuSpec{}});
    REQUIRE(r.wr(0, kSysOld, 0x2001) == MsrStatus::Ok);
    CHECK_FALSE(r.clock->boot_vcpu_runs_old_kvmclock());  // 3.0 had no such tracking
    REQUIRE(r.wr(0, kSysNew, 0x2001) == MsrStatus::Ok);
    CHECK_FALSE(r.clock->master_clock_active());
    CHECK(r.vti(0x2000).flags == 0);
  }
}

// ---------------------------------------------------------------------------------------
// Snapshots (pvmsr/README.md §1.3)

namespace {

// Everything KvmClock lets a test see, one line.
std::string kvmclock_state(Rig& r) {
  std::ostringstream os;
  os << "wall 0x" << std::hex << r.clock->wall_clock_msr() << " master "
     << r.clock->master_clock_active() << "@" << std::dec << r.clock->master_snapshot_tick().value()
     << " boot_old " << r.clock->boot_vcpu_runs_old_kvmclock();
  for (unsigned i = 0; i < r.vcpus.size(); ++i) {
    const PvclockVcpuTimeInfo hv = r.clock->hv_clock(i);
    os << " | vcpu " << i << " msr 0x" << std::hex << r.clock->system_time_msr(i) << std::dec
       << " pending " << r.clock->update_pending(i) << " stop " << r.clock->guest_stopped_requested(i)
       << " hv " << hv.version << "/" << hv.tsc_timestamp << "/" << hv.system_time << "/"
       << hv.tsc_to_system_mul << "/" << int(hv.tsc_shift) << "/" << int(hv.flags);
  }
  return os.str() + "\n";
}

// Every vCPU's time becomes t, the events due by then fire, and every vCPU enters the guest
// and exits again (the orig clamp samples the TSC at exits).
void kvmclock_round(Rig& r, uint64_t t) {
  r.advance_all(t);
  r.events.run_until(Tick(t));
  for (unsigned i = 0; i < r.vcpus.size(); ++i) {
    r.enter(i);
    r.clock->on_exit(r.v(i));
  }
}

}  // namespace

TEST_CASE("kvmclock snapshot: restore, then everything goes as in an untouched copy",
          "[kvmclock][snapshot]") {
  // vCPU 1's TSC runs 4% fast (the orig clamp engages, and the struct's extrapolation
  // differs from the host clock, which is what makes `published` visible to a wall-clock
  // write), from a non-zero start.
  const std::vector<VcpuSpec> specs{VcpuSpec{}, VcpuSpec{2'600'000'000, 12'345}};
  struct Profile {
    const char* name;
    KvmClockConfig cfg;
  };
  std::vector<Profile> profiles;
  for (bool matched : {true, false}) {
    KvmClockConfig c = modern();
    c.tsc_matched = matched;
    c.periodic_sync_ns = 400 * kMs;
    profiles.push_back({matched ? "modern, master clock" : "modern, no master clock", c});
  }
  profiles.push_back({"orig", orig()});
  for (const Profile& p : profiles) {
    INFO(p.name);
    // Saved with: a fan-out pending (modern) and one already fired that left vCPU 1, which
    // is behind it, with a deferred update; KVM_KVMCLOCK_CTRL's request and a migration
    // request on vCPU 0; the orig clamp's TSC sampled well after vCPU 1's last update.
    auto make = [&] {
      auto r = std::make_unique<Rig>(p.cfg, specs);
      REQUIRE(r->wr(0, kWallNew, 0x1000) == MsrStatus::Ok);
      REQUIRE(r->wr(0, kSysNew, 0x2001) == MsrStatus::Ok);
      r->advance(1, 5 * kMs);
      REQUIRE(r->wr(1, kSysNew, 0x2041) == MsrStatus::Ok);
      r->advance(0, 120 * kMs);
      r->clock->on_exit(r->v(0));
      r->advance(1, 50 * kMs);
      r->clock->on_exit(r->v(1));
      r->events.run_until(Tick(120 * kMs));
      REQUIRE(r->wr(0, kSysNew, 0x2001) == MsrStatus::Ok);  // a second fan-out, pending
      r->clock->kvmclock_ctrl(0);
      r->clock->on_migrate(0);
      // vCPU 1's only pending update under modern is the deferred one; orig has no
      // fan-out, so it gets a request that the branch services close to the clamp's TSC.
      if (p.cfg.abi == AbiProfile::Orig) r->clock->on_migrate(1);
      return r;
    };
    // Every kind of state moves: updates land, both MSR pairs are rewritten (vCPU 0 on the
    // old one: a master-clock update), the periodic sync runs, vCPU 0 is stopped, vCPU 1
    // is reset, and the clamp's TSC and kernel time are taken close to the branch.
    auto mutate = [](Rig& r) {
      kvmclock_round(r, 200 * kMs);
      REQUIRE(r.wr(0, kWallOld, 0x1800) == MsrStatus::Ok);
      REQUIRE(r.wr(0, kSysOld, 0x2081) == MsrStatus::Ok);
      kvmclock_round(r, 650 * kMs);
      r.clock->kvmclock_ctrl(0);
      r.clock->on_migrate(0);
      r.clock->on_migrate(1);
      kvmclock_round(r, 700 * kMs);
      r.clock->on_reset(1);
      r.advance(0, 705 * kMs);
      REQUIRE(r.wr(0, kSysOld, 0x20c1) == MsrStatus::Ok);  // a fan-out pending at 805 ms
    };
    // First a wall-clock write by vCPU 1 before its pending update (the epoch comes from
    // its published struct, or the host clock), then rounds of entries with events in
    // between, and the boot vCPU back on the new MSR.
    auto branch = [](Rig& r, uint64_t base) {
      const size_t mark = r.text.str().size();
      std::ostringstream log;
      log << kvmclock_state(r);
      r.advance_all(base);
      REQUIRE(r.wr(1, kWallNew, 0x1c00) == MsrStatus::Ok);
      const PvclockWallClock w = r.wc(0x1c00);
      log << "wall clock " << w.version << " " << w.sec << "." << w.nsec << "\n";
      kvmclock_round(r, base);
      log << kvmclock_state(r);
      REQUIRE(r.wr(0, kSysNew, 0x2001) == MsrStatus::Ok);
      log << kvmclock_state(r);
      kvmclock_round(r, base + 150 * kMs);
      log << kvmclock_state(r);
      kvmclock_round(r, base + 900 * kMs);
      log << kvmclock_state(r);
      for (uint32_t msr : {kWallOld, kSysOld, kWallNew, kSysNew})
        log << std::hex << msr << "=" << r.rd_ok(0, msr) << "," << r.rd_ok(1, msr) << std::dec << "\n";
      return log.str() + r.text.str().substr(mark);
    };
    pvsim::test::check_snapshot(make, mutate, branch, {710 * kMs, 2000 * kMs});
  }
}
