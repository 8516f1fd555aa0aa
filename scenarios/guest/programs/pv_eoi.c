/* pv_eoi - the EOI exits PV EOI saves, and what a double EOI breaks (pvmsr/README.md §7,
 * lib/pv_eoi.h).
 *
 * One vCPU, x2APIC (xAPIC if CPUID lacks it), self-IPIs (each SELF IPI or ICR write is an
 * exit, and KVM injects the interrupt at the entry that ends it):
 *   1. PV EOI off: 32 self-IPIs on vector 0x41; each handler writes the EOI register:
 *      32 EOI exits.
 *   2. PV EOI on (MSR 0x4b564d04 = GPA | 1): the same 32. KVM arms bit 0 of the word at
 *      each injection (nothing else pending, the vector alone in service); the handler's
 *      BTR finds it set, so no EOI write: 0 EOI exits, and KVM does each EOI at the next
 *      exit (the next ICR access), tracing kvm_pv_eoi.
 *   3. Pairs: 0x42 and 0x41 sent with IF=0, then IF=1. 0x42 is injected while 0x41 waits
 *      in the IRR, so KVM does not arm the bit and 0x42's handler writes the EOI register;
 *      0x41 follows alone and is armed. 8 pairs: 8 by the bit, 8 by the register.
 *   4. Nested, correct: the handler of 0x61 (class 6) enables interrupts and sends itself
 *      0x81 (class 8), which nests; 0x81's EOI is the BTR alone. Back in 0x61's handler its
 *      ISR bit is still set, and 0x52 (class 5), sent then, waits for 0x61's EOI.
 *      Order: 0x61 0x81 eoi(0x81) eoi(0x61) 0x52.
 *   5. Nested, double EOI: the same, but 0x81's handler clears the bit AND writes the EOI
 *      register. The write exits; KVM first sees the cleared bit and does 0x81's EOI, then
 *      the write itself ends the next interrupt in service: 0x61, whose handler is still
 *      running. Its ISR bit reads 0, and 0x52 is delivered inside 0x61's handler, before
 *      0x61 ever wrote its EOI. Order: 0x61 0x81 eoi(0x81) 0x52 eoi(0x61).
 *
 * Scenario: vcpus 1 (pv-eoi). Without PV_EOI in CPUID the PV phases SKIP. In the trace:
 * kvm_apic "apic_write APIC_EOI" for every register EOI; kvm_pv_eoi "apicid 0 vector 65"
 * for every EOI KVM did for the guest; in part 5, at the exit of 0x81's EOI write, kvm_eoi
 * and kvm_pv_eoi for vector 129 (KVM disarms before it handles the exit), then the write's
 * own kvm_eoi for vector 97. */
#include "apic.h"
#include "irq.h"
#include "libc.h"
#include "pv.h"
#include "pv_eoi.h"
#include "report.h"
#include "smp.h"

#define SPURIOUS_VECTOR 0xff
#define V_ONE 0x41
#define V_TWO 0x42
#define V_MID 0x52   /* class 5 */
#define V_OUTER 0x61 /* class 6 */
#define V_INNER 0x81 /* class 8 */
#define N 32u
#define PAIRS 8u
#define EOI_MARK 0x100u

static volatile unsigned handled[256];
static volatile unsigned log_len;
static volatile unsigned log_entries[16];
static volatile bool double_mode;
static volatile bool outer_isr_after_inner;

static void log_event(unsigned what)
{
    unsigned n = log_len;
    if (n < 16)
        log_entries[n] = what;
    log_len = n + 1;
}

static void count_handler(unsigned vector, struct ex_frame* f)
{
    (void)f;
    ++handled[vector];
}

static void mid_handler(unsigned vector, struct ex_frame* f)
{
    (void)f;
    log_event(vector);
}

static void inner_handler(unsigned vector, struct ex_frame* f)
{
    (void)f;
    log_event(vector);
    if (double_mode)
        pv_eoi_double();
    else
        pv_eoi();
    log_event(EOI_MARK | vector);
}

/* A few instructions with IF=1, room for a deliverable interrupt. */
static void window(void)
{
    sti();
    for (unsigned i = 0; i < 200; ++i)
        pause();
    cli();
}

static void outer_handler(unsigned vector, struct ex_frame* f)
{
    (void)f;
    log_event(vector);
    sti();
    apic_self_ipi(V_INNER); /* nests here: class 8 above class 6 */
    cli();
    outer_isr_after_inner = apic_isr_bit(V_OUTER);
    apic_self_ipi(V_MID);
    window(); /* 0x52 may nest only if 0x61 is no longer in service */
    log_event(EOI_MARK | vector);
    pv_eoi();
    /* IRETQ restores IF=1: a held 0x52 arrives right after. */
}

static void self_ipis(unsigned n)
{
    sti();
    for (unsigned i = 0; i < n; ++i)
        apic_self_ipi(V_ONE);
    cli();
}

static void pairs(unsigned n)
{
    for (unsigned i = 0; i < n; ++i) {
        apic_self_ipi(V_ONE);
        apic_self_ipi(V_TWO);
        window();
    }
}

static void print_order(const char* what)
{
    printf("pv_eoi: %s: order of events:", what);
    for (unsigned i = 0; i < log_len && i < 16; ++i)
        if (log_entries[i] & EOI_MARK)
            printf(" eoi(0x%x)", log_entries[i] & 0xff);
        else
            printf(" 0x%x", log_entries[i]);
    printf("\n");
}

static bool order_is(const unsigned* expect, unsigned n)
{
    if (log_len != n)
        return false;
    for (unsigned i = 0; i < n; ++i)
        if (log_entries[i] != expect[i])
            return false;
    return true;
}

static void nested(bool dbl)
{
    log_len = 0;
    double_mode = dbl;
    apic_self_ipi(V_OUTER);
    window();
    window(); /* room for the held 0x52 after 0x61's IRETQ */
}

int main(unsigned cpu, unsigned ncpus, unsigned long ram_bytes)
{
    (void)cpu;
    (void)ncpus;
    (void)ram_bytes;
    /* x2APIC when CPUID offers it, as Linux uses it under KVM: every EOI write is then a
     * WRMSR exit of its own (MSR 0x80b). */
    bool x2apic = apic_init(APIC_MODE_X2APIC, SPURIOUS_VECTOR);
    if (!x2apic)
        apic_init(APIC_MODE_XAPIC, SPURIOUS_VECTOR);
    pv_cpu_init();
    pv_irq_set_handler_eoi(V_ONE, count_handler);
    pv_irq_set_handler_eoi(V_TWO, count_handler);
    pv_irq_set_handler_eoi(V_MID, mid_handler);
    irq_set_handler(V_OUTER, outer_handler);
    irq_set_handler(V_INNER, inner_handler);
    const volatile struct pv_eoi_counters* c = pv_eoi_counters(0);
    printf("pv_eoi: CPUID 0x40000001 eax 0x%x, %s\n", kvm_para_features(), x2apic ? "x2APIC" : "xAPIC");

    report_prefix_push("PV EOI off");
    self_ipis(N);
    printf("pv_eoi: PV EOI off: %u interrupts, %lu EOI register writes\n", handled[V_ONE], c->by_register);
    report(handled[V_ONE] == N && c->by_register == N && c->by_bit == 0, "%u interrupts, %u EOI writes", N, N);
    report_prefix_pop();

    unsigned fault = pv_eoi_enable();
    if (fault == PV_EOI_NOT_OFFERED) {
        report_skip("PV_EOI (bit 6) not offered by CPUID");
        report_summary();
    }
    report(fault == 0, "MSR 0x4b564d04 = 0x%lx accepted (fault %u)", (uint64_t)(uintptr_t)pv_eoi_word(0) | 1, fault);
    if (fault)
        report_summary();
    uint64_t readback = 0;
    unsigned rfault = rdmsr_safe(MSR_KVM_PV_EOI_EN, &readback);
    report(rfault == 0 && readback == ((uint64_t)(uintptr_t)pv_eoi_word(0) | 1), "RDMSR 0x4b564d04 reads it back");

    report_prefix_push("PV EOI on");
    pv_eoi_reset_counters(0);
    handled[V_ONE] = 0;
    self_ipis(N);
    printf("pv_eoi: PV EOI on: %u interrupts, %lu EOIs by clearing the bit, %lu EOI register writes\n", handled[V_ONE],
           c->by_bit, c->by_register);
    report(handled[V_ONE] == N && c->by_bit == N && c->by_register == 0,
           "%u interrupts, every EOI by the bit: %u EOI exits saved", N, N);
    report_prefix_pop();

    report_prefix_push("pairs");
    pv_eoi_reset_counters(0);
    handled[V_ONE] = handled[V_TWO] = 0;
    pairs(PAIRS);
    printf("pv_eoi: %u pairs: %lu EOIs by the bit, %lu by the register\n", PAIRS, c->by_bit, c->by_register);
    report(handled[V_ONE] == PAIRS && handled[V_TWO] == PAIRS && c->by_bit == PAIRS && c->by_register == PAIRS,
           "0x42 injected with 0x41 pending is not armed: %u by the register, %u by the bit", PAIRS, PAIRS);
    report_prefix_pop();

    report_prefix_push("nested");
    nested(false);
    print_order("correct EOI");
    static const unsigned good[] = {V_OUTER, V_INNER, EOI_MARK | V_INNER, EOI_MARK | V_OUTER, V_MID};
    report(outer_isr_after_inner && order_is(good, 5),
           "0x81's EOI by the bit ended 0x81 only: 0x61 still in service, 0x52 waited for its EOI");
    report_prefix_pop();

    report_prefix_push("double EOI");
    pv_eoi_reset_counters(0);
    nested(true);
    print_order("bit cleared and EOI written");
    static const unsigned bad[] = {V_OUTER, V_INNER, EOI_MARK | V_INNER, V_MID, EOI_MARK | V_OUTER};
    report(c->doubled == 1, "0x81's handler found the bit armed and still wrote the EOI register");
    report(!outer_isr_after_inner && order_is(bad, 5),
           "two EOIs: 0x61's ISR bit was cleared under its running handler and 0x52 preempted it");
    report_prefix_pop();

    report(pv_eoi_disable() == 0, "MSR 0x4b564d04 = 0 (disable) accepted");
    report(apic_get_ppr() == 0, "nothing left in service (PPR 0x%x)", apic_get_ppr());
    report_summary();
}
