/* pv_hypercall - KVM's hypercall table from the guest's side (pvmsr/README.md §10,
 * lib/hypercall.h).
 *
 * One vCPU. The hypercall instruction is picked from the CPUID vendor (VMCALL for
 * GenuineIntel, VMMCALL for AuthenticAMD: machine.cpu_vendor). Checked:
 *   - VAPIC_POLL_IRQ (1) returns 0; MMU_OP (2), FEATURES (3), MAP_GPA_RANGE (12, the VMM
 *     did not ask for its exit) and an unknown number (99) return -KVM_ENOSYS (-1000);
 *   - KICK_CPU (5) to this vCPU's own APIC ID returns 0 and leaves the vCPU "unhalted":
 *     the next HLT, executed with IF=0 and nothing pending, returns at once (without the
 *     kick it would halt for good). That is what makes a kick that overtakes a PV
 *     spinlock waiter's HLT harmless;
 *   - SEND_IPI (10) to itself returns 1 and the interrupt arrives;
 *   - SCHED_YIELD (11) to itself and to an APIC ID nobody has returns 0;
 *   - CLOCK_PAIRING (9) with type 0 fills {sec, nsec, tsc}: the TSC lies between RDTSCs
 *     taken before and after, and sec:nsec is the wall time kvmclock gives at that TSC
 *     (within 1 us); type 1 returns -KVM_EOPNOTSUPP (-95);
 *   - at CPL 3 every hypercall returns -KVM_EPERM (-1);
 *   - the other vendor's instruction: KVM's default (quirk FIX_HYPERCALL_INSN) rewrites
 *     its three bytes in guest memory to this vendor's and runs it: the call returns and
 *     the bytes now read as the native instruction. With the quirk off
 *     (machine.kvm.fix_hypercall_insn false) it raises #UD, and the bytes stay.
 *
 * Scenarios: pv-hypercall (Intel), pv-hypercall-amd (cpu_vendor "amd"),
 * pv-hypercall-ud (fix_hypercall_insn false). In the trace: one kvm_hypercall line per
 * call with its number and arguments ("nr 0x1 a0 0x0 ..."). */
#include "apic.h"
#include "desc.h"
#include "irq.h"
#include "kvmclock.h"
#include "libc.h"
#include "paging.h"
#include "pv.h"
#include "pv_util.h"
#include "report.h"

#define SYSCALL_VECTOR 0x80
#define IPI_VECTOR 0x45

/* User-mode snippets: one hypercall each way, result stored at RDI, then back to CPL 0. */
__asm__(".pushsection .user_text, \"ax\"\n"
        ".globl u_vmcall\n"
        "u_vmcall:\n\tmov $1, %eax\n\tvmcall\n\tmov %rax, (%rdi)\n\tint $0x80\n"
        ".globl u_vmmcall\n"
        "u_vmmcall:\n\tmov $1, %eax\n\tvmmcall\n\tmov %rax, (%rdi)\n\tint $0x80\n"
        ".popsection\n");
/* The foreign-instruction stubs, in ordinary (writable) kernel text: KVM may rewrite them.
 * An exception at the instruction resumes at the RET (exception table). */
__asm__(".pushsection .text\n"
        ".globl foreign_vmcall\n"
        "foreign_vmcall:\n\tvmcall\n1:\tret\n\t" EX_TABLE_ENTRY("foreign_vmcall", "1b")
        ".globl foreign_vmmcall\n"
        "foreign_vmmcall:\n\tvmmcall\n2:\tret\n\t" EX_TABLE_ENTRY("foreign_vmmcall", "2b")
        ".popsection\n");
extern const uint8_t u_vmcall[], u_vmmcall[], foreign_vmcall[], foreign_vmmcall[], __image_end[];

static uint8_t user_stack[4096] __attribute__((aligned(4096)));
static volatile uint64_t user_result;
static struct kvm_clock_pairing pairing __attribute__((aligned(64)));
static volatile unsigned ipis;

static const uint8_t VMCALL_BYTES[3] = {0x0f, 0x01, 0xc1};
static const uint8_t VMMCALL_BYTES[3] = {0x0f, 0x01, 0xd9};

static void count_ipi(unsigned vector, struct ex_frame* f)
{
    (void)vector;
    (void)f;
    ++ipis;
}

static long call_stub(const void* stub, unsigned long nr)
{
    long ret;
    __asm__ volatile("call *%[fn]"
                     : "=a"(ret)
                     : [fn] "r"(stub), "a"(nr), "b"(0ul), "c"(0ul), "d"(0ul), "S"(0ul)
                     : "memory", "cc");
    return ret;
}

static bool bytes_are(const uint8_t* p, const uint8_t* want)
{
    return p[0] == want[0] && p[1] == want[1] && p[2] == want[2];
}

int main(unsigned cpu, unsigned ncpus, unsigned long ram_bytes)
{
    (void)ncpus;
    (void)ram_bytes;
    apic_init(APIC_MODE_XAPIC, 0xff);
    pv_cpu_init();
    bool amd = kvm_hypercall_vmmcall;
    printf("pv_hypercall: CPU vendor %s: hypercalls use %s; CPUID 0x40000001 eax 0x%x\n",
           amd ? "AMD" : "Intel", amd ? "VMMCALL" : "VMCALL", kvm_para_features());
    if (!kvm_para_features()) {
        report_skip("no KVM signature in CPUID: no hypercalls");
        report_summary();
    }

    report_prefix_push("table");
    long r = kvm_hypercall0(KVM_HC_VAPIC_POLL_IRQ);
    report(r == 0, "VAPIC_POLL_IRQ returns %ld", r);
    static const unsigned enosys[] = {KVM_HC_MMU_OP, KVM_HC_FEATURES, KVM_HC_MAP_GPA_RANGE, 99};
    for (unsigned i = 0; i < 4; ++i) {
        r = kvm_hypercall4(enosys[i], 0x1000, 1, 0, 0);
        report(r == -KVM_ENOSYS, "hypercall %u returns %ld (-KVM_ENOSYS)", enosys[i], r);
    }
    report_prefix_pop();

    report_prefix_push("KICK_CPU");
    r = kvm_hypercall2(KVM_HC_KICK_CPU, 0, pv_apic_id(cpu));
    report(r == 0, "to this vCPU (APIC ID %u) returns %ld", pv_apic_id(cpu), r);
    /* IF=0 and nothing pending: only the kick's pv_unhalted can end this HLT (without it
     * the run would end in a deadlock). It must end at once: a HLT exit and an entry. */
    cli();
    uint64_t t0 = rdtsc();
    hlt();
    uint64_t halted = rdtsc() - t0;
    report(halted < 100000, "the next HLT with IF=0 returned at once (%lu cycles): the kick was not lost", halted);
    report_prefix_pop();

    report_prefix_push("SEND_IPI");
    irq_set_handler_eoi(IPI_VECTOR, count_ipi);
    r = kvm_hypercall4(KVM_HC_SEND_IPI, 1ull << pv_apic_id(cpu), 0, 0, APIC_DM_FIXED | IPI_VECTOR);
    sti();
    for (unsigned i = 0; i < 10000 && !ipis; ++i)
        pause();
    cli();
    report(r == 1 && ipis == 1, "to itself: returns %ld, %u interrupt taken", r, ipis);
    report_prefix_pop();

    report_prefix_push("SCHED_YIELD");
    r = kvm_hypercall1(KVM_HC_SCHED_YIELD, pv_apic_id(cpu));
    long r2 = kvm_hypercall1(KVM_HC_SCHED_YIELD, 77);
    report(r == 0 && r2 == 0, "to itself: %ld; to APIC ID 77 (nobody): %ld", r, r2);
    report_prefix_pop();

    report_prefix_push("CLOCK_PAIRING");
    if (kvmclock_init()) {
        struct pvclock_wall_clock wc;
        uint32_t sec, nsec, ver;
        kvmclock_read_wallclock(MSR_KVM_WALL_CLOCK_NEW, &wc, &sec, &nsec, &ver);
        uint64_t before = rdtsc();
        r = kvm_hypercall2(KVM_HC_CLOCK_PAIRING, (uint64_t)(uintptr_t)&pairing, KVM_CLOCK_PAIRING_WALLCLOCK);
        uint64_t after = rdtsc();
        volatile struct pvclock_vcpu_time_info* ti = kvmclock_this_cpu_info();
        uint64_t kvmclock_at = ti->system_time + pvclock_scale_delta(pairing.tsc - ti->tsc_timestamp,
                                                                   ti->tsc_to_system_mul, ti->tsc_shift);
        uint64_t wall_kvmclock = (uint64_t)sec * 1000000000ull + nsec + kvmclock_at;
        uint64_t wall_pairing = (uint64_t)pairing.sec * 1000000000ull + (uint64_t)pairing.nsec;
        int64_t d = (int64_t)(wall_pairing - wall_kvmclock);
        printf("pv_hypercall: CLOCK_PAIRING: sec %ld nsec %ld tsc %lu flags %u; kvmclock's wall time at that tsc "
               "differs by %ld ns\n",
               pairing.sec, pairing.nsec, pairing.tsc, pairing.flags, d);
        report(r == 0 && pairing.tsc >= before && pairing.tsc <= after,
               "type 0 returns %ld, with the guest TSC of the call", r);
        report(d >= -1000 && d <= 1000, "its wall time matches kvmclock's (within 1 us)");
        r = kvm_hypercall2(KVM_HC_CLOCK_PAIRING, (uint64_t)(uintptr_t)&pairing, 1);
        report(r == -KVM_EOPNOTSUPP, "type 1 returns %ld (-KVM_EOPNOTSUPP)", r);
    } else {
        report_skip("no kvmclock to compare with");
    }
    report_prefix_pop();

    report_prefix_push("CPL 3");
    uint64_t* pml4 = pt_new_root();
    uint64_t end = ((uint64_t)(uintptr_t)__image_end + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
    /* Everything user-accessible: this test is about the hypercall, not about isolation. */
    bool mapped = pml4 && pt_identity_map(pml4, 0, end, PTE_W | PTE_U) == 0;
    if (mapped) {
        uint64_t old_cr3 = read_cr3();
        write_cr3((uint64_t)(uintptr_t)pml4);
        set_gate_dpl(SYSCALL_VECTOR, 3);
        user_result = 0x5555;
        unsigned v = run_in_user_mode((uint64_t)(uintptr_t)(amd ? u_vmmcall : u_vmcall),
                                      (uint64_t)(uintptr_t)(user_stack + sizeof user_stack),
                                      (uint64_t)(uintptr_t)&user_result, 0x2);
        write_cr3(old_cr3);
        report(v == SYSCALL_VECTOR && (long)user_result == -KVM_EPERM,
               "VAPIC_POLL_IRQ from CPL 3 returns %ld (-KVM_EPERM)", (long)user_result);
    } else {
        report(false, "page tables for CPL 3");
    }
    report_prefix_pop();

    report_prefix_push("foreign instruction");
    const uint8_t* stub = amd ? foreign_vmcall : foreign_vmmcall;
    const uint8_t* native = amd ? VMMCALL_BYTES : VMCALL_BYTES;
    const uint8_t* foreign = amd ? VMCALL_BYTES : VMMCALL_BYTES;
    bool was_foreign = bytes_are(stub, foreign);
    fixup_status = 0;
    r = call_stub(stub, KVM_HC_VAPIC_POLL_IRQ);
    unsigned fault = fixup_status ? (fixup_status & 255) : 0;
    if (fault) {
        printf("pv_hypercall: %s raised vector %u; its bytes are %02x %02x %02x\n", amd ? "VMCALL" : "VMMCALL",
               fault, stub[0], stub[1], stub[2]);
        report(was_foreign && fault == UD_VECTOR && bytes_are(stub, foreign),
               "%s: #UD, the bytes left alone (KVM's FIX_HYPERCALL_INSN quirk is off)", amd ? "VMCALL" : "VMMCALL");
    } else {
        printf("pv_hypercall: %s returned %ld; its bytes are now %02x %02x %02x\n", amd ? "VMCALL" : "VMMCALL", r,
               stub[0], stub[1], stub[2]);
        report(was_foreign && r == 0 && bytes_are(stub, native), "%s: rewritten to %s in guest memory and run",
               amd ? "VMCALL" : "VMMCALL", amd ? "VMMCALL" : "VMCALL");
    }
    report_prefix_pop();
    report_summary();
}
