/* init - INIT and start-up IPIs (Intel SDM Vol.3A 9.4.4, 11.6.1).
 *
 * vCPU 1 counts in a loop. vCPU 0 sends it an INIT IPI: INIT resets the target and puts it
 * in wait-for-SIPI, so the counter stops; vCPU 0 checks that it no longer moves. Then vCPU
 * 0 sends a start-up IPI with vector 0x10: the target would begin in real mode at
 * 0x10 << 12 = 0x10000. pvsim does not run real mode yet, so the run must end right there
 * with stop reason "unsupported", naming vCPU 1 and vector 0x10. If it does not, the guest
 * reports a failure after a while and exits.
 *
 * In the trace: kvm_apic_ipi lines for the INIT (delivery mode 5) and the SIPI (mode 6),
 * a pvsim_vcpu line when vCPU 1 enters wait-for-SIPI, and the final pvsim_stop. */
#include "apic.h"
#include "libc.h"
#include "report.h"
#include "smp.h"

#define SPURIOUS_VECTOR 0xff
#define SIPI_VECTOR 0x10
#define WAIT_SPINS 200000ul

static volatile uint64_t progress;
static volatile uint32_t started;

void ap_main(unsigned cpu, unsigned ncpus)
{
    (void)ncpus;
    if (cpu != 1)
        return; /* finished (port 0xf5) */
    started = 1;
    for (;;) {
        progress = progress + 1;
        pause();
    }
}

static void spin(unsigned long n)
{
    for (unsigned long i = 0; i < n; ++i)
        pause();
}

int main(unsigned cpu, unsigned ncpus, unsigned long ram_bytes)
{
    (void)cpu;
    (void)ram_bytes;
    if (smp_ncpus() < 2) {
        printf("init: needs 2 vCPUs, has %u\n", ncpus);
        report(false, "vCPU count");
        report_summary();
    }
    apic_init(APIC_MODE_XAPIC, SPURIOUS_VECTOR);
    wait_until_eq32(&started, 1, WAIT_SPINS);
    /* The scheduler may let vCPU 0 run a whole quantum alone: wait for a change rather than
     * for a fixed number of spins. */
    uint64_t p0 = progress;
    for (unsigned long i = 0; i < WAIT_SPINS && progress == p0; ++i)
        pause();
    report(progress > p0, "vCPU 1 is running (counter %lu -> %lu)", p0, progress);

    apic_ipi_init(1);
    /* Let the INIT arrive (the IPI latency may be non-zero) and let vCPU 1, which may lag
     * behind us by up to a quantum, run up to it; then watch the counter. */
    spin(WAIT_SPINS / 4);
    uint64_t p1 = progress;
    spin(WAIT_SPINS); /* several quanta: vCPU 1 would have run in between if it could */
    uint64_t p2 = progress;
    report(p1 == p2, "after INIT vCPU 1 makes no progress (counter %lu -> %lu)", p1, p2);

    printf("init: sending SIPI vector 0x%x to vCPU 1: the run should end here (real mode not supported)\n",
           SIPI_VECTOR);
    apic_ipi_startup(1, SIPI_VECTOR);
    spin(100000);
    report(false, "the start-up IPI did not end the run");
    report_summary();
}
