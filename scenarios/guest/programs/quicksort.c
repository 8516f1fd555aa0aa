/* quicksort - sorts 10^5 pseudo-random 64-bit keys with a recursive quicksort and checks
 * the result: sorted, a permutation of the input, and the checksum the host computed with
 * the same code (quicksort_algo.h). Exercises loads/stores, compares, calls and a deep-ish
 * stack: a CPU-model workout, no exits except the console. */
#include "libc.h"
#include "quicksort_algo.h"
#include "report.h"

static uint64_t keys[QS_COUNT];

int main(unsigned cpu, unsigned ncpus, unsigned long ram_bytes)
{
    (void)cpu, (void)ncpus, (void)ram_bytes;
    qs_fill(keys, QS_COUNT, QS_SEED);
    uint64_t sum0, xor0, sum1, xor1;
    qs_fingerprint(keys, QS_COUNT, &sum0, &xor0);
    qs_sort(keys, 0, (long)QS_COUNT - 1);
    qs_fingerprint(keys, QS_COUNT, &sum1, &xor1);

    size_t bad = qs_first_unsorted(keys, QS_COUNT);
    report(bad == 0, "%u keys sorted (first out-of-order index %zu)", QS_COUNT, bad);
    report(sum0 == sum1 && xor0 == xor1, "sorted keys are a permutation of the input");
    uint64_t checksum = qs_checksum(keys, QS_COUNT);
    report(checksum == QS_EXPECTED_CHECKSUM, "checksum 0x%016lx matches the host's 0x%016llx", checksum,
           QS_EXPECTED_CHECKSUM);
    report(keys[0] <= keys[QS_COUNT / 2] && keys[QS_COUNT / 2] <= keys[QS_COUNT - 1],
           "min 0x%016lx median 0x%016lx max 0x%016lx", keys[0], keys[QS_COUNT / 2], keys[QS_COUNT - 1]);
    report_summary();
}
