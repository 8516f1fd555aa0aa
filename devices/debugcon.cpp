#include "devices/debugcon.h"

#include <ostream>
#include <stdexcept>

namespace pvsim {

void DebugCon::restore(const Snapshot& s) {
  // The text kept since the snapshot is cut off; what came before it is unchanged because
  // the text is only ever appended to. A snapshot longer than the text was taken on a
  // history that an older restore has since discarded.
  if (s.kept > m_out.size())
    throw std::logic_error("DebugCon::restore: the snapshot is newer than the kept text");
  m_out.resize(s.kept);
  static_cast<DebugConState&>(*this) = s.state;
}

void DebugCon::pio_read(Vcpu&, uint16_t, unsigned, uint32_t& value) {
  // Every byte lane reads 0xe9 (QEMU's isa-debugcon returns its readback value, 0xe9).
  value = 0xe9e9e9e9u;
}

void DebugCon::pio_write(Vcpu&, uint16_t, unsigned, uint32_t value) {
  const char c = static_cast<char>(value & 0xff);
  if (m_max && m_bytes >= m_max) {
    if (!m_limit_hit) {
      m_limit_hit = true;
      if (m_live) m_live->flush();
      if (m_on_limit) m_on_limit();
    }
    return;
  }
  ++m_bytes;
  m_last = c;
  if (m_keep) m_out.push_back(c);
  if (m_live) {
    m_live->put(c);
    if (c == '\n') m_live->flush();
  }
}

}  // namespace pvsim
