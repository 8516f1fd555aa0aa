/* task.h - a small cooperative scheduler: several kernel threads ("tasks") per vCPU, each
 * on its own stack, so that a task can sleep inside an exception handler while the other
 * tasks of its vCPU run. Async page faults (apf.h) need exactly that: the "page not present"
 * #PF arrives on the faulting task's stack, the handler puts the task to sleep, and when
 * the page is ready the task is woken, the handler returns with IRETQ and the faulting
 * instruction is retried (pvmsr/README.md §5.3).
 *
 * Model:
 *   - every task runs at CPL 0 on an 8 KiB stack of its own. Exceptions and interrupts at
 *     CPL 0 use the current stack (only #DF has an IST stack, desc.c), so a #PF frame lives
 *     on the faulting task's stack;
 *   - each vCPU has its own run queue (FIFO) and runs only its own tasks; task_spawn()
 *     creates a task on the calling vCPU;
 *   - switching is cooperative: task_yield(), task_block() and the end of a task switch to
 *     the vCPU's scheduler context (the stack task_run_all() was called on), which picks the
 *     next runnable task or, when there is none, idles with STI;HLT like an OS idle loop;
 *   - a switch saves the callee-saved registers, RSP and RFLAGS: a task may block with IF=0
 *     (inside an exception handler) and every task resumes with its own IF;
 *   - task_wake() may be called from interrupt and exception handlers, and for a task of
 *     another vCPU (per-vCPU lock; the other vCPU is kicked out of HLT with an IPI when
 *     task_init() was given a kick vector).
 *
 * Linking: scenarios/CMakeLists.txt links task.c and apf.c only into the programs named
 * apf_*; every other image stays byte for byte what it was without them (their stacks
 * alone are 1.25 MiB), and so do their golden traces. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "asm_defs.h"

#define TASK_STACK_BYTES 8192u
/* Tasks alive at once on one vCPU: 64 outstanding async page faults plus a few more. */
#define TASK_MAX_PER_CPU 80u
/* Task slots (and stacks) for all vCPUs together: 1.25 MiB of stacks. */
#define TASK_POOL 160u

typedef void (*task_fn)(void* arg);

enum task_state_value {
    TASK_FREE = 0,     /* slot unused */
    TASK_RUNNABLE = 1, /* on its vCPU's run queue */
    TASK_RUNNING = 2,  /* the vCPU's current task */
    TASK_BLOCKED = 3,  /* sleeping until task_wake() */
    TASK_DONE = 4,     /* returned; the scheduler frees the slot */
    TASK_CLAIMED = 5,  /* being set up by task_spawn() */
};

struct task {
    uint64_t rsp; /* saved stack pointer while switched out (task_switch in task.c) */
    struct task* next;
    task_fn fn;
    void* arg;
    uint8_t* stack; /* TASK_STACK_BYTES */
    uint32_t id;    /* slot index, for messages */
    uint32_t cpu;
    volatile uint32_t state;
    volatile uint32_t wake_pending; /* a wake arrived while the task was not blocked */
};

/* Per vCPU, once, before any other call on it (with IF=0). `kick_vector` (32-255, or 0 for
 * none) is sent by task_wake() to wake this vCPU from HLT when a task of this vCPU is
 * woken from another vCPU; the caller must have set up the local APIC (apic_init) when it
 * is not 0, and this installs an empty handler for it. */
void task_init(uint8_t kick_vector);

/* A new runnable task on this vCPU that runs fn(arg) with IF=1. NULL when TASK_POOL slots
 * or TASK_MAX_PER_CPU tasks of this vCPU are in use. Callable from a task or the
 * scheduler context. */
struct task* task_spawn(task_fn fn, void* arg);

/* Runs this vCPU's tasks until every one has finished. Call from the vCPU's own context
 * (main or ap_main), not from a task. Idles with STI;HLT when nothing is runnable; returns
 * with the caller's IF. */
void task_run_all(void);

/* The running task of this vCPU, or NULL in the scheduler context (or outside
 * task_run_all). */
struct task* task_current(void);

/* Lets the other runnable tasks of this vCPU run first. No-op outside a task. */
void task_yield(void);

/* Sleeps until task_wake(). May return early (a wake that arrived before the call is
 * kept, not lost): callers re-check their condition in a loop. Keeps the caller's IF.
 * No-op outside a task. */
void task_block(void);

/* Makes a blocked task runnable (or remembers the wake if it is still running). From any
 * context and any vCPU. */
void task_wake(struct task* t);

/* Wakes vCPU `cpu` from HLT with its kick vector (no-op for the calling vCPU, or without a
 * kick vector). For waiters that halt instead of sleeping (apf.c). */
void task_kick_cpu(unsigned cpu);

/* Called by the scheduler on every switch to a task, with IF=0, on that task's vCPU. One
 * hook for all vCPUs (apf.c counts the switches made while a task waits for a page). */
void task_set_switch_hook(void (*hook)(struct task* next));

/* Tasks of this vCPU spawned and not finished. */
unsigned task_live(void);
/* Counters of vCPU `cpu`: switches to a task, idle HLTs. */
uint64_t task_switches(unsigned cpu);
uint64_t task_idle_halts(unsigned cpu);
