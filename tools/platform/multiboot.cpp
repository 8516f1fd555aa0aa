#include "tools/platform/multiboot.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <optional>

#include "core/guest_memory.h"
#include "tools/platform/scenario.h"

namespace pvsim {

namespace {

using namespace multiboot;

// ELF32 constants (System V gABI; the i386 psABI's EM_386).
constexpr uint8_t kElfClass32 = 1;
constexpr uint8_t kElfData2Lsb = 1;
constexpr uint16_t kEtExec = 2;
constexpr uint16_t kEm386 = 3;
constexpr uint32_t kPtLoad = 1;
constexpr uint64_t kEhdr32Size = 52, kPhdr32Size = 32;
constexpr uint64_t kPage = 0x1000;
constexpr uint64_t k4G = 1ull << 32;

template <class T>
T rd(std::span<const uint8_t> b, uint64_t off) {
  T v;
  std::memcpy(&v, b.data() + off, sizeof(T));
  return v;
}

uint64_t page_up(uint64_t a) { return (a + kPage - 1) & ~(kPage - 1); }

// Ranges an image segment may not cover: what the firmware leaves there would be lost. The
// memory map and the MBI (0x9000-0x95ff) are not among them: QEMU's option ROM writes them
// before it copies the kernel, so a kernel linked over them (kvm-unit-tests' realmode.flat
// at 0x8000) simply replaces them, and pvsim writes in the same order.
struct Reserved {
  uint64_t begin, end;
  const char* what;
};
constexpr Reserved kImageReserved[] = {
    {kIvtBase, kIvtBase + kIvtSize, "the real-mode interrupt vector table (0x0-0x3ff)"},
    {kFirmwareBase, kFirmwareEnd, "the firmware area (0xf0000-0xfffff)"},
};

std::string gpa_range(uint64_t gpa, uint64_t len) {
  return fmt::format("GPA 0x{:x}-0x{:x}", gpa, gpa + len - 1);
}

struct Seg {
  uint64_t off, paddr, vaddr, filesz, memsz;
};

struct MbLoader {
  GuestMemory& mem;
  const MultibootInput& in;

  [[noreturn]] void fail(std::string_view problem, std::string pointer = {}) const {
    throw LoadError(fmt::format("{}: {}", in.name, problem), std::move(pointer));
  }
  bool in_file(uint64_t off, uint64_t len) const {
    return len <= in.image.size() && off <= in.image.size() - len;
  }

  // Multiboot 0.6.96, "OS image format": the header lies entirely in the first 8192 bytes,
  // 32-bit aligned, and magic + flags + checksum is 0 modulo 2^32. A magic with a bad
  // checksum is not a header (the search goes on), but it is what a person wants to hear
  // about when no header is found.
  uint32_t header_flags() const {
    const uint64_t limit = std::min<uint64_t>(in.image.size(), kHeaderSearchBytes);
    std::optional<uint64_t> bad_at;
    uint32_t bad_sum = 0;
    for (uint64_t off = 0; off + 12 <= limit; off += 4) {
      if (rd<uint32_t>(in.image, off) != kHeaderMagic) continue;
      const uint32_t flags = rd<uint32_t>(in.image, off + 4);
      const uint32_t sum = kHeaderMagic + flags + rd<uint32_t>(in.image, off + 8);
      if (sum == 0) return flags;
      if (!bad_at) {
        bad_at = off;
        bad_sum = sum;
      }
    }
    if (bad_at)
      fail(fmt::format("the Multiboot header at file offset 0x{:x} has a bad checksum (magic + flags + checksum "
                       "= 0x{:x}, must be 0 modulo 2^32)",
                       *bad_at, bad_sum));
    fail(fmt::format("no Multiboot header (magic 0x{:X}, 4-byte aligned) in the first {} bytes: not a Multiboot "
                     "kernel",
                     kHeaderMagic, kHeaderSearchBytes));
  }

  // Bits 0-15 are requirements: one the loader cannot meet means it must not boot the
  // kernel. Of bits 16-31 only 16 (the a.out kludge) means anything; it is refused too.
  void check_flags(uint32_t flags) const {
    for (unsigned b = 0; b <= 16; ++b) {
      const uint32_t m = 1u << b;
      if (!(flags & m) || m == kFlagPageAlign || m == kFlagMemInfo) continue;
      if (m == kFlagVideo)
        fail("multiboot flag bit 2 (video mode information) is not supported: pvsim has no framebuffer");
      if (m == kFlagAoutKludge)
        fail("multiboot flag bit 16 (a.out kludge) is not supported: link the kernel as ELF");
      fail(fmt::format("multiboot flag bit {} is a requirement the Multiboot 0.6.96 specification does not define, "
                       "so pvsim cannot meet it",
                       b));
    }
  }

  void check_segment(uint64_t gpa, uint64_t len, unsigned i) const {
    if (len == 0) return;
    if (gpa + len > k4G)
      fail(fmt::format("segment {} at GPA 0x{:x} (+0x{:x} bytes) reaches past 4 GiB", i, gpa, len));
    if (!mem.contains(Gpa(gpa), len))
      fail(fmt::format("segment {} at {} lies outside guest RAM (0x{:x} bytes)", i, gpa_range(gpa, len), mem.size()));
    for (const Reserved& r : kImageReserved)
      if (gpa < r.end && r.begin < gpa + len)
        fail(fmt::format("segment {} at {} overlaps {}", i, gpa_range(gpa, len), r.what));
  }

  // ELF32 i386 ET_EXEC: every PT_LOAD goes to p_paddr (Multiboot 0.6.96, "The OS image
  // format": without the a.out kludge the loader uses the ELF program headers).
  std::vector<Seg> segments(uint32_t& entry) const {
    const auto& b = in.image;
    if (b.size() < kEhdr32Size) fail("truncated ELF header (a Multiboot kernel must be an ELF32 file here)");
    if (std::memcmp(b.data(), "\x7f" "ELF", 4) != 0)
      fail("not an ELF file (bad magic): pvsim loads a Multiboot kernel from its ELF32 program headers");
    if (b[4] != kElfClass32)
      fail("not a 32-bit ELF file (EI_CLASS is not ELFCLASS32): a Multiboot kernel is entered in 32-bit protected "
           "mode (a 64-bit image boots with \"boot\": \"direct\")");
    if (b[5] != kElfData2Lsb) fail("not a little-endian ELF file");
    if (rd<uint16_t>(b, 16) != kEtExec)
      fail(fmt::format("ELF type {} is not ET_EXEC (link the kernel statically, -no-pie)", rd<uint16_t>(b, 16)));
    if (rd<uint16_t>(b, 18) != kEm386)
      fail(fmt::format("ELF machine {} is not i386 (EM_386 = 3)", rd<uint16_t>(b, 18)));
    const uint32_t e_entry = rd<uint32_t>(b, 24);
    const uint64_t phoff = rd<uint32_t>(b, 28);
    const uint16_t phentsize = rd<uint16_t>(b, 42), phnum = rd<uint16_t>(b, 44);
    if (phnum == 0) fail("no program headers");
    if (phentsize != kPhdr32Size) fail(fmt::format("program header size {} is not {}", phentsize, kPhdr32Size));
    if (!in_file(phoff, uint64_t{phnum} * kPhdr32Size)) fail("truncated file: program headers extend past its end");

    std::vector<Seg> segs;
    for (unsigned i = 0; i < phnum; ++i) {
      const uint64_t h = phoff + uint64_t{i} * kPhdr32Size;
      if (rd<uint32_t>(b, h) != kPtLoad) continue;  // PT_NOTE, PT_GNU_STACK, ...: nothing to load
      const Seg s{rd<uint32_t>(b, h + 4), rd<uint32_t>(b, h + 12), rd<uint32_t>(b, h + 8), rd<uint32_t>(b, h + 16),
                  rd<uint32_t>(b, h + 20)};
      if (s.memsz < s.filesz)
        fail(fmt::format("segment {}: p_memsz 0x{:x} is smaller than p_filesz 0x{:x}", i, s.memsz, s.filesz));
      if (!in_file(s.off, s.filesz))
        fail(fmt::format("truncated file: segment {} (offset 0x{:x}, 0x{:x} bytes) extends past its end (0x{:x} bytes)",
                         i, s.off, s.filesz, b.size()));
      check_segment(s.paddr, s.memsz, i);
      segs.push_back(s);
    }
    if (segs.empty()) fail("no PT_LOAD segments");
    std::vector<Seg> sorted = segs;
    std::sort(sorted.begin(), sorted.end(), [](const Seg& x, const Seg& y) { return x.paddr < y.paddr; });
    for (size_t i = 1; i < sorted.size(); ++i)
      if (sorted[i - 1].memsz && sorted[i].paddr < sorted[i - 1].paddr + sorted[i - 1].memsz)
        fail(fmt::format("PT_LOAD segments overlap at GPA 0x{:x}", sorted[i].paddr));
    // Paging is off at entry, so the entry point is physical: e_entry moved by its segment's
    // p_paddr - p_vaddr (the same address for every kernel linked at its load address).
    for (const Seg& s : segs)
      if (e_entry >= s.vaddr && e_entry - s.vaddr < s.memsz) {
        entry = static_cast<uint32_t>(e_entry - s.vaddr + s.paddr);
        return segs;
      }
    fail(fmt::format("entry point 0x{:x} is not inside any PT_LOAD segment", e_entry));
  }

  LoadedImage load(MultibootLayout& lay) const {
    // The memory map below describes one RAM region under the 32-bit PCI hole, with the
    // kernel's space from 1 MiB up (the scenario parser enforces the same bounds).
    if (mem.size() < (2ull << 20) || mem.size() > (kMaxMultibootRamMib << 20))
      fail(fmt::format("guest RAM of 0x{:x} bytes: a Multiboot guest needs 2 MiB to {} MiB", mem.size(),
                       kMaxMultibootRamMib));
    check_flags(header_flags());
    uint32_t entry = 0;
    const std::vector<Seg> segs = segments(entry);
    LoadedImage img;
    img.entry = entry;
    img.symbols = elf_symbols(in.image, in.name, true, rd<uint32_t>(in.image, 32), rd<uint16_t>(in.image, 46),
                              rd<uint16_t>(in.image, 48));
    uint64_t image_end = 0;
    for (const Seg& s : segs) image_end = std::max(image_end, s.paddr + s.memsz);

    // Above the image (QEMU's order, measured): module list, module strings, command line,
    // loader name, then each module's data on its own page boundary (header flag 0 asks
    // for that; pvsim always does it).
    lay.entry = entry;
    lay.image_end = static_cast<uint32_t>(image_end);
    const uint64_t after = page_up(image_end);
    uint64_t at = after;
    lay.mods_addr = static_cast<uint32_t>(at);
    at += kModuleEntrySize * in.modules.size();
    for (const MultibootModuleInput& m : in.modules) {
      lay.module_string.push_back(static_cast<uint32_t>(at));
      at += m.string.size() + 1;
    }
    lay.cmdline_addr = static_cast<uint32_t>(at);
    at += in.cmdline.size() + 1;
    lay.loader_name_addr = static_cast<uint32_t>(at);
    at += sizeof kLoaderName;
    const std::string where = in.modules.empty() ? std::string() : std::string("/guest/modules");
    if (at > mem.size())
      fail(fmt::format("the boot information after the kernel ({}) lies outside guest RAM (0x{:x} bytes)",
                       gpa_range(after, at - after), mem.size()),
           where);
    for (size_t i = 0; i < in.modules.size(); ++i) {
      at = page_up(at);
      const uint64_t size = in.modules[i].bytes.size();
      if (at + size > mem.size())
        fail(fmt::format("module {} (0x{:x} bytes) does not fit in guest RAM: it would start at GPA 0x{:x}, after "
                         "the kernel (which ends at 0x{:x}) and the boot information, and RAM ends at 0x{:x}",
                         i, size, at, image_end, mem.size()),
             fmt::format("/guest/modules/{}", i));
      lay.module_start.push_back(static_cast<uint32_t>(at));
      at += size;
    }
    lay.end = static_cast<uint32_t>(at);
    // Only a kernel that ends below the MBI or the firmware can reach them this way.
    const Reserved low{kMmapAddr, kMbiAddr + kMbiSize, "the memory map and boot information (0x9000-0x9557)"};
    for (const Reserved& r : {low, kImageReserved[1]})
      if (after < r.end && r.begin < at)
        fail(fmt::format("the boot information and modules after the kernel ({}) overlap {}",
                         gpa_range(after, at - after), r.what),
             where);

    // Everything checked: write. Firmware and MBI first, so that a kernel linked over the
    // MBI replaces it (see kImageReserved).
    build_firmware(mem);
    write_mmap_and_mbi(lay);
    for (const Seg& s : segs) {
      mem.write(Gpa(s.paddr), in.image.data() + s.off, s.filesz);
      // .bss: GuestMemory::zero gives whole pages back instead of writing them.
      if (s.memsz > s.filesz) mem.zero(Gpa(s.paddr + s.filesz), s.memsz - s.filesz);
    }
    for (size_t i = 0; i < in.modules.size(); ++i) {
      const uint32_t start = lay.module_start[i];
      // mod_end is the first byte after the module (Multiboot 0.6.96, "Boot information
      // format": the module occupies mod_start to mod_end - 1).
      const uint32_t entry_words[4] = {start, static_cast<uint32_t>(start + in.modules[i].bytes.size()),
                                       lay.module_string[i], 0};
      mem.write(Gpa(lay.mods_addr + kModuleEntrySize * i), entry_words, sizeof entry_words);
      write_string(lay.module_string[i], in.modules[i].string);
      mem.write(Gpa(start), in.modules[i].bytes.data(), in.modules[i].bytes.size());
    }
    write_string(lay.cmdline_addr, in.cmdline);
    write_string(lay.loader_name_addr, kLoaderName);
    return img;
  }

  void write_string(uint64_t gpa, std::string_view s) const {
    mem.write(Gpa(gpa), s.data(), s.size());
    const uint8_t nul = 0;
    mem.write(Gpa(gpa + s.size()), &nul, 1);
  }

  // Multiboot 0.6.96, "Boot information format".
  void write_mmap_and_mbi(const MultibootLayout& lay) const {
    const std::vector<MultibootMmapEntry> map = multiboot_memory_map(mem.size());
    std::vector<uint8_t> raw(map.size() * kMmapEntrySize);
    for (size_t i = 0; i < map.size(); ++i) {
      const uint32_t size = kMmapEntrySize - 4;  // the size field does not count itself
      std::memcpy(&raw[i * kMmapEntrySize], &size, 4);
      std::memcpy(&raw[i * kMmapEntrySize + 4], &map[i].base, 8);
      std::memcpy(&raw[i * kMmapEntrySize + 12], &map[i].length, 8);
      std::memcpy(&raw[i * kMmapEntrySize + 20], &map[i].type, 4);
    }
    mem.write(Gpa(kMmapAddr), raw.data(), raw.size());

    uint32_t mbi[kMbiSize / 4] = {};
    mbi[0] = kMbiFlags;
    mbi[1] = kMemLowerKib;                     // mem_lower
    mbi[2] = multiboot_mem_upper(mem.size());  // mem_upper
    mbi[3] = kBootDevice;
    mbi[4] = lay.cmdline_addr;
    mbi[5] = static_cast<uint32_t>(in.modules.size());  // mods_count
    mbi[6] = lay.mods_addr;
    // 7-10: a.out / ELF section symbols (flags bits 4 and 5 clear: not given)
    mbi[11] = static_cast<uint32_t>(raw.size());  // mmap_length
    mbi[12] = static_cast<uint32_t>(kMmapAddr);   // mmap_addr
    // 13-15: drives, config table (not given)
    mbi[16] = lay.loader_name_addr;  // boot_loader_name
    // 17-21: APM table, VBE (not given)
    mem.write(Gpa(kMbiAddr), mbi, sizeof mbi);
  }
};

}  // namespace

std::vector<MultibootMmapEntry> multiboot_memory_map(uint64_t ram_bytes) {
  // The map QEMU 7.2 with SeaBIOS gives (measured), for RAM below the 32-bit PCI hole:
  // conventional memory up to the EBDA, the EBDA, the BIOS segment F000, RAM from 1 MiB to
  // the firmware's reserved top 128 KiB, that top, and the BIOS ROM window below 4 GiB.
  return {
      {0, 0x9fc00, kMemAvailable},
      {0x9fc00, 0x400, kMemReserved},
      {kFirmwareBase, kFirmwareEnd - kFirmwareBase, kMemReserved},
      {0x100000, ram_bytes - kRamTopReserved - 0x100000, kMemAvailable},
      {ram_bytes - kRamTopReserved, kRamTopReserved, kMemReserved},
      {kBiosRomBase, k4G - kBiosRomBase, kMemReserved},
  };
}

uint32_t multiboot_mem_upper(uint64_t ram_bytes) {
  return static_cast<uint32_t>((std::min(ram_bytes, k4G) - 0x100000 - kRamTopReserved) / 1024);
}

void build_firmware(GuestMemory& mem) {
  // Real-mode IVT (SDM Vol. 3, "8086 Emulation", "Interrupt and Exception Handling"):
  // 256 far pointers, offset then segment. The 8259 pair stays at the vectors the
  // BIOS programs (master 0x08-0x0f, slave 0x70-0x77), and a hardware interrupt there is
  // acknowledged before the IRET, so a kernel that enables interrupts in real mode (the
  // kvm-unit-tests realmode test waits in HLT for the PIT's IRQ 0) gets back to its code
  // with the controller ready for the next one. Every other vector just returns.
  uint32_t ivt[256];
  const auto far_ptr = [](uint16_t off) { return (uint32_t{kFirmwareSegment} << 16) | off; };
  for (unsigned v = 0; v < 256; ++v) {
    if (v >= 0x08 && v <= 0x0f) ivt[v] = far_ptr(kMasterIrqStubOffset);
    else if (v >= 0x70 && v <= 0x77) ivt[v] = far_ptr(kSlaveIrqStubOffset);
    else ivt[v] = far_ptr(kIretStubOffset);
  }
  mem.write(Gpa(kIvtBase), ivt, sizeof ivt);

  const uint64_t gdt[3] = {0, kCodeDesc, kDataDesc};
  mem.write(Gpa(kGdtBase), gdt, sizeof gdt);
  const uint64_t seg = uint64_t{kFirmwareSegment} << 4;
  mem.write(Gpa(seg + kIretStubOffset), kIretStub, sizeof kIretStub);
  mem.write(Gpa(seg + kMasterIrqStubOffset), kMasterIrqStub, sizeof kMasterIrqStub);
  mem.write(Gpa(seg + kSlaveIrqStubOffset), kSlaveIrqStub, sizeof kSlaveIrqStub);
}

LoadedImage load_multiboot(GuestMemory& mem, const MultibootInput& in, MultibootLayout* layout) {
  MultibootLayout lay;
  LoadedImage img = MbLoader{mem, in}.load(lay);
  if (layout) *layout = std::move(lay);
  return img;
}

}  // namespace pvsim
