/* pic.h - the legacy 8259A interrupt controller pair (ports 0x20/0x21 master, 0xa0/0xa1
 * slave on IR2), which every PC-compatible machine has whether or not the guest wants it.
 *
 * The runtime does not use it: interrupts come from the local APIC. But the BSP's LINT0 is
 * in ExtINT mode (pvsim's boot state, tools/platform/boot.cpp; SeaBIOS programs the same),
 * so whatever the 8259A raises on INT reaches vCPU 0 as soon as it sets IF, with the vector
 * the 8259A supplies in its INTA cycle (SDM Vol.3A 11.5.1, "ExtINT"). After a PC BIOS that is
 * ICW2 = 0x08, i.e. the PIT's IRQ0 arrives as vector 8 (#DF), and QEMU's PIT does fire.
 * pic_disable() therefore reprograms the pair as real guests do before they rely on the
 * APIC (Linux masks and reinitialises it at boot). pvsim models the registers
 * (devices/pic8259.h), so the same writes run there. */
#pragma once

#define PIC_MASTER_CMD 0x20
#define PIC_MASTER_DATA 0x21
#define PIC_SLAVE_CMD 0xa0
#define PIC_SLAVE_DATA 0xa1

/* Where pic_disable() puts the eight vectors of each chip: the first block after the 32
 * exception vectors (SDM Vol.3A 6.2), which no program uses. */
#define PIC_MASTER_VECTOR 0x20
#define PIC_SLAVE_VECTOR 0x28

/* Reinitialises both chips (ICW1-ICW4: vectors PIC_MASTER_VECTOR/PIC_SLAVE_VECTOR, cascade
 * on IR2, 8086 mode, normal EOI) and masks every input (OCW1 = 0xff). Call once, on the
 * BSP, with IF = 0, before anything enables interrupts. */
void pic_disable(void);
