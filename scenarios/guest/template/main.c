/* template - a starting point for your own pvsim guest (scenarios/guest/boot.md).
 *
 * Copy this directory, rename things, keep the shape:
 *   - main() runs on vCPU 0 once the runtime has loaded its GDT, TSS and IDT; whatever it
 *     returns goes to exit(), i.e. port 0xf4, and ends the whole VM.
 *   - ap_main() runs on every other vCPU (same tables, its own TSS and stack); when it
 *     returns, the runtime writes port 0xf5 ("this vCPU is finished") and parks the vCPU.
 *     Leave it out and those vCPUs finish at once.
 * Both start with interrupts off (RFLAGS.IF = 0), as the boot protocol leaves them.
 *
 * Build: ./build.sh [OUTDIR] (plain gcc + binutils, no CMake), then
 *        pvsim run template.json
 */
#include "libc.h"   /* printf, exit, memset ... and the prototype of main */
#include "report.h" /* report(), report_summary(): kvm-unit-tests style results */
#include "smp.h"    /* atomics, this_cpu(), wait_until_eq32 */

static volatile uint32_t aps_seen;    /* how many other vCPUs reached ap_main */
static volatile uint64_t ap_cpu_sum;  /* sum of the indices they were given */

void ap_main(unsigned cpu, unsigned ncpus)
{
    (void)ncpus;
    /* Only vCPU 0 prints: characters of several vCPUs writing port 0xe9 at once would
     * interleave. The others leave their results in memory for it. */
    atomic_add64(&ap_cpu_sum, cpu);
    atomic_inc32(&aps_seen);
}

int main(unsigned cpu, unsigned ncpus, unsigned long ram_bytes)
{
    printf("template guest: vCPU %u of %u, %lu MiB RAM\n", cpu, ncpus, ram_bytes >> 20);
    report(cpu == 0 && this_cpu() == 0, "main runs on vCPU 0");

    /* Wait for the other vCPUs. The bound is an iteration count, not time, so the loop
     * costs the same wherever it runs. */
    const uint32_t others = ncpus - 1;
    const bool all = wait_until_eq32(&aps_seen, others, 10000000);
    report(all, "%u other vCPU(s) ran ap_main", others);
    /* 1 + 2 + ... + (ncpus - 1) */
    report(ap_cpu_sum == (uint64_t)ncpus * (ncpus - 1) / 2, "ap_main got each index once");

    report_summary(); /* prints SUMMARY and exits: 0 if everything passed */
}
