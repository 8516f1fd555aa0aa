/* kvmclock.h - the guest side of KVM's paravirtual clock (pvmsr/README.md §4),
 * re-implementing what Linux does (arch/x86/kernel/kvmclock.c, pvclock.c) in our words.
 *
 * Each vCPU registers its own 32-byte pvclock_vcpu_time_info with MSR_KVM_SYSTEM_TIME_NEW
 * (0x4b564d01; the old 0x12 if CPUID only offers CLOCKSOURCE); the hypervisor keeps
 * (tsc_timestamp, system_time, mul, shift) in it, and the guest computes
 *     ns = system_time + ((rdtsc - tsc_timestamp) scaled by shift, * mul) >> 32
 * under a version loop. Unless the hypervisor promises TSC_STABLE (and CPUID bit 24 says
 * the flag is meaningful), a global "last value" guard keeps readings monotonic across
 * vCPUs. */
#pragma once

#include "processor.h"

#define MSR_KVM_WALL_CLOCK 0x11u
#define MSR_KVM_SYSTEM_TIME 0x12u
#define MSR_KVM_WALL_CLOCK_NEW 0x4b564d00u
#define MSR_KVM_SYSTEM_TIME_NEW 0x4b564d01u

#define KVM_CPUID_FEATURES 0x40000001u
#define KVM_FEATURE_CLOCKSOURCE (1u << 0)
#define KVM_FEATURE_CLOCKSOURCE2 (1u << 3)
#define KVM_FEATURE_CLOCKSOURCE_STABLE_BIT (1u << 24)

#define PVCLOCK_TSC_STABLE_BIT (1u << 0)
#define PVCLOCK_GUEST_STOPPED (1u << 1)

/* pvmsr/README.md §4.2 layout, 32 bytes. */
struct pvclock_vcpu_time_info {
    uint32_t version;
    uint32_t pad0;
    uint64_t tsc_timestamp;
    uint64_t system_time;
    uint32_t tsc_to_system_mul;
    int8_t tsc_shift;
    uint8_t flags;
    uint8_t pad[2];
}; /* natural alignment already gives this layout: no packing needed */
_Static_assert(sizeof(struct pvclock_vcpu_time_info) == 32, "pvclock_vcpu_time_info is 32 bytes");

/* pvmsr/README.md §4.2 layout, 12 bytes. */
struct pvclock_wall_clock {
    uint32_t version;
    uint32_t sec;
    uint32_t nsec;
};
_Static_assert(sizeof(struct pvclock_wall_clock) == 12, "pvclock_wall_clock is 12 bytes");

/* One consistent snapshot of a reading. */
struct kvmclock_sample {
    uint64_t ns;   /* the clock value, before any guard */
    uint64_t tsc;  /* the RDTSC it was computed from */
    uint32_t version;
    uint8_t flags;
};

/* Per vCPU. Registers this vCPU's time info page; returns the MSR used, or 0 if CPUID
 * offers neither CLOCKSOURCE2 nor CLOCKSOURCE. Call on every vCPU that reads the clock. */
uint32_t kvmclock_init(void);
/* Stops updates for this vCPU (writes 0, bit 0 clear). */
void kvmclock_disable(void);
/* This vCPU's structure (to print its fields). */
volatile struct pvclock_vcpu_time_info* kvmclock_this_cpu_info(void);

/* Linux's pvclock_clocksource_read(): version loop, scaled delta, GUEST_STOPPED cleared,
 * TSC_STABLE honoured only with CPUID bit 24, else the global monotonic guard. */
uint64_t kvmclock_read(void);
/* The same reading without the guard (what each vCPU's structure alone says). */
uint64_t kvmclock_read_raw(void);
/* Raw reading with the TSC, version and flags it used. */
struct kvmclock_sample kvmclock_sample(void);
/* Applies the global guard to a raw reading (the second half of kvmclock_read()), unless
 * `flags` has TSC_STABLE and CPUID bit 24 is set. */
uint64_t kvmclock_guard(uint64_t ns, uint8_t flags);
/* True when kvmclock_guard() would trust `flags` (TSC_STABLE honoured). */
bool kvmclock_stable(uint8_t flags);
/* How many times a reading found GUEST_STOPPED set (and cleared it), on any vCPU. */
unsigned long kvmclock_stopped_seen(void);

/* (delta << shift or >> -shift) * mul >> 32 with a 128-bit product (pvmsr/README.md §4.3). */
static inline uint64_t pvclock_scale_delta(uint64_t delta, uint32_t mul, int8_t shift)
{
    if (shift < 0)
        delta >>= -shift;
    else
        delta <<= shift;
    return (uint64_t)(((unsigned __int128)delta * mul) >> 32);
}

/* TSC frequency in kHz implied by mul/shift (Linux pvclock_tsc_khz, pvmsr/README.md §4.3). */
uint64_t pvclock_tsc_khz(uint32_t mul, int8_t shift);

/* Wall clock (pvmsr/README.md §4.8): writes `msr` (0x4b564d00 or 0x11) with the address
 * of *wc, then reads sec/nsec under the version loop. */
void kvmclock_read_wallclock(uint32_t msr, volatile struct pvclock_wall_clock* wc, uint32_t* sec, uint32_t* nsec,
                             uint32_t* version);
