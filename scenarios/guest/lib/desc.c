/* desc.c - GDT, per-vCPU TSS and IDT construction (SDM Vol.3A chapters 3, 6 and 8). */
#include "desc.h"

#include "asm_defs.h"

_Static_assert(USER_DS_SEL == USER_DS && USER_CS_SEL == USER_CS, "asm_defs.h out of sync");

/* Descriptor words. Code/data descriptors: in 64-bit mode base and limit are ignored but we
 * keep the flat 4 GiB values the boot GDT uses (SDM Vol.3A 3.4.5, 5.2.1). */
#define SEG_KERNEL_CODE64 0x00af9b000000ffffull /* P, DPL0, S, code exec/read, accessed, L, G */
#define SEG_KERNEL_DATA 0x00cf93000000ffffull   /* P, DPL0, S, data read/write, accessed, D/B, G */
#define SEG_USER_DATA 0x00cff3000000ffffull     /* as kernel data, DPL3 */
#define SEG_USER_CODE64 0x00affb000000ffffull   /* as kernel code, DPL3 */

#define GDT_FIXED_ENTRIES 5
static uint64_t gdt[GDT_FIXED_ENTRIES + 2 * MAX_CPUS] __attribute__((aligned(16)));
static uint64_t idt[256 * 2] __attribute__((aligned(16)));
static struct tss64 tss[MAX_CPUS] __attribute__((aligned(16)));

/* RSP0: the stack the CPU switches to on an exception or INT n from CPL3 (SDM Vol.3A 6.12.1).
 * IST1: a known-good stack for #DF, so a double fault caused by a bad kernel stack can still
 * be reported (SDM Vol.3A 6.14.5). */
#define RSP0_STACK_BYTES 8192
#define IST_STACK_BYTES 4096
static uint8_t rsp0_stacks[MAX_CPUS][RSP0_STACK_BYTES] __attribute__((aligned(16)));
static uint8_t ist_stacks[MAX_CPUS][IST_STACK_BYTES] __attribute__((aligned(16)));

extern const uint8_t isr_stubs[];

struct __attribute__((packed)) table_pointer {
    uint16_t limit;
    uint64_t base;
};

static void set_gate(unsigned vector, uint64_t handler, unsigned ist, unsigned dpl)
{
    /* 64-bit interrupt gate, type 0xE: clears IF on entry (SDM Vol.3A 6.14.1, Figure 6-8). */
    idt[2 * vector] = (handler & 0xffffull) | ((uint64_t)KERNEL_CS << 16) | ((uint64_t)(ist & 7) << 32) |
                      (0xeull << 40) | ((uint64_t)(dpl & 3) << 45) | (1ull << 47) |
                      ((handler >> 16 & 0xffffull) << 48);
    idt[2 * vector + 1] = handler >> 32;
}

void set_gate_dpl(unsigned vector, unsigned dpl)
{
    idt[2 * (vector & 255)] = (idt[2 * (vector & 255)] & ~(3ull << 45)) | ((uint64_t)(dpl & 3) << 45);
}

void set_gate_ist(unsigned vector, unsigned ist)
{
    idt[2 * (vector & 255)] = (idt[2 * (vector & 255)] & ~(7ull << 32)) | ((uint64_t)(ist & 7) << 32);
}

/* Low quadword of a 64-bit TSS descriptor (SDM Vol.3A 8.2.3, Figure 8-4). Type 0x9 = available
 * 64-bit TSS; LTR marks it busy (SDM Vol.3A 8.2.4). The high quadword is base[63:32]. */
#define TSS_DESC_LOW(base, limit)                                                                      \
    (((limit) & 0xffff) | (((base) & 0xffffff) << 16) | (0x9ull << 40) | (1ull << 47) |               \
     (((limit) >> 16 & 0xf) << 48) | (((base) >> 24 & 0xff) << 56))

static void set_tss_descriptor(unsigned cpu)
{
    uint64_t base = (uint64_t)(uintptr_t)&tss[cpu];
    uint64_t limit = sizeof(struct tss64) - 1;
    gdt[GDT_FIXED_ENTRIES + 2 * cpu] = TSS_DESC_LOW(base, limit);
    gdt[GDT_FIXED_ENTRIES + 2 * cpu + 1] = base >> 32;
}

/* Macros, not functions: vCPU 0's start-up code stays exactly what it was before vCPUs past
 * BOOT_STACK_CPUS were supported (a second caller of set_tss_descriptor would change GCC's
 * inlining at -Os, an always_inline helper adds instructions at -O0). */
#define INIT_TSS_FIELDS(cpu)                                                                           \
    do {                                                                                               \
        tss[cpu].rsp[0] = (uint64_t)(uintptr_t)(rsp0_stacks[cpu] + RSP0_STACK_BYTES);                  \
        tss[cpu].ist[0] = (uint64_t)(uintptr_t)(ist_stacks[cpu] + IST_STACK_BYTES);                    \
        /* An I/O bitmap base past the limit means "no bitmap": every IN/OUT at CPL3 with IOPL 0 \
         * faults (SDM Vol.1 19.5.2). */                                                               \
        tss[cpu].iomap_base = sizeof(struct tss64);                                                    \
    } while (0)

/* Called by entry.S on a vCPU >= BOOT_STACK_CPUS, on its own stack, before guest_start. Its TSS
 * and GDT slot are its own, so no ordering with vCPU 0's build_shared_tables() is needed;
 * setup_descriptors() still waits for the shared entries. Linked after all other code
 * (guest.ld, .late_text) so that it moves no address of the code every vCPU runs. */
__attribute__((section(".late_text"))) void setup_high_cpu_tss(unsigned cpu)
{
    if (cpu < BOOT_STACK_CPUS || cpu >= MAX_CPUS)
        return;
    INIT_TSS_FIELDS(cpu);
    uint64_t base = (uint64_t)(uintptr_t)&tss[cpu];
    uint64_t limit = sizeof(struct tss64) - 1;
    gdt[GDT_FIXED_ENTRIES + 2 * cpu] = TSS_DESC_LOW(base, limit);
    gdt[GDT_FIXED_ENTRIES + 2 * cpu + 1] = base >> 32;
}

struct tss64* cpu_tss(unsigned cpu) { return &tss[cpu < MAX_CPUS ? cpu : 0]; }

static volatile int tables_built;

static void build_shared_tables(void)
{
    gdt[0] = 0;
    gdt[1] = SEG_KERNEL_CODE64;
    gdt[2] = SEG_KERNEL_DATA;
    gdt[3] = SEG_USER_DATA;
    gdt[4] = SEG_USER_CODE64;
    /* Only the vCPUs with boot stacks: each higher vCPU fills its own slot (setup_high_cpu_tss),
     * so vCPU 0's start-up work does not grow with MAX_CPUS. */
    for (unsigned cpu = 0; cpu < BOOT_STACK_CPUS; ++cpu) {
        INIT_TSS_FIELDS(cpu);
        set_tss_descriptor(cpu);
    }
    for (unsigned v = 0; v < 256; ++v)
        set_gate(v, (uint64_t)(uintptr_t)(isr_stubs + 16 * v), v == DF_VECTOR ? 1 : 0, 0);
    /* Breakpoint and overflow are meant to be raised by INT3 / INTO from any CPL. */
    set_gate_dpl(BP_VECTOR, 3);
    set_gate_dpl(OF_VECTOR, 3);
    tables_built = 1;
}

void setup_descriptors(unsigned cpu)
{
    if (cpu == 0)
        build_shared_tables();
    while (!tables_built)
        pause();

    struct table_pointer gdtr = {sizeof(gdt) - 1, (uint64_t)(uintptr_t)gdt};
    struct table_pointer idtr = {sizeof(idt) - 1, (uint64_t)(uintptr_t)idt};
    __asm__ volatile("lgdt %0" ::"m"(gdtr));
    /* Reload every segment register so no cached descriptor still refers to the boot GDT
     * (SDM Vol.3A 3.4.3: the hidden part is only refreshed by a load). CS needs a far
     * transfer: push the selector and target and LRETQ. */
    __asm__ volatile("pushq %[cs]\n\t"
                     "leaq 1f(%%rip), %%rax\n\t"
                     "pushq %%rax\n\t"
                     "lretq\n"
                     "1:\n\t"
                     "movl %[ds], %%eax\n\t"
                     "movl %%eax, %%ds\n\t"
                     "movl %%eax, %%es\n\t"
                     "movl %%eax, %%ss\n\t"
                     "movl %%eax, %%fs\n\t"
                     "movl %%eax, %%gs\n\t"
                     :
                     : [cs] "i"(KERNEL_CS), [ds] "i"(KERNEL_DS)
                     : "rax", "memory");
    uint16_t tr = TSS_SEL(cpu);
    __asm__ volatile("ltr %0" ::"r"(tr));
    __asm__ volatile("lidt %0" ::"m"(idtr));
}

struct user_entry {
    uint64_t rip, rsp, arg, rflags;
};
_Static_assert(__builtin_offsetof(struct user_entry, rip) == USER_ENTRY_RIP, "asm_defs.h");
_Static_assert(__builtin_offsetof(struct user_entry, rsp) == USER_ENTRY_RSP, "asm_defs.h");
_Static_assert(__builtin_offsetof(struct user_entry, arg) == USER_ENTRY_ARG, "asm_defs.h");
_Static_assert(__builtin_offsetof(struct user_entry, rflags) == USER_ENTRY_RFLAGS, "asm_defs.h");

void enter_user_mode(const struct user_entry* e);

static void enter_user_thunk(void* p) { enter_user_mode((const struct user_entry*)p); }

unsigned run_in_user_mode(uint64_t user_rip, uint64_t user_rsp, uint64_t arg, uint64_t rflags)
{
    struct user_entry e = {user_rip, user_rsp, arg, rflags | 0x2};
    return catch_exception(enter_user_thunk, &e);
}
