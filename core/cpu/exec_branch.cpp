// core/cpu/exec_branch.cpp — near/far control transfers and software interrupts.
#include "core/cpu/core.h"
#include "core/cpu/handlers.h"

namespace pvsim::cpu {

namespace {
// Outside 64-bit mode a near target is an EIP: masked to the operand size, checked against
// the CS limit (#GP(0) with nothing changed, SDM Vol. 2A "JMP", "CALL", Vol. 2B "RET") and
// made linear with CS.base (Core::rip is linear, core/README.md "Legacy modes").
inline bool legacy_jump(Core& c, uint64_t eip, const Insn& i) {
  eip &= i.osz == 2 ? 0xffffull : 0xffffffffull;
  if (eip > c.seg[1].limit) return c.gp(0);
  c.next_rip = c.near_target(eip, i.osz);
  c.cycles += 1;
  return true;
}
// A near branch to a non-canonical target faults with #GP(0) on the branch itself.
inline bool branch_to(Core& c, uint64_t target, const Insn& i) {
  if (i.pfx & P_LEG) [[unlikely]]
    return legacy_jump(c, c.eip_of(target), i);
  if (!is_canonical(target)) [[unlikely]]
    return c.gp(0);
  c.next_rip = target;
  c.cycles += 1;  // taken-branch cost (core/README.md "Cost model")
  return true;
}
// The return address a near CALL pushes: the next instruction's RIP, or its EIP.
inline uint64_t return_address(const Core& c, const Insn& i) {
  return (i.pfx & P_LEG) ? c.eip_of(c.next_rip) : c.next_rip;
}
// Outside 64-bit mode: would a jump to this EIP pass the CS limit (checked before a CALL
// pushes anything)?
inline bool within_cs(const Core& c, uint64_t eip, const Insn& i) {
  return (eip & (i.osz == 2 ? 0xffffull : 0xffffffffull)) <= c.seg[1].limit;
}
}  // namespace

bool Jcc_Jb(Core& c, const Insn& i) {
  return c.cond(i.cond) ? branch_to(c, c.next_rip + i.imm, i) : true;
}
bool Jcc_Jz(Core& c, const Insn& i) {
  return Jcc_Jb(c, i);
}
bool JMP_Jb(Core& c, const Insn& i) {
  return branch_to(c, c.next_rip + i.imm, i);
}
bool JMP_Jz(Core& c, const Insn& i) {
  return branch_to(c, c.next_rip + i.imm, i);
}
bool JMP_Ev(Core& c, const Insn& i) {
  uint64_t t;
  if (!c.read_E(i, i.osz, t)) return false;
  if (i.pfx & P_LEG) return legacy_jump(c, t, i);
  return branch_to(c, t, i);
}
bool CALL_Jz(Core& c, const Insn& i) {
  const uint64_t t = c.next_rip + i.imm;
  if (i.pfx & P_LEG) {
    if (!within_cs(c, c.eip_of(t), i)) return c.gp(0);
  } else if (!is_canonical(t)) {
    return c.gp(0);
  }
  if (!c.push(return_address(c, i), i.osz)) return false;
  return branch_to(c, t, i);
}
bool CALL_Ev(Core& c, const Insn& i) {
  uint64_t t;
  if (!c.read_E(i, i.osz, t)) return false;
  if (i.pfx & P_LEG) {
    if (!within_cs(c, t, i)) return c.gp(0);
    if (!c.push(return_address(c, i), i.osz)) return false;
    return legacy_jump(c, t, i);
  }
  if (!is_canonical(t)) return c.gp(0);
  if (!c.push(c.next_rip, 8)) return false;
  return branch_to(c, t, i);
}
namespace {
// RET outside 64-bit mode: pops an operand-size EIP, then releases `extra` bytes.
bool ret_legacy(Core& c, const Insn& i, uint64_t extra) {
  const uint64_t old_sp = c.gpr[4];
  uint64_t t;
  if (!c.pop(i.osz, t)) return false;
  if (!within_cs(c, t, i)) {
    c.gpr[4] = old_sp;
    return c.gp(0);
  }
  c.set_sp(c.sp_value() + extra);
  return legacy_jump(c, t, i);
}
}  // namespace
bool RET(Core& c, const Insn& i) {
  if (i.pfx & P_LEG) [[unlikely]] return ret_legacy(c, i, 0);
  uint64_t t;
  if (!c.read(c.gpr[4], 8, t)) return c.stack_fault();
  if (!is_canonical(t)) return c.gp(0);
  c.gpr[4] += 8;
  return branch_to(c, t, i);
}
bool RET_Iw(Core& c, const Insn& i) {
  if (i.pfx & P_LEG) [[unlikely]] return ret_legacy(c, i, i.imm & 0xffff);
  uint64_t t;
  if (!c.read(c.gpr[4], 8, t)) return c.stack_fault();
  if (!is_canonical(t)) return c.gp(0);
  c.gpr[4] += 8 + (i.imm & 0xffff);
  return branch_to(c, t, i);
}
bool RETF(Core& c, const Insn& i) {
  if (i.pfx & P_LEG) return c.far_return_legacy(i.osz, false, 0);
  return c.far_return(i.osz, false, 0);
}
bool RETF_Iw(Core& c, const Insn& i) {
  if (i.pfx & P_LEG) return c.far_return_legacy(i.osz, false, static_cast<uint16_t>(i.imm));
  return c.far_return(i.osz, false, static_cast<uint16_t>(i.imm));
}
// IRET unblocks NMIs even when it faults (SDM Vol. 3A §6.7.1); only an IRET abandoned
// before executing (a time-gated stack read, Core::abandon) leaves the blocking in place.
bool IRET(Core& c, const Insn& i) {
  const bool ok = (i.pfx & P_LEG) ? c.far_return_legacy(i.osz, true, 0) : c.far_return(i.osz, true, 0);
  if (!c.abandoned) c.iret_unblocks_nmi();
  return ok;
}
// JMP far m16:16/32/64 (FF /5): offset first, then the selector.
bool JMPF_Mp(Core& c, const Insn& i) {
  const uint64_t la = c.ea(i);
  uint64_t off, sel;
  if (!c.read(la, i.osz, off) || !c.read(la + i.osz, 2, sel)) return false;
  if (i.pfx & P_LEG) return c.far_jump_legacy(static_cast<uint16_t>(sel), off, i.osz, false);
  return c.far_jump(static_cast<uint16_t>(sel), off);
}

namespace {
// LOOP / JCXZ count in CX, ECX or RCX by the address size (SDM Vol. 2A "LOOP/LOOPcc").
inline bool loop_common(Core& c, const Insn& i, bool take_if_more) {
  const uint64_t n = (c.addr_reg(i, 1) - 1) & Core::addr_mask(i.asz);
  c.set_addr_reg(i, 1, n);
  return (n != 0 && take_if_more) ? branch_to(c, c.next_rip + i.imm, i) : true;
}
}  // namespace
bool LOOP_Jb(Core& c, const Insn& i) {
  return loop_common(c, i, true);
}
bool LOOPE_Jb(Core& c, const Insn& i) {
  return loop_common(c, i, c.flags() & fl::ZF);
}
bool LOOPNE_Jb(Core& c, const Insn& i) {
  return loop_common(c, i, !(c.flags() & fl::ZF));
}
bool JRCXZ_Jb(Core& c, const Insn& i) {
  return c.addr_reg(i, 1) == 0 ? branch_to(c, c.next_rip + i.imm, i) : true;
}

// INT n / INT3: software interrupts, delivered with the gate-DPL check and the return
// address of the next instruction (SDM Vol. 2A "INT n/INTO/INT3/INT1").
bool INT_Ib(Core& c, const Insn& i) {
  const uint8_t v = static_cast<uint8_t>(i.imm);
  c.tracer.pvsim_exception(c.now(), c.cfg.index, v, false, 0, c.trace_rip(c.rip), c.cr2);
  c.cycles += kExceptionCycles;
  return c.deliver(v, EventKind::SoftInt, false, 0, c.next_rip);
}
// INTO: INT 4 when OF is set (legacy modes only; opcodes.def A_NO64).
bool INTO(Core& c, const Insn&) {
  if (!(c.flags() & fl::OF)) return true;
  c.tracer.pvsim_exception(c.now(), c.cfg.index, kOF, false, 0, c.trace_rip(c.rip), c.cr2);
  c.cycles += kExceptionCycles;
  return c.deliver(kOF, EventKind::SoftInt, false, 0, c.next_rip);
}
bool INT3(Core& c, const Insn&) {
  c.tracer.pvsim_exception(c.now(), c.cfg.index, kBP, false, 0, c.trace_rip(c.rip), c.cr2);
  c.cycles += kExceptionCycles;
  return c.deliver(kBP, EventKind::SoftInt, false, 0, c.next_rip);
}
bool UD2(Core& c, const Insn&) {
  return c.ud();
}

}  // namespace pvsim::cpu
