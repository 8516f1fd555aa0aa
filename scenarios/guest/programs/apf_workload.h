/* apf_workload.h - what the async page fault programs (apf_*.c) share: the memory window
 * the host swaps out, the per-vCPU set-up, page touching and checking, waiting on the
 * clock, and a watchdog that turns a lost wake-up into a FAIL line instead of a hang.
 *
 * The program's name must start with apf_: only those images are linked with lib/task.c
 * and lib/apf.c (scenarios/CMakeLists.txt).
 *
 * The window: APF_AREA_BASE .. + APF_AREA_SIZE, guest-physical = linear (the boot page
 * tables identity-map the first 4 GiB, boot.md §2). A scenario makes it non-resident with
 *     "host": {"memory": {"swapped_out": [{"gpa": "0x1000000", "size": "0x100000"}],
 *                         "fault_in_ns": ..., "io_workers": ...}}
 * and needs machine.ram_mib >= 32 (the window ends at 17 MiB; the image with its task
 * stacks ends below 8 MiB). The window starts zeroed, and a page keeps its contents while
 * swapped out, so the first read of every page must find zeros. */
#pragma once

#include "apf.h"
#include "apic.h"
#include "irq.h"
#include "kvmclock.h"
#include "libc.h"
#include "report.h"
#include "smp.h"
#include "task.h"

#define APF_AREA_BASE 0x1000000ul
#define APF_AREA_SIZE 0x100000ul
#define APF_PAGE_SIZE 4096ul
#define APF_AREA_PAGES (APF_AREA_SIZE / APF_PAGE_SIZE)

/* The fault-in latency the edge scenarios are written for (host.memory.fault_in_ns): the
 * programs' time checks ("this access stalled for about one fault-in") and waiting
 * windows ("nothing arrives within 3 fault-ins") are in these units. */
#define APF_EDGE_FAULT_IN_NS 1000000ul

#define WL_SPURIOUS_VECTOR 0xffu
#define WL_KICK_VECTOR 0xfdu     /* Linux's RESCHEDULE_VECTOR */
#define WL_WATCHDOG_VECTOR 0xecu /* Linux's LOCAL_TIMER_VECTOR */
/* Virtual time after which a vCPU gives up waiting: far beyond the fault-ins of the
 * scenarios the programs describe. A program may set wl_watchdog_ns before wl_cpu_setup. */
#define WL_WATCHDOG_NS 200000000ul

static bool wl_have_clock[MAX_CPUS];
static uint64_t wl_tsc_khz[MAX_CPUS];
static volatile uint32_t wl_watchdog_fired;
static uint64_t wl_watchdog_ns = WL_WATCHDOG_NS;

/* Virtual time in ns (kvmclock), or 0 when the hypervisor offers no kvmclock. */
static inline uint64_t wl_now(void) { return wl_have_clock[this_cpu()] ? kvmclock_read() : 0; }
static inline bool wl_clock(void) { return wl_have_clock[this_cpu()]; }

static inline volatile uint8_t* wl_page(unsigned index)
{
    return (volatile uint8_t*)(APF_AREA_BASE + (unsigned long)index * APF_PAGE_SIZE);
}

/* The byte a page holds at offset i after wl_fill: differs per page and per offset. */
static inline uint8_t wl_pattern(unsigned page, unsigned i) { return (uint8_t)(page * 131u + i * 7u + 1u); }

/* The first access to a page: one 8-byte load, the instruction that takes the async PF
 * (or stalls) and is retried after the page-ready. */
static inline uint64_t wl_first_touch(unsigned page) { return *(volatile uint64_t*)wl_page(page); }

/* After the first touch: every byte is still zero (the swapped-in page holds what it held
 * before), then the pattern is written and read back. */
static inline bool wl_check_fill(unsigned page)
{
    volatile uint8_t* p = wl_page(page);
    bool ok = true;
    for (unsigned i = 0; i < APF_PAGE_SIZE; ++i)
        ok = ok && p[i] == 0;
    for (unsigned i = 0; i < APF_PAGE_SIZE; ++i)
        p[i] = wl_pattern(page, i);
    for (unsigned i = 0; i < APF_PAGE_SIZE; ++i)
        ok = ok && p[i] == wl_pattern(page, i);
    return ok;
}

static inline bool wl_touch_check_fill(unsigned page)
{
    bool ok = wl_first_touch(page) == 0;
    return wl_check_fill(page) && ok;
}

/* One line of this vCPU's counters, for the console. */
static inline void wl_print_counters(unsigned cpu)
{
    const volatile struct apf_counters* c = apf_counters(cpu);
    printf("apf: vCPU %u: not-present %lu, page-ready %lu, wake-all %lu, dummies created %lu consumed %lu "
           "dropped %lu, slept %lu, halted %lu, spurious %lu, switches while waiting %lu\n",
           cpu, c->not_present, c->page_ready, c->wake_all, c->dummies_created, c->dummies_consumed,
           c->dummies_dropped, c->slept, c->halted_waits, c->spurious, c->switched_while_waiting);
}

static void wl_watchdog_handler(unsigned vector, struct ex_frame* f)
{
    (void)vector;
    apic_eoi();
    if (__atomic_exchange_n(&wl_watchdog_fired, 1u, __ATOMIC_SEQ_CST) != 0) {
        cli();
        for (;;)
            hlt();
    }
    printf("apf: watchdog: vCPU %u still waiting after %lu ms of virtual time (rip 0x%lx, %u tasks alive, %u "
           "asleep on an async PF)\n",
           this_cpu(), wl_watchdog_ns / 1000000, f->rip, task_live(), apf_sleeping(this_cpu()));
    wl_print_counters(this_cpu());
    report(false, "the workload finished before the watchdog");
    report_summary();
}

/* Arms this vCPU's watchdog: the LAPIC timer in TSC-deadline mode (no timer without it). */
static inline void wl_watchdog_arm(void)
{
    unsigned cpu = this_cpu();
    if (!wl_have_clock[cpu] || !cpu_has_tsc_deadline() || !wl_tsc_khz[cpu])
        return;
    apic_timer_tsc_deadline(WL_WATCHDOG_VECTOR, rdtsc() + wl_watchdog_ns / 1000 * wl_tsc_khz[cpu] / 1000);
}

static inline void wl_watchdog_disarm(void)
{
    if (wl_have_clock[this_cpu()] && cpu_has_tsc_deadline())
        apic_timer_stop();
}

/* Per vCPU, IF=0: local APIC (xAPIC), the scheduler with its kick vector, kvmclock, the
 * watchdog. vCPU 0 calls it before apf_setup (which needs task_init done for the hook, and
 * installs handlers the others share). */
static inline void wl_cpu_setup(void)
{
    unsigned cpu = this_cpu();
    apic_init(APIC_MODE_XAPIC, WL_SPURIOUS_VECTOR);
    task_init(WL_KICK_VECTOR);
    if (kvmclock_init() != 0) {
        wl_have_clock[cpu] = true;
        volatile struct pvclock_vcpu_time_info* ti = kvmclock_this_cpu_info();
        wl_tsc_khz[cpu] = pvclock_tsc_khz(ti->tsc_to_system_mul, ti->tsc_shift);
    }
    if (cpu == 0)
        irq_set_handler(WL_WATCHDOG_VECTOR, wl_watchdog_handler);
    wl_watchdog_arm();
}

/* Spins with IF=1 until *counter >= target or `timeout_ns` of virtual time passed (without
 * a clock: a fixed number of spins). Returns whether the target was reached. Keeps the
 * caller's IF. */
static inline bool wl_wait_counter(const volatile uint64_t* counter, uint64_t target, uint64_t timeout_ns)
{
    uint64_t flags = read_rflags();
    sti();
    uint64_t start = wl_now();
    unsigned long spins = 0;
    bool reached;
    for (;;) {
        reached = *counter >= target;
        if (reached)
            break;
        if (wl_clock() ? wl_now() - start >= timeout_ns : ++spins >= 1000000ul)
            break;
        pause();
    }
    if (!(flags & RFLAGS_IF))
        cli();
    return reached;
}

/* Spins with IF=1 for `ns` of virtual time (interrupts are taken meanwhile). */
static inline void wl_spin_ns(uint64_t ns)
{
    static const volatile uint64_t never = 0;
    wl_wait_counter(&never, 1, ns);
}

/* vCPU 0, after wl_cpu_setup: apf_setup with `opts`, a line saying what was chosen, and
 * a SKIP + SUMMARY (ends the run) when the program needs a protocol the CPUID does not
 * offer (`need`: APF_PROTO_AUTO = any, APF_PROTO_MODERN = only modern). */
static inline enum apf_protocol wl_setup_or_skip(const struct apf_options* opts, enum apf_protocol need)
{
    enum apf_protocol p = apf_setup(opts);
    printf("apf: CPUID 0x40000001 eax 0x%x: %s\n", apf_kvm_features(), apf_protocol_name(p));
    if (p == APF_PROTO_NONE) {
        report_skip("async page faults: CPUID 0x40000001 offers neither ASYNC_PF (bit 4) nor ASYNC_PF_INT (bit 14)");
        report_summary();
    }
    if (need == APF_PROTO_MODERN && p != APF_PROTO_MODERN) {
        report_skip("needs the modern protocol: CPUID 0x40000001 lacks ASYNC_PF_INT (bit 14)");
        report_summary();
    }
    return p;
}

/* This vCPU: apf_enable, then (IF=1) the wake-all every enable produces. A faulting WRMSR
 * is a FAIL line and the end of the run (not a hang). Returns whether the wake-all came
 * within `timeout_ns` (the caller reports it). */
static inline bool wl_enable_or_fail(uint64_t timeout_ns)
{
    unsigned cpu = this_cpu();
    uint64_t before = apf_counters(cpu)->wake_all;
    unsigned fault = apf_enable();
    if (fault) {
        printf("apf: vCPU %u: enabling async PF faulted: vector %u (%s); MSR 0x%x or 0x%x refused\n", cpu, fault,
               exception_mnemonic(fault), MSR_KVM_ASYNC_PF_INT, MSR_KVM_ASYNC_PF_EN);
        report(false, "vCPU %u: WRMSR of the async PF MSRs succeeds", cpu);
        report_summary();
    }
    return wl_wait_counter(&apf_counters(cpu)->wake_all, before + 1, timeout_ns);
}

/* The start every one-vCPU edge program shares: this vCPU's set-up, async PF set up with
 * `opts` (the protocol from CPUID) or a SKIP, and enabled, with the enable's wake-all
 * reported as the first check. `opts` must outlive the program (apf keeps the pointer's
 * hooks). Returns the protocol chosen. */
static inline enum apf_protocol wl_edge_start(const struct apf_options* opts)
{
    wl_cpu_setup();
    enum apf_protocol p = wl_setup_or_skip(opts, APF_PROTO_AUTO);
    report(wl_enable_or_fail(50 * APF_EDGE_FAULT_IN_NS), "the enable's wake-all arrived");
    return p;
}
