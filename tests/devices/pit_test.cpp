// The 8254 PIT (devices/pit8254.h): the CLK grid, reads of running counters at exact
// virtual times in every mode, access modes, latch and read-back, BCD, counter 2's gate
// and port 0x61, counter 0's IRQ edges (mode 3 square wave, the BIOS state with the 8259
// delivering vector 0x08, lost ticks discarded, the EventQueue hookup) and snapshots.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "core/event_queue.h"
#include "core/pio_bus.h"
#include "devices/pic8259.h"
#include "devices/pit8254.h"

using namespace pvsim;

namespace {
constexpr uint16_t kCtrl = 3;

Tick at(int64_t pulse) { return Pit8254::pulse_time(pulse); }

void ctrl(Pit8254& p, uint8_t v, int64_t pulse) { p.write(kCtrl, 1, v, at(pulse)); }
void put(Pit8254& p, unsigned i, uint8_t v, int64_t pulse) { p.write(static_cast<uint16_t>(i), 1, v, at(pulse)); }
uint8_t get(Pit8254& p, unsigned i, int64_t pulse) {
  return static_cast<uint8_t>(p.read(static_cast<uint16_t>(i), 1, at(pulse)));
}
// LSB then MSB, as a two-byte-mode guest reads.
uint16_t get16(Pit8254& p, unsigned i, int64_t pulse) {
  const uint8_t lo = get(p, i, pulse);
  return static_cast<uint16_t>(lo | get(p, i, pulse) << 8);
}
void put16(Pit8254& p, unsigned i, uint16_t v, int64_t pulse) {
  put(p, i, static_cast<uint8_t>(v), pulse);
  put(p, i, static_cast<uint8_t>(v >> 8), pulse);
}
}  // namespace

TEST_CASE("8254: the CLK grid is 1193182 Hz on absolute virtual time", "[pit]") {
  CHECK(Pit8254::pulse_time(1).value() == 839);  // 838.095 ns, rounded up
  CHECK(Pit8254::pulses_at(Tick(838)) == 0);
  CHECK(Pit8254::pulses_at(Tick(839)) == 1);
  CHECK(Pit8254::pulse_time(1193182).value() == 1'000'000'000);
  for (int64_t p : {1LL, 2LL, 65536LL, 65537LL, 1193181LL, 123456789LL, 4'000'000'000'000LL}) {
    INFO("pulse " << p);
    CHECK(Pit8254::pulses_at(Pit8254::pulse_time(p)) == p);
    CHECK(Pit8254::pulses_at(Pit8254::pulse_time(p) - 1) == p - 1);
  }
}

TEST_CASE("8254 mode 0: count loads on the next pulse, OUT rises at terminal count", "[pit]") {
  Pit8254 p;
  const int64_t w = 1000;
  ctrl(p, 0x30, w);  // counter 0, LSB then MSB, mode 0, binary
  CHECK_FALSE(p.out(0, at(w)));
  CHECK(p.null_count(0, at(w)));
  put16(p, 0, 100, w);
  CHECK(p.null_count(0, at(w)));
  CHECK_FALSE(p.null_count(0, at(w + 1)));
  CHECK(get16(p, 0, w + 1) == 100);
  CHECK(get16(p, 0, w + 1 + 37) == 63);
  CHECK(p.out(0, at(w + 100)) == false);
  CHECK(get16(p, 0, w + 100) == 1);
  CHECK(p.out(0, at(w + 101)));
  CHECK(get16(p, 0, w + 101) == 0);
  CHECK(get16(p, 0, w + 102) == 0xffff);  // keeps counting, OUT stays high
  CHECK(p.out(0, at(w + 5000)));
  // Reads between pulses see the last one.
  CHECK(p.read(0, 1, at(w + 50) + 100) == 51);
  CHECK(p.read(0, 1, at(w + 50) + 100) == 0);

  // A new count restarts; its first byte already stops counting and drops OUT.
  put(p, 0, 0x10, w + 6000);
  CHECK_FALSE(p.out(0, at(w + 6000)));
  const uint16_t frozen = p.count(0, at(w + 6000));
  CHECK(p.count(0, at(w + 7000)) == frozen);
  put(p, 0, 0x00, w + 7000);
  CHECK(p.count(0, at(w + 7001)) == 0x10);
  CHECK(p.count(0, at(w + 7001 + 16)) == 0);
  CHECK(p.out(0, at(w + 7001 + 16)));
}

TEST_CASE("8254 mode 2: N..1, OUT low while the count is 1", "[pit]") {
  Pit8254 p;
  ctrl(p, 0x14, 10);  // counter 0, LSB only, mode 2
  put(p, 0, 5, 10);
  std::string seen;
  for (int64_t c = 11; c < 11 + 11; ++c)
    seen += std::to_string(p.count(0, at(c))) + (p.out(0, at(c)) ? "H " : "L ");
  CHECK(seen == "5H 4H 3H 2H 1L 5H 4H 3H 2H 1L 5H ");
  // Mode 6 is mode 2 (M2 is don't-care).
  ctrl(p, 0x1c, 100);
  CHECK(p.counter(0).mode == 2);
}

TEST_CASE("8254 mode 3: square wave, even and odd counts", "[pit]") {
  Pit8254 p;
  std::string seen;
  SECTION("even") {
    ctrl(p, 0x16, 0);  // counter 0, LSB, mode 3
    put(p, 0, 6, 0);
    for (int64_t c = 1; c <= 12; ++c) seen += std::to_string(p.count(0, at(c))) + (p.out(0, at(c)) ? "H " : "L ");
    CHECK(seen == "6H 4H 2H 6L 4L 2L 6H 4H 2H 6L 4L 2L ");
  }
  SECTION("odd: high (N+1)/2, low (N-1)/2, from N-1 by twos") {
    ctrl(p, 0x16, 0);
    put(p, 0, 5, 0);
    for (int64_t c = 1; c <= 10; ++c) seen += std::to_string(p.count(0, at(c))) + (p.out(0, at(c)) ? "H " : "L ");
    CHECK(seen == "4H 2H 0H 4L 2L 4H 2H 0H 4L 2L ");
  }
  SECTION("mode 7 is mode 3") {
    ctrl(p, 0x1e, 0);
    CHECK(p.counter(0).mode == 3);
  }
}

TEST_CASE("8254 mode 4: one low pulse at terminal count", "[pit]") {
  Pit8254 p;
  ctrl(p, 0x18, 0);  // counter 0, LSB, mode 4
  CHECK(p.out(0, at(0)));
  put(p, 0, 3, 0);
  std::string seen;
  for (int64_t c = 1; c <= 6; ++c) seen += std::to_string(p.count(0, at(c))) + (p.out(0, at(c)) ? "H " : "L ");
  CHECK(seen == "3H 2H 1H 0L 65535H 65534H ");
}

TEST_CASE("8254 counter 2 gate (port 0x61): modes 1 and 5 wait for a trigger, 2 restarts", "[pit]") {
  Pit8254 p;
  CHECK(p.read_port61(at(0)) == 0x00);
  SECTION("mode 1: a one-shot of N pulses, OUT2 on port 0x61 bit 5") {
    ctrl(p, 0x92, 0);  // counter 2, LSB, mode 1
    put(p, 2, 4, 0);
    CHECK(p.out(2, at(100)));
    CHECK(p.null_count(2, at(100)));
    p.write_port61(0x01, at(100));  // gate rises: trigger
    CHECK((p.read_port61(at(100)) & 0x21) == 0x21);
    std::string seen;
    for (int64_t c = 101; c <= 106; ++c) seen += std::to_string(p.count(2, at(c))) + (p.out(2, at(c)) ? "H " : "L ");
    CHECK(seen == "4L 3L 2L 1L 0H 65535H ");
    CHECK((p.read_port61(at(102)) & 0x20) == 0x00);
    CHECK((p.read_port61(at(105)) & 0x20) == 0x20);
    // Retrigger: low gate, then high again.
    p.write_port61(0x00, at(200));
    p.write_port61(0x01, at(201));
    CHECK_FALSE(p.out(2, at(202)));
    CHECK(p.out(2, at(206)));
  }
  SECTION("mode 5: a strobe after the trigger") {
    ctrl(p, 0x9a, 0);  // counter 2, LSB, mode 5
    put(p, 2, 2, 0);
    p.write_port61(0x03, at(10));
    CHECK(p.port61_bits() == 0x03);
    CHECK(p.out(2, at(12)));
    CHECK_FALSE(p.out(2, at(13)));
    CHECK(p.out(2, at(14)));
  }
  SECTION("mode 2: the gate's rising edge reloads") {
    p.write_port61(0x01, at(0));
    ctrl(p, 0x94, 0);
    put(p, 2, 10, 0);
    CHECK(p.count(2, at(5)) == 6);
    p.write_port61(0x00, at(5));
    p.write_port61(0x01, at(5));
    CHECK(p.count(2, at(6)) == 10);
  }
  SECTION("the refresh bit toggles with virtual time") {
    CHECK((p.read_port61(Tick(0)) & 0x10) == 0);
    CHECK((p.read_port61(Tick(16384)) & 0x10) == 0x10);
    CHECK((p.read_port61(Tick(32768)) & 0x10) == 0);
  }
}

TEST_CASE("8254 access modes: LSB only, MSB only, LSB then MSB", "[pit]") {
  Pit8254 p;
  ctrl(p, 0x20, 0);  // counter 0, MSB only, mode 0
  put(p, 0, 0x12, 0);
  CHECK(p.count(0, at(1)) == 0x1200);
  CHECK(get(p, 0, 1) == 0x12);
  CHECK(get(p, 0, 1) == 0x12);  // MSB again: no flip-flop
  ctrl(p, 0x10, 10);            // LSB only
  put(p, 0, 0x34, 10);
  CHECK(get(p, 0, 11) == 0x34);
  ctrl(p, 0x30, 20);
  put16(p, 0, 0xabcd, 20);
  CHECK(get(p, 0, 21) == 0xcd);
  CHECK(get(p, 0, 21) == 0xab);
  CHECK(get(p, 0, 22) == 0xcc);
  // A never programmed counter ignores count writes.
  put(p, 1, 0x55, 30);
  CHECK_FALSE(p.counter(1).has_count);
  // The control word register reads as a floating bus; wide accesses split into lanes.
  CHECK(p.read(kCtrl, 1, at(30)) == 0xff);
  p.write(0, 2, 0x3000, at(40));  // lane 0: LSB for counter 0; lane 1: 0x30 to counter 1 (dropped)
  CHECK(p.counter(0).write_msb);
  CHECK_FALSE(p.counter(1).has_count);
}

TEST_CASE("8254 counter latch: held across time, one latch until read", "[pit]") {
  Pit8254 p;
  ctrl(p, 0x34, 0);  // counter 0, LSB then MSB, mode 2
  put16(p, 0, 1000, 0);
  ctrl(p, 0x00, 101);  // latch counter 0 at 1000 - 100
  ctrl(p, 0x00, 300);  // ignored: the first latch is unread
  CHECK(get(p, 0, 500) == (900 & 0xff));
  CHECK(get(p, 0, 700) == (900 >> 8));
  // Released: live again.
  CHECK(get16(p, 0, 801) == 200);
  // A new latch, read later.
  ctrl(p, 0x00, 851);
  CHECK(get16(p, 0, 900) == 150);
}

TEST_CASE("8254 read-back: status and count of several counters", "[pit]") {
  Pit8254 p;
  ctrl(p, 0x36, 0);  // counter 0, LSB then MSB, mode 3
  put16(p, 0, 0, 0);
  ctrl(p, 0x74, 0);  // counter 1, LSB then MSB, mode 2
  SECTION("status then count") {
    ctrl(p, 0xc6, 11);  // count and status, counters 0 and 1
    CHECK(get(p, 0, 20) == (0x80 | 0x36));  // OUT high, count loaded, control 0x36
    CHECK(get16(p, 0, 30) == (65536 - 2 * 10) % 65536);
    CHECK(get(p, 1, 40) == (0x80 | 0x40 | 0x34));  // no count yet: NULL COUNT
    CHECK(get(p, 1, 40) == 0x00);                  // its CE (undefined before a count)
  }
  SECTION("status only; NULL COUNT until the load pulse") {
    put16(p, 1, 50, 40);
    ctrl(p, 0xe4, 40);  // status only, counter 1
    CHECK(get(p, 1, 41) == (0x80 | 0x40 | 0x34));
    ctrl(p, 0xe4, 41);
    CHECK(get(p, 1, 41) == (0x80 | 0x34));
    ctrl(p, 0xd2, 49);  // count only, counter 0 (mode 3, period 65536: falls at 32768)
    CHECK(get16(p, 0, 60) == (65536 - 2 * 48) % 65536);
  }
}

TEST_CASE("8254 BCD counting", "[pit]") {
  Pit8254 p;
  ctrl(p, 0x31, 0);  // counter 0, LSB then MSB, mode 0, BCD
  put16(p, 0, 0x0100, 0);
  CHECK(p.count(0, at(1)) == 0x0100);
  CHECK(p.count(0, at(2)) == 0x0099);
  CHECK(p.count(0, at(1 + 100)) == 0x0000);
  CHECK(p.count(0, at(1 + 101)) == 0x9999);
  CHECK(p.out(0, at(1 + 100)));
  ctrl(p, 0x35, 200);  // mode 2, BCD, count 0 = 10000
  put16(p, 0, 0, 200);
  CHECK(p.count(0, at(201)) == 0x0000);
  CHECK(p.count(0, at(202)) == 0x9999);
  CHECK(p.count(0, at(201 + 10000)) == 0x0000);  // reloaded after 10000 pulses
}

TEST_CASE("8254 modes 2 and 3: a new count waits for the end of the (half) period", "[pit]") {
  Pit8254 p;
  SECTION("mode 2: end of the period") {
    ctrl(p, 0x14, 0);
    put(p, 0, 10, 0);
    put(p, 0, 4, 3);  // CE is 8
    CHECK(p.count(0, at(4)) == 7);
    CHECK(p.null_count(0, at(10)));
    CHECK(p.count(0, at(10)) == 1);
    CHECK(p.count(0, at(11)) == 4);
    CHECK_FALSE(p.null_count(0, at(11)));
    CHECK(p.count(0, at(15)) == 4);
  }
  SECTION("mode 3: end of the half period, starting in the low half") {
    ctrl(p, 0x16, 0);
    put(p, 0, 10, 0);
    put(p, 0, 4, 2);   // pulse 2 of the high half (CE 8)
    CHECK(p.count(0, at(5)) == 2);
    CHECK(p.out(0, at(5)));
    std::string seen;
    for (int64_t c = 6; c <= 11; ++c) seen += std::to_string(p.count(0, at(c))) + (p.out(0, at(c)) ? "H " : "L ");
    CHECK(seen == "4L 2L 4H 2H 4L 2L ");
  }
}

TEST_CASE("8254 IRQ 0: mode 3 rises once per period, at exact pulse times", "[pit][irq]") {
  Pit8254 p;
  std::vector<bool> line;
  p.on_irq([&](bool level) { line.push_back(level); });
  CHECK_FALSE(p.next_irq_ns(Tick(0)));  // never programmed: no edges
  ctrl(p, 0x36, 100);
  put16(p, 0, 1000, 100);
  // Loaded at pulse 101; OUT rises at 101 + 1000 m.
  Tick now = at(100);
  for (int m = 1; m <= 5; ++m) {
    const std::optional<Tick> next = p.next_irq_ns(now);
    REQUIRE(next);
    CHECK(*next == at(101 + 1000 * m));
    CHECK_FALSE(p.fire_until(*next - 1));
    CHECK(p.fire_until(*next));
    CHECK_FALSE(p.fire_until(*next));  // handled once
    now = *next;
  }
  CHECK(line.size() == 10);
  for (size_t i = 0; i < line.size(); ++i) CHECK(line[i] == (i % 2 == 0));
  // The falling half raises nothing.
  CHECK_FALSE(p.fire_until(at(101 + 5000 + 600)));
  // Mode 0 rises once; mode 4 after its strobe.
  ctrl(p, 0x30, 10000);
  put16(p, 0, 7, 10000);
  CHECK(p.next_irq_ns(at(10000)) == at(10001 + 7));
  CHECK(p.fire_until(at(20000)));
  CHECK_FALSE(p.next_irq_ns(at(20000)));
  ctrl(p, 0x38, 30000);
  put16(p, 0, 7, 30000);
  CHECK(p.next_irq_ns(at(30000)) == at(30001 + 8));
  CHECK(p.fire_until(at(35000)));
  // Counter 2 in mode 3 does not drive IRQ 0.
  p.write_port61(0x01, at(40000));
  ctrl(p, 0xb6, 40000);
  put16(p, 2, 2, 40000);
  CHECK_FALSE(p.fire_until(at(50000)));
  CHECK_FALSE(p.next_irq_ns(at(50000)));
  CHECK(p.count(2, at(40002)) == 2);
}

TEST_CASE("8254 IRQ 0: a reprogramming delivers the edges due under the old count first", "[pit][irq]") {
  Pit8254 p;
  int edges = 0;
  p.on_irq([&](bool level) { edges += level; });
  ctrl(p, 0x34, 0);
  put16(p, 0, 100, 0);
  ctrl(p, 0x34, 150);  // the rise at pulse 101 was never fired by the platform
  CHECK(edges == 1);
  put16(p, 0, 100, 150);
  CHECK(p.next_irq_ns(at(150)) == at(251));
}

TEST_CASE("8254 BIOS state: 18.2 Hz edges into the 8259 deliver vector 0x08", "[pit][irq]") {
  Pit8254 pit;
  Pic8259Pair pic;
  pic.set_post_bios_state();
  pit.on_irq([&](bool level) { pic.set_irq(0, level); });
  pit.set_bios_state(Tick(0));
  CHECK(pit.counter(0).mode == 2);
  CHECK(pit.counter(0).control == 0x34);
  CHECK(pit.count(0, at(1)) == 0);  // 65536
  CHECK(pit.count(0, at(2)) == 65535);

  // Counted from the load pulse (1): edge m at pulse 1 + 65536 m, i.e. at
  // ceil((1 + 65536 m) * 1e9 / 1193182) ns: 54925.4 us apart on average, each edge
  // rounded up to a whole nanosecond on the absolute grid (so 54925401 or 54925402 ns).
  Tick now{0};
  std::vector<uint64_t> times;
  for (int m = 1; m <= 40; ++m) {
    const std::optional<Tick> next = pit.next_irq_ns(now);
    REQUIRE(next);
    CHECK(*next == at(1 + 65536LL * m));
    REQUIRE(pit.fire_until(*next));
    times.push_back(next->value());
    CHECK(pic.output());
    CHECK(pic.acknowledge() == 0x08);
    CHECK_FALSE(pic.output());
    pic.master().write(0, 1, 0x20);  // the firmware handler's EOI
    now = *next;
  }
  CHECK(times.front() == 54926240);
  for (size_t i = 1; i < times.size(); ++i) {
    const uint64_t d = times[i] - times[i - 1];
    CHECK((d == 54925401 || d == 54925402));
  }
  // 39 periods of 65536 / 1193182 s = 2142090.64 us, rounded up at the last edge.
  CHECK(times.back() - times.front() == 2142090645);
}

TEST_CASE("8254 IRQ 0: lost ticks are discarded, not queued", "[pit][irq]") {
  Pit8254 pit;
  Pic8259Pair pic;
  pic.set_post_bios_state();
  int raises = 0;
  pit.on_irq([&](bool level) {
    raises += level;
    pic.set_irq(0, level);
  });
  pit.set_bios_state(Tick(0));
  // Ten periods pass before anyone looks: one pulse, one request.
  CHECK(pit.fire_until(at(1 + 65536LL * 10)));
  CHECK(raises == 1);
  CHECK(pic.acknowledge() == 0x08);
  pic.master().write(0, 1, 0x20);
  CHECK_FALSE(pic.output());
  CHECK(pit.next_irq_ns(at(1 + 65536LL * 10)) == at(1 + 65536LL * 11));
  // An edge while IRR 0 is still set merges into that request.
  CHECK(pit.fire_until(at(1 + 65536LL * 11)));
  CHECK(pit.fire_until(at(1 + 65536LL * 12)));
  CHECK(raises == 3);
  CHECK(pic.acknowledge() == 0x08);
  CHECK_FALSE(pic.output());
}

TEST_CASE("8254 on the EventQueue: its Event follows the programming", "[pit][irq]") {
  EventQueue q;
  Pit8254 pit;
  std::vector<uint64_t> raised;
  Tick fired{};
  pit.on_irq([&](bool level) {
    if (level) raised.push_back(fired.value());
  });
  pit.attach_events(q, Tick(0));
  CHECK_FALSE(pit.irq_armed());
  pit.set_bios_state(Tick(0));
  CHECK(pit.irq_armed());
  REQUIRE(q.next_time());
  CHECK(*q.next_time() == at(65537));
  // One virtual second: 18 edges.
  while (q.next_time() && *q.next_time() <= Tick(1'000'000'000)) {
    fired = *q.next_time();
    q.run_one(fired);
  }
  CHECK(raised.size() == 18);
  CHECK(raised.back() == at(1 + 65536LL * 18).value());
  // Counter 0 reprogrammed to mode 0, past its terminal count: nothing left to arm.
  pit.write(kCtrl, 1, 0x30, Tick(1'000'000'000));
  CHECK_FALSE(pit.irq_armed());
}

TEST_CASE("8254 on the port bus: 0x40-0x43 and 0x61", "[pit]") {
  PioBus bus;
  Pit8254 pit;
  REQUIRE(bus.add(Pit8254::kBase, Pit8254::kPorts, pit, "pit"));
  REQUIRE(bus.add(Pit8254::kPort61, 1, pit.port61(), "pit-port61"));
  CHECK(std::string(bus.owner(0x40)) == "pit");
  CHECK(std::string(bus.owner(0x43)) == "pit");
  CHECK(bus.owner(0x44) == nullptr);
  CHECK(std::string(bus.owner(0x61)) == "pit-port61");
  CHECK(bus.owner(0x60) == nullptr);
  CHECK(bus.owner(0x62) == nullptr);
}

TEST_CASE("8254 snapshot: counters, latches and IRQ progress as the twin's", "[pit][snapshot]") {
  const auto program = [](Pit8254& p) {
    ctrl(p, 0x36, 0);
    put16(p, 0, 1234, 0);
    ctrl(p, 0xb0, 5);  // counter 2, mode 0
    put(p, 2, 0x40, 6);  // first byte only
    ctrl(p, 0x40, 7);    // latch counter 1 (never programmed)
    p.fire_until(at(3000));
  };
  const auto observe = [](Pit8254& p, int64_t c) {
    std::string o;
    for (int64_t k = c; k < c + 3000; k += 97) {
      o += std::to_string(get(p, 0, k)) + ',' + std::to_string(get(p, 1, k)) + ',' +
           std::to_string(get(p, 2, k)) + ',' + std::to_string(p.read_port61(at(k))) + ',' +
           std::to_string(p.fire_until(at(k))) + ' ';
    }
    return o;
  };
  Pit8254 a, twin;
  program(a);
  program(twin);
  const Pit8254::Snapshot s = a.save();
  ctrl(a, 0x14, 4000);
  put(a, 0, 3, 4000);
  a.write_port61(0x01, at(4000));
  a.restore(s);
  CHECK(a.save().state == twin.save().state);
  CHECK(observe(a, 5000) == observe(twin, 5000));
}
