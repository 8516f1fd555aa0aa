// Guest RAM costs only the pages the guest touches (README.md "Start-up and scale"): a 64 GiB guest that
// writes 1 MiB must cost the host about 1 MiB, not GiB. GuestMemory reserves RAM and its
// per-page side arrays with MAP_NORESERVE; this checks the whole platform keeps it so
// (no RAM-sized allocation anywhere: vCPU, loader, scheduler, tracer).
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>

#include "tests/platform/vm_helpers.h"
#include "tools/platform/platform.h"

using namespace pvsim;
using test::FlatScenario;

namespace {

constexpr uint64_t kMiB = 1024 * 1024;
constexpr uint32_t kTouchBase = 0x200000;  // 2 MiB: above the image, inside the boot identity map
constexpr uint32_t kTouchPages = 256;      // 1 MiB

// Writes one byte to each of kTouchPages pages from kTouchBase, then exits (port 0xf4):
//   mov edi, kTouchBase ; mov ecx, kTouchPages
//   1: mov byte [rdi], 1 ; add rdi, 0x1000 ; dec ecx ; jnz 1b
//   xor eax, eax ; out 0xf4, al ; hlt
std::vector<uint8_t> touch_program() {
  auto le32 = [](uint32_t v) {
    return std::vector<uint8_t>{uint8_t(v), uint8_t(v >> 8), uint8_t(v >> 16), uint8_t(v >> 24)};
  };
  std::vector<uint8_t> code = {0xbf};
  for (uint8_t b : le32(kTouchBase)) code.push_back(b);
  code.push_back(0xb9);
  for (uint8_t b : le32(kTouchPages)) code.push_back(b);
  const std::vector<uint8_t> loop = {0xc6, 0x07, 0x01,                          // mov byte [rdi], 1
                                     0x48, 0x81, 0xc7, 0x00, 0x10, 0x00, 0x00,  // add rdi, 0x1000
                                     0xff, 0xc9,                                // dec ecx
                                     0x75, 0xf2};                               // jnz -14
  code.insert(code.end(), loop.begin(), loop.end());
  for (uint8_t b : {0x31, 0xc0, 0xe6, 0xf4, 0xf4}) code.push_back(b);  // xor eax,eax; out 0xf4,al; hlt
  return code;
}

// This process's anonymous resident memory: /proc/self/statm's resident minus shared
// (file-backed) pages, in pages. The file-backed part is the program's own code, which a
// first run faults in as it executes handlers for the first time: shared page cache, not
// memory the guest costs.
uint64_t rss_bytes() {
  std::ifstream f("/proc/self/statm");
  uint64_t size = 0, resident = 0, shared = 0;
  f >> size >> resident >> shared;
  return (resident - shared) * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

struct Measured {
  uint64_t guest_resident = 0;  // GuestMemory::resident_bytes()
  uint64_t side_resident = 0;   // GuestMemory::side_resident_bytes()
  uint64_t build_growth = 0;    // process RSS: building the Platform (RAM reserved, vCPUs, devices)
  uint64_t run_growth = 0;      // process RSS: running the guest
  uint64_t touched_pages = 0;   // EPT first touches the platform saw
};

Measured run_touch(uint64_t ram_mib) {
  FlatScenario f(touch_program());
  f.s.machine.ram_mib = ram_mib;
  Measured m;
  const uint64_t before = rss_bytes();
  Platform p(f.s);
  const uint64_t built = rss_bytes();
  const RunReport r = p.run();
  m.build_growth = built - before;
  m.run_growth = rss_bytes() - built;  // before the mincore() scans below allocate
  INFO(r.stop_detail);
  REQUIRE(r.stop == RunStop::Exit);
  REQUIRE(r.exit_status == uint8_t{1});
  REQUIRE(r.instructions == 2 + 4 * kTouchPages + 2);
  m.guest_resident = p.memory().resident_bytes();
  m.side_resident = p.memory().side_resident_bytes();
  for (uint64_t pfn = 0; pfn < p.memory().page_count(); ++pfn)
    if (p.memory().ept_touched(pfn)) ++m.touched_pages;
  return m;
}

}  // namespace

// Process memory the run may add beyond the guest's own pages: the trace and the vCPU's
// TLB and decoded-block pages it touches (lazily backed mmaps). Under AddressSanitizer the
// runtime's shadow pages and allocator quarantine count in RSS too.
#if defined(__SANITIZE_ADDRESS__)
constexpr uint64_t kRunSlack = 2 * 1024 * 1024;
#else
constexpr uint64_t kRunSlack = 512 * 1024;
#endif

TEST_CASE("a 64 GiB guest that touches 1 MiB costs about 1 MiB of host memory", "[vm][memory]") {
  const Measured big = run_touch(64 * 1024);
  INFO("64 GiB guest: RSS +" << big.build_growth << " building, +" << big.run_growth << " running; guest RAM resident "
                             << big.guest_resident << ", side arrays " << big.side_resident);
  // Guest RAM: the pages the guest wrote, its code page and the boot structures the
  // platform wrote (GDT+TSS page, PML4, PDPT, 4 page directories: scenarios/guest/boot.md §2).
  const uint64_t boot_pages = 7, image_pages = 1;
  CHECK(big.guest_resident >= kTouchPages * 4096);
  CHECK(big.guest_resident <= (kTouchPages + boot_pages + image_pages) * 4096);
  // EPT: the guest touched its 256 pages, its code page, and the page tables it walked.
  CHECK(big.touched_pages >= kTouchPages + 1);
  CHECK(big.touched_pages <= kTouchPages + boot_pages + image_pages);
  // Side arrays for 64 GiB: 64 MiB of code generations + 2 MiB of EPT bitmap reserved;
  // resident only where a page was marked or looked up (a few host pages).
  CHECK(big.side_resident <= 64 * 1024);
  // The process while the guest runs: its 1 MiB, plus a little (kRunSlack).
  CHECK(big.run_growth <= big.guest_resident + kRunSlack);
  // Building the VM reserves 64 GiB + 66 MiB of address space but must not back it. What it
  // does back is per vCPU and device, not per GiB: 256 x2APIC MSR handlers, the LAPIC; the
  // vCPU's TLB (1.5 MiB) and the VM's decoded-block cache (~7 MiB) are NORESERVE mmaps
  // (core/cpu/core.cpp), backed only where used, also when an earlier VM freed its own.
  CHECK(big.build_growth <= 4 * kMiB);

  // The RAM size itself costs nothing: a 16 MiB guest running the same program has
  // exactly the same pages resident and touched.
  const Measured small = run_touch(16);
  CHECK(small.guest_resident == big.guest_resident);
  CHECK(small.touched_pages == big.touched_pages);
  CHECK(small.run_growth <= small.guest_resident + kRunSlack);
}
