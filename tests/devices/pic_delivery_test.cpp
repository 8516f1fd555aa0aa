// 8259A pair delivery (devices/pic8259.h): IR inputs (edge and level through the ELCR),
// the INT output and its change callback, INTA vectors, priority and rotation, the EOI
// forms, AEOI, special mask mode, the cascade (with special fully nested mode), spurious
// IRQ 7 / 15, the poll command, the ELCR ports, the post-BIOS state and snapshots.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "core/pio_bus.h"
#include "devices/pic8259.h"

using namespace pvsim;

namespace {
constexpr uint16_t kCmd = 0, kData = 1;

void out(Pic8259& p, uint16_t offset, uint8_t v) { p.write(offset, 1, v); }
uint8_t in(Pic8259& p, uint16_t offset) { return static_cast<uint8_t>(p.read(offset, 1)); }

// Master at 0x20, slave at 0x28 (Linux's layout), everything unmasked, edge-triggered.
void init_pair(Pic8259Pair& pair, uint8_t icw4_master = 0x01, uint8_t icw4_slave = 0x01) {
  out(pair.master(), kCmd, 0x11);
  out(pair.master(), kData, 0x20);
  out(pair.master(), kData, 0x04);
  out(pair.master(), kData, icw4_master);
  out(pair.slave(), kCmd, 0x11);
  out(pair.slave(), kData, 0x28);
  out(pair.slave(), kData, 0x02);
  out(pair.slave(), kData, icw4_slave);
}

void pulse(Pic8259Pair& pair, unsigned pin) {
  pair.set_irq(pin, true);
  pair.set_irq(pin, false);
}
}  // namespace

TEST_CASE("8259A delivery: an edge requests once, INTA moves it to ISR, EOI ends it", "[pic][delivery]") {
  Pic8259Pair pair;
  init_pair(pair);
  std::vector<bool> changes;
  pair.on_output_change([&](bool level) { changes.push_back(level); });
  REQUIRE_FALSE(pair.output());

  pair.set_irq(0, true);
  CHECK(pair.master().irr() == 0x01);
  CHECK(pair.output());
  CHECK(changes == std::vector<bool>{true});
  CHECK(pair.acknowledge() == 0x20);
  CHECK(pair.master().irr() == 0x00);  // edge: consumed by INTA
  CHECK(pair.master().isr() == 0x01);
  CHECK_FALSE(pair.output());
  CHECK(changes == std::vector<bool>{true, false});

  // The line is still high: no new edge, no request.
  pair.set_irq(0, true);
  CHECK(pair.master().irr() == 0x00);
  // A new edge is latched but waits behind its own level in service.
  pair.set_irq(0, false);
  pair.set_irq(0, true);
  CHECK(pair.master().irr() == 0x01);
  CHECK_FALSE(pair.output());
  pair.set_irq(0, false);  // edge requests stay latched when the line drops
  CHECK(pair.master().irr() == 0x01);
  out(pair.master(), kCmd, 0x20);  // non-specific EOI
  CHECK(pair.master().isr() == 0x00);
  CHECK(pair.output());
  CHECK(pair.acknowledge() == 0x20);
  CHECK(changes == std::vector<bool>{true, false, true, false});
}

TEST_CASE("8259A delivery: level-triggered inputs follow the line (ELCR)", "[pic][delivery]") {
  Pic8259Pair pair;
  init_pair(pair);
  pair.elcr().write(1, 1, 0x04);  // 0x4d1 bit 2: IRQ 10 level-triggered
  REQUIRE(pair.slave().elcr() == 0x04);

  pair.set_irq(10, true);
  CHECK(pair.slave().irr() == 0x04);
  CHECK(pair.master().irr() == 0x04);  // cascade request
  CHECK(pair.output());
  CHECK(pair.acknowledge() == 0x2a);
  CHECK(pair.slave().irr() == 0x04);  // level: the request is the line, INTA keeps it
  CHECK(pair.slave().isr() == 0x04);
  CHECK(pair.master().isr() == 0x04);
  CHECK_FALSE(pair.output());
  out(pair.slave(), kCmd, 0x20);
  out(pair.master(), kCmd, 0x20);
  CHECK(pair.output());  // still asserted: requests again after the EOIs
  pair.set_irq(10, false);
  CHECK(pair.slave().irr() == 0x00);
  // The master's cascade request was latched as an edge: INTA now finds nothing on the
  // slave, which answers with its IR7 vector (spurious IRQ 15).
  CHECK(pair.acknowledge() == 0x2f);
  CHECK(pair.slave().isr() == 0x00);
  CHECK(pair.master().isr() == 0x04);

  // Edge again: a pulse is latched.
  pair.elcr().write(1, 1, 0x00);
  out(pair.master(), kCmd, 0x20);
  pulse(pair, 10);
  CHECK(pair.slave().irr() == 0x04);
}

TEST_CASE("8259A delivery: switching a pin to level mode makes IRR its line", "[pic][delivery]") {
  Pic8259Pair pair;
  init_pair(pair);
  pulse(pair, 5);
  REQUIRE(pair.master().irr() == 0x20);
  pair.set_elcr_value(0x0020);  // IRQ 5 level, line low
  CHECK(pair.master().irr() == 0x00);
  CHECK_FALSE(pair.output());
  pair.set_irq(5, true);
  CHECK(pair.master().irr() == 0x20);
}

TEST_CASE("8259A delivery: the IMR holds requests back without dropping them", "[pic][delivery]") {
  Pic8259Pair pair;
  init_pair(pair);
  out(pair.master(), kData, 0x08);  // mask IRQ 3
  pulse(pair, 3);
  CHECK(pair.master().irr() == 0x08);
  CHECK_FALSE(pair.output());
  out(pair.master(), kData, 0x00);
  CHECK(pair.output());
  CHECK(pair.acknowledge() == 0x23);
  // Masking the cascade input holds back the whole slave.
  out(pair.master(), kCmd, 0x20);
  out(pair.master(), kData, 0x04);
  pulse(pair, 12);
  CHECK_FALSE(pair.output());
  out(pair.master(), kData, 0x00);
  CHECK(pair.acknowledge() == 0x2c);
  // A slave IMR bit holds back its level.
  out(pair.slave(), kCmd, 0x20);
  out(pair.master(), kCmd, 0x20);
  out(pair.slave(), kData, 0x01);
  pulse(pair, 8);
  CHECK_FALSE(pair.output());
}

TEST_CASE("8259A delivery: fixed priority, nesting, specific EOI", "[pic][delivery]") {
  Pic8259Pair pair;
  init_pair(pair);
  pulse(pair, 3);
  pulse(pair, 1);
  CHECK(pair.acknowledge() == 0x21);  // IR1 before IR3
  CHECK_FALSE(pair.output());         // IR3 is below IR1 in service
  pulse(pair, 0);
  CHECK(pair.output());  // IR0 nests above IR1
  CHECK(pair.acknowledge() == 0x20);
  CHECK(pair.master().isr() == 0x03);
  out(pair.master(), kCmd, 0x20);  // non-specific EOI: the highest in service, IR0
  CHECK(pair.master().isr() == 0x02);
  CHECK_FALSE(pair.output());
  out(pair.master(), kCmd, 0x63);  // specific EOI for IR3 (not in service): no change
  CHECK(pair.master().isr() == 0x02);
  out(pair.master(), kCmd, 0x61);  // specific EOI for IR1
  CHECK(pair.master().isr() == 0x00);
  CHECK(pair.acknowledge() == 0x23);
}

TEST_CASE("8259A delivery: priority rotation commands", "[pic][delivery]") {
  Pic8259Pair pair;
  init_pair(pair);
  SECTION("set priority: IR4 lowest makes IR5 highest") {
    out(pair.master(), kCmd, 0xc4);
    pulse(pair, 0);
    pulse(pair, 6);
    pulse(pair, 5);
    CHECK(pair.acknowledge() == 0x25);
    out(pair.master(), kCmd, 0x20);
    CHECK(pair.acknowledge() == 0x26);
    out(pair.master(), kCmd, 0x20);
    CHECK(pair.acknowledge() == 0x20);
  }
  SECTION("rotate on non-specific EOI: the ended level becomes the lowest") {
    pulse(pair, 1);
    CHECK(pair.acknowledge() == 0x21);
    out(pair.master(), kCmd, 0xa0);
    CHECK(pair.master().lowest_priority() == 1);
    pulse(pair, 0);
    pulse(pair, 3);
    CHECK(pair.acknowledge() == 0x23);  // IR2 is now highest, then IR3 ... IR0, IR1
  }
  SECTION("rotate on specific EOI") {
    pulse(pair, 4);
    CHECK(pair.acknowledge() == 0x24);
    out(pair.master(), kCmd, 0xe4);
    CHECK(pair.master().isr() == 0x00);
    CHECK(pair.master().lowest_priority() == 4);
    pulse(pair, 3);
    pulse(pair, 5);
    CHECK(pair.acknowledge() == 0x25);
  }
}

TEST_CASE("8259A delivery: automatic EOI, with and without rotation", "[pic][delivery]") {
  Pic8259Pair pair;
  init_pair(pair, 0x03);  // master: 8086 mode, AEOI
  REQUIRE(pair.master().auto_eoi());
  pulse(pair, 3);
  CHECK(pair.acknowledge() == 0x23);
  CHECK(pair.master().isr() == 0x00);  // ended by the INTA itself
  pulse(pair, 3);
  CHECK(pair.output());  // so the same level can come again at once
  CHECK(pair.master().lowest_priority() == 7);
  out(pair.master(), kCmd, 0x80);  // rotate in AEOI mode: set
  CHECK(pair.acknowledge() == 0x23);
  CHECK(pair.master().lowest_priority() == 3);
  pulse(pair, 10);  // through the master's IR2
  pulse(pair, 4);
  CHECK(pair.acknowledge() == 0x24);  // IR4 is highest after IR3 became lowest
  CHECK(pair.acknowledge() == 0x2a);  // then the cascade (IR2 comes after IR7..IR1)
}

TEST_CASE("8259A delivery: cascade through master IR2, special fully nested mode", "[pic][delivery]") {
  SECTION("fully nested: a slave request waits while the cascade is in service") {
    Pic8259Pair pair;
    init_pair(pair);
    pulse(pair, 12);
    CHECK(pair.output());
    CHECK(pair.acknowledge() == 0x2c);
    CHECK(pair.master().isr() == 0x04);
    CHECK(pair.slave().isr() == 0x10);
    pulse(pair, 9);  // slave IR1, above its IR4 in service
    CHECK(pair.master().irr() == 0x04);
    CHECK_FALSE(pair.output());  // the master's IR2 is in service
    out(pair.slave(), kCmd, 0x20);
    out(pair.master(), kCmd, 0x20);
    CHECK(pair.acknowledge() == 0x29);
  }
  SECTION("SFNM: the slave nests its higher level through the in-service cascade") {
    Pic8259Pair pair;
    init_pair(pair, 0x11);  // master ICW4: SFNM, 8086
    REQUIRE(pair.master().special_fully_nested());
    pulse(pair, 12);
    CHECK(pair.acknowledge() == 0x2c);
    pulse(pair, 13);  // lower than IR4 on the slave: still waits
    CHECK_FALSE(pair.output());
    pulse(pair, 9);
    CHECK(pair.output());
    CHECK(pair.acknowledge() == 0x29);
    CHECK(pair.slave().isr() == 0x12);
  }
  SECTION("a master level above IR2 nests over a slave interrupt") {
    Pic8259Pair pair;
    init_pair(pair);
    pulse(pair, 12);
    CHECK(pair.acknowledge() == 0x2c);
    pulse(pair, 3);
    CHECK_FALSE(pair.output());
    pulse(pair, 1);
    CHECK(pair.acknowledge() == 0x21);
  }
  SECTION("pin 2 is the cascade, not an input") {
    Pic8259Pair pair;
    init_pair(pair);
    pulse(pair, 2);
    pulse(pair, 16);
    CHECK(pair.master().irr() == 0x00);
    CHECK_FALSE(pair.output());
  }
}

TEST_CASE("8259A delivery: spurious IRQ 7 sets no ISR bit", "[pic][delivery]") {
  Pic8259Pair pair;
  init_pair(pair);
  CHECK(pair.acknowledge() == 0x27);
  CHECK(pair.master().isr() == 0x00);
  // A request masked between INT and INTA is gone by the INTA.
  pulse(pair, 5);
  REQUIRE(pair.output());
  out(pair.master(), kData, 0x20);
  CHECK(pair.acknowledge() == 0x27);
  CHECK(pair.master().isr() == 0x00);
  CHECK(pair.master().irr() == 0x20);  // still latched, waiting for the unmask
}

TEST_CASE("8259A delivery: special mask mode lets lower levels past a masked one in service", "[pic][delivery]") {
  Pic8259Pair pair;
  init_pair(pair);
  pulse(pair, 3);
  CHECK(pair.acknowledge() == 0x23);
  pulse(pair, 5);
  CHECK_FALSE(pair.output());
  out(pair.master(), kData, 0x08);  // mask IR3: not enough on its own
  CHECK_FALSE(pair.output());
  out(pair.master(), kCmd, 0x68);  // set special mask mode
  CHECK(pair.output());
  CHECK(pair.acknowledge() == 0x25);
  CHECK(pair.master().isr() == 0x28);
  out(pair.master(), kCmd, 0x48);  // reset special mask mode
  out(pair.master(), kCmd, 0x65);
  pulse(pair, 6);
  CHECK_FALSE(pair.output());  // IR3 in service holds IR6 back again
}

TEST_CASE("8259A delivery: the poll command is an INTA of one chip", "[pic][delivery]") {
  Pic8259Pair pair;
  init_pair(pair);
  out(pair.master(), kCmd, 0x0c);
  CHECK(in(pair.master(), kCmd) == 0x00);  // nothing requests: I = 0
  pulse(pair, 6);
  pulse(pair, 4);
  out(pair.master(), kCmd, 0x0c);
  CHECK(in(pair.master(), kCmd) == 0x84);
  CHECK(pair.master().isr() == 0x10);
  CHECK(pair.master().irr() == 0x40);
  CHECK(in(pair.master(), kCmd) == 0x40);  // the next read is the IRR again
  out(pair.master(), kCmd, 0x20);
  // The slave polled on its own.
  pulse(pair, 11);
  out(pair.slave(), kCmd, 0x0c);
  CHECK(in(pair.slave(), kCmd) == 0x83);
  CHECK(pair.slave().isr() == 0x08);
}

TEST_CASE("8259A delivery: ICW1 drops latched edges and in-service levels", "[pic][delivery]") {
  Pic8259Pair pair;
  init_pair(pair);
  pair.set_elcr_value(0x0800);  // IRQ 11 level
  pulse(pair, 4);
  CHECK(pair.acknowledge() == 0x24);
  pulse(pair, 6);
  pair.set_irq(11, true);
  init_pair(pair);
  CHECK(pair.master().irr() == 0x04);  // the level-triggered slave input still requests
  CHECK(pair.master().isr() == 0x00);
  CHECK(pair.slave().irr() == 0x08);
  CHECK(pair.acknowledge() == 0x2b);
  // An edge input high across the ICW1 must go low and high again.
  pair.set_irq(7, true);
  init_pair(pair);
  CHECK(pair.master().irr() == 0x04);  // only the level one
  pair.set_irq(7, true);
  CHECK((pair.master().irr() & 0x80) == 0);
  pair.set_irq(7, false);
  pair.set_irq(7, true);
  CHECK((pair.master().irr() & 0x80) == 0x80);
}

TEST_CASE("ELCR ports 0x4d0/0x4d1: writable bits and wide accesses", "[pic][elcr]") {
  Pic8259Pair pair;
  PioBus bus;
  REQUIRE(bus.add(Pic8259Elcr::kBase, Pic8259Elcr::kPorts, pair.elcr(), "elcr"));
  CHECK(std::string(bus.owner(0x4d0)) == "elcr");
  CHECK(std::string(bus.owner(0x4d1)) == "elcr");
  CHECK(bus.owner(0x4d2) == nullptr);
  CHECK(pair.elcr().read(0, 2) == 0x0000);
  pair.elcr().write(0, 1, 0xff);
  CHECK(pair.elcr().read(0, 1) == 0xf8);  // IRQ 0, 1, 2 stay edge
  pair.elcr().write(1, 1, 0xff);
  CHECK(pair.elcr().read(1, 1) == 0xde);  // IRQ 8 and 13 stay edge
  pair.elcr().write(0, 2, 0x0c20);
  CHECK(pair.elcr_value() == 0x0c20);
  CHECK(pair.master().elcr() == 0x20);
  CHECK(pair.slave().elcr() == 0x0c);
  CHECK(pair.elcr().read(1, 2) == 0xff0cu);  // lane past 0x4d1 floats
  pair.elcr().write(1, 4, 0x12345600);        // lane 0 (0x4d1) = 0x00, the rest dropped
  CHECK(pair.elcr_value() == 0x0020);
  CHECK(pair.elcr().read(0, 4) == 0xffff0020u);
}

TEST_CASE("8259A post-BIOS state: bases 0x08/0x70, IMR 0xb8/0x8e, ELCR 0x00/0x0c", "[pic][delivery]") {
  Pic8259Pair pair;
  pair.set_post_bios_state();
  const Pic8259& m = pair.master();
  const Pic8259& s = pair.slave();
  CHECK(m.initialised());
  CHECK(s.initialised());
  CHECK(m.vector_base() == 0x08);
  CHECK(s.vector_base() == 0x70);
  CHECK(m.icw3() == 0x04);
  CHECK(s.icw3() == 0x02);
  CHECK(m.icw4() == 0x01);
  CHECK(s.icw4() == 0x01);
  CHECK_FALSE(m.auto_eoi());
  CHECK(m.imr() == 0xb8);
  CHECK(s.imr() == 0x8e);
  CHECK(pair.elcr_value() == 0x0c00);
  // IRQ 11 is masked and level-triggered: a pc-testdev style pulse leaves nothing.
  pulse(pair, 11);
  CHECK_FALSE(pair.output());
  CHECK(s.irr() == 0x00);
  pulse(pair, 0);
  CHECK(pair.acknowledge() == 0x08);
  out(pair.master(), kCmd, 0x20);
  pulse(pair, 8);
  CHECK(pair.acknowledge() == 0x70);
  pulse(pair, 3);  // masked
  CHECK_FALSE(pair.output());
}

TEST_CASE("8259A pair snapshot: delivery state and output, no callback on restore", "[pic][snapshot]") {
  Pic8259Pair a;
  init_pair(a);
  a.set_elcr_value(0x0800);  // IRQ 11 level
  pulse(a, 1);
  CHECK(a.acknowledge() == 0x21);
  pulse(a, 12);
  a.set_irq(11, true);
  const Pic8259Pair::Snapshot s = a.save();
  // EOI both, INTA, four times; IRQ 11's line drops after the second.
  const auto run = [](Pic8259Pair& p) {
    std::string log;
    for (int i = 0; i < 4; ++i) {
      p.master().write(0, 1, 0x20);
      p.slave().write(0, 1, 0x20);
      const int vector = p.acknowledge();
      log += std::to_string(vector) + (p.output() ? "+" : "-") + ' ';
      if (i == 1) p.set_irq(11, false);
    }
    return log;
  };
  const std::string first = run(a);
  CHECK(first == "43- 43- 44- 39- ");  // 0x2b twice (level), then 0x2c, then spurious 0x27
  int calls = 0;
  a.on_output_change([&](bool) { ++calls; });
  pulse(a, 0);
  REQUIRE(calls > 0);
  const int before = calls;
  a.restore(s);
  CHECK(calls == before);
  CHECK_FALSE(a.output());  // the cascade request waits below IR1 in service...
  CHECK(a.master().isr() == 0x02);
  CHECK(a.master().irr() == 0x04);
  CHECK(a.slave().input_lines() == 0x08);
  out(a.master(), kCmd, 0x20);  // ...until the EOI
  CHECK(a.output());
  a.restore(s);
  CHECK(run(a) == first);
}
