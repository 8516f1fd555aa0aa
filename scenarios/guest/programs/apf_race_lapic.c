/* apf_race_lapic - a page-ready that completes while the guest has its local APIC
 * software-disabled (scenarios race-10-lapic-bug.json and race-10-lapic-fix.json;
 * machine.kvm.bugs.apf_ready_lost_lapic_disabled, pvmsr/README.md §2.5 and §5.3).
 *
 * Modern protocol: a page-ready is an interrupt through the local APIC, and the token sits in
 * the shared area until the guest's handler frees the slot. KVM 5.8-5.12 dequeued a
 * completed fault whatever the APIC's state: it wrote the token, sent the interrupt into a
 * software-disabled APIC, which drops it, and kept waiting for an ACK that never comes. The
 * slot stays busy, so no page-ready is ever sent again and the waiting task sleeps forever.
 * Commit 2f15d027c05f (5.13) dequeues only while the APIC is enabled and looks again when
 * the guest sets SVR bit 8.
 *
 * One vCPU, two tasks. Task W touches page 0 of the swapped-out window (apf_workload.h):
 * a "page not present", W sleeps. Task R then reprograms the local APIC the way a kernel's
 * APIC set-up or resume path does: SVR bit 8 clear (software-disabled, SDM Vol.3A 11.4.7.2),
 * LINT0/LINT1/error LVTs masked, ESR cleared, TPR 0, a little bookkeeping, SVR bit 8 set
 * again, and the watchdog re-armed (the disable masked its LVT). The scheduler then idles
 * until W's page-ready. As the scenario runs, the fetch completes long after R is done; a
 * `complete gpa=0x1000000` placed by pvsim explore inside R's disabled stretch moves it
 * there.
 *
 * Expected console (every passing run):
 *   apf: CPUID 0x40000001 eax 0x...: modern (page-ready by interrupt)
 *   PASS: the enable's wake-all arrived
 *   PASS: task R reprogrammed the local APIC with SVR bit 8 clear (SVR 0x.. during, 0x1.. after)
 *   PASS: task W slept on its async PF and its page-ready woke it
 *   PASS: the page read zeros, then its pattern
 *   PASS: the token slot is free again (0) and nothing was spurious
 *   apf: vCPU 0: not-present 1, page-ready 1, wake-all 1, ...
 *   SUMMARY: 5 tests
 * When the page-ready is lost (bug, placement inside the disabled stretch), the watchdog:
 *   apf: token slot reads 0x1000: KVM wrote this page-ready's token, but no interrupt came ...
 *   FAIL: task W never woke: its page-ready was lost while the local APIC was software-disabled ...
 * In the trace: kvm_async_pf_ready for token 0x1000 between the two SVR writes; under the
 * fix instead "pvsim_apf: held: LAPIC disabled" there and the ready after the second. */
#include "apf_race.h"

static volatile bool w_done, w_ok;
static volatile uint32_t svr_during, svr_after;

static void stuck_detail(void)
{
    uint32_t slot = apf_area(0)->token;
    if (slot)
        printf("apf: token slot reads 0x%x: KVM wrote this page-ready's token, but no interrupt came, so the "
               "guest never freed the slot, and KVM sends no other page-ready while it is busy\n",
               slot);
    else
        printf("apf: token slot reads 0: no page-ready was written\n");
}

static void task_w(void* arg)
{
    (void)arg;
    w_ok = wl_touch_check_fill(0);
    w_done = true;
}

static void task_r(void* arg)
{
    (void)arg;
    apic_write(APIC_SVR, WL_SPURIOUS_VECTOR); /* bit 8 clear: software-disabled */
    svr_during = apic_read(APIC_SVR);
    apic_write(APIC_LVT0, APIC_LVT_MASKED);
    apic_write(APIC_LVT1, APIC_LVT_MASKED);
    apic_write(APIC_LVTERR, APIC_LVT_MASKED | WL_SPURIOUS_VECTOR);
    apic_write(APIC_ESR, 0); /* the ESR is read-after-write: two writes clear it (SDM 11.5.3) */
    apic_write(APIC_ESR, 0);
    apic_set_tpr(0);
    apic_write(APIC_SVR, APIC_SVR_ENABLE | WL_SPURIOUS_VECTOR);
    svr_after = apic_read(APIC_SVR);
    wl_watchdog_arm();
}

int main(unsigned cpu, unsigned ncpus, unsigned long ram_bytes)
{
    (void)cpu;
    (void)ncpus;
    (void)ram_bytes;
    static const struct apf_options opts = {.send_always = true};
    race_watchdog_set(3000000ul,
                      "task W never woke: its page-ready was lost while the local APIC was software-disabled, and "
                      "with the token slot busy KVM sends no other",
                      stuck_detail);
    (void)wl_edge_start(&opts);
    race_watchdog_install();
    if (apf_protocol() != APF_PROTO_MODERN) {
        report_skip("needs the modern protocol (page-ready by interrupt)");
        report_summary();
    }
    cli();
    task_spawn(task_w, NULL);
    task_spawn(task_r, NULL);
    task_run_all();
    wl_watchdog_disarm();

    const volatile struct apf_counters* c = apf_counters(0);
    report(!(svr_during & APIC_SVR_ENABLE) && (svr_after & APIC_SVR_ENABLE),
           "task R reprogrammed the local APIC with SVR bit 8 clear (SVR 0x%x during, 0x%x after)", svr_during,
           svr_after);
    report(w_done && c->slept >= 1 && c->page_ready >= 1, "task W slept on its async PF and its page-ready woke it");
    report(w_ok, "the page read zeros, then its pattern");
    report(apf_area(0)->token == 0 && c->spurious == 0, "the token slot is free again (0) and nothing was spurious");
    wl_print_counters(0);
    report_summary();
}
