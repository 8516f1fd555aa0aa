/* init - INIT and start-up IPIs (Intel SDM Vol.3A 9.4.4, 11.6.1), and an application
 * processor's way from real mode to 64-bit mode.
 *
 * vCPU 1 counts in a loop. vCPU 0 sends it an INIT IPI: INIT resets the target and puts it
 * in wait-for-SIPI, so the counter stops; vCPU 0 checks that it no longer moves. Then vCPU
 * 0 copies a small trampoline to 0x8000 and sends a start-up IPI with vector 0x08: vCPU 1
 * starts in real mode at CS = 0x0800, IP = 0 (linear 0x8000), loads the boot GDT (lgdtl with
 * a CS override), turns on PAE, points CR3 at the boot page tables, sets EFER.LME, and sets
 * CR0.PE and CR0.PG in one write - which enters IA-32e mode in 16-bit compatibility mode -
 * then a far jump to the 64-bit code segment 0x08 brings it to 64-bit code, which sets
 * up its stack and calls ap_restarted(). vCPU 0 waits for that and checks what vCPU 1 saw.
 *
 * In the trace: kvm_apic_ipi lines for the INIT (delivery mode 5) and the SIPI (mode 6),
 * a pvsim_vcpu line when vCPU 1 enters wait-for-SIPI and one when the SIPI starts it, then
 * vCPU 1's WRMSR to EFER (kvm_msr, 0xc0000080) from the trampoline. */
#include "apic.h"
#include "libc.h"
#include "report.h"
#include "smp.h"

#define SPURIOUS_VECTOR 0xff
#define SIPI_VECTOR 0x08
#define TRAMPOLINE 0x8000 /* SIPI_VECTOR << 12 */
#define WAIT_SPINS 200000ul

static volatile uint64_t progress;
static volatile uint32_t started;
static volatile uint32_t restarted;
static volatile uint64_t seen_efer, seen_cr0;
static uint8_t restart_stack[4096] __attribute__((aligned(16)));
uint64_t restart_stack_top = (uint64_t)(restart_stack + sizeof restart_stack);

/* Runs on vCPU 1 in 64-bit mode after the trampoline; reports what it found and finishes. */
void ap_restarted(void)
{
    seen_efer = rdmsr(0xc0000080);
    uint64_t cr0;
    __asm__ volatile("mov %%cr0, %0" : "=r"(cr0));
    seen_cr0 = cr0;
    restarted = 1;
    vcpu_finish();
}

/* The trampoline, assembled for 16-bit real mode and copied to TRAMPOLINE. Offsets inside it
 * are relative to its start (CS.base = TRAMPOLINE); the boot GDT (0x1000: 64-bit code 0x08)
 * and page tables (0x10000) are those of the direct boot protocol (boot.md). */
extern const uint8_t tramp_start[], tramp_end[];
__asm__(".pushsection .rodata\n"
        ".global tramp_start, tramp_end\n"
        "tramp_start:\n"
        ".code16\n"
        "    cli\n"
        "    lgdtl %cs:(tramp_gdtr - tramp_start)\n"
        "    movl %cr4, %eax\n"
        "    orl $0x20, %eax\n"          /* CR4.PAE */
        "    movl %eax, %cr4\n"
        "    movl $0x10000, %eax\n"      /* the boot PML4 */
        "    movl %eax, %cr3\n"
        "    movl $0xc0000080, %ecx\n"   /* IA32_EFER */
        "    rdmsr\n"
        "    orl $0x100, %eax\n"         /* LME */
        "    wrmsr\n"
        "    movl %cr0, %eax\n"
        "    andl $0x9fffffff, %eax\n"   /* caches on (CD, NW clear) */
        "    orl $0x80000001, %eax\n"    /* PG | PE: IA-32e mode, compatibility mode */
        "    movl %eax, %cr0\n"
        "    ljmpl $0x08, $(0x8000 + tramp64 - tramp_start)\n"
        ".code64\n"
        "tramp64:\n"
        "    movq restart_stack_top, %rsp\n"
        "    movabsq $ap_restarted, %rax\n"
        "    callq *%rax\n"
        "    ud2\n"
        ".p2align 3\n"
        "tramp_gdtr:\n"
        "    .word 0x27\n"               /* the boot GDT: 5 entries */
        "    .long 0x1000\n"
        "tramp_end:\n"
        ".popsection\n");

void ap_main(unsigned cpu, unsigned ncpus)
{
    (void)ncpus;
    if (cpu != 1)
        return; /* finished (port 0xf5) */
    started = 1;
    for (;;) {
        progress = progress + 1;
        pause();
    }
}

static void spin(unsigned long n)
{
    for (unsigned long i = 0; i < n; ++i)
        pause();
}

int main(unsigned cpu, unsigned ncpus, unsigned long ram_bytes)
{
    (void)cpu;
    (void)ram_bytes;
    if (smp_ncpus() < 2) {
        printf("init: needs 2 vCPUs, has %u\n", ncpus);
        report(false, "vCPU count");
        report_summary();
    }
    apic_init(APIC_MODE_XAPIC, SPURIOUS_VECTOR);
    wait_until_eq32(&started, 1, WAIT_SPINS);
    /* The scheduler may let vCPU 0 run a whole quantum alone: wait for a change rather than
     * for a fixed number of spins. */
    uint64_t p0 = progress;
    for (unsigned long i = 0; i < WAIT_SPINS && progress == p0; ++i)
        pause();
    report(progress > p0, "vCPU 1 is running (counter %lu -> %lu)", p0, progress);

    apic_ipi_init(1);
    /* Let the INIT arrive (the IPI latency may be non-zero) and let vCPU 1, which may lag
     * behind us by up to a quantum, run up to it; then watch the counter. */
    spin(WAIT_SPINS / 4);
    uint64_t p1 = progress;
    spin(WAIT_SPINS); /* several quanta: vCPU 1 would have run in between if it could */
    uint64_t p2 = progress;
    report(p1 == p2, "after INIT vCPU 1 makes no progress (counter %lu -> %lu)", p1, p2);

    memcpy((void*)TRAMPOLINE, tramp_start, (size_t)(tramp_end - tramp_start));
    printf("init: sending SIPI vector 0x%x to vCPU 1 (trampoline at 0x%x, %u bytes)\n", SIPI_VECTOR,
           TRAMPOLINE, (unsigned)(tramp_end - tramp_start));
    apic_ipi_startup(1, SIPI_VECTOR);
    wait_until_eq32(&restarted, 1, WAIT_SPINS);
    report(restarted == 1, "vCPU 1 reached 64-bit code through the real-mode trampoline");
    report((seen_efer & 0x500) == 0x500, "vCPU 1 has EFER.LME and EFER.LMA (EFER 0x%lx)",
           (unsigned long)seen_efer);
    report((seen_cr0 & 0x80000001) == 0x80000001, "vCPU 1 has CR0.PG and CR0.PE (CR0 0x%lx)",
           (unsigned long)seen_cr0);
    report_summary();
}
