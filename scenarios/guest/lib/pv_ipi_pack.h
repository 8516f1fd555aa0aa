/* pv_ipi_pack.h - packing destination APIC IDs for KVM_HC_SEND_IPI (pvmsr/README.md §10).
 *
 * One SEND_IPI hypercall names up to 128 vCPUs: a 128-bit bitmap (a0 = bits 0-63, a1 =
 * bits 64-127) whose bit i means APIC ID `min + i` (a2 = min), with a3 = the ICR value
 * (vector and delivery mode). It returns how many vCPUs accepted the interrupt. A guest
 * with more targets than one window holds issues one hypercall per window. Linux
 * (__send_ipi_mask in arch/x86/kernel/kvm.c) walks the targets in CPU order and keeps one
 * open window: an ID inside [min, min + 128) is added; an ID below `min` moves the window
 * down if the largest ID already in it still fits; anything else closes the window (one
 * hypercall) and opens a new one at that ID. This header does the same, so the pv_ipi
 * program and the host-side check (tests/guest/pv_ipi_pack_check.c) share it.
 *
 * Header-only, freestanding C: no guest or host dependencies. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#define PV_IPI_WINDOW_BITS 128u

struct pv_ipi_window {
    uint64_t bits[2]; /* bit i of the 128: APIC ID min + i */
    uint32_t min;
    uint32_t max; /* largest APIC ID in the window */
    bool open;
};

static inline void pv_ipi_window_set(struct pv_ipi_window* w, uint32_t offset)
{
    w->bits[offset >> 6] |= 1ull << (offset & 63);
}

/* Shifts the 128-bit bitmap left by `by` (1..127): the window's base moves down by `by`. */
static inline void pv_ipi_window_lower(struct pv_ipi_window* w, uint32_t by)
{
    if (by >= 64) {
        w->bits[1] = w->bits[0] << (by - 64);
        w->bits[0] = 0;
    } else {
        w->bits[1] = (w->bits[1] << by) | (w->bits[0] >> (64 - by));
        w->bits[0] <<= by;
    }
    w->min -= by;
}

/* Adds one APIC ID. False when it does not fit: the window must be sent first. */
static inline bool pv_ipi_window_add(struct pv_ipi_window* w, uint32_t id)
{
    if (!w->open) {
        w->open = true;
        w->bits[0] = w->bits[1] = 0;
        w->min = w->max = id;
        pv_ipi_window_set(w, 0);
        return true;
    }
    if (id >= w->min) {
        if (id - w->min >= PV_IPI_WINDOW_BITS)
            return false;
        pv_ipi_window_set(w, id - w->min);
        if (id > w->max)
            w->max = id;
        return true;
    }
    if (w->max - id >= PV_IPI_WINDOW_BITS)
        return false;
    pv_ipi_window_lower(w, w->min - id);
    pv_ipi_window_set(w, 0);
    return true;
}

/* Bits set in the window. A loop, not __builtin_popcountll: the guests link without
 * libgcc, which is where GCC's fallback for CPUs without POPCNT lives. */
static inline unsigned pv_ipi_window_count(const struct pv_ipi_window* w)
{
    unsigned n = 0;
    for (unsigned half = 0; half < 2; ++half)
        for (uint64_t b = w->bits[half]; b; b &= b - 1)
            ++n;
    return n;
}

/* What sending a window costs: the hypercall (or a test double). Returns the hypercall's
 * result: the number of vCPUs that accepted, or a negative KVM error. */
typedef long (*pv_ipi_send_fn)(void* ctx, uint64_t bits_lo, uint64_t bits_hi, uint32_t min, uint32_t icr);

struct pv_ipi_result {
    long accepted;       /* sum of the non-negative results */
    unsigned hypercalls; /* windows sent */
    unsigned requested;  /* bits set over all windows */
    long first_error;    /* the first negative result, or 0 */
};

static inline void pv_ipi_flush(struct pv_ipi_window* w, uint32_t icr, pv_ipi_send_fn send, void* ctx,
                                struct pv_ipi_result* r)
{
    long ret = send(ctx, w->bits[0], w->bits[1], w->min, icr);
    ++r->hypercalls;
    r->requested += pv_ipi_window_count(w);
    if (ret < 0) {
        if (!r->first_error)
            r->first_error = ret;
    } else {
        r->accepted += ret;
    }
    w->open = false;
}

/* Sends `icr` to the APIC IDs ids[0..n) in that order. The IDs come from a CPU mask, so
 * each appears once; an ID repeated in a later window would be sent twice. A failed window
 * does not stop the others, as in Linux. */
static inline struct pv_ipi_result pv_ipi_send_ids(const uint32_t* ids, unsigned n, uint32_t icr, pv_ipi_send_fn send,
                                                   void* ctx)
{
    struct pv_ipi_result r = {0, 0, 0, 0};
    struct pv_ipi_window w = {{0, 0}, 0, 0, false};
    for (unsigned i = 0; i < n; ++i) {
        if (pv_ipi_window_add(&w, ids[i]))
            continue;
        pv_ipi_flush(&w, icr, send, ctx, &r);
        pv_ipi_window_add(&w, ids[i]);
    }
    if (w.open)
        pv_ipi_flush(&w, icr, send, ctx, &r);
    return r;
}
