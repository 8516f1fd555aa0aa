/* tpr - interrupt priority in the local APIC (Intel SDM Vol.3A 11.8.3).
 *
 * A fixed interrupt is delivered only if its priority class (vector bits 7:4) is above the
 * processor priority class: PPR = max(TPR, highest in-service vector) by class. Everything
 * here uses self-IPIs on one vCPU:
 *   1. TPR above the vector's class: it waits in the IRR (not delivered, PPR = TPR);
 *      TPR equal to its class: still waits (delivery needs a strictly higher class);
 *      TPR below: delivered at once.
 *   2. In-service priority: the handler of 0x61 (class 6) sends itself 0x52 (class 5) and
 *      0x72 (class 7) and enables interrupts. 0x72 preempts it (nested), 0x52 must wait
 *      until the EOI of 0x61; the order of events is logged and checked.
 * In the trace: kvm_apic_accept_irq when the vector enters the IRR, and kvm_inj_virq only
 * when the priority rules let it through; kvm_eoi ends each one. */
#include "apic.h"
#include "irq.h"
#include "libc.h"
#include "report.h"

#define SPURIOUS_VECTOR 0xff
#define V_LOW 0x45   /* class 4 */
#define V_MID 0x52   /* class 5 */
#define V_OUTER 0x61 /* class 6 */
#define V_HIGH 0x72  /* class 7 */
#define END_OF_OUTER 0x100

static volatile unsigned log_len;
static volatile unsigned log_entries[16];
static volatile uint32_t ppr_in_outer, isr_outer_in_outer;

static void log_event(unsigned what)
{
    unsigned n = log_len;
    if (n < 16)
        log_entries[n] = what;
    log_len = n + 1;
}

static void plain_handler(unsigned vector, struct ex_frame* f)
{
    (void)f;
    log_event(vector);
}

static bool logged(unsigned what)
{
    for (unsigned i = 0; i < log_len && i < 16; ++i)
        if (log_entries[i] == what)
            return true;
    return false;
}

/* A few instructions with IF=1: room for a deliverable interrupt to be taken. */
static void window(void)
{
    sti();
    for (unsigned i = 0; i < 200; ++i)
        pause();
    cli();
}

/* Self-IPIs may take a while to arrive (machine.ipi_latency_ns): wait (IF unchanged) until
 * the vector is in the IRR, so each check below starts from a known state. */
static void wait_irr(uint8_t vector)
{
    for (unsigned i = 0; i < 100000 && !apic_irr_bit(vector); ++i)
        pause();
}

static void outer_handler(unsigned vector, struct ex_frame* f)
{
    (void)f;
    log_event(vector);
    ppr_in_outer = apic_get_ppr();
    isr_outer_in_outer = apic_isr_bit(V_OUTER);
    apic_self_ipi(V_MID);
    apic_self_ipi(V_HIGH);
    wait_irr(V_MID);
    wait_irr(V_HIGH);
    window(); /* 0x72 nests here; 0x52 must not */
    log_event(END_OF_OUTER);
    apic_eoi();
}

int main(unsigned cpu, unsigned ncpus, unsigned long ram_bytes)
{
    (void)cpu;
    (void)ncpus;
    (void)ram_bytes;
    apic_init(APIC_MODE_XAPIC, SPURIOUS_VECTOR);
    irq_set_handler_eoi(V_LOW, plain_handler);
    irq_set_handler_eoi(V_MID, plain_handler);
    irq_set_handler_eoi(V_HIGH, plain_handler);
    irq_set_handler(V_OUTER, outer_handler);

    report_prefix_push("TPR");
    apic_set_tpr(0x50);
    report(apic_get_tpr() == 0x50 && apic_get_ppr() == 0x50, "TPR 0x50 reads back, PPR follows it (0x%x)",
           apic_get_ppr());
    apic_self_ipi(V_LOW);
    wait_irr(V_LOW);
    window();
    report(log_len == 0 && apic_irr_bit(V_LOW), "vector 0x%x (class 4) below TPR class 5: pending in IRR", V_LOW);
    apic_set_tpr(0x40);
    window();
    report(log_len == 0 && apic_irr_bit(V_LOW), "TPR 0x40, same class: still pending");
    apic_set_tpr(0x3f);
    window();
    report(log_len == 1 && log_entries[0] == V_LOW && !apic_irr_bit(V_LOW),
           "TPR 0x3f (class 3): delivered once the class is above");
    apic_set_tpr(0);
    report_prefix_pop();

    report_prefix_push("in-service priority");
    log_len = 0;
    apic_self_ipi(V_OUTER);
    wait_irr(V_OUTER);
    window();
    printf("tpr: order of events:");
    for (unsigned i = 0; i < log_len && i < 16; ++i)
        if (log_entries[i] == END_OF_OUTER)
            printf(" eoi(0x61)");
        else
            printf(" 0x%x", log_entries[i]);
    printf("\n");
    report(ppr_in_outer == 0x60 && isr_outer_in_outer, "inside 0x61's handler: PPR 0x%x, ISR bit 0x61 set",
           ppr_in_outer);
    report(log_len == 4 && log_entries[0] == V_OUTER && log_entries[1] == V_HIGH && log_entries[2] == END_OF_OUTER &&
               log_entries[3] == V_MID,
           "0x72 preempted 0x61, 0x52 waited for its EOI");
    report(!logged(V_LOW), "no stray deliveries");
    report(apic_get_ppr() == 0, "PPR back to 0 with nothing in service");
    report_prefix_pop();
    report_summary();
}
