// devices/pc_testdev.h — the port side of QEMU's `pc-testdev` (hw/misc/pc-testdev.c), the
// ISA test device kvm-unit-tests expects on x86 (scenarios/guest/boot.md §4).
//
// Ports (offsets from kBase = 0xe0; QEMU places the same ranges):
//   0xe0-0xe3  a 32-bit scratch register, little-endian: an access of 1, 2 or 4 bytes at
//              port 0xe0 + k reads or writes its bytes k, k+1, ...; lanes past byte 3 are
//              dropped (QEMU shifts them out of the 32-bit register the same way).
//   0xe4-0xe7  "flush page": QEMU re-protects a host page so a later guest access faults on
//              the host side; pvsim has no host mapping to disturb, so a write has no effect.
//              Write-only: reads give all ones.
// QEMU also shows the scratch register byte-wise at 0xe8-0xeb; pvsim leaves that view out,
// because 0xe9 is its debug console (devices/debugcon.h), and the tests read 0xe0.
// and, claimed separately at kIrqBase = 0x2000:
//   0x2000-0x2017  one port per ISA IRQ line 0-23: a byte write sets that line's level to
//              (value != 0). QEMU accepts only byte writes here; wider ones are dropped.
//              Write-only: reads give all ones.
// The level of each line is kept here and passed to the `on_irq` callback on every write
// (including writes that do not change it: the interrupt controller decides what an edge
// is). The device does no interrupt delivery of its own.
#pragma once
#include <array>
#include <cstdint>
#include <functional>

#include "core/pio_bus.h"

namespace pvsim {

// The scratch register and the line levels. PcTestDev inherits it privately; a snapshot
// copies it whole (tools/platform/README.md "Snapshots").
struct PcTestDevState {
  uint32_t m_scratch = 0;
  std::array<bool, 24> m_irq_level{};
  bool operator==(const PcTestDevState&) const = default;
};

class PcTestDev final : public PioDevice, private PcTestDevState {
 public:
  static constexpr uint16_t kBase = 0xe0;  // scratch, flush
  static constexpr uint32_t kCount = 8;
  static constexpr uint16_t kIrqBase = 0x2000;
  static constexpr uint32_t kIrqCount = 24;

  using IrqSink = std::function<void(unsigned line, bool level)>;
  explicit PcTestDev(IrqSink on_irq = {}) : m_on_irq(std::move(on_irq)) {}

  uint32_t scratch() const { return m_scratch; }
  bool irq_level(unsigned line) const { return line < kIrqCount && m_irq_level[line]; }

  struct Snapshot {
    PcTestDevState state;
  };
  Snapshot save() const { return Snapshot{static_cast<const PcTestDevState&>(*this)}; }
  void restore(const Snapshot& s) { static_cast<PcTestDevState&>(*this) = s.state; }

  // The ports at kBase (offset 0 = port 0xe0).
  void pio_read(Vcpu& vcpu, uint16_t offset, unsigned size, uint32_t& value) override;
  void pio_write(Vcpu& vcpu, uint16_t offset, unsigned size, uint32_t value) override;

  // The IRQ ports at kIrqBase: a second PioDevice over the same state, so the platform can
  // claim the two ranges separately.
  PioDevice& irq_ports() { return m_irq_ports; }

 private:
  class IrqPorts final : public PioDevice {
   public:
    explicit IrqPorts(PcTestDev& d) : m_dev(d) {}
    void pio_read(Vcpu& vcpu, uint16_t offset, unsigned size, uint32_t& value) override;
    void pio_write(Vcpu& vcpu, uint16_t offset, unsigned size, uint32_t value) override;

   private:
    PcTestDev& m_dev;
  };

  IrqSink m_on_irq;
  IrqPorts m_irq_ports{*this};
};

}  // namespace pvsim
