/* usermode - CPL3 and paging protection. Builds 4-level page tables with 4 KiB pages (only
 * the .user_text / .user_data pages carry the U bit; user data is NX), enters CPL3 with
 * IRETQ, and checks what the CPU does when user code:
 *   - reads/writes a supervisor page or a not-present page  -> #PF, error code P/W/U bits and
 *     CR2 (SDM Vol.3A 4.7, Figure 4-12),
 *   - fetches from an NX page                               -> #PF with I/D set (SDM 4.6),
 *   - runs HLT, CLI, MOV from CR3, OUT with IOPL 0          -> #GP(0) (SDM Vol.2 per insn),
 *   - runs INT n through a DPL0 gate                        -> #GP(n*8+2) (SDM Vol.3A 6.12.1.1),
 *   - runs INT 0x80 through a DPL3 gate                     -> back to CPL0.
 * Every exception from CPL3 must arrive on the TSS.RSP0 stack (SDM Vol.3A 6.14.4) with the
 * user SS:RSP in the frame. */
#include "desc.h"
#include "libc.h"
#include "paging.h"
#include "report.h"

#define SYSCALL_VECTOR 0x80

/* The user-mode code. Each snippet does one thing and then INT 0x80, so "no exception"
 * shows up as vector 0x80. */
__asm__(".pushsection .user_text, \"ax\"\n"
        ".globl u_identity\n"
        "u_identity:\n\t"
        "mov %cs, %eax\n\tmov %rax, 0(%rdi)\n\t"
        "mov %ss, %eax\n\tmov %rax, 8(%rdi)\n\t"
        "mov %rsp, 16(%rdi)\n\t"
        "int $0x80\n"
        ".globl u_read\n"
        "u_read:\n\tmov (%rdi), %rax\n\tint $0x80\n"
        ".globl u_write\n"
        "u_write:\n\tmovq $0x5a, (%rdi)\n\tint $0x80\n"
        ".globl u_hlt\n"
        "u_hlt:\n\thlt\n\tint $0x80\n"
        ".globl u_cli\n"
        "u_cli:\n\tcli\n\tint $0x80\n"
        ".globl u_read_cr3\n"
        "u_read_cr3:\n\tmov %cr3, %rax\n\tint $0x80\n"
        ".globl u_out\n"
        "u_out:\n\tout %al, $0xe9\n\tint $0x80\n"
        ".globl u_int81\n"
        "u_int81:\n\tint $0x81\n\tint $0x80\n"
        ".globl u_jump\n"
        "u_jump:\n\tjmp *%rdi\n"
        ".popsection\n");

extern const uint8_t u_identity[], u_read[], u_write[], u_hlt[], u_cli[], u_read_cr3[], u_out[], u_int81[],
    u_jump[];
extern const uint8_t __user_text_start[], __user_text_end[], __user_data_start[], __user_data_end[],
    __image_end[];

/* User-accessible data: a stack, a scratch block, and a page of code bytes that must not run
 * because the page is NX (it holds "int $0x80", so executing it would be visible). */
static uint8_t user_stack[4096] __attribute__((section(".user_data"), aligned(4096)));
static volatile uint64_t user_scratch[4] __attribute__((section(".user_data"), aligned(64)));
static uint8_t user_nx_code[4096] __attribute__((section(".user_data"), aligned(4096))) = {0xcd, 0x80};

/* A supervisor-only page (no U bit). */
static volatile uint64_t kernel_page[512] __attribute__((aligned(4096)));

#define USER_STACK_TOP ((uint64_t)(uintptr_t)(user_stack + sizeof user_stack))

static uint64_t rsp0;

static unsigned run_user(const uint8_t* code, uint64_t arg)
{
    return run_in_user_mode((uint64_t)(uintptr_t)code, USER_STACK_TOP, arg, 0x2);
}

static bool on_rsp0(void) { return last_fault.frame_top == rsp0 && last_fault.ss == USER_DS; }

static void expect_pf(const char* what, const uint8_t* code, uint64_t addr, uint64_t error_code)
{
    unsigned v = run_user(code, addr);
    report(v == PF_VECTOR && last_fault.error_code == error_code && last_fault.cr2 == addr && on_rsp0(),
           "%s: #PF error 0x%lx (want 0x%lx) cr2 0x%lx (want 0x%lx), vector %u, on RSP0 %d", what,
           last_fault.error_code, error_code, last_fault.cr2, addr, v, on_rsp0());
}

static void expect_gp(const char* what, const uint8_t* code, uint64_t error_code)
{
    unsigned v = run_user(code, 0);
    report(v == GP_VECTOR && last_fault.error_code == error_code && last_fault.rip == (uint64_t)(uintptr_t)code &&
               (last_fault.cs & 3) == 3 && on_rsp0(),
           "%s: #GP(0x%lx) (want 0x%lx) at rip 0x%lx from CPL %lu, vector %u", what, last_fault.error_code,
           error_code, last_fault.rip, last_fault.cs & 3, v);
}

static uint64_t* build_page_tables(void)
{
    uint64_t* pml4 = pt_new_root();
    if (!pml4)
        return NULL;
    uint64_t end = ((uint64_t)(uintptr_t)__image_end + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
    /* Low memory (boot GDT/TSS, boot stacks) and the image: supervisor read/write. */
    if (pt_identity_map(pml4, 0, end, PTE_W))
        return NULL;
    for (uint64_t a = (uint64_t)(uintptr_t)__user_text_start; a < (uint64_t)(uintptr_t)__user_text_end; a += PAGE_SIZE)
        if (pt_set_flags(pml4, a, PTE_U, PTE_W))
            return NULL;
    for (uint64_t a = (uint64_t)(uintptr_t)__user_data_start; a < (uint64_t)(uintptr_t)__user_data_end; a += PAGE_SIZE)
        if (pt_set_flags(pml4, a, PTE_U | PTE_W | PTE_NX, 0))
            return NULL;
    return pml4;
}

int main(unsigned cpu, unsigned ncpus, unsigned long ram_bytes)
{
    (void)ncpus, (void)ram_bytes;
    rsp0 = cpu_tss(cpu)->rsp[0];
    set_gate_dpl(SYSCALL_VECTOR, 3);

    report_prefix_push("setup");
    enable_nx();
    report((rdmsr(MSR_EFER) & EFER_NXE) != 0, "EFER.NXE set");
    uint64_t* pml4 = build_page_tables();
    report(pml4 != NULL, "page tables built (4 KiB pages up to %p)", (const void*)__image_end);
    if (!pml4)
        report_summary();
    write_cr3((uint64_t)(uintptr_t)pml4);
    kernel_page[0] = 0x1234;
    report(read_cr3() == (uint64_t)(uintptr_t)pml4 && kernel_page[0] == 0x1234, "running on our CR3 0x%lx",
           read_cr3());
    report_prefix_pop();

    report_prefix_push("cpl3");
    unsigned v = run_user(u_identity, (uint64_t)(uintptr_t)user_scratch);
    report(v == SYSCALL_VECTOR, "INT 0x80 through a DPL3 gate returns to CPL0 (vector 0x%x)", v);
    report((user_scratch[0] & 3) == 3 && user_scratch[0] == USER_CS, "CS in user mode is 0x%lx (CPL 3)",
           user_scratch[0]);
    report(user_scratch[1] == USER_DS, "SS in user mode is 0x%lx", user_scratch[1]);
    report(user_scratch[2] == USER_STACK_TOP, "user RSP is the stack we gave IRETQ");
    report(last_fault.frame_top == rsp0, "the INT 0x80 frame sits on TSS.RSP0 (top 0x%lx, rsp0 0x%lx)",
           last_fault.frame_top, rsp0);
    report((last_fault.cs & 3) == 3 && last_fault.ss == USER_DS && last_fault.rsp == USER_STACK_TOP,
           "the frame holds the user CS 0x%lx, SS 0x%lx and RSP", last_fault.cs, last_fault.ss);
    report((read_cs() & 3) == 0, "back at CPL0 (CS 0x%x)", read_cs());
    user_scratch[3] = 0;
    v = run_user(u_write, (uint64_t)(uintptr_t)&user_scratch[3]);
    report(v == SYSCALL_VECTOR && user_scratch[3] == 0x5a, "user code may write a U page");
    report_prefix_pop();

    report_prefix_push("paging");
    kernel_page[0] = 0x1234;
    expect_pf("read supervisor page", u_read, (uint64_t)(uintptr_t)&kernel_page[0], PFERR_P | PFERR_U);
    expect_pf("write supervisor page", u_write, (uint64_t)(uintptr_t)&kernel_page[8], PFERR_P | PFERR_W | PFERR_U);
    report(kernel_page[8] == 0, "the faulting write did not happen");
    uint64_t unmapped = (((uint64_t)(uintptr_t)__image_end + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)) + 16 * PAGE_SIZE;
    expect_pf("read not-present page", u_read, unmapped, PFERR_U);
    expect_pf("write not-present page", u_write, unmapped + 8, PFERR_W | PFERR_U);
    expect_pf("fetch from NX user page", u_jump, (uint64_t)(uintptr_t)user_nx_code, PFERR_P | PFERR_U | PFERR_I);
    report(last_fault.rip == (uint64_t)(uintptr_t)user_nx_code, "NX fault RIP is the target 0x%lx", last_fault.rip);
    report_prefix_pop();

    report_prefix_push("privileged");
    expect_gp("HLT at CPL3", u_hlt, 0);
    expect_gp("CLI at CPL3 with IOPL 0", u_cli, 0);
    expect_gp("MOV from CR3 at CPL3", u_read_cr3, 0);
    expect_gp("OUT at CPL3 with IOPL 0 and no I/O bitmap", u_out, 0);
    /* Error code for a gate fault: the vector's IDT index with the IDT bit (bit 1) set. */
    expect_gp("INT 0x81 through a DPL0 gate", u_int81, 0x81 * 8 + 2);
    report_prefix_pop();

    report_summary();
}
