/* apf_tasks - what asynchronous page faults are for: while one task waits for a page the
 * host is fetching, the vCPU runs another (pvmsr/README.md §5, lib/apf.h, lib/task.h).
 *
 * On every vCPU (1 to 8): WORKERS worker tasks and one compute task. Each worker touches
 * PAGES_PER_WORKER pages of its own in the swapped-out window (apf_workload.h): the first
 * read must find zeros (what the page held before the host swapped it out), then it writes
 * a pattern and checks every byte it reads back. The compute task does small units of
 * work, yielding after each, until its vCPU's workers are done, and counts the units that
 * ran while at least one worker was asleep on an async page fault.
 *
 * With async PF (modern or seed era, chosen from CPUID as Linux does, SEND_ALWAYS on
 * because these tasks run at CPL 0): each first touch is a "page not present" #PF, the
 * worker sleeps, the others and the compute task run, and the page-ready wakes it; the
 * faults of one vCPU overlap in the host. Without it (CPUID without bit 4) every touch is
 * a synchronous stall in the host and the same summary reports 0 async page faults, so two
 * scenarios compare the elapsed times (kvmclock, start to end of the workload).
 *
 * Scenario (the lead writes them): machine.vcpus 1..8 (e.g. 4), ram_mib 32,
 *   "host": {"memory": {"swapped_out": [{"gpa": "0x1000000", "size": "0x100000"}],
 *                       "fault_in_ns": 200000, "io_workers": 32}}
 * (io_workers at least vcpus * WORKERS, so the faults of one round really overlap). A
 * second scenario with machine.kvm_cpuid features without ASYNC_PF/ASYNC_PF_INT gives the
 * synchronous baseline; a third with machine.kvm.abi "orig" and features without
 * ASYNC_PF_INT runs the seed-era protocol.
 * Console with 4 vCPUs and async PF (numbers of work units and ns depend on the scenario):
 *   apf: CPUID 0x40000001 eax 0x...: modern (page-ready by interrupt)
 *   PASS: async PF enabled on all 4 vCPUs, each got the wake-all of its enable
 *   PASS: 24 pages: each first read found zeros, then the pattern written read back intact
 *   PASS: all 12 workers and 4 compute tasks finished
 *   PASS: every not-present got its page-ready: 24 and 24
 *   PASS: work ran while tasks waited: N units
 *   apf: vCPU i: not-present 6, page-ready 6, wake-all 1, ...
 *   apf summary: 24 async page faults, 24 page-ready, 4 wake-all; N work units ran while tasks waited, S ns of
 *   vCPU time saved from stalls; workload took T ns
 *   SUMMARY: 5 tests
 * Without async PF the first PASS is "SKIP: async PF not offered by CPUID ..." and the
 * two async-PF-specific checks are not made: "SUMMARY: 3 tests, 1 skipped", and the
 * summary line says 0 async page faults. The shipped scenarios pin the measured numbers
 * (scenarios/default.json against scenarios/apf-sync-2.json).
 * In the trace: per first touch a kvm_page_fault, then with async PF the injected #PF
 * (CR2 = token) and later the page-ready (interrupt vector 0xf3, or a second #PF). */
#include "marker.h"
#include "apf_workload.h"
#include "prng.h"

#define WORKERS 3u
#define PAGES_PER_WORKER 2u
#define MAX_VCPUS 8u
#define UNIT_ROUNDS 32u

struct worker {
    unsigned cpu, index;
    bool ok;
    bool done;
};

struct cpu_result {
    unsigned enable_fault;
    bool wake_all_seen;
    uint32_t workers_left;
    uint64_t units, units_while_waiting, ns_while_waiting, checksum;
} __attribute__((aligned(64)));

static struct worker workers[MAX_VCPUS][WORKERS];
static struct cpu_result results[MAX_VCPUS];
static enum apf_protocol proto;
static uint64_t t_start, t_end;
static bool spawn_failed;

static void worker_fn(void* arg)
{
    struct worker* w = arg;
    bool ok = true;
    for (unsigned p = 0; p < PAGES_PER_WORKER; ++p) {
        ok = wl_touch_check_fill((w->cpu * WORKERS + w->index) * PAGES_PER_WORKER + p) && ok;
        task_yield();
    }
    w->ok = ok;
    w->done = true;
    /* Only tasks of this vCPU touch its counter, and they are never preempted. */
    --results[w->cpu].workers_left;
}

static void compute_fn(void* arg)
{
    struct cpu_result* r = arg;
    unsigned cpu = this_cpu();
    uint64_t x = 0x9e3779b97f4a7c15ull ^ cpu;
    while (r->workers_left) {
        bool waiting = apf_sleeping(cpu) != 0;
        /* A unit run while a worker sleeps is vCPU time that, without async PF, the host
         * would have spent stalled: its duration (kvmclock) is the time saved. */
        uint64_t t0 = waiting ? wl_now() : 0;
        for (unsigned i = 0; i < UNIT_ROUNDS; ++i)
            xorshift64star_next(&x);
        ++r->units;
        if (waiting) {
            ++r->units_while_waiting;
            r->ns_while_waiting += wl_now() - t0;
        }
        task_yield();
    }
    r->checksum = x;
}

static void run(unsigned cpu)
{
    struct cpu_result* r = &results[cpu];
    if (cpu != 0)
        wl_cpu_setup(); /* vCPU 0 did it before apf_setup */
    smp_barrier();
    if (proto != APF_PROTO_NONE) {
        /* One vCPU at a time: wl_enable_or_fail prints if it fails. */
        for (unsigned turn = 0; turn < smp_ncpus(); ++turn) {
            if (turn == cpu) {
                r->wake_all_seen = wl_enable_or_fail(50 * APF_EDGE_FAULT_IN_NS);
                pvsim_marker("async PF enabled");
            }
            smp_barrier();
        }
    }
    cli();
    smp_barrier();
    if (cpu == 0)
        t_start = wl_now();
    smp_barrier();
    r->workers_left = WORKERS;
    for (unsigned w = 0; w < WORKERS; ++w) {
        workers[cpu][w].cpu = cpu;
        workers[cpu][w].index = w;
        if (!task_spawn(worker_fn, &workers[cpu][w]))
            spawn_failed = true;
    }
    if (!task_spawn(compute_fn, r))
        spawn_failed = true;
    /* Markers (boot.md §4): where the tasks start and end show on the timelines. */
    pvsim_marker("tasks start");
    if (!spawn_failed)
        task_run_all();
    pvsim_marker("tasks done");
    smp_barrier();
    if (cpu == 0)
        t_end = wl_now();
    wl_watchdog_disarm();
    smp_barrier();
}

void ap_main(unsigned cpu, unsigned ncpus)
{
    (void)ncpus;
    if (cpu < MAX_VCPUS)
        run(cpu);
}

int main(unsigned cpu, unsigned ncpus, unsigned long ram_bytes)
{
    unsigned n = smp_ncpus();
    if (n > MAX_VCPUS || ram_bytes < APF_AREA_BASE + APF_AREA_SIZE) {
        printf("apf_tasks: needs 1 to %u vCPUs and at least %lu MiB of RAM, has %u and %lu MiB\n", MAX_VCPUS,
               (APF_AREA_BASE + APF_AREA_SIZE + (1ul << 20) - 1) >> 20, ncpus, ram_bytes >> 20);
        report(false, "machine size");
        report_summary();
    }
    wl_cpu_setup();
    struct apf_options opts = {.send_always = true};
    proto = apf_setup(&opts);
    printf("apf: CPUID 0x40000001 eax 0x%x: %s\n", apf_kvm_features(), apf_protocol_name(proto));
    run(cpu);

    unsigned pages = n * WORKERS * PAGES_PER_WORKER;
    bool data_ok = !spawn_failed, all_done = !spawn_failed, enabled = true;
    uint64_t np = 0, pr = 0, wa = 0, units_waiting = 0, ns_waiting = 0, spurious = 0;
    for (unsigned c = 0; c < n; ++c) {
        for (unsigned w = 0; w < WORKERS; ++w) {
            data_ok = data_ok && workers[c][w].ok;
            all_done = all_done && workers[c][w].done;
        }
        all_done = all_done && results[c].workers_left == 0;
        enabled = enabled && results[c].wake_all_seen;
        const volatile struct apf_counters* k = apf_counters(c);
        np += k->not_present;
        pr += k->page_ready;
        wa += k->wake_all;
        spurious += k->spurious;
        units_waiting += results[c].units_while_waiting;
        ns_waiting += results[c].ns_while_waiting;
    }
    if (proto != APF_PROTO_NONE)
        report(enabled, "async PF enabled on all %u vCPUs, each got the wake-all of its enable", n);
    else
        report_skip("async PF not offered by CPUID (no ASYNC_PF, bit 4): every touch stalls in the host");
    report(data_ok, "%u pages: each first read found zeros, then the pattern written read back intact", pages);
    report(all_done, "all %u workers and %u compute tasks finished", n * WORKERS, n);
    if (proto != APF_PROTO_NONE) {
        report(np == pages && pr == np && spurious == 0, "every not-present got its page-ready: %lu and %lu", np, pr);
        report(units_waiting > 0, "work ran while tasks waited: %lu units", units_waiting);
    }
    for (unsigned c = 0; c < n; ++c) {
        wl_print_counters(c);
        printf("apf: vCPU %u: %lu work units, %lu while a worker waited; %lu task switches, %lu idle halts\n", c,
               results[c].units, results[c].units_while_waiting, task_switches(c), task_idle_halts(c));
    }
    printf("apf summary: %lu async page faults, %lu page-ready, %lu wake-all; %lu work units ran while tasks "
           "waited, %lu ns of vCPU time saved from stalls; workload took %lu ns\n",
           np, pr, wa, units_waiting, ns_waiting, t_end - t_start);
    report_summary();
}
