// tools/platform/loader.h — puts a guest image into guest RAM (scenarios/guest/boot.md §1;
// Multiboot kernels: multiboot.h and boot.md §8).
//
// ELF64 ET_EXEC x86-64: each PT_LOAD is copied to p_paddr with the tail up to p_memsz
// zeroed; entry = e_entry. Flat binary: loaded at 0x100000, entry 0x100000. Everything
// is checked before a byte is copied: a truncated or malformed file, a segment outside
// RAM or over the boot structures is a LoadError naming the file, never a host crash.
#pragma once
#include <cstdint>
#include <filesystem>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/guest_memory.h"
#include "tools/platform/scenario.h"

namespace pvsim {

class LoadError : public std::runtime_error {
 public:
  explicit LoadError(const std::string& what, std::string pointer = {})
      : std::runtime_error(what), m_pointer(std::move(pointer)) {}
  // The scenario key a problem belongs to when it is not /guest/image: "/guest/modules/1"
  // for a Multiboot module (multiboot.h). Empty for problems of the image itself.
  const std::string& pointer() const { return m_pointer; }

 private:
  std::string m_pointer;
};

struct Symbol {
  uint64_t addr = 0;
  uint64_t size = 0;
  std::string name;
};

struct LoadedImage {
  uint64_t entry = 0;
  std::vector<Symbol> symbols;  // functions and objects, sorted by address
  // The symbol called `name` (the first in address order), or nullptr.
  const Symbol* find(std::string_view name) const {
    for (const Symbol& s : symbols)
      if (s.name == name) return &s;
    return nullptr;
  }
  // "<main+0x14>" for an address inside (or at) a known symbol, "" otherwise.
  std::string symbolize(uint64_t addr) const;
  // "the guest image has no symbol "x"" (and why, when it has no symbol table at all): what
  // run and validate say about a schedule point naming a symbol find() does not know.
  std::string missing_symbol(std::string_view name) const;
};

constexpr uint64_t kFlatLoadAddress = 0x100000;

// Guest-physical ranges the boot protocol owns; an image may not overlap them.
struct BootRegion {
  uint64_t begin, end;  // [begin, end)
  const char* what;
};
inline constexpr BootRegion kBootRegions[] = {
    {0x1000, 0x1100, "the boot GDT/TSS (0x1000-0x10ff)"},
    {0x10000, 0x16000, "the boot page tables (0x10000-0x15fff)"},
    {0x20000, 0xa0000, "the boot stacks (0x20000-0x9ffff)"},
};

// `name` is used in messages ("NAME: problem").
LoadedImage load_image_bytes(GuestMemory& mem, std::span<const uint8_t> bytes,
                             std::string_view name, ImageFormat format);
LoadedImage load_image_file(GuestMemory& mem, const std::filesystem::path& file,
                            ImageFormat format);

// The function and object symbols of an ELF file's symbol table (ELF32 when `elf32`),
// sorted by address then name; empty when there is no section header table. `shoff`,
// `shentsize` and `shnum` come from the ELF header. A malformed table is a LoadError
// ("NAME: problem"). Shared by the ELF64 loader and the Multiboot loader (multiboot.h).
std::vector<Symbol> elf_symbols(std::span<const uint8_t> bytes, std::string_view name, bool elf32, uint64_t shoff,
                                unsigned shentsize, unsigned shnum);

// Everything the scenario's `guest` section asks for, in fresh RAM: with `boot` "direct"
// the boot structures of boot.h and the image (load_image_file); with "multiboot" the
// image, its modules, the boot information and the firmware bytes (load_multiboot). Reads
// the image and module files. Throws ScenarioError "FILE: /guest/...: problem", the key
// being /guest/image or the module's /guest/modules/N.
LoadedImage load_guest(GuestMemory& mem, const Scenario& s);

}  // namespace pvsim
