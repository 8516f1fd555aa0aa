/* kvmclock - is the paravirtual clock monotonic across vCPUs? (pvmsr/README.md §4, the
 * kvm-unit-tests kvmclock_test idea.)
 *
 * Every vCPU registers its own pvclock_vcpu_time_info (MSR 0x4b564d01) and takes READS
 * readings. Each reading is checked twice against values other vCPUs published earlier:
 *   raw     - the value its own structure gives (kvmclock_read_raw: no guard);
 *   guarded - the same value passed through Linux's global monotonic guard, which is skipped
 *             when the hypervisor sets PVCLOCK_TSC_STABLE and CPUID 0x40000001 bit 24 says
 *             the flag may be trusted.
 * A backwards step is a reading smaller than the largest value any vCPU had already
 * published when this reading started. pvsim executes RDTSC only on the vCPU with the
 * smallest virtual time, so "published earlier" also means "read earlier in virtual time":
 * a step is a real clock inversion, not an artefact of the interleaving.
 *
 * What to expect: with modern KVM's master clock every vCPU gets the same (tsc_timestamp,
 * system_time) pair and synchronised TSCs, TSC_STABLE is set and raw readings never go
 * backwards. With the seed-era ABI each vCPU's structure is sampled separately, flags are
 * 0, and if the TSCs are offset or run at slightly different rates (machine.tsc_skew) raw
 * readings of different vCPUs disagree: raw steps > 0, while the guard hides every one. */
#include "kvmclock.h"
#include "libc.h"
#include "report.h"
#include "smp.h"

#define READS 100000u

struct cpu_result {
    uint64_t raw_steps, raw_max_step, guarded_steps, own_steps;
    uint64_t first, last;
    uint32_t msr, version;
    uint8_t flags;
    uint32_t mul;
    int8_t shift;
} __attribute__((aligned(64)));

static struct cpu_result results[MAX_CPUS];
static volatile uint64_t published_raw, published_guarded;

static void run(unsigned cpu)
{
    struct cpu_result* r = &results[cpu];
    r->msr = kvmclock_init();
    smp_barrier();
    if (!r->msr) {
        smp_barrier();
        return;
    }
    volatile struct pvclock_vcpu_time_info* ti = kvmclock_this_cpu_info();
    r->version = ti->version;
    r->flags = ti->flags;
    r->mul = ti->tsc_to_system_mul;
    r->shift = ti->tsc_shift;
    uint64_t prev_own = 0;
    for (unsigned i = 0; i < READS; ++i) {
        /* Read what is published before the reading starts (see the header comment). */
        uint64_t seen_raw = published_raw;
        uint64_t seen_guarded = published_guarded;
        struct kvmclock_sample s = kvmclock_sample();
        uint64_t g = kvmclock_guard(s.ns, s.flags);
        if (s.ns < seen_raw) {
            ++r->raw_steps;
            if (seen_raw - s.ns > r->raw_max_step)
                r->raw_max_step = seen_raw - s.ns;
        }
        if (g < seen_guarded)
            ++r->guarded_steps;
        if (g < prev_own)
            ++r->own_steps;
        prev_own = g;
        if (i == 0)
            r->first = g;
        atomic_max64(&published_raw, s.ns);
        atomic_max64(&published_guarded, g);
    }
    r->last = prev_own;
    smp_barrier();
}

void ap_main(unsigned cpu, unsigned ncpus)
{
    (void)ncpus;
    run(cpu);
}

int main(unsigned cpu, unsigned ncpus, unsigned long ram_bytes)
{
    (void)ram_bytes;
    unsigned n = smp_ncpus();
    printf("kvmclock: %u vCPUs, %u readings each\n", ncpus, READS);
    run(cpu);
    if (!results[0].msr) {
        report_skip("CPUID 0x40000001 offers no kvmclock (CLOCKSOURCE/CLOCKSOURCE2)");
        report_summary();
    }
    printf("kvmclock: registered with MSR 0x%x\n", results[0].msr);
    uint64_t raw = 0, max_step = 0, guarded = 0, own = 0;
    bool all_valid = true;
    for (unsigned c = 0; c < n; ++c) {
        struct cpu_result* r = &results[c];
        printf("kvmclock: vCPU %u: version %u flags 0x%x mul 0x%x shift %d (%lu kHz), %lu..%lu ns, raw steps %lu\n", c,
               r->version, r->flags, r->mul, r->shift, pvclock_tsc_khz(r->mul, r->shift), r->first, r->last,
               r->raw_steps);
        all_valid = all_valid && r->version != 0 && !(r->version & 1) && r->mul != 0 && r->last > r->first;
        raw += r->raw_steps;
        guarded += r->guarded_steps;
        own += r->own_steps;
        if (r->raw_max_step > max_step)
            max_step = r->raw_max_step;
    }
    bool stable = kvmclock_stable(results[0].flags);
    printf("kvmclock: flags 0x%x, TSC_STABLE %s\n", results[0].flags, stable ? "honoured" : "not honoured");
    printf("kvmclock: raw backwards steps: %lu\n", raw);
    printf("kvmclock: largest raw step: %lu ns\n", max_step);
    printf("kvmclock: guarded backwards steps: %lu\n", guarded);
    report(all_valid, "every vCPU's structure was written (even version, mul != 0) and its clock advanced");
    report(guarded == 0 && own == 0, "guarded readings never go backwards (%lu cross-vCPU, %lu on one vCPU)", guarded,
           own);
    if (stable)
        report(raw == 0, "TSC_STABLE: raw readings never go backwards either (%lu steps)", raw);
    else
        report_info("no TSC_STABLE: the guard hid %lu raw backwards steps", raw);
    report_summary();
}
