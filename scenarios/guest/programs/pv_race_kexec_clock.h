/* pv_race_kexec_clock.h - item 17 of the race catalogue: kvmclock writes after kexec
 * (pvmsr/README.md §4.1, §4.5). The shared body of pv_race_kexec_clock.c (the bug: the old
 * kernel kexecs with its kvmclock still registered) and pv_race_kexec_clock_fixed.c (the fix:
 * it writes 0 to MSR_KVM_SYSTEM_TIME_NEW first, as Linux's kvm_shutdown has done since
 * 1e977aa12dd4, "x86: KVM guest: disable clock before rebooting."). The two images
 * differ only in KEXEC_CLOCK_OFF.
 *
 * One vCPU plays two kernels. The "old kernel" registers its kvmclock structure at GPA A
 * (MSR 0x4b564d01 = A | 1) and reads the clock. Then it kexecs into the "new kernel" (here:
 * calls new_kernel()). The new kernel knows nothing of A: early in its boot it allocates
 * the memory there for 64 bytes of its own data, works a little, and only then registers its
 * own kvmclock at GPA B. At the end it checks its data.
 *
 * The MSR is per vCPU and survives a kexec (nothing resets it but a write): until the new
 * kernel's registration replaces it, KVM still knows A as this vCPU's structure, and every
 * clock update it makes meanwhile - KVM_REQ_CLOCK_UPDATE after a migration to another pCPU,
 * a master-clock change, the periodic sync (pvmsr/README.md §4.5) - writes version,
 * tsc_timestamp, system_time, the scale and flags over the first 32 bytes of A:
 * kvm_guest_time_update does not know the guest moved on. A bit 0 clear write stops the
 * updates (pvmsr/README.md §4.1), so a kernel that turns its clock off before it jumps
 * leaves nothing for KVM to write. Steal time has the same hazard and the same cure (Linux
 * turns it off in kvm_pv_guest_cpu_reboot; item 08 of the catalogue is KVM's own version of
 * it); the hibernation restore path needed the same for kvmclock, which Linux 5.13's
 * teardown series did (8b79feffeca2, c02027b5742b, 3d6b84132d2a).
 *
 * Scenarios: race-17-kexec-kvmclock-{bug,fix}.json (abi "orig": no periodic update, so in
 * the plain run nothing refreshes the clock during the kexec; the exploration places a
 * `kvmclock v0` request at every instruction of the window). */
#pragma once

#include "kvmclock.h"
#include "libc.h"
#include "pv.h"
#include "report.h"

#define WORK_ITERS 40u
#define PATTERN 0x6b636f6c63776e6eull /* "nnwclock": the new kernel's data */
#define DATA_WORDS 8u

/* The old kernel's kvmclock structure, later the new kernel's data (64 bytes: the first 32
 * are where KVM writes); and the new kernel's structure. A page each. */
static volatile uint64_t page_a[DATA_WORDS] __attribute__((aligned(4096)));
static volatile struct pvclock_vcpu_time_info page_b __attribute__((aligned(4096)));
static volatile uint64_t sink;

/* The version loop of pvmsr/README.md §4.9 on the structure at `ti`. */
static uint64_t clock_read(const volatile struct pvclock_vcpu_time_info* ti, uint32_t* version)
{
    uint32_t v;
    uint64_t ns;
    do {
        v = ti->version & ~1u;
        __asm__ volatile("" ::: "memory");
        uint64_t tsc = rdtsc();
        ns = ti->system_time + pvclock_scale_delta(tsc - ti->tsc_timestamp, ti->tsc_to_system_mul, ti->tsc_shift);
        __asm__ volatile("" ::: "memory");
    } while (ti->version != v);
    *version = v;
    return ns;
}

/* The old kernel's shutdown before it jumps to the new one (Linux: machine_ops.shutdown,
 * kvm_shutdown in kvmclock.c since 1e977aa12dd4). Returns the fault vector of its WRMSR, or
 * 0. The scenarios' explore window starts here: `pvsim run ... --schedule
 * 'v0.rip=kexec_shutdown: stop'` prints the instruction count. */
__attribute__((noinline)) static unsigned kexec_shutdown(void)
{
#if KEXEC_CLOCK_OFF
    return pv_wrmsr_safe(MSR_KVM_SYSTEM_TIME_NEW, 0);
#else
    return 0;
#endif
}

/* The new kernel's boot, up to its own kvmclock registration. */
__attribute__((noinline)) static unsigned new_kernel(uint64_t* first_ns, uint32_t* version)
{
    /* Early in boot: the page at A is free memory to this kernel, and gets allocated. */
    for (unsigned i = 0; i < DATA_WORDS; ++i)
        page_a[i] = PATTERN;
    /* Some boot work before the clock is set up. */
    for (unsigned i = 0; i < WORK_ITERS; ++i)
        sink += i;
    unsigned fault = pv_wrmsr_safe(MSR_KVM_SYSTEM_TIME_NEW, (uint64_t)(uintptr_t)&page_b | 1);
    *first_ns = clock_read(&page_b, version);
    return fault;
}

int main(unsigned cpu, unsigned ncpus, unsigned long ram_bytes)
{
    (void)cpu;
    (void)ncpus;
    (void)ram_bytes;
    if (!kvm_para_has(KVM_FEATURE_CLOCKSOURCE2)) {
        report_skip("CPUID offers no kvmclock (CLOCKSOURCE2)");
        report_summary();
    }
    /* The old kernel. */
    const volatile struct pvclock_vcpu_time_info* old_ti = (const volatile struct pvclock_vcpu_time_info*)page_a;
    unsigned f_old = pv_wrmsr_safe(MSR_KVM_SYSTEM_TIME_NEW, (uint64_t)(uintptr_t)page_a | 1);
    uint32_t old_version;
    uint64_t old_ns = clock_read(old_ti, &old_version);
    unsigned f_off = kexec_shutdown();
    /* kexec: the new kernel. */
    uint64_t new_ns;
    uint32_t new_version;
    unsigned f_new = new_kernel(&new_ns, &new_version);

    unsigned bad = 0, first_bad = 0;
    uint64_t first_value = 0;
    for (unsigned i = 0; i < DATA_WORDS; ++i)
        if (page_a[i] != PATTERN) {
            if (!bad++) {
                first_bad = i;
                first_value = page_a[i];
            }
        }
    printf("race-17: old kernel's clock at 0x%lx (version %u, %lu ns), %s before kexec; new kernel's clock at "
           "0x%lx (version %u, %lu ns)\n",
           (uint64_t)(uintptr_t)page_a, old_version, old_ns, KEXEC_CLOCK_OFF ? "turned off" : "left on",
           (uint64_t)(uintptr_t)&page_b, new_version, new_ns);
    report(f_old == 0 && f_off == 0 && f_new == 0, "both kernels registered kvmclock");
    if (bad)
        report(false,
               "the new kernel's data at 0x%lx (the old kernel's kvmclock structure) was written by the host "
               "after the kexec: %u of %u words changed, the first at byte %u reads 0x%lx",
               (uint64_t)(uintptr_t)page_a, bad, DATA_WORDS, first_bad * 8, first_value);
    else
        report(true, "the new kernel's data at the old clock's address is intact");
    report_summary();
}
