/* pv_ipi - fixed IPIs to sets of vCPUs with KVM_HC_SEND_IPI (hypercall 10, CPUID
 * 0x40000001 bit 11 PV_SEND_IPI; pvmsr/README.md §10, lib/pv_ipi.h).
 *
 * Eight vCPUs; vCPUs 1-7 wait with STI;HLT and count, per vector, the interrupts they take.
 * vCPU 0 sends:
 *   1. vector 0x51 to vCPUs {1, 3, 4, 6, 7}: one hypercall, a0 = bitmap 0b1101101 from
 *      min = 1, returns 5;
 *   2. vector 0x52 to every other vCPU, {1..7}: one hypercall, returns 7;
 *   3. vector 0x53 to {5, 6, 7}: the window starts at min = 5 (a0 = 0b111);
 *   4. vector 0x54 to {0, 2}: itself included (taken when it next enables interrupts);
 *   5. vCPU 3 sends vector 0x55 to {0, 7}: any vCPU may send;
 *   6. raw: a0 names APIC IDs 1 and 40, and no vCPU has APIC ID 40: returns 1;
 *   7. raw with the self shorthand in a3: -KVM_EINVAL (KVM refuses destination-mode and
 *      shorthand bits), and nobody receives anything;
 *   8. raw with min = 100 (every named ID beyond the last vCPU): returns 0.
 * Each target must count exactly one interrupt of each vector sent to it and nobody else
 * any. The same sends through the xAPIC would be one ICR write (two MMIO writes and a read
 * of the busy bit, three exits) per target; here each is one VMCALL exit.
 *
 * Scenario: machine.vcpus 8 (pv-ipi). Without PV_SEND_IPI in CPUID every check is a SKIP.
 * In the trace: kvm_hypercall "nr 0xa a0 0x6d a1 0x0 a2 0x1 a3 0x51" for send 1, then one
 * kvm_apic_accept_irq per target. */
#include "apic.h"
#include "irq.h"
#include "libc.h"
#include "pv.h"
#include "pv_ipi.h"
#include "report.h"
#include "smp.h"

#define NCPUS 8u
#define SPURIOUS_VECTOR 0xff
#define V_FIRST 0x51
#define V_LAST 0x56
#define NVEC (V_LAST - V_FIRST + 1)

static volatile uint32_t received[MAX_CPUS][NVEC];
static volatile uint32_t stop_waiting;
static volatile uint32_t go_send_from_3, sent_from_3;
static struct pv_ipi_result result_from_3;

static void count_irq(unsigned vector, struct ex_frame* f)
{
    (void)f;
    __atomic_add_fetch(&received[this_cpu()][vector - V_FIRST], 1u, __ATOMIC_SEQ_CST);
}

static void cpu_setup(void)
{
    apic_init(APIC_MODE_XAPIC, SPURIOUS_VECTOR);
    pv_cpu_init();
}

void ap_main(unsigned cpu, unsigned ncpus)
{
    (void)ncpus;
    cpu_setup();
    smp_barrier();
    while (!stop_waiting) {
        if (cpu == 3 && go_send_from_3 && !sent_from_3) {
            result_from_3 = pv_send_ipi_mask(CPU_BIT(0) | CPU_BIT(7), V_FIRST + 4);
            sent_from_3 = 1;
            continue;
        }
        /* STI;HLT: an IPI (or nothing: a spurious wake-up) ends the HLT; then look again. */
        safe_halt();
        cli();
    }
    smp_barrier();
}

/* Waits until the counts add up to `total` for vector v (IF=1 so our own IPI lands too). */
static uint32_t total_for(unsigned v)
{
    uint32_t t = 0;
    for (unsigned c = 0; c < NCPUS; ++c)
        t += received[c][v - V_FIRST];
    return t;
}

static void wait_total(unsigned v, uint32_t total)
{
    /* Bounded: some checks wait for an interrupt that must NOT come. */
    sti();
    for (unsigned long i = 0; i < 20000 && total_for(v) < total; ++i)
        pause();
    /* A little more time for a stray delivery to show up. */
    for (unsigned i = 0; i < 2000; ++i)
        pause();
    cli();
}

/* True when exactly the vCPUs in `mask` got one interrupt of vector v and no one else any. */
static bool exactly(unsigned v, cpumask_t mask)
{
    for (unsigned c = 0; c < NCPUS; ++c)
        if (received[c][v - V_FIRST] != ((mask & CPU_BIT(c)) ? 1u : 0u))
            return false;
    return true;
}

static void print_receivers(unsigned v)
{
    printf("pv_ipi: vector 0x%x received by vCPUs:", v);
    for (unsigned c = 0; c < NCPUS; ++c)
        if (received[c][v - V_FIRST])
            printf(" %u(x%u)", c, received[c][v - V_FIRST]);
    printf("\n");
}

static void send_and_check(const char* what, cpumask_t mask, unsigned v, unsigned expect_count)
{
    struct pv_ipi_result r = pv_send_ipi_mask(mask, (uint8_t)v);
    wait_total(v, expect_count);
    print_receivers(v);
    report(r.first_error == 0 && r.hypercalls == 1 && r.accepted == (long)expect_count &&
               r.requested == expect_count && exactly(v, mask),
           "%s: 1 hypercall, %ld of %u accepted, each target took vector 0x%x once", what, r.accepted,
           r.requested, v);
}

int main(unsigned cpu, unsigned ncpus, unsigned long ram_bytes)
{
    (void)cpu;
    (void)ram_bytes;
    cpu_setup();
    for (unsigned v = V_FIRST; v <= V_LAST; ++v)
        irq_set_handler_eoi(v, count_irq);
    smp_barrier();
    printf("pv_ipi: %u vCPUs, CPUID 0x40000001 eax 0x%x, APIC IDs", ncpus, kvm_para_features());
    for (unsigned c = 0; c < smp_ncpus(); ++c)
        printf(" %u", pv_apic_id(c));
    printf("\n");
    if (smp_ncpus() != NCPUS || !kvm_para_has(KVM_FEATURE_PV_SEND_IPI)) {
        report_skip(smp_ncpus() != NCPUS ? "needs 8 vCPUs" : "PV_SEND_IPI (bit 11) not offered by CPUID");
        stop_waiting = 1;
        report_summary();
    }
    bool ids_are_indices = true;
    for (unsigned c = 0; c < NCPUS; ++c)
        ids_are_indices = ids_are_indices && pv_apic_id(c) == c;
    report(ids_are_indices, "APIC ID i belongs to vCPU i (the bitmaps below rely on it)");

    send_and_check("{1,3,4,6,7}", CPU_BIT(1) | CPU_BIT(3) | CPU_BIT(4) | CPU_BIT(6) | CPU_BIT(7), V_FIRST, 5);
    send_and_check("all but self", 0xfeu, V_FIRST + 1, 7);
    send_and_check("{5,6,7} from min 5", CPU_BIT(5) | CPU_BIT(6) | CPU_BIT(7), V_FIRST + 2, 3);
    send_and_check("{0,2}, self included", CPU_BIT(0) | CPU_BIT(2), V_FIRST + 3, 2);

    go_send_from_3 = 1;
    apic_ipi_fixed(pv_apic_id(3), V_LAST); /* wake vCPU 3 from its HLT */
    for (unsigned long i = 0; i < 200000 && !sent_from_3; ++i)
        pause();
    wait_total(V_FIRST + 4, 2);
    print_receivers(V_FIRST + 4);
    report(sent_from_3 && result_from_3.first_error == 0 && result_from_3.accepted == 2 &&
               exactly(V_FIRST + 4, CPU_BIT(0) | CPU_BIT(7)),
           "vCPU 3 sent to {0,7}: %ld accepted", result_from_3.accepted);

    /* Raw hypercalls: what KVM does with what the packer never produces. */
    long r = pv_send_ipi_raw((1ull << 1) | (1ull << 40), 0, 0, APIC_DM_FIXED | V_LAST);
    wait_total(V_LAST, 2); /* vCPU 3's wake-up vector above, plus this one */
    report(r == 1 && received[1][V_LAST - V_FIRST] == 1 && total_for(V_LAST) == 2,
           "APIC IDs 1 and 40 (no such vCPU): returns %ld, vCPU 1 took it", r);
    r = pv_send_ipi_raw(1ull << 1, 0, 0, APIC_DM_FIXED | APIC_DEST_SELF | V_LAST);
    wait_total(V_LAST, 3);
    report(r == -KVM_EINVAL && total_for(V_LAST) == 2, "a shorthand in a3: returns %ld (-KVM_EINVAL), nothing sent",
           r);
    r = pv_send_ipi_raw(0xff, 0, 100, APIC_DM_FIXED | V_LAST);
    wait_total(V_LAST, 3);
    report(r == 0 && total_for(V_LAST) == 2, "min 100, beyond every APIC ID: returns %ld, nothing sent", r);

    stop_waiting = 1;
    for (unsigned c = 1; c < NCPUS; ++c)
        apic_ipi_fixed(pv_apic_id(c), V_LAST);
    smp_barrier();
    report_summary();
}
