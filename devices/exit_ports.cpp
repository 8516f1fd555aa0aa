#include "devices/exit_ports.h"

#include <algorithm>

#include "core/vcpu.h"

namespace pvsim {

bool ExitPorts::all_finished() const {
  return std::all_of(m_finished.begin(), m_finished.end(), [](bool f) { return f; });
}

void ExitPorts::pio_read(Vcpu&, uint16_t, unsigned, uint32_t& value) {
  // Write-only ports; reads see a floating bus like an absent ISA device would.
  value = 0xffffffffu;
}

void ExitPorts::pio_write(Vcpu& vcpu, uint16_t offset, unsigned, uint32_t value) {
  if (offset == 0) {
    // The first 0xf4 write wins; later ones (another vCPU in the same quantum) are ignored.
    if (!m_exit_requested) {
      m_exit_requested = true;
      m_status = static_cast<uint8_t>(((value << 1) | 1u) & 0xffu);
      m_exit_vcpu = vcpu.index();
    }
    vcpu.request_stop(StopReason::VmExitRequested);
  } else {
    if (vcpu.index() < m_finished.size()) m_finished[vcpu.index()] = true;
    vcpu.request_stop(StopReason::VcpuFinished);
  }
}

}  // namespace pvsim
