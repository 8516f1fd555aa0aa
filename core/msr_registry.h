// core/msr_registry.h — per-vCPU MSR dispatch (pvmsr/README.md §2.3 for the order PV MSR handlers follow).
//
// Every MSR the guest can touch has an entry: the core registers the architectural
// ones (EFER, FS/GS bases, TSC, PAT, ...), the platform adds LAPIC and KVM PV MSRs.
// RDMSR/WRMSR of an index with no entry raises #GP(0), as KVM does for an MSR that is
// neither emulated nor in ignore_msrs (kvm_get_msr_common/kvm_set_msr_common default).
// Lookups are a binary search over a sorted vector: deterministic, and RDMSR/WRMSR are
// VM exits, not the hot path.
#pragma once
#include <algorithm>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace pvsim {

class Vcpu;

enum class MsrStatus : uint8_t { Ok, Gp };

struct MsrHandler {
  uint32_t index = 0;
  const char* name = "";
  std::function<MsrStatus(Vcpu&, uint64_t& value)> read;         // null => #GP on read
  std::function<MsrStatus(Vcpu&, uint64_t value)> write;         // null => #GP on write
};

class MsrRegistry {
 public:
  // Adds or replaces the handler for h.index.
  void add(MsrHandler h) {
    auto it = std::lower_bound(m_table.begin(), m_table.end(), h.index,
                               [](const MsrHandler& a, uint32_t i) { return a.index < i; });
    if (it != m_table.end() && it->index == h.index) *it = std::move(h);
    else m_table.insert(it, std::move(h));
  }
  const MsrHandler* find(uint32_t index) const {
    auto it = std::lower_bound(m_table.begin(), m_table.end(), index,
                               [](const MsrHandler& a, uint32_t i) { return a.index < i; });
    return (it != m_table.end() && it->index == index) ? &*it : nullptr;
  }
  MsrStatus read(Vcpu& v, uint32_t index, uint64_t& value) const {
    const MsrHandler* h = find(index);
    if (!h || !h->read) return MsrStatus::Gp;
    return h->read(v, value);
  }
  MsrStatus write(Vcpu& v, uint32_t index, uint64_t value) const {
    const MsrHandler* h = find(index);
    if (!h || !h->write) return MsrStatus::Gp;
    return h->write(v, value);
  }
  const std::vector<MsrHandler>& entries() const { return m_table; }

 private:
  std::vector<MsrHandler> m_table;  // sorted by index
};

}  // namespace pvsim
