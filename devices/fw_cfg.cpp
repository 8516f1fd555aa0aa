#include "devices/fw_cfg.h"

namespace pvsim {

namespace {
std::vector<uint8_t> le(uint64_t v, unsigned bytes) {
  std::vector<uint8_t> out(bytes);
  for (unsigned i = 0; i < bytes; ++i) out[i] = static_cast<uint8_t>(v >> (8 * i));
  return out;
}
}  // namespace

FwCfg::FwCfg(unsigned vcpus, uint64_t ram_bytes) {
  m_items[kSignature] = {'Q', 'E', 'M', 'U'};
  m_items[kId] = le(1, 4);  // traditional interface; no DMA
  m_items[kRamSize] = le(ram_bytes, 8);
  m_items[kNbCpus] = le(vcpus, 2);
  m_items[kMaxCpus] = le(vcpus, 2);
}

const std::vector<uint8_t>& FwCfg::item(uint16_t key) const {
  static const std::vector<uint8_t> kNone;
  const auto it = m_items.find(static_cast<uint16_t>(key & ~kWriteChannel));
  return it == m_items.end() ? kNone : it->second;
}

void FwCfg::pio_read(Vcpu&, uint16_t offset, unsigned size, uint32_t& value) {
  if (offset != 1 || size != 1) {
    value = 0xffffffffu;  // not a valid access (see the header): nothing answers
    return;
  }
  const std::vector<uint8_t>& it = item(m_key);
  // Past the end the offset stays put and every read gives 0 (QEMU's fw_cfg_read does not
  // advance there either), so it can never wrap back into the item.
  if (m_offset < it.size()) {
    value = it[m_offset++];
  } else {
    value = 0;
  }
}

void FwCfg::pio_write(Vcpu&, uint16_t offset, unsigned size, uint32_t value) {
  if (offset == 0 && size == 2) {
    m_key = static_cast<uint16_t>(value);
    m_offset = 0;
  }
  // Data-port writes (and invalid sizes) are dropped.
}

}  // namespace pvsim
