/* pv_eoi.h - PV EOI from the guest's side (pvmsr/README.md §7).
 *
 * Each vCPU gives KVM a 4-byte word through MSR_KVM_PV_EOI_EN (0x4b564d04 = GPA | 1). When
 * KVM injects an interrupt that will be the only one in service with nothing else pending,
 * it sets bit 0 of the word. The guest's EOI then tests and clears that bit with ONE
 * instruction (BTR, not locked: only this vCPU and, while it is out of the guest, the host
 * touch the word): if the bit was set, the host will do the EOI at the next exit and no
 * EOI write (an exit) is needed; if it was clear, the guest writes the APIC's EOI register
 * as usual. Two instructions (a test, then a clear) would race with the host clearing the
 * bit at an exit in between. Linux: kvm_guest_apic_eoi_write in arch/x86/kernel/kvm.c.
 *
 * A guest that clears the bit AND writes the EOI register ends two interrupts: the host's
 * EOI on its behalf, at the exit the register write causes, ends this one, and the write
 * itself then ends the next one in service (pv_eoi_double: the pv_eoi program's hazard).
 *
 * Linked only into the pv_* programs (pv.h). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "irq.h"
#include "pv.h"

#define MSR_KVM_PV_EOI_EN 0x4b564d04u
#define KVM_PV_EOI_ENABLED 1ull
#define KVM_PV_EOI_BIT 0

/* Per vCPU, after apic_init: zeroes the word, then writes the MSR. Returns 0, the vector
 * a refused WRMSR raised, or PV_EOI_NOT_OFFERED when CPUID lacks PV_EOI. */
#define PV_EOI_NOT_OFFERED 0x100u
unsigned pv_eoi_enable(void);
unsigned pv_eoi_disable(void);
bool pv_eoi_enabled(unsigned cpu);
volatile uint32_t* pv_eoi_word(unsigned cpu);

/* One non-locked BTR of bit 0: returns the bit's old value (and clears it). */
static inline bool pv_eoi_test_and_clear(volatile uint32_t* word)
{
    bool was_set;
    __asm__ volatile("btrl $0, %[w]" : [w] "+m"(*word), "=@ccc"(was_set) : : "memory");
    return was_set;
}

/* The EOI of the interrupt being handled: the bit if KVM armed it, else the register
 * (also when PV EOI is off). Returns true when the bit did it. */
bool pv_eoi(void);
/* The mistake: clears the bit AND writes the EOI register. Returns the bit's old value. */
bool pv_eoi_double(void);

struct pv_eoi_counters {
    uint64_t by_bit;      /* EOIs done by clearing the armed bit */
    uint64_t by_register; /* EOIs written to the APIC's EOI register */
    uint64_t doubled;     /* pv_eoi_double calls that found the bit set (two EOIs) */
};
const volatile struct pv_eoi_counters* pv_eoi_counters(unsigned cpu);
void pv_eoi_reset_counters(unsigned cpu);

/* Like irq_set_handler_eoi, with the EOI after fn done by pv_eoi(). */
void pv_irq_set_handler_eoi(unsigned vector, irq_handler_fn fn);
