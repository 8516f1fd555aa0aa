/* Host-native check for the quicksort guest: runs the same algorithm header on the host and
 * compares with the constant the guest embeds. Prints the value so it can be re-embedded. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "quicksort_algo.h"

int main(void)
{
    uint64_t* keys = malloc(QS_COUNT * sizeof *keys);
    if (!keys)
        return 2;
    qs_fill(keys, QS_COUNT, QS_SEED);
    uint64_t sum0, xor0, sum1, xor1;
    qs_fingerprint(keys, QS_COUNT, &sum0, &xor0);
    qs_sort(keys, 0, (long)QS_COUNT - 1);
    qs_fingerprint(keys, QS_COUNT, &sum1, &xor1);
    size_t bad = qs_first_unsorted(keys, QS_COUNT);
    uint64_t checksum = qs_checksum(keys, QS_COUNT);
    free(keys);
    printf("quicksort checksum 0x%016" PRIx64 " (embedded 0x%016" PRIx64 ")\n", checksum,
           (uint64_t)QS_EXPECTED_CHECKSUM);
    if (bad || sum0 != sum1 || xor0 != xor1) {
        printf("FAIL: host sort is broken (first unsorted index %zu)\n", bad);
        return 1;
    }
    if (checksum != QS_EXPECTED_CHECKSUM) {
        printf("FAIL: QS_EXPECTED_CHECKSUM in scenarios/guest/programs/quicksort_algo.h is stale\n");
        return 1;
    }
    return 0;
}
