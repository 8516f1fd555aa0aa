// devices/apic_bus.h route_ipi: destination matching over many APICs (§11.6.2,
// shorthands §11.6.1, x2APIC §11.12.9-10), who takes which delivery mode when
// software-disabled (§11.4.7.2), and KVM's lowest-priority choice (vector hashing).
#include <catch2/catch.hpp>
#include <vector>

#include "devices/apic_bus.h"
#include "lapic_harness.h"

using namespace pvsim;
using namespace pvsim::lapic;
using pvsim::test::Harness;
using Idx = std::vector<unsigned>;

namespace {

ApicTarget xapic(uint32_t id, uint32_t logical = 0, bool flat = true, bool enabled = true) {
  ApicTarget t;
  t.info.apic_id = id;
  t.info.ldr = logical << 24;
  t.info.dfr = flat ? 0xffffffffu : 0x0fffffffu;
  t.info.x2apic = false;
  t.enabled = enabled;
  return t;
}

ApicTarget x2apic(uint32_t id) {
  ApicTarget t;
  t.info.apic_id = id;
  t.info.ldr = ((id >> 4) << 16) | (1u << (id & 0xf));  // §11.12.10.2
  t.info.dfr = ~0u;
  t.info.x2apic = true;
  return t;
}

// Four xAPICs, IDs 0-3, flat logical IDs 1 << index (how Linux assigns them).
std::vector<ApicTarget> four_flat() {
  return {xapic(0, 0x01), xapic(1, 0x02), xapic(2, 0x04), xapic(3, 0x08)};
}

IpiRequest req(IpiDelivery d, uint32_t dest, DestMode m = DestMode::Physical, uint8_t vector = 0x40,
               Shorthand sh = Shorthand::None, uint32_t source = 0, bool x2 = false) {
  IpiRequest r;
  r.delivery = d;
  r.destination = dest;
  r.dest_mode = m;
  r.vector = vector;
  r.shorthand = sh;
  r.source = source;
  r.x2apic = x2;
  return r;
}

}  // namespace

TEST_CASE("route_ipi: xAPIC physical and broadcast", "[lapic][bus]") {
  const auto t = four_flat();
  CHECK(route_ipi(req(IpiDelivery::Fixed, 2), t) == Idx{2});
  CHECK(route_ipi(req(IpiDelivery::Fixed, 7), t) == Idx{});
  CHECK(route_ipi(req(IpiDelivery::Fixed, 0xff), t) == Idx{0, 1, 2, 3});
  CHECK(route_ipi(req(IpiDelivery::Nmi, 0xff), t) == Idx{0, 1, 2, 3});
  // Only the low 8 bits are the xAPIC destination.
  CHECK(route_ipi(req(IpiDelivery::Fixed, 0x102), t) == Idx{2});
}

TEST_CASE("route_ipi: xAPIC logical flat", "[lapic][bus]") {
  const auto t = four_flat();
  CHECK(route_ipi(req(IpiDelivery::Fixed, 0x05, DestMode::Logical), t) == Idx{0, 2});
  CHECK(route_ipi(req(IpiDelivery::Fixed, 0x08, DestMode::Logical), t) == Idx{3});
  CHECK(route_ipi(req(IpiDelivery::Fixed, 0x30, DestMode::Logical), t) == Idx{});
  CHECK(route_ipi(req(IpiDelivery::Fixed, 0xff, DestMode::Logical), t) == Idx{0, 1, 2, 3});
}

TEST_CASE("route_ipi: xAPIC logical cluster", "[lapic][bus]") {
  // Cluster 1 members 0 and 1, cluster 2 member 0, cluster 1 member 3.
  const std::vector<ApicTarget> t = {xapic(0, 0x11, false), xapic(1, 0x12, false),
                                     xapic(2, 0x21, false), xapic(3, 0x18, false)};
  CHECK(route_ipi(req(IpiDelivery::Fixed, 0x13, DestMode::Logical), t) == Idx{0, 1});
  CHECK(route_ipi(req(IpiDelivery::Fixed, 0x1f, DestMode::Logical), t) == Idx{0, 1, 3});
  CHECK(route_ipi(req(IpiDelivery::Fixed, 0x21, DestMode::Logical), t) == Idx{2});
  CHECK(route_ipi(req(IpiDelivery::Fixed, 0x22, DestMode::Logical), t) == Idx{});
  CHECK(route_ipi(req(IpiDelivery::Fixed, 0x31, DestMode::Logical), t) == Idx{});
}

TEST_CASE("route_ipi: x2APIC physical, logical cluster and broadcast", "[lapic][bus][x2apic]") {
  std::vector<ApicTarget> t;
  for (uint32_t id = 0; id < 20; ++id) t.push_back(x2apic(id));
  const auto r = [&](uint32_t dest, DestMode m) {
    return route_ipi(req(IpiDelivery::Fixed, dest, m, 0x40, Shorthand::None, 0, true), t);
  };
  CHECK(r(17, DestMode::Physical) == Idx{17});
  CHECK(r(0xff, DestMode::Physical) == Idx{});  // not a broadcast in x2APIC format
  CHECK(r(0xffffffffu, DestMode::Physical).size() == 20);
  CHECK(r((1u << 16) | 0x3, DestMode::Logical) == Idx{16, 17});
  CHECK(r(0x8001, DestMode::Logical) == Idx{0, 15});
  CHECK(r((2u << 16) | 0x1, DestMode::Logical) == Idx{});
  CHECK(r(0xffffffffu, DestMode::Logical).size() == 20);
}

TEST_CASE("route_ipi: shorthands ignore the destination field", "[lapic][bus]") {
  const auto t = four_flat();
  CHECK(route_ipi(req(IpiDelivery::Fixed, 3, DestMode::Physical, 0x40, Shorthand::Self, 2), t) ==
        Idx{2});
  CHECK(route_ipi(req(IpiDelivery::Fixed, 3, DestMode::Physical, 0x40,
                      Shorthand::AllIncludingSelf, 2),
                  t) == Idx{0, 1, 2, 3});
  CHECK(route_ipi(req(IpiDelivery::Init, 3, DestMode::Logical, 0, Shorthand::AllExcludingSelf, 2),
                  t) == Idx{0, 1, 3});
  CHECK(route_ipi(req(IpiDelivery::StartUp, 0, DestMode::Physical, 0x08,
                      Shorthand::AllExcludingSelf, 0),
                  t) == Idx{1, 2, 3});
}

TEST_CASE("route_ipi: software-disabled APICs take NMI, INIT, SIPI and SMI only",
          "[lapic][bus][disabled]") {
  auto t = four_flat();
  t[1].enabled = false;
  t[3].enabled = false;
  CHECK(route_ipi(req(IpiDelivery::Fixed, 0xff), t) == Idx{0, 2});
  CHECK(route_ipi(req(IpiDelivery::Fixed, 1), t) == Idx{});
  CHECK(route_ipi(req(IpiDelivery::Fixed, 0x0a, DestMode::Logical), t) == Idx{});
  for (const IpiDelivery d :
       {IpiDelivery::Nmi, IpiDelivery::Init, IpiDelivery::StartUp, IpiDelivery::Smi}) {
    CAPTURE(static_cast<int>(d));
    CHECK(route_ipi(req(d, 0xff), t) == Idx{0, 1, 2, 3});
    CHECK(route_ipi(req(d, 1), t) == Idx{1});
  }
  CHECK(route_ipi(req(IpiDelivery::Reserved, 0xff), t) == Idx{});
}

TEST_CASE("route_ipi: a globally disabled APIC receives nothing", "[lapic][bus][disabled]") {
  auto t = four_flat();
  t[2].present = false;
  CHECK(route_ipi(req(IpiDelivery::Fixed, 0xff), t) == Idx{0, 1, 3});
  CHECK(route_ipi(req(IpiDelivery::Init, 0xff), t) == Idx{0, 1, 3});
  CHECK(route_ipi(req(IpiDelivery::Nmi, 2), t) == Idx{});
}

TEST_CASE("route_ipi: lowest priority is KVM's vector hashing", "[lapic][bus][lowest]") {
  auto t = four_flat();
  const auto lp = [&](uint32_t dest, uint8_t vector) {
    return route_ipi(req(IpiDelivery::LowestPriority, dest, DestMode::Logical, vector), t);
  };
  // Four candidates: candidate (vector % 4) in index order.
  CHECK(lp(0x0f, 0x40) == Idx{0});
  CHECK(lp(0x0f, 0x41) == Idx{1});
  CHECK(lp(0x0f, 0x42) == Idx{2});
  CHECK(lp(0x0f, 0x43) == Idx{3});
  // Three candidates (1, 2, 3): 0x41 = 65, 65 % 3 = 2 -> the third, index 3.
  CHECK(lp(0x0e, 0x41) == Idx{3});
  CHECK(lp(0x0e, 0x42) == Idx{1});

  SECTION("ties and priorities: PPR is not consulted") {
    for (auto& x : t) x.ppr = 0x20;  // all equal
    CHECK(lp(0x0f, 0x41) == Idx{1});
    t[1].ppr = 0xf0;  // the hashed target is now the busiest; KVM still picks it
    t[3].ppr = 0x00;
    CHECK(lp(0x0f, 0x41) == Idx{1});
  }
  SECTION("software-disabled APICs are not candidates") {
    t[1].enabled = false;  // candidates 0, 2, 3: 65 % 3 = 2 -> index 3
    CHECK(lp(0x0f, 0x41) == Idx{3});
    CHECK(lp(0x02, 0x41) == Idx{});
  }
  SECTION("no match") { CHECK(lp(0x30, 0x41) == Idx{}); }
  SECTION("physical: the one addressed APIC") {
    CHECK(route_ipi(req(IpiDelivery::LowestPriority, 2, DestMode::Physical, 0x41), t) == Idx{2});
  }
  SECTION("xAPIC physical broadcast becomes fixed to all (KVM)") {
    t[0].enabled = false;
    CHECK(route_ipi(req(IpiDelivery::LowestPriority, 0xff, DestMode::Physical, 0x41), t) ==
          Idx{1, 2, 3});
  }
  SECTION("shorthands pick among the matching APICs") {
    CHECK(route_ipi(req(IpiDelivery::LowestPriority, 0, DestMode::Physical, 0x41,
                        Shorthand::AllExcludingSelf, 1),
                    t) == Idx{3});  // candidates 0, 2, 3
    CHECK(route_ipi(req(IpiDelivery::LowestPriority, 0xff, DestMode::Physical, 0x41,
                        Shorthand::Self, 1),
                    t) == Idx{1});
  }
}

TEST_CASE("route_ipi: x2APIC broadcast with lowest priority picks one", "[lapic][bus][lowest]") {
  std::vector<ApicTarget> t;
  for (uint32_t id = 0; id < 5; ++id) t.push_back(x2apic(id));
  const IpiRequest r = req(IpiDelivery::LowestPriority, 0xffffffffu, DestMode::Physical, 0x47,
                           Shorthand::None, 0, true);
  CHECK(route_ipi(r, t) == Idx{0x47 % 5});
}

TEST_CASE("apic_target and an end-to-end IPI between two LocalApics", "[lapic][bus]") {
  Harness a(LapicConfig{.apic_id = 0}), b(LapicConfig{.apic_id = 1});
  ApicTarget tb = apic_target(b.apic);
  CHECK(tb.info.apic_id == 1);
  CHECK_FALSE(tb.enabled);  // SVR 0xff after RESET
  CHECK(tb.present);
  b.enable_sw();
  b.wr(kTpr, 0x30);
  tb = apic_target(b.apic);
  CHECK(tb.enabled);
  CHECK(tb.ppr == 0x30);

  a.enable_sw();
  a.wr(kIcrHigh, 0x01000000);
  a.wr(kIcrLow, 0x4065);  // fixed vector 0x65 to APIC 1
  REQUIRE(a.sink.ipis.size() == 1);
  const std::vector<ApicTarget> targets = {apic_target(a.apic), apic_target(b.apic)};
  const Idx to = route_ipi(a.sink.ipis[0], targets);
  REQUIRE(to == Idx{1});
  CHECK(b.apic.receive_ipi(a.sink.ipis[0]) == IpiEffect::None);
  CHECK(b.apic.pending_vector() == uint8_t{0x65});

  REQUIRE(b.apic.set_apic_base(kDefaultBase) == MsrStatus::Ok);
  CHECK_FALSE(apic_target(b.apic).present);
}
