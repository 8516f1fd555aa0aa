/* processor.h - thin inline wrappers over privileged and special x86-64 instructions.
 * Every wrapper is one instruction so that a pvsim trace maps 1:1 onto the C call. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Architectural MSR numbers (Intel SDM Vol.4, Table 2-2). */
#define MSR_IA32_APIC_BASE 0x0000001bu
#define MSR_IA32_MISC_ENABLE 0x000001a0u
#define MSR_IA32_PAT 0x00000277u
#define MSR_EFER 0xc0000080u
#define MSR_FS_BASE 0xc0000100u
#define MSR_GS_BASE 0xc0000101u
#define MSR_KERNEL_GS_BASE 0xc0000102u

#define EFER_SCE (1ull << 0)
#define EFER_LME (1ull << 8)
#define EFER_LMA (1ull << 10)
#define EFER_NXE (1ull << 11)

#define CR0_WP (1ull << 16)
#define CR0_PG (1ull << 31)
#define CR4_PAE (1ull << 5)

#define RFLAGS_IF (1ull << 9)

/* Exception vectors (SDM Vol.3A Table 6-1). */
enum {
    DE_VECTOR = 0,
    DB_VECTOR = 1,
    NMI_VECTOR = 2,
    BP_VECTOR = 3,
    OF_VECTOR = 4,
    BR_VECTOR = 5,
    UD_VECTOR = 6,
    NM_VECTOR = 7,
    DF_VECTOR = 8,
    TS_VECTOR = 10,
    NP_VECTOR = 11,
    SS_VECTOR = 12,
    GP_VECTOR = 13,
    PF_VECTOR = 14,
    MF_VECTOR = 16,
    AC_VECTOR = 17,
    MC_VECTOR = 18,
    XM_VECTOR = 19,
    VE_VECTOR = 20,
    CP_VECTOR = 21,
};

struct cpuid_result {
    uint32_t a, b, c, d;
};

static inline struct cpuid_result cpuid_count(uint32_t leaf, uint32_t subleaf)
{
    struct cpuid_result r;
    __asm__ volatile("cpuid" : "=a"(r.a), "=b"(r.b), "=c"(r.c), "=d"(r.d) : "a"(leaf), "c"(subleaf));
    return r;
}

static inline struct cpuid_result cpuid(uint32_t leaf) { return cpuid_count(leaf, 0); }

static inline uint64_t rdmsr(uint32_t msr)
{
    uint32_t lo, hi;
    __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
    return ((uint64_t)hi << 32) | lo;
}

static inline void wrmsr(uint32_t msr, uint64_t value)
{
    __asm__ volatile("wrmsr" ::"c"(msr), "a"((uint32_t)value), "d"((uint32_t)(value >> 32)) : "memory");
}

/* The _safe variants return 0, or the vector of the exception the instruction raised
 * (13 for #GP); they rely on the exception table (exception.c). */
unsigned rdmsr_safe(uint32_t msr, uint64_t* value);
unsigned wrmsr_safe(uint32_t msr, uint64_t value);

static inline uint64_t rdtsc(void)
{
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}

static inline void outb(uint8_t value, uint16_t port) { __asm__ volatile("outb %0, %1" ::"a"(value), "Nd"(port)); }
static inline void outw(uint16_t value, uint16_t port) { __asm__ volatile("outw %0, %1" ::"a"(value), "Nd"(port)); }
static inline void outl(uint32_t value, uint16_t port) { __asm__ volatile("outl %0, %1" ::"a"(value), "Nd"(port)); }

static inline uint8_t inb(uint16_t port)
{
    uint8_t v;
    __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}
static inline uint16_t inw(uint16_t port)
{
    uint16_t v;
    __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}
static inline uint32_t inl(uint16_t port)
{
    uint32_t v;
    __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

#define DEFINE_CR_ACCESSORS(n)                                                                               \
    static inline uint64_t read_cr##n(void)                                                                 \
    {                                                                                                        \
        uint64_t v;                                                                                          \
        __asm__ volatile("mov %%cr" #n ", %0" : "=r"(v));                                                   \
        return v;                                                                                            \
    }                                                                                                        \
    static inline void write_cr##n(uint64_t v) { __asm__ volatile("mov %0, %%cr" #n ::"r"(v) : "memory"); }
DEFINE_CR_ACCESSORS(0)
DEFINE_CR_ACCESSORS(2)
DEFINE_CR_ACCESSORS(3)
DEFINE_CR_ACCESSORS(4)
#undef DEFINE_CR_ACCESSORS

static inline void invlpg(const volatile void* va) { __asm__ volatile("invlpg (%0)" ::"r"(va) : "memory"); }
static inline void cli(void) { __asm__ volatile("cli" ::: "memory"); }
static inline void sti(void) { __asm__ volatile("sti" ::: "memory"); }
static inline void hlt(void) { __asm__ volatile("hlt" ::: "memory"); }
/* STI's one-instruction interrupt shadow (SDM Vol.3A 6.8.3) makes "sti; hlt" race-free. */
static inline void safe_halt(void) { __asm__ volatile("sti; hlt" ::: "memory"); }
static inline void pause(void) { __asm__ volatile("pause" ::: "memory"); }

static inline uint64_t read_rflags(void)
{
    uint64_t f;
    __asm__ volatile("pushfq; popq %0" : "=r"(f));
    return f;
}

static inline uint16_t read_cs(void)
{
    uint16_t v;
    __asm__ volatile("mov %%cs, %0" : "=r"(v));
    return v;
}

static inline uint16_t read_ss(void)
{
    uint16_t v;
    __asm__ volatile("mov %%ss, %0" : "=r"(v));
    return v;
}

static inline uint16_t str(void)
{
    uint16_t v;
    __asm__ volatile("str %0" : "=r"(v));
    return v;
}

static inline uint64_t read_rsp(void)
{
    uint64_t v;
    __asm__ volatile("mov %%rsp, %0" : "=r"(v));
    return v;
}
