/* alu benchmark - a register-only integer loop (~3.2e8 instructions at -O2): measures raw
 * decode/dispatch/ALU speed of the emulator, with no memory or exit traffic. */
#include "alu_algo.h"
#include "libc.h"
#include "report.h"

int main(unsigned cpu, unsigned ncpus, unsigned long ram_bytes)
{
    (void)cpu, (void)ncpus, (void)ram_bytes;
    /* Volatile read of the count so the loop trip count is not a compile-time constant. */
    volatile uint32_t iterations = ALU_ITERATIONS;
    uint64_t result = alu_run(iterations);
    report(result == ALU_EXPECTED, "alu: %u iterations, result 0x%016lx (host 0x%016llx)", ALU_ITERATIONS, result,
           ALU_EXPECTED);
    report_summary();
}
