/* apf_race_df - a double fault from two async PF #PFs (scenarios race-05-df-bug.json and
 * race-05-df-fix.json; machine.kvm.abi "orig" with machine.kvm.bugs.apf_ready_on_pending_pf,
 * pvmsr/README.md §2.5 and §5.6).
 *
 * Seed-era protocol: both "page not present" and "page ready" are #PF (error code 0, CR2 =
 * token, the area's `reason` says which). KVM must never have two of them in flight at
 * once: a #PF raised while another #PF is being delivered is a double fault (SDM Vol.3A
 * 6.15, "Interrupt 8", table 6-5: contributory/page fault combinations). Before its
 * exceptions were split into pending and injected (Linux 4.13-5.7), KVM's check "may I inject
 * a page-ready now?" looked only at injected events: at the entry that delivers a not-present
 * #PF still pending, a page-ready completion waiting at that same entry was queued on top,
 * and the two #PFs made a #DF. The interrupt-based page-ready of 5.8 removed the path; the
 * KVM of the seed era itself counted a pending #PF and waited.
 *
 * One vCPU, two tasks. T1 touches page 0 of the swapped-out window: a not-present, T1
 * sleeps. T2 computes a little and touches page 1: another not-present, T2 sleeps. As the
 * scenario runs, page 0 completes long after both faults. A `complete gpa=0x1000000` placed
 * by pvsim explore between T1's sleep and T2's fault makes page 0's page-ready wait for the
 * next entry, which is the one that delivers T2's not-present.
 *
 * Expected console (every passing run):
 *   apf: CPUID 0x40000001 eax 0x...: seed era (page-ready by #PF, reason 2)
 *   PASS: the enable's wake-all arrived
 *   PASS: T1 and T2 each took a not-present and were woken by their page-ready
 *   PASS: both pages read zeros, then their patterns
 *   apf: vCPU 0: not-present 2, page-ready 2, wake-all 1, ...
 *   SUMMARY: 3 tests
 * Under the bug, with page 0 completed just before T2's fault:
 *   FAIL: double fault (#DF) at rip 0x...: KVM delivered a page-ready #PF on top of the not-present #PF it was delivering for task T2's page */
#include "apf_race.h"

static volatile bool t1_done, t2_done, t1_ok, t2_ok;
static volatile uint64_t t2_work;

static void df_handler(struct ex_frame* f)
{
    report(false,
           "double fault (#DF) at rip 0x%lx: KVM delivered a page-ready #PF on top of the not-present #PF it was "
           "delivering for task T2's page",
           f->rip);
    wl_print_counters(0);
    report_summary();
}

static void task_t1(void* arg)
{
    (void)arg;
    t1_ok = wl_touch_check_fill(0);
    t1_done = true;
}

static void task_t2(void* arg)
{
    (void)arg;
    volatile uint64_t acc = 3;
    for (unsigned i = 0; i < 64; ++i)
        acc = acc * 2862933555777941757ull + i;
    t2_work = acc;
    t2_ok = wl_touch_check_fill(1);
    t2_done = true;
}

int main(unsigned cpu, unsigned ncpus, unsigned long ram_bytes)
{
    (void)cpu;
    (void)ncpus;
    (void)ram_bytes;
    static const struct apf_options opts = {.send_always = true};
    race_watchdog_set(3000000ul, "tasks T1 and T2 finished within 3 ms of virtual time", NULL);
    (void)wl_edge_start(&opts);
    race_watchdog_install();
    handle_exception(8, df_handler);
    cli();
    task_spawn(task_t1, NULL);
    task_spawn(task_t2, NULL);
    task_run_all();
    wl_watchdog_disarm();

    const volatile struct apf_counters* c = apf_counters(0);
    report(t1_done && t2_done && c->not_present == 2 && c->page_ready == 2,
           "T1 and T2 each took a not-present and were woken by their page-ready");
    report(t1_ok && t2_ok, "both pages read zeros, then their patterns");
    wl_print_counters(0);
    report_summary();
}
