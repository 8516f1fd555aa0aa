// The 8259A register model (devices/pic8259.h): initialisation sequences, OCW1-OCW3, reads,
// wide accesses, and the wiring of the pair on the port bus.
#include <catch2/catch.hpp>

#include "core/pio_bus.h"
#include "devices/pic8259.h"

using namespace pvsim;

namespace {
constexpr uint16_t kCmd = 0, kData = 1;

void out(Pic8259& p, uint16_t offset, uint8_t v) { p.write(offset, 1, v); }
uint8_t in(Pic8259& p, uint16_t offset) { return static_cast<uint8_t>(p.read(offset, 1)); }

// What scenarios/guest/lib/pic.c writes to one chip.
void guest_runtime_init(Pic8259& p, uint8_t base, uint8_t icw3) {
  out(p, kCmd, 0x11);  // ICW1: cascade, edge, ICW4 follows
  out(p, kData, base);
  out(p, kData, icw3);
  out(p, kData, 0x01);  // ICW4: 8086 mode
}
}  // namespace

TEST_CASE("8259A after reset: IMR 0, IRR selected, not initialised", "[pic]") {
  Pic8259 p;
  CHECK_FALSE(p.initialised());
  CHECK(p.init_step() == Pic8259::InitStep::Ready);
  CHECK(in(p, kData) == 0x00);
  CHECK(in(p, kCmd) == 0x00);  // IRR: nothing can request yet
  // Before any ICW1 a data write is an OCW1, as in KVM's PIC.
  out(p, kData, 0x5a);
  CHECK(p.imr() == 0x5a);
  CHECK(in(p, kData) == 0x5a);
}

TEST_CASE("8259A: the guest runtime's sequence, master and slave", "[pic]") {
  Pic8259Pair pair;
  Pic8259& m = pair.master();
  Pic8259& s = pair.slave();
  // The firmware's state first (a PC BIOS: base 0x08, IRQ0 and the cascade unmasked).
  guest_runtime_init(m, 0x08, 0x04);
  out(m, kData, 0xfa);
  REQUIRE(m.imr() == 0xfa);

  out(m, kCmd, 0x11);
  CHECK(m.imr() == 0x00);  // ICW1 clears the mask
  CHECK_FALSE(m.initialised());
  CHECK(m.init_step() == Pic8259::InitStep::Icw2);
  out(m, kData, 0x20);
  CHECK(m.init_step() == Pic8259::InitStep::Icw3);
  out(m, kData, 0x04);
  CHECK(m.init_step() == Pic8259::InitStep::Icw4);
  out(m, kData, 0x01);
  CHECK(m.init_step() == Pic8259::InitStep::Ready);
  CHECK(m.initialised());
  CHECK(m.icw1() == 0x11);
  CHECK(m.vector_base() == 0x20);
  CHECK(m.icw3() == 0x04);
  CHECK(m.icw4() == 0x01);
  CHECK_FALSE(m.auto_eoi());
  CHECK_FALSE(m.level_triggered());
  CHECK(m.imr() == 0x00);  // the ICW4 write was not an OCW1

  guest_runtime_init(s, 0x28, 0x02);
  CHECK(s.initialised());
  CHECK(s.vector_base() == 0x28);
  CHECK(s.icw3() == 0x02);

  out(m, kData, 0xff);
  out(s, kData, 0xff);
  CHECK(in(m, kData) == 0xff);
  CHECK(in(s, kData) == 0xff);
  CHECK(m.irr() == 0);
  CHECK(m.isr() == 0);
}

TEST_CASE("8259A: ICW3 and ICW4 only when ICW1 asks for them", "[pic]") {
  Pic8259 p;
  SECTION("single, no ICW4: ICW2 completes the sequence") {
    out(p, kCmd, 0x12 | 0x08);  // SNGL, LTIM
    out(p, kData, 0x47);        // low 3 bits are not part of the base
    CHECK(p.initialised());
    CHECK(p.vector_base() == 0x40);
    CHECK(p.level_triggered());
    CHECK(p.icw4() == 0);
    out(p, kData, 0x33);
    CHECK(p.imr() == 0x33);
  }
  SECTION("single with ICW4: no ICW3") {
    out(p, kCmd, 0x13);
    out(p, kData, 0x70);
    CHECK(p.init_step() == Pic8259::InitStep::Icw4);
    out(p, kData, 0x03);  // 8086, automatic EOI
    CHECK(p.initialised());
    CHECK(p.icw3() == 0);
    CHECK(p.auto_eoi());
  }
  SECTION("cascade without ICW4: ICW3 completes it") {
    out(p, kCmd, 0x10);
    out(p, kData, 0x20);
    out(p, kData, 0x04);
    CHECK(p.initialised());
    CHECK(p.icw3() == 0x04);
    CHECK(p.icw4() == 0);
  }
  SECTION("a new ICW1 restarts an unfinished sequence") {
    out(p, kCmd, 0x11);
    out(p, kData, 0x20);
    out(p, kCmd, 0x11);
    CHECK(p.init_step() == Pic8259::InitStep::Icw2);
    out(p, kData, 0x30);
    out(p, kData, 0x04);
    out(p, kData, 0x01);
    CHECK(p.initialised());
    CHECK(p.vector_base() == 0x30);
  }
}

TEST_CASE("8259A OCW3: register select, poll, special mask mode", "[pic]") {
  Pic8259 p;
  guest_runtime_init(p, 0x20, 0x04);
  out(p, kCmd, 0x0b);  // read ISR
  CHECK(p.reads_isr());
  CHECK(in(p, kCmd) == 0);
  out(p, kCmd, 0x08);  // RR = 0: selection unchanged
  CHECK(p.reads_isr());
  out(p, kCmd, 0x0a);  // read IRR
  CHECK_FALSE(p.reads_isr());
  out(p, kCmd, 0x0c);  // poll
  CHECK(p.poll_pending());
  CHECK(in(p, kCmd) == 0);  // poll word: I = 0, no request
  CHECK_FALSE(p.poll_pending());
  out(p, kCmd, 0x68);  // ESMM + SMM
  CHECK(p.special_mask_mode());
  out(p, kCmd, 0x28);  // SMM without ESMM: no change
  CHECK(p.special_mask_mode());
  out(p, kCmd, 0x48);  // ESMM, SMM = 0: reset
  CHECK_FALSE(p.special_mask_mode());
  CHECK(p.last_ocw3() == 0x48);
  // ICW1 resets the OCW3 state.
  out(p, kCmd, 0x6b);
  out(p, kCmd, 0x11);
  CHECK_FALSE(p.special_mask_mode());
  CHECK_FALSE(p.reads_isr());
}

TEST_CASE("8259A OCW2: EOIs with nothing in service, priority and AEOI rotation", "[pic]") {
  Pic8259 p;
  guest_runtime_init(p, 0x20, 0x04);
  CHECK_FALSE(p.last_ocw2().has_value());
  CHECK(p.lowest_priority() == 7);
  out(p, kCmd, 0x20);  // non-specific EOI
  CHECK(p.last_ocw2() == 0x20);
  CHECK(p.isr() == 0);
  CHECK(p.lowest_priority() == 7);
  out(p, kCmd, 0xa0);  // rotate on non-specific EOI, nothing in service: no rotation
  CHECK(p.lowest_priority() == 7);
  out(p, kCmd, 0xc3);  // set priority: IR3 lowest
  CHECK(p.lowest_priority() == 3);
  out(p, kCmd, 0xe5);  // rotate on specific EOI 5
  CHECK(p.lowest_priority() == 5);
  out(p, kCmd, 0x80);
  CHECK(p.rotate_in_auto_eoi());
  out(p, kCmd, 0x40);  // no operation
  CHECK(p.rotate_in_auto_eoi());
  CHECK(p.last_ocw2() == 0x40);
  out(p, kCmd, 0x00);
  CHECK_FALSE(p.rotate_in_auto_eoi());
  out(p, kData, 0x12);
  out(p, kCmd, 0x11);  // ICW1 resets the priority, the rotation mode and the mask
  CHECK(p.lowest_priority() == 7);
  CHECK(p.imr() == 0);
}

TEST_CASE("8259A: wide accesses split into byte lanes", "[pic]") {
  Pic8259 p;
  p.write(kCmd, 2, 0x2011);  // ICW1 at the command port, then ICW2 at the data port
  CHECK(p.init_step() == Pic8259::InitStep::Icw3);
  CHECK(p.vector_base() == 0x20);
  p.write(kData, 4, 0xdeadbe04);  // lane 0 is ICW3; lanes 1-3 are past the chip
  CHECK(p.icw3() == 0x04);
  CHECK(p.init_step() == Pic8259::InitStep::Icw4);
  p.write(kData, 1, 0x01);
  p.write(kData, 1, 0x9c);
  CHECK(p.read(kCmd, 2) == 0x9c00u);       // IRR, IMR
  CHECK(p.read(kData, 2) == 0xff9cu);      // IMR, floating lane
  CHECK(p.read(kData, 4) == 0xffffff9cu);
}

TEST_CASE("8259A pair on the port bus: 0x20/0x21 master, 0xa0/0xa1 slave", "[pic]") {
  PioBus bus;
  Pic8259Pair pair;
  REQUIRE(bus.add(Pic8259Pair::kMasterBase, Pic8259::kPorts, pair.master(), "pic-master"));
  REQUIRE(bus.add(Pic8259Pair::kSlaveBase, Pic8259::kPorts, pair.slave(), "pic-slave"));
  CHECK(std::string(bus.owner(0x20)) == "pic-master");
  CHECK(std::string(bus.owner(0x21)) == "pic-master");
  CHECK(std::string(bus.owner(0xa0)) == "pic-slave");
  CHECK(std::string(bus.owner(0xa1)) == "pic-slave");
  CHECK(bus.owner(0x22) == nullptr);
  CHECK(bus.owner(0xa2) == nullptr);
  // The chips are independent.
  out(pair.master(), kData, 0xfb);
  CHECK(pair.slave().imr() == 0x00);
  out(pair.slave(), kData, 0xff);
  CHECK(pair.master().imr() == 0xfb);
}
