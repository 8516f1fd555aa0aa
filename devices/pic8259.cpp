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

int Pic8259::rank(uint8_t mask) const {
  for (int r = 0; r < 8; ++r)
    if (mask & (1u << ((m_lowest + 1 + r) & 7))) return r;
  return 8;
}

int Pic8259::pending() const {
  const int want = rank(static_cast<uint8_t>(m_irr & ~m_imr));
  if (want == 8) return -1;
  uint8_t busy = m_isr;
  // Special fully nested mode (datasheet, "Special Fully Nest Mode"): the master lets a
  // cascade input through while it is in service, so the slave can nest its own levels.
  if (special_fully_nested()) busy = static_cast<uint8_t>(busy & ~m_cascade_inputs);
  // Special mask mode (datasheet, "Special Mask Mode"): a masked level in service no
  // longer holds back the levels below it (KVM's pic_get_irq does the same).
  if (m_special_mask) busy = static_cast<uint8_t>(busy & ~m_imr);
  if (want < rank(busy)) return (m_lowest + 1 + want) & 7;
  return -1;
}

void Pic8259::acknowledge_level(unsigned level_no) {
  const uint8_t bit = static_cast<uint8_t>(1u << (level_no & 7));
  m_isr |= bit;
  // Edge: the request is consumed. Level: IRR keeps following the line.
  if (!(m_elcr & bit)) m_irr = static_cast<uint8_t>(m_irr & ~bit);
  if (auto_eoi()) {
    // AEOI ends the level at the last INTA pulse; with rotate-in-AEOI it becomes the
    // lowest priority first (datasheet, "Automatic Rotation").
    if (m_rotate_aeoi) m_lowest = static_cast<uint8_t>(level_no & 7);
    m_isr = static_cast<uint8_t>(m_isr & ~bit);
  }
}

void Pic8259::set_input(unsigned level_no, bool level) {
  const uint8_t bit = static_cast<uint8_t>(1u << (level_no & 7));
  if (level) {
    // Edge: only a low-to-high transition requests. Level: the line is the request.
    if ((m_elcr & bit) || !(m_lines & bit)) m_irr |= bit;
    m_lines |= bit;
  } else {
    m_lines = static_cast<uint8_t>(m_lines & ~bit);
    if (m_elcr & bit) m_irr = static_cast<uint8_t>(m_irr & ~bit);
  }
  changed();
}

void Pic8259::set_elcr(uint8_t value) {
  m_elcr = value;
  // A level-triggered input's request is its line from now on; an edge one keeps what
  // it latched.
  m_irr = static_cast<uint8_t>((m_irr & ~value) | (m_lines & value));
  changed();
}

uint8_t Pic8259::read_byte(uint16_t offset) {
  if (offset == 1) return m_imr;
  if (m_poll) {
    // A poll command makes the next command-port read the poll word (datasheet, "The
    // Poll Command"): the read is this chip's INTA, so the request goes in service; I
    // (bit 7) says there was one and W2-W0 name its level. Without one, I = 0.
    m_poll = false;
    const int level = pending();
    if (level < 0) return 0;
    acknowledge_level(static_cast<unsigned>(level));
    changed();
    return static_cast<uint8_t>(0x80 | level);
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
  changed();
}

void Pic8259::write_icw1(uint8_t value) {
  // Datasheet, "Initialization Command Words": ICW1 resets the edge sense circuit, clears
  // the IMR, makes IR7 the lowest priority, clears special mask mode and selects the IRR
  // for status reads; with IC4 = 0 every ICW4 function is 0. A sequence already under way
  // starts over. Resetting the edge sense circuit drops the latched edge requests (an
  // input already high must go low and high again); the in-service bits go too, as in
  // QEMU's pic_init_reset (the datasheet does not list ISR), so a reinitialised chip
  // starts clean.
  m_irr = static_cast<uint8_t>(m_irr & m_elcr);
  m_isr = 0;
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

// ---------------------------------------------------------------- ELCR

uint32_t Pic8259Elcr::read(uint16_t offset, unsigned size) const {
  uint32_t value = 0;
  for (unsigned i = 0; i < size; ++i) {
    const unsigned lane = offset + i;
    const uint8_t b = lane == 0   ? m_pair.master().elcr()
                      : lane == 1 ? m_pair.slave().elcr()
                                  : 0xff;  // floating
    value |= uint32_t{b} << (8 * i);
  }
  return value;
}

void Pic8259Elcr::write(uint16_t offset, unsigned size, uint32_t value) {
  uint16_t elcr = m_pair.elcr_value();
  for (unsigned i = 0; i < size; ++i) {
    const unsigned lane = offset + i;
    if (lane >= kPorts) continue;
    const uint8_t b = static_cast<uint8_t>(value >> (8 * i));
    elcr = static_cast<uint16_t>((elcr & ~(0xffu << (8 * lane))) | (uint32_t{b} << (8 * lane)));
  }
  m_pair.set_elcr_value(elcr);
}

void Pic8259Elcr::pio_read(Vcpu&, uint16_t offset, unsigned size, uint32_t& value) {
  value = read(offset, size);
}

void Pic8259Elcr::pio_write(Vcpu&, uint16_t offset, unsigned size, uint32_t value) {
  write(offset, size, value);
}

// ---------------------------------------------------------------- the pair

Pic8259Pair::Pic8259Pair() {
  m_master.m_on_change = [this] { update(); };
  m_slave.m_on_change = [this] { update(); };
  m_master.m_cascade_inputs = 1u << kCascadePin;
}

void Pic8259Pair::update() {
  // The slave's INT requests the master's IR2 (edge input) whenever the slave has
  // something to pass on; setting the IRR bit directly is that request (KVM's
  // pic_update_irq pulses the line for the same effect).
  if (m_slave.pending() >= 0) m_master.m_irr |= 1u << kCascadePin;
  const bool out = compute_output();
  if (out == m_output) return;
  m_output = out;
  if (m_output_cb) m_output_cb(out);
}

void Pic8259Pair::set_irq(unsigned pin, bool level) {
  if (pin >= kPins || pin == kCascadePin) return;
  if (pin < 8)
    m_master.set_input(pin, level);
  else
    m_slave.set_input(pin - 8, level);
}

uint8_t Pic8259Pair::acknowledge() {
  uint8_t vector;
  const int level = m_master.pending();
  if (level < 0) {
    vector = static_cast<uint8_t>(m_master.vector_base() + 7);  // spurious IRQ 7
  } else {
    m_master.acknowledge_level(static_cast<unsigned>(level));
    if (level == static_cast<int>(kCascadePin)) {
      // The slave drives the vector in the second INTA pulse (datasheet, "Cascading").
      const int l2 = m_slave.pending();
      if (l2 >= 0) {
        m_slave.acknowledge_level(static_cast<unsigned>(l2));
        vector = static_cast<uint8_t>(m_slave.vector_base() + l2);
      } else {
        vector = static_cast<uint8_t>(m_slave.vector_base() + 7);  // spurious IRQ 15
      }
    } else {
      vector = static_cast<uint8_t>(m_master.vector_base() + level);
    }
  }
  update();
  return vector;
}

void Pic8259Pair::set_elcr_value(uint16_t value) {
  m_master.set_elcr(static_cast<uint8_t>(value & Pic8259Elcr::kMasterMask));
  m_slave.set_elcr(static_cast<uint8_t>((value >> 8) & Pic8259Elcr::kSlaveMask));
}

void Pic8259Pair::set_post_bios_state() {
  // ICW1 0x11 (cascade, ICW4 follows), ICW2, ICW3 (master: slave on IR2; slave: ID 2),
  // ICW4 0x01 (8086 mode, normal EOI), then OCW1.
  const auto init = [](Pic8259& chip, uint8_t base, uint8_t icw3, uint8_t imr) {
    chip.write(0, 1, 0x11);
    chip.write(1, 1, base);
    chip.write(1, 1, icw3);
    chip.write(1, 1, 0x01);
    chip.write(1, 1, imr);
  };
  init(m_master, 0x08, 0x04, 0xb8);
  init(m_slave, 0x70, 0x02, 0x8e);
  set_elcr_value(0x0c00);
}

void Pic8259Pair::restore(const Snapshot& s) {
  m_master.restore(s.master);
  m_slave.restore(s.slave);
  m_output = compute_output();
}

}  // namespace pvsim
