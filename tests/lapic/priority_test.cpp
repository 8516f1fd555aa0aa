// Interrupt acceptance, PPR (§11.8.3.1), IRR -> ISR -> EOI order (§11.8.4-5).
#include <catch2/catch.hpp>

#include "lapic_harness.h"

using namespace pvsim;
using namespace pvsim::lapic;
using pvsim::test::Harness;

TEST_CASE("PPR derivation from TPR and ISRV", "[lapic][ppr]") {
  Harness h;
  h.enable_sw();
  h.wr(kTpr, 0x35);
  CHECK(h.rd(kPpr) == 0x35);  // ISR empty: PPR = TPR
  h.apic.accept(0x52, TriggerMode::Edge);
  REQUIRE(h.apic.ack() == uint8_t{0x52});
  CHECK(h.rd(kPpr) == 0x50);  // ISRV class above TPR class: class only, low nibble 0
  h.wr(kTpr, 0x5a);
  CHECK(h.rd(kPpr) == 0x5a);  // equal class: TPR wins (>=)
  h.wr(kTpr, 0x60);
  CHECK(h.rd(kPpr) == 0x60);
}

TEST_CASE("priority-class masking by TPR", "[lapic][ppr]") {
  Harness h;
  h.enable_sw();
  h.wr(kTpr, 0x40);
  h.apic.accept(0x4f, TriggerMode::Edge);
  CHECK(h.apic.irr_bit(0x4f));
  CHECK_FALSE(h.apic.pending_vector());  // same class as TPR: held
  CHECK(h.sink.pending_calls.empty());
  h.apic.accept(0x50, TriggerMode::Edge);
  CHECK(h.apic.pending_vector() == uint8_t{0x50});
  CHECK(h.sink.pending_calls.size() == 1);
  REQUIRE(h.apic.ack() == uint8_t{0x50});
  h.wr(kEoi, 0);
  CHECK_FALSE(h.apic.pending_vector());
  const auto calls = h.sink.pending_calls.size();
  h.wr(kTpr, 0x30);  // lowering TPR uncovers 0x4f and wakes the sink
  CHECK(h.apic.pending_vector() == uint8_t{0x4f});
  CHECK(h.sink.pending_calls.size() == calls + 1);
}

TEST_CASE("nested interrupts: IRR -> ISR -> EOI in priority order", "[lapic][eoi]") {
  Harness h;
  h.enable_sw();
  h.apic.accept(0x31, TriggerMode::Edge);
  REQUIRE(h.apic.ack() == uint8_t{0x31});
  CHECK(h.apic.isr_bit(0x31));
  CHECK_FALSE(h.apic.irr_bit(0x31));
  // Same class as the in-service vector: blocked until EOI (§11.8.3).
  h.apic.accept(0x3f, TriggerMode::Edge);
  CHECK_FALSE(h.apic.pending_vector());
  // Higher class nests.
  h.apic.accept(0x81, TriggerMode::Level);
  CHECK(h.apic.tmr_bit(0x81));
  REQUIRE(h.apic.ack() == uint8_t{0x81});
  CHECK(h.rd(kPpr) == 0x80);
  CHECK_FALSE(h.apic.ack());  // 0x3f below PPR
  h.wr(kEoi, 0);              // retires 0x81, the highest in service
  CHECK_FALSE(h.apic.isr_bit(0x81));
  CHECK(h.apic.isr_bit(0x31));
  CHECK_FALSE(h.apic.pending_vector());  // 0x3f still blocked by 0x31
  h.wr(kEoi, 0);
  CHECK_FALSE(h.apic.isr_bit(0x31));
  CHECK(h.apic.ack() == uint8_t{0x3f});
  h.apic.eoi();
  h.apic.eoi();  // EOI with empty ISR: harmless
  CHECK(h.rd(kPpr) == 0);
}

TEST_CASE("IRR coalesces and highest vector wins", "[lapic][irr]") {
  Harness h;
  h.enable_sw();
  h.apic.accept(0x40, TriggerMode::Edge);
  h.apic.accept(0x40, TriggerMode::Edge);
  h.apic.accept(0xfe, TriggerMode::Edge);
  h.apic.accept(0x20, TriggerMode::Edge);
  CHECK(h.rd(kIrr0 + 0x10 * 7) == (1u << 30));
  CHECK(h.rd(kIrr0 + 0x10 * 2) == 1u);
  CHECK(h.apic.ack() == uint8_t{0xfe});
  h.apic.eoi();
  CHECK(h.apic.ack() == uint8_t{0x40});
  h.apic.eoi();
  CHECK(h.apic.ack() == uint8_t{0x20});
  h.apic.eoi();
  CHECK_FALSE(h.apic.ack());  // the duplicate 0x40 was coalesced
}

TEST_CASE("vector 16 is the lowest legal, 15 is illegal", "[lapic][irr]") {
  Harness h;
  h.enable_sw();
  h.apic.accept(15, TriggerMode::Edge);
  h.apic.accept(16, TriggerMode::Edge);
  CHECK_FALSE(h.apic.irr_bit(15));
  CHECK(h.apic.irr_bit(16));
  h.wr(kEsr, 0);
  CHECK(h.rd(kEsr) == kEsrReceiveIllegalVector);
}

TEST_CASE("set_tpr (the CR8 path) masks and unmasks like the TPR register", "[lapic][ppr]") {
  Harness h(LapicConfig{.apic_id = 7});
  h.enable_sw();
  h.apic.set_tpr(0x50);
  CHECK(h.apic.tpr() == 0x50);
  CHECK(h.rd(kTpr) == 0x50);
  h.apic.accept(0x45, TriggerMode::Edge);
  CHECK_FALSE(h.apic.pending_vector());
  h.sink.pending_calls.clear();
  h.apic.set_tpr(0x10);  // lowering it makes 0x45 deliverable: the sink hears about it
  CHECK(h.apic.pending_vector() == uint8_t{0x45});
  CHECK(h.sink.pending_calls == std::vector<uint32_t>{7});
  h.apic.set_tpr(0x1ff);  // reserved bits dropped
  CHECK(h.apic.tpr() == 0xff);
}
