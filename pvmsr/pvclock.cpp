#include "pvmsr/pvclock.h"

namespace pvsim {

// pvmsr/README.md §4.3 (KVM `kvm_get_time_scale`). Invariant sought: s / tps32 == scaled / base up to
// the truncations below, with base >> -shift (or base << shift) == tps32, so that
// ((delta shifted) * mul) >> 32 == delta * scaled / base.
TimeScale kvm_get_time_scale(uint64_t scaled_hz, uint64_t base_hz) {
  // With a zero rate step 3 would never end (0 <= s forever). KVM never gets here with
  // tsc_khz == 0; the no-op scale keeps a misconfigured caller from hanging.
  if (scaled_hz == 0 || base_hz == 0) return TimeScale{};

  int shift = 0;
  uint64_t tps = base_hz;
  uint64_t s = scaled_hz;

  // Step 2: bring the base rate into 32 bits and to at most twice the target rate. The
  // `s <= max/2` guard only avoids wrapping 2*s; above it "tps > 2*s" cannot hold anyway.
  constexpr uint64_t kHigh32 = 0xffff'ffff'0000'0000ull;
  while ((s <= UINT64_MAX / 2 && tps > 2 * s) || (tps & kHigh32) != 0) {
    tps >>= 1;
    --shift;
  }

  // Step 3: now make the base rate strictly above the target (so mul < 2^32) with the
  // target in 32 bits; a base that would overflow 32 bits lowers the target instead.
  uint32_t tps32 = static_cast<uint32_t>(tps);
  while (tps32 <= s || (s & kHigh32) != 0) {
    if ((s & kHigh32) != 0 || (tps32 & 0x8000'0000u) != 0)
      s >>= 1;
    else
      tps32 <<= 1;
    ++shift;
  }

  // Step 4: 32.32 fixed-point ratio; s < tps32 < 2^32, so s << 32 fits and the quotient
  // is below 2^32.
  TimeScale ts;
  ts.shift = static_cast<int8_t>(shift);
  ts.mul = static_cast<uint32_t>((s << 32) / tps32);
  return ts;
}

bool pvclock_publish_vcpu_time_info(const GuestMemory& mem, Gpa gpa,
                                    PvclockVcpuTimeInfo& hv_clock, PvclockProtocol protocol,
                                    HostStores& out) {
  return pvclock_publish_vcpu_time_info<GuestMemory>(mem, gpa, hv_clock, protocol, out);
}

bool pvclock_write_vcpu_time_info(GuestMemory& mem, Gpa gpa, PvclockVcpuTimeInfo& hv_clock,
                                  PvclockProtocol protocol) {
  HostStores stores;
  if (!pvclock_publish_vcpu_time_info(mem, gpa, hv_clock, protocol, stores)) return false;
  stores.apply_all(mem);
  return true;
}

bool pvclock_write_wall_clock(GuestMemory& mem, Gpa gpa, uint64_t epoch_ns) {
  return pvclock_write_wall_clock<GuestMemory>(mem, gpa, epoch_ns);
}

}  // namespace pvsim
