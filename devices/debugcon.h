// devices/debugcon.h — Bochs/QEMU-style debug console on port 0xe9 (boot-protocol.md
// "Guest <-> platform ports").
//
// OUT appends the low byte of each element (so outw/outl/rep outs behave like a byte
// stream); IN returns 0xe9, the presence check Bochs and QEMU's isa-debugcon answer.
// Output is kept in memory (reports and `expect.console` need it) and may also be
// streamed live to a host stream.
#pragma once
#include <cstdint>
#include <iosfwd>
#include <string>

#include "core/pio_bus.h"

namespace pvsim {

class DebugCon final : public PioDevice {
 public:
  static constexpr uint16_t kPort = 0xe9;

  void set_live_output(std::ostream* os) { m_live = os; }
  const std::string& output() const { return m_out; }

  void pio_read(Vcpu& vcpu, uint16_t offset, unsigned size, uint32_t& value) override;
  void pio_write(Vcpu& vcpu, uint16_t offset, unsigned size, uint32_t value) override;

 private:
  std::string m_out;
  std::ostream* m_live = nullptr;
};

}  // namespace pvsim
