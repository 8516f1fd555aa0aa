/* pv_spinlock.h - paravirtual spinlocks: spin a while, then sleep until the unlocker kicks
 * (pvmsr/README.md §10, KICK_CPU and SCHED_YIELD).
 *
 * A vCPU that waits for a lock whose holder the host has descheduled (lock-holder
 * preemption) can spin for the holder's whole absence: pure waste, on a pCPU that could
 * run someone else. Linux's PV spinlocks (kvm_spinlock_init, kvm_wait, kvm_kick_cpu in
 * arch/x86/kernel/kvm.c, under the queued spinlock's pv hooks) bound the spinning: after
 * a spin threshold the waiter records which lock it waits for and executes HLT if the lock
 * still reads as taken; the unlocker, after releasing, issues KICK_CPU (hypercall 5,
 * a1 = the waiter's APIC ID). KVM makes a vCPU halted in HLT runnable on a kick even with
 * IF=0 (it sets the vCPU's pv_unhalted; a kick that comes just before the HLT makes that
 * HLT return at once), so the waiter halts with interrupts off and no interrupt can slip
 * in between its check and the HLT.
 *
 * This lock is simpler than Linux's queued lock: a test-and-set byte, an owner byte, one
 * "waiting on" slot per vCPU, and each unlock kicks one registered waiter (the first after
 * the unlocker in vCPU order). The ordering that makes it safe is Dekker's: the waiter
 * stores its slot, MFENCE, then loads the lock; the unlocker releases with XCHG (a full
 * barrier), then loads the slots. Either the waiter sees the lock free or the unlocker
 * sees the waiter.
 *
 * Optionally (PV_SCHED_YIELD, bit 13) a waiter about to halt first checks whether the
 * holder's steal-time `preempted` is set and, if so, hands its pCPU to the holder with a
 * directed yield (hypercall 11, a0 = the holder's APIC ID), as Linux's IPI paths do for a
 * preempted target.
 *
 * Linked only into the pv_* programs (pv.h). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "pv.h"
#include "smp.h"

typedef struct {
    volatile uint8_t locked; /* 0 free, 1 taken */
    volatile uint8_t owner;  /* vCPU index of the holder, valid while taken */
} pv_spinlock_t;
#define PV_SPINLOCK_INIT {0, 0}

struct pv_lock_options {
    uint32_t spin_threshold;       /* spin iterations before the slow path (Linux: 1 << 15) */
    bool pv;                       /* HLT + KICK_CPU slow path (needs PV_UNHALT in CPUID) */
    bool yield_to_preempted_owner; /* SCHED_YIELD to a preempted holder (needs PV_SCHED_YIELD) */
};

/* Per-vCPU counters of both lock kinds. */
struct pv_lock_stats {
    uint64_t acquisitions;
    uint64_t spins;         /* iterations of a spin loop: the wasted work */
    uint64_t halts;         /* HLTs executed in the slow path */
    uint64_t halt_skipped;  /* slow path entered, lock found free before the HLT */
    uint64_t kicks;         /* KICK_CPU hypercalls made by this vCPU's unlocks */
    uint64_t kick_errors;   /* KICK_CPU returned non-zero */
    uint64_t yields;        /* SCHED_YIELD hypercalls */
    uint64_t yield_errors;  /* SCHED_YIELD returned non-zero */
};

/* Once, on vCPU 0, before any vCPU uses a pv_spinlock_t. The PV parts are used only when
 * CPUID offers them (and no REALTIME hint); returns whether the HLT slow path is on. */
bool pv_spinlock_setup(const struct pv_lock_options* opts);
bool pv_spinlock_pv_enabled(void);
bool pv_spinlock_yield_enabled(void);

void pv_spin_lock(pv_spinlock_t* l);
void pv_spin_unlock(pv_spinlock_t* l);

/* The plain lock of smp.h (XCHG, then spin on plain loads with PAUSE), counting its spin
 * iterations in the same counters, for comparison. */
void counted_spin_lock(spinlock_t* l);
void counted_spin_unlock(spinlock_t* l);

const volatile struct pv_lock_stats* pv_lock_stats(unsigned cpu);
void pv_lock_stats_reset(unsigned cpu);
