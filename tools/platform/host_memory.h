// tools/platform/host_memory.h — the host side of guest RAM: which guest-physical pages the
// host holds in memory, and what bringing one back costs (scenario key `host.memory`,
// scenarios/README.md; tools/platform/README.md §5).
//
// The memory counterpart of host_model.h. Guest RAM itself always holds the guest's data
// (GuestMemory); this model only says whether the host page behind a guest page is resident.
// A guest access to a non-resident page is where KVM's fault path takes over: a synchronous
// stall or an async page fault (pvmsr/README.md), both of which wait for the fetch this
// model times. Everything comes from the scenario: nothing reads the real host.
//
// The model is pure: no event queue, no vCPUs. The platform asks it questions and tells it
// what happened, in its own deterministic order:
//   - resident(pfn) on an EPT violation (O(1): one bitmap bit);
//   - fault_in(pfn, now) to start (or join) the fetch of a non-resident page; it returns
//     when the fetch is done, and the platform schedules the completion then;
//   - complete(pfn) at that time (or at once for a synchronous stall): the page is
//     resident, and the resident-set limit may have evicted older pages;
//   - evict(first_pfn, pages) at each entry of evictions().
//
// Rules (all deterministic; scenarios/README.md `host.memory` says the same for authors):
//   Latency. Per page: the latency_ranges entry that holds the page, else fault_in_ns.
//     A uniform latency draws once per fetch started (never for a joined one, never for a
//     constant) from SplitMix64 (core/prng.h) seeded with `seed ^ kSeedTag`, in the order
//     fault_in() is called. The tag keeps this stream apart from other users of the seed.
//   I/O workers. Each worker is busy until its free time (initially 0). A new fetch asked
//     for at `now` takes the worker with the smallest max(now, free time), ties to the
//     lowest index: the lowest-numbered idle worker if one is idle at `now`, otherwise the
//     one that frees up first. start = that maximum, done = start + latency, and the
//     worker is busy until done. Requests are served in call order, not in order of
//     `now`: vCPUs run interleaved, each at its own local time, so a call may come with a
//     `now` earlier than an earlier call's; it then simply waits for whatever the earlier
//     calls left busy, never displacing them (FIFO in call order).
//   Joining. fault_in() on a page already in flight starts no I/O: it returns the same
//     start, done and worker with joined = true. `done` may then already lie before `now`
//     (the completion is due; the platform has simply not called complete() yet).
//   Residency. A page becomes resident only in complete(). A page in flight is not
//     resident and does not count toward the limit (its frame is charged when it lands).
//   Resident-set limit. resident_limit_pages (0 = none) caps the resident pages; it must
//     be at least the pages resident at time 0 (the parser checks), so each complete()
//     that goes over evicts exactly one page. The victim is the page that has been
//     resident longest (FIFO of the time it became resident): pages resident since time 0
//     are older than any fetched page, and among them the lowest GPA goes first. The CPU
//     never reports ordinary accesses (the fast path must not pay for this model), so a
//     recency-based policy (LRU, CLOCK) has nothing to work from; FIFO needs no per-access
//     information and costs O(1) amortised per eviction.
//   Eviction events. evict() makes a range non-resident and returns the pages that were
//     resident. Pages in flight are left alone: the host page is locked while its I/O
//     runs, and reclaim skips locked pages (Linux's shrink_folio_list trylock), so the
//     fetch completes normally and the page becomes resident then.
//
// Cost. With nothing swapped out and no evictions, active() is false: the model allocates
// nothing, every page is resident, and the platform skips every check. Otherwise it keeps
// one bitmap of RAM pages (2 MiB for 64 GiB of RAM), a second one when a limit is set, and
// per-page state only for pages in flight or fetched (never one 64-bit value per page).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/prng.h"
#include "core/types.h"
#include "tools/platform/scenario.h"

namespace pvsim {

class HostMemory {
 public:
  // The latency stream is SplitMix64(seed ^ kSeedTag); the tag is "host-mem" in ASCII.
  static constexpr uint64_t kSeedTag = 0x686f73742d6d656dull;

  // `cfg` as load_scenario() returns it, for `ram_bytes` of RAM. A hand-built config that
  // the parser would refuse (a range not page-aligned, empty or outside RAM, a limit below
  // the pages resident at time 0, no I/O worker) throws std::invalid_argument: that is a
  // programming error, not bad input.
  HostMemory(const HostMemoryConfig& cfg, uint64_t ram_bytes, uint64_t seed);

  // False when every page is resident for the whole run (nothing swapped out, no eviction;
  // a limit alone can never evict anything then): the platform skips every check.
  bool active() const { return m_active; }

  uint64_t pages() const { return m_pages; }  // pages of RAM

  // Whether the host holds page `pfn` (guest-physical page number, below pages()); false
  // for a pfn outside RAM. O(1).
  bool resident(uint64_t pfn) const {
    return pfn < m_pages && (!m_active || ((m_resident[pfn >> 6] >> (pfn & 63)) & 1));
  }
  bool in_flight(uint64_t pfn) const { return m_in_flight.count(pfn) != 0; }

  struct FaultIn {
    Tick start;           // when the I/O begins (>= the first request's now)
    Tick done;            // when the page can become resident (start + latency)
    unsigned worker = 0;  // the I/O worker that serves it
    bool joined = false;  // the page was already in flight: no new I/O, same times
    bool operator==(const FaultIn&) const = default;
  };
  // Starts the fetch of non-resident page `pfn` at virtual time `now`, or joins the one in
  // flight. The page stays non-resident until complete(pfn). A resident pfn or one outside
  // RAM throws std::invalid_argument.
  FaultIn fault_in(uint64_t pfn, Tick now);

  // The fetch of `pfn` has finished (the platform calls this at FaultIn::done, or at once
  // for a synchronous stall): the page is resident. Returns the pages the resident-set
  // limit evicted to make room (at most one, see above), in eviction order. A pfn not in
  // flight throws std::invalid_argument.
  std::vector<uint64_t> complete(uint64_t pfn);
  // A `complete`/`delay` schedule action moved the end of the fetch of `pfn` (in flight):
  // later faults joining it wait until `done`. The I/O worker's own timeline is unchanged.
  void set_done(uint64_t pfn, Tick done);
  // A `schedule` evict action needs the residency model even when the scenario's
  // host.memory leaves every page resident: from now on pages can be non-resident.
  void activate();

  // host.memory.evict as page ranges, sorted by time (entries with equal times keep their
  // order in the scenario). The platform calls evict() for each at its time.
  struct Eviction {
    Tick at;
    uint64_t first_pfn = 0;
    uint64_t pages = 0;
    bool operator==(const Eviction&) const = default;
  };
  const std::vector<Eviction>& evictions() const { return m_evictions; }

  // Makes [first_pfn, first_pfn + pages) non-resident; returns the pages that were
  // resident, ascending (8 bytes each: a whole-RAM eviction of a large guest is a large
  // vector). Pages in flight are left alone (see above). A range outside RAM, or any
  // range on an inactive model (it has no evictions to apply), throws
  // std::invalid_argument.
  std::vector<uint64_t> evict(uint64_t first_pfn, uint64_t pages);

  // Counters for reports.
  struct Stats {
    uint64_t fetches = 0;            // fault_in() calls that started I/O
    uint64_t joined = 0;             // fault_in() calls that joined a fetch in flight
    uint64_t completed = 0;          // complete() calls
    uint64_t evicted_by_event = 0;   // resident pages evict() took
    uint64_t evicted_by_limit = 0;   // pages the resident-set limit took
    uint64_t peak_resident = 0;      // the most pages resident at once
    uint64_t queue_wait_ns = 0;      // sum over fetches of start - now (waiting for a worker)
    uint64_t max_queue_wait_ns = 0;
    uint64_t io_ns = 0;              // sum over fetches of done - start
  };
  const Stats& stats() const { return m_stats; }
  uint64_t resident_pages() const { return m_resident_count; }
  unsigned io_workers() const { return m_workers; }
  // When worker w next becomes free (0 before its first fetch).
  Tick worker_free_at(unsigned w) const;
  // The latency rule of page `pfn`: its latency_ranges entry, else the default.
  const FaultInLatency& latency_of(uint64_t pfn) const;

  // One line for reports, e.g. "512 of 4096 pages swapped out, 1 eviction, fault-in 200 us,
  // 1 I/O worker", or "all resident" when inactive.
  std::string describe() const;

 private:
  struct Range {
    uint64_t first_pfn;
    uint64_t end_pfn;  // exclusive
    FaultInLatency latency;
  };

  static void set_bits(std::vector<uint64_t>& bits, uint64_t first, uint64_t count, bool value);
  // Pops the page resident longest (see "Resident-set limit"); m_resident_count > 0.
  uint64_t evict_oldest();
  void make_resident(uint64_t pfn);

  bool m_active = false;
  uint64_t m_pages = 0;
  unsigned m_workers = 1;
  uint64_t m_limit = 0;
  uint64_t m_resident_count = 0;
  uint64_t m_swapped_at_start = 0;  // for describe()
  FaultInLatency m_default;
  std::vector<Range> m_ranges;      // latency_ranges, sorted, disjoint
  std::vector<Eviction> m_evictions;
  SplitMix64 m_rng;

  std::vector<uint64_t> m_resident;   // one bit per page (active only)
  std::vector<uint64_t> m_free_at;    // per worker, ns (active only)
  std::map<uint64_t, FaultIn> m_in_flight;  // by pfn; a handful at a time

  // The FIFO of the limit (only with a limit). Pages resident since time 0 come first, in
  // ascending pfn: a bitmap of those still resident since then, scanned by a cursor that
  // only moves up. Then fetched pages in the order they became resident: (pfn, sequence)
  // entries from m_fifo_head on, where an entry is live only while m_fifo_seq[pfn] holds
  // its sequence (an evict() in between makes it stale; a later fetch adds a new entry).
  std::vector<uint64_t> m_initial;
  uint64_t m_initial_cursor = 0;
  std::vector<std::pair<uint64_t, uint64_t>> m_fifo;
  size_t m_fifo_head = 0;
  std::unordered_map<uint64_t, uint64_t> m_fifo_seq;  // looked up only, never iterated
  uint64_t m_next_seq = 0;

  Stats m_stats;
};

}  // namespace pvsim
