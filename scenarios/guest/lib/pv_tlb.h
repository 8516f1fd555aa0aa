/* pv_tlb.h - TLB shootdown, native and paravirtual (pvmsr/README.md §6.2).
 *
 * After changing a page-table entry that other vCPUs may have cached, a guest must make
 * each of them drop the stale translation. Natively that is an IPI: the target's handler
 * runs INVLPG (or reloads CR3) and acknowledges, and the sender waits for every
 * acknowledgement. With PV_TLB_FLUSH (CPUID 0x40000001 bit 9, with STEAL_TIME) a target
 * whose steal-time `preempted` has KVM_VCPU_PREEMPTED is not running, so it cannot use the
 * stale entry right now: the sender sets KVM_VCPU_FLUSH_TLB in that byte with one LOCK
 * CMPXCHG and skips its IPI, and KVM flushes the vCPU's whole TLB at its next entry.
 * Linux: kvm_flush_tlb_multi in arch/x86/kernel/kvm.c.
 *
 * The CMPXCHG can succeed only while the byte still holds the value just read: if the
 * host cleared `preempted` in between (the vCPU is being scheduled in), the sender falls
 * back to the IPI. A host that read the byte before the CMPXCHG and writes its own copy
 * back after it loses the flag: that was CVE-2019-3016 (pvmsr/README.md §6.2), which the
 * pv_tlb program replays.
 *
 * Linked only into the pv_* programs (pv.h). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "pv.h"
#include "pv_steal.h"

#define TLB_FLUSH_ALL (~0ull)

/* Once, on vCPU 0: installs the flush IPI's handler on `vector`. `use_pv` enables the
 * paravirtual path (only taken when CPUID offers STEAL_TIME and PV_TLB_FLUSH and no
 * REALTIME hint, as Linux decides in kvm_guest_init). Each vCPU needs apic_init and
 * pv_cpu_init; the targets need IF=1 to take the IPI. Returns whether the PV path is on. */
bool pv_tlb_init(uint8_t vector, bool use_pv);
bool pv_tlb_pv_enabled(void);

/* The PV decision for one target, given its `preempted` byte: if bit 0 is set, try to
 * add FLUSH_TLB with one LOCK CMPXCHG on the byte. True when the flag went in (the host
 * will flush; no IPI needed). Kept in the header so the host-side check runs it. */
static inline bool pv_tlb_try_defer(volatile uint8_t* preempted)
{
    uint8_t state = __atomic_load_n(preempted, __ATOMIC_RELAXED);
    if (!(state & KVM_VCPU_PREEMPTED))
        return false;
    return __atomic_compare_exchange_n(preempted, &state, (uint8_t)(state | KVM_VCPU_FLUSH_TLB), false,
                                       __ATOMIC_SEQ_CST, __ATOMIC_RELAXED);
}

struct pv_tlb_result {
    cpumask_t deferred; /* targets whose flush was handed to the host (FLUSH_TLB set) */
    cpumask_t ipi;      /* targets that got a flush IPI and acknowledged it */
    cpumask_t cas_lost; /* targets seen preempted whose CMPXCHG failed (then IPI'd) */
    uint8_t preempted_seen[MAX_CPUS]; /* each target's `preempted` byte as first read */
};

/* Flushes `va` (one page, or TLB_FLUSH_ALL) on every vCPU in `mask`; this vCPU's own bit
 * means a local INVLPG / CR3 reload. Waits for the acknowledgement of every IPI it sent.
 * Call with IF=1 (a flush IPI from another sender must be able to reach us). */
void pv_flush_tlb(cpumask_t mask, uint64_t va, struct pv_tlb_result* out);

/* Per vCPU: flush IPIs handled. */
uint64_t pv_tlb_ipis_handled(unsigned cpu);
