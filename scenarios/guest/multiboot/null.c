/* null.c - the "null" image of tools/bench/compare.py: boots through the Multiboot front
 * end, checks the machine state the front end built, prints and exits. Its wall time is
 * the start-up cost (emulator launch, firmware, loader, exit) that compare.py subtracts
 * from each workload's wall time.
 *
 * NULL_PAD_BYTES gives it a .bss as large as the workload it stands for, so a loader that
 * zeroes .bss (GRUB under Bochs does it instruction by instruction) costs the same in both. */
#include "libc.h"
#include "processor.h"
#include "report.h"

#ifndef NULL_PAD_BYTES
#define NULL_PAD_BYTES 0
#endif
#if NULL_PAD_BYTES > 0
__attribute__((used)) static uint8_t pad[NULL_PAD_BYTES];
#endif

static inline uint64_t read_cr(int n)
{
    uint64_t v = 0;
    switch (n) {
    case 0: __asm__ volatile("mov %%cr0, %0" : "=r"(v)); break;
    case 3: __asm__ volatile("mov %%cr3, %0" : "=r"(v)); break;
    case 4: __asm__ volatile("mov %%cr4, %0" : "=r"(v)); break;
    }
    return v;
}

int main(unsigned cpu, unsigned ncpus, unsigned long ram_bytes)
{
    /* The boot.md §3 values; a wrong front end shows up here, not as slow numbers. */
    report(cpu == 0 && ncpus == 1, "null: vCPU %u of %u", cpu, ncpus);
    report(ram_bytes >= (64ul << 20), "null: RAM %lu MiB", ram_bytes >> 20);
    report(read_cr(0) == 0x80010033 && read_cr(3) == 0x10000 && read_cr(4) == 0x20,
           "null: CR0 0x%lx CR3 0x%lx CR4 0x%lx", read_cr(0), read_cr(3), read_cr(4));
    report(rdmsr(0xc0000080) == 0x500, "null: EFER 0x%lx", rdmsr(0xc0000080));
    report_summary();
}
