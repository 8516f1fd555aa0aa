/* sieve benchmark - sieve of Eratosthenes over 32 MiB: strided stores sweeping the whole
 * array per prime, touching 8192 pages again and again (page-walk and dirty-bit work). */
#include "libc.h"
#include "report.h"
#include "sieve_algo.h"

static uint8_t composite[SIEVE_LIMIT];

int main(unsigned cpu, unsigned ncpus, unsigned long ram_bytes)
{
    (void)cpu, (void)ncpus, (void)ram_bytes;
    uint64_t primes = 0;
    uint64_t result = sieve_run(composite, &primes);
    report(primes == SIEVE_EXPECTED_COUNT, "sieve: %lu primes below 2^25 (expected %u)", primes,
           SIEVE_EXPECTED_COUNT);
    report(result == SIEVE_EXPECTED, "sieve: checksum 0x%016lx (host 0x%016llx)", result, SIEVE_EXPECTED);
    report_summary();
}
