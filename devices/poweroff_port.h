// devices/poweroff_port.h — the Bochs power-off port 0x8900 (scenarios/guest/boot.md §4).
//
// Writing the eight bytes "Shutdown" to port 0x8900, one after the other, powers the
// machine off: Bochs's convention, which QEMU's pc machine also honoured (bochs_bios_write
// in its hw/pc.c) and which kvm-unit-tests' exit() falls back to after writing port 0xf4.
// Matching follows that code: a byte equal to the next expected one advances the match,
// any other byte (the low byte of each access counts) restarts it from the beginning
// without being matched again, so "SShutdown" does not power off but "S!Shutdown" does.
//
// Power-off ends the run after the OUT instruction (Vcpu::request_stop), like port 0xf4,
// with stop reason `exit` and exit status 0: QEMU exits with status 0 when the guest
// powers off, while port 0xf4's ((v << 1) | 1) status is always odd (devices/exit_ports.h),
// so the two can never be confused.
#pragma once
#include <cstdint>

#include "core/pio_bus.h"

namespace pvsim {

// How far the sequence has matched, and whether it completed. PowerOffPort inherits it
// privately; a snapshot copies it whole (tools/platform/README.md "Snapshots").
struct PowerOffPortState {
  uint8_t m_matched = 0;  // bytes of "Shutdown" matched so far
  bool m_requested = false;
  unsigned m_vcpu = 0;    // the vCPU that wrote the last byte
  bool operator==(const PowerOffPortState&) const = default;
};

class PowerOffPort final : public PioDevice, private PowerOffPortState {
 public:
  static constexpr uint16_t kPort = 0x8900;
  static constexpr char kSequence[] = "Shutdown";

  bool requested() const { return m_requested; }
  unsigned vcpu() const { return m_vcpu; }
  unsigned matched() const { return m_matched; }

  struct Snapshot {
    PowerOffPortState state;
  };
  Snapshot save() const { return Snapshot{static_cast<const PowerOffPortState&>(*this)}; }
  void restore(const Snapshot& s) { static_cast<PowerOffPortState&>(*this) = s.state; }

  void pio_read(Vcpu& vcpu, uint16_t offset, unsigned size, uint32_t& value) override;
  void pio_write(Vcpu& vcpu, uint16_t offset, unsigned size, uint32_t value) override;
};

}  // namespace pvsim
