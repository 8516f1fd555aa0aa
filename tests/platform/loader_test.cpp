// Loader: hand-built ELF64 and flat images, good and bad.
#include <catch2/catch.hpp>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <cstring>
#include <vector>

#include "core/guest_memory.h"
#include "tools/platform/loader.h"

using namespace pvsim;

namespace {

struct Seg {
  uint64_t paddr;
  std::vector<uint8_t> data;
  uint64_t memsz;
};

template <class T>
void put(std::vector<uint8_t>& b, size_t off, T v) {
  if (b.size() < off + sizeof(T)) b.resize(off + sizeof(T));
  std::memcpy(b.data() + off, &v, sizeof(T));
}

// ELF64 image: header, program headers, segment data, and a .symtab/.strtab with the
// given function symbols (name, addr, size).
std::vector<uint8_t> make_elf(const std::vector<Seg>& segs, uint64_t entry,
                              const std::vector<std::tuple<std::string, uint64_t, uint64_t>>& syms = {},
                              uint16_t machine = 62, uint8_t cls = 2, uint16_t type = 2) {
  std::vector<uint8_t> b(64, 0);
  std::memcpy(b.data(), "\x7f" "ELF", 4);
  b[4] = cls;
  b[5] = 1;
  b[6] = 1;
  put<uint16_t>(b, 16, type);
  put<uint16_t>(b, 18, machine);
  put<uint32_t>(b, 20, 1);
  put<uint64_t>(b, 24, entry);
  put<uint64_t>(b, 32, 64);  // phoff
  put<uint16_t>(b, 52, 64);
  put<uint16_t>(b, 54, 56);
  put<uint16_t>(b, 56, static_cast<uint16_t>(segs.size()));
  size_t data_off = 64 + 56 * segs.size();
  b.resize(data_off);
  for (size_t i = 0; i < segs.size(); ++i) {
    const size_t h = 64 + 56 * i;
    put<uint32_t>(b, h, 1);  // PT_LOAD
    put<uint32_t>(b, h + 4, 5);
    put<uint64_t>(b, h + 8, b.size());
    put<uint64_t>(b, h + 16, segs[i].paddr);
    put<uint64_t>(b, h + 24, segs[i].paddr);
    put<uint64_t>(b, h + 32, segs[i].data.size());
    put<uint64_t>(b, h + 40, segs[i].memsz);
    b.insert(b.end(), segs[i].data.begin(), segs[i].data.end());
  }
  if (!syms.empty()) {
    std::vector<uint8_t> strtab(1, 0), symtab(24, 0);
    for (auto& [name, addr, size] : syms) {
      std::vector<uint8_t> s(24, 0);
      put<uint32_t>(s, 0, static_cast<uint32_t>(strtab.size()));
      s[4] = 0x12;  // GLOBAL FUNC
      put<uint64_t>(s, 8, addr);
      put<uint64_t>(s, 16, size);
      symtab.insert(symtab.end(), s.begin(), s.end());
      strtab.insert(strtab.end(), name.begin(), name.end());
      strtab.push_back(0);
    }
    const size_t symoff = b.size();
    b.insert(b.end(), symtab.begin(), symtab.end());
    const size_t stroff = b.size();
    b.insert(b.end(), strtab.begin(), strtab.end());
    const size_t shoff = b.size();
    b.resize(shoff + 3 * 64, 0);  // null, .symtab, .strtab
    put<uint32_t>(b, shoff + 64 + 4, 2);
    put<uint64_t>(b, shoff + 64 + 24, symoff);
    put<uint64_t>(b, shoff + 64 + 32, symtab.size());
    put<uint32_t>(b, shoff + 64 + 40, 2);
    put<uint64_t>(b, shoff + 64 + 56, 24);
    put<uint32_t>(b, shoff + 128 + 4, 3);
    put<uint64_t>(b, shoff + 128 + 24, stroff);
    put<uint64_t>(b, shoff + 128 + 32, strtab.size());
    put<uint64_t>(b, 40, shoff);
    put<uint16_t>(b, 58, 64);
    put<uint16_t>(b, 60, 3);
  }
  return b;
}

std::string load_error(GuestMemory& m, const std::vector<uint8_t>& img, ImageFormat f = ImageFormat::Auto) {
  try {
    load_image_bytes(m, img, "img", f);
  } catch (const LoadError& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("ELF: segments at p_paddr, bss zeroed, entry, symbols", "[loader]") {
  GuestMemory m(4 << 20);
  // Pre-fill the bss area with junk: the loader must zero it.
  std::vector<uint8_t> junk(64, 0xaa);
  m.write(Gpa(0x200000), junk.data(), junk.size());
  auto img = make_elf({{0x100000, {0x90, 0x90, 0xf4}, 3}, {0x200000, {1, 2}, 0x40}}, 0x100001,
                      {{"main", 0x100000, 2}, {"halt", 0x100002, 1}, {"data", 0x200000, 0}});
  LoadedImage li = load_image_bytes(m, img, "img", ImageFormat::Auto);
  CHECK(li.entry == 0x100001);
  uint8_t b[3];
  m.read(Gpa(0x100000), b, 3);
  CHECK(b[0] == 0x90);
  CHECK(b[2] == 0xf4);
  uint8_t d[0x40];
  m.read(Gpa(0x200000), d, sizeof d);
  CHECK(d[0] == 1);
  CHECK(d[1] == 2);
  for (size_t i = 2; i < sizeof d; ++i) REQUIRE(d[i] == 0);
  CHECK(li.symbolize(0x100000) == "<main>");
  CHECK(li.symbolize(0x100001) == "<main+0x1>");
  CHECK(li.symbolize(0x100002) == "<halt>");
  CHECK(li.symbolize(0x200010) == "<data+0x10>");  // size 0: up to the next symbol (none)
  CHECK(li.symbolize(0x0fffff) == "");
  CHECK(li.symbolize(0x100003) == "");
}

TEST_CASE("flat images load at 0x100000", "[loader]") {
  GuestMemory m(2 << 20);
  std::vector<uint8_t> img = {0xb0, 0x41, 0xe6, 0xe9};
  LoadedImage li = load_image_bytes(m, img, "img", ImageFormat::Flat);
  CHECK(li.entry == 0x100000);
  uint8_t b[4];
  m.read(Gpa(0x100000), b, 4);
  CHECK(std::vector<uint8_t>(b, b + 4) == img);
  CHECK(load_error(m, {}, ImageFormat::Flat) == "img: empty image file");
  std::vector<uint8_t> big((1 << 20) + 1, 0x90);
  CHECK(load_error(m, big, ImageFormat::Flat) ==
        "img: flat image at GPA 0x100000-0x200000 lies outside guest RAM (0x200000 bytes)");
}

TEST_CASE("ELF: malformed and misplaced images are rejected with one line", "[loader]") {
  GuestMemory m(4 << 20);
  const std::vector<uint8_t> code = {0xf4};
  auto good = make_elf({{0x100000, code, 1}}, 0x100000);
  CHECK(load_error(m, std::vector<uint8_t>(good.begin(), good.begin() + 40), ImageFormat::Elf) ==
        "img: truncated ELF header");
  CHECK(load_error(m, std::vector<uint8_t>(good.begin(), good.begin() + 100)) ==
        "img: truncated file: program headers extend past its end");
  CHECK(load_error(m, std::vector<uint8_t>(good.begin(), good.end() - 1)) ==
        "img: truncated file: segment 0 (offset 0x78, 0x1 bytes) extends past its end (0x78 bytes)");
  CHECK(load_error(m, std::vector<uint8_t>(64, 0), ImageFormat::Elf) == "img: not an ELF file (bad magic)");
  CHECK(load_error(m, make_elf({{0x100000, code, 1}}, 0x100000, {}, 62, 1)) ==
        "img: not a 64-bit ELF file (EI_CLASS is not ELFCLASS64)");
  CHECK(load_error(m, make_elf({{0x100000, code, 1}}, 0x100000, {}, 3)) ==
        "img: ELF machine 3 is not x86-64 (EM_X86_64 = 62)");
  CHECK(load_error(m, make_elf({{0x100000, code, 1}}, 0x100000, {}, 62, 2, 3)) ==
        "img: ELF type 3 is not ET_EXEC (link the guest statically, -no-pie)");
  CHECK(load_error(m, make_elf({{0x3ff000, code, 0x2000}}, 0x3ff000)) ==
        "img: segment 0 at GPA 0x3ff000-0x400fff lies outside guest RAM (0x400000 bytes)");
  // A range past 2^64 printed a wrapped end ("0xffffffffffffff00-0xff"); it says so now.
  CHECK(load_error(m, make_elf({{0xffffffffffffff00ull, code, 0x200}}, 0x100000)) ==
        "img: segment 0 at GPA 0xffffffffffffff00 (+0x200 bytes, past the end of the 64-bit address space) lies "
        "outside guest RAM (0x400000 bytes)");
  CHECK(load_error(m, make_elf({{0xffffffffffffff00ull, code, 0x100}}, 0x100000)) ==
        "img: segment 0 at GPA 0xffffffffffffff00-0xffffffffffffffff lies outside guest RAM (0x400000 bytes)");
  CHECK(load_error(m, make_elf({{0x10f0, code, 0x20}}, 0x10f0)) ==
        "img: segment 0 at GPA 0x10f0-0x110f overlaps the boot GDT/TSS (0x1000-0x10ff)");
  CHECK(load_error(m, make_elf({{0x15fff, code, 1}}, 0x15fff)) ==
        "img: segment 0 at GPA 0x15fff-0x15fff overlaps the boot page tables (0x10000-0x15fff)");
  CHECK(load_error(m, make_elf({{0x9f000, code, 0x2000}}, 0x9f000)) ==
        "img: segment 0 at GPA 0x9f000-0xa0fff overlaps the boot stacks (0x20000-0x9ffff)");
  CHECK(load_error(m, make_elf({{0x100000, code, 1}}, 0x200000)) ==
        "img: entry point 0x200000 is not inside any PT_LOAD segment");
  CHECK(load_error(m, make_elf({{0x100000, code, 0x10}, {0x100008, code, 1}}, 0x100000)) ==
        "img: PT_LOAD segments overlap at GPA 0x100008");
  auto memsz_small = make_elf({{0x100000, {1, 2, 3}, 1}}, 0x100000);
  CHECK(load_error(m, memsz_small) == "img: segment 0: p_memsz 0x1 is smaller than p_filesz 0x3");
  CHECK(load_error(m, make_elf({}, 0x100000)) == "img: no program headers");
  // Nothing was copied by the rejected images: the boot area is still zero.
  uint8_t z[0x20];
  m.read(Gpa(0x10f0), z, sizeof z);
  for (uint8_t c : z) REQUIRE(c == 0);
}

TEST_CASE("load_image_file names the file", "[loader]") {
  GuestMemory m(2 << 20);
  const std::string f = std::string(PVSIM_TEST_DATA_DIR) + "/bad/truncated.elf";
  try {
    load_image_file(m, f, ImageFormat::Auto);
    FAIL("no error");
  } catch (const LoadError& e) {
    CHECK(std::string(e.what()) == f + ": truncated ELF header");
  }
  try {
    load_image_file(m, "/nonexistent.elf", ImageFormat::Auto);
    FAIL("no error");
  } catch (const LoadError& e) {
    CHECK(std::string(e.what()) == "/nonexistent.elf: cannot open image: No such file or directory");
  }
  // Not regular files: named as what they are (they said "image file not found", or read a
  // device without end).
  for (const auto& [path, kind] : {std::pair<const char*, const char*>{"/dev/zero", "a character device"},
                                   {"/tmp", "a directory"}}) {
    try {
      load_image_file(m, path, ImageFormat::Auto);
      FAIL("no error");
    } catch (const LoadError& e) {
      CHECK(std::string(e.what()) == std::string(path) + ": image is " + kind + ", not a regular file");
    }
  }
}

namespace {
// Resident anonymous memory of this process (/proc/self/statm: resident minus shared).
uint64_t anon_rss_bytes() {
  std::ifstream f("/proc/self/statm");
  uint64_t size = 0, resident = 0, shared = 0;
  f >> size >> resident >> shared;
  return (resident - shared) * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}
}  // namespace

TEST_CASE("ELF: a huge .bss is zero without costing host memory", "[loader]") {
  // A 2 GiB p_memsz tail in a tiny ELF used to be memset: 2.1 GB resident and seconds
  // of work for `pvsim validate` (found by fuzzing it). Whole pages are now released.
  GuestMemory m(4ull << 30);
  const uint64_t tail_gpa = 0x100000 + (1ull << 30);  // inside the future .bss
  const std::vector<uint8_t> junk(8192, 0xaa);
  REQUIRE(m.write(Gpa(tail_gpa - 100), junk.data(), junk.size()));  // straddles pages
  const uint64_t before = anon_rss_bytes();
  auto img = make_elf({{0x100000, {0x90, 0xf4}, 2ull << 30}}, 0x100000);
  (void)load_image_bytes(m, img, "img", ImageFormat::Elf);
  CHECK(anon_rss_bytes() < before + (64u << 20));
  std::vector<uint8_t> got(junk.size(), 0x55);
  REQUIRE(m.read(Gpa(tail_gpa - 100), got.data(), got.size()));
  CHECK(std::all_of(got.begin(), got.end(), [](uint8_t b) { return b == 0; }));
  uint8_t code[2];
  REQUIRE(m.read(Gpa(0x100000), code, 2));
  CHECK(code[0] == 0x90);
  CHECK(code[1] == 0xf4);
  // The partial page after the file bytes is cleared too.
  uint8_t z = 0x55;
  REQUIRE(m.read(Gpa(0x100002), &z, 1));
  CHECK(z == 0);
}
