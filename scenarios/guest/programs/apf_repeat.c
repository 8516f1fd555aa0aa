/* apf_repeat - a second access to a page that is already on its way (pvmsr/README.md §5.3:
 * "if the vCPU already waits for that page, it halts until the page arrives").
 *
 * One vCPU, two tasks, one swapped-out page (page 0 of the window):
 *   task A touches it: "page not present" #PF (token T), A sleeps;
 *   task B touches the same page: the host finds the page already outstanding for this
 *   vCPU and creates no second async PF: it halts the vCPU until the page arrives, then B's
 *   load is retried and completes. B sees no #PF at all, only a stall of about one fault-in.
 *   The page-ready for T wakes A, whose retried load finds the page present.
 * What the guest checks: exactly one not-present and one page-ready; B's touch raised
 * none and stalled at least half a fault-in; both read zeros; A's pattern reads back.
 *
 * Scenario: vcpus 1, ram_mib 32,
 *   "host": {"memory": {"swapped_out": [{"gpa": "0x1000000", "size": "0x100000"}],
 *                       "fault_in_ns": 1000000}}
 * (io_workers: any). Works with the modern and the seed-era protocol.
 * Expected console (modern):
 *   apf: CPUID 0x40000001 eax 0x...: modern (page-ready by interrupt)
 *   PASS: the enable's wake-all arrived
 *   PASS: task A's touch was an async page fault and A slept until its page-ready
 *   PASS: task B's touch of the same page raised no second not-present
 *   PASS: task B's touch stalled in the host: N ns (at least 500000)
 *   PASS: both tasks read zeros; A's pattern reads back
 *   PASS: counters: 1 not-present, 1 page-ready, no dummies, nothing spurious
 *   apf: vCPU 0: not-present 1, page-ready 1, wake-all 1, ...
 *   SUMMARY: 6 tests
 * In the trace: A's kvm_page_fault and the injected #PF (CR2 = token); B's kvm_page_fault
 * at the same address without an injected #PF (the vCPU halts); one page-ready. */
#include "apf_workload.h"

static bool a_ok, b_ok, a_done, b_done;
static uint64_t b_np_before, b_np_after, b_stall_ns, a_slept;

static void task_a(void* arg)
{
    (void)arg;
    a_ok = wl_touch_check_fill(0);
    a_slept = apf_counters(0)->slept;
    a_done = true;
}

static void task_b(void* arg)
{
    (void)arg;
    volatile uint8_t* p = wl_page(0);
    b_np_before = apf_counters(0)->not_present;
    uint64_t t0 = wl_now();
    uint64_t v = wl_first_touch(0);
    b_stall_ns = wl_now() - t0;
    b_np_after = apf_counters(0)->not_present;
    /* Read only: A writes its pattern after its own check of zeros. */
    bool ok = v == 0;
    for (unsigned i = 0; i < APF_PAGE_SIZE; ++i)
        ok = ok && p[i] == 0;
    b_ok = ok;
    b_done = true;
}

int main(unsigned cpu, unsigned ncpus, unsigned long ram_bytes)
{
    (void)cpu;
    (void)ncpus;
    (void)ram_bytes;
    static const struct apf_options opts = {.send_always = true};
    (void)wl_edge_start(&opts);
    cli();
    task_spawn(task_a, NULL);
    task_spawn(task_b, NULL);
    task_run_all();
    wl_watchdog_disarm();

    const volatile struct apf_counters* c = apf_counters(0);
    report(a_done && b_np_before == 1 && a_slept == 1, "task A's touch was an async page fault and A slept until its page-ready");
    report(b_done && b_np_after == b_np_before, "task B's touch of the same page raised no second not-present");
    if (wl_clock())
        report(b_stall_ns >= APF_EDGE_FAULT_IN_NS / 2, "task B's touch stalled in the host: %lu ns (at least %lu)",
               b_stall_ns, APF_EDGE_FAULT_IN_NS / 2);
    else
        report_skip("no kvmclock: B's stall not measured");
    report(a_ok && b_ok, "both tasks read zeros; A's pattern reads back");
    report(c->not_present == 1 && c->page_ready == 1 && c->dummies_created == 0 && c->spurious == 0 &&
               c->wakes_lost == 0,
           "counters: 1 not-present, 1 page-ready, no dummies, nothing spurious");
    wl_print_counters(0);
    report_summary();
}
