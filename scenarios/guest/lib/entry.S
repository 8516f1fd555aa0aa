/* entry.S - image entry point, IDT stubs and the exception-unwinding helpers.
 *
 * Machine state at entry is fixed by scenarios/guest/boot.md §3: 64-bit mode, RSP = this vCPU's
 * boot stack, RDI = vCPU index, RSI = vCPU count, RDX = RAM bytes, IF = 0, IDTR = {0,0}.
 * Until setup_descriptors() has loaded our IDT any exception is a triple fault, so the code
 * before that point is kept to plain moves and calls.
 */
#include "asm_defs.h"

    .section .text.entry, "ax"
    .globl _start
    .type _start, @function
_start:
    /* Guest RAM starts zeroed and the loader zeroes each segment past p_filesz, so .bss is
     * already zero: no clearing loop (which would also race with the other vCPUs). */
    /* Only vCPUs 0-31 get a boot stack (boot.md §3); a higher one would push into the
     * boot page tables at 0x10000-0x15fff, so it switches to its own stack first. */
    cmp $BOOT_STACK_CPUS, %rdi
    jae 2f
    mov %rdi, %r12              /* vCPU index (callee-saved across the C calls below) */
    mov %rsi, %r13              /* vCPU count */
    mov %rdx, %r14              /* RAM bytes */
    xor %ebp, %ebp              /* terminate frame-pointer chains for debuggers */
    call guest_start            /* C: (cpu, ncpus, ram) are still in rdi/rsi/rdx */
    /* guest_start does not return; if it ever did, stop this vCPU cleanly. */
1:  cli
    hlt
    jmp 1b
2:  cmp $MAX_CPUS, %rdi
    jb high_cpu_start
    /* Beyond MAX_CPUS (the schema allows none): report "finished" without touching memory. */
    xor %eax, %eax
    out %al, $0xf5              /* this vCPU is finished */
3:  cli
    hlt
    jmp 3b
    .size _start, . - _start

/* ---------------------------------------------------------------------------------------
 * IDT stubs: 256 stubs of exactly 16 bytes each, so stub i lives at isr_stubs + 16*i and
 * the IDT builder needs no address table. The CPU pushes an error code only for vectors
 * 8, 10-14, 17, 21, 29 and 30 (SDM Vol.3A Table 6-1); every other stub pushes a dummy 0 so
 * the frame has one shape (struct ex_frame in desc.h).
 */
    .text
    .altmacro
    .macro ISR_STUB vec
    .balign 16
    .if (\vec == 8) || ((\vec >= 10) && (\vec <= 14)) || (\vec == 17) || (\vec == 21) || (\vec == 29) || (\vec == 30)
    .else
    pushq $0
    .endif
    pushq $\vec
    jmp isr_common
    .endm

    .balign 16
    .globl isr_stubs
isr_stubs:
    .set vec, 0
    .rept 256
    ISR_STUB %vec
    .set vec, vec + 1
    .endr
    .globl isr_stubs_end
isr_stubs_end:
    .noaltmacro

/* In 64-bit mode the CPU aligns RSP to 16 before pushing its 5-quadword frame (SDM Vol.3A
 * 6.14.2); with the 2 quadwords of the stub and 15 GPRs the total is 22 quadwords, so RSP
 * is 16-byte aligned at the call as the SysV ABI requires. */
isr_common:
    pushq %rax
    pushq %rbx
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %rbp
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    cld
    mov %rsp, %rdi
    call exception_dispatch
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rbp
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rbx
    popq %rax
    add $16, %rsp               /* vector + error code */
    iretq

/* ---------------------------------------------------------------------------------------
 * unsigned catch_exception(void (*fn)(void*), void* arg)
 * Saves the callee-saved registers and RSP, calls fn(arg). If fn raises an exception the
 * dispatcher rewrites the frame so IRETQ lands on catch_landing with RSP restored and
 * RAX = vector (exception.c); otherwise we return NO_EXCEPTION (~0).
 */
    .globl catch_exception
    .type catch_exception, @function
catch_exception:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    sub $8, %rsp                /* entry RSP is 8 mod 16; 6 pushes + 8 make it 0 mod 16 */
    mov %rsp, catch_rsp(%rip)
    pushfq
    popq %rax
    mov %rax, catch_rflags(%rip)
    movl $1, catch_armed(%rip)
    mov %rdi, %rax
    mov %rsi, %rdi
    call *%rax
    mov $0xffffffff, %eax
    .globl catch_landing
catch_landing:
    movl $0, catch_armed(%rip)
    add $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size catch_exception, . - catch_exception

/* void enter_user_mode(const struct user_entry* e)
 * Builds the IRETQ frame SS:RSP, RFLAGS, CS:RIP (SDM Vol.3A 6.14.3) for CPL3 and jumps. */
    .globl enter_user_mode
    .type enter_user_mode, @function
enter_user_mode:
    pushq $USER_DS_SEL
    pushq USER_ENTRY_RSP(%rdi)
    pushq USER_ENTRY_RFLAGS(%rdi)
    pushq $USER_CS_SEL
    pushq USER_ENTRY_RIP(%rdi)
    mov USER_ENTRY_ARG(%rdi), %rdi
    /* Do not leak kernel values into user mode: the user code sees only RDI. */
    xor %eax, %eax
    xor %ebx, %ebx
    xor %ecx, %ecx
    xor %edx, %edx
    xor %esi, %esi
    xor %ebp, %ebp
    iretq
    .size enter_user_mode, . - enter_user_mode

    .section .late_text, "ax"
/* Start-up of the vCPUs without a boot stack. In .late_text, which guest.ld links after all
 * other code, so supporting them moved no address of the code the other vCPUs run.
 *
 * vCPU i in [BOOT_STACK_CPUS, MAX_CPUS): RSP = top of high_cpu_stacks[i - BOOT_STACK_CPUS],
 * i.e. high_cpu_stacks + (i - BOOT_STACK_CPUS + 1) * HIGH_CPU_STACK_BYTES. The top is 16-byte
 * aligned like a boot stack's, so the CALL below sees the same alignment as on vCPUs 0-31.
 * The TSS slot is filled here, before guest_start, so a vCPU with a boot stack runs exactly
 * the instructions it ran before high vCPUs existed. */
    .type high_cpu_start, @function
high_cpu_start:
    lea -(BOOT_STACK_CPUS - 1)(%rdi), %rax
    shl $HIGH_CPU_STACK_SHIFT, %rax
    lea high_cpu_stacks(%rip), %rsp
    add %rax, %rsp
    mov %rdi, %r12
    mov %rsi, %r13
    mov %rdx, %r14
    xor %ebp, %ebp
    call setup_high_cpu_tss     /* (cpu) in rdi */
    mov %r12, %rdi
    mov %r13, %rsi
    mov %r14, %rdx
    call guest_start
1:  cli                         /* guest_start does not return */
    hlt
    jmp 1b
    .size high_cpu_start, . - high_cpu_start

    /* In .late_bss, which guest.ld places after all other .bss, so that adding these stacks
     * moved none of the data the other vCPUs use onto different pages. */
    .section .late_bss, "aw", @nobits
    .balign 4096
    .globl high_cpu_stacks
high_cpu_stacks:
    .skip (MAX_CPUS - BOOT_STACK_CPUS) * HIGH_CPU_STACK_BYTES
    .size high_cpu_stacks, . - high_cpu_stacks

    .section .note.GNU-stack, "", @progbits
