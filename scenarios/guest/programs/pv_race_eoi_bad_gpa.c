/* pv_race_eoi_bad_gpa - item 15 of the catalogue: a refused MSR_KVM_PV_EOI_EN value that
 * stays stored (pvmsr/README.md §7.1, §7.3, flag pv_eoi_keeps_bad_value of §2.5). Not a race:
 * one vCPU, one sequence.
 *
 * The guest enables PV EOI on a good 4-byte word (MSR 0x4b564d04 = GPA | 1) and reads the
 * MSR back. Then it tries to move the word to a GPA beyond the end of RAM: KVM cannot set up
 * its cache of the area there and refuses the write with #GP. A guest that takes the #GP
 * (the runtime's wrmsr_safe, as Linux's fault-tolerant MSR accessors) expects the refused
 * write to have changed nothing, as the SDM says of a WRMSR that faults (Vol. 2B, WRMSR:
 * "#GP(0) ... the MSR is not written"), and reads the MSR back to check.
 *
 * Until 5.16 kvm_lapic_set_pv_eoi stored the new value before it tried to set up the cache,
 * so the read returned the refused address; afd67ee3cbbd keeps the old value.
 *
 * Scenarios: race-15-pv-eoi-bad-gpa-{bug,fix}.json (abi "modern", flag on or off). */
#include "apic.h"
#include "libc.h"
#include "pv.h"
#include "pv_eoi.h"
#include "report.h"

#define BAD_GPA 0x40000000ull /* 1 GiB: the scenario's RAM is 16 MiB */
#define GP_VECTOR 13u

int main(unsigned cpu, unsigned ncpus, unsigned long ram_bytes)
{
    (void)cpu;
    (void)ncpus;
    if (ram_bytes > BAD_GPA) {
        report_skip("needs less than 1 GiB of RAM");
        report_summary();
    }
    apic_init(APIC_MODE_XAPIC, 0xff);
    pv_cpu_init();
    unsigned v = pv_eoi_enable();
    if (v == PV_EOI_NOT_OFFERED) {
        report_skip("CPUID offers no PV EOI");
        report_summary();
    }
    uint64_t good = 0;
    unsigned rv = rdmsr_safe(MSR_KVM_PV_EOI_EN, &good);
    report(v == 0 && rv == 0 && (good & KVM_PV_EOI_ENABLED),
           "PV EOI enabled on a word in RAM: MSR 0x4b564d04 reads 0x%lx", good);

    uint64_t bad = BAD_GPA | KVM_PV_EOI_ENABLED;
    unsigned wv = pv_wrmsr_safe(MSR_KVM_PV_EOI_EN, bad);
    report(wv == GP_VECTOR, "moving the word to GPA 0x%llx, beyond RAM, is refused with #GP (vector %u)", BAD_GPA,
           wv);
    uint64_t after = 0;
    rv = rdmsr_safe(MSR_KVM_PV_EOI_EN, &after);
    if (after == bad)
        report(false,
               "after the refused WRMSR, MSR 0x4b564d04 reads the refused value 0x%lx instead of the old 0x%lx: "
               "the host stored what it rejected",
               after, good);
    else
        report(rv == 0 && after == good, "after the refused WRMSR, MSR 0x4b564d04 still reads the old value 0x%lx",
               after);
    report_summary();
}
