// devices/lapic.h — the local APIC of one vCPU (SDM Vol. 3A chapter 11), as a standalone
// device: register file (xAPIC MMIO page and x2APIC MSRs 0x800-0x8ff), IA32_APIC_BASE mode
// rules, interrupt acceptance/priority (IRR/ISR/TMR, TPR/PPR, EOI), the timer (one-shot,
// periodic, TSC-deadline), ICR decoding into IpiRequests, local (LVT) delivery of LINT0/1,
// timer and error interrupts, delivery of routed IPIs (fixed, NMI, INIT, SIPI), INIT reset,
// and KVM-shaped tracing of all of it (core/trace.h).
//
// tools/platform/README.md §2: the LAPIC never sees a Vcpu. It talks outwards through InterruptSink
// (a deliverable interrupt appeared; an IPI was written to the ICR) and reads time through
// ApicClock. Routing IPIs to other APICs is the bus's job (devices/apic_bus.h);
// matches_destination() below is the pure §11.6.2 rule the bus uses for that.
// tools/platform/README.md §4.2: the timer is an Event on the EventQueue at the exact expiry Tick and
// the current-count register is derived from the Tick when read; nothing is ticked.
#pragma once
#include <array>
#include <cstdint>
#include <optional>

#include "core/event_queue.h"
#include "core/msr_registry.h"
#include "core/trace.h"
#include "core/types.h"
#include "devices/lapic_regs.h"

namespace pvsim {

// ICR delivery mode field (SDM §11.6.1). Values are the architectural encodings.
enum class IpiDelivery : uint8_t {
  Fixed = 0,
  LowestPriority = 1,
  Smi = 2,
  Nmi = 4,
  Init = 5,
  StartUp = 6,
  Reserved
};
enum class DestMode : uint8_t { Physical, Logical };
// ICR destination shorthand (SDM §11.6.1 bits 19:18).
enum class Shorthand : uint8_t { None = 0, Self = 1, AllIncludingSelf = 2, AllExcludingSelf = 3 };
enum class TriggerMode : uint8_t { Edge, Level };
enum class ApicMode : uint8_t { Disabled, XApic, X2Apic };
enum class TimerMode : uint8_t { OneShot = 0, Periodic = 1, TscDeadline = 2 };

// One decoded ICR write. `destination` is the 8-bit xAPIC field (ICR bits 63:56) or the
// 32-bit x2APIC field; `x2apic` says which, because broadcast and logical matching differ.
struct IpiRequest {
  uint32_t source = 0;  // APIC ID of the sender (needed for the shorthands)
  uint8_t vector = 0;
  IpiDelivery delivery = IpiDelivery::Fixed;
  DestMode dest_mode = DestMode::Physical;
  Shorthand shorthand = Shorthand::None;
  TriggerMode trigger = TriggerMode::Edge;
  bool level_assert = true;  // ICR bit 14; only an INIT level de-assert has it clear
  uint32_t destination = 0;
  bool x2apic = false;
  bool operator==(const IpiRequest&) const = default;
};

// What the bus needs to know about a candidate receiver to apply §11.6.2.
struct ApicDestinationInfo {
  uint32_t apic_id = 0;  // xAPIC: ID register bits 31:24; x2APIC: the 32-bit x2APIC ID
  uint32_t ldr = 0;      // LDR register value as read
  uint32_t dfr = ~0u;    // DFR (xAPIC only): model bits 31:28 = 0xF flat, 0x0 cluster
  bool x2apic = false;
};

// SDM §11.6.2 / §11.6.2.1-2 and §11.12.9-10 (x2APIC logical/broadcast): does `target`
// accept `req`? Applies the shorthand first (it overrides the destination field).
// Lowest-priority arbitration among several matches is left to the bus.
bool matches_destination(const IpiRequest& req, const ApicDestinationInfo& target);

// Narrow outward interface (tools/platform/README.md §2). Called synchronously from the LAPIC.
class InterruptSink {
 public:
  // A deliverable interrupt (pending_vector() has a value) may now exist: wake a halted vCPU
  // and re-check at the next instruction boundary. Spurious calls are allowed.
  virtual void interrupt_pending(uint32_t apic_id) = 0;
  // The guest wrote the ICR; route the IPI (including self and broadcast shorthands).
  virtual void send_ipi(const IpiRequest& req) = 0;
  // An NMI reached this APIC (an LVT in NMI mode, or an NMI IPI handed to receive_ipi()):
  // the vCPU must take an NMI (the platform calls Vcpu::inject_nmi). NMIs bypass IRR/PPR.
  virtual void nmi_pending(uint32_t apic_id) = 0;

 protected:
  ~InterruptSink() = default;
};

// Virtual time as the LAPIC sees it: the owning vCPU's current Tick.
class ApicClock {
 public:
  virtual Tick now() const = 0;

 protected:
  ~ApicClock() = default;
};

struct LapicConfig {
  uint32_t apic_id = 0;
  bool bsp = false;
  // APIC timer input clock (SDM §11.5.4: "the processor's bus clock or core crystal clock").
  uint64_t bus_hz = 1'000'000'000;
  // TSC frequency for IA32_TSC_DEADLINE; the TSC is taken as ns_to_cycles(Tick, tsc_hz).
  uint64_t tsc_hz = 1'000'000'000;
  // MAXPHYADDR: IA32_APIC_BASE bits at and above it are reserved (#GP).
  unsigned phys_addr_bits = 46;
  // Optional trace sink; `vcpu` is the vCPU index printed in the trace's CPU column.
  // Events (all stamped with the ApicClock's now()): kvm_apic per guest register access,
  // kvm_apic_ipi per ICR / SELF IPI write, kvm_apic_accept_irq per delivery into this APIC,
  // kvm_eoi per EOI. The `apicid` KVM prints in the last two is its vcpu_id, i.e. the APIC
  // ID the VMM assigned at creation: `apic_id` above, not the (writable) xAPIC ID register.
  Tracer* tracer = nullptr;
  unsigned vcpu = 0;
};

// What a routed IPI asks of the receiving vCPU beyond the APIC's own state. INIT and SIPI
// change the vCPU's run state, which only the platform can do (see receive_ipi()).
enum class IpiEffect : uint8_t { None, Init, StartUp };

// Everything in a LocalApic that changes while it runs: the register file, the timer's
// counting state and the PV EOI notification flag. LocalApic inherits it privately, so its
// methods use the members directly, and a snapshot is a copy of this struct: a member added
// here is saved and restored without further code (tools/platform/README.md "Snapshots").
// Configuration, the outward references and the timer Event stay in LocalApic.
struct LocalApicState {
  using Bank = std::array<uint32_t, 8>;

  ApicMode m_mode = ApicMode::XApic;
  uint64_t m_apic_base = 0;
  uint32_t m_xapic_id = 0;  // xAPIC ID register (ID in bits 31:24)
  uint32_t m_tpr = 0;
  uint32_t m_ldr = 0;
  uint32_t m_dfr = ~0u;
  uint32_t m_svr = 0xff;
  Bank m_isr{}, m_tmr{}, m_irr{};
  uint32_t m_esr = 0;          // visible ESR, latched by the last ESR write
  uint32_t m_esr_pending = 0;  // errors detected since that write (SDM §11.5.3)
  uint32_t m_icr_low = 0, m_icr_high = 0;
  std::array<uint32_t, 6> m_lvt{};  // index = (offset - 0x320) >> 4: timer..error; CMCI apart
  uint32_t m_lvt_cmci = 0;
  uint32_t m_timer_initial = 0;
  uint32_t m_timer_divide = 0;
  uint64_t m_tsc_deadline = 0;
  int m_highest_isr_cache = -1;       // KVM highest_isr_cache (see highest_isr_cache())
  bool m_notify_every_accept = false;  // see set_notify_every_accept()

  // Timer counting state: counts are measured from m_timer_base at the divisor that was
  // current then; the next expiry is when m_timer_target counts have elapsed. Periodic
  // reload adds the initial count to the target, so expiries land on exact multiples
  // (no accumulated rounding drift).
  Tick m_timer_base{};
  unsigned m_timer_base_divisor = 2;
  uint64_t m_timer_target = 0;
  bool m_timer_counting = false;  // count-down mode running (current count > 0)
  // The Tick the timer Event was last scheduled for (timer_expiry()). The Event keeps its
  // key only while it is pending: an EventQueue restore re-links the pending events with
  // their saved keys but leaves a fired or cancelled one with whatever key it had last, so
  // the value must live here to read the same after a restore.
  Tick m_timer_expiry{};

  bool operator==(const LocalApicState&) const = default;
};

class LocalApic : private LocalApicState {
 public:
  LocalApic(const LapicConfig& cfg, EventQueue& events, InterruptSink& sink,
            const ApicClock& clock);
  LocalApic(const LocalApic&) = delete;
  LocalApic& operator=(const LocalApic&) = delete;

  // Power-up / RESET state (SDM §11.4.7.1), xAPIC enabled at the default base.
  void reset();
  // Tracing can be attached after construction, so firmware-style set-up writes (the boot
  // protocol's LVT values) do not appear as guest register accesses.
  void set_tracer(Tracer* tracer) { m_cfg.tracer = tracer; }
  // The BSP's LINT0 in ExtINT mode, unmasked (0x700), as KVM's kvm_lapic_reset leaves it
  // for the boot vCPU (scenarios/guest/boot.md §3, "local APIC"). A raw set: a guest write could not clear
  // the mask while SVR has the APIC software-disabled (SDM §11.4.7.2).
  void set_bsp_lint0_extint();
  // INIT (SDM §11.4.7.3; §11.12.5.1 for x2APIC): every register as after RESET except the
  // APIC ID (and, in x2APIC mode, the LDR derived from it), and IA32_APIC_BASE / the mode
  // are kept. The timer is cancelled. The platform calls this when the vCPU processes an
  // INIT (KVM: kvm_apic_accept_events -> kvm_lapic_reset(vcpu, init_event=true)).
  void init_reset();

  // ---- IA32_APIC_BASE (SDM §11.4.4, §11.12.5) ----
  uint64_t apic_base() const { return m_apic_base; }
  MsrStatus set_apic_base(uint64_t value);
  ApicMode mode() const { return m_mode; }
  uint64_t mmio_base() const { return m_apic_base & ~0xfffull & ((1ull << m_phys_bits) - 1); }

  // ---- register access ----
  // xAPIC page, offset 0..0xfff. Only in xAPIC mode (in other modes reads give 0 and
  // writes are dropped; the platform should not route the page then, §11.12.2).
  uint32_t mmio_read(uint32_t offset, unsigned size);
  void mmio_write(uint32_t offset, unsigned size, uint32_t value);
  // x2APIC MSRs 0x800-0x8ff (SDM §11.12.1.2-3). Gp outside x2APIC mode.
  MsrStatus msr_read(uint32_t index, uint64_t& value);
  MsrStatus msr_write(uint32_t index, uint64_t value);
  // IA32_TSC_DEADLINE (SDM §11.5.4.1): ignored/zero unless the LVT timer is in deadline mode.
  uint64_t tsc_deadline() const;
  void set_tsc_deadline(uint64_t tsc);

  // ---- interrupt acceptance (SDM §11.8.3-§11.8.5) ----
  // A fixed interrupt arrives (from the bus, an LVT, or a PV device). Vectors 0-15 are
  // illegal: ESR "receive illegal vector" is set and nothing is queued.
  void accept(uint8_t vector, TriggerMode trigger);
  // Highest IRR vector whose priority class exceeds PPR's, if any.
  std::optional<uint8_t> pending_vector() const;
  // The CPU takes the interrupt: highest deliverable IRR bit moves to ISR. Returns it.
  // The vector also becomes highest_isr_cache() (KVM apic_set_isr).
  std::optional<uint8_t> ack();
  // Same as a write to the EOI register (the register paths call it): retires the highest
  // in-service vector and returns it, or -1 when nothing is in service (KVM apic_set_eoi,
  // which the PV EOI path also calls to EOI on the guest's behalf, pvmsr/pv_eoi.h).
  int eoi();
  uint32_t ppr() const;
  // TPR for MOV to/from CR8 (SDM §11.8.6.1: CR8[3:0] = TPR[7:4]); the caller shifts.
  // Not a guest register access, so not traced (KVM kvm_lapic_set_tpr neither).
  uint32_t tpr() const { return m_tpr; }
  void set_tpr(uint32_t value);

  // ---- delivery into this APIC ----
  // An IPI the bus routed here (devices/apic_bus.h route_ipi), as KVM's __apic_accept_irq:
  // traces kvm_apic_accept_irq, then
  //   Fixed / LowestPriority -> IRR (dropped while software-disabled, §11.4.7.2; a
  //                             level-triggered de-assert is dropped, as KVM does);
  //   NMI   -> InterruptSink::nmi_pending;
  //   INIT  -> returns IpiEffect::Init (a level de-assert INIT does nothing, §11.6.1);
  //            the platform then puts the vCPU in wait-for-SIPI and calls init_reset();
  //   SIPI  -> returns IpiEffect::StartUp; the start page is req.vector << 12 (§11.6.1);
  //   SMI / reserved -> ignored (no SMM in pvsim).
  // Nothing happens while the APIC is globally disabled (IA32_APIC_BASE.EN = 0, §11.4.3).
  IpiEffect receive_ipi(const IpiRequest& req);
  // The LINT0 (pin 0) or LINT1 (pin 1) input asserts (SDM §11.5.1): delivered per its LVT.
  // Fixed -> accept(vector, trigger from LVT bit 15); NMI -> nmi_pending. ExtINT is ignored:
  // there is no 8259 PIC to supply the vector (KVM leaves it to kvm_apic_accept_pic_intr).
  // SMI and INIT through an LVT are ignored too (no SMM; INIT via LINT is not wired).
  // Masked entries (bit 16) deliver nothing. Other pins are ignored.
  void raise_lint(unsigned pin);

  // ---- inspection for the platform and tests ----
  uint32_t id() const { return m_mode == ApicMode::X2Apic ? m_cfg.apic_id : m_xapic_id >> 24; }
  ApicDestinationInfo destination_info() const;
  bool software_enabled() const { return (m_svr & lapic::kSvrEnable) != 0; }
  // A register's value as a read in the current mode would return it, without the read's
  // trace line or side effects (pvsim run --dump); nullopt where the mode has no register.
  std::optional<uint32_t> peek(uint32_t offset) const { return read_reg(offset); }
  bool irr_bit(uint8_t v) const { return test(m_irr, v); }
  bool isr_bit(uint8_t v) const { return test(m_isr, v); }
  bool tmr_bit(uint8_t v) const { return test(m_tmr, v); }
  bool timer_armed() const { return m_timer_event.scheduled(); }
  // The expiry the timer was last armed for; the pending one while timer_armed().
  Tick timer_expiry() const { return m_timer_expiry; }
  // The APIC ID the VMM assigned at creation (LapicConfig::apic_id), which KVM prints as
  // `apicid` in kvm_eoi / kvm_pv_eoi (its vcpu_id), whatever the guest wrote to the ID register.
  uint32_t vcpu_id() const { return m_cfg.apic_id; }

  // ---- what PV EOI asks of the APIC (pvmsr/pv_eoi.h; KVM lapic.c) ----
  // KVM's irr_pending hint: some IRR bit is set. KVM keeps a flag that is set with every IRR
  // bit and recomputed when one is cleared; without APICv it is exact except right after a
  // reset (kvm_apic_update_apicv sets it), when highest_isr_cache() is -1 anyway, so
  // apic_sync_pv_eoi_to_guest decides the same with the exact answer given here.
  bool irr_pending() const {
    uint32_t any = 0;
    for (uint32_t w : m_irr) any |= w;
    return any != 0;
  }
  // KVM's highest_isr_cache: the vector the last ack() moved into ISR, as long as no EOI has
  // retired a vector since (apic_set_isr sets it, apic_clear_isr invalidates it) and the
  // APIC has not been reset; -1 otherwise. An acknowledged vector is always the highest in
  // service (it had to beat PPR, §11.8.3), so a valid cache names the vector the next EOI
  // retires; PV EOI arms only then.
  int highest_isr_cache() const { return m_highest_isr_cache; }
  // While set, every fixed interrupt accepted into IRR calls InterruptSink::interrupt_pending,
  // deliverable under PPR or not: KVM's __apic_accept_irq kicks the vCPU for every one
  // (vmx_deliver_interrupt -> kvm_vcpu_kick), and that exit is where a PV EOI the guest did
  // in memory is noticed (apic_sync_pv_eoi_from_guest). PvEoi sets it while armed; otherwise
  // an interrupt of the in-service vector's class could wait behind a vector the guest has
  // already retired. Off by default: then only deliverable interrupts notify.
  void set_notify_every_accept(bool on) { m_notify_every_accept = on; }
  bool notify_every_accept() const { return m_notify_every_accept; }

  // ---- snapshots (tools/platform/README.md "Snapshots") ----
  // The whole LocalApicState. restore() assigns it and nothing else: it schedules and
  // cancels no event and notifies no sink. The timer Event is the EventQueue's to restore
  // (its snapshot re-links the Event with its exact key), so a platform restores the queue
  // together with the APICs; timer_armed() follows the queue, every register value and
  // timer_expiry() follow the snapshot. The tracer (set_tracer) is configuration and is kept.
  struct Snapshot {
    LocalApicState state;
  };
  Snapshot save() const { return Snapshot{static_cast<const LocalApicState&>(*this)}; }
  void restore(const Snapshot& s) { static_cast<LocalApicState&>(*this) = s.state; }

 private:
  static bool test(const Bank& b, unsigned v) { return (b[v >> 5] >> (v & 31)) & 1; }
  static void set(Bank& b, unsigned v) { b[v >> 5] |= 1u << (v & 31); }
  static void clear(Bank& b, unsigned v) { b[v >> 5] &= ~(1u << (v & 31)); }
  static int highest(const Bank& b);

  // Register file core shared by both access paths. `x2` selects x2APIC semantics.
  // read_reg returns nullopt for an offset that does not exist in the current mode.
  std::optional<uint32_t> read_reg(uint32_t offset) const;
  // Returns false for a write the mode rejects (read-only / reserved / non-existent).
  bool write_reg(uint32_t offset, uint32_t value);
  void write_lvt(uint32_t offset, uint32_t value);
  void write_svr(uint32_t value);
  void send_icr(uint32_t low, uint32_t high);
  void send_self_ipi(uint32_t value);
  void signal_error(uint32_t esr_bit);
  void notify_if_pending();
  // Delivery of a local interrupt source through its LVT entry (KVM kvm_apic_local_deliver).
  void deliver_lvt(unsigned index);
  // A fixed interrupt into IRR/TMR without tracing (callers trace with the real mode).
  void accept_fixed(uint8_t vector, TriggerMode trigger);
  // kvm_apic_accept_irq for a delivery attempt into this APIC; `dm` is the 3-bit
  // delivery-mode field (ICR or LVT encoding).
  void trace_accept(uint32_t dm, TriggerMode trigger, uint8_t vector);
  void trace_reg(bool write, uint32_t offset, uint64_t value);
  // Registers as at RESET (§11.4.7.1), leaving ID, LDR-in-x2APIC, mode and base to callers.
  void reset_registers();

  // Timer (SDM §11.5.4).
  TimerMode timer_mode() const;
  unsigned timer_divisor() const;
  uint64_t counts_elapsed(Tick now) const;
  Tick tick_for_counts(uint64_t counts) const;
  void timer_start_counting(uint64_t first_counts);
  // Every schedule of m_timer_event goes through here, which records m_timer_expiry.
  void arm_timer(Tick when);
  void timer_stop();
  uint32_t timer_current_count() const;
  void timer_expired();

  LapicConfig m_cfg;
  EventQueue& m_events;
  InterruptSink& m_sink;
  const ApicClock& m_clock;
  unsigned m_phys_bits;

  MemberEvent<&LocalApic::timer_expired> m_timer_event{*this, "lapic_timer"};
};

}  // namespace pvsim
