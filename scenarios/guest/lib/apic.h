/* apic.h - the local APIC from the guest's side (Intel SDM Vol.3A chapter 11), behind one
 * interface for both access methods:
 *   xAPIC  - 4 KiB MMIO page at the address in IA32_APIC_BASE (0xfee00000 at boot);
 *            register at offset o is a 32-bit load/store at base + o (SDM 11.4.1).
 *   x2APIC - MSR 0x800 + (o >> 4) (SDM 11.12.1.2); the ICR is one 64-bit MSR (0x830),
 *            DFR does not exist and LDR is read-only (derived from the ID).
 * apic_init() picks the method per vCPU; every other call uses it. Register arguments are
 * always the xAPIC offsets below. */
#pragma once

#include "processor.h"

/* Register offsets (SDM Vol.3A Table 11-1). */
#define APIC_ID 0x020
#define APIC_LVR 0x030
#define APIC_TPR 0x080
#define APIC_APR 0x090
#define APIC_PPR 0x0a0
#define APIC_EOI 0x0b0
#define APIC_LDR 0x0d0
#define APIC_DFR 0x0e0
#define APIC_SVR 0x0f0
#define APIC_ISR 0x100 /* 8 banks of 32 bits, 0x10 apart */
#define APIC_TMR 0x180
#define APIC_IRR 0x200
#define APIC_ESR 0x280
#define APIC_ICR 0x300
#define APIC_ICR2 0x310
#define APIC_LVTT 0x320
#define APIC_LVT_THERMAL 0x330
#define APIC_LVT_PERF 0x340
#define APIC_LVT0 0x350
#define APIC_LVT1 0x360
#define APIC_LVTERR 0x370
#define APIC_TMICT 0x380
#define APIC_TMCCT 0x390
#define APIC_TDCR 0x3e0
#define APIC_SELF_IPI 0x3f0 /* x2APIC only (MSR 0x83f) */

#define MSR_X2APIC_BASE 0x800u
#define MSR_IA32_TSC_DEADLINE 0x6e0u

/* IA32_APIC_BASE bits (SDM 11.4.4 Figure 11-5, 11.12.1 Figure 11-26). */
#define APIC_BASE_BSP (1ull << 8)
#define APIC_BASE_EXTD (1ull << 10)
#define APIC_BASE_ENABLE (1ull << 11)

/* SVR (SDM 11.9 Figure 11-23). */
#define APIC_SVR_ENABLE (1u << 8)

/* ICR low word (SDM 11.6.1 Figure 11-12). */
#define APIC_DM_FIXED (0u << 8)
#define APIC_DM_LOWEST (1u << 8)
#define APIC_DM_SMI (2u << 8)
#define APIC_DM_NMI (4u << 8)
#define APIC_DM_INIT (5u << 8)
#define APIC_DM_STARTUP (6u << 8)
#define APIC_DEST_LOGICAL (1u << 11)
#define APIC_ICR_BUSY (1u << 12) /* delivery status (xAPIC only) */
#define APIC_INT_ASSERT (1u << 14)
#define APIC_INT_LEVEL (1u << 15)
#define APIC_DEST_SELF (1u << 18)
#define APIC_DEST_ALLINC (2u << 18)
#define APIC_DEST_ALLBUT (3u << 18)

/* LVT (SDM 11.5.1 Figure 11-8). */
#define APIC_LVT_MASKED (1u << 16)
#define APIC_LVT_TIMER_ONESHOT (0u << 17)
#define APIC_LVT_TIMER_PERIODIC (1u << 17)
#define APIC_LVT_TIMER_TSCDEADLINE (2u << 17)

/* CPUID.1:ECX feature bits. */
#define CPUID_1_ECX_X2APIC (1u << 21)
#define CPUID_1_ECX_TSC_DEADLINE (1u << 24)

enum apic_mode { APIC_MODE_XAPIC, APIC_MODE_X2APIC };

bool cpu_has_x2apic(void);
bool cpu_has_tsc_deadline(void);

/* Per vCPU: makes sure the APIC is globally enabled (IA32_APIC_BASE.EN), switches to x2APIC
 * if asked (xAPIC -> x2APIC is the legal transition, SDM 11.12.5 Figure 11-27), then
 * software-enables it with `spurious_vector` in the SVR (SDM 11.4.7.2) and clears the ESR.
 * Returns false (and changes nothing) if x2APIC is asked for but CPUID does not offer it. */
bool apic_init(enum apic_mode mode, uint8_t spurious_vector);
enum apic_mode apic_mode(void);

uint32_t apic_read(unsigned reg);
void apic_write(unsigned reg, uint32_t value);

/* xAPIC: ID register bits 31:24; x2APIC: the 32-bit x2APIC ID (SDM 11.4.6, 11.12.5.1). */
uint32_t apic_id(void);

static inline void apic_set_tpr(uint8_t tpr) { apic_write(APIC_TPR, tpr); }
static inline uint8_t apic_get_tpr(void) { return (uint8_t)apic_read(APIC_TPR); }
static inline uint8_t apic_get_ppr(void) { return (uint8_t)apic_read(APIC_PPR); }
/* Writing 0 to EOI (SDM 11.8.5; x2APIC requires the value 0, 11.12.1.2). */
static inline void apic_eoi(void) { apic_write(APIC_EOI, 0); }
/* One bit of the 256-bit IRR / ISR / TMR arrays. */
bool apic_irr_bit(uint8_t vector);
bool apic_isr_bit(uint8_t vector);

/* ESR: a write latches the errors seen since the last write, then the read returns them
 * (SDM 11.5.3); this helper does both. */
uint32_t apic_read_esr(void);

/* Logical destination, xAPIC only: flat model (DFR = 0xffffffff) with LDR bits 31:24 = mask
 * (SDM 11.6.2.2). Returns false in x2APIC mode, where LDR is derived from the ID. */
bool apic_set_logical_flat(uint8_t mask);

/* Sends an IPI: `icr_low` = vector | delivery mode | destination mode | level | shorthand,
 * `dest` = physical APIC ID or logical mask (8 bits in xAPIC, 32 in x2APIC). In xAPIC mode
 * the high word goes first (writing the low word sends, SDM 11.6.1), then we wait for the
 * delivery-status bit to clear. */
void apic_send_ipi(uint32_t dest, uint32_t icr_low);
static inline void apic_ipi_fixed(uint32_t dest, uint8_t vector)
{
    apic_send_ipi(dest, APIC_DM_FIXED | APIC_INT_ASSERT | vector);
}
static inline void apic_ipi_logical(uint32_t mask, uint8_t vector)
{
    apic_send_ipi(mask, APIC_DM_FIXED | APIC_DEST_LOGICAL | APIC_INT_ASSERT | vector);
}
/* shorthand: APIC_DEST_SELF, APIC_DEST_ALLINC or APIC_DEST_ALLBUT. */
static inline void apic_ipi_shorthand(uint32_t shorthand, uint8_t vector)
{
    apic_send_ipi(0, APIC_DM_FIXED | APIC_INT_ASSERT | shorthand | vector);
}
static inline void apic_ipi_nmi(uint32_t dest) { apic_send_ipi(dest, APIC_DM_NMI | APIC_INT_ASSERT); }
/* INIT (level assert) and start-up with an 8-bit vector (start at vector << 12), the
 * sequence of SDM 9.4.4.1 "Typical BSP Initialization Sequence". */
static inline void apic_ipi_init(uint32_t dest) { apic_send_ipi(dest, APIC_DM_INIT | APIC_INT_ASSERT); }
static inline void apic_ipi_startup(uint32_t dest, uint8_t vector)
{
    apic_send_ipi(dest, APIC_DM_STARTUP | APIC_INT_ASSERT | vector);
}
/* x2APIC SELF IPI register (MSR 0x83f, SDM 11.12.11); in xAPIC mode the self shorthand. */
void apic_self_ipi(uint8_t vector);

/* ---- timer (SDM 11.5.4) ---- */
/* Divide configuration register encoding for divisor 1, 2, 4, ..., 128 (Figure 11-10);
 * returns 0xffffffff for anything else. */
uint32_t apic_divide_bits(unsigned divisor);
/* Programs the divider and LVT timer (`lvt_mode` = APIC_LVT_TIMER_ONESHOT or _PERIODIC,
 * vector, unmasked) without starting it. */
void apic_timer_setup(uint32_t lvt_mode, uint8_t vector, unsigned divisor);
/* Writes the initial count: the countdown starts at this write (SDM 11.5.4); 0 stops it. */
static inline void apic_timer_start(uint32_t initial_count) { apic_write(APIC_TMICT, initial_count); }
/* setup + start in one call. */
void apic_timer_oneshot(uint8_t vector, unsigned divisor, uint32_t initial_count);
void apic_timer_periodic(uint8_t vector, unsigned divisor, uint32_t initial_count);
/* TSC-deadline mode (SDM 11.5.4.1): LVT first, then IA32_TSC_DEADLINE = deadline.
 * Writing 0 disarms. */
void apic_timer_tsc_deadline(uint8_t vector, uint64_t deadline);
/* Masks the LVT and writes initial count 0, which stops one-shot and periodic timers. */
void apic_timer_stop(void);
static inline uint32_t apic_timer_current(void) { return apic_read(APIC_TMCCT); }
