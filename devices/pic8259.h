// devices/pic8259.h — the legacy 8259A programmable interrupt controller pair of a PC:
// master at ports 0x20/0x21, slave at 0xa0/0xa1, cascaded on the master's IR2, and the
// edge/level control registers (ELCR) at 0x4d0/0x4d1.
//
// Guests program the chips at boot (Linux, the guest runtime scenarios/guest/lib/pic.c,
// firmware), and real-mode code takes the timer interrupt through them. Every access is
// a VM exit on KVM (the in-kernel PIC is still reached through an IO_INSTRUCTION exit), so
// the port bus already traces each as kvm_exit + kvm_pio.
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
// Delivery (datasheet, "Interrupt Sequence", "Priority Cell", "End of Interrupt"):
// - Inputs: Pic8259Pair::set_irq(pin 0-15, level) drives the IR input lines; pins 0-7 are
//   the master's, 8-15 the slave's. An edge-triggered input sets its IRR bit on a low-to-
//   high transition (the bit stays until INTA, whatever the line does afterwards, as in
//   KVM's pic_set_irq1); a level-triggered input's IRR bit follows the line. Which pins are
//   level-triggered is the ELCR's choice, one bit per pin; ICW1.LTIM is recorded but has no
//   effect, as on the PC chipsets that added the ELCR (the Intel PIIX and ICH datasheets
//   describe ICW1 bit 3 as disabled, its function taken over by the ELCR). The ELCR bits a
//   chipset cannot set are fixed at 0 (edge): IRQ 0, 1, 2, 8 and 13 (masks 0xf8 and 0xde,
//   as KVM's elcr_mask).
// - Priority: fixed, IR(lowest+1) highest, rotated by the OCW2 rotate commands and by
//   rotate-in-AEOI. A request is passed on when it is unmasked and of higher priority than
//   every in-service level; in special mask mode masked levels in service do not count,
//   and in the master's special fully nested mode (ICW4.SFNM) neither does the cascade
//   input, so the slave can nest its own higher-priority requests (KVM's pic_get_irq).
// - INT output: Pic8259Pair::output(), the master's INT line, which the platform wires to
//   the BSP's LINT0 (ExtINT, MP spec virtual-wire mode). on_output_change() reports every
//   change of it.
// - INTA: Pic8259Pair::acknowledge() runs the two INTA pulses: the chosen IRR bit moves to
//   ISR (an edge-triggered IRR bit is cleared; a level-triggered one keeps following the
//   line), the vector is ICW2 T7-T3 + the level (8086 mode: ICW4.uPM = 0, the 8080 CALL
//   format, is not supported and is treated as 8086 mode), and a request on the cascade
//   input is answered by the slave. With nothing to answer the chip gives IR7's vector and
//   sets no ISR bit (datasheet: "if no interrupt request is present at step 4 ... the 8259A
//   will issue an interrupt level 7"): base+7 from the master, or the slave's base+7 when
//   the cascade request vanished (the master's IR2 is then in service, which is why an
//   OS sends the master an EOI for a spurious IRQ 15).
// - AEOI (ICW4 bit 1): the in-service bit is cleared at the end of INTA, after rotation
//   when rotate-in-AEOI is on.
// - Cascade: the slave's INT output requests the master's IR2 at every change of either
//   chip while the slave has a request to pass on (KVM's pic_update_irq), so a request
//   that stays pending behind an AEOI-ended one is not lost. The PC wiring is fixed: IR2
//   is the cascade whatever ICW3 says, and pin 2 of set_irq() is not an input (ISA IRQ 2
//   is routed to IRQ 9).
// - Poll (OCW3.P): the next command-port read is an INTA of that chip alone: it returns
//   0x80 | level and sets the ISR bit, or 0x00 when nothing requests.
// - ICW1 also drops the latched edge requests and the in-service bits (the datasheet's
//   "edge sense circuit is reset": an input already high must go low and high again to
//   request; QEMU's pic_init_reset clears ISR as well, so a reinitialised chip starts
//   clean).
//
// The chip is an 8-bit device: a 16- or 32-bit access is split into byte accesses at
// consecutive ports, as the ISA bus does (QEMU's i8259 also declares byte-only access).
// Lanes past this chip's two ports are not its: writes there are dropped and reads give
// 0xff (floating bus). The ELCR pair is the same.
#pragma once
#include <cstdint>
#include <functional>
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
  uint8_t m_elcr = 0;   // edge/level control: 1 = level-triggered (port 0x4d0 / 0x4d1)
  uint8_t m_lines = 0;  // current level of each IR input
  bool operator==(const Pic8259State&) const = default;
};

class Pic8259Pair;

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

  // One IR input line of this chip (0-7). A standalone chip is usable on its own (tests);
  // in a pair, drive the inputs through Pic8259Pair::set_irq so the INT output follows.
  void set_input(unsigned level_no, bool level);
  // The level this chip would answer an INTA with: the highest-priority request that is
  // unmasked and above every level in service, or -1.
  int pending() const;
  // The INTA of this chip alone for `level_no` (from pending()): IRR -> ISR, AEOI.
  void acknowledge_level(unsigned level_no);

  // Recorded state.
  uint8_t imr() const { return m_imr; }
  uint8_t irr() const { return m_irr; }
  uint8_t isr() const { return m_isr; }
  uint8_t elcr() const { return m_elcr; }
  uint8_t input_lines() const { return m_lines; }
  InitStep init_step() const { return m_step; }
  bool initialised() const;  // a full ICW sequence has completed
  uint8_t icw1() const { return m_icw1; }
  uint8_t icw2() const { return m_icw2; }
  uint8_t icw3() const { return m_icw3; }
  uint8_t icw4() const { return m_icw4; }
  uint8_t vector_base() const { return m_icw2 & 0xf8; }  // 8086 mode: T7-T3
  bool level_triggered() const { return (m_icw1 & 0x08) != 0; }  // ICW1.LTIM (no effect, see above)
  bool auto_eoi() const { return (m_icw4 & 0x02) != 0; }
  bool special_fully_nested() const { return (m_icw4 & 0x10) != 0; }
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
  friend class Pic8259Pair;

  uint8_t read_byte(uint16_t offset);
  void write_byte(uint16_t offset, uint8_t value);
  void write_icw1(uint8_t value);
  void write_ocw2(uint8_t value);
  void write_ocw3(uint8_t value);
  void write_data(uint8_t value);
  void end_of_interrupt(int level);
  InitStep step_after(InitStep done) const;
  // Priority rank of the best level in `mask`: 0 = highest priority, 8 = none.
  int rank(uint8_t mask) const;
  void set_elcr(uint8_t value);
  void changed() {
    if (m_on_change) m_on_change();
  }

  // Wiring, not state: the pair's hook after anything that can move the INT output, and
  // which inputs are cascade inputs for special fully nested mode (the master's IR2).
  std::function<void()> m_on_change;
  uint8_t m_cascade_inputs = 0;
};

// The ELCR pair (ports 0x4d0 master, 0x4d1 slave): one bit per IRQ, 1 = level-triggered.
// Reads return the register; writes keep only the bits the chipset lets change (kMasterMask,
// kSlaveMask: IRQ 0, 1, 2, 8 and 13 are always edge, as KVM's elcr_mask and the PIIX3).
class Pic8259Elcr final : public PioDevice {
 public:
  static constexpr uint16_t kBase = 0x4d0;
  static constexpr uint32_t kPorts = 2;
  static constexpr uint8_t kMasterMask = 0xf8, kSlaveMask = 0xde;

  explicit Pic8259Elcr(Pic8259Pair& pair) : m_pair(pair) {}
  uint32_t read(uint16_t offset, unsigned size) const;
  void write(uint16_t offset, unsigned size, uint32_t value);
  void pio_read(Vcpu& vcpu, uint16_t offset, unsigned size, uint32_t& value) override;
  void pio_write(Vcpu& vcpu, uint16_t offset, unsigned size, uint32_t value) override;

 private:
  Pic8259Pair& m_pair;
};

// The two chips of a PC. They are separate port-bus devices because the bus hands a device
// only the offset into its own range; elcr() is the third (0x4d0/0x4d1). The pair is wired
// to itself (each chip reports changes to it), so it is neither copied nor moved.
class Pic8259Pair {
 public:
  static constexpr uint16_t kMasterBase = 0x20;
  static constexpr uint16_t kSlaveBase = 0xa0;
  static constexpr unsigned kCascadePin = 2;
  static constexpr unsigned kPins = 16;

  Pic8259Pair();
  Pic8259Pair(const Pic8259Pair&) = delete;
  Pic8259Pair& operator=(const Pic8259Pair&) = delete;

  Pic8259& master() { return m_master; }
  Pic8259& slave() { return m_slave; }
  const Pic8259& master() const { return m_master; }
  const Pic8259& slave() const { return m_slave; }
  Pic8259Elcr& elcr() { return m_elcr; }

  // Drives IRQ input `pin` (0-7 master, 8-15 slave; 2 is the cascade and ignored, as are
  // pins past 15) to `level`.
  void set_irq(unsigned pin, bool level);
  // The master's INT line: some request would be passed on by the master.
  bool output() const { return m_output; }
  // INTA (see the header comment): the vector the CPU takes. Call it only when the CPU
  // accepts the interrupt (output() was high when it decided to); with nothing pending it
  // is the spurious IR7 vector.
  uint8_t acknowledge();
  // Every change of output(), with the new level, from inside the call that changed it
  // (a port access, set_irq, acknowledge). Not called by restore().
  void on_output_change(std::function<void(bool)> cb) { m_output_cb = std::move(cb); }

  // ELCR as the ports see it (bit n of the 16-bit value = IRQ n); writes are masked.
  uint16_t elcr_value() const { return static_cast<uint16_t>(m_master.elcr() | m_slave.elcr() << 8); }
  void set_elcr_value(uint16_t value);

  // The state SeaBIOS leaves for a Multiboot kernel (read with `info pic` under QEMU 7.2):
  // master ICW2 0x08 (vectors 0x08-0x0f), slave 0x70 (0x70-0x77), cascade on IR2, 8086 mode
  // with normal EOI; IMR 0xb8 (IRQ 0, 1, 2 and 6 unmasked) and 0x8e (IRQ 8, 12, 13 and 14
  // unmasked); ELCR 0x00 / 0x0c (IRQ 10 and 11 level-triggered). Made through the register
  // writes the firmware makes; the input lines are kept.
  void set_post_bios_state();

  // Snapshots (tools/platform/README.md "Snapshots"): both chips, whose state includes
  // the ELCR and the input lines. The INT output is derived from them.
  struct Snapshot {
    Pic8259::Snapshot master, slave;
  };
  Snapshot save() const { return {m_master.save(), m_slave.save()}; }
  void restore(const Snapshot& s);

 private:
  // Recomputes the cascade request and the INT output after any change.
  void update();
  bool compute_output() const { return m_master.pending() >= 0; }

  Pic8259 m_master, m_slave;
  Pic8259Elcr m_elcr{*this};
  bool m_output = false;  // cache of compute_output(), to report changes
  std::function<void(bool)> m_output_cb;
};

}  // namespace pvsim
