/* pvclock_check.h - reading a pvclock_vcpu_time_info as one snapshot, and telling a
 * consistent snapshot from a torn one (pvmsr/README.md §4.6, §4.13).
 *
 * A snapshot (tsc_timestamp, system_time, mul, shift) is a line: time = system_time +
 * scale(tsc - tsc_timestamp). Every structure KVM writes for a VM without TSC skew lies on
 * the same line, up to a few ns of rounding, whichever vCPU's structure it is and whenever
 * it was sampled. A torn read mixes the fields of two updates (say the new tsc_timestamp
 * with the old system_time) and lands off that line by about the time between the two
 * updates. So a reader compares, at one TSC value, what a snapshot says against a
 * reference snapshot it trusts (its own vCPU's structure, which the host never writes
 * while this vCPU runs).
 *
 * Header-only; tests/guest/pvclock_check_check.c runs the same code natively. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "kvmclock.h"

struct pvclock_snapshot {
    uint32_t version;
    uint64_t tsc_timestamp;
    uint64_t system_time;
    uint32_t mul;
    int8_t shift;
    uint8_t flags;
};

/* The reader's version loop over any vCPU's structure (Linux's pvclock_read_begin /
 * pvclock_read_retry): retry while the version is odd or changed. `retries` counts the
 * loops that went round again. Reads the TSC inside the loop, after the version (LFENCE
 * first, as rdtsc_ordered does), so the snapshot and the TSC belong together. */
static inline struct pvclock_snapshot pvclock_snapshot_read(volatile struct pvclock_vcpu_time_info* ti,
                                                            uint64_t* tsc, uint32_t* retries)
{
    struct pvclock_snapshot s;
    for (;;) {
        uint32_t v = ti->version;
        __asm__ volatile("" ::: "memory");
        uint32_t lo, hi;
        __asm__ volatile("lfence; rdtsc" : "=a"(lo), "=d"(hi)::"memory");
        s.tsc_timestamp = ti->tsc_timestamp;
        s.system_time = ti->system_time;
        s.mul = ti->tsc_to_system_mul;
        s.shift = ti->tsc_shift;
        s.flags = ti->flags;
        __asm__ volatile("" ::: "memory");
        if (!(v & 1) && ti->version == v) {
            s.version = v;
            *tsc = ((uint64_t)hi << 32) | lo;
            return s;
        }
        ++*retries;
    }
}

/* Time the snapshot gives at `tsc`, signed: a torn snapshot may have its tsc_timestamp
 * after `tsc`, where the unsigned formula of the real reader would wrap. */
static inline int64_t pvclock_snapshot_at(const struct pvclock_snapshot* s, uint64_t tsc)
{
    if (tsc >= s->tsc_timestamp)
        return (int64_t)(s->system_time + pvclock_scale_delta(tsc - s->tsc_timestamp, s->mul, s->shift));
    return (int64_t)s->system_time - (int64_t)pvclock_scale_delta(s->tsc_timestamp - tsc, s->mul, s->shift);
}

/* How far `s` is from `ref` at `tsc`, in ns (s minus ref). */
static inline int64_t pvclock_snapshot_offset(const struct pvclock_snapshot* s, const struct pvclock_snapshot* ref,
                                              uint64_t tsc)
{
    return pvclock_snapshot_at(s, tsc) - pvclock_snapshot_at(ref, tsc);
}

/* True when `s` is off the reference line by more than `tolerance_ns` at `tsc`. */
static inline bool pvclock_snapshot_torn(const struct pvclock_snapshot* s, const struct pvclock_snapshot* ref,
                                         uint64_t tsc, uint64_t tolerance_ns)
{
    int64_t d = pvclock_snapshot_offset(s, ref, tsc);
    return (uint64_t)(d < 0 ? -d : d) > tolerance_ns;
}
