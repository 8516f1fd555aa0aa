/* hello - the smallest useful guest: one greeting, one check, SUMMARY, exit 0.
 * It is the default scenario ("main job"): if this does not run, nothing will. */
#include "libc.h"
#include "report.h"

int main(unsigned cpu, unsigned ncpus, unsigned long ram_bytes)
{
    printf("Hello from pvsim guest: vCPU %u of %u, %lu MiB RAM\n", cpu, ncpus, ram_bytes >> 20);
    report(cpu == 0 && ncpus >= 1, "main runs on vCPU 0 of %u", ncpus);
    report_summary();
}
