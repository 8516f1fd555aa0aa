/* pv_race_clock_warp.h - race 01 of the catalogue: kvmclock warps between vCPUs
 * (pvmsr/README.md §4.4, §4.9, §4.13). The shared body of pv_race_clock_warp.c (raw
 * readings, the bug) and pv_race_clock_warp_fixed.c (readings through Linux's global
 * guard, the guest-side fix 489fb490dbf8 of 2.6.35): the two images differ only in
 * WARP_GUARD.
 *
 * Two vCPUs, each with its own kvmclock structure (MSR 0x4b564d01). Without the master
 * clock each structure holds a (tsc_timestamp, system_time) pair KVM sampled for that vCPU
 * alone, and the guest extrapolates it with its own TSC; the scenario makes vCPU 1's TSC run
 * a little fast (machine.tsc_skew ppm), as an unsynchronised host TSC would, while KVM
 * scales both with the nominal rate. So vCPU 1's clock gains on vCPU 0's after its
 * registration, by ppm x the time since.
 *
 * vCPU 1 stamps a message with its clock, fills it in (FILL_WORDS words, about 200 ns of
 * work) and posts it; vCPU 0 waits for the post and reads its own clock: a message cannot be
 * received before it was stamped. In the plain run the two vCPUs go on side by side, and
 * vCPU 0 sees the post about the fill's length after the stamp, longer than vCPU 1's lead.
 * When vCPU 1 takes its turn from the stamp through the post while vCPU 0 waits, vCPU 0
 * reads right after the stamp in virtual time (an instruction that reads the TSC never runs
 * ahead of a vCPU that is behind, tools/platform/README.md §4.4, so vCPU 0 was caught up to
 * the stamp), sooner than vCPU 1's lead: its clock says the message arrived before it was
 * sent. Linux's guard (kvmclock_read: the largest value any vCPU has returned, kept with a
 * compare-and-exchange) makes every reading at least the stamp. */
#pragma once

#include "kvmclock.h"
#include "libc.h"
#include "report.h"
#include "smp.h"

#define FILL_WORDS 56u
#define SETTLE_NS 50000ull    /* both vCPUs registered and in their loops by then */
#define SEND_DELAY_NS 2000ull /* vCPU 1 sends this long after vCPU 0 starts waiting */

static volatile uint64_t stamp, received, received_raw;
static volatile uint32_t posted;
static volatile uint64_t message[FILL_WORDS];

/* One reading: what this vCPU's structure says (*raw), and what the guest uses - the same
 * value, or with the fix the value passed through the global guard. Both images run the
 * guard (it also records the reading for the other vCPU), and the bug image ignores its
 * answer: so both execute the same instructions, and the scenarios' explore window covers
 * the same code in both. */
static inline uint64_t warp_clock(uint64_t* raw)
{
    struct kvmclock_sample s = kvmclock_sample();
    uint64_t guarded = kvmclock_guard(s.ns, s.flags);
    *raw = s.ns;
#if WARP_GUARD
    return guarded;
#else
    (void)guarded;
    return s.ns;
#endif
}

/* vCPU 1: stamp, fill, post (the scenario's explore window starts here:
 * `pvsim run ... --schedule 'v1.rip=send_message: stop'` prints the instruction count). */
__attribute__((noinline)) static void send_message(void)
{
    uint64_t raw;
    stamp = warp_clock(&raw);
    for (unsigned i = 0; i < FILL_WORDS; ++i)
        message[i] = stamp ^ i;
    __atomic_store_n(&posted, 1, __ATOMIC_RELEASE);
}

/* vCPU 0: wait for the post, then read the clock. */
__attribute__((noinline)) static void receive_message(void)
{
    while (!__atomic_load_n(&posted, __ATOMIC_ACQUIRE))
        __asm__ volatile("" ::: "memory");
    uint64_t raw;
    received = warp_clock(&raw);
    received_raw = raw;
}

/* Waits until this vCPU's own clock reads `until`, with raw readings in both images so that
 * each vCPU arrives at the race with the same instruction count under the bug and the fix
 * (the scenarios' explore window is the same). No PAUSE: it costs far more cycles than the
 * other vCPU's instructions, and this vCPU would run quanta ahead of it in virtual time. */
static void settle(uint64_t until)
{
    while (kvmclock_read_raw() < until)
        __asm__ volatile("" ::: "memory");
}

void ap_main(unsigned cpu, unsigned ncpus)
{
    (void)ncpus;
    uint32_t msr = kvmclock_init();
    smp_barrier();
    if (cpu == 1 && msr) {
        /* Touch the message's page first: its first write would be an EPT violation, an exit
         * of its own in the middle of the race. */
        stamp = 0;
        message[0] = 0;
        /* vCPU 0 is waiting for the post by then. */
        settle(SETTLE_NS + SEND_DELAY_NS);
        send_message();
    }
    smp_barrier();
}

int main(unsigned cpu, unsigned ncpus, unsigned long ram_bytes)
{
    (void)cpu;
    (void)ram_bytes;
    uint32_t msr = kvmclock_init();
    if (ncpus != 2 || !msr) {
        report_skip(!msr ? "CPUID offers no kvmclock" : "needs 2 vCPUs");
        report_summary();
    }
    smp_barrier();
    settle(SETTLE_NS);
    receive_message();
    smp_barrier();

    int64_t trip = (int64_t)(received - stamp);
    printf("race-01: vCPU 1 stamped a message at %lu ns, vCPU 0 received it at %lu ns (%s readings)\n", stamp,
           received, WARP_GUARD ? "guarded" : "raw");
    if (WARP_GUARD && received_raw != received)
        printf("race-01: vCPU 0's own structure said %lu ns; the guard returned the largest reading of any vCPU\n",
               received_raw);
    if (trip < 0)
        report(false,
               "vCPU 0 read kvmclock %lu ns on receiving vCPU 1's message stamped %lu ns: the clock went back %ld "
               "ns between the two vCPUs",
               received, stamp, -trip);
    else
        report(true, "the message was received at or after its stamp (%ld ns later)", trip);
    report_summary();
}
