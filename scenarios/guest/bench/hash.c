/* hash benchmark - 2.8M inserts and 2.8M lookups in a 64 MiB open-addressing table (4 Mi
 * 16-byte slots): random memory access, so guest TLB/page-walk and memory-access paths
 * dominate. */
#include "hash_algo.h"
#include "libc.h"
#include "report.h"

static struct hash_slot table[HASH_SLOTS];

int main(unsigned cpu, unsigned ncpus, unsigned long ram_bytes)
{
    (void)cpu, (void)ncpus, (void)ram_bytes;
    uint64_t result = hash_run(table);
    report(result == HASH_EXPECTED, "hash: %u slots (64 MiB), %u inserts, %u lookups, result 0x%016lx (host 0x%016llx)",
           HASH_SLOTS, HASH_INSERTS, HASH_LOOKUPS, result, HASH_EXPECTED);
    report_summary();
}
