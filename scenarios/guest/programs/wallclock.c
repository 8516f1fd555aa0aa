/* wallclock - wall-clock time from KVM (pvmsr/README.md §4.8, §4.9).
 *
 * The guest writes the address of a pvclock_wall_clock to MSR_KVM_WALL_CLOCK_NEW
 * (0x4b564d00); the hypervisor immediately fills in sec/nsec: the host's wall time at the
 * moment kvmclock read 0 (the "boot epoch"). Current wall time = sec * 1e9 + nsec +
 * kvmclock. The guest prints every term and the TSC of the kvmclock reading, so a host-side
 * test can check the sum against host.wall_clock_ns + virtual time exactly.
 *
 * MSR 0x11 (MSR_KVM_WALL_CLOCK) is the same per-VM value under its old number: a write to
 * one reads back through the other, and it fills a second structure with the same epoch.
 * Each write bumps the structure's version by 2 (odd while writing, even when done). */
#include "kvmclock.h"
#include "libc.h"
#include "report.h"

static volatile struct pvclock_wall_clock wall_new __attribute__((aligned(16)));
static volatile struct pvclock_wall_clock wall_old __attribute__((aligned(16)));

#define EPOCH_TOLERANCE_NS 10 /* both epochs are computed from scaled TSC values: allow rounding */

int main(unsigned cpu, unsigned ncpus, unsigned long ram_bytes)
{
    (void)cpu;
    (void)ncpus;
    (void)ram_bytes;
    uint32_t msr = kvmclock_init();
    report(msr == MSR_KVM_SYSTEM_TIME_NEW, "kvmclock registered with MSR 0x%x", msr);

    uint32_t sec, nsec, version;
    kvmclock_read_wallclock(MSR_KVM_WALL_CLOCK_NEW, &wall_new, &sec, &nsec, &version);
    struct kvmclock_sample s = kvmclock_sample();
    uint64_t wall = (uint64_t)sec * 1000000000ull + nsec + s.ns;
    printf("wallclock: sec %u nsec %u kvmclock %lu tsc %lu\n", sec, nsec, s.ns, s.tsc);
    printf("wallclock: now %lu ns since 1970\n", wall);
    report(version == 2, "first write: version %u (0 + 2)", version);
    report(nsec < 1000000000u, "nsec %u is below one second", nsec);
    report(rdmsr(MSR_KVM_WALL_CLOCK_NEW) == (uint64_t)(uintptr_t)&wall_new, "RDMSR 0x4b564d00 returns the address");

    /* The old number: same VM-wide value, second structure. */
    uint32_t sec2, nsec2, version2;
    kvmclock_read_wallclock(MSR_KVM_WALL_CLOCK, &wall_old, &sec2, &nsec2, &version2);
    printf("wallclock: via MSR 0x11: sec %u nsec %u\n", sec2, nsec2);
    report(rdmsr(MSR_KVM_WALL_CLOCK_NEW) == (uint64_t)(uintptr_t)&wall_old,
           "0x11 and 0x4b564d00 are one value: 0x4b564d00 now reads the address written to 0x11");
    report(version2 == 2, "MSR 0x11 filled the second structure (version %u)", version2);
    int64_t diff = ((int64_t)sec2 - (int64_t)sec) * 1000000000ll + ((int64_t)nsec2 - (int64_t)nsec);
    report(diff >= -EPOCH_TOLERANCE_NS && diff <= EPOCH_TOLERANCE_NS,
           "both give the same boot epoch (difference %ld ns)", diff);
    report(wall_new.version == 2, "the first structure was not touched by the write to 0x11");

    /* Writing the first address again refreshes it: version 4. */
    kvmclock_read_wallclock(MSR_KVM_WALL_CLOCK_NEW, &wall_new, &sec, &nsec, &version);
    s = kvmclock_sample();
    printf("wallclock: sec %u nsec %u kvmclock %lu tsc %lu\n", sec, nsec, s.ns, s.tsc);
    report(version == 4, "second write to the same structure: version %u", version);
    report_summary();
}
