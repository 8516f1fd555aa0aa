/* pv.h - what the paravirtual pieces of the pv_* programs share (pv_steal.h, pv_tlb.h,
 * pv_eoi.h, pv_spinlock.h, pv_ipi.h): KVM's CPUID feature bits, each vCPU's APIC ID (the
 * hypercalls name vCPUs by APIC ID, pvmsr/README.md §10) and exception-safe MSR writes
 * and hypercalls that several vCPUs may use.
 *
 * Linking: lib/pv*.c go only into the programs named pv_* (scenarios/CMakeLists.txt), so
 * every other image, and with it every other golden trace, stays byte for byte the same. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "desc.h"
#include "hypercall.h"

#define KVM_CPUID_SIGNATURE 0x40000000u
#define KVM_CPUID_FEATURES 0x40000001u

/* CPUID 0x40000001 EAX, as masks (pvmsr/README.md §3.2). */
#define KVM_FEATURE_CLOCKSOURCE (1u << 0)
#define KVM_FEATURE_CLOCKSOURCE2 (1u << 3)
#define KVM_FEATURE_STEAL_TIME (1u << 5)
#define KVM_FEATURE_PV_EOI (1u << 6)
#define KVM_FEATURE_PV_UNHALT (1u << 7)
#define KVM_FEATURE_PV_TLB_FLUSH (1u << 9)
#define KVM_FEATURE_PV_SEND_IPI (1u << 11)
#define KVM_FEATURE_PV_SCHED_YIELD (1u << 13)
/* CPUID 0x40000001 EDX: the VMM promises that vCPUs are never preempted for long; Linux
 * then turns PV spinlocks, PV TLB flush and PV sched-yield off. */
#define KVM_HINTS_REALTIME (1u << 0)

/* CPUID 0x40000001 EAX (EDX for the hints) when leaf 0x40000000 carries "KVMKVMKVM",
 * else 0. Read once. */
uint32_t kvm_para_features(void);
uint32_t kvm_para_hints(void);
static inline bool kvm_para_has(uint32_t feature_mask) { return (kvm_para_features() & feature_mask) == feature_mask; }

/* Per vCPU, after apic_init(): records this vCPU's APIC ID and picks the hypercall
 * instruction (kvm_hypercall_init). */
void pv_cpu_init(void);
/* The APIC ID of vCPU `cpu` (valid once that vCPU ran pv_cpu_init). */
uint32_t pv_apic_id(unsigned cpu);

/* wrmsr_safe / kvm_hypercall_safe with the one global fixup status taken under a lock,
 * so any vCPU may call them. Return 0 or the vector the instruction raised. */
unsigned pv_wrmsr_safe(uint32_t msr, uint64_t value);
unsigned pv_hypercall_safe(bool vmmcall, unsigned long nr, unsigned long a0, unsigned long a1, unsigned long a2,
                           unsigned long a3, long* result);

/* Bit i = vCPU i; the pv_* programs have at most 64 vCPUs (MAX_CPUS). */
typedef uint64_t cpumask_t;
#define CPU_BIT(cpu) ((cpumask_t)1 << (cpu))
