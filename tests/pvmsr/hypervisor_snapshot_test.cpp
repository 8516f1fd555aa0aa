// tests/pvmsr/hypervisor_snapshot_test.cpp — Hypervisor::save / restore as a whole
// (pvmsr/README.md §1.3): every PV component and the hypervisor's own state (page-ready
// requests, MIGRATION_CONTROL, host stores still due, their times), on real vCPUs and
// LocalApics, with the platform's side (ApfHost, HypercallHost, the host model's run
// delay) played by the test, and with host.pv_store_ns > 0 so that a snapshot can fall
// between the stores of one update. tests/pvmsr/snapshot_check.h describes the check.
#include "pvmsr/hypervisor.h"

#include <catch2/catch.hpp>

#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "core/event_queue.h"
#include "core/guest_memory.h"
#include "core/trace.h"
#include "core/vcpu.h"
#include "devices/lapic.h"
#include "tests/cpu_envs.h"
#include "tests/lapic/lapic_harness.h"
#include "tests/pvmsr/snapshot_check.h"

using namespace pvsim;
using pvsim::test::Harness;
using pvsim::test::NullEnv;

namespace {

constexpr uint64_t kRam = 64 * kPageSize;
constexpr uint64_t kMs = 1'000'000;
constexpr uint64_t kPvEoiArea = 0x1100, kApfArea = 0x1200;
constexpr uint64_t kClock0 = 0x2000, kClock1 = 0x2040, kWall = 0x1000;
constexpr uint64_t kSteal0 = 0x3000, kSteal1 = 0x3040;
constexpr uint8_t kVec = 0x31, kApfVec = 0xec;
constexpr uint64_t kApfOn = AsyncPf::kEnabled | AsyncPf::kDeliveryAsInt;

// The platform's side of async PF: page-ready requests reach the Hypervisor (as
// Platform::apf_request_ready does), everything else is recorded.
class ApfFake final : public ApfHost {
 public:
  Hypervisor* hv = nullptr;
  std::ostringstream calls;
  void apf_inject_page_fault(unsigned v, uint32_t cr2) override {
    calls << "pf(" << v << "," << cr2 << ") ";
  }
  void apf_inject_interrupt(unsigned v, uint8_t vector) override {
    calls << "irq(" << v << "," << int(vector) << ") ";
  }
  bool apf_lapic_enabled(unsigned) override { return true; }
  bool apf_can_inject_present(unsigned) override { return true; }
  void apf_wake(unsigned v) override { calls << "wake(" << v << ") "; }
  void apf_request_ready(unsigned v) override {
    calls << "ready(" << v << ") ";
    hv->request_apf_ready(v);
  }
  void apf_kick(unsigned v) override { calls << "kick(" << v << ") "; }
};

class HypercallFake final : public HypercallHost {
 public:
  int hc_deliver_ipi(unsigned, uint32_t, uint32_t) override { return -1; }
  void hc_kick(unsigned, uint32_t) override {}
  void hc_sched_yield(unsigned, uint32_t) override {}
  bool hc_clock_pairing(unsigned, int64_t&, int64_t&, uint64_t&) override { return false; }
};

struct HvRig {
  GuestMemory mem{kRam};
  Tracer tracer;
  std::ostringstream text;
  NullEnv env;
  EventQueue events;
  ApfFake apf_host;
  HypercallFake hc_host;
  std::vector<uint64_t> run_delay;  // the host model's run delay of each vCPU thread
  std::vector<std::unique_ptr<Vcpu>> vcpus;
  std::vector<std::unique_ptr<Harness>> apics;
  std::unique_ptr<Hypervisor> hv;  // declared last: destroyed before the vCPUs and APICs

  HvRig(const HypervisorConfig& cfg, unsigned n) : run_delay(n, 0) {
    tracer.set_text_output(&text);
    hv = std::make_unique<Hypervisor>(cfg, n, mem, tracer, events, apf_host, hc_host);
    apf_host.hv = hv.get();
    hv->set_run_delay_source([this](unsigned i) { return run_delay.at(i); });
    for (unsigned i = 0; i < n; ++i) {
      VcpuConfig vc;
      vc.index = i;
      vc.count = n;
      vcpus.push_back(std::make_unique<Vcpu>(vc, mem, env, tracer));
      LapicConfig lc;
      lc.apic_id = i;
      lc.vcpu = i;
      apics.push_back(std::make_unique<Harness>(lc));
      apics.back()->enable_sw();
      hv->attach(*vcpus.back(), apics.back()->apic);
    }
  }
  Vcpu& v(unsigned i) { return *vcpus.at(i); }
  void advance(unsigned i, uint64_t t) {
    v(i).advance_to(Cycles(ns_to_cycles(t, v(i).config().tsc_hz)));
  }
  void advance_all(uint64_t t) {
    for (unsigned i = 0; i < vcpus.size(); ++i) advance(i, t);
  }
  // The platform's entry before a run slice: while stores are due, the vCPU's time passes
  // to the next one (other vCPUs would run meanwhile).
  void enter(unsigned i) {
    for (int k = 0; k < 100 && !hv->enter(v(i)); ++k) advance(i, hv->pending_until(i).value());
  }
  // A guest RDMSR / WRMSR: the exit (PV EOI's sync), the handler, the next entry.
  MsrStatus wr(unsigned i, uint32_t msr, uint64_t value) {
    hv->pv_eoi().on_exit(v(i));
    const MsrStatus st = v(i).msrs().write(v(i), msr, value);
    enter(i);
    return st;
  }
  std::string rd(unsigned i, uint32_t msr) {
    uint64_t x = 0;
    const MsrStatus st = v(i).msrs().read(v(i), msr, x);
    std::ostringstream os;
    if (st == MsrStatus::Ok)
      os << std::hex << x;
    else
      os << "#GP";
    return os.str();
  }
  uint32_t u32(uint64_t gpa) const {
    uint32_t x = 0;
    REQUIRE(mem.read(Gpa(gpa), &x, 4));
    return x;
  }
  void set_u8(uint64_t gpa, uint8_t x) { REQUIRE(mem.write(Gpa(gpa), &x, 1)); }
  void set_u32(uint64_t gpa, uint32_t x) { REQUIRE(mem.write(Gpa(gpa), &x, 4)); }
  // An interrupt the platform injects into vCPU i, then PV EOI's arming.
  void inject(unsigned i, uint8_t vector) {
    apics[i]->apic.accept(vector, TriggerMode::Edge);
    REQUIRE(apics[i]->apic.ack() == vector);
    hv->pv_eoi().after_injection(v(i));
  }
  // VAPIC_POLL_IRQ through the hypercall handler (an exit the core would have made).
  void hypercall(unsigned i, uint64_t nr) {
    v(i).set_gpr(0, nr);
    hv->hypercalls().handle(v(i), hv->hypercalls().native());
  }

  // Snapshots: the Hypervisor, guest RAM, the queue with kvmclock's events, the LocalApics
  // with theirs, and the stand-in host model's run delays.
  struct Snap {
    Hypervisor::Snapshot hv;
    unsigned level;
    EventQueue::Snapshot events;
    std::vector<LocalApic::Snapshot> apics;
    std::vector<EventQueue::Snapshot> apic_events;
    std::vector<uint64_t> run_delay;
  };
  Snap save() {
    Snap s{hv->save(), mem.checkpoint(), events.save(), {}, {}, run_delay};
    for (auto& h : apics) {
      s.apics.push_back(h->apic.save());
      s.apic_events.push_back(h->events.save());
    }
    return s;
  }
  void restore(const Snap& s) {
    hv->restore(s.hv);
    mem.rollback(s.level);
    events.restore(s.events);
    for (size_t i = 0; i < apics.size(); ++i) {
      apics[i]->apic.restore(s.apics[i]);
      apics[i]->events.restore(s.apic_events[i]);
    }
    run_delay = s.run_delay;
  }
  std::vector<uint8_t> ram() const { return pvsim::test::ram_image(mem); }
};

// What the Hypervisor and its components let a test see of vCPU i, one line.
std::string hv_state(HvRig& r, unsigned i) {
  Hypervisor& hv = *r.hv;
  std::ostringstream os;
  const PvclockVcpuTimeInfo c = hv.kvmclock().hv_clock(i);
  const AsyncPf& apf = hv.async_pf();
  os << "vcpu " << i << " apf_ready " << hv.apf_ready_requested(i) << " stores_due "
     << hv.pending_until(i).value() << " | clock " << std::hex << hv.kvmclock().system_time_msr(i)
     << std::dec << " " << c.version << "/" << c.tsc_timestamp << "/" << c.system_time << "/"
     << int(c.flags) << " pending " << hv.kvmclock().update_pending(i) << " stop "
     << hv.kvmclock().guest_stopped_requested(i) << " | steal " << std::hex
     << hv.steal_time().msr(i) << std::dec << " last " << hv.steal_time().last_steal(i)
     << " preempted " << int(hv.steal_time().preempted_copy(i)) << " requested "
     << hv.steal_time().update_requested(i) << " | apf " << std::hex << apf.msr_en(i) << std::dec
     << " queued " << apf.queued(i) << " done " << apf.done_count(i) << " pageready "
     << apf.pageready_pending(i) << " id " << apf.token_counter(i) << " | eoi "
     << hv.pv_eoi().armed(i) << "/" << hv.pv_eoi().arm_count(i) << "/"
     << hv.pv_eoi().eoi_on_behalf_count(i) << " | poll " << hv.poll_control().value(i)
     << " | hypercalls " << hv.hypercalls().calls_total() << "\n";
  return os.str();
}

}  // namespace

TEST_CASE("Hypervisor snapshot: restore, then everything goes as in an untouched copy",
          "[hypervisor][snapshot]") {
  for (AbiProfile abi : {AbiProfile::Modern, AbiProfile::Orig}) {
    const bool modern = abi == AbiProfile::Modern;
    INFO((modern ? "modern" : "orig"));
    HypervisorConfig cfg;
    cfg.abi = abi;
    cfg.pv_store_ns = 1000;
    cfg.migration_control = true;
    cfg.kvmclock.periodic_sync_ns = 400 * kMs;
    const uint64_t apf_on = modern ? kApfOn : AsyncPf::kEnabled;
    const uint64_t apf_word = modern ? kApfArea + 4 : kApfArea;  // what the guest zeroes
    uint32_t token = 0;
    // Saved while vCPU 0's entry waits for its stores (a kvmclock update with
    // GUEST_STOPPED and a steal-time update, spaced 1 us apart), with a page-ready
    // requested, PV EOI armed, `preempted` set, vCPU 1 with a migration request.
    auto make = [&] {
      auto r = std::make_unique<HvRig>(cfg, 2);
      REQUIRE(r->wr(0, KvmClock::kMsrSystemTimeNew, kClock0 | 1) == MsrStatus::Ok);
      REQUIRE(r->wr(0, KvmClock::kMsrWallClockNew, kWall) == MsrStatus::Ok);
      REQUIRE(r->wr(0, StealTime::kMsr, kSteal0 | 1) == MsrStatus::Ok);
      REQUIRE(r->wr(0, PvEoi::kMsr, kPvEoiArea | 1) == MsrStatus::Ok);
      if (modern) {
        REQUIRE(r->wr(0, AsyncPf::kMsrInt, kApfVec) == MsrStatus::Ok);
        REQUIRE(r->wr(0, PollControl::kMsr, 0) == MsrStatus::Ok);
      }
      REQUIRE(r->wr(0, AsyncPf::kMsrEn, kApfArea | apf_on) == MsrStatus::Ok);
      r->enter(0);  // the wake-all's page-ready
      r->set_u32(apf_word, 0);
      if (modern) REQUIRE(r->wr(0, AsyncPf::kMsrAck, 1) == MsrStatus::Ok);
      REQUIRE(r->wr(1, KvmClock::kMsrSystemTimeNew, kClock1 | 1) == MsrStatus::Ok);
      REQUIRE(r->wr(1, StealTime::kMsr, kSteal1 | 1) == MsrStatus::Ok);
      r->inject(0, kVec);
      const AsyncPf::FaultResult f =
          r->hv->async_pf().on_fault(0, r->v(0).now(), 0x5123, ApfVcpuState{3});
      REQUIRE(f.kind == AsyncPf::FaultKind::Injected);
      token = f.token;
      r->set_u32(kApfArea, 0);
      r->advance(0, 1 * kMs);
      r->hv->on_put(0, true, Tick(1 * kMs));
      r->run_delay[0] = 7000;
      r->hv->on_load(0);
      r->hv->kvmclock_ctrl(0);
      r->hv->on_migrate(1);
      r->hv->on_exit(r->v(0));
      REQUIRE_FALSE(r->hv->enter(r->v(0)));
      r->hv->async_pf().complete(0, token, Tick(1 * kMs));  // KVM_REQ_APF_READY
      REQUIRE(r->hv->apf_ready_requested(0));
      return r;
    };
    // The stores land and the page-ready is delivered; MIGRATION_CONTROL and POLL_CONTROL
    // change, a hypercall, PV EOI disarmed and the vector EOI'd, events and entries, an
    // INIT of vCPU 1, and last vCPU 1 left waiting for stores of its own.
    auto mutate = [&](HvRig& r) {
      r.advance(0, r.hv->pending_until(0).value());
      r.enter(0);
      r.enter(0);
      REQUIRE(r.wr(0, Hypervisor::kMsrMigrationControl, 0) == MsrStatus::Ok);
      if (modern) REQUIRE(r.wr(0, PollControl::kMsr, 1) == MsrStatus::Ok);
      r.hypercall(0, kvm_hc::kVapicPollIrq);
      r.hv->pv_eoi().on_exit(r.v(0));
      r.apics[0]->wr(lapic::kEoi, 0);
      r.advance_all(500 * kMs);
      r.events.run_until(Tick(500 * kMs));
      for (unsigned i = 0; i < 2; ++i) {
        r.enter(i);
        r.hv->on_exit(r.v(i));
      }
      r.hv->async_pf().on_fault(0, r.v(0).now(), 0x6123, ApfVcpuState{3});
      r.hv->on_reset(1);
      REQUIRE(r.wr(1, StealTime::kMsr, kSteal1 | 1) == MsrStatus::Ok);
      r.run_delay[1] = 9000;
      r.hv->on_load(1);
      r.advance(1, 600 * kMs);
      REQUIRE_FALSE(r.hv->enter(r.v(1)));
    };
    auto branch = [&](HvRig& r, uint64_t base) {
      const size_t mark = r.text.str().size();
      r.apf_host.calls.str("");  // the stand-in platform's record of the calls before the branch
      std::ostringstream log;
      log << hv_state(r, 0) << hv_state(r, 1);
      r.advance_all(base);
      r.set_u8(kPvEoiArea, 0);  // the guest's EOI in memory, noticed at the next exit
      r.hv->pv_eoi().on_exit(r.v(0));
      r.enter(0);  // the stores still due land
      r.enter(0);  // the next entry: the page-ready
      log << "word " << r.u32(apf_word) << "\n";
      r.set_u32(apf_word, 0);
      if (modern) log << int(r.wr(0, AsyncPf::kMsrAck, 1)) << "\n";
      r.events.run_until(Tick(base));
      for (unsigned i = 0; i < 2; ++i) {
        r.enter(i);
        r.hv->on_exit(r.v(i));
      }
      log << hv_state(r, 0) << hv_state(r, 1);
      r.inject(0, kVec + 1);  // armed again, and left to the register EOI
      r.hypercall(1, kvm_hc::kVapicPollIrq);
      r.run_delay[0] += 3000;
      r.hv->on_load(0);
      r.hv->on_put(1, true, Tick(base));
      const AsyncPf::FaultResult f =
          r.hv->async_pf().on_fault(0, Tick(base), 0x7123, ApfVcpuState{});
      log << "fault " << int(f.kind) << " " << f.token << "\n";
      r.hv->async_pf().complete(0, f.token, Tick(base));
      r.advance_all(base + 500 * kMs);
      r.events.run_until(Tick(base + 500 * kMs));
      for (unsigned i = 0; i < 2; ++i) {
        r.enter(i);
        r.enter(i);
        r.hv->on_exit(r.v(i));
      }
      for (unsigned i = 0; i < 2; ++i)
        for (uint32_t msr :
             {KvmClock::kMsrWallClockNew, KvmClock::kMsrSystemTimeNew, AsyncPf::kMsrEn,
              StealTime::kMsr, PvEoi::kMsr, PollControl::kMsr, Hypervisor::kMsrMigrationControl})
          log << r.rd(i, msr) << " ";
      log << "\n" << hv_state(r, 0) << hv_state(r, 1) << r.apf_host.calls.str() << "\n";
      return log.str() + r.text.str().substr(mark);
    };
    pvsim::test::check_snapshot(make, mutate, branch, {700 * kMs, 3000 * kMs});
  }
}

TEST_CASE("HostStores snapshot: the stores not yet applied come back, in order", "[snapshot]") {
  GuestMemory mem(kRam);
  HostStores q;
  const uint32_t a = 0x11111111, b = 0x22222222, c = 0x33333333;
  q.push_obj(0x100, a, "a");
  q.push_obj(0x100, b, "b");
  const HostStores::Snapshot s = q.save();
  REQUIRE(q.apply_front(mem));
  q.push_obj(0x104, c, "c");
  for (int round = 0; round < 2; ++round) {
    q.restore(s);
    REQUIRE(q.size() == 2);
    CHECK(std::string(q.front().what) == "a");
    q.apply_all(mem);
    uint32_t got[2] = {};
    REQUIRE(mem.read(Gpa(0x100), got, sizeof got));
    CHECK(got[0] == b);  // a, then b over it
    CHECK(got[1] == 0);  // c was pushed after the snapshot
    REQUIRE(mem.zero(Gpa(0x100), 8));
  }
}
