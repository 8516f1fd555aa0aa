/* pv_race_clock_rebase - race 03 of the catalogue: kvmclock steps back on one vCPU when the
 * host re-bases its (tsc_timestamp, system_time) pair (pvmsr/README.md §4.4, §4.13, §2.5
 * flag kvmclock_no_backwards_clamp).
 *
 * One vCPU whose TSC runs faster than the frequency KVM scales it with (the scenario's
 * machine.tsc_skew): extrapolating the pair published at registration, the guest's clock
 * gains on the host's, by the skew times the time since that pair. The seed-era host has
 * no periodic update, so nothing re-bases the pair in the plain run. When the host does
 * re-base it (KVM_REQ_CLOCK_UPDATE: a `kvmclock v0` or a move to another pCPU), it samples
 * the host clock: before 2.6.37 that value was published as it was, behind what the guest
 * had already read, and the clock stepped back by the whole gain. Commit 1d5f066e0b63
 * clamps the new system_time to the guest's extrapolation at the TSC of the last exit.
 *
 * The guest reads its own structure without Linux's global guard (kvmclock_read_raw, as a
 * guest kernel before 2.6.35 does), once before read_window() and READS times in it, and
 * checks that no reading is below the one before. pvsim explore places the re-base at
 * every instruction boundary of read_window().
 *
 * Scenarios: race-03-kvmclock-rebase-{bug,fix}.json (abi "orig", flag on or off). */
#include "kvmclock.h"
#include "libc.h"
#include "pv.h"
#include "report.h"

#define READS 16u
#define SETTLE_CYCLES 100000ull /* 40 us (at the nominal 2.5 GHz) of gain before the reads */

static uint64_t readings[READS + 1];
static uint32_t versions[READS + 1];

/* The reads the race window covers (the scenarios' explore window is this function:
 * `pvsim run ... --schedule 'v0.rip=read_window: stop'` shows its instruction count). */
__attribute__((noinline)) static void read_window(void)
{
    for (unsigned i = 1; i <= READS; ++i) {
        struct kvmclock_sample s = kvmclock_sample();
        readings[i] = s.ns;
        versions[i] = s.version;
    }
}

int main(unsigned cpu, unsigned ncpus, unsigned long ram_bytes)
{
    (void)cpu;
    (void)ncpus;
    (void)ram_bytes;
    if (!kvmclock_init()) {
        report_skip("CPUID offers no kvmclock");
        report_summary();
    }
    volatile struct pvclock_vcpu_time_info* ti = kvmclock_this_cpu_info();
    uint64_t t0 = rdtsc();
    while (rdtsc() - t0 < SETTLE_CYCLES)
        __asm__ volatile("" ::: "memory");
    struct kvmclock_sample s = kvmclock_sample();
    readings[0] = s.ns;
    versions[0] = s.version;
    read_window();

    unsigned back = 0, first = 0;
    for (unsigned i = 1; i <= READS; ++i)
        if (readings[i] < readings[i - 1] && !back++)
            first = i;
    printf("race-03: %u raw kvmclock readings from %lu ns to %lu ns; structure version %u -> %u, system_time now %lu\n",
           READS + 1, readings[0], readings[READS], versions[0], versions[READS], ti->system_time);
    if (back)
        report(false,
               "kvmclock went back %lu ns on this vCPU: reading %u was %lu ns, reading %u %lu ns (version %u -> %u: the "
               "host re-based the pair behind the guest's extrapolation)",
               readings[first - 1] - readings[first], first - 1, readings[first - 1], first, readings[first],
               versions[first - 1], versions[first]);
    else
        report(true, "%u raw kvmclock readings never went back", READS + 1);
    report_summary();
}
