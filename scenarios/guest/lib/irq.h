/* irq.h - an interrupt handler table on top of the exception machinery (desc.c builds one
 * IDT with 256 stubs, exception.c dispatches to handle_exception() handlers). Interrupt
 * gates clear IF on entry (SDM Vol.3A 6.8.1), so a handler runs with interrupts off unless
 * it executes STI itself; IRETQ restores the interrupted RFLAGS.
 *
 * Vectors: 2 (NMI) and 32-255. The IDT and the table are shared by all vCPUs; handlers
 * use this_cpu() (smp.h) for per-vCPU state. */
#pragma once

#include "desc.h"

typedef void (*irq_handler_fn)(unsigned vector, struct ex_frame* frame);

/* Installs fn for `vector`. The handler itself signals EOI (apic_eoi()) when it wants to:
 * e.g. to observe in-service priority, or for NMI, which has no EOI. */
void irq_set_handler(unsigned vector, irq_handler_fn fn);
/* Same, but the runtime writes EOI after fn returns (the usual case for fixed interrupts). */
void irq_set_handler_eoi(unsigned vector, irq_handler_fn fn);

/* Interrupts taken on this vCPU since start, all vectors together (counted before the
 * handler runs). */
unsigned long irq_count_this_cpu(void);

static inline uint64_t irq_save(void)
{
    uint64_t flags = read_rflags();
    cli();
    return flags;
}
static inline void irq_restore(uint64_t flags)
{
    if (flags & RFLAGS_IF)
        sti();
}
static inline bool irqs_enabled(void) { return (read_rflags() & RFLAGS_IF) != 0; }
