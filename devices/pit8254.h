// devices/pit8254.h — the 8254 programmable interval timer of a PC: three 16-bit counters
// at ports 0x40-0x42, the control word register at 0x43, and the two bits of port 0x61
// (system control port B) that belong to counter 2. Counter 0's OUT drives IRQ 0.
//
// Clock and time (Intel 8254 datasheet, "Operational Description"): every counter counts
// pulses of one free-running 1.193182 MHz CLK. Nothing is ticked: pulse p (p = 1, 2, ...)
// happens at virtual time ceil(p * 1e9 / 1193182) ns, so the number of pulses by time t is
// floor(t * 1193182 / 1e9), and every read computes the counting element (CE) and OUT from
// the time of the access (tools/platform/README.md §4.2, the LAPIC timer's pattern). The
// grid is absolute, so periods never drift: a period of N pulses lasts N * 838.095 ns,
// each edge rounded up to the next whole nanosecond on its own.
//
// Programming (datasheet, "Programming the 8254"):
//   0x43 write, SC = 0-2, RW != 0   control word: mode (M2-M0; 6 and 7 are modes 2 and 3),
//                                   access (LSB, MSB, LSB then MSB), BCD. Stops the counter
//                                   until a count is written; OUT goes low in mode 0 and
//                                   high in every other mode; latches are dropped.
//   0x43 write, SC = 0-2, RW = 0    counter latch command (ignored while a latch is unread)
//   0x43 write, SC = 3              read-back command: latch count and/or status of any of
//                                   the three (status: OUT, NULL COUNT, control bits 5-0)
//   0x40-0x42 write                 the count, in the access mode; 0 means 65536 (10000 in
//                                   BCD). BCD counts are implemented (digits decoded; a
//                                   digit above 9 keeps its binary weight, a case the
//                                   datasheet leaves undefined).
//   0x40-0x42 read                  latched status, else latched count, else the live CE
//                                   (LSB then MSB alternate in the two-byte mode)
// The count goes into the CE on the CLK pulse after it is written ("the initial count is
// loaded on the next CLK pulse"); NULL COUNT is 1 until then. Per mode, with N the count
// and k the pulses since that load:
//   0 interrupt on terminal count   CE = N - k; OUT low, high from k = N on. A new count
//                                   restarts it; in two-byte mode the first byte already
//                                   stops counting and sets OUT low.
//   1 hardware one-shot             starts on a gate rising edge: OUT low for N pulses
//   2 rate generator                CE N .. 1 repeating; OUT low only while CE = 1, so OUT
//                                   rises every N pulses (N = 1 is illegal: OUT stays low)
//   3 square wave                   OUT high for ceil(N/2) pulses, low for floor(N/2); the
//                                   CE steps by 2 (odd N: from N-1), as the datasheet says
//   4 software strobe               CE = N - k; OUT low for the one pulse at k = N
//   5 hardware strobe               mode 4 started by a gate rising edge
// A count written while modes 2 or 3 run waits for the end of the current period (mode 2)
// or half-period (mode 3); in modes 1 and 5 for the next trigger.
//
// GATE: counters 0 and 1 have it tied high (PC wiring). Counter 2's is port 0x61 bit 0.
// Only its rising edge is modelled, as in KVM's i8254 (pit_set_gate): it triggers modes 1
// and 5 and restarts modes 2 and 3; a low gate does not suspend counting or force OUT.
// Port 0x61 (kept minimal, for guests that calibrate with counter 2): bits 0-3 are stored
// (0: gate 2, 1: speaker data, 2-3: parity/IOCHK enables); reads add bit 4, the refresh
// toggle, derived from virtual time like KVM's speaker_ioport_read ((ns >> 14) & 1), and
// bit 5, counter 2's OUT; bits 6-7 read 0.
//
// IRQ 0 (counter 0's OUT, wired to the 8259's IR0): every rising edge of OUT at a CLK pulse
// raises the IRQ line and lowers it again (a pulse, as KVM's pit_do_work; the input is edge-
// triggered on the PC, ELCR bit 0 cannot be set). The immediate OUT changes of a control
// word or count write raise nothing, as in KVM, where only the period timer injects.
// Delivery of edges is up to the platform's clock: next_irq_ns() is the time of the next
// rising edge, fire_until() raises the IRQ for the edges up to a time. Lost ticks are
// discarded, as KVM's PIT with lost_tick_policy=discard (kvm-unit-tests passes
// `-global kvm-pit.lost_tick_policy=discard`): when several edges fall into one
// fire_until() step, the IRQ is pulsed once, and an edge the 8259 cannot latch because
// IRR 0 is still set is simply absorbed there; nothing is queued for reinjection.
// Optionally (attach_events) the PIT keeps its own Event on the EventQueue at the next
// edge, so the platform only wires on_irq().
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <optional>

#include "core/event_queue.h"
#include "core/pio_bus.h"
#include "core/types.h"

namespace pvsim {

// One loaded count: k = pulses since `origin`; the CE holds it from pulse `start` on
// (start >= origin; they differ only when a mode-3 count takes over at a half period).
struct Pit8254Segment {
  uint32_t n = 0;  // 1..65536 (binary) or 1..10000 (BCD)
  int64_t origin = 0;
  int64_t start = 0;
  bool operator==(const Pit8254Segment&) const = default;
};

// Everything one counter records (all plain: a snapshot copies it whole).
struct Pit8254Counter {
  uint8_t control = 0;  // bits 5-0 of the last control word: RW1 RW0 M2 M1 M0 BCD
  uint8_t mode = 0;     // 0-5
  bool bcd = false;
  uint8_t rw = 0;       // 0 = never programmed, 1 LSB, 2 MSB, 3 LSB then MSB
  bool write_msb = false;
  uint8_t write_lsb = 0;
  bool read_msb = false;
  bool gate = true;
  bool has_count = false;  // a count was written since the control word
  uint32_t cr = 0;         // the count register, decoded (1..65536 / 1..10000)
  bool stale = false;      // modes 1/5: cr not yet loaded (waits for a trigger)
  bool running = false;    // `cur` is loaded or loads at cur.start
  Pit8254Segment cur;
  bool has_next = false;  // modes 2/3: `next` takes over at next.start
  Pit8254Segment next;
  uint32_t hold = 0;       // CE value while not counting (before cur.start)
  bool hold_out = false;   // OUT while not counting
  bool count_latched = false;
  uint16_t latch = 0;
  bool latch_msb = false;
  bool status_latched = false;
  uint8_t status = 0;
  bool operator==(const Pit8254Counter&) const = default;
};

struct Pit8254State {
  std::array<Pit8254Counter, 3> m_counters{};
  uint8_t m_port61 = 0;        // stored bits 0-3
  int64_t m_irq_checked = 0;   // counter 0's edges up to this pulse are handled
  bool operator==(const Pit8254State&) const = default;
};

class Pit8254 final : public PioDevice, private Pit8254State {
 public:
  static constexpr uint16_t kBase = 0x40;
  static constexpr uint32_t kPorts = 4;  // counters 0-2, control word
  static constexpr uint16_t kPort61 = 0x61;
  static constexpr uint64_t kHz = 1193182;  // the PC's PIT input clock (14.31818 MHz / 12)

  Pit8254();
  Pit8254(const Pit8254&) = delete;
  Pit8254& operator=(const Pit8254&) = delete;

  // Port accesses at virtual time `now`: offset 0-3 from 0x40, size 1, 2 or 4 (split into
  // byte lanes at consecutive ports; lanes past 0x43 read 0xff and drop writes).
  uint32_t read(uint16_t offset, unsigned size, Tick now);
  void write(uint16_t offset, unsigned size, uint32_t value, Tick now);
  uint8_t read_port61(Tick now);
  void write_port61(uint8_t value, Tick now);
  // The bus side: the access happens at the vCPU's current time (Vcpu::now()).
  void pio_read(Vcpu& vcpu, uint16_t offset, unsigned size, uint32_t& value) override;
  void pio_write(Vcpu& vcpu, uint16_t offset, unsigned size, uint32_t value) override;
  // Port 0x61 as its own one-port bus device.
  PioDevice& port61() { return m_port61_dev; }

  // IRQ 0: on_irq(level) is called with true then false for each delivered edge.
  void on_irq(std::function<void(bool)> cb) { m_irq = std::move(cb); }
  // When counter 0's OUT next rises after the edges already handled (never before `now`),
  // or nullopt when it never will in the current programming.
  std::optional<Tick> next_irq_ns(Tick now) const;
  // Handles counter 0's edges up to `now`: pulses IRQ 0 once if there was at least one
  // (lost ticks discarded, see above). Returns whether it did.
  bool fire_until(Tick now);
  // Keep an Event on `q` at next_irq_ns (EventPriority::DeviceTimer) that calls fire_until;
  // armed now (from `now`) and re-armed after every access that can move it. Without it
  // the caller drives next_irq_ns()/fire_until() itself (what the tests do).
  void attach_events(EventQueue& q, Tick now);
  bool irq_armed() const { return m_event.scheduled(); }

  // What SeaBIOS's pit_setup leaves for an OS, written at `now`: counter 0 control word 0x34
  // (LSB then MSB, mode 2, binary) and count 0 = 65536, i.e. IRQ 0 at 18.2 Hz.
  void set_bios_state(Tick now);

  // Inspection (no side effects): counter i's CE as a read would show it (BCD-encoded in
  // BCD mode), its OUT, its NULL COUNT.
  uint16_t count(unsigned i, Tick now) const;
  bool out(unsigned i, Tick now) const;
  bool null_count(unsigned i, Tick now) const;
  const Pit8254Counter& counter(unsigned i) const { return m_counters.at(i); }
  uint8_t port61_bits() const { return m_port61; }

  // Time <-> CLK pulses: pulses completed by `t`, and the instant of pulse p.
  static int64_t pulses_at(Tick t);
  static Tick pulse_time(int64_t p);

  // Snapshots (tools/platform/README.md "Snapshots"). restore() neither fires nor
  // schedules: the EventQueue's own snapshot re-links the PIT's Event with its saved key.
  struct Snapshot {
    Pit8254State state;
  };
  Snapshot save() const { return Snapshot{static_cast<const Pit8254State&>(*this)}; }
  void restore(const Snapshot& s) { static_cast<Pit8254State&>(*this) = s.state; }

 private:
  struct Sample {
    uint32_t ce;
    bool out;
    bool null;
  };
  class Port61 final : public PioDevice {
   public:
    explicit Port61(Pit8254& pit) : m_pit(pit) {}
    void pio_read(Vcpu& vcpu, uint16_t offset, unsigned size, uint32_t& value) override;
    void pio_write(Vcpu& vcpu, uint16_t offset, unsigned size, uint32_t value) override;

   private:
    Pit8254& m_pit;
  };

  static Sample sample(const Pit8254Counter& k, int64_t c);
  static Sample sample_segment(const Pit8254Counter& k, const Pit8254Segment& s, int64_t c);
  static std::optional<int64_t> next_rise(const Pit8254Counter& k, int64_t after);
  static void settle(Pit8254Counter& k, int64_t c);
  static uint16_t encode(const Pit8254Counter& k, uint32_t ce);

  uint8_t read_counter(unsigned i, int64_t c);
  void write_counter(unsigned i, uint8_t value, int64_t c);
  void write_control(uint8_t value, int64_t c);
  void load_count(Pit8254Counter& k, uint16_t raw, int64_t c);
  void latch_count(Pit8254Counter& k, int64_t c);
  void set_gate(Pit8254Counter& k, bool level, int64_t c);
  void rearm(Tick now);
  void event_fired();

  std::function<void(bool)> m_irq;
  Port61 m_port61_dev{*this};
  EventQueue* m_queue = nullptr;
  MemberEvent<&Pit8254::event_fired> m_event{*this, "pit_irq0"};
};

}  // namespace pvsim
