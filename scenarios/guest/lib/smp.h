/* smp.h - what several vCPUs need to cooperate: which vCPU am I, a start-up barrier and a
 * spinlock. All vCPUs enter together under the boot protocol (RDI = index, RSI = count),
 * so there is no AP bring-up here; guest_start() calls smp_init() on every vCPU.
 *
 * The atomics are GCC __atomic builtins, which on x86-64 compile to exactly the instructions
 * named in the comments (XCHG with a memory operand is locked without a prefix, SDM Vol.3A
 * 9.1.2.1; the others carry LOCK). pvsim executes each of them as one indivisible step of
 * the interleaving, so they are atomic with respect to the other vCPUs at any quantum. */
#pragma once

#include "desc.h"
#include "processor.h"

/* Called once per vCPU from guest_start(), before anything else. */
void smp_init(unsigned cpu, unsigned ncpus);

/* Number of vCPUs that take part (RSI at entry, capped at MAX_CPUS: entry.S parks the rest). */
unsigned smp_ncpus(void);

/* This vCPU's index. Every vCPU loads its own TSS selector TSS_SEL(cpu) = 0x28 + 16*cpu
 * (desc.c), so STR gives the index without any per-CPU pointer register: a program may
 * still use FS/GS freely. Valid after setup_descriptors(). */
static inline unsigned this_cpu(void) { return (unsigned)(str() - TSS_SEL(0)) / 16u; }

/* Waits until every vCPU has arrived (sense-reversing barrier: a generation counter that
 * the last arriver bumps, so the barrier can be reused immediately). Spins with PAUSE. */
void smp_barrier(void);

typedef struct {
    volatile uint32_t locked;
} spinlock_t;
#define SPINLOCK_INIT {0}

/* Test-and-test-and-set lock: XCHG to take it; while it is held, spin on plain loads with
 * PAUSE (no locked traffic while waiting, SDM Vol.3A 9.10.6.1 "spin-wait loops"). */
static inline void spin_lock(spinlock_t* l)
{
    while (__atomic_exchange_n(&l->locked, 1u, __ATOMIC_ACQUIRE) != 0) {
        while (l->locked)
            pause();
    }
}

/* One LOCK CMPXCHG: 0 -> 1. Returns true if we got the lock. */
static inline bool spin_trylock(spinlock_t* l)
{
    uint32_t expected = 0;
    return __atomic_compare_exchange_n(&l->locked, &expected, 1u, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
}

/* The same lock taken with LOCK CMPXCHG instead of XCHG (what Linux's queued spinlock
 * fast path does), for programs that want to exercise that instruction. */
static inline void spin_lock_cmpxchg(spinlock_t* l)
{
    while (!spin_trylock(l)) {
        while (l->locked)
            pause();
    }
}

/* x86 stores are not reordered with older loads or stores (SDM Vol.3A 9.2.2), so a plain
 * release store is a correct unlock; the builtin keeps the compiler from moving accesses
 * of the critical section below it. */
static inline void spin_unlock(spinlock_t* l) { __atomic_store_n(&l->locked, 0u, __ATOMIC_RELEASE); }

/* LOCK XADD. Returns the new value. */
static inline uint32_t atomic_inc32(volatile uint32_t* p) { return __atomic_add_fetch(p, 1u, __ATOMIC_SEQ_CST); }
static inline uint64_t atomic_add64(volatile uint64_t* p, uint64_t v)
{
    return __atomic_add_fetch(p, v, __ATOMIC_SEQ_CST);
}

/* Raises *p to at least v (LOCK CMPXCHG loop); returns the value *p had before. */
static inline uint64_t atomic_max64(volatile uint64_t* p, uint64_t v)
{
    uint64_t cur = __atomic_load_n(p, __ATOMIC_RELAXED);
    while (cur < v && !__atomic_compare_exchange_n(p, &cur, v, false, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) {
    }
    return cur;
}

/* Spins (PAUSE) until *p == value or `max_spins` iterations passed. Returns true on success.
 * Timeouts are iteration counts, not time: the loop then costs the same on pvsim and KVM. */
static inline bool wait_until_eq32(volatile uint32_t* p, uint32_t value, unsigned long max_spins)
{
    for (unsigned long i = 0; i < max_spins; ++i) {
        if (*p == value)
            return true;
        pause();
    }
    return *p == value;
}
