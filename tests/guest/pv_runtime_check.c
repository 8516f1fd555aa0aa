/* Host-native checks of the guest's paravirtual runtime (scenarios/guest/lib), the very
 * headers the pv_* programs compile:
 *   - pv_ipi_pack.h: how APIC IDs are packed into 128-bit SEND_IPI windows from `min`,
 *     against hand-worked cases (a window moved down, a window closed, IDs 127 apart and
 *     128 apart) and, for pseudo-random sets, against the properties every packing must
 *     have (each of a set of distinct IDs sent exactly once, every bit inside its window);
 *   - pvclock_check.h: a snapshot evaluated before and after its tsc_timestamp, and the
 *     torn-read detector against the two ways an update can tear;
 *   - pv_tlb.h: the FLUSH_TLB decision on a `preempted` byte in each state it can find;
 *   - pv_eoi.h: the one-instruction test-and-clear of the PV EOI bit.
 * One line per failed expectation; exit 1 if any failed. */
#include <stdio.h>
#include <string.h>

#include "prng.h"
#include "pv_eoi.h"
#include "pv_ipi_pack.h"
#include "pv_tlb.h"
#include "pvclock_check.h"

static int failures;

#define EXPECT(cond, ...)                                                                                    \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            printf("FAIL: %s:%d: ", __FILE__, __LINE__);                                                     \
            printf(__VA_ARGS__);                                                                             \
            printf("\n");                                                                                    \
            ++failures;                                                                                      \
        }                                                                                                    \
    } while (0)

/* ---- SEND_IPI packing ---------------------------------------------------------------- */

struct sent {
    uint64_t lo[64], hi[64];
    uint32_t min[64], icr[64];
    unsigned n;
    long answer; /* what each fake hypercall returns; < 0 = error */
};

static long fake_send(void* ctx, uint64_t lo, uint64_t hi, uint32_t min, uint32_t icr)
{
    struct sent* s = ctx;
    if (s->n < 64) {
        s->lo[s->n] = lo;
        s->hi[s->n] = hi;
        s->min[s->n] = min;
        s->icr[s->n] = icr;
    }
    ++s->n;
    if (s->answer < 0)
        return s->answer;
    return (long)(__builtin_popcountll(lo) + __builtin_popcountll(hi));
}

static struct pv_ipi_result pack(const uint32_t* ids, unsigned n, struct sent* s)
{
    memset(s, 0, sizeof *s);
    return pv_ipi_send_ids(ids, n, 0x45, fake_send, s);
}

static void check_ipi_cases(void)
{
    struct sent s;
    /* One window from the first ID: {1,3,4,6,7} -> bits 0,2,3,5,6 from min 1 (0x6d). */
    const uint32_t a[] = {1, 3, 4, 6, 7};
    struct pv_ipi_result r = pack(a, 5, &s);
    EXPECT(s.n == 1 && s.min[0] == 1 && s.lo[0] == 0x6d && s.hi[0] == 0 && s.icr[0] == 0x45,
           "{1,3,4,6,7}: %u calls, min %u lo 0x%lx", s.n, s.min[0], (unsigned long)s.lo[0]);
    EXPECT(r.hypercalls == 1 && r.requested == 5 && r.accepted == 5 && r.first_error == 0,
           "{1,3,4,6,7}: result %u/%u/%ld", r.hypercalls, r.requested, r.accepted);

    /* Bits 64-127 go to a1: {0, 64, 127} is one window. */
    const uint32_t b[] = {0, 64, 127};
    pack(b, 3, &s);
    EXPECT(s.n == 1 && s.lo[0] == 1 && s.hi[0] == ((1ull << 0) | (1ull << 63)), "{0,64,127}: lo 0x%lx hi 0x%lx",
           (unsigned long)s.lo[0], (unsigned long)s.hi[0]);

    /* 128 apart does not fit: two windows. */
    const uint32_t c[] = {0, 128};
    pack(c, 2, &s);
    EXPECT(s.n == 2 && s.min[0] == 0 && s.lo[0] == 1 && s.min[1] == 128 && s.lo[1] == 1,
           "{0,128}: %u calls, mins %u %u", s.n, s.min[0], s.min[1]);

    /* An ID below `min` moves the window down if the largest still fits: {100, 40} ->
     * one window from 40, bits 0 and 60. */
    const uint32_t d[] = {100, 40};
    pack(d, 2, &s);
    EXPECT(s.n == 1 && s.min[0] == 40 && s.lo[0] == ((1ull << 0) | (1ull << 60)) && s.hi[0] == 0,
           "{100,40}: %u calls, min %u lo 0x%lx", s.n, s.min[0], (unsigned long)s.lo[0]);
    /* ... across the 64-bit boundary: {130, 10} -> from 10, bits 0 and 120 (a1 bit 56). */
    const uint32_t e[] = {130, 10};
    pack(e, 2, &s);
    EXPECT(s.n == 1 && s.min[0] == 10 && s.lo[0] == 1 && s.hi[0] == (1ull << 56), "{130,10}: min %u lo 0x%lx hi 0x%lx",
           s.min[0], (unsigned long)s.lo[0], (unsigned long)s.hi[0]);
    /* ... but not when the largest would fall out: {200, 70, 150}: 200 - 70 = 130, so 70
     * closes the first window and opens [70, 198), which takes 150 (bit 80 = a1 bit 16). */
    const uint32_t f[] = {200, 70, 150};
    pack(f, 3, &s);
    EXPECT(s.n == 2 && s.min[0] == 200 && s.lo[0] == 1 && s.min[1] == 70 && s.lo[1] == 1 && s.hi[1] == (1ull << 16),
           "{200,70,150}: %u calls, mins %u %u, second lo 0x%lx hi 0x%lx", s.n, s.min[0], s.min[1],
           (unsigned long)s.lo[1], (unsigned long)s.hi[1]);
    /* A shift by 64 exactly: {64, 0} -> from 0, bits 0 and 64. */
    const uint32_t g[] = {64, 0};
    pack(g, 2, &s);
    EXPECT(s.n == 1 && s.min[0] == 0 && s.lo[0] == 1 && s.hi[0] == 1, "{64,0}: min %u lo 0x%lx hi 0x%lx", s.min[0],
           (unsigned long)s.lo[0], (unsigned long)s.hi[0]);
    /* A window that was moved down still closes at its new min + 128: {50, 10, 137, 138}:
     * window [10, 138) takes 137, 138 opens a new one. */
    const uint32_t h[] = {50, 10, 137, 138};
    pack(h, 4, &s);
    EXPECT(s.n == 2 && s.min[0] == 10 && s.hi[0] == (1ull << (127 - 64)) && s.min[1] == 138,
           "{50,10,137,138}: %u calls, mins %u %u, first hi 0x%lx", s.n, s.min[0], s.min[1], (unsigned long)s.hi[0]);
    /* A repeated ID inside one window is one bit (a CPU mask never repeats one). */
    const uint32_t k[] = {5, 5, 5};
    r = pack(k, 3, &s);
    EXPECT(s.n == 1 && s.lo[0] == 1 && r.requested == 1, "{5,5,5}: lo 0x%lx requested %u", (unsigned long)s.lo[0],
           r.requested);
    /* Nothing to send: no hypercall. */
    r = pack(a, 0, &s);
    EXPECT(s.n == 0 && r.hypercalls == 0 && r.accepted == 0, "empty set: %u calls", s.n);
    /* Errors: every window still goes out, the first error is kept, nothing counts. */
    memset(&s, 0, sizeof s);
    s.answer = -22;
    r = pv_ipi_send_ids(c, 2, 0x45, fake_send, &s);
    EXPECT(s.n == 2 && r.first_error == -22 && r.accepted == 0 && r.hypercalls == 2,
           "errors: %u calls, first_error %ld, accepted %ld", s.n, r.first_error, r.accepted);
}

/* Pseudo-random sets of APIC IDs in 0..599, in random order: every ID lands in exactly one
 * window, every bit names an ID of the set, and each window spans less than 128 IDs. */
static void check_ipi_random(void)
{
    uint64_t seed = 0x5eed1234abcdull;
    for (unsigned round = 0; round < 2000; ++round) {
        /* Distinct IDs, as a CPU mask gives them (each vCPU has its own APIC ID): a random
         * subset of 0..span-1 in random order (a partial Fisher-Yates shuffle). */
        uint32_t pool[600], ids[40];
        uint32_t span = 40 + (uint32_t)(splitmix64_next(&seed) % 561);
        unsigned n = (unsigned)(splitmix64_next(&seed) % 41);
        for (uint32_t i = 0; i < span; ++i)
            pool[i] = i;
        for (unsigned i = 0; i < n; ++i) {
            uint32_t j = i + (uint32_t)(splitmix64_next(&seed) % (span - i));
            uint32_t t = pool[i];
            pool[i] = pool[j];
            pool[j] = t;
            ids[i] = pool[i];
        }
        struct sent s;
        struct pv_ipi_result r = pack(ids, n, &s);
        if (s.n > 64) {
            EXPECT(false, "round %u: %u windows", round, s.n);
            continue;
        }
        unsigned covered[600] = {0};
        for (unsigned w = 0; w < s.n; ++w)
            for (unsigned bit = 0; bit < 128; ++bit) {
                uint64_t word = bit < 64 ? s.lo[w] : s.hi[w];
                if ((word >> (bit & 63)) & 1) {
                    uint32_t id = s.min[w] + bit;
                    EXPECT(id < 600, "round %u: window %u names ID %u", round, w, id);
                    if (id < 600)
                        ++covered[id];
                }
            }
        bool in_set[600] = {false};
        for (unsigned i = 0; i < n; ++i)
            in_set[ids[i]] = true;
        unsigned distinct = 0;
        for (unsigned id = 0; id < 600; ++id) {
            distinct += in_set[id];
            EXPECT(covered[id] == (in_set[id] ? 1u : 0u), "round %u: ID %u sent %u times (in set: %d)", round, id,
                   covered[id], in_set[id]);
        }
        EXPECT(r.requested == distinct && r.accepted == (long)distinct, "round %u: requested %u of %u distinct",
               round, r.requested, distinct);
    }
}

/* ---- pvclock snapshots ----------------------------------------------------------------- */

/* A 2.5 GHz TSC as KVM describes it (the scale of pvmsr/README.md §4.3): mul 0xcccccccc,
 * shift -1, i.e. ns = (tsc >> 1) * 0.8. */
static struct pvclock_snapshot line_at(uint64_t tsc)
{
    struct pvclock_snapshot s = {2, tsc, 0, 0xccccccccu, -1, 0};
    s.system_time = pvclock_scale_delta(tsc, s.mul, s.shift);
    return s;
}

static void check_pvclock(void)
{
    struct pvclock_snapshot ref = line_at(0);
    struct pvclock_snapshot a = line_at(250000);  /* 100 us */
    struct pvclock_snapshot b = line_at(300000);  /* 120 us */
    EXPECT(pvclock_snapshot_at(&ref, 250000) == 99999 || pvclock_snapshot_at(&ref, 250000) == 100000,
           "reference at 100 us: %ld", (long)pvclock_snapshot_at(&ref, 250000));
    /* Before its tsc_timestamp a snapshot counts back instead of wrapping. */
    EXPECT(pvclock_snapshot_at(&b, 250000) >= 99998 && pvclock_snapshot_at(&b, 250000) <= 100001,
           "120 us snapshot at 100 us: %ld", (long)pvclock_snapshot_at(&b, 250000));
    /* Consistent snapshots are never torn, whatever the TSC. */
    for (uint64_t tsc = 0; tsc < 1000000; tsc += 12345) {
        EXPECT(!pvclock_snapshot_torn(&a, &ref, tsc, 1000), "snapshot a torn at tsc %lu", (unsigned long)tsc);
        EXPECT(!pvclock_snapshot_torn(&b, &a, tsc, 1000), "snapshot b torn at tsc %lu", (unsigned long)tsc);
    }
    /* New tsc_timestamp with the old system_time: 20 us behind. */
    struct pvclock_snapshot torn1 = b;
    torn1.system_time = a.system_time;
    int64_t d1 = pvclock_snapshot_offset(&torn1, &ref, 310000);
    EXPECT(d1 <= -19990 && d1 >= -20010 && pvclock_snapshot_torn(&torn1, &ref, 310000, 1000),
           "new tsc_timestamp, old system_time: offset %ld", (long)d1);
    /* Old tsc_timestamp with the new system_time: 20 us ahead. */
    struct pvclock_snapshot torn2 = a;
    torn2.system_time = b.system_time;
    int64_t d2 = pvclock_snapshot_offset(&torn2, &ref, 310000);
    EXPECT(d2 >= 19990 && d2 <= 20010 && pvclock_snapshot_torn(&torn2, &ref, 310000, 1000),
           "old tsc_timestamp, new system_time: offset %ld", (long)d2);
}

/* ---- FLUSH_TLB decision ------------------------------------------------------------------ */

static void check_defer_alone(void)
{
    volatile uint8_t p = 0;
    EXPECT(!pv_tlb_try_defer(&p) && p == 0, "running vCPU: no deferral, byte %u", p);
    p = KVM_VCPU_PREEMPTED;
    EXPECT(pv_tlb_try_defer(&p) && p == (KVM_VCPU_PREEMPTED | KVM_VCPU_FLUSH_TLB), "preempted: deferred, byte %u",
           p);
    EXPECT(pv_tlb_try_defer(&p) && p == (KVM_VCPU_PREEMPTED | KVM_VCPU_FLUSH_TLB), "already flagged: byte %u", p);
    p = KVM_VCPU_FLUSH_TLB;
    EXPECT(!pv_tlb_try_defer(&p) && p == KVM_VCPU_FLUSH_TLB, "flag left by an old round, not preempted: byte %u", p);
}

/* ---- PV EOI bit ---------------------------------------------------------------------------- */

static void check_eoi_bit(void)
{
    volatile uint32_t w = 1;
    EXPECT(pv_eoi_test_and_clear(&w) && w == 0, "armed: found set, now %u", w);
    EXPECT(!pv_eoi_test_and_clear(&w) && w == 0, "not armed: found clear, still %u", w);
    w = 0xf0000003u;
    EXPECT(pv_eoi_test_and_clear(&w) && w == 0xf0000002u, "only bit 0 is touched: 0x%x", w);
}

int main(void)
{
    check_ipi_cases();
    check_ipi_random();
    check_pvclock();
    check_defer_alone();
    check_eoi_bit();
    if (failures) {
        printf("%d failure(s)\n", failures);
        return 1;
    }
    printf("pv runtime: all checks passed\n");
    return 0;
}
