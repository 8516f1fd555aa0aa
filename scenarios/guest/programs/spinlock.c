/* spinlock - a shared counter incremented by every vCPU, with and without mutual exclusion.
 *
 * Each vCPU adds ITERATIONS to a plain 64-bit counter with a deliberately non-atomic
 * read-modify-write (load, add, store as separate instructions) inside the critical section.
 * Under a correct lock the total is exact whatever the interleaving; pvsim's scheduler may
 * switch vCPUs between any two instructions (quantum 1) or rarely (quantum 10000), and the
 * total must be exact both ways. Three mechanisms are checked:
 *   1. spin_lock():          XCHG (implicitly locked) test-and-test-and-set lock;
 *   2. spin_lock_cmpxchg():  LOCK CMPXCHG lock;
 *   3. no lock, LOCK XADD:   one atomic instruction per increment.
 * Finally the same RMW without any lock shows what the lock prevents: the lost updates are
 * printed for information (their number depends on the interleaving, i.e. the quantum). */
#include "libc.h"
#include "report.h"
#include "smp.h"

#define ITERATIONS 5000u
#define SHORT_ITERATIONS 1000u

static spinlock_t lock = SPINLOCK_INIT;
static volatile uint64_t counter_xchg, counter_cmpxchg, counter_unlocked;
static volatile uint32_t counter_xadd;
static volatile uint32_t done_cpus;

/* The increment the lock protects: a separate load and store, so a second vCPU running
 * between them would lose an update. `volatile` keeps GCC from merging them into one
 * memory-destination ADD (which pvsim would also execute as one step, hiding a race). */
static inline void slow_increment(volatile uint64_t* p)
{
    uint64_t v = *p;
    __asm__ volatile("" ::: "memory");
    *p = v + 1;
}

static void work(void)
{
    smp_barrier();
    for (unsigned i = 0; i < ITERATIONS; ++i) {
        spin_lock(&lock);
        slow_increment(&counter_xchg);
        spin_unlock(&lock);
    }
    smp_barrier();
    for (unsigned i = 0; i < SHORT_ITERATIONS; ++i) {
        spin_lock_cmpxchg(&lock);
        slow_increment(&counter_cmpxchg);
        spin_unlock(&lock);
    }
    smp_barrier();
    for (unsigned i = 0; i < SHORT_ITERATIONS; ++i)
        atomic_inc32(&counter_xadd);
    smp_barrier();
    for (unsigned i = 0; i < SHORT_ITERATIONS; ++i)
        slow_increment(&counter_unlocked);
    atomic_inc32(&done_cpus);
}

void ap_main(unsigned cpu, unsigned ncpus)
{
    (void)cpu;
    (void)ncpus;
    work();
}

int main(unsigned cpu, unsigned ncpus, unsigned long ram_bytes)
{
    (void)cpu;
    (void)ram_bytes;
    unsigned n = smp_ncpus();
    printf("spinlock: %u vCPUs, %u locked increments each\n", ncpus, ITERATIONS);
    work();
    /* The others may still be in the unlocked phase: wait for them (no timeout needed, a
     * vCPU that never arrives is a deadlock or limit stop, which the scenario reports). */
    while (done_cpus != n)
        pause();
    report(counter_xchg == (uint64_t)n * ITERATIONS, "XCHG spinlock: total %lu (expected %lu)", counter_xchg,
           (uint64_t)n * ITERATIONS);
    report(counter_cmpxchg == (uint64_t)n * SHORT_ITERATIONS, "LOCK CMPXCHG spinlock: total %lu (expected %lu)",
           counter_cmpxchg, (uint64_t)n * SHORT_ITERATIONS);
    report(counter_xadd == n * SHORT_ITERATIONS, "LOCK XADD: total %u (expected %u)", counter_xadd,
           n * SHORT_ITERATIONS);
    report_info("without a lock: total %lu of %lu (%lu updates lost)", counter_unlocked, (uint64_t)n * SHORT_ITERATIONS,
                (uint64_t)n * SHORT_ITERATIONS - counter_unlocked);
    report_summary();
}
