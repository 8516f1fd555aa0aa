/* pv_clock_stopped - PVCLOCK_GUEST_STOPPED after the VMM paused the VM (pvmsr/README.md
 * §4.2; lib/kvmclock.c).
 *
 * When a VMM stops a VM for a while (QEMU's "stop", a snapshot, a live migration's last
 * phase) the guest's watchdogs would see every vCPU stuck for that long and cry "soft
 * lockup". So after resuming, the VMM issues KVM_KVMCLOCK_CTRL on every vCPU; KVM then
 * sets bit 1 of `flags` (PVCLOCK_GUEST_STOPPED) in that vCPU's kvmclock structure at its
 * next clock update, and keeps it set in later updates until the guest clears it. The
 * guest's clock reader (Linux's pvclock_clocksource_read; lib/kvmclock.c) clears the bit
 * in the shared structure when it sees it and pets its watchdogs.
 *
 * Two vCPUs, each with kvmclock and steal time, read the clock in a loop until 1.5 ms of
 * kvmclock time, noting every reading whose flags had bit 1, and the largest step of the
 * TSC between two readings (the pause). The scenario pauses the VM from 300 to 800 us (host.pause). Checks, per
 * vCPU: the bit was seen exactly once, after the pause, and is clear in the structure
 * afterwards (the guest cleared it; the host did not set it again); and a pause is not
 * steal: each vCPU's steal grew by less than the pause (the VM was stopped, not its vCPU
 * threads waiting for a pCPU).
 *
 * Scenario: vcpus 2, pcpus 2, host.pause [{300, 800}] (pv-clock-stopped). In the trace: at
 * each vCPU's first entry after the pause, a kvm_pvclock_update whose flags have bit 1
 * (0x2, or 0x3 with the master clock's TSC_STABLE). */
#include "kvmclock.h"
#include "libc.h"
#include "pv.h"
#include "pv_steal.h"
#include "pv_util.h"
#include "report.h"
#include "smp.h"

#define NCPUS 2u
#define END_NS 1500000ull

struct cpu_result {
    uint64_t readings, stopped_seen, first_stopped_at, first_stopped_index;
    uint64_t max_tsc_step, tsc_step_index, clock_step; /* the pause: the largest TSC step */
    uint64_t steal_before, steal_after;
    uint8_t flags_after;
    uint32_t msr;
    unsigned steal_fault;
} __attribute__((aligned(64)));

static struct cpu_result results[MAX_CPUS];
static volatile uint32_t done;

static void run(unsigned cpu)
{
    struct cpu_result* r = &results[cpu];
    r->msr = kvmclock_init();
    r->steal_fault = steal_time_enable();
    smp_barrier();
    if (!r->msr)
        return;
    r->steal_before = steal_time_enabled(cpu) ? steal_clock(cpu) : 0;
    struct kvmclock_sample prev = kvmclock_sample();
    for (;;) {
        struct kvmclock_sample s = kvmclock_sample();
        if (s.flags & PVCLOCK_GUEST_STOPPED) {
            /* kvmclock_sample has already cleared the bit in the structure (and counted a
             * watchdog pet); here we only note when. */
            if (!r->stopped_seen) {
                r->first_stopped_at = s.ns;
                r->first_stopped_index = r->readings;
            }
            ++r->stopped_seen;
        }
        /* The TSC runs on through a pause whatever the VMM does with kvmclock (QEMU, for
         * one, sets kvmclock back to where it stopped), so the pause is the largest step
         * of the TSC between two readings. */
        if (s.tsc - prev.tsc > r->max_tsc_step) {
            r->max_tsc_step = s.tsc - prev.tsc;
            r->tsc_step_index = r->readings;
            r->clock_step = s.ns - prev.ns;
        }
        ++r->readings;
        prev = s;
        if (s.ns >= END_NS)
            break;
    }
    r->flags_after = kvmclock_this_cpu_info()->flags;
    r->steal_after = steal_time_enabled(cpu) ? steal_clock(cpu) : 0;
    __atomic_add_fetch(&done, 1u, __ATOMIC_SEQ_CST);
}

void ap_main(unsigned cpu, unsigned ncpus)
{
    (void)ncpus;
    run(cpu);
}

int main(unsigned cpu, unsigned ncpus, unsigned long ram_bytes)
{
    (void)ram_bytes;
    if (smp_ncpus() != NCPUS) {
        report_skip("needs 2 vCPUs");
        report_summary();
    }
    apic_init(APIC_MODE_XAPIC, 0xff);
    run(cpu);
    if (!results[0].msr) {
        report_skip("CPUID offers no kvmclock");
        report_summary();
    }
    while (done != NCPUS)
        pause();
    printf("pv_clock_stopped: %u vCPUs, kvmclock MSR 0x%x, %lu watchdog pets in all\n", ncpus, results[0].msr,
           kvmclock_stopped_seen());
    bool once = true, after = true, cleared = true, no_steal = true;
    for (unsigned c = 0; c < NCPUS; ++c) {
        struct cpu_result* r = &results[c];
        printf("pv_clock_stopped: vCPU %u: %lu readings; largest TSC step %lu cycles (kvmclock %lu ns) at reading "
               "%lu; GUEST_STOPPED seen %lu time(s), first at reading %lu (%lu ns); flags now 0x%x; steal %lu -> %lu "
               "ns\n",
               c, r->readings, r->max_tsc_step, r->clock_step, r->tsc_step_index, r->stopped_seen,
               r->first_stopped_index, r->first_stopped_at, r->flags_after, r->steal_before, r->steal_after);
        once = once && r->stopped_seen == 1;
        after = after && r->stopped_seen && r->first_stopped_index == r->tsc_step_index;
        cleared = cleared && !(r->flags_after & PVCLOCK_GUEST_STOPPED);
        no_steal = no_steal && r->steal_fault == 0 && r->steal_after - r->steal_before < 500000;
    }
    report(once, "each vCPU saw PVCLOCK_GUEST_STOPPED exactly once");
    report(after, "it came with the first reading after the pause (the largest TSC step)");
    report(cleared, "the guest cleared it, and no later update set it again");
    if (results[0].steal_fault == STEAL_NOT_OFFERED)
        report_skip("STEAL_TIME not offered: pause vs steal not checked");
    else
        report(no_steal, "the pause is not steal: each vCPU's steal grew by less than 500 us");
    report_summary();
}
