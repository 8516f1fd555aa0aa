/* apic.c - xAPIC / x2APIC access behind one interface (see apic.h). */
#include "apic.h"

#include "smp.h"

/* Per vCPU: which access method, and where the xAPIC page is (IA32_APIC_BASE may move it;
 * the boot page tables identity-map 0-4 GiB with PCD/PWT above 3 GiB, so the physical
 * address is also the virtual one). */
static uint8_t mode_of[MAX_CPUS];
static uintptr_t mmio_base_of[MAX_CPUS];

bool cpu_has_x2apic(void) { return (cpuid(1).c & CPUID_1_ECX_X2APIC) != 0; }
bool cpu_has_tsc_deadline(void) { return (cpuid(1).c & CPUID_1_ECX_TSC_DEADLINE) != 0; }

enum apic_mode apic_mode(void) { return (enum apic_mode)mode_of[this_cpu()]; }

uint32_t apic_read(unsigned reg)
{
    unsigned cpu = this_cpu();
    if (mode_of[cpu] == APIC_MODE_X2APIC)
        return (uint32_t)rdmsr(MSR_X2APIC_BASE + (reg >> 4));
    return *(volatile uint32_t*)(mmio_base_of[cpu] + reg);
}

void apic_write(unsigned reg, uint32_t value)
{
    unsigned cpu = this_cpu();
    if (mode_of[cpu] == APIC_MODE_X2APIC)
        wrmsr(MSR_X2APIC_BASE + (reg >> 4), value);
    else
        *(volatile uint32_t*)(mmio_base_of[cpu] + reg) = value;
}

bool apic_init(enum apic_mode mode, uint8_t spurious_vector)
{
    unsigned cpu = this_cpu();
    if (mode == APIC_MODE_X2APIC && !cpu_has_x2apic())
        return false;
    uint64_t base = rdmsr(MSR_IA32_APIC_BASE);
    /* Disabled -> xAPIC first: disabled -> x2APIC directly is an invalid transition that
     * raises #GP (SDM 11.12.5, Figure 11-27). */
    if (!(base & APIC_BASE_ENABLE)) {
        base |= APIC_BASE_ENABLE;
        wrmsr(MSR_IA32_APIC_BASE, base);
    }
    if (mode == APIC_MODE_X2APIC && !(base & APIC_BASE_EXTD)) {
        base |= APIC_BASE_EXTD;
        wrmsr(MSR_IA32_APIC_BASE, base);
    }
    mode_of[cpu] = (uint8_t)mode;
    mmio_base_of[cpu] = (uintptr_t)(base & 0xfffff000ull);
    apic_write(APIC_SVR, APIC_SVR_ENABLE | spurious_vector);
    apic_read_esr();
    return true;
}

uint32_t apic_id(void)
{
    uint32_t id = apic_read(APIC_ID);
    return apic_mode() == APIC_MODE_X2APIC ? id : id >> 24;
}

static bool bank_bit(unsigned reg, uint8_t vector)
{
    return (apic_read(reg + 0x10u * (vector >> 5)) >> (vector & 31)) & 1;
}
bool apic_irr_bit(uint8_t vector) { return bank_bit(APIC_IRR, vector); }
bool apic_isr_bit(uint8_t vector) { return bank_bit(APIC_ISR, vector); }

uint32_t apic_read_esr(void)
{
    /* The x2APIC ESR MSR also takes a write of 0 to latch (SDM 11.12.1.2). */
    apic_write(APIC_ESR, 0);
    return apic_read(APIC_ESR);
}

bool apic_set_logical_flat(uint8_t mask)
{
    if (apic_mode() == APIC_MODE_X2APIC)
        return false;
    apic_write(APIC_DFR, 0xffffffffu);
    apic_write(APIC_LDR, (uint32_t)mask << 24);
    return true;
}

void apic_send_ipi(uint32_t dest, uint32_t icr_low)
{
    if (apic_mode() == APIC_MODE_X2APIC) {
        /* One 64-bit WRMSR, destination in bits 63:32; no delivery-status bit (SDM 11.12.9). */
        wrmsr(MSR_X2APIC_BASE + (APIC_ICR >> 4), ((uint64_t)dest << 32) | icr_low);
        return;
    }
    apic_write(APIC_ICR2, dest << 24);
    apic_write(APIC_ICR, icr_low);
    /* Software should not write the ICR again while the previous IPI is pending (SDM
     * 11.6.1, delivery status). Bounded so a platform that never clears it cannot hang us. */
    for (unsigned i = 0; i < 100000 && (apic_read(APIC_ICR) & APIC_ICR_BUSY); ++i)
        pause();
}

void apic_self_ipi(uint8_t vector)
{
    if (apic_mode() == APIC_MODE_X2APIC)
        wrmsr(MSR_X2APIC_BASE + (APIC_SELF_IPI >> 4), vector);
    else
        apic_ipi_shorthand(APIC_DEST_SELF, vector);
}

uint32_t apic_divide_bits(unsigned divisor)
{
    /* Bits 3,1,0 = 000 -> /2, 001 -> /4, ..., 110 -> /128, 111 -> /1 (Figure 11-10). */
    static const unsigned order[8] = {2, 4, 8, 16, 32, 64, 128, 1};
    for (uint32_t code = 0; code < 8; ++code)
        if (order[code] == divisor)
            return ((code & 4) << 1) | (code & 3);
    return 0xffffffffu;
}

void apic_timer_setup(uint32_t lvt_mode, uint8_t vector, unsigned divisor)
{
    apic_write(APIC_TDCR, apic_divide_bits(divisor));
    apic_write(APIC_LVTT, lvt_mode | vector);
}

void apic_timer_oneshot(uint8_t vector, unsigned divisor, uint32_t initial_count)
{
    apic_timer_setup(APIC_LVT_TIMER_ONESHOT, vector, divisor);
    apic_timer_start(initial_count);
}

void apic_timer_periodic(uint8_t vector, unsigned divisor, uint32_t initial_count)
{
    apic_timer_setup(APIC_LVT_TIMER_PERIODIC, vector, divisor);
    apic_timer_start(initial_count);
}

void apic_timer_tsc_deadline(uint8_t vector, uint64_t deadline)
{
    apic_write(APIC_LVTT, APIC_LVT_TIMER_TSCDEADLINE | vector);
    /* SDM 11.5.4.1: software should order the LVT write (an MMIO store in xAPIC mode)
     * before the WRMSR with MFENCE; WRMSR to IA32_TSC_DEADLINE is not serializing. */
    __asm__ volatile("mfence" ::: "memory");
    wrmsr(MSR_IA32_TSC_DEADLINE, deadline);
}

void apic_timer_stop(void)
{
    uint32_t lvt = apic_read(APIC_LVTT);
    if ((lvt & (3u << 17)) == APIC_LVT_TIMER_TSCDEADLINE)
        wrmsr(MSR_IA32_TSC_DEADLINE, 0);
    else
        apic_write(APIC_TMICT, 0);
    apic_write(APIC_LVTT, APIC_LVT_MASKED | (lvt & 0xff));
}
