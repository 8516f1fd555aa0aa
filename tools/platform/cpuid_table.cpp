#include "tools/platform/cpuid_table.h"

#include <algorithm>
#include <cstring>

namespace pvsim {

namespace {

uint32_t str4(const char* s) {
  uint32_t v;
  std::memcpy(&v, s, 4);
  return v;
}

constexpr uint32_t bit(unsigned n) { return 1u << n; }

// Bits needed to number n logical processors (leaf 0xB EAX[4:0] of the core level).
uint32_t id_bits(unsigned n) {
  uint32_t b = 0;
  while ((1u << b) < n) ++b;
  return b;
}

}  // namespace

CpuidTable::CpuidTable(unsigned vcpu_count, const KvmCpuid& kvm, bool amd, bool x2apic)
    : m_count(vcpu_count), m_amd(amd) {
  auto add = [&](uint32_t leaf, CpuidLeaf r, bool indexed = false, uint32_t sub = 0) {
    m_entries.push_back(Entry{leaf, indexed, sub, r});
  };
  // Leaf 0: max basic leaf, "GenuineIntel" (or "AuthenticAMD") in EBX EDX ECX order.
  if (amd)
    add(0, {kMaxBasic, str4("Auth"), str4("cAMD"), str4("enti")});
  else
    add(0, {kMaxBasic, str4("Genu"), str4("ntel"), str4("ineI")});
  // Leaf 1: family 6 model 0x55 stepping 4 (a Skylake-SP signature; arbitrary but real).
  // EBX[15:8] CLFLUSH line = 8 qwords; [23:16] and [31:24] are patched per vCPU.
  // ECX: CX16 (13; CMPXCHG16B is implemented), x2APIC (21; devices/lapic, unless the
  //      scenario hides it with machine.x2apic false), POPCNT (23), TSC-deadline timer (24;
  //      IA32_TSC_DEADLINE), hypervisor (31).
  // EDX: TSC(4) MSR(5) PAE(6) CX8(8) APIC(9; the boot protocol's xAPIC) MTRR(12; MTRRcap
  //      reads 0) PGE(13) CMOV(15) PAT(16) and PSE(3) for the 2 MiB pages.
  add(1, {0x00050654, 8u << 8, bit(13) | (x2apic ? bit(21) : 0) | bit(23) | bit(24) | bit(31),
          bit(3) | bit(4) | bit(5) | bit(6) | bit(8) | bit(9) | bit(12) | bit(13) | bit(15) | bit(16)});
  // Leaf 7 subleaf 0: no structured extended features (no FSGSBASE, BMI, ERMS claims).
  add(7, {0, 0, 0, 0}, true, 0);
  // Leaf 0xB: x2APIC topology, one thread per core, n cores in one package. EDX (the
  // x2APIC ID) is patched per vCPU. Subleaf 2 is the terminating "invalid" level.
  add(0xB, {0, 1, 0x100, 0}, true, 0);
  add(0xB, {id_bits(vcpu_count), vcpu_count, 0x201, 0}, true, 1);
  add(0xB, {0, 0, 0x2, 0}, true, 2);
  // KVM leaves from the scenario.
  for (uint32_t l : {KvmCpuid::kSignatureLeaf, KvmCpuid::kFeaturesLeaf}) add(l, *kvm.leaf(l));
  // Extended leaves.
  add(0x80000000, {kMaxExtended, 0, 0, 0});
  // ECX: LAHF/SAHF in 64-bit mode (0), ABM/LZCNT (5). EDX: NX (20), 1 GiB pages (26),
  // RDTSCP (27), LM (29), SYSCALL/SYSRET (11; core/cpu/exec_system.cpp, gated by EFER.SCE).
  add(0x80000001, {0, 0, bit(0) | bit(5), bit(11) | bit(20) | bit(26) | bit(27) | bit(29)});
  // Brand string, 48 bytes NUL-padded, over leaves 0x80000002-4.
  char brand[48] = "pvsim virtual CPU";
  for (uint32_t k = 0; k < 3; ++k)
    add(0x80000002 + k, {str4(brand + 16 * k), str4(brand + 16 * k + 4), str4(brand + 16 * k + 8),
                         str4(brand + 16 * k + 12)});
  add(0x80000005, {0, 0, 0, 0});
  add(0x80000006, {0, 0, 0, 0});
  add(0x80000007, {0, 0, 0, 0});
  // 46 physical and 48 linear address bits: the MMU treats page-table, CR3 and APIC_BASE
  // bits at and above 46 as reserved (core/README.md "MMU"), so CPUID must say the same.
  add(0x80000008, {0x302e, 0, 0, 0});
  std::sort(m_entries.begin(), m_entries.end(), [](const Entry& a, const Entry& b) {
    return a.leaf != b.leaf ? a.leaf < b.leaf : a.subleaf < b.subleaf;
  });
}

const CpuidTable::Entry* CpuidTable::find(uint32_t leaf, uint32_t subleaf) const {
  for (const Entry& e : m_entries)
    if (e.leaf == leaf && (!e.indexed || e.subleaf == subleaf)) return &e;
  return nullptr;
}

CpuidResult CpuidTable::per_vcpu(const Entry& e, unsigned vcpu, uint32_t subleaf) const {
  CpuidResult r{e.regs.eax, e.regs.ebx, e.regs.ecx, e.regs.edx, true, false};
  if (e.leaf == 1) r.ebx |= (vcpu << 24) | ((m_count & 0xff) << 16);
  if (e.leaf == 0xB) r.edx = vcpu;
  (void)subleaf;
  return r;
}

CpuidResult CpuidTable::lookup(unsigned vcpu, uint32_t leaf, uint32_t subleaf) const {
  if (const Entry* e = find(leaf, subleaf)) return per_vcpu(*e, vcpu, subleaf);
  // Which range's maximum applies (KVM get_out_of_range_cpuid_entry).
  const Entry* range_max = nullptr;
  if (leaf >= 0x40000000 && leaf <= 0x4fffffff) range_max = find(leaf & 0xffffff00u, 0);
  else if (leaf >= 0x80000000) range_max = find(0x80000000, 0);
  else range_max = find(0, 0);
  // KVM's get_out_of_range_cpuid_entry applies Intel's rule only for a guest CPUID that is
  // not AMD-compatible; AMD CPUs return zeros for any leaf they do not have.
  if ((range_max && leaf <= range_max->regs.eax) || m_amd) {
    CpuidResult r{};
    r.found = false;
    return r;
  }
  const Entry* basic = find(kMaxBasic, subleaf);
  CpuidResult r{};
  if (basic) r = per_vcpu(*basic, vcpu, subleaf);
  r.found = false;
  r.used_max_basic = true;
  return r;
}

}  // namespace pvsim
