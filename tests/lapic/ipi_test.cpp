// ICR -> IpiRequest decoding (§11.6.1) and destination matching (§11.6.2, §11.12.9-10).
#include <catch2/catch.hpp>

#include "lapic_harness.h"

using namespace pvsim;
using namespace pvsim::lapic;
using pvsim::test::Harness;

TEST_CASE("xAPIC ICR: high write stores, low write sends", "[lapic][ipi]") {
  Harness h(LapicConfig{.apic_id = 2});
  h.wr(kIcrHigh, 0x05000000);
  CHECK(h.sink.ipis.empty());
  h.wr(kIcrLow, 0x4041);  // fixed, physical, assert, edge, vector 0x41
  REQUIRE(h.sink.ipis.size() == 1);
  const IpiRequest& r = h.sink.ipis[0];
  CHECK(r.source == 2);
  CHECK(r.vector == 0x41);
  CHECK(r.delivery == IpiDelivery::Fixed);
  CHECK(r.dest_mode == DestMode::Physical);
  CHECK(r.shorthand == Shorthand::None);
  CHECK(r.trigger == TriggerMode::Edge);
  CHECK(r.level_assert);
  CHECK(r.destination == 5);
  CHECK_FALSE(r.x2apic);
  CHECK((h.rd(kIcrLow) & (1u << 12)) == 0);  // delivery status idle
  CHECK(h.rd(kIcrLow) == 0x4041);
}

TEST_CASE("ICR delivery modes, shorthands and INIT de-assert", "[lapic][ipi]") {
  Harness h;
  h.wr(kIcrHigh, 0xff000000);
  h.wr(kIcrLow, 0x000c4500);  // INIT, all excluding self
  h.wr(kIcrLow, 0x00084608);  // SIPI vector 8 (page 0x8000), all including self
  h.wr(kIcrLow, 0x00044400);  // NMI to self (vector ignored, 0 is legal)
  h.wr(kIcrLow, 0x00008500);  // INIT level de-assert: trigger level, level bit clear
  h.wr(kIcrLow, 0x00004951);  // lowest priority, logical
  REQUIRE(h.sink.ipis.size() == 5);
  CHECK(h.sink.ipis[0].delivery == IpiDelivery::Init);
  CHECK(h.sink.ipis[0].shorthand == Shorthand::AllExcludingSelf);
  CHECK(h.sink.ipis[1].delivery == IpiDelivery::StartUp);
  CHECK(h.sink.ipis[1].vector == 8);
  CHECK(h.sink.ipis[1].shorthand == Shorthand::AllIncludingSelf);
  CHECK(h.sink.ipis[2].delivery == IpiDelivery::Nmi);
  CHECK(h.sink.ipis[2].shorthand == Shorthand::Self);
  CHECK(h.sink.ipis[3].delivery == IpiDelivery::Init);
  CHECK(h.sink.ipis[3].trigger == TriggerMode::Level);
  CHECK_FALSE(h.sink.ipis[3].level_assert);
  CHECK(h.sink.ipis[4].delivery == IpiDelivery::LowestPriority);
  CHECK(h.sink.ipis[4].dest_mode == DestMode::Logical);
  CHECK(h.sink.ipis[4].destination == 0xff);
}

TEST_CASE("ICR errors: illegal vector and reserved delivery modes are not sent",
          "[lapic][ipi][esr]") {
  Harness h;
  h.wr(kIcrLow, 0x0000400f);  // fixed vector 15
  h.wr(kIcrLow, 0x00004330);  // delivery mode 011b reserved
  h.wr(kIcrLow, 0x00004730);  // delivery mode 111b reserved
  CHECK(h.sink.ipis.empty());
  h.wr(kEsr, 0);
  CHECK(h.rd(kEsr) == kEsrSendIllegalVector);
}

TEST_CASE("x2APIC ICR is one 64-bit MSR with a 32-bit destination", "[lapic][ipi][x2apic]") {
  Harness h(LapicConfig{.apic_id = 0x1234});
  h.to_x2apic();
  REQUIRE(h.apic.msr_write(0x830, (0xabcdef01ull << 32) | 0x4822) == MsrStatus::Ok);
  REQUIRE(h.sink.ipis.size() == 1);
  CHECK(h.sink.ipis[0].x2apic);
  CHECK(h.sink.ipis[0].destination == 0xabcdef01u);
  CHECK(h.sink.ipis[0].dest_mode == DestMode::Logical);
  CHECK(h.sink.ipis[0].source == 0x1234);
  CHECK(h.msr(0x830) == ((0xabcdef01ull << 32) | 0x4822));
  CHECK(h.apic.msr_write(0x830, 0x1000 | 0x4022) == MsrStatus::Gp);    // bit 12 reserved
  CHECK(h.apic.msr_write(0x830, 0x100000 | 0x4022) == MsrStatus::Gp);  // bit 20 reserved
  CHECK(h.sink.ipis.size() == 1);
  CHECK(h.apic.msr_write(0x831, 0) == MsrStatus::Gp);
}

namespace {
IpiRequest req(uint32_t dest, DestMode m, bool x2 = false, Shorthand sh = Shorthand::None,
               uint32_t src = 0) {
  IpiRequest r;
  r.destination = dest;
  r.dest_mode = m;
  r.x2apic = x2;
  r.shorthand = sh;
  r.source = src;
  r.vector = 0x40;
  return r;
}
}  // namespace

TEST_CASE("matches_destination: physical and shorthands", "[lapic][dest]") {
  const ApicDestinationInfo a3{.apic_id = 3, .ldr = 0, .dfr = ~0u, .x2apic = false};
  CHECK(matches_destination(req(3, DestMode::Physical), a3));
  CHECK_FALSE(matches_destination(req(4, DestMode::Physical), a3));
  CHECK(matches_destination(req(0xff, DestMode::Physical), a3));
  CHECK(matches_destination(req(4, DestMode::Physical, false, Shorthand::Self, 3), a3));
  CHECK_FALSE(matches_destination(req(3, DestMode::Physical, false, Shorthand::Self, 4), a3));
  CHECK(matches_destination(req(0, DestMode::Physical, false, Shorthand::AllIncludingSelf, 3), a3));
  CHECK_FALSE(
      matches_destination(req(3, DestMode::Physical, false, Shorthand::AllExcludingSelf, 3), a3));
  CHECK(matches_destination(req(0, DestMode::Physical, false, Shorthand::AllExcludingSelf, 1), a3));
  const ApicDestinationInfo x{.apic_id = 0x100, .ldr = 0, .dfr = 0, .x2apic = true};
  CHECK(matches_destination(req(0x100, DestMode::Physical, true), x));
  CHECK_FALSE(
      matches_destination(req(0xff, DestMode::Physical, true), x));  // not broadcast in x2APIC
  CHECK(matches_destination(req(0xffffffff, DestMode::Physical, true), x));
}

TEST_CASE("matches_destination: logical flat, cluster, x2APIC cluster", "[lapic][dest]") {
  const ApicDestinationInfo flat{
      .apic_id = 1, .ldr = 0x04000000, .dfr = 0xffffffff, .x2apic = false};
  CHECK(matches_destination(req(0x04, DestMode::Logical), flat));
  CHECK(matches_destination(req(0x0c, DestMode::Logical), flat));
  CHECK_FALSE(matches_destination(req(0x0b, DestMode::Logical), flat));
  CHECK(matches_destination(req(0xff, DestMode::Logical), flat));

  const ApicDestinationInfo cl{.apic_id = 1, .ldr = 0x32000000, .dfr = 0x0fffffff, .x2apic = false};
  CHECK(matches_destination(req(0x32, DestMode::Logical), cl));
  CHECK(matches_destination(req(0x3f, DestMode::Logical), cl));
  CHECK_FALSE(matches_destination(req(0x31, DestMode::Logical), cl));  // member bit differs
  CHECK_FALSE(matches_destination(req(0x22, DestMode::Logical), cl));  // other cluster
  CHECK(matches_destination(req(0xff, DestMode::Logical), cl));

  // x2APIC LDR as the APIC derives it for ID 0x21: cluster 2, member bit 1.
  Harness h(LapicConfig{.apic_id = 0x21});
  h.to_x2apic();
  const ApicDestinationInfo xi = h.apic.destination_info();
  CHECK(xi.x2apic);
  CHECK(xi.apic_id == 0x21);
  CHECK(matches_destination(req(0x00020002, DestMode::Logical, true), xi));
  CHECK(matches_destination(req(0x0002ffff, DestMode::Logical, true), xi));
  CHECK_FALSE(matches_destination(req(0x00020001, DestMode::Logical, true), xi));
  CHECK_FALSE(matches_destination(req(0x00010002, DestMode::Logical, true), xi));
  CHECK(matches_destination(req(0xffffffff, DestMode::Logical, true), xi));
}
