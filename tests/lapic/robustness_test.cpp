// Random register traffic (seeded project PRNG): no crash, no sanitizer report, and the
// priority invariants of §11.8.3 hold after every step. Run under -DPVSIM_SANITIZE=ON too.
#include <catch2/catch.hpp>

#include "core/prng.h"
#include "core/trace.h"
#include "lapic_harness.h"

using namespace pvsim;
using namespace pvsim::lapic;
using pvsim::test::Harness;

TEST_CASE("random guest traffic keeps the APIC consistent", "[lapic][robustness]") {
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    SplitMix64 rng(seed);
    Tracer tracer;  // no outputs: exercises the trace paths (hash only)
    Harness h(LapicConfig{.apic_id = static_cast<uint32_t>(rng.below(300)),
                          .bus_hz = 1 + rng.below(3'000'000'000),
                          .tsc_hz = 1 + rng.below(4'000'000'000),
                          .tracer = &tracer});
    uint64_t now = 0;
    for (int step = 0; step < 3000; ++step) {
      const uint32_t value = static_cast<uint32_t>(rng.next());
      switch (rng.below(13)) {
        case 0: {
          // Draws are sequenced in statements: argument evaluation order is unspecified
          // and differs between g++ and clang, which would change the stream.
          const auto off = static_cast<uint32_t>(rng.below(0x1100));
          h.apic.mmio_read(off, 1 + static_cast<unsigned>(rng.below(8)));
          break;
        }
        case 1:
          h.apic.mmio_write(static_cast<uint32_t>(rng.below(0x40)) << 4, 4, value);
          break;
        case 2: {
          uint64_t v = 0;
          h.apic.msr_read(0x7f0 + static_cast<uint32_t>(rng.below(0x120)), v);
          break;
        }
        case 3: {
          const uint32_t index = 0x800 + static_cast<uint32_t>(rng.below(0x40));
          h.apic.msr_write(index, rng.one_in(4) ? rng.next() : value);
          break;
        }
        case 4: {
          const uint64_t modes[] = {0, kBaseEnable, kBaseEnable | kBaseExtd, kBaseExtd};
          h.apic.set_apic_base(kDefaultBase | modes[rng.below(4)] | (rng.one_in(8) ? 1 : 0));
          break;
        }
        case 5:
          h.apic.accept(static_cast<uint8_t>(value),
                        rng.one_in(2) ? TriggerMode::Level : TriggerMode::Edge);
          break;
        case 6:
          h.apic.ack();
          break;
        case 7:
          h.apic.eoi();
          break;
        case 8:
          h.apic.set_tsc_deadline(rng.one_in(4) ? rng.next() : rng.below(100000));
          break;
        case 9:
          now += rng.below(5000);
          h.run_to(now);
          break;
        case 10:
          h.apic.raise_lint(static_cast<unsigned>(rng.below(3)));
          break;
        case 11: {
          IpiRequest r;
          r.vector = static_cast<uint8_t>(value);
          r.delivery = static_cast<IpiDelivery>(rng.below(8));
          r.trigger = rng.one_in(2) ? TriggerMode::Level : TriggerMode::Edge;
          r.level_assert = rng.one_in(2);
          h.apic.receive_ipi(r);
          break;
        }
        case 12:
          if (rng.one_in(20)) h.apic.init_reset();
          break;
      }
      if (auto v = h.apic.pending_vector()) {
        REQUIRE((*v >> 4) > (h.apic.ppr() >> 4));
        REQUIRE(*v >= 16);
        REQUIRE(h.apic.irr_bit(*v));
      }
      if (h.apic.timer_armed()) REQUIRE(h.apic.timer_expiry() >= h.clock.t);
      REQUIRE(h.events.size() <= 1);
    }
  }
}
