/* pv_tlb.c - TLB shootdown by IPI, or by steal-time flag for preempted vCPUs (pv_tlb.h). */
#include "pv_tlb.h"

#include "apic.h"
#include "irq.h"
#include "libc.h"
#include "smp.h"

/* One mailbox per target: the sender writes the address and a new sequence number, the
 * target's handler flushes and copies the sequence number into `ack`. */
struct flush_mailbox {
    volatile uint64_t va;
    volatile uint32_t seq;
    volatile uint32_t ack;
    volatile uint64_t handled;
} __attribute__((aligned(64)));

static struct flush_mailbox mailboxes[MAX_CPUS];
static uint8_t flush_vector;
static bool pv_path;
static spinlock_t sender_lock; /* one shootdown at a time: the mailboxes have one slot */

static void local_flush(uint64_t va)
{
    if (va == TLB_FLUSH_ALL)
        write_cr3(read_cr3()); /* drops every non-global entry (SDM Vol.3A 4.10.4.1) */
    else
        invlpg((const void*)(uintptr_t)va);
}

static void flush_ipi(unsigned vector, struct ex_frame* f)
{
    (void)vector;
    (void)f;
    struct flush_mailbox* m = &mailboxes[this_cpu()];
    local_flush(m->va);
    ++m->handled;
    __atomic_store_n(&m->ack, m->seq, __ATOMIC_RELEASE);
}

bool pv_tlb_init(uint8_t vector, bool use_pv)
{
    flush_vector = vector;
    irq_set_handler_eoi(vector, flush_ipi);
    pv_path = use_pv && kvm_para_has(KVM_FEATURE_STEAL_TIME | KVM_FEATURE_PV_TLB_FLUSH) &&
              !(kvm_para_hints() & KVM_HINTS_REALTIME);
    return pv_path;
}

bool pv_tlb_pv_enabled(void) { return pv_path; }

uint64_t pv_tlb_ipis_handled(unsigned cpu) { return mailboxes[cpu].handled; }

void pv_flush_tlb(cpumask_t mask, uint64_t va, struct pv_tlb_result* out)
{
    unsigned self = this_cpu();
    unsigned n = smp_ncpus();
    memset(out, 0, sizeof *out);
    spin_lock(&sender_lock);
    /* First hand what we can to the host (Linux: kvm_flush_tlb_multi clears those vCPUs
     * from the mask), then IPI the rest. */
    for (unsigned cpu = 0; cpu < n; ++cpu) {
        if (cpu == self || !(mask & CPU_BIT(cpu)))
            continue;
        volatile uint8_t* p = &steal_time_area(cpu)->preempted;
        out->preempted_seen[cpu] = *p;
        if (!pv_path || !steal_time_enabled(cpu))
            continue;
        if (pv_tlb_try_defer(p))
            out->deferred |= CPU_BIT(cpu);
        else if (out->preempted_seen[cpu] & KVM_VCPU_PREEMPTED)
            out->cas_lost |= CPU_BIT(cpu);
    }
    uint32_t seqs[MAX_CPUS] = {0};
    for (unsigned cpu = 0; cpu < n; ++cpu) {
        if (cpu == self || !(mask & CPU_BIT(cpu)) || (out->deferred & CPU_BIT(cpu)))
            continue;
        struct flush_mailbox* m = &mailboxes[cpu];
        m->va = va;
        seqs[cpu] = m->seq + 1;
        __atomic_store_n(&m->seq, seqs[cpu], __ATOMIC_RELEASE);
        apic_ipi_fixed(pv_apic_id(cpu), flush_vector);
        out->ipi |= CPU_BIT(cpu);
    }
    if (mask & CPU_BIT(self))
        local_flush(va);
    for (unsigned cpu = 0; cpu < n; ++cpu)
        if (out->ipi & CPU_BIT(cpu))
            while (__atomic_load_n(&mailboxes[cpu].ack, __ATOMIC_ACQUIRE) != seqs[cpu])
                pause();
    spin_unlock(&sender_lock);
}
