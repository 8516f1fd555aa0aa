// LAPIC tracing (core/trace.h): exact kvm_apic / kvm_apic_ipi / kvm_apic_accept_irq /
// kvm_eoi lines, in KVM's order, for one access of each kind.
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

// A harness whose LAPIC (APIC ID 3) traces as vCPU 1 into a string.
struct Traced {
  Traced() : h(config()) {
    tracer.set_text_output(&os);
    h.clock.t = Tick(1234);
  }
  LapicConfig config() {
    LapicConfig c;
    c.apic_id = 3;
    c.tracer = &tracer;
    c.vcpu = 1;
    return c;
  }
  // The lines emitted since the last call, without the common "CPU 1/KVM-1 [001] " prefix
  // (checked once here) .
  std::vector<std::string> take() {
    std::vector<std::string> out;
    std::istringstream in(os.str());
    for (std::string line; std::getline(in, line);) {
      const std::string prefix = "CPU 1/KVM-1 [001] ";
      REQUIRE(line.rfind(prefix, 0) == 0);
      out.push_back(line.substr(prefix.size()));
    }
    os.str("");
    return out;
  }
  std::ostringstream os;
  Tracer tracer;
  Harness h;
};

using Lines = std::vector<std::string>;

}  // namespace

TEST_CASE("trace: xAPIC MMIO reads and writes", "[lapic][trace]") {
  Traced t;
  CHECK(t.h.rd(kVersion) == kVersionValue);
  t.h.wr(kTpr, 0x20);
  CHECK(t.h.apic.mmio_read(0x23, 1) == 3);  // top byte of the ID register
  CHECK(t.take() == Lines{
                        "0.000001234: kvm_apic: apic_read APIC_LVR = 0x50014",
                        "0.000001234: kvm_apic: apic_write APIC_TASKPRI = 0x20",
                        // KVM: the offset as accessed, the whole register as value
                        "0.000001234: kvm_apic: apic_read 0x23 = 0x3000000",
                    });
  // Not traced (KVM rejects these before its tracepoint): a reserved offset, a read that
  // crosses the 4-byte register, a narrow write.
  CHECK(t.h.rd(0x040) == 0);
  CHECK(t.h.apic.mmio_read(0x22, 4) == 0);
  t.h.apic.mmio_write(kTpr, 2, 0x30);
  CHECK(t.take().empty());
  // A write to a read-only register is traced (KVM traces before decoding the register).
  t.h.wr(kVersion, 1);
  CHECK(t.take() == Lines{"0.000001234: kvm_apic: apic_write APIC_LVR = 0x1"});
}

TEST_CASE("trace: xAPIC ICR write then kvm_apic_ipi", "[lapic][trace][ipi]") {
  Traced t;
  t.h.wr(kIcrHigh, 0x05000000);
  t.h.clock.t = Tick(2'000'000'001);
  t.h.wr(kIcrLow, 0xc4500);  // INIT, all excluding self
  t.h.wr(kIcrLow, 0x400f);   // fixed vector 15: traced as KVM does, then refused (ESR)
  CHECK(t.take() == Lines{
                        "0.000001234: kvm_apic: apic_write APIC_ICR2 = 0x5000000",
                        "2.000000001: kvm_apic: apic_write APIC_ICR = 0xc4500",
                        "2.000000001: kvm_apic_ipi: dst 5 vec 0 (INIT|physical|assert|edge|all-but-self)",
                        "2.000000001: kvm_apic: apic_write APIC_ICR = 0x400f",
                        "2.000000001: kvm_apic_ipi: dst 5 vec 15 (Fixed|physical|assert|edge|dst)",
                    });
  CHECK(t.h.sink.ipis.size() == 1);
}

TEST_CASE("trace: x2APIC MSR accesses, 64-bit ICR and SELF IPI", "[lapic][trace][x2apic]") {
  Traced t;
  t.h.to_x2apic();
  REQUIRE(t.h.apic.msr_write(0x80f, 0x1ff) == MsrStatus::Ok);
  CHECK(t.h.msr(0x803) == kVersionValue);
  // Logical, fixed, vector 0x22 to cluster 0 member 0+1 (destination 3).
  REQUIRE(t.h.apic.msr_write(0x830, (3ull << 32) | 0x4822) == MsrStatus::Ok);
  REQUIRE(t.h.apic.msr_write(0x83f, 0x50) == MsrStatus::Ok);
  CHECK(t.take() ==
        Lines{
            "0.000001234: kvm_apic: apic_write APIC_SPIV = 0x1ff",
            "0.000001234: kvm_apic: apic_read APIC_LVR = 0x50014",
            // KVM __kvm_x2apic_icr_write: the IPI first, then the 64-bit register write
            "0.000001234: kvm_apic_ipi: dst 3 vec 34 (Fixed|logical|assert|edge|dst)",
            "0.000001234: kvm_apic: apic_write APIC_ICR = 0x300004822",
            // SELF IPI: KVM sends ICR = self shorthand | vector and delivers it at once
            "0.000001234: kvm_apic: apic_write APIC_SELF_IPI = 0x50",
            "0.000001234: kvm_apic_ipi: dst 0 vec 80 (Fixed|physical|de-assert|edge|self)",
            "0.000001234: kvm_apic_accept_irq: apicid 3 vec 80 (Fixed|edge)",
        });
  // Untraced, as in KVM: the 64-bit ICR read, a write with bits 63:32 set, an absent MSR read.
  CHECK(t.h.msr(0x830) == ((3ull << 32) | 0x4822));
  CHECK(t.h.apic.msr_write(0x808, 1ull << 32) == MsrStatus::Gp);
  uint64_t v = 0;
  CHECK(t.h.apic.msr_read(0x80e, v) == MsrStatus::Gp);  // DFR does not exist in x2APIC
  CHECK(t.take().empty());
  // A rejected SELF IPI value is still traced as a write (then #GP), like a read-only MSR.
  CHECK(t.h.apic.msr_write(0x83f, 0x150) == MsrStatus::Gp);
  CHECK(t.take() == Lines{"0.000001234: kvm_apic: apic_write APIC_SELF_IPI = 0x150"});
}

TEST_CASE("trace: accept and EOI, including an EOI with nothing in service",
          "[lapic][trace][eoi]") {
  Traced t;
  t.h.enable_sw();
  t.h.apic.accept(0x41, TriggerMode::Level);
  REQUIRE(t.h.apic.ack() == uint8_t{0x41});
  t.h.wr(kEoi, 0);
  t.h.apic.eoi();  // nothing in service: KVM apic_set_eoi traces vector -1
  CHECK(t.take() == Lines{
                        "0.000001234: kvm_apic: apic_write APIC_SPIV = 0x1ff",
                        "0.000001234: kvm_apic_accept_irq: apicid 3 vec 65 (Fixed|level)",
                        "0.000001234: kvm_apic: apic_write APIC_EOI = 0x0",
                        "0.000001234: kvm_eoi: apicid 3 vector 65",
                        "0.000001234: kvm_eoi: apicid 3 vector -1",
                    });
}

TEST_CASE("trace: apicid is the configured APIC ID, not the writable xAPIC ID",
          "[lapic][trace]") {
  Traced t;
  t.h.enable_sw();
  t.h.wr(kId, 0x09000000);
  t.take();
  t.h.apic.accept(0x30, TriggerMode::Edge);
  CHECK(t.take() == Lines{"0.000001234: kvm_apic_accept_irq: apicid 3 vec 48 (Fixed|edge)"});
}

TEST_CASE("trace: local sources and routed IPIs", "[lapic][trace][lvt]") {
  Traced t;
  t.h.enable_sw();
  t.h.wr(kLvtLint0, 0x8031);  // fixed, level
  t.h.wr(kLvtLint1, 0x400);   // NMI
  t.h.wr(kLvtTimer, 0x45);
  t.h.wr(kTimerDivide, 0xb);  // divide by 1
  t.h.wr(kTimerInitial, 1000);
  t.take();
  t.h.apic.raise_lint(0);
  t.h.apic.raise_lint(1);
  t.h.run_to(5000);  // timer fires at 1234 + 1000 ns
  IpiRequest init;
  init.delivery = IpiDelivery::Init;
  IpiRequest sipi;
  sipi.delivery = IpiDelivery::StartUp;
  sipi.vector = 0x9a;
  CHECK(t.h.apic.receive_ipi(init) == IpiEffect::Init);
  CHECK(t.h.apic.receive_ipi(sipi) == IpiEffect::StartUp);
  CHECK(t.take() == Lines{
                        "0.000001234: kvm_apic_accept_irq: apicid 3 vec 49 (Fixed|level)",
                        "0.000001234: kvm_apic_accept_irq: apicid 3 vec 0 (NMI|edge)",
                        "0.000002234: kvm_apic_accept_irq: apicid 3 vec 69 (Fixed|edge)",
                        "0.000005000: kvm_apic_accept_irq: apicid 3 vec 0 (INIT|edge)",
                        "0.000005000: kvm_apic_accept_irq: apicid 3 vec 154 (SIPI|edge)",
                    });
  // A masked LVT delivers nothing and traces nothing.
  t.h.wr(kLvtLint0, 0x10031);
  t.take();
  t.h.apic.raise_lint(0);
  CHECK(t.take().empty());
}

TEST_CASE("trace: JSON Lines carry KVM's field values", "[lapic][trace]") {
  Traced t;
  std::ostringstream js;
  t.tracer.set_jsonl_output(&js);
  t.h.apic.eoi();
  CHECK(js.str() ==
        "{\"ts_ns\":1234,\"vcpu\":1,\"event\":\"kvm_eoi\",\"apicid\":3,\"vector\":-1}\n");
}
