#include "tools/platform/loader.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <fstream>

#include "tools/platform/boot.h"
#include "tools/platform/files.h"
#include "tools/platform/multiboot.h"
#include "tools/platform/text.h"

namespace pvsim {

namespace {

// ELF64 constants (System V gABI, x86-64 psABI).
constexpr uint8_t kElfClass64 = 2;
constexpr uint8_t kElfData2Lsb = 1;
constexpr uint16_t kEtExec = 2;
constexpr uint16_t kEmX86_64 = 62;
constexpr uint32_t kPtLoad = 1;
constexpr uint32_t kShtSymtab = 2;
constexpr uint8_t kSttObject = 1, kSttFunc = 2;
constexpr size_t kEhdrSize = 64, kPhdrSize = 56, kShdrSize = 64, kSymSize = 24;
constexpr size_t kShdr32Size = 40, kSym32Size = 16;

// Little-endian field reads at a checked offset (the caller bounds-checks the record).
template <class T>
T rd(std::span<const uint8_t> b, uint64_t off) {
  T v;
  std::memcpy(&v, b.data() + off, sizeof(T));
  return v;
}

struct Loader {
  GuestMemory& mem;
  std::span<const uint8_t> bytes;
  std::string_view name;

  [[noreturn]] void fail(std::string_view problem) const {
    throw LoadError(fmt::format("{}: {}", name, problem));
  }

  bool in_file(uint64_t off, uint64_t len) const {
    return len <= bytes.size() && off <= bytes.size() - len;
  }

  // "GPA 0x100000-0x100fff"; a range that runs past 2^64 is said so instead of printing
  // an end address that wrapped around below its start.
  static std::string gpa_range(uint64_t gpa, uint64_t len) {
    if (len - 1 > ~0ull - gpa)
      return fmt::format("GPA 0x{:x} (+0x{:x} bytes, past the end of the 64-bit address space)", gpa, len);
    return fmt::format("GPA 0x{:x}-0x{:x}", gpa, gpa + len - 1);
  }

  void check_placement(uint64_t gpa, uint64_t len, std::string_view what) const {
    if (len == 0) return;
    if (!mem.contains(Gpa(gpa), len))
      fail(fmt::format("{} at {} lies outside guest RAM (0x{:x} bytes)", what, gpa_range(gpa, len), mem.size()));
    for (const BootRegion& r : kBootRegions)
      if (gpa < r.end && r.begin < gpa + len)
        fail(fmt::format("{} at {} overlaps {}", what, gpa_range(gpa, len), r.what));
  }

  LoadedImage flat() const {
    if (bytes.empty()) fail("empty image file");
    check_placement(kFlatLoadAddress, bytes.size(), "flat image");
    mem.write(Gpa(kFlatLoadAddress), bytes.data(), bytes.size());
    return LoadedImage{kFlatLoadAddress, {}};
  }

  LoadedImage elf() const {
    if (bytes.size() < kEhdrSize) fail("truncated ELF header");
    if (std::memcmp(bytes.data(), "\x7f" "ELF", 4) != 0) fail("not an ELF file (bad magic)");
    if (bytes[4] != kElfClass64) fail("not a 64-bit ELF file (EI_CLASS is not ELFCLASS64)");
    if (bytes[5] != kElfData2Lsb) fail("not a little-endian ELF file");
    if (rd<uint16_t>(bytes, 16) != kEtExec)
      fail(fmt::format("ELF type {} is not ET_EXEC (link the guest statically, -no-pie)", rd<uint16_t>(bytes, 16)));
    if (rd<uint16_t>(bytes, 18) != kEmX86_64)
      fail(fmt::format("ELF machine {} is not x86-64 (EM_X86_64 = 62)", rd<uint16_t>(bytes, 18)));
    const uint64_t entry = rd<uint64_t>(bytes, 24);
    const uint64_t phoff = rd<uint64_t>(bytes, 32);
    const uint64_t shoff = rd<uint64_t>(bytes, 40);
    const uint16_t phentsize = rd<uint16_t>(bytes, 54), phnum = rd<uint16_t>(bytes, 56);
    const uint16_t shentsize = rd<uint16_t>(bytes, 58), shnum = rd<uint16_t>(bytes, 60);
    if (phnum == 0) fail("no program headers");
    if (phentsize != kPhdrSize) fail(fmt::format("program header size {} is not {}", phentsize, kPhdrSize));
    if (!in_file(phoff, uint64_t{phnum} * kPhdrSize)) fail("truncated file: program headers extend past its end");

    struct Seg { uint64_t off, paddr, vaddr, filesz, memsz; };
    std::vector<Seg> segs;
    for (unsigned i = 0; i < phnum; ++i) {
      const uint64_t h = phoff + uint64_t{i} * kPhdrSize;
      if (rd<uint32_t>(bytes, h) != kPtLoad) continue;
      Seg s{rd<uint64_t>(bytes, h + 8), rd<uint64_t>(bytes, h + 24), rd<uint64_t>(bytes, h + 16),
            rd<uint64_t>(bytes, h + 32), rd<uint64_t>(bytes, h + 40)};
      if (s.memsz < s.filesz) fail(fmt::format("segment {}: p_memsz 0x{:x} is smaller than p_filesz 0x{:x}", i, s.memsz, s.filesz));
      if (!in_file(s.off, s.filesz))
        fail(fmt::format("truncated file: segment {} (offset 0x{:x}, 0x{:x} bytes) extends past its end (0x{:x} bytes)",
                         i, s.off, s.filesz, bytes.size()));
      check_placement(s.paddr, s.memsz, fmt::format("segment {}", i));
      segs.push_back(s);
    }
    if (segs.empty()) fail("no PT_LOAD segments");
    // Two segments over the same bytes would make the result depend on header order.
    std::vector<Seg> sorted = segs;
    std::sort(sorted.begin(), sorted.end(), [](const Seg& a, const Seg& b) { return a.paddr < b.paddr; });
    for (size_t i = 1; i < sorted.size(); ++i)
      if (sorted[i - 1].memsz && sorted[i].paddr < sorted[i - 1].paddr + sorted[i - 1].memsz)
        fail(fmt::format("PT_LOAD segments overlap at GPA 0x{:x}", sorted[i].paddr));
    bool entry_ok = false;
    for (const Seg& s : segs) entry_ok |= (entry >= s.vaddr && entry - s.vaddr < s.memsz);
    if (!entry_ok) fail(fmt::format("entry point 0x{:x} is not inside any PT_LOAD segment", entry));

    LoadedImage img;
    img.entry = entry;
    img.symbols = symbols(shoff, shentsize, shnum);

    // All checks passed: now copy (write() keeps code-page generations right).
    for (const Seg& s : segs) {
      mem.write(Gpa(s.paddr), bytes.data() + s.off, s.filesz);
      // The tail up to p_memsz (.bss) is zero. GuestMemory::zero gives whole pages back
      // to the host instead of writing them: a 2 GiB .bss in a 128-byte ELF must not cost
      // 2 GiB of host memory and seconds of memset (found by fuzzing the validator).
      if (s.memsz > s.filesz) mem.zero(Gpa(s.paddr + s.filesz), s.memsz - s.filesz);
    }
    return img;
  }

  std::vector<Symbol> symbols(uint64_t shoff, uint16_t shentsize, uint16_t shnum) const {
    return elf_symbols(bytes, name, false, shoff, shentsize, shnum);
  }
};

}  // namespace

// The symbol table is optional (stripped images load fine), but a malformed one is an
// error: it would otherwise produce wrong names in reports. Field offsets: System V gABI,
// "Sections" and "Symbol Table" (Elf32_Shdr / Elf64_Shdr, Elf32_Sym / Elf64_Sym).
std::vector<Symbol> elf_symbols(std::span<const uint8_t> bytes, std::string_view name, bool elf32, uint64_t shoff,
                                unsigned shentsize, unsigned shnum) {
  const auto fail = [&](std::string_view problem) { throw LoadError(fmt::format("{}: {}", name, problem)); };
  const auto in_file = [&](uint64_t off, uint64_t len) { return len <= bytes.size() && off <= bytes.size() - len; };
  // Section header: sh_type, sh_offset, sh_size, sh_link; symbol: st_name, st_info, st_value, st_size.
  const uint64_t shdr_size = elf32 ? kShdr32Size : kShdrSize, sym_size = elf32 ? kSym32Size : kSymSize;
  const auto word = [&](uint64_t off) -> uint64_t { return elf32 ? rd<uint32_t>(bytes, off) : rd<uint64_t>(bytes, off); };
  const uint64_t sh_offset = elf32 ? 16 : 24, sh_size = elf32 ? 20 : 32, sh_link = elf32 ? 24 : 40;
  const uint64_t st_info = elf32 ? 12 : 4, st_value = elf32 ? 4 : 8, st_size = elf32 ? 8 : 16;

  std::vector<Symbol> out;
  if (shoff == 0 || shnum == 0) return out;
  if (shentsize != shdr_size) fail(fmt::format("section header size {} is not {}", shentsize, shdr_size));
  if (!in_file(shoff, uint64_t{shnum} * shdr_size)) fail("truncated file: section headers extend past its end");
  for (unsigned i = 0; i < shnum; ++i) {
    const uint64_t h = shoff + uint64_t{i} * shdr_size;
    if (rd<uint32_t>(bytes, h + 4) != kShtSymtab) continue;
    const uint64_t off = word(h + sh_offset), size = word(h + sh_size);
    const uint32_t link = rd<uint32_t>(bytes, h + sh_link);
    if (!in_file(off, size)) fail("truncated file: symbol table extends past its end");
    if (link >= shnum) fail("symbol table links to a missing string table");
    const uint64_t sh = shoff + uint64_t{link} * shdr_size;
    const uint64_t stroff = word(sh + sh_offset), strsize = word(sh + sh_size);
    if (!in_file(stroff, strsize)) fail("truncated file: string table extends past its end");
    for (uint64_t s = off; s + sym_size <= off + size; s += sym_size) {
      const uint32_t nm = rd<uint32_t>(bytes, s);
      const uint8_t type = bytes[s + st_info] & 0xf;
      if ((type != kSttFunc && type != kSttObject) || nm >= strsize) continue;
      const char* str = reinterpret_cast<const char*>(bytes.data() + stroff + nm);
      const size_t len = strnlen(str, strsize - nm);
      if (len == 0 || len == strsize - nm) continue;  // empty or unterminated
      out.push_back(Symbol{word(s + st_value), word(s + st_size), std::string(str, len)});
    }
  }
  // Sorted by address, then name, so lookups are deterministic whatever the file order.
  std::sort(out.begin(), out.end(), [](const Symbol& a, const Symbol& b) {
    return a.addr != b.addr ? a.addr < b.addr : a.name < b.name;
  });
  return out;
}

std::string LoadedImage::missing_symbol(std::string_view name) const {
  return fmt::format("the guest image has no symbol {}{}", quote_display(name, 80),
                     symbols.empty() ? " (it has no symbol table at all)" : "");
}

std::string LoadedImage::symbolize(uint64_t addr) const {
  auto it = std::upper_bound(symbols.begin(), symbols.end(), addr,
                             [](uint64_t a, const Symbol& s) { return a < s.addr; });
  while (it != symbols.begin()) {
    --it;
    // Size 0 (hand-written asm labels) counts as covering up to the next symbol.
    const bool inside = it->size ? addr - it->addr < it->size : (it + 1 == symbols.end() || addr < (it + 1)->addr);
    if (inside) return addr == it->addr ? fmt::format("<{}>", it->name) : fmt::format("<{}+0x{:x}>", it->name, addr - it->addr);
    if (it->size) break;
  }
  return {};
}

LoadedImage load_image_bytes(GuestMemory& mem, std::span<const uint8_t> bytes,
                             std::string_view name, ImageFormat format) {
  Loader l{mem, bytes, name};
  if (format == ImageFormat::Auto)
    format = (bytes.size() >= 4 && std::memcmp(bytes.data(), "\x7f" "ELF", 4) == 0) ? ImageFormat::Elf
                                                                                   : ImageFormat::Flat;
  return format == ImageFormat::Elf ? l.elf() : l.flat();
}

LoadedImage load_image_file(GuestMemory& mem, const std::filesystem::path& file, ImageFormat format) {
  std::string bytes;
  try {
    // An image larger than RAM cannot fit: refuse before reading gigabytes (or reading a
    // device that never ends).
    bytes = read_regular_file(file, mem.size(), "image");
  } catch (const FileError& e) {
    throw LoadError(e.what());
  }
  return load_image_bytes(mem, std::span(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()),
                          escape_display(file.string(), 400), format);
}

LoadedImage load_guest(GuestMemory& mem, const Scenario& s) {
  const std::string file = escape_display(s.file.string(), 400);
  const auto explain = [&](const LoadError& e) {
    return ScenarioError(fmt::format("{}: {}: {}", file, e.pointer().empty() ? "/guest/image" : e.pointer(), e.what()));
  };
  if (s.guest.boot == BootProtocol::Direct) {
    build_boot_memory(mem);
    try {
      return load_image_file(mem, s.guest.image, s.guest.format);
    } catch (const LoadError& e) {
      throw explain(e);
    }
  }
  std::string image;
  try {
    // The image must fit in RAM; refuse before reading more than that.
    image = read_regular_file(s.guest.image, mem.size(), "image");
  } catch (const FileError& e) {
    throw explain(LoadError(e.what()));
  }
  // Module files were checked when the scenario loaded; they may have changed since, so
  // the size bound is enforced again as they are read.
  std::vector<std::string> modules;
  for (size_t i = 0; i < s.guest.modules.size(); ++i) {
    try {
      modules.push_back(read_regular_file(s.guest.modules[i].path, kMaxModuleBytes, "module"));
    } catch (const FileError& e) {
      throw explain(LoadError(e.what(), fmt::format("/guest/modules/{}/path", i)));
    }
  }
  const auto as_bytes = [](const std::string& str) {
    return std::span(reinterpret_cast<const uint8_t*>(str.data()), str.size());
  };
  MultibootInput in;
  in.image = as_bytes(image);
  const std::string name = escape_display(s.guest.image.string(), 400);
  in.name = name;
  in.cmdline = s.guest.cmdline;
  for (size_t i = 0; i < modules.size(); ++i) in.modules.push_back({s.guest.modules[i].string, as_bytes(modules[i])});
  try {
    return load_multiboot(mem, in);
  } catch (const LoadError& e) {
    throw explain(e);
  }
}

}  // namespace pvsim
