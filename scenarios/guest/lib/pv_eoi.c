/* pv_eoi.c - PV EOI registration and the guest's EOI path (see pv_eoi.h). */
#include "pv_eoi.h"

#include "apic.h"
#include "smp.h"

struct pv_eoi_cpu {
    volatile uint32_t word; /* the 4 bytes KVM is given; only bit 0 of byte 0 is used */
    uint64_t msr_value;
    struct pv_eoi_counters c;
} __attribute__((aligned(64)));

static struct pv_eoi_cpu eoi_cpus[MAX_CPUS];
static irq_handler_fn pv_handlers[256];

volatile uint32_t* pv_eoi_word(unsigned cpu) { return &eoi_cpus[cpu].word; }
bool pv_eoi_enabled(unsigned cpu) { return (eoi_cpus[cpu].msr_value & KVM_PV_EOI_ENABLED) != 0; }
const volatile struct pv_eoi_counters* pv_eoi_counters(unsigned cpu) { return &eoi_cpus[cpu].c; }

void pv_eoi_reset_counters(unsigned cpu)
{
    struct pv_eoi_counters* c = &eoi_cpus[cpu].c;
    c->by_bit = c->by_register = c->doubled = 0;
}

unsigned pv_eoi_enable(void)
{
    struct pv_eoi_cpu* e = &eoi_cpus[this_cpu()];
    if (!kvm_para_has(KVM_FEATURE_PV_EOI))
        return PV_EOI_NOT_OFFERED;
    e->word = 0; /* Linux's kvm_guest_cpu_init zeroes it before the MSR write */
    uint64_t value = (uint64_t)(uintptr_t)&e->word | KVM_PV_EOI_ENABLED;
    unsigned fault = pv_wrmsr_safe(MSR_KVM_PV_EOI_EN, value);
    if (!fault)
        e->msr_value = value;
    return fault;
}

unsigned pv_eoi_disable(void)
{
    struct pv_eoi_cpu* e = &eoi_cpus[this_cpu()];
    unsigned fault = pv_wrmsr_safe(MSR_KVM_PV_EOI_EN, 0);
    if (!fault)
        e->msr_value = 0;
    return fault;
}

bool pv_eoi(void)
{
    struct pv_eoi_cpu* e = &eoi_cpus[this_cpu()];
    /* With PV EOI off the bit is never set, so the BTR alone would do; skipping it keeps
     * the plain path exactly the runtime's usual EOI. */
    if (e->msr_value && pv_eoi_test_and_clear(&e->word)) {
        ++e->c.by_bit;
        return true;
    }
    ++e->c.by_register;
    apic_eoi();
    return false;
}

bool pv_eoi_double(void)
{
    struct pv_eoi_cpu* e = &eoi_cpus[this_cpu()];
    bool was_set = pv_eoi_test_and_clear(&e->word);
    if (was_set)
        ++e->c.doubled;
    ++e->c.by_register;
    apic_eoi();
    return was_set;
}

static void pv_dispatch(unsigned vector, struct ex_frame* f)
{
    pv_handlers[vector](vector, f);
    pv_eoi();
}

void pv_irq_set_handler_eoi(unsigned vector, irq_handler_fn fn)
{
    pv_handlers[vector & 255] = fn;
    irq_set_handler(vector, pv_dispatch);
}
