/* desc.h - descriptor tables (GDT, per-vCPU TSS, IDT) and exception handling.
 *
 * GDT layout (selectors):
 *   0x00 null
 *   0x08 kernel code, 64-bit, DPL0      (same selector the boot protocol uses)
 *   0x10 kernel data, DPL0
 *   0x18 user data, DPL3  -> selector 0x1b
 *   0x20 user code, 64-bit, DPL3 -> selector 0x23
 *   0x28 + 16*i  64-bit TSS descriptor of vCPU i (16 bytes, SDM Vol.3A 8.2.3)
 */
#pragma once

#include "asm_defs.h"
#include "processor.h"

#define KERNEL_CS 0x08
#define KERNEL_DS 0x10
#define USER_DS 0x1b
#define USER_CS 0x23
#define TSS_SEL(cpu) (0x28 + 16 * (cpu))

/* 64-bit TSS (SDM Vol.3A Figure 8-11). Packed: rsp0 sits at offset 4. */
struct tss64 {
    uint32_t reserved0;
    uint64_t rsp[3];
    uint64_t reserved1;
    uint64_t ist[7];
    uint64_t reserved2;
    uint16_t reserved3;
    uint16_t iomap_base;
} __attribute__((packed));
_Static_assert(sizeof(struct tss64) == 0x68, "TSS must be 104 bytes");
_Static_assert(__builtin_offsetof(struct tss64, rsp) == 4, "RSP0 at offset 4");
_Static_assert(__builtin_offsetof(struct tss64, ist) == 0x24, "IST1 at offset 0x24");

/* What the IDT stubs (isr.S) leave on the stack: the GPRs pushed by the common stub, then
 * the vector and error code (a dummy 0 where the CPU pushes none), then the frame the CPU
 * pushed (SDM Vol.3A 6.14.2, Figure 6-9). Handlers may edit it; iretq resumes from it. */
struct ex_frame {
    uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
    uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
    uint64_t vector;
    uint64_t error_code;
    uint64_t rip, cs, rflags, rsp, ss;
};
_Static_assert(sizeof(struct ex_frame) == 22 * 8, "ex_frame layout must match isr.S");

typedef void (*ex_handler_fn)(struct ex_frame* frame);

/* Per-vCPU setup: load our GDT, this vCPU's TSS and the shared IDT. Called by entry.S. */
void setup_descriptors(unsigned cpu);

/* Fills in the TSS and GDT slot of a vCPU >= BOOT_STACK_CPUS; entry.S calls it on that vCPU
 * before guest_start (vCPU 0 builds the slots of the vCPUs with boot stacks). */
void setup_high_cpu_tss(unsigned cpu);

/* The TSS of a vCPU (e.g. to read or change RSP0). */
struct tss64* cpu_tss(unsigned cpu);

/* Install a C handler for one vector (interrupts, irq.h). Returns the old one. */
ex_handler_fn handle_exception(unsigned vector, ex_handler_fn fn);

/* Change the DPL of a gate (3 lets INT n from CPL3 through, SDM Vol.3A 6.12.1.1). */
void set_gate_dpl(unsigned vector, unsigned dpl);

/* Deliver a vector on IST stack `ist` (1 = this vCPU's #DF stack; 0 = the current stack),
 * SDM Vol.3A 6.14.5: the CPU then switches stacks unconditionally, even at CPL0. */
void set_gate_ist(unsigned vector, unsigned ist);

/* Details of the last exception that was caught by the fixup table or by catch_exception. */
struct fault_info {
    uint64_t vector;
    uint64_t error_code;
    uint64_t rip;
    uint64_t cs;
    uint64_t cr2;
    uint64_t rsp;       /* RSP and SS of the interrupted code, from the frame */
    uint64_t ss;
    uint64_t frame_top; /* address just above the CPU-pushed frame, i.e. the stack the CPU switched to */
};
extern struct fault_info last_fault;

/* Run fn(arg); if it raises an exception (at any CPL), unwind back here and return the
 * vector; return -1 (as unsigned: ~0u) if fn returns normally. Not nestable. */
#define NO_EXCEPTION (~0u)
unsigned catch_exception(void (*fn)(void*), void* arg);

/* The kvm-unit-tests "expect a fault" pattern: true if fn(arg) raised exactly `vector`. */
static inline bool expect_fault(unsigned vector, void (*fn)(void*), void* arg)
{
    return catch_exception(fn, arg) == vector;
}

/* Enter CPL3 at user_rip with RSP = user_rsp and RDI = arg via IRETQ (SDM Vol.3A 6.14.3 "IRET
 * in IA-32e mode"). The user code never returns: it leaves through an exception or INT n,
 * which catch_exception turns into this function's return value (the vector). */
unsigned run_in_user_mode(uint64_t user_rip, uint64_t user_rsp, uint64_t arg, uint64_t rflags);

/* Used by the inline-asm fixup macro: an entry says "if RIP == insn faults, resume at fixup". */
struct ex_table_entry {
    uint64_t insn;
    uint64_t fixup;
};

/* ASM_TRY-style helper: emit "1: <insn>" plus a fixup entry resuming right after it.
 * The handler stores the vector in last_fault.vector; callers clear it first. */
#define EX_TABLE_ENTRY(insn_label, fixup_label)                                                              \
    ".pushsection .ex_table, \"a\"\n\t.balign 8\n\t.quad " insn_label ", " fixup_label "\n\t.popsection\n\t"

/* Set by the exception handler when it applies a fixup: FIXUP_HIT | vector. Callers clear it
 * before the guarded instruction. FIXUP_HIT keeps #DE (vector 0) distinguishable from "no
 * fault". One global: only vCPU 0 runs tests so far (multi-vCPU needs a per-CPU copy). */
#define FIXUP_HIT 0x100u
extern volatile unsigned fixup_status;
