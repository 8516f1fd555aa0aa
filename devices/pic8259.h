// devices/pic8259.h — the legacy 8259A programmable interrupt controller pair of a PC:
// master at ports 0x20/0x21, slave at 0xa0/0xa1, cascaded on the master's IR2.
//
// Registers only, no interrupt delivery yet: nothing raises an IR input, so IRR and ISR
// stay 0 and the INT output never rises; wiring inputs (PIT, ...) and INT is not implemented yet; it will go
// to the BSP's LINT0 (ExtINT). What is here is what a guest does to the chip at boot:
// Linux, the guest runtime (scenarios/guest/lib/pic.c) and other real guests reinitialise
// and mask it before relying on the local APIC, and without this device every such write
// would end the run as an unhandled port. Every access is a VM exit on KVM (the in-kernel
// PIC is still reached through an IO_INSTRUCTION exit), so the port bus already traces each
// as kvm_exit + kvm_pio; this device keeps the state those writes set so reads return it
// and tests can check it.
//
// Programming model (Intel 8259A datasheet, "Programming the 8259A"): A0 = 0 is the
// command port (0x20/0xa0), A0 = 1 the data port (0x21/0xa1).
//   command write, D4 = 1           ICW1: starts initialisation; clears the IMR, special
//                                   mask mode and priority rotation, selects IRR for reads
//   data writes after ICW1          ICW2 (vector bits 7:3), ICW3 if ICW1.SNGL = 0, ICW4 if
//                                   ICW1.IC4 = 1 (otherwise the ICW4 functions are 0)
//   data write otherwise            OCW1: the interrupt mask register (IMR)
//   command write, D4 = 0, D3 = 0   OCW2: EOI / priority rotation commands
//   command write, D4 = 0, D3 = 1   OCW3: special mask mode, poll command, read IRR or ISR
//   data read                       the IMR
//   command read                    the poll word after an OCW3 poll command, otherwise
//                                   IRR or ISR as OCW3 last selected
// After reset (no ICW1 yet) the registers are those of KVM's kvm_pic_reset: IMR 0, IRR
// selected; a guest must not rely on them, which is why it initialises the chip.
//
// The chip is an 8-bit device: a 16- or 32-bit access is split into byte accesses at
// consecutive ports, as the ISA bus does (QEMU's i8259 also declares byte-only access).
// Lanes past this chip's two ports are not its: writes there are dropped and reads give
// 0xff (floating bus).
#pragma once
#include <cstdint>
#include <optional>

#include "core/pio_bus.h"

namespace pvsim {

// What the next data-port write of an 8259A is (Pic8259::InitStep).
enum class Pic8259InitStep : uint8_t { Ready, Icw2, Icw3, Icw4 };

// Everything one chip records. Pic8259 inherits it privately; a snapshot copies it whole,
// so a member added here is saved and restored without further code
// (tools/platform/README.md "Snapshots").
struct Pic8259State {
  uint8_t m_imr = 0;
  uint8_t m_irr = 0;
  uint8_t m_isr = 0;
  Pic8259InitStep m_step = Pic8259InitStep::Ready;
  uint8_t m_icw1 = 0, m_icw2 = 0, m_icw3 = 0, m_icw4 = 0;
  bool m_special_mask = false;
  bool m_read_isr = false;
  bool m_poll = false;
  bool m_rotate_aeoi = false;
  uint8_t m_lowest = 7;
  std::optional<uint8_t> m_last_ocw2, m_last_ocw3;
  bool operator==(const Pic8259State&) const = default;
};

class Pic8259 final : public PioDevice, private Pic8259State {
 public:
  static constexpr uint32_t kPorts = 2;  // command (A0 = 0) and data (A0 = 1)

  using InitStep = Pic8259InitStep;

  // Accesses at `offset` (0 = command, 1 = data) of `size` 1, 2 or 4 bytes; what the port
  // bus calls through pio_read/pio_write, usable without a vCPU.
  uint32_t read(uint16_t offset, unsigned size);
  void write(uint16_t offset, unsigned size, uint32_t value);

  void pio_read(Vcpu& vcpu, uint16_t offset, unsigned size, uint32_t& value) override;
  void pio_write(Vcpu& vcpu, uint16_t offset, unsigned size, uint32_t value) override;

  // Recorded state.
  uint8_t imr() const { return m_imr; }
  uint8_t irr() const { return m_irr; }  // always 0 until inputs are wired (see above)
  uint8_t isr() const { return m_isr; }  // always 0 until delivery exists
  InitStep init_step() const { return m_step; }
  bool initialised() const;  // a full ICW sequence has completed
  uint8_t icw1() const { return m_icw1; }
  uint8_t icw2() const { return m_icw2; }
  uint8_t icw3() const { return m_icw3; }
  uint8_t icw4() const { return m_icw4; }
  uint8_t vector_base() const { return m_icw2 & 0xf8; }  // 8086 mode: T7-T3
  bool level_triggered() const { return (m_icw1 & 0x08) != 0; }
  bool auto_eoi() const { return (m_icw4 & 0x02) != 0; }
  bool special_mask_mode() const { return m_special_mask; }
  bool reads_isr() const { return m_read_isr; }
  bool poll_pending() const { return m_poll; }
  bool rotate_in_auto_eoi() const { return m_rotate_aeoi; }
  uint8_t lowest_priority() const { return m_lowest; }  // IR level with the lowest priority
  std::optional<uint8_t> last_ocw2() const { return m_last_ocw2; }
  std::optional<uint8_t> last_ocw3() const { return m_last_ocw3; }

  // Snapshots (tools/platform/README.md "Snapshots").
  struct Snapshot {
    Pic8259State state;
  };
  Snapshot save() const { return Snapshot{static_cast<const Pic8259State&>(*this)}; }
  void restore(const Snapshot& s) { static_cast<Pic8259State&>(*this) = s.state; }

 private:
  uint8_t read_byte(uint16_t offset);
  void write_byte(uint16_t offset, uint8_t value);
  void write_icw1(uint8_t value);
  void write_ocw2(uint8_t value);
  void write_ocw3(uint8_t value);
  void write_data(uint8_t value);
  void end_of_interrupt(int level);
  InitStep step_after(InitStep done) const;
};

// The two chips of a PC. They are separate port-bus devices because the bus hands a device
// only the offset into its own range.
class Pic8259Pair {
 public:
  static constexpr uint16_t kMasterBase = 0x20;
  static constexpr uint16_t kSlaveBase = 0xa0;

  Pic8259& master() { return m_master; }
  Pic8259& slave() { return m_slave; }
  const Pic8259& master() const { return m_master; }
  const Pic8259& slave() const { return m_slave; }

  // Snapshots (tools/platform/README.md "Snapshots"): both chips.
  struct Snapshot {
    Pic8259::Snapshot master, slave;
  };
  Snapshot save() const { return {m_master.save(), m_slave.save()}; }
  void restore(const Snapshot& s) {
    m_master.restore(s.master);
    m_slave.restore(s.slave);
  }

 private:
  Pic8259 m_master, m_slave;
};

}  // namespace pvsim
