/* apf_lapic_off - a page-ready is held back while the local APIC is software-disabled:
 * modern KVM delivers the next page-ready only when the guest's token slot is 0 AND its
 * LAPIC is enabled, and looks again when the guest sets SVR bit 8 (commit 2f15d027c05f,
 * Linux 5.13; from 5.8 to 5.12 the interrupt was dropped and async PF stuck for good;
 * pvmsr/README.md §5.3). Modern protocol only: in the seed era page-ready is a #PF,
 * which no APIC gates.
 *
 * One vCPU, no swapped memory needed: main clears SVR bit 8 (APIC software-disabled),
 * enables async PF (which queues the wake-all), sets IF and watches 3 fault-ins: nothing
 * may arrive and the token slot stays 0. Then it sets SVR bit 8 again: the wake-all
 * (token 0xffffffff) arrives.
 *
 * Scenario: vcpus 1, ram_mib 32, no host.memory section needed (any is fine).
 * Expected console (modern):
 *   apf: CPUID 0x40000001 eax 0x...: modern (page-ready by interrupt)
 *   PASS: async PF enabled with the local APIC software-disabled (SVR 0x..)
 *   PASS: while the APIC is disabled no page-ready arrives and the token slot stays 0
 *   PASS: after SVR bit 8 is set again the wake-all arrives
 *   apf: vCPU 0: not-present 0, page-ready 0, wake-all 1, ...
 *   SUMMARY: 3 tests
 * With the seed-era protocol: "SKIP: needs the modern protocol ..." and exit status 77.
 * In the trace: the SVR write (bit 8 clear), the two WRMSRs, no interrupt, the SVR write
 * (bit 8 set), then kvm_apic_accept_irq / kvm_inj_virq of vector 0xf3 and the ACK WRMSR. */
#include "apf_workload.h"

int main(unsigned cpu, unsigned ncpus, unsigned long ram_bytes)
{
    (void)cpu;
    (void)ncpus;
    (void)ram_bytes;
    wl_cpu_setup();
    struct apf_options opts = {.send_always = true};
    wl_setup_or_skip(&opts, APF_PROTO_MODERN);
    const volatile struct apf_counters* c = apf_counters(0);

    cli();
    apic_write(APIC_SVR, WL_SPURIOUS_VECTOR); /* bit 8 clear: software-disabled (SDM 11.4.7.2) */
    uint32_t svr_off = apic_read(APIC_SVR);
    unsigned fault = apf_enable();
    if (fault) {
        printf("apf: enabling async PF faulted: vector %u (%s)\n", fault, exception_mnemonic(fault));
        report(false, "WRMSR of the async PF MSRs succeeds");
        report_summary();
    }
    report(!(svr_off & APIC_SVR_ENABLE), "async PF enabled with the local APIC software-disabled (SVR 0x%x)", svr_off);

    wl_spin_ns(3 * APF_EDGE_FAULT_IN_NS);
    report(c->wake_all == 0 && c->page_ready == 0 && apf_area(0)->token == 0,
           "while the APIC is disabled no page-ready arrives and the token slot stays 0");

    apic_write(APIC_SVR, APIC_SVR_ENABLE | WL_SPURIOUS_VECTOR);
    /* Software-disabling masked every LVT entry (SDM 11.4.7.2): arm the watchdog again. */
    wl_watchdog_arm();
    bool arrived = wl_wait_counter(&c->wake_all, 1, 50 * APF_EDGE_FAULT_IN_NS);
    report(arrived && c->wake_all == 1 && c->spurious == 0, "after SVR bit 8 is set again the wake-all arrives");
    cli();
    wl_watchdog_disarm();
    wl_print_counters(0);
    report_summary();
}
