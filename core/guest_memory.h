// core/guest_memory.h — guest RAM: one region at GPA 0 (scenarios/guest/boot.md §2).
//
// The whole size is reserved as one anonymous host mapping with MAP_NORESERVE, so a
// 64 GiB guest costs only the pages it touches (the host kernel backs pages on first
// touch). GPA g lives at host address base()+g; every accessor bounds-checks first, so
// guest code can never reach host memory outside the region.
//
// Code-page tracking: the decoded-instruction cache (core/cpu) marks the pages it has
// decoded. Any write to a marked page — by the guest or by the host side (loader,
// PV structure updates, DMA-like page-fault pipeline writes) — must go through
// note_write()/write(), which bumps that page's generation so stale decodes die.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <utility>
#include <vector>

#include "core/types.h"

namespace pvsim {

class GuestMemory {
 public:
  // The host refused the address space (an RLIMIT_AS, a 47-bit user space, overcommit
  // disabled): a property of the host, reported to the user as a scenario problem.
  class ReserveError : public std::runtime_error {
   public:
    using std::runtime_error::runtime_error;
  };

  explicit GuestMemory(uint64_t size_bytes);  // size must be a multiple of 4 KiB, > 0
  ~GuestMemory();
  GuestMemory(const GuestMemory&) = delete;
  GuestMemory& operator=(const GuestMemory&) = delete;

  uint64_t size() const { return m_size; }
  uint64_t page_count() const { return m_size >> kPageShift; }

  // True when [gpa, gpa+len) lies inside RAM (overflow-safe).
  bool contains(Gpa gpa, uint64_t len) const {
    return len <= m_size && gpa.value() <= m_size - len;
  }
  // Host pointer to [gpa, gpa+len) or nullptr when outside RAM. Callers that write
  // through it must call note_write() (or use write()).
  uint8_t* host_ptr(Gpa gpa, uint64_t len) {
    return contains(gpa, len) ? m_base + gpa.value() : nullptr;
  }
  const uint8_t* host_ptr(Gpa gpa, uint64_t len) const {
    return contains(gpa, len) ? m_base + gpa.value() : nullptr;
  }
  uint8_t* base() { return m_base; }

  // --- snapshots: an undo log of RAM (tools/platform/README.md "Snapshots") ---
  // checkpoint() opens a new level; from then on the first write to each page saves the
  // page's old contents in that level (and every change of the EPT bitmap its old word),
  // so rollback() costs in proportion to the pages written since, not to the size of RAM.
  // Levels nest: rollback(k) undoes every level above k and k itself, and leaves level k
  // open and empty (a restored snapshot can be restored again); the levels below stay.
  // Every path that writes RAM other than write()/zero() calls prepare_write() before it
  // writes (the CPU does so when it fills a write-TLB entry and on its slow store paths);
  // checkpoint() and rollback() make every vCPU drop its write-TLB entries (tlb_epoch), so
  // no host pointer can store into a page that was not saved first.
  unsigned checkpoint();                 // returns the new level's number (1, 2, ...)
  void rollback(unsigned level);         // 1 <= level <= checkpoint_depth()
  void drop_checkpoints(unsigned above); // forgets the levels above `above` (0: all), no rollback
  // Folds level `level` + 1 into `level` (1 <= level < checkpoint_depth()): one snapshot
  // in the middle of the nest goes, the levels above move down by one, and a rollback to
  // `level` still restores what RAM held when it opened (a debugger thinning its checkpoints).
  void merge_level(unsigned level);
  unsigned checkpoint_depth() const { return static_cast<unsigned>(m_levels.size()); }
  // Pages saved in level `level` so far: what rolling it back would copy.
  uint64_t checkpoint_pages(unsigned level) const { return m_levels.at(level - 1).pfns.size(); }
  void prepare_write(Gpa gpa, uint64_t len) {
    if (!m_levels.empty()) [[unlikely]] log_range(gpa.value(), len);
  }
  void prepare_page(uint64_t pfn) {
    if (!m_levels.empty() && m_page_serial[pfn] != m_serial) [[unlikely]] log_page(pfn);
  }

  // Host-side copies; false (and nothing copied) when the range is outside RAM.
  bool read(Gpa gpa, void* dst, uint64_t len) const;
  bool write(Gpa gpa, const void* src, uint64_t len);  // also note_write()s
  // Zeroes [gpa, gpa+len), also note_write()s; false when outside RAM. Whole pages are
  // handed back to the host (madvise MADV_DONTNEED: a private anonymous page reads as zero
  // afterwards), so clearing a 2 GiB .bss costs neither time nor resident memory; the
  // partial pages at the ends are cleared in place.
  bool zero(Gpa gpa, uint64_t len);

  template <class T>
  bool read_obj(Gpa gpa, T& out) const { return read(gpa, &out, sizeof(T)); }
  template <class T>
  bool write_obj(Gpa gpa, const T& v) { return write(gpa, &v, sizeof(T)); }

  // --- decoded-code tracking (used by core/cpu's instruction cache) ---
  // Generation of a page: changes whenever a write lands on a page marked as code.
  uint32_t code_generation(uint64_t pfn) const { return m_code_gen[pfn]; }
  // The generation array itself (one entry per page), for the CPU's block-cache check.
  const uint32_t* code_generations() const { return m_code_gen; }
  bool is_code_page(uint64_t pfn) const { return (m_code_gen[pfn] & 1u) != 0; }
  // Marks the page as holding decoded code (generation becomes odd). Returns true when
  // the page was not marked before; then code_mark_epoch() changes, which tells every
  // vCPU to drop write-TLB entries that could bypass note_write() for this page.
  bool mark_code_page(uint64_t pfn) {
    if (m_code_gen[pfn] & 1u) return false;
    ++m_code_gen[pfn];
    ++m_code_mark_epoch;
    ++m_tlb_epoch;
    return true;
  }
  uint64_t code_mark_epoch() const { return m_code_mark_epoch; }
  // Called for every write to [gpa, gpa+len) that did not go through write():
  // unmarks touched code pages (generation becomes even again, i.e. changed).
  void note_write(Gpa gpa, uint64_t len) {
    if (m_watcher) [[unlikely]] watch_hit(gpa.value(), len, WatchAccess::Write, false);
    note_code_write(gpa, len);
  }
  // The code-page part of note_write (write() and zero() report watch hits as the host's).
  void note_code_write(Gpa gpa, uint64_t len) {
    uint64_t first = gpa.value() >> kPageShift, last = (gpa.value() + len - 1) >> kPageShift;
    for (uint64_t p = first; p <= last; ++p)
      if (m_code_gen[p] & 1u) { ++m_code_gen[p]; ++m_code_writes; }
  }
  uint64_t code_write_count() const { return m_code_writes; }

  // --- EPT model (per VM): a guest-physical page is either mapped in the (modelled) EPT or
  // not. The first guest access to an unmapped page is an EPT violation (core/cpu/mmu.cpp
  // Core::ept_check); the platform's host memory model then decides whether the page can be
  // mapped now (core/README.md "EPT model and host memory"). ept_unmap() is the host taking
  // a page away again (eviction, tools/platform/README.md §6): every vCPU drops its TLB
  // entries at its next run() (host_unmap_epoch), and decoded blocks of a code page die
  // (generation + 2 keeps the page marked as code).
  bool ept_mapped(uint64_t pfn) const { return (m_ept_seen[pfn >> 6] >> (pfn & 63)) & 1u; }
  void ept_map(uint64_t pfn) {
    uint64_t& w = m_ept_seen[pfn >> 6];
    if (!m_levels.empty()) [[unlikely]] m_levels.back().ept_words.emplace_back(pfn >> 6, w);
    w |= 1ull << (pfn & 63);
  }
  void ept_unmap(uint64_t pfn) {
    uint64_t& w = m_ept_seen[pfn >> 6];
    const uint64_t bit = 1ull << (pfn & 63);
    if (!(w & bit)) return;
    if (!m_levels.empty()) [[unlikely]] m_levels.back().ept_words.emplace_back(pfn >> 6, w);
    w &= ~bit;
    if (m_code_gen[pfn] & 1u) m_code_gen[pfn] += 2;
    ++m_host_unmap_epoch;
    ++m_tlb_epoch;
  }
  uint64_t host_unmap_epoch() const { return m_host_unmap_epoch; }
  // Moves whenever code_mark_epoch() or host_unmap_epoch() does: one compare per run()
  // tells a vCPU whether either needs a look.
  uint64_t tlb_epoch() const { return m_tlb_epoch; }
  // Compatibility spellings used by reports and tests: "touched" = mapped at least once and
  // not unmapped since.
  bool ept_first_touch(uint64_t pfn) {
    if (ept_mapped(pfn)) return false;
    ept_map(pfn);
    return true;
  }
  bool ept_touched(uint64_t pfn) const { return ept_mapped(pfn); }

  // --- a per-VM cache of the CPU core (core/cpu: the decoded-block cache, which all vCPUs
  // share because blocks are keyed by guest-physical address and hold nothing per vCPU).
  // Opaque here; released with the memory.
  void* cpu_cache() const { return m_cpu_cache; }
  void set_cpu_cache(void* cache, void (*release)(void*)) {
    m_cpu_cache = cache;
    m_cpu_cache_release = release;
  }

  // --- watchpoints (a debugger's data breakpoints, tools/platform/README.md "Debugging with
  // gdb") ---
  // Guest-physical ranges whose writes (and, for read watches, CPU reads) are reported to the
  // watcher. Writes are seen where they all pass already: write()/zero() for the host side
  // (the hypervisor's PV structure updates, pvmsr/), note_write() for the CPU's stores, which
  // reach it for every page without a write-TLB entry, and the CPU keeps none for a watched
  // page (core/cpu/mmu.cpp). CPU reads of a read-watched page take the slow path the same
  // way (no read-TLB entry) and report through watch_read(). Unset, the cost is one
  // predictable branch on write(), zero() and note_write().
  enum class WatchAccess : uint8_t { Write = 1, Read = 2 };
  struct Watch {
    uint64_t gpa = 0;
    uint64_t len = 0;
    uint8_t access = 0;  // WatchAccess bits
  };
  struct Watcher {
    virtual ~Watcher() = default;
    // `host`: GuestMemory::write/zero (the hypervisor or a device), else the CPU.
    virtual void on_watch(const Watch& w, uint64_t gpa, uint64_t len, WatchAccess a, bool host) = 0;
  };
  // Replaces the set (empty: none, and no watcher is called). Drops every vCPU's write-TLB
  // entries (as a checkpoint does), so watched pages lose theirs; read entries are the
  // vCPUs' to drop (Vcpu::drop_read_translations).
  void set_watches(std::vector<Watch> w, Watcher* watcher);
  const std::vector<Watch>& watches() const { return m_watches; }
  // The CPU may keep a TLB entry of kind `a` for this page.
  bool watch_page(uint64_t pfn, WatchAccess a) const {
    if (!m_watcher) [[likely]] return false;
    return watch_page_slow(pfn, a);
  }
  void watch_read(uint64_t gpa, uint64_t len) {
    if (m_watcher) [[unlikely]] watch_hit(gpa, len, WatchAccess::Read, false);
  }
  // Suspends reporting (a debugger's own memory writes are not hits).
  void set_watch_muted(bool m) { m_watch_muted = m; }

  // Host memory actually backing guest RAM right now (pages touched), in bytes.
  uint64_t resident_bytes() const;
  // The same for the per-page side arrays (code generations, EPT bitmap): 4 bytes + 1 bit
  // per guest page of address space (64 MiB + 2 MiB for 64 GiB), backed only where used.
  uint64_t side_resident_bytes() const;

 private:
  uint64_t ept_bitmap_bytes() const { return ((page_count() + 63) / 64) * sizeof(uint64_t); }
  void log_range(uint64_t gpa, uint64_t len);
  void next_serial();
  void log_page(uint64_t pfn);
  void drop_write_mappings() {
    ++m_code_mark_epoch;  // makes every vCPU drop its write-TLB entries at its next run()
    ++m_tlb_epoch;
  }

  // One undo level: the pages saved since it opened (their old contents, 4 KiB each, in
  // `data`) and the EPT-bitmap words changed (old values, in change order).
  struct Level {
    std::vector<uint64_t> pfns;
    std::vector<uint8_t> data;
    std::vector<std::pair<uint64_t, uint64_t>> ept_words;
  };
  std::vector<Level> m_levels;
  // m_page_serial[pfn] == m_serial: the page is saved in the newest level. Every new level
  // and every rollback takes a fresh serial, so nothing is ever cleared page by page.
  uint32_t* m_page_serial = nullptr;  // one per 4 KiB page, NORESERVE mapping (on first use)
  uint32_t m_serial = 0;

  uint8_t* m_base = nullptr;
  uint64_t m_size = 0;
  uint32_t* m_code_gen = nullptr;  // one per 4 KiB page, also a NORESERVE mapping
  uint64_t m_code_writes = 0;
  uint64_t m_code_mark_epoch = 0;
  uint64_t m_host_unmap_epoch = 0;
  uint64_t m_tlb_epoch = 0;
  uint64_t* m_ept_seen = nullptr;  // one bit per 4 KiB page, NORESERVE mapping
  void watch_hit(uint64_t gpa, uint64_t len, WatchAccess a, bool host);
  bool watch_page_slow(uint64_t pfn, WatchAccess a) const;
  std::vector<Watch> m_watches;
  Watcher* m_watcher = nullptr;
  bool m_watch_muted = false;
  void* m_cpu_cache = nullptr;
  void (*m_cpu_cache_release)(void*) = nullptr;
};

}  // namespace pvsim
