/* mb_start.c - the C part of the Multiboot front end: the command line, the RAM size and
 * the start of the other vCPUs. multiboot.S calls mb_start on vCPU 0, in long mode, with
 * the protocol's GDT, TSS, page tables and stack in place and IDTR = {0, 0}: a fault here
 * is a triple fault, so keep it simple.
 *
 * RAM size (RDX at entry): Multiboot's mem_upper is what the firmware leaves usable, not
 * what the machine has (SeaBIOS keeps the top 128 KiB for itself, so a 16 MiB machine shows
 * 15.875 MiB). The PC/AT CMOS extended-memory registers hold the installed size, and
 * SeaBIOS and the Bochs BIOS size RAM from them too: 0x34/0x35 = 64 KiB blocks above
 * 16 MiB, else 0x30/0x31 = KiB above 1 MiB. Both describe RAM below 4 GiB only, which is
 * all the guests here use. mem_upper + 1 MiB is the fallback when the CMOS says nothing.
 *
 * pvsim starts every vCPU at the entry point together (tools/platform/boot.cpp); a PC starts only
 * the BSP, and the firmware leaves the others halted. So the front end wakes each with
 * INIT + start-up IPI (SDM Vol.3A 9.4.4.1) into the real-mode trampoline of multiboot.S,
 * which brings it to _start with the protocol's registers for its index. One vCPU at a
 * time: vCPU i gets index i and must be APIC ID i, which is what the boot protocol says
 * and what QEMU gives with -smp N,sockets=1,cores=N,threads=1.
 *
 * Command line (QEMU -append; QEMU puts the kernel file name first, so unknown words are
 * skipped):
 *   pvsim.vcpus=N    the machine has N vCPUs (RSI = N); default 1
 *   pvsim.start=bsp  start none of the others (scenario machine.start "bsp": they stay
 *                    as the firmware left them, halted); default: start all
 * Self-contained: the stub build links no guest runtime, so no printf here. */
#include <stdbool.h>
#include <stdint.h>

#include "asm_defs.h"
#include "processor.h"

#define AP_TRAMPOLINE 0x8000 /* multiboot.S */
#define SIPI_VECTOR (AP_TRAMPOLINE >> 12)

/* xAPIC at the architectural base (SDM Vol.3A 11.4.1); the firmware leaves vCPU 0 in
 * xAPIC mode and the boot page tables map it uncached. */
#define APIC_MMIO 0xfee00000ul
#define APIC_ICR_LO 0x300
#define APIC_ICR_HI 0x310
#define ICR_DELIVERY_PENDING (1u << 12)
#define ICR_ASSERT (1u << 14)
#define ICR_INIT (5u << 8)
#define ICR_STARTUP (6u << 8)

/* How long to wait for an AP, in TSC cycles (about 0.1 s at 2-3 GHz; TCG's TSC follows
 * the host clock too), and how many start-up IPIs to try. The SDM's sequence sends two;
 * QEMU and KVM need one, but a second one costs nothing while the AP is not yet out of
 * wait-for-SIPI, where a further SIPI is ignored. */
#define AP_WAIT_CYCLES 300000000ull
#define AP_SIPI_TRIES 3

extern uint64_t mb_ram_bytes;
extern uint32_t mb_ram_kib, mb_ncpus;
extern volatile uint32_t mb_ap_index, mb_ap_ack;
extern char mb_cmdline[];
extern const uint8_t mb_ap_trampoline[], mb_ap_trampoline_end[];

unsigned mb_start(void);

static void puts_e9(const char* s)
{
    while (*s)
        outb((uint8_t)*s++, 0xe9);
}

static void putu_e9(unsigned v)
{
    char buf[12];
    int n = 0;
    do
        buf[n++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    while (n)
        outb((uint8_t)buf[--n], 0xe9);
}

/* The front end cannot do its job: say why on the console (with `value` unless it is
 * negative) and end the VM the way the guest runtime would (port 0xf4, status
 * (0x7f << 1) | 1 = 255, which no guest uses). */
__attribute__((noreturn)) static void fail(const char* what, long value)
{
    puts_e9("multiboot: ");
    puts_e9(what);
    if (value >= 0)
        putu_e9((unsigned)value);
    puts_e9("\n");
    outl(0x7f, 0xf4);
    for (;;)
        __asm__ volatile("cli; hlt");
}

static bool word_is(const char* w, const char* end, const char* s)
{
    for (; w < end && *s; ++w, ++s)
        if (*w != *s)
            return false;
    return w == end && !*s;
}

#define CMOS_INDEX 0x70
#define CMOS_DATA 0x71
#define CMOS_EXTMEM_LO 0x30  /* KiB above 1 MiB, at most 0xffff */
#define CMOS_EXTMEM2_LO 0x34 /* 64 KiB blocks above 16 MiB */

static unsigned cmos_read16(uint8_t reg)
{
    outb(reg, CMOS_INDEX);
    unsigned lo = inb(CMOS_DATA);
    outb((uint8_t)(reg + 1), CMOS_INDEX);
    return lo | (unsigned)inb(CMOS_DATA) << 8;
}

static uint64_t cmos_ram_bytes(void)
{
    uint64_t above16 = cmos_read16(CMOS_EXTMEM2_LO);
    if (above16)
        return (16ull << 20) + (above16 << 16);
    uint64_t above1 = cmos_read16(CMOS_EXTMEM_LO);
    return above1 ? (1ull << 20) + (above1 << 10) : 0;
}

static void apic_write(unsigned reg, uint32_t v) { *(volatile uint32_t*)(APIC_MMIO + reg) = v; }
static uint32_t apic_read(unsigned reg) { return *(volatile uint32_t*)(APIC_MMIO + reg); }

static void send_ipi(unsigned apic_id, uint32_t icr_lo)
{
    apic_write(APIC_ICR_HI, apic_id << 24);
    apic_write(APIC_ICR_LO, icr_lo);
    while (apic_read(APIC_ICR_LO) & ICR_DELIVERY_PENDING)
        __asm__ volatile("pause");
}

static bool wait_ack(void)
{
    uint64_t t0 = rdtsc();
    while (!mb_ap_ack) {
        if (rdtsc() - t0 > AP_WAIT_CYCLES)
            return false;
        __asm__ volatile("pause");
    }
    return true;
}

static void start_ap(unsigned i)
{
    mb_ap_index = i;
    mb_ap_ack = 0;
    send_ipi(i, ICR_INIT | ICR_ASSERT);
    for (int t = 0; t < AP_SIPI_TRIES; ++t) {
        send_ipi(i, ICR_STARTUP | ICR_ASSERT | SIPI_VECTOR);
        if (wait_ack())
            return;
    }
    fail("no answer to INIT and start-up IPIs from vCPU ", i);
}

unsigned mb_start(void)
{
    unsigned ncpus = 1;
    bool start_all = true;
    for (const char* p = mb_cmdline; *p;) {
        while (*p == ' ')
            ++p;
        const char* w = p;
        while (*p && *p != ' ')
            ++p;
        const char* eq = w;
        while (eq < p && *eq != '=')
            ++eq;
        if (eq == p)
            continue;
        if (word_is(w, eq, "pvsim.vcpus")) {
            unsigned n = 0;
            const char* d = eq + 1;
            for (; d < p && *d >= '0' && *d <= '9' && n <= MAX_CPUS; ++d)
                n = n * 10 + (unsigned)(*d - '0');
            if (d != p || d == eq + 1 || n < 1 || n > MAX_CPUS)
                fail("pvsim.vcpus must be a number from 1 to 64", -1);
            ncpus = n;
        } else if (word_is(w, eq, "pvsim.start")) {
            if (word_is(eq + 1, p, "bsp"))
                start_all = false;
            else if (!word_is(eq + 1, p, "all"))
                fail("pvsim.start must be bsp or all", -1);
        }
    }
    mb_ncpus = ncpus;
    mb_ram_bytes = cmos_ram_bytes();
    if (!mb_ram_bytes)
        mb_ram_bytes = (uint64_t)mb_ram_kib << 10;
    if (ncpus > 1 && start_all) {
        volatile uint8_t* dst = (volatile uint8_t*)AP_TRAMPOLINE;
        for (const uint8_t* s = mb_ap_trampoline; s < mb_ap_trampoline_end; ++s)
            *dst++ = *s;
        for (unsigned i = 1; i < ncpus; ++i)
            start_ap(i);
    }
    return ncpus;
}
