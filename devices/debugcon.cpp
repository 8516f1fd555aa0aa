#include "devices/debugcon.h"

#include <ostream>

namespace pvsim {

void DebugCon::pio_read(Vcpu&, uint16_t, unsigned, uint32_t& value) {
  // Every byte lane reads 0xe9 (QEMU's isa-debugcon returns its readback value, 0xe9).
  value = 0xe9e9e9e9u;
}

void DebugCon::pio_write(Vcpu&, uint16_t, unsigned, uint32_t value) {
  const char c = static_cast<char>(value & 0xff);
  m_out.push_back(c);
  if (m_live) {
    m_live->put(c);
    if (c == '\n') m_live->flush();
  }
}

}  // namespace pvsim
