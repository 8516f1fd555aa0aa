#include "devices/marker.h"

#include "core/vcpu.h"

namespace pvsim {

void MarkerPort::pio_read(Vcpu&, uint16_t, unsigned, uint32_t& value) { value = 0x4d4d4d4du; }

void MarkerPort::pio_write(Vcpu& vcpu, uint16_t, unsigned, uint32_t value) {
  const char c = static_cast<char>(value & 0xff);
  std::string& line = m_lines.at(vcpu.index());
  if (c == '\n' || c == '\0') {
    if (!line.empty()) m_emit(vcpu, line);
    line.clear();
    return;
  }
  line.push_back(c);
  if (line.size() == kMaxText) {
    m_emit(vcpu, line);
    line.clear();
  }
}

}  // namespace pvsim
