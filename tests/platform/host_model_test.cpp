// HostModel: exact run windows for each policy, preemption windows cut out of them, and
// a brute-force cross-check against a slot-by-slot reference of the documented rules.
#include "tools/platform/host_model.h"

#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "core/prng.h"

using namespace pvsim;

namespace {

constexpr uint64_t kMs = 1'000'000;

RunWindow win(uint64_t start, uint64_t end, unsigned pcpu) {
  return {Tick(start), Tick(end), pcpu};
}

HostConfig pinned(unsigned pcpus, std::vector<unsigned> pin = {}) {
  HostConfig h;
  h.pcpus = pcpus;
  h.pin = std::move(pin);
  return h;
}

HostConfig time_sliced(unsigned pcpus) {
  HostConfig h;
  h.pcpus = pcpus;
  h.policy = HostPolicy::TimeSliced;
  return h;
}

// The first `n` windows of vCPU v from time 0, each found from the previous one's end.
std::vector<RunWindow> walk(const HostModel& m, unsigned v, size_t n) {
  std::vector<RunWindow> out;
  Tick t(0);
  for (size_t i = 0; i < n; ++i) {
    out.push_back(m.window_at(v, t));
    t = out.back().end;
  }
  return out;
}

}  // namespace

namespace Catch {
template <>
struct StringMaker<RunWindow> {
  static std::string convert(const RunWindow& w) {
    return fmt::format("[{}, {}) on pCPU {}", w.start.value(),
                       w.end == kForever ? std::string("forever") : std::to_string(w.end.value()),
                       w.pcpu);
  }
};
}  // namespace Catch

TEST_CASE("pinned 1:1: every vCPU always runs on its own pCPU", "[host_model]") {
  const HostModel m(pinned(4), 4);
  for (unsigned v = 0; v < 4; ++v) {
    CHECK(m.always_running(v));
    CHECK(m.window_at(v, Tick(0)) == win(0, UINT64_MAX, v));
    CHECK(m.window_at(v, Tick(123'456'789'012ull)) == win(0, UINT64_MAX, v));
  }
  CHECK(m.describe() == "4 vCPUs on 4 pCPUs, pinned 1:1");
  // A non-identity pin where nobody shares is still "always running".
  const HostModel swapped(pinned(2, {1, 0}), 2);
  CHECK(swapped.always_running(0));
  CHECK(swapped.window_at(0, Tick(5)) == win(0, UINT64_MAX, 1));
  CHECK(swapped.describe() == "2 vCPUs on 2 pCPUs, pinned");
}

TEST_CASE("pinned: two vCPUs on one pCPU take turns in slices", "[host_model]") {
  const HostModel m(pinned(1, {0, 0}), 2);
  CHECK_FALSE(m.always_running(0));
  CHECK_FALSE(m.always_running(1));
  // vCPU 0 owns [0, 3), [6, 9), ... ms; vCPU 1 owns [3, 6), [9, 12), ...
  CHECK(m.window_at(0, Tick(0)) == win(0, 3 * kMs, 0));
  CHECK(m.window_at(0, Tick(3 * kMs - 1)) == win(0, 3 * kMs, 0));
  CHECK(m.window_at(0, Tick(3 * kMs)) == win(6 * kMs, 9 * kMs, 0));  // end is exclusive
  CHECK(m.window_at(0, Tick(5 * kMs)) == win(6 * kMs, 9 * kMs, 0));
  CHECK(m.window_at(0, Tick(6 * kMs)) == win(6 * kMs, 9 * kMs, 0));  // start is inclusive
  CHECK(m.window_at(1, Tick(0)) == win(3 * kMs, 6 * kMs, 0));
  CHECK(m.window_at(1, Tick(4 * kMs)) == win(3 * kMs, 6 * kMs, 0));
  CHECK(m.window_at(1, Tick(6 * kMs)) == win(9 * kMs, 12 * kMs, 0));
  CHECK(m.describe() == "2 vCPUs on 1 pCPU, pinned (pCPU 0: vCPUs 0,1), slice 3 ms");
}

TEST_CASE("pinned: a shared pCPU beside a dedicated one, ascending vCPU order", "[host_model]") {
  HostConfig h = pinned(2, {1, 0, 1, 1});  // pCPU 1: vCPUs 0, 2, 3 in that order
  h.slice_ns = 250'000;
  const HostModel m(h, 4);
  CHECK(m.always_running(1));
  CHECK(m.window_at(1, Tick(7)) == win(0, UINT64_MAX, 0));
  CHECK(walk(m, 0, 3) ==
        std::vector{win(0, 250'000, 1), win(750'000, 1'000'000, 1), win(1'500'000, 1'750'000, 1)});
  CHECK(walk(m, 2, 2) == std::vector{win(250'000, 500'000, 1), win(1'000'000, 1'250'000, 1)});
  CHECK(walk(m, 3, 2) == std::vector{win(500'000, 750'000, 1), win(1'250'000, 1'500'000, 1)});
  CHECK(m.describe() == "4 vCPUs on 2 pCPUs, pinned (pCPU 1: vCPUs 0,2,3), slice 250 us");
}

TEST_CASE("time-sliced: 3 vCPUs on 2 pCPUs migrate in a global round robin", "[host_model]") {
  HostConfig h = time_sliced(2);
  h.slice_ns = 1000;
  const HostModel m(h, 3);
  // Slot m: pCPU p runs vCPU (2m + p) mod 3.
  //   slot 0: v0 v1   slot 1: v2 v0   slot 2: v1 v2   slot 3: v0 v1 ...
  CHECK(walk(m, 0, 6) == std::vector{win(0, 1000, 0), win(1000, 2000, 1), win(3000, 4000, 0),
                                     win(4000, 5000, 1), win(6000, 7000, 0), win(7000, 8000, 1)});
  CHECK(walk(m, 1, 4) ==
        std::vector{win(0, 1000, 1), win(2000, 3000, 0), win(3000, 4000, 1), win(5000, 6000, 0)});
  CHECK(walk(m, 2, 4) == std::vector{win(1000, 2000, 0), win(2000, 3000, 1), win(4000, 5000, 0),
                                     win(5000, 6000, 1)});
  for (unsigned v = 0; v < 3; ++v) CHECK_FALSE(m.always_running(v));
  CHECK(m.describe() == "3 vCPUs on 2 pCPUs, time-sliced 1 us");
  CHECK(HostModel(time_sliced(2), 3).describe() == "3 vCPUs on 2 pCPUs, time-sliced 3 ms");
}

TEST_CASE("time-sliced: 4 on 2 never migrates, and V <= P means a pCPU each", "[host_model]") {
  HostConfig h = time_sliced(2);
  h.slice_ns = 10;
  const HostModel m(h, 4);
  // Slot m: pCPU p runs vCPU (2m + p) mod 4: v0 v1, v2 v3, v0 v1, ...
  CHECK(walk(m, 0, 3) == std::vector{win(0, 10, 0), win(20, 30, 0), win(40, 50, 0)});
  CHECK(walk(m, 3, 3) == std::vector{win(10, 20, 1), win(30, 40, 1), win(50, 60, 1)});

  const HostModel roomy(time_sliced(4), 3);
  for (unsigned v = 0; v < 3; ++v) {
    CHECK(roomy.always_running(v));
    CHECK(roomy.window_at(v, Tick(99)) == win(0, UINT64_MAX, v));
  }
  CHECK(roomy.describe() == "3 vCPUs on 4 pCPUs, time-sliced (a pCPU each)");
}

TEST_CASE("preemption windows are cut out of a dedicated pCPU", "[host_model]") {
  HostConfig h = pinned(2);
  h.preempt = {{1, 2 * kMs, 5 * kMs}};  // "vCPU 1 is descheduled from 2 ms to 5 ms"
  const HostModel m(h, 2);
  CHECK(m.always_running(0));
  CHECK_FALSE(m.always_running(1));
  CHECK(m.window_at(0, Tick(3 * kMs)) == win(0, UINT64_MAX, 0));
  CHECK(m.window_at(1, Tick(0)) == win(0, 2 * kMs, 1));
  CHECK(m.window_at(1, Tick(2 * kMs - 1)) == win(0, 2 * kMs, 1));
  CHECK(m.window_at(1, Tick(2 * kMs)) == win(5 * kMs, UINT64_MAX, 1));
  CHECK(m.window_at(1, Tick(3 * kMs)) == win(5 * kMs, UINT64_MAX, 1));
  CHECK(m.window_at(1, Tick(5 * kMs)) == win(5 * kMs, UINT64_MAX, 1));
  CHECK(m.window_at(1, Tick(9 * kMs)) == win(5 * kMs, UINT64_MAX, 1));
  CHECK(m.describe() == "2 vCPUs on 2 pCPUs, pinned 1:1, 1 preemption window");

  // At the very start: the first window begins where the preemption ends.
  h.preempt = {{0, 0, 1 * kMs}};
  const HostModel at_start(h, 2);
  CHECK(at_start.window_at(0, Tick(0)) == win(1 * kMs, UINT64_MAX, 0));
  CHECK(at_start.window_at(1, Tick(0)) == win(0, UINT64_MAX, 1));
}

TEST_CASE("preemption windows cut slices: middle, start, whole slice, across slices",
          "[host_model]") {
  HostConfig h = pinned(1, {0, 0});
  h.preempt = {{0, 1 * kMs, 2 * kMs}};  // inside vCPU 0's first slice [0, 3)
  CHECK(walk(HostModel(h, 2), 0, 3) ==
        std::vector{win(0, 1 * kMs, 0), win(2 * kMs, 3 * kMs, 0), win(6 * kMs, 9 * kMs, 0)});
  CHECK(HostModel(h, 2).window_at(0, Tick(2500 * 1000)) == win(2 * kMs, 3 * kMs, 0));
  h.preempt = {{0, 6 * kMs, 7 * kMs}};  // at the start of its second slice
  CHECK(walk(HostModel(h, 2), 0, 3) ==
        std::vector{win(0, 3 * kMs, 0), win(7 * kMs, 9 * kMs, 0), win(12 * kMs, 15 * kMs, 0)});
  h.preempt = {{0, 0, 3 * kMs}};  // the whole first slice: skip to the next one
  CHECK(HostModel(h, 2).window_at(0, Tick(0)) == win(6 * kMs, 9 * kMs, 0));
  h.preempt = {{0, 2 * kMs, 7 * kMs}};  // from inside one slice into the next
  CHECK(walk(HostModel(h, 2), 0, 2) == std::vector{win(0, 2 * kMs, 0), win(7 * kMs, 9 * kMs, 0)});
  // A window in the other vCPU's turn changes nothing for it.
  h.preempt = {{0, 3 * kMs, 6 * kMs}};
  CHECK(walk(HostModel(h, 2), 0, 2) == std::vector{win(0, 3 * kMs, 0), win(6 * kMs, 9 * kMs, 0)});
  CHECK(walk(HostModel(h, 2), 1, 1) == std::vector{win(3 * kMs, 6 * kMs, 0)});
}

TEST_CASE("adjacent and overlapping preemption windows act as one", "[host_model]") {
  HostConfig h = pinned(1);
  // Written out of order: touching [1, 2) + [2, 3), and overlapping [5, 8) [6, 7) [7.5, 9).
  h.preempt = {{0, 5 * kMs, 8 * kMs},
               {0, 2 * kMs, 3 * kMs},
               {0, 7500 * 1000, 9 * kMs},
               {0, 1 * kMs, 2 * kMs},
               {0, 6 * kMs, 7 * kMs}};
  const HostModel m(h, 1);
  CHECK(walk(m, 0, 3) ==
        std::vector{win(0, 1 * kMs, 0), win(3 * kMs, 5 * kMs, 0), win(9 * kMs, UINT64_MAX, 0)});
  CHECK(m.window_at(0, Tick(2 * kMs)) == win(3 * kMs, 5 * kMs, 0));
  CHECK(m.window_at(0, Tick(7 * kMs)) == win(9 * kMs, UINT64_MAX, 0));
  CHECK(m.describe() == "1 vCPU on 1 pCPU, pinned 1:1, 5 preemption windows");
}

TEST_CASE("very large times are O(1): no walk from slot 0", "[host_model]") {
  const HostModel m(pinned(1, {0, 0}), 2);
  const uint64_t t = 1'000'000'000'000'000'001ull;  // 10^18 + 1 ns: slot 333333333333 (vCPU 1's)
  CHECK(m.window_at(1, Tick(t)) ==
        win(999'999'999'999'000'000ull, 1'000'000'000'002'000'000ull, 0));
  CHECK(m.window_at(0, Tick(t)) ==
        win(1'000'000'000'002'000'000ull, 1'000'000'000'005'000'000ull, 0));

  HostConfig h = time_sliced(3);
  h.slice_ns = 7;
  h.preempt = {{4, 999'999'999'999'999'990ull, 1'000'000'000'000'000'100ull}};
  const HostModel big(h, 5);
  const RunWindow w = big.window_at(4, Tick(t));
  CHECK(w.start.value() >= 1'000'000'000'000'000'100ull);
  CHECK(w.end.value() - w.start.value() <= 7);
  // Near the end of the 64-bit range the answer saturates but is never empty.
  for (unsigned v = 0; v < 5; ++v) {
    const RunWindow far = big.window_at(v, Tick(UINT64_MAX - 3));
    CHECK(far.start < far.end);
  }
}

TEST_CASE("host clocks and hand-built configurations", "[host_model]") {
  HostConfig h;  // pcpus 0 and no pin: resolved like the parser does
  h.wall_clock_ns = 1'700'000'000'000'000'000ull;
  h.monotonic_ns = 5;
  const HostModel m(h, 3);
  CHECK(m.pcpus() == 3);
  CHECK(m.vcpus() == 3);
  CHECK(m.host_monotonic_ns(Tick(10)) == 15);
  CHECK(m.host_realtime_ns(Tick(10)) == 1'700'000'000'000'000'010ull);
  for (unsigned v = 0; v < 3; ++v) CHECK(m.always_running(v));

  HostConfig bad = pinned(2, {0, 2});
  CHECK_THROWS_AS(HostModel(bad, 2), std::invalid_argument);
  bad = pinned(2, {0});
  CHECK_THROWS_AS(HostModel(bad, 2), std::invalid_argument);
  bad = pinned(1);
  bad.slice_ns = 0;
  CHECK_THROWS_AS(HostModel(bad, 1), std::invalid_argument);
  bad = pinned(1);
  bad.preempt = {{1, 0, 5}};
  CHECK_THROWS_AS(HostModel(bad, 1), std::invalid_argument);
  bad.preempt = {{0, 5, 5}};
  CHECK_THROWS_AS(HostModel(bad, 1), std::invalid_argument);
}

// Reference model: the documented rules evaluated one nanosecond at a time. Returns the
// pCPU vCPU v holds at time t, or -1.
static int base_pcpu(const HostConfig& h, unsigned vcpus, unsigned v, uint64_t t);

// The documented rules, one instant at a time: a pause or a preemption window of v stops
// it; otherwise it runs where the base schedule puts it unless a host noise thread holds
// that pCPU.
static int reference_pcpu(const HostConfig& h, unsigned vcpus, unsigned v, uint64_t t) {
  for (const PreemptWindow& w : h.preempt)
    if (w.vcpu == v && t >= w.from_ns && t < w.to_ns) return -1;
  for (const PauseWindow& w : h.pause)
    if (t >= w.from_ns && t < w.to_ns) return -1;
  const int p = base_pcpu(h, vcpus, v, t);
  for (const NoiseWindow& w : h.noise)
    if (static_cast<int>(w.pcpu) == p && t >= w.from_ns && t < w.to_ns) return -1;
  return p;
}

static int base_pcpu(const HostConfig& h, unsigned vcpus, unsigned v, uint64_t t) {
  const uint64_t slot = t / h.slice_ns;
  if (h.policy == HostPolicy::Pinned) {
    const unsigned p = h.pin[v];
    unsigned k = 0, j = 0;
    for (unsigned u = 0; u < vcpus; ++u)
      if (h.pin[u] == p) {
        if (u < v) ++j;
        ++k;
      }
    return slot % k == j ? static_cast<int>(p) : -1;
  }
  if (vcpus <= h.pcpus) return static_cast<int>(v);
  for (unsigned p = 0; p < h.pcpus; ++p)
    if ((slot * h.pcpus + p) % vcpus == v) return static_cast<int>(p);
  return -1;
}

TEST_CASE("host noise takes a pCPU from whoever the schedule puts there", "[host_model]") {
  HostConfig h = pinned(2, {0, 0, 1});  // vCPUs 0 and 1 share pCPU 0; vCPU 2 has pCPU 1
  h.slice_ns = 3 * kMs;
  h.noise = {{0, 2 * kMs, 4 * kMs}, {1, 10 * kMs, 11 * kMs}};
  const HostModel m(h, 3);
  // vCPU 0's slice [0, 3) loses [2, 3); vCPU 1's slice [3, 6) loses [3, 4).
  CHECK(m.window_at(0, Tick(0)) == win(0, 2 * kMs, 0));
  CHECK(m.window_at(0, Tick(2 * kMs)) == win(6 * kMs, 9 * kMs, 0));
  CHECK(m.window_at(1, Tick(0)) == win(4 * kMs, 6 * kMs, 0));
  CHECK_FALSE(m.always_running(2));  // noise on its own pCPU
  CHECK(m.window_at(2, Tick(0)) == win(0, 10 * kMs, 1));
  CHECK(m.window_at(2, Tick(10 * kMs)) == win(11 * kMs, UINT64_MAX, 1));
  CHECK(m.describe() == "3 vCPUs on 2 pCPUs, pinned (pCPU 0: vCPUs 0,1), slice 3 ms, 2 host noise windows");
  CHECK_THROWS_AS(HostModel([] {
                    HostConfig bad = pinned(1);
                    bad.noise = {{1, 0, 1}};
                    return bad;
                  }(),
                            1),
                  std::invalid_argument);
}

TEST_CASE("a pause stops every vCPU, and only its overlap with a gap is paused time", "[host_model]") {
  HostConfig h = pinned(2);
  h.pause = {{5 * kMs, 7 * kMs}, {6 * kMs, 8 * kMs}};  // overlapping: one pause [5, 8)
  h.preempt = {{1, 4 * kMs, 6 * kMs}};
  const HostModel m(h, 2);
  CHECK_FALSE(m.always_running(0));
  CHECK(m.window_at(0, Tick(0)) == win(0, 5 * kMs, 0));
  CHECK(m.window_at(0, Tick(5 * kMs)) == win(8 * kMs, UINT64_MAX, 0));
  CHECK(m.window_at(1, Tick(4 * kMs)) == win(8 * kMs, UINT64_MAX, 1));
  CHECK_FALSE(m.paused_at(Tick(5 * kMs - 1)));
  CHECK(m.paused_at(Tick(5 * kMs)));
  CHECK(m.paused_at(Tick(8 * kMs - 1)));
  CHECK_FALSE(m.paused_at(Tick(8 * kMs)));
  CHECK(m.paused_ns(Tick(4 * kMs), Tick(8 * kMs)) == 3 * kMs);  // vCPU 1: 1 ms of run delay
  CHECK(m.paused_ns(Tick(0), Tick(5 * kMs)) == 0);
  REQUIRE(m.pauses().size() == 1);
  CHECK(m.pauses()[0].from_ns == 5 * kMs);
  CHECK(m.pauses()[0].to_ns == 8 * kMs);
  CHECK(m.describe() == "2 vCPUs on 2 pCPUs, pinned 1:1, 1 preemption window, 1 pause");
}

TEST_CASE("window_at agrees with a nanosecond-by-nanosecond reference", "[host_model]") {
  SplitMix64 rng(0x5eed);
  for (int round = 0; round < 200; ++round) {
    const unsigned vcpus = 1 + static_cast<unsigned>(rng.below(6));
    HostConfig h;
    h.pcpus = 1 + static_cast<unsigned>(rng.below(5));
    h.policy = rng.one_in(2) ? HostPolicy::Pinned : HostPolicy::TimeSliced;
    if (h.policy == HostPolicy::Pinned)
      for (unsigned v = 0; v < vcpus; ++v)
        h.pin.push_back(static_cast<unsigned>(rng.below(h.pcpus)));
    h.slice_ns = 1 + rng.below(9);
    const size_t windows = rng.below(5);
    for (size_t i = 0; i < windows; ++i) {
      const uint64_t from = rng.below(200);
      h.preempt.push_back(
          {static_cast<unsigned>(rng.below(vcpus)), from, from + 1 + rng.below(40)});
    }
    for (size_t i = rng.below(4); i > 0; --i) {
      const uint64_t from = rng.below(200);
      h.noise.push_back({static_cast<unsigned>(rng.below(h.pcpus)), from, from + 1 + rng.below(40)});
    }
    if (rng.one_in(3)) {
      const uint64_t from = rng.below(200);
      h.pause.push_back({from, from + 1 + rng.below(40)});
    }
    const HostModel m(h, vcpus);
    constexpr uint64_t kHorizon = 260;  // beyond the last preemption, noise and pause window
    for (unsigned v = 0; v < vcpus; ++v) {
      for (uint64_t t = 0; t < kHorizon; ++t) {
        const RunWindow w = m.window_at(v, Tick(t));
        const uint64_t s = w.start.value(), e = w.end.value();
        INFO("round " << round << " vCPU " << v << " t " << t << ": "
                      << Catch::StringMaker<RunWindow>::convert(w));
        REQUIRE(s < e);
        // Not running in [t, start); running on w.pcpu throughout [start, end) (checked
        // up to the horizon); before start and at end: stopped or on another pCPU.
        bool stopped_before = true, running_inside = true;
        for (uint64_t u = t; u < s && u < kHorizon + 100; ++u)
          stopped_before &= reference_pcpu(h, vcpus, v, u) == -1;
        for (uint64_t u = s; u < e && u < kHorizon + 100; ++u)
          running_inside &= reference_pcpu(h, vcpus, v, u) == static_cast<int>(w.pcpu);
        REQUIRE(stopped_before);
        REQUIRE(running_inside);
        if (s > 0) REQUIRE(reference_pcpu(h, vcpus, v, s - 1) != static_cast<int>(w.pcpu));
        if (e < kHorizon + 100) REQUIRE(reference_pcpu(h, vcpus, v, e) != static_cast<int>(w.pcpu));
        REQUIRE(m.always_running(v) ==
                (s == 0 && w.end == kForever && m.window_at(v, Tick(kHorizon)) == w));
      }
    }
  }
}
