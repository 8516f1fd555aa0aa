/* pv_race_tlb_flush - race 06 of the catalogue: the lost PV TLB flush, CVE-2019-3016
 * (pvmsr/README.md §6.2, §6.3, flag steal_time_write_back of §2.5; lib/pv_tlb.h).
 *
 * Two vCPUs share page tables in which page Y maps an "old" frame. vCPU 1 (the reader)
 * reads Y, so its TLB holds the translation, and then loops: read the round number, read
 * Y. vCPU 0 (the writer) remaps Y to a "new" frame and flushes it on vCPU 1 with Linux's
 * kvm_flush_tlb_multi logic (pv_flush_tlb): if vCPU 1's steal-time `preempted` byte says
 * KVM_VCPU_PREEMPTED, one LOCK CMPXCHG adds KVM_VCPU_FLUSH_TLB and no IPI is sent (KVM
 * flushes vCPU 1's TLB at its next entry); otherwise a flush IPI whose handler runs INVLPG.
 * Then it publishes the round number. A reader that sees the round number and still reads
 * the old frame used a stale translation: the flush was lost.
 *
 * In the plain run vCPU 1 is never preempted: vCPU 0 sends the IPI. The race needs the
 * host to deschedule vCPU 1 and schedule it back in just before vCPU 0's CMPXCHG (the
 * `preempt v1 ...` action the explorer places): KVM's record_steal_time at vCPU 1's entry
 * is then in progress, its stores host.pv_store_ns apart. The 4.16-5.5 host read the whole
 * record, cleared `preempted` in its own copy, decided "no flush" and wrote the whole copy
 * back one store later; vCPU 0's CMPXCHG, landing between the read and the write-back,
 * still found the byte preempted, set FLUSH_TLB, skipped the IPI, and the write-back erased
 * the flag. The fix (b043138246a4, 5.6) exchanges the byte with 0 in guest memory at once,
 * so vCPU 0 finds vCPU 1 running and sends the IPI.
 *
 * Scenarios: race-06-tlb-flush-lost-{bug,fix}.json (abi "orig", flag on or off). */
#include "apic.h"
#include "irq.h"
#include "libc.h"
#include "paging.h"
#include "pv.h"
#include "pv_steal.h"
#include "pv_tlb.h"
#include "report.h"
#include "smp.h"

#define FLUSH_VECTOR 0xe1
#define VA_Y 0x8000000000ull /* PML4 slot 1: nothing else lives there */
#define SETTLE_CYCLES 25000ull /* 10 us at 2.5 GHz: both vCPUs in their loops by then */

#define TAG_OLD 0x01d0000000000002ull
#define TAG_NEW 0x0e50000000000002ull
static uint64_t frames[2][512] __attribute__((aligned(4096))) = {{[0 ... 511] = TAG_OLD}, {[0 ... 511] = TAG_NEW}};
static uint64_t root[512] __attribute__((aligned(4096)));
static uint64_t pdpt[512] __attribute__((aligned(4096)));
static uint64_t pd[512] __attribute__((aligned(4096)));
static uint64_t pt[512] __attribute__((aligned(4096)));

static volatile uint32_t round_done; /* vCPU 0's remap and flush are complete */
static volatile uint64_t reader_ready_tsc;
static volatile uint64_t seen, seen_after_invlpg;
static volatile uint32_t reader_done;
static struct pv_tlb_result result;

static void map_y(unsigned frame) { pt[(VA_Y >> 12) & 511] = (uint64_t)(uintptr_t)frames[frame] | PTE_P | PTE_W; }

static void build_tables(void)
{
    /* Keep the boot mappings (PML4 slot 0: the identity-mapped first 4 GiB), add ours. */
    const uint64_t* boot = (const uint64_t*)(uintptr_t)(read_cr3() & PTE_ADDR_MASK);
    for (unsigned i = 0; i < 512; ++i)
        root[i] = boot[i];
    root[(VA_Y >> 39) & 511] = (uint64_t)(uintptr_t)pdpt | PTE_P | PTE_W;
    pdpt[(VA_Y >> 30) & 511] = (uint64_t)(uintptr_t)pd | PTE_P | PTE_W;
    pd[(VA_Y >> 21) & 511] = (uint64_t)(uintptr_t)pt | PTE_P | PTE_W;
    map_y(0);
}

static inline uint64_t peek(uint64_t va) { return *(volatile uint64_t*)(uintptr_t)va; }

static const char* frame_name(uint64_t v)
{
    return v == TAG_OLD ? "the old frame" : v == TAG_NEW ? "the new frame" : "neither frame";
}

void ap_main(unsigned cpu, unsigned ncpus)
{
    (void)ncpus;
    apic_init(APIC_MODE_XAPIC, 0xff);
    pv_cpu_init();
    smp_barrier(); /* vCPU 0 has built the tables */
    if (cpu != 1) {
        smp_barrier();
        return;
    }
    write_cr3((uint64_t)(uintptr_t)root);
    steal_time_enable();
    (void)peek(VA_Y); /* Y's old translation is now in this vCPU's TLB */
    sti();            /* flush IPIs must reach us */
    reader_ready_tsc = rdtsc();
    for (;;) {
        uint32_t r = round_done;
        uint64_t v = peek(VA_Y);
        if (r) {
            seen = v;
            break;
        }
    }
    invlpg((const void*)(uintptr_t)VA_Y);
    seen_after_invlpg = peek(VA_Y);
    cli();
    reader_done = 1;
    smp_barrier();
}

/* The remap and the flush: the scenario's explore window covers the end of the wait before
 * it and all of it (`pvsim run ... --schedule 'v0.rip=flush_round: stop'` prints where it
 * starts). */
__attribute__((noinline)) static void flush_round(void)
{
    map_y(1);
    pv_flush_tlb(CPU_BIT(1), VA_Y, &result);
    __atomic_store_n(&round_done, 1, __ATOMIC_SEQ_CST);
}

int main(unsigned cpu, unsigned ncpus, unsigned long ram_bytes)
{
    (void)cpu;
    (void)ram_bytes;
    apic_init(APIC_MODE_XAPIC, 0xff);
    pv_cpu_init();
    if (ncpus != 2) {
        report_skip("needs 2 vCPUs");
        report_summary();
    }
    bool pv = pv_tlb_init(FLUSH_VECTOR, true);
    build_tables();
    write_cr3((uint64_t)(uintptr_t)root);
    unsigned st = steal_time_enable();
    smp_barrier();
    while (!reader_ready_tsc)
        __asm__ volatile("" ::: "memory");
    /* No PAUSE in the waits: a PAUSE costs far more cycles than an ordinary instruction, and
     * this vCPU would run whole quanta ahead of the reader in virtual time. */
    while ((int64_t)(rdtsc() - reader_ready_tsc) < (int64_t)SETTLE_CYCLES)
        __asm__ volatile("" ::: "memory");
    sti(); /* pv_flush_tlb may IPI, and wants IF=1 */
    flush_round();
    cli();
    while (!reader_done)
        __asm__ volatile("" ::: "memory");

    printf("race-06: PV TLB flush %s; vCPU 1's preempted byte read 0x%x: %s; vCPU 1 then read 0x%lx through Y: %s\n",
           pv ? "on" : "off (CPUID lacks STEAL_TIME or PV_TLB_FLUSH)", result.preempted_seen[1],
           (result.deferred & CPU_BIT(1)) ? "FLUSH_TLB set with CMPXCHG, no IPI"
           : (result.ipi & CPU_BIT(1))    ? "flush IPI sent and acknowledged"
                                          : "no flush at all",
           seen, frame_name(seen));
    report(st == 0 && steal_time_enabled(1), "both vCPUs registered steal time");
    if (result.deferred & CPU_BIT(1))
        report(seen == TAG_NEW,
               "vCPU 1 read page Y's %s after the flush that vCPU 0 handed to the host (FLUSH_TLB in vCPU 1's "
               "preempted byte, no IPI)%s",
               seen == TAG_NEW ? "new frame" : "old frame through its stale translation",
               seen == TAG_NEW ? "" : ": the host lost the flag");
    else
        report(seen == TAG_NEW, "vCPU 1 read %s of page Y after the flush IPI", frame_name(seen));
    report(seen_after_invlpg == TAG_NEW, "after its own INVLPG vCPU 1 reads Y's new frame");
    smp_barrier();
    report_summary();
}
