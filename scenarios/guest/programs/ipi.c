/* ipi - inter-processor interrupts between 4 vCPUs (Intel SDM Vol.3A 11.6).
 *
 * Every vCPU counts, per vector, the interrupts it takes. Phases, each ended by a barrier:
 *   physical  - every vCPU sends vector 0x40+sender to every APIC ID (itself included),
 *               so each vCPU must see exactly one of 0x40..0x43;
 *   logical   - flat model: vCPU i puts bit i in LDR[31:24] (DFR = 0xffffffff); vCPU 0
 *               sends 0x60 to mask 0b1010 and 0x61 to mask 0b0111, the last vCPU sends 0x62
 *               to every bit (SDM 11.6.2.2);
 *   shorthand - each vCPU sends 0x70 to "self"; vCPU 1 sends 0x71 to "all including
 *               self"; vCPU 2 sends 0x72 to "all excluding self" (SDM 11.6.1, bits 19:18);
 *   x2APIC    - every vCPU switches to x2APIC (IA32_APIC_BASE.EXTD), checks its 32-bit ID
 *               and the LDR the hardware derives from it (cluster = ID[19:4], bit ID[3:0],
 *               SDM 11.12.10.2), sends 0x80 to the next vCPU by a 64-bit ICR write, 0x81 to
 *               itself through the SELF IPI register (MSR 0x83f), and vCPU 0 sends 0x82 to
 *               logical cluster 0, mask 0b1100.
 * After each phase a vCPU waits until it has what it expects; at the end vCPU 0 checks every
 * count exactly (an extra interrupt is as wrong as a missing one) and every ESR is 0.
 *
 * In the trace: kvm_apic_ipi for each ICR write (its destination and shorthand), one
 * kvm_apic_accept_irq per receiving vCPU, kvm_inj_virq when the vector is taken and kvm_eoi
 * when the handler ends it. */
#include "apic.h"
#include "irq.h"
#include "libc.h"
#include "report.h"
#include "smp.h"

#define SPURIOUS_VECTOR 0xff
#define V_PHYS 0x40 /* + sender index */
#define V_LOG_A 0x60
#define V_LOG_B 0x61
#define V_LOG_ALL 0x62
#define V_SELF 0x70
#define V_ALLINC 0x71
#define V_ALLBUT 0x72
#define V_X2_PHYS 0x80
#define V_X2_SELF 0x81
#define V_X2_CLUSTER 0x82

#define LOG_MASK_A 0x0au
#define LOG_MASK_B 0x07u
#define X2_CLUSTER_MASK 0x0cu
#define ALLINC_SENDER 1u
#define ALLBUT_SENDER 2u
#define WAIT_SPINS 200000ul

static volatile uint32_t received[MAX_CPUS][256];
static uint32_t apic_ids[MAX_CPUS], x2_ids[MAX_CPUS], x2_ldrs[MAX_CPUS], esrs[MAX_CPUS];
static bool x2apic_used;

static void ipi_handler(unsigned vector, struct ex_frame* f)
{
    (void)f;
    ++received[this_cpu()][vector];
}

static unsigned ncpu;

/* How many times vCPU c must have taken `vector` once every phase is over. */
static uint32_t expected(unsigned c, unsigned vector)
{
    uint32_t bit = 1u << c;
    if (vector >= V_PHYS && vector < V_PHYS + ncpu)
        return 1;
    switch (vector) {
    case V_LOG_A: return (LOG_MASK_A & bit) != 0;
    case V_LOG_B: return (LOG_MASK_B & bit) != 0;
    case V_LOG_ALL: return 1;
    case V_SELF: return 1;
    case V_ALLINC: return 1;
    case V_ALLBUT: return c != ALLBUT_SENDER;
    case V_X2_PHYS: return x2apic_used;
    case V_X2_SELF: return x2apic_used;
    case V_X2_CLUSTER: return x2apic_used && (X2_CLUSTER_MASK & bit) != 0;
    default: return 0;
    }
}

/* Waits (IF=1) until this vCPU has its expected count of every vector in [lo, hi]. */
static void wait_for(unsigned c, unsigned lo, unsigned hi)
{
    for (unsigned long spin = 0; spin < WAIT_SPINS; ++spin) {
        bool all = true;
        for (unsigned v = lo; v <= hi; ++v)
            all = all && received[c][v] >= expected(c, v);
        if (all)
            return;
        pause();
    }
}

static void run(unsigned c)
{
    apic_init(APIC_MODE_XAPIC, SPURIOUS_VECTOR);
    apic_ids[c] = apic_id();
    smp_barrier();
    sti();

    /* Physical destination: the 8-bit APIC ID in ICR[63:56]. */
    for (unsigned dest = 0; dest < ncpu; ++dest)
        apic_ipi_fixed(apic_ids[dest], (uint8_t)(V_PHYS + c));
    wait_for(c, V_PHYS, V_PHYS + ncpu - 1);
    smp_barrier();

    /* Logical destination, flat model. */
    apic_set_logical_flat((uint8_t)(1u << c));
    smp_barrier();
    if (c == 0) {
        apic_ipi_logical(LOG_MASK_A, V_LOG_A);
        apic_ipi_logical(LOG_MASK_B, V_LOG_B);
    }
    if (c == ncpu - 1)
        apic_ipi_logical((1u << ncpu) - 1, V_LOG_ALL);
    wait_for(c, V_LOG_A, V_LOG_ALL);
    smp_barrier();

    /* Shorthands: the destination field is ignored. */
    apic_ipi_shorthand(APIC_DEST_SELF, V_SELF);
    if (c == ALLINC_SENDER)
        apic_ipi_shorthand(APIC_DEST_ALLINC, V_ALLINC);
    if (c == ALLBUT_SENDER)
        apic_ipi_shorthand(APIC_DEST_ALLBUT, V_ALLBUT);
    wait_for(c, V_SELF, V_ALLBUT);
    smp_barrier();

    if (x2apic_used) {
        /* No interrupt may arrive while the mode and our view of it disagree. */
        cli();
        apic_init(APIC_MODE_X2APIC, SPURIOUS_VECTOR);
        x2_ids[c] = apic_id();
        x2_ldrs[c] = apic_read(APIC_LDR);
        smp_barrier();
        sti();
        apic_ipi_fixed(x2_ids[(c + 1) % ncpu], V_X2_PHYS);
        apic_self_ipi(V_X2_SELF);
        if (c == 0)
            apic_ipi_logical(X2_CLUSTER_MASK, V_X2_CLUSTER); /* cluster 0 in bits 31:16 */
        wait_for(c, V_X2_PHYS, V_X2_CLUSTER);
        smp_barrier();
    }
    esrs[c] = apic_read_esr();
    cli();
    smp_barrier();
}

void ap_main(unsigned cpu, unsigned ncpus)
{
    (void)ncpus;
    run(cpu);
}

/* Checks vectors [lo, hi] on every vCPU; prints each mismatch. */
static bool counts_ok(unsigned lo, unsigned hi)
{
    bool ok = true;
    for (unsigned c = 0; c < ncpu; ++c)
        for (unsigned v = lo; v <= hi; ++v)
            if (received[c][v] != expected(c, v)) {
                printf("ipi: vCPU %u took vector 0x%x %u times, expected %u\n", c, v, received[c][v], expected(c, v));
                ok = false;
            }
    return ok;
}

int main(unsigned cpu, unsigned ncpus, unsigned long ram_bytes)
{
    (void)ram_bytes;
    ncpu = smp_ncpus();
    if (ncpu < 3 || ncpu > 8) {
        printf("ipi: needs 3 to 8 vCPUs, has %u\n", ncpus);
        report(false, "vCPU count");
        report_summary();
    }
    x2apic_used = cpu_has_x2apic();
    for (unsigned v = 32; v < 255; ++v)
        irq_set_handler_eoi(v, ipi_handler);
    /* The others wait in the first barrier of run() until the handlers are installed. */
    run(cpu);

    bool ids = true;
    for (unsigned c = 0; c < ncpu; ++c)
        ids = ids && apic_ids[c] == c;
    report(ids, "xAPIC ID of vCPU i is i");
    report(counts_ok(V_PHYS, V_PHYS + ncpu - 1), "physical: each vCPU took one IPI from every vCPU");
    report(counts_ok(V_LOG_A, V_LOG_ALL), "logical flat: masks 0x%x, 0x%x and all reached exactly their vCPUs",
           LOG_MASK_A, LOG_MASK_B);
    report(counts_ok(V_SELF, V_SELF), "shorthand self: each vCPU interrupted itself once");
    report(counts_ok(V_ALLINC, V_ALLINC), "shorthand all-including-self from vCPU %u: every vCPU once",
           ALLINC_SENDER);
    report(counts_ok(V_ALLBUT, V_ALLBUT), "shorthand all-excluding-self from vCPU %u: every other vCPU once",
           ALLBUT_SENDER);
    if (x2apic_used) {
        bool x2 = true;
        for (unsigned c = 0; c < ncpu; ++c)
            x2 = x2 && x2_ids[c] == c && x2_ldrs[c] == (((c >> 4) << 16) | (1u << (c & 15)));
        report(x2, "x2APIC: ID of vCPU i is i, LDR = cluster << 16 | 1 << (i & 15)");
        report(counts_ok(V_X2_PHYS, V_X2_PHYS), "x2APIC physical: each vCPU took one IPI from its neighbour");
        report(counts_ok(V_X2_SELF, V_X2_SELF), "x2APIC SELF IPI register: each vCPU once");
        report(counts_ok(V_X2_CLUSTER, V_X2_CLUSTER), "x2APIC logical cluster 0 mask 0x%x", X2_CLUSTER_MASK);
    } else {
        report_skip("x2APIC: CPUID.1:ECX[21] not offered");
    }
    bool esr_clear = true;
    for (unsigned c = 0; c < ncpu; ++c)
        esr_clear = esr_clear && esrs[c] == 0;
    report(esr_clear, "no APIC errors (ESR 0 on every vCPU)");
    report(counts_ok(32, 254), "no interrupt other than the expected ones");
    report_summary();
}
