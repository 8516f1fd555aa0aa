/* apf_reenable - writing the enable MSR again while a task waits: every successful enable
 * makes the host queue a "wake all" (token 0xffffffff) page-ready, which wakes every waiter
 * of the vCPU although their pages are still on the way (pvmsr/README.md §5.3).
 *
 * One vCPU, two tasks, page 0 of the window:
 *   task A touches it: not-present #PF (token T), A sleeps;
 *   task B writes MSR 0x4b564d02 again (the same value, apf_enable) and waits for the
 *   wake-all; it wakes A;
 *   A's load is retried while the page is still outstanding: a repeated fault, the host
 *   halts the vCPU until the page arrives (no second not-present);
 *   the page-ready for T then finds no waiter (A was woken by the wake-all) and leaves a
 *   dummy that no wait will ever consume; Linux is left with the same stale dummy.
 * What the guest checks: two wake-alls (the first enable's, the re-enable's), one
 * not-present, one page-ready, one dummy created and none consumed (it stays in the
 * table), A's retry stalled rather than faulting again, A's page reads back.
 *
 * Scenario: vcpus 1, ram_mib 32,
 *   "host": {"memory": {"swapped_out": [{"gpa": "0x1000000", "size": "0x100000"}],
 *                       "fault_in_ns": 1000000}}
 * Expected console (modern):
 *   apf: CPUID 0x40000001 eax 0x...: modern (page-ready by interrupt)
 *   PASS: the enable's wake-all arrived
 *   PASS: task A's touch was an async page fault and A slept
 *   PASS: task B's re-enable was accepted and its wake-all arrived while A slept
 *   PASS: the wake-all woke A before its page was in
 *   PASS: A's retry was a repeated fault: no second not-present, and it stalled N ns (at least 500000)
 *   PASS: the page-ready for A's token found no waiter: 1 dummy created, 0 consumed, 1 left in the table
 *   PASS: A's page read zeros, then its pattern
 *   apf: vCPU 0: not-present 1, page-ready 1, wake-all 2, dummies created 1 consumed 0, ...
 *   SUMMARY: 7 tests
 * In the trace: the #PF, the second WRMSR 0x4b564d02, a page-ready with token 0xffffffff,
 * A's retried kvm_page_fault (the vCPU halts), then a page-ready with A's token. */
#include "apf_workload.h"

static bool a_ok, a_done, b_got_wake_all;
static unsigned b_fault;
static uint64_t np_at_reenable, slept_at_reenable, ready_at_wake_all, a_woken_at, a_done_at;
static const volatile struct apf_counters* c;

static void task_a(void* arg)
{
    (void)arg;
    /* The first touch takes the not-present; its retry after the wake-all stalls. The
     * whole load is timed from the wake-all on (a_woken_at, set by B). */
    bool ok = wl_first_touch(0) == 0;
    a_done_at = wl_now();
    a_ok = wl_check_fill(0) && ok;
    a_done = true;
}

static void task_b(void* arg)
{
    (void)arg;
    np_at_reenable = c->not_present;
    slept_at_reenable = c->slept;
    uint64_t before = c->wake_all;
    b_fault = apf_enable();
    b_got_wake_all = wl_wait_counter(&c->wake_all, before + 1, 50 * APF_EDGE_FAULT_IN_NS);
    a_woken_at = wl_now();
    ready_at_wake_all = c->page_ready;
}

int main(unsigned cpu, unsigned ncpus, unsigned long ram_bytes)
{
    (void)cpu;
    (void)ncpus;
    (void)ram_bytes;
    static const struct apf_options opts = {.send_always = true};
    (void)wl_edge_start(&opts);
    c = apf_counters(0);
    cli();
    task_spawn(task_a, NULL);
    task_spawn(task_b, NULL);
    task_run_all();
    wl_watchdog_disarm();

    uint64_t retry_ns = a_done_at - a_woken_at;
    report(np_at_reenable == 1 && slept_at_reenable == 1, "task A's touch was an async page fault and A slept");
    report(b_fault == 0 && b_got_wake_all && c->wake_all == 2,
           "task B's re-enable was accepted and its wake-all arrived while A slept");
    report(ready_at_wake_all == 0, "the wake-all woke A before its page was in");
    if (wl_clock())
        report(a_done && c->not_present == 1 && retry_ns >= APF_EDGE_FAULT_IN_NS / 2,
               "A's retry was a repeated fault: no second not-present, and it stalled %lu ns (at least %lu)",
               retry_ns, APF_EDGE_FAULT_IN_NS / 2);
    else
        report(a_done && c->not_present == 1, "A's retry was a repeated fault: no second not-present");
    uint32_t left = apf_table_count(true);
    report(c->page_ready == 1 && c->dummies_created == 1 && c->dummies_consumed == 0 && left == 1,
           "the page-ready for A's token found no waiter: %lu dummy created, %lu consumed, %u left in the table",
           c->dummies_created, c->dummies_consumed, left);
    report(a_ok, "A's page read zeros, then its pattern");
    wl_print_counters(0);
    report_summary();
}
