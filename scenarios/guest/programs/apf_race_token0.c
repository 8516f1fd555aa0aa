/* apf_race_token0 - the async PF token 0 (scenarios race-11-token0-bug.json and
 * race-11-token0-fix.json; machine.kvm.bugs.apf_token_zero, pvmsr/README.md §2.5 and §5.3).
 *
 * Modern protocol: KVM writes a page-ready's token to offset 4 of the shared area and sends
 * the interrupt; the guest reads it, wakes the waiter, writes 0 back and ACKs. KVM takes a
 * slot that reads 0 as free and may then write the next token. Tokens are (id << 12) |
 * vcpu, and before commit 6f3c1fc53d86 (5.17) the counter started at 0, so vCPU 0's first
 * async PF had token 0: while its page-ready sat in the slot, the slot still read "free",
 * and the next completion overwrote it. Both interrupts are the same vector, edge-triggered:
 * if the first is still pending in the IRR, the second merges with it, the guest takes one
 * interrupt, reads the second token, and the first waiter sleeps forever.
 *
 * One vCPU, three tasks. T1 touches page 0 of the swapped-out window (vCPU 0's first async
 * PF: token 0 under the bug, 0x1000 under the fix), T2 page 1 (the scenario gives page 1 a
 * slower disk), both sleep. Task C computes in stretches with interrupts disabled (as kernel
 * code under local_irq_save does), so T1's page-ready, injected while C is inside one,
 * waits in the IRR until C's STI. C stops once a page-ready has been handled. As the
 * scenario runs, page 1 completes long after; a `complete gpa=0x1001000` placed by pvsim
 * explore inside the stretch where T1's page-ready waits in the IRR makes the two meet.
 *
 * Expected console (every passing run):
 *   apf: CPUID 0x40000001 eax 0x...: modern (page-ready by interrupt)
 *   PASS: the enable's wake-all arrived
 *   PASS: T1 and T2 each slept on an async PF and were woken by their page-ready
 *   PASS: both pages read zeros, then their patterns
 *   PASS: task C ran while they slept, with interrupts off most of the time
 *   PASS: the token slot is free again (0) and nothing was spurious
 *   apf: vCPU 0: not-present 2, page-ready 2, wake-all 1, ...
 *   SUMMARY: 5 tests
 * When the two page-readies meet (bug), the watchdog:
 *   apf: T1 waits on token 0x0, T2 on token 0x1000; page-ready interrupts handled: 1; T1 asleep, T2 woke
 *   FAIL: task T1 never woke: its page-ready carried token 0, which KVM reads as a free slot, and the next page-ready overwrote it before the guest read it
 * In the trace: kvm_async_pf_ready for token 0 and for token 0x1000 with no kvm_inj_virq
 * between them. Or, when page 1 completes after the guest's handler has read token 0 and
 * before it writes 0 back, T2 is the one lost:
 *   FAIL: task T2 never woke: KVM wrote its page-ready into the slot while the guest was still handling token 0 ... */
#include "apf_race.h"

#define C_STRETCH 128u

static volatile bool t1_done, t2_done, t1_ok, t2_ok;
static volatile uint32_t t1_token = ~0u, t2_token = ~0u;
static volatile uint64_t c_units;
static struct task* t1_task;

static void before_wait(uint32_t token)
{
    if (task_current() == t1_task)
        t1_token = token;
    else
        t2_token = token;
}

static void stuck_detail(void)
{
    printf("apf: T1 waits on token 0x%x, T2 on token 0x%x; page-ready interrupts handled: %lu; T1 %s, T2 %s\n",
           t1_token, t2_token, apf_counters(0)->page_ready, t1_done ? "woke" : "asleep", t2_done ? "woke" : "asleep");
    if (t1_done && !t2_done)
        race_stuck_what = "task T2 never woke: KVM wrote its page-ready into the slot while the guest was still "
                          "handling token 0 (a slot that reads 0 looks free), and the guest's clearing of the slot "
                          "erased it";
}

static void task_t1(void* arg)
{
    (void)arg;
    t1_ok = wl_touch_check_fill(0);
    t1_done = true;
}

static void task_t2(void* arg)
{
    (void)arg;
    t2_ok = wl_touch_check_fill(1);
    t2_done = true;
}

/* Work in stretches with IF=0, a short IF=1 gap after each (the instruction after STI is
 * still in its shadow, SDM Vol.3A 6.8.3, so the NOP is where a pending interrupt lands). */
static void task_c(void* arg)
{
    (void)arg;
    const volatile struct apf_counters* c = apf_counters(0);
    volatile uint64_t acc = 1;
    while (c->page_ready == 0) {
        cli();
        for (unsigned i = 0; i < C_STRETCH; ++i)
            acc = acc * 6364136223846793005ull + i;
        sti();
        __asm__ volatile("nop");
        ++c_units;
    }
}

int main(unsigned cpu, unsigned ncpus, unsigned long ram_bytes)
{
    (void)cpu;
    (void)ncpus;
    (void)ram_bytes;
    static const struct apf_options opts = {.send_always = true, .before_wait = before_wait};
    race_watchdog_set(4000000ul,
                      "task T1 never woke: its page-ready carried token 0, which KVM reads as a free slot, and the "
                      "next page-ready overwrote it before the guest read it",
                      stuck_detail);
    (void)wl_edge_start(&opts);
    race_watchdog_install();
    if (apf_protocol() != APF_PROTO_MODERN) {
        report_skip("needs the modern protocol (page-ready by interrupt)");
        report_summary();
    }
    cli();
    t1_task = task_spawn(task_t1, NULL);
    task_spawn(task_t2, NULL);
    task_spawn(task_c, NULL);
    task_run_all();
    wl_watchdog_disarm();

    const volatile struct apf_counters* c = apf_counters(0);
    report(t1_done && t2_done && c->slept == 2 && c->page_ready == 2,
           "T1 and T2 each slept on an async PF and were woken by their page-ready");
    report(t1_ok && t2_ok, "both pages read zeros, then their patterns");
    report(c_units > 0, "task C ran while they slept, with interrupts off most of the time");
    report(apf_area(0)->token == 0 && c->spurious == 0, "the token slot is free again (0) and nothing was spurious");
    wl_print_counters(0);
    report_summary();
}
