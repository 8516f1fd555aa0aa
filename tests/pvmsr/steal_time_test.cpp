// tests/pvmsr/steal_time_test.cpp — steal time (pvmsr/steal_time.h; pvmsr/README.md §6):
// every MSR validation row in both profiles, the version protocol, steal accumulation,
// the PV TLB flush exchange, the `preempted` rules at vCPU put, CVE-2019-3016's lost
// FLUSH_TLB under the orig profile (and its absence under modern), and INIT/RESET, on real
// Vcpu objects over one GuestMemory.
#include "pvmsr/steal_time.h"

#include <catch2/catch.hpp>

#include <array>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "core/env.h"
#include "core/guest_memory.h"
#include "core/trace.h"
#include "core/vcpu.h"
#include "tests/cpu_envs.h"
#include "tests/pvmsr/snapshot_check.h"

using namespace pvsim;
using pvsim::test::NullEnv;

namespace {

constexpr uint64_t kRam = 64 * kPageSize;
constexpr uint64_t kArea = 0x3000;   // the guest's struct kvm_steal_time (64-byte aligned)
constexpr uint64_t kArea2 = 0x3040;  // a second record (re-registration, "kexec")
constexpr uint64_t kOutside = kRam;  // first GPA past the end of RAM
constexpr uint32_t kMsr = StealTime::kMsr;
constexpr uint32_t kAll = ~0u;
constexpr uint32_t kBit5 = 1u << 5, kBit9 = 1u << 9;

const char* name(AbiProfile p) { return p == AbiProfile::Modern ? "modern" : "orig"; }

StealTimeConfig config(AbiProfile abi, bool enforce = false, uint32_t features = kAll,
                       bool sched_info = true) {
  StealTimeConfig c;
  c.abi = abi;
  c.enforce_pv_cpuid = enforce;
  c.cpuid_features = features;
  c.host_sched_info = sched_info;
  return c;
}

struct Rig {
  GuestMemory mem{kRam};
  Tracer tracer;
  std::ostringstream text;
  NullEnv env;
  std::vector<std::unique_ptr<Vcpu>> vcpus;
  std::unique_ptr<StealTime> steal;  // declared last: destroyed before the vCPUs

  explicit Rig(const StealTimeConfig& cfg, unsigned n = 1) {
    tracer.set_text_output(&text);
    steal = std::make_unique<StealTime>(cfg, n, mem, tracer);
    for (unsigned i = 0; i < n; ++i) {
      VcpuConfig vc;
      vc.index = i;
      vc.count = n;
      vcpus.push_back(std::make_unique<Vcpu>(vc, mem, env, tracer));
      steal->attach(*vcpus.back());
    }
  }
  Vcpu& v(unsigned i = 0) { return *vcpus.at(i); }
  MsrStatus wr(uint64_t value, unsigned i = 0) { return v(i).msrs().write(v(i), kMsr, value); }
  MsrStatus rd(uint64_t& value, unsigned i = 0) { return v(i).msrs().read(v(i), kMsr, value); }
  uint64_t rd_ok(unsigned i = 0) {
    uint64_t value = 0xdeadbeef;
    REQUIRE(rd(value, i) == MsrStatus::Ok);
    return value;
  }
  // The guest's view of its record.
  uint64_t steal_at(uint64_t area = kArea) const {
    uint64_t x = 0;
    REQUIRE(mem.read(Gpa(area + StealTime::kOffSteal), &x, 8));
    return x;
  }
  uint32_t version_at(uint64_t area = kArea) const {
    uint32_t x = 0;
    REQUIRE(mem.read(Gpa(area + StealTime::kOffVersion), &x, 4));
    return x;
  }
  uint32_t flags_at(uint64_t area = kArea) const {
    uint32_t x = 0;
    REQUIRE(mem.read(Gpa(area + StealTime::kOffFlags), &x, 4));
    return x;
  }
  uint8_t preempted_at(uint64_t area = kArea) const {
    uint8_t x = 0;
    REQUIRE(mem.read(Gpa(area + StealTime::kOffPreempted), &x, 1));
    return x;
  }
  void set_steal(uint64_t x, uint64_t area = kArea) { REQUIRE(mem.write(Gpa(area), &x, 8)); }
  void set_version(uint32_t x, uint64_t area = kArea) {
    REQUIRE(mem.write(Gpa(area + StealTime::kOffVersion), &x, 4));
  }
  void set_flags(uint32_t x, uint64_t area = kArea) {
    REQUIRE(mem.write(Gpa(area + StealTime::kOffFlags), &x, 4));
  }
  // A guest store to `preempted` (Linux's PV TLB flush does it with a CAS on another vCPU).
  void set_preempted(uint8_t x, uint64_t area = kArea) {
    REQUIRE(mem.write(Gpa(area + StealTime::kOffPreempted), &x, 1));
  }
  std::array<uint8_t, 64> bytes(uint64_t area = kArea) const {
    std::array<uint8_t, 64> b{};
    REQUIRE(mem.read(Gpa(area), b.data(), 64));
    return b;
  }
  // A guest start-up as Linux's kvm_register_steal_time does it: zero the record, enable.
  void enable(uint64_t area = kArea, unsigned i = 0) {
    REQUIRE(mem.zero(Gpa(area), 64));
    REQUIRE(wr(area | StealTime::kEnabled, i) == MsrStatus::Ok);
  }
  // An entry that services the request and lets every store land at once.
  bool update(uint64_t run_delay, unsigned i = 0) {
    HostStores out;
    const bool flush = steal->record(v(i), run_delay, out);
    out.apply_all(mem);
    return flush;
  }
  // A scheduling-in of the vCPU thread followed by its entry.
  bool load_and_update(uint64_t run_delay, unsigned i = 0) {
    steal->on_load(i);
    return update(run_delay, i);
  }
  std::vector<std::string> bodies() const {
    std::vector<std::string> out;
    std::istringstream in(text.str());
    for (std::string l; std::getline(in, l);) {
      const size_t p = l.find(": ");
      out.push_back(l.substr(p + 2));
    }
    return out;
  }
  size_t count(const std::string& prefix) const {
    size_t n = 0;
    for (const std::string& b : bodies()) n += b.rfind(prefix, 0) == 0;
    return n;
  }
  // Local time of every vCPU becomes at least t ns (the trace time of MSR-driven events).
  void advance_all(uint64_t t) {
    for (auto& x : vcpus) x->advance_to(Cycles(ns_to_cycles(t, x->config().tsc_hz)));
  }
  // Snapshots (tests/pvmsr/snapshot_check.h): the component and guest RAM.
  struct Snap {
    StealTime::Snapshot steal;
    unsigned level;
  };
  Snap save() { return Snap{steal->save(), mem.checkpoint()}; }
  void restore(const Snap& s) {
    steal->restore(s.steal);
    mem.rollback(s.level);
  }
  std::vector<uint8_t> ram() const { return pvsim::test::ram_image(mem); }
};

// The `what` labels of the queued stores, oldest first (walks a copy, applies nothing).
std::vector<std::string> labels(HostStores s) {
  std::vector<std::string> out;
  GuestMemory scratch(kRam);
  for (; !s.empty(); s.apply_front(scratch)) out.emplace_back(s.front().what);
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------
// The MSR

TEST_CASE("steal time MSR: enforcement gate on feature 5, both directions, both profiles",
          "[steal_time]") {
  for (AbiProfile abi : {AbiProfile::Modern, AbiProfile::Orig}) {
    struct Row {
      bool enforce;
      uint32_t features;
      bool allowed;
    };
    for (const Row& r : {Row{false, kAll, true}, Row{false, kAll & ~kBit5, true},
                         Row{true, kAll, true}, Row{true, kBit5, true},
                         Row{true, kAll & ~kBit5, false}, Row{true, 0, false}}) {
      INFO(name(abi) << " enforce " << r.enforce << " features 0x" << std::hex << r.features);
      Rig rig(config(abi, r.enforce, r.features));
      uint64_t value = 0x1234;
      const MsrStatus want = r.allowed ? MsrStatus::Ok : MsrStatus::Gp;
      CHECK(rig.wr(kArea | 1) == want);
      CHECK(rig.rd(value) == want);
      if (r.allowed) {
        CHECK(value == (kArea | 1));
        CHECK(rig.steal->update_requested(0));
      } else {
        CHECK(value == 0x1234);  // a refused RDMSR returns nothing
        CHECK(rig.steal->msr(0) == 0);
        CHECK_FALSE(rig.steal->update_requested(0));
      }
    }
  }
}

TEST_CASE("steal time MSR: reserved bits, sched_info, raw value, request on enable only",
          "[steal_time]") {
  for (AbiProfile abi : {AbiProfile::Modern, AbiProfile::Orig}) {
    INFO(name(abi));
    {
      Rig rig(config(abi));
      REQUIRE(rig.wr(kArea2) == MsrStatus::Ok);  // disabled: stored, no request
      CHECK(rig.rd_ok() == kArea2);
      CHECK_FALSE(rig.steal->update_requested(0));
      CHECK_FALSE(rig.steal->enabled(0));
      // Each of bits 5:1 alone, and all of them, with or without the enable bit: #GP,
      // value kept, no request.
      for (uint64_t bad : {0x2ull, 0x4ull, 0x8ull, 0x10ull, 0x20ull, 0x3eull}) {
        INFO("reserved 0x" << std::hex << bad);
        CHECK(rig.wr(kArea | bad) == MsrStatus::Gp);
        CHECK(rig.wr(kArea | bad | 1) == MsrStatus::Gp);
        CHECK(rig.rd_ok() == kArea2);
        CHECK_FALSE(rig.steal->update_requested(0));
      }
      // Bit 0 raises KVM_REQ_STEAL_UPDATE; RDMSR returns exactly what was written.
      REQUIRE(rig.wr(kArea | 1) == MsrStatus::Ok);
      CHECK(rig.rd_ok() == (kArea | 1));
      CHECK(rig.steal->update_requested(0));
      CHECK(rig.steal->gpa(0) == kArea);
      CHECK(rig.steal->enabled(0));
      // 0 is a valid disable (GPA 0 is RAM in both profiles).
      REQUIRE(rig.wr(0) == MsrStatus::Ok);
      CHECK(rig.rd_ok() == 0);
    }
    {
      // A host without sched_info: every WRMSR #GPs (0 included); RDMSR still works.
      Rig rig(config(abi, false, kAll, false));
      CHECK(rig.wr(kArea | 1) == MsrStatus::Gp);
      CHECK(rig.wr(0) == MsrStatus::Gp);
      CHECK(rig.rd_ok() == 0);
      CHECK_FALSE(rig.steal->update_requested(0));
    }
  }
}

TEST_CASE("steal time MSR: a record outside RAM is accepted by modern, #GP in orig",
          "[steal_time]") {
  SECTION("modern: stored, never written, and the delay is kept for a usable record") {
    Rig rig(config(AbiProfile::Modern));
    const auto before = rig.bytes(kRam - 64);
    REQUIRE(rig.wr(kOutside | 1) == MsrStatus::Ok);
    CHECK(rig.rd_ok() == (kOutside | 1));
    CHECK(rig.steal->update_requested(0));
    CHECK_FALSE(rig.update(500));
    CHECK(rig.bytes(kRam - 64) == before);
    CHECK(rig.count("pvsim_steal: update") == 0);
    CHECK(rig.steal->counters(0).skipped == 1);
    CHECK(rig.steal->last_steal(0) == 0);
    CHECK(rig.steal->cache_gpa(0) == kOutside);  // the failed cache still names the GPA it tried
    CHECK_FALSE(rig.steal->cache_valid(0));
    // High GPA bits are just part of the value.
    REQUIRE(rig.wr(0xfff0000000000040ull) == MsrStatus::Ok);
    CHECK(rig.rd_ok() == 0xfff0000000000040ull);
    // Moving to a usable record: the first update reports the whole delay so far.
    rig.enable(kArea);
    rig.update(800);
    CHECK(rig.steal_at() == 800);
  }
  SECTION("orig: #GP before the value is stored, a disable included") {
    Rig rig(config(AbiProfile::Orig));
    CHECK(rig.wr(kOutside | 1) == MsrStatus::Gp);
    CHECK(rig.wr(kOutside) == MsrStatus::Gp);
    CHECK(rig.wr(0xfff0000000000040ull) == MsrStatus::Gp);
    CHECK(rig.rd_ok() == 0);
    CHECK_FALSE(rig.steal->update_requested(0));
    REQUIRE(rig.wr(kRam - 64 + 1) == MsrStatus::Ok);  // the last 64 bytes of RAM are fine
  }
  SECTION("orig: a refused WRMSR still re-points the cache, so the old record goes dead") {
    Rig rig(config(AbiProfile::Orig));
    rig.enable();
    rig.update(100);
    REQUIRE(rig.version_at() == 2);
    CHECK(rig.wr(kOutside | 1) == MsrStatus::Gp);
    CHECK(rig.rd_ok() == (kArea | 1));  // the MSR keeps the old value...
    CHECK_FALSE(rig.steal->cache_valid(0));
    const auto before = rig.bytes();
    rig.load_and_update(900);  // ...but neither updates nor puts reach the old record
    rig.steal->on_put(0, Tick(1));
    CHECK(rig.bytes() == before);
    CHECK(rig.steal->counters(0).skipped == 1);
    CHECK(rig.steal->counters(0).preempted_skipped == 1);
  }
}

// ---------------------------------------------------------------------------------------
// The update

TEST_CASE("steal time: the request is consumed by one entry", "[steal_time]") {
  for (AbiProfile abi : {AbiProfile::Modern, AbiProfile::Orig}) {
    INFO(name(abi));
    Rig rig(config(abi));
    HostStores out;
    CHECK_FALSE(rig.steal->record(rig.v(), 10, out));  // nothing pending: nothing at all
    CHECK(out.empty());
    rig.enable();
    REQUIRE(rig.steal->update_requested(0));
    rig.update(10);
    CHECK_FALSE(rig.steal->update_requested(0));
    CHECK(rig.version_at() == 2);
    rig.update(20);  // no new load: no update
    CHECK(rig.version_at() == 2);
    CHECK(rig.steal_at() == 10);
    rig.load_and_update(20);
    CHECK(rig.version_at() == 4);
    // A load while disabled raises the request; the entry consumes it and writes nothing.
    REQUIRE(rig.wr(kArea) == MsrStatus::Ok);
    rig.steal->on_load(0);
    CHECK(rig.steal->update_requested(0));
    rig.update(30);
    CHECK_FALSE(rig.steal->update_requested(0));
    CHECK(rig.version_at() == 4);
  }
}

TEST_CASE("steal time: version protocol (junk start, +2 per update, wrap)", "[steal_time]") {
  SECTION("modern: odd junk is first made even; odd while steal changes; three stores") {
    Rig rig(config(AbiProfile::Modern));
    rig.enable();
    rig.set_version(7);
    HostStores out;
    rig.steal->record(rig.v(), 1000, out);
    CHECK(labels(out) == std::vector<std::string>{"version", "steal", "version"});
    CHECK(rig.version_at() == 7);  // nothing but `preempted` changes before the stores land
    REQUIRE(out.apply_front(rig.mem));
    CHECK(rig.version_at() == 9);
    CHECK(rig.steal_at() == 0);
    REQUIRE(out.apply_front(rig.mem));
    CHECK(rig.version_at() == 9);
    CHECK(rig.steal_at() == 1000);
    REQUIRE(out.apply_front(rig.mem));
    CHECK(rig.version_at() == 10);
    for (uint32_t k = 1; k <= 5; ++k) {
      rig.load_and_update(1000 + k);
      CHECK(rig.version_at() == 10 + 2 * k);
    }
  }
  SECTION("modern: 0xfffffffe wraps to 0 through 0xffffffff") {
    Rig rig(config(AbiProfile::Modern));
    rig.enable();
    rig.set_version(0xfffffffeu);
    HostStores out;
    rig.steal->record(rig.v(), 5, out);
    REQUIRE(out.apply_front(rig.mem));
    CHECK(rig.version_at() == 0xffffffffu);
    out.apply_all(rig.mem);
    CHECK(rig.version_at() == 0);
    // Odd junk at the top: 0xffffffff -> 0 (even), then 1, then 2.
    rig.set_version(0xffffffffu);
    rig.load_and_update(6);
    CHECK(rig.version_at() == 2);
  }
  SECTION("orig: one 64-byte store, version += 2 from whatever is there, never odd-fixed") {
    Rig rig(config(AbiProfile::Orig));
    rig.enable();
    rig.set_version(7);
    HostStores out;
    rig.steal->record(rig.v(), 1000, out);
    CHECK(labels(out) == std::vector<std::string>{"record"});
    REQUIRE(out.front().len == 64);
    out.apply_all(rig.mem);
    CHECK(rig.version_at() == 9);
    rig.set_version(0);
    for (uint32_t k = 1; k <= 5; ++k) {
      rig.load_and_update(1000 + k);
      CHECK(rig.version_at() == 2 * k);
    }
    rig.set_version(0xfffffffeu);
    rig.load_and_update(2000);
    CHECK(rig.version_at() == 0);
  }
}

TEST_CASE("steal time: steal accumulates exactly the run-delay deltas", "[steal_time]") {
  SECTION("modern: no re-base at enable; the guest's value is the base") {
    Rig rig(config(AbiProfile::Modern));
    // A run-delay source changes nothing in modern: only orig re-bases at enable.
    rig.steal->set_run_delay_source([](unsigned) { return uint64_t{900}; });
    rig.enable();
    CHECK(rig.steal->last_steal(0) == 0);
    const std::vector<uint64_t> delays = {1000, 1500, 1500, 91500, 91501, 5000000000ull};
    uint64_t prev = 0;
    for (uint64_t d : delays) {
      rig.load_and_update(d);
      CHECK(rig.steal_at() == d);  // the first update reports everything since creation
      CHECK(rig.steal->last_steal(0) == d);
      CHECK(rig.count("pvsim_steal: update: steal " + std::to_string(d) + " delta " +
                      std::to_string(d - prev) + " version") == 1);
      prev = d;
    }
    // KVM adds to what the guest has: a guest that did not zero `steal` keeps its junk.
    rig.set_steal(7);
    rig.load_and_update(5000000100ull);
    CHECK(rig.steal_at() == 107);
  }
  SECTION("modern: a disabled period is reported at the next update after re-enabling") {
    Rig rig(config(AbiProfile::Modern));
    rig.enable();
    rig.update(300);
    REQUIRE(rig.wr(kArea) == MsrStatus::Ok);
    CHECK(rig.count("pvsim_steal: disabled") == 1);
    rig.load_and_update(700);  // disabled: nothing
    CHECK(rig.steal_at() == 300);
    REQUIRE(rig.wr(kArea | 1) == MsrStatus::Ok);  // the guest did not zero it this time
    rig.update(1000);
    CHECK(rig.steal_at() == 1000);
  }
  SECTION("orig: an enable re-bases to the thread's run delay when the host says it") {
    Rig rig(config(AbiProfile::Orig));
    std::vector<uint64_t> now = {700};
    rig.steal->set_run_delay_source([&](unsigned i) { return now.at(i); });
    rig.enable();
    CHECK(rig.steal->last_steal(0) == 700);
    rig.update(1000);
    CHECK(rig.steal_at() == 300);
    rig.load_and_update(1250);
    CHECK(rig.steal_at() == 550);
    // A re-enable re-bases again: the 1250..4000 span is never reported.
    now[0] = 4000;
    REQUIRE(rig.wr(kArea | 1) == MsrStatus::Ok);
    rig.update(4100);
    CHECK(rig.steal_at() == 650);
    CHECK(rig.count("pvsim_steal: update: steal 650 delta 100 version 6") == 1);
  }
  SECTION("orig without a run-delay source: no re-base (4.x)") {
    Rig rig(config(AbiProfile::Orig));
    rig.enable();
    rig.update(1000);
    CHECK(rig.steal_at() == 1000);
  }
  SECTION("two vCPUs keep separate records and baselines") {
    for (AbiProfile abi : {AbiProfile::Modern, AbiProfile::Orig}) {
      INFO(name(abi));
      Rig rig(config(abi), 2);
      rig.enable(kArea, 0);
      rig.enable(kArea2, 1);
      rig.update(100, 0);
      rig.update(40, 1);
      rig.load_and_update(250, 0);
      CHECK(rig.steal_at(kArea) == 250);
      CHECK(rig.steal_at(kArea2) == 40);
      CHECK(rig.count("pvsim_steal: update: steal 40 delta 40 version 2") == 1);
    }
  }
}

TEST_CASE("steal time: modern stores preempted, version and steal, orig all 64 bytes as read",
          "[steal_time]") {
  for (AbiProfile abi : {AbiProfile::Modern, AbiProfile::Orig}) {
    INFO(name(abi));
    Rig rig(config(abi));
    rig.enable();
    for (uint64_t k = 17; k < 64; ++k) rig.mem.write(Gpa(kArea + k), &k, 1);  // padding junk
    rig.set_flags(0xabcd);
    HostStores out;
    rig.steal->record(rig.v(), 10, out);
    rig.set_flags(0x55);  // the guest changes `flags` (never KVM's) before the stores land
    for (uint64_t k = 17; k < 64; ++k) rig.mem.write(Gpa(kArea + k), "\xee", 1);
    out.apply_all(rig.mem);
    const auto b = rig.bytes();
    if (abi == AbiProfile::Modern) {
      CHECK(rig.flags_at() == 0x55);
      for (uint64_t k = 17; k < 64; ++k) CHECK(b[k] == 0xee);
    } else {
      CHECK(rig.flags_at() == 0xabcd);  // the copy read at entry went back
      for (uint64_t k = 17; k < 64; ++k) CHECK(b[k] == k);
    }
    CHECK(rig.steal_at() == 10);
    CHECK(rig.version_at() == 2);
  }
}

// ---------------------------------------------------------------------------------------
// PV TLB flush and `preempted`

TEST_CASE("steal time: PV TLB flush at update", "[steal_time]") {
  SECTION("modern with PV_TLB_FLUSH: xchg on guest memory now, flush when FLUSH_TLB was set") {
    for (bool enforce : {false, true}) {
      // Without enforcement feature 9 counts as present even when CPUID hides it.
      Rig rig(config(AbiProfile::Modern, enforce, enforce ? (kBit5 | kBit9) : (kAll & ~kBit9)));
      INFO("enforce " << enforce);
      rig.enable();
      rig.update(1);
      rig.set_preempted(StealTime::kPreempted | StealTime::kFlushTlb);
      rig.steal->on_load(0);
      HostStores out;
      CHECK(rig.steal->record(rig.v(), 2, out));
      CHECK(rig.preempted_at() == 0);  // before any queued store lands
      CHECK(labels(out) == std::vector<std::string>{"version", "steal", "version"});
      out.apply_all(rig.mem);
      CHECK(rig.preempted_at() == 0);
      CHECK(rig.count("kvm_pv_tlb_flush: vcpu 0 need_flush_tlb true") == 1);
      // PREEMPTED alone: cleared, no flush.
      rig.set_preempted(StealTime::kPreempted);
      CHECK_FALSE(rig.load_and_update(3));
      CHECK(rig.preempted_at() == 0);
      CHECK(rig.count("kvm_pv_tlb_flush: vcpu 0 need_flush_tlb false") == 2);
      CHECK(rig.steal->counters(0).flushes == 1);
    }
  }
  SECTION("modern without PV_TLB_FLUSH (enforced): a plain queued store of 0, no flush, no trace") {
    Rig rig(config(AbiProfile::Modern, true, kBit5));
    rig.enable();
    rig.set_preempted(StealTime::kPreempted | StealTime::kFlushTlb);
    HostStores out;
    CHECK_FALSE(rig.steal->record(rig.v(), 2, out));
    CHECK(labels(out) == std::vector<std::string>{"preempted", "version", "steal", "version"});
    CHECK(rig.preempted_at() == 3);
    REQUIRE(out.apply_front(rig.mem));
    CHECK(rig.preempted_at() == 0);
    CHECK(rig.count("kvm_pv_tlb_flush") == 0);
  }
  SECTION("orig: the flag is taken from the copy; memory changes only when the record lands") {
    Rig rig(config(AbiProfile::Orig));
    rig.enable();
    rig.set_preempted(StealTime::kPreempted | StealTime::kFlushTlb);
    HostStores out;
    CHECK(rig.steal->record(rig.v(), 2, out));
    CHECK(rig.preempted_at() == 3);
    out.apply_all(rig.mem);
    CHECK(rig.preempted_at() == 0);
    CHECK(rig.count("kvm_pv_tlb_flush: vcpu 0 need_flush_tlb true") == 1);
    CHECK_FALSE(rig.load_and_update(3));
    CHECK(rig.count("kvm_pv_tlb_flush: vcpu 0 need_flush_tlb false") == 1);
  }
}

TEST_CASE("steal time: preempted at vCPU put", "[steal_time]") {
  SECTION("never enabled or disabled: nothing, both profiles") {
    for (AbiProfile abi : {AbiProfile::Modern, AbiProfile::Orig}) {
      INFO(name(abi));
      Rig rig(config(abi));
      rig.steal->on_put(0, Tick(5));
      CHECK(rig.preempted_at() == 0);
      rig.enable();
      rig.update(1);
      REQUIRE(rig.wr(kArea) == MsrStatus::Ok);
      rig.steal->on_put(0, Tick(6));
      CHECK(rig.preempted_at() == 0);
      CHECK(rig.count("pvsim_steal: preempted") == 0);
    }
  }
  SECTION("modern: not before the first update has built the cache") {
    Rig rig(config(AbiProfile::Modern));
    rig.enable();
    rig.steal->on_put(0, Tick(5));
    CHECK(rig.preempted_at() == 0);
    rig.update(1);
    rig.steal->on_put(0, Tick(6));
    CHECK(rig.preempted_at() == StealTime::kPreempted);
    CHECK(rig.count("pvsim_steal: preempted: 0x0 -> 0x1") == 1);
  }
  SECTION("orig: the WRMSR-time cache is enough") {
    Rig rig(config(AbiProfile::Orig));
    rig.enable();
    rig.steal->on_put(0, Tick(5));
    CHECK(rig.preempted_at() == StealTime::kPreempted);
  }
  SECTION("a second put: modern keeps the guest's FLUSH_TLB, orig overwrites it") {
    for (AbiProfile abi : {AbiProfile::Modern, AbiProfile::Orig}) {
      INFO(name(abi));
      Rig rig(config(abi));
      rig.enable();
      rig.update(1);
      rig.steal->on_put(0, Tick(5));
      REQUIRE(rig.preempted_at() == StealTime::kPreempted);
      rig.set_preempted(StealTime::kPreempted | StealTime::kFlushTlb);  // a peer's CAS
      rig.steal->on_put(0, Tick(6));  // scheduled in and out again before any entry
      if (abi == AbiProfile::Modern) {
        CHECK(rig.preempted_at() == (StealTime::kPreempted | StealTime::kFlushTlb));
        CHECK(rig.steal->counters(0).preempted_skipped == 1);
        CHECK(rig.load_and_update(2));  // the flush happens
      } else {
        CHECK(rig.preempted_at() == StealTime::kPreempted);
        CHECK(rig.count("pvsim_steal: preempted: 0x3 -> 0x1") == 1);
        CHECK_FALSE(rig.load_and_update(2));  // the flush is lost
      }
      // The update clears the host's copy: the next put writes again.
      rig.steal->on_put(0, Tick(7));
      CHECK(rig.preempted_at() == StealTime::kPreempted);
    }
  }
  SECTION("re-registration before an entry: modern writes nowhere, orig writes the new record") {
    for (AbiProfile abi : {AbiProfile::Modern, AbiProfile::Orig}) {
      INFO(name(abi));
      Rig rig(config(abi));
      rig.enable(kArea);
      rig.update(1);
      rig.enable(kArea2);  // e.g. a kexec'd kernel registering its own record
      rig.steal->on_put(0, Tick(5));
      CHECK(rig.preempted_at(kArea) == 0);  // never the old kernel's page
      if (abi == AbiProfile::Modern) {
        CHECK(rig.preempted_at(kArea2) == 0);
        CHECK(rig.steal->cache_gpa(0) == kArea);
        rig.update(2);  // the entry rebuilds the cache for the new GPA
        CHECK(rig.steal->cache_gpa(0) == kArea2);
        rig.steal->on_put(0, Tick(6));
      }
      CHECK(rig.preempted_at(kArea2) == StealTime::kPreempted);
      CHECK(rig.preempted_at(kArea) == 0);
    }
  }
}

TEST_CASE("steal time: CVE-2019-3016, a FLUSH_TLB set between the update's read and its store",
          "[steal_time]") {
  // vCPU 0 was preempted (PREEMPTED set at put); its thread is scheduled in and services
  // the update; while the host is between reading the record and storing it, vCPU 1 wants a
  // TLB shootdown, sees PREEMPTED and CASes FLUSH_TLB in instead of sending an IPI.
  for (AbiProfile abi : {AbiProfile::Modern, AbiProfile::Orig}) {
    INFO(name(abi));
    Rig rig(config(abi), 2);
    rig.enable(kArea, 0);
    rig.update(10, 0);
    rig.steal->on_put(0, Tick(100));
    REQUIRE(rig.preempted_at() == StealTime::kPreempted);
    rig.steal->on_load(0);
    HostStores out;
    const bool flush_now = rig.steal->record(rig.v(0), 20, out);
    CHECK_FALSE(flush_now);  // nothing was asked yet
    rig.set_preempted(StealTime::kPreempted | StealTime::kFlushTlb);  // vCPU 1's CAS
    while (!out.empty()) {
      REQUIRE(out.apply_front(rig.mem));
      if (abi == AbiProfile::Modern) CHECK((rig.preempted_at() & StealTime::kFlushTlb) != 0);
    }
    const bool flushed_later = rig.load_and_update(30, 0);
    if (abi == AbiProfile::Orig) {
      CHECK(rig.preempted_at() == 0);  // the whole-record store wiped the flag...
      CHECK_FALSE(flushed_later);      // ...so vCPU 0 never flushes: stale translations
      CHECK(rig.steal->counters(0).flushes == 0);
    } else {
      CHECK(flushed_later);  // the flag survived and the next entry flushes
      CHECK(rig.steal->counters(0).flushes == 1);
      CHECK(rig.preempted_at() == 0);
    }
  }
}

// ---------------------------------------------------------------------------------------
// INIT/RESET

TEST_CASE("steal time: reset zeroes the MSR only", "[steal_time]") {
  for (AbiProfile abi : {AbiProfile::Modern, AbiProfile::Orig}) {
    INFO(name(abi));
    Rig rig(config(abi));
    rig.enable();
    rig.update(1000);
    rig.steal->reset(0);
    CHECK(rig.rd_ok() == 0);
    CHECK_FALSE(rig.steal->enabled(0));
    const auto before = rig.bytes();
    rig.load_and_update(1200);
    rig.steal->on_put(0, Tick(5));
    CHECK(rig.bytes() == before);  // disabled: no update, no preempted
    CHECK(rig.steal->last_steal(0) == 1000);  // kvm_vcpu_reset leaves last_steal alone
    // Re-enabled at the same record without zeroing it: the span since the last update
    // before the reset is reported (no re-base without a run-delay source).
    REQUIRE(rig.wr(kArea | 1) == MsrStatus::Ok);
    rig.update(1600);
    CHECK(rig.steal_at() == 1600);
    CHECK(rig.count("pvsim_steal: update: steal 1600 delta 600 version 4") == 1);
  }
  SECTION("modern: the host copy of preempted survives a reset") {
    Rig rig(config(AbiProfile::Modern));
    rig.enable();
    rig.update(1);
    rig.steal->on_put(0, Tick(5));
    REQUIRE(rig.steal->preempted_copy(0) == StealTime::kPreempted);
    rig.steal->reset(0);
    CHECK(rig.steal->preempted_copy(0) == StealTime::kPreempted);
    rig.enable();  // the guest zeroes the record and enables again
    rig.steal->on_put(0, Tick(6));
    CHECK(rig.preempted_at() == 0);  // the stale copy suppresses it until an update
    rig.update(2);
    rig.steal->on_put(0, Tick(7));
    CHECK(rig.preempted_at() == StealTime::kPreempted);
  }
}

// ---------------------------------------------------------------------------------------
// Snapshots (pvmsr/README.md §1.3)

namespace {

// Everything StealTime lets a test see of vCPU i, one line.
std::string steal_state(Rig& r, unsigned i) {
  std::ostringstream os;
  const StealTime& st = *r.steal;
  const StealTime::Counters& c = st.counters(i);
  os << "vcpu " << i << std::hex << " msr 0x" << st.msr(i) << " cache 0x" << st.cache_gpa(i) << std::dec
     << " ok " << st.cache_valid(i) << " last_steal " << st.last_steal(i) << " preempted "
     << int(st.preempted_copy(i)) << " requested " << st.update_requested(i) << " counters "
     << c.updates << "/" << c.skipped << "/" << c.flushes << "/" << c.preempted_set << "/"
     << c.preempted_skipped << "\n";
  return os.str();
}

}  // namespace

TEST_CASE("steal time snapshot: restore, then everything goes as in an untouched copy",
          "[steal_time][snapshot]") {
  constexpr uint64_t kArea1 = 0x3080;  // vCPU 1's record
  for (AbiProfile abi : {AbiProfile::Modern, AbiProfile::Orig}) {
    INFO(name(abi));
    // Saved with: both records enabled and updated once, the host's cache built for vCPU 0's
    // record and its copy of `preempted` clear, and a KVM_REQ_STEAL_UPDATE pending on vCPU 0.
    // The run-delay source re-bases last_steal at an orig enable.
    auto make = [abi] {
      auto r = std::make_unique<Rig>(config(abi), 2);
      r->steal->set_run_delay_source([](unsigned i) { return 500 * (i + 1); });
      r->enable(kArea, 0);
      r->update(1000, 0);
      r->enable(kArea1, 1);
      r->update(2000, 1);
      r->steal->on_load(0);
      return r;
    };
    // The request is serviced, `preempted` set by a put and FLUSH_TLB added by the guest,
    // the record moves to another GPA and then outside RAM (the cache becomes unusable),
    // vCPU 1 updates again.
    auto mutate = [](Rig& r) {
      r.advance_all(10'000);
      r.update(5000, 0);
      r.steal->on_put(0, Tick(10'000));
      r.set_preempted(StealTime::kPreempted | StealTime::kFlushTlb);
      REQUIRE(r.wr(kArea2 | StealTime::kEnabled) == MsrStatus::Ok);
      r.load_and_update(7000, 0);
      r.steal->on_put(0, Tick(11'000));
      r.wr(kOutside | StealTime::kEnabled);  // #GP under orig, accepted under modern
      r.load_and_update(8000, 0);
      r.load_and_update(9000, 1);
    };
    // A put first (it needs the host's copy of `preempted` clear and a cache for the MSR's
    // GPA), the guest's FLUSH_TLB, the pending update, a disable and re-enable, vCPU 1.
    auto branch = [](Rig& r, uint64_t base) {
      const size_t mark = r.text.str().size();
      std::ostringstream log;
      log << steal_state(r, 0) << steal_state(r, 1);
      r.advance_all(base);
      r.steal->on_put(0, Tick(base));
      r.set_preempted(r.preempted_at() | StealTime::kFlushTlb);
      log << "flush " << r.update(12'000, 0) << "\n";
      REQUIRE(r.wr(0) == MsrStatus::Ok);
      REQUIRE(r.wr(kArea | StealTime::kEnabled) == MsrStatus::Ok);
      log << "flush " << r.update(15'000, 0) << "\n";
      r.steal->on_put(1, Tick(base + 1));
      log << "flush " << r.load_and_update(16'000, 1) << "\n";
      log << steal_state(r, 0) << steal_state(r, 1);
      log << "rdmsr " << std::hex << r.rd_ok(0) << " " << r.rd_ok(1) << std::dec << "\n";
      return log.str() + r.text.str().substr(mark);
    };
    pvsim::test::check_snapshot(make, mutate, branch, {20'000, 50'000});
  }
}
