#include "core/pio_bus.h"

#include <algorithm>

namespace pvsim {

bool PioBus::add(uint16_t base, uint32_t count, PioDevice& dev, std::string name) {
  const uint32_t end = uint32_t{base} + count;
  if (count == 0 || end > 0x10000u) return false;
  auto it = std::lower_bound(m_ranges.begin(), m_ranges.end(), uint32_t{base},
                             [](const Range& r, uint32_t b) { return r.base < b; });
  // Only the neighbours can overlap, because the ranges are sorted and disjoint.
  if (it != m_ranges.end() && it->base < end) return false;
  if (it != m_ranges.begin() && std::prev(it)->end > base) return false;
  m_ranges.insert(it, Range{base, end, &dev, std::move(name)});
  return true;
}

const PioBus::Range* PioBus::find(uint16_t port) const {
  auto it = std::upper_bound(m_ranges.begin(), m_ranges.end(), uint32_t{port},
                             [](uint32_t p, const Range& r) { return p < r.base; });
  if (it == m_ranges.begin()) return nullptr;
  --it;
  return port < it->end ? &*it : nullptr;
}

IoStatus PioBus::read(Vcpu& vcpu, uint16_t port, unsigned size, uint32_t& value) const {
  const Range* r = find(port);
  if (!r) return IoStatus::Unhandled;
  r->dev->pio_read(vcpu, static_cast<uint16_t>(port - r->base), size, value);
  return IoStatus::Ok;
}

IoStatus PioBus::write(Vcpu& vcpu, uint16_t port, unsigned size, uint32_t value) const {
  const Range* r = find(port);
  if (!r) return IoStatus::Unhandled;
  r->dev->pio_write(vcpu, static_cast<uint16_t>(port - r->base), size, value);
  return IoStatus::Ok;
}

const char* PioBus::owner(uint16_t port) const {
  const Range* r = find(port);
  return r ? r->name.c_str() : nullptr;
}

}  // namespace pvsim
