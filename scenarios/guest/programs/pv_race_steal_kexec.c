/* pv_race_steal_kexec - race 08 of the catalogue: a stale steal-time cache after kexec
 * (pvmsr/README.md §6.1, §6.3, flag steal_time_stale_cache of §2.5; lib/pv_steal.h).
 *
 * One vCPU plays two kernels. The "old kernel" registers its steal-time record at GPA A
 * (MSR 0x4b564d03 = A | 1) and runs a little; before it kexecs into the new kernel it turns
 * steal time off (MSR = 0), as Linux's kvm_pv_guest_cpu_reboot path does. The "new kernel"
 * registers its own record at GPA B, early in its boot, and only later allocates the memory
 * at A, which it no longer knows as anything special, for its own data (here: 64 bytes of a
 * pattern, new_kernel_data()). It then works and finally checks that its data is intact.
 *
 * KVM 5.16-5.19 (7e2175ebd695 moved steal time to a gfn_to_hva cache) rebuilt the cache only
 * when the memslots changed, not when the guest wrote a new GPA: every later update and the
 * `preempted` store of every involuntary put still went to A. The registration's own update
 * lands before the new kernel fills A, and is overwritten; but if the host preempts the vCPU
 * after the fill, the put writes KVM_VCPU_PREEMPTED into byte 16 of A and the next entry's
 * update writes `steal` and `version` there: the new kernel's data is corrupted. pvsim
 * explore places that preemption at every instruction of the window around the registration
 * and the fill. The fix compares the GPA (901d3765fa80 in record_steal_time, c3c28d24d910 in
 * kvm_steal_time_set_preempted, 6.0-rc1).
 *
 * Scenarios: race-08-steal-stale-cache-{bug,fix}.json (abi "modern", flag on or off). */
#include "libc.h"
#include "pv.h"
#include "pv_steal.h"
#include "report.h"

#define WORK_ITERS 40u
#define PATTERN 0x6e65776b65726e6cull /* "lnrekwen": the new kernel's data */

/* Old kernel's record, later the new kernel's data; and the new kernel's record. */
static struct kvm_steal_time old_record __attribute__((aligned(4096)));
static struct kvm_steal_time new_record __attribute__((aligned(4096)));
static volatile uint64_t sink;

/* The new kernel's boot from the registration on (the scenario's explore window starts at
 * this function: `pvsim run ... --schedule 'v0.rip=new_kernel: stop'` prints its count). */
__attribute__((noinline)) static unsigned new_kernel(void)
{
    memset((void*)&new_record, 0, sizeof new_record);
    unsigned v = pv_wrmsr_safe(MSR_KVM_STEAL_TIME, (uint64_t)(uintptr_t)&new_record | KVM_MSR_ENABLED);
    /* Later in boot: the page at A is free memory to this kernel, and gets allocated. */
    volatile uint64_t* data = (volatile uint64_t*)(uintptr_t)&old_record;
    for (unsigned i = 0; i < sizeof old_record / 8; ++i)
        data[i] = PATTERN;
    /* Some work before the data is used. */
    for (unsigned i = 0; i < WORK_ITERS; ++i)
        sink += i;
    return v;
}

int main(unsigned cpu, unsigned ncpus, unsigned long ram_bytes)
{
    (void)cpu;
    (void)ncpus;
    (void)ram_bytes;
    if (!kvm_para_has(KVM_FEATURE_STEAL_TIME)) {
        report_skip("CPUID offers no steal time");
        report_summary();
    }
    /* The old kernel. */
    memset((void*)&old_record, 0, sizeof old_record);
    unsigned v_old = pv_wrmsr_safe(MSR_KVM_STEAL_TIME, (uint64_t)(uintptr_t)&old_record | KVM_MSR_ENABLED);
    uint32_t old_version = old_record.version;
    unsigned v_off = pv_wrmsr_safe(MSR_KVM_STEAL_TIME, 0); /* before kexec */
    /* The new kernel. */
    unsigned v_new = new_kernel();

    const volatile uint64_t* data = (const volatile uint64_t*)(uintptr_t)&old_record;
    unsigned bad = 0, first_bad = 0;
    uint64_t first_value = 0;
    for (unsigned i = 0; i < sizeof old_record / 8; ++i)
        if (data[i] != PATTERN) {
            if (!bad++) {
                first_bad = i;
                first_value = data[i];
            }
        }
    printf("race-08: old record at 0x%lx (version %u when registered), new record at 0x%lx: version %u, steal %lu\n",
           (uint64_t)(uintptr_t)&old_record, old_version, (uint64_t)(uintptr_t)&new_record, new_record.version,
           new_record.steal);
    report(v_old == 0 && v_off == 0 && v_new == 0, "both kernels registered steal time, the old one turned it off");
    if (bad)
        report(false,
               "the new kernel's data at 0x%lx (the old kernel's steal-time record) was written by the host after the "
               "new kernel registered 0x%lx: %u of 8 words changed, the first at byte %u reads 0x%lx",
               (uint64_t)(uintptr_t)&old_record, (uint64_t)(uintptr_t)&new_record, bad, first_bad * 8, first_value);
    else
        report(true, "the new kernel's data at the old record's address is intact");
    report_summary();
}
