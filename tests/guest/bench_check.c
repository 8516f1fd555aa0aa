/* Host-native check for the benchmark guests: runs each shared *_algo.h natively and compares
 * with the constant the guest embeds. Prints every value, so a deliberate change to a
 * benchmark is re-embedded from this output. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "alu_algo.h"
#include "bytecode_algo.h"
#include "hash_algo.h"
#include "sieve_algo.h"
#include "sort_algo.h"

static int failures;

static void check(const char* name, uint64_t got, uint64_t embedded)
{
    printf("%-8s 0x%016" PRIx64 " (embedded 0x%016" PRIx64 ")%s\n", name, got, embedded,
           got == embedded ? "" : "  <-- MISMATCH");
    if (got != embedded)
        ++failures;
}

int main(void)
{
    check("alu", alu_run(ALU_ITERATIONS), ALU_EXPECTED);

    struct hash_slot* table = calloc(HASH_SLOTS, sizeof *table);
    uint64_t* keys = malloc(SORT_COUNT * sizeof *keys);
    uint64_t* scratch = malloc(SORT_COUNT * sizeof *scratch);
    uint8_t* composite = calloc(SIEVE_LIMIT, 1);
    if (!table || !keys || !scratch || !composite)
        return 2;
    check("hash", hash_run(table), HASH_EXPECTED);
    check("sort", sort_run(keys, scratch), SORT_EXPECTED);
    uint64_t primes = 0;
    check("sieve", sieve_run(composite, &primes), SIEVE_EXPECTED);
    check("sieve-n", primes, SIEVE_EXPECTED_COUNT);
    uint64_t executed = 0;
    check("bytecode", bc_run(bc_program, &executed), BC_EXPECTED);
    printf("bytecode executed %" PRIu64 " byte-codes\n", executed);
    free(table);
    free(keys);
    free(scratch);
    free(composite);
    return failures ? 1 : 0;
}
