// Snapshots of the port devices (tools/platform/README.md "Snapshots"): DebugCon,
// ExitPorts and the 8259A pair. Each is saved, driven elsewhere, restored, and from then on
// must behave exactly like a twin that was never driven elsewhere.
#include <catch2/catch.hpp>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/guest_memory.h"
#include "core/trace.h"
#include "core/vcpu.h"
#include "devices/debugcon.h"
#include "devices/exit_ports.h"
#include "devices/pic8259.h"
#include "tests/cpu_envs.h"

using namespace pvsim;

namespace {

// splitmix64: a fixed, portable sequence (no std:: distributions).
struct Rng {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  uint32_t below(uint32_t n) { return static_cast<uint32_t>(next() % n); }
  bool chance(uint32_t percent) { return below(100) < percent; }
};

// Bare vCPUs for the PioDevice interface (the devices only ask for the index and stop).
struct Vcpus {
  explicit Vcpus(unsigned n) : mem(16 * kPageSize) {
    for (unsigned i = 0; i < n; ++i) {
      VcpuConfig c;
      c.index = i;
      c.count = n;
      v.push_back(std::make_unique<Vcpu>(c, mem, env, tracer));
    }
  }
  Vcpu& operator[](unsigned i) { return *v[i]; }
  GuestMemory mem;
  Tracer tracer;
  test::NullEnv env;
  std::vector<std::unique_ptr<Vcpu>> v;
};

// ------------------------------------------------------------------ DebugCon

struct Console {
  Console(bool keep, uint64_t limit) {
    con.set_keep(keep);
    con.set_live_output(&live);
    con.set_limit(limit, [this] { ++limit_calls; });
  }
  std::string observe() const {
    std::ostringstream o;
    o << con.bytes() << '/' << con.ends_with_newline() << '/' << limit_calls << '/'
      << con.output();
    return o.str();
  }
  DebugCon con;
  std::ostringstream live;
  int limit_calls = 0;
};

// Writes through the port as a guest would (OUT of 1, 2 or 4 bytes; the low byte counts)
// and reads the presence value back now and then.
std::string write_console(Console& c, Vcpu& v, Rng& g, int n, bool observe_each) {
  std::string log;
  for (int i = 0; i < n; ++i) {
    const uint32_t byte = g.chance(15) ? '\n' : 'a' + g.below(26);
    c.con.pio_write(v, 0, 1u << g.below(3), (g.below(0x1000000) << 8) | byte);
    if (g.chance(5)) {
      uint32_t x = 0;
      c.con.pio_read(v, 0, 1, x);
      log += std::to_string(x) + ' ';
    }
    if (observe_each) log += c.observe() + '\n';
  }
  return log;
}

}  // namespace

TEST_CASE("DebugCon snapshot: text, byte count, newline and limit state as the twin's", "[devices][snapshot]") {
  Vcpus v(1);
  for (uint64_t seed = 1; seed <= 60; ++seed) {
    const bool keep = seed % 5 != 0;
    const uint64_t limit = seed % 3 == 0 ? 0 : 150 + seed;  // mostly reached in the drives
    INFO("seed " << seed << " keep " << keep << " limit " << limit);
    Console a(keep, limit), b(keep, limit);
    Rng ga{seed}, gb{seed};
    const int prefix = static_cast<int>(Rng{seed * 31}.below(200));
    write_console(a, v[0], ga, prefix, false);
    write_console(b, v[0], gb, prefix, false);
    const DebugCon::Snapshot s = a.con.save();
    const int calls_at_save = a.limit_calls;
    const std::string live_at_save = a.live.str();

    Rng detour{seed * 7919 + 1};
    write_console(a, v[0], detour, 220, false);
    const std::string detour_live = a.live.str().substr(live_at_save.size());
    a.con.restore(s);
    a.limit_calls = calls_at_save;  // the callback's counter is the test's, not the device's
    CHECK(a.observe() == b.observe());
    CHECK(a.con.save().state == b.con.save().state);

    Rng sa{seed * 104729}, sb{seed * 104729};
    const std::string b_log = write_console(b, v[0], sb, 250, true);
    CHECK(write_console(a, v[0], sa, 250, true) == b_log);
    // The live stream is not rewound: it has the detour's bytes, then what b printed.
    CHECK(a.live.str() == live_at_save + detour_live + b.live.str().substr(live_at_save.size()));

    // Restoring the same snapshot again works as well.
    a.con.restore(s);
    a.limit_calls = calls_at_save;
    Rng again{seed * 104729};
    Console c(keep, limit);  // a third twin, driven only by the prefix and the suffix
    Rng gc{seed}, sc{seed * 104729};
    write_console(c, v[0], gc, prefix, false);
    CHECK(a.observe() == c.observe());
    CHECK(write_console(a, v[0], again, 250, true) == write_console(c, v[0], sc, 250, true));
  }
}

TEST_CASE("DebugCon snapshot: the kept text is truncated to its saved length", "[devices][snapshot]") {
  Vcpus v(1);
  Console c(true, 0);
  for (char ch : std::string("boot\n")) c.con.pio_write(v[0], 0, 1, static_cast<uint8_t>(ch));
  const DebugCon::Snapshot s1 = c.con.save();
  CHECK(s1.kept == 5);
  for (char ch : std::string("more")) c.con.pio_write(v[0], 0, 1, static_cast<uint8_t>(ch));
  const DebugCon::Snapshot s2 = c.con.save();
  CHECK_FALSE(c.con.ends_with_newline());
  c.con.restore(s1);
  CHECK(c.con.output() == "boot\n");
  CHECK(c.con.bytes() == 5);
  CHECK(c.con.ends_with_newline());
  CHECK(c.live.str() == "boot\nmore");  // already streamed: stays
  // s2 belongs to the history that the restore of s1 discarded.
  CHECK_THROWS_AS(c.con.restore(s2), std::logic_error);
}

// ------------------------------------------------------------------ ExitPorts

namespace {

std::string observe(const ExitPorts& p) {
  std::ostringstream o;
  o << p.exit_requested() << '/' << int(p.exit_status()) << '/' << p.exit_vcpu() << '/'
    << p.all_finished() << '/';
  for (unsigned i = 0; i < 4; ++i) o << p.finished(i);
  return o.str();
}

std::string drive_exit(ExitPorts& p, Vcpus& v, Rng& g, int n) {
  std::string log;
  for (int i = 0; i < n; ++i) {
    Vcpu& who = v[g.below(3)];
    if (g.chance(30)) {
      p.pio_write(who, 0, 1, g.below(256));  // 0xf4
    } else if (g.chance(90)) {
      p.pio_write(who, 1, 1, g.below(256));  // 0xf5
    } else {
      uint32_t x = 0;
      p.pio_read(who, g.below(2), 1, x);
      log += std::to_string(x);
    }
    log += observe(p) + '\n';
  }
  return log;
}

}  // namespace

TEST_CASE("ExitPorts snapshot: exit request, status, writer and finished vCPUs", "[devices][snapshot]") {
  Vcpus v(3);
  for (uint64_t seed = 1; seed <= 200; ++seed) {
    INFO("seed " << seed);
    ExitPorts a(3), b(3);
    const int prefix = static_cast<int>(seed % 3);  // 0-2 writes: usually no exit yet
    Rng ga{seed}, gb{seed};
    drive_exit(a, v, ga, prefix);
    drive_exit(b, v, gb, prefix);
    const ExitPorts::Snapshot s = a.save();
    Rng detour{seed * 7919 + 5};
    drive_exit(a, v, detour, 6);
    a.restore(s);
    CHECK(observe(a) == observe(b));
    CHECK(a.save().state == b.save().state);
    Rng sa{seed * 104729}, sb{seed * 104729};
    const std::string b_log = drive_exit(b, v, sb, 5);
    CHECK(drive_exit(a, v, sa, 5) == b_log);
    a.restore(s);
    ExitPorts c(3);
    Rng gc{seed}, sc{seed * 104729}, again{seed * 104729};
    drive_exit(c, v, gc, prefix);
    CHECK(drive_exit(a, v, again, 5) == drive_exit(c, v, sc, 5));
  }
}

TEST_CASE("ExitPorts snapshot: a restored exit request is the saved one, later ones lose", "[devices][snapshot]") {
  Vcpus v(3);
  ExitPorts p(3), twin(3);
  const ExitPorts::Snapshot empty = p.save();
  for (ExitPorts* e : {&p, &twin}) {
    e->pio_write(v[1], 1, 1, 0);  // vCPU 1 finished
    e->pio_write(v[2], 0, 1, 3);  // exit, status 7, by vCPU 2
  }
  const ExitPorts::Snapshot s = p.save();
  p.restore(empty);
  CHECK_FALSE(p.exit_requested());
  CHECK_FALSE(p.finished(1));
  p.pio_write(v[0], 0, 1, 9);
  CHECK(p.exit_status() == 19);
  p.restore(s);
  CHECK(p.exit_status() == 7);
  CHECK(p.exit_vcpu() == 2);
  CHECK(p.finished(1));
  p.pio_write(v[0], 0, 1, 9);  // the first request wins
  twin.pio_write(v[0], 0, 1, 9);
  CHECK(p.exit_status() == 7);
  CHECK(observe(p) == observe(twin));
}

// ------------------------------------------------------------------ 8259A pair

namespace {

std::string observe(const Pic8259& p) {
  std::ostringstream o;
  auto opt = [](std::optional<uint8_t> x) { return x ? int(*x) : -1; };
  o << int(p.imr()) << '/' << int(p.irr()) << '/' << int(p.isr()) << '/' << int(p.init_step())
    << '/' << p.initialised() << '/' << int(p.icw1()) << '/' << int(p.icw2()) << '/'
    << int(p.icw3()) << '/' << int(p.icw4()) << '/' << p.special_mask_mode() << '/'
    << p.reads_isr() << '/' << p.poll_pending() << '/' << p.rotate_in_auto_eoi() << '/'
    << int(p.lowest_priority()) << '/' << opt(p.last_ocw2()) << '/' << opt(p.last_ocw3());
  return o.str();
}
std::string observe(const Pic8259Pair& p) { return observe(p.master()) + " " + observe(p.slave()); }

// A command or data byte shaped like what guests write: ICW1 (D4 = 1), OCW2 (D4 = D3 = 0),
// OCW3 (D4 = 0, D3 = 1), or any data byte.
uint8_t random_pic_byte(Rng& g, uint16_t offset) {
  if (offset == 1) return static_cast<uint8_t>(g.below(256));
  switch (g.below(3)) {
    case 0:
      return static_cast<uint8_t>(0x10 | g.below(16));
    case 1:
      return static_cast<uint8_t>(g.below(8) << 5 | g.below(8));
    default:
      return static_cast<uint8_t>(0x08 | (g.below(8) << 4 & 0x60) | g.below(8));
  }
}

std::string drive_pic(Pic8259Pair& p, Rng& g, int n, bool observe_each) {
  std::string log;
  for (int i = 0; i < n; ++i) {
    Pic8259& chip = g.chance(50) ? p.master() : p.slave();
    const auto offset = static_cast<uint16_t>(g.below(2));
    if (g.chance(70)) {
      chip.write(offset, 1, random_pic_byte(g, offset));
    } else {
      log += std::to_string(chip.read(offset, 1u << g.below(2))) + ' ';
    }
    if (observe_each) log += observe(p) + '\n';
  }
  return log;
}

}  // namespace

TEST_CASE("8259A pair snapshot: registers, init sequence, modes and last OCWs as the twin's", "[devices][snapshot]") {
  for (uint64_t seed = 1; seed <= 200; ++seed) {
    INFO("seed " << seed);
    Pic8259Pair a, b;
    Rng ga{seed}, gb{seed};
    drive_pic(a, ga, 40, false);
    drive_pic(b, gb, 40, false);
    const Pic8259Pair::Snapshot s = a.save();
    Rng detour{seed * 7919 + 7};
    drive_pic(a, detour, 60, false);
    a.restore(s);
    CHECK(observe(a) == observe(b));
    CHECK(a.save().master.state == b.save().master.state);
    CHECK(a.save().slave.state == b.save().slave.state);
    Rng sa{seed * 104729}, sb{seed * 104729};
    const std::string b_log = drive_pic(b, sb, 60, true);
    CHECK(drive_pic(a, sa, 60, true) == b_log);
    a.restore(s);
    Pic8259Pair c;
    Rng gc{seed}, sc{seed * 104729}, again{seed * 104729};
    drive_pic(c, gc, 40, false);
    CHECK(drive_pic(a, again, 60, true) == drive_pic(c, sc, 60, true));
  }
}

TEST_CASE("8259A pair snapshot: master and slave are saved apart", "[devices][snapshot]") {
  Pic8259Pair p;
  p.master().write(0, 1, 0x11);  // master mid-initialisation, waiting for ICW2
  p.slave().write(1, 1, 0xa5);   // slave IMR
  const Pic8259Pair::Snapshot s = p.save();
  p.master().write(1, 1, 0x20);
  p.slave().write(1, 1, 0x00);
  p.restore(s);
  CHECK(p.master().init_step() == Pic8259::InitStep::Icw2);
  CHECK(p.slave().imr() == 0xa5);
  p.master().write(1, 1, 0x30);  // the ICW2 the master was waiting for
  CHECK(p.master().vector_base() == 0x30);
  CHECK(p.slave().init_step() == Pic8259::InitStep::Ready);
}
