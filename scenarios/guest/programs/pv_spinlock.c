/* pv_spinlock - lock-holder preemption with a plain and with a PV spinlock (lib/
 * pv_spinlock.h; pvmsr/README.md §10: KICK_CPU, SCHED_YIELD).
 *
 * Four vCPUs, each on its own pCPU. Two rounds, the same each time:
 *   vCPU 0 takes the lock at T (kvmclock) and keeps it until T + 100 us; the host
 *   deschedules vCPU 0 from T + 20 us to T + 420 us (the scenario's host.preempt), so it
 *   holds the lock through a 400 us absence. vCPUs 1-3 come for the lock at T + 30 us,
 *   while its holder is away, and each then holds it briefly.
 *   Round 1 (T = 300 us): the plain lock (XCHG, then spin on loads with PAUSE): every
 *   waiter spins for the holder's whole absence.
 *   Round 2 (T = 1300 us): the PV lock: a waiter spins 256 times, then records the lock it
 *   waits for, sees (steal time) that the holder is preempted and yields to it
 *   (SCHED_YIELD, hypercall 11), and halts with IF=0. A directed yield asks the host to run
 *   the holder now on its own pCPU, as Linux's yield_to does, so vCPU 0's absence ends
 *   early. When vCPU 0 unlocks it kicks one recorded waiter (KICK_CPU, hypercall 5, a1 =
 *   its APIC ID); KVM makes the halted vCPU runnable; it takes the lock and, on its unlock,
 *   kicks the next.
 * The guest prints how many spin iterations each round wasted (each is a load, a compare,
 * a counter update and a PAUSE), how long the waiters waited, and how many HLTs, kicks and
 * yields round 2 needed; the PV round must waste fewer.
 *
 * Scenario: vcpus 4, host.pcpus 4, host.preempt for vCPU 0 [320, 720) us and
 * [1320, 1720) us (pv-spinlock). CPUID must offer STEAL_TIME, PV_UNHALT and
 * PV_SCHED_YIELD (the default set does). In the trace: kvm_hypercall "nr 0xb" (yield) and
 * "nr 0x5" (kick), a kvm_exit HLT per waiter, and each kicked vCPU's kvm_entry after
 * the kick. */
#include "kvmclock.h"
#include "libc.h"
#include "pv.h"
#include "pv_spinlock.h"
#include "pv_steal.h"
#include "pv_util.h"
#include "report.h"
#include "smp.h"

#define NCPUS 4u
#define ROUND1_NS 300000ull
#define ROUND2_NS 1300000ull
#define HOLD_NS 100000ull
#define WAITERS_NS 30000ull
#define SPIN_THRESHOLD 256u

static spinlock_t plain_lock = SPINLOCK_INIT;
static pv_spinlock_t pv_lock = PV_SPINLOCK_INIT;
static volatile uint32_t holding_round; /* set by vCPU 0 once it holds the round's lock */
static volatile uint32_t passes;        /* critical sections run, all rounds */
static volatile uint64_t shared_counter;

struct round_stats {
    uint64_t spins, halts, kicks, kick_errors, yields, yield_errors, acquisitions;
    uint64_t wait_ns; /* waiters: from the first try to having the lock */
};
static struct round_stats stats[2][MAX_CPUS];
static uint64_t held_from[2], held_to[2];
static bool setup_ok[MAX_CPUS];

static void critical_section(void)
{
    /* A separate load and store: a second holder would lose an update (as in spinlock.c). */
    uint64_t v = shared_counter;
    __asm__ volatile("" ::: "memory");
    shared_counter = v + 1;
    __atomic_add_fetch(&passes, 1u, __ATOMIC_SEQ_CST);
}

static void take(int round)
{
    if (round == 0)
        counted_spin_lock(&plain_lock);
    else
        pv_spin_lock(&pv_lock);
}

static void release(int round)
{
    if (round == 0)
        counted_spin_unlock(&plain_lock);
    else
        pv_spin_unlock(&pv_lock);
}

static void save_stats(int round, unsigned cpu, uint64_t wait_ns)
{
    const volatile struct pv_lock_stats* s = pv_lock_stats(cpu);
    struct round_stats* r = &stats[round][cpu];
    r->spins = s->spins;
    r->halts = s->halts;
    r->kicks = s->kicks;
    r->kick_errors = s->kick_errors;
    r->yields = s->yields;
    r->yield_errors = s->yield_errors;
    r->acquisitions = s->acquisitions;
    r->wait_ns = wait_ns;
}

static void run_round(int round, unsigned cpu)
{
    uint64_t start = round == 0 ? ROUND1_NS : ROUND2_NS;
    pv_lock_stats_reset(cpu);
    smp_barrier();
    if (cpu == 0) {
        pv_spin_until(start);
        take(round);
        held_from[round] = pv_now();
        __atomic_store_n(&holding_round, (uint32_t)round + 1, __ATOMIC_SEQ_CST);
        critical_section();
        pv_spin_until(start + HOLD_NS);
        held_to[round] = pv_now();
        release(round);
        save_stats(round, cpu, 0);
    } else {
        while (__atomic_load_n(&holding_round, __ATOMIC_SEQ_CST) != (uint32_t)round + 1)
            pause();
        /* Come for the lock once the host has taken vCPU 0 away (T + 20 us). */
        pv_spin_until(start + WAITERS_NS);
        uint64_t t0 = pv_now();
        take(round);
        uint64_t waited = pv_now() - t0;
        critical_section();
        release(round);
        save_stats(round, cpu, waited);
    }
    smp_barrier();
}

static void run(unsigned cpu)
{
    kvmclock_init();
    pv_cpu_init();
    unsigned st = steal_time_enable();
    setup_ok[cpu] = st == 0;
    smp_barrier();
    run_round(0, cpu);
    run_round(1, cpu);
}

void ap_main(unsigned cpu, unsigned ncpus)
{
    (void)ncpus;
    apic_init(APIC_MODE_XAPIC, 0xff);
    run(cpu);
}

static struct round_stats total(int round)
{
    struct round_stats t;
    memset(&t, 0, sizeof t);
    for (unsigned c = 1; c < NCPUS; ++c) {
        const struct round_stats* r = &stats[round][c];
        t.spins += r->spins;
        t.halts += r->halts;
        t.yields += r->yields;
        t.yield_errors += r->yield_errors;
        t.wait_ns += r->wait_ns;
    }
    for (unsigned c = 0; c < NCPUS; ++c) {
        t.kicks += stats[round][c].kicks;
        t.kick_errors += stats[round][c].kick_errors;
        t.acquisitions += stats[round][c].acquisitions;
    }
    return t;
}

int main(unsigned cpu, unsigned ncpus, unsigned long ram_bytes)
{
    (void)ram_bytes;
    apic_init(APIC_MODE_XAPIC, 0xff);
    uint32_t f = kvm_para_features();
    printf("pv_spinlock: %u vCPUs, CPUID 0x40000001 eax 0x%x\n", ncpus, f);
    if (smp_ncpus() != NCPUS || !kvmclock_init()) {
        report_skip(smp_ncpus() != NCPUS ? "needs 4 vCPUs" : "no kvmclock");
        report_summary(); /* the other vCPUs wait in the first barrier: the exit ends the run */
    }
    struct pv_lock_options opts = {.spin_threshold = SPIN_THRESHOLD, .pv = true, .yield_to_preempted_owner = true};
    bool pv = pv_spinlock_setup(&opts);
    printf("pv_spinlock: PV slow path %s, yield to a preempted holder %s\n", pv ? "on" : "off (no PV_UNHALT)",
           pv_spinlock_yield_enabled() ? "on" : "off");
    run(cpu);

    bool all_setup = true;
    for (unsigned c = 0; c < NCPUS; ++c)
        all_setup = all_setup && setup_ok[c];
    report(all_setup, "every vCPU registered its steal time area");

    struct round_stats plain = total(0), pvr = total(1);
    printf("pv_spinlock: plain lock: vCPU 0 held it %lu ns; its 3 waiters spun %lu iterations and waited %lu ns in all\n",
           held_to[0] - held_from[0], plain.spins, plain.wait_ns);
    printf("pv_spinlock: PV lock: vCPU 0 held it %lu ns; its 3 waiters spun %lu iterations, halted %lu times, "
           "yielded %lu times and waited %lu ns in all; %lu kicks\n",
           held_to[1] - held_from[1], pvr.spins, pvr.halts, pvr.yields, pvr.wait_ns, pvr.kicks);
    for (unsigned c = 1; c < NCPUS; ++c)
        printf("pv_spinlock: vCPU %u: plain %lu spins; PV %lu spins, %lu halts, %lu yields, %lu kicks sent\n", c,
               stats[0][c].spins, stats[1][c].spins, stats[1][c].halts, stats[1][c].yields, stats[1][c].kicks);
    report(passes == 2 * NCPUS && shared_counter == 2 * NCPUS && plain.acquisitions == NCPUS &&
               pvr.acquisitions == NCPUS,
           "each round: 4 critical sections, none lost (counter %lu)", shared_counter);
    report(held_to[0] >= ROUND1_NS + HOLD_NS && held_to[1] >= ROUND2_NS + HOLD_NS,
           "vCPU 0 held the lock until T + 100 us at least, each round");
    if (!pv) {
        report_skip("no PV slow path: CPUID lacks PV_UNHALT");
        report_summary();
    }
    report(pvr.halts >= 1 && pvr.kicks >= pvr.halts && pvr.kick_errors == 0,
           "PV round: waiters halted (%lu HLTs) and every HLT was ended by a kick (%lu KICK_CPU, all returned 0)",
           pvr.halts, pvr.kicks);
    if (pv_spinlock_yield_enabled())
        report(pvr.yields >= 1 && pvr.yield_errors == 0,
               "PV round: %lu directed yields to the preempted holder, all returned 0", pvr.yields);
    else
        report_skip("PV_SCHED_YIELD not offered: no yields");
    report(pvr.spins < plain.spins, "the PV lock wasted fewer spin iterations: %lu against %lu", pvr.spins,
           plain.spins);
    report_summary();
}
