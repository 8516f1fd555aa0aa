/* pv_race_stopped.h - item 18 of the race catalogue: PVCLOCK_GUEST_STOPPED ignored by a
 * sched_clock read (pvmsr/README.md §4.2, §4.5, §4.9). The shared body of pv_race_stopped.c
 * (the bug: sched_clock reads kvmclock the way Linux's noinstr kvm_sched_clock_read does,
 * through pvclock_clocksource_read_nowd, which never looks at the bit) and
 * pv_race_stopped_fixed.c (sched_clock takes the bit, clears it and touches the watchdog, as
 * pvclock_clocksource_read does). The two images differ only in SCHED_CLOCK_DOWD, the
 * argument sched_clock passes (one byte of data): they run the same instructions at the same
 * addresses until a pause sets the bit.
 *
 * When a VMM stops a VM (a snapshot, a migration's last phase) and resumes it, every vCPU
 * finds its clock a pause later. So the VMM issues KVM_KVMCLOCK_CTRL, and KVM sets
 * PVCLOCK_GUEST_STOPPED in the vCPU's kvmclock flags at its next update (pvmsr/README.md
 * §4.2): the guest that sees it knows the jump was not its own CPU being stuck, clears the bit
 * and touches its soft-lockup watchdog (Linux: pvclock_touch_watchdogs, called from
 * pvclock_clocksource_read when its `dowd` argument is true). The nowd read - what Linux's
 * sched_clock uses since it became noinstr (the exact commit and whether a fix exists are
 * unverified) - skips that step: it reads through a set bit and leaves it set.
 *
 * One vCPU. A task runs without scheduling for TASK_ITERS iterations (a long loop in a
 * kernel, well under the threshold); the soft-lockup watchdog checks on every TICK-th
 * iteration (standing in for its hrtimer) whether sched_clock has moved more than
 * THRESH_NS since the watchdog was last touched (when the task started: the CPU had just
 * scheduled). The guest's only clock reads during the task are sched_clock's. If the VMM
 * pauses the VM inside the task, the next check sees the clock a pause ahead: the bug image
 * reports a soft lockup that never was (the FAIL line), the fixed image sees the bit first
 * and restarts the watchdog's count. The pause is a host action (`pause 2ms`) that the
 * scenarios' exploration places at every instruction of the task.
 *
 * Scenarios: race-18-stopped-sched-clock-{bug,fix}.json (abi "modern": KVM_KVMCLOCK_CTRL
 * exists only there, pvmsr/README.md §4.5). */
#pragma once

#include "kvmclock.h"
#include "libc.h"
#include "pv.h"
#include "report.h"

#define TASK_ITERS 48u
#define TICK 8u                 /* a watchdog check every TICK iterations */
#define THRESH_NS 1000000ull    /* the soft-lockup threshold: Linux's 20 s, scaled down to 1 ms */

static volatile uint64_t sink;
static uint64_t touch_ts;            /* when the watchdog was last touched (sched_clock) */
static volatile bool touch_pending;  /* Linux: touch_softlockup_watchdog_sync() */
static unsigned lockups, checks;
static uint64_t lockup_ns;
static unsigned stopped_seen_sched, stopped_seen_clocksource;

/* Linux's __pvclock_clocksource_read(src, dowd): the version loop of pvmsr/README.md §4.9;
 * with dowd, a set GUEST_STOPPED bit is cleared in the shared structure and the watchdog
 * touched. Not inlined nor specialised (noipa), so that dowd is tested at run time and both
 * images execute the same instructions while the bit is clear. `seen` counts the readings that found the bit set. */
__attribute__((noipa)) static uint64_t pvclock_read(bool dowd, unsigned* seen)
{
    volatile struct pvclock_vcpu_time_info* ti = kvmclock_this_cpu_info();
    uint32_t v;
    uint64_t ns;
    uint8_t flags;
    do {
        v = ti->version & ~1u;
        __asm__ volatile("" ::: "memory");
        uint64_t tsc = rdtsc();
        ns = ti->system_time + pvclock_scale_delta(tsc - ti->tsc_timestamp, ti->tsc_to_system_mul, ti->tsc_shift);
        flags = ti->flags;
        __asm__ volatile("" ::: "memory");
    } while (ti->version != v);
    /* The bit first: while it is clear, both images take the same branch here. */
    if ((flags & PVCLOCK_GUEST_STOPPED) && dowd) {
        __atomic_and_fetch(&ti->flags, (uint8_t)~PVCLOCK_GUEST_STOPPED, __ATOMIC_SEQ_CST);
        touch_pending = true;
        ++*seen;
    }
    return ns;
}

/* sched_clock: the bug image's read is the nowd one. The argument is loaded from memory so
 * that the two images have the same code at the same addresses (and so the same trace until
 * a pause sets the bit); only this byte of data differs. */
static volatile const bool sched_clock_dowd __attribute__((section(".data"))) = SCHED_CLOCK_DOWD; /* .data in both: a 0 would go to .bss and move the rest */
static inline uint64_t sched_clock(void) { return pvclock_read(sched_clock_dowd, &stopped_seen_sched); }

/* The soft-lockup check (Linux: watchdog_timer_fn and is_softlockup). */
static void watchdog_check(void)
{
    uint64_t now = sched_clock();
    ++checks;
    if (touch_pending) {
        touch_pending = false;
        touch_ts = now;
        return;
    }
    if (now - touch_ts > THRESH_NS && !lockups++)
        lockup_ns = now - touch_ts;
}

/* The watched task (the scenarios' explore window is this function: `pvsim run ...
 * --schedule 'v0.rip=watched_task: stop'` prints its first instruction's count). */
__attribute__((noinline)) static void watched_task(void)
{
    touch_ts = sched_clock(); /* the CPU just scheduled: the watchdog thread ran */
    for (unsigned i = 0; i < TASK_ITERS; ++i) {
        sink += i * 3u;
        if (i % TICK == TICK - 1)
            watchdog_check();
    }
}

int main(unsigned cpu, unsigned ncpus, unsigned long ram_bytes)
{
    (void)cpu;
    (void)ncpus;
    (void)ram_bytes;
    if (!kvmclock_init()) {
        report_skip("CPUID offers no kvmclock");
        report_summary();
    }
    uint64_t start = sched_clock();
    watched_task();
    uint64_t end = sched_clock();
    /* After the task the timekeeping code reads the clocksource (Linux: kvm_clock_read through
     * pvclock_clocksource_read, always with dowd): a bit the task's reads left set is found
     * here, too late for the watchdog. */
    pvclock_read(true, &stopped_seen_clocksource);
    printf("race-18: the task ran %u iterations in %lu ns, %u watchdog checks; GUEST_STOPPED seen by sched_clock "
           "%u time(s), by the clocksource read after the task %u time(s)\n",
           TASK_ITERS, end - start, checks, stopped_seen_sched, stopped_seen_clocksource);
    if (lockups)
        report(false,
               "BUG: soft lockup - the watchdog saw CPU#0 stuck for %lu us (threshold %llu us) while the task ran; "
               "the clock had jumped by the VM's pause, and sched_clock's read never looked at PVCLOCK_GUEST_STOPPED",
               lockup_ns / 1000, THRESH_NS / 1000);
    else
        report(true, "no soft lockup reported while the task ran");
    report_summary();
}
