// tools/platform/boot.h — the direct 64-bit boot protocol (scenarios/guest/boot.md), and the
// vCPU side of Multiboot (boot.md §8).
//
// build_boot_memory writes the GDT, TSS and identity page tables into RAM;
// init_vcpu_boot_state puts one vCPU in the documented entry state. Every value here is
// a number from that document and is checked by tests/platform/boot_test.cpp.
#pragma once
#include <cstdint>

namespace pvsim {

class GuestMemory;
class Vcpu;

namespace boot {
constexpr uint64_t kGdtBase = 0x1000;
constexpr uint16_t kGdtLimit = 0x27;
constexpr uint64_t kTssBase = 0x1080;
constexpr uint32_t kTssLimit = 0x67;
constexpr uint64_t kPml4 = 0x10000;
constexpr uint64_t kPdpt = 0x11000;
constexpr uint64_t kPd = 0x12000;  // four 4 KiB page directories, 0x12000-0x15fff
constexpr uint64_t kStackTop = 0xA0000;
constexpr uint64_t kStackSize = 0x4000;
constexpr unsigned kMaxBootStacks = 32;
constexpr uint16_t kCodeSel = 0x08, kDataSel = 0x10, kTssSel = 0x18;
constexpr uint64_t kCodeDesc = 0x00af9b000000ffffull;  // 64-bit code, DPL0
constexpr uint64_t kDataDesc = 0x00cf93000000ffffull;  // data, 4 GiB
constexpr uint64_t kCr0 = 0x80010033;  // PE MP ET NE WP PG
constexpr uint64_t kCr4 = 0x20;        // PAE
constexpr uint64_t kEfer = 0x500;      // LME LMA
constexpr uint64_t kPat = 0x0007040600070406ull;
constexpr uint64_t kApicBaseBsp = 0xfee00900, kApicBaseAp = 0xfee00800;
constexpr uint32_t kMsrApicBase = 0x1b, kMsrMiscEnable = 0x1a0, kMsrPat = 0x277;
constexpr uint32_t kMsrFsBase = 0xc0000100, kMsrGsBase = 0xc0000101, kMsrKernelGsBase = 0xc0000102;
constexpr uint32_t kMsrKvmPollControl = 0x4b564d05;
}  // namespace boot

// Writes GDT (0x1000), TSS (0x1080) and page tables (0x10000-0x15fff). RAM must be at
// least 0x16000 bytes (the scenario minimum is 2 MiB).
void build_boot_memory(GuestMemory& mem);

// Entry state of vCPU i of n. Throws std::logic_error if the vCPU's MSR registry refuses
// a documented boot value (a contract break between platform and core, not a guest error).
// LAPIC state at entry is the LAPIC's own reset state (devices/lapic.h), set up by
// Platform::attach_lapic.
void init_vcpu_boot_state(Vcpu& vcpu, unsigned i, unsigned n, uint64_t ram_bytes, uint64_t entry);

// `guest.boot` "multiboot" (scenarios/guest/boot.md §8, multiboot.h): vCPU 0 gets the state
// a Multiboot loader hands over (32-bit protected mode, paging off, EAX = 0x2BADB002,
// EBX = the MBI, flat segments from the firmware GDT). The others only get their
// IA32_APIC_BASE (0xfee00800): they wait for INIT and SIPI, which give them their state.
// No direct-boot GDT, TSS or page tables exist for these vCPUs (build_boot_memory is not
// called: guest memory belongs to the kernel).
void init_vcpu_multiboot_state(Vcpu& vcpu, unsigned i, uint64_t entry);

}  // namespace pvsim
