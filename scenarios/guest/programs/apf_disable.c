/* apf_disable - disabling async PF while a task waits: the host drops every outstanding
 * fault and never sends its page-ready (pvmsr/README.md §5.3), so the guest must wake its
 * own waiters, as Linux's kvm_guest_cpu_offline does (apf_task_wake_all after writing 0).
 *
 * One vCPU, two tasks, page 0 of the window:
 *   task A touches it: not-present #PF, A sleeps;
 *   task B writes MSR 0x4b564d02 = 0 (apf_disable), which also wakes A;
 *   A's load is retried with async PF off: a synchronous stall until the page is in.
 * What the guest checks: the MSR reads back 0; the guest's own wake-all woke exactly A; A
 * took one not-present and no second one on its retry; no page-ready arrives, neither
 * during A's retry nor in 3 fault-ins of watching with IF=1; A's page reads zeros and its
 * pattern back.
 *
 * Scenario: vcpus 1, ram_mib 32,
 *   "host": {"memory": {"swapped_out": [{"gpa": "0x1000000", "size": "0x100000"}],
 *                       "fault_in_ns": 1000000}}
 * Expected console (modern):
 *   apf: CPUID 0x40000001 eax 0x...: modern (page-ready by interrupt)
 *   PASS: the enable's wake-all arrived
 *   PASS: task A's touch was an async page fault and A slept
 *   PASS: task B disabled async PF: WRMSR 0x4b564d02 = 0 succeeded and reads back 0
 *   PASS: the guest's own wake-all woke the one waiter
 *   PASS: A's retry with async PF off raised no second not-present
 *   PASS: no page-ready arrived after the disable
 *   PASS: A's page read zeros, then its pattern
 *   apf: vCPU 0: not-present 1, page-ready 0, wake-all 1, ...
 *   SUMMARY: 7 tests
 * In the trace: the injected #PF, the WRMSR of 0, then A's retried kvm_page_fault stalls
 * with nothing injected, and no page-ready (no vector 0xf3, no second #PF). */
#include "apf_workload.h"

static bool a_ok, a_done, b_done;
static unsigned b_fault;
static uint64_t b_readback = ~0ull, np_at_disable, slept_at_disable, woken;

static void task_a(void* arg)
{
    (void)arg;
    a_ok = wl_touch_check_fill(0);
    a_done = true;
}

static void task_b(void* arg)
{
    (void)arg;
    const volatile struct apf_counters* c = apf_counters(0);
    np_at_disable = c->not_present;
    slept_at_disable = c->slept;
    b_fault = apf_disable();
    woken = c->local_wake_all;
    if (rdmsr_safe(MSR_KVM_ASYNC_PF_EN, &b_readback) != 0)
        b_readback = ~0ull;
    b_done = true;
}

int main(unsigned cpu, unsigned ncpus, unsigned long ram_bytes)
{
    (void)cpu;
    (void)ncpus;
    (void)ram_bytes;
    static const struct apf_options opts = {.send_always = true};
    (void)wl_edge_start(&opts);
    const volatile struct apf_counters* c = apf_counters(0);
    uint64_t ready_before = c->page_ready;
    cli();
    task_spawn(task_a, NULL);
    task_spawn(task_b, NULL);
    task_run_all();
    wl_spin_ns(3 * APF_EDGE_FAULT_IN_NS);
    cli();
    wl_watchdog_disarm();

    report(np_at_disable == 1 && slept_at_disable == 1, "task A's touch was an async page fault and A slept");
    report(b_done && b_fault == 0 && b_readback == 0,
           "task B disabled async PF: WRMSR 0x%x = 0 succeeded and reads back 0", MSR_KVM_ASYNC_PF_EN);
    report(woken == 1 && apf_table_count(false) == 0, "the guest's own wake-all woke the one waiter");
    report(a_done && c->not_present == 1, "A's retry with async PF off raised no second not-present");
    report(c->page_ready == ready_before && c->spurious == 0 && c->dummies_created == 0,
           "no page-ready arrived after the disable");
    report(a_ok, "A's page read zeros, then its pattern");
    wl_print_counters(0);
    report_summary();
}
