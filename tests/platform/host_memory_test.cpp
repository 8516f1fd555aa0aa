// HostMemory (tools/platform/host_memory.h): residency, the I/O-worker queue, joined
// fetches, latencies from the seed, evictions and the FIFO resident-set limit, plus a
// randomised cross-check against a slow reference written straight from the header's rules.
#include "tools/platform/host_memory.h"

#include <catch2/catch.hpp>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <new>
#include <stdexcept>
#include <vector>

#include "core/prng.h"

using namespace pvsim;

// Counts heap allocations so a test can show that the default (inactive) model allocates
// nothing. Replacing the global allocation functions is allowed ([replacement.functions]);
// these only count and defer to malloc/free. Every non-aligned form is replaced, so that no
// block from one allocator reaches the other (ASan checks that); the aligned forms keep
// the library's own pair.
namespace {
thread_local uint64_t g_allocations = 0;
void* counted_alloc(std::size_t n) noexcept {
  ++g_allocations;
  return std::malloc(n ? n : 1);
}
void* counted_alloc_or_throw(std::size_t n) {
  if (void* p = counted_alloc(n)) return p;
  throw std::bad_alloc();
}
}  // namespace
void* operator new(std::size_t n) { return counted_alloc_or_throw(n); }
void* operator new[](std::size_t n) { return counted_alloc_or_throw(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return counted_alloc(n); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return counted_alloc(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }

namespace {

constexpr uint64_t kPage = 4096;

GpaRange pages(uint64_t first, uint64_t n) { return {first * kPage, n * kPage}; }

FaultInLatency constant(uint64_t ns) { return {ns, ns, false}; }
FaultInLatency uniform(uint64_t lo, uint64_t hi) { return {lo, hi, true}; }

// 64 pages of RAM, the upper half swapped out, fixed latency, `workers` I/O workers.
HostMemoryConfig half_swapped(uint64_t latency_ns, unsigned workers = 1) {
  HostMemoryConfig c;
  c.swapped_out = {pages(32, 32)};
  c.fault_in = constant(latency_ns);
  c.io_workers = workers;
  return c;
}

using FaultIn = HostMemory::FaultIn;
FaultIn fi(uint64_t start, uint64_t done, unsigned worker, bool joined = false) {
  return {Tick(start), Tick(done), worker, joined};
}

}  // namespace

namespace Catch {
template <>
struct StringMaker<HostMemory::FaultIn> {
  static std::string convert(const HostMemory::FaultIn& f) {
    return "{start " + std::to_string(f.start.value()) + ", done " + std::to_string(f.done.value()) + ", worker " +
           std::to_string(f.worker) + (f.joined ? ", joined}" : "}");
  }
};
template <>
struct StringMaker<HostMemory::Eviction> {
  static std::string convert(const HostMemory::Eviction& e) {
    return "{at " + std::to_string(e.at.value()) + ", pfn " + std::to_string(e.first_pfn) + ", pages " +
           std::to_string(e.pages) + "}";
  }
};
}  // namespace Catch

TEST_CASE("the default model is inactive, all resident and allocates nothing", "[host-memory]") {
  const uint64_t ram = 64ull << 30;  // the largest machine.ram_mib: 16 Mi pages
  const HostMemoryConfig cfg;
  const uint64_t before = g_allocations;
  const HostMemory m(cfg, ram, 1);
  const uint64_t allocated = g_allocations - before;
  CHECK(allocated == 0);
  CHECK_FALSE(m.active());
  CHECK(m.pages() == (64ull << 18));
  CHECK(m.resident(0));
  CHECK(m.resident(m.pages() - 1));
  CHECK_FALSE(m.resident(m.pages()));  // outside RAM
  CHECK_FALSE(m.in_flight(0));
  CHECK(m.resident_pages() == m.pages());
  CHECK(m.evictions().empty());
  CHECK(m.describe() == "all resident");

  // A limit, latency ranges or more workers alone cannot make a page non-resident.
  HostMemoryConfig knobs;
  knobs.resident_limit_pages = 5;
  knobs.latency_ranges = {{pages(0, 4), constant(7)}};
  knobs.io_workers = 8;
  const HostMemory k(knobs, 16 * kPage, 1);
  CHECK_FALSE(k.active());
  // Nothing is non-resident, so there is nothing to fetch or evict.
  HostMemory mk(knobs, 16 * kPage, 1);
  CHECK_THROWS_AS(mk.fault_in(3, Tick(0)), std::invalid_argument);
  CHECK_THROWS_AS(mk.evict(0, 1), std::invalid_argument);
}

TEST_CASE("swapped_out pages start non-resident, the rest resident", "[host-memory]") {
  HostMemoryConfig c;
  c.swapped_out = {pages(3, 2), pages(4, 3), pages(63, 1)};  // overlapping entries: the union
  const HostMemory m(c, 64 * kPage, 0);
  CHECK(m.active());
  std::vector<uint64_t> out;
  for (uint64_t p = 0; p < 64; ++p)
    if (!m.resident(p)) out.push_back(p);
  CHECK(out == std::vector<uint64_t>{3, 4, 5, 6, 63});
  CHECK(m.resident_pages() == 59);
  CHECK(m.stats().peak_resident == 59);
  CHECK(m.describe() == "5 of 64 pages swapped out, fault-in 200 us, 1 I/O worker");
}

TEST_CASE("one I/O worker serves fault-ins one after another", "[host-memory]") {
  HostMemory m(half_swapped(100), 64 * kPage, 0);
  CHECK(m.fault_in(32, Tick(0)) == fi(0, 100, 0));
  CHECK(m.fault_in(33, Tick(10)) == fi(100, 200, 0));   // waits 90 ns for the worker
  CHECK(m.fault_in(34, Tick(150)) == fi(200, 300, 0));  // waits 50 ns
  CHECK(m.fault_in(35, Tick(500)) == fi(500, 600, 0));  // worker idle: starts at once
  CHECK(m.stats().fetches == 4);
  CHECK(m.stats().queue_wait_ns == 140);
  CHECK(m.stats().max_queue_wait_ns == 90);
  CHECK(m.stats().io_ns == 400);
  CHECK(m.worker_free_at(0) == Tick(600));
  // Still non-resident until complete().
  CHECK_FALSE(m.resident(32));
  CHECK(m.in_flight(32));
}

TEST_CASE("N I/O workers: the soonest start wins, ties to the lowest index", "[host-memory]") {
  HostMemory m(half_swapped(100, 3), 64 * kPage, 0);
  CHECK(m.fault_in(32, Tick(0)) == fi(0, 100, 0));
  CHECK(m.fault_in(33, Tick(0)) == fi(0, 100, 1));
  CHECK(m.fault_in(34, Tick(0)) == fi(0, 100, 2));
  // All three free at 100: the tie goes to worker 0.
  CHECK(m.fault_in(35, Tick(0)) == fi(100, 200, 0));
  // Workers 1 and 2 are idle at 150 (worker 0 is busy to 200): the lower idle one.
  CHECK(m.fault_in(36, Tick(150)) == fi(150, 250, 1));
  // At 160: worker 2 idle.
  CHECK(m.fault_in(37, Tick(160)) == fi(160, 260, 2));
  // At 170 nobody is idle: worker 0 frees first (200), then 1 (250), then 2 (260).
  CHECK(m.fault_in(38, Tick(170)) == fi(200, 300, 0));
  CHECK(m.fault_in(39, Tick(170)) == fi(250, 350, 1));
  // At 1000 every worker is idle; the lowest index takes it, not the one idle longest (2).
  CHECK(m.fault_in(40, Tick(1000)) == fi(1000, 1100, 0));
  CHECK(m.stats().queue_wait_ns == 100 + 30 + 80);
}

TEST_CASE("requests with a non-monotonic now stay deterministic and wait in call order", "[host-memory]") {
  SECTION("one worker: an earlier now waits for what earlier calls left busy") {
    HostMemory m(half_swapped(100), 64 * kPage, 0);
    CHECK(m.fault_in(32, Tick(1000)) == fi(1000, 1100, 0));
    CHECK(m.fault_in(33, Tick(300)) == fi(1100, 1200, 0));  // never before the earlier call
    CHECK(m.fault_in(34, Tick(2000)) == fi(2000, 2100, 0));
    CHECK(m.fault_in(35, Tick(0)) == fi(2100, 2200, 0));
    CHECK(m.stats().queue_wait_ns == 800 + 2100);
  }
  SECTION("two workers: an idle worker serves a request from the past at its own time") {
    HostMemory m(half_swapped(100, 2), 64 * kPage, 0);
    CHECK(m.fault_in(32, Tick(1000)) == fi(1000, 1100, 0));
    CHECK(m.fault_in(33, Tick(300)) == fi(300, 400, 1));
    CHECK(m.fault_in(34, Tick(200)) == fi(400, 500, 1));  // worker 1 frees first (400 < 1100)
    CHECK(m.fault_in(35, Tick(200)) == fi(500, 600, 1));
    CHECK(m.fault_in(36, Tick(200)) == fi(600, 700, 1));
  }
}

TEST_CASE("a fault-in on a page in flight joins it: no I/O, no draw, same times", "[host-memory]") {
  HostMemoryConfig c = half_swapped(0);
  c.fault_in = uniform(1000, 5000);
  HostMemory m(c, 64 * kPage, 42);
  HostMemory twin(c, 64 * kPage, 42);  // the same calls without the join
  const FaultIn first = m.fault_in(40, Tick(10));
  CHECK(twin.fault_in(40, Tick(10)) == first);
  const FaultIn again = m.fault_in(40, Tick(500));
  CHECK(again == fi(first.start.value(), first.done.value(), first.worker, true));
  CHECK(m.stats().fetches == 1);
  CHECK(m.stats().joined == 1);
  CHECK(m.stats().queue_wait_ns == 0);
  // The join drew nothing: the next fetch gets the twin's latency.
  const FaultIn next = m.fault_in(41, Tick(0));
  const FaultIn twin_next = twin.fault_in(41, Tick(0));
  CHECK(next.done - next.start == twin_next.done - twin_next.start);
  // Completion makes it resident; after that it is neither in flight nor fetchable.
  CHECK(m.complete(40).empty());
  CHECK(m.resident(40));
  CHECK_FALSE(m.in_flight(40));
  CHECK(m.stats().completed == 1);
  CHECK_THROWS_AS(m.fault_in(40, Tick(0)), std::invalid_argument);
  CHECK_THROWS_AS(m.complete(40), std::invalid_argument);
  CHECK_THROWS_AS(m.complete(50), std::invalid_argument);  // never asked for
  CHECK_THROWS_AS(m.fault_in(64, Tick(0)), std::invalid_argument);  // outside RAM
}

TEST_CASE("uniform latencies come from the seed: same seed same sequence, another seed another", "[host-memory]") {
  HostMemoryConfig c;
  c.swapped_out = {pages(0, 256)};
  c.fault_in = uniform(100'000, 400'000);
  auto latencies = [&](uint64_t seed) {
    HostMemory m(c, 256 * kPage, seed);
    std::vector<uint64_t> out;
    for (uint64_t p = 0; p < 256; ++p) {
      const FaultIn f = m.fault_in(p, Tick(p * 1'000'000));  // worker always idle
      out.push_back(f.done - f.start);
    }
    return out;
  };
  const std::vector<uint64_t> a = latencies(7);
  CHECK(latencies(7) == a);
  CHECK(latencies(8) != a);
  // Exactly the documented stream: SplitMix64(seed ^ kSeedTag), one below() per fetch.
  SplitMix64 ref(7 ^ HostMemory::kSeedTag);
  std::vector<uint64_t> expect;
  for (size_t i = 0; i < 256; ++i) expect.push_back(100'000 + ref.below(300'001));
  CHECK(a == expect);
  // Both ends of the range are reachable in principle; here every draw is inside it.
  for (uint64_t l : a) CHECK((l >= 100'000 && l <= 400'000));
}

TEST_CASE("latency_ranges override the default per page, constants draw nothing", "[host-memory]") {
  HostMemoryConfig c;
  c.swapped_out = {pages(0, 0x800)};                          // 8 MiB
  c.fault_in = uniform(10, 20);
  c.latency_ranges = {{{0x600000, 0x100000}, constant(2'000'000)},  // pages 0x600..0x6ff
                      {{0x100000, 0x2000}, uniform(500, 600)}};     // pages 0x100, 0x101
  HostMemory m(c, 8ull << 20, 3);
  CHECK(m.latency_of(0x5ff).lo_ns == 10);
  CHECK(m.latency_of(0x600).lo_ns == 2'000'000);
  CHECK(m.latency_of(0x6ff).lo_ns == 2'000'000);
  CHECK(m.latency_of(0x700).lo_ns == 10);
  CHECK(m.latency_of(0x101).lo_ns == 500);
  CHECK(m.latency_of(0x102).lo_ns == 10);
  CHECK(m.describe() ==
        "2048 of 2048 pages swapped out, fault-in uniform 10 ns to 20 ns (2 ranges with their own), 1 I/O worker");

  SplitMix64 ref(3 ^ HostMemory::kSeedTag);
  Tick t(0);
  auto latency = [&](uint64_t pfn) {
    const FaultIn f = m.fault_in(pfn, t);
    t = f.done;
    return f.done - f.start;
  };
  CHECK(latency(0x600) == 2'000'000);             // constant: no draw
  CHECK(latency(0x6ff) == 2'000'000);
  CHECK(latency(0x5ff) == 10 + ref.below(11));    // the first draw of the stream
  CHECK(latency(0x100) == 500 + ref.below(101));  // a uniform range draws from the same stream
  CHECK(latency(0x650) == 2'000'000);
  CHECK(latency(0x700) == 10 + ref.below(11));
}

TEST_CASE("evictions: sorted by time, stable, evict() takes resident pages and leaves fetches alone",
          "[host-memory]") {
  HostMemoryConfig c;
  c.evict = {{5000, pages(10, 4)}, {1000, pages(0, 1)}, {5000, pages(2, 1)}, {0, pages(63, 1)}};
  c.fault_in = constant(100);
  HostMemory m(c, 64 * kPage, 0);
  CHECK(m.active());  // evictions alone make pages non-resident later
  CHECK(m.resident_pages() == 64);
  CHECK(m.evictions() == std::vector<HostMemory::Eviction>{
                             {Tick(0), 63, 1}, {Tick(1000), 0, 1}, {Tick(5000), 10, 4}, {Tick(5000), 2, 1}});

  CHECK(m.evict(10, 4) == std::vector<uint64_t>{10, 11, 12, 13});
  CHECK(m.resident_pages() == 60);
  const FaultIn f = m.fault_in(11, Tick(0));
  // 11 is in flight, 10 and 12 are already out: nothing left to take but 14.
  CHECK(m.evict(10, 5) == std::vector<uint64_t>{14});
  CHECK(m.in_flight(11));
  CHECK(m.complete(11).empty());
  CHECK(m.resident(11));  // the fetch landed although the range was evicted meanwhile
  CHECK(f.done == Tick(100));
  CHECK(m.stats().evicted_by_event == 5);
  CHECK(m.resident_pages() == 60);
  CHECK_THROWS_AS(m.evict(60, 5), std::invalid_argument);
  CHECK(m.describe() == "0 of 64 pages swapped out, 4 evictions, fault-in 100 ns, 1 I/O worker");
}

TEST_CASE("the resident-set limit evicts FIFO: pages from time 0 by ascending GPA, then fetch order",
          "[host-memory]") {
  // 16 pages; 8..15 swapped out, so 0..7 are resident at time 0; at most 8 resident.
  HostMemoryConfig c;
  c.swapped_out = {pages(8, 8)};
  c.resident_limit_pages = 8;
  c.fault_in = constant(10);
  HostMemory m(c, 16 * kPage, 0);
  auto fetch = [&](uint64_t pfn) {
    m.fault_in(pfn, Tick(0));
    return m.complete(pfn);
  };
  using V = std::vector<uint64_t>;
  CHECK(fetch(8) == V{0});          // 9 > 8: the lowest page resident since time 0
  CHECK(m.evict(1, 2) == V{1, 2});  // an event takes two more: 6 resident
  CHECK(fetch(9) == V{});
  CHECK(fetch(10) == V{});          // 8 resident: at the limit, not over it
  // In flight does not count: starting a fetch evicts nothing.
  m.fault_in(11, Tick(0));
  CHECK(m.resident_pages() == 8);
  CHECK(m.complete(11) == V{3});
  CHECK(fetch(1) == V{4});          // a page evicted by an event comes back at the tail
  // Fetched so far, oldest first: 8, 9, 10, 11, 1.
  CHECK(m.evict(9, 1) == V{9});     // 7 resident; 9's place in the FIFO goes stale ...
  CHECK(fetch(9) == V{});           // ... and 9 comes back at the tail: 8, (9), 10, 11, 1, 9
  CHECK(fetch(2) == V{5});
  CHECK(fetch(0) == V{6});
  CHECK(fetch(3) == V{7});          // the last page from time 0
  CHECK(fetch(4) == V{8});          // then fetched pages, oldest first
  CHECK(fetch(5) == V{10});         // 9's old place is skipped: it is resident, but younger
  CHECK(fetch(6) == V{11});
  CHECK(fetch(7) == V{1});
  CHECK(fetch(8) == V{9});          // now 9's own turn
  CHECK(fetch(10) == V{2});
  V resident;
  for (uint64_t p = 0; p < 16; ++p)
    if (m.resident(p)) resident.push_back(p);
  CHECK(resident == V{0, 3, 4, 5, 6, 7, 8, 10});
  CHECK(m.resident_pages() == 8);
  CHECK(m.stats().peak_resident == 8);
  CHECK(m.stats().evicted_by_limit == 12);
  CHECK(m.stats().evicted_by_event == 3);
  CHECK(m.describe() == "8 of 16 pages swapped out, resident limit 8 pages, fault-in 10 ns, 1 I/O worker");
}

TEST_CASE("a hand-built config the parser would refuse throws", "[host-memory]") {
  const uint64_t ram = 16 * kPage;
  auto build = [&](auto edit) {
    HostMemoryConfig c;
    c.swapped_out = {pages(8, 8)};
    edit(c);
    return HostMemory(c, ram, 0);
  };
  CHECK_NOTHROW(build([](HostMemoryConfig& c) { c.resident_limit_pages = 8; }));
  CHECK_THROWS_AS(build([](HostMemoryConfig& c) { c.resident_limit_pages = 7; }), std::invalid_argument);
  CHECK_THROWS_AS(build([](HostMemoryConfig& c) { c.io_workers = 0; }), std::invalid_argument);
  CHECK_THROWS_AS(build([](HostMemoryConfig& c) { c.swapped_out = {{0x800, 0x1000}}; }), std::invalid_argument);
  CHECK_THROWS_AS(build([](HostMemoryConfig& c) { c.swapped_out = {{0x1000, 0}}; }), std::invalid_argument);
  CHECK_THROWS_AS(build([](HostMemoryConfig& c) { c.swapped_out = {pages(15, 2)}; }), std::invalid_argument);
  CHECK_THROWS_AS(build([](HostMemoryConfig& c) { c.swapped_out = {{~0ull - 0xfff, 0x2000}}; }),
                  std::invalid_argument);
  CHECK_THROWS_AS(build([](HostMemoryConfig& c) { c.evict = {{0, pages(16, 1)}}; }), std::invalid_argument);
  CHECK_THROWS_AS(build([](HostMemoryConfig& c) { c.fault_in = {5, 4, true}; }), std::invalid_argument);
  CHECK_THROWS_AS(build([](HostMemoryConfig& c) {
                    c.latency_ranges = {{pages(0, 2), constant(1)}, {pages(1, 1), constant(2)}};
                  }),
                  std::invalid_argument);
}

TEST_CASE("64 GiB of RAM: residency at the edges of bitmap words and a large eviction", "[host-memory]") {
  HostMemoryConfig c;
  const uint64_t ram = 64ull << 30;
  const uint64_t n = ram / kPage;
  c.swapped_out = {pages(63, 2), pages(n - 1, 1)};
  c.evict = {{1, pages(0, n)}};
  HostMemory m(c, ram, 0);
  CHECK(m.resident(62));
  CHECK_FALSE(m.resident(63));
  CHECK_FALSE(m.resident(64));
  CHECK(m.resident(65));
  CHECK(m.resident(n - 2));
  CHECK_FALSE(m.resident(n - 1));
  CHECK(m.resident_pages() == n - 3);
  m.fault_in(64, Tick(0));
  // 2^20 pages (4 GiB) from 0: all but 63 (swapped out) and 64 (in flight).
  const std::vector<uint64_t> out = m.evict(0, 1u << 20);
  REQUIRE(out.size() == (1u << 20) - 2);
  CHECK(out[62] == 62);
  CHECK(out[63] == 65);
  CHECK(out.back() == (1u << 20) - 1);
  // The last word of the bitmap: 70 pages up to the end of RAM, the very last one swapped out.
  const std::vector<uint64_t> tail = m.evict(n - 70, 70);
  CHECK(tail.size() == 69);
  CHECK(tail.front() == n - 70);
  CHECK(tail.back() == n - 2);
  CHECK(m.resident_pages() == n - 3 - out.size() - tail.size());
  CHECK(m.complete(64).empty());
  CHECK(m.resident(64));
  CHECK(m.resident_pages() == n - 2 - out.size() - tail.size());
}

namespace {

// The header's rules, written the slow and obvious way: a bool per page, a list for the
// FIFO, a linear scan for workers.
struct Reference {
  std::vector<bool> resident;
  std::vector<std::pair<uint64_t, FaultIn>> flight;  // pages in flight (linear search)
  std::deque<uint64_t> fifo;                         // resident pages, oldest first
  std::vector<uint64_t> free_at;
  uint64_t limit;
  uint64_t latency;

  Reference(uint64_t pages, const std::vector<GpaRange>& swapped, uint64_t lim, unsigned workers, uint64_t lat)
      : resident(pages, true), free_at(workers, 0), limit(lim), latency(lat) {
    for (const GpaRange& r : swapped)
      for (uint64_t p = r.gpa / kPage; p < (r.gpa + r.size) / kPage; ++p) resident[p] = false;
    for (uint64_t p = 0; p < pages; ++p)
      if (resident[p]) fifo.push_back(p);
  }
  FaultIn fault_in(uint64_t pfn, uint64_t now) {
    for (const auto& [p, f] : flight)
      if (p == pfn) return {f.start, f.done, f.worker, true};
    unsigned best = 0;
    for (unsigned w = 1; w < free_at.size(); ++w)
      if (std::max(now, free_at[w]) < std::max(now, free_at[best])) best = w;
    const uint64_t start = std::max(now, free_at[best]);
    free_at[best] = start + latency;
    FaultIn f{Tick(start), Tick(start + latency), best, false};
    flight.emplace_back(pfn, f);
    return f;
  }
  std::vector<uint64_t> complete(uint64_t pfn) {
    for (size_t i = 0; i < flight.size(); ++i)
      if (flight[i].first == pfn) {
        flight.erase(flight.begin() + static_cast<std::ptrdiff_t>(i));
        break;
      }
    resident[pfn] = true;
    fifo.push_back(pfn);
    std::vector<uint64_t> out;
    while (limit != 0 && fifo.size() > limit) {
      out.push_back(fifo.front());
      resident[fifo.front()] = false;
      fifo.pop_front();
    }
    return out;
  }
  std::vector<uint64_t> evict(uint64_t first, uint64_t n) {
    std::vector<uint64_t> out;
    for (uint64_t p = first; p < first + n; ++p)
      if (resident[p]) {
        out.push_back(p);
        resident[p] = false;
        for (size_t i = 0; i < fifo.size(); ++i)
          if (fifo[i] == p) {
            fifo.erase(fifo.begin() + static_cast<std::ptrdiff_t>(i));
            break;
          }
      }
    return out;
  }
};

}  // namespace

TEST_CASE("randomised: the model matches the reference for every operation and every page", "[host-memory]") {
  // 300 pages: not a multiple of 64, so the last bitmap word is partial.
  constexpr uint64_t kPages = 300;
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    SplitMix64 rng(seed);
    HostMemoryConfig c;
    for (int i = 0, k = static_cast<int>(rng.below(4)) + 1; i < k; ++i) {
      const uint64_t first = rng.below(kPages);
      c.swapped_out.push_back(pages(first, 1 + rng.below(kPages - first)));
    }
    c.io_workers = static_cast<unsigned>(1 + rng.below(4));
    c.fault_in = constant(1 + rng.below(1000));
    uint64_t resident_at_start = 0;
    {
      const HostMemory probe(c, kPages * kPage, 0);
      resident_at_start = probe.resident_pages();
    }
    // No limit, a tight one (at the pages resident at start), or some slack.
    const uint64_t mode = rng.below(3);
    c.resident_limit_pages =
        mode == 0 ? 0 : std::max<uint64_t>(1, resident_at_start + (mode == 2 ? rng.below(20) : 0));
    HostMemory m(c, kPages * kPage, seed);
    Reference ref(kPages, c.swapped_out, c.resident_limit_pages, c.io_workers, c.fault_in.lo_ns);
    std::vector<uint64_t> pending;  // pfns in flight, in start order
    for (int step = 0; step < 3000; ++step) {
      INFO("seed " << seed << " step " << step);
      const uint64_t op = rng.below(10);
      const uint64_t now = rng.below(100'000);
      if (op < 5) {
        const uint64_t pfn = rng.below(kPages);
        if (ref.resident[pfn]) continue;
        const FaultIn got = m.fault_in(pfn, Tick(now));
        REQUIRE(got == ref.fault_in(pfn, now));
        if (!got.joined) pending.push_back(pfn);
      } else if (op < 9) {
        if (pending.empty()) continue;
        const size_t i = rng.below(pending.size());
        const uint64_t pfn = pending[i];
        pending.erase(pending.begin() + static_cast<std::ptrdiff_t>(i));
        REQUIRE(m.complete(pfn) == ref.complete(pfn));
      } else {
        const uint64_t first = rng.below(kPages);
        const uint64_t n = 1 + rng.below(std::min<uint64_t>(70, kPages - first));
        REQUIRE(m.evict(first, n) == ref.evict(first, n));
      }
      REQUIRE(m.resident_pages() == ref.fifo.size());
      if (step % 100 == 0)
        for (uint64_t p = 0; p < kPages; ++p) REQUIRE(m.resident(p) == ref.resident[p]);
    }
    for (uint64_t p = 0; p < kPages; ++p) REQUIRE(m.resident(p) == ref.resident[p]);
  }
}
