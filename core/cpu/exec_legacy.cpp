// core/cpu/exec_legacy.cpp — instructions that exist only outside 64-bit mode or that only
// legacy code uses: BCD adjustment, PUSHA/POPA, far pointer loads, far CALL/JMP with an immediate pointer, SMSW/LMSW, debug-register moves and
// the x87 control instructions (core/README.md "Legacy modes"). Real-mode boot code, AP
// trampolines and kvm-unit-tests' realmode test execute them.
#include <fmt/format.h>

#include "core/cpu/core.h"
#include "core/cpu/handlers.h"

namespace pvsim::cpu {

namespace {
inline uint8_t al(const Core& c) {
  return static_cast<uint8_t>(c.gpr[0]);
}
inline void set_al(Core& c, uint64_t v) {
  c.gpr[0] = (c.gpr[0] & ~0xffull) | (v & 0xff);
}
// SF, ZF and PF from AL, with CF and AF as given; OF (undefined for the BCD instructions,
// SDM Vol. 2A "DAA" ...) reads 0.
inline void bcd_flags(Core& c, bool cf, bool af) {
  c.set_arith(flags_szp(al(c), 1) | (cf ? fl::CF : 0) | (af ? fl::AF : 0));
}
}  // namespace

// ---------------- decimal adjustment (SDM Vol. 2A "DAA", "DAS", "AAA", "AAS", "AAM", "AAD") ----
bool DAA(Core& c, const Insn&) {
  const uint64_t f = c.flags();
  const uint8_t old_al = al(c);
  const bool old_cf = f & fl::CF;
  bool cf = false, af = false;
  unsigned a = old_al;
  if ((a & 0xf) > 9 || (f & fl::AF)) {
    cf = old_cf || a > 0xf9;  // the carry out of AL + 6
    a = (a + 6) & 0xff;
    af = true;
  }
  if (old_al > 0x99 || old_cf) {
    a = (a + 0x60) & 0xff;
    cf = true;
  } else {
    cf = false;
  }
  set_al(c, a);
  bcd_flags(c, cf, af);
  return true;
}
bool DAS(Core& c, const Insn&) {
  const uint64_t f = c.flags();
  const uint8_t old_al = al(c);
  const bool old_cf = f & fl::CF;
  bool cf = false, af = false;
  unsigned a = old_al;
  if ((a & 0xf) > 9 || (f & fl::AF)) {
    cf = old_cf || a < 6;  // the borrow of AL - 6
    a = (a - 6) & 0xff;
    af = true;
  }
  if (old_al > 0x99 || old_cf) {  // no "else": CF keeps what the first step gave
    a = (a - 0x60) & 0xff;
    cf = true;
  }
  set_al(c, a);
  bcd_flags(c, cf, af);
  return true;
}
bool AAA(Core& c, const Insn&) {
  const bool adj = (al(c) & 0xf) > 9 || (c.flags() & fl::AF);
  uint64_t ax = c.gpr[0] & 0xffff;
  if (adj) ax = (ax + 0x106) & 0xffff;
  ax &= 0xff0f;
  c.gpr[0] = (c.gpr[0] & ~0xffffull) | ax;
  bcd_flags(c, adj, adj);
  return true;
}
bool AAS(Core& c, const Insn&) {
  const bool adj = (al(c) & 0xf) > 9 || (c.flags() & fl::AF);
  uint64_t ax = c.gpr[0] & 0xffff;
  if (adj) ax = (ax - 6 - 0x100) & 0xffff;  // AX - 6 (a borrow reaches AH), then AH - 1
  ax &= 0xff0f;
  c.gpr[0] = (c.gpr[0] & ~0xffffull) | ax;
  bcd_flags(c, adj, adj);
  return true;
}
bool AAM_Ib(Core& c, const Insn& i) {
  const unsigned base = static_cast<unsigned>(i.imm & 0xff);
  if (base == 0) return c.raise(kDE);
  const unsigned a = al(c);
  c.gpr[0] = (c.gpr[0] & ~0xffffull) | ((a / base) << 8) | (a % base);
  bcd_flags(c, false, false);
  return true;
}
bool AAD_Ib(Core& c, const Insn& i) {
  const unsigned base = static_cast<unsigned>(i.imm & 0xff);
  const unsigned a = (al(c) + ((c.gpr[0] >> 8) & 0xff) * base) & 0xff;
  c.gpr[0] = (c.gpr[0] & ~0xffffull) | a;
  bcd_flags(c, false, false);
  return true;
}
// SALC (D6, undocumented in the SDM's opcode map but present on every Intel and AMD
// processor outside 64-bit mode): AL = CF ? 0xff : 0; flags unchanged.
bool SALC(Core& c, const Insn&) {
  set_al(c, (c.flags() & fl::CF) ? 0xff : 0);
  return true;
}

// ---------------- PUSHA / POPA ----------------
// SDM Vol. 2B "PUSHA/PUSHAD": AX CX DX BX, the SP from before the first push, BP SI DI.
bool PUSHA(Core& c, const Insn& i) {
  const uint64_t old = c.gpr[4];
  const uint64_t sp = c.getr(4, i.osz, i);
  for (unsigned r = 0; r < 8; ++r) {
    if (!c.push(r == 4 ? sp : c.getr(r, i.osz, i), i.osz)) {
      c.gpr[4] = old;
      return false;
    }
  }
  return true;
}
// POPA: DI SI BP, the SP image skipped, BX DX CX AX. Registers change only when every
// pop succeeded.
bool POPA(Core& c, const Insn& i) {
  const uint64_t old = c.gpr[4];
  uint64_t v[8];
  for (int r = 7; r >= 0; --r) {
    if (!c.pop(i.osz, v[r])) {
      c.gpr[4] = old;
      return false;
    }
  }
  for (unsigned r = 0; r < 8; ++r)
    if (r != 4) c.setr(r, i.osz, i, v[r]);
  return true;
}

// ---------------- far pointer loads (SDM Vol. 2A "LDS/LES/LFS/LGS/LSS") ----------------
namespace {
inline bool load_far(Core& c, const Insn& i, SegReg s) {
  const uint64_t la = c.ea(i);
  uint64_t off, sel;
  if (!c.read(la, i.osz, off) || !c.read(la + i.osz, 2, sel)) return false;
  if (!c.load_seg(s, static_cast<uint16_t>(sel))) return false;
  c.setr(i.reg, i.osz, i, off);
  return true;
}
}  // namespace
bool LES_GvMp(Core& c, const Insn& i) {
  return load_far(c, i, SegReg::ES);
}
bool LDS_GvMp(Core& c, const Insn& i) {
  return load_far(c, i, SegReg::DS);
}
bool LSS_GvMp(Core& c, const Insn& i) {
  return load_far(c, i, SegReg::SS);
}
bool LFS_GvMp(Core& c, const Insn& i) {
  return load_far(c, i, SegReg::FS);
}
bool LGS_GvMp(Core& c, const Insn& i) {
  return load_far(c, i, SegReg::GS);
}

// ---------------- far CALL / JMP ----------------
bool CALLF_Ap(Core& c, const Insn& i) {
  return c.far_jump_legacy(static_cast<uint16_t>(i.disp), i.imm, i.osz, true);
}
bool JMPF_Ap(Core& c, const Insn& i) {
  return c.far_jump_legacy(static_cast<uint16_t>(i.disp), i.imm, i.osz, false);
}
bool CALLF_Mp(Core& c, const Insn& i) {
  if (!(i.pfx & P_LEG))
    return c.stop_with(StopReason::Unsupported,
                       fmt::format("vCPU {}: far CALL through memory in 64-bit mode (rip {:#x}) is "
                                   "not supported",
                                   c.cfg.index, c.rip));
  const uint64_t la = c.ea(i);
  uint64_t off, sel;
  if (!c.read(la, i.osz, off) || !c.read(la + i.osz, 2, sel)) return false;
  return c.far_jump_legacy(static_cast<uint16_t>(sel), off, i.osz, true);
}

// ---------------- machine status word ----------------
// SMSW: a register destination gets CR0 at the operand size (all 32 bits with r32, which
// kvm-unit-tests' realmode checks); memory gets 16 bits (SDM Vol. 2B "SMSW").
bool SMSW_Ew(Core& c, const Insn& i) {
  if (i.mod3()) {
    c.setr(i.rm, i.osz, i, c.cr0);
    return true;
  }
  return c.write(c.ea(i), 2, c.cr0 & 0xffff);
}
// LMSW loads CR0[3:0]; it can set PE but never clear it (SDM Vol. 2A "LMSW").
bool LMSW_Ew(Core& c, const Insn& i) {
  if (c.cpl != 0) return c.gp(0);
  uint64_t v;
  if (!c.read_E(i, 2, v)) return false;
  const uint64_t nv = (c.cr0 & ~0xeull) | (v & 0xf) | (c.cr0 & cr0::PE);
  if ((nv ^ c.cr0) & cr0::PE) c.tlb_flush_all();
  c.cr0 = nv;
  c.update_mode();
  return true;
}

// ---------------- debug registers (storage only; SDM Vol. 3B §17.2) ----------------
// The mod field is ignored: the operand is always a general register (decoder.cpp).
// DR4/DR5 alias DR6/DR7 unless CR4.DE makes them #UD.
namespace {
inline int dr_index(const Core& c, unsigned reg) {
  if (reg == 4 || reg == 5) {
    if (c.cr4 & cr4::DE) return -1;
    return static_cast<int>(reg + 2);
  }
  return reg > 7 ? -1 : static_cast<int>(reg);
}
}  // namespace
bool MOV_RdDd(Core& c, const Insn& i) {
  const int n = dr_index(c, i.reg);
  if (n < 0) return c.ud();
  if (c.cpl != 0) return c.gp(0);
  const uint64_t v = n < 4 ? c.dr[n] : n == 6 ? c.dr6 : c.dr7;
  c.gpr[i.rm] = (i.pfx & P_LEG) ? v & 0xffffffff : v;
  return true;
}
bool MOV_DdRd(Core& c, const Insn& i) {
  const int n = dr_index(c, i.reg);
  if (n < 0) return c.ud();
  if (c.cpl != 0) return c.gp(0);
  const uint64_t v = (i.pfx & P_LEG) ? c.gpr[i.rm] & 0xffffffff : c.gpr[i.rm];
  if (n < 4) {
    c.dr[n] = v;
    return true;
  }
  if (v >> 32) return c.gp(0);  // DR6/DR7 bits 63:32 are reserved
  if (n == 6)
    c.dr6 = (v & 0xe00f) | 0xffff0ff0;  // B0-B3, BD, BS, BT; the rest reads as fixed
  else
    c.dr7 = (v & 0xffff23ff) | 0x400;   // bit 10 reads 1; 11, 12, 14, 15 read 0
  return true;
}

// ---------------- x87 control (SDM Vol. 1 §8.1; no x87 arithmetic is modelled) ----------------
// CR0.EM or CR0.TS makes every x87 instruction #NM (SDM Vol. 3A Table 2-2); FWAIT only
// with MP and TS.
namespace {
inline bool x87_available(Core& c) {
  if (c.cr0 & (cr0::EM | cr0::TS)) return c.raise(kNM);
  return true;
}
}  // namespace
bool FWAIT(Core& c, const Insn&) {
  if ((c.cr0 & cr0::MP) && (c.cr0 & cr0::TS)) return c.raise(kNM);
  return true;
}
bool FNINIT(Core& c, const Insn&) {
  if (!x87_available(c)) return false;
  c.fcw = 0x037f;
  c.fsw = 0;
  c.ftw = 0xffff;
  return true;
}
bool FNCLEX(Core& c, const Insn&) {
  if (!x87_available(c)) return false;
  c.fsw &= 0x7f00;  // exception flags, ES and B clear
  return true;
}
bool FNSTSW_Mw(Core& c, const Insn& i) {
  if (!x87_available(c)) return false;
  return c.write(c.ea(i), 2, c.fsw);
}
bool FNSTSW_AX(Core& c, const Insn& i) {
  if (!x87_available(c)) return false;
  c.setr(0, 2, i, c.fsw);
  return true;
}
bool FNSTCW_Mw(Core& c, const Insn& i) {
  if (!x87_available(c)) return false;
  return c.write(c.ea(i), 2, c.fcw);
}
bool FLDCW_Mw(Core& c, const Insn& i) {
  if (!x87_available(c)) return false;
  uint64_t v;
  if (!c.read(c.ea(i), 2, v)) return false;
  c.fcw = static_cast<uint16_t>(v | 0x40);  // bit 6 reads 1
  return true;
}

}  // namespace pvsim::cpu
