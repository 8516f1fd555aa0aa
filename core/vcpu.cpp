// core/vcpu.cpp — the public Vcpu API, forwarding to the CPU core (core/cpu/core.h).
#include "core/vcpu.h"

#include <fmt/format.h>

#include "core/cpu/core.h"

namespace pvsim {

using cpu::Core;

Vcpu::Vcpu(const VcpuConfig& cfg, GuestMemory& mem, CpuEnv& env, Tracer& tracer)
    : m_cfg(cfg), m_mem(mem), m_env(env), m_tracer(tracer) {
  m_core = std::make_unique<Core>(*this, mem, env, tracer, cfg);
  m_core->register_msrs();
}

Vcpu::~Vcpu() = default;

uint64_t Vcpu::gpr(unsigned r) const {
  return m_core->gpr[r & 15];
}
void Vcpu::set_gpr(unsigned r, uint64_t v) {
  m_core->gpr[r & 15] = v;
}
uint64_t Vcpu::rip() const {
  return m_core->rip;
}
void Vcpu::set_rip(uint64_t v) {
  m_core->rip = v;
}
uint64_t Vcpu::rflags() const {
  return (m_core->flags_value() & cpu::fl::kDefined) | cpu::fl::Reserved1;
}
void Vcpu::set_rflags(uint64_t v) {
  m_core->set_flags_raw(v);
  m_core->brk = true;
}

uint64_t Vcpu::cr(unsigned n) const {
  switch (n) {
    case 0:
      return m_core->cr0;
    case 2:
      return m_core->cr2;
    case 3:
      return m_core->cr3;
    case 4:
      return m_core->cr4;
    case 8:
      return m_core->get_cr8();
    default:
      return 0;
  }
}

void Vcpu::set_cr(unsigned n, uint64_t v) {
  Core& c = *m_core;
  switch (n) {
    case 0:
      c.cr0 = v;
      c.tlb_flush_all();
      c.update_ac();
      c.update_mode();
      break;
    case 2:
      c.cr2 = v;
      break;
    case 3:
      c.cr3 = v;
      c.tlb_flush_all();
      break;
    case 4:
      c.cr4 = v;
      c.tlb_flush_all();
      break;
    case 8:
      c.put_cr8(v & 0xf);
      break;
    default:
      break;
  }
}

uint64_t Vcpu::efer() const {
  return m_core->efer;
}
void Vcpu::set_efer(uint64_t v) {
  m_core->efer = v;
  m_core->tlb_flush_all();
  m_core->update_mode();
}

SegmentCache Vcpu::seg(SegReg s) const {
  return m_core->seg[static_cast<unsigned>(s)];
}
void Vcpu::set_seg(SegReg s, const SegmentCache& c) {
  m_core->seg[static_cast<unsigned>(s)] = c;
  // CPL is CS.RPL in protected/long mode (SDM Vol. 3A §5.5), 0 in real mode.
  if (s == SegReg::CS) {
    m_core->set_cpl(m_core->real_mode() ? 0 : c.selector & 3);
    m_core->update_mode();
  }
}

void Vcpu::set_paging_hook(std::function<void(Vcpu&, bool)> hook) {
  m_core->paging_hook = std::move(hook);
}

void Vcpu::reset_to_init() {
  Core& c = *m_core;
  for (uint64_t& r : c.gpr) r = 0;
  c.gpr[2] = 0x600;  // EDX: the processor signature's family 6 (SDM Vol. 3A §9.1.4)
  c.set_flags_raw(0x2);
  c.cr0 = 0x60000010;  // CD, NW, ET
  c.cr2 = c.cr3 = c.cr4 = 0;
  c.efer = 0;
  c.seg[1] = SegmentCache{0xf000, 0xffff0000, 0xffff, 0x9b};
  for (unsigned s : {0u, 2u, 3u, 4u, 5u}) c.seg[s] = SegmentCache{0, 0, 0xffff, 0x93};
  c.gdtr = DescriptorTable{0, 0xffff};
  c.idtr = DescriptorTable{0, 0xffff};
  c.ldtr = SegmentCache{0, 0, 0xffff, 0x82};
  c.tr = SegmentCache{0, 0, 0xffff, 0x8b};
  for (uint64_t& d : c.dr) d = 0;
  c.dr6 = 0xffff0ff0;
  c.dr7 = 0x400;
  c.rip = 0xfffffff0;
  c.halted = false;
  c.fault_pending = c.inject_pending = false;
  c.nmi_pending = c.nmi_blocked = false;
  c.inhibit_at = ~0ull;
  c.shadow_next = false;
  c.set_cpl(0);
  c.tlb_flush_all();
  c.update_ac();
  c.update_mode();
  c.brk = true;
}

void Vcpu::start_at_sipi(uint8_t vector) {
  Core& c = *m_core;
  c.seg[1].selector = static_cast<uint16_t>(vector << 8);
  c.seg[1].base = static_cast<uint64_t>(vector) << 12;
  c.rip = c.seg[1].base;
  c.halted = false;
  c.update_mode();
  c.brk = true;
}
SegmentCache Vcpu::tr() const {
  return m_core->tr;
}
void Vcpu::set_tr(const SegmentCache& c) {
  m_core->tr = c;
}
SegmentCache Vcpu::ldtr() const {
  return m_core->ldtr;
}
void Vcpu::set_ldtr(const SegmentCache& c) {
  m_core->ldtr = c;
}
DescriptorTable Vcpu::gdtr() const {
  return m_core->gdtr;
}
void Vcpu::set_gdtr(const DescriptorTable& t) {
  m_core->gdtr = t;
}
DescriptorTable Vcpu::idtr() const {
  return m_core->idtr;
}
void Vcpu::set_idtr(const DescriptorTable& t) {
  m_core->idtr = t;
}
unsigned Vcpu::cpl() const {
  return m_core->cpl;
}

Cycles Vcpu::cycles() const {
  return Cycles(m_core->cycles);
}
uint64_t Vcpu::tsc() const {
  return m_core->guest_tsc();
}
uint64_t Vcpu::instructions() const {
  return m_core->insns;
}
void Vcpu::advance_to(Cycles c) {
  if (c.value() > m_core->cycles) m_core->cycles = c.value();
}

Vcpu::RunResult Vcpu::run(uint64_t max_insns, Cycles deadline, Budget budget, uint64_t stop_at) {
  m_core->stop_at_insns = stop_at;
  return m_core->run(max_insns, deadline.value(), budget == Budget::Slice);
}

uint64_t Vcpu::last_run_steps() const {
  return m_core->run_steps;
}

void Vcpu::drop_read_translations(const std::vector<uint64_t>& pfns) {
  m_core->tlb_drop_reads_of(pfns);
}

void Vcpu::set_breakpoints(std::vector<uint64_t> rips, bool every_boundary) {
  m_core->set_breakpoints(std::move(rips), every_boundary);
}

Vcpu::Snapshot Vcpu::save() const {
  return Snapshot{std::make_shared<const cpu::CoreSnapshot>(m_core->save())};
}
void Vcpu::restore(const Snapshot& s) {
  m_core->restore(*s.core);
}

void Vcpu::request_stop(StopReason r) {
  m_core->requested = r;
  m_core->brk = true;
}
bool Vcpu::halted() const {
  return m_core->halted;
}
void Vcpu::set_halted(bool h) {
  m_core->halted = h;
}
const std::string& Vcpu::stop_detail() const {
  return m_core->stop_detail;
}
std::string Vcpu::dump_state() const {
  return m_core->dump();
}

void Vcpu::set_interrupt_poll(std::function<int(Vcpu&)> poll) {
  m_core->irq_poll = std::move(poll);
  if (m_core->irq_notified) m_core->irq_check = true;
}
void Vcpu::set_injection_hook(std::function<void(Vcpu&)> hook) { m_core->injected_hook = std::move(hook); }
void Vcpu::notify_interrupt() {
  m_core->irq_notified = true;
  m_core->irq_check = true;
  m_core->brk = true;
}
void Vcpu::inject_nmi() {
  Core& c = *m_core;
  c.nmi_pending = true;  // one latch: a second NMI while one is pending is lost
  if (!c.nmi_blocked) {
    c.irq_check = true;
    c.brk = true;
  }
}
bool Vcpu::nmi_pending() const {
  return m_core->nmi_pending;
}
bool Vcpu::nmi_blocked() const {
  return m_core->nmi_blocked;
}
void Vcpu::set_cr8_hooks(std::function<uint64_t(Vcpu&)> read,
                         std::function<void(Vcpu&, uint64_t)> write) {
  m_core->cr8_read = std::move(read);
  m_core->cr8_write = std::move(write);
}
void Vcpu::set_hypercall_handler(std::function<HypercallResult(Vcpu&, HypercallInsn)> handler,
                                 HypercallInsn native) {
  m_core->hypercall = std::move(handler);
  m_core->hypercall_native = native;
}
void Vcpu::set_time_gate(std::function<bool(Vcpu&)> gate) {
  m_core->time_gate = std::move(gate);
}
void Vcpu::set_entry_hook(std::function<void(Vcpu&)> hook) {
  m_core->entry_hook = std::move(hook);
}
void Vcpu::set_exit_hook(std::function<void(Vcpu&)> hook) {
  m_core->exit_hook = std::move(hook);
}
void Vcpu::set_ept_hook(std::function<EptResult(Vcpu&, const EptFault&)> hook) {
  m_core->ept_hook = std::move(hook);
}
void Vcpu::inject_exception(uint8_t vector, bool has_error, uint32_t error, uint64_t cr2) {
  Core& c = *m_core;
  if (c.inject_pending || c.np_queued) {
    // A second exception queued before the first was delivered: KVM's
    // kvm_multiple_exception merges them as the CPU would (SDM Vol. 3A Table 6-5): #PF then
    // #PF or contributory, or contributory then contributory, is #DF with error code 0;
    // anything after a #DF is a triple fault; otherwise the new one replaces the old (the
    // re-executed instruction raises the lost one again). Only a hypervisor that queues
    // twice gets here (the async-PF bug of pvmsr/README.md §2.5 apf_ready_on_pending_pf).
    // The async PF's "page not present" #PF the core is about to deliver counts as pending
    // (Core::np_queued): a #PF queued now meets it.
    const uint8_t prev = c.np_queued ? uint8_t(cpu::kPF) : c.inject_fault.vector;
    const bool serious = cpu::contributory(vector) || vector == cpu::kPF;
    if (prev == cpu::kDF && serious) {
      c.inject_pending = false;
      c.exit_event(c.now(), VmxExitReason::TripleFault, 0, 0);
      c.dead = true;
      c.stop_with(StopReason::Shutdown,
                  fmt::format("triple fault: vector {} queued while a #DF was pending", vector));
      return;
    }
    if (cpu::makes_double_fault(prev, vector)) {
      vector = cpu::kDF;
      has_error = true;
      error = 0;
      cr2 = 0;
      if (c.np_queued) c.np_merged = true;
    }
    // A benign exception after the not-present #PF (no entry hook queues one) would be
    // delivered after the #PF, where KVM lets it replace the #PF.
  }
  c.tracer.kvm_inj_exception(c.now(), c.cfg.index, vector, has_error, error, false);
  c.inject_fault = cpu::Fault{vector, has_error, error, cr2, true};
  c.inject_pending = true;
  c.irq_check = true;
  c.brk = true;
}
void Vcpu::flush_tlb() { m_core->tlb_flush_all(); }
bool Vcpu::exception_pending() const {
  return m_core->inject_pending || m_core->fault_pending || m_core->np_queued;
}
bool Vcpu::interrupt_shadow() const {
  return m_core->insns == m_core->inhibit_at;
}
bool Vcpu::long_mode_64() const {
  // KVM's is_64_bit_mode: EFER.LMA and CS.L (VMX access-rights bit 13).
  return (m_core->efer & cpu::efer::LMA) && (m_core->seg[1].attrs & (1u << 13));
}
LinearAccess Vcpu::write_linear(uint64_t la, const void* data, size_t len, GuestException& fault) {
  return m_core->write_linear(la, static_cast<const uint8_t*>(data), len, fault);
}

}  // namespace pvsim
