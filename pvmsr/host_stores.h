// pvmsr/host_stores.h — a host update of a guest structure as the separate stores KVM's
// code makes, so that another vCPU can run between them (pvmsr/README.md §1.2).
//
// KVM writes shared structures (kvmclock's pvclock_vcpu_time_info, the steal-time record)
// with ordinary stores from the vCPU thread. Between two of those stores the guest on
// another physical CPU keeps running and may read — or, for steal time's `preempted`,
// write — the same bytes. Whether a protocol survives that is exactly what the seqcount
// (odd/even version) and the xchg on `preempted` were added for, and what the seed-era
// code lacked: 3.0 copied the whole kvmclock struct with version += 2 and no odd phase
// (a reader could see a torn struct), and record_steal_time before 5.6 wrote back a whole
// struct read earlier (a FLUSH_TLB stored by the guest in between was lost,
// CVE-2019-3016).
//
// A feature that publishes a structure at guest entry does its reads at once and appends
// its stores here in program order. The Hypervisor then applies them spaced by the
// scenario's `host.pv_store_ns`: with 0 (the default) all of them land at the entry
// instant, as before; with d > 0 the k-th store lands d*k ns after the entry started and
// the vCPU enters the guest after the last one, while every other vCPU keeps running.
#pragma once
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <deque>
#include <stdexcept>

#include "core/guest_memory.h"
#include "core/types.h"

namespace pvsim {

struct HostStore {
  uint64_t gpa = 0;
  uint8_t len = 0;                 // 1..64 bytes
  std::array<uint8_t, 64> bytes{};  // the first `len` are stored
  const char* what = "";           // for the trace: a string literal ("version", "steal", ...)
};

// The stores of the updates started at one vCPU's entry, oldest first.
class HostStores {
 public:
  // Appends a store of `len` bytes (1..64) from `src` at guest-physical `gpa`.
  void push(uint64_t gpa, const void* src, size_t len, const char* what) {
    if (len == 0 || len > 64) throw std::invalid_argument("HostStores::push: 1..64 bytes");
    HostStore s;
    s.gpa = gpa;
    s.len = static_cast<uint8_t>(len);
    std::memcpy(s.bytes.data(), src, len);
    s.what = what;
    m_q.push_back(s);
  }
  template <typename T>
  void push_obj(uint64_t gpa, const T& v, const char* what) {
    push(gpa, &v, sizeof(T), what);
  }
  bool empty() const { return m_q.empty(); }
  size_t size() const { return m_q.size(); }
  const HostStore& front() const { return m_q.front(); }
  // Applies the oldest store to guest memory; false when its range is not wholly in RAM
  // (nothing is written then, as KVM's failed copy_to_user writes nothing useful).
  bool apply_front(GuestMemory& mem) {
    const HostStore s = m_q.front();
    m_q.pop_front();
    return mem.write(Gpa(s.gpa), s.bytes.data(), s.len);
  }
  void apply_all(GuestMemory& mem) {
    while (!m_q.empty()) apply_front(mem);
  }
  void clear() { m_q.clear(); }

  // Snapshots (pvmsr/README.md §1.3): the stores not yet applied, by value. A store's
  // bytes were read from guest memory when its update was computed, so a restored queue
  // goes with guest memory rolled back to the same instant.
  struct Snapshot {
    std::deque<HostStore> stores;
  };
  Snapshot save() const { return {m_q}; }
  void restore(const Snapshot& s) { m_q = s.stores; }

 private:
  std::deque<HostStore> m_q;
};

}  // namespace pvsim
