/* cpuid_msr - what the guest can learn about its (virtual) CPU, and MSR access rules.
 *   CPUID 0, 1 (hypervisor bit, initial APIC ID, logical count), 0x40000000 (KVM signature)
 *   and 0x40000001 (KVM features: must equal EXPECTED_KVM_FEATURES, which the scenario sets
 *   explicitly in machine.kvm_cpuid.features);
 *   RDMSR of EFER / PAT / APIC_BASE / MISC_ENABLE boot values (scenarios/guest/boot.md §3);
 *   FS_BASE / GS_BASE writes observed through %fs: and %gs: addressing;
 *   an unknown MSR and a reserved EFER bit must raise #GP(0) (SDM Vol.4 2.1, Vol.3A 2.2.1). */
#include "desc.h"
#include "libc.h"
#include "report.h"

/* The scenario's machine.kvm_cpuid.features; KVM 6.x's default set (pvmsr/README.md §3.2). */
#define EXPECTED_KVM_FEATURES 0x01007efbu

static volatile uint64_t fs_target[2] = {0x1111111111111111ull, 0xf5f5f5f5f5f5f5f5ull};
static volatile uint64_t gs_target[2] = {0x2222222222222222ull, 0x9595959595959595ull};

static void check_cpuid(unsigned ncpus)
{
    report_prefix_push("cpuid");
    struct cpuid_result r = cpuid(0);
    char vendor[13];
    memcpy(vendor + 0, &r.b, 4);
    memcpy(vendor + 4, &r.d, 4);
    memcpy(vendor + 8, &r.c, 4);
    vendor[12] = '\0';
    bool printable = true;
    for (int i = 0; i < 12; ++i)
        printable = printable && vendor[i] >= 0x20 && vendor[i] < 0x7f;
    report(r.a >= 1 && printable, "leaf 0: max basic leaf 0x%x, vendor \"%s\"", r.a, vendor);

    r = cpuid(1);
    report((r.c >> 31) & 1, "leaf 1: ECX[31] hypervisor bit set (ecx 0x%08x)", r.c);
    report((r.b >> 24) == 0, "leaf 1: initial APIC ID of vCPU 0 is %u", r.b >> 24);
    report(((r.b >> 16) & 0xff) == ncpus, "leaf 1: EBX[23:16] = %u logical processors (boot says %u)",
           (r.b >> 16) & 0xff, ncpus);

    r = cpuid(0x40000000);
    char sig[13];
    memcpy(sig + 0, &r.b, 4);
    memcpy(sig + 4, &r.c, 4);
    memcpy(sig + 8, &r.d, 4);
    sig[12] = '\0';
    /* "KVMKVMKVM\0\0\0" (pvmsr/README.md §3.1); compare all 12 bytes, the NULs included. */
    report(memcmp(sig, "KVMKVMKVM\0\0\0", 12) == 0, "leaf 0x40000000: signature \"%s\"", sig);
    report(r.a >= 0x40000001, "leaf 0x40000000: max hypervisor leaf 0x%x", r.a);

    r = cpuid(0x40000001);
    report(r.a == EXPECTED_KVM_FEATURES, "leaf 0x40000001: features 0x%08x (scenario says 0x%08x)", r.a,
           EXPECTED_KVM_FEATURES);
    report_prefix_pop();
}

static void check_boot_msrs(void)
{
    report_prefix_push("boot msrs");
    uint64_t efer = rdmsr(MSR_EFER);
    report((efer & (EFER_LME | EFER_LMA)) == (EFER_LME | EFER_LMA), "EFER 0x%lx has LME and LMA", efer);
    uint64_t pat = rdmsr(MSR_IA32_PAT);
    report(pat == 0x0007040600070406ull, "PAT 0x%016lx is the power-on value", pat);
    uint64_t apic_base = rdmsr(MSR_IA32_APIC_BASE);
    /* 0xfee00000 | EN (bit 11) | BSP (bit 8) on vCPU 0 (SDM Vol.3A 11.4.4). */
    report(apic_base == 0xfee00900ull, "APIC_BASE 0x%lx: xAPIC enabled, BSP", apic_base);
    uint64_t misc = rdmsr(MSR_IA32_MISC_ENABLE);
    report(misc == 1, "MISC_ENABLE 0x%lx", misc);
    report_prefix_pop();
}

static void check_segment_bases(void)
{
    report_prefix_push("fs/gs base");
    wrmsr(MSR_FS_BASE, (uint64_t)(uintptr_t)fs_target);
    wrmsr(MSR_GS_BASE, (uint64_t)(uintptr_t)gs_target);
    uint64_t fs_base = rdmsr(MSR_FS_BASE), gs_base = rdmsr(MSR_GS_BASE);
    report(fs_base == (uint64_t)(uintptr_t)fs_target, "FS_BASE reads back 0x%lx", fs_base);
    report(gs_base == (uint64_t)(uintptr_t)gs_target, "GS_BASE reads back 0x%lx", gs_base);
    /* In 64-bit mode an %fs:/%gs: access adds the MSR base (SDM Vol.3A 3.4.4). */
    uint64_t via_fs0, via_fs8, via_gs0, via_gs8;
    __asm__ volatile("movq %%fs:0, %0" : "=r"(via_fs0)::"memory");
    __asm__ volatile("movq %%fs:8, %0" : "=r"(via_fs8)::"memory");
    __asm__ volatile("movq %%gs:0, %0" : "=r"(via_gs0)::"memory");
    __asm__ volatile("movq %%gs:8, %0" : "=r"(via_gs8)::"memory");
    report(via_fs0 == fs_target[0] && via_fs8 == fs_target[1], "%%fs:0/%%fs:8 read 0x%lx 0x%lx", via_fs0, via_fs8);
    report(via_gs0 == gs_target[0] && via_gs8 == gs_target[1], "%%gs:0/%%gs:8 read 0x%lx 0x%lx", via_gs0, via_gs8);
    __asm__ volatile("movq %0, %%fs:8" ::"r"(0x0123456789abcdefull) : "memory");
    report(fs_target[1] == 0x0123456789abcdefull, "a store through %%fs:8 lands in memory");
    /* A non-canonical base is refused (SDM Vol.4: WRMSR #GP if the address is not canonical). */
    unsigned v = wrmsr_safe(MSR_FS_BASE, 0x0000800000000000ull);
    report(v == GP_VECTOR && rdmsr(MSR_FS_BASE) == fs_base, "non-canonical FS_BASE -> #GP (vector %u), unchanged",
           v);
    wrmsr(MSR_FS_BASE, 0);
    wrmsr(MSR_GS_BASE, 0);
    report(rdmsr(MSR_FS_BASE) == 0 && rdmsr(MSR_GS_BASE) == 0, "bases cleared");
    report_prefix_pop();
}

static void check_faulting_msrs(void)
{
    report_prefix_push("#GP");
    uint64_t value = 0x5555;
    unsigned v = rdmsr_safe(0xdeadbeef, &value);
    report(v == GP_VECTOR && last_fault.error_code == 0, "rdmsr_safe(0xdeadbeef) -> vector %u error 0x%lx", v,
           last_fault.error_code);
    v = wrmsr_safe(0xdeadbeef, 0x1234);
    report(v == GP_VECTOR && last_fault.error_code == 0, "wrmsr_safe(0xdeadbeef) -> vector %u error 0x%lx", v,
           last_fault.error_code);
    v = rdmsr_safe(MSR_IA32_PAT, &value);
    report(v == 0 && value == 0x0007040600070406ull, "rdmsr_safe(PAT) succeeds (vector %u)", v);

    uint64_t efer = rdmsr(MSR_EFER);
    /* EFER bits 1-7 and 9 are reserved, as is everything above bit 15 (SDM Vol.3A 2.2.1,
     * Table 2-1); KVM's set_efer rejects them with #GP. */
    v = wrmsr_safe(MSR_EFER, efer | (1ull << 1));
    report(v == GP_VECTOR, "EFER |= bit 1 (reserved) -> vector %u", v);
    v = wrmsr_safe(MSR_EFER, efer | (1ull << 63));
    report(v == GP_VECTOR, "EFER |= bit 63 (reserved) -> vector %u", v);
    report(rdmsr(MSR_EFER) == efer, "EFER unchanged (0x%lx)", rdmsr(MSR_EFER));
    /* Writing the value it already has is fine. */
    v = wrmsr_safe(MSR_EFER, efer);
    report(v == 0, "EFER rewrite of its own value succeeds (vector %u)", v);
    report_prefix_pop();
}

int main(unsigned cpu, unsigned ncpus, unsigned long ram_bytes)
{
    (void)cpu, (void)ram_bytes;
    check_cpuid(ncpus);
    check_boot_msrs();
    check_segment_bases();
    check_faulting_msrs();
    report_summary();
}
