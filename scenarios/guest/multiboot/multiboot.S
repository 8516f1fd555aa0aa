/* multiboot.S - Multiboot (version 1) front end for the unchanged pvsim guest images, so
 * that QEMU's `-kernel` loader and GRUB (under Bochs) can start the very same 64-bit guest
 * code that pvsim runs. pvsim never sees it.
 *
 * A Multiboot loader enters in 32-bit protected mode with paging off, EAX = 0x2BADB002 and
 * EBX = the information structure (Multiboot spec 0.6.96, section 3.2). The code below
 * rebuilds, byte for byte, pvsim's direct-boot machine state (tools/platform/boot.cpp: GDT
 * and TSS at 0x1000, identity page tables at 0x10000, long mode, CR0/CR4/EFER,
 * RSP/RDI/RSI/RDX) and jumps to _start in entry.S exactly as pvsim would start it. With
 * "pvsim.vcpus=N" on the command line it first starts vCPUs 1..N-1 the same way (mb_start.c,
 * the AP path below).
 *
 * Two builds (tools/bench/guestboot.py makes both):
 *   flat (MB_AOUT_KLUDGE defined) - linked into the guest program itself, for the
 *       benchmark (tools/bench/compare.py): guest.ld places every .text.entry input
 *       section at 0x100000 in command-line order, so with this object first the header
 *       opens the flat image (the spec wants it in the first 8 KiB, 4-byte aligned) and the
 *       address fields (spec 3.1.3) tell the loader where the file goes.
 *   stub (default) - linked alone (mb_stub.ld) right after the end of an unchanged guest
 *       ELF image, with _start defined as that image's entry point; guestboot.py wraps
 *       both in an ELF32 file (QEMU's loader refuses ELF64) whose first segment is the
 *       guest's own segment, byte for byte. The header then carries no address fields:
 *       the loader reads the ELF program headers.
 */
#include "asm_defs.h"

#define MB_MAGIC 0x1badb002

/* Bit 1: pass mem_lower/mem_upper. Bit 16: the address fields below are valid, so the
 * loader needs no ELF parsing (only in the flat build). */
#ifdef MB_AOUT_KLUDGE
#define MB_FLAGS 0x00010002
#else
#define MB_FLAGS 0x00000002
#endif
#define MB_BOOT_EAX 0x2badb002
#define MB_INFO_MEM 0x1         /* info flags: mem_lower/mem_upper valid */
#define MB_INFO_CMDLINE 0x4     /* info flags: cmdline valid */
#define MB_CMDLINE_MAX 256      /* copied bytes, NUL included (mb_start.c parses them) */

#define BOOT_GDT 0x1000
#define BOOT_TSS 0x1080
#define BOOT_TSS_TYPE_BYTE (BOOT_GDT + 0x18 + 5)   /* access byte of the TSS descriptor */
#define BOOT_PML4 0x10000
#define BOOT_PDPT 0x11000
#define BOOT_PD 0x12000
#define BOOT_STACK_TOP 0xa0000
#define BOOT_STACK_SHIFT 14                         /* 16 KiB boot stack per vCPU */
#define MSR_EFER 0xc0000080

/* Where the start-up IPI sends an application processor: real mode at vector << 12
 * (SDM Vol.3A 9.4.4.1). Below 1 MiB, clear of the boot structures; mb_start.c copies the
 * trampoline there. AP_SCRATCH_STACK is used only until the AP sets its protocol RSP. */
#define AP_TRAMPOLINE 0x8000
#define AP_SCRATCH_STACK 0x9000
#define TRAMP(label) (AP_TRAMPOLINE + ((label) - mb_ap_trampoline))

/* The general registers the boot protocol leaves zero (scenarios/guest/boot.md §3),
 * except RSP, RDI, RSI and RDX, which the callers set. */
.macro CLEAR_OTHER_GPRS
    xor %eax, %eax
    xor %ebx, %ebx
    xor %ecx, %ecx
    xor %ebp, %ebp
    xor %r8d, %r8d
    xor %r9d, %r9d
    xor %r10d, %r10d
    xor %r11d, %r11d
    xor %r12d, %r12d
    xor %r13d, %r13d
    xor %r14d, %r14d
    xor %r15d, %r15d
.endm

    .section .text.entry, "ax"
    .code32
    .balign 4
mb_header:
    .long MB_MAGIC
    .long MB_FLAGS
    .long -(MB_MAGIC + MB_FLAGS)
#ifdef MB_AOUT_KLUDGE
    .long mb_header             /* header_addr: where this header ends up */
    .long __image_start         /* load_addr: file offset 0 goes here */
    .long 0                     /* load_end_addr: 0 = the whole file is text and data */
    .long __image_end           /* bss_end_addr: the loader zeroes up to here (.bss) */
    .long mb_entry32            /* entry_addr */
#endif

    .globl mb_entry32
    .type mb_entry32, @function
mb_entry32:
    cli
    cld
    /* The loader's information block may lie where the boot structures below go, so take
     * what we need first: RDX at entry is the RAM size, and Multiboot gives mem_upper = KiB
     * of contiguous RAM above 1 MiB (info offset 8); the command line (offset 16) says how
     * many vCPUs to start. No stack yet: ESP is undefined at entry (spec 3.2). */
    xor %esi, %esi
    movb $0, mb_cmdline
    cmp $MB_BOOT_EAX, %eax
    jne 1f
    mov (%ebx), %ecx
    test $MB_INFO_MEM, %ecx
    jz 4f
    mov 8(%ebx), %esi
    add $1024, %esi
4:  test $MB_INFO_CMDLINE, %ecx
    jz 1f
    mov 16(%ebx), %edx
    mov $mb_cmdline, %edi
    mov $(MB_CMDLINE_MAX - 1), %ecx
5:  movb (%edx), %al
    test %al, %al
    jz 6f
    movb %al, (%edi)
    inc %edx
    inc %edi
    dec %ecx
    jnz 5b
6:  movb $0, (%edi)
1:  mov %esi, mb_ram_kib

    /* GDT (5 quadwords) and the zeroed 64-bit TSS, as pvsim's boot.cpp builds them. */
    mov $BOOT_GDT, %edi
    xor %eax, %eax
    mov $((BOOT_TSS + 0x68 - BOOT_GDT) / 4), %ecx
    rep stosl
    movl $0x0000ffff, BOOT_GDT + 0x08       /* 0x00af9b000000ffff: 64-bit code, DPL 0 */
    movl $0x00af9b00, BOOT_GDT + 0x0c
    movl $0x0000ffff, BOOT_GDT + 0x10       /* 0x00cf93000000ffff: flat data */
    movl $0x00cf9300, BOOT_GDT + 0x14
    /* 16-byte TSS descriptor, base 0x1080, limit 0x67. Written as "available" (type 9):
     * LTR below marks it busy (type 11), the state the protocol specifies (SDM Vol.3A
     * 7.2.3, LTR faults on a descriptor that is already busy). */
    movl $((BOOT_TSS << 16) | 0x67), BOOT_GDT + 0x18
    movl $0x00008900, BOOT_GDT + 0x1c

    /* Page tables: PML4[0] -> PDPT, PDPT[0..3] -> four page directories of 2 MiB pages
     * (0-4 GiB identity), the last GiB (LAPIC/IOAPIC) with PWT|PCD. */
    mov $BOOT_PML4, %edi
    xor %eax, %eax
    mov $(0x6000 / 4), %ecx
    rep stosl
    movl $(BOOT_PDPT | 3), BOOT_PML4
    movl $(BOOT_PD | 3), BOOT_PDPT
    movl $((BOOT_PD + 0x1000) | 3), BOOT_PDPT + 8
    movl $((BOOT_PD + 0x2000) | 3), BOOT_PDPT + 16
    movl $((BOOT_PD + 0x3000) | 3), BOOT_PDPT + 24
    xor %ecx, %ecx
2:  mov %ecx, %eax
    shl $21, %eax
    or $0x83, %eax                          /* P, RW, PS */
    cmp $1536, %ecx
    jb 3f
    or $0x18, %eax                          /* PWT, PCD from 3 GiB up */
3:  mov %eax, BOOT_PD(, %ecx, 8)
    inc %ecx
    cmp $2048, %ecx
    jb 2b

    /* Long mode (SDM Vol.3A 10.8.5): PAE, CR3, EFER.LME, then CR0.PG; the CPU sets
     * EFER.LMA, giving the protocol's EFER = 0x500. */
    lgdt mb_gdtr32
    mov $0x20, %eax
    mov %eax, %cr4
    mov $BOOT_PML4, %eax
    mov %eax, %cr3
    mov $MSR_EFER, %ecx
    mov $0x100, %eax
    xor %edx, %edx
    wrmsr
    mov $0x80010033, %eax                   /* PG WP NE ET MP PE */
    mov %eax, %cr0
    ljmp $0x08, $mb_entry64

    .code64
mb_entry64:
    mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    mov %eax, %fs
    mov %eax, %gs
    mov $0x18, %eax
    ltr %ax
    lidt mb_idtr_null(%rip)                 /* IDTR = {0, 0}: as the protocol says */
    mov $BOOT_STACK_TOP, %esp
    /* Parses the command line, sizes RAM (mb_ram_bytes), starts the other vCPUs one at a
     * time (each is at _start when this returns) and returns the vCPU count. */
    call mb_start
    mov %eax, %esi                          /* RSI = vCPU count */
    mov mb_ram_bytes(%rip), %rdx            /* RDX = RAM bytes */
    xor %edi, %edi                          /* RDI = vCPU 0 */
    CLEAR_OTHER_GPRS
    mov $BOOT_STACK_TOP, %esp
    pushq $2                                /* RFLAGS = 0x2 */
    popfq
    jmp _start
    .size mb_entry32, . - mb_entry32

/* ---------------------------------------------------------------------------------------
 * Application processors. mb_start.c copies mb_ap_trampoline..mb_ap_trampoline_end to
 * AP_TRAMPOLINE and sends INIT + SIPI (vector AP_TRAMPOLINE >> 12) to one vCPU at a time:
 * the AP starts in real mode at AP_TRAMPOLINE with CS = AP_TRAMPOLINE >> 4, IP = 0 (SDM
 * Vol.3A 9.4.4.1), so every address below is absolute, computed with TRAMP(). Real mode
 * -> 32-bit protected mode -> long mode (SDM Vol.3A 10.8.5, which starts from protected
 * mode), then mb_ap_entry64 in the stub proper.
 */
    .code16
    .balign 16
    .globl mb_ap_trampoline
mb_ap_trampoline:
    cli
    cld
    xor %ax, %ax
    mov %ax, %ds
    lgdtl TRAMP(mb_ap_gdtr)
    mov %cr0, %eax
    or $1, %eax                             /* PE */
    mov %eax, %cr0
    ljmpl $0x18, $TRAMP(mb_ap_tramp32)
    .code32
mb_ap_tramp32:
    mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    mov $0x20, %eax                         /* PAE */
    mov %eax, %cr4
    mov $BOOT_PML4, %eax
    mov %eax, %cr3
    mov $MSR_EFER, %ecx
    mov $0x100, %eax                        /* LME */
    xor %edx, %edx
    wrmsr
    mov $0x80010033, %eax                   /* PG WP NE ET MP PE, as on vCPU 0 */
    mov %eax, %cr0
    ljmp $0x08, $mb_ap_entry64
    .balign 8
mb_ap_gdt:                                  /* 0x08 and 0x10 as in the boot GDT */
    .quad 0
    .quad 0x00af9b000000ffff                /* 0x08: 64-bit code */
    .quad 0x00cf93000000ffff                /* 0x10: flat data */
    .quad 0x00cf9b000000ffff                /* 0x18: 32-bit code, only for the trampoline */
mb_ap_gdtr:
    .word 0x1f
    .long TRAMP(mb_ap_gdt)
    .globl mb_ap_trampoline_end
mb_ap_trampoline_end:

    .code64
    .text
/* The AP in long mode: the boot GDT, segments, TR and IDTR of the protocol, then the
 * registers of vCPU i (RSP = 0xA0000 - i * 0x4000, computed in 64 bits as pvsim's
 * boot.cpp does, RDI = i, RSI = N, RDX = RAM bytes, others 0, RFLAGS = 0x2) and _start.
 * The BSP starts APs one at a time, so the shared scratch stack, the mailbox and the
 * TSS descriptor's busy bit are never used by two APs at once. */
mb_ap_entry64:
    mov $AP_SCRATCH_STACK, %esp
    lgdt mb_gdtr64(%rip)
    lea 1f(%rip), %rax                      /* reload CS from the boot GDT */
    pushq $0x08
    pushq %rax
    lretq
1:  mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    mov %eax, %fs
    mov %eax, %gs
    /* Every vCPU's TR is 0x18 at entry (tools/platform/boot.cpp), one shared TSS: LTR faults
     * on a busy descriptor (SDM Vol.3A 7.2.3), and vCPU 0 (or the AP before us) made it busy. */
    andb $0xfd, BOOT_TSS_TYPE_BYTE
    mov $0x18, %eax
    ltr %ax
    lidt mb_idtr_null(%rip)
    mov mb_ap_index(%rip), %eax
    shl $BOOT_STACK_SHIFT, %rax
    mov $BOOT_STACK_TOP, %ecx
    sub %rax, %rcx
    mov %rcx, mb_ap_rsp(%rip)
    CLEAR_OTHER_GPRS
    pushq $2                                /* RFLAGS = 0x2 */
    popfq
    /* From here on only MOVs, which leave RFLAGS alone. */
    mov mb_ap_index(%rip), %edi
    mov mb_ncpus(%rip), %esi
    mov mb_ram_bytes(%rip), %rdx
    mov mb_ap_rsp(%rip), %rsp
    movl $1, mb_ap_ack(%rip)                /* the BSP may start the next AP */
    jmp _start

    .section .data
    .balign 8
mb_gdtr32:
    .word 0x27
    .long BOOT_GDT
    .balign 8
mb_gdtr64:
    .word 0x27
    .quad BOOT_GDT
    .balign 8
mb_idtr_null:
    .word 0
    .quad 0
    .balign 8
    .globl mb_ram_bytes, mb_ram_kib, mb_cmdline, mb_ncpus, mb_ap_index, mb_ap_ack
mb_ram_bytes:
    .quad 0
mb_ap_rsp:
    .quad 0
mb_ram_kib:
    .long 0
mb_ncpus:
    .long 1
mb_ap_index:
    .long 0
mb_ap_ack:
    .long 0
mb_cmdline:
    .skip MB_CMDLINE_MAX

    .section .note.GNU-stack, "", @progbits
