/* task.c - the cooperative per-vCPU scheduler (see task.h).
 *
 * Linked only into the apf_* programs (scenarios/CMakeLists.txt), see task.h. */
#include "task.h"

#include "apic.h"
#include "desc.h"
#include "irq.h"
#include "smp.h"

struct task_cpu {
    spinlock_t lock; /* taken with IF=0 only: task_wake runs in interrupt handlers too */
    uint32_t apic_id;
    uint8_t kick_vector; /* 0: a wake from another vCPU sends no IPI */
    bool initialised;
    struct task* head; /* run queue, FIFO */
    struct task* tail;
    struct task* volatile current;
    uint64_t sched_rsp; /* the scheduler context while a task runs */
    uint32_t live;      /* spawned and not yet finished */
    uint64_t switches;  /* switches to a task */
    uint64_t idle_halts;
} __attribute__((aligned(64)));

static struct task_cpu task_cpus[MAX_CPUS];
static struct task task_slots[TASK_POOL];
static uint8_t task_stacks[TASK_POOL][TASK_STACK_BYTES] __attribute__((aligned(16)));
static void (*task_hook)(struct task* next);

void task_switch(uint64_t* save_rsp, const uint64_t* load_rsp);
void task_trampoline(void);
void task_exit(void) __attribute__((noreturn));

/* void task_switch(uint64_t* save_rsp, const uint64_t* load_rsp)
 *
 * Saves RFLAGS and the callee-saved registers of the SysV ABI (RBX, RBP, R12-R15) on the
 * current stack, stores RSP in *save_rsp, loads RSP from *load_rsp and restores the same
 * set from the new stack, RFLAGS last: the POPFQ gives the resumed context back its own IF
 * (a task may have blocked with IF=0 inside an exception handler), and an interrupt that
 * becomes deliverable at the POPFQ is taken on the new stack, which is the right one. The
 * callers run with IF=0, so nothing interrupts the window between the two RSP moves.
 * Caller-saved registers need no saving: to the C caller this is an ordinary call.
 *
 * task_trampoline: the first code of every task. task_spawn() builds the initial stack so
 * that task_switch "returns" there with RBX = fn, R12 = arg and RSP 16-byte aligned (the
 * stack top), so the CALL enters fn with RSP = 8 mod 16 as the SysV ABI requires. */
__asm__(".text\n"
        ".globl task_switch\n"
        ".type task_switch, @function\n"
        "task_switch:\n\t"
        "pushfq\n\t"
        "pushq %rbp\n\t"
        "pushq %rbx\n\t"
        "pushq %r12\n\t"
        "pushq %r13\n\t"
        "pushq %r14\n\t"
        "pushq %r15\n\t"
        "movq %rsp, (%rdi)\n\t"
        "movq (%rsi), %rsp\n\t"
        "popq %r15\n\t"
        "popq %r14\n\t"
        "popq %r13\n\t"
        "popq %r12\n\t"
        "popq %rbx\n\t"
        "popq %rbp\n\t"
        "popfq\n\t"
        "ret\n"
        ".size task_switch, . - task_switch\n"
        ".globl task_trampoline\n"
        ".type task_trampoline, @function\n"
        "task_trampoline:\n\t"
        "xorl %ebp, %ebp\n\t" /* end frame-pointer chains here */
        "movq %r12, %rdi\n\t"
        "call *%rbx\n\t"
        "call task_exit\n" /* does not return */
        "1:\tcli\n\t"
        "hlt\n\t"
        "jmp 1b\n"
        ".size task_trampoline, . - task_trampoline\n");

static struct task_cpu* task_this_cpu(void) { return &task_cpus[this_cpu()]; }

/* Run queue (lock held). */
static void task_rq_push(struct task_cpu* c, struct task* t)
{
    t->next = NULL;
    if (c->tail)
        c->tail->next = t;
    else
        c->head = t;
    c->tail = t;
}

static struct task* task_rq_pop(struct task_cpu* c)
{
    struct task* t = c->head;
    if (t) {
        c->head = t->next;
        if (!c->head)
            c->tail = NULL;
        t->next = NULL;
    }
    return t;
}

static void task_kick_handler(unsigned vector, struct ex_frame* frame)
{
    /* Nothing to do: the interrupt itself ended the HLT of the idle loop or of a halted
     * waiter, which then look at their state again. */
    (void)vector;
    (void)frame;
}

void task_init(uint8_t kick_vector)
{
    struct task_cpu* c = task_this_cpu();
    uint64_t flags = irq_save();
    c->lock.locked = 0;
    c->head = c->tail = NULL;
    c->current = NULL;
    c->live = 0;
    c->switches = c->idle_halts = 0;
    c->kick_vector = kick_vector >= 32 ? kick_vector : 0;
    if (c->kick_vector) {
        c->apic_id = apic_id();
        irq_set_handler_eoi(c->kick_vector, task_kick_handler);
    }
    c->initialised = true;
    irq_restore(flags);
}

struct task* task_spawn(task_fn fn, void* arg)
{
    unsigned cpu = this_cpu();
    struct task_cpu* c = &task_cpus[cpu];
    if (!c->initialised || !fn)
        return NULL;
    uint64_t flags = irq_save();
    struct task* t = NULL;
    if (c->live < TASK_MAX_PER_CPU) {
        /* Slots are shared by all vCPUs: claim one with LOCK CMPXCHG. */
        for (uint32_t i = 0; i < TASK_POOL && !t; ++i) {
            uint32_t expected = TASK_FREE;
            if (__atomic_compare_exchange_n(&task_slots[i].state, &expected, (uint32_t)TASK_CLAIMED, false,
                                            __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
                t = &task_slots[i];
                t->id = i;
            }
        }
    }
    if (t) {
        t->cpu = cpu;
        t->fn = fn;
        t->arg = arg;
        t->next = NULL;
        t->wake_pending = 0;
        t->stack = task_stacks[t->id];
        /* The frame task_switch pops (low to high): R15, R14, R13, R12 = arg, RBX = fn,
         * RBP, RFLAGS = IF | bit 1 (always 1, SDM Vol.1 3.4.3), return address. */
        uint64_t* sp = (uint64_t*)(t->stack + TASK_STACK_BYTES);
        *--sp = (uint64_t)(uintptr_t)task_trampoline;
        *--sp = RFLAGS_IF | 0x2;
        *--sp = 0;                        /* RBP */
        *--sp = (uint64_t)(uintptr_t)fn;  /* RBX */
        *--sp = (uint64_t)(uintptr_t)arg; /* R12 */
        *--sp = 0;                        /* R13 */
        *--sp = 0;                        /* R14 */
        *--sp = 0;                        /* R15 */
        t->rsp = (uint64_t)(uintptr_t)sp;
        spin_lock(&c->lock);
        t->state = TASK_RUNNABLE;
        ++c->live;
        task_rq_push(c, t);
        spin_unlock(&c->lock);
    }
    irq_restore(flags);
    return t;
}

void task_set_switch_hook(void (*hook)(struct task* next)) { task_hook = hook; }

void task_run_all(void)
{
    struct task_cpu* c = task_this_cpu();
    uint64_t flags = irq_save();
    for (;;) {
        spin_lock(&c->lock);
        struct task* t = task_rq_pop(c);
        uint32_t live = c->live;
        if (t) {
            t->state = TASK_RUNNING;
            c->current = t;
        }
        spin_unlock(&c->lock);
        if (!t) {
            if (live == 0)
                break;
            /* Idle: every task of this vCPU sleeps. Whatever wakes one (an interrupt
             * handler here, a kick IPI from another vCPU) also ends the HLT; STI's shadow
             * (SDM Vol.3A 6.8.3) keeps it from arriving between the STI and the HLT. */
            ++c->idle_halts;
            safe_halt();
            cli();
            continue;
        }
        ++c->switches;
        if (task_hook)
            task_hook(t);
        task_switch(&c->sched_rsp, &t->rsp);
        c->current = NULL;
        if (t->state == TASK_DONE)
            __atomic_store_n(&t->state, (uint32_t)TASK_FREE, __ATOMIC_RELEASE);
    }
    irq_restore(flags);
}

struct task* task_current(void) { return task_this_cpu()->current; }

void task_yield(void)
{
    struct task_cpu* c = task_this_cpu();
    struct task* t = c->current;
    if (!t)
        return;
    uint64_t flags = irq_save();
    spin_lock(&c->lock);
    t->state = TASK_RUNNABLE;
    task_rq_push(c, t);
    spin_unlock(&c->lock);
    task_switch(&t->rsp, &c->sched_rsp);
    irq_restore(flags);
}

void task_block(void)
{
    struct task_cpu* c = task_this_cpu();
    struct task* t = c->current;
    if (!t)
        return;
    uint64_t flags = irq_save();
    spin_lock(&c->lock);
    if (t->wake_pending) {
        t->wake_pending = 0;
        spin_unlock(&c->lock);
        irq_restore(flags);
        return;
    }
    t->state = TASK_BLOCKED;
    spin_unlock(&c->lock);
    /* A wake from another vCPU may queue us before the switch: harmless, the scheduler
     * that would run us is this very vCPU, after the switch has saved our RSP. */
    task_switch(&t->rsp, &c->sched_rsp);
    irq_restore(flags);
}

void task_kick_cpu(unsigned cpu)
{
    if (cpu >= MAX_CPUS || cpu == this_cpu() || !task_cpus[cpu].kick_vector)
        return;
    apic_send_ipi(task_cpus[cpu].apic_id, APIC_DM_FIXED | APIC_INT_ASSERT | task_cpus[cpu].kick_vector);
}

void task_wake(struct task* t)
{
    if (!t)
        return;
    struct task_cpu* c = &task_cpus[t->cpu];
    bool kick = false;
    uint64_t flags = irq_save();
    spin_lock(&c->lock);
    if (t->state == TASK_BLOCKED) {
        t->state = TASK_RUNNABLE;
        task_rq_push(c, t);
        kick = true;
    } else if (t->state == TASK_RUNNING || t->state == TASK_RUNNABLE) {
        t->wake_pending = 1;
    }
    spin_unlock(&c->lock);
    if (kick)
        task_kick_cpu(t->cpu); /* no-op for this vCPU */
    irq_restore(flags);
}

void task_exit(void)
{
    cli();
    struct task_cpu* c = task_this_cpu();
    struct task* t = c->current;
    spin_lock(&c->lock);
    t->state = TASK_DONE;
    --c->live;
    spin_unlock(&c->lock);
    /* Never resumed: the scheduler frees the slot once it is off this stack. */
    task_switch(&t->rsp, &c->sched_rsp);
    for (;;)
        hlt();
}

unsigned task_live(void) { return task_this_cpu()->live; }
uint64_t task_switches(unsigned cpu) { return cpu < MAX_CPUS ? task_cpus[cpu].switches : 0; }
uint64_t task_idle_halts(unsigned cpu) { return cpu < MAX_CPUS ? task_cpus[cpu].idle_halts : 0; }

