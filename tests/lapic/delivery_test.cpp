// INIT reset (§11.4.7.3), local LVT delivery (LINT0/1, error; §11.5.1, §11.5.3), delivery
// of routed IPIs (receive_ipi, §11.6.1 / §11.4.7.2), x2APIC SELF IPI (§11.12.11) and the
// derived current count in both modes (§11.5.4).
#include <catch2/catch.hpp>

#include "lapic_harness.h"

using namespace pvsim;
using namespace pvsim::lapic;
using pvsim::test::Harness;

namespace {
constexpr uint32_t kDivBy1 = 0xb;

IpiRequest ipi(IpiDelivery d, uint8_t vector = 0, TriggerMode t = TriggerMode::Edge,
               bool assert_level = true) {
  IpiRequest r;
  r.delivery = d;
  r.vector = vector;
  r.trigger = t;
  r.level_assert = assert_level;
  return r;
}
}  // namespace

// ---------------------------------------------------------------- INIT

TEST_CASE("init_reset: xAPIC keeps ID, base and mode, resets everything else",
          "[lapic][init]") {
  Harness h(LapicConfig{.apic_id = 2, .bsp = true});
  REQUIRE(h.apic.set_apic_base(0xfed00000ull | kBaseEnable) == MsrStatus::Ok);
  const uint64_t base = h.apic.apic_base();
  REQUIRE((base & kBaseBsp) != 0);
  h.enable_sw();
  h.wr(kId, 0x07000000);
  h.wr(kTpr, 0x30);
  h.wr(kLdr, 0x04000000);
  h.wr(kDfr, 0x0fffffff);
  h.wr(kLvtLint0, 0x700);
  h.wr(kLvtTimer, 0x20040);  // periodic, vector 0x40
  h.wr(kTimerDivide, kDivBy1);
  h.wr(kTimerInitial, 1000);
  h.wr(kIcrHigh, 0x01000000);
  h.wr(kIcrLow, 0x4050);
  h.apic.accept(0x80, TriggerMode::Level);
  h.apic.accept(0x90, TriggerMode::Edge);
  REQUIRE(h.apic.ack() == uint8_t{0x90});
  h.apic.accept(5, TriggerMode::Edge);  // ESR receive-illegal pending
  REQUIRE(h.apic.timer_armed());

  h.run_to(10);
  h.apic.init_reset();

  CHECK(h.apic.mode() == ApicMode::XApic);
  CHECK(h.apic.apic_base() == base);
  CHECK(h.rd(kId) == 0x07000000);  // the software-written xAPIC ID survives INIT
  CHECK(h.rd(kVersion) == kVersionValue);
  CHECK(h.rd(kTpr) == 0);
  CHECK(h.rd(kPpr) == 0);
  CHECK(h.rd(kLdr) == 0);
  CHECK(h.rd(kDfr) == 0xffffffffu);
  CHECK(h.rd(kSvr) == 0xff);
  CHECK_FALSE(h.apic.software_enabled());
  for (uint32_t i = 0; i < 8; ++i) {
    CHECK(h.rd(kIrr0 + 16 * i) == 0);
    CHECK(h.rd(kIsr0 + 16 * i) == 0);
    CHECK(h.rd(kTmr0 + 16 * i) == 0);
  }
  for (uint32_t off = kLvtTimer; off <= kLvtError; off += 16) CHECK(h.rd(off) == kLvtMasked);
  CHECK(h.rd(kLvtCmci) == kLvtMasked);
  CHECK(h.rd(kIcrLow) == 0);
  CHECK(h.rd(kIcrHigh) == 0);
  CHECK(h.rd(kTimerInitial) == 0);
  CHECK(h.rd(kTimerCurrent) == 0);
  CHECK(h.rd(kTimerDivide) == 0);
  CHECK_FALSE(h.apic.timer_armed());
  CHECK(h.events.empty());
  h.wr(kEsr, 0);
  CHECK(h.rd(kEsr) == 0);  // the pending error was discarded too
  CHECK_FALSE(h.apic.pending_vector());
}

TEST_CASE("init_reset: x2APIC stays x2APIC with its ID and derived LDR", "[lapic][init]") {
  Harness h(LapicConfig{.apic_id = 0x23});
  h.to_x2apic();
  REQUIRE(h.apic.msr_write(0x80f, 0x1ff) == MsrStatus::Ok);
  REQUIRE(h.apic.msr_write(0x832, 2u << kLvtTimerModeShift | 0x40) == MsrStatus::Ok);
  h.apic.set_tsc_deadline(5000);
  REQUIRE(h.apic.timer_armed());
  const uint64_t base = h.apic.apic_base();

  h.apic.init_reset();

  CHECK(h.apic.mode() == ApicMode::X2Apic);
  CHECK(h.apic.apic_base() == base);
  CHECK(h.msr(0x802) == 0x23);
  CHECK(h.msr(0x80d) == ((2u << 16) | (1u << 3)));  // cluster 2, member bit 3
  CHECK(h.msr(0x80f) == 0xff);
  CHECK(h.msr(0x832) == kLvtMasked);
  CHECK(h.apic.tsc_deadline() == 0);
  CHECK_FALSE(h.apic.timer_armed());
  CHECK(h.msr(0x830) == 0);
}

TEST_CASE("init_reset of a globally disabled APIC keeps it disabled", "[lapic][init]") {
  Harness h;
  REQUIRE(h.apic.set_apic_base(kDefaultBase) == MsrStatus::Ok);
  h.apic.init_reset();
  CHECK(h.apic.mode() == ApicMode::Disabled);
  CHECK(h.apic.apic_base() == kDefaultBase);
}

// ---------------------------------------------------------------- LINT0/1

TEST_CASE("LINT fixed delivery: edge and level", "[lapic][lvt]") {
  Harness h(LapicConfig{.apic_id = 4});
  h.enable_sw();
  h.wr(kLvtLint0, 0x31);
  h.apic.raise_lint(0);
  CHECK(h.apic.irr_bit(0x31));
  CHECK_FALSE(h.apic.tmr_bit(0x31));
  CHECK(h.sink.pending_calls == std::vector<uint32_t>{4});
  h.wr(kLvtLint1, 0x8042);  // level-triggered (bit 15), fixed
  h.apic.raise_lint(1);
  CHECK(h.apic.irr_bit(0x42));
  CHECK(h.apic.tmr_bit(0x42));
  CHECK(h.sink.nmis.empty());
}

TEST_CASE("LINT NMI delivery goes to the sink, not IRR", "[lapic][lvt][nmi]") {
  Harness h(LapicConfig{.apic_id = 6});
  h.enable_sw();
  h.wr(kLvtLint1, 0x8400 | 0x55);  // NMI; the trigger bit and vector do not matter
  h.apic.raise_lint(1);
  CHECK(h.sink.nmis == std::vector<uint32_t>{6});
  CHECK_FALSE(h.apic.irr_bit(0x55));
  CHECK_FALSE(h.apic.tmr_bit(0x55));
  CHECK_FALSE(h.apic.pending_vector());
  h.wr(kLvtLint0, 0x400);
  h.apic.raise_lint(0);
  CHECK(h.sink.nmis == std::vector<uint32_t>{6, 6});
}

TEST_CASE("masked, ExtINT, disabled and bad-pin LINT deliver nothing", "[lapic][lvt]") {
  Harness h;
  h.enable_sw();
  SECTION("masked fixed") {
    h.wr(kLvtLint0, kLvtMasked | 0x31);
    h.apic.raise_lint(0);
  }
  SECTION("masked NMI") {
    h.wr(kLvtLint1, kLvtMasked | 0x400);
    h.apic.raise_lint(1);
  }
  SECTION("ExtINT (no PIC)") {
    h.wr(kLvtLint0, 0x700 | 0x31);
    h.apic.raise_lint(0);
  }
  SECTION("SMI (no SMM)") {
    h.wr(kLvtLint0, 0x200 | 0x31);
    h.apic.raise_lint(0);
  }
  SECTION("software-disabled APIC forces the mask") {
    h.wr(kLvtLint0, 0x31);
    h.wr(kSvr, 0xff);
    h.apic.raise_lint(0);
  }
  SECTION("globally disabled APIC") {
    h.wr(kLvtLint0, 0x31);
    REQUIRE(h.apic.set_apic_base(kDefaultBase) == MsrStatus::Ok);
    h.apic.raise_lint(0);
  }
  SECTION("no such pin") {
    h.wr(kLvtLint0, 0x31);
    h.wr(kLvtLint1, 0x31);
    h.apic.raise_lint(2);
    h.apic.raise_lint(~0u);
  }
  CHECK_FALSE(h.apic.irr_bit(0x31));
  CHECK(h.sink.nmis.empty());
  CHECK(h.sink.pending_calls.empty());
}

// ---------------------------------------------------------------- error LVT

TEST_CASE("error LVT: fixed only, masked keeps the ESR bit", "[lapic][lvt][esr]") {
  Harness h;
  h.enable_sw();
  SECTION("unmasked: delivery-mode bits are not writable, so it is always fixed") {
    h.wr(kLvtError, 0x4e3);  // tries NMI mode
    CHECK(h.rd(kLvtError) == 0xe3);
    h.wr(kIcrLow, 0x4005);  // send illegal vector
    CHECK(h.apic.irr_bit(0xe3));
    CHECK(h.sink.nmis.empty());
    // Once per error kind until the ESR is rewritten.
    REQUIRE(h.apic.ack() == uint8_t{0xe3});
    h.wr(kIcrLow, 0x4005);
    CHECK_FALSE(h.apic.irr_bit(0xe3));
    h.wr(kEsr, 0);
    CHECK(h.rd(kEsr) == kEsrSendIllegalVector);
    h.wr(kIcrLow, 0x4005);
    CHECK(h.apic.irr_bit(0xe3));
  }
  SECTION("masked") {
    h.wr(kLvtError, kLvtMasked | 0xe3);
    h.wr(kIcrLow, 0x4005);
    CHECK_FALSE(h.apic.irr_bit(0xe3));
    h.wr(kEsr, 0);
    CHECK(h.rd(kEsr) == kEsrSendIllegalVector);
  }
  SECTION("an illegal error vector ends after one receive-illegal error") {
    h.wr(kLvtError, 0x05);
    h.wr(kIcrLow, 0x4005);
    h.wr(kEsr, 0);
    CHECK(h.rd(kEsr) == (kEsrSendIllegalVector | kEsrReceiveIllegalVector));
    CHECK_FALSE(h.apic.irr_bit(5));
    CHECK_FALSE(h.apic.pending_vector());
  }
}

// ---------------------------------------------------------------- receive_ipi

TEST_CASE("receive_ipi: fixed and lowest priority go to IRR", "[lapic][receive]") {
  Harness h(LapicConfig{.apic_id = 1});
  h.enable_sw();
  CHECK(h.apic.receive_ipi(ipi(IpiDelivery::Fixed, 0x41)) == IpiEffect::None);
  CHECK(h.apic.receive_ipi(ipi(IpiDelivery::LowestPriority, 0x52)) == IpiEffect::None);
  CHECK(h.apic.receive_ipi(ipi(IpiDelivery::Fixed, 0x63, TriggerMode::Level)) == IpiEffect::None);
  CHECK(h.apic.irr_bit(0x41));
  CHECK(h.apic.irr_bit(0x52));
  CHECK(h.apic.irr_bit(0x63));
  CHECK(h.apic.tmr_bit(0x63));
  CHECK_FALSE(h.apic.tmr_bit(0x41));
  // A level de-assert carries no interrupt.
  h.apic.receive_ipi(ipi(IpiDelivery::Fixed, 0x74, TriggerMode::Level, false));
  CHECK_FALSE(h.apic.irr_bit(0x74));
  // Illegal vector on receipt: ESR, no IRR bit.
  h.apic.receive_ipi(ipi(IpiDelivery::Fixed, 7));
  CHECK_FALSE(h.apic.irr_bit(7));
  h.wr(kEsr, 0);
  CHECK(h.rd(kEsr) == kEsrReceiveIllegalVector);
}

TEST_CASE("receive_ipi: NMI, INIT, SIPI, SMI", "[lapic][receive]") {
  Harness h(LapicConfig{.apic_id = 5});
  // The APIC starts software-disabled: NMI/INIT/SIPI are still taken (§11.4.7.2).
  REQUIRE_FALSE(h.apic.software_enabled());
  CHECK(h.apic.receive_ipi(ipi(IpiDelivery::Nmi)) == IpiEffect::None);
  CHECK(h.sink.nmis == std::vector<uint32_t>{5});
  CHECK(h.apic.receive_ipi(ipi(IpiDelivery::Init)) == IpiEffect::Init);
  CHECK(h.apic.receive_ipi(ipi(IpiDelivery::Init, 0, TriggerMode::Level)) == IpiEffect::Init);
  CHECK(h.apic.receive_ipi(ipi(IpiDelivery::Init, 0, TriggerMode::Level, false)) ==
        IpiEffect::None);  // INIT level de-assert
  CHECK(h.apic.receive_ipi(ipi(IpiDelivery::StartUp, 0x10)) == IpiEffect::StartUp);
  CHECK(h.apic.receive_ipi(ipi(IpiDelivery::Smi)) == IpiEffect::None);
  // A fixed interrupt is dropped while software-disabled.
  CHECK(h.apic.receive_ipi(ipi(IpiDelivery::Fixed, 0x41)) == IpiEffect::None);
  CHECK_FALSE(h.apic.irr_bit(0x41));
  CHECK(h.sink.pending_calls.empty());
}

TEST_CASE("receive_ipi at a globally disabled APIC does nothing", "[lapic][receive]") {
  Harness h;
  REQUIRE(h.apic.set_apic_base(kDefaultBase) == MsrStatus::Ok);
  CHECK(h.apic.receive_ipi(ipi(IpiDelivery::Nmi)) == IpiEffect::None);
  CHECK(h.apic.receive_ipi(ipi(IpiDelivery::Init)) == IpiEffect::None);
  CHECK(h.apic.receive_ipi(ipi(IpiDelivery::StartUp, 0x10)) == IpiEffect::None);
  CHECK(h.sink.nmis.empty());
}

// ---------------------------------------------------------------- SELF IPI

TEST_CASE("x2APIC SELF IPI: fixed edge to self, checks and wake-up", "[lapic][x2apic][selfipi]") {
  Harness h(LapicConfig{.apic_id = 9});
  h.to_x2apic();
  REQUIRE(h.apic.msr_write(0x80f, 0x1ff) == MsrStatus::Ok);
  h.apic.accept(0x61, TriggerMode::Level);  // leaves TMR set for 0x61
  REQUIRE(h.apic.ack() == uint8_t{0x61});
  REQUIRE(h.apic.msr_write(0x80b, 0) == MsrStatus::Ok);
  h.sink.pending_calls.clear();

  REQUIRE(h.apic.msr_write(0x83f, 0x61) == MsrStatus::Ok);
  CHECK(h.apic.irr_bit(0x61));
  CHECK_FALSE(h.apic.tmr_bit(0x61));  // edge
  CHECK(h.sink.pending_calls == std::vector<uint32_t>{9});
  CHECK(h.sink.ipis.empty());
  CHECK(h.apic.pending_vector() == uint8_t{0x61});

  // Bits 31:8 reserved: #GP and nothing sent.
  CHECK(h.apic.msr_write(0x83f, 0x171) == MsrStatus::Gp);
  CHECK_FALSE(h.apic.irr_bit(0x71));
  // Vectors 0-15: a send error, nothing queued.
  REQUIRE(h.apic.msr_write(0x83f, 0x0e) == MsrStatus::Ok);
  CHECK_FALSE(h.apic.irr_bit(0x0e));
  REQUIRE(h.apic.msr_write(0x828, 0) == MsrStatus::Ok);
  CHECK(h.msr(0x828) == kEsrSendIllegalVector);
  // Software-disabled: the fixed self IPI is dropped.
  REQUIRE(h.apic.msr_write(0x80f, 0xff) == MsrStatus::Ok);
  REQUIRE(h.apic.msr_write(0x83f, 0x72) == MsrStatus::Ok);
  CHECK_FALSE(h.apic.irr_bit(0x72));
}

// ---------------------------------------------------------------- current count

TEST_CASE("current count is derived from the clock on every read, in both modes",
          "[lapic][timer]") {
  for (const bool x2 : {false, true}) {
    CAPTURE(x2);
    Harness h;
    if (x2) h.to_x2apic();
    auto write = [&](uint32_t off, uint32_t v) {
      if (x2)
        REQUIRE(h.apic.msr_write(msr_for(off), v) == MsrStatus::Ok);
      else
        h.wr(off, v);
    };
    auto current = [&]() { return x2 ? h.msr(msr_for(kTimerCurrent)) : uint64_t{h.rd(kTimerCurrent)}; };
    write(kSvr, 0x1ff);
    write(kLvtTimer, 0x40);
    write(kTimerDivide, 0x1);  // divide by 4: one count per 4 ns at the 1 GHz bus
    write(kTimerInitial, 100);
    CHECK(current() == 100);
    h.clock.t = Tick(3);
    CHECK(current() == 100);
    h.clock.t = Tick(4);
    CHECK(current() == 99);
    h.clock.t = Tick(399);
    CHECK(current() == 1);
    h.run_to(400);
    CHECK(current() == 0);
    CHECK(h.apic.irr_bit(0x40));
    h.clock.t = Tick(10'000);
    CHECK(current() == 0);  // one-shot stays at zero
  }
}
