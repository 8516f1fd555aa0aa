// core/cpu/exec_branch.cpp — near/far control transfers and software interrupts.
#include "core/cpu/core.h"
#include "core/cpu/handlers.h"

namespace pvsim::cpu {

namespace {
// A near branch to a non-canonical target faults with #GP(0) on the branch itself.
inline bool branch_to(Core& c, uint64_t target) {
  if (!is_canonical(target)) [[unlikely]]
    return c.gp(0);
  c.next_rip = target;
  c.cycles += 1;  // taken-branch cost (core/README.md "Cost model")
  return true;
}
}  // namespace

bool Jcc_Jb(Core& c, const Insn& i) {
  return c.cond(i.cond) ? branch_to(c, c.next_rip + i.imm) : true;
}
bool Jcc_Jz(Core& c, const Insn& i) {
  return Jcc_Jb(c, i);
}
bool JMP_Jb(Core& c, const Insn& i) {
  return branch_to(c, c.next_rip + i.imm);
}
bool JMP_Jz(Core& c, const Insn& i) {
  return branch_to(c, c.next_rip + i.imm);
}
bool JMP_Ev(Core& c, const Insn& i) {
  uint64_t t;
  if (!c.read_E(i, 8, t)) return false;
  return branch_to(c, t);
}
bool CALL_Jz(Core& c, const Insn& i) {
  const uint64_t t = c.next_rip + i.imm;
  if (!is_canonical(t)) return c.gp(0);
  if (!c.push(c.next_rip, 8)) return false;
  return branch_to(c, t);
}
bool CALL_Ev(Core& c, const Insn& i) {
  uint64_t t;
  if (!c.read_E(i, 8, t)) return false;
  if (!is_canonical(t)) return c.gp(0);
  if (!c.push(c.next_rip, 8)) return false;
  return branch_to(c, t);
}
bool RET(Core& c, const Insn&) {
  uint64_t t;
  if (!c.read(c.gpr[4], 8, t)) return c.stack_fault();
  if (!is_canonical(t)) return c.gp(0);
  c.gpr[4] += 8;
  return branch_to(c, t);
}
bool RET_Iw(Core& c, const Insn& i) {
  uint64_t t;
  if (!c.read(c.gpr[4], 8, t)) return c.stack_fault();
  if (!is_canonical(t)) return c.gp(0);
  c.gpr[4] += 8 + (i.imm & 0xffff);
  return branch_to(c, t);
}
bool RETF(Core& c, const Insn& i) {
  return c.far_return(i.osz, false, 0);
}
bool RETF_Iw(Core& c, const Insn& i) {
  return c.far_return(i.osz, false, static_cast<uint16_t>(i.imm));
}
// IRET unblocks NMIs even when it faults (SDM Vol. 3A §6.7.1); only an IRET abandoned
// before executing (a time-gated stack read, Core::abandon) leaves the blocking in place.
bool IRET(Core& c, const Insn& i) {
  const bool ok = c.far_return(i.osz, true, 0);
  if (!c.abandoned) c.iret_unblocks_nmi();
  return ok;
}
// JMP far m16:16/32/64 (FF /5): offset first, then the selector.
bool JMPF_Mp(Core& c, const Insn& i) {
  const uint64_t la = c.ea(i);
  uint64_t off, sel;
  if (!c.read(la, i.osz, off) || !c.read(la + i.osz, 2, sel)) return false;
  return c.far_jump(static_cast<uint16_t>(sel), off);
}

namespace {
inline bool loop_common(Core& c, const Insn& i, bool take_if_more) {
  uint64_t n = (i.asz == 4 ? c.gpr[1] & 0xffffffff : c.gpr[1]) - 1;
  if (i.asz == 4) n &= 0xffffffff;
  c.gpr[1] = i.asz == 4 ? n : n;
  return (n != 0 && take_if_more) ? branch_to(c, c.next_rip + i.imm) : true;
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
  const uint64_t n = i.asz == 4 ? c.gpr[1] & 0xffffffff : c.gpr[1];
  return n == 0 ? branch_to(c, c.next_rip + i.imm) : true;
}

// INT n / INT3: software interrupts, delivered with the gate-DPL check and the return
// address of the next instruction (SDM Vol. 2A "INT n/INTO/INT3/INT1").
bool INT_Ib(Core& c, const Insn& i) {
  const uint8_t v = static_cast<uint8_t>(i.imm);
  c.tracer.pvsim_exception(c.now(), c.cfg.index, v, false, 0, c.rip, c.cr2);
  c.cycles += kExceptionCycles;
  return c.deliver(v, EventKind::SoftInt, false, 0, c.next_rip);
}
bool INT3(Core& c, const Insn&) {
  c.tracer.pvsim_exception(c.now(), c.cfg.index, kBP, false, 0, c.rip, c.cr2);
  c.cycles += kExceptionCycles;
  return c.deliver(kBP, EventKind::SoftInt, false, 0, c.next_rip);
}
bool UD2(Core& c, const Insn&) {
  return c.ud();
}

}  // namespace pvsim::cpu
