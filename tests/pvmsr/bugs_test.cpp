// tests/pvmsr/bugs_test.cpp — machine.kvm.bugs (pvmsr/kvm_bugs.h, pvmsr/README.md §2.5):
// the table and each profile's defaults, and for every flag a component-level pair: the
// bug with the flag, the fixed behaviour without it (guest memory bytes, host calls,
// counters, trace lines). Every pair differs, so a component that ignored its flag fails.
#include "pvmsr/kvm_bugs.h"

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <cstring>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "core/event_queue.h"
#include "core/guest_memory.h"
#include "core/trace.h"
#include "core/vcpu.h"
#include "devices/lapic.h"
#include "pvmsr/async_pf.h"
#include "pvmsr/hypervisor.h"
#include "pvmsr/kvmclock.h"
#include "pvmsr/pv_eoi.h"
#include "pvmsr/steal_time.h"
#include "tests/cpu_envs.h"
#include "tests/lapic/lapic_harness.h"

using namespace pvsim;
using pvsim::test::NullEnv;

namespace {

constexpr uint64_t kRam = 64 * kPageSize;
constexpr uint64_t kMs = 1'000'000;

KvmBugs with(AbiProfile abi, bool KvmBugs::*flag, bool value) {
  KvmBugs b = kvm_bug_defaults(abi);
  b.*flag = value;
  return b;
}

VcpuConfig vcpu_config(unsigned i, unsigned n) {
  VcpuConfig c;
  c.index = i;
  c.count = n;
  return c;
}

// Local time of `v` becomes exactly t (nominal 2.5 GHz TSC unless the config says else).
void advance(Vcpu& v, uint64_t t) {
  const uint64_t hz = v.config().tsc_hz;
  const auto c = static_cast<uint64_t>(
      (static_cast<unsigned __int128>(t) * hz + 999'999'999u) / 1'000'000'000u);
  v.advance_to(Cycles(c));
  REQUIRE(v.now().value() == t);
}

}  // namespace

// ---------------------------------------------------------------------------------------
// The table

TEST_CASE("bug table: ten distinct flags, defaults: orig the three seed-era bugs, modern none",
          "[bugs]") {
  const auto& t = kvm_bug_table();
  std::set<std::string_view> names;
  std::vector<bool KvmBugs::*> flags;
  for (const KvmBugInfo& b : t) {
    INFO(b.name);
    names.insert(b.name);
    for (bool KvmBugs::*f : flags) CHECK(f != b.flag);  // pointers to members have no order
    flags.push_back(b.flag);
    CHECK((b.in_orig || b.in_modern));
    if (b.orig_default) CHECK(b.in_orig);
    CHECK_FALSE(b.what.empty());
    CHECK_FALSE(b.kernels.empty());
    CHECK_FALSE(b.fix.empty());
    // Each default is exactly what kvm_bug_defaults sets.
    CHECK(kvm_bug_defaults(AbiProfile::Orig).*b.flag == b.orig_default);
    CHECK_FALSE(kvm_bug_defaults(AbiProfile::Modern).*b.flag);
  }
  CHECK(names.size() == t.size());
  CHECK(sizeof(KvmBugs) == t.size());  // one bool per flag, each in the table once
  const KvmBugs o = kvm_bug_defaults(AbiProfile::Orig);
  CHECK(o.kvmclock_even_version_copy);
  CHECK(o.steal_time_write_back);
  CHECK(o.pv_eoi_keeps_bad_value);
  CHECK_FALSE(o.kvmclock_no_backwards_clamp);
  CHECK_FALSE(o.apf_ready_on_pending_pf);
}

TEST_CASE("HypervisorConfig without bugs: the profile's defaults reach every component", "[bugs]") {
  struct NoApf final : ApfHost {
    void apf_inject_page_fault(unsigned, uint32_t) override {}
    void apf_inject_interrupt(unsigned, uint8_t) override {}
    bool apf_lapic_enabled(unsigned) override { return true; }
    bool apf_can_inject_present(unsigned) override { return true; }
    void apf_wake(unsigned) override {}
    void apf_request_ready(unsigned) override {}
  } apf_host;
  struct NoHc final : HypercallHost {
    int hc_deliver_ipi(unsigned, uint32_t, uint32_t) override { return -1; }
    void hc_kick(unsigned, uint32_t) override {}
    void hc_sched_yield(unsigned, uint32_t) override {}
    bool hc_clock_pairing(unsigned, int64_t&, int64_t&, uint64_t&) override { return false; }
  } hc_host;
  GuestMemory mem(kRam);
  Tracer tracer;
  EventQueue events;
  for (AbiProfile abi : {AbiProfile::Orig, AbiProfile::Modern}) {
    HypervisorConfig cfg;
    cfg.abi = abi;
    const KvmBugs want = kvm_bug_defaults(abi);
    SECTION(abi == AbiProfile::Orig ? "orig" : "modern") {
      auto check = [&](const Hypervisor& h, const KvmBugs& b) {
        for (const KvmBugInfo& info : kvm_bug_table()) {
          INFO(info.name);
          CHECK(h.bugs().*info.flag == b.*info.flag);
        }
      };
      {
        Hypervisor h(cfg, 1, mem, tracer, events, apf_host, hc_host);
        check(h, want);
        Hypervisor& m = h;
        CHECK(m.kvmclock().bugs().kvmclock_even_version_copy == want.kvmclock_even_version_copy);
        CHECK(m.steal_time().bugs().steal_time_write_back == want.steal_time_write_back);
        CHECK(m.pv_eoi().bugs().pv_eoi_keeps_bad_value == want.pv_eoi_keeps_bad_value);
      }
      // An explicit set overrides the defaults, and every component gets it.
      KvmBugs flipped = want;
      flipped.pv_eoi_keeps_bad_value = !flipped.pv_eoi_keeps_bad_value;
      flipped.apf_token_zero = abi == AbiProfile::Modern;
      cfg.bugs = flipped;
      Hypervisor h(cfg, 1, mem, tracer, events, apf_host, hc_host);
      check(h, flipped);
      CHECK(h.pv_eoi().bugs().pv_eoi_keeps_bad_value == flipped.pv_eoi_keeps_bad_value);
      CHECK(h.async_pf().bugs().apf_token_zero == flipped.apf_token_zero);
      CHECK(h.kvmclock().bugs().kvmclock_even_version_copy == flipped.kvmclock_even_version_copy);
    }
  }
}

// ---------------------------------------------------------------------------------------
// kvmclock (flags 1 and 2)

namespace {

constexpr uint32_t kSysNew = KvmClock::kMsrSystemTimeNew;
constexpr uint64_t kClock = 0x2000;

struct ClockRig {
  GuestMemory mem{kRam};
  Tracer tracer;
  std::ostringstream text;
  NullEnv env;
  EventQueue events;
  std::vector<std::unique_ptr<Vcpu>> vcpus;
  std::unique_ptr<KvmClock> clock;  // declared last: destroyed before the vCPUs and queue

  ClockRig(AbiProfile abi, const KvmBugs& bugs, std::vector<uint64_t> tsc_hz = {2'500'000'000}) {
    tracer.set_text_output(&text);
    KvmClockConfig cfg;
    cfg.abi = abi;
    cfg.tsc_matched = false;  // per-vCPU sampling, as under orig
    cfg.bugs = bugs;
    clock = std::make_unique<KvmClock>(cfg, mem, tracer, events);
    const unsigned n = static_cast<unsigned>(tsc_hz.size());
    for (unsigned i = 0; i < n; ++i) {
      VcpuConfig vc = vcpu_config(i, n);
      vc.tsc_hz = tsc_hz[i];
      vcpus.push_back(std::make_unique<Vcpu>(vc, mem, env, tracer));
      clock->attach(*vcpus.back());
    }
  }
  Vcpu& v(unsigned i = 0) { return *vcpus.at(i); }
  // The WRMSR, then the entry that ends its exit, with the stores queued in `q`.
  void wr_sys(uint64_t value, HostStores& q, unsigned i = 0) {
    REQUIRE(v(i).msrs().write(v(i), kSysNew, value) == MsrStatus::Ok);
    clock->on_entry(v(i), q);
  }
  PvclockVcpuTimeInfo vti() const {
    PvclockVcpuTimeInfo t;
    REQUIRE(mem.read(Gpa(kClock), &t, sizeof(t)));
    return t;
  }
};

}  // namespace

TEST_CASE("kvmclock_even_version_copy: orig's one-copy store vs the odd/even protocol",
          "[bugs][kvmclock]") {
  for (bool bug : {true, false}) {
    INFO("kvmclock_even_version_copy " << bug);
    ClockRig r(AbiProfile::Orig, with(AbiProfile::Orig, &KvmBugs::kvmclock_even_version_copy, bug));
    advance(r.v(), 2 * kMs);
    // Junk the guest left: an odd version and a GUEST_STOPPED bit in its copy.
    PvclockVcpuTimeInfo junk;
    junk.version = 7;
    junk.flags = PVCLOCK_GUEST_STOPPED;
    REQUIRE(r.mem.write(Gpa(kClock), &junk, sizeof(junk)));
    HostStores q;
    r.wr_sys(kClock | 1, q);
    std::vector<std::string> what;
    std::vector<uint32_t> versions;  // the guest's version after each store lands
    while (!q.empty()) {
      what.push_back(q.front().what);
      REQUIRE(q.apply_front(r.mem));
      versions.push_back(r.vti().version);
    }
    const PvclockVcpuTimeInfo t = r.vti();
    CHECK(t.system_time == 2 * kMs);
    // Orig's host flags in both cases: the guest copy's GUEST_STOPPED is not kept.
    CHECK(t.flags == 0);
    if (bug) {
      // The host's own counter (0) + 2; the new even version lands first.
      CHECK(what == std::vector<std::string>{"version", "tsc_timestamp", "system_time",
                                             "mul_shift_flags"});
      CHECK(versions == std::vector<uint32_t>{2, 2, 2, 2});
    } else {
      // From the guest copy: 7 is junk, rounded to 8, then odd 9 during, even 10 after.
      CHECK(what == std::vector<std::string>{"version", "body", "version"});
      CHECK(versions == std::vector<uint32_t>{9, 9, 10});
    }
    CHECK(r.clock->hv_clock(0).version == t.version);
    CHECK(r.text.str().find(fmt::format("pvclock {{ version {},", t.version)) != std::string::npos);
  }
}

TEST_CASE("kvmclock_even_version_copy off: a reader between the stores never accepts a torn copy",
          "[bugs][kvmclock][race]") {
  for (bool bug : {true, false}) {
    INFO("kvmclock_even_version_copy " << bug);
    ClockRig r(AbiProfile::Orig, with(AbiProfile::Orig, &KvmBugs::kvmclock_even_version_copy, bug),
               {2'500'000'000, 2'500'000'000});
    HostStores q;
    r.wr_sys(kClock | 1, q);
    q.apply_all(r.mem);
    advance(r.v(0), 1 * kMs);
    advance(r.v(1), 1 * kMs + 40);
    r.clock->on_migrate(0);
    r.clock->on_entry(r.v(0), q);
    const uint64_t tsc1 = r.v(1).tsc();
    const uint64_t truth = pvclock_read_ns(r.clock->hv_clock(0), tsc1);
    bool torn = false;
    for (;;) {
      const PvclockVcpuTimeInfo seen = r.vti();
      if ((seen.version & 1u) == 0) {
        const uint64_t ns = pvclock_read_ns(seen, tsc1);
        if (ns + 1000 < truth || ns > truth + 1000) torn = true;
      }
      if (q.empty()) break;
      REQUIRE(q.apply_front(r.mem));
    }
    CHECK(torn == bug);
  }
}

TEST_CASE("kvmclock_no_backwards_clamp: orig publishes the re-based pair as sampled",
          "[bugs][kvmclock]") {
  // 1000 ppm fast TSC: the previous pair extrapolates ahead of the host clock (the case
  // the 1d5f066e0b63 clamp exists for).
  for (bool bug : {false, true}) {
    INFO("kvmclock_no_backwards_clamp " << bug);
    ClockRig r(AbiProfile::Orig, with(AbiProfile::Orig, &KvmBugs::kvmclock_no_backwards_clamp, bug),
               {2'502'500'000});
    advance(r.v(), 1 * kMs);
    HostStores q;
    r.wr_sys(kClock | 1, q);
    q.apply_all(r.mem);
    const PvclockVcpuTimeInfo first = r.vti();
    advance(r.v(), 1'000 * kMs);
    r.clock->on_exit(r.v());
    const uint64_t seen = pvclock_read_ns(first, r.v().tsc());
    REQUIRE(seen > 1'000 * kMs);
    r.clock->on_migrate(0);
    r.clock->on_entry(r.v(), q);
    q.apply_all(r.mem);
    // With the bug the guest's clock steps back from `seen` to the host's 1000 ms.
    CHECK(r.vti().system_time == (bug ? 1'000 * kMs : seen));
  }
}

// ---------------------------------------------------------------------------------------
// Steal time (flags 3 and 4)

namespace {

constexpr uint64_t kSt = 0x3000, kSt2 = 0x3040;
constexpr uint32_t kStMsr = StealTime::kMsr;

struct StealRig {
  GuestMemory mem{kRam};
  Tracer tracer;
  std::ostringstream text;
  NullEnv env;
  std::unique_ptr<Vcpu> vcpu;
  std::unique_ptr<StealTime> steal;  // declared last: destroyed before the vCPU

  StealRig(AbiProfile abi, const KvmBugs& bugs) {
    tracer.set_text_output(&text);
    StealTimeConfig cfg;
    cfg.abi = abi;
    cfg.bugs = bugs;
    steal = std::make_unique<StealTime>(cfg, 1, mem, tracer);
    vcpu = std::make_unique<Vcpu>(vcpu_config(0, 1), mem, env, tracer);
    steal->attach(*vcpu);
  }
  Vcpu& v() { return *vcpu; }
  void wr(uint64_t value) { REQUIRE(v().msrs().write(v(), kStMsr, value) == MsrStatus::Ok); }
  uint8_t preempted(uint64_t area = kSt) const {
    uint8_t b = 0;
    REQUIRE(mem.read(Gpa(area + StealTime::kOffPreempted), &b, 1));
    return b;
  }
  void set_preempted(uint8_t b, uint64_t area = kSt) {
    REQUIRE(mem.write(Gpa(area + StealTime::kOffPreempted), &b, 1));
  }
  uint64_t steal_at(uint64_t area) const {
    uint64_t x = 0;
    REQUIRE(mem.read(Gpa(area + StealTime::kOffSteal), &x, 8));
    return x;
  }
  bool record(uint64_t delay, HostStores& q) {
    steal->on_load(0);
    return steal->record(v(), delay, q);
  }
};

}  // namespace

TEST_CASE("steal_time_write_back: orig's whole-record write-back loses a FLUSH_TLB, the 5.6 fix keeps it",
          "[bugs][steal]") {
  for (bool bug : {true, false}) {
    INFO("steal_time_write_back " << bug);
    StealRig r(AbiProfile::Orig, with(AbiProfile::Orig, &KvmBugs::steal_time_write_back, bug));
    r.wr(kSt | StealTime::kEnabled);
    HostStores q;
    CHECK_FALSE(r.record(100, q));
    q.apply_all(r.mem);
    // The vCPU is preempted; another vCPU asks it for a TLB flush instead of an IPI.
    r.steal->on_put(0, Tick(1));
    REQUIRE(r.preempted() == StealTime::kPreempted);
    // The update at its next entry is computed (the record is read) ...
    CHECK_FALSE(r.record(300, q));
    // ... and the guest's CAS lands between that read and the host's stores.
    r.set_preempted(r.preempted() | StealTime::kFlushTlb);
    const std::string last = q.size() == 1 ? q.front().what : "";
    CHECK(last == "record");
    CHECK(q.front().len == (bug ? 64 : 16));
    q.apply_all(r.mem);
    CHECK(r.steal_at(kSt) == 300);
    // Bug: the write-back stored `preempted` = 0 over it, the flush never happens. Fixed:
    // the byte was exchanged before the request, and the next update honours it.
    CHECK(r.preempted() == (bug ? 0 : StealTime::kFlushTlb));
    CHECK(r.record(400, q) == !bug);
    q.apply_all(r.mem);
    CHECK(r.steal->counters(0).flushes == (bug ? 0u : 1u));
  }
}

TEST_CASE("steal_time_write_back: a second put overwrites FLUSH_TLB only with the bug (8c6de56a42e0)",
          "[bugs][steal]") {
  for (bool bug : {true, false}) {
    INFO("steal_time_write_back " << bug);
    StealRig r(AbiProfile::Orig, with(AbiProfile::Orig, &KvmBugs::steal_time_write_back, bug));
    r.wr(kSt | StealTime::kEnabled);
    HostStores q;
    r.record(100, q);
    q.apply_all(r.mem);
    r.steal->on_put(0, Tick(1));
    CHECK(r.steal->preempted_copy(0) == (bug ? 0 : StealTime::kPreempted));
    r.set_preempted(StealTime::kPreempted | StealTime::kFlushTlb);
    r.steal->on_put(0, Tick(2));  // preempted again before it ran
    CHECK(r.preempted() == (bug ? StealTime::kPreempted : StealTime::kPreempted | StealTime::kFlushTlb));
    CHECK(r.steal->counters(0).preempted_set == (bug ? 2u : 1u));
    CHECK(r.steal->counters(0).preempted_skipped == (bug ? 0u : 1u));
  }
}

TEST_CASE("steal_time_stale_cache: after a new GPA, put and update go to the old record (5.16-5.19)",
          "[bugs][steal]") {
  for (bool bug : {true, false}) {
    INFO("steal_time_stale_cache " << bug);
    StealRig r(AbiProfile::Modern, with(AbiProfile::Modern, &KvmBugs::steal_time_stale_cache, bug));
    r.wr(kSt | StealTime::kEnabled);
    HostStores q;
    r.record(100, q);
    q.apply_all(r.mem);
    REQUIRE(r.steal->cache_gpa(0) == kSt);
    // The guest moves its record (kexec into a new kernel) ...
    r.wr(kSt2 | StealTime::kEnabled);
    // ... and is descheduled before the entry that would record the new one.
    r.steal->on_put(0, Tick(5));
    CHECK(r.preempted(kSt) == (bug ? StealTime::kPreempted : 0));
    CHECK(r.preempted(kSt2) == 0);
    CHECK(r.steal->counters(0).preempted_set == (bug ? 1u : 0u));
    // The next update: through the stale cache with the bug, the new record without.
    CHECK_FALSE(r.steal->record(r.v(), 250, q));
    q.apply_all(r.mem);
    CHECK(r.steal->cache_gpa(0) == (bug ? kSt : kSt2));
    CHECK(r.steal_at(kSt) == (bug ? 250u : 100u));
    CHECK(r.steal_at(kSt2) == (bug ? 0u : 150u));
  }
}

// ---------------------------------------------------------------------------------------
// Async PF (flags 5-8)

namespace {

constexpr uint64_t kApf = 0x2000;
constexpr uint8_t kApfVec = 0xec;
constexpr uint64_t kApfOn = AsyncPf::kEnabled | AsyncPf::kDeliveryAsInt;

class ApfRecorder final : public ApfHost {
 public:
  std::vector<std::string> calls;  // "irq 0xec", "ready", "wake", "kick", "pf 0x..."
  bool lapic_on = true;
  void apf_inject_page_fault(unsigned, uint32_t cr2) override { calls.push_back(fmt::format("pf {:#x}", cr2)); }
  void apf_inject_interrupt(unsigned, uint8_t vector) override { calls.push_back(fmt::format("irq {:#x}", vector)); }
  bool apf_lapic_enabled(unsigned) override { return lapic_on; }
  bool apf_can_inject_present(unsigned) override { return true; }
  void apf_wake(unsigned) override { calls.push_back("wake"); }
  void apf_request_ready(unsigned) override { calls.push_back("ready"); }
  void apf_kick(unsigned) override { calls.push_back("kick"); }
  size_t count(const std::string& what) const {
    size_t n = 0;
    for (const std::string& c : calls) n += c == what;
    return n;
  }
};

struct ApfRig {
  GuestMemory mem{kRam};
  Tracer tracer;
  std::ostringstream text;
  NullEnv env;
  ApfRecorder host;
  std::unique_ptr<Vcpu> vcpu;
  std::unique_ptr<AsyncPf> apf;  // declared last: destroyed before the vCPU

  explicit ApfRig(const KvmBugs& bugs) {
    tracer.set_text_output(&text);
    AsyncPfConfig cfg;
    cfg.bugs = bugs;
    apf = std::make_unique<AsyncPf>(cfg, 1, mem, tracer, host);
    vcpu = std::make_unique<Vcpu>(vcpu_config(0, 1), mem, env, tracer);
    apf->attach(*vcpu);
    // Linux's start-up: the vector, the enable; its wake-all delivered, slot zeroed, ACKed.
    REQUIRE(wr(AsyncPf::kMsrInt, kApfVec) == MsrStatus::Ok);
    REQUIRE(wr(AsyncPf::kMsrEn, kApf | kApfOn) == MsrStatus::Ok);
    apf->check_completion(0, Tick(0));
    REQUIRE(slot() == AsyncPf::kWakeAllToken);
    ack();
    host.calls.clear();
  }
  MsrStatus wr(uint32_t msr, uint64_t value) { return vcpu->msrs().write(*vcpu, msr, value); }
  uint32_t slot() const {
    uint32_t x = 0;
    REQUIRE(mem.read(Gpa(kApf + AsyncPf::kTokenOffset), &x, 4));
    return x;
  }
  // The guest's page-ready handler: take the token, free the slot, ACK.
  void ack() {
    const uint32_t zero = 0;
    REQUIRE(mem.write(Gpa(kApf + AsyncPf::kTokenOffset), &zero, 4));
    REQUIRE(wr(AsyncPf::kMsrAck, 1) == MsrStatus::Ok);
  }
  static ApfVcpuState user() {
    ApfVcpuState s;
    s.cpl = 3;
    return s;
  }
};

}  // namespace

TEST_CASE("apf_ready_without_not_present: a fault that only halted still gets a page-ready",
          "[bugs][apf]") {
  for (bool bug : {true, false}) {
    INFO("apf_ready_without_not_present " << bug);
    ApfRig r(with(AbiProfile::Modern, &KvmBugs::apf_ready_without_not_present, bug));
    // CPL 0 without SEND_ALWAYS: not delivered, the vCPU halts (synthetic halt).
    const auto f = r.apf->on_fault(0, Tick(10), 0x5123, ApfVcpuState{});
    REQUIRE(f.kind == AsyncPf::FaultKind::Halt);
    r.apf->complete(0, f.token, Tick(20));
    r.apf->check_completion(0, Tick(30));
    CHECK(r.slot() == (bug ? f.token : 0u));
    CHECK(r.host.count("irq 0xec") == (bug ? 1u : 0u));
    CHECK(r.apf->pageready_pending(0) == bug);
    CHECK(r.apf->counters(0).ready_delivered == (bug ? 2u : 1u));  // the wake-all counted too
    CHECK(r.apf->counters(0).ready_silent == (bug ? 0u : 1u));
    CHECK_FALSE(r.apf->halted(0));  // the halt ends either way
  }
}

TEST_CASE("apf_ready_lost_lapic_disabled: page-ready dequeued into a disabled LAPIC, slot stuck",
          "[bugs][apf]") {
  for (bool bug : {true, false}) {
    INFO("apf_ready_lost_lapic_disabled " << bug);
    ApfRig r(with(AbiProfile::Modern, &KvmBugs::apf_ready_lost_lapic_disabled, bug));
    const auto a = r.apf->on_fault(0, Tick(10), 0x5000, ApfRig::user());
    const auto b = r.apf->on_fault(0, Tick(11), 0x6000, ApfRig::user());
    REQUIRE(a.kind == AsyncPf::FaultKind::Injected);
    REQUIRE(b.kind == AsyncPf::FaultKind::Injected);
    r.host.lapic_on = false;  // the guest software-disables its LAPIC (SVR bit 8 clear)
    r.apf->complete(0, a.token, Tick(20));
    r.apf->check_completion(0, Tick(21));
    if (bug) {
      // Dequeued anyway: token in the slot, the interrupt handed to a LAPIC that drops it.
      CHECK(r.slot() == a.token);
      CHECK(r.host.count("irq 0xec") == 1);
      CHECK(r.apf->done_count(0) == 0);
    } else {
      CHECK(r.slot() == 0);
      CHECK(r.host.count("irq 0xec") == 0);
      CHECK(r.apf->done_count(0) == 1);
      CHECK(r.text.str().find("held: LAPIC disabled") != std::string::npos);
    }
    // The guest re-enables its LAPIC: 2f15d027c05f re-checks, the 5.8-5.12 host does not.
    r.host.lapic_on = true;
    r.host.calls.clear();
    r.apf->on_lapic_sw_enable(0);
    CHECK(r.host.count("ready") == (bug ? 0u : 1u));
    r.apf->check_completion(0, Tick(30));
    r.apf->complete(0, b.token, Tick(40));
    r.apf->check_completion(0, Tick(41));
    if (bug) {
      // The guest never saw an interrupt, so the slot keeps the first token: the second
      // page-ready waits behind it for good.
      CHECK(r.slot() == a.token);
      CHECK(r.host.count("irq 0xec") == 0);
      CHECK(r.apf->done_count(0) == 1);
      CHECK(r.text.str().find(fmt::format("held: token slot busy ({:#x})", a.token)) != std::string::npos);
    } else {
      CHECK(r.slot() == a.token);  // delivered now, after the enable
      CHECK(r.host.count("irq 0xec") == 1);
      r.ack();  // the guest handles it; the ACK's completion check delivers the second
      CHECK(r.slot() == b.token);
      CHECK(r.apf->done_count(0) == 0);
    }
  }
}

TEST_CASE("apf_token_zero: vCPU 0's first token is 0 and its page-ready is overwritten",
          "[bugs][apf]") {
  for (bool bug : {true, false}) {
    INFO("apf_token_zero " << bug);
    ApfRig r(with(AbiProfile::Modern, &KvmBugs::apf_token_zero, bug));
    const auto a = r.apf->on_fault(0, Tick(10), 0x5000, ApfRig::user());
    const auto b = r.apf->on_fault(0, Tick(11), 0x6000, ApfRig::user());
    CHECK(a.token == (bug ? 0u : 0x1000u));
    CHECK(b.token == (bug ? 0x1000u : 0x2000u));
    r.apf->complete(0, a.token, Tick(20));
    r.apf->complete(0, b.token, Tick(21));
    r.apf->check_completion(0, Tick(22));
    if (bug) {
      // Token 0 leaves the slot reading "free": the second page-ready is dequeued in the
      // same check and overwrites it. Two interrupts, one token the guest can see.
      CHECK(r.host.count("irq 0xec") == 2);
      CHECK(r.slot() == b.token);
      CHECK(r.apf->done_count(0) == 0);
    } else {
      CHECK(r.host.count("irq 0xec") == 1);
      CHECK(r.slot() == a.token);
      CHECK(r.apf->done_count(0) == 1);  // held until the guest frees the slot
    }
    CHECK(r.apf->pageready_pending(0));
  }
}

TEST_CASE("apf_pg_toggle_drops_work: CR0.PG 1->0 drops the queue, 0->1 re-checks nothing",
          "[bugs][apf]") {
  for (bool bug : {true, false}) {
    INFO("apf_pg_toggle_drops_work " << bug);
    ApfRig r(with(AbiProfile::Modern, &KvmBugs::apf_pg_toggle_drops_work, bug));
    const auto a = r.apf->on_fault(0, Tick(10), 0x5000, ApfRig::user());
    const auto b = r.apf->on_fault(0, Tick(11), 0x6000, ApfRig::user());
    r.apf->complete(0, a.token, Tick(20));  // a is done, b still outstanding
    r.host.calls.clear();
    r.apf->on_paging_changed(0, false);  // e.g. an SMI: paging off ...
    CHECK(r.apf->outstanding(0) == (bug ? 0u : 1u));
    CHECK(r.apf->done_count(0) == (bug ? 0u : 1u));
    CHECK(r.apf->counters(0).dropped == (bug ? 2u : 0u));
    CHECK(r.apf->gfn_table(0).size() == (bug ? 0u : 2u));
    r.apf->on_paging_changed(0, true);  // ... and back on at RSM
    CHECK(r.host.count("ready") == (bug ? 0u : 1u));
    r.apf->complete(0, b.token, Tick(30));
    CHECK(r.apf->counters(0).ignored == (bug ? 1u : 0u));
    r.apf->check_completion(0, Tick(31));
    CHECK(r.slot() == (bug ? 0u : a.token));
  }
}

// ---------------------------------------------------------------------------------------
// PV EOI (flag 10)

TEST_CASE("pv_eoi_keeps_bad_value: a refused enable stores the bad value, in either profile",
          "[bugs][pv_eoi]") {
  constexpr uint64_t kSmallRam = 16 * kPageSize;
  for (AbiProfile abi : {AbiProfile::Orig, AbiProfile::Modern}) {
    for (bool bug : {true, false}) {
      INFO((abi == AbiProfile::Orig ? "orig" : "modern") << " pv_eoi_keeps_bad_value " << bug);
      GuestMemory mem(kSmallRam);
      Tracer tracer;
      NullEnv env;
      PvEoiConfig cfg;
      cfg.abi = abi;
      cfg.bugs = with(abi, &KvmBugs::pv_eoi_keeps_bad_value, bug);
      PvEoi pv(cfg, 1, mem, tracer);
      Vcpu v(vcpu_config(0, 1), mem, env, tracer);
      LapicConfig lc;
      pvsim::test::Harness apic(lc);
      apic.enable_sw();
      pv.attach(v, apic.apic);
      REQUIRE(v.msrs().write(v, PvEoi::kMsr, 0x1000 | 1) == MsrStatus::Ok);
      const uint64_t bad = kSmallRam | 1;  // the byte is past the end of RAM
      CHECK(v.msrs().write(v, PvEoi::kMsr, bad) == MsrStatus::Gp);
      uint64_t x = 0;
      REQUIRE(v.msrs().read(v, PvEoi::kMsr, x) == MsrStatus::Ok);
      CHECK(x == (bug ? bad : 0x1001u));
      CHECK(pv.msr(0) == x);
    }
  }
}
