/* pic.c - take the 8259A pair out of the way (see pic.h for why it matters at all).
 *
 * Why a full reinitialisation and not only OCW1 = 0xff: masking alone keeps the vector base
 * the firmware chose (0x08/0x70 after a PC BIOS, so IR0-IR7 map onto exception vectors
 * 8-15) and whatever else it left (special mask mode, poll or read-register selection, a
 * rotated priority). An input that is masked can still reach the CPU as the 8259A's
 * "spurious" IR7: when INT was raised and the request is gone by the INTA cycle, the chip
 * answers with the IR7 vector (8259A datasheet, "Interrupt Sequence"). With the BIOS base
 * that is vector 15, which the runtime would report as an exception. ICW1 resets the
 * chip's state (datasheet, "Initialization Command Words": edge detection reset, IMR
 * cleared, IR7 lowest priority, special mask mode off, IRR selected for reading), ICW2
 * moves the vectors to 0x20-0x2f, above the exception range (SDM Vol.3A 6.2), and only
 * then OCW1 masks every input, because ICW1 has just cleared the mask. IF is 0 throughout,
 * so the moment between ICW1 and OCW1 in which a request can be latched never lets one in:
 * once masked it no longer drives INT.
 *
 * No I/O delays between the writes: they matter for the 8259A's recovery time on old ISA
 * buses, not for QEMU, KVM or pvsim. */
#include "pic.h"

#include "processor.h"

/* ICW1: bit 4 marks ICW1; IC4 (bit 0) = an ICW4 follows; SNGL (bit 1) = 0: cascaded, so an
 * ICW3 follows; LTIM (bit 3) = 0: edge-triggered, the ISA convention. */
#define ICW1_INIT 0x10
#define ICW1_IC4 0x01
/* ICW3 of the master: a slave on IR2 (bit mask); of the slave: its cascade identity, 2. */
#define ICW3_MASTER_SLAVE_ON_IR2 0x04
#define ICW3_SLAVE_ID 0x02
/* ICW4: uPM (bit 0) = 8086/8088 mode (one vector byte, base + IR number); no automatic EOI,
 * not buffered, not special fully nested. */
#define ICW4_8086 0x01
/* OCW1: one mask bit per IR input. */
#define OCW1_MASK_ALL 0xff

static void init_chip(uint16_t cmd, uint16_t data, uint8_t vector_base, uint8_t icw3)
{
    outb(ICW1_INIT | ICW1_IC4, cmd);
    outb(vector_base, data); /* ICW2: bits 7:3 of every vector (8086 mode) */
    outb(icw3, data);
    outb(ICW4_8086, data);
}

void pic_disable(void)
{
    init_chip(PIC_MASTER_CMD, PIC_MASTER_DATA, PIC_MASTER_VECTOR, ICW3_MASTER_SLAVE_ON_IR2);
    init_chip(PIC_SLAVE_CMD, PIC_SLAVE_DATA, PIC_SLAVE_VECTOR, ICW3_SLAVE_ID);
    outb(OCW1_MASK_ALL, PIC_MASTER_DATA);
    outb(OCW1_MASK_ALL, PIC_SLAVE_DATA);
}
