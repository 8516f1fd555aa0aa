// core/cpu/exceptions.cpp — event delivery through the 64-bit IDT, #DF / triple fault,
// and the privilege-changing returns and segment loads that share its descriptor checks.
//
// SDM Vol. 3A §6.14 (64-bit mode exception and interrupt handling), §6.15 (exception
// reference, Table 6-5 "Conditions for Generating a Double Fault"), §5.8 / §5.10 (privilege
// checks), Vol. 2A "IRET" and "RET" pseudo-code, Vol. 2B "MOV"/"POP" segment-register loads.
#include <fmt/format.h>

#include "core/cpu/core.h"

namespace pvsim::cpu {

namespace {

// Descriptor access-rights byte fields (lo >> 40).
constexpr uint64_t kDescS = 1ull << 44, kDescP = 1ull << 47, kDescL = 1ull << 53,
                   kDescDB = 1ull << 54;
inline unsigned desc_type(uint64_t lo) {
  return (lo >> 40) & 0xf;
}
inline unsigned desc_dpl(uint64_t lo) {
  return (lo >> 45) & 3;
}
inline bool desc_is_code(uint64_t lo) {
  return (lo & kDescS) && (desc_type(lo) & 8);
}
inline bool desc_is_data(uint64_t lo) {
  return (lo & kDescS) && !(desc_type(lo) & 8);
}
inline bool code_conforming(uint64_t lo) {
  return desc_type(lo) & 4;
}
inline bool code_readable(uint64_t lo) {
  return desc_type(lo) & 2;
}
inline bool data_writable(uint64_t lo) {
  return desc_type(lo) & 2;
}

const char* vector_name(uint8_t v) {
  static const char* const names[32] = {"#DE", "#DB",  "NMI", "#BP", "#OF", "#BR", "#UD", "#NM",
                                        "#DF", "#CSO", "#TS", "#NP", "#SS", "#GP", "#PF", "#15",
                                        "#MF", "#AC",  "#MC", "#XM", "#VE", "#CP"};
  return v < 22 ? names[v] : "INT";
}

}  // namespace

SegmentCache Core::cache_from_descriptor(uint16_t sel, uint64_t lo) {
  SegmentCache c;
  c.selector = sel;
  c.base = ((lo >> 16) & 0xffffff) | (((lo >> 56) & 0xff) << 24);
  uint32_t limit = static_cast<uint32_t>((lo & 0xffff) | ((lo >> 32) & 0xf0000));
  if (lo & (1ull << 55)) limit = (limit << 12) | 0xfff;  // G: 4 KiB granularity
  c.limit = limit;
  c.attrs = static_cast<uint16_t>(((lo >> 40) & 0xff) | (((lo >> 52) & 0xf) << 12));
  return c;
}

// Reads the 8-byte descriptor for `sel` from the GDT (16 bytes when `hi` is given: system
// descriptors in IA-32e mode). Beyond the limit, or an LDT selector (no LDT support
// beyond a null LDTR), is #GP(selector) with EXT as given.
bool Core::load_descriptor(uint16_t sel, uint64_t& lo, uint32_t ext, uint64_t* hi) {
  const uint32_t err = (sel & 0xfffc) | ext;
  if (sel & 4) return gp(err);  // TI=1: LDT — only a null LDT is supported
  const uint64_t off = sel & 0xfff8;
  if (off + (hi ? 15 : 7) > gdtr.limit) return gp(err);
  if (!read_sys(gdtr.base + off, 8, lo)) return false;
  if (hi && !read_sys(gdtr.base + off + 8, 8, *hi)) return false;
  return true;
}

bool Core::deliver(uint8_t vector, EventKind kind, bool has_err, uint32_t err, uint64_t ret_rip) {
  // Implicit accesses from here on are event delivery: a host fault on one of them is
  // handled synchronously (Vcpu::EptFault::event_delivery).
  struct DeliveryScope {
    bool& flag;
    bool saved;
    explicit DeliveryScope(bool& f) : flag(f), saved(f) { flag = true; }
    ~DeliveryScope() { flag = saved; }
  } scope(in_delivery);
  // Outside IA-32e mode: the real-mode interrupt vector table, or (not modelled) a 32-bit
  // protected-mode IDT. In compatibility mode (EFER.LMA = 1) delivery is the 64-bit one.
  if (!(efer & efer::LMA)) [[unlikely]] {
    if (real_mode()) return deliver_real(vector, kind, ret_rip);
    return deliver_protected(vector, kind, has_err, err, ret_rip);
  }
  // EXT (bit 0 of error codes raised during delivery): set unless the event is INT n/INT3.
  const uint32_t ext = kind == EventKind::SoftInt ? 0 : 1;
  const uint32_t idt_err = vector * 8u + 2u + ext;  // IDT flag (bit 1) set
  if (vector * 16ull + 15 > idtr.limit) return gp(idt_err);
  uint64_t lo, hi;
  if (!read_sys(idtr.base + vector * 16ull, 8, lo) ||
      !read_sys(idtr.base + vector * 16ull + 8, 8, hi))
    return false;
  const unsigned type = (lo >> 40) & 0xf;
  if (type != 0xe && type != 0xf) return gp(idt_err);  // only 64-bit interrupt/trap gates
  // Software interrupts check the gate DPL against CPL (SDM §6.12.1.1).
  if (kind == EventKind::SoftInt && ((lo >> 45) & 3) < cpl) return gp(idt_err);
  if (!(lo & kDescP)) return raise(kNP, true, idt_err);
  const uint16_t sel = static_cast<uint16_t>(lo >> 16);
  const uint64_t target = (lo & 0xffff) | (((lo >> 48) & 0xffff) << 16) | ((hi & 0xffffffff) << 32);
  const unsigned ist = (lo >> 32) & 7;
  if ((sel & 0xfffc) == 0) return gp(ext);
  uint64_t cd;
  if (!load_descriptor(sel, cd, ext)) return false;
  const uint32_t sel_err = (sel & 0xfffc) | ext;
  if (!desc_is_code(cd) || !(cd & kDescL) || (cd & kDescDB) || desc_dpl(cd) > cpl)
    return gp(sel_err);
  if (!(cd & kDescP)) return raise(kNP, true, sel_err);
  const unsigned new_cpl = code_conforming(cd) ? cpl : desc_dpl(cd);
  if (!is_canonical(target)) return gp(ext);

  // Stack: IST if the gate names one, else TSS.RSPn on a privilege change (SDM §6.14.4/5).
  uint64_t rsp = gpr[4];
  if (ist != 0 || new_cpl < cpl) {
    const uint64_t off = ist ? 0x24 + (ist - 1) * 8ull : 0x4 + new_cpl * 8ull;
    if (off + 7 > tr.limit) return raise(kTS, true, (tr.selector & 0xfffc) | ext);
    if (!read_sys(tr.base + off, 8, rsp)) return false;
    if (!is_canonical(rsp)) return raise(kSS, true, ext);
  }
  rsp &= ~0xfull;  // 64-bit mode aligns the new stack to 16 bytes
  uint64_t frame[6];
  unsigned n = 0;
  frame[n++] = seg[2].selector;  // SS
  frame[n++] = gpr[4];           // RSP
  // RF in the image (SDM Vol. 3B §17.3.1.1): 1 for an event taken between two elements of a
  // REP string instruction (Core::rep_resume_at), so that the IRET resuming it does not
  // stop at a breakpoint on it again (core/README.md "Breakpoints"); otherwise the current
  // RF. Hardware also pushes RF = 1 for every other fault-class exception; pvsim does not
  // (it has no guest instruction breakpoints, the only thing RF suppresses, and a fault's
  // instruction that runs again counts as reached again).
  const bool mid_rep = ret_rip == rip && insns == rep_insns && rip == rep_rip;
  frame[n++] = (flags() & fl::kDefined) | fl::Reserved1 | (mid_rep ? fl::RF : 0);
  frame[n++] = seg[1].selector;  // CS
  frame[n++] = cmode == kMode64 ? ret_rip : eip_of(ret_rip);  // compatibility mode: an EIP
  if (has_err) frame[n++] = err;
  // Pushes use the privilege of the handler (supervisor for DPL 0-2).
  for (unsigned k = 0; k < n; ++k) {
    const uint64_t a = rsp - 8 * (k + 1);
    bool ok;
    if (new_cpl == 3) {
      const unsigned saved = cpl;
      cpl = 3;
      ok = access_slow(a, 8, &frame[k], Acc::Write, false);
      cpl = saved;
    } else {
      ok = write_sys(a, 8, frame[k]);
    }
    if (!ok) {
      if (fault_pending && fault.vector == kGP && !is_canonical(a))
        fault = Fault{kSS, true, ext, 0, false};
      return false;
    }
  }
  // Commit.
  if (new_cpl != cpl) {
    // IA-32e: SS is loaded with a null selector whose RPL is the new CPL (SDM §6.14.4).
    seg[2] = SegmentCache{static_cast<uint16_t>(new_cpl), 0, 0, 0};
  }
  SegmentCache cs = cache_from_descriptor(static_cast<uint16_t>((sel & 0xfffc) | new_cpl), cd);
  seg[1] = cs;
  update_mode();  // from compatibility mode into the 64-bit handler
  set_cpl(new_cpl);
  gpr[4] = rsp - 8 * n;
  rf &= ~(fl::TF | fl::NT | fl::RF | fl::VM);
  if (type == 0xe) rf &= ~fl::IF;  // interrupt gate; trap gates leave IF alone
  next_rip = target;
  brk = true;
  // The handler's first instruction is a new boundary for breakpoints even at the same
  // instruction count (nothing retired): forget the marks of the interrupted one.
  bp_seen_insns = rep_insns = mid_insns = ~0ull;
  return true;
}

void Core::deliver_fault() {
  // The chain is kept for the triple-fault report: each event we tried to deliver and
  // the fault its delivery raised.
  std::string chain;
  auto describe = [](const Fault& f) {
    return f.has_error ? fmt::format("{}({:#x})", vector_name(f.vector), f.error)
                       : std::string(vector_name(f.vector));
  };
  Fault cur = fault;
  fault_pending = false;
  for (;;) {
    if (cur.vector == kPF) cr2 = cur.cr2;  // CR2 is loaded when the #PF is recognised
    if (!cur.injected)
      tracer.pvsim_exception(now(), cfg.index, cur.vector, cur.has_error, cur.error, trace_rip(rip), cr2);
    cycles += kExceptionCycles;
    if (deliver(cur.vector, EventKind::Exception, cur.has_error, cur.error, rip)) {
      rip = next_rip;
      return;
    }
    if (stop != StopReason::None) return;
    Fault next = fault;
    fault_pending = false;
    if (next.vector == kPF) cr2 = next.cr2;  // even when it turns into #DF
    chain += fmt::format("{}{} at rip {:#x} (delivery raised {})", chain.empty() ? "" : " -> ",
                         describe(cur), rip, describe(next));
    if (cur.vector == kDF) {
      // A fault while delivering #DF: triple fault, the processor shuts down (SDM §6.15
      // "Interrupt 8"); KVM reports KVM_EXIT_SHUTDOWN.
      exit_event(now(), VmxExitReason::TripleFault, 0, 0);
      std::string d = "triple fault: " + chain;
      if (idtr.limit == 0 && idtr.base == 0) d += "; IDTR is {0,0} (no IDT loaded)";
      dead = true;
      stop_with(StopReason::Shutdown, std::move(d));
      return;
    }
    // Table 6-5: contributory+contributory or #PF+(contributory|#PF) give #DF; everything
    // else is handled serially (the new fault is delivered instead).
    cur = makes_double_fault(cur.vector, next.vector) ? Fault{kDF, true, 0, 0, false} : next;
  }
}


// Real-address mode (SDM Vol. 3A §20.1.4 "Interrupt and Exception Handling"): the vector
// table at IDTR.base holds 4-byte IP:CS pointers; FLAGS, CS and IP are pushed (16 bits
// each, on the stack SS.B selects), IF, TF and AC are cleared, and nothing else is checked
// but the table limit. No error code is pushed.
bool Core::deliver_real(uint8_t vector, EventKind kind, uint64_t ret_rip) {
  (void)kind;
  const uint64_t off = vector * 4ull;
  if (off + 3 > idtr.limit) return gp(0);
  uint64_t ent;
  if (!read_sys((idtr.base + off) & 0xffffffffull, 4, ent)) return false;
  const uint64_t old_sp = gpr[4];
  const uint64_t image = flags() & 0xffff;  // RF is bit 16: not in a 16-bit image
  if (!push(image, 2) || !push(seg[1].selector, 2) || !push(eip_of(ret_rip) & 0xffff, 2)) {
    gpr[4] = old_sp;
    return false;
  }
  rf &= ~(fl::IF | fl::TF | fl::AC | fl::RF);
  update_ac();
  set_cs_real(static_cast<uint16_t>(ent >> 16));
  next_rip = (seg[1].base + (ent & 0xffff)) & 0xffffffffull;
  brk = true;
  bp_seen_insns = rep_insns = mid_insns = ~0ull;
  return true;
}

// Protected mode without IA-32e (SDM Vol. 3A §6.11-§6.12): 8-byte IDT gates. 32-bit (type
// 0xE/0xF) and 16-bit (6/7) interrupt and trap gates to a handler at the current privilege
// level: EFLAGS, CS, EIP and the error code are pushed on the current stack at the gate's
// size. Task gates and a handler at a more privileged level (a stack switch through the
// 32-bit TSS) stop the run with `unsupported` (core/README.md "Legacy modes").
bool Core::deliver_protected(uint8_t vector, EventKind kind, bool has_err, uint32_t err, uint64_t ret_rip) {
  const uint32_t ext = kind == EventKind::SoftInt ? 0 : 1;
  const uint32_t idt_err = vector * 8u + 2u + ext;
  if (vector * 8ull + 7 > idtr.limit) return gp(idt_err);
  uint64_t lo;
  if (!read_sys((idtr.base + vector * 8ull) & 0xffffffffull, 8, lo)) return false;
  const unsigned type = (lo >> 40) & 0x1f;  // S (bit 4) must be 0: a system descriptor
  const bool gate32 = type == 0xe || type == 0xf;
  const bool gate16 = type == 0x6 || type == 0x7;
  if (type == 0x5)
    return stop_with(StopReason::Unsupported,
                     fmt::format("vCPU {}: vector {:#x} through a task gate (rip {:#x}): task switches "
                                 "are not supported",
                                 cfg.index, vector, rip));
  if (!gate32 && !gate16) return gp(idt_err);
  if (kind == EventKind::SoftInt && ((lo >> 45) & 3) < cpl) return gp(idt_err);
  if (!(lo & kDescP)) return raise(kNP, true, idt_err);
  const uint16_t sel = static_cast<uint16_t>(lo >> 16);
  const uint64_t offset = gate32 ? (lo & 0xffff) | ((lo >> 32) & 0xffff0000ull) : lo & 0xffff;
  if ((sel & 0xfffc) == 0) return gp(ext);
  uint64_t cd;
  if (!load_descriptor(sel, cd, ext)) return false;
  const uint32_t sel_err = (sel & 0xfffc) | ext;
  if (!desc_is_code(cd) || desc_dpl(cd) > cpl) return gp(sel_err);
  if (!(cd & kDescP)) return raise(kNP, true, sel_err);
  if (!code_conforming(cd) && desc_dpl(cd) < cpl)
    return stop_with(StopReason::Unsupported,
                     fmt::format("vCPU {}: vector {:#x} to a handler at privilege level {} from {} in "
                                 "32-bit protected mode (rip {:#x}): stack switches through a 32-bit TSS "
                                 "are not supported",
                                 cfg.index, vector, desc_dpl(cd), cpl, rip));
  const SegmentCache cs = cache_from_descriptor(static_cast<uint16_t>((sel & 0xfffc) | cpl), cd);
  if (offset > cs.limit) return gp(ext);
  const unsigned sz = gate32 ? 4 : 2;
  const uint64_t old_sp = gpr[4];
  const uint64_t image = flags() & (sz == 4 ? fl::kDefined : 0xffff);
  if (!push(image, sz) || !push(seg[1].selector, sz) || !push(eip_of(ret_rip), sz) ||
      (has_err && !push(err, sz))) {
    gpr[4] = old_sp;
    return false;
  }
  rf &= ~(fl::TF | fl::NT | fl::RF | fl::VM);
  if (!(type & 1)) rf &= ~fl::IF;  // interrupt gates; trap gates leave IF alone
  seg[1] = cs;
  update_mode();
  next_rip = (cs.base + offset) & 0xffffffffull;
  brk = true;
  bp_seen_insns = rep_insns = mid_insns = ~0ull;
  return true;
}

// JMP / CALL far outside 64-bit mode (SDM Vol. 2A "JMP", "CALL"): in real mode CS takes the
// selector and selector * 16 as base; in protected or compatibility mode a code descriptor
// from the GDT (no call gates or task switches), whose L bit under EFER.LMA enters 64-bit
// mode (the hop kvm-unit-tests' cstart64 makes with `ljmp $8, $start64`). A CALL pushes
// CS and the return EIP with the operand size first.
bool Core::far_jump_legacy(uint16_t sel, uint64_t offset, unsigned osz, bool call) {
  const uint64_t m = osz == 2 ? 0xffffull : 0xffffffffull;
  offset &= m;
  const uint64_t old_sp = gpr[4];
  auto push_return = [&]() {
    if (!call) return true;
    if (!push(seg[1].selector, osz) || !push(eip_of(next_rip) & m, osz)) {
      gpr[4] = old_sp;
      return false;
    }
    return true;
  };
  if (real_mode()) {
    if (offset > seg[1].limit) return gp(0);
    if (!push_return()) return false;
    set_cs_real(sel);
    next_rip = (seg[1].base + offset) & 0xffffffffull;
    brk = true;
    return true;
  }
  uint64_t cd;
  if (!far_target(sel, cd)) return false;
  const bool to64 = (efer & efer::LMA) && (cd & kDescL);
  SegmentCache cs = cache_from_descriptor(static_cast<uint16_t>((sel & 0xfffc) | cpl), cd);
  if (!to64 && offset > cs.limit) return gp(0);
  if (!push_return()) return false;
  seg[1] = cs;
  update_mode();
  next_rip = to64 ? offset : (cs.base + offset) & 0xffffffffull;
  brk = true;
  return true;
}

// RETF and IRET outside 64-bit mode, to the same privilege level (SDM Vol. 2A "RET",
// "IRET": real-address mode, and protected-mode returns to the same level; a far return
// to a 64-bit code segment from compatibility mode, as kvm-unit-tests' AP start-up does
// with `retf`, enters 64-bit mode).
bool Core::far_return_legacy(unsigned osz, bool is_iret, uint16_t pop_extra) {
  const uint64_t old_sp = gpr[4];
  auto undo = [&]() {
    gpr[4] = old_sp;
    return false;
  };
  uint64_t ip, cs_sel, fl_img = 0;
  if (!pop(osz, ip) || !pop(osz, cs_sel)) return undo();
  if (is_iret && !pop(osz, fl_img)) return undo();
  cs_sel &= 0xffff;
  if (real_mode()) {
    // The new IP is checked against the CS limit, which real mode leaves in place.
    if (ip > seg[1].limit) return undo(), gp(0);
    if (!is_iret) set_sp(sp_value() + pop_extra);
    if (is_iret) {
      // Real-address mode IRET (SDM Vol. 2A "IRET" pseudo-code): a 16-bit IRET replaces
      // FLAGS; IRETD keeps VM, VIF and VIP and takes the rest of the image's defined bits.
      const uint64_t cur = flags();
      const uint64_t nf = osz == 2 ? (cur & ~0xffffull) | (fl_img & 0xffff)
                                   : (fl_img & 0x257fd5ull) | (cur & 0x1a0000ull);
      set_flags_raw(nf);
    }
    set_cs_real(static_cast<uint16_t>(cs_sel));
    next_rip = (seg[1].base + ip) & 0xffffffffull;
    brk = true;
    return true;
  }
  if (is_iret && (rf & fl::NT)) {
    undo();
    return stop_with(StopReason::Unsupported,
                     fmt::format("vCPU {}: IRET with NT=1 (task return) at rip {:#x} is not supported",
                                 cfg.index, rip));
  }
  const unsigned rpl = cs_sel & 3;
  if ((cs_sel & 0xfffc) == 0) return undo(), gp(0);
  if (rpl != cpl) {
    undo();
    return stop_with(StopReason::Unsupported,
                     fmt::format("vCPU {}: a far return or IRET to privilege level {} from {} outside "
                                 "64-bit mode (rip {:#x}) is not supported",
                                 cfg.index, rpl, cpl, rip));
  }
  uint64_t cd;
  if (!load_descriptor(static_cast<uint16_t>(cs_sel), cd, 0)) return undo();
  const uint32_t cs_err = cs_sel & 0xfffc;
  if (!desc_is_code(cd)) return undo(), gp(cs_err);
  if (code_conforming(cd) ? desc_dpl(cd) > rpl : desc_dpl(cd) != rpl) return undo(), gp(cs_err);
  if (!(cd & kDescP)) return undo(), raise(kNP, true, cs_err);
  const bool to64 = (efer & efer::LMA) && (cd & kDescL);
  if (to64 && (cd & kDescDB)) return undo(), gp(cs_err);
  const SegmentCache cs = cache_from_descriptor(static_cast<uint16_t>(cs_sel), cd);
  if (!to64 && ip > cs.limit) return undo(), gp(0);
  if (!is_iret) set_sp(sp_value() + pop_extra);
  if (is_iret) {
    uint64_t mask = fl::kArith | fl::TF | fl::DF | fl::NT | fl::RF | fl::AC | fl::ID;
    if (cpl == 0) mask |= fl::IOPL;
    if (cpl <= iopl()) mask |= fl::IF;
    if (osz == 2) mask &= 0xffff;
    set_flags_raw((flags() & ~mask) | (fl_img & mask));
  }
  seg[1] = cs;
  update_mode();
  next_rip = to64 ? ip : (cs.base + ip) & 0xffffffffull;
  brk = true;
  return true;
}

bool Core::load_seg(SegReg s, uint16_t sel) {
  const unsigned si = static_cast<unsigned>(s);
  const unsigned rpl = sel & 3;
  if (s == SegReg::CS) return ud();
  if (real_mode()) {
    // Real-address mode: selector and base = selector * 16; the limit and attributes stay
    // as they were, which is what "unreal mode" relies on (SDM Vol. 3A §9.9.2).
    seg[si].selector = sel;
    seg[si].base = static_cast<uint64_t>(sel) << 4;
    if (s == SegReg::SS) shadow_next = true;
    return true;
  }
  if ((sel & 0xfffc) == 0) {
    // Null selector: fine for DS/ES/FS/GS; for SS only at CPL < 3 with RPL = CPL in 64-bit
    // mode (SDM Vol. 2B "MOV" 64-bit protected-mode pseudo-code), never outside it.
    if (s == SegReg::SS && (cmode != kMode64 || cpl == 3 || rpl != cpl)) return gp(0);
    const uint64_t keep_base = 0;  // Intel clears the FS/GS base on a null load
    seg[si] = SegmentCache{sel, keep_base, 0, 0};
    return true;
  }
  uint64_t d;
  if (!load_descriptor(sel, d, 0)) return false;
  const uint32_t err = sel & 0xfffc;
  if (s == SegReg::SS) {
    if (rpl != cpl || !desc_is_data(d) || !data_writable(d) || desc_dpl(d) != cpl) return gp(err);
    if (!(d & kDescP)) return raise(kSS, true, err);
  } else {
    if (!desc_is_data(d) && !(desc_is_code(d) && code_readable(d))) return gp(err);
    if (desc_is_data(d) || !code_conforming(d)) {
      if (rpl > desc_dpl(d) || cpl > desc_dpl(d)) return gp(err);
    }
    if (!(d & kDescP)) return raise(kNP, true, err);
  }
  // Set the accessed bit in the descriptor, as the processor does on a load.
  if (!(d & (1ull << 40))) {
    d |= 1ull << 40;
    if (!write_sys(gdtr.base + (sel & 0xfff8), 8, d)) return false;
  }
  seg[si] = cache_from_descriptor(sel, d);
  // MOV SS: interrupts are inhibited until after the next instruction (SDM Vol. 3A §6.8.3).
  if (s == SegReg::SS) shadow_next = true;
  return true;
}

// IRET (is_iret) and far RET in 64-bit mode. IRETQ always pops SS:RSP; RETF pops them only
// when returning to an outer level. Checks per SDM Vol. 2A "IRET" / "RET" pseudo-code.
bool Core::far_return(unsigned osz, bool is_iret, uint16_t pop_extra) {
  if (is_iret && (rf & fl::NT)) return gp(0);  // task return does not exist in IA-32e mode
  const unsigned sz = osz;
  uint64_t sp = gpr[4];
  uint64_t new_rip, cs_sel, new_flags = 0, new_rsp = 0, ss_sel = 0;
  auto popv = [&](uint64_t& v) {
    if (!read(sp, sz, v)) return stack_fault();
    sp += sz;
    return true;
  };
  if (!popv(new_rip) || !popv(cs_sel)) return false;
  cs_sel &= 0xffff;
  if (is_iret && !popv(new_flags)) return false;
  const unsigned rpl = cs_sel & 3;
  if ((cs_sel & 0xfffc) == 0) return gp(0);
  if (rpl < cpl) return gp(cs_sel & 0xfffc);
  uint64_t cd;
  if (!load_descriptor(static_cast<uint16_t>(cs_sel), cd, 0)) return false;
  const uint32_t cs_err = cs_sel & 0xfffc;
  if (!desc_is_code(cd)) return gp(cs_err);
  if (code_conforming(cd) ? desc_dpl(cd) > rpl : desc_dpl(cd) != rpl) return gp(cs_err);
  if (!(cd & kDescP)) return raise(kNP, true, cs_err);
  // L=1 with D=1 is reserved; L=0 returns to compatibility mode.
  if ((cd & kDescL) && (cd & kDescDB)) return gp(cs_err);
  const bool outer = rpl > cpl;
  SegmentCache new_ss = seg[2];
  if (!is_iret) sp += pop_extra;
  if (is_iret || outer) {
    if (!popv(new_rsp) || !popv(ss_sel)) return false;
    ss_sel &= 0xffff;
    if (!is_iret) new_rsp += pop_extra;
    if ((ss_sel & 0xfffc) == 0) {
      // 64-bit mode allows a null SS when returning to CPL 0-2 (not to CPL 3).
      if (rpl == 3) return gp(0);
      new_ss = SegmentCache{static_cast<uint16_t>(ss_sel), 0, 0, 0};
    } else {
      const uint32_t ss_err = ss_sel & 0xfffc;
      if ((ss_sel & 3) != rpl) return gp(ss_err);
      uint64_t sd;
      if (!load_descriptor(static_cast<uint16_t>(ss_sel), sd, 0)) return false;
      if (!desc_is_data(sd) || !data_writable(sd) || desc_dpl(sd) != rpl) return gp(ss_err);
      if (!(sd & kDescP)) return raise(kSS, true, ss_err);
      new_ss = cache_from_descriptor(static_cast<uint16_t>(ss_sel), sd);
    }
  }
  if (!is_canonical(new_rip)) return gp(0);
  // Commit.
  if (is_iret) {
    // Which flags IRET may change depends on the CPL it runs at (SDM Vol. 2A "IRET"):
    // IOPL only at CPL 0, IF only when CPL <= IOPL; VM stays 0 (no virtual-8086 mode).
    uint64_t mask = fl::kArith | fl::TF | fl::DF | fl::NT | fl::RF | fl::AC | fl::ID;
    if (cpl == 0) mask |= fl::IOPL | fl::VIF | fl::VIP;
    if (cpl <= iopl()) mask |= fl::IF;
    if (sz == 2) mask &= 0xffff;
    set_flags_raw((flags() & ~mask) | (new_flags & mask));
  }
  seg[1] = cache_from_descriptor(static_cast<uint16_t>(cs_sel), cd);
  update_mode();
  if (!(cd & kDescL)) new_rip &= 0xffffffffull;  // to compatibility mode: an EIP (CS.base 0)
  if (is_iret || outer) {
    seg[2] = new_ss;
    gpr[4] = sz == 2 ? (gpr[4] & ~0xffffull) | (new_rsp & 0xffff) : new_rsp;
  } else {
    gpr[4] = sp;
  }
  if (outer) {
    // Data segments the outer level may not use become null (SDM Vol. 2A "RET", "IRET").
    for (unsigned s : {0u, 3u, 4u, 5u}) {
      const uint16_t a = seg[s].attrs;
      const bool data_or_nc = !(a & 8) || !(a & 4);
      if ((seg[s].selector & 0xfffc) && data_or_nc && ((a >> 5) & 3) < rpl) {
        seg[s].selector = 0;
        seg[s].attrs = 0;
      }
    }
  }
  set_cpl(rpl);
  next_rip = new_rip;
  brk = true;
  return true;
}

// The code descriptor a far JMP or CALL loads into CS, with its checks (SDM Vol. 2A "JMP"
// far, protected mode): only code segments (no call gates or TSS jumps), the privilege
// rules, present, and L=1 with D=1 reserved in IA-32e mode (outside it L is ignored).
bool Core::far_target(uint16_t sel, uint64_t& cd) {
  if ((sel & 0xfffc) == 0) return gp(0);
  if (!load_descriptor(sel, cd, 0)) return false;
  const uint32_t err = sel & 0xfffc;
  if (!desc_is_code(cd)) return gp(err);
  if (code_conforming(cd) ? desc_dpl(cd) > cpl : ((sel & 3) > cpl || desc_dpl(cd) != cpl))
    return gp(err);
  if (!(cd & kDescP)) return raise(kNP, true, err);
  if ((efer & efer::LMA) && (cd & kDescL) && (cd & kDescDB)) return gp(err);
  return true;
}

bool Core::far_jump(uint16_t sel, uint64_t offset) {
  uint64_t cd;
  if (!far_target(sel, cd)) return false;
  if (!is_canonical(offset)) return gp(0);
  seg[1] = cache_from_descriptor(static_cast<uint16_t>((sel & 0xfffc) | cpl), cd);
  update_mode();
  next_rip = (cd & kDescL) ? offset : offset & 0xffffffffull;
  brk = true;
  return true;
}

}  // namespace pvsim::cpu
