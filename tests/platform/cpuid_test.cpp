#include <catch2/catch.hpp>
#include <cstring>
#include <string>

#include "pvmsr/kvm_cpuid.h"
#include "tools/platform/cpuid_table.h"

using namespace pvsim;

TEST_CASE("KVM leaves: signature and default features", "[cpuid]") {
  KvmCpuid k;
  auto sig = *k.leaf(0x40000000);
  char text[13] = {};
  std::memcpy(text, &sig.ebx, 4);
  std::memcpy(text + 4, &sig.ecx, 4);
  std::memcpy(text + 8, &sig.edx, 4);
  CHECK(std::string(text, 12) == std::string("KVMKVMKVM\0\0\0", 12));
  CHECK(sig.eax == 0x40000001);
  auto f = *k.leaf(0x40000001);
  CHECK(f.eax == 0x01007efb);
  CHECK(f.ebx == 0);
  CHECK(f.ecx == 0);
  CHECK(f.edx == 0);
  CHECK_FALSE(k.leaf(0x40000002));
  CHECK(k.has(KvmFeature::AsyncPf));
  CHECK_FALSE(k.has(KvmFeature::MmuOp));
  KvmCpuid custom(0x10, 1, 0);
  CHECK(custom.leaf(0x40000000)->eax == 0);
  CHECK(custom.leaf(0x40000001)->eax == 0x10);
  CHECK(custom.leaf(0x40000001)->edx == 1);
}

TEST_CASE("KVM feature names map to spec bits", "[cpuid]") {
  CHECK(kvm_feature_bit("CLOCKSOURCE") == 0u);
  CHECK(kvm_feature_bit("ASYNC_PF_INT") == 14u);
  CHECK(kvm_feature_bit("MIGRATION_CONTROL") == 17u);
  CHECK(kvm_feature_bit("CLOCKSOURCE_STABLE_BIT") == 24u);
  CHECK_FALSE(kvm_feature_bit("MMU_OP"));
  CHECK_FALSE(kvm_feature_bit("async_pf"));
}

TEST_CASE("CPUID table: vendor, topology, hypervisor bit, extended leaves", "[cpuid]") {
  CpuidTable t(4, KvmCpuid{});
  auto l0 = t.lookup(0, 0, 0);
  char vendor[13] = {};
  std::memcpy(vendor, &l0.ebx, 4);
  std::memcpy(vendor + 4, &l0.edx, 4);
  std::memcpy(vendor + 8, &l0.ecx, 4);
  CHECK(std::string(vendor) == "GenuineIntel");
  CHECK(l0.eax == CpuidTable::kMaxBasic);
  CHECK(l0.found);
  for (unsigned i = 0; i < 4; ++i) {
    auto l1 = t.lookup(i, 1, 0);
    CHECK(l1.ebx >> 24 == i);
    CHECK(((l1.ebx >> 16) & 0xff) == 4);
    CHECK((l1.ecx >> 31) == 1);
    CHECK(t.lookup(i, 0xB, 0).edx == i);
    CHECK(t.lookup(i, 0xB, 1).edx == i);
  }
  CHECK(t.lookup(0, 0xB, 1).ebx == 4);
  CHECK((t.lookup(0, 0xB, 1).eax & 0x1f) == 2);
  CHECK(((t.lookup(0, 0xB, 2).ecx >> 8) & 0xff) == 0);  // invalid level ends the enumeration
  auto e1 = t.lookup(0, 0x80000001, 0);
  CHECK((e1.edx >> 29 & 1) == 1);  // LM
  CHECK((e1.edx >> 20 & 1) == 1);  // NX
  CHECK((e1.edx >> 26 & 1) == 1);  // 1 GiB pages
  CHECK((e1.edx >> 27 & 1) == 1);  // RDTSCP
  CHECK((e1.ecx >> 5 & 1) == 1);   // LZCNT
  CHECK(t.lookup(0, 0x80000000, 0).eax == 0x80000008);
  CHECK((e1.edx >> 11 & 1) == 1);  // SYSCALL/SYSRET (the core executes them)
  // MAXPHYADDR must match what the MMU treats as reserved (core/cpu/core.h kMaxPhysAddrBits).
  CHECK((t.lookup(0, 0x80000008, 0).eax & 0xff) == 46);
  CHECK((t.lookup(0, 0x80000008, 0).eax >> 8 & 0xff) == 48);
  CHECK(t.lookup(2, 0x40000001, 0).eax == 0x01007efb);
  // Honest features: no x87/SSE claims (the core executes general-register code only).
  CHECK((t.lookup(0, 1, 0).edx & 1) == 0);
  CHECK((t.lookup(0, 1, 0).edx >> 25 & 3) == 0);
}

TEST_CASE("CPUID out-of-range leaves follow Intel/KVM rules", "[cpuid]") {
  CpuidTable t(2, KvmCpuid{});
  // Inside the basic range but absent: zeros, not found, not max basic.
  auto l5 = t.lookup(1, 5, 0);
  CHECK_FALSE(l5.found);
  CHECK_FALSE(l5.used_max_basic);
  CHECK(l5.eax == 0);
  CHECK(l5.ebx == 0);
  // Above every range maximum: the highest basic leaf (0xB) with the same subleaf.
  for (uint32_t leaf : {0xCu, 0x40000002u, 0x40000100u, 0x80000009u, 0xc0000000u}) {
    auto r = t.lookup(1, leaf, 1);
    auto b = t.lookup(1, 0xB, 1);
    CHECK_FALSE(r.found);
    CHECK(r.used_max_basic);
    CHECK(r.eax == b.eax);
    CHECK(r.ebx == b.ebx);
    CHECK(r.ecx == b.ecx);
    CHECK(r.edx == 1);
  }
  // Leaf 7 subleaf 1 is absent: zeros, not found.
  CHECK_FALSE(t.lookup(0, 7, 1).found);
  CHECK(t.lookup(0, 7, 0).found);
}
