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

// What a DebugCon counts as it runs, apart from the kept text (see DebugCon::Snapshot).
// DebugCon inherits it privately; a snapshot copies it whole, so a member added here is
// saved and restored without further code (tools/platform/README.md "Snapshots").
struct DebugConState {
  uint64_t m_bytes = 0;      // bytes accepted so far
  char m_last = '\n';        // the last byte accepted (ends_with_newline)
  bool m_limit_hit = false;  // the byte cap was reached and on_limit called
  bool operator==(const DebugConState&) const = default;
};

class DebugCon final : public PioDevice, private DebugConState {
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

  // Snapshots (tools/platform/README.md "Snapshots"). The kept text only ever grows, so a
  // snapshot records its length and restore() truncates it back: a snapshot is valid as
  // long as no earlier one has been restored since it was taken (the nesting of
  // GuestMemory's checkpoints). Restoring one whose length exceeds the text is a
  // std::logic_error (a shorter text proves it stale; a longer one cannot be checked).
  // The live stream is not touched: bytes already written there stay written, and bytes
  // accepted again after a restore are written again. The stream, set_keep and the limit
  // are configuration and are kept.
  struct Snapshot {
    DebugConState state;
    uint64_t kept = 0;  // output().size() when saved
  };
  Snapshot save() const { return Snapshot{static_cast<const DebugConState&>(*this), m_out.size()}; }
  void restore(const Snapshot& s);

  void pio_read(Vcpu& vcpu, uint16_t offset, unsigned size, uint32_t& value) override;
  void pio_write(Vcpu& vcpu, uint16_t offset, unsigned size, uint32_t value) override;

 private:
  std::string m_out;  // kept text (set_keep); saved by length, see Snapshot
  std::ostream* m_live = nullptr;
  bool m_keep = true;
  uint64_t m_max = 0;
  std::function<void()> m_on_limit;
};

}  // namespace pvsim
