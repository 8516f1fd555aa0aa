// tools/platform/multiboot.h — starting a Multiboot (version 1) kernel the way QEMU's
// `-kernel` loader does (scenarios/guest/boot.md §8; Multiboot Specification 0.6.96).
//
// load_multiboot checks the whole input first (the header in the first 8 KiB, an ELF32
// i386 ET_EXEC image, where its segments, the boot information and the modules go), and
// only then writes: the firmware bytes (real-mode IVT, GDT and interrupt stubs), the
// memory map and the Multiboot information structure (MBI), the image's segments, then
// the command line, module list, strings and module data after the image. A problem is a
// LoadError with one line naming the file, never a host crash.
//
// Every address here is a guest-physical address below 4 GiB.
#pragma once
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "tools/platform/loader.h"

namespace pvsim {

class GuestMemory;

namespace multiboot {
// Multiboot 0.6.96, "Header magic fields" and "Machine state".
constexpr uint32_t kHeaderMagic = 0x1BADB002;
constexpr uint32_t kBootMagic = 0x2BADB002;  // EAX at entry
constexpr uint64_t kHeaderSearchBytes = 8192;
// Header flags ("Header magic fields"): bits 0-15 are requirements a loader must refuse
// when it cannot meet them; of bits 16-31 only 16 is defined.
constexpr uint32_t kFlagPageAlign = 1u << 0;  // modules page-aligned (always done)
constexpr uint32_t kFlagMemInfo = 1u << 1;    // mem_* fields (always given)
constexpr uint32_t kFlagVideo = 1u << 2;      // video mode table: refused
constexpr uint32_t kFlagAoutKludge = 1u << 16;  // header address fields: refused

// Where the loader puts things (QEMU 7.2's placement, measured): the memory map and the
// MBI in low memory, the rest after the page-aligned end of the image.
constexpr uint64_t kMmapAddr = 0x9000;
constexpr uint64_t kMbiAddr = 0x9500;
constexpr uint64_t kMbiSize = 0x58;  // up to and including the VBE fields
constexpr uint32_t kMbiFlags = 0x24f;  // MEM | BOOTDEV | CMDLINE | MODS | MMAP | LOADER_NAME
constexpr uint32_t kMemLowerKib = 639;
constexpr uint32_t kBootDevice = 0x8000ffff;  // BIOS drive 0x80, no partition
constexpr uint64_t kModuleEntrySize = 16;     // mod_start, mod_end, string, reserved
constexpr uint64_t kMmapEntrySize = 24;       // size (= 20), base_addr, length, type
constexpr char kLoaderName[] = "pvsim";
// ESP at entry. The specification leaves ESP undefined; QEMU's option ROM leaves 0x6f08,
// and any value below the MBI does (nothing is written below it).
constexpr uint32_t kStackPointer = 0x6f08;

// The firmware pvsim leaves in RAM (build_firmware): the real-mode IVT, and in the BIOS
// segment F000 a GDT with flat 32-bit code and data and three interrupt stubs.
constexpr uint64_t kIvtBase = 0, kIvtSize = 0x400;
constexpr uint64_t kFirmwareBase = 0xf0000, kFirmwareEnd = 0x100000;
constexpr uint16_t kFirmwareSegment = 0xf000;
constexpr uint64_t kGdtBase = 0xf0000;
constexpr uint16_t kGdtLimit = 0x17;  // null, code 0x08, data 0x10
constexpr uint16_t kCodeSel = 0x08, kDataSel = 0x10;
constexpr uint64_t kCodeDesc = 0x00cf9b000000ffffull;  // 32-bit code, base 0, limit 4 GiB
constexpr uint64_t kDataDesc = 0x00cf93000000ffffull;  // data, base 0, limit 4 GiB
// Offsets in segment F000. 0xfea5 and 0xff53 are the IBM PC BIOS's fixed entry points of
// the timer handler and of the dummy IRET, which compatible BIOSes keep.
constexpr uint16_t kIretStubOffset = 0xff53;
constexpr uint16_t kMasterIrqStubOffset = 0xfea5;
constexpr uint16_t kSlaveIrqStubOffset = 0xff40;
inline constexpr uint8_t kIretStub[] = {0xcf};  // iret
// push ax; mov al, 0x20; out 0x20, al; pop ax; iret (non-specific EOI to the master 8259)
inline constexpr uint8_t kMasterIrqStub[] = {0x50, 0xb0, 0x20, 0xe6, 0x20, 0x58, 0xcf};
// push ax; mov al, 0x20; out 0xa0, al; out 0x20, al; pop ax; iret (EOI to slave, then master)
inline constexpr uint8_t kSlaveIrqStub[] = {0x50, 0xb0, 0x20, 0xe6, 0xa0, 0xe6, 0x20, 0x58, 0xcf};

// Entry state of the BSP (boot.cpp init_vcpu_multiboot_state).
constexpr uint64_t kCr0 = 0x11;  // PE | ET
constexpr uint16_t kCodeAttrs = 0xc09b, kDataAttrs = 0xc093;  // VMX access-rights layout

// Memory-map entry types (Multiboot 0.6.96, "Boot information format").
constexpr uint32_t kMemAvailable = 1, kMemReserved = 2;
// The reserved top of RAM (QEMU's firmware keeps its tables there) and the BIOS ROM
// window below 4 GiB.
constexpr uint64_t kRamTopReserved = 0x20000;
constexpr uint64_t kBiosRomBase = 0xfffc0000;
}  // namespace multiboot

struct MultibootMmapEntry {
  uint64_t base, length;
  uint32_t type;
};

// The memory map pvsim gives for `ram_bytes` of RAM at GPA 0 (at most 3.5 GiB, more than
// 2 MiB): six entries, in address order.
std::vector<MultibootMmapEntry> multiboot_memory_map(uint64_t ram_bytes);

// mem_upper: KiB of RAM from 1 MiB up to the reserved top (what the MBI says).
uint32_t multiboot_mem_upper(uint64_t ram_bytes);

// Writes the IVT (0-0x3ff) and the F000 segment's GDT and stubs.
void build_firmware(GuestMemory& mem);

struct MultibootModuleInput {
  std::string_view string;          // the module's string in the MBI
  std::span<const uint8_t> bytes;   // its content
};

struct MultibootInput {
  std::span<const uint8_t> image;
  std::string_view name;  // the image file, for messages ("NAME: problem")
  std::string_view cmdline;
  std::vector<MultibootModuleInput> modules;
};

// Where load_multiboot put things.
struct MultibootLayout {
  uint32_t entry = 0;         // physical entry point (e_entry through its segment)
  uint32_t image_end = 0;     // end of the highest PT_LOAD (p_paddr + p_memsz)
  uint32_t mods_addr = 0;     // module list (page-aligned end of the image)
  uint32_t cmdline_addr = 0;
  uint32_t loader_name_addr = 0;
  std::vector<uint32_t> module_start;   // each page-aligned
  std::vector<uint32_t> module_string;
  uint32_t end = 0;  // first byte after everything the loader wrote above the image
};

// Checks everything, then writes firmware, memory map, MBI, image and modules. Throws
// LoadError ("NAME: problem"); a problem with a module or the space after the image names
// its JSON pointer in LoadError::pointer() ("/guest/modules/1").
LoadedImage load_multiboot(GuestMemory& mem, const MultibootInput& in, MultibootLayout* layout = nullptr);

}  // namespace pvsim
