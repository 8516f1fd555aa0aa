/* apf_cpl0 - async PF enabled WITHOUT SEND_ALWAYS (MSR 0x4b564d02 bit 1 clear): the host
 * may announce "page not present" only to code at CPL 3, so a touch at CPL 0 gets no #PF;
 * the vCPU halts in the host until the page arrives (pvmsr/README.md §5.3; Linux before
 * 5.8 without CONFIG_PREEMPT enabled async PF this way).
 *
 * One vCPU: main (CPL 0, IF=1, no task) touches page 0 of the window.
 * What the guest checks: no not-present; the load stalled at least half a fault-in and
 * read zeros; then, watching 3 fault-ins with IF=1:
 *   modern: nothing arrives (KVM sends a page-ready only for a fault it announced, a fix
 *           of June 2020);
 *   seed era: one page-ready #PF (reason 2) for a token the guest never saw: it finds no
 *           waiter and leaves a dummy nobody will consume (KVM 3.x sent it; Linux leaked
 *           the dummy the same way).
 *
 * Scenario: vcpus 1, ram_mib 32,
 *   "host": {"memory": {"swapped_out": [{"gpa": "0x1000000", "size": "0x100000"}],
 *                       "fault_in_ns": 1000000}}
 * Expected console (modern):
 *   apf: CPUID 0x40000001 eax 0x...: modern (page-ready by interrupt)
 *   PASS: the enable's wake-all arrived
 *   PASS: MSR 0x4b564d02 has SEND_ALWAYS (bit 1) clear: 0x...
 *   PASS: a touch at CPL 0 raised no not-present
 *   PASS: the touch stalled in the host: N ns (at least 500000)
 *   PASS: modern: no page-ready for the fault the host never announced
 *   PASS: the page read zeros, then its pattern
 *   apf: vCPU 0: not-present 0, page-ready 0, wake-all 1, ...
 *   SUMMARY: 6 tests
 * Seed era (machine.kvm.abi "orig", features without ASYNC_PF_INT): the fifth line is
 *   PASS: seed era: one page-ready for a fault never announced, leaving one dummy
 * In the trace: a kvm_page_fault and no injected #PF; the vCPU halts until the fetch ends. */
#include "apf_workload.h"

int main(unsigned cpu, unsigned ncpus, unsigned long ram_bytes)
{
    (void)cpu;
    (void)ncpus;
    (void)ram_bytes;
    static const struct apf_options opts = {.send_always = false};
    enum apf_protocol p = wl_edge_start(&opts);
    report(!(apf_msr_value(0) & KVM_ASYNC_PF_SEND_ALWAYS), "MSR 0x%x has SEND_ALWAYS (bit 1) clear: 0x%lx",
           MSR_KVM_ASYNC_PF_EN, apf_msr_value(0));
    const volatile struct apf_counters* c = apf_counters(0);

    sti();
    uint64_t t0 = wl_now();
    uint64_t v = wl_first_touch(0);
    uint64_t stall = wl_now() - t0;
    report(c->not_present == 0, "a touch at CPL 0 raised no not-present");
    if (wl_clock())
        report(stall >= APF_EDGE_FAULT_IN_NS / 2, "the touch stalled in the host: %lu ns (at least %lu)", stall,
               APF_EDGE_FAULT_IN_NS / 2);
    else
        report_skip("no kvmclock: the stall not measured");
    wl_spin_ns(3 * APF_EDGE_FAULT_IN_NS);
    cli();
    if (p == APF_PROTO_MODERN)
        report(c->page_ready == 0 && c->dummies_created == 0 && c->spurious == 0,
               "modern: no page-ready for the fault the host never announced");
    else
        report(c->page_ready == 1 && c->dummies_created == 1 && apf_table_count(true) == 1 && c->spurious == 0,
               "seed era: one page-ready for a fault never announced, leaving one dummy");
    report(v == 0 && wl_check_fill(0), "the page read zeros, then its pattern");
    wl_watchdog_disarm();
    wl_print_counters(0);
    report_summary();
}
