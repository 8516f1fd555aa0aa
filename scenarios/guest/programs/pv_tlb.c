/* pv_tlb - the PV TLB flush, and the window of CVE-2019-3016 (pvmsr/README.md §6.2,
 * lib/pv_tlb.h).
 *
 * Two vCPUs share page tables in which two virtual pages, X and Y, each map a frame of
 * their own ("old" frames). vCPU 1 (the reader) reads X and Y, so its TLB holds both
 * translations, then loops reading a sequence number and then the page of the current
 * round. vCPU 0 (the writer) remaps a page to a "new" frame, flushes it on both vCPUs
 * and bumps the sequence number. A reader that sees the new sequence number and still
 * reads the old frame read through a stale translation: the flush was lost.
 *
 *   Round 1, X, at 300 us: the host has descheduled vCPU 1 (host.preempt [200, 400) us),
 *   so its steal-time `preempted` reads 1: the writer sets FLUSH_TLB in it with LOCK
 *   CMPXCHG and sends no IPI. At vCPU 1's next entry KVM finds the flag and flushes its
 *   TLB: the reader sees the new frame, under every host.
 *   Round 2, Y, at 700 us: vCPU 1 is descheduled again and scheduled back in 200 ns
 *   before the writer's flush. KVM's update of the steal-time area at that entry is
 *   spread over time (host.pv_store_ns): it reads `preempted` first and writes the area
 *   later. Seed-era KVM (machine.kvm.abi "orig", KVM 4.16-5.5 for this feature) read the
 *   whole struct, decided "no flush" from its copy and wrote the whole copy back: the
 *   writer's CMPXCHG, landing between the read and the write-back, succeeds (the byte
 *   still says preempted), no IPI goes out, and the write-back erases FLUSH_TLB. vCPU 1
 *   runs on with its old translation of Y and reads the old frame: a FAIL line, the
 *   guest-visible face of CVE-2019-3016. Modern KVM (5.6+, commit b043138246a4) clears
 *   the byte with one atomic exchange at the read, so the writer finds vCPU 1 not
 *   preempted, sends the IPI, and the reader's handler runs INVLPG: the new frame.
 *   Afterwards the reader runs INVLPG Y itself and must see the new frame either way.
 *
 * Scenario: vcpus 2, pcpus 2, steal time and PV_TLB_FLUSH in CPUID, host.preempt for
 * vCPU 1 [200, 400) us and [500 us, 699.8 us), host.pv_store_ns 1000; machine.kvm.abi
 * "orig" (pv-tlb-orig: the round 2 check fails, exit status 3) or "modern" (pv-tlb-modern).
 * In the trace: kvm_pv_tlb_flush "vcpu 1 need_flush_tlb true" at the entry ending round
 * 1's preemption; in round 2 "need_flush_tlb false" and, under modern only, the flush IPI
 * (vector 225). */
#include "apic.h"
#include "irq.h"
#include "kvmclock.h"
#include "libc.h"
#include "paging.h"
#include "pv.h"
#include "pv_steal.h"
#include "pv_tlb.h"
#include "pv_util.h"
#include "report.h"
#include "smp.h"

#define FLUSH_VECTOR 0xe1
#define VA_X 0x8000000000ull /* PML4 slot 1: nothing else lives there */
#define VA_Y (VA_X + 0x1000) /* same page table as X */
#define ROUND1_NS 300000ull
#define ROUND2_NS 700000ull

/* Frames: old X, new X, old Y, new Y; each page holds its own tag in every word. Filled
 * at build time (GCC's range designators): a fill loop would cost an -O0 build tens of us
 * before the first round. */
#define TAG_OLD_X 0x01d0000000000001ull
#define TAG_NEW_X 0x0e50000000000001ull
#define TAG_OLD_Y 0x01d0000000000002ull
#define TAG_NEW_Y 0x0e50000000000002ull
static uint64_t frames[4][512] __attribute__((aligned(4096))) = {
    {[0 ... 511] = TAG_OLD_X}, {[0 ... 511] = TAG_NEW_X}, {[0 ... 511] = TAG_OLD_Y}, {[0 ... 511] = TAG_NEW_Y}};
static const uint64_t tags[4] = {TAG_OLD_X, TAG_NEW_X, TAG_OLD_Y, TAG_NEW_Y};
/* Our page tables: the boot PML4's entries plus slot 1, whose one PDPT, PD and page table
 * map X and Y. In .bss, so the loader has zeroed them. */
static uint64_t root[512] __attribute__((aligned(4096)));
static uint64_t pdpt[512] __attribute__((aligned(4096)));
static uint64_t pd[512] __attribute__((aligned(4096)));
static uint64_t pt[512] __attribute__((aligned(4096)));
static volatile uint32_t seq;   /* round whose remap and flush are complete */
static volatile uint32_t warm2; /* the reader has re-read Y after round 1 */
static volatile uint64_t seen[3], seen_after_invlpg;
static volatile uint32_t reader_done;
static struct pv_tlb_result flush_result[3];
static uint64_t flush_at[3];

static void map(uint64_t va, unsigned frame)
{
    pt[(va >> 12) & 511] = (uint64_t)(uintptr_t)frames[frame] | PTE_P | PTE_W;
}

static void build_tables(void)
{
    /* Keep the boot mappings (PML4 slot 0: the identity-mapped first 4 GiB), add ours. */
    const uint64_t* boot = (const uint64_t*)(uintptr_t)(read_cr3() & PTE_ADDR_MASK);
    for (unsigned i = 0; i < 512; ++i)
        root[i] = boot[i];
    root[(VA_X >> 39) & 511] = (uint64_t)(uintptr_t)pdpt | PTE_P | PTE_W;
    pdpt[(VA_X >> 30) & 511] = (uint64_t)(uintptr_t)pd | PTE_P | PTE_W;
    pd[(VA_X >> 21) & 511] = (uint64_t)(uintptr_t)pt | PTE_P | PTE_W;
    map(VA_X, 0);
    map(VA_Y, 2);
}

static inline uint64_t peek(uint64_t va) { return *(volatile uint64_t*)(uintptr_t)va; }

static const char* frame_name(uint64_t v)
{
    for (unsigned f = 0; f < 4; ++f)
        if (v == tags[f])
            return f & 1 ? "the new frame" : "the old frame";
    return "neither frame";
}

static uint32_t cpu_setup(void)
{
    apic_init(APIC_MODE_XAPIC, 0xff);
    pv_cpu_init();
    return kvmclock_init();
}

void ap_main(unsigned cpu, unsigned ncpus)
{
    (void)cpu;
    (void)ncpus;
    cpu_setup();
    smp_barrier(); /* vCPU 0 has built the tables */
    write_cr3((uint64_t)(uintptr_t)root);
    steal_time_enable();
    (void)peek(VA_X);
    (void)peek(VA_Y);
    smp_barrier();
    sti(); /* flush IPIs must reach us */
    for (;;) {
        uint32_t s = seq;
        uint64_t v = peek(VA_X);
        if (s >= 1) {
            seen[1] = v;
            break;
        }
    }
    /* Round 1's flush dropped the whole TLB: load Y's translation again before round 2. */
    (void)peek(VA_Y);
    warm2 = 1;
    for (;;) {
        uint32_t s = seq;
        uint64_t v = peek(VA_Y);
        if (s >= 2) {
            seen[2] = v;
            break;
        }
    }
    invlpg((const void*)(uintptr_t)VA_Y);
    seen_after_invlpg = peek(VA_Y);
    reader_done = 1;
    cli();
    smp_barrier();
}

static void run_round(unsigned r, uint64_t va, unsigned new_frame, uint64_t at)
{
    pv_spin_until(at);
    map(va, new_frame);
    sti(); /* pv_flush_tlb may IPI, and wants IF=1 */
    flush_at[r] = pv_now();
    pv_flush_tlb(CPU_BIT(0) | CPU_BIT(1), va, &flush_result[r]);
    cli();
    __atomic_store_n(&seq, r, __ATOMIC_SEQ_CST);
}

static void describe(unsigned r)
{
    const struct pv_tlb_result* f = &flush_result[r];
    printf("pv_tlb: round %u: at %lu ns vCPU 1's preempted byte read 0x%x: %s\n", r, flush_at[r],
           f->preempted_seen[1],
           (f->deferred & CPU_BIT(1)) ? "FLUSH_TLB set with CMPXCHG, no IPI"
           : (f->ipi & CPU_BIT(1))    ? "flush IPI sent and acknowledged"
                                      : "no flush at all");
    printf("pv_tlb: round %u: vCPU 1 then read 0x%lx through %s: %s\n", r, seen[r], r == 1 ? "X" : "Y",
           frame_name(seen[r]));
}

int main(unsigned cpu, unsigned ncpus, unsigned long ram_bytes)
{
    (void)cpu;
    (void)ram_bytes;
    uint32_t clock = cpu_setup();
    if (smp_ncpus() != 2 || !clock) {
        /* The rounds run at fixed kvmclock times. */
        report_skip(!clock ? "CPUID offers no kvmclock" : "needs 2 vCPUs");
        report_summary();
    }
    /* Nothing is printed before the rounds: each console character is an exit of about
     * 0.5 us, and the rounds run at fixed times that the scenario's host.preempt windows
     * are placed around. */
    bool pv = pv_tlb_init(FLUSH_VECTOR, true);
    build_tables();
    write_cr3((uint64_t)(uintptr_t)root);
    unsigned st = steal_time_enable();
    smp_barrier();
    smp_barrier(); /* the reader runs on our tables with X and Y in its TLB */
    bool old_frames = peek(VA_X) == tags[0] && peek(VA_Y) == tags[2];
    uint64_t ready_at = pv_now();

    run_round(1, VA_X, 1, ROUND1_NS);
    while (!warm2)
        pause();
    run_round(2, VA_Y, 3, ROUND2_NS);
    while (!reader_done)
        pause();

    printf("pv_tlb: %u vCPUs, CPUID 0x40000001 eax 0x%x, PV TLB flush %s\n", ncpus, kvm_para_features(),
           pv ? "on" : "off (CPUID lacks STEAL_TIME or PV_TLB_FLUSH)");
    report(st == 0 && steal_time_enabled(1), "both vCPUs registered steal time");
    report(old_frames && ready_at < ROUND1_NS - 100000,
           "X and Y mapped the old frames, set-up done at %lu ns (before vCPU 1's first preemption)", ready_at);
    describe(1);
    describe(2);

    report(!pv || (flush_result[1].deferred & CPU_BIT(1)),
           "round 1: vCPU 1 was preempted, so its flush went to the host (no IPI)");
    report(seen[1] == tags[1], "round 1: vCPU 1 read X's new frame after the flush");
    if (flush_result[2].deferred & CPU_BIT(1))
        report(seen[2] == tags[3],
               "round 2: the host was asked to flush (FLUSH_TLB) and vCPU 1 read Y's new frame (read 0x%lx: %s)",
               seen[2], frame_name(seen[2]));
    else
        report(seen[2] == tags[3], "round 2: the flush IPI was handled and vCPU 1 read Y's new frame (read 0x%lx)",
               seen[2]);
    report(seen_after_invlpg == tags[3], "after its own INVLPG vCPU 1 reads Y's new frame");
    report(pv_tlb_ipis_handled(0) == 0, "vCPU 0 received no flush IPI");
    smp_barrier();
    report_summary();
}
