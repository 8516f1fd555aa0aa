/* scale - the ALU benchmark loop (bench/alu_algo.h) on every vCPU at once: how emulation
 * speed holds up with many vCPUs (the goal: "64 vCPUs with throughput per vCPU within 20%
 * of one vCPU"). pvsim interleaves the vCPUs on one host thread, so the total guest MIPS
 * of an N-vCPU run compared with the 1-vCPU run is the per-vCPU throughput ratio.
 *
 * Every vCPU runs the same SCALE_ITERATIONS and checks its own result against the value
 * the host computed. Nobody waits for anybody: a vCPU that is done counts itself and writes
 * port 0xf5 (finished), and the last one to finish reports for all of them and ends the VM
 * through port 0xf4. So no spin loop adds instructions to the measurement. */
#include "alu_algo.h"
#include "libc.h"
#include "report.h"
#include "scale_params.h"
#include "smp.h"

static volatile uint32_t done_count;
static volatile uint32_t ok_count;
static volatile uint64_t results[MAX_CPUS];

static void run_and_check(unsigned cpu)
{
    /* Volatile read so the trip count is not a compile-time constant (as in bench/alu.c). */
    volatile uint32_t iterations = SCALE_ITERATIONS;
    const uint64_t r = alu_run(iterations);
    results[cpu] = r;
    if (r == SCALE_EXPECTED)
        atomic_inc32(&ok_count);
    /* The XADD that counts this vCPU as done comes after its results are stored (x86 keeps
     * stores in order, SDM Vol.3A 9.2.2), so the last vCPU sees everyone's. */
    if (atomic_inc32(&done_count) != smp_ncpus())
        vcpu_finish();
    const unsigned n = smp_ncpus();
    for (unsigned i = 0; i < n; ++i)
        if (results[i] != SCALE_EXPECTED)
            printf("scale: vCPU %u computed 0x%016lx\n", i, results[i]);
    report(ok_count == n, "scale: %u of %u vCPUs computed 0x%016llx in %u iterations each (last: vCPU %u)", ok_count,
           n, SCALE_EXPECTED, SCALE_ITERATIONS, cpu);
    report_summary();
}

void ap_main(unsigned cpu, unsigned ncpus)
{
    (void)ncpus;
    run_and_check(cpu);
}

int main(unsigned cpu, unsigned ncpus, unsigned long ram_bytes)
{
    (void)ram_bytes;
    report(ncpus == smp_ncpus(), "scale: vCPU 0 sees %u vCPUs (runtime supports %u)", ncpus, MAX_CPUS);
    run_and_check(cpu);
    return 1; /* not reached: run_and_check finishes this vCPU or ends the VM */
}
