// devices/fw_cfg.h — QEMU's firmware configuration device, traditional I/O interface
// (QEMU's docs/specs/fw_cfg.rst; scenarios/guest/boot.md §4).
//
// A guest selects an item with a 16-bit write of its key to port 0x510, then reads the
// item's bytes one at a time from port 0x511; each read advances an offset that the
// selector write resets to 0. Reads past the item's end, and every read of a key that holds
// nothing, give 0. As on QEMU's x86 machines, only a 16-bit access at 0x510 and an 8-bit
// access at 0x511 are valid; any other is ignored (a read gives all ones). Writes to the
// data port are ignored, as QEMU does since its 2.4 release.
//
// The items (little-endian integers, as fw_cfg.rst specifies for the traditional keys):
//   0x0000 FW_CFG_SIGNATURE  "QEMU"
//   0x0001 FW_CFG_ID         u32 feature bits: 1 = the traditional interface only (bit 1,
//                            DMA, is clear, so a guest never looks for the DMA port 0x514)
//   0x0003 FW_CFG_RAM_SIZE   u64 guest RAM in bytes
//   0x0005 FW_CFG_NB_CPUS    u16 vCPUs present at boot
//   0x000f FW_CFG_MAX_CPUS   u16 on x86 QEMU puts the APIC ID limit here (highest APIC ID
//                            + 1); pvsim's APIC IDs are the vCPU indices, so it is the count
// kvm-unit-tests' lib/x86/fwcfg.c reads FW_CFG_NB_CPUS (fwcfg_get_nb_cpus) and
// FW_CFG_RAM_SIZE, each as consecutive bytes of 0x511 after one selector write.
//
// The selector's bit 14 (FW_CFG_WRITE_CHANNEL) does not take part in the lookup; bit 15
// (FW_CFG_ARCH_LOCAL) does, and no architecture-local item exists here, so those read 0.
#pragma once
#include <cstdint>
#include <map>
#include <vector>

#include "core/pio_bus.h"

namespace pvsim {

// Where the guest is in the item stream. FwCfg inherits it privately; a snapshot copies it
// whole (tools/platform/README.md "Snapshots"). The items themselves are configuration.
struct FwCfgState {
  uint16_t m_key = 0;     // last selector written (QEMU starts with key 0 selected)
  uint32_t m_offset = 0;  // next byte of the selected item
  bool operator==(const FwCfgState&) const = default;
};

class FwCfg final : public PioDevice, private FwCfgState {
 public:
  static constexpr uint16_t kBase = 0x510;  // selector 0x510, data 0x511
  static constexpr uint32_t kCount = 2;

  static constexpr uint16_t kSignature = 0x0000;
  static constexpr uint16_t kId = 0x0001;
  static constexpr uint16_t kRamSize = 0x0003;
  static constexpr uint16_t kNbCpus = 0x0005;
  static constexpr uint16_t kMaxCpus = 0x000f;
  static constexpr uint16_t kWriteChannel = 0x4000;

  FwCfg(unsigned vcpus, uint64_t ram_bytes);

  // The bytes of an item (empty: none); the key as the lookup sees it.
  const std::vector<uint8_t>& item(uint16_t key) const;

  struct Snapshot {
    FwCfgState state;
  };
  Snapshot save() const { return Snapshot{static_cast<const FwCfgState&>(*this)}; }
  void restore(const Snapshot& s) { static_cast<FwCfgState&>(*this) = s.state; }

  void pio_read(Vcpu& vcpu, uint16_t offset, unsigned size, uint32_t& value) override;
  void pio_write(Vcpu& vcpu, uint16_t offset, unsigned size, uint32_t value) override;

 private:
  std::map<uint16_t, std::vector<uint8_t>> m_items;  // ordered: deterministic by construction
};

}  // namespace pvsim
