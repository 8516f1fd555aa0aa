// devices/lapic.cpp — local APIC model; see lapic.h. Section numbers are SDM Vol. 3A.
#include "devices/lapic.h"

#include <bit>
#include <cstdint>

namespace pvsim {

using namespace lapic;

namespace {

constexpr unsigned kLvtCount = 6;  // timer, thermal, perf, LINT0, LINT1, error
constexpr uint32_t lvt_index(uint32_t offset) {
  return (offset - kLvtTimer) >> 4;
}
constexpr unsigned kLvtTimerIdx = 0, kLvtLint0Idx = 3, kLvtErrorIdx = 5;

// LVT delivery-mode field (§11.5.1 Figure 11-8, bits 10:8).
constexpr uint32_t kLvtDmFixed = 0, kLvtDmNmi = 4, kLvtDmExtInt = 7;
constexpr uint32_t kLvtTriggerLevel = 1u << 15;

// Writable bits per LVT (§11.5.1 Figure 11-8). Delivery status (bit 12) and remote IRR
// (bit 14) are read-only; the timer's mode field is bits 18:17; LINT0/1 carry delivery
// mode, polarity and trigger; thermal/perf carry delivery mode; error carries only vector+mask.
constexpr std::array<uint32_t, kLvtCount> kLvtWritable = {
    0x000700ff,  // timer: vector, mask, mode (bit 19 reserved)
    0x000107ff,  // thermal: vector, delivery mode, mask
    0x000107ff,  // perf
    0x0001a7ff,  // LINT0: vector, delivery mode, polarity, trigger, mask
    0x0001a7ff,  // LINT1
    0x000100ff,  // error
};

// Divide configuration register bits 3,1:0 (§11.5.4 Figure 11-10): 000->2 ... 110->128, 111->1.
constexpr unsigned divisor_from_dcr(uint32_t dcr) {
  const unsigned code = ((dcr >> 1) & 4u) | (dcr & 3u);
  return code == 7 ? 1u : 2u << code;
}

// Saturating: a deadline beyond 2^64 ns (a guest writing a huge TSC deadline) becomes
// "never" instead of wrapping into the past and firing at once.
uint64_t ceil_div128(unsigned __int128 n, unsigned __int128 d) {
  const unsigned __int128 q = (n + d - 1) / d;
  return q > UINT64_MAX ? UINT64_MAX : static_cast<uint64_t>(q);
}

// Saturating Tick addition for the same reason.
Tick tick_add(Tick base, uint64_t delta) {
  return delta > UINT64_MAX - base.value() ? Tick(UINT64_MAX) : base + delta;
}

}  // namespace

bool matches_destination(const IpiRequest& req, const ApicDestinationInfo& t) {
  // Shorthands ignore the destination field entirely (§11.6.1, bits 19:18).
  switch (req.shorthand) {
    case Shorthand::Self:
      return t.apic_id == req.source;
    case Shorthand::AllIncludingSelf:
      return true;
    case Shorthand::AllExcludingSelf:
      return t.apic_id != req.source;
    case Shorthand::None:
      break;
  }
  if (req.x2apic) {
    // §11.12.9: 0xffffffff is broadcast in both destination modes.
    if (req.destination == 0xffffffffu) return true;
    if (req.dest_mode == DestMode::Physical) return req.destination == t.apic_id;
    // §11.12.10.2: logical x2APIC = cluster ID in bits 31:16, member bitmap in 15:0.
    return (req.destination >> 16) == (t.ldr >> 16) && (req.destination & t.ldr & 0xffffu) != 0;
  }
  const uint32_t dest = req.destination & 0xff;
  if (req.dest_mode == DestMode::Physical) {
    // §11.6.2.1: 0xFF is the physical broadcast ID.
    return dest == 0xff || dest == (t.apic_id & 0xff);
  }
  // §11.6.2.2: logical destination, MDA against LDR bits 31:24 under the DFR model.
  if (dest == 0xff) return true;  // all-ones MDA addresses every APIC in either model
  const uint32_t logical_id = t.ldr >> 24;
  if ((t.dfr >> 28) == 0xf) return (dest & logical_id) != 0;  // flat: 8-bit bitmap
  // Cluster: high nibble selects the cluster, low nibble is a member bitmap.
  return (dest >> 4) == (logical_id >> 4) && (dest & logical_id & 0xf) != 0;
}

LocalApic::LocalApic(const LapicConfig& cfg, EventQueue& events, InterruptSink& sink,
                     const ApicClock& clock)
    : m_cfg(cfg),
      m_events(events),
      m_sink(sink),
      m_clock(clock),
      m_phys_bits(cfg.phys_addr_bits < 32 ? 32
                                          : (cfg.phys_addr_bits > 52 ? 52 : cfg.phys_addr_bits)) {
  // Frequencies are validated at the scenario edge; a zero here would divide by zero in
  // the timer arithmetic, so the device clamps rather than trusting its caller.
  if (m_cfg.bus_hz == 0) m_cfg.bus_hz = 1;
  if (m_cfg.tsc_hz == 0) m_cfg.tsc_hz = 1;
  reset();
}

void LocalApic::reset() {
  // IA32_APIC_BASE enabled at 0xFEE00000 with BSP set on the bootstrap processor (§11.4.4);
  // the xAPIC ID register gets the hardware-assigned ID.
  reset_registers();
  m_mode = ApicMode::XApic;
  m_apic_base = kDefaultBase | kBaseEnable | (m_cfg.bsp ? kBaseBsp : 0);
  m_xapic_id = (m_cfg.apic_id & 0xff) << 24;
}

void LocalApic::init_reset() {
  // §11.4.7.3: INIT leaves the APIC ID (and arbitration ID) alone; IA32_APIC_BASE is not
  // touched, so the mode survives. §11.12.5.1: in x2APIC mode the x2APIC ID is kept and the
  // LDR, which is derived from it and read-only, keeps its value (KVM kvm_lapic_reset with
  // init_event: LDR cleared only outside x2APIC mode).
  const uint32_t xapic_id = m_xapic_id, ldr = m_ldr;
  reset_registers();
  m_xapic_id = xapic_id;
  if (m_mode == ApicMode::X2Apic) m_ldr = ldr;
}

void LocalApic::reset_registers() {
  // §11.4.7.1 power-up/reset state: IRR/ISR/TMR/ICR/LDR/TPR/timer registers 0, DFR all
  // ones, LVTs masked (0x00010000), SVR 0xFF (software disabled). The timer stops.
  timer_stop();
  m_tpr = 0;
  m_ldr = 0;
  m_dfr = ~0u;
  m_svr = 0xff;
  m_isr = {};
  m_tmr = {};
  m_irr = {};
  m_esr = m_esr_pending = 0;
  m_icr_low = m_icr_high = 0;
  m_lvt.fill(kLvtMasked);
  m_lvt_cmci = kLvtMasked;
  m_timer_initial = 0;
  m_timer_divide = 0;
  m_tsc_deadline = 0;
  // KVM kvm_lapic_reset -> kvm_apic_update_apicv: the ISR is empty, nothing is cached.
  m_highest_isr_cache = -1;
}

void LocalApic::set_bsp_lint0_extint() {
  m_lvt[kLvtLint0Idx] = 0x700;
}

// ---------------------------------------------------------------- IA32_APIC_BASE

MsrStatus LocalApic::set_apic_base(uint64_t value) {
  // Reserved: bits 7:0, bit 9, and bits at/above MAXPHYADDR (§11.12.1 Figure 11-26).
  const uint64_t reserved = 0x2ffull | ~((1ull << m_phys_bits) - 1);
  if (value & reserved) return MsrStatus::Gp;
  const bool en = value & kBaseEnable, extd = value & kBaseExtd;
  if (extd && !en) return MsrStatus::Gp;  // EN=0,EXTD=1 is the invalid state (§11.12.5 Table 11-5)
  const ApicMode next = !en ? ApicMode::Disabled : (extd ? ApicMode::X2Apic : ApicMode::XApic);
  // §11.12.5 Figure 11-27: x2APIC -> xAPIC and disabled -> x2APIC are illegal transitions;
  // the way back from x2APIC is through disabled.
  if (m_mode == ApicMode::X2Apic && next == ApicMode::XApic) return MsrStatus::Gp;
  if (m_mode == ApicMode::Disabled && next == ApicMode::X2Apic) return MsrStatus::Gp;

  // The BSP flag reflects the boot processor choice and is not changed by software here.
  m_apic_base = (value & ~kBaseBsp) | (m_apic_base & kBaseBsp);
  if (next == m_mode) return MsrStatus::Ok;
  const ApicMode prev = m_mode;
  if (next == ApicMode::Disabled) {
    // §11.4.3: a globally disabled APIC is gone until re-enabled; on re-enable we present the
    // power-up register state (our choice, matching §11.12.5.1 for x2APIC -> disabled, which
    // says the state is reset when going back to xAPIC).
    const uint64_t base = m_apic_base;
    reset();
    m_apic_base = base;
    m_mode = ApicMode::Disabled;
    return MsrStatus::Ok;
  }
  m_mode = next;
  if (prev == ApicMode::XApic && next == ApicMode::X2Apic) {
    // §11.12.5.1: xAPIC -> x2APIC keeps the register state except that the ID becomes the
    // x2APIC ID, the LDR is derived from it (§11.12.10.2) and DFR no longer exists.
    m_ldr = ((m_cfg.apic_id >> 4) << 16) | (1u << (m_cfg.apic_id & 0xf));
  }
  return MsrStatus::Ok;
}

ApicDestinationInfo LocalApic::destination_info() const {
  return {id(), m_ldr, m_dfr, m_mode == ApicMode::X2Apic};
}

// ---------------------------------------------------------------- register file

int LocalApic::highest(const Bank& b) {
  for (int i = 7; i >= 0; --i) {
    if (b[i]) return i * 32 + 31 - std::countl_zero(b[i]);
  }
  return -1;
}

uint32_t LocalApic::ppr() const {
  // §11.8.3.1: PPR = TPR if TPR[7:4] >= ISRV[7:4], else ISRV[7:4] with low nibble 0.
  const int isrv = highest(m_isr);
  const uint32_t isr_class = isrv < 0 ? 0 : static_cast<uint32_t>(isrv) & 0xf0;
  return (m_tpr & 0xf0) >= isr_class ? m_tpr & 0xff : isr_class;
}

std::optional<uint32_t> LocalApic::read_reg(uint32_t offset) const {
  const bool x2 = m_mode == ApicMode::X2Apic;
  switch (offset) {
    case kId:
      return x2 ? m_cfg.apic_id : m_xapic_id;
    case kVersion:
      return kVersionValue;
    case kTpr:
      return m_tpr;
    case kApr:
      if (x2) return std::nullopt;  // APR has no x2APIC MSR (Table 11-6)
      // APR is model-specific (§11.8.2); we report the PPR-like arbitration value.
      return ppr();
    case kPpr:
      return ppr();
    case kEoi:
      return x2 ? std::nullopt : std::optional<uint32_t>(0);  // write-only
    case kRrd:
      return x2 ? std::nullopt : std::optional<uint32_t>(0);
    case kLdr:
      return m_ldr;
    case kDfr:
      return x2 ? std::nullopt : std::optional<uint32_t>(m_dfr);
    case kSvr:
      return m_svr;
    case kEsr:
      return m_esr;
    case kLvtCmci:
      // No CMCI in the vCPU's IA32_MCG_CAP (MCG_CMCI_P clear): KVM has no x2APIC MSR 0x82f
      // then (kvm_lapic_lvt_supported), so it #GPs; the xAPIC page keeps the masked entry.
      if (x2) return std::nullopt;
      return m_lvt_cmci;
    case kIcrLow:
      return m_icr_low;  // delivery status (bit 12) always idle: we send at once
    case kIcrHigh:
      return x2 ? std::nullopt : std::optional<uint32_t>(m_icr_high);
    case kTimerInitial:
      return m_timer_initial;
    case kTimerCurrent:
      return timer_current_count();
    case kTimerDivide:
      return m_timer_divide;
    case kSelfIpi:
      return std::nullopt;  // write-only in x2APIC, absent in xAPIC
    default:
      break;
  }
  if (offset >= kIsr0 && offset < kIsr0 + 0x80) return m_isr[(offset - kIsr0) >> 4];
  if (offset >= kTmr0 && offset < kTmr0 + 0x80) return m_tmr[(offset - kTmr0) >> 4];
  if (offset >= kIrr0 && offset < kIrr0 + 0x80) return m_irr[(offset - kIrr0) >> 4];
  if (offset >= kLvtTimer && offset <= kLvtError) return m_lvt[lvt_index(offset)];
  return std::nullopt;
}

bool LocalApic::write_reg(uint32_t offset, uint32_t value) {
  const bool x2 = m_mode == ApicMode::X2Apic;
  switch (offset) {
    case kId:
      if (x2) return false;  // x2APIC ID is read-only (§11.12.5.1)
      // xAPIC ID is writable on the processors KVM models (§11.4.6 notes it is model specific).
      m_xapic_id = value & 0xff000000u;
      return true;
    case kTpr:
      set_tpr(value);
      return true;
    case kEoi:
      // §11.12.1.3: a non-zero write to the x2APIC EOI MSR raises #GP.
      if (x2 && value != 0) return false;
      eoi();
      return true;
    case kLdr:
      if (x2) return false;  // derived and read-only in x2APIC (§11.12.10.2)
      m_ldr = value & 0xff000000u;
      return true;
    case kDfr:
      if (x2) return false;
      m_dfr = value | 0x0fffffffu;  // only the model field (31:28) is writable (§11.6.2.2)
      return true;
    case kSvr:
      write_svr(value);
      return true;
    case kEsr:
      // §11.12.1.3: x2APIC ESR writes must be zero. §11.5.3: a write latches the errors
      // detected since the previous write into the readable register and clears them.
      if (x2 && value != 0) return false;
      m_esr = m_esr_pending;
      m_esr_pending = 0;
      return true;
    case kLvtCmci:
      if (x2) return false;  // no x2APIC MSR without CMCI (read_reg)
      m_lvt_cmci = value & 0x107ff;
      if (!software_enabled()) m_lvt_cmci |= kLvtMasked;
      return true;
    case kIcrLow:
      m_icr_low = value & ~(1u << 12);
      if (!x2) send_icr(m_icr_low, m_icr_high);  // x2APIC sends through the 64-bit MSR path
      return true;
    case kIcrHigh:
      if (x2) return false;
      m_icr_high = value & 0xff000000u;
      return true;
    case kTimerInitial:
      m_timer_initial = value;
      // §11.5.4: writing the initial count (re)starts the count-down; 0 stops it.
      // In TSC-deadline mode the register is ignored.
      if (timer_mode() == TimerMode::TscDeadline) {
        m_timer_initial = 0;
        return true;
      }
      if (value == 0)
        timer_stop();
      else
        timer_start_counting(value);
      return true;
    case kTimerDivide: {
      const uint32_t old_div = timer_divisor();
      m_timer_divide = value & 0xb;
      if (m_timer_counting && timer_divisor() != old_div) {
        // Keep the counts still to go and continue at the new rate from now on.
        const uint64_t remaining = timer_current_count();
        timer_start_counting(remaining == 0 ? 1 : remaining);
      }
      return true;
    }
    case kSelfIpi:
      // §11.12.11: write-only, x2APIC only; bits 31:8 are reserved (#GP, as KVM does).
      if (!x2 || (value & ~kIcrVectorMask)) return false;
      send_self_ipi(value);
      return true;
    default:
      break;
  }
  if (offset >= kLvtTimer && offset <= kLvtError) {
    write_lvt(offset, value);
    return true;
  }
  // Read-only: version, PPR, APR, RRD, ISR/TMR/IRR, current count; plus undefined offsets.
  return false;
}

void LocalApic::set_tpr(uint32_t value) {
  m_tpr = value & 0xff;  // bits 31:8 reserved (§11.8.3.1 Figure 11-18)
  notify_if_pending();   // lowering TPR can unmask a pending IRR vector
}

void LocalApic::write_lvt(uint32_t offset, uint32_t value) {
  const uint32_t i = lvt_index(offset);
  uint32_t v = (value & kLvtWritable[i]) | (m_lvt[i] & ~kLvtWritable[i] & ~kLvtMasked);
  // §11.4.7.2: while software-disabled, LVT mask bits are forced and cannot be cleared.
  if (!software_enabled()) v |= kLvtMasked;
  if (i == kLvtTimerIdx) {
    if (((v >> kLvtTimerModeShift) & 3) == 3)
      v &= ~(1u << (kLvtTimerModeShift + 1));  // reserved mode 11b
    const TimerMode old_mode = timer_mode();
    m_lvt[i] = v;
    const TimerMode new_mode = timer_mode();
    // §11.5.4.1: switching into or out of TSC-deadline mode disarms the timer (clears the
    // initial count / deadline). One-shot <-> periodic keeps counting; the new mode
    // decides what happens at the next expiry.
    if ((old_mode == TimerMode::TscDeadline) != (new_mode == TimerMode::TscDeadline)) {
      timer_stop();
      m_timer_initial = 0;
      m_tsc_deadline = 0;
    }
    return;
  }
  m_lvt[i] = v;
}

void LocalApic::write_svr(uint32_t value) {
  // Writable: vector (7:0), APIC software enable (8), focus check (9). Bit 12 (EOI-broadcast
  // suppression) is reserved because our version register does not advertise it.
  m_svr = value & 0x3ff;
  if (!software_enabled()) {
    // §11.4.7.2: clearing the enable bit masks every LVT entry.
    for (auto& l : m_lvt) l |= kLvtMasked;
    m_lvt_cmci |= kLvtMasked;
  }
}

uint32_t LocalApic::mmio_read(uint32_t offset, unsigned size) {
  if (m_mode != ApicMode::XApic || offset >= 0x1000 || size == 0 || size > 4) return 0;
  const uint32_t reg = offset & ~0xfu, within = offset & 0xfu;
  // §11.4.1: registers are 32 bits at 16-byte alignment; bytes 4..15 of each slot are
  // reserved and read as 0. Narrower reads return the addressed bytes of the register.
  if (within + size > 4) return 0;
  const std::optional<uint32_t> v = read_reg(reg);
  if (!v) {
    if (reg != kSelfIpi) signal_error(kEsrIllegalRegister);  // §11.5.3 bit 7
    return 0;
  }
  // KVM kvm_lapic_reg_read: traced for readable registers only, with the offset as
  // accessed and the whole 32-bit register (not the narrowed bytes).
  trace_reg(false, offset, *v);
  const uint32_t shifted = *v >> (8 * within);
  return size == 4 ? shifted : shifted & ((1u << (8 * size)) - 1);
}

void LocalApic::mmio_write(uint32_t offset, unsigned size, uint32_t value) {
  if (m_mode != ApicMode::XApic || offset >= 0x1000) return;
  // §11.4.1: only aligned 32-bit stores are defined; other widths are dropped.
  if (size != 4 || (offset & 0xf) != 0) return;
  // KVM kvm_lapic_reg_write traces first, so an ICR write shows before its kvm_apic_ipi
  // and a write to a read-only or reserved offset is traced too.
  trace_reg(true, offset, value);
  if (!write_reg(offset, value) && !read_reg(offset)) signal_error(kEsrIllegalRegister);
}

MsrStatus LocalApic::msr_read(uint32_t index, uint64_t& value) {
  if (m_mode != ApicMode::X2Apic || index < kMsrBase || index > kMsrLast) return MsrStatus::Gp;
  const uint32_t offset = (index - kMsrBase) << 4;
  if (offset == kIcrLow) {  // §11.12.9: ICR is one 64-bit MSR, destination in 63:32
    // Not traced: KVM's kvm_lapic_msr_read returns the 64-bit ICR without kvm_apic.
    value = (static_cast<uint64_t>(m_icr_high) << 32) | m_icr_low;
    return MsrStatus::Ok;
  }
  const std::optional<uint32_t> v = read_reg(offset);
  if (!v) return MsrStatus::Gp;  // reserved or write-only (EOI, SELF IPI): #GP (§11.12.1.3)
  value = *v;
  trace_reg(false, offset, value);
  return MsrStatus::Ok;
}

MsrStatus LocalApic::msr_write(uint32_t index, uint64_t value) {
  if (m_mode != ApicMode::X2Apic || index < kMsrBase || index > kMsrLast) return MsrStatus::Gp;
  const uint32_t offset = (index - kMsrBase) << 4;
  if (offset == kIcrLow) {
    // Reserved ICR bits: 13 (and 12, read-only), 17:16, 31:20. Non-zero => #GP.
    constexpr uint32_t kIcrLowWritable = 0x000ccfff;
    const uint32_t low = static_cast<uint32_t>(value);
    if (low & ~kIcrLowWritable) return MsrStatus::Gp;
    m_icr_low = low;
    m_icr_high = static_cast<uint32_t>(value >> 32);
    send_icr(m_icr_low, m_icr_high);
    // KVM __kvm_x2apic_icr_write: kvm_apic_ipi first, then the 64-bit write at APIC_ICR.
    trace_reg(true, kIcrLow, value);
    return MsrStatus::Ok;
  }
  // §11.12.1.2: the upper 32 bits of every other x2APIC register are reserved
  // (#GP before KVM's kvm_lapic_reg_write, hence untraced).
  if (value >> 32) return MsrStatus::Gp;
  trace_reg(true, offset, value);
  return write_reg(offset, static_cast<uint32_t>(value)) ? MsrStatus::Ok : MsrStatus::Gp;
}

// ---------------------------------------------------------------- ICR

void LocalApic::send_icr(uint32_t low, uint32_t high) {
  IpiRequest r;
  r.source = id();
  r.vector = static_cast<uint8_t>(low & kIcrVectorMask);
  const uint32_t dm = (low >> kIcrDeliveryShift) & 7;
  r.delivery = (dm == 3 || dm == 7) ? IpiDelivery::Reserved : static_cast<IpiDelivery>(dm);
  r.dest_mode = (low & kIcrDestModeLogical) ? DestMode::Logical : DestMode::Physical;
  r.level_assert = (low & kIcrLevelAssert) != 0;
  r.trigger = (low & kIcrTriggerLevel) ? TriggerMode::Level : TriggerMode::Edge;
  r.shorthand = static_cast<Shorthand>((low >> kIcrShorthandShift) & 3);
  r.x2apic = m_mode == ApicMode::X2Apic;
  r.destination = r.x2apic ? high : high >> 24;
  // KVM kvm_apic_send_ipi traces every ICR send, before any check of what it carries.
  if (m_cfg.tracer) m_cfg.tracer->kvm_apic_ipi(m_clock.now(), m_cfg.vcpu, low, r.destination);
  if (r.delivery == IpiDelivery::Reserved) return;  // reserved encodings: nothing is sent
  // §11.5.3: a fixed/lowest-priority IPI with a vector below 16 sets "send illegal vector"
  // and is not sent.
  if ((r.delivery == IpiDelivery::Fixed || r.delivery == IpiDelivery::LowestPriority) &&
      r.vector < 16) {
    signal_error(kEsrSendIllegalVector);
    return;
  }
  m_sink.send_ipi(r);
}

void LocalApic::send_self_ipi(uint32_t value) {
  // §11.12.11: a fixed, edge-triggered IPI to this APIC only. It never leaves the APIC, so
  // it is delivered here rather than given to the bus (KVM also short-cuts it: it sends
  // ICR = self shorthand | vector and __kvm_irq_delivery_to_apic_fast delivers to the
  // source). The trace shows that ICR value, as KVM's does.
  IpiRequest r;
  r.source = id();
  r.vector = static_cast<uint8_t>(value & kIcrVectorMask);
  r.shorthand = Shorthand::Self;
  r.level_assert = false;  // the implied ICR has bit 14 clear; irrelevant for edge
  r.x2apic = true;
  const uint32_t icr_low = (static_cast<uint32_t>(Shorthand::Self) << kIcrShorthandShift) | r.vector;
  if (m_cfg.tracer) m_cfg.tracer->kvm_apic_ipi(m_clock.now(), m_cfg.vcpu, icr_low, 0);
  // §11.5.3: the APIC is the sender, so vectors 0-15 are a send error, as for the ICR.
  if (r.vector < 16) {
    signal_error(kEsrSendIllegalVector);
    return;
  }
  receive_ipi(r);
}

IpiEffect LocalApic::receive_ipi(const IpiRequest& req) {
  // A globally disabled APIC is absent (§11.4.3); KVM skips it (kvm_apic_present).
  if (m_mode == ApicMode::Disabled) return IpiEffect::None;
  trace_accept(static_cast<uint32_t>(req.delivery), req.trigger, req.vector);
  switch (req.delivery) {
    case IpiDelivery::Fixed:
    case IpiDelivery::LowestPriority:
      // A level-triggered de-assert carries no interrupt (KVM __apic_accept_irq drops it).
      if (req.trigger == TriggerMode::Level && !req.level_assert) return IpiEffect::None;
      accept_fixed(req.vector, req.trigger);
      return IpiEffect::None;
    case IpiDelivery::Nmi:
      // §11.4.7.2: taken even while software-disabled; NMIs do not use IRR/ISR.
      m_sink.nmi_pending(id());
      return IpiEffect::None;
    case IpiDelivery::Init:
      // §11.6.1: INIT level de-assert only synchronises arbitration IDs; nothing to do.
      if (req.trigger == TriggerMode::Level && !req.level_assert) return IpiEffect::None;
      return IpiEffect::Init;
    case IpiDelivery::StartUp:
      return IpiEffect::StartUp;
    case IpiDelivery::Smi:
    case IpiDelivery::Reserved:
      break;  // no SMM; reserved encodings are never sent (send_icr)
  }
  return IpiEffect::None;
}

void LocalApic::raise_lint(unsigned pin) {
  if (pin > 1) return;
  deliver_lvt(kLvtLint0Idx + pin);
}

void LocalApic::deliver_lvt(unsigned index) {
  // KVM kvm_apic_local_deliver: only while the APIC is present and the entry is unmasked.
  if (m_mode == ApicMode::Disabled) return;
  const uint32_t lvt = m_lvt[index];
  if (lvt & kLvtMasked) return;
  const uint8_t vector = static_cast<uint8_t>(lvt & kLvtVectorMask);
  // Timer and error entries have no writable delivery-mode bits, so they are always Fixed.
  const uint32_t dm = (lvt >> 8) & 7;
  // §11.5.1 trigger mode: bit 15 counts only for Fixed delivery on LINT0/1 (the other
  // entries cannot set it); NMI/SMI/INIT are edge, ExtINT is level.
  const TriggerMode trigger = (dm == kLvtDmExtInt || (dm == kLvtDmFixed && (lvt & kLvtTriggerLevel)))
                                  ? TriggerMode::Level
                                  : TriggerMode::Edge;
  trace_accept(dm, trigger, vector);
  switch (dm) {
    case kLvtDmFixed:
      accept_fixed(vector, trigger);
      break;
    case kLvtDmNmi:
      m_sink.nmi_pending(id());
      break;
    default:
      // ExtINT: the vector would come from an 8259 PIC, which pvsim does not have.
      // SMI (no SMM), INIT via an LVT (not wired) and reserved encodings: ignored.
      break;
  }
}

void LocalApic::trace_accept(uint32_t dm, TriggerMode trigger, uint8_t vector) {
  // KVM trace_kvm_apic_accept_irq(vcpu_id, delivery_mode, trig_mode, vector): dm is the
  // APIC_DM_* value (mode << 8), tm 1 for level.
  if (!m_cfg.tracer) return;
  m_cfg.tracer->kvm_apic_accept_irq(m_clock.now(), m_cfg.vcpu, m_cfg.apic_id,
                                    static_cast<uint16_t>((dm & 7) << 8),
                                    trigger == TriggerMode::Level ? 1 : 0, vector);
}

void LocalApic::trace_reg(bool write, uint32_t offset, uint64_t value) {
  if (m_cfg.tracer) m_cfg.tracer->kvm_apic(m_clock.now(), m_cfg.vcpu, write, offset, value);
}

// ---------------------------------------------------------------- acceptance, EOI

void LocalApic::signal_error(uint32_t esr_bit) {
  const bool first = (m_esr_pending & esr_bit) == 0;
  m_esr_pending |= esr_bit;
  // §11.5.3: an error raises the LVT error interrupt (if unmasked), once per error kind
  // until software reads the ESR (a write latches and clears it), so a guest repeating a
  // mistake does not flood IRR. An error LVT holding an illegal vector (< 16) raises
  // "receive illegal vector" once more and then stops here, because that bit is now set.
  if (first) deliver_lvt(kLvtErrorIdx);
}

void LocalApic::accept(uint8_t vector, TriggerMode trigger) {
  if (m_mode == ApicMode::Disabled) return;
  trace_accept(static_cast<uint32_t>(IpiDelivery::Fixed), trigger, vector);
  accept_fixed(vector, trigger);
}

void LocalApic::accept_fixed(uint8_t vector, TriggerMode trigger) {
  if (m_mode == ApicMode::Disabled) return;
  if (vector < 16) {  // §11.5.3 / §11.8.3: vectors 0-15 are reserved for exceptions
    signal_error(kEsrReceiveIllegalVector);
    return;
  }
  // §11.4.7.2: a software-disabled APIC does not accept fixed interrupts (it still
  // answers NMI/INIT/SIPI, which the bus handles without the IRR).
  if (!software_enabled()) return;
  set(m_irr, vector);
  // §11.8.4: TMR records the trigger mode so the EOI can be broadcast for level interrupts.
  if (trigger == TriggerMode::Level)
    set(m_tmr, vector);
  else
    clear(m_tmr, vector);
  // KVM kicks the vCPU for every accepted interrupt; pvsim only for deliverable ones, unless
  // PV EOI needs the kick (set_notify_every_accept).
  if (m_notify_every_accept) [[unlikely]]
    m_sink.interrupt_pending(id());
  else
    notify_if_pending();
}

std::optional<uint8_t> LocalApic::pending_vector() const {
  if (m_mode == ApicMode::Disabled) return std::nullopt;
  const int v = highest(m_irr);
  if (v < 0) return std::nullopt;
  // §11.8.3: delivered only if its priority class is above the PPR's class.
  if ((static_cast<uint32_t>(v) >> 4) <= (ppr() >> 4)) return std::nullopt;
  return static_cast<uint8_t>(v);
}

std::optional<uint8_t> LocalApic::ack() {
  const std::optional<uint8_t> v = pending_vector();
  if (!v) return std::nullopt;
  clear(m_irr, *v);
  set(m_isr, *v);
  // KVM apic_set_isr: the vector just set is the highest in service (it beat PPR).
  m_highest_isr_cache = *v;
  return v;
}

int LocalApic::eoi() {
  // §11.8.5: EOI retires the highest-priority in-service vector. A level-triggered one
  // would also broadcast an EOI to the I/O APICs (TMR set); there is no I/O APIC yet.
  // KVM apic_set_eoi traces the retired vector, and -1 for an EOI with nothing in
  // service (which it then ignores, e.g. Linux's timer check in setup_IO_APIC).
  const int v = highest(m_isr);
  if (m_cfg.tracer) m_cfg.tracer->kvm_eoi(m_clock.now(), m_cfg.vcpu, m_cfg.apic_id, v);
  if (v < 0) return v;
  clear(m_isr, static_cast<unsigned>(v));
  m_highest_isr_cache = -1;  // KVM apic_clear_isr: any retirement invalidates the cache
  notify_if_pending();  // a lower-priority IRR vector may now be deliverable
  return v;
}

void LocalApic::notify_if_pending() {
  if (pending_vector()) m_sink.interrupt_pending(id());
}

// ---------------------------------------------------------------- timer (§11.5.4)

TimerMode LocalApic::timer_mode() const {
  const uint32_t m = (m_lvt[kLvtTimerIdx] >> kLvtTimerModeShift) & 3;
  return m == 2 ? TimerMode::TscDeadline : (m == 1 ? TimerMode::Periodic : TimerMode::OneShot);
}

unsigned LocalApic::timer_divisor() const {
  return divisor_from_dcr(m_timer_divide);
}

uint64_t LocalApic::counts_elapsed(Tick now) const {
  // One count every divisor bus clocks: counts = floor(ns * bus_hz / (divisor * 1e9)).
  const unsigned __int128 ns = now - m_timer_base;
  return static_cast<uint64_t>(
      ns * m_cfg.bus_hz / (static_cast<unsigned __int128>(m_timer_base_divisor) * 1'000'000'000u));
}

Tick LocalApic::tick_for_counts(uint64_t counts) const {
  // First Tick at which counts_elapsed() >= counts: rounding up makes the event fire at the
  // same instant the derived current count reaches zero, never one tick early.
  const unsigned __int128 num =
      static_cast<unsigned __int128>(counts) * m_timer_base_divisor * 1'000'000'000u;
  return tick_add(m_timer_base, ceil_div128(num, m_cfg.bus_hz));
}

void LocalApic::timer_start_counting(uint64_t first_counts) {
  m_timer_base = m_clock.now();
  m_timer_base_divisor = timer_divisor();
  m_timer_target = first_counts;
  m_timer_counting = true;
  arm_timer(tick_for_counts(m_timer_target));
}

void LocalApic::arm_timer(Tick when) {
  m_timer_expiry = when;
  m_events.schedule(m_timer_event, when, EventPriority::DeviceTimer);
}

void LocalApic::timer_stop() {
  EventQueue::cancel(m_timer_event);
  m_timer_counting = false;
}

uint32_t LocalApic::timer_current_count() const {
  if (!m_timer_counting) return 0;
  const uint64_t elapsed = counts_elapsed(m_clock.now());
  if (elapsed >= m_timer_target) return 0;
  const uint64_t left = m_timer_target - elapsed;
  return left > 0xffffffffu ? 0xffffffffu : static_cast<uint32_t>(left);
}

uint64_t LocalApic::tsc_deadline() const {
  // §11.5.4.1: reads return 0 outside TSC-deadline mode.
  return timer_mode() == TimerMode::TscDeadline ? m_tsc_deadline : 0;
}

void LocalApic::set_tsc_deadline(uint64_t tsc) {
  if (m_mode == ApicMode::Disabled) return;
  // §11.5.4.1: writes are ignored outside TSC-deadline mode; 0 disarms; a deadline already
  // passed fires immediately.
  if (timer_mode() != TimerMode::TscDeadline) return;
  m_tsc_deadline = tsc;
  EventQueue::cancel(m_timer_event);
  if (tsc == 0) return;
  // TSC(t) = floor(t * tsc_hz / 1e9) >= tsc  <=>  t >= ceil(tsc * 1e9 / tsc_hz).
  const Tick due(ceil_div128(static_cast<unsigned __int128>(tsc) * 1'000'000'000u, m_cfg.tsc_hz));
  const Tick now = m_clock.now();
  arm_timer(due < now ? now : due);
}

void LocalApic::timer_expired() {
  if (timer_mode() == TimerMode::TscDeadline) {
    m_tsc_deadline = 0;  // §11.5.4.1: the deadline register clears when the timer fires
  } else if (timer_mode() == TimerMode::Periodic && m_timer_initial != 0) {
    // Reload at an exact multiple of the period counted from the original base.
    m_timer_target += m_timer_initial;
    arm_timer(tick_for_counts(m_timer_target));
  } else {
    m_timer_counting = false;  // one-shot: current count stays 0
  }
  // §11.5.4.1 / §11.5.1: a masked LVT still counts down, it just raises nothing.
  deliver_lvt(kLvtTimerIdx);
}

}  // namespace pvsim
