/* asm_defs.h - constants shared by entry.S and C (kept in sync by _Static_asserts in desc.c). */
#pragma once

#define USER_DS_SEL 0x1b
#define USER_CS_SEL 0x23

/* struct user_entry offsets (desc.c) */
#define USER_ENTRY_RIP 0
#define USER_ENTRY_RSP 8
#define USER_ENTRY_ARG 16
#define USER_ENTRY_RFLAGS 24

/* vCPUs with a boot stack (boot.md §3: 16 KiB each below 0xA0000, down to 0x20000). */
#define BOOT_STACK_CPUS 32
/* vCPUs the runtime supports (the scenario schema's maximum). vCPUs BOOT_STACK_CPUS and up
 * get a HIGH_CPU_STACK_BYTES stack from high_cpu_stacks in .bss (entry.S), because the boot
 * protocol leaves them without one. */
#define MAX_CPUS 64
#define HIGH_CPU_STACK_SHIFT 14
#define HIGH_CPU_STACK_BYTES (1 << HIGH_CPU_STACK_SHIFT)
