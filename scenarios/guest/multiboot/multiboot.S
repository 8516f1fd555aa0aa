/* multiboot.S - Multiboot (version 1) front end for the unchanged pvsim guest images, so
 * that QEMU's `-kernel` loader and GRUB (under Bochs) can start the very same 64-bit guest
 * code that pvsim runs. Used only by tools/bench/compare.py; pvsim never sees it.
 *
 * A Multiboot loader enters in 32-bit protected mode with paging off, EAX = 0x2BADB002 and
 * EBX = the information structure (Multiboot spec 0.6.96, section 3.2). The code below
 * rebuilds, byte for byte, the machine state of docs/boot-protocol.md (GDT and TSS at
 * 0x1000, identity page tables at 0x10000, long mode, CR0/CR4/EFER, RSP/RDI/RSI/RDX) and
 * jumps to _start in entry.S exactly as pvsim would start it.
 *
 * This object must come first on the link line: guest.ld places every .text.entry input
 * section at 0x100000 in command-line order, which puts the header at the very start of
 * the flat image (the spec wants it in the first 8 KiB, 4-byte aligned).
 */
#define MB_MAGIC 0x1badb002
/* Bit 1: pass mem_lower/mem_upper. Bit 16: the address fields below are valid, so the
 * loader needs no ELF parsing (QEMU's loader refuses ELF64 files; a flat image it takes). */
#define MB_FLAGS 0x00010002
#define MB_BOOT_EAX 0x2badb002

#define BOOT_GDT 0x1000
#define BOOT_TSS 0x1080
#define BOOT_PML4 0x10000
#define BOOT_PDPT 0x11000
#define BOOT_PD 0x12000
#define BOOT_STACK_TOP 0xa0000
#define MSR_EFER 0xc0000080

    .section .text.entry, "ax"
    .code32
    .balign 4
mb_header:
    .long MB_MAGIC
    .long MB_FLAGS
    .long -(MB_MAGIC + MB_FLAGS)
    .long mb_header             /* header_addr: where this header ends up */
    .long __image_start         /* load_addr: file offset 0 goes here */
    .long 0                     /* load_end_addr: 0 = the whole file is text and data */
    .long __image_end           /* bss_end_addr: the loader zeroes up to here (.bss) */
    .long mb_entry32            /* entry_addr */

    .globl mb_entry32
    .type mb_entry32, @function
mb_entry32:
    cli
    cld
    /* RDX at entry is the RAM size. Multiboot gives mem_upper = KiB of contiguous RAM above
     * 1 MiB (info offset 8, valid when flags bit 0 is set); read it before the boot
     * structures below may overwrite the loader's information block. */
    xor %esi, %esi
    cmp $MB_BOOT_EAX, %eax
    jne 1f
    testl $1, (%ebx)
    jz 1f
    mov 8(%ebx), %esi
    add $1024, %esi
1:  mov %esi, mb_ram_kib

    /* GDT (5 quadwords) and the zeroed 64-bit TSS, as boot-protocol.md lists them. */
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
    lgdt mb_gdtr
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
    mov mb_ram_kib(%rip), %edx
    shl $10, %rdx                           /* RDX = RAM bytes */
    xor %edi, %edi                          /* RDI = vCPU 0 */
    mov $1, %esi                            /* RSI = 1 vCPU */
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
    pushq $2                                /* RFLAGS = 0x2 */
    popfq
    jmp _start
    .size mb_entry32, . - mb_entry32

    .section .data
    .balign 8
mb_gdtr:
    .word 0x27
    .long BOOT_GDT
    .balign 8
mb_idtr_null:
    .word 0
    .quad 0
mb_ram_kib:
    .long 0

    .section .note.GNU-stack, "", @progbits
