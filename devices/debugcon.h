// devices/debugcon.h — Bochs/QEMU-style debug console on port 0xe9 (scenarios/guest/boot.md
// §4).
//
// OUT appends the low byte of each element (so outw/outl/rep outs behave like a byte
// stream); IN returns 0xe9, the presence check Bochs and QEMU's isa-debugcon answer.
// Output is streamed live to a host stream if one is set, and kept in memory only when
// asked (the `expect.console*` checks need it). A cap bounds both: the first byte beyond
// it is dropped and reported through the limit callback, which ends the run (a guest
// printing without end must not fill the host's memory or disk).
#pragma once
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>

#include "core/pio_bus.h"

namespace pvsim {

class DebugCon final : public PioDevice {
 public:
  static constexpr uint16_t kPort = 0xe9;

  void set_live_output(std::ostream* os) { m_live = os; }
  void set_keep(bool keep) { m_keep = keep; }
  // At most `max_bytes` bytes are accepted (0: no cap); the next one calls `on_limit`.
  void set_limit(uint64_t max_bytes, std::function<void()> on_limit) {
    m_max = max_bytes;
    m_on_limit = std::move(on_limit);
  }
  const std::string& output() const { return m_out; }  // empty unless set_keep(true)
  uint64_t bytes() const { return m_bytes; }            // accepted so far
  bool ends_with_newline() const { return m_last == '\n'; }

  void pio_read(Vcpu& vcpu, uint16_t offset, unsigned size, uint32_t& value) override;
  void pio_write(Vcpu& vcpu, uint16_t offset, unsigned size, uint32_t value) override;

 private:
  std::string m_out;
  std::ostream* m_live = nullptr;
  bool m_keep = true;
  uint64_t m_max = 0;
  uint64_t m_bytes = 0;
  char m_last = '\n';
  bool m_limit_hit = false;
  std::function<void()> m_on_limit;
};

}  // namespace pvsim
