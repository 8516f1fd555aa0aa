/* lapic_timer - the local APIC timer in its three modes (Intel SDM Vol.3A 11.5.4), checked
 * against the virtual TSC.
 *
 * The timer counts down at the APIC bus clock divided by the divide configuration, so an
 * initial count C with divisor D expires C * D bus cycles after the write, i.e.
 *     C * D * TSC_HZ / BUS_HZ  TSC cycles.
 * The scenario fixes TSC_HZ (machine.tsc_khz) and BUS_HZ (machine.apic_bus_mhz) to the
 * values below; the guest cannot discover the bus clock (no CPUID leaf 0x15 here), just
 * as Linux has to calibrate it.
 *
 * The guest reads RDTSC right before the write that starts the countdown (initial count, or
 * IA32_TSC_DEADLINE which holds the target TSC itself), and each interrupt handler records
 * RDTSC. The vCPU waits with STI;HLT, so it is halted when the timer fires and wakes exactly
 * at the expiry. A reading may be late by the cost of what lies between the event and the
 * RDTSC in the handler, and between our RDTSC and the register write: the xAPIC MMIO write
 * is a VM exit (about 1200 cycles in pvsim's cost model), interrupt delivery and the
 * handler's prologue a few hundred. SLACK_CYCLES bounds all of that; a reading must never be
 * early (beyond EARLY_CYCLES of ns<->cycle rounding). The measured lateness is printed. */
#include "apic.h"
#include "irq.h"
#include "libc.h"
#include "report.h"

#define TSC_HZ 2500000000ull /* machine.tsc_khz = 2500000 */
#define BUS_HZ 1000000000ull /* machine.apic_bus_mhz = 1000 */
#define SLACK_CYCLES 4000
#define EARLY_CYCLES 2

#define TIMER_VECTOR 0xec
#define SPURIOUS_VECTOR 0xff
#define PERIODS 5

static volatile unsigned fired;
static volatile uint64_t fire_tsc[PERIODS + 2];
static volatile unsigned stop_after;

static void timer_handler(unsigned vector, struct ex_frame* f)
{
    (void)vector;
    (void)f;
    uint64_t t = rdtsc();
    unsigned n = fired;
    if (n < PERIODS + 2)
        fire_tsc[n] = t;
    fired = n + 1;
    /* Periodic mode: stop from inside the handler after the last period we want. */
    if (stop_after && n + 1 == stop_after)
        apic_timer_stop();
}

static uint64_t bus_to_tsc(uint64_t bus_cycles) { return bus_cycles * TSC_HZ / BUS_HZ; }

/* Halts until `count` interrupts have been taken, or gives up after `max_halts` wake-ups. */
static void wait_fired(unsigned count, unsigned max_halts)
{
    for (unsigned i = 0; i < max_halts && fired < count; ++i) {
        safe_halt();
        cli();
    }
}

/* Spins with IF=0 for `cycles` TSC cycles. */
static void spin_cycles(uint64_t cycles)
{
    uint64_t start = rdtsc();
    while (rdtsc() - start < cycles)
        pause();
}

/* The same with IF=1, so that an interrupt that should not come would be taken. */
static void spin_cycles_irq(uint64_t cycles)
{
    sti();
    spin_cycles(cycles);
    cli();
}

static int64_t abs64(int64_t v) { return v < 0 ? -v : v; }

static bool within(int64_t late) { return late >= -EARLY_CYCLES && late <= SLACK_CYCLES; }

static void test_oneshot(void)
{
    report_prefix_push("one-shot");
    const unsigned divisor = 16;
    const uint32_t count = 10000; /* 160000 bus cycles = 160 us at 1 GHz */
    uint64_t expect = bus_to_tsc((uint64_t)count * divisor);
    fired = 0;
    stop_after = 0;
    apic_timer_setup(APIC_LVT_TIMER_ONESHOT, TIMER_VECTOR, divisor);
    uint64_t t0 = rdtsc();
    apic_timer_start(count);
    /* While counting, the current count must be below the initial count and decreasing
     * (it is derived from the time of the read, SDM 11.5.4). */
    uint32_t c1 = apic_timer_current();
    spin_cycles(20000);
    uint32_t c2 = apic_timer_current();
    report(c1 <= count && c2 < c1 && c2 > 0, "current count decreases while counting: %u then %u (initial %u)", c1, c2,
           count);
    wait_fired(1, 100);
    int64_t late = (int64_t)(fire_tsc[0] - t0 - expect);
    printf("one-shot: divisor %u count %u: expected %lu TSC cycles, measured %lu (late by %ld)\n", divisor, count,
           expect, fire_tsc[0] - t0, late);
    report(fired == 1 && within(late), "fired once, %lu cycles after the write (+%ld, slack %d)", expect, late,
           SLACK_CYCLES);
    report(apic_timer_current() == 0, "current count is 0 after expiry");
    /* One-shot means one: nothing more during twice the interval. */
    spin_cycles_irq(2 * expect);
    report(fired == 1, "no second interrupt (%u taken)", fired);
    apic_timer_stop();
    report_prefix_pop();
}

static void test_periodic(void)
{
    report_prefix_push("periodic");
    const unsigned divisor = 1;
    const uint32_t count = 50000; /* 50 us per period */
    uint64_t period = bus_to_tsc((uint64_t)count * divisor);
    fired = 0;
    stop_after = PERIODS;
    apic_timer_setup(APIC_LVT_TIMER_PERIODIC, TIMER_VECTOR, divisor);
    uint64_t t0 = rdtsc();
    apic_timer_start(count);
    wait_fired(PERIODS, 100);
    report(fired == PERIODS, "%u periods taken", fired);
    /* The first expiry is one period after the write; each next one is one period after
     * the previous expiry (not after the handler ran), so the spacing does not drift. */
    int64_t late = (int64_t)(fire_tsc[0] - t0 - period);
    printf("periodic: divisor %u count %u: period %lu TSC cycles; first after %lu (late by %ld)\n", divisor, count,
           period, fire_tsc[0] - t0, late);
    bool spacing_ok = true;
    for (unsigned i = 1; i < PERIODS && i < fired; ++i) {
        uint64_t d = fire_tsc[i] - fire_tsc[i - 1];
        printf("periodic: period %u: %lu TSC cycles (%+ld)\n", i, d, (int64_t)(d - period));
        if (abs64((int64_t)(d - period)) > SLACK_CYCLES / 2)
            spacing_ok = false;
    }
    report(within(late), "first expiry one period after the write (+%ld)", late);
    report(spacing_ok, "consecutive expiries one period apart (within %d cycles)", SLACK_CYCLES / 2);
    uint64_t total = fire_tsc[PERIODS - 1] - fire_tsc[0];
    report(total + SLACK_CYCLES >= (PERIODS - 1) * period && total <= (PERIODS - 1) * period + SLACK_CYCLES,
           "%u periods span %lu cycles (expected %lu): no drift", PERIODS - 1, total, (PERIODS - 1) * period);
    /* The handler stopped the timer after the last period. */
    spin_cycles_irq(3 * period);
    report(fired == PERIODS, "stopped after %u periods (%u taken)", PERIODS, fired);
    report_prefix_pop();
}

static void test_tsc_deadline(void)
{
    report_prefix_push("tsc-deadline");
    if (!cpu_has_tsc_deadline()) {
        report_skip("CPUID.1:ECX[24] (TSC-deadline) not offered");
        report_prefix_pop();
        return;
    }
    const uint64_t delta = 300000; /* 120 us at 2.5 GHz */
    fired = 0;
    stop_after = 0;
    uint64_t deadline = rdtsc() + delta;
    apic_timer_tsc_deadline(TIMER_VECTOR, deadline);
    report(rdmsr(MSR_IA32_TSC_DEADLINE) == deadline, "IA32_TSC_DEADLINE reads back the armed deadline");
    wait_fired(1, 100);
    int64_t late = (int64_t)(fire_tsc[0] - deadline);
    printf("tsc-deadline: deadline %lu, handler at %lu (late by %ld)\n", deadline, fire_tsc[0], late);
    report(fired == 1 && late >= 0 && late <= SLACK_CYCLES, "fired at the deadline (+%ld, slack %d)", late,
           SLACK_CYCLES);
    /* The MSR is cleared when the timer fires (SDM 11.5.4.1). */
    report(rdmsr(MSR_IA32_TSC_DEADLINE) == 0, "IA32_TSC_DEADLINE reads 0 after it fired");
    /* A deadline already in the past fires at once. */
    fired = 0;
    uint64_t past = rdtsc() - 1000;
    apic_timer_tsc_deadline(TIMER_VECTOR, past);
    wait_fired(1, 10);
    report(fired == 1, "a deadline in the past fires immediately");
    /* Writing 0 disarms. */
    fired = 0;
    apic_timer_tsc_deadline(TIMER_VECTOR, rdtsc() + delta);
    wrmsr(MSR_IA32_TSC_DEADLINE, 0);
    spin_cycles_irq(2 * delta);
    report(fired == 0, "writing 0 to IA32_TSC_DEADLINE disarms the timer");
    apic_timer_stop();
    report_prefix_pop();
}

int main(unsigned cpu, unsigned ncpus, unsigned long ram_bytes)
{
    (void)cpu;
    (void)ncpus;
    (void)ram_bytes;
    apic_init(APIC_MODE_XAPIC, SPURIOUS_VECTOR);
    irq_set_handler_eoi(TIMER_VECTOR, timer_handler);
    report(apic_read(APIC_SVR) & APIC_SVR_ENABLE, "APIC software-enabled (SVR 0x%x)", apic_read(APIC_SVR));
    test_oneshot();
    test_periodic();
    test_tsc_deadline();
    report_summary();
}
