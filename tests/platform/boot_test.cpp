// Every value of scenarios/guest/boot.md §2 "Memory at entry" and §3 "Every vCPU at
// entry" (LAPIC values: tests/platform/vm_test.cpp and tests/lapic/).
#include <catch2/catch.hpp>

#include "core/vcpu.h"
#include "tests/platform/vm_helpers.h"
#include "tools/platform/boot.h"
#include "tools/platform/platform.h"

using namespace pvsim;

namespace {
uint64_t q(GuestMemory& m, uint64_t gpa) {
  uint64_t v = 0;
  REQUIRE(m.read_obj(Gpa(gpa), v));
  return v;
}
}  // namespace

TEST_CASE("boot memory: GDT, TSS, page tables", "[boot]") {
  GuestMemory m(4 << 20);
  // Junk where the TSS goes: build_boot_memory must leave it all zero.
  std::vector<uint8_t> junk(0x68, 0xcc);
  m.write(Gpa(0x1080), junk.data(), junk.size());
  build_boot_memory(m);
  CHECK(q(m, 0x1000) == 0);
  CHECK(q(m, 0x1008) == 0x00af9b000000ffffull);
  CHECK(q(m, 0x1010) == 0x00cf93000000ffffull);
  // TSS descriptor: limit 0x67, base 0x1080, type 0xB (busy 64-bit TSS), P.
  const uint64_t lo = q(m, 0x1018), hi = q(m, 0x1020);
  CHECK((lo & 0xffff) == 0x67);
  CHECK(((lo >> 16) & 0xffffff) == 0x1080);
  CHECK(((lo >> 40) & 0xff) == 0x8b);
  CHECK(((lo >> 48) & 0xf) == 0);
  CHECK((lo >> 56) == 0);
  CHECK(hi == 0);
  for (uint64_t a = 0x1080; a < 0x1080 + 0x68; a += 8) REQUIRE(q(m, a) == 0);
  CHECK(q(m, 0x10000) == 0x11003);
  for (uint64_t i = 1; i < 512; ++i) REQUIRE(q(m, 0x10000 + i * 8) == 0);
  for (uint64_t i = 0; i < 4; ++i) CHECK(q(m, 0x11000 + i * 8) == 0x12003 + i * 0x1000);
  for (uint64_t i = 4; i < 512; ++i) REQUIRE(q(m, 0x11000 + i * 8) == 0);
  for (uint64_t j = 0; j < 2048; ++j) REQUIRE(q(m, 0x12000 + j * 8) == ((j << 21) | (j < 1536 ? 0x83 : 0x9b)));
  // Everything else stays zero (spot checks around the structures and the stacks).
  CHECK(q(m, 0x0) == 0);
  CHECK(q(m, 0x1028) == 0);
  CHECK(q(m, 0x16000) == 0);
  CHECK(q(m, 0x9fff8) == 0);
}

TEST_CASE("every vCPU's entry state", "[boot]") {
  test::FlatScenario f({0xf4}, 3);
  f.s.machine.ram_mib = 8;
  Platform p(f.s);
  for (unsigned i = 0; i < 3; ++i) {
    INFO("vCPU " << i);
    Vcpu& v = p.vcpu(i);
    CHECK(v.rip() == 0x100000);
    CHECK(v.gpr(4) == 0xA0000 - i * 0x4000);  // RSP
    CHECK(v.gpr(7) == i);                     // RDI
    CHECK(v.gpr(6) == 3);                     // RSI
    CHECK(v.gpr(2) == 8ull << 20);            // RDX
    for (unsigned r : {0u, 1u, 3u, 5u, 8u, 9u, 10u, 11u, 12u, 13u, 14u, 15u}) CHECK(v.gpr(r) == 0);
    CHECK(v.rflags() == 0x2);
    CHECK(v.cr(0) == 0x80010033);
    CHECK(v.cr(2) == 0);
    CHECK(v.cr(3) == 0x10000);
    CHECK(v.cr(4) == 0x20);
    CHECK(v.cr(8) == 0);
    CHECK(v.efer() == 0x500);
    CHECK(v.cpl() == 0);
    const SegmentCache cs = v.seg(SegReg::CS);
    CHECK(cs.selector == 0x08);
    CHECK(cs.base == 0);
    CHECK(((cs.attrs >> 13) & 1) == 1);  // L
    CHECK(((cs.attrs >> 5) & 3) == 0);   // DPL 0
    CHECK(((cs.attrs >> 7) & 1) == 1);   // P
    for (SegReg s : {SegReg::SS, SegReg::DS, SegReg::ES, SegReg::FS, SegReg::GS}) {
      const SegmentCache d = v.seg(s);
      CHECK(d.selector == 0x10);
      CHECK(d.base == 0);
      CHECK(d.limit == 0xffffffff);
    }
    CHECK(v.tr().selector == 0x18);
    CHECK(v.tr().base == 0x1080);
    CHECK(v.tr().limit == 0x67);
    CHECK((v.tr().attrs & 0xf) == 0xb);
    CHECK(v.gdtr().base == 0x1000);
    CHECK(v.gdtr().limit == 0x27);
    CHECK(v.idtr().base == 0);
    CHECK(v.idtr().limit == 0);
    auto msr = [&](uint32_t idx) {
      uint64_t val = ~0ull;
      CHECK(v.msrs().read(v, idx, val) == MsrStatus::Ok);
      return val;
    };
    CHECK(msr(0x1b) == (i == 0 ? 0xfee00900u : 0xfee00800u));
    CHECK(msr(0x277) == 0x0007040600070406ull);
    CHECK(msr(0x1a0) == 1);
    CHECK(msr(0xc0000100) == 0);
    CHECK(msr(0xc0000101) == 0);
    CHECK(msr(0xc0000102) == 0);
    CHECK(msr(0xc0000080) == 0x500);
    CHECK(msr(0x4b564d05) == 1);  // MSR_KVM_POLL_CONTROL
    CHECK(v.tsc() == 0);
    // CPUID through the platform: initial APIC ID and count, x2APIC ID, hypervisor bit.
    const CpuidResult l1 = p.cpuid(v, 1, 0);
    CHECK(l1.ebx >> 24 == i);
    CHECK(((l1.ebx >> 16) & 0xff) == 3);
    CHECK((l1.ecx >> 31) == 1);
    CHECK(p.cpuid(v, 0xB, 0).edx == i);
    CHECK(p.cpuid(v, 0x40000001, 0).eax == 0x01007efb);
  }
}

TEST_CASE("TSC starts at the scenario's value", "[boot]") {
  test::FlatScenario f({0xf4});
  f.s.machine.tsc_start = 0x123456789;
  Platform p(f.s);
  CHECK(p.vcpu(0).tsc() == 0x123456789);
}
