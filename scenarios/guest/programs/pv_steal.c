/* pv_steal - steal time on vCPUs that share physical CPUs (pvmsr/README.md §6,
 * lib/pv_steal.h).
 *
 * Four vCPUs on two pCPUs (scenario pv-steal: pinned, vCPUs 0 and 2 on pCPU 0, 1 and 3 on
 * pCPU 1, slices of 100 us, and a host thread busy on pCPU 1 from 1000 to 1300 us). Each
 * vCPU registers its steal-time area (MSR 0x4b564d03) and kvmclock, then until 2 ms of
 * kvmclock time: runs a short piece of work, reads kvmclock and its own `steal`, and
 * halts now and then on the LAPIC timer:
 *   vCPUs 0 and 1 never halt;
 *   vCPU 2 halts 100 us at 150 us and at 1150 us: it falls asleep in its own slice and
 *     its timer fires in vCPU 0's slice, so it waits 50 us for the pCPU: only those 50 us
 *     are steal, not the 100 us halted;
 *   vCPU 3 halts 200 us at 150, 550, 950, 1350 and 1750 us: asleep through vCPU 1's whole
 *     slice, awake again in its own: halted time is never steal.
 * Every time its `steal` has grown, a vCPU records the two kvmclock readings around the
 * growth. Checks, per record: the growth is never more than the time between the two
 * readings minus the time halted in between (steal is time runnable but not running, and
 * the vCPU ran or slept the rest); and, where the vCPU did not halt, the growth covers the
 * gap to within 10 us (all the time it lost is reported). `version` is even at each
 * reading and has grown since the last. vCPU 0 also watches vCPU 3's `preempted` byte:
 * 1 while the host has taken pCPU 1 from vCPU 3 while it could run, 0 while it halts.
 *
 * In the trace: one pvsim_steal "update" line per update, at the entry after each
 * sched_in, with the run delay that update adds (the guest's printed steal values are
 * the running sums); "preempted" lines when a descheduled vCPU gets KVM_VCPU_PREEMPTED. */
#include "apic.h"
#include "irq.h"
#include "kvmclock.h"
#include "libc.h"
#include "pv.h"
#include "pv_steal.h"
#include "pv_util.h"
#include "report.h"
#include "smp.h"

#define NCPUS 4u
#define END_NS 2000000ull
#define WORK_SLACK_NS 10000ul
#define MAX_RECORDS 32u
#define MAX_HALTS 5u

struct steal_record {
    uint64_t t_before, t_after;         /* kvmclock readings around the growth */
    uint64_t steal_before, steal_after;
    uint32_t version_before, version_after;
    uint64_t halted_ns;                 /* programmed halt time between the readings */
};

struct cpu_log {
    struct steal_record rec[MAX_RECORDS];
    unsigned nrec, lost;
    unsigned halts;
    uint64_t last_steal, last_t, halted_total;
    bool version_ok;
    unsigned enable_fault;
} __attribute__((aligned(64)));

static struct cpu_log logs[MAX_CPUS];

/* Halt plans: start times (kvmclock ns) and length. */
static const uint64_t halt_at[NCPUS][MAX_HALTS] = {
    {0}, {0}, {150000, 1150000}, {150000, 550000, 950000, 1350000, 1750000}};
static const unsigned halt_count[NCPUS] = {0, 0, 2, 5};
static const uint32_t halt_len[NCPUS] = {0, 0, 100000, 200000};

/* vCPU 0 watching vCPU 3's `preempted`: each change, with the time seen. */
#define MAX_FLIPS 32u
static uint64_t flip_t[MAX_FLIPS];
static uint8_t flip_v[MAX_FLIPS];
static unsigned nflips;

static volatile uint64_t work_sink;

static void work(void)
{
    uint64_t x = work_sink + 1;
    for (unsigned i = 0; i < 200; ++i)
        x = x * 6364136223846793005ull + 1442695040888963407ull;
    work_sink = x;
}

static void watch_vcpu3(void)
{
    uint8_t v = steal_time_area(3)->preempted;
    if (nflips == 0 || (nflips < MAX_FLIPS && flip_v[nflips - 1] != v)) {
        flip_t[nflips] = pv_now();
        flip_v[nflips] = v;
        ++nflips;
    }
}

static void run(unsigned cpu)
{
    struct cpu_log* L = &logs[cpu];
    kvmclock_init();
    L->enable_fault = steal_time_enable();
    smp_barrier();
    if (L->enable_fault) {
        smp_barrier();
        return;
    }
    L->version_ok = true;
    struct steal_sample prev = steal_time_read(cpu);
    uint64_t t_prev = pv_now();
    while (steal_time_read(cpu).version != prev.version) {
        prev = steal_time_read(cpu);
        t_prev = pv_now();
    }
    uint64_t halted = 0;
    unsigned next_halt = 0;
    for (;;) {
        work();
        if (cpu == 0)
            watch_vcpu3();
        /* A (time, steal) pair that belongs together: the host may take the pCPU away
         * between the clock reading and the steal reading, so read steal on both sides of
         * the clock and retry if it moved. */
        uint64_t t;
        struct steal_sample s = steal_time_read(cpu);
        for (;;) {
            t = pv_now();
            struct steal_sample again = steal_time_read(cpu);
            if (again.version == s.version)
                break;
            s = again;
        }
        if (s.version != prev.version || s.steal != prev.steal) {
            /* Versions move by 2 per update (odd only while one is in progress); compare
             * as a difference, which survives a wrap. */
            if ((uint32_t)(s.version - prev.version) < 2 || ((s.version - prev.version) & 1))
                L->version_ok = false;
            if (L->nrec < MAX_RECORDS) {
                struct steal_record* r = &L->rec[L->nrec++];
                r->t_before = t_prev;
                r->t_after = t;
                r->steal_before = prev.steal;
                r->steal_after = s.steal;
                r->version_before = prev.version;
                r->version_after = s.version;
                r->halted_ns = halted;
            } else {
                ++L->lost;
            }
            halted = 0;
        }
        prev = s;
        t_prev = t;
        if (t >= END_NS)
            break;
        if (next_halt < halt_count[cpu] && t >= halt_at[cpu][next_halt]) {
            ++next_halt;
            ++L->halts;
            pv_sleep_ns(halt_len[cpu]);
            halted += halt_len[cpu];
            L->halted_total += halt_len[cpu];
        }
    }
    L->last_steal = prev.steal;
    L->last_t = t_prev;
    smp_barrier();
}

void ap_main(unsigned cpu, unsigned ncpus)
{
    (void)ncpus;
    apic_init(APIC_MODE_XAPIC, 0xff);
    run(cpu);
}

int main(unsigned cpu, unsigned ncpus, unsigned long ram_bytes)
{
    (void)ram_bytes;
    apic_init(APIC_MODE_XAPIC, 0xff);
    pv_sleep_setup();
    if (smp_ncpus() != NCPUS) {
        report_skip("needs 4 vCPUs");
        report_summary();
    }
    /* Nothing printed before the run: console exits would shift every vCPU 0 reading. */
    run(cpu);
    printf("pv_steal: %u vCPUs, CPUID 0x40000001 eax 0x%x\n", ncpus, kvm_para_features());
    if (logs[0].enable_fault == STEAL_NOT_OFFERED) {
        report_skip("STEAL_TIME (bit 5) not offered by CPUID");
        report_summary();
    }
    bool enabled = true;
    for (unsigned c = 0; c < NCPUS; ++c)
        enabled = enabled && logs[c].enable_fault == 0;
    report(enabled, "every vCPU registered steal time (MSR 0x4b564d03)");

    bool bounded = true, covered = true, versions = true, grew = true, none_lost = true;
    for (unsigned c = 0; c < NCPUS; ++c) {
        struct cpu_log* L = &logs[c];
        printf("pv_steal: vCPU %u: %u updates seen, %u halts (%lu ns), steal %lu ns at %lu ns\n", c, L->nrec,
               L->halts, L->halted_total, L->last_steal, L->last_t);
        for (unsigned i = 0; i < L->nrec; ++i) {
            const struct steal_record* r = &L->rec[i];
            uint64_t gap = r->t_after - r->t_before;
            uint64_t d = r->steal_after - r->steal_before;
            printf("pv_steal: vCPU %u: version %u -> %u, steal %lu -> %lu (+%lu) between %lu and %lu ns (gap %lu%s)\n",
                   c, r->version_before, r->version_after, r->steal_before, r->steal_after, d, r->t_before,
                   r->t_after, gap, r->halted_ns ? ", halted in between" : "");
            if (r->steal_after < r->steal_before)
                grew = false;
            if (d + r->halted_ns > gap)
                bounded = false;
            if (!r->halted_ns && gap - d > WORK_SLACK_NS)
                covered = false;
        }
        versions = versions && L->version_ok;
        none_lost = none_lost && L->lost == 0;
    }
    printf("pv_steal: vCPU 0 saw vCPU 3's preempted byte:");
    for (unsigned i = 0; i < nflips; ++i)
        printf(" %u@%lu", flip_v[i], flip_t[i]);
    printf("\n");
    report(none_lost, "every update fitted in the record (%u at most)", MAX_RECORDS);
    report(grew && versions, "steal never went down and version grew by an even step at each update");
    report(bounded, "each growth fits in the gap between the readings minus the time halted in it");
    report(covered, "without a halt, each growth covers the gap to within %lu ns", WORK_SLACK_NS);
    report(logs[1].nrec >= 5 && logs[3].nrec >= 1, "vCPUs 1 and 3, sharing pCPU 1, were both charged steal");
    bool flipped = false;
    for (unsigned i = 1; i < nflips; ++i)
        flipped = flipped || flip_v[i] == KVM_VCPU_PREEMPTED;
    report(flipped, "vCPU 0 saw vCPU 3 preempted at least once, and not all the time");
    report_summary();
}
