/* sort benchmark - bottom-up merge sort of 4 Mi 64-bit keys (64 MiB with the scratch
 * buffer): streaming loads/stores and an unpredictable branch per element. */
#include "libc.h"
#include "report.h"
#include "sort_algo.h"

static uint64_t keys[SORT_COUNT];
static uint64_t scratch[SORT_COUNT];

int main(unsigned cpu, unsigned ncpus, unsigned long ram_bytes)
{
    (void)cpu, (void)ncpus, (void)ram_bytes;
    uint64_t result = sort_run(keys, scratch);
    report(result == SORT_EXPECTED, "sort: %u keys, checksum 0x%016lx (host 0x%016llx)", SORT_COUNT, result,
           SORT_EXPECTED);
    report_summary();
}
