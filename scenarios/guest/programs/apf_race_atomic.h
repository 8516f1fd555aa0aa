/* apf_race_atomic.h - the source of apf_race_atomic.c (the old guest) and
 * apf_race_atomic_fixed.c (the fixed guest, APF_RACE_ATOMIC_FIXED defined): an async page
 * fault taken while the guest holds a spinlock (scenarios race-16-atomic-bug.json and
 * race-16-atomic-fix.json).
 *
 * The guest is a seed-era style kernel that enables async PF with SEND_ALWAYS (MSR
 * 0x4b564d02 bit 1), so a "page not present" may arrive at CPL 0, in the middle of kernel
 * code (pvmsr/README.md §5.1, §5.3). Its spinlock is a non-preemptible section with
 * interrupts on (spin_lock, not spin_lock_irqsave), so KVM may deliver the not-present
 * inside it. What the guest does with it:
 *   - old guest (Linux up to 4.14 without preempt counting): the #PF handler always puts
 *     the faulting task to sleep and schedules another one, even when the faulting code
 *     holds a spinlock. The next task that wants the lock spins on it, and on one vCPU the
 *     holder can never run again to release it: a deadlock ("BUG: scheduling while
 *     atomic" on a kernel that counts);
 *   - fixed guest (commit a2b7861bb33b, Linux 4.15): when the fault interrupted code that
 *     may not be preempted, the handler halts the vCPU until the page is ready instead of
 *     scheduling (the seed era's halted wait), and the lock holder continues.
 *
 * One vCPU, two tasks. Task A: touches page 0 of the swapped-out window (an ordinary async
 * PF: A sleeps, nothing else runs yet, the page-ready wakes it), spawns task B, reads
 * RACE_RESIDENT_PAGE (resident: no fault), then takes the lock, fills that page with its
 * pattern (64 stores) and bumps a shared counter, and drops the lock. Task B takes the
 * lock, bumps the counter, drops it. Unsteered, nothing faults inside the lock and A
 * finishes before B runs. An `evict gpa=0x1100000` placed by pvsim explore makes A's next
 * access to the page a not-present: before A's read it arrives outside the lock (A sleeps,
 * B takes the free lock: fine in both guests); after it, inside the lock.
 *
 * Expected console (both guests, every passing run):
 *   apf: CPUID 0x40000001 eax 0x...: modern (page-ready by interrupt)
 *   PASS: the enable's wake-all arrived
 *   PASS: task A's first touch of the swapped-out window slept on an async PF
 *   PASS: task B found the lock free: no task was scheduled away while holding it
 *   PASS: the critical sections ran one after the other: counter 2, A's pattern intact
 *   PASS: not-present faults inside the lock: N, each waited for by halting, none scheduled
 *   apf: vCPU 0: not-present ..., ...
 *   SUMMARY: 5 tests
 * The old guest, with a not-present inside the lock:
 *   apf: task A took an async PF inside its critical section (token 0x..., lock held) and was put to sleep
 *   FAIL: task B spun 5000 times on the lock task A holds while A sleeps on an async PF taken inside its critical section: the guest scheduled while atomic, and on one vCPU nobody can release the lock (deadlock)
 *   SUMMARY: ... 1 unexpected failures
 * In the trace: kvm_async_pf_not_present and the injected #PF (error code 0) while A is
 * between the lock's XCHG and its release. */
#include "apf_race.h"

#define B_SPIN_LIMIT 5000u
#define A_STORES 64u

static spinlock_t a_lock;
/* The preemption count a PREEMPT_COUNT kernel keeps: spin_lock raises it, spin_unlock
 * lowers it; not zero means "this code may not be preempted" (one vCPU, so one count). */
static volatile unsigned preempt_count;
static volatile unsigned shared_counter;
static volatile bool a_scheduled_in_lock;
static unsigned atomic_faults, atomic_faults_halted;
static uint32_t atomic_token;
static bool a_first_slept, a_pattern_ok, b_found_free = true;

static void lock(void)
{
    ++preempt_count;
    __asm__ volatile("" ::: "memory");
    spin_lock(&a_lock);
}

static void unlock(void)
{
    spin_unlock(&a_lock);
    __asm__ volatile("" ::: "memory");
    --preempt_count;
}

/* apf_options.before_wait: in the #PF handler (IF=0) after a "not present" was read, before
 * the runtime registers the wait. */
static void before_wait(uint32_t token)
{
    if (preempt_count == 0)
        return;
    ++atomic_faults;
    atomic_token = token;
#ifdef APF_RACE_ATOMIC_FIXED
    /* The fix: the interrupted code may not be preempted, so do not schedule; halt until the
     * page-ready for this token has come. The runtime has no per-fault choice between
     * sleeping and halting, so the halt happens here, before the wait is registered: the
     * page-ready finds no waiter and leaves a dummy, which the wait then consumes without
     * sleeping (apf.h, "Waiting"). Guest-visible, that is the halted wait of a2b7861bb33b. */
    const volatile struct apf_counters* c = apf_counters(0);
    uint64_t dummies = c->dummies_created;
    while (c->dummies_created == dummies) {
        safe_halt();
        cli();
    }
    ++atomic_faults_halted;
#else
    /* The old guest: nothing here knows about the lock; the runtime puts A to sleep and
     * runs the next task. */
    a_scheduled_in_lock = true;
    printf("apf: task A took an async PF inside its critical section (token 0x%x, lock held) and was put to "
           "sleep\n",
           token);
#endif
}

static void task_b(void* arg)
{
    (void)arg;
    unsigned spins = 0;
    while (!spin_trylock(&a_lock)) {
        /* With one vCPU and a cooperative scheduler the holder cannot run while we spin:
         * give up after a while and say why, rather than hang. */
        if (++spins == B_SPIN_LIMIT) {
            b_found_free = false;
            report(false,
                   "task B spun %u times on the lock task A holds while A sleeps on an async PF taken inside its "
                   "critical section: the guest scheduled while atomic, and on one vCPU nobody can release the "
                   "lock (deadlock)",
                   spins);
            report_summary();
        }
        pause();
    }
    ++preempt_count;
    ++shared_counter;
    spin_unlock(&a_lock);
    --preempt_count;
}

static void task_a(void* arg)
{
    (void)arg;
    uint64_t slept = apf_counters(0)->slept;
    uint64_t v = wl_first_touch(0);
    a_first_slept = v == 0 && apf_counters(0)->slept == slept + 1;

    task_spawn(task_b, NULL);
    volatile uint64_t* page = (volatile uint64_t*)race_resident_page();
    uint64_t before = page[0];

    lock();
    for (unsigned i = 0; i < A_STORES; ++i)
        page[i] = before + 0x0101010101010101ull * (i + 1);
    ++shared_counter;
    unlock();

    bool ok = true;
    for (unsigned i = 0; i < A_STORES; ++i)
        ok = ok && page[i] == before + 0x0101010101010101ull * (i + 1);
    a_pattern_ok = ok;
}

int main(unsigned cpu, unsigned ncpus, unsigned long ram_bytes)
{
    (void)cpu;
    (void)ncpus;
    (void)ram_bytes;
    static const struct apf_options opts = {.send_always = true, .before_wait = before_wait};
    race_watchdog_set(3000000ul, "tasks A and B finished within 3 ms of virtual time", NULL);
    (void)wl_edge_start(&opts);
    race_watchdog_install();
    cli();
    task_spawn(task_a, NULL);
    task_run_all();
    wl_watchdog_disarm();

    report(a_first_slept, "task A's first touch of the swapped-out window slept on an async PF");
    report(b_found_free && !a_scheduled_in_lock,
           "task B found the lock free: no task was scheduled away while holding it");
    report(shared_counter == 2 && a_pattern_ok,
           "the critical sections ran one after the other: counter %u, A's pattern %s", shared_counter,
           a_pattern_ok ? "intact" : "damaged");
    report(atomic_faults == atomic_faults_halted,
           "not-present faults inside the lock: %u, each waited for by halting, none scheduled", atomic_faults);
    wl_print_counters(0);
    report_summary();
}
