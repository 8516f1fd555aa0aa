/* native.c - one benchmark workload as a Linux x86-64 program: the physical limit column of
 * tools/bench/compare.py. Built once per workload with -DBENCH_<NAME>, from the very same
 * scenarios/guest/bench/<name>_algo.h the guest images include, with the guest's code
 * generation flags where they make sense on Linux (compare.py says which).
 *
 * Prints one line: "native <name> ns=<run time> result=0x... expected=0x... PASS|FAIL". The
 * time covers only the workload (CLOCK_MONOTONIC around bench_run()), not process start. */
#include <inttypes.h>
#include <stdio.h>
#include <time.h>

/* The timed call must stay a real call between the two clock reads. GCC's noipa forbids
 * inlining, cloning and looking through it, so no work can move across the clock calls;
 * clang has no noipa, noinline is its closest. compare.py builds with gcc. */
#if defined(__clang__)
#define BENCH_OPAQUE __attribute__((noinline))
#else
#define BENCH_OPAQUE __attribute__((noipa))
#endif

#if defined(BENCH_ALU)
#include "alu_algo.h"
#define BENCH_NAME "alu"
#define BENCH_EXPECTED ALU_EXPECTED
BENCH_OPAQUE static uint64_t bench_run(void)
{
    volatile uint32_t iterations = ALU_ITERATIONS; /* as alu.c: not a compile-time trip count */
    return alu_run(iterations);
}
#elif defined(BENCH_SIEVE)
#include "sieve_algo.h"
#define BENCH_NAME "sieve"
#define BENCH_EXPECTED SIEVE_EXPECTED
static uint8_t composite[SIEVE_LIMIT];
BENCH_OPAQUE static uint64_t bench_run(void)
{
    uint64_t primes = 0;
    uint64_t result = sieve_run(composite, &primes);
    return primes == SIEVE_EXPECTED_COUNT ? result : ~result;
}
#elif defined(BENCH_HASH)
#include "hash_algo.h"
#define BENCH_NAME "hash"
#define BENCH_EXPECTED HASH_EXPECTED
static struct hash_slot table[HASH_SLOTS];
BENCH_OPAQUE static uint64_t bench_run(void) { return hash_run(table); }
#elif defined(BENCH_BYTECODE)
#include "bytecode_algo.h"
#define BENCH_NAME "bytecode"
#define BENCH_EXPECTED BC_EXPECTED
BENCH_OPAQUE static uint64_t bench_run(void)
{
    uint64_t executed = 0;
    const struct bc_insn* volatile program = bc_program; /* as bytecode.c */
    return bc_run(program, &executed);
}
#elif defined(BENCH_SORT)
#include "sort_algo.h"
#define BENCH_NAME "sort"
#define BENCH_EXPECTED SORT_EXPECTED
static uint64_t keys[SORT_COUNT];
static uint64_t scratch[SORT_COUNT];
BENCH_OPAQUE static uint64_t bench_run(void) { return sort_run(keys, scratch); }
#else
#error "define one of BENCH_ALU, BENCH_SIEVE, BENCH_HASH, BENCH_BYTECODE, BENCH_SORT"
#endif

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int main(void)
{
    const uint64_t t0 = now_ns();
    const uint64_t result = bench_run();
    const uint64_t t1 = now_ns();
    const int ok = result == BENCH_EXPECTED;
    printf("native %s ns=%" PRIu64 " result=0x%016" PRIx64 " expected=0x%016" PRIx64 " %s\n", BENCH_NAME, t1 - t0,
           result, (uint64_t)BENCH_EXPECTED, ok ? "PASS" : "FAIL");
    return ok ? 0 : 1;
}
