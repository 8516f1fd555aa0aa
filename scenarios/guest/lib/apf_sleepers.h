/* apf_sleepers.h - the guest's table of tasks waiting for an async page fault (the
 * "sleeper hash" of Linux's arch/x86/kernel/kvm.c, kvm_async_pf_task_wait_schedule and
 * kvm_async_pf_task_wake), re-implemented in our words as a header-only algorithm so that
 * tests/guest/apf_sleepers_check.c can run it natively. No inline assembly, no runtime
 * calls: locks are __atomic builtins, the only CPU-specific thing is PAUSE through
 * __builtin_ia32_pause (x86 hosts and the guest alike).
 *
 * The table (pvmsr/README.md §5.3 is the host side):
 *   - 256 buckets chosen by hash_32(token, 8), the multiplicative hash of Linux's
 *     <linux/hash.h> (multiplier 0x61C88647 since 4.7), each with its own spinlock;
 *   - a node is {token, vCPU, waiter, halted, is_dummy}. A waiter's node lives on its own
 *     stack for the length of the wait; a node is "hashed" while it is in the table;
 *   - wait(token): a dummy with this token means the page-ready beat the not-present: take
 *     it out, free it, do not sleep. Otherwise insert our node and sleep until unhashed;
 *   - wake(token): a waiter with this token is unhashed and woken; none (the page-ready came
 *     first) leaves a dummy {token, vCPU} for the later wait to consume;
 *   - wake-all (token 0xffffffff): every node of THIS vCPU is unhashed: waiters are woken,
 *     dummies freed (Linux unhashes them and leaks them; we return them to the pool).
 *
 * Differences from Linux, on purpose:
 *   - dummies come from a fixed pool (no allocator): a wake that finds the pool empty
 *     retries `max_alloc_retries` times (the wait may be registered meanwhile by another
 *     vCPU, making the dummy unnecessary, which is what Linux's retry loop waits for) and
 *     then gives up with APF_SL_WAKE_LOST instead of spinning forever on a vCPU whose own
 *     waiter can never run;
 *   - nodes carry an explicit is_dummy flag: a wait consumes only a dummy, a wake wakes only
 *     a waiter, so two waits with the same token (the 2025 duplicate-token problem) never
 *     free each other's node;
 *   - the wake callback receives copies of the waiter's fields taken under the bucket lock,
 *     so the waiter's stack node may vanish the moment it is unhashed.
 *
 * Locking: callers must keep interrupts off while calling these functions on a vCPU whose
 * interrupt handlers may call them too (a bucket lock is not re-entrant). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define APF_SL_HASH_BITS 8
#define APF_SL_BUCKETS (1u << APF_SL_HASH_BITS)
#define APF_SL_WAKE_ALL_TOKEN 0xffffffffu
/* Multiplier of Linux's hash_32() since 4.7 (GOLDEN_RATIO_32, <linux/hash.h>). */
#define APF_SL_GOLDEN_RATIO_32 0x61C88647u

struct apf_sl_node {
    struct apf_sl_node* next;
    void* waiter;          /* what the wake callback wakes; NULL for a dummy */
    uint32_t token;
    uint32_t cpu;          /* the vCPU that registered the wait (or received the early wake) */
    uint8_t halted;        /* the waiter halts (STI;HLT) instead of sleeping as a task */
    uint8_t is_dummy;
    volatile uint8_t hashed;
    volatile uint8_t in_use; /* pool slots only: allocated */
};

struct apf_sl_bucket {
    volatile uint32_t lock;
    struct apf_sl_node* head;
};

struct apf_sl_table {
    struct apf_sl_bucket bucket[APF_SL_BUCKETS];
    struct apf_sl_node* pool; /* dummy nodes */
    uint32_t pool_size;
    uint32_t max_alloc_retries;
};

/* What a wake found. */
enum apf_sl_wake_result {
    APF_SL_WAKE_WOKE = 1,  /* a waiter was unhashed (and the callback called) */
    APF_SL_WAKE_DUMMY = 2, /* no waiter: a dummy now stands for the early wake */
    APF_SL_WAKE_LOST = 3,  /* no waiter and the dummy pool stayed empty: the wake is lost */
};

/* Called for each waiter a wake unhashes, under its bucket lock, with copies of its fields. */
typedef void (*apf_sl_wake_fn)(void* ctx, void* waiter, uint32_t cpu, bool halted);

/* hash_32(val, bits) = (val * 0x61C88647 mod 2^32) >> (32 - bits), bits in 1..32. */
static inline uint32_t apf_sl_hash32(uint32_t val, unsigned bits)
{
    return (uint32_t)(val * APF_SL_GOLDEN_RATIO_32) >> (32u - bits);
}

static inline void apf_sl_lock(volatile uint32_t* l)
{
    while (__atomic_exchange_n(l, 1u, __ATOMIC_ACQUIRE) != 0) {
        while (__atomic_load_n(l, __ATOMIC_RELAXED))
            __builtin_ia32_pause();
    }
}

static inline void apf_sl_unlock(volatile uint32_t* l) { __atomic_store_n(l, 0u, __ATOMIC_RELEASE); }

/* Empties the table and attaches `pool_size` dummy slots (zeroed here). */
static inline void apf_sl_init(struct apf_sl_table* t, struct apf_sl_node* pool, uint32_t pool_size,
                                           uint32_t max_alloc_retries)
{
    for (uint32_t i = 0; i < APF_SL_BUCKETS; ++i) {
        t->bucket[i].lock = 0;
        t->bucket[i].head = NULL;
    }
    for (uint32_t i = 0; i < pool_size; ++i) {
        pool[i].next = NULL;
        pool[i].waiter = NULL;
        pool[i].token = 0;
        pool[i].cpu = 0;
        pool[i].halted = 0;
        pool[i].is_dummy = 0;
        pool[i].hashed = 0;
        pool[i].in_use = 0;
    }
    t->pool = pool;
    t->pool_size = pool_size;
    t->max_alloc_retries = max_alloc_retries;
}

static inline struct apf_sl_bucket* apf_sl_bucket_of(struct apf_sl_table* t, uint32_t token)
{
    return &t->bucket[apf_sl_hash32(token, APF_SL_HASH_BITS)];
}

/* One LOCK CMPXCHG per candidate slot: 0 -> 1. NULL when every slot is taken. */
static inline struct apf_sl_node* apf_sl_alloc_dummy(struct apf_sl_table* t)
{
    for (uint32_t i = 0; i < t->pool_size; ++i) {
        uint8_t expected = 0;
        if (__atomic_compare_exchange_n(&t->pool[i].in_use, &expected, (uint8_t)1, false, __ATOMIC_ACQUIRE,
                                        __ATOMIC_RELAXED))
            return &t->pool[i];
    }
    return NULL;
}

static inline void apf_sl_free_dummy(struct apf_sl_node* n)
{
    n->next = NULL;
    __atomic_store_n(&n->in_use, (uint8_t)0, __ATOMIC_RELEASE);
}

/* Unlinks n (which must be in b's list) and marks it unhashed. Bucket lock held. */
static inline void apf_sl_unlink(struct apf_sl_bucket* b, struct apf_sl_node* n)
{
    struct apf_sl_node** pp = &b->head;
    while (*pp && *pp != n)
        pp = &(*pp)->next;
    if (*pp)
        *pp = n->next;
    n->next = NULL;
    __atomic_store_n(&n->hashed, (uint8_t)0, __ATOMIC_RELEASE);
}

static inline struct apf_sl_node* apf_sl_find(struct apf_sl_bucket* b, uint32_t token, bool dummy)
{
    for (struct apf_sl_node* n = b->head; n; n = n->next)
        if (n->token == token && (n->is_dummy != 0) == dummy)
            return n;
    return NULL;
}

/* The waiting side. Returns false when a dummy for `token` was found and consumed (the
 * page-ready came first: do not sleep); true when `n` is now hashed and the caller must
 * wait until apf_sl_hashed(n) is false. */
static inline bool apf_sl_queue(struct apf_sl_table* t, struct apf_sl_node* n, uint32_t token, uint32_t cpu,
                                            void* waiter, bool halted)
{
    struct apf_sl_bucket* b = apf_sl_bucket_of(t, token);
    apf_sl_lock(&b->lock);
    struct apf_sl_node* d = apf_sl_find(b, token, true);
    if (d) {
        apf_sl_unlink(b, d);
        apf_sl_unlock(&b->lock);
        apf_sl_free_dummy(d);
        return false;
    }
    n->token = token;
    n->cpu = cpu;
    n->waiter = waiter;
    n->halted = halted;
    n->is_dummy = 0;
    n->in_use = 0;
    n->hashed = 1;
    n->next = b->head;
    b->head = n;
    apf_sl_unlock(&b->lock);
    return true;
}

static inline bool apf_sl_hashed(const struct apf_sl_node* n)
{
    return __atomic_load_n(&n->hashed, __ATOMIC_ACQUIRE) != 0;
}

/* Wakes the waiter of one token (not the wake-all token: see apf_sl_wake_all). `cpu` is
 * the vCPU handling the page-ready; a dummy it leaves records it, as Linux does. */
static inline enum apf_sl_wake_result apf_sl_wake(struct apf_sl_table* t, uint32_t token, uint32_t cpu,
                                                              apf_sl_wake_fn fn, void* ctx)
{
    struct apf_sl_bucket* b = apf_sl_bucket_of(t, token);
    struct apf_sl_node* dummy = NULL;
    uint32_t retries = 0;
    for (;;) {
        apf_sl_lock(&b->lock);
        struct apf_sl_node* n = apf_sl_find(b, token, false);
        if (n) {
            void* waiter = n->waiter;
            uint32_t wcpu = n->cpu;
            bool halted = n->halted != 0;
            apf_sl_unlink(b, n);
            fn(ctx, waiter, wcpu, halted);
            apf_sl_unlock(&b->lock);
            if (dummy)
                apf_sl_free_dummy(dummy); /* allocated on an earlier round, not needed after all */
            return APF_SL_WAKE_WOKE;
        }
        if (dummy) {
            dummy->token = token;
            dummy->cpu = cpu;
            dummy->waiter = NULL;
            dummy->halted = 0;
            dummy->is_dummy = 1;
            dummy->hashed = 1;
            dummy->next = b->head;
            b->head = dummy;
            apf_sl_unlock(&b->lock);
            return APF_SL_WAKE_DUMMY;
        }
        /* Allocate outside the lock, then look again: the wait may have been registered
         * in between (Linux does the same with kzalloc(GFP_ATOMIC)). */
        apf_sl_unlock(&b->lock);
        dummy = apf_sl_alloc_dummy(t);
        if (!dummy) {
            if (retries++ >= t->max_alloc_retries)
                return APF_SL_WAKE_LOST;
            __builtin_ia32_pause();
        }
    }
}

/* Wake-all for vCPU `cpu`: unhashes every node of that vCPU; waiters go to `fn`, dummies
 * back to the pool. Returns the number of waiters woken; *dummies_dropped (if not NULL)
 * gets the number of dummies freed. */
static inline uint32_t apf_sl_wake_all(struct apf_sl_table* t, uint32_t cpu, apf_sl_wake_fn fn, void* ctx,
                                                   uint32_t* dummies_dropped)
{
    uint32_t woken = 0, dropped = 0;
    for (uint32_t i = 0; i < APF_SL_BUCKETS; ++i) {
        struct apf_sl_bucket* b = &t->bucket[i];
        apf_sl_lock(&b->lock);
        struct apf_sl_node* n = b->head;
        while (n) {
            struct apf_sl_node* next = n->next;
            if (n->cpu == cpu) {
                void* waiter = n->waiter;
                bool halted = n->halted != 0;
                bool is_dummy = n->is_dummy != 0;
                apf_sl_unlink(b, n);
                if (is_dummy) {
                    apf_sl_free_dummy(n);
                    ++dropped;
                } else {
                    fn(ctx, waiter, cpu, halted);
                    ++woken;
                }
            }
            n = next;
        }
        apf_sl_unlock(&b->lock);
    }
    if (dummies_dropped)
        *dummies_dropped = dropped;
    return woken;
}

/* Nodes in the table (waiters and dummies), of one vCPU or of all (cpu = UINT32_MAX). For
 * tests and end-of-run reports; takes every bucket lock in turn. */
static inline uint32_t apf_sl_count(struct apf_sl_table* t, uint32_t cpu, bool dummies)
{
    uint32_t count = 0;
    for (uint32_t i = 0; i < APF_SL_BUCKETS; ++i) {
        struct apf_sl_bucket* b = &t->bucket[i];
        apf_sl_lock(&b->lock);
        for (struct apf_sl_node* n = b->head; n; n = n->next)
            if ((cpu == UINT32_MAX || n->cpu == cpu) && (n->is_dummy != 0) == dummies)
                ++count;
        apf_sl_unlock(&b->lock);
    }
    return count;
}
