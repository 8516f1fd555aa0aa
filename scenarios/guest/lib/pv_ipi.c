/* pv_ipi.c - IPIs by SEND_IPI hypercall (see pv_ipi.h). */
#include "pv_ipi.h"

#include "apic.h"
#include "hypercall.h"
#include "smp.h"

long pv_send_ipi_raw(uint64_t bits_lo, uint64_t bits_hi, uint32_t min, uint32_t icr)
{
    return kvm_hypercall4(KVM_HC_SEND_IPI, bits_lo, bits_hi, min, icr);
}

static long send_window(void* ctx, uint64_t bits_lo, uint64_t bits_hi, uint32_t min, uint32_t icr)
{
    (void)ctx;
    return pv_send_ipi_raw(bits_lo, bits_hi, min, icr);
}

struct pv_ipi_result pv_send_ipi_mask(cpumask_t mask, uint8_t vector)
{
    uint32_t ids[MAX_CPUS];
    unsigned n = 0;
    for (unsigned cpu = 0; cpu < smp_ncpus(); ++cpu)
        if (mask & CPU_BIT(cpu))
            ids[n++] = pv_apic_id(cpu);
    /* Linux passes the ICR's low word with the delivery mode and vector only: KVM refuses
     * destination-mode and shorthand bits (-KVM_EINVAL). */
    return pv_ipi_send_ids(ids, n, APIC_DM_FIXED | vector, send_window, NULL);
}
