// core/pio_bus.h — the port I/O bus (tools/platform/README.md §2; Firecracker `vstate/bus.rs` idea).
//
// Devices claim port ranges; a device sees only the offset into its own range, never the
// absolute port, so it can be placed anywhere. Overlapping claims are rejected at
// registration time (a wiring bug, not a guest action). Lookup is a binary search over a
// vector sorted by base port: deterministic, and port I/O is a VM exit, not a hot path.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/env.h"

namespace pvsim {

class Vcpu;

// A device on the port bus. offset = port - base of the claimed range; size is 1, 2 or 4.
class PioDevice {
 public:
  virtual ~PioDevice() = default;
  virtual void pio_read(Vcpu& vcpu, uint16_t offset, unsigned size, uint32_t& value) = 0;
  virtual void pio_write(Vcpu& vcpu, uint16_t offset, unsigned size, uint32_t value) = 0;
};

class PioBus {
 public:
  // Claims ports [base, base+count). Returns false (and claims nothing) when count is 0,
  // the range wraps past 0xffff, or it overlaps an existing claim.
  bool add(uint16_t base, uint32_t count, PioDevice& dev, std::string name);

  // Dispatches to the device claiming `port`; Unhandled when nothing claims it.
  IoStatus read(Vcpu& vcpu, uint16_t port, unsigned size, uint32_t& value) const;
  IoStatus write(Vcpu& vcpu, uint16_t port, unsigned size, uint32_t value) const;

  // Name of the device claiming `port`, or nullptr (for reports).
  const char* owner(uint16_t port) const;

 private:
  struct Range {
    uint32_t base;
    uint32_t end;  // exclusive
    PioDevice* dev;
    std::string name;
  };
  const Range* find(uint16_t port) const;
  std::vector<Range> m_ranges;  // sorted by base, non-overlapping
};

}  // namespace pvsim
