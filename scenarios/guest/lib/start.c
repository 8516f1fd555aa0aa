/* start.c - C entry for every vCPU (called from _start in entry.S). */
#include "desc.h"
#include "libc.h"
#include "pic.h"
#include "smp.h"

/* A program that wants work on the other vCPUs defines ap_main; by default they finish. */
__attribute__((weak)) void ap_main(unsigned cpu, unsigned ncpus);

__attribute__((noreturn)) void guest_start(unsigned cpu, unsigned ncpus, unsigned long ram_bytes);
void guest_start(unsigned cpu, unsigned ncpus, unsigned long ram_bytes)
{
    smp_init(cpu, ncpus);
    if (cpu != 0) {
        /* Stacks and TSS slots exist for MAX_CPUS vCPUs (entry.S parks any others). */
        if (ap_main && cpu < MAX_CPUS) {
            setup_descriptors(cpu);
            ap_main(cpu, ncpus);
        }
        vcpu_finish();
    }
    /* The 8259A pair is one per machine and wired to the BSP's LINT0 (ExtINT): mask it
     * before main can set IF, or a PC firmware's PIT tick arrives as vector 8 (pic.h). */
    pic_disable();
    setup_descriptors(cpu);
    exit(main(cpu, ncpus, ram_bytes));
}
