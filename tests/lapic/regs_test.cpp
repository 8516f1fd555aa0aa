// Register-file semantics in xAPIC (MMIO) and x2APIC (MSR) modes, and IA32_APIC_BASE rules.
#include <catch2/catch.hpp>

#include "lapic_harness.h"

using namespace pvsim;
using namespace pvsim::lapic;
using pvsim::test::Harness;

TEST_CASE("xAPIC power-up register values", "[lapic][regs]") {
  Harness h(LapicConfig{.apic_id = 3, .bsp = true});
  CHECK(h.apic.mode() == ApicMode::XApic);
  CHECK(h.apic.apic_base() == (0xfee00000ull | kBaseEnable | kBaseBsp));
  CHECK(h.rd(kId) == 3u << 24);
  CHECK(h.rd(kVersion) == 0x50014u);
  CHECK(h.rd(kTpr) == 0);
  CHECK(h.rd(kDfr) == 0xffffffffu);
  CHECK(h.rd(kSvr) == 0xffu);
  for (uint32_t off = kLvtTimer; off <= kLvtError; off += 0x10) CHECK(h.rd(off) == kLvtMasked);
  CHECK_FALSE(h.apic.software_enabled());
}

TEST_CASE("xAPIC writable fields and read-only registers", "[lapic][regs]") {
  Harness h;
  h.wr(kTpr, 0xffffff45);
  CHECK(h.rd(kTpr) == 0x45);
  h.wr(kLdr, 0x12345678);
  CHECK(h.rd(kLdr) == 0x12000000u);
  h.wr(kDfr, 0x0);
  CHECK(h.rd(kDfr) == 0x0fffffffu);  // only the model field is writable
  h.wr(kId, 0x07abcdef);
  CHECK(h.rd(kId) == 0x07000000u);
  CHECK(h.apic.id() == 7);
  h.wr(kVersion, 0);
  CHECK(h.rd(kVersion) == 0x50014u);
  h.wr(kSvr, 0xffffffff);
  CHECK(h.rd(kSvr) == 0x3ffu);
  h.wr(kTimerDivide, 0xffffffff);
  CHECK(h.rd(kTimerDivide) == 0xbu);
  h.wr(kIcrHigh, 0xffffffff);
  CHECK(h.rd(kIcrHigh) == 0xff000000u);
  CHECK(h.rd(kEsr) == 0);  // writes to read-only registers are not errors
}

TEST_CASE("xAPIC partial and misaligned accesses", "[lapic][regs]") {
  Harness h;
  h.wr(kTpr, 0x80);
  CHECK(h.apic.mmio_read(kVersion, 1) == 0x14);
  CHECK(h.apic.mmio_read(kVersion + 2, 1) == 0x05);
  CHECK(h.apic.mmio_read(kVersion + 2, 2) == 0x0005);
  CHECK(h.apic.mmio_read(kVersion + 4, 4) == 0);  // bytes 4..15 of a slot read 0
  CHECK(h.apic.mmio_read(kVersion + 2, 4) == 0);  // straddles the register end
  h.apic.mmio_write(kTpr, 1, 0x20);               // non-32-bit store: dropped
  h.apic.mmio_write(kTpr + 4, 4, 0x20);           // not 16-byte aligned: dropped
  CHECK(h.rd(kTpr) == 0x80);
  CHECK(h.apic.mmio_read(0x1000, 4) == 0);  // outside the page
  h.apic.mmio_write(0xfffff000u, 4, 1);     // far outside: ignored, no crash
}

TEST_CASE("xAPIC reserved offset sets ESR illegal-register on next ESR write",
          "[lapic][regs][esr]") {
  Harness h;
  CHECK(h.rd(0x040) == 0);  // reserved offset
  CHECK(h.rd(kEsr) == 0);   // not visible until ESR is written (§11.5.3)
  h.wr(kEsr, 0);
  CHECK(h.rd(kEsr) == kEsrIllegalRegister);
  h.wr(kEsr, 0);  // nothing new since: cleared
  CHECK(h.rd(kEsr) == 0);
  h.wr(kSelfIpi, 0x40);  // SELF IPI does not exist in xAPIC
  h.wr(kEsr, 0);
  CHECK(h.rd(kEsr) == kEsrIllegalRegister);
}

TEST_CASE("ESR error raises the LVT error vector when unmasked", "[lapic][esr]") {
  Harness h;
  h.enable_sw();
  h.wr(kLvtError, 0xe3);                // unmasked, vector 0xe3
  h.apic.accept(5, TriggerMode::Edge);  // illegal vector
  CHECK_FALSE(h.apic.irr_bit(5));
  CHECK(h.apic.irr_bit(0xe3));
  CHECK(h.apic.pending_vector() == uint8_t{0xe3});
  h.wr(kEsr, 0);
  CHECK(h.rd(kEsr) == kEsrReceiveIllegalVector);
}

TEST_CASE("software disable masks every LVT and keeps them masked", "[lapic][regs]") {
  Harness h;
  h.enable_sw();
  h.wr(kLvtTimer, 0x30);
  h.wr(kLvtLint0, 0x700);
  CHECK(h.rd(kLvtTimer) == 0x30);
  CHECK(h.rd(kLvtLint0) == 0x700);
  h.wr(kSvr, 0xff);
  CHECK(h.rd(kLvtTimer) == (0x30 | kLvtMasked));
  CHECK(h.rd(kLvtLint0) == (0x700 | kLvtMasked));
  h.wr(kLvtTimer, 0x31);  // unmask attempt while disabled
  CHECK(h.rd(kLvtTimer) == (0x31 | kLvtMasked));
  h.apic.accept(0x40, TriggerMode::Edge);  // fixed interrupts are not accepted
  CHECK_FALSE(h.apic.irr_bit(0x40));
}

TEST_CASE("LVT read-only and reserved bits", "[lapic][regs]") {
  Harness h;
  h.enable_sw();
  h.wr(kLvtError, 0xffffffff);
  CHECK(h.rd(kLvtError) == 0x000100ffu);
  h.wr(kLvtLint1, 0xffffffff);
  CHECK(h.rd(kLvtLint1) == 0x0001a7ffu);  // delivery status and remote IRR read-only
  h.wr(kLvtTimer, 0x00020000 | 0x40);
  CHECK(h.rd(kLvtTimer) == 0x00020040u);  // TSC-deadline mode, unmasked
}

TEST_CASE("IA32_APIC_BASE mode transitions", "[lapic][base]") {
  Harness h(LapicConfig{.apic_id = 0x21, .bsp = false});
  const uint64_t x = kDefaultBase | kBaseEnable;
  const uint64_t x2 = x | kBaseExtd;
  SECTION("reserved bits #GP") {
    CHECK(h.apic.set_apic_base(x | 1) == MsrStatus::Gp);
    CHECK(h.apic.set_apic_base(x | (1ull << 9)) == MsrStatus::Gp);
    CHECK(h.apic.set_apic_base(x | (1ull << 46)) == MsrStatus::Gp);
    CHECK(h.apic.set_apic_base(kBaseExtd) == MsrStatus::Gp);  // EN=0, EXTD=1
    CHECK(h.apic.mode() == ApicMode::XApic);
  }
  SECTION("xAPIC -> x2APIC -> xAPIC is refused; via disabled is fine") {
    REQUIRE(h.apic.set_apic_base(x2) == MsrStatus::Ok);
    CHECK(h.apic.mode() == ApicMode::X2Apic);
    CHECK(h.apic.set_apic_base(x) == MsrStatus::Gp);
    CHECK(h.apic.mode() == ApicMode::X2Apic);
    REQUIRE(h.apic.set_apic_base(kDefaultBase) == MsrStatus::Ok);
    CHECK(h.apic.mode() == ApicMode::Disabled);
    CHECK(h.apic.set_apic_base(x2) == MsrStatus::Gp);  // disabled -> x2APIC is illegal
    REQUIRE(h.apic.set_apic_base(x) == MsrStatus::Ok);
    CHECK(h.apic.mode() == ApicMode::XApic);
    CHECK(h.rd(kSvr) == 0xffu);  // power-up state after re-enable
  }
  SECTION("BSP bit is not changed by software, base is relocatable") {
    REQUIRE(h.apic.set_apic_base(0xfed00000ull | kBaseEnable | kBaseBsp) == MsrStatus::Ok);
    CHECK(h.apic.apic_base() == (0xfed00000ull | kBaseEnable));
    CHECK(h.apic.mmio_base() == 0xfed00000ull);
  }
  SECTION("disabled APIC: MMIO dead, MSRs #GP, no interrupts") {
    h.enable_sw();
    REQUIRE(h.apic.set_apic_base(kDefaultBase) == MsrStatus::Ok);
    CHECK(h.rd(kVersion) == 0);
    uint64_t v = 0;
    CHECK(h.apic.msr_read(msr_for(kVersion), v) == MsrStatus::Gp);
    h.apic.accept(0x40, TriggerMode::Edge);
    CHECK_FALSE(h.apic.pending_vector());
  }
}

TEST_CASE("x2APIC MSR semantics", "[lapic][x2apic]") {
  Harness h(LapicConfig{.apic_id = 0x21});
  uint64_t v = 0;
  CHECK(h.apic.msr_read(msr_for(kVersion), v) == MsrStatus::Gp);  // xAPIC mode: #GP
  h.wr(kTpr, 0x30);
  h.to_x2apic();
  CHECK(h.rd(kVersion) == 0);  // MMIO page no longer decoded
  CHECK(h.msr(0x802) == 0x21);
  CHECK(h.msr(0x803) == 0x50014);
  CHECK(h.msr(0x808) == 0x30);  // state kept across the switch
  // Derived LDR: cluster 2 in 31:16, bit (id & 15) in 15:0 (§11.12.10.2).
  CHECK(h.msr(0x80d) == ((2u << 16) | (1u << 1)));
  CHECK(h.apic.msr_write(0x802, 5) == MsrStatus::Gp);  // ID read-only
  CHECK(h.apic.msr_write(0x80d, 5) == MsrStatus::Gp);  // LDR read-only
  CHECK(h.apic.msr_write(0x803, 0) == MsrStatus::Gp);  // version read-only
  CHECK(h.apic.msr_write(0x80a, 0) == MsrStatus::Gp);  // PPR read-only
  CHECK(h.apic.msr_write(0x839, 0) == MsrStatus::Gp);  // current count read-only
  CHECK(h.apic.msr_read(0x80e, v) == MsrStatus::Gp);   // DFR does not exist
  CHECK(h.apic.msr_read(0x809, v) == MsrStatus::Gp);   // APR does not exist
  CHECK(h.apic.msr_read(0x831, v) == MsrStatus::Gp);   // ICR high does not exist
  CHECK(h.apic.msr_read(0x80b, v) == MsrStatus::Gp);   // EOI write-only
  CHECK(h.apic.msr_read(0x83f, v) == MsrStatus::Gp);   // SELF IPI write-only
  CHECK(h.apic.msr_read(0x8ff, v) == MsrStatus::Gp);   // reserved
  CHECK(h.apic.msr_read(0x7ff, v) == MsrStatus::Gp);   // outside the range
  CHECK(h.apic.msr_write(0x80b, 1) == MsrStatus::Gp);  // non-zero EOI
  CHECK(h.apic.msr_write(0x80b, 0) == MsrStatus::Ok);
  CHECK(h.apic.msr_write(0x828, 1) == MsrStatus::Gp);           // non-zero ESR
  CHECK(h.apic.msr_write(0x808, 1ull << 32) == MsrStatus::Gp);  // upper half reserved
  CHECK(h.apic.msr_write(0x808, 0x40) == MsrStatus::Ok);
  CHECK(h.msr(0x808) == 0x40);
  CHECK(h.apic.msr_write(0x80f, 0x1ff) == MsrStatus::Ok);
  CHECK(h.msr(0x80f) == 0x1ff);
}

TEST_CASE("x2APIC SELF_IPI and ISR/IRR banks", "[lapic][x2apic]") {
  Harness h;
  h.to_x2apic();
  REQUIRE(h.apic.msr_write(0x80f, 0x1ff) == MsrStatus::Ok);
  REQUIRE(h.apic.msr_write(0x83f, 0x61) == MsrStatus::Ok);
  CHECK(h.sink.ipis.empty());            // local, never on the bus
  CHECK(h.msr(0x820 + 3) == (1u << 1));  // IRR bank 3 holds vectors 0x60-0x7f
  CHECK(h.apic.ack() == uint8_t{0x61});
  CHECK(h.msr(0x823) == 0);
  CHECK(h.msr(0x813) == (1u << 1));  // ISR bank 3
  CHECK(h.apic.msr_write(0x813, 0) == MsrStatus::Gp);
  CHECK(h.apic.msr_write(0x80b, 0) == MsrStatus::Ok);
  CHECK(h.msr(0x813) == 0);
}
