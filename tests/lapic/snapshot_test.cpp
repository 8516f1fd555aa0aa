// LocalApic snapshots (devices/lapic.h, tools/platform/README.md "Snapshots"): an APIC that
// is saved, driven elsewhere and restored (together with its EventQueue and the clock, as
// the platform does) behaves from then on exactly like a twin that was never driven
// elsewhere: same register reads, same trace lines, same sink calls, same timer expiries.
#include <catch2/catch.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "core/trace.h"
#include "lapic_harness.h"

using namespace pvsim;
using namespace pvsim::lapic;
using pvsim::test::Harness;

namespace {

// splitmix64: a fixed, portable sequence (no std:: distributions, README rule).
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

// A traced APIC on a 100 MHz bus (10 ns per count, so counts and Ticks differ) with a
// 2.5 GHz TSC.
struct Rig {
  Rig() : h(config(tracer)) { tracer.set_text_output(&os); }
  static LapicConfig config(Tracer& t) {
    LapicConfig c;
    c.apic_id = 2;
    c.bus_hz = 100'000'000;
    c.tsc_hz = 2'500'000'000;
    c.tracer = &t;
    return c;
  }
  std::ostringstream os;
  Tracer tracer;
  Harness h;
};

// What the platform saves for one APIC: the device, the queue its timer lives on, and time.
struct Saved {
  LocalApic::Snapshot apic;
  EventQueue::Snapshot events;
  Tick now;
};
Saved save(Rig& r) { return {r.h.apic.save(), r.h.events.save(), r.h.clock.t}; }
void restore(Rig& r, const Saved& s, bool queue_first) {
  if (queue_first) r.h.events.restore(s.events);
  r.h.apic.restore(s.apic);
  if (!queue_first) r.h.events.restore(s.events);
  r.h.clock.t = s.now;
}

constexpr uint32_t kReadable[] = {
    kId,       kVersion,  kTpr,      kApr,      kPpr,          kLdr,          kDfr,
    kSvr,      kEsr,      kLvtCmci,  kIcrLow,   kIcrHigh,      kLvtTimer,     kLvtThermal,
    kLvtPerf,  kLvtLint0, kLvtLint1, kLvtError, kTimerInitial, kTimerCurrent, kTimerDivide};

// Everything the public API shows, read without side effects (no tracing, only readable
// registers, so no ESR "illegal register" error).
std::string observe(Rig& r) {
  LocalApic& a = r.h.apic;
  a.set_tracer(nullptr);
  std::ostringstream o;
  o << "t=" << r.h.clock.t.value() << " mode=" << int(a.mode()) << " base=" << a.apic_base()
    << " id=" << a.id() << " sw=" << a.software_enabled() << " ppr=" << a.ppr()
    << " pend=" << (a.pending_vector() ? int(*a.pending_vector()) : -1)
    << " irrp=" << a.irr_pending() << " hisr=" << a.highest_isr_cache()
    << " nea=" << a.notify_every_accept() << " armed=" << a.timer_armed()
    << " exp=" << a.timer_expiry().value() << " tscd=" << a.tsc_deadline();
  const ApicDestinationInfo d = a.destination_info();
  o << " dest=" << d.apic_id << '/' << d.ldr << '/' << d.dfr << '/' << d.x2apic << " bits=";
  for (unsigned v = 0; v < 256; ++v) {
    const auto u = static_cast<uint8_t>(v);
    o << (a.irr_bit(u) ? 'i' : '.') << (a.isr_bit(u) ? 's' : '.') << (a.tmr_bit(u) ? 't' : '.');
  }
  o << " regs=";
  for (uint32_t off : kReadable) o << a.mmio_read(off, 4) << ',';
  for (uint32_t off = 0; off < 8 * 16; off += 16)
    o << a.mmio_read(kIsr0 + off, 4) << ',' << a.mmio_read(kTmr0 + off, 4) << ','
      << a.mmio_read(kIrr0 + off, 4) << ',';
  o << " msrs=";
  for (uint32_t off : kReadable) {
    uint64_t v = 0;
    o << int(a.msr_read(msr_for(off), v)) << ':' << v << ',';
  }
  a.set_tracer(&r.tracer);
  return o.str();
}

std::string drain(test::RecordingSink& s) {
  std::ostringstream o;
  for (uint32_t id : s.pending_calls) o << " pend" << id;
  for (const IpiRequest& q : s.ipis)
    o << " ipi" << q.source << '/' << int(q.vector) << '/' << int(q.delivery) << '/'
      << int(q.dest_mode) << '/' << int(q.shorthand) << '/' << int(q.trigger) << '/'
      << q.level_assert << '/' << q.destination << '/' << q.x2apic;
  for (uint32_t id : s.nmis) o << " nmi" << id;
  s.pending_calls.clear();
  s.ipis.clear();
  s.nmis.clear();
  return o.str();
}

uint32_t random_vector(Rng& g) {
  return g.chance(5) ? g.below(16) : 16 + g.below(240);  // mostly legal vectors
}

// A value for a register write at `off`, shaped so that most writes do something.
uint32_t random_value(Rng& g, uint32_t off) {
  switch (off) {
    case kId:
    case kLdr:
    case kIcrHigh:
      return g.below(256) << 24;
    case kDfr:
      return g.chance(50) ? ~0u : 0x0fffffffu;
    case kSvr:
      return (g.chance(85) ? 0x100u : 0u) | (g.chance(20) ? 0x200u : 0u) | g.below(256);
    case kEoi:
    case kEsr:
      return g.chance(90) ? 0 : g.below(4);
    case kIcrLow:
      // vector, delivery mode (fixed/lowest/NMI/INIT/SIPI mostly), dest mode, level,
      // trigger, shorthand.
      return random_vector(g) | (g.below(8) << 8) | (g.below(2) << 11) | (g.below(2) << 14) |
             (g.below(2) << 15) | (g.below(4) << 18);
    case kLvtTimer:
      return random_vector(g) | (g.below(3) << 17) | (g.chance(15) ? kLvtMasked : 0);
    case kTimerInitial:
      return g.chance(8) ? 0 : 1 + g.below(g.chance(50) ? 200 : 5000);
    case kTimerDivide:
      return g.below(16);
    case kSelfIpi:
      return random_vector(g);
    default:  // other LVTs, CMCI, TPR
      return random_vector(g) | (g.below(8) << 8) | (g.below(2) << 15) |
             (g.chance(30) ? kLvtMasked : 0);
  }
}

constexpr uint32_t kWritable[] = {kId,       kTpr,          kEoi,         kLdr,      kDfr,
                                  kSvr,      kEsr,          kLvtCmci,     kIcrLow,   kIcrHigh,
                                  kLvtTimer, kLvtThermal,   kLvtPerf,     kLvtLint0, kLvtLint1,
                                  kLvtError, kTimerInitial, kTimerDivide, kSelfIpi};

// One operation through the APIC's normal API, chosen by `g` alone (not by the APIC's
// state, so two rigs given equal generators do the same thing). What it returns goes to
// `log`.
void step(Rig& r, Rng& g, std::string& log) {
  LocalApic& a = r.h.apic;
  std::ostringstream o;
  const uint32_t op = g.below(100);
  if (op < 40) {
    // Register write through both access paths: only the one of the current mode acts.
    const uint32_t off = kWritable[g.below(std::size(kWritable))];
    const uint32_t v = random_value(g, off);
    a.mmio_write(off, 4, v);
    const uint64_t wide = off == kIcrLow ? (uint64_t{g.below(4)} << 32) | v : v;
    o << "w" << off << '=' << int(a.msr_write(msr_for(off), wide));
  } else if (op < 48) {
    const uint32_t off = g.chance(80) ? kReadable[g.below(std::size(kReadable))] : g.below(0x100) << 4;
    uint64_t v = 0;
    o << "r" << off << '=' << a.mmio_read(off, 4) << '/' << int(a.msr_read(msr_for(off), v)) << ':'
      << v;
  } else if (op < 56) {
    a.accept(static_cast<uint8_t>(random_vector(g)), g.chance(30) ? TriggerMode::Level : TriggerMode::Edge);
  } else if (op < 62) {
    const auto v = a.ack();
    o << "ack" << (v ? int(*v) : -1);
  } else if (op < 67) {
    o << "eoi" << a.eoi();
  } else if (op < 82) {
    static constexpr uint32_t kSpans[] = {1, 50, 2'000, 60'000, 1'500'000};
    const uint64_t d = g.below(kSpans[g.below(std::size(kSpans))]);
    r.h.run_to(r.h.clock.t.value() + d);
    o << "t" << r.h.clock.t.value();
  } else if (op < 86) {
    const uint64_t tsc_now = r.h.clock.t.value() * 5 / 2;
    const uint64_t tsc = g.chance(10) ? 0 : tsc_now + g.below(200'000) - 10'000;
    a.set_tsc_deadline(tsc);
    o << "dl" << a.tsc_deadline();
  } else if (op < 88) {
    static constexpr uint64_t kBases[] = {kDefaultBase | kBaseEnable,
                                          kDefaultBase | kBaseEnable | kBaseExtd, kDefaultBase,
                                          0xfed00000 | kBaseEnable, kDefaultBase | kBaseExtd};
    o << "base" << int(a.set_apic_base(kBases[g.below(std::size(kBases))]));
  } else if (op < 91) {
    a.set_tpr(g.below(256));
  } else if (op < 93) {
    a.set_notify_every_accept(g.chance(50));
  } else if (op < 95) {
    a.raise_lint(g.below(3));
  } else if (op < 98) {
    IpiRequest q;
    q.source = g.below(4);
    q.vector = static_cast<uint8_t>(random_vector(g));
    static constexpr IpiDelivery kModes[] = {IpiDelivery::Fixed, IpiDelivery::LowestPriority,
                                             IpiDelivery::Nmi, IpiDelivery::Init,
                                             IpiDelivery::StartUp};
    q.delivery = kModes[g.below(std::size(kModes))];
    q.trigger = g.chance(30) ? TriggerMode::Level : TriggerMode::Edge;
    q.level_assert = g.chance(80);
    o << "ipi" << int(a.receive_ipi(q));
  } else if (op < 99) {
    a.init_reset();
  } else {
    a.reset();
  }
  log += o.str() + drain(r.h.sink) + '\n';
}

void drive(Rig& r, uint64_t seed, int ops, std::string& log) {
  Rng g{seed};
  for (int i = 0; i < ops; ++i) step(r, g, log);
}

// Like drive(), with every operation followed by a full observation.
std::string drive_observed(Rig& r, uint64_t seed, int ops) {
  std::string log;
  Rng g{seed};
  for (int i = 0; i < ops; ++i) {
    step(r, g, log);
    log += observe(r) + '\n';
  }
  return log;
}

std::string text_since(const Rig& r, size_t from) { return r.os.str().substr(from); }

}  // namespace

TEST_CASE("LAPIC snapshot: restored after a detour, it behaves as an untouched twin", "[lapic][snapshot]") {
  for (uint64_t seed = 1; seed <= 120; ++seed) {
    INFO("seed " << seed);
    Rig a, b;
    std::string ignore;
    drive(a, seed, 150, ignore);
    drive(b, seed, 150, ignore);
    REQUIRE(observe(a) == observe(b));
    const Saved s = save(a);

    // The detour: a different drive, with timer expiries and re-arms in it.
    drive(a, seed * 7919 + 3, 200, ignore);
    restore(a, s, seed & 1);
    CHECK(observe(a) == observe(b));
    CHECK(a.h.apic.save().state == b.h.apic.save().state);

    const size_t a_from = a.os.str().size(), b_from = b.os.str().size();
    const std::string b_log = drive_observed(b, seed * 104729 + 11, 250);
    CHECK(drive_observed(a, seed * 104729 + 11, 250) == b_log);
    const std::string b_trace = text_since(b, b_from);
    CHECK(text_since(a, a_from) == b_trace);

    // The same snapshot again, after more divergence: still the twin's future.
    restore(a, s, !(seed & 1));
    const size_t a_again = a.os.str().size();
    CHECK(drive_observed(a, seed * 104729 + 11, 250) == b_log);
    CHECK(text_since(a, a_again) == b_trace);
  }
}

TEST_CASE("LAPIC snapshot: restore() alone neither schedules nor cancels the timer", "[lapic][snapshot]") {
  Rig r;
  Harness& h = r.h;
  h.enable_sw();
  h.wr(kLvtTimer, 0x40);
  h.wr(kTimerDivide, 0xb);
  const LocalApic::Snapshot idle = h.apic.save();  // timer not running
  h.wr(kTimerInitial, 100);                        // 100 counts of 10 ns: expiry at 1000
  REQUIRE(h.apic.timer_armed());
  const LocalApic::Snapshot armed = h.apic.save();
  const size_t traced = r.os.str().size();

  h.apic.restore(idle);
  CHECK(h.apic.timer_armed());  // still linked: only the EventQueue's restore unlinks it
  CHECK(h.events.size() == 1);
  CHECK(h.events.next_time() == Tick(1000));
  h.apic.restore(armed);
  CHECK(h.events.size() == 1);
  CHECK(h.events.next_time() == Tick(1000));
  CHECK(r.os.str().size() == traced);  // nothing traced, nobody notified
  CHECK(drain(h.sink).empty());
}

TEST_CASE("LAPIC snapshot: an expired one-shot keeps its expiry, a pending one fires again", "[lapic][snapshot]") {
  Rig a, b;
  for (Rig* r : {&a, &b}) {
    r->h.enable_sw();
    r->h.wr(kLvtTimer, 0x40);
    r->h.wr(kTimerDivide, 0xb);
    r->h.wr(kTimerInitial, 100);  // expiry at 1000
  }
  const Saved pending = save(a);
  a.h.run_to(1500);  // fires
  REQUIRE(a.h.apic.irr_bit(0x40));
  const Saved expired = save(a);
  // Detour: re-arm for 1500 + 3000 and stop it again, so the Event's last key is 4500.
  a.h.wr(kTimerInitial, 300);
  a.h.run_to(2000);
  a.h.wr(kTimerInitial, 0);

  restore(a, expired, true);
  b.h.run_to(1500);
  CHECK_FALSE(a.h.apic.timer_armed());
  CHECK(a.h.apic.timer_expiry() == Tick(1000));  // not the detour's 4500
  CHECK(observe(a) == observe(b));

  restore(a, pending, true);
  Rig c;  // a twin that stopped at the pending point
  c.h.enable_sw();
  c.h.wr(kLvtTimer, 0x40);
  c.h.wr(kTimerDivide, 0xb);
  c.h.wr(kTimerInitial, 100);
  CHECK(a.h.apic.timer_armed());
  CHECK_FALSE(a.h.apic.irr_bit(0x40));
  for (uint64_t t : {500u, 999u, 1000u, 3000u}) {
    a.h.run_to(t);
    c.h.run_to(t);
    CHECK(observe(a) == observe(c));
  }
  CHECK(a.h.rd(kTimerCurrent) == 0);
  CHECK(a.h.apic.irr_bit(0x40));
}

TEST_CASE("LAPIC snapshot: periodic and TSC-deadline timers continue on the twin's ticks", "[lapic][snapshot]") {
  for (bool deadline : {false, true}) {
    INFO("deadline " << deadline);
    Rig a, b;
    auto setup = [&](Rig& r) {
      r.h.enable_sw();
      r.h.wr(kTimerDivide, 0x1);  // divide by 4: 40 ns per count
      if (deadline) {
        r.h.wr(kLvtTimer, 0x50 | (2u << 17));
        r.h.apic.set_tsc_deadline(25'000);  // 10 us at 2.5 GHz
      } else {
        r.h.wr(kLvtTimer, 0x50 | (1u << 17));
        r.h.wr(kTimerInitial, 37);  // period 1480 ns
      }
      r.h.run_to(deadline ? 3'000 : 5'000);  // periodic: three periods gone
    };
    setup(a);
    setup(b);
    const Saved s = save(a);
    // Detour: another period and divisor, or another deadline, and a different mode.
    a.h.wr(kTimerDivide, 0xb);
    if (deadline) {
      a.h.apic.set_tsc_deadline(12'000'000);
    } else {
      a.h.wr(kTimerInitial, 999);
    }
    a.h.run_to(20'000);
    a.h.wr(kLvtTimer, 0x60);
    restore(a, s, false);
    const size_t a_from = a.os.str().size(), b_from = b.os.str().size();
    for (uint64_t t = 5'000; t <= 20'000; t += 250) {
      a.h.run_to(t);
      b.h.run_to(t);
      CHECK(observe(a) == observe(b));
      for (Rig* r : {&a, &b}) {  // take the interrupt and retire it, so the next one shows
        r->h.apic.ack();
        r->h.apic.eoi();
      }
    }
    const std::string b_trace = text_since(b, b_from);
    CHECK(b_trace.find("kvm_apic_accept_irq") != std::string::npos);  // the timer did fire
    CHECK(text_since(a, a_from) == b_trace);
  }
}
