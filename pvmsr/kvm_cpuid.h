// pvmsr/kvm_cpuid.h — KVM's CPUID leaves 0x40000000/0x40000001 (pvmsr/README.md §3).
//
// KVM itself does not answer CPUID; the VMM installs these leaves (KVM_SET_CPUID2), so
// pvsim builds them from the scenario, as a VMM would from KVM_GET_SUPPORTED_CPUID.
#pragma once
#include <cstdint>
#include <optional>
#include <string_view>

namespace pvsim {

struct CpuidLeaf {
  uint32_t eax = 0, ebx = 0, ecx = 0, edx = 0;
};

// Feature bits of leaf 0x40000001 EAX (uapi asm/kvm_para.h).
enum class KvmFeature : uint8_t {
  Clocksource = 0,
  NopIoDelay = 1,
  MmuOp = 2,
  Clocksource2 = 3,
  AsyncPf = 4,
  StealTime = 5,
  PvEoi = 6,
  PvUnhalt = 7,
  PvTlbFlush = 9,
  AsyncPfVmexit = 10,
  PvSendIpi = 11,
  PollControl = 12,
  PvSchedYield = 13,
  AsyncPfInt = 14,
  MsiExtDestId = 15,
  HcMapGpaRange = 16,
  MigrationControl = 17,
  ClocksourceStableBit = 24,
};

// Scenario feature name ("ASYNC_PF", ...) → bit number; nullopt for unknown names.
// MMU_OP is deliberately not accepted: modern KVM never sets it (pvmsr/README.md §3.2).
std::optional<unsigned> kvm_feature_bit(std::string_view name);

class KvmCpuid {
 public:
  static constexpr uint32_t kSignatureLeaf = 0x40000000;
  static constexpr uint32_t kFeaturesLeaf = 0x40000001;
  // What a 6.x KVM advertises (pvmsr/README.md §3.2): bits 0,1,3-7,9-14,24.
  static constexpr uint32_t kDefaultFeatures = 0x01007efb;
  static constexpr uint32_t kDefaultSignatureEax = 0x40000001;

  KvmCpuid(uint32_t features = kDefaultFeatures, uint32_t hints = 0,
           uint32_t signature_eax = kDefaultSignatureEax)
      : m_features(features), m_hints(hints), m_signature_eax(signature_eax) {}

  uint32_t features() const { return m_features; }
  bool has(KvmFeature f) const { return (m_features >> static_cast<unsigned>(f)) & 1u; }

  // The leaf, or nullopt for leaves of the KVM range this block does not define.
  std::optional<CpuidLeaf> leaf(uint32_t function) const;

 private:
  uint32_t m_features;
  uint32_t m_hints;
  uint32_t m_signature_eax;
};

}  // namespace pvsim
