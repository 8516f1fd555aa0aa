#include "devices/pic8259.h"

namespace pvsim {

namespace {
// ICW1 (8259A datasheet, Figure "Initialization Command Word Format").
constexpr uint8_t kIcw1Marker = 0x10;  // D4 = 1 on the command port
constexpr uint8_t kIcw1Ic4 = 0x01;     // an ICW4 follows
constexpr uint8_t kIcw1Single = 0x02;  // SNGL: no cascade, so no ICW3
// OCW3: D4 = 0, D3 = 1.
constexpr uint8_t kOcw3Marker = 0x08;
constexpr uint8_t kOcw3Esmm = 0x40, kOcw3Smm = 0x20, kOcw3Poll = 0x04, kOcw3Rr = 0x02,
                  kOcw3Ris = 0x01;
}  // namespace

uint32_t Pic8259::read(uint16_t offset, unsigned size) {
  uint32_t value = 0;
  for (unsigned i = 0; i < size; ++i) {
    const unsigned lane = offset + i;
    const uint8_t b = lane < kPorts ? read_byte(static_cast<uint16_t>(lane)) : 0xff;
    value |= uint32_t{b} << (8 * i);
  }
  return value;
}

void Pic8259::write(uint16_t offset, unsigned size, uint32_t value) {
  for (unsigned i = 0; i < size; ++i) {
    const unsigned lane = offset + i;
    if (lane < kPorts)
      write_byte(static_cast<uint16_t>(lane), static_cast<uint8_t>(value >> (8 * i)));
  }
}

void Pic8259::pio_read(Vcpu&, uint16_t offset, unsigned size, uint32_t& value) {
  value = read(offset, size);
}

void Pic8259::pio_write(Vcpu&, uint16_t offset, unsigned size, uint32_t value) {
  write(offset, size, value);
}

uint8_t Pic8259::read_byte(uint16_t offset) {
  if (offset == 1) return m_imr;
  if (m_poll) {
    // A poll command makes the next command-port read the poll word: I (bit 7) set and
    // W2-W0 = the highest-priority request, acknowledging it like an INTA. No input can
    // request yet (see the header), so I is 0 and W2-W0 carry nothing.
    m_poll = false;
    return 0;
  }
  return m_read_isr ? m_isr : m_irr;
}

void Pic8259::write_byte(uint16_t offset, uint8_t value) {
  if (offset == 1) {
    write_data(value);
  } else if (value & kIcw1Marker) {
    write_icw1(value);
  } else if (value & kOcw3Marker) {
    write_ocw3(value);
  } else {
    write_ocw2(value);
  }
}

void Pic8259::write_icw1(uint8_t value) {
  // Datasheet, "Initialization Command Words": ICW1 resets the edge sense circuit, clears
  // the IMR, makes IR7 the lowest priority, clears special mask mode and selects the IRR
  // for status reads; with IC4 = 0 every ICW4 function is 0. A sequence already under way
  // starts over.
  m_icw1 = value;
  m_imr = 0;
  m_lowest = 7;
  m_special_mask = false;
  m_read_isr = false;
  m_poll = false;
  m_rotate_aeoi = false;
  m_icw3 = 0;
  m_icw4 = 0;
  m_step = InitStep::Icw2;
}

// The word after `done` in ICW1's sequence: ICW3 only when cascaded (SNGL = 0), ICW4 only
// when ICW1.IC4 asks for it.
Pic8259::InitStep Pic8259::step_after(InitStep done) const {
  if (done == InitStep::Icw2 && !(m_icw1 & kIcw1Single)) return InitStep::Icw3;
  if (done != InitStep::Icw4 && (m_icw1 & kIcw1Ic4)) return InitStep::Icw4;
  return InitStep::Ready;
}

bool Pic8259::initialised() const { return (m_icw1 & kIcw1Marker) && m_step == InitStep::Ready; }

void Pic8259::write_data(uint8_t value) {
  switch (m_step) {
    case InitStep::Icw2:
      m_icw2 = value;
      break;
    case InitStep::Icw3:
      m_icw3 = value;  // master: which IR inputs have slaves; slave: its cascade identity
      break;
    case InitStep::Icw4:
      m_icw4 = value;
      break;
    case InitStep::Ready:
      m_imr = value;  // OCW1
      return;
  }
  m_step = step_after(m_step);
}

void Pic8259::end_of_interrupt(int level) {
  // level < 0: non-specific, the highest-priority bit in service. Priority runs from the
  // level after m_lowest (highest) round to m_lowest (lowest).
  if (level < 0) {
    for (int i = 1; i <= 8; ++i) {
      const int l = (m_lowest + i) & 7;
      if (m_isr & (1u << l)) {
        level = l;
        break;
      }
    }
    if (level < 0) return;  // nothing in service: the EOI has no effect
  }
  m_isr = static_cast<uint8_t>(m_isr & ~(1u << level));
}

void Pic8259::write_ocw2(uint8_t value) {
  // Datasheet, "Operation Command Words", OCW2: bits 7:5 = R, SL, EOI; bits 2:0 = level.
  m_last_ocw2 = value;
  const int level = value & 7;
  switch (value >> 5) {
    case 0b001:  // non-specific EOI
      end_of_interrupt(-1);
      break;
    case 0b011:  // specific EOI
      end_of_interrupt(level);
      break;
    case 0b101: {  // rotate on non-specific EOI: the level ended becomes the lowest
      const uint8_t before = m_isr;
      end_of_interrupt(-1);
      const uint8_t ended = static_cast<uint8_t>(before & ~m_isr);
      for (int l = 0; l < 8; ++l)
        if (ended & (1u << l)) m_lowest = static_cast<uint8_t>(l);
      break;
    }
    case 0b111:  // rotate on specific EOI
      end_of_interrupt(level);
      m_lowest = static_cast<uint8_t>(level);
      break;
    case 0b110:  // set priority: `level` becomes the lowest
      m_lowest = static_cast<uint8_t>(level);
      break;
    case 0b100:  // rotate in automatic EOI mode: set
      m_rotate_aeoi = true;
      break;
    case 0b000:  // rotate in automatic EOI mode: clear
      m_rotate_aeoi = false;
      break;
    default:  // 0b010: no operation
      break;
  }
}

void Pic8259::write_ocw3(uint8_t value) {
  // OCW3: ESMM/SMM set or clear special mask mode; P is the poll command; RR/RIS select
  // the register the next command-port read returns (RR = 0 leaves the choice unchanged).
  m_last_ocw3 = value;
  if (value & kOcw3Esmm) m_special_mask = (value & kOcw3Smm) != 0;
  if (value & kOcw3Rr) m_read_isr = (value & kOcw3Ris) != 0;
  m_poll = (value & kOcw3Poll) != 0;
}

}  // namespace pvsim
