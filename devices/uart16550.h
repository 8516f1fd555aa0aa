// devices/uart16550.h — a 16550A UART at 0x3f8 (COM1), transmit side only
// (scenarios/guest/boot.md §4).
//
// What a guest sees: the eight registers of the 16550A at their offsets (National
// Semiconductor PC16550D datasheet, "Register Descriptions"), with the reset values QEMU's
// serial device gives them (hw/char/serial.c, serial_reset): IER 0, IIR 0x01 (no interrupt
// pending), LCR 0, MCR 0x08 (OUT2), LSR 0x60, MSR 0xb0 (DCD, DSR, CTS asserted), SCR 0 and
// a divisor latch of 12 (9600 baud).
//
// Transmission is instantaneous: a byte written to THR goes straight to the sink (the
// platform gives it the debug console's byte path, so UART output joins the console
// stream that `pvsim run` prints and `expect.console*` checks), and LSR always reads
// THRE | TEMT (0x60): the transmitter is never busy, so a driver polling LSR bit 5 before
// each byte never waits. Nothing is ever received: LSR.DR stays 0 and RBR reads 0.
//
// Not modelled, on purpose (the guests pvsim runs poll the UART):
//   - interrupts: IER is stored (bits 0-3, the ones the 16550A defines) and read back,
//     but the UART never raises its IRQ line and IIR always says "no interrupt pending";
//   - reception and the FIFOs' contents: FCR's enable bit only shows in IIR bits 6-7 as
//     on the 16550A (0xc0 with the FIFOs enabled); the clear bits have nothing to clear;
//   - loopback (MCR bit 4): MSR then reflects MCR's outputs as the datasheet describes,
//     but a byte written in loopback is dropped (the transmitter is disconnected from the
//     line, and the receiver it would loop into is not modelled);
//   - the baud rate: the divisor latch is a plain register.
//
// The UART sits on an 8-bit ISA bus: a 16- or 32-bit access is split into byte accesses
// to consecutive ports, as the chipset splits it on hardware; bytes that would fall past
// offset 7 are dropped on writes and read as all ones.
#pragma once
#include <cstdint>
#include <functional>

#include "core/pio_bus.h"

namespace pvsim {

// The UART's registers. Uart16550 inherits it privately; a snapshot copies it whole, so a
// member added here is saved and restored without further code (tools/platform/README.md
// "Snapshots").
struct Uart16550State {
  uint8_t m_ier = 0x00;
  uint8_t m_lcr = 0x00;
  uint8_t m_mcr = 0x08;  // OUT2, QEMU's reset value
  uint8_t m_fcr = 0x00;  // write-only on hardware; kept for IIR bits 6-7
  uint8_t m_scr = 0x00;
  uint16_t m_divisor = 12;  // DLM:DLL; QEMU resets it to 12 (9600 baud)
  bool operator==(const Uart16550State&) const = default;
};

class Uart16550 final : public PioDevice, private Uart16550State {
 public:
  static constexpr uint16_t kBase = 0x3f8;  // COM1
  static constexpr uint32_t kCount = 8;

  // Register offsets (PC16550D, Table II).
  enum : uint16_t { kRbrThr = 0, kIer = 1, kIirFcr = 2, kLcr = 3, kMcr = 4, kLsr = 5, kMsr = 6, kScr = 7 };
  static constexpr uint8_t kLcrDlab = 0x80;    // divisor latch access bit
  static constexpr uint8_t kLsrIdle = 0x60;    // THRE | TEMT
  static constexpr uint8_t kIirNoInt = 0x01;   // bit 0 set: no interrupt pending
  static constexpr uint8_t kIirFifos = 0xc0;   // FIFOs enabled (16550A)
  static constexpr uint8_t kMcrLoop = 0x10;
  static constexpr uint8_t kMsrLines = 0xb0;   // DCD | DSR | CTS, QEMU's idle modem lines

  using Sink = std::function<void(Vcpu& vcpu, uint8_t byte)>;
  explicit Uart16550(Sink sink) : m_sink(std::move(sink)) {}

  uint8_t ier() const { return m_ier; }
  uint8_t lcr() const { return m_lcr; }
  uint8_t mcr() const { return m_mcr; }
  uint16_t divisor() const { return m_divisor; }

  struct Snapshot {
    Uart16550State state;
  };
  Snapshot save() const { return Snapshot{static_cast<const Uart16550State&>(*this)}; }
  void restore(const Snapshot& s) { static_cast<Uart16550State&>(*this) = s.state; }

  void pio_read(Vcpu& vcpu, uint16_t offset, unsigned size, uint32_t& value) override;
  void pio_write(Vcpu& vcpu, uint16_t offset, unsigned size, uint32_t value) override;

  // One byte-wide register access (what pio_read/pio_write split a wider access into).
  uint8_t read_reg(uint16_t offset) const;
  void write_reg(Vcpu& vcpu, uint16_t offset, uint8_t value);

 private:
  Sink m_sink;
};

}  // namespace pvsim
