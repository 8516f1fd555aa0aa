/* apf_irqoff - a touch with interrupts disabled is never asynchronous: KVM starts an
 * async PF only where it could inject an interrupt right now (RFLAGS.IF = 1, no STI or
 * MOV SS shadow), otherwise the fault is handled synchronously (pvmsr/README.md §5.3).
 *
 * One vCPU, SEND_ALWAYS on (so CPL 0 is not the reason):
 *   1. main with IF=0 touches page 0: no #PF, the vCPU stalls in the host for the fetch;
 *      watching 3 fault-ins with IF=1 afterwards: no page-ready either (nothing async was
 *      started);
 *   2. for contrast, a task with IF=1 touches page 1: a not-present #PF, the task sleeps,
 *      one page-ready wakes it.
 * Scenario: vcpus 1, ram_mib 32,
 *   "host": {"memory": {"swapped_out": [{"gpa": "0x1000000", "size": "0x100000"}],
 *                       "fault_in_ns": 1000000}}
 * Expected console (modern):
 *   apf: CPUID 0x40000001 eax 0x...: modern (page-ready by interrupt)
 *   PASS: the enable's wake-all arrived
 *   PASS: IF=0: the touch raised no not-present
 *   PASS: IF=0: the touch stalled in the host: N ns (at least 500000)
 *   PASS: IF=0: no page-ready followed
 *   PASS: IF=1: the task's touch was an async page fault; it slept until its page-ready
 *   PASS: both pages read zeros, then their pattern
 *   apf: vCPU 0: not-present 1, page-ready 1, wake-all 1, ...
 *   SUMMARY: 6 tests
 * In the trace: the first kvm_page_fault without an injected #PF, the second with one. */
#include "apf_workload.h"

static bool task_ok;

static void toucher(void* arg)
{
    (void)arg;
    task_ok = wl_touch_check_fill(1);
}

int main(unsigned cpu, unsigned ncpus, unsigned long ram_bytes)
{
    (void)cpu;
    (void)ncpus;
    (void)ram_bytes;
    static const struct apf_options opts = {.send_always = true};
    (void)wl_edge_start(&opts);
    const volatile struct apf_counters* c = apf_counters(0);

    cli();
    uint64_t t0 = wl_now();
    uint64_t v = wl_first_touch(0);
    uint64_t stall = wl_now() - t0;
    report(c->not_present == 0, "IF=0: the touch raised no not-present");
    if (wl_clock())
        report(stall >= APF_EDGE_FAULT_IN_NS / 2, "IF=0: the touch stalled in the host: %lu ns (at least %lu)",
               stall, APF_EDGE_FAULT_IN_NS / 2);
    else
        report_skip("no kvmclock: the stall not measured");
    wl_spin_ns(3 * APF_EDGE_FAULT_IN_NS);
    report(c->page_ready == 0 && c->dummies_created == 0 && c->spurious == 0, "IF=0: no page-ready followed");
    bool first_ok = v == 0 && wl_check_fill(0);

    cli();
    task_spawn(toucher, NULL);
    task_run_all();
    wl_watchdog_disarm();
    report(c->not_present == 1 && c->slept == 1 && c->page_ready == 1,
           "IF=1: the task's touch was an async page fault; it slept until its page-ready");
    report(first_ok && task_ok, "both pages read zeros, then their pattern");
    wl_print_counters(0);
    report_summary();
}
