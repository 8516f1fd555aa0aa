/* apf_race_halted - a page-ready for a fault the guest never saw (scenarios
 * race-09-halted-bug.json and race-09-halted-fix.json;
 * machine.kvm.bugs.apf_ready_without_not_present, pvmsr/README.md §2.5 and §5.3).
 *
 * Without SEND_ALWAYS (MSR 0x4b564d02 bit 1 clear, as Linux has enabled async PF since 5.8),
 * KVM may not announce "page not present" to code at CPL 0: a kernel access to a page the
 * host must fetch halts the vCPU in the host until the page is in, and the guest sees
 * nothing. KVM still allocates a token for that work. In the 5.8 merge window the page-ready
 * went out for every completed work, so the guest got a page-ready interrupt for a token it
 * had never waited on; its wake found no waiter and left a dummy entry in the sleeper table
 * (for a page-ready that overtakes its wait, apf.h), which no wait will ever consume: a leak
 * per such fault. Commit 2a18b7e7cd88 (5.8-rc1) sends page-ready only for works whose
 * not-present reached the guest.
 *
 * One vCPU, no tasks: main (CPL 0, IF=1) fills the resident page RACE_RESIDENT_PAGE with a
 * pattern, then copies it, 8 bytes at a time, into a buffer of its own, as a kernel copies a
 * user buffer. As the scenario runs, nothing faults. An `evict gpa=0x1100000` placed by pvsim
 * explore before the copy's last load makes the next load wait for the host (a halt, no
 * #PF); under the bug, a page-ready for that halt's token follows.
 *
 * Expected console (every passing run):
 *   apf: CPUID 0x40000001 eax 0x...: modern (page-ready by interrupt)
 *   PASS: the enable's wake-all arrived
 *   PASS: MSR 0x4b564d02 has SEND_ALWAYS (bit 1) clear: 0x...
 *   PASS: the copy read back the pattern
 *   PASS: no not-present #PF at CPL 0 (the host halts the vCPU instead)
 *   PASS: no page-ready for a token the guest never saw; the sleeper table is empty
 *   apf: vCPU 0: not-present 0, page-ready 0, wake-all 1, ...
 *   SUMMARY: 5 tests
 * Under the bug, with the page evicted before the copy's last load:
 *   apf: the copy's loads took N ns (halted in the host); then 1 page-ready came for a token this guest never saw
 *   FAIL: a page-ready for a fault that only halted the vCPU left 1 dummy in the sleeper table that no wait will ever consume (leaked)
 * In the trace: kvm_async_pf_not_present and "pvsim_apf: halt" with no kvm_inj_exception,
 * then kvm_async_pf_ready and, only under the bug, kvm_inj_virq of vector 0xf3. */
#include "apf_race.h"

#define COPY_WORDS 128u

static uint64_t copy_buf[COPY_WORDS];

int main(unsigned cpu, unsigned ncpus, unsigned long ram_bytes)
{
    (void)cpu;
    (void)ncpus;
    (void)ram_bytes;
    static const struct apf_options opts = {.send_always = false};
    race_watchdog_set(3000000ul, "the copy finished within 3 ms of virtual time", NULL);
    (void)wl_edge_start(&opts);
    race_watchdog_install();
    report(!(apf_msr_value(0) & KVM_ASYNC_PF_SEND_ALWAYS), "MSR 0x%x has SEND_ALWAYS (bit 1) clear: 0x%lx",
           MSR_KVM_ASYNC_PF_EN, apf_msr_value(0));
    const volatile struct apf_counters* c = apf_counters(0);

    volatile uint64_t* src = (volatile uint64_t*)race_resident_page();
    for (unsigned i = 0; i < COPY_WORDS; ++i)
        src[i] = 0x9e3779b97f4a7c15ull * (i + 1);
    sti();
    uint64_t t0 = wl_now();
    for (unsigned i = 0; i < COPY_WORDS; ++i)
        copy_buf[i] = src[i];
    uint64_t took = wl_now() - t0;
    cli();

    bool ok = true;
    for (unsigned i = 0; i < COPY_WORDS; ++i)
        ok = ok && copy_buf[i] == 0x9e3779b97f4a7c15ull * (i + 1);
    report(ok, "the copy read back the pattern");
    report(c->not_present == 0, "no not-present #PF at CPL 0 (the host halts the vCPU instead)");
    uint32_t dummies = apf_table_count(true);
    if (c->page_ready == 0 && dummies == 0) {
        report(true, "no page-ready for a token the guest never saw; the sleeper table is empty");
    } else {
        printf("apf: the copy's loads took %lu ns (halted in the host); then %lu page-ready came for a token this "
               "guest never saw\n",
               took, c->page_ready);
        report(false,
               "a page-ready for a fault that only halted the vCPU left %u dumm%s in the sleeper table that no "
               "wait will ever consume (leaked)",
               dummies, dummies == 1 ? "y" : "ies");
    }
    wl_watchdog_disarm();
    wl_print_counters(0);
    report_summary();
}
