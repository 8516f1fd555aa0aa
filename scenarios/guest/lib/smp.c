/* smp.c - vCPU count and the start-up barrier (see smp.h). */
#include "smp.h"

static unsigned ncpus_seen = 1;
static volatile uint32_t barrier_arrived;
static volatile uint32_t barrier_generation;

void smp_init(unsigned cpu, unsigned ncpus)
{
    (void)cpu;
    /* Every vCPU writes the same value, so the order of these stores does not matter. */
    ncpus_seen = ncpus < MAX_CPUS ? ncpus : MAX_CPUS;
}

unsigned smp_ncpus(void) { return ncpus_seen; }

void smp_barrier(void)
{
    /* Read the generation before arriving: once the last vCPU arrives it bumps it, and a
     * waiter that read the old value cannot miss the change (the count is reset first, so
     * a fast vCPU entering the next barrier counts from zero). */
    uint32_t gen = __atomic_load_n(&barrier_generation, __ATOMIC_ACQUIRE);
    if (__atomic_add_fetch(&barrier_arrived, 1u, __ATOMIC_ACQ_REL) == ncpus_seen) {
        __atomic_store_n(&barrier_arrived, 0u, __ATOMIC_RELAXED);
        __atomic_store_n(&barrier_generation, gen + 1, __ATOMIC_RELEASE);
        return;
    }
    while (__atomic_load_n(&barrier_generation, __ATOMIC_ACQUIRE) == gen)
        pause();
}
