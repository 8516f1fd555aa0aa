/* nmi - non-maskable interrupts sent as IPIs (Intel SDM Vol.3A 6.7.1, 11.6.1).
 *
 * vCPU 0 sends NMIs (ICR delivery mode 100b) to vCPU 1:
 *   1. vCPU 1 executes CLI; HLT. A fixed interrupt could never wake it (IF=0: the run
 *      would end in a deadlock), an NMI does: the handler runs, IRETQ returns after the
 *      HLT, and IF is still 0.
 *   2. vCPU 1 spins with IF=0 while vCPU 0 sends first a fixed IPI and then an NMI. The NMI
 *      is taken inside the loop; the fixed vector stays pending in the IRR until vCPU 1
 *      executes STI, and only then is taken.
 *   3. NMI blocking: while vCPU 1 is inside its NMI handler, vCPU 0 sends another NMI. It
 *      is held (SDM 6.7.1: "no other NMIs are accepted until the IRET") and delivered
 *      right after the handler's IRETQ: the count goes up only after the return.
 *
 * In the trace: kvm_apic_ipi with delivery mode NMI, then on vCPU 1 a kvm_apic_accept_irq
 * "vec 0 (NMI|edge)" (modern KVM traces NMI acceptance like any other delivery) and a
 * pvsim_inj_nmi; an NMI has no IRR/ISR bit, so no kvm_eoi follows its handler. The scenario's
 * expect.trace entries pin each part (scenarios/nmi.json). */
#include "apic.h"
#include "irq.h"
#include "libc.h"
#include "report.h"
#include "smp.h"

#define SPURIOUS_VECTOR 0xff
#define FIXED_VECTOR 0x50
#define WAIT_SPINS 500000ul

static volatile uint32_t nmi_count, fixed_count;
static volatile uint32_t step;          /* vCPU 1 -> vCPU 0: where it is */
static volatile uint32_t go;            /* vCPU 0 -> vCPU 1 */
static volatile uint64_t rflags_after_hlt;
static volatile uint32_t nmis_in_loop, fixed_in_loop, spins_in_loop;
static volatile uint32_t in_handler_hold;   /* part 3: hold the handler until released */
static volatile uint32_t handler_entered;
static volatile uint32_t count_while_held;  /* nmi_count seen at the end of the held handler */

static void nmi_handler(unsigned vector, struct ex_frame* f)
{
    (void)vector;
    (void)f;
    uint32_t n = ++nmi_count;
    if (in_handler_hold && n == 3) {
        /* Part 3: tell vCPU 0 we are inside, then wait until it has sent the next NMI
         * and some time has passed. A nested NMI would run here and bump nmi_count. */
        handler_entered = 1;
        wait_until_eq32(&in_handler_hold, 0, WAIT_SPINS);
        for (unsigned i = 0; i < 20000; ++i)
            pause();
        count_while_held = nmi_count;
    }
}

static void fixed_handler(unsigned vector, struct ex_frame* f)
{
    (void)vector;
    (void)f;
    ++fixed_count;
}

/* vCPU 0: let vCPU 1 run on for a while (it has to reach its HLT or loop). */
static void let_time_pass(void)
{
    for (unsigned i = 0; i < 20000; ++i)
        pause();
}

void ap_main(unsigned cpu, unsigned ncpus)
{
    (void)ncpus;
    if (cpu != 1) {
        smp_barrier();
        smp_barrier();
        return;
    }
    apic_init(APIC_MODE_XAPIC, SPURIOUS_VECTOR);
    smp_barrier();
    /* Part 1: halted with interrupts disabled. */
    cli();
    step = 1;
    hlt();
    rflags_after_hlt = read_rflags();
    step = 2;

    /* Part 2: spin with IF=0 until an NMI arrives. */
    wait_until_eq32(&go, 1, WAIT_SPINS);
    step = 3;
    uint32_t before = nmi_count;
    unsigned long spins = 0;
    while (nmi_count == before && spins < WAIT_SPINS) {
        ++spins;
        pause();
    }
    nmis_in_loop = nmi_count - before;
    fixed_in_loop = fixed_count;
    spins_in_loop = (uint32_t)spins;
    sti(); /* the pending fixed interrupt is taken after the STI shadow */
    for (unsigned i = 0; i < 1000 && fixed_count == 0; ++i)
        pause();
    cli();
    step = 4;

    /* Part 3 happens in the handler; wait here until both NMIs have been taken. */
    for (unsigned long i = 0; i < WAIT_SPINS && nmi_count < 4; ++i)
        pause();
    step = 5;
    smp_barrier();
}

int main(unsigned cpu, unsigned ncpus, unsigned long ram_bytes)
{
    (void)cpu;
    (void)ram_bytes;
    if (smp_ncpus() < 2) {
        printf("nmi: needs 2 vCPUs, has %u\n", ncpus);
        report(false, "vCPU count");
        report_summary();
    }
    irq_set_handler(NMI_VECTOR, nmi_handler);
    irq_set_handler_eoi(FIXED_VECTOR, fixed_handler);
    apic_init(APIC_MODE_XAPIC, SPURIOUS_VECTOR);
    smp_barrier();

    report_prefix_push("halted with IF=0");
    wait_until_eq32(&step, 1, WAIT_SPINS);
    let_time_pass();
    report(step == 1 && nmi_count == 0, "vCPU 1 is parked in HLT");
    apic_ipi_nmi(1);
    wait_until_eq32(&step, 2, WAIT_SPINS);
    report(step == 2 && nmi_count == 1, "the NMI woke it: handler ran %u time(s), execution resumed after HLT",
           nmi_count);
    report(!(rflags_after_hlt & RFLAGS_IF), "IF is still 0 after the NMI handler's IRETQ (rflags 0x%lx)",
           rflags_after_hlt);
    report_prefix_pop();

    report_prefix_push("IF=0 loop");
    go = 1;
    wait_until_eq32(&step, 3, WAIT_SPINS);
    apic_ipi_fixed(1, FIXED_VECTOR);
    let_time_pass();
    apic_ipi_nmi(1);
    wait_until_eq32(&step, 4, WAIT_SPINS);
    report(nmis_in_loop == 1, "the NMI was taken inside the loop (after %u spins)", spins_in_loop);
    report(fixed_in_loop == 0, "the fixed interrupt sent before it was not (IF=0)");
    report(fixed_count == 1, "the fixed interrupt was taken after STI");
    report_prefix_pop();

    report_prefix_push("NMI blocking");
    in_handler_hold = 1;
    apic_ipi_nmi(1);
    wait_until_eq32(&handler_entered, 1, WAIT_SPINS);
    apic_ipi_nmi(1);
    let_time_pass();
    in_handler_hold = 0;
    wait_until_eq32(&step, 5, WAIT_SPINS);
    report(handler_entered && count_while_held == 3, "no nested NMI while the handler runs (count %u in handler)",
           count_while_held);
    report(nmi_count == 4, "the blocked NMI was delivered after IRETQ (count %u)", nmi_count);
    report_prefix_pop();
    smp_barrier();
    report_summary();
}
