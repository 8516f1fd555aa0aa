// tools/platform/cpuid_table.h — what CPUID answers on a pvsim vCPU.
//
// Vendor "GenuineIntel" (or "AuthenticAMD", machine.cpu_vendor). Feature bits are honest: only what core/cpu executes is
// advertised. In particular FPU, SSE and SSE2 are NOT advertised although every
// x86-64 CPU has them: the core runs -mgeneral-regs-only code and raises #UD on x87/SSE,
// so claiming them would make a guest that checks CPUID fail in a worse way.
//
// Lookup follows KVM's kvm_cpuid() with an Intel vendor: an exact entry is "found";
// a leaf above the maximum of its range (basic, 0x4000xxxx, 0x8000xxxx) returns the
// data of the highest basic leaf (SDM Vol. 2A CPUID: "If a value entered for CPUID.EAX
// is higher than the maximum input value for basic or extended function for that
// processor then the data for the highest basic information leaf is returned") and is
// reported "used max basic"; a missing leaf inside a range returns zeros, "not found".
#pragma once
#include <cstdint>
#include <vector>

#include "core/env.h"
#include "pvmsr/kvm_cpuid.h"

namespace pvsim {

class CpuidTable {
 public:
  static constexpr uint32_t kMaxBasic = 0xB;
  static constexpr uint32_t kMaxExtended = 0x80000008;

  // `amd`: machine.cpu_vendor "amd": leaf 0 reads "AuthenticAMD" (the guest then uses
  // VMMCALL for hypercalls) and, as KVM does for an AMD-compatible guest CPUID, a leaf past
  // its range's maximum reads zeros instead of the highest basic leaf.
  // `x2apic`: machine.x2apic; false clears leaf 1 ECX[21], as QEMU's `-cpu ...,-x2apic`.
  CpuidTable(unsigned vcpu_count, const KvmCpuid& kvm, bool amd = false, bool x2apic = true);
  CpuidResult lookup(unsigned vcpu, uint32_t leaf, uint32_t subleaf) const;

 private:
  struct Entry {
    uint32_t leaf;
    bool indexed;  // subleaf-significant (leaf 7, 0xB)
    uint32_t subleaf;
    CpuidLeaf regs;
  };
  const Entry* find(uint32_t leaf, uint32_t subleaf) const;
  CpuidResult per_vcpu(const Entry& e, unsigned vcpu, uint32_t subleaf) const;

  unsigned m_count;
  bool m_amd;
  std::vector<Entry> m_entries;  // sorted by (leaf, subleaf)
};

}  // namespace pvsim
