/* pv_race_clock_torn - race 02 of the catalogue: a torn kvmclock read (pvmsr/README.md §4.6,
 * §4.13, §2.5 flag kvmclock_even_version_copy; lib/pvclock_check.h).
 *
 * Two vCPUs on two pCPUs. vCPU 0 registers its kvmclock structure (MSR 0x4b564d01) and
 * then only waits. vCPU 1 registers nothing; it takes a reference snapshot of vCPU 0's
 * structure and then, in read_window(), reads that structure READS times with the version
 * loop (retry while the version is odd or changed) and checks each snapshot against the
 * reference at the TSC it read: every consistent (tsc_timestamp, system_time) pair lies on
 * one line, so a snapshot more than TOLERANCE_NS off it mixed fields of two updates.
 *
 * Nothing refreshes vCPU 0's structure on its own (the seed-era host has no periodic
 * update and nobody migrates), so the unsteered run reads one update and passes. The race
 * needs the host to refresh vCPU 0's structure (a `kvmclock v0` schedule action: KVM raises
 * KVM_REQ_CLOCK_UPDATE, serviced at vCPU 0's next entry) while vCPU 1 is inside its reads,
 * and the host's stores to land apart (host.pv_store_ns): seed-era KVM copies the 32 bytes
 * as four 8-byte stores with the version already advanced by 2, never odd, so between the
 * store of the new tsc_timestamp and that of the new system_time the version check passes
 * on a body that is half old, half new. With the fix (odd version first, body, even version
 * last) the reader retries instead. pvsim explore places the refresh at every instruction
 * boundary of vCPU 1's reads.
 *
 * Scenarios: race-02-kvmclock-torn-{bug,fix}.json (abi "orig", flag on or off). */
#include "kvmclock.h"
#include "libc.h"
#include "pv.h"
#include "pvclock_check.h"
#include "report.h"
#include "smp.h"

#define READS 12u
#define TOLERANCE_NS 1000ull
#define SETTLE_CYCLES 25000ull /* 10 us at 2.5 GHz */

static volatile struct pvclock_vcpu_time_info* volatile writer_info;
static volatile uint32_t writer_ready, reader_done;

/* vCPU 1's results. */
static struct pvclock_snapshot reference, first_torn;
static uint64_t first_torn_tsc;
static unsigned torn, first_torn_read;
static uint32_t retries;

/* The reads the race window covers (the scenario's explore window starts at this function:
 * `pvsim run ... --schedule 'v1.rip=read_window: stop'` shows its instruction count). */
__attribute__((noinline)) static void read_window(volatile struct pvclock_vcpu_time_info* other)
{
    for (unsigned i = 0; i < READS; ++i) {
        uint64_t tsc;
        struct pvclock_snapshot s = pvclock_snapshot_read(other, &tsc, &retries);
        if (pvclock_snapshot_torn(&s, &reference, tsc, TOLERANCE_NS)) {
            if (!torn) {
                first_torn = s;
                first_torn_tsc = tsc;
                first_torn_read = i;
            }
            ++torn;
        }
    }
}

void ap_main(unsigned cpu, unsigned ncpus)
{
    (void)ncpus;
    smp_barrier();
    if (cpu != 1)
        return;
    while (!writer_ready)
        pause();
    volatile struct pvclock_vcpu_time_info* other = writer_info;
    if (other) {
        uint64_t tsc;
        uint32_t ignored = 0;
        /* vCPU 0's structure right after its WRMSR: KVM stored that update before vCPU 0
         * went on, so it is whole. */
        reference = pvclock_snapshot_read(other, &tsc, &ignored);
        /* Start the reads SETTLE_CYCLES after vCPU 0's registration, by then both vCPUs
         * are in their loops and within a quantum of each other in virtual time. */
        while ((int64_t)(rdtsc() - reference.tsc_timestamp) < (int64_t)SETTLE_CYCLES)
            __asm__ volatile("" ::: "memory");
        read_window(other);
    }
    reader_done = 1;
}

int main(unsigned cpu, unsigned ncpus, unsigned long ram_bytes)
{
    (void)cpu;
    (void)ram_bytes;
    if (ncpus != 2) {
        report_skip("needs 2 vCPUs");
        report_summary();
    }
    smp_barrier();
    uint32_t msr = kvmclock_init();
    if (msr)
        writer_info = kvmclock_this_cpu_info();
    writer_ready = 1;
    if (!msr) {
        report_skip("CPUID offers no kvmclock");
        report_summary();
    }
    uint32_t before = writer_info->version;
    /* No PAUSE here: a PAUSE costs far more cycles than the reader's instructions, and this
     * vCPU would run whole quanta ahead of the reader in virtual time, its next entry (where
     * KVM services a clock update) microseconds after the request. */
    while (!reader_done)
        __asm__ volatile("" ::: "memory");
    uint32_t after = writer_info->version;

    printf("race-02: vCPU 1 took %u snapshots of vCPU 0's kvmclock structure; vCPU 0's structure was refreshed %u "
           "times meanwhile (version %u -> %u); the version loop went round %u more times\n",
           READS, (after - before) / 2, before, after, retries);
    if (torn) {
        int64_t off = pvclock_snapshot_offset(&first_torn, &reference, first_torn_tsc);
        report(false,
               "vCPU 1's snapshot %u of vCPU 0's kvmclock passed the version check (version %u, even and unchanged) "
               "but mixed two updates: tsc_timestamp %lu with system_time %lu gives a time %ld ns off the clock "
               "(%u torn snapshots in all)",
               first_torn_read, first_torn.version, first_torn.tsc_timestamp, first_torn.system_time, off, torn);
    } else {
        report(true, "every snapshot vCPU 1 took of vCPU 0's kvmclock was one update's (%u reads)", READS);
    }
    report_summary();
}
