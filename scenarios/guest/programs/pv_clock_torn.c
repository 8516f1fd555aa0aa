/* pv_clock_torn - reading another vCPU's kvmclock structure while KVM rewrites it
 * (pvmsr/README.md §4.6, §4.13; lib/pvclock_check.h).
 *
 * Linux reads only its own vCPU's pvclock_vcpu_time_info, which KVM writes only while that
 * vCPU is out of the guest, so its reader never races the writer. The historic bug report
 * behind the odd/even version protocol used a test that reads ANOTHER vCPU's structure,
 * and so does this program. Three vCPUs share two pCPUs, time-sliced (the scenario's host:
 * 20 us slices), so they keep moving between pCPUs; without the master clock
 * (machine.kvm.master_clock false) each move makes KVM refresh the moved vCPU's structure
 * at its entry, as a series of stores host.pv_store_ns apart (pvmsr/host_stores.h):
 *   vCPU 0 registers kvmclock and then only waits, 1.2 ms of kvmclock time;
 *   vCPU 1 registers nothing (so its own entries store nothing and it runs at once) and,
 *   whenever it holds a pCPU, reads vCPU 0's structure in a tight loop with the version
 *   loop (retry while odd or changed); it checks each snapshot, at the TSC it read,
 *   against a reference snapshot of the same structure taken right after registration
 *   (lib/pvclock_check.h): every consistent pair lies on one line, so off by more than
 *   1 us means fields of two updates mixed under a version that did not change;
 *   vCPU 2 spins, so that every slot of the schedule is taken.
 * Every third slot, vCPU 0 comes back on the pCPU next to vCPU 1 and is refreshed while
 * vCPU 1 reads. Seed-era KVM (machine.kvm.abi "orig") copies the structure as four 8-byte
 * stores with version += 2 and no odd phase: between the store of the new tsc_timestamp and
 * that of the new system_time the version check passes and the time is off by the time
 * between two refreshes: FAIL "torn read". Modern KVM makes the version odd before its
 * first store and even after its last: the reader retries (it prints how often) and never
 * sees a torn snapshot.
 *
 * Scenario: vcpus 3, pcpus 2, time_sliced, slice_us 20, master_clock false,
 * host.pv_store_ns 1000; abi "orig" (pv-clock-torn-orig, exit status 3) or "modern"
 * (pv-clock-torn-modern). */
#include "kvmclock.h"
#include "libc.h"
#include "pv.h"
#include "pv_util.h"
#include "pvclock_check.h"
#include "report.h"
#include "smp.h"

#define NCPUS 3u
#define END_NS 1200000ull
#define TOLERANCE_NS 1000ull

static volatile struct pvclock_vcpu_time_info* volatile writer_info;
static volatile uint32_t writer_ready, writer_done, reader_done;
static uint32_t writer_msr;
static uint32_t writer_version_before, writer_version_after;

/* vCPU 1's results. */
static uint64_t reads, torn;
static uint32_t retries;
static int64_t worst_offset;
static struct pvclock_snapshot reference, first_torn;
static uint64_t first_torn_tsc;

static void reader(void)
{
    volatile struct pvclock_vcpu_time_info* other = writer_info;
    uint64_t tsc;
    uint32_t ignored = 0;
    /* vCPU 0's structure right after its WRMSR: KVM stored that update before vCPU 0 went
     * on, so it is whole. */
    reference = pvclock_snapshot_read(other, &tsc, &ignored);
    while (!writer_done) {
        struct pvclock_snapshot s = pvclock_snapshot_read(other, &tsc, &retries);
        ++reads;
        int64_t d = pvclock_snapshot_offset(&s, &reference, tsc);
        uint64_t mag = (uint64_t)(d < 0 ? -d : d);
        if (mag > TOLERANCE_NS) {
            if (!torn) {
                first_torn = s;
                first_torn_tsc = tsc;
            }
            ++torn;
        }
        if (mag > (uint64_t)(worst_offset < 0 ? -worst_offset : worst_offset))
            worst_offset = d;
    }
}

void ap_main(unsigned cpu, unsigned ncpus)
{
    (void)ncpus;
    smp_barrier();
    if (cpu == 1) {
        while (!writer_ready)
            pause();
        if (writer_info)
            reader();
        reader_done = 1;
    } else {
        while (!writer_done)
            pause();
    }
}

int main(unsigned cpu, unsigned ncpus, unsigned long ram_bytes)
{
    (void)cpu;
    (void)ncpus;
    (void)ram_bytes;
    if (smp_ncpus() != NCPUS) {
        report_skip("needs 3 vCPUs");
        report_summary();
    }
    smp_barrier();
    writer_msr = kvmclock_init();
    if (writer_msr)
        writer_info = kvmclock_this_cpu_info();
    writer_ready = 1;
    if (!writer_msr) {
        report_skip("CPUID offers no kvmclock");
        report_summary();
    }
    writer_version_before = writer_info->version;
    pv_spin_until(END_NS);
    writer_version_after = writer_info->version;
    writer_done = 1;
    while (!reader_done)
        pause();

    uint32_t updates = (writer_version_after - writer_version_before) / 2;
    printf("pv_clock_torn: vCPU 0's structure was refreshed %u times (version %u -> %u)\n", updates,
           writer_version_before, writer_version_after);
    printf("pv_clock_torn: vCPU 1 took %lu snapshots of it: %lu torn, %u retries of the version loop, largest "
           "offset %ld ns\n",
           reads, torn, retries, worst_offset);
    report(updates >= 10, "vCPU 0's structure was refreshed as it moved between pCPUs (%u times)", updates);
    report(reads > 1000, "vCPU 1 kept reading it (%lu snapshots)", reads);
    if (torn)
        printf("pv_clock_torn: first torn snapshot: version %u tsc_timestamp %lu system_time %lu at tsc %lu gives "
               "%ld ns, the reference line %ld ns\n",
               first_torn.version, first_torn.tsc_timestamp, first_torn.system_time, first_torn_tsc,
               pvclock_snapshot_at(&first_torn, first_torn_tsc), pvclock_snapshot_at(&reference, first_torn_tsc));
    report(torn == 0, "no torn read: every snapshot that passed the version check was one update's");
    report_summary();
}
