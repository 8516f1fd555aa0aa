/* pv_util.h - small helpers the pv_* programs share: time from kvmclock, waiting for a
 * point in time, sleeping on the LAPIC timer. Header-only. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "apic.h"
#include "irq.h"
#include "kvmclock.h"
#include "processor.h"

/* Guest time in ns from this vCPU's own kvmclock (kvmclock_init() first). */
static inline uint64_t pv_now(void) { return kvmclock_read_raw(); }

/* Busy-waits (PAUSE) until kvmclock reaches t. */
static inline void pv_spin_until(uint64_t t)
{
    while (pv_now() < t)
        pause();
}

/* The LAPIC timer's vector for pv_sleep_ns; its handler only has to EOI. */
#define PV_SLEEP_VECTOR 0xe0u

static inline void pv_sleep_tick(unsigned vector, struct ex_frame* f)
{
    (void)vector;
    (void)f;
}

/* Once, on vCPU 0: installs the timer vector's handler (EOI after it). */
static inline void pv_sleep_setup(void) { irq_set_handler_eoi(PV_SLEEP_VECTOR, pv_sleep_tick); }

/* Halts (STI;HLT) for at least `ns` of APIC timer time: one-shot, divide by 1, so one count
 * is one ns on KVM's 1 GHz APIC bus (scenarios/README.md machine.apic_bus_mhz). Other
 * interrupts end a HLT early; we halt again until the timer has fired. Returns with IF=0. */
static inline void pv_sleep_ns(uint32_t ns)
{
    cli();
    apic_timer_oneshot(PV_SLEEP_VECTOR, 1, ns ? ns : 1);
    while (apic_timer_current() != 0) {
        safe_halt();
        cli();
    }
}
