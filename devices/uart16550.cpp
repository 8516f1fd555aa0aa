#include "devices/uart16550.h"

namespace pvsim {

uint8_t Uart16550::read_reg(uint16_t offset) const {
  const bool dlab = m_lcr & kLcrDlab;
  switch (offset) {
    case kRbrThr:
      // Nothing is ever received: RBR holds 0 (QEMU's reset value of rbr).
      return dlab ? static_cast<uint8_t>(m_divisor & 0xff) : 0;
    case kIer:
      return dlab ? static_cast<uint8_t>(m_divisor >> 8) : m_ier;
    case kIirFcr:
      // No source is ever pending (THRE interrupts are not modelled, see the header); bits
      // 6-7 say whether FCR enabled the FIFOs (PC16550D, "Interrupt Identification").
      return static_cast<uint8_t>(kIirNoInt | ((m_fcr & 1) ? kIirFifos : 0));
    case kLcr: return m_lcr;
    case kMcr: return m_mcr;
    case kLsr: return kLsrIdle;
    case kMsr:
      if (m_mcr & kMcrLoop) {
        // Loopback: CTS = RTS, DSR = DTR, RI = OUT1, DCD = OUT2 (PC16550D, MCR bit 4).
        return static_cast<uint8_t>(((m_mcr & 0x02) << 3) | ((m_mcr & 0x01) << 5) | ((m_mcr & 0x04) << 4) |
                                    ((m_mcr & 0x08) << 4));
      }
      return kMsrLines;  // the lines never change, so the delta bits 0-3 stay 0
    case kScr: return m_scr;
    default: return 0xff;
  }
}

void Uart16550::write_reg(Vcpu& vcpu, uint16_t offset, uint8_t value) {
  const bool dlab = m_lcr & kLcrDlab;
  switch (offset) {
    case kRbrThr:
      if (dlab) {
        m_divisor = static_cast<uint16_t>((m_divisor & 0xff00) | value);
      } else if (!(m_mcr & kMcrLoop) && m_sink) {
        m_sink(vcpu, value);
      }
      break;
    case kIer:
      if (dlab)
        m_divisor = static_cast<uint16_t>((m_divisor & 0x00ff) | (value << 8));
      else
        m_ier = value & 0x0f;  // bits 4-7 are always 0 on the 16550A
      break;
    case kIirFcr:
      // FCR: the other bits are programmed only together with the enable bit (PC16550D,
      // FCR bit 0); the FIFO-reset bits 1-2 clear themselves.
      m_fcr = (value & 1) ? static_cast<uint8_t>(value & 0xc9) : 0;
      break;
    case kLcr: m_lcr = value; break;
    case kMcr: m_mcr = value & 0x1f; break;  // bits 5-7 are always 0
    case kScr: m_scr = value; break;
    default: break;  // LSR and MSR: writes are for factory test on the 16550A; dropped
  }
}

void Uart16550::pio_read(Vcpu&, uint16_t offset, unsigned size, uint32_t& value) {
  value = 0;
  for (unsigned i = 0; i < size; ++i) {
    const unsigned at = offset + i;
    const uint8_t b = at < kCount ? read_reg(static_cast<uint16_t>(at)) : 0xff;
    value |= static_cast<uint32_t>(b) << (8 * i);
  }
}

void Uart16550::pio_write(Vcpu& vcpu, uint16_t offset, unsigned size, uint32_t value) {
  for (unsigned i = 0; i < size; ++i) {
    const unsigned at = offset + i;
    if (at < kCount) write_reg(vcpu, static_cast<uint16_t>(at), static_cast<uint8_t>(value >> (8 * i)));
  }
}

}  // namespace pvsim
