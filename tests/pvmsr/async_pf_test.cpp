// tests/pvmsr/async_pf_test.cpp — async page faults (pvmsr/async_pf.h; pvmsr/README.md §5):
// the gfn table against a reference model, tokens, every MSR validation row in both
// profiles, and the not-present / page-ready state machine on real Vcpu objects with a
// recording stand-in for the platform (ApfHost).
#include "pvmsr/async_pf.h"

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <iterator>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "core/env.h"
#include "core/guest_memory.h"
#include "core/prng.h"
#include "core/trace.h"
#include "core/vcpu.h"
#include "tests/cpu_envs.h"
#include "tests/pvmsr/snapshot_check.h"

using namespace pvsim;
using pvsim::test::NullEnv;

namespace {

constexpr uint64_t kRam = 64 * kPageSize;
constexpr uint64_t kArea = 0x2000;  // the guest's kvm_vcpu_pv_apf_data (64-byte aligned, in RAM)
constexpr uint32_t kEn = AsyncPf::kMsrEn, kInt = AsyncPf::kMsrInt, kAck = AsyncPf::kMsrAck;
constexpr uint64_t kOn = AsyncPf::kEnabled | AsyncPf::kDeliveryAsInt;  // modern "enabled"
constexpr uint8_t kVec = 0xec;
constexpr uint32_t kAllFeatures = ~0u;
constexpr uint32_t kBit4 = 1u << 4, kBit10 = 1u << 10, kBit14 = 1u << 14;

ApfVcpuState user() {
  ApfVcpuState s;
  s.cpl = 3;
  return s;
}
ApfVcpuState kernel() { return ApfVcpuState{}; }

AsyncPfConfig modern() { return AsyncPfConfig{}; }
AsyncPfConfig orig() {
  AsyncPfConfig c;
  c.abi = AbiProfile::Orig;
  return c;
}
const char* name(AbiProfile p) { return p == AbiProfile::Modern ? "modern" : "orig"; }

// The platform as the component sees it: every call recorded in order; LAPIC state and
// the orig "can inject now" answer are set by the test.
class FakeHost final : public ApfHost {
 public:
  struct Call {
    std::string what;
    unsigned vcpu;
    uint64_t arg;
    bool operator==(const Call&) const = default;
  };
  std::vector<Call> calls;
  std::vector<bool> lapic_on = std::vector<bool>(8, true);
  std::vector<bool> can_inject = std::vector<bool>(8, true);

  void apf_inject_page_fault(unsigned v, uint32_t cr2) override { calls.push_back({"pf", v, cr2}); }
  void apf_inject_interrupt(unsigned v, uint8_t vector) override { calls.push_back({"irq", v, vector}); }
  bool apf_lapic_enabled(unsigned v) override { return lapic_on.at(v); }
  bool apf_can_inject_present(unsigned v) override { return can_inject.at(v); }
  void apf_wake(unsigned v) override { calls.push_back({"wake", v, 0}); }
  void apf_request_ready(unsigned v) override { calls.push_back({"ready", v, 0}); }
  void apf_kick(unsigned v) override { calls.push_back({"kick", v, 0}); }

  size_t count(const std::string& what) const {
    size_t n = 0;
    for (const Call& c : calls) n += c.what == what;
    return n;
  }
  std::vector<Call> take() {
    std::vector<Call> out;
    out.swap(calls);
    return out;
  }
};

std::ostream& operator<<(std::ostream& os, const FakeHost::Call& c) {
  return os << c.what << "(" << c.vcpu << ", 0x" << std::hex << c.arg << std::dec << ")";
}

struct Rig {
  GuestMemory mem{kRam};
  Tracer tracer;
  std::ostringstream text;
  NullEnv env;
  FakeHost host;
  std::vector<std::unique_ptr<Vcpu>> vcpus;
  std::unique_ptr<AsyncPf> apf;  // declared last: destroyed before the vCPUs

  explicit Rig(const AsyncPfConfig& cfg, unsigned n = 1) {
    tracer.set_text_output(&text);
    apf = std::make_unique<AsyncPf>(cfg, n, mem, tracer, host);
    for (unsigned i = 0; i < n; ++i) {
      VcpuConfig vc;
      vc.index = i;
      vc.count = n;
      vcpus.push_back(std::make_unique<Vcpu>(vc, mem, env, tracer));
      apf->attach(*vcpus.back());
    }
  }
  Vcpu& v(unsigned i) { return *vcpus.at(i); }
  MsrStatus wr(unsigned i, uint32_t msr, uint64_t value) { return v(i).msrs().write(v(i), msr, value); }
  MsrStatus rd(unsigned i, uint32_t msr, uint64_t& value) { return v(i).msrs().read(v(i), msr, value); }
  uint64_t rd_ok(unsigned i, uint32_t msr) {
    uint64_t value = 0xdeadbeef;
    REQUIRE(rd(i, msr, value) == MsrStatus::Ok);
    return value;
  }
  uint32_t u32(uint64_t gpa) const {
    uint32_t x = 0;
    REQUIRE(mem.read(Gpa(gpa), &x, 4));
    return x;
  }
  void set_u32(uint64_t gpa, uint32_t x) { REQUIRE(mem.write(Gpa(gpa), &x, 4)); }
  // Modern guest start-up (Linux kvm_guest_cpu_init): vector first, then the enable.
  void enable_modern(unsigned i, uint64_t area = kArea, uint64_t extra = 0) {
    REQUIRE(wr(i, kInt, kVec) == MsrStatus::Ok);
    REQUIRE(wr(i, kEn, area | kOn | extra) == MsrStatus::Ok);
  }
  // Consumes the wake-all of an enable the way a modern guest does: deliver, zero the
  // token slot, ACK. Leaves host calls and trace as they were before.
  void consume_wake_all_modern(unsigned i, uint64_t area = kArea) {
    apf->check_completion(i, Tick(0));
    REQUIRE(u32(area + 4) == AsyncPf::kWakeAllToken);
    set_u32(area + 4, 0);
    REQUIRE(wr(i, kAck, 1) == MsrStatus::Ok);
    REQUIRE(apf->queued(i) == 0);
    host.take();
  }
  std::vector<std::string> lines() const {
    std::vector<std::string> out;
    std::istringstream in(text.str());
    for (std::string l; std::getline(in, l);) out.push_back(l);
    return out;
  }
  // Event bodies ("kvm_async_pf_ready: token 0x1000 gva 0x5123") from line `from` on.
  std::vector<std::string> bodies(size_t from = 0) const {
    std::vector<std::string> out;
    std::vector<std::string> all = lines();
    for (size_t k = from; k < all.size(); ++k) {
      const size_t p = all[k].find(": ");
      out.push_back(all[k].substr(p + 2));
    }
    return out;
  }
  size_t line_count() const { return lines().size(); }
  // Local time of every vCPU becomes at least t ns (the trace time of MSR-driven events).
  void advance_all(uint64_t t) {
    for (auto& x : vcpus) x->advance_to(Cycles(ns_to_cycles(t, x->config().tsc_hz)));
  }
  // Snapshots (tests/pvmsr/snapshot_check.h): the component and guest RAM (async PF has
  // no events of its own; the fetches in flight are the caller's).
  struct Snap {
    AsyncPf::Snapshot apf;
    unsigned level;
  };
  Snap save() { return Snap{apf->save(), mem.checkpoint()}; }
  void restore(const Snap& s) {
    apf->restore(s.apf);
    mem.rollback(s.level);
  }
  std::vector<uint8_t> ram() const { return pvsim::test::ram_image(mem); }
};

// A gfn whose home slot is `slot`, searching upwards from `from` (for crafted collisions).
uint64_t gfn_with_home(unsigned slot, AbiProfile abi, uint64_t& from) {
  for (;; ++from)
    if (ApfGfnTable::home_slot(from, abi) == slot) return from++;
}

}  // namespace

// ---------------------------------------------------------------------------------------
// The gfn table

TEST_CASE("gfn table: home slots of both hash multipliers", "[async_pf]") {
  // Modern (GOLDEN_RATIO_32 = 0x61C88647): the examples of pvmsr/README.md §5.6.
  CHECK(ApfGfnTable::home_slot(0, AbiProfile::Modern) == 0);
  CHECK(ApfGfnTable::home_slot(1, AbiProfile::Modern) == 24);
  CHECK(ApfGfnTable::home_slot(0x100, AbiProfile::Modern) == 50);
  CHECK(ApfGfnTable::home_slot(0x12345, AbiProfile::Modern) == 18);
  CHECK(ApfGfnTable::home_slot(0xdeadbeef, AbiProfile::Modern) == 27);
  // Before Linux 4.7 (GOLDEN_RATIO_PRIME_32 = 0x9e370001): top 6 bits of gfn * 0x9e370001.
  CHECK(ApfGfnTable::home_slot(0, AbiProfile::Orig) == 0);
  CHECK(ApfGfnTable::home_slot(1, AbiProfile::Orig) == 39);
  CHECK(ApfGfnTable::home_slot(0x100, AbiProfile::Orig) == 13);
  CHECK(ApfGfnTable::home_slot(0x12345, AbiProfile::Orig) == 10);
  CHECK(ApfGfnTable::home_slot(0xdeadbeef, AbiProfile::Orig) == 25);
  // Only the low 32 bits take part (gfn & 0xffffffff).
  for (AbiProfile p : {AbiProfile::Modern, AbiProfile::Orig}) {
    CHECK(ApfGfnTable::home_slot(0x100000001ull, p) == ApfGfnTable::home_slot(1, p));
    CHECK(ApfGfnTable::home_slot(0xabc00012345ull, p) == ApfGfnTable::home_slot(0x12345, p));
  }
}

TEST_CASE("gfn table: 10^5 random operations agree with a reference set", "[async_pf]") {
  for (AbiProfile abi : {AbiProfile::Modern, AbiProfile::Orig}) {
    INFO(name(abi));
    ApfGfnTable t(abi);
    std::set<uint64_t> ref;
    SplitMix64 rng(abi == AbiProfile::Modern ? 0x5eed1 : 0x5eed2);
    // A universe small enough to collide constantly: 96 gfns in 64 slots, a third of them
    // with bits above 31 set (which the hash ignores, so they alias their low halves).
    std::vector<uint64_t> universe;
    for (uint64_t g = 0; g < 64; ++g) universe.push_back(g * 7 + 3);
    for (uint64_t g = 0; g < 32; ++g) universe.push_back((g << 32) | (g * 7 + 3));
    uint64_t adds = 0, dels = 0, absent_dels = 0, full_seen = 0;
    for (int op = 0; op < 100'000; ++op) {
      // Alternate filling and draining phases so the table spends time both full and sparse.
      const bool filling = (op / 2500) % 2 == 0;
      const uint64_t r = rng.below(10);
      const uint64_t g = universe[rng.below(universe.size())];
      if (r < (filling ? 8u : 2u)) {
        if (!ref.count(g) && ref.size() < ApfGfnTable::kSlots) {
          t.add(g);
          ref.insert(g);
          ++adds;
        }
      } else if (r < 9) {
        if (!ref.empty()) {
          auto it = ref.begin();
          std::advance(it, static_cast<long>(rng.below(ref.size())));
          const uint64_t victim = *it;
          t.del(victim);
          ref.erase(it);
          ++dels;
        }
      } else if (abi == AbiProfile::Modern && !ref.count(g)) {
        t.del(g);  // absent: modern leaves the table alone
        ++absent_dels;
      }
      full_seen += ref.size() == ApfGfnTable::kSlots;
      REQUIRE(t.find(g) == (ref.count(g) == 1));
      if (op % 16 == 0) {
        REQUIRE(t.size() == ref.size());
        for (uint64_t x : universe) REQUIRE(t.find(x) == (ref.count(x) == 1));
        // Probe invariant: no empty slot between an entry's home and where it sits.
        for (unsigned s = 0; s < ApfGfnTable::kSlots; ++s) {
          const uint64_t x = t.slot(s);
          if (x == ApfGfnTable::kEmpty) continue;
          REQUIRE(ref.count(x) == 1);
          for (unsigned k = t.home_slot(x); k != s; k = (k + 1) % ApfGfnTable::kSlots)
            REQUIRE(t.slot(k) != ApfGfnTable::kEmpty);
        }
      }
    }
    // The run exercised what it claims to.
    INFO("adds " << adds << " dels " << dels << " full " << full_seen << " absent " << absent_dels);
    CHECK(adds > 10'000);
    CHECK(dels > 10'000);
    CHECK(full_seen > 10'000);
    if (abi == AbiProfile::Modern) CHECK(absent_dels > 1'000);
  }
}

TEST_CASE("gfn table: a cluster wrapping past slot 63, deletion, and a full table", "[async_pf]") {
  for (AbiProfile abi : {AbiProfile::Modern, AbiProfile::Orig}) {
    INFO(name(abi));
    ApfGfnTable t(abi);
    uint64_t from = 1;
    const uint64_t a = gfn_with_home(62, abi, from), b = gfn_with_home(62, abi, from);
    const uint64_t c = gfn_with_home(62, abi, from), d = gfn_with_home(62, abi, from);
    uint64_t from0 = 1;
    const uint64_t e = gfn_with_home(0, abi, from0);
    for (uint64_t g : {a, b, c, d, e}) t.add(g);
    CHECK(t.slot(62) == a);
    CHECK(t.slot(63) == b);
    CHECK(t.slot(0) == c);
    CHECK(t.slot(1) == d);
    CHECK(t.slot(2) == e);  // home 0 is taken by the wrapped cluster
    // Deleting the head shifts every entry whose home is not between the hole and its
    // slot back by one, across the wrap; e (home 0) moves too, next to its home.
    t.del(a);
    CHECK(t.slot(62) == b);
    CHECK(t.slot(63) == c);
    CHECK(t.slot(0) == d);
    CHECK(t.slot(1) == e);
    CHECK(t.slot(2) == ApfGfnTable::kEmpty);
    CHECK_FALSE(t.find(a));
    for (uint64_t g : {b, c, d, e}) CHECK(t.find(g));
    // Deleting from the middle of the wrapped part keeps the rest reachable.
    t.del(d);
    CHECK(t.slot(0) == e);  // home 0: now in place
    CHECK(t.slot(1) == ApfGfnTable::kEmpty);
    for (uint64_t g : {b, c, e}) CHECK(t.find(g));
    CHECK(t.size() == 3);

    // Full: 64 gfns. Lookups of absent gfns probe all 64 slots and fail.
    t.reset();
    std::vector<uint64_t> all;
    for (uint64_t g = 0; all.size() < ApfGfnTable::kSlots; ++g) all.push_back(g * 3 + 1);
    for (uint64_t g : all) t.add(g);
    CHECK(t.size() == 64);
    for (uint64_t g : all) CHECK(t.find(g));
    CHECK_FALSE(t.find(2));
    t.del(all[10]);
    CHECK(t.size() == 63);
    CHECK_FALSE(t.find(all[10]));
    for (uint64_t g : all)
      if (g != all[10]) CHECK(t.find(g));
    t.add(all[10]);
    CHECK(t.size() == 64);
    // Deleting an absent gfn from a full table: modern returns early (its WARN_ON_ONCE
    // check); the 3.0 code had no check and cleared the slot the failed lookup stopped at.
    const uint64_t absent = 2;
    const uint64_t victim = t.slot(t.home_slot(absent));
    t.del(absent);
    if (abi == AbiProfile::Modern) {
      CHECK(t.size() == 64);
      for (uint64_t g : all) CHECK(t.find(g));
    } else {
      CHECK(t.size() == 63);
      CHECK_FALSE(t.find(victim));
    }
  }
}

// ---------------------------------------------------------------------------------------
// Tokens

TEST_CASE("tokens: (id << 12) | vcpu, never 0 in modern, and the 2^20 wrap", "[async_pf]") {
  for (unsigned vcpu : {0u, 1u, 5u}) {
    uint32_t id = 0;
    CHECK(apf_next_token(id, vcpu, /*never_zero=*/true) == (0x1000u | vcpu));
    CHECK(apf_next_token(id, vcpu, /*never_zero=*/true) == (0x2000u | vcpu));
    id = 0;
    CHECK(apf_next_token(id, vcpu, /*never_zero=*/false) == vcpu);  // vCPU 0: token 0
    CHECK(apf_next_token(id, vcpu, /*never_zero=*/false) == (0x1000u | vcpu));
    // At the end of the 20-bit counter: modern skips the zero counter, orig does not.
    id = 0xfffff;
    CHECK(apf_next_token(id, vcpu, /*never_zero=*/true) == (0xfffff000u | vcpu));
    CHECK(apf_next_token(id, vcpu, /*never_zero=*/true) == (0x1000u | vcpu));
    id = 0xfffff;
    CHECK(apf_next_token(id, vcpu, /*never_zero=*/false) == (0xfffff000u | vcpu));
    CHECK(apf_next_token(id, vcpu, /*never_zero=*/false) == vcpu);
  }
  // The whole cycle on vCPU 0: 2^20 - 1 distinct non-zero tokens, then the first again.
  uint32_t id = 0;
  const uint32_t first = apf_next_token(id, 0, /*never_zero=*/true);
  uint32_t zeros = 0, repeats = 0;
  for (uint32_t k = 2; k <= (1u << 20); ++k) {
    const uint32_t t = apf_next_token(id, 0, /*never_zero=*/true);
    zeros += t == 0;
    if (t == first) {
      ++repeats;
      CHECK(k == (1u << 20));
    }
  }
  CHECK(zeros == 0);
  CHECK(repeats == 1);
}

TEST_CASE("tokens: the first not-present token of each vCPU through the fault path", "[async_pf]") {
  for (AsyncPfConfig cfg : {modern(), orig()}) {
    INFO(name(cfg.abi));
    Rig r(cfg, 3);
    for (unsigned i = 0; i < 3; ++i) {
      if (cfg.abi == AbiProfile::Modern) r.enable_modern(i, kArea + 64 * i);
      else REQUIRE(r.wr(i, kEn, (kArea + 64 * i) | 1) == MsrStatus::Ok);
      const AsyncPf::FaultResult f = r.apf->on_fault(i, Tick(0), 0x10000 + i * kPageSize, user());
      REQUIRE(f.kind == AsyncPf::FaultKind::Injected);
      CHECK(f.token == (cfg.abi == AbiProfile::Modern ? 0x1000u | i : i));
      CHECK(r.apf->token_counter(i) == (cfg.abi == AbiProfile::Modern ? 2u : 1u));
    }
  }
}

// ---------------------------------------------------------------------------------------
// MSR validation (pvmsr/README.md §5.1, §5.4, §5.5)

namespace {

struct Step {
  bool write;
  uint32_t msr;
  uint64_t value;        // written, or expected on a successful read
  MsrStatus status;
};
Step W(uint32_t msr, uint64_t value, MsrStatus s) { return {true, msr, value, s}; }
Step R(uint32_t msr, uint64_t value) { return {false, msr, value, MsrStatus::Ok}; }
Step Rgp(uint32_t msr) { return {false, msr, 0, MsrStatus::Gp}; }

struct MsrRow {
  const char* what;
  AbiProfile abi;
  bool enforce;
  uint32_t features;
  bool irqchip;
  std::vector<Step> steps;
  unsigned wake_alls;  // wake-all works queued by the whole row
};

constexpr MsrStatus Ok = MsrStatus::Ok, Gp = MsrStatus::Gp;
constexpr AbiProfile M = AbiProfile::Modern, O = AbiProfile::Orig;

}  // namespace

TEST_CASE("MSR validation: every row of 0x4b564d02, 0x4b564d06, 0x4b564d07 in both profiles",
          "[async_pf]") {
  const uint64_t A = kArea, OUT = kRam;  // OUT: 64-aligned, not in RAM
  const uint64_t LAST = kRam - 64;       // the last 64 bytes of RAM: in RAM
  const std::vector<MsrRow> rows = {
      // ---- modern, no enforcement, in-kernel LAPIC ----
      {"modern: reads start at 0", M, false, 0, true,
       {R(kEn, 0), R(kInt, 0), R(kAck, 0)}, 0},
      {"modern: enable stores the raw value and queues a wake-all", M, false, 0, true,
       {W(kEn, A | kOn, Ok), R(kEn, A | kOn)}, 1},
      {"modern: bits 63:6 are all address", M, false, 0, true,
       {W(kEn, LAST | kOn, Ok), R(kEn, LAST | kOn)}, 1},
      {"modern: SEND_ALWAYS and DELIVERY_AS_PF_VMEXIT accepted without enforcement", M, false, 0, true,
       {W(kEn, A | kOn | 2 | 4, Ok), R(kEn, A | kOn | 2 | 4)}, 1},
      {"modern: bit 4 reserved, nothing stored", M, false, 0, true,
       {W(kEn, A | kOn | 0x10, Gp), R(kEn, 0)}, 0},
      {"modern: bit 5 reserved, nothing stored", M, false, 0, true,
       {W(kEn, A | kOn | 0x20, Gp), R(kEn, 0)}, 0},
      {"modern: bit 0 without bit 3 is stored but means disabled", M, false, 0, true,
       {W(kEn, A | 1, Ok), R(kEn, A | 1)}, 0},
      {"modern: bit 3 without bit 0 is stored, disabled", M, false, 0, true,
       {W(kEn, A | 8, Ok), R(kEn, A | 8)}, 0},
      {"modern: area outside RAM: #GP after the value is stored", M, false, 0, true,
       {W(kEn, OUT | kOn, Gp), R(kEn, OUT | kOn)}, 0},
      {"modern: a disabled value outside RAM is fine (no cache set-up)", M, false, 0, true,
       {W(kEn, OUT | 1, Ok), R(kEn, OUT | 1)}, 0},
      {"modern: every successful enable queues a wake-all if none is pending", M, false, 0, true,
       {W(kEn, A | kOn, Ok), W(kEn, A | kOn, Ok), W(kEn, 0, Ok), W(kEn, A | kOn, Ok)}, 2},
      {"modern: INT stores the vector, bits 63:8 reserved", M, false, 0, true,
       {W(kInt, 0xec, Ok), R(kInt, 0xec), W(kInt, 0x1ec, Gp), R(kInt, 0xec), W(kInt, 1ull << 63, Gp),
        W(kInt, 0, Ok), R(kInt, 0), W(kInt, 0xff, Ok), R(kInt, 0xff)}, 0},
      {"modern: ACK reads 0, any value is accepted", M, false, 0, true,
       {W(kAck, 1, Ok), R(kAck, 0), W(kAck, 0, Ok), W(kAck, ~0ull, Ok), R(kAck, 0)}, 0},
      // ---- modern, enforcement ----
      {"modern enforced, no features: all three #GP", M, true, 0, true,
       {Rgp(kEn), W(kEn, 0, Gp), Rgp(kInt), W(kInt, 0xec, Gp), Rgp(kAck), W(kAck, 1, Gp)}, 0},
      {"modern enforced, all features: like no enforcement", M, true, kAllFeatures, true,
       {W(kEn, A | kOn | 2 | 4, Ok), R(kEn, A | kOn | 2 | 4), W(kInt, 0xec, Ok), W(kAck, 1, Ok)}, 1},
      {"modern enforced, 4 without 10: bit 2 #GP, the rest works", M, true, kBit4 | kBit14, true,
       {W(kEn, A | kOn | 4, Gp), R(kEn, 0), W(kEn, A | kOn, Ok), R(kEn, A | kOn)}, 1},
      {"modern enforced, 4 without 14: bit 3 #GP, 06/07 #GP, bit 0 alone stored", M, true,
       kBit4 | kBit10, true,
       {W(kEn, A | kOn, Gp), R(kEn, 0), W(kEn, A | 1, Ok), R(kEn, A | 1), Rgp(kInt),
        W(kInt, 0xec, Gp), Rgp(kAck), W(kAck, 1, Gp)}, 0},
      {"modern enforced, 14 without 4: 0x4b564d02 #GP, 06/07 work", M, true, kBit14, true,
       {Rgp(kEn), W(kEn, A | kOn, Gp), W(kInt, 0xec, Ok), R(kInt, 0xec), R(kAck, 0), W(kAck, 1, Ok)}, 0},
      {"modern enforced: reserved bits still #GP with every feature", M, true, kAllFeatures, true,
       {W(kEn, A | kOn | 0x30, Gp), R(kEn, 0), W(kInt, 0x100, Gp)}, 0},
      // ---- modern, no in-kernel LAPIC ----
      {"modern, no irqchip: 0 accepted, anything else #GP, nothing stored", M, false, 0, false,
       {W(kEn, 0, Ok), R(kEn, 0), W(kEn, A | kOn, Gp), R(kEn, 0), W(kEn, A | 1, Gp), R(kEn, 0),
        W(kEn, A, Gp), R(kEn, 0)}, 0},
      {"modern, no irqchip: reserved bits still #GP first", M, false, 0, false,
       {W(kEn, 0x30, Gp), R(kEn, 0)}, 0},
      {"modern, no irqchip: INT rejects every write, ACK works", M, false, 0, false,
       {W(kInt, 0, Gp), W(kInt, 0xec, Gp), R(kInt, 0), W(kAck, 1, Ok), R(kAck, 0)}, 0},
      {"modern, no irqchip, enforced without 14: bit 3 #GP", M, true, kBit4, false,
       {W(kEn, 8, Gp), W(kEn, 0, Ok), R(kEn, 0)}, 0},
      // ---- orig ----
      {"orig: 0x4b564d06 and 0x4b564d07 do not exist", O, false, 0, true,
       {Rgp(kInt), W(kInt, 0xec, Gp), Rgp(kAck), W(kAck, 1, Gp)}, 0},
      {"orig: bit 0 enables, stored raw, wake-all", O, false, 0, true,
       {R(kEn, 0), W(kEn, A | 1, Ok), R(kEn, A | 1)}, 1},
      {"orig: SEND_ALWAYS (bit 1) accepted", O, false, 0, true,
       {W(kEn, A | 3, Ok), R(kEn, A | 3)}, 1},
      {"orig: bits 5:2 reserved (bit 2 came in 4.13, bit 3 in 5.8)", O, false, 0, true,
       {W(kEn, A | 1 | 4, Gp), W(kEn, A | 1 | 8, Gp), W(kEn, A | 1 | 0x10, Gp), W(kEn, A | 1 | 0x20, Gp),
        R(kEn, 0)}, 0},
      {"orig: bit 0 clear is a disable, value stored", O, false, 0, true,
       {W(kEn, A | 1, Ok), W(kEn, A, Ok), R(kEn, A)}, 1},
      {"orig: area outside RAM: #GP after the value is stored", O, false, 0, true,
       {W(kEn, OUT | 1, Gp), R(kEn, OUT | 1)}, 0},
      {"orig: no in-kernel LAPIC check on the MSR", O, false, 0, false,
       {W(kEn, A | 1, Ok), R(kEn, A | 1)}, 1},
      {"orig enforced without 4: #GP (pvsim applies enforcement to both profiles)", O, true, 0, true,
       {Rgp(kEn), W(kEn, A | 1, Gp), Rgp(kInt)}, 0},
      {"orig enforced with everything: bits 5:2 still reserved", O, true, kAllFeatures, true,
       {W(kEn, A | 9, Gp), W(kEn, A | 1, Ok), R(kEn, A | 1)}, 1},
  };
  for (const MsrRow& row : rows) {
    INFO(row.what);
    AsyncPfConfig cfg;
    cfg.abi = row.abi;
    cfg.enforce_pv_cpuid = row.enforce;
    cfg.cpuid_features = row.features;
    cfg.irqchip_in_kernel = row.irqchip;
    Rig r(cfg);
    for (size_t k = 0; k < row.steps.size(); ++k) {
      const Step& s = row.steps[k];
      INFO("step " << k << (s.write ? " write " : " read ") << std::hex << s.msr << " 0x" << s.value);
      if (s.write) {
        CHECK(r.wr(0, s.msr, s.value) == s.status);
      } else {
        uint64_t got = 0x1234;
        CHECK(r.rd(0, s.msr, got) == s.status);
        if (s.status == Ok) CHECK(got == s.value);
      }
    }
    CHECK(r.apf->counters(0).wake_alls == row.wake_alls);
  }
}

TEST_CASE("MSR: the stored vector is what page-ready uses, bit 0 of ACK only", "[async_pf]") {
  Rig r(modern());
  REQUIRE(r.wr(0, kInt, 0x31) == Ok);
  CHECK(r.apf->vector(0) == 0x31);
  REQUIRE(r.wr(0, kEn, kArea | kOn) == Ok);
  r.apf->check_completion(0, Tick(0));
  CHECK(r.host.calls.back() == FakeHost::Call{"wake", 0, 0});
  CHECK(r.host.count("irq") == 1);
  CHECK(std::find(r.host.calls.begin(), r.host.calls.end(), FakeHost::Call{"irq", 0, 0x31}) !=
        r.host.calls.end());
  CHECK(r.apf->pageready_pending(0));
  REQUIRE(r.wr(0, kAck, 2) == Ok);  // bit 0 clear: ignored
  CHECK(r.apf->pageready_pending(0));
  REQUIRE(r.wr(0, kAck, 3) == Ok);
  CHECK_FALSE(r.apf->pageready_pending(0));
}

// ---------------------------------------------------------------------------------------
// The state machine

TEST_CASE("modern: not-present then page-ready, with the wake-all first", "[async_pf]") {
  Rig r(modern());
  r.enable_modern(0);
  // The enable queued a wake-all: request + kick (no page-ready awaits an ACK yet).
  CHECK(r.host.take() == std::vector<FakeHost::Call>{{"ready", 0, 0}, {"kick", 0, 0}});
  CHECK(r.apf->queued(0) == 1);
  CHECK(r.apf->has_done(0));
  r.apf->check_completion(0, Tick(0));
  CHECK(r.u32(kArea + 4) == 0xffffffffu);
  CHECK(r.host.take() == std::vector<FakeHost::Call>{{"irq", 0, kVec}, {"wake", 0, 0}});
  CHECK(r.apf->queued(0) == 0);
  CHECK(r.apf->pageready_pending(0));
  r.set_u32(kArea + 4, 0);
  REQUIRE(r.wr(0, kAck, 1) == Ok);
  CHECK(r.host.take().empty());  // nothing left to deliver

  const AsyncPf::FaultResult f = r.apf->on_fault(0, Tick(1000), 0x5123, user());
  CHECK(f.kind == AsyncPf::FaultKind::Injected);
  CHECK(f.token == 0x1000);
  CHECK(r.u32(kArea) == 1);  // flags = KVM_PV_REASON_PAGE_NOT_PRESENT
  CHECK(r.apf->gfn_table(0).find(5));
  CHECK(r.apf->outstanding(0) == 1);
  CHECK(r.apf->queued(0) == 1);
  CHECK_FALSE(r.apf->halted(0));
  CHECK(r.host.calls.empty());  // the caller injects the #PF

  r.apf->complete(0, 0x1000, Tick(5000));
  CHECK(r.host.take() == std::vector<FakeHost::Call>{{"ready", 0, 0}, {"kick", 0, 0}, {"kick", 0, 0}});
  CHECK(r.apf->outstanding(0) == 0);
  CHECK(r.apf->done_count(0) == 1);
  r.apf->check_completion(0, Tick(6000));
  CHECK(r.u32(kArea + 4) == 0x1000);
  CHECK(r.host.take() == std::vector<FakeHost::Call>{{"irq", 0, kVec}, {"wake", 0, 0}});
  CHECK_FALSE(r.apf->gfn_table(0).find(5));
  CHECK(r.apf->queued(0) == 0);
  CHECK(r.apf->counters(0).ready_delivered == 2);
}

TEST_CASE("orig: not-present then page-ready as a second #PF", "[async_pf]") {
  Rig r(orig());
  REQUIRE(r.wr(0, kEn, kArea | 1) == Ok);
  CHECK(r.host.take() == std::vector<FakeHost::Call>{{"ready", 0, 0}});  // poll, never a kick
  r.apf->check_completion(0, Tick(0));
  // The wake-all: reason 2, #PF with CR2 = 0xffffffff.
  CHECK(r.u32(kArea) == 2);
  CHECK(r.host.take() == std::vector<FakeHost::Call>{{"pf", 0, 0xffffffffu}});
  r.set_u32(kArea, 0);  // the guest's #PF handler reads and zeroes `reason`

  const AsyncPf::FaultResult f = r.apf->on_fault(0, Tick(1000), 0x5123, user());
  CHECK(f.kind == AsyncPf::FaultKind::Injected);
  CHECK(f.token == 0);  // vCPU 0's first seed-era token
  CHECK(r.u32(kArea) == 1);
  r.set_u32(kArea, 0);
  r.apf->complete(0, 0, Tick(5000));
  CHECK(r.host.take() == std::vector<FakeHost::Call>{{"ready", 0, 0}, {"kick", 0, 0}});
  r.apf->check_completion(0, Tick(6000));
  CHECK(r.u32(kArea) == 2);
  CHECK(r.u32(kArea + 4) == 0);  // the seed era never touches bytes 4-7
  // No apf_wake in the seed era; the synthetic halt flag is simply cleared.
  CHECK(r.host.take() == std::vector<FakeHost::Call>{{"pf", 0, 0}});
  CHECK(r.apf->queued(0) == 0);
  CHECK_FALSE(r.apf->gfn_table(0).find(5));
}

TEST_CASE("trace: exact lines of one not-present / page-ready pair in each profile", "[async_pf]") {
  for (AsyncPfConfig cfg : {modern(), orig()}) {
    INFO(name(cfg.abi));
    Rig r(cfg);
    std::ostringstream jsonl;
    r.tracer.set_jsonl_output(&jsonl);
    std::vector<std::string> expect;
    if (cfg.abi == AbiProfile::Modern) {
      r.enable_modern(0);
      r.apf->check_completion(0, Tick(0));
      expect = {
          "CPU 0/KVM-0 [000] 0.000000000: pvsim_apf: wake_all: token 0xffffffff",
          "CPU 0/KVM-0 [000] 0.000000000: kvm_async_pf_ready: token 0xffffffff gva 0",
      };
      r.set_u32(kArea + 4, 0);
      REQUIRE(r.wr(0, kAck, 1) == Ok);
    } else {
      REQUIRE(r.wr(0, kEn, kArea | 1) == Ok);
      r.apf->check_completion(0, Tick(0));
      // 3.0 traced a wake-all before giving it its token: "token 0 gva 0".
      expect = {
          "CPU 0/KVM-0 [000] 0.000000000: pvsim_apf: wake_all: token 0xffffffff",
          "CPU 0/KVM-0 [000] 0.000000000: kvm_async_pf_ready: token 0 gva 0",
      };
      r.set_u32(kArea, 0);
    }
    const std::string tok = cfg.abi == AbiProfile::Modern ? "0x1000" : "0";
    r.apf->on_fault(0, Tick(1000), 0x5123, user());
    r.apf->complete(0, cfg.abi == AbiProfile::Modern ? 0x1000 : 0, Tick(5000));
    r.apf->check_completion(0, Tick(6000));
    expect.push_back("CPU 0/KVM-0 [000] 0.000001000: kvm_try_async_get_page: gva = 0x5123, gfn = 0x5");
    expect.push_back("CPU 0/KVM-0 [000] 0.000001000: kvm_async_pf_not_present: token " + tok +
                     " gva 0x5123");
    expect.push_back(
        "CPU 0/KVM-0 [000] 0.000005000: kvm_async_pf_completed: gva 0x5123 address 0x7f0000005000");
    expect.push_back("CPU 0/KVM-0 [000] 0.000006000: kvm_async_pf_ready: token " + tok +
                     " gva 0x5123");
    CHECK(r.lines() == expect);
    // JSON Lines: the TP_STRUCT field names.
    const std::string j = jsonl.str();
    CHECK(j.find("\"event\":\"kvm_async_pf_completed\",\"address\":139637976748032,\"gva\":20771}") !=
          std::string::npos);
    CHECK(j.find("\"event\":\"kvm_try_async_get_page\",\"gva\":20771,\"gfn\":5}") != std::string::npos);
    CHECK(j.find("\"event\":\"pvsim_apf\",\"what\":\"wake_all\",\"detail\":\"token 0xffffffff\"}") !=
          std::string::npos);
  }
}

TEST_CASE("repeated fault on an outstanding gfn: synthetic halt, no second work", "[async_pf]") {
  for (AsyncPfConfig cfg : {modern(), orig()}) {
    INFO(name(cfg.abi));
    Rig r(cfg);
    if (cfg.abi == AbiProfile::Modern) {
      r.enable_modern(0);
      r.consume_wake_all_modern(0);
    } else {
      REQUIRE(r.wr(0, kEn, kArea | 1) == Ok);
    }
    const AsyncPf::FaultResult f1 = r.apf->on_fault(0, Tick(10), 0x7008, user());
    REQUIRE(f1.kind == AsyncPf::FaultKind::Injected);
    const size_t before = r.line_count();
    const uint32_t id = r.apf->token_counter(0);
    const AsyncPf::FaultResult f2 = r.apf->on_fault(0, Tick(20), 0x7ff0, user());  // same page
    CHECK(f2.kind == AsyncPf::FaultKind::RepeatedHalt);
    CHECK(r.apf->halted(0));
    CHECK(r.apf->outstanding(0) == 1);
    CHECK(r.apf->token_counter(0) == id);  // no token allocated
    const std::string rep = cfg.abi == AbiProfile::Modern ? "kvm_async_pf_repeated_fault"
                                                          : "kvm_async_pf_doublefault";
    CHECK(r.bodies(before) == std::vector<std::string>{
                                  "kvm_try_async_get_page: gva = 0x7ff0, gfn = 0x7",
                                  rep + ": gva = 0x7ff0, gfn = 0x7",
                                  "pvsim_apf: halt: repeated fault on gfn 0x7"});
    // The completion ends the halt.
    r.apf->complete(0, f1.token, Tick(30));
    r.apf->check_completion(0, Tick(40));
    CHECK_FALSE(r.apf->halted(0));
    // clear_halt is the platform's other way out (an interrupt woke the vCPU).
    r.apf->on_fault(0, Tick(50), 0x9000, user());
    REQUIRE(r.apf->on_fault(0, Tick(60), 0x9000, user()).kind == AsyncPf::FaultKind::RepeatedHalt);
    r.apf->clear_halt(0);
    CHECK_FALSE(r.apf->halted(0));
  }
}

TEST_CASE("the 64 limit: the wake-all counts, the refused fault still uses a token", "[async_pf]") {
  Rig r(modern());
  r.enable_modern(0);  // wake-all pending: queued = 1
  r.host.take();
  for (unsigned k = 0; k < 63; ++k) {
    const AsyncPf::FaultResult f = r.apf->on_fault(0, Tick(k), (0x10 + k) * kPageSize, user());
    REQUIRE(f.kind == AsyncPf::FaultKind::Injected);
    REQUIRE(f.token == ((k + 1) << 12));
  }
  CHECK(r.apf->queued(0) == 64);
  const size_t before = r.line_count();
  AsyncPf::FaultResult f = r.apf->on_fault(0, Tick(100), 0x80 * kPageSize, user());
  CHECK(f.kind == AsyncPf::FaultKind::Sync);
  CHECK(f.token == (64u << 12));  // allocated by kvm_arch_setup_async_pf, then thrown away
  CHECK(r.bodies(before) == std::vector<std::string>{"kvm_try_async_get_page: gva = 0x80000, gfn = 0x80"});
  CHECK_FALSE(r.apf->gfn_table(0).find(0x80));
  CHECK(r.apf->counters(0).sync_limit == 1);
  // Dequeuing the wake-all frees one place.
  r.apf->check_completion(0, Tick(101));
  CHECK(r.apf->queued(0) == 63);
  r.set_u32(kArea + 4, 0);
  REQUIRE(r.wr(0, kAck, 1) == Ok);
  f = r.apf->on_fault(0, Tick(102), 0x80 * kPageSize, user());
  CHECK(f.kind == AsyncPf::FaultKind::Injected);
  CHECK(f.token == (65u << 12));
  CHECK(r.apf->queued(0) == 64);
  CHECK(r.apf->on_fault(0, Tick(103), 0x81 * kPageSize, user()).kind == AsyncPf::FaultKind::Sync);
  CHECK(r.apf->gfn_table(0).size() == 64);
}

TEST_CASE("CPL 0 without SEND_ALWAYS: halt, modern wakes without a page-ready, orig sends one",
          "[async_pf]") {
  for (AsyncPfConfig cfg : {modern(), orig()}) {
    INFO(name(cfg.abi));
    Rig r(cfg);
    if (cfg.abi == AbiProfile::Modern) {
      r.enable_modern(0);
      r.consume_wake_all_modern(0);
    } else {
      REQUIRE(r.wr(0, kEn, kArea | 1) == Ok);
      r.apf->check_completion(0, Tick(0));
      r.set_u32(kArea, 0);
      r.host.take();
    }
    const size_t before = r.line_count();
    const AsyncPf::FaultResult f = r.apf->on_fault(0, Tick(10), 0x6000, kernel());
    CHECK(f.kind == AsyncPf::FaultKind::Halt);
    CHECK(r.apf->halted(0));
    CHECK(r.u32(kArea) == 0);  // nothing written
    const std::string tok = cfg.abi == AbiProfile::Modern ? "0x1000" : "0";
    CHECK(r.bodies(before) == std::vector<std::string>{
                                  "kvm_try_async_get_page: gva = 0x6000, gfn = 0x6",
                                  "kvm_async_pf_not_present: token " + tok + " gva 0x6000",
                                  "pvsim_apf: halt: token 0x" + std::string(cfg.abi == AbiProfile::Modern ? "1000" : "0") +
                                      " gfn 0x6"});
    r.apf->complete(0, f.token, Tick(20));
    r.host.take();
    r.apf->check_completion(0, Tick(30));
    CHECK_FALSE(r.apf->halted(0));
    CHECK(r.apf->queued(0) == 0);
    if (cfg.abi == AbiProfile::Modern) {
      // Never injected, so never announced (the 5.8 fix); but the vCPU is woken.
      CHECK(r.host.take() == std::vector<FakeHost::Call>{{"wake", 0, 0}});
      CHECK(r.u32(kArea + 4) == 0);
      CHECK(r.apf->counters(0).ready_silent == 1);
    } else {
      // The seed era announced it anyway (pvmsr/README.md §5.7).
      CHECK(r.host.take() == std::vector<FakeHost::Call>{{"pf", 0, f.token}});
      CHECK(r.u32(kArea) == 2);
    }
  }
  // SEND_ALWAYS delivers at CPL 0.
  for (AsyncPfConfig cfg : {modern(), orig()}) {
    Rig r(cfg);
    if (cfg.abi == AbiProfile::Modern) r.enable_modern(0, kArea, AsyncPf::kSendAlways);
    else REQUIRE(r.wr(0, kEn, kArea | 3) == Ok);
    CHECK(r.apf->on_fault(0, Tick(10), 0x6000, kernel()).kind == AsyncPf::FaultKind::Injected);
  }
}

TEST_CASE("can_do_async_pf false: IF=0, a pending event, no irqchip -> Sync with no trace",
          "[async_pf]") {
  for (AsyncPfConfig cfg : {modern(), orig()}) {
    for (int which = 0; which < 3; ++which) {
      INFO(name(cfg.abi) << " case " << which);
      AsyncPfConfig c = cfg;
      if (which == 2) c.irqchip_in_kernel = false;
      Rig r(c);
      if (c.abi == AbiProfile::Orig) REQUIRE(r.wr(0, kEn, kArea | 1) == Ok);
      else if (c.irqchip_in_kernel) r.enable_modern(0);
      ApfVcpuState s = user();
      if (which == 0) s.interrupts_allowed = false;
      if (which == 1) s.event_pending = true;
      const size_t before = r.line_count();
      const uint32_t id = r.apf->token_counter(0);
      const AsyncPf::FaultResult f = r.apf->on_fault(0, Tick(10), 0x6000, s);
      CHECK(f.kind == AsyncPf::FaultKind::Sync);
      CHECK(r.line_count() == before);
      CHECK(r.apf->token_counter(0) == id);
      CHECK_FALSE(r.apf->halted(0));
      CHECK(r.apf->outstanding(0) == 0);
    }
  }
}

TEST_CASE("modern: no page-ready delivery without paging or when async PF is off", "[async_pf]") {
  {
    Rig r(modern());
    r.enable_modern(0);
    r.consume_wake_all_modern(0);
    ApfVcpuState s = user();
    s.paging = false;
    CHECK(r.apf->on_fault(0, Tick(1), 0x6000, s).kind == AsyncPf::FaultKind::Halt);
  }
  for (uint64_t en : {uint64_t{0}, kArea | 1}) {  // never enabled, or bit 0 without bit 3
    INFO("EN " << en);
    Rig r(modern());
    REQUIRE(r.wr(0, kEn, en) == Ok);
    const AsyncPf::FaultResult f = r.apf->on_fault(0, Tick(1), 0x6000, user());
    CHECK(f.kind == AsyncPf::FaultKind::Halt);  // async PF is a host feature first
    r.apf->complete(0, f.token, Tick(2));
    CHECK(r.host.take() == std::vector<FakeHost::Call>{{"ready", 0, 0}, {"kick", 0, 0}, {"kick", 0, 0}});
    r.apf->check_completion(0, Tick(3));  // off: dequeued silently, LAPIC not asked
    CHECK(r.host.take() == std::vector<FakeHost::Call>{{"wake", 0, 0}});
    CHECK_FALSE(r.apf->halted(0));
  }
}

TEST_CASE("orig: async PF off still halts, and the completion is silent", "[async_pf]") {
  Rig r(orig());
  const AsyncPf::FaultResult f = r.apf->on_fault(0, Tick(1), 0x6000, user());
  CHECK(f.kind == AsyncPf::FaultKind::Halt);
  r.apf->complete(0, f.token, Tick(2));
  r.host.take();
  r.host.can_inject[0] = false;  // not consulted while disabled
  r.apf->check_completion(0, Tick(3));
  CHECK(r.host.take().empty());
  CHECK_FALSE(r.apf->halted(0));
  CHECK(r.apf->queued(0) == 0);
}

TEST_CASE("disable with work outstanding drops it, a later completion is ignored, re-enable "
          "sends a wake-all",
          "[async_pf]") {
  for (AsyncPfConfig cfg : {modern(), orig()}) {
    for (uint64_t off : {uint64_t{0}, kArea | 1}) {
      if (cfg.abi == AbiProfile::Orig && off != 0) continue;  // orig: bit 0 is the switch
      INFO(name(cfg.abi) << " disable with 0x" << std::hex << off);
      Rig r(cfg);
      auto enable = [&] {
        if (cfg.abi == AbiProfile::Modern) r.enable_modern(0);
        else REQUIRE(r.wr(0, kEn, kArea | 1) == Ok);
      };
      enable();
      r.apf->check_completion(0, Tick(0));
      if (cfg.abi == AbiProfile::Modern) {
        r.set_u32(kArea + 4, 0);
        REQUIRE(r.wr(0, kAck, 1) == Ok);
      }
      const AsyncPf::FaultResult a = r.apf->on_fault(0, Tick(1), 0x6000, user());
      const AsyncPf::FaultResult b = r.apf->on_fault(0, Tick(2), 0x7000, user());
      REQUIRE(a.kind == AsyncPf::FaultKind::Injected);
      REQUIRE(b.kind == AsyncPf::FaultKind::Injected);
      r.apf->complete(0, a.token, Tick(3));
      r.host.take();
      const size_t before = r.line_count();
      REQUIRE(r.wr(0, kEn, off) == Ok);
      CHECK(r.bodies(before) ==
            std::vector<std::string>{"pvsim_apf: dropped: 1 outstanding, 1 completed (disable)"});
      CHECK(r.apf->queued(0) == 0);
      CHECK_FALSE(r.apf->has_done(0));
      CHECK(r.apf->gfn_table(0).size() == 0);
      CHECK(r.apf->counters(0).dropped == 2);
      r.apf->check_completion(0, Tick(4));
      r.apf->complete(0, b.token, Tick(5));  // its fetch finishes anyway: ignored
      r.apf->check_completion(0, Tick(6));
      CHECK(r.host.take().empty());
      CHECK(r.line_count() == before + 1);
      CHECK(r.apf->counters(0).ignored == 1);
      // Re-enable: a fresh wake-all, delivered.
      enable();
      CHECK(r.apf->counters(0).wake_alls == 2);
      r.apf->check_completion(0, Tick(7));
      if (cfg.abi == AbiProfile::Modern) CHECK(r.u32(kArea + 4) == 0xffffffffu);
      CHECK(r.host.count(cfg.abi == AbiProfile::Modern ? "irq" : "pf") == 1);
    }
  }
}

TEST_CASE("modern: page-ready held while the token slot is busy, once per state, then ACKed",
          "[async_pf]") {
  Rig r(modern());
  r.enable_modern(0);
  r.apf->check_completion(0, Tick(0));  // wake-all delivered; the guest has not consumed it
  r.host.take();
  const AsyncPf::FaultResult f = r.apf->on_fault(0, Tick(1), 0x6000, user());
  REQUIRE(f.kind == AsyncPf::FaultKind::Injected);
  size_t before = r.line_count();
  r.apf->complete(0, f.token, Tick(2));
  // A page-ready awaits its ACK: the request is raised without present_queued's kick;
  // only the completion's own wake-up of a blocked vCPU (__kvm_vcpu_wake_up) remains.
  CHECK(r.host.take() == std::vector<FakeHost::Call>{{"ready", 0, 0}, {"kick", 0, 0}});
  CHECK(r.bodies(before) == std::vector<std::string>{
                                "pvsim_apf: held: page-ready awaiting ACK, vCPU not kicked",
                                "kvm_async_pf_completed: gva 0x6000 address 0x7f0000006000"});
  before = r.line_count();
  for (int entry = 0; entry < 5; ++entry) r.apf->check_completion(0, Tick(3 + entry));
  CHECK(r.bodies(before) ==
        std::vector<std::string>{"pvsim_apf: held: token slot busy (0xffffffff)"});
  CHECK(r.host.calls.empty());
  CHECK(r.apf->has_done(0));
  // The guest zeroes the slot and ACKs: the WRMSR itself delivers.
  r.set_u32(kArea + 4, 0);
  before = r.line_count();
  REQUIRE(r.wr(0, kAck, 1) == Ok);
  CHECK(r.host.take() == std::vector<FakeHost::Call>{{"irq", 0, kVec}, {"wake", 0, 0}});
  CHECK(r.u32(kArea + 4) == f.token);
  CHECK(r.bodies(before) ==
        std::vector<std::string>{"kvm_async_pf_ready: token 0x1000 gva 0x6000"});
  CHECK_FALSE(r.apf->has_done(0));

  // A different busy value is a new state; a slot zeroed without an ACK is enough for
  // KVM's dequeue check (pageready_pending only suppresses the kick).
  const AsyncPf::FaultResult g = r.apf->on_fault(0, Tick(20), 0x7000, user());
  r.apf->complete(0, g.token, Tick(21));
  r.set_u32(kArea + 4, 0x1234);
  before = r.line_count();
  r.apf->check_completion(0, Tick(22));
  r.apf->check_completion(0, Tick(23));
  CHECK(r.bodies(before) == std::vector<std::string>{"pvsim_apf: held: token slot busy (0x1234)"});
  r.set_u32(kArea + 4, 0);
  r.host.take();
  r.apf->check_completion(0, Tick(24));
  CHECK(r.host.take() == std::vector<FakeHost::Call>{{"irq", 0, kVec}, {"wake", 0, 0}});
  CHECK(r.u32(kArea + 4) == g.token);
}

TEST_CASE("modern: a wake-all while the LAPIC is disabled waits for the SVR enable", "[async_pf]") {
  Rig r(modern());
  r.host.lapic_on[0] = false;
  r.enable_modern(0);
  r.host.take();
  const size_t before = r.line_count();
  for (int entry = 0; entry < 3; ++entry) r.apf->check_completion(0, Tick(entry));
  CHECK(r.bodies(before) == std::vector<std::string>{"pvsim_apf: held: LAPIC disabled"});
  CHECK(r.host.calls.empty());
  CHECK(r.u32(kArea + 4) == 0);
  CHECK(r.apf->has_done(0));
  CHECK(r.apf->queued(0) == 1);
  // SVR write with the enable bit: KVM_REQ_APF_READY; the next entry delivers.
  r.host.lapic_on[0] = true;
  r.apf->on_lapic_sw_enable(0);
  CHECK(r.host.take() == std::vector<FakeHost::Call>{{"ready", 0, 0}});
  r.apf->check_completion(0, Tick(10));
  CHECK(r.host.take() == std::vector<FakeHost::Call>{{"irq", 0, kVec}, {"wake", 0, 0}});
  CHECK(r.u32(kArea + 4) == 0xffffffffu);
  CHECK(r.apf->queued(0) == 0);
}

TEST_CASE("orig: held while interrupts are blocked, one page-ready per completion check",
          "[async_pf]") {
  Rig r(orig());
  REQUIRE(r.wr(0, kEn, kArea | 1) == Ok);
  r.apf->check_completion(0, Tick(0));  // wake-all
  r.set_u32(kArea, 0);
  const AsyncPf::FaultResult a = r.apf->on_fault(0, Tick(1), 0x6000, user());
  const AsyncPf::FaultResult b = r.apf->on_fault(0, Tick(2), 0x7000, user());
  r.apf->complete(0, a.token, Tick(3));
  r.apf->complete(0, b.token, Tick(4));
  r.host.take();
  r.host.can_inject[0] = false;
  const size_t before = r.line_count();
  for (int entry = 0; entry < 4; ++entry) r.apf->check_completion(0, Tick(5 + entry));
  CHECK(r.bodies(before) == std::vector<std::string>{"pvsim_apf: held: interrupts not allowed"});
  // Nothing injected; the poll is re-armed at every check (3.0 polled every loop pass).
  CHECK(r.host.take() == std::vector<FakeHost::Call>(4, FakeHost::Call{"ready", 0, 0}));
  r.host.can_inject[0] = true;
  r.apf->check_completion(0, Tick(10));
  CHECK(r.host.take() == std::vector<FakeHost::Call>{{"pf", 0, a.token}, {"ready", 0, 0}});
  CHECK(r.apf->done_count(0) == 1);
  r.apf->check_completion(0, Tick(11));
  CHECK(r.host.take() == std::vector<FakeHost::Call>{{"pf", 0, b.token}});
  CHECK(r.apf->queued(0) == 0);
}

TEST_CASE("reset clears MSRs, queue, table and halt without delivering anything", "[async_pf]") {
  for (AsyncPfConfig cfg : {modern(), orig()}) {
    INFO(name(cfg.abi));
    Rig r(cfg);
    if (cfg.abi == AbiProfile::Modern) r.enable_modern(0);
    else REQUIRE(r.wr(0, kEn, kArea | 1) == Ok);
    const AsyncPf::FaultResult a = r.apf->on_fault(0, Tick(1), 0x6000, user());
    const AsyncPf::FaultResult h = r.apf->on_fault(0, Tick(2), 0x7000, kernel());
    REQUIRE(h.kind == AsyncPf::FaultKind::Halt);
    r.apf->complete(0, a.token, Tick(3));
    r.host.take();
    const size_t before = r.line_count();
    r.apf->reset(0);
    CHECK(r.bodies(before) ==
          std::vector<std::string>{"pvsim_apf: dropped: 1 outstanding, 2 completed (reset)"});
    CHECK(r.rd_ok(0, kEn) == 0);
    if (cfg.abi == AbiProfile::Modern) {
      CHECK(r.rd_ok(0, kInt) == 0);
      CHECK(r.apf->vector(0) == kVec);  // kvm_vcpu_reset leaves apf.vec alone
    }
    CHECK_FALSE(r.apf->halted(0));
    CHECK(r.apf->queued(0) == 0);
    CHECK_FALSE(r.apf->has_done(0));
    CHECK(r.apf->gfn_table(0).size() == 0);
    r.apf->complete(0, h.token, Tick(4));
    r.apf->check_completion(0, Tick(5));
    CHECK(r.host.calls.empty());
    CHECK(r.line_count() == before + 1);
    // The token counter survives (KVM never resets apf.id).
    CHECK(r.apf->token_counter(0) == (cfg.abi == AbiProfile::Modern ? 3u : 2u));
  }
}

TEST_CASE("paging changes: modern re-checks on enable, orig drops the queue on any toggle",
          "[async_pf]") {
  {
    Rig r(modern());
    r.apf->on_paging_enabled(0);
    CHECK(r.host.take().empty());  // async PF off: no request (kvm_post_set_cr0)
    r.enable_modern(0);
    r.consume_wake_all_modern(0);
    const AsyncPf::FaultResult a = r.apf->on_fault(0, Tick(1), 0x6000, user());
    r.apf->on_paging_changed(0, false);  // paging off: the queue survives (ab4e41eb9fab)
    CHECK(r.apf->outstanding(0) == 1);
    r.apf->complete(0, a.token, Tick(2));
    r.host.take();
    r.apf->on_paging_enabled(0);
    CHECK(r.host.take() == std::vector<FakeHost::Call>{{"ready", 0, 0}});
    r.apf->check_completion(0, Tick(3));
    CHECK(r.host.count("irq") == 1);
  }
  {
    Rig r(orig());
    REQUIRE(r.wr(0, kEn, kArea | 1) == Ok);
    r.apf->check_completion(0, Tick(0));
    const AsyncPf::FaultResult a = r.apf->on_fault(0, Tick(1), 0x6000, user());
    r.apf->on_paging_changed(0, false);
    CHECK(r.apf->queued(0) == 0);
    CHECK(r.apf->gfn_table(0).size() == 0);
    r.apf->complete(0, a.token, Tick(2));
    CHECK(r.apf->counters(0).ignored == 1);
    CHECK(r.apf->enabled(0));  // the MSR is untouched
  }
}

TEST_CASE("modern: an area outside RAM halts every fault and holds every page-ready", "[async_pf]") {
  Rig r(modern());
  REQUIRE(r.wr(0, kInt, kVec) == Ok);
  CHECK(r.wr(0, kEn, kRam | kOn) == Gp);
  CHECK(r.apf->enabled(0));  // stored despite the #GP
  CHECK(r.apf->counters(0).wake_alls == 0);
  const size_t before = r.line_count();
  const AsyncPf::FaultResult f = r.apf->on_fault(0, Tick(1), 0x6000, user());
  CHECK(f.kind == AsyncPf::FaultKind::Halt);
  r.apf->complete(0, f.token, Tick(2));
  r.apf->check_completion(0, Tick(3));
  r.apf->check_completion(0, Tick(4));
  CHECK(r.bodies(before) ==
        std::vector<std::string>{"kvm_try_async_get_page: gva = 0x6000, gfn = 0x6",
                                 "kvm_async_pf_not_present: token 0x1000 gva 0x6000",
                                 "pvsim_apf: halt: token 0x1000 gfn 0x6 (not-present write failed)",
                                 "kvm_async_pf_completed: gva 0x6000 address 0x7f0000006000",
                                 "pvsim_apf: held: token slot not in RAM"});
  CHECK(r.apf->has_done(0));
}

TEST_CASE("per-vCPU state: one vCPU's work and MSRs do not leak into another's", "[async_pf]") {
  Rig r(modern(), 2);
  r.enable_modern(0);
  r.consume_wake_all_modern(0);
  const AsyncPf::FaultResult f = r.apf->on_fault(0, Tick(1), 0x6000, user());
  CHECK(r.rd_ok(1, kEn) == 0);
  CHECK(r.apf->on_fault(1, Tick(1), 0x6000, user()).kind == AsyncPf::FaultKind::Halt);  // not a repeat
  r.apf->complete(1, f.token, Tick(2));  // not vCPU 1's token
  CHECK(r.apf->counters(1).ignored == 1);
  CHECK(r.apf->outstanding(0) == 1);
  r.apf->complete(0, f.token, Tick(3));
  CHECK(r.host.take() == std::vector<FakeHost::Call>{{"ready", 0, 0}, {"kick", 0, 0}, {"kick", 0, 0}});
}

// ---------------------------------------------------------------------------------------
// Snapshots (pvmsr/README.md §1.3)

namespace {

// Everything AsyncPf lets a test see of vCPU i, one line.
std::string apf_state(Rig& r, unsigned i) {
  std::ostringstream os;
  const AsyncPf& a = *r.apf;
  const AsyncPf::Counters& c = a.counters(i);
  os << "vcpu " << i << std::hex << " en 0x" << a.msr_en(i) << " int 0x" << a.msr_int(i) << " vec 0x"
     << int(a.vector(i)) << std::dec << " enabled " << a.enabled(i) << " queued " << a.queued(i)
     << " outstanding " << a.outstanding(i) << " done " << a.done_count(i) << " pageready "
     << a.pageready_pending(i) << " halted " << a.halted(i) << " id " << a.token_counter(i)
     << " counters " << c.sync << "/" << c.sync_limit << "/" << c.repeated << "/" << c.injected << "/"
     << c.halted << "/" << c.completed << "/" << c.ignored << "/" << c.ready_delivered << "/"
     << c.ready_silent << "/" << c.wake_alls << "/" << c.dropped << " gfns";
  for (unsigned k = 0; k < ApfGfnTable::kSlots; ++k)
    if (a.gfn_table(i).slot(k) != ApfGfnTable::kEmpty) os << " " << k << ":" << a.gfn_table(i).slot(k);
  return os.str() + "\n";
}

std::string apf_calls(FakeHost& host) {
  std::ostringstream os;
  for (const FakeHost::Call& c : host.take()) os << c << " ";
  return os.str() + "\n";
}

std::string fault_str(const AsyncPf::FaultResult& f) {
  return fmt::format("fault {} token 0x{:x}\n", static_cast<int>(f.kind), f.token);
}

}  // namespace

TEST_CASE("async PF snapshot: restore, then everything goes as in an untouched copy",
          "[async_pf][snapshot]") {
  constexpr uint64_t kArea2 = 0x2040, kArea3 = 0x3000, kOutsideRam = kRam + 0x1000;
  for (AbiProfile abi : {AbiProfile::Modern, AbiProfile::Orig}) {
    INFO(name(abi));
    const bool modern_abi = abi == AbiProfile::Modern;
    const AsyncPfConfig cfg = modern_abi ? modern() : orig();
    // The slot or word the guest zeroes once it has read a page-ready.
    const uint64_t ready_word = modern_abi ? kArea + 4 : kArea;
    uint32_t t1 = 0, t2 = 0;
    // Saved with: vCPU 0 halted on a second fault, one work outstanding and one completed
    // whose page-ready is held (modern: the token slot busy with 0x77; orig: interrupts
    // blocked); vCPU 1 enabled with its wake-all not yet delivered.
    auto make = [&] {
      auto r = std::make_unique<Rig>(cfg, 2);
      if (modern_abi) {
        r->enable_modern(0);
        r->consume_wake_all_modern(0);
        r->enable_modern(1, kArea2);
      } else {
        REQUIRE(r->wr(0, kEn, kArea | 1) == MsrStatus::Ok);  // user-only
        r->apf->check_completion(0, Tick(0));
        r->set_u32(kArea, 0);
        REQUIRE(r->wr(1, kEn, kArea2 | 1 | AsyncPf::kSendAlways) == MsrStatus::Ok);
      }
      const AsyncPf::FaultResult f1 = r->apf->on_fault(0, Tick(1000), 0x5123, user());
      REQUIRE(f1.kind == AsyncPf::FaultKind::Injected);
      r->set_u32(kArea, 0);
      const AsyncPf::FaultResult f2 = r->apf->on_fault(0, Tick(2000), 0x6123, kernel());
      REQUIRE(f2.kind == AsyncPf::FaultKind::Halt);
      t1 = f1.token;
      t2 = f2.token;
      r->apf->complete(0, t1, Tick(3000));
      if (modern_abi)
        r->set_u32(kArea + 4, 0x77);
      else
        r->host.can_inject[0] = false;
      r->apf->check_completion(0, Tick(4000));
      r->host.take();
      return r;
    };
    // Every field moves: both page-readies delivered and acknowledged, new faults, a new
    // vector (modern), a re-enable elsewhere with SEND_ALWAYS, orig's CR0.PG toggle, and
    // last an enable whose area is outside RAM (the cache is unusable, the value stays).
    auto mutate = [&](Rig& r) {
      r.advance_all(10'000);
      r.host.can_inject[0] = true;
      r.set_u32(ready_word, 0);
      r.apf->check_completion(0, Tick(10'000));
      r.set_u32(ready_word, 0);
      r.apf->complete(0, t2, Tick(11'000));
      if (modern_abi) {
        REQUIRE(r.wr(0, kAck, 1) == MsrStatus::Ok);
        REQUIRE(r.wr(0, kInt, 0xed) == MsrStatus::Ok);
      } else {
        r.apf->check_completion(0, Tick(11'500));
        r.apf->on_paging_changed(0, false);
      }
      r.apf->on_fault(0, Tick(12'000), 0x7123, user());
      REQUIRE(r.wr(0, kEn, kArea3 | (modern_abi ? kOn : 1) | AsyncPf::kSendAlways) == MsrStatus::Ok);
      r.apf->check_completion(0, Tick(13'000));
      r.apf->on_fault(0, Tick(14'000), 0x8123, kernel());
      r.apf->check_completion(1, Tick(15'000));
      CHECK(r.wr(0, kEn, kOutsideRam | (modern_abi ? kOn : 1)) == MsrStatus::Gp);
    };
    // The held page-ready is checked again (no new "held" line), then released; the halted
    // work completes; CPL-0 faults, a repeat, a user fault and its page-ready; vCPU 1's
    // wake-all; orig's CR0.PG toggle.
    auto branch = [&](Rig& r, uint64_t base) {
      const size_t mark = r.text.str().size();
      r.host.take();  // the stand-in platform's record of the calls before the branch
      std::ostringstream log;
      log << apf_state(r, 0) << apf_state(r, 1);
      r.advance_all(base);
      const Tick t(base);
      r.host.can_inject[0] = false;
      r.apf->check_completion(0, t);
      r.host.can_inject[0] = true;
      r.set_u32(kArea + 4, 0);
      r.apf->check_completion(0, t + 1);
      log << "word 0x" << std::hex << r.u32(ready_word) << std::dec << "\n";
      r.set_u32(ready_word, 0);
      if (modern_abi) log << int(r.wr(0, kAck, 1)) << "\n";
      r.apf->complete(0, t2, t + 2);
      r.apf->check_completion(0, t + 3);
      log << fault_str(r.apf->on_fault(0, t + 4, 0x9123, kernel()));
      log << fault_str(r.apf->on_fault(0, t + 5, 0x9123, kernel()));
      const AsyncPf::FaultResult u = r.apf->on_fault(0, t + 6, 0xa123, user());
      log << fault_str(u);
      r.set_u32(kArea, 0);
      r.apf->complete(0, u.token, t + 7);
      r.set_u32(kArea + 4, 0);
      r.apf->check_completion(0, t + 8);
      r.apf->check_completion(1, t + 9);
      r.apf->on_paging_changed(0, true);
      log << apf_state(r, 0) << apf_state(r, 1) << apf_calls(r.host);
      log << std::hex << r.rd_ok(0, kEn) << " " << r.rd_ok(1, kEn) << std::dec << "\n";
      return log.str() + r.text.str().substr(mark);
    };
    pvsim::test::check_snapshot(make, mutate, branch, {20'000, 50'000});
  }
}
