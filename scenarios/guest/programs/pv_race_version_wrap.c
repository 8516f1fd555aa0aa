/* pv_race_version_wrap - the 32-bit version counts of the kvmclock structure and the steal-time
 * record wrap from 0xffffffff to 0, and readers must compare them for equality, never for
 * order (pvmsr/README.md §4.6, §4.9, §6.2).
 *
 * Today's KVM does not keep its own count: each update reads the version the guest's copy
 * holds, makes it odd (kvm_setup_guest_pvclock: (version + 1) | 1; record_steal_time: +1,
 * after rounding odd junk up), writes the body, and adds 1. So a guest (or junk left in the
 * page) that holds 0xfffffffd or 0xfffffffe gets 0xffffffff during the next update and 0
 * after it. This program puts those values there itself and lets the host update:
 *
 *   kvmclock: 0xfffffffd (odd junk) before registering: the registration's update gives 0;
 *             0xfffffffe after it, then a read that straddles a host update (the scenario's
 *             `kvmclock v0` at clock_update_point, between the reads of tsc_timestamp and
 *             system_time);
 *   steal:    0xfffffffe after registering, then a read that straddles an update (the
 *             scenario preempts the vCPU at steal_update_point, between the read of `steal`
 *             and the second read of the version); then 0xfffffffd, and an update
 *             (`steal v0` at steal_odd_point).
 *
 * For each straddling read it prints what two readers decide about the first attempt: the
 * one of Linux (pvclock_read_retry, kvm_steal_clock: retry while the version is odd or
 * differs from the first read), and one that treats the version as an ordered count
 * (retry while it is odd or grew). The first retries and returns the new value; the second
 * sees 0 "not newer than" 0xfffffffe and keeps the mixed or stale attempt. And a guest
 * that waits for the next update with `version > before` would wait for ever: it prints
 * what both tests say of the version it found after the update. Only the equality reader
 * is checked (report); the ordered one is what the console shows going wrong.
 *
 * Scenario: pv-version-wrap.json (today's KVM, one vCPU, no master clock so that every
 * update samples a new (tsc_timestamp, system_time) pair). Named pv_race_ like the race
 * catalogue's programs because, like them, it needs host actions at exact guest
 * instructions (the scenario's schedule), which no real host takes on cue. */
#include "kvmclock.h"
#include "libc.h"
#include "pv.h"
#include "pv_steal.h"
#include "report.h"
#include "smp.h"

#define barrier() __asm__ volatile("" ::: "memory")
/* A global label where the scenario's schedule acts (`v0.rip=NAME`). pvsim resolves only
 * function and object symbols (tools/platform/loader.cpp), so the label is typed as a
 * function. */
#define POINT(name) ".globl " name "\n.type " name ", @function\n" name ":"
#define SPIN_CYCLES 50000ull /* 20 us at 2.5 GHz between registration and the straddling read */

static inline uint64_t rdtsc_ordered(void)
{
    uint32_t lo, hi;
    __asm__ volatile("lfence; rdtsc" : "=a"(lo), "=d"(hi)::"memory");
    return ((uint64_t)hi << 32) | lo;
}

static void spin_cycles(uint64_t n)
{
    uint64_t t0 = rdtsc();
    while (rdtsc() - t0 < n)
        barrier();
}

/* Both readers' tests on one attempt (v1 = the version before the body, v2 = after). */
static bool equality_accepts(uint32_t v1, uint32_t v2) { return !(v1 & 1) && v2 == v1; }
static bool ordered_accepts(uint32_t v1, uint32_t v2) { return !(v1 & 1) && !(v2 > v1); }

/* --- kvmclock ------------------------------------------------------------------------- */

struct clock_attempt {
    uint32_t v1, v2;
    uint64_t tsc_timestamp, system_time, tsc;
    uint32_t mul;
    int8_t shift;
};

static uint64_t clock_value(const struct clock_attempt* a)
{
    return a->system_time + pvclock_scale_delta(a->tsc - a->tsc_timestamp, a->mul, a->shift);
}

static void clock_attempt_read(volatile struct pvclock_vcpu_time_info* ti, struct clock_attempt* a)
{
    a->v1 = ti->version;
    barrier();
    a->tsc = rdtsc_ordered();
    a->tsc_timestamp = ti->tsc_timestamp;
    a->system_time = ti->system_time;
    a->mul = ti->tsc_to_system_mul;
    a->shift = ti->tsc_shift;
    barrier();
    a->v2 = ti->version;
}

/* One attempt whose body the host updates halfway: the scenario's `kvmclock v0` fires at
 * clock_update_point, after tsc_timestamp was read and before system_time is. noipa keeps
 * GCC from cloning the function (and with it the label). */
__attribute__((noinline, noipa)) static void clock_attempt_straddle(volatile struct pvclock_vcpu_time_info* ti,
                                                                     struct clock_attempt* a)
{
    a->v1 = ti->version;
    barrier();
    a->tsc_timestamp = ti->tsc_timestamp;
    __asm__ volatile(POINT("clock_update_point") ::: "memory");
    a->tsc = rdtsc_ordered();
    a->system_time = ti->system_time;
    a->mul = ti->tsc_to_system_mul;
    a->shift = ti->tsc_shift;
    barrier();
    a->v2 = ti->version;
}

static void clock_part(void)
{
    volatile struct pvclock_vcpu_time_info* ti = kvmclock_this_cpu_info();
    report_prefix_push("kvmclock");

    /* Before registering: odd junk one short of the wrap. */
    ti->version = 0xfffffffdu;
    barrier();
    if (!kvmclock_init()) {
        report_skip("CPUID offers no kvmclock");
        report_prefix_pop();
        return;
    }
    uint32_t registered = ti->version;
    printf("version-wrap: kvmclock: 0xfffffffd left in the structure before registering; after the registration's "
           "update it reads 0x%x\n",
           registered);
    report(registered == 0, "the registration's update wrapped 0xfffffffd to 0x%x (expected 0)", registered);

    /* After registering: an even value one update short of the wrap. */
    spin_cycles(SPIN_CYCLES);
    ti->version = 0xfffffffeu;
    barrier();
    struct clock_attempt first, a;
    clock_attempt_straddle(ti, &first);
    unsigned retries = 0;
    a = first;
    while (!equality_accepts(a.v1, a.v2)) {
        ++retries;
        clock_attempt_read(ti, &a);
    }
    /* What the published pair says at the first attempt's TSC: the clock's true value
     * there (the update landed before that RDTSC). */
    struct clock_attempt truth = a;
    truth.tsc = first.tsc;
    int64_t off = (int64_t)(clock_value(&first) - clock_value(&truth));
    printf("version-wrap: kvmclock: a read around an update saw version 0x%x, then 0x%x\n", first.v1, first.v2);
    printf("version-wrap: kvmclock: reader comparing versions with ==: %s the first attempt, went round %u more "
           "times, read version 0x%x, %lu ns\n",
           equality_accepts(first.v1, first.v2) ? "accepted" : "rejected", retries, a.v1, clock_value(&a));
    printf("version-wrap: kvmclock: reader comparing versions with <: %s the first attempt (0x%x > 0x%x is false), "
           "whose tsc_timestamp (old) and system_time (new) give a time %ld ns off the clock\n",
           ordered_accepts(first.v1, first.v2) ? "accepted" : "rejected", first.v2, first.v1, off);
    printf("version-wrap: kvmclock: waiting for the update: version != 0x%x is %s, version > 0x%x is %s (a reader "
           "waiting for a larger version would still be waiting)\n",
           first.v1, a.v1 != first.v1 ? "true" : "false", first.v1, a.v1 > first.v1 ? "true" : "false");
    report(first.v1 == 0xfffffffeu && a.v1 == 0 && retries >= 1,
           "a read that straddled the update 0xfffffffe -> 0x%x retried (%u times) under the equality test", a.v1,
           retries);
    report_prefix_pop();
}

/* --- steal time ------------------------------------------------------------------------ */

struct steal_attempt {
    uint32_t v1, v2;
    uint64_t steal;
};

/* One attempt the host updates between the read of `steal` and the second read of the
 * version: the scenario preempts this vCPU at steal_update_point, and record_steal_time
 * runs at the entry that puts it back. */
__attribute__((noinline, noipa)) static void steal_attempt_straddle(volatile struct kvm_steal_time* st,
                                                                     struct steal_attempt* a)
{
    a->v1 = st->version;
    barrier();
    a->steal = st->steal;
    __asm__ volatile(POINT("steal_update_point") ::: "memory");
    a->v2 = st->version;
}

/* The scenario raises KVM_REQ_STEAL_UPDATE at steal_odd_point (`steal v0`): serviced at
 * the entry right after, before the version is read. */
__attribute__((noinline, noipa)) static uint32_t steal_version_after_update(volatile struct kvm_steal_time* st)
{
    __asm__ volatile(POINT("steal_odd_point") ::: "memory");
    return st->version;
}

static void steal_part(void)
{
    report_prefix_push("steal time");
    unsigned fault = steal_time_enable();
    if (fault) {
        report_skip("steal time not available (%u)", fault);
        report_prefix_pop();
        return;
    }
    volatile struct kvm_steal_time* st = steal_time_area(this_cpu());
    uint32_t registered = st->version;
    st->version = 0xfffffffeu;
    barrier();
    struct steal_attempt first, a;
    steal_attempt_straddle(st, &first);
    unsigned retries = 0;
    a = first;
    while (!equality_accepts(a.v1, a.v2)) {
        ++retries;
        a.v1 = st->version;
        barrier();
        a.steal = st->steal;
        barrier();
        a.v2 = st->version;
    }
    printf("version-wrap: steal time: version %u after registering, 0xfffffffe written; a read around an update saw "
           "version 0x%x, then 0x%x\n",
           registered, first.v1, first.v2);
    printf("version-wrap: steal time: reader comparing versions with ==: %s the first attempt, went round %u more "
           "times, read version 0x%x, steal %lu ns\n",
           equality_accepts(first.v1, first.v2) ? "accepted" : "rejected", retries, a.v1, a.steal);
    printf("version-wrap: steal time: reader comparing versions with <: %s the first attempt (0x%x > 0x%x is false), "
           "steal %lu ns, %lu ns behind the record\n",
           ordered_accepts(first.v1, first.v2) ? "accepted" : "rejected", first.v2, first.v1, first.steal,
           a.steal - first.steal);
    printf("version-wrap: steal time: waiting for the update: version != 0x%x is %s, version > 0x%x is %s\n", first.v1,
           a.v1 != first.v1 ? "true" : "false", first.v1, a.v1 > first.v1 ? "true" : "false");
    report(first.v1 == 0xfffffffeu && a.v1 == 0 && retries >= 1 && a.steal > first.steal,
           "a read that straddled the update 0xfffffffe -> 0x%x retried (%u times) under the equality test and got "
           "the new steal (%lu ns more)",
           a.v1, retries, a.steal - first.steal);

    /* Odd junk one short of the wrap: rounded up to even first, so the update goes
     * 0xffffffff (odd, in progress) -> 0. */
    st->version = 0xfffffffdu;
    barrier();
    uint32_t after = steal_version_after_update(st);
    printf("version-wrap: steal time: 0xfffffffd written; after the next update the version reads 0x%x\n", after);
    report(after == 0, "an update from odd junk 0xfffffffd wrapped to 0x%x (expected 0)", after);
    report_prefix_pop();
}

int main(unsigned cpu, unsigned ncpus, unsigned long ram_bytes)
{
    (void)cpu;
    (void)ncpus;
    (void)ram_bytes;
    clock_part();
    steal_part();
    report_summary();
}
