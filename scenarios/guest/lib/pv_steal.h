/* pv_steal.h - steal time from the guest's side (pvmsr/README.md §6).
 *
 * Each vCPU gives KVM a 64-byte struct kvm_steal_time through MSR_KVM_STEAL_TIME
 * (0x4b564d03 = GPA | 1). KVM adds to `steal` the time the vCPU thread was runnable but
 * not running on the host (its run delay), at the first entry after it was scheduled in;
 * `version` is a sequence count around that update (odd while it is in progress on a
 * modern host); `preempted` bit 0 says "the host took the CPU away from this vCPU", set
 * when it is descheduled involuntarily and cleared when it runs again. Other vCPUs read
 * `preempted` to skip work for a vCPU that is not running: the PV TLB flush (pv_tlb.h)
 * and PV spinlocks (pv_spinlock.h).
 *
 * Linux: arch/x86/kernel/kvm.c (kvm_register_steal_time, kvm_steal_clock,
 * __kvm_vcpu_is_preempted). Linked only into the pv_* programs (pv.h). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "pv.h"

#define MSR_KVM_STEAL_TIME 0x4b564d03u
#define KVM_MSR_ENABLED 1ull

/* `preempted` bits (pvmsr/README.md §6.1). */
#define KVM_VCPU_PREEMPTED (1u << 0)
#define KVM_VCPU_FLUSH_TLB (1u << 1)

/* uapi struct kvm_steal_time, 64 bytes; the MSR's bits 5:1 are reserved, so the GPA must
 * be 64-byte aligned. */
struct kvm_steal_time {
    volatile uint64_t steal;
    volatile uint32_t version;
    volatile uint32_t flags;
    volatile uint8_t preempted;
    uint8_t u8_pad[3];
    uint32_t pad[11];
} __attribute__((aligned(64)));
_Static_assert(sizeof(struct kvm_steal_time) == 64, "kvm_steal_time is 64 bytes");
_Static_assert(__builtin_offsetof(struct kvm_steal_time, preempted) == 16, "preempted at offset 16");

/* Per vCPU: zeroes this vCPU's area (the host never initialises it, and a stale
 * `preempted` would read as "not running"), then writes the MSR. Returns 0, the vector a
 * refused WRMSR raised, or STEAL_NOT_OFFERED when CPUID lacks STEAL_TIME. */
#define STEAL_NOT_OFFERED 0x100u
unsigned steal_time_enable(void);
/* Per vCPU: MSR = 0 (the host stops updating; the area keeps its last contents). */
unsigned steal_time_disable(void);
/* True once vCPU `cpu` enabled steal time. */
bool steal_time_enabled(unsigned cpu);

volatile struct kvm_steal_time* steal_time_area(unsigned cpu);
uint64_t steal_time_msr_value(unsigned cpu);

/* One consistent reading of vCPU `cpu`'s area: the version loop of kvm_steal_clock
 * (retry while the version is odd or changed under us). `retries` counts loops that had
 * to go round again. */
struct steal_sample {
    uint64_t steal;
    uint32_t version;
    uint32_t retries;
};
struct steal_sample steal_time_read(unsigned cpu);
static inline uint64_t steal_clock(unsigned cpu) { return steal_time_read(cpu).steal; }

/* Linux's vcpu_is_preempted(): bit 0 of the other vCPU's `preempted`. False when that
 * vCPU has no steal time. */
bool vcpu_is_preempted(unsigned cpu);
