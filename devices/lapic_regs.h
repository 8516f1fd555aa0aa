// devices/lapic_regs.h — local APIC register offsets and field masks (SDM Vol. 3A §11.4.1
// Table 11-1 for the xAPIC MMIO page, §11.12.1.2 Table 11-6 for the x2APIC MSR map).
// One table of numbers, so lapic.cpp and the tests never spell an offset twice.
#pragma once
#include <cstdint>

namespace pvsim::lapic {

// xAPIC MMIO offsets (16-byte stride). The x2APIC MSR for offset o is 0x800 + (o >> 4).
enum Reg : uint32_t {
  kId = 0x020,
  kVersion = 0x030,
  kTpr = 0x080,
  kApr = 0x090,
  kPpr = 0x0a0,
  kEoi = 0x0b0,
  kRrd = 0x0c0,
  kLdr = 0x0d0,
  kDfr = 0x0e0,
  kSvr = 0x0f0,
  kIsr0 = 0x100,  // 8 banks, 0x100..0x170
  kTmr0 = 0x180,  // 8 banks, 0x180..0x1f0
  kIrr0 = 0x200,  // 8 banks, 0x200..0x270
  kEsr = 0x280,
  kLvtCmci = 0x2f0,
  kIcrLow = 0x300,
  kIcrHigh = 0x310,
  kLvtTimer = 0x320,
  kLvtThermal = 0x330,
  kLvtPerf = 0x340,
  kLvtLint0 = 0x350,
  kLvtLint1 = 0x360,
  kLvtError = 0x370,
  kTimerInitial = 0x380,
  kTimerCurrent = 0x390,
  kTimerDivide = 0x3e0,
  kSelfIpi = 0x3f0,  // x2APIC only (MSR 0x83f); reserved in the xAPIC page
};

constexpr uint32_t kMsrBase = 0x800;
constexpr uint32_t kMsrLast = 0x8ff;
constexpr uint32_t msr_for(uint32_t offset) {
  return kMsrBase + (offset >> 4);
}

// Version register: version 0x14 (integrated APIC), max LVT entry 5 (six LVTs: CMCI is not
// modelled, but the count matches what KVM reports), no EOI-broadcast suppression (bit 24).
constexpr uint32_t kVersionValue = 0x50014;

// IA32_APIC_BASE (MSR 0x1b) fields, SDM §11.4.4 Figure 11-5 and §11.12.1 Figure 11-26.
constexpr uint32_t kApicBaseMsr = 0x1b;
constexpr uint64_t kBaseBsp = 1ull << 8;
constexpr uint64_t kBaseExtd = 1ull << 10;
constexpr uint64_t kBaseEnable = 1ull << 11;
constexpr uint64_t kDefaultBase = 0xfee00000;

// IA32_TSC_DEADLINE (SDM §11.5.4.1).
constexpr uint32_t kTscDeadlineMsr = 0x6e0;

// LVT fields (SDM §11.5.1 Figure 11-8).
constexpr uint32_t kLvtVectorMask = 0xff;
constexpr uint32_t kLvtDeliveryStatus = 1u << 12;
constexpr uint32_t kLvtMasked = 1u << 16;
constexpr uint32_t kLvtTimerModeShift = 17;
constexpr uint32_t kLvtTimerModeMask = 3u << kLvtTimerModeShift;

// SVR fields (SDM §11.9 Figure 11-23).
constexpr uint32_t kSvrEnable = 1u << 8;
constexpr uint32_t kSvrFocusDisable = 1u << 9;

// ESR bits (SDM §11.5.3 Figure 11-9).
constexpr uint32_t kEsrSendIllegalVector = 1u << 5;
constexpr uint32_t kEsrReceiveIllegalVector = 1u << 6;
constexpr uint32_t kEsrIllegalRegister = 1u << 7;

// ICR fields (SDM §11.6.1 Figure 11-12).
constexpr uint32_t kIcrVectorMask = 0xff;
constexpr uint32_t kIcrDeliveryShift = 8;
constexpr uint32_t kIcrDestModeLogical = 1u << 11;
constexpr uint32_t kIcrLevelAssert = 1u << 14;
constexpr uint32_t kIcrTriggerLevel = 1u << 15;
constexpr uint32_t kIcrShorthandShift = 18;

}  // namespace pvsim::lapic
