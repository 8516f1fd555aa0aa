/* start_bsp - the machine.start = "bsp" option: only vCPU 0 (the bootstrap processor) starts
 * at the entry point; the others wait for a start-up IPI from time 0, as on hardware after
 * RESET (SDM Vol.3A 9.4.1: application processors wait for SIPI). Every vCPU that runs the
 * entry code checks in; vCPU 0 lets some virtual time pass and checks that nobody else did.
 * Its own IA32_APIC_BASE has the BSP flag (bit 8) set.
 *
 * In the trace: only vCPU 0 executes; the other vCPUs have no line at all (they wait for
 * SIPI from time 0 and nothing ever sends one). */
#include "apic.h"
#include "libc.h"
#include "report.h"
#include "smp.h"

static volatile uint32_t checked_in;

void ap_main(unsigned cpu, unsigned ncpus)
{
    (void)cpu;
    (void)ncpus;
    atomic_inc32(&checked_in);
}

int main(unsigned cpu, unsigned ncpus, unsigned long ram_bytes)
{
    (void)ram_bytes;
    printf("start_bsp: vCPU %u of %u running\n", cpu, ncpus);
    report((rdmsr(MSR_IA32_APIC_BASE) & APIC_BASE_BSP) != 0, "IA32_APIC_BASE.BSP is set on vCPU 0");
    report(ncpus >= 2, "the machine has %u vCPUs", ncpus);
    /* About 1 ms of virtual time at 2.5 GHz. */
    uint64_t t0 = rdtsc();
    while (rdtsc() - t0 < 2500000)
        pause();
    report(checked_in == 0, "no other vCPU ran (%u checked in)", checked_in);
    report_summary();
}
