// devices/exit_ports.h — ports 0xf4 (end the VM) and 0xf5 (this vCPU is finished).
//
// 0xf4 follows QEMU's isa-debug-exit: the exit status is ((v << 1) | 1) & 0xff, so a
// guest can never produce status 0 by accident (scenarios/guest/boot.md §4). 0xf5 is pvsim's own:
// the vCPU that writes it stops for good; when all have, the VM ends with status 0.
// Both take effect after the OUT instruction completes (Vcpu::request_stop).
#pragma once
#include <cstdint>
#include <vector>

#include "core/pio_bus.h"

namespace pvsim {

// What the guest has written to the two ports. ExitPorts inherits it privately; a snapshot
// copies it whole, so a member added here is saved and restored without further code
// (tools/platform/README.md "Snapshots").
struct ExitPortsState {
  bool m_exit_requested = false;
  uint8_t m_status = 0;
  unsigned m_exit_vcpu = 0;
  std::vector<bool> m_finished;  // one per vCPU: it wrote 0xf5
  bool operator==(const ExitPortsState&) const = default;
};

class ExitPorts final : public PioDevice, private ExitPortsState {
 public:
  static constexpr uint16_t kBase = 0xf4;  // claims 0xf4 and 0xf5
  static constexpr uint32_t kCount = 2;

  explicit ExitPorts(unsigned vcpu_count) { m_finished.assign(vcpu_count, false); }

  bool exit_requested() const { return m_exit_requested; }
  uint8_t exit_status() const { return m_status; }
  unsigned exit_vcpu() const { return m_exit_vcpu; }
  bool finished(unsigned vcpu) const { return vcpu < m_finished.size() && m_finished[vcpu]; }
  bool all_finished() const;

  // Snapshots (tools/platform/README.md "Snapshots"). Only the ports' own record: the stop
  // each write requested is the Vcpu's state (Vcpu::request_stop) and is restored there.
  struct Snapshot {
    ExitPortsState state;
  };
  Snapshot save() const { return Snapshot{static_cast<const ExitPortsState&>(*this)}; }
  void restore(const Snapshot& s) { static_cast<ExitPortsState&>(*this) = s.state; }

  void pio_read(Vcpu& vcpu, uint16_t offset, unsigned size, uint32_t& value) override;
  void pio_write(Vcpu& vcpu, uint16_t offset, unsigned size, uint32_t value) override;
};

}  // namespace pvsim
