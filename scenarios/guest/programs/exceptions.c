/* exceptions - the runtime's exception machinery and the CPU's exception delivery: a
 * registered handler for a trap (#BP, RIP after INT3) and for a software interrupt; faults
 * caught by catch_exception()/expect_fault(): #UD, #DE, #GP (non-canonical address),
 * #SS (non-canonical stack reference), #PF (above the 4 GiB boot mapping) with their error
 * codes and CR2; the exception-table fixup of rdmsr_safe. Faults report the RIP of the
 * faulting instruction, traps the RIP after it (SDM Vol.3A 6.5). */
#include "desc.h"
#include "libc.h"
#include "report.h"

#define SOFT_VECTOR 0x40

static volatile unsigned bp_count, soft_count;
static volatile uint64_t bp_rip, soft_rip, soft_rax;

static void on_breakpoint(struct ex_frame* f)
{
    ++bp_count;
    bp_rip = f->rip;
}

static void on_soft_interrupt(struct ex_frame* f)
{
    ++soft_count;
    soft_rip = f->rip;
    soft_rax = f->rax;
    f->rax = 0x600d; /* handlers may change the interrupted context */
}

static void do_ud2(void* arg)
{
    (void)arg;
    __asm__ volatile("ud2");
}

static void do_div0(void* arg)
{
    (void)arg;
    __asm__ volatile("xor %%edx, %%edx\n\tmov $1, %%eax\n\txor %%ecx, %%ecx\n\tdivl %%ecx" ::: "rax", "rdx", "rcx");
}

static void do_noncanonical_load(void* arg)
{
    __asm__ volatile("movq (%0), %%rax" ::"r"(arg) : "rax", "memory");
}

static void do_noncanonical_stack(void* arg)
{
    /* RSP as the base register selects SS, so a non-canonical address is #SS(0) rather than
     * #GP(0) (SDM Vol.3A 6.15 "Interrupt 12"). */
    __asm__ volatile("movq (%%rsp, %0, 1), %%rax" ::"r"(arg) : "rax", "memory");
}

static void do_load(void* arg) { (void)*(volatile uint64_t*)arg; }
static void do_store(void* arg) { *(volatile uint64_t*)arg = 1; }
static void do_nothing(void* arg) { (void)arg; }

int main(unsigned cpu, unsigned ncpus, unsigned long ram_bytes)
{
    (void)cpu, (void)ncpus, (void)ram_bytes;

    report_prefix_push("handlers");
    handle_exception(BP_VECTOR, on_breakpoint);
    uint64_t after_int3;
    __asm__ volatile("int3\n1:\n\tlea 1b(%%rip), %0" : "=r"(after_int3)::"memory");
    report(bp_count == 1 && bp_rip == after_int3, "#BP is a trap: handler saw RIP 0x%lx after INT3 (0x%lx)", bp_rip,
           after_int3);
    handle_exception(BP_VECTOR, NULL);

    handle_exception(SOFT_VECTOR, on_soft_interrupt);
    uint64_t rax = 0x1234, after_int;
    __asm__ volatile("int $0x40\n1:\n\tlea 1b(%%rip), %1" : "+a"(rax), "=r"(after_int)::"memory");
    report(soft_count == 1 && soft_rip == after_int && soft_rax == 0x1234 && rax == 0x600d,
           "INT 0x40 reached its handler, which saw RAX 0x%lx and changed it to 0x%lx", soft_rax, rax);
    handle_exception(SOFT_VECTOR, NULL);
    report_prefix_pop();

    report_prefix_push("faults");
    report(catch_exception(do_nothing, NULL) == NO_EXCEPTION, "catch_exception returns NO_EXCEPTION without a fault");
    unsigned v = catch_exception(do_ud2, NULL);
    report(v == UD_VECTOR, "UD2 -> #UD (vector %u)", v);
    v = catch_exception(do_div0, NULL);
    report(v == DE_VECTOR && last_fault.error_code == 0, "DIV by 0 -> #DE (vector %u)", v);
    v = catch_exception(do_noncanonical_load, (void*)0x8000000000000000ull);
    report(v == GP_VECTOR && last_fault.error_code == 0, "non-canonical load -> #GP(0) (vector %u error 0x%lx)", v,
           last_fault.error_code);
    v = catch_exception(do_noncanonical_stack, (void*)0x8000000000000000ull);
    report(v == SS_VECTOR && last_fault.error_code == 0,
           "non-canonical RSP-based load -> #SS(0) (vector %u error 0x%lx)", v, last_fault.error_code);
    /* The boot page tables map 0-4 GiB only, so 5 GiB is not present: error code 0 for a
     * supervisor read, 2 (W) for a write (SDM Vol.3A 4.7). */
    uint64_t unmapped = 5ull << 30;
    v = catch_exception(do_load, (void*)unmapped);
    report(v == PF_VECTOR && last_fault.error_code == 0 && last_fault.cr2 == unmapped,
           "read at 5 GiB -> #PF error 0x%lx cr2 0x%lx", last_fault.error_code, last_fault.cr2);
    v = catch_exception(do_store, (void*)(unmapped + 0x123));
    report(v == PF_VECTOR && last_fault.error_code == 2 && last_fault.cr2 == unmapped + 0x123,
           "write at 5 GiB + 0x123 -> #PF error 0x%lx cr2 0x%lx", last_fault.error_code, last_fault.cr2);
    report(expect_fault(UD_VECTOR, do_ud2, NULL), "expect_fault(#UD, ud2)");
    report((read_rflags() & RFLAGS_IF) == 0, "IF still clear after the recoveries");
    report_prefix_pop();

    report_prefix_push("fixup");
    uint64_t value = 0;
    v = rdmsr_safe(MSR_IA32_PAT, &value);
    report(v == 0 && value != 0, "rdmsr_safe(PAT) = 0x%lx, no fault", value);
    v = rdmsr_safe(0xdeadbeef, &value);
    report(v == GP_VECTOR && value == 0, "rdmsr_safe(0xdeadbeef) -> #GP, value zeroed");
    report_prefix_pop();
    report_summary();
}
