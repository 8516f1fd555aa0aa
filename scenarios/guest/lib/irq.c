/* irq.c - interrupt handler table (see irq.h). */
#include "irq.h"

#include "apic.h"
#include "libc.h"
#include "smp.h"

static irq_handler_fn irq_handlers[256];
static bool irq_auto_eoi[256];
static volatile unsigned long irq_counts[MAX_CPUS];

static void irq_dispatch(struct ex_frame* f)
{
    unsigned vector = (unsigned)(f->vector & 255);
    ++irq_counts[this_cpu()];
    irq_handlers[vector](vector, f);
    if (irq_auto_eoi[vector])
        apic_eoi();
}

static void install(unsigned vector, irq_handler_fn fn, bool eoi)
{
    if ((vector != NMI_VECTOR && vector < 32) || vector > 255 || !fn) {
        printf("FAIL: irq_set_handler: vector %u is not an interrupt vector\n", vector);
        exit(1);
    }
    irq_handlers[vector] = fn;
    irq_auto_eoi[vector] = eoi && vector != NMI_VECTOR;
    handle_exception(vector, irq_dispatch);
}

void irq_set_handler(unsigned vector, irq_handler_fn fn) { install(vector, fn, false); }
void irq_set_handler_eoi(unsigned vector, irq_handler_fn fn) { install(vector, fn, true); }

unsigned long irq_count_this_cpu(void) { return irq_counts[this_cpu()]; }
