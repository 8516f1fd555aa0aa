/* bytecode benchmark - a switch-dispatched byte-code interpreter running a Collatz loop
 * (~25M byte-codes): indirect jumps and small, hot, data-dependent code paths. */
#include "bytecode_algo.h"
#include "libc.h"
#include "report.h"

int main(unsigned cpu, unsigned ncpus, unsigned long ram_bytes)
{
    (void)cpu, (void)ncpus, (void)ram_bytes;
    uint64_t executed = 0;
    /* Through a volatile pointer: the compiler must not specialise the interpreter to the
     * constant program. */
    const struct bc_insn* volatile program = bc_program;
    uint64_t result = bc_run(program, &executed);
    report(result == BC_EXPECTED, "bytecode: %lu byte-codes, result 0x%lx (host 0x%llx)", executed, result,
           BC_EXPECTED);
    report_summary();
}
