// tests/lapic/lapic_harness.h — a LocalApic with a hand-driven clock, a recording sink and
// its own EventQueue, so tests can step virtual time exactly.
#pragma once
#include <catch2/catch.hpp>
#include <vector>

#include "core/event_queue.h"
#include "devices/lapic.h"

namespace pvsim::test {

struct FakeClock final : ApicClock {
  Tick t{};
  Tick now() const override { return t; }
};

struct RecordingSink final : InterruptSink {
  std::vector<uint32_t> pending_calls;
  std::vector<IpiRequest> ipis;
  std::vector<uint32_t> nmis;
  void interrupt_pending(uint32_t apic_id) override { pending_calls.push_back(apic_id); }
  void send_ipi(const IpiRequest& r) override { ipis.push_back(r); }
  void nmi_pending(uint32_t apic_id) override { nmis.push_back(apic_id); }
};

struct Harness {
  explicit Harness(LapicConfig cfg = {}) : apic(cfg, events, sink, clock) {}

  // Advances virtual time to `t`, firing each due event with the clock set to its Tick
  // (as the platform's scheduler does).
  void run_to(uint64_t t) {
    while (auto next = events.next_time()) {
      if (next->value() > t) break;
      if (*next > clock.t) clock.t = *next;
      events.run_one(*next);
    }
    clock.t = Tick(t);
  }
  uint32_t rd(uint32_t off) { return apic.mmio_read(off, 4); }
  void wr(uint32_t off, uint32_t v) { apic.mmio_write(off, 4, v); }
  void enable_sw() { wr(lapic::kSvr, 0x1ff); }
  // Enter x2APIC mode through the architectural path xAPIC -> x2APIC.
  void to_x2apic() {
    REQUIRE(apic.set_apic_base(lapic::kDefaultBase | lapic::kBaseEnable | lapic::kBaseExtd) ==
            MsrStatus::Ok);
  }
  uint64_t msr(uint32_t index) {
    uint64_t v = 0;
    REQUIRE(apic.msr_read(index, v) == MsrStatus::Ok);
    return v;
  }

  EventQueue events;
  FakeClock clock;
  RecordingSink sink;
  LocalApic apic;
};

}  // namespace pvsim::test
