/* Host-native check of the guest's async-PF sleeper table (scenarios/guest/lib/apf_sleepers.h),
 * the very header lib/apf.c compiles: hash_32 against hand-computed values, the two orders
 * of wait and wake (the dummy path), wake-all of one vCPU, bucket collisions, two waits
 * with one token, the dummy pool running dry, and two threads racing waits against wakes.
 * One line per failed expectation; exit 1 if any failed. */
#include <pthread.h>
#include <stdio.h>
#include <time.h>

#include "apf_sleepers.h"

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

/* What the wake callback was given, in order. */
struct woken {
    void* waiter[64];
    uint32_t cpu[64];
    bool halted[64];
    unsigned n;
};

static void record(void* ctx, void* waiter, uint32_t cpu, bool halted)
{
    struct woken* w = ctx;
    if (w->n < 64) {
        w->waiter[w->n] = waiter;
        w->cpu[w->n] = cpu;
        w->halted[w->n] = halted;
    }
    ++w->n;
}

static struct apf_sl_table table;
static struct apf_sl_node pool[8];

static unsigned pool_in_use(const struct apf_sl_node* p, unsigned n)
{
    unsigned used = 0;
    for (unsigned i = 0; i < n; ++i)
        used += p[i].in_use != 0;
    return used;
}

static void check_hash(void)
{
    /* hash_32(x, 6) examples of the host's gfn hash (pvmsr/README.md gives the same
     * function): 0 -> 0, 1 -> 24, 0x100 -> 50, 0x12345 -> 18. */
    EXPECT(apf_sl_hash32(0, 6) == 0, "hash_32(0, 6) = %u", apf_sl_hash32(0, 6));
    EXPECT(apf_sl_hash32(1, 6) == 24, "hash_32(1, 6) = %u", apf_sl_hash32(1, 6));
    EXPECT(apf_sl_hash32(0x100, 6) == 50, "hash_32(0x100, 6) = %u", apf_sl_hash32(0x100, 6));
    EXPECT(apf_sl_hash32(0x12345, 6) == 18, "hash_32(0x12345, 6) = %u", apf_sl_hash32(0x12345, 6));
    /* The sleeper table's 8 bits, worked by hand: 0x61C88647 * x mod 2^32, top byte.
     * 1 -> 0x61; the first tokens of vCPUs 0-3 (0x1000 | n) -> 0x88, 0xea, 0x4b, 0xad;
     * 0x2000 -> 0x10; the wake-all token -> 0x9e (= -0x61C88647 = 0x9E3779B9). */
    static const struct {
        uint32_t token, bucket;
    } cases[] = {{1, 0x61},      {0x1000, 0x88}, {0x1001, 0xea}, {0x1002, 0x4b},
                 {0x1003, 0xad}, {0x2000, 0x10}, {0xffffffffu, 0x9e}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i)
        EXPECT(apf_sl_hash32(cases[i].token, APF_SL_HASH_BITS) == cases[i].bucket, "hash_32(0x%x, 8) = 0x%x, want 0x%x",
               cases[i].token, apf_sl_hash32(cases[i].token, APF_SL_HASH_BITS), cases[i].bucket);
}

static void check_wait_then_wake(void)
{
    apf_sl_init(&table, pool, 8, 3);
    struct woken w = {0};
    struct apf_sl_node n;
    int task;
    EXPECT(apf_sl_queue(&table, &n, 0x1000, 0, &task, false), "a first wait must sleep");
    EXPECT(apf_sl_hashed(&n), "the waiter's node is hashed");
    EXPECT(apf_sl_count(&table, UINT32_MAX, false) == 1, "one waiter in the table");
    EXPECT(apf_sl_wake(&table, 0x1000, 0, record, &w) == APF_SL_WAKE_WOKE, "the wake finds the waiter");
    EXPECT(w.n == 1 && w.waiter[0] == &task && w.cpu[0] == 0 && !w.halted[0], "callback: %u calls", w.n);
    EXPECT(!apf_sl_hashed(&n), "the woken node is unhashed");
    EXPECT(apf_sl_count(&table, UINT32_MAX, false) == 0 && apf_sl_count(&table, UINT32_MAX, true) == 0,
           "the table is empty again");
    EXPECT(pool_in_use(pool, 8) == 0, "no dummy was allocated");

    /* A halted waiter on vCPU 3, woken by vCPU 1: the callback gets the waiter's vCPU. */
    w.n = 0;
    EXPECT(apf_sl_queue(&table, &n, 0x2003, 3, NULL, true), "halted wait");
    EXPECT(apf_sl_wake(&table, 0x2003, 1, record, &w) == APF_SL_WAKE_WOKE, "wake from another vCPU");
    EXPECT(w.n == 1 && w.cpu[0] == 3 && w.halted[0], "callback sees vCPU %u, halted %d", w.cpu[0], w.halted[0]);
}

static void check_wake_then_wait(void)
{
    apf_sl_init(&table, pool, 8, 3);
    struct woken w = {0};
    struct apf_sl_node n;
    EXPECT(apf_sl_wake(&table, 0x1001, 1, record, &w) == APF_SL_WAKE_DUMMY, "an early wake leaves a dummy");
    EXPECT(w.n == 0, "nobody to wake");
    EXPECT(apf_sl_count(&table, 1, true) == 1, "one dummy, recorded on the waking vCPU");
    EXPECT(pool_in_use(pool, 8) == 1, "one pool slot in use");
    EXPECT(!apf_sl_queue(&table, &n, 0x1001, 1, NULL, false), "the wait consumes the dummy and does not sleep");
    EXPECT(!apf_sl_hashed(&n), "the waiter's node was never hashed");
    EXPECT(apf_sl_count(&table, UINT32_MAX, true) == 0, "the dummy is gone");
    EXPECT(pool_in_use(pool, 8) == 0, "its slot is free again");
    /* A dummy of one token is not consumed by a wait for another. */
    EXPECT(apf_sl_wake(&table, 0x1001, 1, record, &w) == APF_SL_WAKE_DUMMY, "dummy");
    EXPECT(apf_sl_queue(&table, &n, 0x1091, 1, NULL, false), "a wait in the same bucket, other token: sleeps");
    EXPECT(apf_sl_count(&table, UINT32_MAX, true) == 1, "the dummy of 0x1001 stays");
}

static void check_collisions_and_duplicates(void)
{
    apf_sl_init(&table, pool, 8, 3);
    struct woken w = {0};
    struct apf_sl_node a, b, c, d;
    int ta, tb, tc, td;
    /* 0x1001 and 0x1091 share bucket 0xea. */
    EXPECT(apf_sl_hash32(0x1001, 8) == apf_sl_hash32(0x1091, 8), "test premise: 0x1001 and 0x1091 collide");
    EXPECT(apf_sl_queue(&table, &a, 0x1001, 0, &ta, false), "wait 0x1001");
    EXPECT(apf_sl_queue(&table, &b, 0x1091, 0, &tb, false), "wait 0x1091");
    EXPECT(apf_sl_wake(&table, 0x1001, 0, record, &w) == APF_SL_WAKE_WOKE, "wake 0x1001");
    EXPECT(w.n == 1 && w.waiter[0] == &ta, "0x1001 woke its own waiter");
    EXPECT(!apf_sl_hashed(&a) && apf_sl_hashed(&b), "only 0x1001's node left the chain");
    EXPECT(apf_sl_wake(&table, 0x1091, 0, record, &w) == APF_SL_WAKE_WOKE && w.waiter[1] == &tb, "wake 0x1091");
    /* Two waits with one token (a wrapped token counter, or vCPU ids >= 4096): the second
     * must not take the first's node for a dummy and free it; each wake wakes one. */
    w.n = 0;
    EXPECT(apf_sl_queue(&table, &c, 0x5000, 0, &tc, false), "first wait of 0x5000 sleeps");
    EXPECT(apf_sl_queue(&table, &d, 0x5000, 0, &td, false), "second wait of 0x5000 sleeps too");
    EXPECT(apf_sl_hashed(&c) && apf_sl_hashed(&d), "both nodes hashed");
    EXPECT(pool_in_use(pool, 8) == 0, "no pool slot was touched");
    EXPECT(apf_sl_wake(&table, 0x5000, 0, record, &w) == APF_SL_WAKE_WOKE, "first wake");
    EXPECT(apf_sl_wake(&table, 0x5000, 0, record, &w) == APF_SL_WAKE_WOKE, "second wake");
    EXPECT(w.n == 2 && !apf_sl_hashed(&c) && !apf_sl_hashed(&d), "both woken, %u calls", w.n);
}

static void check_wake_all(void)
{
    apf_sl_init(&table, pool, 8, 3);
    struct woken w = {0};
    struct apf_sl_node a0, b0, a1;
    int ta0, tb0, ta1;
    EXPECT(apf_sl_queue(&table, &a0, 0x1000, 0, &ta0, false), "vCPU 0 wait");
    EXPECT(apf_sl_queue(&table, &b0, 0x2000, 0, &tb0, true), "vCPU 0 halted wait");
    EXPECT(apf_sl_queue(&table, &a1, 0x1001, 1, &ta1, false), "vCPU 1 wait");
    EXPECT(apf_sl_wake(&table, 0x3000, 0, record, &w) == APF_SL_WAKE_DUMMY, "vCPU 0 dummy");
    EXPECT(apf_sl_wake(&table, 0x3001, 1, record, &w) == APF_SL_WAKE_DUMMY, "vCPU 1 dummy");
    uint32_t dropped = 99;
    uint32_t woken = apf_sl_wake_all(&table, 0, record, &w, &dropped);
    EXPECT(woken == 2 && w.n == 2, "wake-all of vCPU 0 woke %u (callback %u), want 2", woken, w.n);
    EXPECT(dropped == 1, "wake-all of vCPU 0 dropped %u dummies, want 1", dropped);
    EXPECT(!apf_sl_hashed(&a0) && !apf_sl_hashed(&b0), "vCPU 0's waiters unhashed");
    EXPECT(apf_sl_hashed(&a1), "vCPU 1's waiter stays");
    EXPECT(apf_sl_count(&table, 1, false) == 1 && apf_sl_count(&table, 1, true) == 1,
           "vCPU 1 keeps its waiter and its dummy");
    EXPECT(apf_sl_count(&table, 0, false) == 0 && apf_sl_count(&table, 0, true) == 0, "vCPU 0 has nothing left");
    EXPECT(pool_in_use(pool, 8) == 1, "the dropped dummy went back to the pool");
    bool saw_halted = false;
    for (unsigned i = 0; i < 2; ++i)
        saw_halted = saw_halted || (w.waiter[i] == &tb0 && w.halted[i] && w.cpu[i] == 0);
    EXPECT(saw_halted, "the halted waiter was reported as halted");
    EXPECT(apf_sl_wake_all(&table, 0, record, &w, NULL) == 0, "a second wake-all finds nothing");
}

static void check_pool_exhaustion(void)
{
    struct apf_sl_node small[2];
    apf_sl_init(&table, small, 2, 5);
    struct woken w = {0};
    struct apf_sl_node n;
    EXPECT(apf_sl_wake(&table, 0x10, 0, record, &w) == APF_SL_WAKE_DUMMY, "dummy 1");
    EXPECT(apf_sl_wake(&table, 0x20, 0, record, &w) == APF_SL_WAKE_DUMMY, "dummy 2");
    EXPECT(apf_sl_wake(&table, 0x30, 0, record, &w) == APF_SL_WAKE_LOST, "a third early wake with the pool empty is lost");
    EXPECT(apf_sl_count(&table, UINT32_MAX, true) == 2, "still 2 dummies");
    /* A waiter that exists is still woken with the pool empty: no allocation needed. */
    EXPECT(apf_sl_queue(&table, &n, 0x40, 0, NULL, false), "wait 0x40");
    EXPECT(apf_sl_wake(&table, 0x40, 0, record, &w) == APF_SL_WAKE_WOKE, "wake with an empty pool");
    /* Consuming a dummy frees a slot for the next early wake. */
    EXPECT(!apf_sl_queue(&table, &n, 0x10, 0, NULL, false), "consume dummy 1");
    EXPECT(apf_sl_wake(&table, 0x30, 0, record, &w) == APF_SL_WAKE_DUMMY, "the slot is reused");
    EXPECT(pool_in_use(small, 2) == 2, "both slots in use");
}

/* Two threads: the waiter registers tokens and spins until each is unhashed; the waker
 * wakes the same tokens, often before the wait exists (dummy path). Every wait must end
 * and the table must end empty. */
#define RACE_TOKENS 5000u
static struct apf_sl_table race_table;
static struct apf_sl_node race_pool[64];
static volatile uint32_t race_registered, race_waker_done;
static unsigned long race_consumed, race_slept, race_woken_cb, race_lost, race_stuck;
/* The waiter's nodes: static rather than on its stack, so that a node left in the table by
 * a lost wake stays valid memory for the waker's list walks. */
static struct apf_sl_node race_nodes[RACE_TOKENS + 1];

static void race_cb(void* ctx, void* waiter, uint32_t cpu, bool halted)
{
    (void)ctx;
    (void)waiter;
    (void)cpu;
    (void)halted;
    ++race_woken_cb;
}

static void* race_waiter(void* arg)
{
    (void)arg;
    for (uint32_t i = 1; i <= RACE_TOKENS; ++i) {
        struct apf_sl_node* n = &race_nodes[i];
        if (!apf_sl_queue(&race_table, n, i, 0, n, false)) {
            ++race_consumed;
        } else {
            ++race_slept;
            time_t give_up = time(NULL) + 10;
            while (apf_sl_hashed(n)) {
                /* A lost wake: the waker finished, or stopped waiting for us. */
                if ((__atomic_load_n(&race_waker_done, __ATOMIC_ACQUIRE) || time(NULL) > give_up) &&
                    apf_sl_hashed(n)) {
                    /* Never woken: stop here, the checks report it. */
                    __atomic_store_n(&race_stuck, 1ul, __ATOMIC_RELEASE);
                    return NULL;
                }
                __builtin_ia32_pause();
            }
        }
        __atomic_store_n(&race_registered, i, __ATOMIC_RELEASE);
    }
    return NULL;
}

static void* race_waker(void* arg)
{
    (void)arg;
    for (uint32_t i = 1; i <= RACE_TOKENS; ++i) {
        /* Stay at most 32 tokens ahead so the 64 dummies suffice. */
        while (i > __atomic_load_n(&race_registered, __ATOMIC_ACQUIRE) + 32 &&
               !__atomic_load_n(&race_stuck, __ATOMIC_ACQUIRE))
            __builtin_ia32_pause();
        if (apf_sl_wake(&race_table, i, 1, race_cb, NULL) == APF_SL_WAKE_LOST)
            ++race_lost;
    }
    __atomic_store_n(&race_waker_done, 1u, __ATOMIC_RELEASE);
    return NULL;
}

static void check_race(void)
{
    apf_sl_init(&race_table, race_pool, 64, 1000000);
    pthread_t a, b;
    pthread_create(&a, NULL, race_waiter, NULL);
    pthread_create(&b, NULL, race_waker, NULL);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    EXPECT(race_lost == 0 && race_stuck == 0, "%lu wakes lost, %lu waits never woken", race_lost, race_stuck);
    EXPECT(race_consumed + race_slept == RACE_TOKENS, "%lu consumed + %lu slept != %u", race_consumed, race_slept,
           RACE_TOKENS);
    EXPECT(race_woken_cb == race_slept, "callback ran %lu times for %lu sleepers", race_woken_cb, race_slept);
    EXPECT(apf_sl_count(&race_table, UINT32_MAX, true) == 0 && apf_sl_count(&race_table, UINT32_MAX, false) == 0,
           "the table ends empty");
    EXPECT(pool_in_use(race_pool, 64) == 0, "every dummy slot was returned");
    printf("race: %u tokens, %lu waits found their dummy, %lu slept\n", RACE_TOKENS, race_consumed, race_slept);
}

int main(void)
{
    check_hash();
    check_wait_then_wake();
    check_wake_then_wait();
    check_collisions_and_duplicates();
    check_wake_all();
    check_pool_exhaustion();
    check_race();
    if (failures) {
        printf("%d failures\n", failures);
        return 1;
    }
    printf("apf sleeper table: all checks passed\n");
    return 0;
}
