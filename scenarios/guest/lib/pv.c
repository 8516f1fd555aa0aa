/* pv.c - shared pieces of the PV guest runtime (see pv.h). */
#include "pv.h"

#include "apic.h"
#include "smp.h"

bool kvm_hypercall_vmmcall;

static volatile uint32_t para_features, para_hints;
static volatile uint32_t para_read; /* 0 until CPUID was read */
static uint32_t apic_ids[MAX_CPUS];
static spinlock_t fixup_lock; /* wrmsr_safe and the exception table share one status */

static void read_para_leaf(void)
{
    if (para_read)
        return;
    struct cpuid_result sig = cpuid(KVM_CPUID_SIGNATURE);
    /* "KVMKVMKVM\0\0\0" in EBX, ECX, EDX (pvmsr/README.md §3.1); without it the leaf
     * above is not KVM's. Every vCPU reads the same values, so a race here is harmless. */
    if (sig.b == 0x4b4d564bu && sig.c == 0x564b4d56u && sig.d == 0x4du) {
        struct cpuid_result f = cpuid(KVM_CPUID_FEATURES);
        para_features = f.a;
        para_hints = f.d;
    }
    para_read = 1;
}

uint32_t kvm_para_features(void)
{
    read_para_leaf();
    return para_features;
}

uint32_t kvm_para_hints(void)
{
    read_para_leaf();
    return para_hints;
}

bool kvm_hypercall_init(void)
{
    /* CPUID leaf 0: the vendor string in EBX, EDX, ECX. AMD's and Hygon's CPUs implement
     * VMMCALL; Linux marks both with X86_FEATURE_VMMCALL and patches that instruction in. */
    struct cpuid_result v = cpuid(0);
    bool amd = v.b == 0x68747541u && v.d == 0x69746e65u && v.c == 0x444d4163u;   /* AuthenticAMD */
    bool hygon = v.b == 0x6f677948u && v.d == 0x6e65476eu && v.c == 0x656e6975u; /* HygonGenuine */
    kvm_hypercall_vmmcall = amd || hygon;
    return kvm_hypercall_vmmcall;
}

void pv_cpu_init(void)
{
    apic_ids[this_cpu()] = apic_id();
    kvm_hypercall_init();
}

uint32_t pv_apic_id(unsigned cpu) { return apic_ids[cpu]; }

unsigned pv_wrmsr_safe(uint32_t msr, uint64_t value)
{
    uint64_t flags = read_rflags();
    cli();
    spin_lock(&fixup_lock);
    unsigned fault = wrmsr_safe(msr, value);
    spin_unlock(&fixup_lock);
    if (flags & RFLAGS_IF)
        sti();
    return fault;
}

unsigned kvm_hypercall_safe(bool vmmcall, unsigned long nr, unsigned long a0, unsigned long a1, unsigned long a2,
                            unsigned long a3, long* result)
{
    long ret = 0;
    fixup_status = 0;
    if (vmmcall)
        __asm__ volatile("1: vmmcall\n2:\n\t" EX_TABLE_ENTRY("1b", "2b")
                         : "=a"(ret)
                         : "a"(nr), "b"(a0), "c"(a1), "d"(a2), "S"(a3)
                         : "memory");
    else
        __asm__ volatile("1: vmcall\n2:\n\t" EX_TABLE_ENTRY("1b", "2b")
                         : "=a"(ret)
                         : "a"(nr), "b"(a0), "c"(a1), "d"(a2), "S"(a3)
                         : "memory");
    if (fixup_status)
        return fixup_status & 255;
    *result = ret;
    return 0;
}

unsigned pv_hypercall_safe(bool vmmcall, unsigned long nr, unsigned long a0, unsigned long a1, unsigned long a2,
                           unsigned long a3, long* result)
{
    uint64_t flags = read_rflags();
    cli();
    spin_lock(&fixup_lock);
    unsigned fault = kvm_hypercall_safe(vmmcall, nr, a0, a1, a2, a3, result);
    spin_unlock(&fixup_lock);
    if (flags & RFLAGS_IF)
        sti();
    return fault;
}
