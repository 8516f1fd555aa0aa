/* apf.h - the guest side of KVM's asynchronous page faults, as Linux does it
 * (arch/x86/kernel/kvm.c), in both eras (pvmsr/README.md §5 is the host side):
 *
 *   seed era (CPUID 0x40000001 bit 4, ASYNC_PF, without bit 14): MSR 0x4b564d02 =
 *     GPA | ENABLED (| SEND_ALWAYS). "Page not present" and "page ready" are both #PF with
 *     error code 0 and CR2 = token; the 32-bit `reason` at offset 0 of the area says which
 *     (1 or 2). The #PF handler reads and zeroes it: 0 = a real #PF, 1 = wait, 2 = wake.
 *   modern (bit 14, ASYNC_PF_INT, Linux 5.8+): MSR 0x4b564d06 = vector, then 0x4b564d02 =
 *     GPA | ENABLED | DELIVERY_AS_INT (| DELIVERY_AS_PF_VMEXIT with bit 10, as Linux does)
 *     (| SEND_ALWAYS). "Not present" is a #PF with `flags` = 1; "page ready" is the interrupt:
 *     EOI, then token = area.token, wake(token), area.token = 0, WRMSR 0x4b564d07 = 1.
 *
 * A wait puts the faulting task to sleep (task.h) until the page-ready for its token; a
 * waiter that cannot sleep (no task: the scheduler context or plain main(), or the program
 * asked for halting) uses the seed era's halted wait: STI;HLT until its node is unhashed.
 * Token 0xffffffff ("wake all", sent after every enable) wakes every waiter of the vCPU
 * that receives it. The sleeper table is apf_sleepers.h.
 *
 * Unlike today's Linux, which takes async PFs only in user mode, the tasks here are kernel
 * threads: a program that wants "not present" at CPL 0 enables SEND_ALWAYS, as seed-era
 * Linux did with CONFIG_PREEMPT.
 *
 * Linking: like task.c, only into the apf_* programs (task.h). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "apf_sleepers.h"
#include "desc.h"

#define MSR_KVM_ASYNC_PF_EN 0x4b564d02u
#define MSR_KVM_ASYNC_PF_INT 0x4b564d06u
#define MSR_KVM_ASYNC_PF_ACK 0x4b564d07u

/* CPUID 0x40000001 EAX (pvmsr/README.md §3.2). */
#define KVM_FEATURE_ASYNC_PF (1u << 4)
#define KVM_FEATURE_ASYNC_PF_VMEXIT (1u << 10)
#define KVM_FEATURE_ASYNC_PF_INT (1u << 14)

/* MSR_KVM_ASYNC_PF_EN bits (pvmsr/README.md §5.1). */
#define KVM_ASYNC_PF_ENABLED (1ull << 0)
#define KVM_ASYNC_PF_SEND_ALWAYS (1ull << 1)
#define KVM_ASYNC_PF_DELIVERY_AS_PF_VMEXIT (1ull << 2)
#define KVM_ASYNC_PF_DELIVERY_AS_INT (1ull << 3)

/* `flags` (seed era: `reason`) values (pvmsr/README.md §5.2). */
#define KVM_PV_REASON_PAGE_NOT_PRESENT 1u
#define KVM_PV_REASON_PAGE_READY 2u

#define APF_WAKE_ALL_TOKEN APF_SL_WAKE_ALL_TOKEN
/* Linux's HYPERVISOR_CALLBACK_VECTOR, the vector it gives MSR 0x4b564d06. */
#define APF_DEFAULT_VECTOR 0xf3u
#define APF_DUMMY_POOL 256u
/* apf_enable() when the chosen protocol is APF_PROTO_NONE (no MSR written). */
#define APF_NOT_OFFERED 0x100u

/* struct kvm_vcpu_pv_apf_data (uapi): the host writes bytes 0-7 only; `enabled` is the
 * guest's own flag. 64-byte aligned as the MSR requires (bits 5:0 carry flags). */
struct kvm_vcpu_pv_apf_data {
    volatile uint32_t flags; /* seed era: reason */
    volatile uint32_t token; /* modern: token of a page-ready */
    uint8_t pad[56];
    volatile uint32_t enabled;
} __attribute__((aligned(64)));
_Static_assert(__builtin_offsetof(struct kvm_vcpu_pv_apf_data, enabled) == 64, "enabled at offset 64");

enum apf_protocol {
    APF_PROTO_AUTO = 0,   /* options only: choose from CPUID like Linux */
    APF_PROTO_NONE = 1,   /* CPUID offers neither bit 4 nor bit 14 */
    APF_PROTO_SEED = 2,   /* page-ready is a #PF with reason 2 */
    APF_PROTO_MODERN = 3, /* page-ready is an interrupt */
};

static inline const char* apf_protocol_name(enum apf_protocol p)
{
    return p == APF_PROTO_MODERN ? "modern (page-ready by interrupt)"
           : p == APF_PROTO_SEED ? "seed era (page-ready by #PF, reason 2)"
                                 : "none";
}

struct apf_options {
    enum apf_protocol protocol; /* APF_PROTO_AUTO (CPUID), or forced */
    bool send_always;           /* MSR bit 1: "not present" may arrive at CPL 0 */
    bool halt_instead;          /* every waiter halts (STI;HLT) instead of sleeping */
    bool no_pf_vmexit;          /* leave bit 2 clear even when CPUID offers bit 10 */
    uint8_t vector;             /* modern page-ready vector; 0 = APF_DEFAULT_VECTOR */
    /* Runs in the #PF handler (IF=0) after a "not present" was read and before the wait is
     * registered, with the token; it may enable interrupts (apf.c disables them again).
     * For the program that makes the page-ready arrive first (the dummy path). */
    void (*before_wait)(uint32_t token);
};

/* Per vCPU. Written only by that vCPU; read by others after a barrier. */
struct apf_counters {
    uint64_t not_present;      /* "page not present" #PFs taken */
    uint64_t page_ready;       /* page-ready events for one token (interrupt or reason 2) */
    uint64_t wake_all;         /* page-ready events with token 0xffffffff */
    uint64_t local_wake_all;   /* waiters woken by the guest itself (apf_disable) */
    uint64_t dummies_created;  /* a page-ready found no waiter: dummy left */
    uint64_t dummies_consumed; /* a wait found its dummy and did not sleep */
    uint64_t dummies_dropped;  /* dummies of this vCPU freed by a wake-all */
    uint64_t wakes_lost;       /* no waiter and no free dummy slot */
    uint64_t spurious;         /* page-ready interrupt while disabled; unknown `flags`;
                                * "not present" injected with IF=0 */
    uint64_t slept;            /* waits that slept as a task */
    uint64_t halted_waits;     /* waits that halted (no task, or halt_instead) */
    uint64_t real_pf;          /* #PFs handed on to the runtime */
    uint64_t switched_while_waiting; /* switches to a task while another task of this vCPU slept on an APF */
    uint64_t max_sleeping;     /* most tasks of this vCPU asleep on an APF at once */
};

/* CPUID 0x40000001 EAX when leaf 0x40000000 carries "KVMKVMKVM", else 0. */
uint32_t apf_kvm_features(void);

/* Once, on vCPU 0, before any vCPU calls apf_enable (and after task_init if tasks are
 * used): chooses the protocol (options, else CPUID as Linux does), sets up the sleeper
 * table, installs the #PF handler (a real #PF goes on to the handler installed before, or
 * to the runtime's usual fixup / catch_exception / "Unhandled exception" path) and, for
 * the modern protocol, the page-ready vector. Returns the protocol. */
enum apf_protocol apf_setup(const struct apf_options* opts);
enum apf_protocol apf_protocol(void);

/* Per vCPU (the local APIC set up first for the modern protocol): writes the MSRs as
 * Linux's kvm_guest_cpu_init does, with IF=0 and serialised between vCPUs (wrmsr_safe's
 * fixup status is one global), then sets area.enabled. Returns 0, the vector of the
 * exception a WRMSR raised (13 = #GP; nothing enabled then), or APF_NOT_OFFERED. Calling it
 * again re-enables, which makes the host send another wake-all. */
unsigned apf_enable(void);

/* Per vCPU, like Linux's kvm_guest_cpu_offline: WRMSR 0x4b564d02 = 0, area.enabled = 0,
 * then wake every waiter of this vCPU (the host drops outstanding faults without a
 * page-ready, pvmsr/README.md §5.3). Returns 0 or the WRMSR's exception vector. */
unsigned apf_disable(void);

/* Per-vCPU state, for reports. */
const volatile struct apf_counters* apf_counters(unsigned cpu);
volatile struct kvm_vcpu_pv_apf_data* apf_area(unsigned cpu);
uint64_t apf_msr_value(unsigned cpu);
/* Tasks of vCPU `cpu` asleep on an async PF right now. */
unsigned apf_sleeping(unsigned cpu);
/* Nodes in the sleeper table: dummies (true) or waiters (false), of every vCPU. */
uint32_t apf_table_count(bool dummies);
