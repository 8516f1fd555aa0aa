/* exception.c - the C side of every IDT vector: registered handlers, the fixup table,
 * catch_exception() unwinding, and the report for an exception nobody expected. */
#include "desc.h"
#include "libc.h"

static ex_handler_fn handlers[256];
struct fault_info last_fault;
volatile unsigned fixup_status;

/* Written by catch_exception (entry.S). */
uint64_t catch_rsp;
uint64_t catch_rflags;
volatile uint32_t catch_armed;
extern const uint8_t catch_landing[];

extern const struct ex_table_entry __ex_table_start[], __ex_table_end[];

static const char* const vector_names[32] = {
    "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "CSO", "#TS", "#NP", "#SS", "#GP", "#PF", "RSVD",
    "#MF", "#AC", "#MC", "#XM", "#VE", "#CP", "RSVD", "RSVD", "RSVD", "RSVD", "RSVD", "RSVD", "#HV", "#VC", "#SX",
    "RSVD",
};

const char* exception_mnemonic(unsigned vector) { return vector < 32 ? vector_names[vector] : "INTR"; }

ex_handler_fn handle_exception(unsigned vector, ex_handler_fn fn)
{
    ex_handler_fn old = handlers[vector & 255];
    handlers[vector & 255] = fn;
    return old;
}

static void record_fault(const struct ex_frame* f, uint64_t cr2)
{
    last_fault.vector = f->vector;
    last_fault.error_code = f->error_code;
    last_fault.rip = f->rip;
    last_fault.cs = f->cs;
    last_fault.cr2 = cr2;
    last_fault.rsp = f->rsp;
    last_fault.ss = f->ss;
    last_fault.frame_top = (uint64_t)(uintptr_t)(f + 1);
}

void exception_dispatch(struct ex_frame* f);
void exception_dispatch(struct ex_frame* f)
{
    /* Read CR2 first: a #PF inside this handler would overwrite it (SDM Vol.3A 4.7). */
    uint64_t cr2 = f->vector == PF_VECTOR ? read_cr2() : 0;
    unsigned vector = (unsigned)(f->vector & 255);

    if (handlers[vector]) {
        handlers[vector](f);
        return;
    }
    /* Faults are reported with RIP at the faulting instruction (SDM Vol.3A 6.5), which is
     * what the table records; only CPL0 code may use it. */
    if ((f->cs & 3) == 0) {
        for (const struct ex_table_entry* e = __ex_table_start; e < __ex_table_end; ++e) {
            if (e->insn == f->rip) {
                record_fault(f, cr2);
                fixup_status = FIXUP_HIT | vector;
                f->rip = e->fixup;
                return;
            }
        }
    }
    if (catch_armed) {
        record_fault(f, cr2);
        catch_armed = 0;
        /* Resume inside catch_exception at CPL0 on its saved stack, whatever CPL and stack
         * the exception came from; RAX carries the vector as the return value. */
        f->rax = vector;
        f->rip = (uint64_t)(uintptr_t)catch_landing;
        f->cs = KERNEL_CS;
        f->ss = KERNEL_DS;
        f->rsp = catch_rsp;
        f->rflags = catch_rflags;
        return;
    }
    printf("Unhandled exception %u %s at rip 0x%lx error 0x%lx cr2 0x%lx cs 0x%lx rsp 0x%lx\n", vector,
           exception_mnemonic(vector), f->rip, f->error_code, cr2, f->cs, f->rsp);
    printf("FAIL: unhandled exception\n");
    exit(1);
}

unsigned rdmsr_safe(uint32_t msr, uint64_t* value)
{
    uint32_t lo = 0, hi = 0;
    fixup_status = 0;
    __asm__ volatile("1: rdmsr\n2:\n\t" EX_TABLE_ENTRY("1b", "2b") : "=a"(lo), "=d"(hi) : "c"(msr) : "memory");
    if (fixup_status) {
        *value = 0;
        return fixup_status & 255;
    }
    *value = ((uint64_t)hi << 32) | lo;
    return 0;
}

unsigned wrmsr_safe(uint32_t msr, uint64_t value)
{
    fixup_status = 0;
    __asm__ volatile("1: wrmsr\n2:\n\t" EX_TABLE_ENTRY("1b", "2b")::"c"(msr), "a"((uint32_t)value),
                     "d"((uint32_t)(value >> 32))
                     : "memory");
    return fixup_status ? (fixup_status & 255) : 0;
}
