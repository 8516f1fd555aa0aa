#include "devices/poweroff_port.h"

#include "core/vcpu.h"

namespace pvsim {

void PowerOffPort::pio_read(Vcpu&, uint16_t, unsigned, uint32_t& value) {
  value = 0xffffffffu;  // write-only; a floating bus as for an absent ISA device
}

void PowerOffPort::pio_write(Vcpu& vcpu, uint16_t, unsigned, uint32_t value) {
  constexpr unsigned kLen = sizeof(kSequence) - 1;
  if (static_cast<char>(value & 0xff) != kSequence[m_matched]) {
    m_matched = 0;
    return;
  }
  if (++m_matched < kLen) return;
  m_matched = 0;
  // The first power-off wins, as the first 0xf4 write does.
  if (!m_requested) {
    m_requested = true;
    m_vcpu = vcpu.index();
  }
  vcpu.request_stop(StopReason::VmExitRequested);
}

}  // namespace pvsim
