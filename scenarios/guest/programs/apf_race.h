/* apf_race.h - what the async-PF race programs (apf_race_*.c, scenarios race-NN-*-bug.json
 * and -fix.json) share on top of apf_workload.h: a short watchdog whose FAIL line says what
 * a stuck run means in the program's own terms, and the pages the races use.
 *
 * A race scenario is explored: pvsim runs it again from a snapshot once for every placement
 * of a host action (scenarios/README.md "schedule", README.md "Replaying and exploring
 * races"), and a variant that loses a wake-up must end quickly. So the watchdog here is a
 * few milliseconds of virtual time (the idle vCPU halts meanwhile, which costs no
 * instructions), and the scenario's limits.max_virtual_ms is a little more than that. */
#pragma once

#include "apf_workload.h"

/* A page outside the swapped-out window (apf_workload.h) that is resident from the start:
 * a race program touches it first as ordinary memory and a placed `evict gpa=...` action
 * makes it non-resident at an exact instruction. */
#define RACE_RESIDENT_PAGE 0x1100000ul

static inline volatile uint8_t* race_resident_page(void) { return (volatile uint8_t*)RACE_RESIDENT_PAGE; }

/* What the program's stuck state means, printed by the watchdog as its FAIL line. */
static const char* race_stuck_what;
static void (*race_stuck_detail)(void);

static void race_watchdog_handler(unsigned vector, struct ex_frame* f)
{
    (void)vector;
    apic_eoi();
    printf("apf: watchdog: vCPU %u still waiting after %lu us of virtual time (rip 0x%lx, %u tasks alive, %u "
           "asleep on an async PF)\n",
           this_cpu(), wl_watchdog_ns / 1000, f->rip, task_live(), apf_sleeping(this_cpu()));
    if (race_stuck_detail)
        race_stuck_detail();
    wl_print_counters(this_cpu());
    report(false, "%s", race_stuck_what ? race_stuck_what : "the program finished before the watchdog");
    report_summary();
}

/* vCPU 0, before wl_edge_start / wl_cpu_setup: the watchdog fires `ns` after it is armed
 * and reports `what` (plus whatever `detail` prints first) as the run's FAIL line. */
static inline void race_watchdog_set(uint64_t ns, const char* what, void (*detail)(void))
{
    wl_watchdog_ns = ns;
    race_stuck_what = what;
    race_stuck_detail = detail;
}

/* After wl_cpu_setup (which installs apf_workload.h's generic handler): ours instead. */
static inline void race_watchdog_install(void) { irq_set_handler(WL_WATCHDOG_VECTOR, race_watchdog_handler); }
