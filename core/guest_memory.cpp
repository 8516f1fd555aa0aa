#include "core/guest_memory.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <new>
#include <stdexcept>
#include <string>

namespace pvsim {

namespace {
void* reserve(uint64_t bytes) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED)
    throw GuestMemory::ReserveError("cannot reserve " + std::to_string(bytes) +
                                    " bytes of host address space for guest RAM");
  return p;
}
}  // namespace

GuestMemory::GuestMemory(uint64_t size_bytes) : m_size(size_bytes) {
  if (size_bytes == 0 || (size_bytes & (kPageSize - 1)) != 0)
    throw std::invalid_argument("guest RAM size must be a non-zero multiple of 4096");
  m_base = static_cast<uint8_t*>(reserve(size_bytes));
  // The destructor does not run when a constructor throws: unmap what is already mapped.
  try {
    m_code_gen = static_cast<uint32_t*>(reserve(page_count() * sizeof(uint32_t)));
    try {
      m_ept_seen = static_cast<uint64_t*>(reserve(ept_bitmap_bytes()));
    } catch (...) {
      munmap(m_code_gen, page_count() * sizeof(uint32_t));
      throw;
    }
  } catch (...) {
    munmap(m_base, m_size);
    throw;
  }
}

GuestMemory::~GuestMemory() {
  if (m_cpu_cache_release) m_cpu_cache_release(m_cpu_cache);
  if (m_page_serial) munmap(m_page_serial, page_count() * sizeof(uint32_t));
  munmap(m_base, m_size);
  munmap(m_code_gen, page_count() * sizeof(uint32_t));
  munmap(m_ept_seen, ept_bitmap_bytes());
}

bool GuestMemory::zero(Gpa gpa, uint64_t len) {
  if (!contains(gpa, len)) return false;
  if (len == 0) return true;
  prepare_write(gpa, len);
  uint64_t at = gpa.value();
  const uint64_t end = at + len;
  const uint64_t first_full = (at + kPageSize - 1) & ~(kPageSize - 1);
  const uint64_t last_full = end & ~(kPageSize - 1);
  if (first_full < last_full) {
    std::memset(m_base + at, 0, first_full - at);
    if (madvise(m_base + first_full, last_full - first_full, MADV_DONTNEED) != 0)
      std::memset(m_base + first_full, 0, last_full - first_full);  // cannot fail on our own mapping, but stay correct
    std::memset(m_base + last_full, 0, end - last_full);
  } else {
    std::memset(m_base + at, 0, len);
  }
  note_code_write(gpa, len);
  if (m_watcher) [[unlikely]] watch_hit(gpa.value(), len, WatchAccess::Write, true);
  return true;
}

bool GuestMemory::read(Gpa gpa, void* dst, uint64_t len) const {
  if (!contains(gpa, len)) return false;
  if (len) std::memcpy(dst, m_base + gpa.value(), len);
  return true;
}

bool GuestMemory::write(Gpa gpa, const void* src, uint64_t len) {
  if (!contains(gpa, len)) return false;
  if (len == 0) return true;
  prepare_write(gpa, len);
  std::memcpy(m_base + gpa.value(), src, len);
  note_code_write(gpa, len);
  if (m_watcher) [[unlikely]] watch_hit(gpa.value(), len, WatchAccess::Write, true);
  return true;
}

void GuestMemory::set_watches(std::vector<Watch> w, Watcher* watcher) {
  m_watches = std::move(w);
  m_watcher = m_watches.empty() ? nullptr : watcher;
  drop_write_mappings();
}

bool GuestMemory::watch_page_slow(uint64_t pfn, WatchAccess a) const {
  const uint64_t lo = pfn << kPageShift, hi = lo + kPageSize;
  for (const Watch& w : m_watches)
    if ((w.access & static_cast<uint8_t>(a)) && w.gpa < hi && w.gpa + w.len > lo) return true;
  return false;
}

void GuestMemory::watch_hit(uint64_t gpa, uint64_t len, WatchAccess a, bool host) {
  if (m_watch_muted || len == 0) return;
  for (const Watch& w : m_watches)
    if ((w.access & static_cast<uint8_t>(a)) && w.gpa < gpa + len && gpa < w.gpa + w.len) {
      m_watcher->on_watch(w, gpa, len, a, host);
      return;
    }
}

unsigned GuestMemory::checkpoint() {
  if (!m_page_serial) m_page_serial = static_cast<uint32_t*>(reserve(page_count() * sizeof(uint32_t)));
  m_levels.emplace_back();
  next_serial();  // no page counts as saved in the new level
  drop_write_mappings();
  return checkpoint_depth();
}

// A fresh serial: no page counts as saved under it. 2^32 levels and rollbacks would wrap
// it; the serial array is then cleared once.
void GuestMemory::next_serial() {
  if (++m_serial == 0) {
    std::memset(m_page_serial, 0, page_count() * sizeof(uint32_t));
    m_serial = 1;
  }
}

void GuestMemory::log_range(uint64_t gpa, uint64_t len) {
  if (len == 0) return;
  const uint64_t last = (gpa + len - 1) >> kPageShift;
  for (uint64_t p = gpa >> kPageShift; p <= last; ++p) prepare_page(p);
}

void GuestMemory::log_page(uint64_t pfn) {
  Level& l = m_levels.back();
  m_page_serial[pfn] = m_serial;
  l.pfns.push_back(pfn);
  const size_t at = l.data.size();
  l.data.resize(at + kPageSize);
  std::memcpy(l.data.data() + at, m_base + (pfn << kPageShift), kPageSize);
}

void GuestMemory::rollback(unsigned level) {
  if (level == 0 || level > m_levels.size()) throw std::out_of_range("GuestMemory::rollback: no such level");
  // Newest first: a page saved in several levels ends with the contents of the oldest
  // one, which is what it held when `level` opened.
  for (size_t k = m_levels.size(); k-- > level - 1;) {
    Level& l = m_levels[k];
    for (size_t i = 0; i < l.pfns.size(); ++i) {
      const uint64_t pfn = l.pfns[i];
      std::memcpy(m_base + (pfn << kPageShift), l.data.data() + i * kPageSize, kPageSize);
      // Decoded blocks of this page were made from contents that are gone (the generation
      // moves on, never back, so no old block can match again).
      if (m_code_gen[pfn] & 1u) {
        ++m_code_gen[pfn];
        ++m_code_writes;
      }
    }
    for (size_t i = l.ept_words.size(); i-- > 0;) m_ept_seen[l.ept_words[i].first] = l.ept_words[i].second;
    if (!l.ept_words.empty()) ++m_host_unmap_epoch;  // translations to unmapped pages must go
  }
  m_levels.resize(level);
  Level& top = m_levels.back();
  top.pfns.clear();  // keeps the capacity: the next run from this snapshot does not allocate
  top.data.clear();
  top.ept_words.clear();
  next_serial();
  drop_write_mappings();
}

void GuestMemory::merge_level(unsigned level) {
  if (level == 0 || level >= m_levels.size()) throw std::out_of_range("GuestMemory::merge_level: no such level");
  Level& keep = m_levels[level - 1];
  Level& up = m_levels[level];
  // A page both levels saved keeps the lower level's (older) contents; a page only the
  // upper one saved was not written while the lower one was the newest, so its contents at
  // the upper level's start are also those at the lower level's start.
  std::vector<uint64_t> have = keep.pfns;
  std::sort(have.begin(), have.end());
  for (size_t i = 0; i < up.pfns.size(); ++i) {
    if (std::binary_search(have.begin(), have.end(), up.pfns[i])) continue;
    keep.pfns.push_back(up.pfns[i]);
    keep.data.insert(keep.data.end(), up.data.begin() + static_cast<std::ptrdiff_t>(i * kPageSize),
                     up.data.begin() + static_cast<std::ptrdiff_t>((i + 1) * kPageSize));
  }
  // Rolled back newest first: the upper level's words, then the lower one's older values.
  keep.ept_words.insert(keep.ept_words.end(), up.ept_words.begin(), up.ept_words.end());
  const bool newest = level + 1 == m_levels.size();
  m_levels.erase(m_levels.begin() + static_cast<std::ptrdiff_t>(level));
  if (newest) {
    // The merged level is the newest now: its pages count as saved under a fresh serial.
    next_serial();
    for (uint64_t pfn : m_levels.back().pfns) m_page_serial[pfn] = m_serial;
  }
}

void GuestMemory::drop_checkpoints(unsigned above) {
  if (above >= m_levels.size()) return;
  if (above == 0) {
    m_levels.clear();
    return;
  }
  // The levels above merge into `above`: pages it has not saved yet keep their oldest
  // saved contents from the higher levels (oldest level first, the first save wins). The
  // merged level is the newest now, so its pages are marked saved under a fresh serial.
  next_serial();
  Level& keep = m_levels[above - 1];
  for (uint64_t pfn : keep.pfns) m_page_serial[pfn] = m_serial;
  for (size_t k = above; k < m_levels.size(); ++k) {
    Level& l = m_levels[k];
    for (size_t i = 0; i < l.pfns.size(); ++i) {
      const uint64_t pfn = l.pfns[i];
      if (m_page_serial[pfn] == m_serial) continue;
      m_page_serial[pfn] = m_serial;
      keep.pfns.push_back(pfn);
      keep.data.insert(keep.data.end(), l.data.begin() + static_cast<std::ptrdiff_t>(i * kPageSize),
                       l.data.begin() + static_cast<std::ptrdiff_t>((i + 1) * kPageSize));
    }
    keep.ept_words.insert(keep.ept_words.end(), l.ept_words.begin(), l.ept_words.end());
  }
  m_levels.resize(above);
  drop_write_mappings();
}

namespace {
// Bytes of [p, p+len) backed by host memory: mincore() reports it per host page. The
// mappings are page-aligned (mmap), so no partial page at the start.
uint64_t resident_in(const void* p, uint64_t len) {
  const uint64_t host_page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  const uint64_t chunk_pages = 1u << 16;
  std::vector<unsigned char> vec(chunk_pages);
  auto* base = static_cast<uint8_t*>(const_cast<void*>(p));
  uint64_t resident = 0;
  for (uint64_t off = 0; off < len; off += chunk_pages * host_page) {
    const uint64_t n_bytes = std::min<uint64_t>(chunk_pages * host_page, len - off);
    if (mincore(base + off, n_bytes, vec.data()) != 0) break;
    const uint64_t n = (n_bytes + host_page - 1) / host_page;
    for (uint64_t i = 0; i < n; ++i) resident += (vec[i] & 1u) ? host_page : 0;
  }
  return resident;
}
}  // namespace

uint64_t GuestMemory::resident_bytes() const { return resident_in(m_base, m_size); }

uint64_t GuestMemory::side_resident_bytes() const {
  return resident_in(m_code_gen, page_count() * sizeof(uint32_t)) + resident_in(m_ept_seen, ept_bitmap_bytes());
}

}  // namespace pvsim
