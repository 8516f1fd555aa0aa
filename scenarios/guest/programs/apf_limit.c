/* apf_limit - the 65th outstanding fault of a vCPU is handled synchronously: KVM allows
 * 64 async page faults per vCPU (ASYNC_PF_PER_VCPU), and with 64 outstanding the next
 * fault stalls the vCPU in the host (pvmsr/README.md §5.3).
 *
 * One vCPU, TASKS = 65 tasks; task i touches page i of the window, all before the first
 * page arrives: tasks 0-63 each take a "page not present" #PF and sleep (64 asleep at
 * once); task 64's touch finds 64 outstanding and is synchronous: no #PF, the vCPU stalls
 * for its fetch. Then 64 page-ready events wake tasks 0-63.
 * What the guest checks: 64 not-present and 64 page-ready in all; 64 tasks asleep at
 * once; task 64's touch raised no not-present and stalled at least half a fault-in; every
 * page read zeros and its pattern back.
 *
 * Scenario: vcpus 1, ram_mib 32,
 *   "host": {"memory": {"swapped_out": [{"gpa": "0x1000000", "size": "0x100000"}],
 *                       "fault_in_ns": 10000000, "io_workers": 65}}
 * The fault-in (10 ms) must exceed the time the 65 tasks need to fault (far less than 1
 * ms); with io_workers 65 task 64's synchronous fetch is not queued behind the others.
 * Expected console (modern):
 *   apf: CPUID 0x40000001 eax 0x...: modern (page-ready by interrupt)
 *   PASS: the enable's wake-all arrived
 *   PASS: 65 tasks spawned on one vCPU
 *   PASS: 64 not-present: tasks 0-63 each took an async page fault
 *   PASS: 64 tasks were asleep at once
 *   PASS: task 64 (the 65th outstanding fault) raised no not-present
 *   PASS: task 64's touch stalled in the host: N ns (at least 500000)
 *   PASS: 64 page-ready, no dummies, nothing spurious
 *   PASS: all 65 pages read zeros, then their pattern
 *   apf: vCPU 0: not-present 64, page-ready 64, wake-all 1, ...
 *   SUMMARY: 9 tests
 * In the trace: 64 injected #PFs with tokens, then task 64's kvm_page_fault without one. */
#include "apf_workload.h"

#define TASKS 65u
#define LAST (TASKS - 1)

static bool ok[TASKS], done[TASKS];
static uint64_t last_np_before, last_np_after, last_stall_ns;

static void toucher(void* arg)
{
    unsigned i = (unsigned)(uintptr_t)arg;
    if (i == LAST) {
        last_np_before = apf_counters(0)->not_present;
        uint64_t t0 = wl_now();
        uint64_t v = wl_first_touch(i);
        last_stall_ns = wl_now() - t0;
        last_np_after = apf_counters(0)->not_present;
        ok[i] = wl_check_fill(i) && v == 0;
    } else {
        ok[i] = wl_touch_check_fill(i);
    }
    done[i] = true;
}

int main(unsigned cpu, unsigned ncpus, unsigned long ram_bytes)
{
    (void)cpu;
    (void)ncpus;
    (void)ram_bytes;
    wl_watchdog_ns = 2000000000ul; /* 65 fetches of 10 ms, even one at a time */
    wl_cpu_setup();
    struct apf_options opts = {.send_always = true};
    wl_setup_or_skip(&opts, APF_PROTO_AUTO);
    report(wl_enable_or_fail(50 * APF_EDGE_FAULT_IN_NS), "the enable's wake-all arrived");
    cli();
    unsigned spawned = 0;
    for (unsigned i = 0; i < TASKS; ++i)
        spawned += task_spawn(toucher, (void*)(uintptr_t)i) != NULL;
    report(spawned == TASKS, "%u tasks spawned on one vCPU", spawned);
    task_run_all();
    wl_watchdog_disarm();

    const volatile struct apf_counters* c = apf_counters(0);
    bool all_ok = true;
    for (unsigned i = 0; i < TASKS; ++i)
        all_ok = all_ok && ok[i] && done[i];
    report(c->not_present == 64 && last_np_before == 64, "64 not-present: tasks 0-63 each took an async page fault");
    report(c->max_sleeping == 64, "64 tasks were asleep at once");
    report(done[LAST] && last_np_after == last_np_before,
           "task 64 (the 65th outstanding fault) raised no not-present");
    if (wl_clock())
        report(last_stall_ns >= APF_EDGE_FAULT_IN_NS / 2, "task 64's touch stalled in the host: %lu ns (at least %lu)",
               last_stall_ns, APF_EDGE_FAULT_IN_NS / 2);
    else
        report_skip("no kvmclock: task 64's stall not measured");
    report(c->page_ready == 64 && c->dummies_created == 0 && c->spurious == 0 && c->wakes_lost == 0,
           "64 page-ready, no dummies, nothing spurious");
    report(all_ok, "all %u pages read zeros, then their pattern", TASKS);
    wl_print_counters(0);
    report_summary();
}
