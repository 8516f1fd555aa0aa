/* hash benchmark - 700k inserts and 1M lookups in a 16 MiB open-addressing table: random
 * memory access, so guest TLB/page-walk and memory-access paths dominate. */
#include "hash_algo.h"
#include "libc.h"
#include "report.h"

static struct hash_slot table[HASH_SLOTS];

int main(unsigned cpu, unsigned ncpus, unsigned long ram_bytes)
{
    (void)cpu, (void)ncpus, (void)ram_bytes;
    uint64_t result = hash_run(table);
    report(result == HASH_EXPECTED, "hash: %u slots, result 0x%016lx (host 0x%016llx)", HASH_SLOTS, result,
           HASH_EXPECTED);
    report_summary();
}
