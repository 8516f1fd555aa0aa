/* hypercall.h - KVM hypercalls from the guest's side (pvmsr/README.md §10).
 *
 * The ABI: RAX = hypercall number, RBX, RCX, RDX, RSI = arguments a0..a3, result in RAX
 * (a negative KVM error, or what the call returns); every other register is preserved. The
 * instruction is VMCALL (0F 01 C1) on Intel and VMMCALL (0F 01 D9) on AMD. Linux patches
 * the right one in at boot (its "alternatives" keyed on the CPU vendor); here one flag,
 * set from CPUID leaf 0 by kvm_hypercall_init(), picks the instruction at each call. A
 * guest that uses the other vendor's instruction traps to KVM, which by default rewrites
 * the three bytes in guest memory and runs them again (pvmsr/README.md §10); the
 * kvm_vmcall / kvm_vmmcall forms below let a program do that on purpose.
 *
 * Linked only into the pv_* programs (kvm_hypercall_vmmcall lives in pv.c). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/* Hypercall numbers (include/uapi/linux/kvm_para.h). */
#define KVM_HC_VAPIC_POLL_IRQ 1u
#define KVM_HC_MMU_OP 2u
#define KVM_HC_FEATURES 3u
#define KVM_HC_PPC_MAP_MAGIC_PAGE 4u
#define KVM_HC_KICK_CPU 5u
#define KVM_HC_MIPS_GET_CLOCK_FREQ 6u
#define KVM_HC_MIPS_EXIT_VM 7u
#define KVM_HC_MIPS_CONSOLE_OUTPUT 8u
#define KVM_HC_CLOCK_PAIRING 9u
#define KVM_HC_SEND_IPI 10u
#define KVM_HC_SCHED_YIELD 11u
#define KVM_HC_MAP_GPA_RANGE 12u

/* Error values (include/uapi/linux/kvm_para.h); a hypercall returns them negated. */
#define KVM_ENOSYS 1000
#define KVM_EFAULT 14
#define KVM_EINVAL 22
#define KVM_E2BIG 7
#define KVM_EPERM 1
#define KVM_EOPNOTSUPP 95

/* KVM_HC_CLOCK_PAIRING: the structure written at a0 and the only clock type, a1 = 0. */
#define KVM_CLOCK_PAIRING_WALLCLOCK 0u
struct kvm_clock_pairing {
    int64_t sec;
    int64_t nsec;
    uint64_t tsc;
    uint32_t flags;
    uint32_t pad[9];
};
_Static_assert(sizeof(struct kvm_clock_pairing) == 64, "kvm_clock_pairing is 64 bytes");

/* True when hypercalls use VMMCALL (CPUID vendor AuthenticAMD or HygonGenuine). */
extern bool kvm_hypercall_vmmcall;
/* Reads the vendor (CPUID leaf 0) and sets kvm_hypercall_vmmcall; returns it. Call once
 * before the first hypercall (pv_cpu_init does). */
bool kvm_hypercall_init(void);

static inline long kvm_vmcall4(unsigned long nr, unsigned long a0, unsigned long a1, unsigned long a2,
                               unsigned long a3)
{
    long ret;
    __asm__ volatile("vmcall" : "=a"(ret) : "a"(nr), "b"(a0), "c"(a1), "d"(a2), "S"(a3) : "memory");
    return ret;
}

static inline long kvm_vmmcall4(unsigned long nr, unsigned long a0, unsigned long a1, unsigned long a2,
                                unsigned long a3)
{
    long ret;
    __asm__ volatile("vmmcall" : "=a"(ret) : "a"(nr), "b"(a0), "c"(a1), "d"(a2), "S"(a3) : "memory");
    return ret;
}

static inline long kvm_hypercall4(unsigned long nr, unsigned long a0, unsigned long a1, unsigned long a2,
                                  unsigned long a3)
{
    return kvm_hypercall_vmmcall ? kvm_vmmcall4(nr, a0, a1, a2, a3) : kvm_vmcall4(nr, a0, a1, a2, a3);
}
/* The unused argument registers are loaded with 0 (they are preserved either way). */
static inline long kvm_hypercall0(unsigned long nr) { return kvm_hypercall4(nr, 0, 0, 0, 0); }
static inline long kvm_hypercall1(unsigned long nr, unsigned long a0) { return kvm_hypercall4(nr, a0, 0, 0, 0); }
static inline long kvm_hypercall2(unsigned long nr, unsigned long a0, unsigned long a1)
{
    return kvm_hypercall4(nr, a0, a1, 0, 0);
}
static inline long kvm_hypercall3(unsigned long nr, unsigned long a0, unsigned long a1, unsigned long a2)
{
    return kvm_hypercall4(nr, a0, a1, a2, 0);
}

/* The same call, but an exception it raises (#UD when KVM does not patch a foreign opcode,
 * pvmsr/README.md §10) is caught through the exception table: returns 0 and stores the
 * result, or returns the vector. Uses the global fixup status, so one vCPU at a time
 * (pv_wrmsr_safe's lock serialises it). `vmmcall` picks the instruction. */
unsigned kvm_hypercall_safe(bool vmmcall, unsigned long nr, unsigned long a0, unsigned long a1, unsigned long a2,
                            unsigned long a3, long* result);
