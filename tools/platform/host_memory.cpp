#include "tools/platform/host_memory.h"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <iterator>
#include <stdexcept>

namespace pvsim {

namespace {

constexpr uint64_t kMax = UINT64_MAX;

std::string plural(uint64_t n, std::string_view what) {
  return fmt::format("{} {}{}", n, what, n == 1 ? "" : "s");
}

// "200 us", "2 ms" or "1500 ns": the largest unit that divides the time exactly.
std::string show_ns(uint64_t ns) {
  if (ns != 0 && ns % 1'000'000 == 0) return fmt::format("{} ms", ns / 1'000'000);
  if (ns != 0 && ns % 1'000 == 0) return fmt::format("{} us", ns / 1'000);
  return fmt::format("{} ns", ns);
}

std::string show_latency(const FaultInLatency& l) {
  if (!l.uniform) return show_ns(l.lo_ns);
  return fmt::format("uniform {} to {}", show_ns(l.lo_ns), show_ns(l.hi_ns));
}

// A byte range as pages; throws for what the parser refuses (scenario.cpp parse_gpa_range).
std::pair<uint64_t, uint64_t> page_range(const GpaRange& r, uint64_t ram_bytes, const char* what) {
  if (r.gpa % kPageSize != 0 || r.size % kPageSize != 0 || r.size == 0 || r.gpa >= ram_bytes ||
      r.size > ram_bytes - r.gpa)
    throw std::invalid_argument(fmt::format("HostMemory: {} range 0x{:x}+0x{:x} is empty, not page-aligned or "
                                            "outside RAM",
                                            what, r.gpa, r.size));
  return {r.gpa / kPageSize, r.size / kPageSize};
}

// The first set bit at or after `from` and below `end`, or `end`.
uint64_t next_set(const std::vector<uint64_t>& bits, uint64_t from, uint64_t end) {
  while (from < end) {
    const uint64_t word = bits[from >> 6] >> (from & 63);
    if (word != 0) return std::min(end, from + static_cast<uint64_t>(std::countr_zero(word)));
    from = (from | 63) + 1;
  }
  return end;
}

}  // namespace

HostMemory::HostMemory(const HostMemoryConfig& cfg, uint64_t ram_bytes, uint64_t seed)
    : m_pages(ram_bytes / kPageSize),
      m_workers(cfg.io_workers),
      m_limit(cfg.resident_limit_pages),
      m_resident_count(ram_bytes / kPageSize),
      m_default(cfg.fault_in),
      m_rng(seed ^ kSeedTag) {
  if (ram_bytes % kPageSize != 0) throw std::invalid_argument("HostMemory: RAM is not a whole number of pages");
  if (m_workers == 0) throw std::invalid_argument("HostMemory: no I/O worker");
  auto check_latency = [](const FaultInLatency& l) {
    if (l.hi_ns < l.lo_ns || (!l.uniform && l.hi_ns != l.lo_ns))
      throw std::invalid_argument("HostMemory: latency with hi_ns below lo_ns, or a constant with two values");
  };
  check_latency(m_default);
  m_active = !cfg.swapped_out.empty() || !cfg.evict.empty();
  // Ranges are checked even when inactive, so a bad hand-built config never passes silently.
  for (const LatencyRange& r : cfg.latency_ranges) {
    const auto [first, n] = page_range(r.range, ram_bytes, "latency");
    check_latency(r.latency);
    if (m_active) m_ranges.push_back({first, first + n, r.latency});
  }
  std::sort(m_ranges.begin(), m_ranges.end(),
            [](const Range& a, const Range& b) { return a.first_pfn < b.first_pfn; });
  for (size_t i = 1; i < m_ranges.size(); ++i)
    if (m_ranges[i].first_pfn < m_ranges[i - 1].end_pfn)
      throw std::invalid_argument("HostMemory: latency ranges overlap");
  for (const GpaRange& r : cfg.swapped_out) page_range(r, ram_bytes, "swapped_out");
  for (const MemoryEviction& e : cfg.evict) {
    const auto [first, n] = page_range(e.range, ram_bytes, "evict");
    m_evictions.push_back({Tick(e.at_ns), first, n});
  }
  std::stable_sort(m_evictions.begin(), m_evictions.end(),
                   [](const Eviction& a, const Eviction& b) { return a.at < b.at; });
  if (!m_active) {
    m_stats.peak_resident = m_resident_count;
    return;  // every page resident for good: no bitmap, no workers, nothing allocated
  }

  m_resident.assign((m_pages + 63) / 64, 0);
  set_bits(m_resident, 0, m_pages, true);
  for (const GpaRange& r : cfg.swapped_out) set_bits(m_resident, r.gpa / kPageSize, r.size / kPageSize, false);
  m_resident_count = 0;
  for (uint64_t w : m_resident) m_resident_count += static_cast<uint64_t>(std::popcount(w));
  m_swapped_at_start = m_pages - m_resident_count;
  m_stats.peak_resident = m_resident_count;
  if (m_limit != 0 && m_limit < m_resident_count)
    throw std::invalid_argument(fmt::format("HostMemory: resident limit {} is below the {} pages resident at time 0",
                                            m_limit, m_resident_count));
  if (m_limit != 0) m_initial = m_resident;
  m_free_at.assign(m_workers, 0);
}

void HostMemory::set_bits(std::vector<uint64_t>& bits, uint64_t first, uint64_t count, bool value) {
  uint64_t i = first;
  const uint64_t end = first + count;
  while (i < end) {
    const unsigned shift = static_cast<unsigned>(i & 63);
    const uint64_t n = std::min<uint64_t>(64 - shift, end - i);
    const uint64_t mask = (n == 64 ? kMax : ((uint64_t{1} << n) - 1)) << shift;
    if (value)
      bits[i >> 6] |= mask;
    else
      bits[i >> 6] &= ~mask;
    i += n;
  }
}

void HostMemory::set_done(uint64_t pfn, Tick done) {
  auto it = m_in_flight.find(pfn);
  if (it == m_in_flight.end()) throw std::invalid_argument("HostMemory::set_done: not in flight");
  it->second.done = done;
}

void HostMemory::activate() {
  if (m_active) return;
  m_active = true;
  m_resident.assign((m_pages + 63) / 64, 0);
  set_bits(m_resident, 0, m_pages, true);
  if (m_limit != 0) m_initial = m_resident;
  m_free_at.assign(m_workers, 0);
}

Tick HostMemory::worker_free_at(unsigned w) const {
  if (w >= m_workers) throw std::invalid_argument("HostMemory: no such I/O worker");
  return Tick(m_free_at.empty() ? 0 : m_free_at[w]);
}

const FaultInLatency& HostMemory::latency_of(uint64_t pfn) const {
  // The last range starting at or before pfn is the only one that can hold it.
  auto it = std::upper_bound(m_ranges.begin(), m_ranges.end(), pfn,
                             [](uint64_t p, const Range& r) { return p < r.first_pfn; });
  if (it != m_ranges.begin() && pfn < std::prev(it)->end_pfn) return std::prev(it)->latency;
  return m_default;
}

HostMemory::FaultIn HostMemory::fault_in(uint64_t pfn, Tick now) {
  if (pfn >= m_pages) throw std::invalid_argument(fmt::format("HostMemory::fault_in: pfn 0x{:x} is outside RAM", pfn));
  if (auto it = m_in_flight.find(pfn); it != m_in_flight.end()) {
    ++m_stats.joined;
    FaultIn f = it->second;
    f.joined = true;
    return f;
  }
  if (resident(pfn))
    throw std::invalid_argument(fmt::format("HostMemory::fault_in: pfn 0x{:x} is resident", pfn));

  const FaultInLatency& l = latency_of(pfn);
  const uint64_t latency = l.uniform ? l.lo_ns + m_rng.below(l.hi_ns - l.lo_ns + 1) : l.lo_ns;
  // The worker that can start soonest; strict '<' keeps the lowest index on ties.
  unsigned w = 0;
  uint64_t start = std::max(now.value(), m_free_at[0]);
  for (unsigned i = 1; i < m_workers; ++i) {
    const uint64_t s = std::max(now.value(), m_free_at[i]);
    if (s < start) {
      start = s;
      w = i;
    }
  }
  uint64_t done;
  if (__builtin_add_overflow(start, latency, &done)) done = kMax;
  m_free_at[w] = done;

  const FaultIn f{Tick(start), Tick(done), w, false};
  m_in_flight.emplace(pfn, f);
  ++m_stats.fetches;
  const uint64_t wait = start - now.value();
  m_stats.queue_wait_ns += wait;
  m_stats.max_queue_wait_ns = std::max(m_stats.max_queue_wait_ns, wait);
  m_stats.io_ns += done - start;
  return f;
}

void HostMemory::make_resident(uint64_t pfn) {
  m_resident[pfn >> 6] |= uint64_t{1} << (pfn & 63);
  ++m_resident_count;
  if (m_limit == 0) return;
  const uint64_t seq = m_next_seq++;
  m_fifo.emplace_back(pfn, seq);
  m_fifo_seq[pfn] = seq;
}

uint64_t HostMemory::evict_oldest() {
  uint64_t victim = m_pages;
  m_initial_cursor = next_set(m_initial, m_initial_cursor, m_pages);
  if (m_initial_cursor < m_pages) {
    victim = m_initial_cursor++;
    m_initial[victim >> 6] &= ~(uint64_t{1} << (victim & 63));
  } else {
    // Fetched pages in the order they became resident; stale entries (the page was
    // evicted by an event since) are dropped on the way. A live one always exists:
    // m_resident_count > 0 and no page resident since time 0 is left.
    for (;;) {
      if (m_fifo_head >= m_fifo.size()) throw std::logic_error("HostMemory: resident count and FIFO disagree");
      const auto [pfn, seq] = m_fifo[m_fifo_head++];
      auto it = m_fifo_seq.find(pfn);
      if (it != m_fifo_seq.end() && it->second == seq) {
        m_fifo_seq.erase(it);
        victim = pfn;
        break;
      }
    }
    // Drop the consumed prefix once it is most of the vector (amortised O(1)).
    if (m_fifo_head >= 1024 && m_fifo_head * 2 >= m_fifo.size()) {
      m_fifo.erase(m_fifo.begin(), m_fifo.begin() + static_cast<std::ptrdiff_t>(m_fifo_head));
      m_fifo_head = 0;
    }
  }
  m_resident[victim >> 6] &= ~(uint64_t{1} << (victim & 63));
  --m_resident_count;
  return victim;
}

std::vector<uint64_t> HostMemory::complete(uint64_t pfn) {
  auto it = m_in_flight.find(pfn);
  if (it == m_in_flight.end())
    throw std::invalid_argument(fmt::format("HostMemory::complete: pfn 0x{:x} is not in flight", pfn));
  m_in_flight.erase(it);
  ++m_stats.completed;
  make_resident(pfn);
  std::vector<uint64_t> evicted;
  while (m_limit != 0 && m_resident_count > m_limit) {
    evicted.push_back(evict_oldest());
    ++m_stats.evicted_by_limit;
  }
  // After the limit has had its way: the page and its victim are never both resident.
  m_stats.peak_resident = std::max(m_stats.peak_resident, m_resident_count);
  return evicted;
}

std::vector<uint64_t> HostMemory::evict(uint64_t first_pfn, uint64_t pages) {
  if (first_pfn >= m_pages || pages > m_pages - first_pfn)
    throw std::invalid_argument(
        fmt::format("HostMemory::evict: pages 0x{:x}+0x{:x} are outside RAM", first_pfn, pages));
  std::vector<uint64_t> out;
  if (!m_active) {
    // Only a hand-built caller gets here (an inactive model has no evictions to apply);
    // there is no bitmap to clear, so refuse rather than pretend.
    if (pages != 0) throw std::invalid_argument("HostMemory::evict: the model is inactive (nothing can be evicted)");
    return out;
  }
  const uint64_t end = first_pfn + pages;
  // In-flight pages have no resident bit, so walking the resident bits leaves them alone.
  for (uint64_t pfn = next_set(m_resident, first_pfn, end); pfn < end; pfn = next_set(m_resident, pfn + 1, end)) {
    out.push_back(pfn);
    m_resident[pfn >> 6] &= ~(uint64_t{1} << (pfn & 63));
    if (m_limit != 0) {
      if ((m_initial[pfn >> 6] >> (pfn & 63)) & 1)
        m_initial[pfn >> 6] &= ~(uint64_t{1} << (pfn & 63));
      else
        m_fifo_seq.erase(pfn);  // its FIFO entry goes stale
    }
  }
  m_resident_count -= out.size();
  m_stats.evicted_by_event += out.size();
  return out;
}

std::string HostMemory::describe() const {
  if (!m_active) return "all resident";
  std::string out = fmt::format("{} of {} swapped out", m_swapped_at_start, plural(m_pages, "page"));
  if (!m_evictions.empty()) out += fmt::format(", {}", plural(m_evictions.size(), "eviction"));
  if (m_limit != 0) out += fmt::format(", resident limit {}", plural(m_limit, "page"));
  out += fmt::format(", fault-in {}", show_latency(m_default));
  if (!m_ranges.empty())
    out += fmt::format(" ({} with {} own)", plural(m_ranges.size(), "range"), m_ranges.size() == 1 ? "its" : "their");
  out += fmt::format(", {}", plural(m_workers, "I/O worker"));
  return out;
}

}  // namespace pvsim
