/* apf_early_wake - the page-ready overtakes the wait it belongs to: the "dummy" path of
 * Linux's kvm_async_pf_task_wake (pvmsr/README.md §5.3; on SMP Linux the page-ready can be
 * handled before the faulting CPU has registered its wait).
 *
 * One vCPU, one task touching page 0 of the window. The program's before_wait hook
 * (struct apf_options) runs in the #PF handler after the not-present was read and before
 * the wait is registered: it enables interrupts and spins until the page-ready has been
 * handled. That wake finds no waiter and leaves a dummy for the token; the wait then finds
 * the dummy, consumes it and does not sleep; the load is retried and the page is there.
 * What the guest checks: one not-present, one page-ready (inside the hook), one dummy
 * created and consumed, the task never slept or halted, nothing left in the table, the
 * page reads back.
 *
 * Scenario: vcpus 1, ram_mib 32,
 *   "host": {"memory": {"swapped_out": [{"gpa": "0x1000000", "size": "0x100000"}],
 *                       "fault_in_ns": 1000000}}
 * Expected console (modern):
 *   apf: CPUID 0x40000001 eax 0x...: modern (page-ready by interrupt)
 *   PASS: the enable's wake-all arrived
 *   PASS: the page-ready arrived while the #PF handler had not yet registered the wait
 *   PASS: it left a dummy, which the wait consumed: 1 created, 1 consumed, 0 left
 *   PASS: the task never slept nor halted
 *   PASS: counters: 1 not-present, 1 page-ready, nothing spurious
 *   PASS: the page read zeros, then its pattern
 *   apf: vCPU 0: not-present 1, page-ready 1, wake-all 1, dummies created 1 consumed 1, ...
 *   SUMMARY: 6 tests
 * In the trace: the injected #PF, then the page-ready (vector 0xf3, or a #PF with reason 2
 * in the seed era) inside it, then the retried load without a fault. */
#include "apf_workload.h"

static bool task_ok, hook_saw_ready;
static unsigned hook_calls;

static void before_wait(uint32_t token)
{
    (void)token;
    ++hook_calls;
    const volatile struct apf_counters* c = apf_counters(0);
    /* wl_wait_counter enables interrupts while it waits and returns with the caller's
     * IF=0; apf.c disables them again anyway. */
    hook_saw_ready = wl_wait_counter(&c->page_ready, c->page_ready + 1, 50 * APF_EDGE_FAULT_IN_NS);
}

static void toucher(void* arg)
{
    (void)arg;
    task_ok = wl_touch_check_fill(0);
}

int main(unsigned cpu, unsigned ncpus, unsigned long ram_bytes)
{
    (void)cpu;
    (void)ncpus;
    (void)ram_bytes;
    static const struct apf_options opts = {.send_always = true, .before_wait = before_wait};
    (void)wl_edge_start(&opts);
    cli();
    task_spawn(toucher, NULL);
    task_run_all();
    wl_watchdog_disarm();

    const volatile struct apf_counters* c = apf_counters(0);
    uint32_t left = apf_table_count(true);
    report(hook_calls == 1 && hook_saw_ready, "the page-ready arrived while the #PF handler had not yet registered the wait");
    report(c->dummies_created == 1 && c->dummies_consumed == 1 && left == 0,
           "it left a dummy, which the wait consumed: %lu created, %lu consumed, %u left", c->dummies_created,
           c->dummies_consumed, left);
    report(c->slept == 0 && c->halted_waits == 0, "the task never slept nor halted");
    report(c->not_present == 1 && c->page_ready == 1 && c->spurious == 0,
           "counters: 1 not-present, 1 page-ready, nothing spurious");
    report(task_ok, "the page read zeros, then its pattern");
    wl_print_counters(0);
    report_summary();
}
