// core/cpu/exec_move.cpp — data movement, stack, string and flag instructions, hints.
#include "core/cpu/core.h"
#include "core/cpu/handlers.h"

namespace pvsim::cpu {

// ---------------- MOV family ----------------
bool MOV_EbGb(Core& c, const Insn& i) {
  return c.write_E(i, 1, c.getr(i.reg, 1, i));
}
bool MOV_EvGv(Core& c, const Insn& i) {
  return c.write_E(i, i.osz, c.getr(i.reg, i.osz, i));
}
bool MOV_GbEb(Core& c, const Insn& i) {
  uint64_t v;
  if (!c.read_E(i, 1, v)) return false;
  c.setr(i.reg, 1, i, v);
  return true;
}
bool MOV_GvEv(Core& c, const Insn& i) {
  uint64_t v;
  if (!c.read_E(i, i.osz, v)) return false;
  c.setr(i.reg, i.osz, i, v);
  return true;
}
bool MOV_EbIb(Core& c, const Insn& i) {
  return c.write_E(i, 1, i.imm);
}
bool MOV_EvIz(Core& c, const Insn& i) {
  return c.write_E(i, i.osz, i.imm);
}
bool MOV_rbIb(Core& c, const Insn& i) {
  c.setr(i.reg, 1, i, i.imm);
  return true;
}
bool MOV_rvIv(Core& c, const Insn& i) {
  c.setr(i.reg, i.osz, i, i.imm);
  return true;
}
bool LEA_GvM(Core& c, const Insn& i) {
  // LEA computes the offset only: no segment base even with a segment prefix.
  c.setr(i.reg, i.osz, i, c.ea_offset(i));
  return true;
}
// Register destinations get the selector zero-extended; memory gets 16 bits.
bool MOV_EvSw(Core& c, const Insn& i) {
  if ((i.reg & 7) > 5) return c.ud();
  const uint64_t sel = c.seg[i.reg & 7].selector;
  if (i.mod3()) {
    c.setr(i.rm, i.osz, i, sel);
    return true;
  }
  return c.write(c.ea(i), 2, sel);
}
bool MOV_SwEw(Core& c, const Insn& i) {
  const unsigned s = i.reg & 7;
  if (s > 5 || s == 1) return c.ud();  // no such segment register / MOV to CS
  uint64_t v;
  if (!c.read_E(i, 2, v)) return false;
  return c.load_seg(static_cast<SegReg>(s), static_cast<uint16_t>(v));
}
namespace {
inline uint64_t moffs_la(const Core& c, const Insn& i) {
  return c.src_linear(i, i.imm & Core::addr_mask(i.asz));
}
}  // namespace
bool MOV_ALOb(Core& c, const Insn& i) {
  uint64_t v;
  if (!c.read(moffs_la(c, i), 1, v)) return false;
  c.setr(0, 1, i, v);
  return true;
}
bool MOV_rAXOv(Core& c, const Insn& i) {
  uint64_t v;
  if (!c.read(moffs_la(c, i), i.osz, v)) return false;
  c.setr(0, i.osz, i, v);
  return true;
}
bool MOV_ObAL(Core& c, const Insn& i) {
  return c.write(moffs_la(c, i), 1, c.getr(0, 1, i));
}
bool MOV_OvrAX(Core& c, const Insn& i) {
  return c.write(moffs_la(c, i), i.osz, c.getr(0, i.osz, i));
}

bool MOVSXD_GvEd(Core& c, const Insn& i) {
  const unsigned src = i.osz == 8 ? 4 : i.osz;
  uint64_t v;
  if (!c.read_E(i, src, v)) return false;
  c.setr(i.reg, i.osz, i, static_cast<uint64_t>(sext(v, src)));
  return true;
}
bool MOVZX_GvEb(Core& c, const Insn& i) {
  uint64_t v;
  if (!c.read_E(i, 1, v)) return false;
  c.setr(i.reg, i.osz, i, v);
  return true;
}
bool MOVZX_GvEw(Core& c, const Insn& i) {
  uint64_t v;
  if (!c.read_E(i, 2, v)) return false;
  c.setr(i.reg, i.osz, i, v);
  return true;
}
bool MOVSX_GvEb(Core& c, const Insn& i) {
  uint64_t v;
  if (!c.read_E(i, 1, v)) return false;
  c.setr(i.reg, i.osz, i, static_cast<uint64_t>(sext(v, 1)));
  return true;
}
bool MOVSX_GvEw(Core& c, const Insn& i) {
  uint64_t v;
  if (!c.read_E(i, 2, v)) return false;
  c.setr(i.reg, i.osz, i, static_cast<uint64_t>(sext(v, 2)));
  return true;
}
// CMOVcc reads its source even when the condition is false, and a 32-bit CMOV always
// zero-extends the destination (SDM Vol. 2A "CMOVcc", 64-bit mode operation).
bool CMOVcc_GvEv(Core& c, const Insn& i) {
  uint64_t v;
  if (!c.read_E(i, i.osz, v)) return false;
  if (c.cond(i.cond))
    c.setr(i.reg, i.osz, i, v);
  else if (i.osz == 4)
    c.gpr[i.reg] &= 0xffffffff;
  return true;
}
namespace {
inline bool xchg_E(Core& c, const Insn& i, unsigned s) {
  const uint64_t r = c.getr(i.reg, s, i);
  if (i.mod3()) {
    const uint64_t m = c.getr(i.rm, s, i);
    c.setr(i.rm, s, i, r);
    c.setr(i.reg, s, i, m);
    return true;
  }
  const uint64_t la = c.ea(i);
  if (!c.probe_write(la, s)) return false;
  uint64_t m;
  if (!c.read(la, s, m) || !c.write(la, s, r)) return false;
  c.setr(i.reg, s, i, m);
  return true;
}
}  // namespace
bool XCHG_EbGb(Core& c, const Insn& i) {
  return xchg_E(c, i, 1);
}
bool XCHG_EvGv(Core& c, const Insn& i) {
  return xchg_E(c, i, i.osz);
}
bool PAUSE(Core&, const Insn&) {
  return true;
}
// 90 without REX.B is NOP (not "xchg eax, eax", which would zero-extend RAX).
bool XCHG_rvrAX(Core& c, const Insn& i) {
  if (i.reg == 0) return true;
  const uint64_t a = c.getr(0, i.osz, i), b = c.getr(i.reg, i.osz, i);
  c.setr(0, i.osz, i, b);
  c.setr(i.reg, i.osz, i, a);
  return true;
}
bool BSWAP_rv(Core& c, const Insn& i) {
  const uint64_t v = c.gpr[i.reg];
  if (i.osz == 8)
    c.gpr[i.reg] = __builtin_bswap64(v);
  else if (i.osz == 4)
    c.gpr[i.reg] = __builtin_bswap32(static_cast<uint32_t>(v));
  else
    c.setr(i.reg, 2, i, 0);  // 16-bit BSWAP is undefined; current parts give 0
  return true;
}
bool CBW(Core& c, const Insn& i) {
  const unsigned half = i.osz / 2;
  c.setr(0, i.osz, i, static_cast<uint64_t>(sext(c.getr(0, half, i), half)));
  return true;
}
bool CWD(Core& c, const Insn& i) {
  const bool neg = c.getr(0, i.osz, i) & sign_bit(i.osz);
  c.setr(2, i.osz, i, neg ? ~0ull : 0);
  return true;
}
bool XLAT(Core& c, const Insn& i) {
  const uint64_t a = c.src_linear(i, (c.gpr[3] + (c.gpr[0] & 0xff)) & Core::addr_mask(i.asz));  // DS:[rBX + AL]
  uint64_t v;
  if (!c.read(a, 1, v)) return false;
  c.setr(0, 1, i, v);
  return true;
}

// ---------------- stack ----------------
bool PUSH_rv(Core& c, const Insn& i) {
  return c.push(c.getr(i.reg, i.osz, i), i.osz);
}
bool POP_rv(Core& c, const Insn& i) {
  uint64_t v;
  if (!c.pop(i.osz, v)) return false;
  c.setr(i.reg, i.osz, i, v);  // POP RSP: the popped value wins over the increment
  return true;
}
bool PUSH_Iz(Core& c, const Insn& i) {
  return c.push(i.imm, i.osz);
}
bool PUSH_Ib(Core& c, const Insn& i) {
  return c.push(i.imm, i.osz);
}
bool PUSH_Ev(Core& c, const Insn& i) {
  uint64_t v;
  if (!c.read_E(i, i.osz, v)) return false;
  return c.push(v, i.osz);
}
// POP r/m: the address is computed after RSP is incremented (SDM Vol. 2B "POP").
bool POP_Ev(Core& c, const Insn& i) {
  const uint64_t old_sp = c.gpr[4];
  uint64_t v;
  if (!c.pop(i.osz, v)) return false;
  if (!c.write_E(i, i.osz, v)) {
    c.gpr[4] = old_sp;
    return false;
  }
  return true;
}
bool PUSH_FS(Core& c, const Insn& i) {
  return c.push(c.seg[4].selector, i.osz);
}
bool PUSH_GS(Core& c, const Insn& i) {
  return c.push(c.seg[5].selector, i.osz);
}
namespace {
inline bool pop_seg(Core& c, const Insn& i, SegReg s) {
  const uint64_t old_sp = c.gpr[4];
  uint64_t v;
  if (!c.pop(i.osz, v)) return false;
  if (!c.load_seg(s, static_cast<uint16_t>(v))) {
    c.gpr[4] = old_sp;
    return false;
  }
  return true;
}
}  // namespace
bool POP_FS(Core& c, const Insn& i) {
  return pop_seg(c, i, SegReg::FS);
}
// PUSH/POP ES, CS, SS, DS exist outside 64-bit mode only (opcodes.def A_NO64); POP SS starts
// the one-instruction interrupt shadow (load_seg).
bool PUSH_ES(Core& c, const Insn& i) {
  return c.push(c.seg[0].selector, i.osz);
}
bool PUSH_CS(Core& c, const Insn& i) {
  return c.push(c.seg[1].selector, i.osz);
}
bool PUSH_SS(Core& c, const Insn& i) {
  return c.push(c.seg[2].selector, i.osz);
}
bool PUSH_DS(Core& c, const Insn& i) {
  return c.push(c.seg[3].selector, i.osz);
}
bool POP_ES(Core& c, const Insn& i) {
  return pop_seg(c, i, SegReg::ES);
}
bool POP_SS(Core& c, const Insn& i) {
  return pop_seg(c, i, SegReg::SS);
}
bool POP_DS(Core& c, const Insn& i) {
  return pop_seg(c, i, SegReg::DS);
}
bool POP_GS(Core& c, const Insn& i) {
  return pop_seg(c, i, SegReg::GS);
}
bool LEAVE(Core& c, const Insn& i) {
  if (i.pfx & P_LEG) {
    // (E)SP = (E)BP by the stack-address size, then POP (E)BP (SDM Vol. 2A "LEAVE").
    const uint64_t old_sp = c.gpr[4];
    c.set_sp(c.gpr[5]);
    uint64_t v;
    if (!c.pop(i.osz, v)) {
      c.gpr[4] = old_sp;
      return false;
    }
    c.setr(5, i.osz, i, v);
    return true;
  }
  uint64_t v;
  if (!c.read(c.gpr[5], i.osz, v)) return c.stack_fault();
  c.gpr[4] = c.gpr[5] + i.osz;
  c.setr(5, i.osz, i, v);
  return true;
}
bool PUSHF_Fv(Core& c, const Insn& i) {
  // The pushed image has RF and VM cleared (SDM Vol. 2B "PUSHF").
  return c.push((c.flags() & fl::kDefined & ~(fl::RF | fl::VM)) | fl::Reserved1, i.osz);
}
bool POPF_Fv(Core& c, const Insn& i) {
  uint64_t v;
  if (!c.pop(i.osz, v)) return false;
  // SDM Vol. 2B "POPF": IOPL changes only at CPL 0, IF only when CPL <= IOPL; VM, VIF and
  // VIP are never changed by POPF outside virtual-8086 mode; RF is cleared.
  uint64_t mask = fl::kArith | fl::TF | fl::DF | fl::NT | fl::AC | fl::ID;
  if (c.cpl == 0) mask |= fl::IOPL;
  if (c.cpl <= c.iopl()) mask |= fl::IF;
  if (i.osz == 2) mask &= 0xffff;
  const bool if_was = c.rf & fl::IF;
  c.set_flags_raw(((c.flags() & ~mask) | (v & mask)) & ~fl::RF);
  if (!if_was && (c.rf & fl::IF)) c.brk = true;  // an interrupt may now be deliverable
  return true;
}

// ---------------- flags ----------------
bool CLC(Core& c, const Insn&) {
  c.rf = c.flags() & ~fl::CF;
  return true;
}
bool STC(Core& c, const Insn&) {
  c.rf = c.flags() | fl::CF;
  return true;
}
bool CMC(Core& c, const Insn&) {
  c.rf = c.flags() ^ fl::CF;
  return true;
}
bool CLD(Core& c, const Insn&) {
  c.rf &= ~fl::DF;
  return true;
}
bool STD(Core& c, const Insn&) {
  c.rf |= fl::DF;
  return true;
}
bool SAHF(Core& c, const Insn&) {
  const uint64_t ah = (c.gpr[0] >> 8) & 0xff;
  const uint64_t m = fl::SF | fl::ZF | fl::AF | fl::PF | fl::CF;
  c.rf = (c.flags() & ~m) | (ah & m);
  return true;
}
bool LAHF(Core& c, const Insn&) {
  const uint64_t f = (c.flags() & (fl::SF | fl::ZF | fl::AF | fl::PF | fl::CF)) | fl::Reserved1;
  c.gpr[0] = (c.gpr[0] & ~0xff00ull) | (f << 8);
  return true;
}

// ---------------- hints ----------------
bool ENDBR64(Core&, const Insn&) {
  return true;
}  // no CET: a NOP
bool NOP_Ev(Core&, const Insn&) {
  return true;
}  // 0F 18..1F: never touches memory
bool PREFETCH_Ev(Core&, const Insn&) {
  return true;
}
bool LFENCE(Core&, const Insn&) {
  return true;
}  // one vCPU executes in program order
bool MFENCE(Core&, const Insn&) {
  return true;
}
bool SFENCE(Core&, const Insn&) {
  return true;
}

// ---------------- string instructions (SDM Vol. 2B "MOVS", "REP") ----------------
// Each element of a REP instruction is one instruction: it counts toward the run budget and
// instructions(), and costs what the instruction costs without REP (its table cost plus
// kStringElementCycles), so neither the count nor the cycles depend on where the REP was
// stopped. Between elements, Core::rep_next decides whether the REP goes on or stops there
// with RIP on the instruction, as hardware does when it takes an interrupt mid-REP
// (core/README.md "REP string instructions"). REP with RCX = 0 is one instruction that
// does nothing.
namespace {

enum class Str { Movs, Stos, Lods, Cmps, Scas };

template <Str K>
inline bool string_op(Core& c, const Insn& i, unsigned sz) {
  const int64_t step = (c.rf & fl::DF) ? -static_cast<int64_t>(sz) : static_cast<int64_t>(sz);
  const bool rep = i.pfx & (P_REP | P_REPNE);
  uint64_t n = rep ? c.addr_reg(i, 1) : 1;
  if (n == 0) return true;
  const uint64_t n0 = n;
  // An element fails (a fault, or an abandoned access) after others ran: RIP stays on the
  // REP, which resumes between elements when it runs again (Core::rep_resume_at).
  auto fail = [&]() {
    if (n != n0) c.rep_resume_at(c.insns);
    return false;
  };
  for (;;) {
    uint64_t v = 0;
    const uint64_t si = c.addr_reg(i, 6), di = c.addr_reg(i, 7);
    if constexpr (K == Str::Movs) {
      if (!c.read(c.src_linear(i, si), sz, v) || !c.write(c.dst_linear(i, di), sz, v)) return fail();
      c.set_addr_reg(i, 6, si + step);
      c.set_addr_reg(i, 7, di + step);
    } else if constexpr (K == Str::Stos) {
      if (!c.write(c.dst_linear(i, di), sz, c.gpr[0])) return fail();
      c.set_addr_reg(i, 7, di + step);
    } else if constexpr (K == Str::Lods) {
      if (!c.read(c.src_linear(i, si), sz, v)) return fail();
      c.setr(0, sz, i, v);
      c.set_addr_reg(i, 6, si + step);
    } else if constexpr (K == Str::Cmps) {
      uint64_t d;
      if (!c.read(c.src_linear(i, si), sz, v) || !c.read(c.dst_linear(i, di), sz, d)) return fail();
      uint64_t r;
      c.set_arith(flags_sub(v, d, 0, sz, r));
      c.set_addr_reg(i, 6, si + step);
      c.set_addr_reg(i, 7, di + step);
    } else {
      uint64_t d;
      if (!c.read(c.dst_linear(i, di), sz, d)) return fail();
      uint64_t r;
      c.set_arith(flags_sub(c.getr(0, sz, i), d, 0, sz, r));
      c.set_addr_reg(i, 7, di + step);
    }
    c.cycles += kStringElementCycles;
    if (!rep) return true;
    c.set_addr_reg(i, 1, --n);
    if (n == 0) return true;
    if constexpr (K == Str::Cmps || K == Str::Scas) {
      // REPE stops on ZF=0, REPNE on ZF=1 (F3/F2 with CMPS/SCAS).
      const bool zf = c.rf & fl::ZF;  // set_arith above: rf is current
      if ((i.pfx & P_REP) && !zf) return true;
      if ((i.pfx & P_REPNE) && zf) return true;
    }
    if (!c.rep_next(i.cost)) return true;  // stopped between elements; RIP stays on the REP
  }
}
}  // namespace

bool MOVSB(Core& c, const Insn& i) {
  return string_op<Str::Movs>(c, i, 1);
}
bool MOVSv(Core& c, const Insn& i) {
  return string_op<Str::Movs>(c, i, i.osz);
}
bool STOSB(Core& c, const Insn& i) {
  return string_op<Str::Stos>(c, i, 1);
}
bool STOSv(Core& c, const Insn& i) {
  return string_op<Str::Stos>(c, i, i.osz);
}
bool LODSB(Core& c, const Insn& i) {
  return string_op<Str::Lods>(c, i, 1);
}
bool LODSv(Core& c, const Insn& i) {
  return string_op<Str::Lods>(c, i, i.osz);
}
bool CMPSB(Core& c, const Insn& i) {
  return string_op<Str::Cmps>(c, i, 1);
}
bool CMPSv(Core& c, const Insn& i) {
  return string_op<Str::Cmps>(c, i, i.osz);
}
bool SCASB(Core& c, const Insn& i) {
  return string_op<Str::Scas>(c, i, 1);
}
bool SCASv(Core& c, const Insn& i) {
  return string_op<Str::Scas>(c, i, i.osz);
}

}  // namespace pvsim::cpu
