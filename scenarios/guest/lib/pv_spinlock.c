/* pv_spinlock.c - PV spinlock with HLT + KICK_CPU, and the plain lock counted (see
 * pv_spinlock.h). */
#include "pv_spinlock.h"

#include "hypercall.h"
#include "irq.h"
#include "pv_steal.h"

struct lock_cpu {
    pv_spinlock_t* volatile waiting_on; /* the lock this vCPU may halt for, or NULL */
    struct pv_lock_stats s;
} __attribute__((aligned(64)));

static struct lock_cpu lock_cpus[MAX_CPUS];
static struct pv_lock_options options = {.spin_threshold = 1u << 15};
static bool halt_path, yield_path;

bool pv_spinlock_setup(const struct pv_lock_options* opts)
{
    options = *opts;
    if (!options.spin_threshold)
        options.spin_threshold = 1;
    bool realtime = (kvm_para_hints() & KVM_HINTS_REALTIME) != 0;
    halt_path = options.pv && kvm_para_has(KVM_FEATURE_PV_UNHALT) && !realtime;
    yield_path = halt_path && options.yield_to_preempted_owner && kvm_para_has(KVM_FEATURE_PV_SCHED_YIELD);
    return halt_path;
}

bool pv_spinlock_pv_enabled(void) { return halt_path; }
bool pv_spinlock_yield_enabled(void) { return yield_path; }

const volatile struct pv_lock_stats* pv_lock_stats(unsigned cpu) { return &lock_cpus[cpu].s; }

void pv_lock_stats_reset(unsigned cpu)
{
    struct pv_lock_stats* s = &lock_cpus[cpu].s;
    s->acquisitions = s->spins = s->halts = s->halt_skipped = 0;
    s->kicks = s->kick_errors = s->yields = s->yield_errors = 0;
}

static inline bool try_take(pv_spinlock_t* l)
{
    return !l->locked && __atomic_exchange_n(&l->locked, (uint8_t)1, __ATOMIC_ACQUIRE) == 0;
}

/* The slow path, with IF=0: announce, check again, maybe yield, halt. */
static void wait_for(struct lock_cpu* me, pv_spinlock_t* l)
{
    me->waiting_on = l;
    /* The store above must be visible before the load below (store -> load is the one
     * reordering x86 does, SDM Vol.3A 9.2.2): MFENCE. */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (!l->locked) {
        ++me->s.halt_skipped;
    } else {
        if (yield_path) {
            unsigned owner = l->owner;
            if (l->locked && vcpu_is_preempted(owner)) {
                long r = kvm_hypercall1(KVM_HC_SCHED_YIELD, pv_apic_id(owner));
                ++me->s.yields;
                if (r)
                    ++me->s.yield_errors;
            }
        }
        /* Linux's kvm_wait: halt only if the lock still reads as taken. A kick between
         * this load and the HLT leaves pv_unhalted set, and the HLT returns at once. */
        if (l->locked) {
            ++me->s.halts;
            hlt();
        } else {
            ++me->s.halt_skipped;
        }
    }
    me->waiting_on = NULL;
}

void pv_spin_lock(pv_spinlock_t* l)
{
    unsigned cpu = this_cpu();
    struct lock_cpu* me = &lock_cpus[cpu];
    for (;;) {
        for (uint32_t i = 0; i < options.spin_threshold; ++i) {
            if (try_take(l)) {
                l->owner = (uint8_t)cpu;
                ++me->s.acquisitions;
                return;
            }
            ++me->s.spins;
            pause();
        }
        if (!halt_path)
            continue;
        uint64_t flags = irq_save();
        wait_for(me, l);
        irq_restore(flags);
    }
}

void pv_spin_unlock(pv_spinlock_t* l)
{
    unsigned self = this_cpu();
    /* XCHG releases and is a full barrier: the loads of the waiting slots below cannot
     * pass it (pairs with the waiter's MFENCE). */
    __atomic_exchange_n(&l->locked, (uint8_t)0, __ATOMIC_SEQ_CST);
    if (!halt_path)
        return;
    unsigned n = smp_ncpus();
    for (unsigned k = 1; k < n; ++k) {
        unsigned cpu = (self + k) % n;
        if (lock_cpus[cpu].waiting_on == l) {
            long r = kvm_hypercall2(KVM_HC_KICK_CPU, 0, pv_apic_id(cpu));
            ++lock_cpus[self].s.kicks;
            if (r)
                ++lock_cpus[self].s.kick_errors;
            return;
        }
    }
}

void counted_spin_lock(spinlock_t* l)
{
    struct lock_cpu* me = &lock_cpus[this_cpu()];
    while (__atomic_exchange_n(&l->locked, 1u, __ATOMIC_ACQUIRE) != 0) {
        while (l->locked) {
            ++me->s.spins;
            pause();
        }
    }
    ++me->s.acquisitions;
}

void counted_spin_unlock(spinlock_t* l) { __atomic_store_n(&l->locked, 0u, __ATOMIC_RELEASE); }
