#include "devices/pc_testdev.h"

namespace pvsim {

namespace {
constexpr uint16_t kFlush = 4;  // 0xe4-0xe7
}  // namespace

void PcTestDev::pio_read(Vcpu&, uint16_t offset, unsigned size, uint32_t& value) {
  if (offset >= kFlush) {
    value = 0xffffffffu;  // the flush port is write-only
    return;
  }
  const unsigned start = offset;  // the register is addressed by byte
  value = 0;
  for (unsigned i = 0; i < size && start + i < 4; ++i)
    value |= ((m_scratch >> (8 * (start + i))) & 0xffu) << (8 * i);
}

void PcTestDev::pio_write(Vcpu&, uint16_t offset, unsigned size, uint32_t value) {
  if (offset >= kFlush) return;  // flush: nothing to flush here
  const unsigned start = offset;
  for (unsigned i = 0; i < size && start + i < 4; ++i) {
    const unsigned shift = 8 * (start + i);
    m_scratch = (m_scratch & ~(0xffu << shift)) | (((value >> (8 * i)) & 0xffu) << shift);
  }
}

void PcTestDev::IrqPorts::pio_read(Vcpu&, uint16_t, unsigned, uint32_t& value) { value = 0xffffffffu; }

void PcTestDev::IrqPorts::pio_write(Vcpu&, uint16_t offset, unsigned size, uint32_t value) {
  if (size != 1 || offset >= kIrqCount) return;
  const bool level = (value & 0xff) != 0;
  m_dev.m_irq_level[offset] = level;
  if (m_dev.m_on_irq) m_dev.m_on_irq(offset, level);
}

}  // namespace pvsim
