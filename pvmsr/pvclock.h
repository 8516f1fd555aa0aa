// pvmsr/pvclock.h — kvmclock arithmetic and the shared guest structures it publishes
// (pvmsr/README.md §4).
//
// Index:
//   layouts ........ PvclockVcpuTimeInfo (32 B), PvclockWallClock (12 B), flag bits
//   arithmetic ..... kvm_get_time_scale, pvclock_scale_delta, pvclock_read_ns,
//                    pvclock_tsc_khz (pure functions, no state)
//   publishing ..... pvclock_publish_vcpu_time_info (an update as separate host stores),
//                    pvclock_write_vcpu_time_info (the same, applied at once),
//                    pvclock_write_wall_clock: the only ways the hypervisor writes these
//                    structures
//
// Pure library piece: no MSR handling, no trace events; the MSR handlers and the clock
// update request (pvmsr/README.md §4.5) call into this.
#pragma once
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "core/guest_memory.h"
#include "core/types.h"
#include "pvmsr/host_stores.h"

namespace pvsim {

// ---------------------------------------------------------------------------------------
// Layouts (pvmsr/README.md §4.2; uapi `pvclock_vcpu_time_info`, `pvclock_wall_clock`).
// Little-endian like the guest, which is also the host byte order pvsim supports.

struct __attribute__((packed)) PvclockVcpuTimeInfo {
  uint32_t version = 0;  // seqcount: odd while the host is writing (README §4.6)
  uint32_t pad0 = 0;
  uint64_t tsc_timestamp = 0;      // guest TSC at which system_time was sampled
  uint64_t system_time = 0;        // kvmclock ns at tsc_timestamp
  uint32_t tsc_to_system_mul = 0;  // 32.32 fixed-point ns per (shifted) TSC tick
  int8_t tsc_shift = 0;            // applied to the TSC delta before the multiply
  uint8_t flags = 0;               // kPvclockTscStableBit | kPvclockGuestStopped
  uint8_t pad[2] = {0, 0};
};
static_assert(sizeof(PvclockVcpuTimeInfo) == 32);
static_assert(offsetof(PvclockVcpuTimeInfo, version) == 0);
static_assert(offsetof(PvclockVcpuTimeInfo, pad0) == 4);
static_assert(offsetof(PvclockVcpuTimeInfo, tsc_timestamp) == 8);
static_assert(offsetof(PvclockVcpuTimeInfo, system_time) == 16);
static_assert(offsetof(PvclockVcpuTimeInfo, tsc_to_system_mul) == 24);
static_assert(offsetof(PvclockVcpuTimeInfo, tsc_shift) == 28);
static_assert(offsetof(PvclockVcpuTimeInfo, flags) == 29);
static_assert(offsetof(PvclockVcpuTimeInfo, pad) == 30);

struct __attribute__((packed)) PvclockWallClock {
  uint32_t version = 0;  // seqcount, same protocol as above (README §4.8)
  uint32_t sec = 0;      // low 32 bits of the epoch's seconds (wraps in 2106)
  uint32_t nsec = 0;     // always < 1e9
};
static_assert(sizeof(PvclockWallClock) == 12);
static_assert(offsetof(PvclockWallClock, version) == 0);
static_assert(offsetof(PvclockWallClock, sec) == 4);
static_assert(offsetof(PvclockWallClock, nsec) == 8);

// `flags` bits (pvmsr/README.md §4.2). Named after the uapi macros they stand for.
inline constexpr uint8_t PVCLOCK_TSC_STABLE_BIT = 1u << 0;  // master clock in use (README §4.7)
inline constexpr uint8_t PVCLOCK_GUEST_STOPPED = 1u << 1;   // set by KVM_KVMCLOCK_CTRL (README §4.2)

inline constexpr uint64_t kNsecPerSec = 1'000'000'000u;

// ---------------------------------------------------------------------------------------
// Arithmetic (pvmsr/README.md §4.3, §4.9).

// ns = ((tsc_delta shifted by `shift`) * mul) >> 32, with mul < 2^32.
struct TimeScale {
  int8_t shift = 0;
  uint32_t mul = 0;
  friend bool operator==(const TimeScale&, const TimeScale&) = default;
};

// KVM `kvm_get_time_scale` as pvmsr/README.md §4.3 states it: the (shift, mul) pair converting ticks
// of `base_hz` into ticks of `scaled_hz` (kvmclock: scaled = 1e9, base = guest TSC Hz).
// Either rate 0 has no scale (KVM never calls it then: `kvm_guest_time_update` bails out
// on tsc_khz == 0); it returns {0, 0}, whose delta product is always 0.
TimeScale kvm_get_time_scale(uint64_t scaled_hz, uint64_t base_hz);

// The guest's conversion of a TSC delta (pvmsr/README.md §4.9, `pvclock_scale_delta`): shift, then a
// 64x32 -> 96-bit product of which bits 95:32 are returned. Shift counts are taken mod 64,
// which is what the x86-64 SHL/SHR the guest compiles to does with a CL count (SDM Vol. 2B
// "SAL/SAR/SHL/SHR": count masked to 6 bits with REX.W); this also keeps a junk shift
// read back from guest memory from being undefined behaviour here.
constexpr uint64_t pvclock_scale_delta(uint64_t delta, uint32_t mul, int8_t shift) {
  if (shift < 0)
    delta >>= static_cast<unsigned>(-static_cast<int>(shift)) & 63u;
  else
    delta <<= static_cast<unsigned>(shift) & 63u;
  return static_cast<uint64_t>((static_cast<unsigned __int128>(delta) * mul) >> 32);
}

// A guest kvmclock reading at guest TSC `tsc` from one consistent copy of the structure
// (pvmsr/README.md §4.9, body of `__pvclock_read_cycles`). Unsigned wrap of tsc - tsc_timestamp is
// what the guest computes too. The seqcount retry and the monotonic guard are the
// reader's business, not part of this arithmetic.
constexpr uint64_t pvclock_read_ns(const PvclockVcpuTimeInfo& ti, uint64_t tsc) {
  return ti.system_time +
         pvclock_scale_delta(tsc - ti.tsc_timestamp, ti.tsc_to_system_mul, ti.tsc_shift);
}

// The guest's inverse (pvmsr/README.md §4.3, `pvclock_tsc_khz`): TSC kHz implied by (mul, shift).
// mul == 0 gives 0 instead of dividing by zero; shift counts mod 64 as above.
constexpr uint64_t pvclock_tsc_khz(uint32_t mul, int8_t shift) {
  if (mul == 0) return 0;
  uint64_t khz = (uint64_t{1'000'000} << 32) / mul;
  if (shift < 0)
    khz <<= static_cast<unsigned>(-static_cast<int>(shift)) & 63u;
  else
    khz >>= static_cast<unsigned>(shift) & 63u;
  return khz;
}

// ---------------------------------------------------------------------------------------
// Publishing (pvmsr/README.md §4.6, §4.8: the only way these structures reach
// guest memory).

// Which KVM generation's update protocol to reproduce (pvmsr/README.md §2.1).
enum class AbiProfile {
  Orig,    // 2.6.38-3.x: one 32-byte copy, version += 2 from the host's own counter
  Modern,  // 4.x+/6.x: version odd -> body -> version even, read from the guest copy
};

// Which sequence of guest-memory stores one vCPU structure update is (pvmsr/README.md §4.6).
// The profile picks it, and under "orig" machine.kvm.bugs.kvmclock_even_version_copy
// (pvmsr/README.md §2.5) chooses between the seed era's copy and the fixed protocol.
enum class PvclockProtocol : uint8_t {
  SeedCopy,     // orig with the bug: one 32-byte copy, version = host's own counter + 2
  OddEven,      // orig with the fix: odd version, body, even version, from the guest copy
  OddEvenStop,  // modern: OddEven, plus the guest copy's GUEST_STOPPED kept in flags
};
// The protocol a profile uses when no bug flag says otherwise (its historic default).
constexpr PvclockProtocol pvclock_protocol(AbiProfile p) {
  return p == AbiProfile::Orig ? PvclockProtocol::SeedCopy : PvclockProtocol::OddEvenStop;
}

// What the publishers read from guest RAM. GuestMemory is the production model; the
// template form lets tests interpose and count the reads.
template <class M>
concept PvclockReadable = requires(const M& cm, Gpa g, void* d, uint64_t n) {
  { cm.contains(g, n) } -> std::same_as<bool>;
  { cm.read(g, d, n) } -> std::same_as<bool>;
};
// ... and what the wall-clock writer also stores (it writes at once, pvmsr/README.md §4.8).
template <class M>
concept PvclockMemory = PvclockReadable<M> && requires(M& m, Gpa g, const void* s, uint64_t n) {
  { m.write(g, s, n) } -> std::same_as<bool>;
};

// One update of a vCPU structure (`hv_clock`, KVM `vcpu->hv_clock`) at `gpa`, as the
// separate guest-memory stores KVM's code makes, appended to `out` in program order
// (pvmsr/host_stores.h). The guest copy is read now, when the update is computed; the
// stores land whenever the caller applies them, so another vCPU can run in between.
//   OddEvenStop (modern, `kvm_setup_guest_pvclock`): v = (guest version + 1) | 1 — so an
//     odd, junk start is rounded up; the guest copy's GUEST_STOPPED bit is ORed into flags
//     (an unconsumed stop stays visible, README §4.2); then 3 stores: `version` = v alone
//     (4 bytes), the whole 32-byte body with version v, `version` = v + 1 alone. Net +2
//     from even, +3 from odd. Every partial state a reader can see has an odd version.
//   OddEven (orig with kvmclock_even_version_copy off, README §2.5): the same version
//     arithmetic and the same three stores, with the host's flags alone (the seed era had
//     no GUEST_STOPPED). The version continues from the guest copy, not from the host's
//     counter, because that is what the fix itself did (4.x kvm_setup_pvclock_page read
//     the guest's version first): a guest that scribbled on `version` still sees odd
//     during the update and even after it.
//   SeedCopy (orig, 3.0 `kvm_guest_time_update`): the host copy's own version += 2, flags are the
//     host's; the guest copy is neither read nor fixed up. The one 32-byte memcpy into
//     the kmapped page is 4 stores of 8 bytes in ascending address order (what the
//     x86-64 kernel's memcpy does with 32 bytes): bytes 0-7 (version, pad0), 8-15
//     (tsc_timestamp), 16-23 (system_time), 24-31 (mul, shift, flags, pad). The new even
//     version therefore lands FIRST: a reader that starts after it and reads the fields
//     while the rest land gets old and new fields under one unchanged, even version —
//     the torn read of pvmsr/README.md §4.13.
// On success hv_clock.version/flags hold what the guest will see once every store has
// landed (so the next Orig update continues from there) and the result is true. When
// [gpa, gpa+32) is not all inside RAM nothing is read or pushed, hv_clock is unchanged
// and the result is false (KVM: the pfn cache/page lookup fails and the update is
// silently skipped, pvmsr/README.md §4.1).
template <PvclockReadable M>
bool pvclock_publish_vcpu_time_info(const M& mem, Gpa gpa, PvclockVcpuTimeInfo& hv_clock,
                                    PvclockProtocol protocol, HostStores& out);
bool pvclock_publish_vcpu_time_info(const GuestMemory& mem, Gpa gpa,
                                    PvclockVcpuTimeInfo& hv_clock, PvclockProtocol protocol,
                                    HostStores& out);
// The same update with every store applied at once (no other vCPU can run in between).
bool pvclock_write_vcpu_time_info(GuestMemory& mem, Gpa gpa, PvclockVcpuTimeInfo& hv_clock,
                                  PvclockProtocol protocol);

// pvmsr/README.md §4.8 (`kvm_write_wall_clock`, identical in orig and modern): read version, +1 if
// odd, +1 and write version alone (odd), write all 12 bytes with sec = low 32 bits of
// epoch_ns / 1e9 and nsec = epoch_ns % 1e9, +1 and write version (even). Returns false
// and writes nothing when [gpa, gpa+12) is not all inside RAM. Written at once: the
// structure is published from the WRMSR handler, not at guest entry.
template <PvclockMemory M>
bool pvclock_write_wall_clock(M& mem, Gpa gpa, uint64_t epoch_ns);
bool pvclock_write_wall_clock(GuestMemory& mem, Gpa gpa, uint64_t epoch_ns);

// ---------------------------------------------------------------------------------------
// Template bodies (the GuestMemory overloads in pvclock.cpp instantiate these).

template <PvclockReadable M>
bool pvclock_publish_vcpu_time_info(const M& mem, Gpa gpa, PvclockVcpuTimeInfo& hv_clock,
                                    PvclockProtocol protocol, HostStores& out) {
  // Checked once up front so that no partial update is ever queued: every store below
  // stays within these 32 bytes.
  if (!mem.contains(gpa, sizeof(PvclockVcpuTimeInfo))) return false;
  PvclockVcpuTimeInfo next = hv_clock;
  if (protocol == PvclockProtocol::SeedCopy) {
    next.version = hv_clock.version + 2;
    uint8_t image[sizeof(PvclockVcpuTimeInfo)];
    std::memcpy(image, &next, sizeof(image));
    static constexpr const char* kWhat[4] = {"version", "tsc_timestamp", "system_time",
                                             "mul_shift_flags"};
    for (unsigned k = 0; k < 4; ++k) out.push(gpa.value() + 8 * k, image + 8 * k, 8, kWhat[k]);
    hv_clock = next;
    return true;
  }
  // Fields are copied through locals: the structs are packed, so their members must not
  // have their address taken (-Waddress-of-packed-member).
  constexpr uint64_t kVersionOff = offsetof(PvclockVcpuTimeInfo, version);
  uint32_t version = 0;
  uint8_t guest_flags = 0;
  mem.read(gpa + kVersionOff, &version, sizeof(version));
  if (protocol == PvclockProtocol::OddEvenStop)
    mem.read(gpa + offsetof(PvclockVcpuTimeInfo, flags), &guest_flags, sizeof(guest_flags));
  version = (version + 1) | 1u;
  // Store 1: the odd version must be visible before any body byte changes, so a reader
  // that overlaps the update retries (pvmsr/README.md §4.9 loop).
  out.push_obj(gpa.value() + kVersionOff, version, "version");
  next.version = version;
  next.flags = static_cast<uint8_t>(next.flags | (guest_flags & PVCLOCK_GUEST_STOPPED));
  out.push_obj(gpa.value(), next, "body");
  ++version;
  out.push_obj(gpa.value() + kVersionOff, version, "version");
  next.version = version;
  hv_clock = next;
  return true;
}

template <PvclockMemory M>
bool pvclock_write_wall_clock(M& mem, Gpa gpa, uint64_t epoch_ns) {
  if (!mem.contains(gpa, sizeof(PvclockWallClock))) return false;
  constexpr uint64_t kVersionOff = offsetof(PvclockWallClock, version);
  uint32_t version = 0;
  mem.read(gpa + kVersionOff, &version, sizeof(version));
  if (version & 1u) ++version;  // junk left by the guest: make it even first
  ++version;
  mem.write(gpa + kVersionOff, &version, sizeof(version));
  PvclockWallClock wc;
  wc.version = version;
  wc.sec = static_cast<uint32_t>(epoch_ns / kNsecPerSec);  // truncation intended (README §4.8)
  wc.nsec = static_cast<uint32_t>(epoch_ns % kNsecPerSec);
  mem.write(gpa, &wc, sizeof(wc));
  ++version;
  mem.write(gpa + kVersionOff, &version, sizeof(version));
  return true;
}

}  // namespace pvsim
