// core/cpu/exec_system.cpp — system instructions: control registers, descriptor tables,
// MSRs, CPUID, TSC, port I/O, HLT, CLI/STI, SWAPGS, VMCALL/VMMCALL.
//
// VM exits (what real KVM with EPT sees: CPUID, RDMSR/WRMSR, port I/O, HLT) are traced as
// kvm_exit at the start of the instruction, the specific event, then kvm_entry after the
// table's round-trip cost has been charged (opcodes.def cost 1200).
#include <fmt/format.h>

#include "core/cpu/core.h"
#include "core/cpu/handlers.h"

namespace pvsim::cpu {

void Core::trace_exit(VmxExitReason r, uint64_t info1, uint64_t cost_so_far, uint32_t intr_info) {
  const uint64_t at = cycles >= cost_so_far ? cycles - cost_so_far : 0;
  entry_pending = true;
  exit_event(tick_at(at), r, info1, intr_info);
}

void Core::enter_guest(uint64_t at_rip) {
  // vcpu_enter_guest services the requests before it injects events and enters
  // (Vcpu::set_entry_hook); an injection traced before this call has already run it.
  entry_requests();
  tracer.kvm_entry(now(), cfg.index, trace_rip(at_rip));
  entry_hook_ran = false;
}

void Core::trace_entry(uint64_t at_rip) {
  enter_guest(at_rip);
  entry_pending = false;
  io_rep_rip = ~0ull;
}

// ---------------- interrupt flag, HLT ----------------
// CLI/STI fault with #GP(0) when CPL > IOPL (SDM Vol. 2A "CLI", no PVI/VME in 64-bit mode).
bool CLI(Core& c, const Insn&) {
  if (c.cpl > c.iopl()) return c.gp(0);
  c.rf &= ~fl::IF;
  return true;
}
bool STI(Core& c, const Insn&) {
  if (c.cpl > c.iopl()) return c.gp(0);
  if (!(c.rf & fl::IF)) {
    c.rf |= fl::IF;
    // Interrupts stay blocked until after the next instruction (SDM Vol. 2B "STI").
    c.shadow_next = true;
    c.rearm_irq_check();
  }
  return true;
}
bool HLT(Core& c, const Insn& i) {
  if (c.cpl != 0) return c.gp(0);
  c.trace_exit(VmxExitReason::Hlt, 0, i.cost);
  c.halted = true;
  c.brk = true;
  return true;
}

// ---------------- CPUID, MSRs, TSC ----------------
bool CPUID(Core& c, const Insn& i) {
  const uint32_t leaf = static_cast<uint32_t>(c.gpr[0]), sub = static_cast<uint32_t>(c.gpr[1]);
  c.trace_exit(VmxExitReason::Cpuid, 0, i.cost);
  const CpuidResult r = c.env.cpuid(c.vcpu, leaf, sub);
  c.tracer.kvm_cpuid(c.now(), c.cfg.index, leaf, sub, r.eax, r.ebx, r.ecx, r.edx, r.found,
                     r.used_max_basic);
  c.gpr[0] = r.eax;
  c.gpr[3] = r.ebx;
  c.gpr[1] = r.ecx;
  c.gpr[2] = r.edx;
  c.trace_entry(c.next_rip);
  return true;
}

bool Core::inject_at_entry(const GuestException& e) {
  entry_requests();  // requests first, then the injection (vcpu_enter_guest order)
  tracer.kvm_inj_exception(now(), cfg.index, e.vector, e.has_error, e.error, false);
  trace_entry(rip);
  raise(e.vector, e.has_error, e.error, e.cr2);
  fault.injected = true;
  return false;
}

namespace {
// The hypervisor injects #GP(0) for an MSR access it refuses (kvm_msr ... exception and
// kvm_inj_exception, no pvsim_exception): resume at the instruction with the fault queued.
bool inject_msr_gp(Core& c) {
  return c.inject_at_entry(GuestException{kGP, true, 0, 0});
}
}  // namespace

bool RDMSR(Core& c, const Insn& i) {
  if (c.cpl != 0) return c.gp(0);  // checked by the CPU before any VM exit
  const uint32_t idx = static_cast<uint32_t>(c.gpr[1]);
  // Time-observing MSRs (Vcpu::set_time_gate): IA32_TSC, IA32_TSC_DEADLINE and the
  // x2APIC current-count register (MSR 0x839, SDM Vol. 3A §10.12.1.2 / Table 10-6).
  if ((idx == 0x10 || idx == 0x6e0 || idx == 0x839) && !c.may_observe_time()) return false;
  c.trace_exit(VmxExitReason::MsrRead, 0, i.cost);
  uint64_t v = 0;
  if (c.vcpu.msrs().read(c.vcpu, idx, v) != MsrStatus::Ok) {
    c.tracer.kvm_msr(c.now(), c.cfg.index, false, idx, 0, true);
    return inject_msr_gp(c);
  }
  c.tracer.kvm_msr(c.now(), c.cfg.index, false, idx, v, false);
  c.gpr[0] = v & 0xffffffff;
  c.gpr[2] = v >> 32;
  c.trace_entry(c.next_rip);
  return true;
}
bool WRMSR(Core& c, const Insn& i) {
  if (c.cpl != 0) return c.gp(0);
  const uint32_t idx = static_cast<uint32_t>(c.gpr[1]);
  const uint64_t v = (c.gpr[0] & 0xffffffff) | (c.gpr[2] << 32);
  c.trace_exit(VmxExitReason::MsrWrite, 0, i.cost);
  if (c.vcpu.msrs().write(c.vcpu, idx, v) != MsrStatus::Ok) {
    c.tracer.kvm_msr(c.now(), c.cfg.index, true, idx, v, true);
    return inject_msr_gp(c);
  }
  c.tracer.kvm_msr(c.now(), c.cfg.index, true, idx, v, false);
  c.trace_entry(c.next_rip);
  c.brk = true;  // an MSR write may change translation (EFER.NXE) or request work
  return true;
}
// RDTSC at CPL > 0 with CR4.TSD faults (SDM Vol. 2B "RDTSC"). Not a VM exit under KVM.
bool RDTSC(Core& c, const Insn&) {
  if ((c.cr4 & cr4::TSD) && c.cpl != 0) return c.gp(0);
  if (!c.may_observe_time()) return false;
  const uint64_t t = c.guest_tsc();
  c.gpr[0] = t & 0xffffffff;
  c.gpr[2] = t >> 32;
  return true;
}
bool RDTSCP(Core& c, const Insn& i) {
  if (!RDTSC(c, i)) return false;
  c.gpr[1] = c.tsc_aux & 0xffffffff;
  return true;
}
bool RDPID_Rq(Core& c, const Insn& i) {
  c.gpr[i.rm] = c.tsc_aux;
  return true;
}
bool SWAPGS(Core& c, const Insn&) {
  if (c.cpl != 0) return c.gp(0);
  std::swap(c.seg[5].base, c.kernel_gs_base);
  return true;
}
// SYSCALL / SYSRET (SDM Vol. 2B): flat segments from IA32_STAR, entry at IA32_LSTAR, RFLAGS
// masked by IA32_FMASK; only the 64-bit forms (SYSRET with REX.W back to 64-bit code).
namespace {
constexpr uint16_t kFlatCode64 = 0xa09b, kFlatData = 0xc093;  // VMX access-rights layout
}  // namespace
bool SYSCALL(Core& c, const Insn&) {
  if (!(c.efer & efer::SCE)) return c.ud();
  const uint16_t sel = static_cast<uint16_t>(c.star >> 32) & 0xfffc;
  c.gpr[1] = c.next_rip;
  c.gpr[11] = (c.flags() & fl::kDefined & ~fl::RF) | fl::Reserved1;
  c.set_flags_raw(c.rf & ~c.sfmask & ~fl::RF);
  c.seg[1] = SegmentCache{sel, 0, 0xffffffff, kFlatCode64};
  c.seg[2] = SegmentCache{static_cast<uint16_t>(sel + 8), 0, 0xffffffff, kFlatData};
  c.set_cpl(0);
  c.next_rip = c.lstar;
  c.brk = true;
  return true;
}
bool SYSRET(Core& c, const Insn& i) {
  if (!(c.efer & efer::SCE)) return c.ud();
  if (c.cpl != 0) return c.gp(0);
  if (!(i.pfx & P_REXW)) return c.ud();  // return to compatibility mode: not supported
  if (!is_canonical(c.gpr[1])) return c.gp(0);
  const uint16_t base = static_cast<uint16_t>(c.star >> 48);
  c.seg[1] = SegmentCache{static_cast<uint16_t>((base + 16) | 3), 0, 0xffffffff,
                          static_cast<uint16_t>(kFlatCode64 | (3u << 5))};
  c.seg[2] = SegmentCache{static_cast<uint16_t>((base + 8) | 3), 0, 0xffffffff,
                          static_cast<uint16_t>(kFlatData | (3u << 5))};
  c.set_cpl(3);
  c.set_flags_raw((c.gpr[11] & 0x3c7fd7) | fl::Reserved1);
  c.next_rip = c.gpr[1];
  c.brk = true;
  return true;
}

// VMCALL / VMMCALL, KVM's hypercall instructions (Vcpu::set_hypercall_handler,
// pvmsr/hypercalls.h). In VMX non-root operation VMCALL exits at every CPL, before any
// privilege check (SDM Vol. 3C §26.1.2); the other vendor's instruction raises #UD, which
// KVM intercepts unconditionally (vmx_update_exception_bitmap) and hands to its emulator
// (handle_exception_nmi -> handle_ud). The handler decides what follows.
namespace {
// VM-exit interruption information of a #UD exit: valid (bit 31), hardware exception
// (type 3, bits 10:8), vector 6 (SDM Vol. 3C §25.9.2).
constexpr uint32_t kUdIntrInfo = 0x80000000u | (3u << 8) | kUD;

bool hypercall_exit(Core& c, const Insn& i, HypercallInsn insn) {
  if (!c.hypercall) return c.ud();  // a bare vCPU: no hypervisor behind it
  if (insn == c.hypercall_native)
    c.trace_exit(VmxExitReason::Vmcall, 0, i.cost);
  else
    c.trace_exit(VmxExitReason::ExceptionNmi, 0, i.cost, kUdIntrInfo);
  const HypercallResult r = c.hypercall(c.vcpu, insn);
  if (c.stop != StopReason::None) return false;  // e.g. the rewrite met a page table outside RAM
  switch (r.action) {
    case HypercallAction::Done:
      c.trace_entry(c.next_rip);  // kvm_skip_emulated_instruction: the whole instruction
      return true;
    case HypercallAction::Retry:
      // em_hypercall leaves the emulated RIP on the rewritten instruction; the block holding
      // the old bytes is dead (the rewrite bumped the page's code generation).
      c.next_rip = c.rip;
      c.brk = true;
      c.trace_entry(c.rip);
      return true;
    case HypercallAction::Ud:
      return c.inject_at_entry(GuestException{kUD, false, 0, 0});
    case HypercallAction::Inject:
      return c.inject_at_entry(r.exception);
  }
  return c.inject_at_entry(GuestException{kUD, false, 0, 0});
}
}  // namespace

bool VMCALL(Core& c, const Insn& i) {
  return hypercall_exit(c, i, HypercallInsn::Vmcall);
}
bool VMMCALL(Core& c, const Insn& i) {
  return hypercall_exit(c, i, HypercallInsn::Vmmcall);
}

// ---------------- descriptor tables and task register ----------------
namespace {
// Outside 64-bit mode the image is 6 bytes: limit and a 32-bit base. SGDT/SIDT store all
// 32 bits whatever the operand size; LGDT/LIDT with a 16-bit operand size use 24 bits of
// it (SDM Vol. 2A "LGDT/LIDT", "SGDT", "SIDT").
bool store_table(Core& c, const Insn& i, const DescriptorTable& t) {
  const uint64_t la = c.ea(i);
  const unsigned bsz = (i.pfx & P_LEG) ? 4 : 8;
  if (!c.probe_write(la, 2 + bsz)) return false;
  return c.write(la, 2, t.limit) && c.write(la + 2, bsz, t.base);
}
bool load_table(Core& c, const Insn& i, DescriptorTable& t) {
  if (c.cpl != 0) return c.gp(0);
  const uint64_t la = c.ea(i);
  const unsigned bsz = (i.pfx & P_LEG) ? 4 : 8;
  uint64_t lim, base;
  if (!c.read(la, 2, lim) || !c.read(la + 2, bsz, base)) return false;
  if (i.pfx & P_LEG) {
    if (i.osz == 2) base &= 0xffffff;
  } else if (!is_canonical(base)) {
    return c.gp(0);
  }
  t.limit = static_cast<uint16_t>(lim);
  t.base = base;
  return true;
}
bool store_selector(Core& c, const Insn& i, uint16_t sel) {
  if (i.mod3()) {
    c.setr(i.rm, i.osz, i, sel);
    return true;
  }
  return c.write(c.ea(i), 2, sel);
}
}  // namespace

bool SGDT_Ms(Core& c, const Insn& i) {
  return store_table(c, i, c.gdtr);
}
bool SIDT_Ms(Core& c, const Insn& i) {
  return store_table(c, i, c.idtr);
}
bool LGDT_Ms(Core& c, const Insn& i) {
  return load_table(c, i, c.gdtr);
}
bool LIDT_Ms(Core& c, const Insn& i) {
  return load_table(c, i, c.idtr);
}
// SLDT, STR, LLDT and LTR are #UD in real-address mode (SDM Vol. 2B, each "Real-Address
// Mode Exceptions").
bool SLDT_Ew(Core& c, const Insn& i) {
  if (c.real_mode()) return c.ud();
  return store_selector(c, i, c.ldtr.selector);
}
bool STR_Ew(Core& c, const Insn& i) {
  if (c.real_mode()) return c.ud();
  return store_selector(c, i, c.tr.selector);
}

// LLDT: a null selector disables the LDT; otherwise an LDT descriptor (type 2) from the GDT.
bool LLDT_Ew(Core& c, const Insn& i) {
  if (c.real_mode()) return c.ud();
  if (c.cpl != 0) return c.gp(0);
  uint64_t v;
  if (!c.read_E(i, 2, v)) return false;
  const uint16_t sel = static_cast<uint16_t>(v);
  if ((sel & 0xfffc) == 0) {
    c.ldtr = SegmentCache{sel, 0, 0, 0};
    return true;
  }
  uint64_t lo, hi;
  if (!c.load_descriptor(sel, lo, 0, &hi)) return false;
  if ((lo & (1ull << 44)) || ((lo >> 40) & 0xf) != 2) return c.gp(sel & 0xfffc);
  if (!(lo & (1ull << 47))) return c.raise(kNP, true, sel & 0xfffc);
  SegmentCache s = Core::cache_from_descriptor(sel, lo);
  s.base |= (hi & 0xffffffff) << 32;
  c.ldtr = s;
  return true;
}

// LTR: the descriptor must be an available 64-bit TSS; it is marked busy in the GDT
// (SDM Vol. 2A "LTR").
bool LTR_Ew(Core& c, const Insn& i) {
  if (c.real_mode()) return c.ud();
  if (c.cpl != 0) return c.gp(0);
  uint64_t v;
  if (!c.read_E(i, 2, v)) return false;
  const uint16_t sel = static_cast<uint16_t>(v);
  if ((sel & 0xfffc) == 0) return c.gp(0);
  uint64_t lo, hi;
  if (!c.load_descriptor(sel, lo, 0, &hi)) return false;
  if ((lo & (1ull << 44)) || ((lo >> 40) & 0xf) != 9) return c.gp(sel & 0xfffc);
  if (!(lo & (1ull << 47))) return c.raise(kNP, true, sel & 0xfffc);
  lo |= 2ull << 40;  // type 9 -> 11 (busy)
  if (!c.write_sys(c.gdtr.base + (sel & 0xfff8), 8, lo)) return false;
  SegmentCache s = Core::cache_from_descriptor(sel, lo);
  s.base |= (hi & 0xffffffff) << 32;
  c.tr = s;
  return true;
}

// ---------------- control registers (SDM Vol. 3A §2.5, Vol. 2B "MOV—Move to/from CR") ----
bool MOV_RdCd(Core& c, const Insn& i) {
  if (c.cpl != 0) return c.gp(0);
  uint64_t v;
  switch (i.reg) {
    case 0:
      v = c.cr0;
      break;
    case 2:
      v = c.cr2;
      break;
    case 3:
      v = c.cr3;
      break;
    case 4:
      v = c.cr4;
      break;
    case 8:
      v = c.get_cr8();  // the LAPIC's TPR[7:4] when the platform installed hooks
      break;
    default:
      return c.ud();
  }
  // Outside 64-bit mode the operand is 32 bits whatever the prefixes (SDM Vol. 2B "MOV—Move
  // to/from Control Registers"); the upper half of the register is undefined: zero here.
  c.gpr[i.rm] = (i.pfx & P_LEG) ? v & 0xffffffff : v;
  return true;
}

bool MOV_CdRd(Core& c, const Insn& i) {
  if (c.cpl != 0) return c.gp(0);
  const uint64_t v = (i.pfx & P_LEG) ? c.gpr[i.rm] & 0xffffffff : c.gpr[i.rm];
  switch (i.reg) {
    case 0: {
      if (v >> 32) return c.gp(0);  // bits 63:32 reserved
      if ((v & cr0::PG) && !(v & cr0::PE)) return c.gp(0);
      if ((v & cr0::NW) && !(v & cr0::CD)) return c.gp(0);
      // IA-32e mode is entered and left through CR0.PG (SDM Vol. 3A §9.8.5, KVM's
      // kvm_set_cr0): setting PG with EFER.LME needs CR4.PAE and CS.L = 0 and sets EFER.LMA
      // (the processor is then in compatibility mode until a far transfer loads an L=1 CS);
      // clearing PG is allowed only from compatibility mode and clears LMA.
      const bool pg_on = (v & cr0::PG) && !(c.cr0 & cr0::PG);
      const bool pg_off = !(v & cr0::PG) && (c.cr0 & cr0::PG);
      uint64_t new_efer = c.efer;
      if (pg_on && (c.efer & efer::LME)) {
        if (!(c.cr4 & cr4::PAE) || (c.seg[1].attrs & (1u << 13))) return c.gp(0);
        new_efer |= efer::LMA;
      }
      if (pg_off && (c.efer & efer::LMA)) {
        if (c.cmode == kMode64) return c.gp(0);
        new_efer &= ~efer::LMA;
      }
      const uint64_t nv = v | cr0::ET;  // ET is hardwired to 1
      if ((nv ^ c.cr0) & (cr0::PG | cr0::WP | cr0::PE)) c.tlb_flush_all();
      c.cr0 = nv;
      c.efer = new_efer;
      c.update_ac();
      c.update_mode();
      // KVM's kvm_post_set_cr0 reacts to a CR0.PG change (async PF: Vcpu::set_paging_hook).
      if ((pg_on || pg_off) && c.paging_hook) c.paging_hook(c.vcpu, pg_on);
      return true;
    }
    case 2:
      c.cr2 = v;
      return true;
    case 3:
      if (v & ~(kPhysAddrMask | 0x18))
        return c.gp(0);  // PWT/PCD allowed, bits above MAXPHYADDR not
      c.cr3 = v;
      c.tlb_flush_nonglobal();  // global pages survive (SDM Vol. 3A §4.10.4.1)
      return true;
    case 4:
      if (v & ~cr4::kSupported) return c.gp(0);
      if (!(v & cr4::PAE) && (c.efer & efer::LMA)) return c.gp(0);
      if ((v ^ c.cr4) & (cr4::PGE | cr4::PAE | cr4::PSE)) c.tlb_flush_all();
      c.cr4 = v;
      return true;
    case 8:
      if (v & ~0xfull) return c.gp(0);  // bits 63:4 reserved (SDM Vol. 3A §2.5)
      c.put_cr8(v);
      return true;
    default:
      return c.ud();
  }
}

bool INVLPG_M(Core& c, const Insn& i) {
  if (c.cpl != 0) return c.gp(0);
  c.tlb_flush_page(c.ea(i));  // also global entries
  return true;
}

// ---------------- port I/O ----------------
// CPL > IOPL: the TSS I/O permission bitmap decides (SDM Vol. 1 §19.5.2). Every bit for
// port..port+size-1 must be clear; bytes beyond the TSS limit count as set.
bool Core::io_permitted(uint16_t port, unsigned size) {
  if (cpl <= iopl()) return true;
  if (tr.limit < 0x67) return gp(0);
  uint64_t base;
  if (!read_sys(tr.base + 0x66, 2, base)) return false;
  const uint64_t off = base + port / 8;
  if (off + 1 > tr.limit) return gp(0);
  uint64_t bits;
  if (!read_sys(tr.base + off, 2, bits)) return false;
  const uint64_t mask = ((1ull << size) - 1) << (port & 7);
  if (bits & mask) return gp(0);
  return true;
}

bool Core::port_in(const Insn& i, uint16_t port, unsigned size, uint32_t& v, uint64_t qual) {
  if (!entry_pending) trace_exit(VmxExitReason::IoInstruction, qual, i.cost);
  v = 0;
  if (env.pio_read(vcpu, port, size, v) != IoStatus::Ok)
    return stop_with(
        StopReason::IoError,
        fmt::format("unhandled port read: in port {:#x}, size {}, rip {:#x}", port, size, rip));
  v &= static_cast<uint32_t>(size_mask(size));
  tracer.kvm_pio(now(), cfg.index, false, port, size, 1, v);
  return true;
}

bool Core::port_out(const Insn& i, uint16_t port, unsigned size, uint32_t v, uint64_t qual) {
  if (!entry_pending) trace_exit(VmxExitReason::IoInstruction, qual, i.cost);
  v &= static_cast<uint32_t>(size_mask(size));
  tracer.kvm_pio(now(), cfg.index, true, port, size, 1, v);
  if (env.pio_write(vcpu, port, size, v) != IoStatus::Ok)
    return stop_with(
        StopReason::IoError,
        fmt::format("unhandled port write: out port {:#x}, size {}, value {:#x}, rip {:#x}", port,
                    size, v, rip));
  return true;
}

namespace {
// Exit qualification for I/O instructions (SDM Vol. 3C Table 28-5).
inline uint64_t io_qual(uint16_t port, unsigned size, bool in, bool str, bool rep, bool imm) {
  return (size - 1) | (in ? 8u : 0u) | (str ? 16u : 0u) | (rep ? 32u : 0u) | (imm ? 64u : 0u) |
         (static_cast<uint64_t>(port) << 16);
}
inline unsigned io_size(const Insn& i) {
  return i.osz > 4 ? 4 : i.osz;
}

bool do_in(Core& c, const Insn& i, uint16_t port, bool imm) {
  const unsigned s = io_size(i);
  if (!c.io_permitted(port, s)) return false;
  uint32_t v;
  if (!c.port_in(i, port, s, v, io_qual(port, s, true, false, false, imm))) return false;
  c.setr(0, s, i, v);
  c.trace_entry(c.next_rip);
  return true;
}
bool do_out(Core& c, const Insn& i, uint16_t port, bool imm) {
  const unsigned s = io_size(i);
  if (!c.io_permitted(port, s)) return false;
  if (!c.port_out(i, port, s, static_cast<uint32_t>(c.gpr[0]),
                  io_qual(port, s, false, false, false, imm)))
    return false;
  // A device that ends the VM or this vCPU (exit ports) means no re-entry.
  if (c.requested == StopReason::None) c.trace_entry(c.next_rip);
  return true;
}

// INS/OUTS, with REP: one exit for the instruction, one kvm_pio per element; each element is
// one instruction (budget, instructions()) and costs kStringElementCycles on top of the
// exit round trip. A REP stopped between elements (Core::rep_next) by the budget or a
// deadline keeps its exit open: the vCPU has not re-entered the guest (KVM is still
// emulating the instruction), so the next run() goes on with the same exit, without a new
// kvm_exit or a second round trip; where runs end does not show. An event delivered there
// ends the exit (deliver_external traces kvm_entry at the REP as it injects the event), and
// the REP then resumes with a new exit, as KVM injects events only when it enters the
// guest (core/README.md "REP string instructions").
bool do_string_io(Core& c, const Insn& i, bool in) {
  const unsigned s = io_size(i);
  const uint16_t port = static_cast<uint16_t>(c.gpr[2]);
  if (!c.io_permitted(port, s)) return false;
  const bool rep = i.pfx & (P_REP | P_REPNE);
  if (rep && c.entry_pending && c.io_rep_rip == c.rip)
    c.cycles -= i.cost;  // the open exit's round trip was charged when it began
  c.io_rep_rip = ~0ull;
  // An element whose memory access fails once the exit is open (its port access done):
  // KVM's emulator met the fault on the guest buffer, so the hypervisor injects it
  // (kvm_inj_exception, no pvsim_exception) and enters the guest at the instruction, which
  // keeps the elements it finished. A retried MMIO read (Core::abandon) keeps the exit
  // open; the run loop then un-charges the instruction's cost, which this offsets, because
  // the exit round trip did happen.
  auto element_failed = [&]() {
    if (!c.entry_pending) return false;  // no exit yet: an ordinary guest fault
    if (c.abandoned) {
      c.io_rep_rip = c.rip;
      c.cycles += i.cost;
    } else if (c.fault_pending && c.stop == StopReason::None) {
      c.tracer.kvm_inj_exception(c.now(), c.cfg.index, c.fault.vector, c.fault.has_error,
                                 c.fault.error, false);
      c.trace_entry(c.rip);
      c.fault.injected = true;
    }
    return false;
  };
  auto av = [&](unsigned r) { return c.addr_reg(i, r); };
  auto as = [&](unsigned r, uint64_t v) { c.set_addr_reg(i, r, v); };
  uint64_t n = rep ? av(1) : 1;
  const uint64_t n0 = n;
  // A failure after elements ran leaves RIP on a REP that resumes between elements
  // (Core::rep_resume_at), as in exec_move.cpp's string_op.
  auto fail = [&](bool r) {
    if (n != n0) c.rep_resume_at(c.insns);
    return r;
  };
  const int64_t step = (c.rf & fl::DF) ? -static_cast<int64_t>(s) : static_cast<int64_t>(s);
  const uint64_t qual = io_qual(port, s, in, true, rep, false);
  while (n != 0) {
    if (in) {
      uint32_t v;
      if (!c.port_in(i, port, s, v, qual)) return fail(false);
      if (!c.write(c.dst_linear(i, av(7)), s, v)) return fail(element_failed());
      as(7, av(7) + step);
    } else {
      uint64_t v;
      if (!c.read(c.src_linear(i, av(6)), s, v)) return fail(element_failed());
      if (!c.port_out(i, port, s, static_cast<uint32_t>(v), qual)) return fail(false);
      as(6, av(6) + step);
    }
    c.cycles += kStringElementCycles;
    if (!rep) break;
    --n;
    as(1, n);
    if (n == 0) break;
    if (!c.rep_next(0)) {
      // Stopped between elements, RIP on the REP: the exit stays open (a stop request
      // ends the VM instead).
      if (c.requested == StopReason::None) c.io_rep_rip = c.rip;
      return true;
    }
  }
  if (c.entry_pending && c.requested == StopReason::None) c.trace_entry(c.next_rip);
  return true;
}
}  // namespace

bool IN_ALIb(Core& c, const Insn& i) {
  return do_in(c, i, static_cast<uint16_t>(i.imm & 0xff), true);
}
bool IN_eAXIb(Core& c, const Insn& i) {
  return do_in(c, i, static_cast<uint16_t>(i.imm & 0xff), true);
}
bool OUT_IbAL(Core& c, const Insn& i) {
  return do_out(c, i, static_cast<uint16_t>(i.imm & 0xff), true);
}
bool OUT_IbeAX(Core& c, const Insn& i) {
  return do_out(c, i, static_cast<uint16_t>(i.imm & 0xff), true);
}
bool IN_ALDX(Core& c, const Insn& i) {
  return do_in(c, i, static_cast<uint16_t>(c.gpr[2]), false);
}
bool IN_eAXDX(Core& c, const Insn& i) {
  return do_in(c, i, static_cast<uint16_t>(c.gpr[2]), false);
}
bool OUT_DXAL(Core& c, const Insn& i) {
  return do_out(c, i, static_cast<uint16_t>(c.gpr[2]), false);
}
bool OUT_DXeAX(Core& c, const Insn& i) {
  return do_out(c, i, static_cast<uint16_t>(c.gpr[2]), false);
}
bool INSB(Core& c, const Insn& i) {
  return do_string_io(c, i, true);
}
bool INSv(Core& c, const Insn& i) {
  return do_string_io(c, i, true);
}
bool OUTSB(Core& c, const Insn& i) {
  return do_string_io(c, i, false);
}
bool OUTSv(Core& c, const Insn& i) {
  return do_string_io(c, i, false);
}

}  // namespace pvsim::cpu
