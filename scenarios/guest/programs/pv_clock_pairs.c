/* pv_clock_pairs - what each vCPU's kvmclock structure holds after a global clock update
 * (pvmsr/README.md §4.4, §4.5, §4.7).
 *
 * A "global" clock update (KVM's KVM_REQ_GLOBAL_CLOCK_UPDATE: after a system-time MSR
 * write, a vCPU moving to another pCPU without the master clock, the periodic sync) asks
 * every vCPU to refresh its structure, KVMCLOCK_UPDATE_DELAY after the event. Each vCPU
 * does it at its own next entry (kvm_guest_time_update runs in vcpu_enter_guest), and
 * without the master clock it samples the host clock and its own TSC there and then: two
 * vCPUs that enter at different times get different (tsc_timestamp, system_time) pairs,
 * both on the same line (system_time = kvmclock at tsc_timestamp). With the master clock
 * every vCPU copies the one master pair instead, and they are equal.
 *
 * Two vCPUs register kvmclock at the start (vCPU 0's write starts a global update), note
 * their structure, then halt on the LAPIC timer through the fan-out
 * (machine.kvm.clock_update_delay_ms: 1 ms in the scenarios): vCPU 0 wakes at 1.5 ms,
 * vCPU 1 at 1.8 ms. Each then notes its structure again: the wake-up entry is where the
 * pending update was done. The guest prints both pairs and checks that each vCPU's
 * structure was refreshed after the registration; whether the two pairs are equal is what
 * the scenarios pin: pv-clock-pairs (master_clock false: they differ, sampled 300 us
 * apart) and pv-clock-pairs-master (the master clock: the same pair). */
#include "apic.h"
#include "kvmclock.h"
#include "libc.h"
#include "pv.h"
#include "pv_util.h"
#include "report.h"
#include "smp.h"

#define NCPUS 2u

struct pair {
    uint32_t version;
    uint64_t tsc_timestamp, system_time;
    uint32_t mul;
    int8_t shift;
    uint8_t flags;
};

static struct pair at_register[MAX_CPUS], after_wake[MAX_CPUS];
static uint32_t msr_of[MAX_CPUS];
static const uint32_t wake_ns[NCPUS] = {1500000, 1800000};

static void note(struct pair* p)
{
    volatile struct pvclock_vcpu_time_info* ti = kvmclock_this_cpu_info();
    uint32_t v;
    do {
        v = ti->version & ~1u;
        __asm__ volatile("" ::: "memory");
        p->tsc_timestamp = ti->tsc_timestamp;
        p->system_time = ti->system_time;
        p->mul = ti->tsc_to_system_mul;
        p->shift = ti->tsc_shift;
        p->flags = ti->flags;
        __asm__ volatile("" ::: "memory");
    } while (ti->version != v);
    p->version = v;
}

static void run(unsigned cpu)
{
    apic_init(APIC_MODE_XAPIC, 0xff);
    msr_of[cpu] = kvmclock_init();
    if (msr_of[cpu])
        note(&at_register[cpu]);
    smp_barrier();
    if (!msr_of[cpu])
        return;
    /* Sleep through the fan-out; the interrupt's entry is where the update happens. */
    pv_sleep_ns(wake_ns[cpu] - (uint32_t)pv_now());
    note(&after_wake[cpu]);
    smp_barrier();
}

void ap_main(unsigned cpu, unsigned ncpus)
{
    (void)ncpus;
    run(cpu);
}

static void print_pair(unsigned cpu, const char* when, const struct pair* p)
{
    printf("pv_clock_pairs: vCPU %u %s: version %u tsc_timestamp %lu system_time %lu flags 0x%x\n", cpu, when,
           p->version, p->tsc_timestamp, p->system_time, p->flags);
}

int main(unsigned cpu, unsigned ncpus, unsigned long ram_bytes)
{
    (void)ncpus;
    (void)ram_bytes;
    if (smp_ncpus() != NCPUS) {
        report_skip("needs 2 vCPUs");
        report_summary();
    }
    pv_sleep_setup();
    run(cpu);
    if (!msr_of[0]) {
        report_skip("CPUID offers no kvmclock");
        report_summary();
    }
    for (unsigned c = 0; c < NCPUS; ++c) {
        print_pair(c, "at registration", &at_register[c]);
        print_pair(c, "after its wake-up", &after_wake[c]);
    }
    bool refreshed = true, on_line = true;
    for (unsigned c = 0; c < NCPUS; ++c) {
        const struct pair* p = &after_wake[c];
        refreshed = refreshed && p->version != at_register[c].version && !(p->version & 1);
        /* The pair's own consistency: kvmclock at tsc_timestamp, computed from the other
         * vCPU's pair, is this system_time (to the ns rounding of two scalings). */
        const struct pair* o = &after_wake[1 - c];
        int64_t at = p->tsc_timestamp >= o->tsc_timestamp
                         ? (int64_t)(o->system_time + pvclock_scale_delta(p->tsc_timestamp - o->tsc_timestamp,
                                                                          o->mul, o->shift))
                         : (int64_t)o->system_time -
                               (int64_t)pvclock_scale_delta(o->tsc_timestamp - p->tsc_timestamp, o->mul, o->shift);
        int64_t d = at - (int64_t)p->system_time;
        on_line = on_line && d >= -2 && d <= 2;
    }
    bool same = after_wake[0].tsc_timestamp == after_wake[1].tsc_timestamp &&
                after_wake[0].system_time == after_wake[1].system_time;
    printf("pv_clock_pairs: after the global update the two vCPUs hold %s\n",
           same ? "the same (tsc_timestamp, system_time) pair" : "different (tsc_timestamp, system_time) pairs");
    report(refreshed, "each vCPU's structure was refreshed while it slept through the fan-out");
    report(on_line, "both pairs lie on one line: each is the other's clock at its tsc_timestamp (within 2 ns)");
    report_summary();
}
