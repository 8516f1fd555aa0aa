// devices/marker.h — the guest marker port (scenarios/guest/boot.md §4): a guest writes a
// short text to port 0x4f0 and it becomes a `pvsim_marker` event in the trace, an instant
// on the Perfetto and HTML timelines ("phase 2 starts", "reader saw a torn value").
//
// Each vCPU has its own line buffer, so markers of two vCPUs never interleave. OUT appends
// the low byte of each element (outb, outw, outl and rep outsb all work as a byte stream);
// a '\n' or a NUL ends the marker and emits it (an empty line emits nothing). A marker
// longer than kMaxText bytes is emitted in pieces of kMaxText bytes, so a guest that never
// ends its line cannot grow host memory. IN reads 'M' (0x4d) on every byte lane, a presence
// check in the spirit of the debug console's 0xe9.
//
// Port choice: 0x4f0 is decoded by no PC device pvsim models or QEMU's pc machine
// places (the debug console is 0xe9, isa-debug-exit 0xf4-0xf7, fw_cfg 0x510-0x51b, the
// PIC's edge/level registers 0x4d0-0x4d1).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/pio_bus.h"

namespace pvsim {

class MarkerPort final : public PioDevice {
 public:
  static constexpr uint16_t kPort = 0x4f0;
  static constexpr size_t kMaxText = 256;
  using Emit = std::function<void(Vcpu& vcpu, std::string_view text)>;

  MarkerPort(unsigned vcpu_count, Emit emit) : m_lines(vcpu_count), m_emit(std::move(emit)) {}

  // Snapshots (tools/platform/README.md "Snapshots"): the unfinished lines.
  using Snapshot = std::vector<std::string>;
  Snapshot save() const { return m_lines; }
  void restore(const Snapshot& s) { m_lines = s; }

  void pio_read(Vcpu& vcpu, uint16_t offset, unsigned size, uint32_t& value) override;
  void pio_write(Vcpu& vcpu, uint16_t offset, unsigned size, uint32_t value) override;

 private:
  std::vector<std::string> m_lines;  // per vCPU: bytes since the last end of marker
  Emit m_emit;
};

}  // namespace pvsim
