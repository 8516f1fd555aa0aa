#include "pvmsr/kvm_cpuid.h"

#include <array>
#include <utility>

namespace pvsim {

namespace {
constexpr std::array<std::pair<std::string_view, unsigned>, 17> kFeatureNames{{
    {"CLOCKSOURCE", 0},        {"NOP_IO_DELAY", 1},    {"CLOCKSOURCE2", 3},
    {"ASYNC_PF", 4},           {"STEAL_TIME", 5},      {"PV_EOI", 6},
    {"PV_UNHALT", 7},          {"PV_TLB_FLUSH", 9},    {"ASYNC_PF_VMEXIT", 10},
    {"PV_SEND_IPI", 11},       {"POLL_CONTROL", 12},   {"PV_SCHED_YIELD", 13},
    {"ASYNC_PF_INT", 14},      {"MSI_EXT_DEST_ID", 15}, {"HC_MAP_GPA_RANGE", 16},
    {"MIGRATION_CONTROL", 17}, {"CLOCKSOURCE_STABLE_BIT", 24},
}};
}  // namespace

std::optional<unsigned> kvm_feature_bit(std::string_view name) {
  for (const auto& [n, bit] : kFeatureNames)
    if (n == name) return bit;
  return std::nullopt;
}

std::optional<CpuidLeaf> KvmCpuid::leaf(uint32_t function) const {
  switch (function) {
    case kSignatureLeaf:
      // "KVMKVMKVM\0\0\0" in ebx, ecx, edx (little-endian ASCII).
      return CpuidLeaf{m_signature_eax, 0x4b4d564bu, 0x564b4d56u, 0x0000004du};
    case kFeaturesLeaf:
      return CpuidLeaf{m_features, 0, 0, m_hints};
    default:
      return std::nullopt;
  }
}

}  // namespace pvsim
