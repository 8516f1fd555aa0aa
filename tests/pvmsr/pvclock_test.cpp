// tests/pvmsr/pvclock_test.cpp — kvmclock arithmetic (pvmsr/README.md §4.3, §4.9), guest
// structure layouts (§4.2) and the seqcount publishers (§4.6, §4.8).
#include "pvmsr/pvclock.h"

#include <array>
#include <catch2/catch.hpp>
#include <cstring>
#include <string>
#include <vector>
#include "core/prng.h"

using namespace pvsim;

namespace {

constexpr uint64_t kRamSize = 4 * kPageSize;


uint32_t u32_at(const GuestMemory& mem, uint64_t gpa) {
  uint32_t v = 0;
  REQUIRE(mem.read(Gpa(gpa), &v, sizeof(v)));
  return v;
}
uint8_t u8_at(const GuestMemory& mem, uint64_t gpa) {
  uint8_t v = 0;
  REQUIRE(mem.read(Gpa(gpa), &v, sizeof(v)));
  return v;
}

// Wraps GuestMemory and records every write the publisher makes, with the guest-visible
// state of the whole RAM right after it — what a reader on another vCPU could observe
// between two host stores.
struct RecordingMemory {
  struct Write {
    uint64_t gpa;
    uint64_t len;
    std::vector<uint8_t> after;  // full RAM after this write
  };
  GuestMemory& mem;
  std::vector<Write> writes;
  unsigned reads = 0;

  bool contains(Gpa g, uint64_t n) const { return mem.contains(g, n); }
  bool read(Gpa g, void* d, uint64_t n) const {
    ++const_cast<RecordingMemory*>(this)->reads;
    return mem.read(g, d, n);
  }
  bool write(Gpa g, const void* s, uint64_t n) {
    const bool ok = mem.write(g, s, n);
    std::vector<uint8_t> snap(mem.size());
    REQUIRE(mem.read(Gpa(0), snap.data(), snap.size()));
    writes.push_back({g.value(), n, std::move(snap)});
    return ok;
  }
};
static_assert(PvclockMemory<RecordingMemory>);
static_assert(PvclockMemory<GuestMemory>);
static_assert(PvclockReadable<RecordingMemory>);

uint32_t u32_in(const std::vector<uint8_t>& ram, uint64_t off) {
  uint32_t v = 0;
  std::memcpy(&v, ram.data() + off, sizeof(v));
  return v;
}

PvclockVcpuTimeInfo sample_time_info() {
  PvclockVcpuTimeInfo ti;
  ti.version = 0;
  ti.tsc_timestamp = 0x1122334455667788ull;
  ti.system_time = 0x0102030405060708ull;
  const TimeScale ts = kvm_get_time_scale(kNsecPerSec, 2'500'000'000ull);
  ti.tsc_to_system_mul = ts.mul;
  ti.tsc_shift = ts.shift;
  ti.flags = PVCLOCK_TSC_STABLE_BIT;
  return ti;
}

void fill(GuestMemory& mem, uint8_t byte) {
  std::vector<uint8_t> buf(mem.size(), byte);
  REQUIRE(mem.write(Gpa(0), buf.data(), buf.size()));
}

bool all_bytes_are(const GuestMemory& mem, uint8_t byte) {
  std::vector<uint8_t> buf(mem.size());
  REQUIRE(mem.read(Gpa(0), buf.data(), buf.size()));
  for (uint8_t b : buf)
    if (b != byte) return false;
  return true;
}

}  // namespace

// ------------------------------------------------------------------------------ layouts

TEST_CASE("pvclock_vcpu_time_info bytes land at the uapi offsets", "[pvclock][layout]") {
  GuestMemory mem(kRamSize);
  PvclockVcpuTimeInfo ti;
  ti.version = 0x11223344u;
  ti.pad0 = 0x55667788u;
  ti.tsc_timestamp = 0x0807060504030201ull;
  ti.system_time = 0x1817161514131211ull;
  ti.tsc_to_system_mul = 0xa4a3a2a1u;
  ti.tsc_shift = -3;
  ti.flags = PVCLOCK_TSC_STABLE_BIT | PVCLOCK_GUEST_STOPPED;
  ti.pad[0] = 0xee;
  ti.pad[1] = 0xef;
  REQUIRE(mem.write_obj(Gpa(0x100), ti));
  std::array<uint8_t, 32> b{};
  REQUIRE(mem.read(Gpa(0x100), b.data(), b.size()));
  const std::array<uint8_t, 32> want = {
      0x44, 0x33, 0x22, 0x11, 0x88, 0x77, 0x66, 0x55,  // version, pad0
      0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,  // tsc_timestamp
      0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18,  // system_time
      0xa1, 0xa2, 0xa3, 0xa4, 0xfd, 0x03, 0xee, 0xef,  // mul, shift, flags, pad
  };
  CHECK(b == want);
  CHECK(PVCLOCK_TSC_STABLE_BIT == 1);
  CHECK(PVCLOCK_GUEST_STOPPED == 2);
}

TEST_CASE("pvclock_wall_clock bytes land at the uapi offsets", "[pvclock][layout]") {
  GuestMemory mem(kRamSize);
  PvclockWallClock wc;
  wc.version = 0x04030201u;
  wc.sec = 0x14131211u;
  wc.nsec = 0x24232221u;
  REQUIRE(mem.write_obj(Gpa(0x40), wc));
  std::array<uint8_t, 12> b{};
  REQUIRE(mem.read(Gpa(0x40), b.data(), b.size()));
  const std::array<uint8_t, 12> want = {0x01, 0x02, 0x03, 0x04, 0x11, 0x12,
                                        0x13, 0x14, 0x21, 0x22, 0x23, 0x24};
  CHECK(b == want);
}

// --------------------------------------------------------------------------- time scale

TEST_CASE("kvm_get_time_scale matches the spec's worked values", "[pvclock][scale]") {
  // pvmsr/README.md §4.3 table, plus 2.3 GHz.
  CHECK(kvm_get_time_scale(kNsecPerSec, 2'500'000'000ull) == TimeScale{-1, 0xCCCCCCCCu});
  CHECK(kvm_get_time_scale(kNsecPerSec, 1'000'000'000ull) == TimeScale{1, 0x80000000u});
  CHECK(kvm_get_time_scale(kNsecPerSec, 2'300'000'000ull) == TimeScale{-1, 0xde9bd37au});
  // pvmsr/README.md §4.3 table, other rows.
  CHECK(kvm_get_time_scale(kNsecPerSec, 3'000'000'000ull) == TimeScale{-1, 0xAAAAAAAAu});
  CHECK(kvm_get_time_scale(kNsecPerSec, 2'200'000'000ull) == TimeScale{-1, 0xE8BA2E8Bu});
  CHECK(kvm_get_time_scale(kNsecPerSec, 1'500'000'000ull) == TimeScale{0, 0xAAAAAAAAu});
  // The orig call (scaled = 1e6, base = tsc_khz) has the same ratio and gives the same pair.
  CHECK(kvm_get_time_scale(1'000'000u, 2'500'000u) == TimeScale{-1, 0xCCCCCCCCu});
  CHECK(kvm_get_time_scale(1'000'000u, 1'000'000u) == TimeScale{1, 0x80000000u});
  CHECK(kvm_get_time_scale(1'000'000u, 2'300'000u) == TimeScale{-1, 0xde9bd37au});
}

TEST_CASE("kvm_get_time_scale terminates on degenerate rates", "[pvclock][scale]") {
  CHECK(kvm_get_time_scale(kNsecPerSec, 0) == TimeScale{0, 0});
  CHECK(kvm_get_time_scale(0, 2'500'000'000ull) == TimeScale{0, 0});
  // Extreme but legal inputs: mul must stay a proper fraction and shift in int8 range.
  const TimeScale a = kvm_get_time_scale(UINT64_MAX, 1);
  const TimeScale b = kvm_get_time_scale(1, UINT64_MAX);
  const TimeScale c = kvm_get_time_scale(UINT64_MAX, UINT64_MAX);
  CHECK(a.shift == 64);  // 32 halvings of s, 31 doublings of tps32, one final halving
  CHECK(a.mul > 0x7fffffffu);
  CHECK(b.shift == -62);  // 63 halvings of tps (down to 1), then one doubling of tps32
  CHECK(b.mul == 0x80000000u);
  // Equal rates: a delta that survives the shift comes back unchanged to within 2^-30.
  const uint64_t d = 1ull << 40;
  CHECK(pvclock_scale_delta(d, c.mul, c.shift) <= d);
  CHECK(pvclock_scale_delta(d, c.mul, c.shift) >= d - (d >> 30));
}

// Error bound for one second (derivation; s = 1e9 never needs step 3's s >>= 1):
// after steps 2-3, tps32 = f >> k (k = -shift > 0, step 2 ran) or f << shift (shift >= 0),
// and 1e9 < tps32 <= 2e9. The guest shifts the delta D = f the same way, so the shifted
// delta equals tps32 exactly. With M = 1e9 * 2^32 / tps32 and mul = M - e, 0 <= e < 1:
//   tps32 * mul / 2^32 = 1e9 - tps32 * e / 2^32, and tps32 * e / 2^32 < 2e9 / 2^32 < 0.47,
// so the floor is 1e9 - 1 or 1e9: one second never reads long and at most 1 ns short.
TEST_CASE("one second of ticks scales to 1e9 ns within 1 ns for 100 seeded rates",
          "[pvclock][scale]") {
  SplitMix64 rng{0x70c10c4b5eedull};
  std::vector<uint64_t> rates = {1'000'000ull, 10'000'000'000ull};  // both ends of the range
  while (rates.size() < 102) {
    // One decade (1-10 MHz ... 1-10 GHz) per draw so every order of magnitude is covered.
    uint64_t lo = 1'000'000ull;
    for (uint64_t d = rng.next() % 4; d > 0; --d) lo *= 10;
    const uint64_t f = lo + rng.next() % (9 * lo + 1);
    if (f == 2'500'000'000ull || f == 1'000'000'000ull || f == 2'300'000'000ull) continue;
    rates.push_back(f);
  }
  for (uint64_t f : rates) {
    INFO("tsc_hz = " << f);
    const TimeScale ts = kvm_get_time_scale(kNsecPerSec, f);
    const uint64_t ns = pvclock_scale_delta(f, ts.mul, ts.shift);
    CHECK(ns <= kNsecPerSec);
    CHECK(ns >= kNsecPerSec - 1);
    // The guest's inverse (pvmsr/README.md §4.3): 1e6 * 2^32 / mul is tps32 / 1000 plus less than 0.002
    // (mul >= 2^31 is within 1 of the exact ratio), floored. With shift >= 0 the nested
    // floors give floor(f / 1000) (+1 at most); with shift = -k, tps32 already lost < 1
    // Hz and the final << k scales the kHz floor error by 2^k. Hence
    // |khz * 1000 - f| < 1000 * (1 + 2^k).
    const uint64_t khz = pvclock_tsc_khz(ts.mul, ts.shift);
    const uint64_t bound = 1000 * (1 + (ts.shift < 0 ? (1ull << -ts.shift) : 1ull));
    CHECK(khz * 1000 < f + bound);
    CHECK(khz * 1000 + bound > f);
  }
}

// General delta D (secs = D / f), same notation. shift >= 0: the shifted delta is exact,
// so ns_true - D*2^shift/2^32 - 1 < result <= ns_true, and D*2^shift/2^32 < 0.47*secs.
// shift < 0: tps = floor(f/2^k) underestimates f/2^k by < 1 part in 1e9 (tps > 1e9), so
// result <= ns_true * (1 + 1e-9) < ns_true + secs; truncating D >> k loses < 1 ns, the mul
// truncation < 0.47*secs and the final floor < 1, so result > ns_true - 2 - 0.47*secs.
TEST_CASE("arbitrary deltas stay within the derived error bound", "[pvclock][scale]") {
  SplitMix64 rng{0xde17a5ull};
  for (int i = 0; i < 2000; ++i) {
    const uint64_t f = 1'000'000ull + rng.next() % 9'999'000'001ull;
    const uint64_t delta = rng.next() % (f * 1000 + 1);  // up to 1000 s of ticks
    const TimeScale ts = kvm_get_time_scale(kNsecPerSec, f);
    const uint64_t got = pvclock_scale_delta(delta, ts.mul, ts.shift);
    const uint64_t exact = static_cast<uint64_t>(static_cast<unsigned __int128>(delta) *
                                                 kNsecPerSec / f);  // floor of ns_true
    const uint64_t secs = delta / f + 1;
    INFO("tsc_hz = " << f << " delta = " << delta << " got = " << got << " exact = " << exact);
    CHECK(got <= exact + secs);
    CHECK(got + 2 + (secs * 47 + 99) / 100 >= exact);
  }
}

TEST_CASE("pvclock_scale_delta uses the bits 95:32 of the product", "[pvclock][scale]") {
  // pvmsr/README.md §4.3: readings at exact seconds.
  CHECK(pvclock_scale_delta(2'500'000'000ull, 0xCCCCCCCCu, -1) == 999'999'999u);
  CHECK(pvclock_scale_delta(1000, 0x80000000u, 1) == 1000);
  // A 64x32 product far beyond 64 bits: (2^63 * (2^32 - 1)) >> 32 = 2^63 - 2^31.
  CHECK(pvclock_scale_delta(1ull << 63, 0xffffffffu, 0) == (1ull << 63) - (1ull << 31));
  // Left shift happens before the multiply and may discard high bits, as in the guest.
  CHECK(pvclock_scale_delta(0x8000000000000001ull, 0x80000000u, 1) == 1);
  // Counts act mod 64 like x86 SHL/SHR, never undefined behaviour.
  CHECK(pvclock_scale_delta(1000, 0x80000000u, 64) == 500);
  CHECK(pvclock_scale_delta(1000, 0x80000000u, -128) == 500);
  CHECK(pvclock_scale_delta(1000, 0x80000000u, -65) == 250);
}

TEST_CASE("pvclock_tsc_khz inverts the spec's scales exactly", "[pvclock][scale]") {
  CHECK(pvclock_tsc_khz(0xCCCCCCCCu, -1) == 2'500'000u);
  CHECK(pvclock_tsc_khz(0x80000000u, 1) == 1'000'000u);
  CHECK(pvclock_tsc_khz(0xde9bd37au, -1) == 2'300'000u);
  CHECK(pvclock_tsc_khz(0, 0) == 0);
}

TEST_CASE("pvclock_read_ns adds the scaled TSC delta to system_time", "[pvclock][read]") {
  PvclockVcpuTimeInfo ti;
  ti.tsc_timestamp = 5'000'000'000ull;
  ti.system_time = 123'456'789ull;
  const TimeScale ts = kvm_get_time_scale(kNsecPerSec, 1'000'000'000ull);
  ti.tsc_to_system_mul = ts.mul;
  ti.tsc_shift = ts.shift;
  CHECK(pvclock_read_ns(ti, 5'000'000'000ull) == 123'456'789ull);
  CHECK(pvclock_read_ns(ti, 5'000'001'000ull) == 123'457'789ull);
  CHECK(pvclock_read_ns(ti, 8'000'000'000ull) == 3'123'456'789ull);
  // 2.5 GHz: one second of ticks after the timestamp reads 1 s - 1 ns later (pvmsr/README.md §4.3).
  const TimeScale t25 = kvm_get_time_scale(kNsecPerSec, 2'500'000'000ull);
  ti.tsc_to_system_mul = t25.mul;
  ti.tsc_shift = t25.shift;
  CHECK(pvclock_read_ns(ti, 7'500'000'000ull) == 123'456'789ull + 999'999'999ull);
}

// ------------------------------------------------------------- vcpu_time_info publishing

TEST_CASE("modern publish: version odd, then body, then even", "[pvclock][seqcount]") {
  struct Case {
    uint32_t start, odd, even;
  };
  // Even start: +2. Odd (junk) start rounds up first: +3. Wrap at 2^32.
  const Case cases[] = {
      {6, 7, 8}, {7, 9, 10}, {0, 1, 2}, {0xffffffffu, 1, 2}, {0xfffffffeu, 0xffffffffu, 0}};
  for (const Case& c : cases) {
    INFO("start version " << c.start);
    GuestMemory mem(kRamSize);
    const uint64_t gpa = 0x1008;
    REQUIRE(mem.write(Gpa(gpa), &c.start, sizeof(c.start)));
    RecordingMemory rec{mem, {}};
    PvclockVcpuTimeInfo hv = sample_time_info();
    hv.version = 1234;  // the host's own counter plays no part in the modern protocol
    HostStores stores;
    REQUIRE(pvclock_publish_vcpu_time_info(rec, Gpa(gpa), hv, pvclock_protocol(AbiProfile::Modern), stores));
    // Computing the update reads the guest copy but writes nothing yet.
    CHECK(rec.reads > 0);
    CHECK(rec.writes.empty());
    CHECK(u32_at(mem, gpa) == c.start);
    CHECK(hv.version == c.even);  // what the guest will see once every store landed

    REQUIRE(stores.size() == 3);
    CHECK(stores.front().gpa == gpa);
    CHECK(stores.front().len == 4);
    CHECK(std::string(stores.front().what) == "version");
    REQUIRE(stores.apply_front(mem));
    CHECK(u32_at(mem, gpa) == c.odd);
    // Before the body store the old body is untouched (only the version moved).
    for (uint64_t off = 4; off < 32; ++off) CHECK(u8_at(mem, gpa + off) == 0);
    CHECK(stores.front().gpa == gpa);
    CHECK(stores.front().len == 32);
    CHECK(std::string(stores.front().what) == "body");
    REQUIRE(stores.apply_front(mem));
    CHECK(u32_at(mem, gpa) == c.odd);
    CHECK(stores.front().gpa == gpa);
    CHECK(stores.front().len == 4);
    REQUIRE(stores.apply_front(mem));
    CHECK(stores.empty());
    CHECK(u32_at(mem, gpa) == c.even);

    PvclockVcpuTimeInfo back;
    REQUIRE(mem.read_obj(Gpa(gpa), back));
    const PvclockVcpuTimeInfo want = sample_time_info();
    CHECK(std::memcmp(reinterpret_cast<const uint8_t*>(&back) + 4,
                      reinterpret_cast<const uint8_t*>(&want) + 4, 28) == 0);
  }
}

TEST_CASE("modern publish keeps an unconsumed GUEST_STOPPED bit", "[pvclock][seqcount]") {
  GuestMemory mem(kRamSize);
  const uint64_t gpa = 0x2000;
  const uint8_t stopped = PVCLOCK_GUEST_STOPPED;
  REQUIRE(mem.write(Gpa(gpa + 29), &stopped, 1));
  PvclockVcpuTimeInfo hv = sample_time_info();  // flags = TSC_STABLE only
  REQUIRE(pvclock_write_vcpu_time_info(mem, Gpa(gpa), hv, pvclock_protocol(AbiProfile::Modern)));
  CHECK(u8_at(mem, gpa + 29) == (PVCLOCK_TSC_STABLE_BIT | PVCLOCK_GUEST_STOPPED));
  CHECK(hv.flags == (PVCLOCK_TSC_STABLE_BIT | PVCLOCK_GUEST_STOPPED));
  // Once the guest clears it, the next update does not bring it back.
  const uint8_t cleared = PVCLOCK_TSC_STABLE_BIT;
  REQUIRE(mem.write(Gpa(gpa + 29), &cleared, 1));
  hv.flags = PVCLOCK_TSC_STABLE_BIT;
  REQUIRE(pvclock_write_vcpu_time_info(mem, Gpa(gpa), hv, pvclock_protocol(AbiProfile::Modern)));
  CHECK(u8_at(mem, gpa + 29) == PVCLOCK_TSC_STABLE_BIT);
}

TEST_CASE("orig publish: one copy as 4 ascending 8-byte stores, host version += 2",
          "[pvclock][seqcount]") {
  GuestMemory mem(kRamSize);
  const uint64_t gpa = 0x3010;
  const uint32_t junk = 7;  // odd junk in the guest copy is neither read nor fixed up
  REQUIRE(mem.write(Gpa(gpa), &junk, sizeof(junk)));
  const uint8_t stopped = PVCLOCK_GUEST_STOPPED;
  REQUIRE(mem.write(Gpa(gpa + 29), &stopped, 1));
  RecordingMemory rec{mem, {}};
  PvclockVcpuTimeInfo hv = sample_time_info();
  hv.version = 4;
  for (uint32_t want : {6u, 8u, 10u}) {
    HostStores stores;
    REQUIRE(pvclock_publish_vcpu_time_info(rec, Gpa(gpa), hv, pvclock_protocol(AbiProfile::Orig), stores));
    CHECK(hv.version == want);
    REQUIRE(stores.size() == 4);
    uint8_t image[32];
    std::memcpy(image, &hv, sizeof(image));
    const char* what[] = {"version", "tsc_timestamp", "system_time", "mul_shift_flags"};
    for (unsigned k = 0; k < 4; ++k) {
      INFO("store " << k);
      CHECK(stores.front().gpa == gpa + 8 * k);  // ascending addresses: the version first
      CHECK(stores.front().len == 8);
      CHECK(std::string(stores.front().what) == what[k]);
      CHECK(std::memcmp(stores.front().bytes.data(), image + 8 * k, 8) == 0);
      REQUIRE(stores.apply_front(mem));
    }
    CHECK(u32_at(mem, gpa) == want);
  }
  CHECK(rec.reads == 0);
  CHECK(rec.writes.empty());
  CHECK(u8_at(mem, gpa + 29) == PVCLOCK_TSC_STABLE_BIT);  // orig copies the host's flags
}

TEST_CASE("publishers write nothing unless the whole structure is in RAM",
          "[pvclock][seqcount][bounds]") {
  const std::vector<uint64_t> bad_gpas = {
      kRamSize,        // first byte past RAM
      kRamSize - 8,    // straddles the end (both structures)
      kRamSize - 4,    // only the version would fit
      0x10000000ull,   // far beyond
      UINT64_MAX - 8,  // gpa + len wraps around 2^64
  };
  std::vector<uint64_t> bad_time_info_gpas = bad_gpas;
  bad_time_info_gpas.push_back(kRamSize - 31);  // a 12-byte wall clock would still fit here
  bad_time_info_gpas.push_back(kRamSize - 16);
  std::vector<uint64_t> bad_wall_clock_gpas = bad_gpas;
  bad_wall_clock_gpas.push_back(kRamSize - 11);
  for (AbiProfile profile : {AbiProfile::Modern, AbiProfile::Orig}) {
    for (uint64_t gpa : bad_time_info_gpas) {
      INFO("gpa = " << gpa << " profile = " << static_cast<int>(profile));
      GuestMemory mem(kRamSize);
      fill(mem, 0x5a);
      RecordingMemory rec{mem, {}};
      PvclockVcpuTimeInfo hv = sample_time_info();
      hv.version = 40;
      HostStores stores;
      CHECK_FALSE(pvclock_publish_vcpu_time_info(rec, Gpa(gpa), hv, pvclock_protocol(profile), stores));
      CHECK(stores.empty());
      CHECK(rec.reads == 0);
      CHECK(hv.version == 40);
      CHECK_FALSE(pvclock_write_vcpu_time_info(mem, Gpa(gpa), hv, pvclock_protocol(profile)));
      CHECK(all_bytes_are(mem, 0x5a));
    }
  }
  for (uint64_t gpa : bad_wall_clock_gpas) {
    INFO("wall clock gpa = " << gpa);
    GuestMemory mem(kRamSize);
    fill(mem, 0xa5);
    CHECK_FALSE(pvclock_write_wall_clock(mem, Gpa(gpa), 5 * kNsecPerSec));
    CHECK(all_bytes_are(mem, 0xa5));
  }
  // The last fitting positions do work.
  GuestMemory mem(kRamSize);
  PvclockVcpuTimeInfo hv = sample_time_info();
  CHECK(pvclock_write_vcpu_time_info(mem, Gpa(kRamSize - 32), hv, pvclock_protocol(AbiProfile::Modern)));
  CHECK(pvclock_write_wall_clock(mem, Gpa(kRamSize - 12), 5 * kNsecPerSec));
}

// ------------------------------------------------------ a reader racing with the stores

namespace {

// The guest's state of the structure after 0, 1, ..., n of an update's stores landed.
std::vector<PvclockVcpuTimeInfo> states_during(GuestMemory& mem, uint64_t gpa, HostStores& stores) {
  std::vector<PvclockVcpuTimeInfo> states;
  PvclockVcpuTimeInfo ti;
  REQUIRE(mem.read_obj(Gpa(gpa), ti));
  states.push_back(ti);
  while (!stores.empty()) {
    REQUIRE(stores.apply_front(mem));
    REQUIRE(mem.read_obj(Gpa(gpa), ti));
    states.push_back(ti);
  }
  return states;
}

// One pass of the guest's read loop (pvmsr/README.md §4.9) on another vCPU whose loads
// land between the host's stores: the first version read sees state at[0], tsc_timestamp
// at[1], system_time at[2], mul/shift at[3], flags at[4], the closing version read at[5]
// (non-decreasing: the reader's loads are ordered, rmb). Empty when the loop would retry
// (odd or changed version); else the nanoseconds it returns at guest TSC `tsc`.
struct ReadResult {
  bool accepted = false;
  uint32_t version = 0;
  uint64_t ns = 0;
};
ReadResult guest_read(const std::vector<PvclockVcpuTimeInfo>& st, const unsigned at[6], uint64_t tsc) {
  ReadResult r;
  const uint32_t v = st[at[0]].version & ~1u;
  PvclockVcpuTimeInfo mix;
  mix.tsc_timestamp = st[at[1]].tsc_timestamp;
  mix.system_time = st[at[2]].system_time;
  mix.tsc_to_system_mul = st[at[3]].tsc_to_system_mul;
  mix.tsc_shift = st[at[3]].tsc_shift;
  mix.flags = st[at[4]].flags;
  if (st[at[5]].version != v) return r;  // odd or changed: retry
  r.accepted = true;
  r.version = v;
  r.ns = pvclock_read_ns(mix, tsc);
  return r;
}

// Every way the reader's six loads can fall between n stores.
template <typename F>
void for_each_interleaving(unsigned n, F f) {
  unsigned at[6] = {0, 0, 0, 0, 0, 0};
  for (at[0] = 0; at[0] <= n; ++at[0])
    for (at[1] = at[0]; at[1] <= n; ++at[1])
      for (at[2] = at[1]; at[2] <= n; ++at[2])
        for (at[3] = at[2]; at[3] <= n; ++at[3])
          for (at[4] = at[3]; at[4] <= n; ++at[4])
            for (at[5] = at[4]; at[5] <= n; ++at[5]) f(at);
}

// Two samples of one clock line at 2.5 GHz: at 0 (TSC 0) and at 1 ms (TSC 2.5e6). Read at
// TSC 2'500'100 (1.00004 ms) both agree with the line to within the scale's rounding
// (1 ns); a mix of the two is off by a whole millisecond.
PvclockVcpuTimeInfo old_sample() {
  PvclockVcpuTimeInfo ti;
  ti.version = 2;
  ti.tsc_timestamp = 0;
  ti.system_time = 0;
  const TimeScale ts = kvm_get_time_scale(kNsecPerSec, 2'500'000'000ull);
  ti.tsc_to_system_mul = ts.mul;
  ti.tsc_shift = ts.shift;
  return ti;
}
constexpr uint64_t kReadTsc = 2'500'100;
constexpr uint64_t kLineNs = 1'000'040;
bool near_line(uint64_t ns) { return ns + 1 >= kLineNs && ns <= kLineNs + 1; }

}  // namespace

TEST_CASE("orig: a reader between the copy's stores sees a torn struct under an even version",
          "[pvclock][seqcount][race]") {
  GuestMemory mem(kRamSize);
  const uint64_t gpa = 0x1000;
  PvclockVcpuTimeInfo hv = old_sample();
  REQUIRE(mem.write_obj(Gpa(gpa), hv));  // the previous update, fully landed
  hv.tsc_timestamp = 2'500'000;
  hv.system_time = 1'000'000;
  HostStores stores;
  REQUIRE(pvclock_publish_vcpu_time_info(mem, Gpa(gpa), hv, pvclock_protocol(AbiProfile::Orig), stores));
  const std::vector<PvclockVcpuTimeInfo> st = states_during(mem, gpa, stores);
  REQUIRE(st.size() == 5);
  for (const PvclockVcpuTimeInfo& s : st) CHECK((s.version & 1u) == 0);  // never odd
  const uint64_t old_ns = pvclock_read_ns(st.front(), kReadTsc);
  const uint64_t new_ns = pvclock_read_ns(st.back(), kReadTsc);
  CHECK(near_line(old_ns));
  CHECK(near_line(new_ns));

  // The reader run whole between two stores: after the version and tsc_timestamp stores
  // it takes the new TSC with the old system_time, and the version (4) is even and
  // unchanged, so it returns the 100 cycles since the new TSC (40 ns) instead of 1.00004 ms.
  const unsigned between[6] = {2, 2, 2, 2, 2, 2};
  const ReadResult torn = guest_read(st, between, kReadTsc);
  CHECK(torn.accepted);
  CHECK(torn.version == 4);
  CHECK(torn.ns == pvclock_scale_delta(100, st.back().tsc_to_system_mul, st.back().tsc_shift));
  CHECK(torn.ns < 41);

  // Over every interleaving: some accepted reads are wrong, in both directions.
  unsigned wrong = 0, accepted = 0;
  bool behind = false, ahead = false;
  for_each_interleaving(4, [&](const unsigned at[6]) {
    const ReadResult r = guest_read(st, at, kReadTsc);
    if (!r.accepted) return;
    ++accepted;
    if (r.ns != old_ns && r.ns != new_ns) {
      ++wrong;
      behind = behind || r.ns + 900'000 < kLineNs;  // a millisecond off, not a rounding
      ahead = ahead || r.ns > kLineNs + 900'000;
    }
  });
  CHECK(accepted > 0);
  CHECK(wrong > 0);
  CHECK(behind);
  CHECK(ahead);  // old tsc_timestamp with the new system_time: 1 ms in the future
}

TEST_CASE("modern: every reader racing with the three stores retries or reads one consistent struct",
          "[pvclock][seqcount][race]") {
  for (uint32_t start : {2u, 5u}) {  // an even version, and odd junk left by the guest
    INFO("guest version before " << start);
    GuestMemory mem(kRamSize);
    const uint64_t gpa = 0x1000;
    PvclockVcpuTimeInfo hv = old_sample();
    hv.version = start;
    REQUIRE(mem.write_obj(Gpa(gpa), hv));
    hv.tsc_timestamp = 2'500'000;
    hv.system_time = 1'000'000;
    HostStores stores;
    REQUIRE(pvclock_publish_vcpu_time_info(mem, Gpa(gpa), hv, pvclock_protocol(AbiProfile::Modern), stores));
    const std::vector<PvclockVcpuTimeInfo> st = states_during(mem, gpa, stores);
    REQUIRE(st.size() == 4);
    // Whole reads between the stores: only the two ends are accepted (odd in between).
    for (unsigned k = 0; k < st.size(); ++k) {
      const unsigned at[6] = {k, k, k, k, k, k};
      const ReadResult r = guest_read(st, at, kReadTsc);
      const bool end = k == st.size() - 1 || (k == 0 && (start & 1u) == 0);
      CHECK(r.accepted == end);
      if (r.accepted) CHECK(r.ns == pvclock_read_ns(st[k], kReadTsc));
      if (r.accepted) CHECK(near_line(r.ns));
    }
    unsigned accepted = 0, retried = 0;
    for_each_interleaving(3, [&](const unsigned at[6]) {
      const ReadResult r = guest_read(st, at, kReadTsc);
      if (!r.accepted) {
        ++retried;
        return;
      }
      ++accepted;
      // Accepted only when all six loads saw one state: before the update, or after it.
      CHECK(at[0] == at[5]);
      CHECK(r.ns == pvclock_read_ns(st[at[0]], kReadTsc));
      CHECK(near_line(r.ns));
    });
    CHECK(accepted > 0);
    CHECK(retried > 0);
  }
}

TEST_CASE("publishing invalidates decoded code on the page", "[pvclock][seqcount]") {
  // The helpers must go through GuestMemory::write so the instruction cache sees it.
  GuestMemory mem(kRamSize);
  REQUIRE(mem.mark_code_page(1));
  PvclockVcpuTimeInfo hv = sample_time_info();
  REQUIRE(pvclock_write_vcpu_time_info(mem, Gpa(kPageSize + 64), hv, pvclock_protocol(AbiProfile::Modern)));
  CHECK_FALSE(mem.is_code_page(1));
  REQUIRE(mem.mark_code_page(2));
  REQUIRE(pvclock_write_wall_clock(mem, Gpa(2 * kPageSize), 1));
  CHECK_FALSE(mem.is_code_page(2));
}

// ------------------------------------------------------------------ wall clock publishing

TEST_CASE("wall clock: version sequence and sec/nsec split", "[pvclock][wallclock]") {
  struct Case {
    uint32_t start, odd, even;
  };
  const Case cases[] = {{0, 1, 2}, {6, 7, 8}, {7, 9, 10}, {0xffffffffu, 1, 2}};
  for (const Case& c : cases) {
    INFO("start version " << c.start);
    GuestMemory mem(kRamSize);
    const uint64_t gpa = 0x500;
    REQUIRE(mem.write(Gpa(gpa), &c.start, sizeof(c.start)));
    RecordingMemory rec{mem, {}};
    const uint64_t epoch = 1'700'000'000ull * kNsecPerSec + 123'456'789ull;
    REQUIRE(pvclock_write_wall_clock(rec, Gpa(gpa), epoch));
    REQUIRE(rec.writes.size() == 3);
    CHECK(rec.writes[0].len == 4);
    CHECK(u32_in(rec.writes[0].after, gpa) == c.odd);
    CHECK(u32_in(rec.writes[0].after, gpa + 4) == 0);  // body not yet written
    CHECK(rec.writes[1].len == 12);
    CHECK(u32_in(rec.writes[1].after, gpa) == c.odd);
    CHECK(rec.writes[2].len == 4);
    CHECK(u32_in(rec.writes[2].after, gpa) == c.even);
    CHECK(u32_at(mem, gpa + 4) == 1'700'000'000u);
    CHECK(u32_at(mem, gpa + 8) == 123'456'789u);
  }
  SECTION("sec keeps only the low 32 bits (wraps in 2106)") {
    GuestMemory mem(kRamSize);
    const uint64_t epoch = ((1ull << 32) + 5) * kNsecPerSec + 999'999'999ull;
    REQUIRE(pvclock_write_wall_clock(mem, Gpa(0), epoch));
    CHECK(u32_at(mem, 4) == 5);
    CHECK(u32_at(mem, 8) == 999'999'999u);
  }
  SECTION("an exact second has nsec 0") {
    GuestMemory mem(kRamSize);
    REQUIRE(pvclock_write_wall_clock(mem, Gpa(0x20), 42 * kNsecPerSec));
    CHECK(u32_at(mem, 0x24) == 42);
    CHECK(u32_at(mem, 0x28) == 0);
  }
}
