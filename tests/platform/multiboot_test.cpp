// Multiboot v1 loading (scenarios/guest/boot.md §8, tools/platform/multiboot.h): the header
// search, the ELF32 loader and what it refuses, the MBI and memory map byte by byte, the
// firmware bytes, the BSP's entry state, the scenario keys and machine.x2apic. Images are
// small ELF32 files built here in memory.
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "core/vcpu.h"
#include "tests/platform/scenario_fixture.h"
#include "tools/platform/boot.h"
#include "tools/platform/cpuid_table.h"
#include "tools/platform/files.h"
#include "tools/platform/loader.h"
#include "tools/platform/multiboot.h"
#include "tools/platform/platform.h"

using namespace pvsim;
namespace mb = pvsim::multiboot;

namespace {

constexpr uint64_t kMiB = 1ull << 20;

void put32(std::vector<uint8_t>& b, size_t off, uint32_t v) {
  if (b.size() < off + 4) b.resize(off + 4);
  std::memcpy(&b[off], &v, 4);
}
void put16(std::vector<uint8_t>& b, size_t off, uint16_t v) {
  if (b.size() < off + 2) b.resize(off + 2);
  std::memcpy(&b[off], &v, 2);
}

// A small ELF32 i386 executable with a Multiboot header at a chosen file offset.
struct Elf32 {
  struct Seg {
    uint32_t type = 1;  // PT_LOAD
    uint32_t paddr = 0x100000, vaddr = 0x100000;
    std::vector<uint8_t> data;
    uint32_t memsz = 0;  // 0: data.size()
  };
  std::vector<Seg> segs{Seg{1, 0x100000, 0x100000, {0xfa, 0xf4, 0xeb, 0xfd}, 0}};
  uint32_t entry = 0x100000;
  std::optional<uint32_t> header_at = 0x80;  // nullopt: no header
  uint32_t header_flags = 0;
  uint32_t checksum_delta = 0;  // added to the correct checksum
  uint8_t elf_class = 1;
  uint16_t machine = 3;
  uint16_t type = 2;
  bool symbols = false;  // a .symtab with "start" (FUNC, at entry) and "table" (OBJECT)

  static constexpr uint32_t kDataOff = 0x2400;  // segment data: past every header offset tested

  std::vector<uint8_t> build() const {
    std::vector<uint8_t> b(kDataOff, 0);
    std::memcpy(b.data(), "\x7f" "ELF", 4);
    b[4] = elf_class;
    b[5] = 1;  // little-endian
    b[6] = 1;  // EV_CURRENT
    put16(b, 16, type);
    put16(b, 18, machine);
    put32(b, 20, 1);
    put32(b, 24, entry);
    put32(b, 28, 52);  // e_phoff
    put16(b, 40, 52);  // e_ehsize
    put16(b, 42, 32);  // e_phentsize
    put16(b, 44, static_cast<uint16_t>(segs.size()));
    uint32_t off = kDataOff;
    for (size_t i = 0; i < segs.size(); ++i) {
      const Seg& s = segs[i];
      const size_t h = 52 + 32 * i;
      put32(b, h, s.type);
      put32(b, h + 4, off);
      put32(b, h + 8, s.vaddr);
      put32(b, h + 12, s.paddr);
      put32(b, h + 16, static_cast<uint32_t>(s.data.size()));
      put32(b, h + 20, s.memsz ? s.memsz : static_cast<uint32_t>(s.data.size()));
      put32(b, h + 24, 7);
      put32(b, h + 28, 0x1000);
      b.resize(off);
      b.insert(b.end(), s.data.begin(), s.data.end());
      off = static_cast<uint32_t>(b.size());
    }
    if (header_at) {
      put32(b, *header_at, mb::kHeaderMagic);
      put32(b, *header_at + 4, header_flags);
      put32(b, *header_at + 8, 0u - mb::kHeaderMagic - header_flags + checksum_delta);
    }
    if (symbols) add_symbols(b);
    return b;
  }

  // Sections: null, .symtab (link 2), .strtab.
  void add_symbols(std::vector<uint8_t>& b) const {
    const std::string strtab = std::string("\0start\0table\0", 13);
    const uint32_t str_off = static_cast<uint32_t>(b.size());
    b.insert(b.end(), strtab.begin(), strtab.end());
    while (b.size() % 4) b.push_back(0);
    const uint32_t sym_off = static_cast<uint32_t>(b.size());
    std::vector<uint8_t> syms(48, 0);  // null, start, table
    put32(syms, 16, 1);
    put32(syms, 20, entry);
    put32(syms, 24, 4);
    syms[28] = 0x12;  // GLOBAL FUNC
    put32(syms, 32, 7);
    put32(syms, 36, entry + 0x100);
    put32(syms, 40, 8);
    syms[44] = 0x11;  // GLOBAL OBJECT
    b.insert(b.end(), syms.begin(), syms.end());
    const uint32_t sh_off = static_cast<uint32_t>(b.size());
    std::vector<uint8_t> sh(3 * 40, 0);
    put32(sh, 40 + 4, 2);  // SHT_SYMTAB
    put32(sh, 40 + 16, sym_off);
    put32(sh, 40 + 20, 48);
    put32(sh, 40 + 24, 2);
    put32(sh, 40 + 36, 16);
    put32(sh, 80 + 4, 3);  // SHT_STRTAB
    put32(sh, 80 + 16, str_off);
    put32(sh, 80 + 20, static_cast<uint32_t>(strtab.size()));
    b.insert(b.end(), sh.begin(), sh.end());
    put32(b, 32, sh_off);
    put16(b, 46, 40);
    put16(b, 48, 3);
  }
};

LoadedImage load(GuestMemory& m, const std::vector<uint8_t>& img, std::string_view cmdline = "",
                 std::vector<MultibootModuleInput> mods = {}, MultibootLayout* lay = nullptr) {
  MultibootInput in;
  in.image = img;
  in.name = "k.elf";
  in.cmdline = cmdline;
  in.modules = std::move(mods);
  return load_multiboot(m, in, lay);
}

std::string load_error(const std::vector<uint8_t>& img, uint64_t ram = 16 * kMiB) {
  GuestMemory m(ram);
  try {
    load(m, img);
  } catch (const LoadError& e) {
    return e.what();
  }
  return "(no error)";
}

uint32_t r32(GuestMemory& m, uint64_t gpa) {
  uint32_t v = 0;
  REQUIRE(m.read_obj(Gpa(gpa), v));
  return v;
}
uint64_t r64(GuestMemory& m, uint64_t gpa) {
  uint64_t v = 0;
  REQUIRE(m.read_obj(Gpa(gpa), v));
  return v;
}
std::vector<uint8_t> bytes(GuestMemory& m, uint64_t gpa, size_t n) {
  std::vector<uint8_t> v(n);
  REQUIRE(m.read(Gpa(gpa), v.data(), n));
  return v;
}
std::string cstr(GuestMemory& m, uint64_t gpa) {
  std::string s;
  for (uint64_t a = gpa;; ++a) {
    uint8_t c = 0;
    REQUIRE(m.read_obj(Gpa(a), c));
    if (!c) return s;
    s.push_back(static_cast<char>(c));
    REQUIRE(s.size() < 10000);
  }
}

std::span<const uint8_t> as_span(const std::string& s) {
  return std::span(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

}  // namespace

TEST_CASE("multiboot: the header is found 4-byte aligned in the first 8192 bytes", "[multiboot]") {
  for (uint32_t at : {0x54u, 0x80u, 0x1000u, 0x1ff4u}) {
    INFO("header at 0x" << std::hex << at);
    Elf32 e;
    e.header_at = at;
    GuestMemory m(16 * kMiB);
    CHECK(load(m, e.build()).entry == 0x100000);
  }
  // 0x1ff8 + 12 passes byte 8192; 0x2000 starts there; 0x82 is not aligned.
  for (uint32_t at : {0x1ff8u, 0x2000u, 0x82u}) {
    INFO("header at 0x" << std::hex << at);
    Elf32 e;
    e.header_at = at;
    CHECK(load_error(e.build()) ==
          "k.elf: no Multiboot header (magic 0x1BADB002, 4-byte aligned) in the first 8192 bytes: not a Multiboot "
          "kernel");
  }
}

TEST_CASE("multiboot: header problems are one line each", "[multiboot]") {
  Elf32 e;
  e.header_at.reset();
  CHECK(load_error(e.build()).find("no Multiboot header") != std::string::npos);

  e = Elf32{};
  e.checksum_delta = 1;
  CHECK(load_error(e.build()) ==
        "k.elf: the Multiboot header at file offset 0x80 has a bad checksum (magic + flags + checksum = 0x1, must be "
        "0 modulo 2^32)");
  // A bad header earlier does not hide a good one later.
  {
    std::vector<uint8_t> img = Elf32{}.build();
    put32(img, 0x60, mb::kHeaderMagic);
    put32(img, 0x64, 0);
    put32(img, 0x68, 5);
    GuestMemory m(16 * kMiB);
    CHECK(load(m, img).entry == 0x100000);
  }

  e = Elf32{};
  e.header_flags = 1u << 16;
  CHECK(load_error(e.build()) == "k.elf: multiboot flag bit 16 (a.out kludge) is not supported: link the kernel as ELF");
  e.header_flags = 1u << 2;
  CHECK(load_error(e.build()) ==
        "k.elf: multiboot flag bit 2 (video mode information) is not supported: pvsim has no framebuffer");
  e.header_flags = 0x3 | (1u << 9);
  CHECK(load_error(e.build()) ==
        "k.elf: multiboot flag bit 9 is a requirement the Multiboot 0.6.96 specification does not define, so pvsim "
        "cannot meet it");
  // Bits 0 and 1 are honoured; bits 17-31 mean nothing and are ignored.
  for (uint32_t flags : {0x1u, 0x2u, 0x3u, 0x3u | (1u << 20)}) {
    e.header_flags = flags;
    CHECK(load_error(e.build()) == "(no error)");
  }
}

TEST_CASE("multiboot: ELF problems are one line each", "[multiboot]") {
  Elf32 e;
  e.elf_class = 2;
  CHECK(load_error(e.build()).find("k.elf: not a 32-bit ELF file (EI_CLASS is not ELFCLASS32)") == 0);
  e = Elf32{};
  e.machine = 62;
  CHECK(load_error(e.build()) == "k.elf: ELF machine 62 is not i386 (EM_386 = 3)");
  e = Elf32{};
  e.type = 3;
  CHECK(load_error(e.build()) == "k.elf: ELF type 3 is not ET_EXEC (link the kernel statically, -no-pie)");
  {
    std::vector<uint8_t> img = Elf32{}.build();
    img[0] = 'X';
    CHECK(load_error(img) ==
          "k.elf: not an ELF file (bad magic): pvsim loads a Multiboot kernel from its ELF32 program headers");
  }
  {
    // Cut inside the segment's bytes.
    std::vector<uint8_t> img = Elf32{}.build();
    img.resize(Elf32::kDataOff + 2);
    CHECK(load_error(img) ==
          "k.elf: truncated file: segment 0 (offset 0x2400, 0x4 bytes) extends past its end (0x2402 bytes)");
  }
  {
    // A file whose Multiboot header is its whole content.
    std::vector<uint8_t> img(12);
    put32(img, 0, mb::kHeaderMagic);
    put32(img, 8, 0u - mb::kHeaderMagic);
    CHECK(load_error(img) == "k.elf: truncated ELF header (a Multiboot kernel must be an ELF32 file here)");
  }
  e = Elf32{};
  e.segs[0].paddr = e.segs[0].vaddr = 0xfff000;
  e.entry = 0xfff000;
  e.segs[0].memsz = 0x2000;
  CHECK(load_error(e.build()) == "k.elf: segment 0 at GPA 0xfff000-0x1000fff lies outside guest RAM (0x1000000 bytes)");
  e = Elf32{};
  e.segs[0].paddr = e.segs[0].vaddr = e.entry = 0xffff0;
  e.segs[0].memsz = 0x20;
  CHECK(load_error(e.build()) == "k.elf: segment 0 at GPA 0xffff0-0x10000f overlaps the firmware area (0xf0000-0xfffff)");
  e = Elf32{};
  e.segs[0].paddr = e.segs[0].vaddr = e.entry = 0x3fe;
  CHECK(load_error(e.build()) ==
        "k.elf: segment 0 at GPA 0x3fe-0x401 overlaps the real-mode interrupt vector table (0x0-0x3ff)");
  e = Elf32{};
  e.entry = 0x200000;
  CHECK(load_error(e.build()) == "k.elf: entry point 0x200000 is not inside any PT_LOAD segment");
  e = Elf32{};
  e.segs[0].memsz = 2;
  CHECK(load_error(e.build()) == "k.elf: segment 0: p_memsz 0x2 is smaller than p_filesz 0x4");
  e = Elf32{};
  e.segs.push_back(Elf32::Seg{1, 0x100002, 0x100002, {1, 2}, 0});
  CHECK(load_error(e.build()) == "k.elf: PT_LOAD segments overlap at GPA 0x100002");
  e = Elf32{};
  e.segs[0].type = 4;  // PT_NOTE only
  CHECK(load_error(e.build()) == "k.elf: no PT_LOAD segments");

  // Nothing was written before the error: a failed load leaves RAM (IVT, MBI) untouched.
  GuestMemory m(16 * kMiB);
  e = Elf32{};
  e.entry = 0x200000;
  CHECK_THROWS_AS(load(m, e.build()), LoadError);
  CHECK(r32(m, 0) == 0);
  CHECK(r32(m, mb::kMbiAddr) == 0);
  CHECK(r32(m, 0x100000) == 0);
}

TEST_CASE("multiboot: PT_LOAD segments are copied and .bss zeroed, other headers ignored", "[multiboot]") {
  Elf32 e;
  e.segs.push_back(Elf32::Seg{1, 0x200000, 0x200000, {1, 2, 3, 4, 5}, 0x3000});
  e.segs.push_back(Elf32::Seg{4, 0x300000, 0x300000, {9, 9, 9, 9}, 0});  // PT_NOTE: not loaded
  e.segs.push_back(Elf32::Seg{0x6474e551, 0, 0, {}, 0});                   // PT_GNU_STACK
  GuestMemory m(16 * kMiB);
  const std::vector<uint8_t> junk(0x3000, 0xcc);
  m.write(Gpa(0x200000), junk.data(), junk.size());
  MultibootLayout lay;
  const LoadedImage img = load(m, e.build(), "", {}, &lay);
  CHECK(img.entry == 0x100000);
  CHECK(bytes(m, 0x100000, 4) == std::vector<uint8_t>{0xfa, 0xf4, 0xeb, 0xfd});
  CHECK(bytes(m, 0x200000, 6) == std::vector<uint8_t>{1, 2, 3, 4, 5, 0});
  for (uint64_t a = 0x200005; a < 0x203000; a += 0x1ff) REQUIRE(bytes(m, a, 1)[0] == 0);
  CHECK(r32(m, 0x300000) == 0);
  CHECK(lay.image_end == 0x203000);
  CHECK(lay.mods_addr == 0x203000);
}

TEST_CASE("multiboot: the entry point is physical (e_entry moved by its segment's p_paddr - p_vaddr)",
          "[multiboot]") {
  Elf32 e;
  e.segs[0].vaddr = 0xc0100000;
  e.entry = 0xc0100002;
  GuestMemory m(16 * kMiB);
  CHECK(load(m, e.build()).entry == 0x100002);
}

TEST_CASE("multiboot: symbols come from the ELF32 symbol table", "[multiboot]") {
  Elf32 e;
  e.symbols = true;
  GuestMemory m(16 * kMiB);
  const LoadedImage img = load(m, e.build());
  REQUIRE(img.symbols.size() == 2);
  REQUIRE(img.find("start"));
  CHECK(img.find("start")->addr == 0x100000);
  CHECK(img.find("start")->size == 4);
  CHECK(img.find("table")->addr == 0x100100);
  CHECK(img.symbolize(0x100002) == "<start+0x2>");
}

TEST_CASE("multiboot: MBI fields and the memory map, 128 MiB", "[multiboot]") {
  GuestMemory m(128 * kMiB);
  MultibootLayout lay;
  load(m, Elf32{}.build(), "k.elf arg1 arg2", {}, &lay);
  const uint64_t mbi = mb::kMbiAddr;
  CHECK(r32(m, mbi + 0) == 0x24f);
  CHECK(r32(m, mbi + 4) == 639);
  CHECK(r32(m, mbi + 8) == 129920);  // QEMU's value for 128 MiB
  CHECK(r32(m, mbi + 12) == 0x8000ffff);
  CHECK(cstr(m, r32(m, mbi + 16)) == "k.elf arg1 arg2");
  CHECK(r32(m, mbi + 20) == 0);        // mods_count
  CHECK(r32(m, mbi + 24) == 0x101000);  // mods_addr: page-aligned end of the image
  for (uint64_t o = 28; o < 44; o += 4) CHECK(r32(m, mbi + o) == 0);  // syms
  CHECK(r32(m, mbi + 44) == 6 * 24);   // mmap_length
  CHECK(r32(m, mbi + 48) == 0x9000);   // mmap_addr
  CHECK(r32(m, mbi + 52) == 0);        // drives
  CHECK(r32(m, mbi + 56) == 0);
  CHECK(r32(m, mbi + 60) == 0);        // config_table
  CHECK(cstr(m, r32(m, mbi + 64)) == "pvsim");
  for (uint64_t o = 68; o < 0x58; o += 4) CHECK(r32(m, mbi + o) == 0);  // APM, VBE
  // The strings follow the (empty) module list: command line, then the loader name.
  CHECK(r32(m, mbi + 16) == 0x101000);
  CHECK(r32(m, mbi + 64) == 0x101000 + 16);
  CHECK(lay.end == 0x101000 + 16 + 6);

  struct E {
    uint64_t base, len;
    uint32_t type;
  };
  const E want[] = {{0, 0x9fc00, 1},          {0x9fc00, 0x400, 2},      {0xf0000, 0x10000, 2},
                    {0x100000, 0x7ee0000, 1}, {0x7fe0000, 0x20000, 2}, {0xfffc0000, 0x40000, 2}};
  for (size_t i = 0; i < 6; ++i) {
    INFO("mmap entry " << i);
    const uint64_t a = 0x9000 + 24 * i;
    CHECK(r32(m, a) == 20);
    CHECK(r64(m, a + 4) == want[i].base);
    CHECK(r64(m, a + 12) == want[i].len);
    CHECK(r32(m, a + 20) == want[i].type);
  }
  CHECK(r32(m, 0x9000 + 6 * 24) == 0);
}

TEST_CASE("multiboot: mem_upper and the memory map follow RAM, 2 GiB", "[multiboot]") {
  GuestMemory m(2048 * kMiB);
  load(m, Elf32{}.build());
  CHECK(r32(m, mb::kMbiAddr + 8) == (0x80000000u - 0x100000 - 0x20000) / 1024);  // 2096000
  CHECK(r32(m, mb::kMbiAddr + 8) == 2096000);
  CHECK(r64(m, 0x9000 + 3 * 24 + 4) == 0x100000);
  CHECK(r64(m, 0x9000 + 3 * 24 + 12) == 0x80000000ull - 0x120000);
  CHECK(r64(m, 0x9000 + 4 * 24 + 4) == 0x80000000ull - 0x20000);
  CHECK(r64(m, 0x9000 + 4 * 24 + 12) == 0x20000);
  CHECK(cstr(m, r32(m, mb::kMbiAddr + 16)).empty());  // no command line: an empty string
  CHECK(multiboot_mem_upper(128 * kMiB) == 129920);
}

TEST_CASE("multiboot: modules, their list, strings and data", "[multiboot]") {
  const std::string one = "NR_CPUS=2\nBOOTLOADER=1\n";
  const std::string two(0x1801, 'x');
  SECTION("one module") {
    GuestMemory m(16 * kMiB);
    MultibootLayout lay;
    load(m, Elf32{}.build(), "kernel", {{"env", as_span(one)}}, &lay);
    CHECK(r32(m, mb::kMbiAddr + 20) == 1);
    const uint32_t list = r32(m, mb::kMbiAddr + 24);
    CHECK(list == 0x101000);
    CHECK(r32(m, list) == 0x102000);  // page-aligned, after list and strings
    CHECK(r32(m, list + 4) == 0x102000 + one.size());  // end = start + size exactly
    CHECK(cstr(m, r32(m, list + 8)) == "env");
    CHECK(r32(m, list + 8) == list + 16);
    CHECK(r32(m, list + 12) == 0);
    CHECK(cstr(m, r32(m, mb::kMbiAddr + 16)) == "kernel");
    CHECK(r32(m, mb::kMbiAddr + 16) == list + 16 + 4);
    CHECK(cstr(m, r32(m, mb::kMbiAddr + 64)) == "pvsim");
    const std::vector<uint8_t> got = bytes(m, 0x102000, one.size() + 1);
    CHECK(std::string(got.begin(), got.end() - 1) == one);
    CHECK(got.back() == 0);
    CHECK(lay.end == 0x102000 + one.size());
  }
  SECTION("two modules") {
    GuestMemory m(16 * kMiB);
    MultibootLayout lay;
    load(m, Elf32{}.build(), "", {{"first arg", as_span(one)}, {"", as_span(two)}}, &lay);
    CHECK(r32(m, mb::kMbiAddr + 20) == 2);
    const uint32_t list = r32(m, mb::kMbiAddr + 24);
    CHECK(list == 0x101000);
    CHECK(r32(m, list + 0) == 0x102000);
    CHECK(r32(m, list + 4) == 0x102000 + one.size());
    CHECK(cstr(m, r32(m, list + 8)) == "first arg");
    CHECK(r32(m, list + 16) == 0x103000);  // the next page after module 0
    CHECK(r32(m, list + 20) == 0x103000 + two.size());
    CHECK(r32(m, list + 24) == list + 32 + 10);  // after "first arg\0"
    CHECK(cstr(m, r32(m, list + 24)).empty());
    CHECK(r32(m, list + 28) == 0);
    CHECK(lay.module_start == std::vector<uint32_t>{0x102000, 0x103000});
    const std::vector<uint8_t> got = bytes(m, 0x103000, two.size());
    CHECK(std::string(got.begin(), got.end()) == two);
    CHECK(bytes(m, 0x103000 + two.size(), 1)[0] == 0);
  }
  SECTION("modules that do not fit name themselves") {
    GuestMemory m(2 * kMiB);
    Elf32 e;
    e.segs[0].memsz = 0xf0000;  // the image ends at 0x1f0000
    const std::string big(0x10000, 'b');
    MultibootInput in;
    const std::vector<uint8_t> img = e.build();
    in.image = img;
    in.name = "k.elf";
    in.modules = {{"a", as_span(one)}, {"b", as_span(big)}};
    try {
      load_multiboot(m, in);
      FAIL("no error");
    } catch (const LoadError& err) {
      CHECK(std::string(err.what()) ==
            "k.elf: module 1 (0x10000 bytes) does not fit in guest RAM: it would start at GPA 0x1f2000, after the "
            "kernel (which ends at 0x1f0000) and the boot information, and RAM ends at 0x200000");
      CHECK(err.pointer() == "/guest/modules/1");
    }
    CHECK(r32(m, 0) == 0);  // nothing written
  }
  SECTION("a small kernel low in memory cannot put its modules over the MBI") {
    GuestMemory m(16 * kMiB);
    Elf32 e;
    e.segs[0].paddr = e.segs[0].vaddr = e.entry = 0x1000;
    const std::string big(0x9000, 'b');
    MultibootInput in;
    const std::vector<uint8_t> img = e.build();
    in.image = img;
    in.name = "k.elf";
    in.modules = {{"m", as_span(big)}};
    CHECK_THROWS_WITH(load_multiboot(m, in),
                      "k.elf: the boot information and modules after the kernel (GPA 0x2000-0xbfff) overlap the memory "
                      "map and boot information (0x9000-0x9557)");
  }
}

TEST_CASE("multiboot: a kernel linked over the MBI replaces it, as under QEMU", "[multiboot]") {
  // kvm-unit-tests' realmode.flat loads at 0x8000-0xda30; QEMU writes the MBI first and
  // the kernel over it.
  Elf32 e;
  e.segs[0].paddr = e.segs[0].vaddr = e.entry = 0x8000;
  e.segs[0].data.assign(0x2000, 0x5a);
  GuestMemory m(16 * kMiB);
  MultibootLayout lay;
  CHECK(load(m, e.build(), "x", {}, &lay).entry == 0x8000);
  CHECK(r32(m, mb::kMbiAddr) == 0x5a5a5a5a);
  CHECK(r32(m, mb::kMmapAddr) == 0x5a5a5a5a);
  CHECK(lay.mods_addr == 0xa000);
  CHECK(cstr(m, 0xa000) == "x");
  CHECK(r32(m, 0x20) == 0xf000fea5);  // the IVT is still there
}

TEST_CASE("multiboot: firmware IVT, GDT and interrupt stubs", "[multiboot]") {
  GuestMemory m(16 * kMiB);
  load(m, Elf32{}.build());
  for (unsigned v = 0; v < 256; ++v) {
    INFO("vector 0x" << std::hex << v);
    const uint32_t want = v >= 8 && v <= 0xf     ? 0xf000fea5u
                          : v >= 0x70 && v <= 0x77 ? 0xf000ff40u
                                                   : 0xf000ff53u;
    REQUIRE(r32(m, 4 * v) == want);
  }
  CHECK(r64(m, 0xf0000) == 0);
  CHECK(r64(m, 0xf0008) == 0x00cf9b000000ffffull);
  CHECK(r64(m, 0xf0010) == 0x00cf93000000ffffull);
  CHECK(bytes(m, 0xfff53, 1) == std::vector<uint8_t>{0xcf});
  CHECK(bytes(m, 0xffea5, 7) == std::vector<uint8_t>{0x50, 0xb0, 0x20, 0xe6, 0x20, 0x58, 0xcf});
  CHECK(bytes(m, 0xfff40, 9) == std::vector<uint8_t>{0x50, 0xb0, 0x20, 0xe6, 0xa0, 0xe6, 0x20, 0x58, 0xcf});
  // No direct-boot structures: the GDT at 0x1000 and the page tables at 0x10000 are absent.
  CHECK(r64(m, 0x1008) == 0);
  CHECK(r64(m, 0x10000) == 0);
}

// ---- scenarios and the whole VM ----------------------------------------------------------

namespace {

struct MbDir : test::ScenarioDir {
  MbDir() : test::ScenarioDir("mb") {
    const std::vector<uint8_t> img = Elf32{}.build();
    std::ofstream(path / "k.elf", std::ios::binary)
        .write(reinterpret_cast<const char*>(img.data()), static_cast<std::streamsize>(img.size()));
    std::ofstream(path / "env", std::ios::binary) << "NR_CPUS=2\n";
  }
  std::string scenario(const std::string& guest_extra, const std::string& machine = "") const {
    return "{\"description\": \"d\", " + (machine.empty() ? std::string() : "\"machine\": {" + machine + "}, ") +
           "\"guest\": {\"image\": \"k.elf\", \"boot\": \"multiboot\"" + guest_extra + "}}";
  }
};

}  // namespace

TEST_CASE("multiboot: scenario keys and defaults", "[multiboot]") {
  MbDir d;
  const Scenario s = parse_scenario(
      d.scenario(R"(, "cmdline": "k.elf a b", "modules": [{"path": "env"}, {"path": "env", "string": "e2"}])",
                 R"("vcpus": 2)"),
      d.file());
  CHECK(s.guest.boot == BootProtocol::Multiboot);
  CHECK(s.guest.cmdline == "k.elf a b");
  REQUIRE(s.guest.modules.size() == 2);
  CHECK(s.guest.modules[0].string == "env");  // defaults to the path as written
  CHECK(s.guest.modules[0].path == d.path / "env");
  CHECK(s.guest.modules[1].string == "e2");
  CHECK(s.machine.start == StartMode::Bsp);  // the Multiboot default
  CHECK(s.machine.x2apic);
  const Scenario direct = parse_scenario(test::with(""), d.file());
  CHECK(direct.guest.boot == BootProtocol::Direct);
  CHECK(direct.machine.start == StartMode::All);
  // An absolute module path stays as written.
  const std::string abs = (d.path / "env").string();
  const Scenario a = parse_scenario(d.scenario(R"(, "modules": [{"path": ")" + abs + R"("}])"), d.file());
  CHECK(a.guest.modules[0].path == d.path / "env");
  CHECK(parse_scenario(d.scenario("", R"("start": "bsp")"), d.file()).machine.start == StartMode::Bsp);
  CHECK_FALSE(parse_scenario(test::with(R"("machine": {"x2apic": false})"), d.file()).machine.x2apic);
}

TEST_CASE("multiboot: scenario errors", "[multiboot]") {
  MbDir d;
  const std::string f = d.file().string();
  const auto err = [&](const std::string& text) { return test::parse_error(d, text); };
  CHECK(err(R"({"description": "d", "guest": {"image": "k.elf", "cmdline": "x"}})") ==
        f + ": /guest/cmdline: only meaningful with \"boot\": \"multiboot\"");
  CHECK(err(R"({"description": "d", "guest": {"image": "k.elf", "boot": "direct", "modules": []}})") ==
        f + ": /guest/modules: only meaningful with \"boot\": \"multiboot\"");
  CHECK(err(d.scenario("", R"("start": "all")")) ==
        f + ": /machine/start: \"all\" cannot be used with \"boot\": \"multiboot\": a Multiboot kernel starts with "
            "only vCPU 0 running and wakes the others with INIT and SIPI (omit it, or write \"bsp\")");
  CHECK(err(d.scenario(R"(, "modules": [{"path": "nope"}])")) ==
        f + ": /guest/modules/0/path: module file not found: " + (d.path / "nope").string());
  CHECK(err(d.scenario(R"(, "modules": [{"path": "."}])")).find(": /guest/modules/0/path: ") != std::string::npos);
  CHECK(err(d.scenario(R"(, "modules": [{"string": "x"}])")) ==
        f + ": /guest/modules/0: missing required key \"path\"");
  CHECK(err(d.scenario(R"(, "modules": [{"path": "env", "size": 1}])")) ==
        f + ": /guest/modules/0/size: unknown key (allowed here: path, string)");
  CHECK(err(d.scenario(R"(, "modules": {"path": "env"})"))
            .find(f + ": /guest/modules: must be an array of {\"path\": ..., \"string\": ...}, got ") == 0);
  CHECK(err(R"({"description": "d", "guest": {"image": "k.elf", "boot": "grub"}})") ==
        f + ": /guest/boot: must be \"direct\" or \"multiboot\", got \"grub\"");
  CHECK(err(test::with(R"("machine": {"x2apic": 1})")) == f + ": /machine/x2apic: must be true or false, got 1");
  CHECK(err(d.scenario(R"(, "cmdline": "a\u0000b")")) ==
        f + ": /guest/cmdline: contains a NUL character, which would end the string the kernel reads early");
  CHECK(err(d.scenario(R"(, "cmdline": ")" + std::string(4096, 'a') + "\"")) ==
        f + ": /guest/cmdline: is 4096 bytes long; at most 4095 are allowed");
  CHECK(err(d.scenario(R"(, "cmdline": 5)")) == f + ": /guest/cmdline: must be a string, got 5");
  CHECK(err(d.scenario(R"(, "format": "flat")")).find(f + ": /guest/format: \"flat\" cannot be used with") == 0);
  CHECK(err(d.scenario("", R"("ram_mib": 3585)")).find(f + ": /machine/ram_mib: 3585 MiB is more than 3584 MiB") ==
        0);
  CHECK(err(d.scenario("", R"("ram_mib": 3584)")) == "(no error)");
  {
    // A module larger than 64 MiB (sparse: costs no disk).
    std::ofstream(d.path / "big", std::ios::binary).close();
    std::filesystem::resize_file(d.path / "big", (64ull << 20) + 1);
    CHECK(err(d.scenario(R"(, "modules": [{"path": "big"}])")) ==
          f + ": /guest/modules/0/path: " + (d.path / "big").string() + " is 67108865 bytes; a module may be at most 64 MiB");
  }
}

TEST_CASE("multiboot: load_guest names the scenario key of a problem", "[multiboot]") {
  MbDir d;
  const std::string f = d.file().string();
  Scenario s = parse_scenario(d.scenario(R"(, "modules": [{"path": "env"}])", R"("ram_mib": 2)"), d.file());
  GuestMemory m(s.machine.ram_bytes());
  std::filesystem::resize_file(d.path / "env", 2 * kMiB);  // grown after the scenario was read
  CHECK_THROWS_WITH(load_guest(m, s), Catch::StartsWith(f + ": /guest/modules/0: " + s.guest.image.string() +
                                                        ": module 0 (0x200000 bytes) does not fit in guest RAM"));
  std::filesystem::resize_file(d.path / "env", 70 * kMiB);
  CHECK_THROWS_WITH(load_guest(m, s), Catch::StartsWith(f + ": /guest/modules/0/path: "));
  std::filesystem::resize_file(d.path / "env", 10);
  std::ofstream(d.path / "k.elf", std::ios::binary) << "not an elf";
  CHECK_THROWS_WITH(load_guest(m, s), Catch::StartsWith(f + ": /guest/image: " + s.guest.image.string() +
                                                        ": no Multiboot header"));
}

TEST_CASE("multiboot: the BSP's entry state, the APs waiting for SIPI", "[multiboot][boot]") {
  MbDir d;
  const Scenario s = parse_scenario(d.scenario(R"(, "cmdline": "k.elf x")", R"("vcpus": 3, "ram_mib": 64)"), d.file());
  Platform p(s);
  Vcpu& v = p.vcpu(0);
  CHECK(v.rip() == 0x100000);
  CHECK(v.gpr(0) == 0x2BADB002);  // EAX
  CHECK(v.gpr(3) == 0x9500);      // EBX
  CHECK(v.gpr(4) == 0x6f08);      // ESP
  for (unsigned r : {1u, 2u, 5u, 6u, 7u, 8u, 9u, 10u, 11u, 12u, 13u, 14u, 15u}) CHECK(v.gpr(r) == 0);
  CHECK(v.rflags() == 0x2);
  CHECK(v.cr(0) == 0x11);
  CHECK(v.cr(2) == 0);
  CHECK(v.cr(3) == 0);
  CHECK(v.cr(4) == 0);
  CHECK(v.efer() == 0);
  CHECK(v.cpl() == 0);
  const SegmentCache cs = v.seg(SegReg::CS);
  CHECK(cs.selector == 0x08);
  CHECK(cs.base == 0);
  CHECK(cs.limit == 0xffffffff);
  CHECK(cs.attrs == 0xc09b);
  for (SegReg sr : {SegReg::SS, SegReg::DS, SegReg::ES, SegReg::FS, SegReg::GS}) {
    const SegmentCache ds = v.seg(sr);
    CHECK(ds.selector == 0x10);
    CHECK(ds.base == 0);
    CHECK(ds.limit == 0xffffffff);
    CHECK(ds.attrs == 0xc093);
  }
  CHECK(v.tr().selector == 0);
  CHECK(v.tr().base == 0);
  CHECK(v.tr().limit == 0xffff);
  CHECK(v.tr().attrs == 0x8b);
  CHECK(v.ldtr().selector == 0);
  CHECK(v.ldtr().limit == 0xffff);
  CHECK(v.ldtr().attrs == 0x82);
  CHECK(v.gdtr().base == 0xf0000);
  CHECK(v.gdtr().limit == 0x17);
  CHECK(v.idtr().base == 0);
  CHECK(v.idtr().limit == 0x3ff);
  uint64_t apic_base = 0;
  CHECK(v.msrs().read(v, 0x1b, apic_base) == MsrStatus::Ok);
  CHECK(apic_base == 0xfee00900);
  // The GDT the segment caches claim is really there, and the MBI EBX points at.
  CHECK(r64(p.memory(), 0xf0008) == 0x00cf9b000000ffffull);
  CHECK(cstr(p.memory(), r32(p.memory(), 0x9500 + 16)) == "k.elf x");
  CHECK(r32(p.memory(), 0x9500 + 8) == (64 * 1024 - 1024 - 128));
  CHECK(p.vcpu_state_name(0) == "runnable");
  for (unsigned i = 1; i < 3; ++i) {
    INFO("vCPU " << i);
    CHECK(p.vcpu_state_name(i) == "waiting for SIPI");
    uint64_t b = 0;
    CHECK(p.vcpu(i).msrs().read(p.vcpu(i), 0x1b, b) == MsrStatus::Ok);
    CHECK(b == 0xfee00800);
  }
}

TEST_CASE("multiboot: machine.x2apic false clears CPUID.1:ECX[21]", "[multiboot][cpuid]") {
  CHECK((CpuidTable(1, KvmCpuid{}).lookup(0, 1, 0).ecx >> 21 & 1) == 1);
  CHECK((CpuidTable(1, KvmCpuid{}, false, false).lookup(0, 1, 0).ecx >> 21 & 1) == 0);
  CHECK((CpuidTable(1, KvmCpuid{}, true, false).lookup(0, 1, 0).ecx >> 21 & 1) == 0);
  // Only that bit: the rest of leaf 1 ECX stays.
  CHECK((CpuidTable(1, KvmCpuid{}).lookup(0, 1, 0).ecx & ~(1u << 21)) ==
        CpuidTable(1, KvmCpuid{}, false, false).lookup(0, 1, 0).ecx);
  MbDir d;
  const Scenario s = parse_scenario(d.scenario("", R"("x2apic": false)"), d.file());
  Platform p(s);
  CHECK((p.cpuid(p.vcpu(0), 1, 0).ecx >> 21 & 1) == 0);
  const Scenario on = parse_scenario(d.scenario(""), d.file());
  Platform q(on);
  CHECK((q.cpuid(q.vcpu(0), 1, 0).ecx >> 21 & 1) == 1);
  // Without x2APIC in CPUID, IA32_APIC_BASE.EXTD is reserved (KVM's kvm_set_apic_base).
  Vcpu& vp = p.vcpu(0);
  Vcpu& vq = q.vcpu(0);
  CHECK(vp.msrs().write(vp, 0x1b, 0xfee00d00) == MsrStatus::Gp);
  CHECK(vq.msrs().write(vq, 0x1b, 0xfee00d00) == MsrStatus::Ok);
  uint64_t bp = 0, bq = 0;
  CHECK(vp.msrs().read(vp, 0x1b, bp) == MsrStatus::Ok);
  CHECK(vq.msrs().read(vq, 0x1b, bq) == MsrStatus::Ok);
  CHECK(bp == 0xfee00900);
  CHECK(bq == 0xfee00d00);
}

// Real kvm-unit-tests binaries, when the environment names a directory holding them
// (PVSIM_KUT_DIR/x86/*.flat): every one loads, and smptest.flat's header, entry and
// segments are where the research for the Multiboot work measured them; realmode.flat
// (linked at 0x8000, over the MBI) loads too.
TEST_CASE("multiboot: kvm-unit-tests images load (PVSIM_KUT_DIR)", "[multiboot]") {
  const char* dir = std::getenv("PVSIM_KUT_DIR");
  const std::filesystem::path x86 = dir ? std::filesystem::path(dir) / "x86" : std::filesystem::path();
  if (!dir || !std::filesystem::is_regular_file(x86 / "smptest.flat")) {
    WARN("PVSIM_KUT_DIR unset or without x86/smptest.flat: not loading kvm-unit-tests images");
    return;
  }
  std::vector<std::filesystem::path> flats;
  for (const auto& e : std::filesystem::directory_iterator(x86))
    if (e.path().extension() == ".flat") flats.push_back(e.path());
  std::sort(flats.begin(), flats.end());
  const std::string env = "NR_CPUS=1\n";
  for (const auto& f : flats) {
    INFO(f.string());
    const std::string img = read_regular_file(f, 64 << 20, "image");
    GuestMemory m(128 * kMiB);
    MultibootLayout lay;
    MultibootInput in;
    in.image = as_span(img);
    const std::string base = f.filename().string();  // in.name and in.cmdline are views
    in.name = base;
    in.cmdline = base;
    in.modules = {{"env", as_span(env)}};
    const LoadedImage li = load_multiboot(m, in, &lay);
    CHECK(lay.mods_addr % 0x1000 == 0);
    CHECK(r32(m, lay.mods_addr + 4) - r32(m, lay.mods_addr) == env.size());
    CHECK(li.find(f.filename() == "realmode.flat" ? "print_serial" : "main") != nullptr);
    if (f.filename() == "smptest.flat") {
      CHECK(li.entry == 0x4000bc);
      CHECK(r32(m, 0x4000b0) == mb::kHeaderMagic);
      CHECK(lay.image_end > 0x1000000);
      CHECK(cstr(m, r32(m, mb::kMbiAddr + 16)) == "smptest.flat");
    }
    if (f.filename() == "realmode.flat") {
      CHECK(li.entry == 0x8018);
      CHECK(lay.image_end == 0xda30);
      CHECK(lay.mods_addr == 0xe000);
    }
  }
}
