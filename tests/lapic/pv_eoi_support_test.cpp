// What PV EOI (pvmsr/pv_eoi.h) needs from the LAPIC: KVM's highest_isr_cache and
// irr_pending, an EOI entry that returns the retired vector, and the kick on every accept.
#include <catch2/catch.hpp>
#include <sstream>
#include <string>

#include "core/trace.h"
#include "lapic_harness.h"

using namespace pvsim;
using namespace pvsim::lapic;
using pvsim::test::Harness;

TEST_CASE("highest_isr_cache: set by ack, invalidated by any EOI", "[lapic][pv_eoi_support]") {
  Harness h;
  h.enable_sw();
  CHECK(h.apic.highest_isr_cache() == -1);
  h.apic.accept(0x31, TriggerMode::Edge);
  CHECK(h.apic.highest_isr_cache() == -1);  // accepted, not yet in service
  REQUIRE(h.apic.ack() == uint8_t{0x31});
  CHECK(h.apic.highest_isr_cache() == 0x31);
  // A nested (higher-class) interrupt becomes the cached one.
  h.apic.accept(0x81, TriggerMode::Edge);
  REQUIRE(h.apic.ack() == uint8_t{0x81});
  CHECK(h.apic.highest_isr_cache() == 0x81);
  // EOI retires 0x81; 0x31 is still in service but the cache is gone (KVM apic_clear_isr
  // does not recompute it).
  CHECK(h.apic.eoi() == 0x81);
  CHECK(h.apic.isr_bit(0x31));
  CHECK(h.apic.highest_isr_cache() == -1);
  // The register path invalidates it the same way.
  h.apic.accept(0x91, TriggerMode::Edge);
  REQUIRE(h.apic.ack() == uint8_t{0x91});
  CHECK(h.apic.highest_isr_cache() == 0x91);
  h.wr(kEoi, 0);
  CHECK_FALSE(h.apic.isr_bit(0x91));
  CHECK(h.apic.highest_isr_cache() == -1);
  CHECK(h.apic.eoi() == 0x31);
  CHECK(h.apic.eoi() == -1);  // nothing in service: -1, nothing changes
  CHECK(h.apic.highest_isr_cache() == -1);
}

TEST_CASE("highest_isr_cache: INIT, RESET and a hardware disable drop it",
          "[lapic][pv_eoi_support]") {
  for (int how = 0; how < 3; ++how) {
    INFO("how " << how);
    Harness h;
    h.enable_sw();
    h.apic.accept(0x40, TriggerMode::Edge);
    REQUIRE(h.apic.ack() == uint8_t{0x40});
    REQUIRE(h.apic.highest_isr_cache() == 0x40);
    if (how == 0) h.apic.init_reset();
    if (how == 1) h.apic.reset();
    if (how == 2) REQUIRE(h.apic.set_apic_base(kDefaultBase) == MsrStatus::Ok);  // EN = 0
    CHECK(h.apic.highest_isr_cache() == -1);
    CHECK_FALSE(h.apic.isr_bit(0x40));
  }
}

TEST_CASE("irr_pending: any IRR bit, deliverable or not", "[lapic][pv_eoi_support]") {
  Harness h;
  h.enable_sw();
  CHECK_FALSE(h.apic.irr_pending());
  h.apic.accept(0x50, TriggerMode::Edge);
  CHECK(h.apic.irr_pending());
  REQUIRE(h.apic.ack() == uint8_t{0x50});
  CHECK_FALSE(h.apic.irr_pending());
  // Same class as the one in service: held back by PPR, still pending in IRR.
  h.apic.accept(0x5f, TriggerMode::Edge);
  CHECK_FALSE(h.apic.pending_vector());
  CHECK(h.apic.irr_pending());
  // Bits in every IRR word count (vector 0xff is in the last one).
  h.apic.eoi();
  REQUIRE(h.apic.ack() == uint8_t{0x5f});
  CHECK_FALSE(h.apic.irr_pending());
  h.apic.accept(0xff, TriggerMode::Edge);
  CHECK(h.apic.irr_pending());
  h.apic.init_reset();
  CHECK_FALSE(h.apic.irr_pending());
}

TEST_CASE("eoi() is the register's EOI: same trace, same return", "[lapic][pv_eoi_support]") {
  std::ostringstream os;
  Tracer tracer;
  tracer.set_text_output(&os);
  LapicConfig cfg;
  cfg.apic_id = 5;
  cfg.tracer = &tracer;
  cfg.vcpu = 2;
  Harness h(cfg);
  h.enable_sw();
  h.apic.accept(0x61, TriggerMode::Edge);
  h.apic.accept(0x62, TriggerMode::Edge);
  REQUIRE(h.apic.ack() == uint8_t{0x62});
  os.str("");
  CHECK(h.apic.eoi() == 0x62);
  CHECK(os.str() == "CPU 2/KVM-2 [002] 0.000000000: kvm_eoi: apicid 5 vector 98\n");
  // 0x61 became deliverable by that EOI: the sink heard of it.
  CHECK(h.apic.pending_vector() == uint8_t{0x61});
  CHECK(h.apic.vcpu_id() == 5);
  h.wr(kId, 0x09000000);     // the guest renames the APIC...
  CHECK(h.apic.vcpu_id() == 5);  // ...the trace keeps KVM's vcpu_id
}

TEST_CASE("notify_every_accept: every accepted interrupt notifies while set",
          "[lapic][pv_eoi_support]") {
  Harness h;
  h.enable_sw();
  h.apic.accept(0x71, TriggerMode::Edge);
  REQUIRE(h.apic.ack() == uint8_t{0x71});
  h.sink.pending_calls.clear();
  // Off (default): an interrupt PPR holds back raises nothing.
  CHECK_FALSE(h.apic.notify_every_accept());
  h.apic.accept(0x72, TriggerMode::Edge);
  CHECK(h.sink.pending_calls.empty());
  // On: the same kind of interrupt notifies, through every acceptance path.
  h.apic.set_notify_every_accept(true);
  h.apic.accept(0x73, TriggerMode::Edge);
  CHECK(h.sink.pending_calls.size() == 1);
  IpiRequest ipi;
  ipi.vector = 0x74;
  CHECK(h.apic.receive_ipi(ipi) == IpiEffect::None);
  CHECK(h.sink.pending_calls.size() == 2);
  h.wr(kLvtTimer, 0x75);
  h.wr(kTimerDivide, 0xb);  // divide by 1
  h.wr(kTimerInitial, 10);
  h.run_to(100);
  CHECK(h.apic.irr_bit(0x75));
  CHECK(h.sink.pending_calls.size() == 3);
  // Refused acceptances still notify nothing: an illegal vector (ESR path; the error LVT is
  // masked) and a software-disabled APIC.
  h.apic.accept(3, TriggerMode::Edge);
  CHECK(h.sink.pending_calls.size() == 3);
  h.wr(kSvr, 0xff);
  h.apic.accept(0x76, TriggerMode::Edge);
  CHECK_FALSE(h.apic.irr_bit(0x76));
  CHECK(h.sink.pending_calls.size() == 3);
  // Off again: back to deliverable-only.
  h.wr(kSvr, 0x1ff);
  h.apic.set_notify_every_accept(false);
  h.apic.accept(0x77, TriggerMode::Edge);
  CHECK(h.sink.pending_calls.size() == 3);
}
