/* apf.c - the guest's async page fault driver (see apf.h), re-implementing in our words
 * what Linux's arch/x86/kernel/kvm.c does: kvm_guest_cpu_init (enable),
 * kvm_read_and_reset_apf_flags / the seed era's do_async_page_fault (#PF),
 * kvm_async_pf_task_wait_schedule and the seed era's halted wait (wait),
 * kvm_async_pf_task_wake / apf_task_wake_all (wake), __sysvec_kvm_asyncpf_interrupt
 * (page-ready interrupt) and kvm_guest_cpu_offline (disable).
 *
 * Linked only into the apf_* programs (scenarios/CMakeLists.txt), see task.h. */
#include "apf.h"

#include "apic.h"
#include "irq.h"
#include "smp.h"
#include "task.h"

struct apf_cpu {
    struct kvm_vcpu_pv_apf_data area; /* first: 64-byte aligned */
    struct apf_counters c;
    volatile uint32_t sleeping; /* tasks of this vCPU asleep on an APF now (LOCK-updated) */
    uint64_t msr_value;         /* last value written to MSR 0x4b564d02 */
} __attribute__((aligned(64)));

static struct apf_cpu apf_cpus[MAX_CPUS];
static struct apf_sl_table apf_table;
static struct apf_sl_node apf_dummy_pool[APF_DUMMY_POOL];
static struct apf_options apf_opts;
static uint32_t apf_features;          /* CPUID 0x40000001 EAX, 0 without the KVM signature */
static enum apf_protocol apf_proto = APF_PROTO_NONE;
static ex_handler_fn apf_prev_pf;      /* #PF handler installed before ours, if any */
static spinlock_t apf_msr_lock;        /* wrmsr_safe's fixup status is one global */
static bool apf_setup_done;

void exception_dispatch(struct ex_frame* f); /* exception.c */

uint32_t apf_kvm_features(void)
{
    struct cpuid_result sig = cpuid(0x40000000u);
    /* "KVMKVMKVM\0\0\0" in EBX, ECX, EDX (pvmsr/README.md §3.1). */
    if (sig.b != 0x4b4d564bu || sig.c != 0x564b4d56u || sig.d != 0x4du)
        return 0;
    return cpuid(0x40000001u).a;
}

/* ---- waking ---------------------------------------------------------------------------- */

/* Called under a bucket lock for each waiter a wake unhashes. A sleeping task is made
 * runnable and leaves its vCPU's "sleeping" count (so the scheduler's switch to it is not
 * counted as "while another waited"); a halted waiter on another vCPU gets a kick IPI
 * (Linux's seed era sent a reschedule IPI); one on this vCPU was halted in HLT, which the
 * interrupt or exception we are handling has already ended. */
static void apf_wake_cb(void* ctx, void* waiter, uint32_t cpu, bool halted)
{
    (void)ctx;
    if (halted) {
        task_kick_cpu(cpu);
        return;
    }
    __atomic_sub_fetch(&apf_cpus[cpu].sleeping, 1u, __ATOMIC_SEQ_CST);
    task_wake((struct task*)waiter);
}

/* With IF=0 (interrupt or exception handler, or apf_disable). */
static void apf_wake_token(struct apf_cpu* a, unsigned cpu, uint32_t token)
{
    if (token == APF_WAKE_ALL_TOKEN) {
        uint32_t dropped = 0;
        ++a->c.wake_all;
        apf_sl_wake_all(&apf_table, cpu, apf_wake_cb, NULL, &dropped);
        a->c.dummies_dropped += dropped;
        return;
    }
    ++a->c.page_ready;
    enum apf_sl_wake_result r = apf_sl_wake(&apf_table, token, cpu, apf_wake_cb, NULL);
    if (r == APF_SL_WAKE_DUMMY)
        ++a->c.dummies_created;
    else if (r == APF_SL_WAKE_LOST)
        ++a->c.wakes_lost;
}

/* ---- waiting --------------------------------------------------------------------------- */

/* In the #PF handler, IF=0, on the faulting task's stack. */
static void apf_wait(struct apf_cpu* a, unsigned cpu, uint32_t token, bool must_halt)
{
    if (apf_opts.before_wait) {
        apf_opts.before_wait(token);
        cli();
    }
    struct task* t = task_current();
    bool halted = !t || must_halt || apf_opts.halt_instead;
    struct apf_sl_node n;
    if (!apf_sl_queue(&apf_table, &n, token, cpu, t, halted)) {
        /* The page-ready came first and left a dummy: the page is there, retry now. */
        ++a->c.dummies_consumed;
        return;
    }
    if (halted) {
        /* The seed era's wait for a context that cannot schedule: STI;HLT until a wake
         * unhashes the node (the STI shadow, SDM Vol.3A 6.8.3, closes the race). */
        ++a->c.halted_waits;
        while (apf_sl_hashed(&n)) {
            safe_halt();
            cli();
        }
        return;
    }
    ++a->c.slept;
    uint32_t now = __atomic_add_fetch(&a->sleeping, 1u, __ATOMIC_SEQ_CST);
    if (now > a->c.max_sleeping)
        a->c.max_sleeping = now;
    /* task_block keeps a wake that comes before it (wake_pending) and may return early:
     * the node tells whether the page-ready (or a wake-all) really came. */
    while (apf_sl_hashed(&n))
        task_block();
}

/* ---- the #PF handler ------------------------------------------------------------------- */

static void apf_pf_handler(struct ex_frame* f);

/* Not an async PF: what would have happened without us. */
static void apf_real_pf(struct apf_cpu* a, struct ex_frame* f)
{
    ++a->c.real_pf;
    if (apf_prev_pf) {
        apf_prev_pf(f);
        return;
    }
    /* exception.c has no entry point for "the default handling of this frame" other than
     * the dispatcher itself, which prefers a registered handler: step aside for the one
     * call. (A real #PF in an APF program is a bug that ends the run anyway; another vCPU
     * taking an async PF in this window would be reported as unhandled.) */
    handle_exception(PF_VECTOR, NULL);
    exception_dispatch(f);
    handle_exception(PF_VECTOR, apf_pf_handler);
}

static void apf_pf_handler(struct ex_frame* f)
{
    /* CR2 first: the token of an async PF, or the address of a real one. Nothing since the
     * #PF could have changed it (exception_dispatch reads it but does not fault). */
    uint32_t token = (uint32_t)read_cr2();
    unsigned cpu = this_cpu();
    struct apf_cpu* a = &apf_cpus[cpu];
    /* Read and zero before anything can fault again: the host overwrites the word with
     * the next event without looking at it (pvmsr/README.md §5.3). */
    uint32_t reason = 0;
    if (a->area.enabled) {
        reason = a->area.flags;
        a->area.flags = 0;
    }
    if (apf_proto == APF_PROTO_SEED) {
        /* Linux's seed-era do_async_page_fault: 1 wait, 2 wake, anything else is real. */
        if (reason == KVM_PV_REASON_PAGE_READY) {
            apf_wake_token(a, cpu, token);
            return;
        }
        if (reason != KVM_PV_REASON_PAGE_NOT_PRESENT) {
            apf_real_pf(a, f);
            return;
        }
    } else {
        /* Modern: 0 is a real #PF; unknown flags are WARNed about and treated as handled. */
        if (reason == 0) {
            apf_real_pf(a, f);
            return;
        }
        if (!(reason & KVM_PV_REASON_PAGE_NOT_PRESENT)) {
            ++a->c.spurious;
            return;
        }
    }
    ++a->c.not_present;
    if (!(f->rflags & RFLAGS_IF)) {
        /* KVM injects only where an interrupt could be (pvmsr/README.md §5.3); modern Linux
         * panics here. We count it and wait halted, which needs no scheduler. */
        ++a->c.spurious;
        apf_wait(a, cpu, token, true);
        return;
    }
    apf_wait(a, cpu, token, false);
}

/* ---- the modern page-ready interrupt --------------------------------------------------- */

static void apf_irq(unsigned vector, struct ex_frame* f)
{
    (void)vector;
    (void)f;
    /* EOI first, as Linux does: the next page-ready may then be delivered as soon as the
     * ACK below lets the host send it and IF allows. */
    apic_eoi();
    unsigned cpu = this_cpu();
    struct apf_cpu* a = &apf_cpus[cpu];
    if (!a->area.enabled) {
        ++a->c.spurious;
        return;
    }
    uint32_t token = a->area.token;
    apf_wake_token(a, cpu, token);
    /* Free the slot, then tell the host it may write the next token (pvmsr/README.md §5.5). */
    a->area.token = 0;
    wrmsr(MSR_KVM_ASYNC_PF_ACK, 1);
}

/* ---- the scheduler hook ---------------------------------------------------------------- */

static void apf_switch_hook(struct task* next)
{
    struct apf_cpu* a = &apf_cpus[next->cpu];
    if (__atomic_load_n(&a->sleeping, __ATOMIC_RELAXED) != 0)
        ++a->c.switched_while_waiting;
}

/* ---- set-up ---------------------------------------------------------------------------- */

enum apf_protocol apf_setup(const struct apf_options* opts)
{
    apf_opts = *opts;
    if (!apf_opts.vector)
        apf_opts.vector = APF_DEFAULT_VECTOR;
    apf_features = apf_kvm_features();
    enum apf_protocol p = opts->protocol;
    if (p == APF_PROTO_AUTO) {
        /* Linux 5.8+ uses async PF only with ASYNC_PF_INT; older guests with ASYNC_PF. */
        p = (apf_features & KVM_FEATURE_ASYNC_PF_INT) ? APF_PROTO_MODERN
            : (apf_features & KVM_FEATURE_ASYNC_PF)   ? APF_PROTO_SEED
                                                      : APF_PROTO_NONE;
    }
    apf_proto = p;
    apf_sl_init(&apf_table, apf_dummy_pool, APF_DUMMY_POOL, 1000);
    if (p != APF_PROTO_NONE) {
        ex_handler_fn old = handle_exception(PF_VECTOR, apf_pf_handler);
        if (old != apf_pf_handler)
            apf_prev_pf = old;
        if (p == APF_PROTO_MODERN)
            irq_set_handler(apf_opts.vector, apf_irq);
        task_set_switch_hook(apf_switch_hook);
    }
    apf_setup_done = true;
    return p;
}

enum apf_protocol apf_protocol(void) { return apf_proto; }

unsigned apf_enable(void)
{
    if (!apf_setup_done || apf_proto == APF_PROTO_NONE)
        return APF_NOT_OFFERED;
    struct apf_cpu* a = &apf_cpus[this_cpu()];
    uint64_t value = (uint64_t)(uintptr_t)&a->area | KVM_ASYNC_PF_ENABLED;
    if (apf_opts.send_always)
        value |= KVM_ASYNC_PF_SEND_ALWAYS;
    if (apf_proto == APF_PROTO_MODERN) {
        value |= KVM_ASYNC_PF_DELIVERY_AS_INT;
        if ((apf_features & KVM_FEATURE_ASYNC_PF_VMEXIT) && !apf_opts.no_pf_vmexit)
            value |= KVM_ASYNC_PF_DELIVERY_AS_PF_VMEXIT;
    }
    uint64_t flags = irq_save();
    spin_lock(&apf_msr_lock);
    unsigned fault = 0;
    /* The vector first: an enable with DELIVERY_AS_INT before it would use vector 0
     * (pvmsr/README.md §5.4). */
    if (apf_proto == APF_PROTO_MODERN)
        fault = wrmsr_safe(MSR_KVM_ASYNC_PF_INT, apf_opts.vector);
    if (!fault)
        fault = wrmsr_safe(MSR_KVM_ASYNC_PF_EN, value);
    spin_unlock(&apf_msr_lock);
    if (!fault) {
        a->msr_value = value;
        /* After the WRMSR, as Linux does; IF=0 keeps the wake-all away until then. */
        a->area.enabled = 1;
    }
    irq_restore(flags);
    return fault;
}

unsigned apf_disable(void)
{
    if (!apf_setup_done)
        return 0;
    unsigned cpu = this_cpu();
    struct apf_cpu* a = &apf_cpus[cpu];
    uint64_t flags = irq_save();
    spin_lock(&apf_msr_lock);
    unsigned fault = wrmsr_safe(MSR_KVM_ASYNC_PF_EN, 0);
    spin_unlock(&apf_msr_lock);
    if (!fault) {
        a->msr_value = 0;
        a->area.enabled = 0;
        /* The host forgets our outstanding faults: nobody else will wake the waiters. */
        uint32_t dropped = 0;
        a->c.local_wake_all += apf_sl_wake_all(&apf_table, cpu, apf_wake_cb, NULL, &dropped);
        a->c.dummies_dropped += dropped;
    }
    irq_restore(flags);
    return fault;
}

const volatile struct apf_counters* apf_counters(unsigned cpu) { return &apf_cpus[cpu % MAX_CPUS].c; }
volatile struct kvm_vcpu_pv_apf_data* apf_area(unsigned cpu) { return &apf_cpus[cpu % MAX_CPUS].area; }
uint64_t apf_msr_value(unsigned cpu) { return apf_cpus[cpu % MAX_CPUS].msr_value; }
unsigned apf_sleeping(unsigned cpu) { return __atomic_load_n(&apf_cpus[cpu % MAX_CPUS].sleeping, __ATOMIC_RELAXED); }

uint32_t apf_table_count(bool dummies)
{
    uint64_t flags = irq_save();
    uint32_t n = apf_sl_count(&apf_table, UINT32_MAX, dummies);
    irq_restore(flags);
    return n;
}

