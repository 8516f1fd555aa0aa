// LAPIC timer (§11.5.4): one-shot, periodic, TSC-deadline, derived current count, divide
// configuration, masking. Time is stepped through the EventQueue, never ticked.
#include <catch2/catch.hpp>

#include "lapic_harness.h"

using namespace pvsim;
using namespace pvsim::lapic;
using pvsim::test::Harness;

namespace {
constexpr uint32_t kDivBy1 = 0xb;
constexpr uint32_t kPeriodic = 1u << 17;
constexpr uint32_t kDeadline = 2u << 17;
}  // namespace

TEST_CASE("one-shot fires at the exact Tick and current count is derived", "[lapic][timer]") {
  Harness h(LapicConfig{.bus_hz = 100'000'000});  // 10 ns per bus clock
  h.enable_sw();
  h.wr(kLvtTimer, 0x40);
  h.wr(kTimerDivide, kDivBy1);
  h.run_to(1000);
  h.wr(kTimerInitial, 100);
  CHECK(h.apic.timer_expiry() == Tick(2000));
  CHECK(h.rd(kTimerCurrent) == 100);
  h.run_to(1009);
  CHECK(h.rd(kTimerCurrent) == 100);
  h.run_to(1010);
  CHECK(h.rd(kTimerCurrent) == 99);
  h.run_to(1999);
  CHECK(h.rd(kTimerCurrent) == 1);
  CHECK_FALSE(h.apic.irr_bit(0x40));
  h.run_to(2000);
  CHECK(h.apic.irr_bit(0x40));
  CHECK(h.rd(kTimerCurrent) == 0);
  CHECK(h.rd(kTimerInitial) == 100);
  CHECK_FALSE(h.apic.timer_armed());
  h.run_to(100000);
  CHECK(h.rd(kTimerCurrent) == 0);  // one-shot stays at 0
  CHECK(h.sink.pending_calls.size() == 1);
}

TEST_CASE("divide configuration encodings", "[lapic][timer]") {
  // DCR bits 3,1:0 -> divisor (§11.5.4 Figure 11-10).
  const std::pair<uint32_t, uint64_t> table[] = {{0x0, 2},  {0x1, 4},  {0x2, 8},   {0x3, 16},
                                                 {0x8, 32}, {0x9, 64}, {0xa, 128}, {0xb, 1}};
  for (auto [dcr, div] : table) {
    Harness h;  // 1 GHz bus: one clock per ns
    h.enable_sw();
    h.wr(kLvtTimer, 0x40);
    h.wr(kTimerDivide, dcr | 0xf0);  // reserved bits ignored
    h.wr(kTimerInitial, 10);
    INFO("dcr=" << dcr);
    CHECK(h.apic.timer_expiry() == Tick(10 * div));
    h.run_to(10 * div - 1);
    CHECK_FALSE(h.apic.irr_bit(0x40));
    CHECK(h.rd(kTimerCurrent) == 1);
    h.run_to(10 * div);
    CHECK(h.apic.irr_bit(0x40));
  }
}

TEST_CASE("initial count write re-arms, zero stops", "[lapic][timer]") {
  Harness h;
  h.enable_sw();
  h.wr(kLvtTimer, 0x40);  // DCR reset value 0 = divide by 2
  h.wr(kTimerInitial, 1000);
  CHECK(h.apic.timer_expiry() == Tick(2000));
  h.run_to(1);
  CHECK(h.rd(kTimerCurrent) == 1000);
  h.run_to(2);
  CHECK(h.rd(kTimerCurrent) == 999);
  h.run_to(500);
  h.wr(kTimerInitial, 1000);  // restart from now
  CHECK(h.apic.timer_expiry() == Tick(2500));
  h.run_to(2400);
  CHECK(h.rd(kTimerCurrent) == 50);
  h.wr(kTimerInitial, 0);
  CHECK_FALSE(h.apic.timer_armed());
  CHECK(h.rd(kTimerCurrent) == 0);
  h.run_to(10000);
  CHECK_FALSE(h.apic.irr_bit(0x40));
}

TEST_CASE("divide change mid-count keeps the remaining counts", "[lapic][timer]") {
  Harness h;
  h.enable_sw();
  h.wr(kLvtTimer, 0x40);
  h.wr(kTimerDivide, kDivBy1);
  h.wr(kTimerInitial, 1000);
  h.run_to(400);
  CHECK(h.rd(kTimerCurrent) == 600);
  h.wr(kTimerDivide, 0);  // divide by 2 from now on
  CHECK(h.rd(kTimerCurrent) == 600);
  CHECK(h.apic.timer_expiry() == Tick(1600));
  h.run_to(1600);
  CHECK(h.apic.irr_bit(0x40));
}

TEST_CASE("periodic reloads at exact multiples, no drift", "[lapic][timer]") {
  // 300 MHz bus, divide by 1, 1000 counts: period 3333.33.. ns, not an integer.
  Harness h(LapicConfig{.bus_hz = 300'000'000});
  h.enable_sw();
  h.wr(kLvtTimer, 0x40 | kPeriodic);
  h.wr(kTimerDivide, kDivBy1);
  h.wr(kTimerInitial, 1000);
  CHECK(h.apic.timer_expiry() == Tick(3334));  // ceil(10000/3)
  uint64_t fired = 0;
  for (uint64_t k = 1; k <= 300; ++k) {
    const uint64_t due = (k * 10000 + 2) / 3;  // ceil(k * 10000 / 3)
    REQUIRE(h.apic.timer_expiry() == Tick(due));
    h.run_to(due - 1);
    REQUIRE_FALSE(h.apic.irr_bit(0x40));
    h.run_to(due);
    REQUIRE(h.apic.ack() == uint8_t{0x40});
    h.apic.eoi();
    ++fired;
    // Right after the reload the count reads the full initial value again: the expiry
    // Tick is rounded up by less than one count (3.33 ns), so no count is lost.
    REQUIRE(h.rd(kTimerCurrent) == 1000);
  }
  CHECK(fired == 300);
  CHECK(h.apic.timer_expiry() == Tick(1'003'334));  // 301st: still on the exact grid
  h.run_to(1'000'000 + 1500);
  CHECK(h.rd(kTimerCurrent) == 1000 - 450);  // 1500 ns = 450 counts into period 301
}

TEST_CASE("periodic -> one-shot switch stops after the next expiry", "[lapic][timer]") {
  Harness h;
  h.enable_sw();
  h.wr(kLvtTimer, 0x40 | kPeriodic);
  h.wr(kTimerDivide, kDivBy1);
  h.wr(kTimerInitial, 100);
  h.run_to(150);
  h.wr(kLvtTimer, 0x40);  // one-shot from now on
  h.run_to(200);
  CHECK_FALSE(h.apic.timer_armed());
  h.run_to(1000);
  CHECK(h.sink.pending_calls.size() == 2);
}

TEST_CASE("masked timer counts but does not inject", "[lapic][timer]") {
  Harness h;
  h.enable_sw();
  h.wr(kLvtTimer, 0x40 | kLvtMasked | kPeriodic);
  h.wr(kTimerDivide, kDivBy1);
  h.wr(kTimerInitial, 100);
  h.run_to(250);
  CHECK(h.rd(kTimerCurrent) == 50);  // still counting: reloaded twice
  CHECK_FALSE(h.apic.irr_bit(0x40));
  CHECK(h.sink.pending_calls.empty());
  h.wr(kLvtTimer, 0x40 | kPeriodic);  // unmask: the next expiry injects
  h.run_to(300);
  CHECK(h.apic.irr_bit(0x40));
}

TEST_CASE("TSC-deadline mode", "[lapic][timer][deadline]") {
  Harness h(LapicConfig{.tsc_hz = 2'500'000'000});
  h.enable_sw();
  SECTION("ignored outside deadline mode") {
    h.wr(kLvtTimer, 0x40);
    h.apic.set_tsc_deadline(2500);
    CHECK(h.apic.tsc_deadline() == 0);
    CHECK_FALSE(h.apic.timer_armed());
  }
  SECTION("fires at the first Tick where TSC >= deadline") {
    h.wr(kLvtTimer, 0x40 | kDeadline);
    h.apic.set_tsc_deadline(2501);  // 1000.4 ns -> first whole Tick is 1001
    CHECK(h.apic.tsc_deadline() == 2501);
    CHECK(h.apic.timer_expiry() == Tick(1001));
    h.run_to(1000);
    CHECK_FALSE(h.apic.irr_bit(0x40));
    h.run_to(1001);
    CHECK(h.apic.irr_bit(0x40));
    CHECK(h.apic.tsc_deadline() == 0);  // cleared on expiry
    // Initial-count register is ignored in deadline mode.
    h.wr(kTimerInitial, 5);
    CHECK(h.rd(kTimerInitial) == 0);
    CHECK_FALSE(h.apic.timer_armed());
  }
  SECTION("past deadline fires now; zero disarms; rewrite moves it") {
    h.wr(kLvtTimer, 0x40 | kDeadline);
    h.run_to(5000);
    h.apic.set_tsc_deadline(100);
    CHECK(h.apic.timer_expiry() == Tick(5000));
    h.run_to(5000);
    CHECK(h.apic.irr_bit(0x40));
    h.apic.ack();
    h.apic.eoi();
    h.apic.set_tsc_deadline(25000);  // Tick 10000
    h.apic.set_tsc_deadline(50000);  // moved to Tick 20000
    CHECK(h.apic.timer_expiry() == Tick(20000));
    h.apic.set_tsc_deadline(0);
    CHECK_FALSE(h.apic.timer_armed());
    h.run_to(30000);
    CHECK_FALSE(h.apic.irr_bit(0x40));
  }
  SECTION("leaving deadline mode disarms") {
    h.wr(kLvtTimer, 0x40 | kDeadline);
    h.apic.set_tsc_deadline(25000);
    h.wr(kLvtTimer, 0x40);
    CHECK_FALSE(h.apic.timer_armed());
    h.wr(kLvtTimer, 0x40 | kDeadline);
    CHECK(h.apic.tsc_deadline() == 0);
    h.run_to(100000);
    CHECK_FALSE(h.apic.irr_bit(0x40));
  }
}

TEST_CASE("timer through x2APIC MSRs", "[lapic][timer][x2apic]") {
  Harness h;
  h.to_x2apic();
  REQUIRE(h.apic.msr_write(0x80f, 0x1ff) == MsrStatus::Ok);
  REQUIRE(h.apic.msr_write(0x832, 0x45) == MsrStatus::Ok);
  REQUIRE(h.apic.msr_write(0x83e, kDivBy1) == MsrStatus::Ok);
  REQUIRE(h.apic.msr_write(0x838, 300) == MsrStatus::Ok);
  h.run_to(100);
  CHECK(h.msr(0x839) == 200);
  h.run_to(300);
  CHECK(h.apic.pending_vector() == uint8_t{0x45});
}

TEST_CASE("destroying the APIC with an armed timer leaves the queue clean", "[lapic][timer]") {
  EventQueue q;
  test::FakeClock c;
  test::RecordingSink s;
  {
    LocalApic a(LapicConfig{}, q, s, c);
    a.mmio_write(kSvr, 4, 0x1ff);
    a.mmio_write(kTimerInitial, 4, 10);
    CHECK(q.size() == 1);
  }
  CHECK(q.empty());
}
