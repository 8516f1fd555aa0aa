/* pv_steal.c - steal time registration and readers (see pv_steal.h). */
#include "pv_steal.h"

#include "libc.h"
#include "smp.h"

static struct kvm_steal_time steal_areas[MAX_CPUS];
static uint64_t steal_msr[MAX_CPUS];

#define barrier() __asm__ volatile("" ::: "memory")

volatile struct kvm_steal_time* steal_time_area(unsigned cpu) { return &steal_areas[cpu]; }
uint64_t steal_time_msr_value(unsigned cpu) { return steal_msr[cpu]; }
bool steal_time_enabled(unsigned cpu) { return (steal_msr[cpu] & KVM_MSR_ENABLED) != 0; }

unsigned steal_time_enable(void)
{
    unsigned cpu = this_cpu();
    if (!kvm_para_has(KVM_FEATURE_STEAL_TIME))
        return STEAL_NOT_OFFERED;
    /* Zero first: seed-era KVM documented "must be zeroed", and a `preempted` left over
     * from an earlier registration would make other vCPUs skip this one. */
    memset((void*)&steal_areas[cpu], 0, sizeof steal_areas[cpu]);
    uint64_t value = (uint64_t)(uintptr_t)&steal_areas[cpu] | KVM_MSR_ENABLED;
    unsigned fault = pv_wrmsr_safe(MSR_KVM_STEAL_TIME, value);
    if (!fault)
        steal_msr[cpu] = value;
    return fault;
}

unsigned steal_time_disable(void)
{
    unsigned cpu = this_cpu();
    unsigned fault = pv_wrmsr_safe(MSR_KVM_STEAL_TIME, 0);
    if (!fault)
        steal_msr[cpu] = 0;
    return fault;
}

struct steal_sample steal_time_read(unsigned cpu)
{
    volatile struct kvm_steal_time* st = &steal_areas[cpu];
    struct steal_sample s = {0, 0, 0};
    for (;;) {
        uint32_t v = st->version;
        barrier(); /* x86 keeps loads in order (SDM Vol.3A 9.2.2); the compiler must too */
        uint64_t steal = st->steal;
        barrier();
        /* An odd version is an update in progress (modern KVM); a changed one means the
         * update happened while we read. Compare for equality only: the count may wrap. */
        if (!(v & 1) && st->version == v) {
            s.steal = steal;
            s.version = v;
            return s;
        }
        ++s.retries;
    }
}

bool vcpu_is_preempted(unsigned cpu)
{
    if (!steal_time_enabled(cpu))
        return false;
    return (steal_areas[cpu].preempted & KVM_VCPU_PREEMPTED) != 0;
}
