/* pv_race_old_msr_boot - item 19 of the catalogue: no master clock while the boot vCPU uses
 * the old kvmclock MSR 0x12 (pvmsr/README.md §4.7, §4.13).
 *
 * A guest old enough to register kvmclock through MSR_KVM_SYSTEM_TIME (0x12) predates
 * PVCLOCK_TSC_STABLE_BIT and mishandles it, so KVM (workaround commit 54750f2cf042, 2015)
 * remembers which of the two MSRs vCPU 0 last wrote (kvm_write_system_time:
 * boot_vcpu_runs_old_kvmclock), requests a master-clock update whenever that changes, and
 * keeps the master clock off while it is the old one (pvclock_update_vm_gtod_copy). Only
 * vCPU 0's choice counts: the other vCPUs here always use 0x4b564d01.
 *
 * NCPUS vCPUs with matched TSCs on today's KVM, which would use the master clock:
 *   phase 1: vCPU 0 registers its structure with 0x12, then the others with 0x4b564d01;
 *            bit 0 of `flags` must be clear in every vCPU's structure;
 *   phase 2: vCPU 0 writes the same address to 0x4b564d01: the master-clock update turns
 *            the mode on and asks every vCPU for a clock update; each vCPU waits (bounded)
 *            for bit 0 to appear in its own structure;
 *   phase 3: vCPU 0 goes back to 0x12: the bit must go again, on every vCPU.
 * vCPU 0 prints what each vCPU saw and reports one result per phase.
 *
 * Scenario: race-19-old-msr-boot-vcpu.json (one scenario: there is no bug flag, the
 * workaround is how KVM behaves). */
#include "kvmclock.h"
#include "libc.h"
#include "pv.h"
#include "report.h"
#include "smp.h"

#define NCPUS 3u
#define PHASES 3u
/* How long a vCPU waits for its structure to change after vCPU 0's write: 40 us at
 * 2.5 GHz. The update itself lands at the vCPU's next entry at or after the write's
 * virtual time (pvmsr/README.md §4.5), well within that. */
#define WAIT_CYCLES 100000ull

static volatile uint32_t phase;
static volatile uint64_t phase_tsc; /* vCPU 0's TSC just after its write of the phase */
static uint8_t seen_flags[PHASES][MAX_CPUS];
static uint32_t seen_version[PHASES][MAX_CPUS];
static uint64_t seen_after[PHASES][MAX_CPUS]; /* cycles from vCPU 0's write to the reading */

/* Own structure's flags and version under the version loop (pvmsr/README.md §4.9). */
static uint8_t read_flags(uint32_t* version)
{
    volatile struct pvclock_vcpu_time_info* ti = kvmclock_this_cpu_info();
    uint32_t v;
    uint8_t f;
    do {
        v = ti->version & ~1u;
        __asm__ volatile("" ::: "memory");
        f = ti->flags;
        __asm__ volatile("" ::: "memory");
    } while (ti->version != v);
    *version = v;
    return f;
}

static void register_clock(uint32_t msr)
{
    wrmsr(msr, (uint64_t)(uintptr_t)kvmclock_this_cpu_info() | 1);
}

/* Waits until vCPU 0 has entered phase p and this vCPU's own time has reached the instant
 * vCPU 0 wrote it. With matched TSCs the TSC is one clock for the whole VM; in pvsim each
 * vCPU runs on its own local time and may see vCPU 0's store while still a little behind it
 * in virtual time (tools/platform/README.md §4), where KVM has not yet asked it to update. */
static void wait_phase(uint32_t p)
{
    while (phase < p)
        pause();
    while ((int64_t)(rdtsc() - phase_tsc) < 0)
        pause();
}

static void enter_phase(uint32_t p)
{
    phase_tsc = rdtsc();
    __asm__ volatile("" ::: "memory");
    phase = p;
}

/* Phase p (1-based): waits until this vCPU's own flags bit 0 equals `want` or WAIT_CYCLES
 * have passed since vCPU 0's write, and records what it read last. */
static void observe(unsigned cpu, uint32_t p, bool want)
{
    uint8_t f;
    uint32_t v;
    uint64_t now;
    do {
        f = read_flags(&v);
        now = rdtsc();
    } while (((f & PVCLOCK_TSC_STABLE_BIT) != 0) != want && now - phase_tsc < WAIT_CYCLES);
    seen_flags[p - 1][cpu] = f;
    seen_version[p - 1][cpu] = v;
    seen_after[p - 1][cpu] = now - phase_tsc;
}

static void run(unsigned cpu)
{
    smp_barrier();
    /* Phase 1: vCPU 0 on the old MSR first, then the others on the new one. */
    if (cpu == 0) {
        register_clock(MSR_KVM_SYSTEM_TIME);
        enter_phase(1);
    } else {
        wait_phase(1);
        register_clock(MSR_KVM_SYSTEM_TIME_NEW);
    }
    smp_barrier();
    observe(cpu, 1, false);
    smp_barrier();
    /* Phase 2: vCPU 0 moves to the new MSR. */
    if (cpu == 0) {
        register_clock(MSR_KVM_SYSTEM_TIME_NEW);
        enter_phase(2);
    } else {
        wait_phase(2);
    }
    observe(cpu, 2, true);
    smp_barrier();
    /* Phase 3: and back to the old one. */
    if (cpu == 0) {
        register_clock(MSR_KVM_SYSTEM_TIME);
        enter_phase(3);
    } else {
        wait_phase(3);
    }
    observe(cpu, 3, false);
    smp_barrier();
}

void ap_main(unsigned cpu, unsigned ncpus)
{
    (void)ncpus;
    if (smp_ncpus() == NCPUS)
        run(cpu);
}

int main(unsigned cpu, unsigned ncpus, unsigned long ram_bytes)
{
    (void)ram_bytes;
    (void)ncpus;
    if (smp_ncpus() != NCPUS) {
        report_skip("needs %u vCPUs", NCPUS);
        report_summary();
    }
    uint32_t features = cpuid(0x40000001u).a;
    if (!(features & KVM_FEATURE_CLOCKSOURCE) || !(features & KVM_FEATURE_CLOCKSOURCE2)) {
        /* The other vCPUs would wait in the barrier for good: end the run here. */
        report_skip("CPUID offers not both kvmclock MSRs");
        report_summary();
    }
    run(cpu);

    static const char* const what[PHASES] = {"vCPU 0 on MSR 0x12", "vCPU 0 moved to MSR 0x4b564d01",
                                             "vCPU 0 back on MSR 0x12"};
    static const bool want[PHASES] = {false, true, false};
    for (unsigned p = 0; p < PHASES; ++p) {
        unsigned wrong = 0, first_wrong = 0;
        for (unsigned c = 0; c < NCPUS; ++c) {
            bool stable = (seen_flags[p][c] & PVCLOCK_TSC_STABLE_BIT) != 0;
            printf("race-19: phase %u (%s): vCPU %u's structure: version %u, flags 0x%x (PVCLOCK_TSC_STABLE %s), "
                   "read %lu cycles after vCPU 0's write\n",
                   p + 1, what[p], c, seen_version[p][c], seen_flags[p][c], stable ? "set" : "clear",
                   seen_after[p][c]);
            if (stable != want[p] && !wrong++)
                first_wrong = c;
        }
        if (wrong)
            report(false, "%s: vCPU %u's kvmclock flags are 0x%x, PVCLOCK_TSC_STABLE should be %s (%u of %u vCPUs wrong)",
                   what[p], first_wrong, seen_flags[p][first_wrong], want[p] ? "set" : "clear", wrong, NCPUS);
        else
            report(true, "%s: PVCLOCK_TSC_STABLE %s on all %u vCPUs", what[p], want[p] ? "set" : "clear", NCPUS);
    }
    report_summary();
}
