// core/cpu/fast.cpp — whole-block execution: threaded handlers and block finishing.
//
// A decoded block runs as a chain of tail calls: every threaded handler does its work and
// jumps straight to the next instruction's handler (direct threading; no loop, no switch,
// no per-instruction bookkeeping). The run loop (core.cpp) takes this path only when the
// whole block fits in the instruction budget and its static costs cannot reach the
// deadline, so the only per-instruction state the handlers keep current is architectural
// (registers, flags, memory). RIP, cycles and the instruction count are derived from the
// block (Core::sync_to) whenever something needs them exactly:
//
//   - t_generic runs any instruction with its complete-semantics handler (Insn::fn, the
//     same code the per-instruction path uses) after sync_to(); it is the handler of every
//     form below that has no specialisation, and the fallback of every specialisation that
//     meets anything unusual (TLB miss, page-crossing access, non-canonical target). The
//     specialisations change nothing before they fall back, so the instruction runs
//     exactly once.
//   - After a complete-semantics handler, dynamic cycles (EPT exits, string elements, VM
//     exits) are folded into blk_cyc0, and the block is left at once if the handler asked
//     for a re-check (brk: self-modifying store, mode change, interrupt window) or if the
//     rest of the block could now pass the deadline. The per-instruction path then
//     finishes the job, so the run still stops at exactly the first boundary where
//     cycles >= deadline, as core/README.md specifies.
//
// Flags: the specialised register-only forms that write all six arithmetic flags come in a
// second variant that skips the flag work when a later instruction of the same block
// overwrites the flags before anything can observe them (finish_block's liveness pass).
// Anything that can leave the block (a memory form's fallback, a fault, a generic handler,
// the block end) counts as an observer, so RFLAGS is exact wherever the guest, an
// exception frame or the host can see it.
#include <array>
#include <utility>

#include "core/cpu/core.h"
#include "core/cpu/decoder.h"
#include "core/cpu/handlers.h"

namespace pvsim::cpu {

namespace {

// The next instruction's threaded handler, as a tail call (a jump at -O2).
#define PVSIM_NEXT(c, i)          \
  do {                            \
    const Insn* n_ = (i) + 1;     \
    return n_->tfn((c), n_);      \
  } while (0)

// ---------------- block ends and the generic handler ----------------

// Block chaining: at the end of a block whose successor starts on the same linear page
// (so the fetch translation of the current block still holds: nothing in a block that
// reaches a fast terminator or the sentinel can change translations), the successor's
// decoded block is looked up by GPA and, when it is current and fits the budget and the
// deadline exactly as the run loop would require, entered directly. That is the run
// loop's boundary work (Core::run) minus the fetch translation; the loop still handles
// everything else (pending events, other pages, stepping near the deadline).
// run_insn_limit also bounds the length of a chain, which is a recursion in builds
// without tail calls (Core::run, kChainInsns).
// L: which of the running block's successor links caches this exit's target (0 = taken
// branch, 1 = fall-through); -1 for exits whose target varies (indirect jumps, RET).
template <int L>
PVSIM_ALWAYS_INLINE const Insn* chain(Core& c, const Insn* s) {
  const uint64_t nrip = c.next_rip;
  if (((nrip ^ c.blk_rip) >> 12) != 0) return s;
  const Block* cur = c.blk;
  const Block* nb = cur;
  if (nrip != c.blk_rip) {
    // A loop back to its own start needs no lookup: the running block is still current
    // (a store into it would have left the block through t_generic's brk check). Other
    // targets: the link, else the block cache. Same page, so the running block's
    // generation is the page's (checked on entry; a store into the page ends the block).
    const uint64_t gpa = c.blk_gpa_page | (nrip & 0xfff);
    if constexpr (L >= 0) nb = cur->link[L];
    if (L < 0 || !nb || nb->tag != gpa + 1 || nb->gen != cur->gen) {
      nb = &c.blocks[block_slot(gpa)];
      if (nb->tag != gpa + 1 || nb->gen != cur->gen) return s;
      if constexpr (L >= 0) cur->link[L] = nb;
    }
  }
  // The run loop's conditions for whole-block execution (pending events are excluded
  // on entry: Core::run sets run_insn_limit so that nothing chains then).
  const uint64_t cyc = c.blk_cyc0 + s->cum;
  const uint64_t ins = c.blk_insns0 + cur->count;  // s is the running block's sentinel
  if (cyc + nb->total > c.run_deadline || ins + nb->count > c.run_insn_limit) return s;
  c.blk = nb;
  c.blk_rip = nrip;
  c.blk_cyc0 = cyc;
  c.blk_insns0 = ins;
  return nb->insns[0].tfn(c, nb->insns);
}

// Sentinel after a block whose last instruction falls through (page end, length limit).
const Insn* t_end(Core& c, const Insn* i) {
  c.next_rip = c.blk_rip + i->end;
  return chain<1>(c, i);
}
// Sentinel after a block terminator, which has set next_rip itself.
const Insn* t_end_term(Core&, const Insn* i) {
  return i;
}

__attribute__((noinline)) const Insn* t_generic(Core& c, const Insn* i) {
  c.sync_to(i);
  if (!i->fn(c, *i)) [[unlikely]] {
    c.xfail = true;
    return i;
  }
  c.blk_cyc0 = c.cycles - i->cum;
  if (c.brk || c.blk_cyc0 + c.blk->total > c.run_deadline) [[unlikely]]
    return i + 1;
  PVSIM_NEXT(c, i);
}

// ---------------- operands ----------------

template <unsigned S>
PVSIM_ALWAYS_INLINE uint64_t trunc(uint64_t v) {
  return v & size_mask(S);
}
// Register write of a 4- or 8-byte result (32-bit writes zero-extend, SDM Vol. 1 §3.4.1.1).
template <unsigned S>
PVSIM_ALWAYS_INLINE void put(Core& c, unsigned r, uint64_t v) {
  c.gpr[r] = trunc<S>(v);
}
// Effective address of a plain memory operand: 64-bit addressing, no FS/GS, not
// RIP-relative (finish_block only picks the memory specialisations for those).
PVSIM_ALWAYS_INLINE uint64_t fea(const Core& c, const Insn* i) {
  return static_cast<uint64_t>(static_cast<int64_t>(i->disp)) + c.gpr[i->fb] +
         (c.gpr[i->fi] << i->scale);
}
// Host pointer for an access of S bytes inside one page that hits the read / write TLB.
template <unsigned S>
PVSIM_ALWAYS_INLINE uint8_t* rd_ptr(Core& c, uint64_t la) {
  const TlbEntry& e = c.tlb[0][(la >> 12) & kTlbMask];
  const uint64_t off = la & 0xfff;
  return (e.tag == c.tlb_key(la) && off <= 4096 - S) ? e.host + off : nullptr;
}
template <unsigned S>
PVSIM_ALWAYS_INLINE uint8_t* wr_ptr(Core& c, uint64_t la) {
  const TlbEntry& e = c.tlb[1][(la >> 12) & kTlbMask];
  const uint64_t off = la & 0xfff;
  return (e.tag == c.tlb_wkey(la) && off <= 4096 - S) ? e.host + off : nullptr;
}

// ---------------- ALU ----------------

enum class Op { Add, Sub, And, Or, Xor, Cmp, Test };
constexpr bool writes_result(Op op) {
  return op != Op::Cmp && op != Op::Test;
}
// Result and (when F) the lazy flags of a two-operand ALU op, as exec_alu.cpp's alu().
template <Op OP, unsigned S, bool F>
PVSIM_ALWAYS_INLINE uint64_t alu(Core& c, uint64_t a, uint64_t b) {
  uint64_t r;
  if constexpr (OP == Op::Add) {
    r = trunc<S>(a + b);
    if constexpr (F) c.set_lazy(kLazyAdd, a, b, r, S);
  } else if constexpr (OP == Op::Sub || OP == Op::Cmp) {
    r = trunc<S>(a - b);
    if constexpr (F) c.set_lazy(kLazySub, a, b, r, S);
  } else {
    if constexpr (OP == Op::And || OP == Op::Test) r = a & b;
    if constexpr (OP == Op::Or) r = a | b;
    if constexpr (OP == Op::Xor) r = a ^ b;
    if constexpr (F) c.set_lazy(kLazyLogic, 0, 0, r, S);
  }
  return r;
}

// dst = rm (E form) or reg (G form); the other operand is the other register.
template <Op OP, unsigned S, bool F, bool GDST>
const Insn* t_alu_rr(Core& c, const Insn* i) {
  const unsigned d = GDST ? i->reg : i->rm, s = GDST ? i->rm : i->reg;
  const uint64_t r = alu<OP, S, F>(c, trunc<S>(c.gpr[d]), trunc<S>(c.gpr[s]));
  if constexpr (writes_result(OP)) put<S>(c, d, r);
  PVSIM_NEXT(c, i);
}
// rm (register) op immediate; rAX forms have rm = 0.
template <Op OP, unsigned S, bool F>
const Insn* t_alu_ri(Core& c, const Insn* i) {
  const uint64_t r = alu<OP, S, F>(c, trunc<S>(c.gpr[i->rm]), trunc<S>(i->imm));
  if constexpr (writes_result(OP)) put<S>(c, i->rm, r);
  PVSIM_NEXT(c, i);
}
// reg op [mem] (G form with a memory source; also CMP/TEST with memory on either side).
template <Op OP, unsigned S>
const Insn* t_alu_rm(Core& c, const Insn* i) {
  const uint8_t* p = rd_ptr<S>(c, fea(c, i));
  if (!p) [[unlikely]]
    return t_generic(c, i);
  const uint64_t r = alu<OP, S, true>(c, trunc<S>(c.gpr[i->reg]), load_le(p, S));
  if constexpr (writes_result(OP)) put<S>(c, i->reg, r);
  PVSIM_NEXT(c, i);
}
// [mem] op reg / [mem] op imm: CMP/TEST only read, the others read-modify-write.
template <Op OP, unsigned S, bool IMM>
const Insn* t_alu_mx(Core& c, const Insn* i) {
  const uint64_t la = fea(c, i);
  const uint64_t src = IMM ? trunc<S>(i->imm) : trunc<S>(c.gpr[i->reg]);
  if constexpr (writes_result(OP)) {
    uint8_t* p = wr_ptr<S>(c, la);
    if (!p) [[unlikely]]
      return t_generic(c, i);
    store_le(p, S, alu<OP, S, true>(c, load_le(p, S), src));
  } else {
    const uint8_t* p = rd_ptr<S>(c, la);
    if (!p) [[unlikely]]
      return t_generic(c, i);
    alu<OP, S, true>(c, load_le(p, S), src);
  }
  PVSIM_NEXT(c, i);
}

// ---------------- moves ----------------

template <unsigned S, bool GDST>
const Insn* t_mov_rr(Core& c, const Insn* i) {
  if constexpr (GDST)
    put<S>(c, i->reg, c.gpr[i->rm]);
  else
    put<S>(c, i->rm, c.gpr[i->reg]);
  PVSIM_NEXT(c, i);
}
// reg = zero/sign-extended load of SRC bytes (SX: sign), written with size S.
template <unsigned S, unsigned SRC, bool SX>
const Insn* t_load(Core& c, const Insn* i) {
  const uint8_t* p = rd_ptr<SRC>(c, fea(c, i));
  if (!p) [[unlikely]]
    return t_generic(c, i);
  const uint64_t v = load_le(p, SRC);
  put<S>(c, i->reg, SX ? static_cast<uint64_t>(sext(v, SRC)) : v);
  PVSIM_NEXT(c, i);
}
// Register-source extension (MOVZX/MOVSX/MOVSXD from a register of SRC bytes; the byte
// forms only for registers that are not AH..BH).
template <unsigned S, unsigned SRC, bool SX>
const Insn* t_ext_rr(Core& c, const Insn* i) {
  const uint64_t v = trunc<SRC>(c.gpr[i->rm]);
  put<S>(c, i->reg, SX ? static_cast<uint64_t>(sext(v, SRC)) : v);
  PVSIM_NEXT(c, i);
}
// [mem] = reg (IMM: = immediate), S bytes.
template <unsigned S, bool IMM>
const Insn* t_store(Core& c, const Insn* i) {
  uint8_t* p = wr_ptr<S>(c, fea(c, i));
  if (!p) [[unlikely]]
    return t_generic(c, i);
  store_le(p, S, IMM ? i->imm : c.gpr[i->reg]);
  PVSIM_NEXT(c, i);
}
template <unsigned S>
const Insn* t_mov_ri(Core& c, const Insn* i) {  // MOV r, imm (B8+r) and MOV r/m(reg), imm32
  put<S>(c, i->rm, i->imm);
  PVSIM_NEXT(c, i);
}
template <unsigned S>
const Insn* t_lea(Core& c, const Insn* i) {
  put<S>(c, i->reg, fea(c, i));
  PVSIM_NEXT(c, i);
}
const Insn* t_nop(Core& c, const Insn* i) {
  PVSIM_NEXT(c, i);
}
const Insn* t_push(Core& c, const Insn* i) {
  const uint64_t sp = c.gpr[4] - 8;
  uint8_t* p = wr_ptr<8>(c, sp);
  if (!p) [[unlikely]]
    return t_generic(c, i);
  store_le(p, 8, c.gpr[i->reg]);
  c.gpr[4] = sp;
  PVSIM_NEXT(c, i);
}
const Insn* t_pop(Core& c, const Insn* i) {
  const uint8_t* p = rd_ptr<8>(c, c.gpr[4]);
  if (!p) [[unlikely]]
    return t_generic(c, i);
  const uint64_t v = load_le(p, 8);
  c.gpr[4] += 8;
  c.gpr[i->reg] = v;  // POP RSP: the popped value wins over the increment
  PVSIM_NEXT(c, i);
}
template <unsigned S, unsigned CC>
const Insn* t_cmov_rr(Core& c, const Insn* i) {
  if (c.cond(CC))
    put<S>(c, i->reg, c.gpr[i->rm]);
  else if constexpr (S == 4)
    c.gpr[i->reg] &= 0xffffffff;  // the 32-bit form zero-extends even when not moving
  PVSIM_NEXT(c, i);
}
template <unsigned CC>
const Insn* t_setcc_r(Core& c, const Insn* i) {
  c.gpr[i->rm] = (c.gpr[i->rm] & ~0xffull) | (c.cond(CC) ? 1 : 0);
  PVSIM_NEXT(c, i);
}

// ---------------- shifts, rotates, multiply (register forms, immediate count) ----------------

enum class Sh { Shl, Shr, Sar, Rol, Ror };
// Same results and flags as exec_alu.cpp's shift() for a count already known to be
// non-zero after masking (finish_block checks), so the flags are always written.
template <Sh K, unsigned S, bool F>
const Insn* t_shift_ri(Core& c, const Insn* i) {
  constexpr unsigned bits = S * 8;
  const unsigned n = static_cast<unsigned>(i->imm) & (S == 8 ? 63 : 31);
  const uint64_t a = trunc<S>(c.gpr[i->rm]);
  uint64_t r;
  if constexpr (K == Sh::Shl) {
    r = trunc<S>(a << n);  // n < 64; for S == 4, n <= 31 < bits
    if constexpr (F) {
      const uint64_t cf = (a >> (bits - n)) & 1;
      const uint64_t of = ((r >> (bits - 1)) & 1) ^ cf;
      c.set_arith(flags_szp(r, S) | cf | (of << 11));
    }
  } else if constexpr (K == Sh::Shr) {
    r = a >> n;
    if constexpr (F) {
      const uint64_t cf = (a >> (n - 1)) & 1;
      const uint64_t of = (a >> (bits - 1)) & 1;
      c.set_arith(flags_szp(r, S) | cf | (of << 11));
    }
  } else if constexpr (K == Sh::Sar) {
    const int64_t sa = sext(a, S);
    r = trunc<S>(static_cast<uint64_t>(sa >> n));
    if constexpr (F) c.set_arith(flags_szp(r, S) | (static_cast<uint64_t>(sa >> (n - 1)) & 1));
  } else {
    const unsigned m = n % bits;
    if constexpr (K == Sh::Rol)
      r = m ? trunc<S>((a << m) | (a >> (bits - m))) : a;
    else
      r = m ? trunc<S>((a >> m) | (a << (bits - m))) : a;
    // Rotates write only CF and OF (SDM Vol. 2B "RCL/RCR/ROL/ROR"): always F.
    const uint64_t msb = (r >> (bits - 1)) & 1;
    uint64_t cf, of;
    if constexpr (K == Sh::Rol) {
      cf = r & 1;
      of = msb ^ cf;
    } else {
      cf = msb;
      of = msb ^ ((r >> (bits - 2)) & 1);
    }
    const uint64_t f = c.flags() & ~(fl::CF | fl::OF);
    c.set_arith((f | cf | (of << 11)) & fl::kArith);
  }
  put<S>(c, i->rm, r);
  PVSIM_NEXT(c, i);
}
// IMUL r, r/m(reg) [, imm]: truncated signed product; CF = OF = it did not fit.
template <unsigned S, bool F, bool IMM>
const Insn* t_imul_rr(Core& c, const Insn* i) {
  const uint64_t a = IMM ? c.gpr[i->rm] : c.gpr[i->reg];
  const uint64_t b = IMM ? i->imm : c.gpr[i->rm];
  uint64_t lo;
  if constexpr (S == 8) {
    const __int128 p = static_cast<__int128>(static_cast<int64_t>(a)) * static_cast<int64_t>(b);
    lo = static_cast<uint64_t>(p);
    if constexpr (F) {
      uint64_t f = flags_szp(lo, 8);
      if (p != static_cast<__int128>(static_cast<int64_t>(lo))) f |= fl::CF | fl::OF;
      c.set_arith(f);
    }
  } else {
    const int64_t p = static_cast<int64_t>(static_cast<int32_t>(a)) * static_cast<int32_t>(b);
    lo = static_cast<uint32_t>(p);
    if constexpr (F) {
      uint64_t f = flags_szp(lo, 4);
      if (p != static_cast<int32_t>(p)) f |= fl::CF | fl::OF;
      c.set_arith(f);
    }
  }
  put<S>(c, i->reg, lo);
  PVSIM_NEXT(c, i);
}

// ---------------- block terminators ----------------
// They set next_rip and return to the run loop (the sentinel after them does nothing).
// A taken branch costs one more cycle (core/README.md "Cost model"): blk_cyc0 += 1.

// Condition CC from the lazy flags without materialising them, when that is cheap;
// otherwise -1 (the caller then materialises the flags out of line).
template <unsigned CC>
PVSIM_ALWAYS_INLINE int cond_fast(const Core& c) {
  constexpr unsigned k = CC >> 1;
  bool r;
  if (c.lz.op == kLazyNone) return cond_holds(CC, c.rf);
  if (c.lz.op == kLazySub && k != 0 && k != 4 && k != 5) {
    const uint64_t a = c.lz.a, b = c.lz.b;
    if constexpr (k == 1)
      r = a < b;
    else if constexpr (k == 2)
      r = a == b;
    else if constexpr (k == 3)
      r = a <= b;
    else if constexpr (k == 6)
      r = sext(a, c.lz.size) < sext(b, c.lz.size);
    else
      r = sext(a, c.lz.size) <= sext(b, c.lz.size);
    return (CC & 1) ? !r : r;
  }
  if constexpr (k == 2) return ((CC & 1) != 0) != (c.lz.r == 0);  // ZF of any lazy op
  return -1;
}

template <unsigned CC>
const Insn* t_jcc(Core& c, const Insn* i);
// Materialises the flags (out of line, so t_jcc itself needs no saved registers) and
// retries: the retry takes cond_fast's lz.op == kLazyNone path.
template <unsigned CC>
__attribute__((noinline)) const Insn* t_jcc_flags(Core& c, const Insn* i) {
  c.flags();
  return t_jcc<CC>(c, i);
}
template <unsigned CC>
const Insn* t_jcc(Core& c, const Insn* i) {
  const int taken = cond_fast<CC>(c);
  if (taken < 0) [[unlikely]]
    return t_jcc_flags<CC>(c, i);
  const uint64_t fall = c.blk_rip + i->end;
  if (taken) {
    const uint64_t t = fall + i->imm;
    if (!is_canonical(t)) [[unlikely]]
      return t_generic(c, i);
    c.next_rip = t;
    c.blk_cyc0 += 1;
    return chain<0>(c, i + 1);
  }
  c.next_rip = fall;
  return chain<1>(c, i + 1);
}
const Insn* t_jmp(Core& c, const Insn* i) {
  const uint64_t t = c.blk_rip + i->end + i->imm;
  if (!is_canonical(t)) [[unlikely]]
    return t_generic(c, i);
  c.next_rip = t;
  c.blk_cyc0 += 1;
  return chain<0>(c, i + 1);
}
template <bool MEM>
const Insn* t_jmp_ind(Core& c, const Insn* i) {
  uint64_t t;
  if constexpr (MEM) {
    const uint8_t* p = rd_ptr<8>(c, fea(c, i));
    if (!p) [[unlikely]]
      return t_generic(c, i);
    t = load_le(p, 8);
  } else {
    t = c.gpr[i->rm];
  }
  if (!is_canonical(t)) [[unlikely]]
    return t_generic(c, i);
  c.next_rip = t;
  c.blk_cyc0 += 1;
  return chain<-1>(c, i + 1);
}
const Insn* t_call(Core& c, const Insn* i) {
  const uint64_t ret = c.blk_rip + i->end;
  const uint64_t t = ret + i->imm;
  const uint64_t sp = c.gpr[4] - 8;
  uint8_t* p = wr_ptr<8>(c, sp);
  if (!p || !is_canonical(t)) [[unlikely]]
    return t_generic(c, i);
  store_le(p, 8, ret);
  c.gpr[4] = sp;
  c.next_rip = t;
  c.blk_cyc0 += 1;
  return chain<0>(c, i + 1);
}
const Insn* t_ret(Core& c, const Insn* i) {
  const uint8_t* p = rd_ptr<8>(c, c.gpr[4]);
  if (!p) [[unlikely]]
    return t_generic(c, i);
  const uint64_t t = load_le(p, 8);
  if (!is_canonical(t)) [[unlikely]]
    return t_generic(c, i);
  c.gpr[4] += 8;
  c.next_rip = t;
  c.blk_cyc0 += 1;
  return chain<-1>(c, i + 1);
}

// ---------------- selection ----------------

// What the liveness pass needs to know about an instruction's arithmetic flags.
enum class FlagUse : uint8_t {
  Observe,   // reads them, or may leave the block (fallback, fault, generic handler)
  Neutral,   // register-only, neither reads nor writes them, cannot leave the block
  WriteAll,  // register-only, writes all six without reading them, cannot leave the block
};
struct Pick {
  Threaded with_flags = t_generic;
  Threaded without_flags = nullptr;  // set for WriteAll picks
  FlagUse use = FlagUse::Observe;
};

template <Op OP, unsigned S>
Pick pick_alu_rr(bool gdst) {
  if (gdst) return {t_alu_rr<OP, S, true, true>, t_alu_rr<OP, S, false, true>, FlagUse::WriteAll};
  return {t_alu_rr<OP, S, true, false>, t_alu_rr<OP, S, false, false>, FlagUse::WriteAll};
}
template <Op OP>
Pick pick_alu(const Insn& in, bool e_form, bool g_form, bool imm_form) {
  const bool w = in.osz == 8;
  if (in.osz != 4 && in.osz != 8) return {};
  if (in.mod3() || (!e_form && !g_form && imm_form)) {  // register forms (rAX forms: rm = 0)
    if (imm_form)
      return w ? Pick{t_alu_ri<OP, 8, true>, t_alu_ri<OP, 8, false>, FlagUse::WriteAll}
               : Pick{t_alu_ri<OP, 4, true>, t_alu_ri<OP, 4, false>, FlagUse::WriteAll};
    return w ? pick_alu_rr<OP, 8>(g_form) : pick_alu_rr<OP, 4>(g_form);
  }
  if (imm_form) return {w ? t_alu_mx<OP, 8, true> : t_alu_mx<OP, 4, true>};
  if (g_form) return {w ? t_alu_rm<OP, 8> : t_alu_rm<OP, 4>};
  return {w ? t_alu_mx<OP, 8, false> : t_alu_mx<OP, 4, false>};
}

template <std::size_t... K>
constexpr auto make_jcc(std::index_sequence<K...>) {
  return std::array<Threaded, 16>{t_jcc<K>...};
}
template <unsigned S, std::size_t... K>
constexpr auto make_cmov(std::index_sequence<K...>) {
  return std::array<Threaded, 16>{t_cmov_rr<S, K>...};
}
template <std::size_t... K>
constexpr auto make_setcc(std::index_sequence<K...>) {
  return std::array<Threaded, 16>{t_setcc_r<K>...};
}
constexpr auto kJcc = make_jcc(std::make_index_sequence<16>{});
constexpr auto kCmov4 = make_cmov<4>(std::make_index_sequence<16>{});
constexpr auto kCmov8 = make_cmov<8>(std::make_index_sequence<16>{});
constexpr auto kSetcc = make_setcc(std::make_index_sequence<16>{});

template <Sh K>
Pick pick_shift(const Insn& in) {
  if (!in.mod3() || (in.osz != 4 && in.osz != 8)) return {};
  if ((in.imm & (in.osz == 8 ? 63 : 31)) == 0) return {};  // count 0: flags unchanged
  if constexpr (K == Sh::Rol || K == Sh::Ror)
    return {in.osz == 8 ? t_shift_ri<K, 8, true> : t_shift_ri<K, 4, true>};
  return in.osz == 8 ? Pick{t_shift_ri<K, 8, true>, t_shift_ri<K, 8, false>, FlagUse::WriteAll}
                     : Pick{t_shift_ri<K, 4, true>, t_shift_ri<K, 4, false>, FlagUse::WriteAll};
}

constexpr Pick neutral(Threaded t) {
  return {t, nullptr, FlagUse::Neutral};
}

// The threaded handler for one decoded instruction. Memory specialisations need a plain
// operand (64-bit addressing, no FS/GS, not RIP-relative); byte-register forms are left
// to the generic handler (AH..BH need the REX rules of Core::getr).
Pick pick(const Insn& in) {
  const auto id = static_cast<OpId>(in.id);
  const bool mem = !in.mod3();
  const bool plain_mem = mem && in.asz == 8 && in.seg == 0 && in.base != kRegRip;
  if (mem && !plain_mem) {
    // LEA ignores segments but still needs the RIP / 32-bit address rules: generic.
    return {};
  }
  const bool w = in.osz == 8, d = in.osz == 4;
  switch (id) {
#define PVSIM_PICK_ALU(N, OP)                    \
  case OpId::N##_EvGv:                           \
    return pick_alu<OP>(in, true, false, false); \
  case OpId::N##_GvEv:                           \
    return pick_alu<OP>(in, false, true, false); \
  case OpId::N##_EvIz:                           \
  case OpId::N##_EvIb:                           \
    return pick_alu<OP>(in, true, false, true);  \
  case OpId::N##_rAXIz:                          \
    return pick_alu<OP>(in, false, false, true);
    PVSIM_PICK_ALU(ADD, Op::Add)
    PVSIM_PICK_ALU(SUB, Op::Sub)
    PVSIM_PICK_ALU(AND, Op::And)
    PVSIM_PICK_ALU(OR, Op::Or)
    PVSIM_PICK_ALU(XOR, Op::Xor)
    PVSIM_PICK_ALU(CMP, Op::Cmp)
#undef PVSIM_PICK_ALU
    case OpId::TEST_EvGv:
      return pick_alu<Op::Test>(in, true, false, false);
    case OpId::TEST_rAXIz:
      return pick_alu<Op::Test>(in, false, false, true);
    case OpId::TEST_EvIz:
      return pick_alu<Op::Test>(in, true, false, true);
    case OpId::CMP_EbIb:
      if (mem) return {t_alu_mx<Op::Cmp, 1, true>};
      return {};
    case OpId::MOV_EvGv:
      if (!w && !d) return {};
      if (mem) return {w ? t_store<8, false> : t_store<4, false>};
      return neutral(w ? t_mov_rr<8, false> : t_mov_rr<4, false>);
    case OpId::MOV_GvEv:
      if (!w && !d) return {};
      if (mem) return {w ? t_load<8, 8, false> : t_load<4, 4, false>};
      return neutral(w ? t_mov_rr<8, true> : t_mov_rr<4, true>);
    case OpId::MOV_EbGb:
      // A byte store of a low register (with REX any of the 16; without, AL..BL only).
      if (mem && ((in.pfx & P_REX) || in.reg < 4)) return {t_store<1, false>};
      return {};
    case OpId::MOV_EbIb:
      if (mem) return {t_store<1, true>};
      return {};
    case OpId::MOV_EvIz:
      if (!w && !d) return {};
      if (mem) return {w ? t_store<8, true> : t_store<4, true>};
      return neutral(w ? t_mov_ri<8> : t_mov_ri<4>);
    case OpId::MOV_rvIv: {
      if (!w && !d) return {};
      // The register is in the opcode (Insn::reg); t_mov_ri writes Insn::rm.
      return neutral(w ? t_mov_ri<8> : t_mov_ri<4>);
    }
    case OpId::MOVZX_GvEb:
      if (!w && !d) return {};
      if (mem) return {w ? t_load<8, 1, false> : t_load<4, 1, false>};
      if ((in.pfx & P_REX) || in.rm < 4) return neutral(w ? t_ext_rr<8, 1, false> : t_ext_rr<4, 1, false>);
      return {};
    case OpId::MOVZX_GvEw:
      if (!w && !d) return {};
      if (mem) return {w ? t_load<8, 2, false> : t_load<4, 2, false>};
      return neutral(w ? t_ext_rr<8, 2, false> : t_ext_rr<4, 2, false>);
    case OpId::MOVSX_GvEb:
      if (!w && !d) return {};
      if (mem) return {w ? t_load<8, 1, true> : t_load<4, 1, true>};
      if ((in.pfx & P_REX) || in.rm < 4) return neutral(w ? t_ext_rr<8, 1, true> : t_ext_rr<4, 1, true>);
      return {};
    case OpId::MOVSX_GvEw:
      if (!w && !d) return {};
      if (mem) return {w ? t_load<8, 2, true> : t_load<4, 2, true>};
      return neutral(w ? t_ext_rr<8, 2, true> : t_ext_rr<4, 2, true>);
    case OpId::MOVSXD_GvEd:
      if (!w) return {};
      if (mem) return {t_load<8, 4, true>};
      return neutral(t_ext_rr<8, 4, true>);
    case OpId::LEA_GvM:
      if (!w && !d) return {};
      return neutral(w ? t_lea<8> : t_lea<4>);
    case OpId::NOP_Ev:
      return neutral(t_nop);
    case OpId::PUSH_rv:
      return w ? Pick{t_push} : Pick{};
    case OpId::POP_rv:
      return w ? Pick{t_pop} : Pick{};
    case OpId::CMOVcc_GvEv:
      if (mem || (!w && !d)) return {};
      return {w ? kCmov8[in.cond] : kCmov4[in.cond]};
    case OpId::SETcc_Eb:
      if (mem || !((in.pfx & P_REX) || in.rm < 4)) return {};
      return {kSetcc[in.cond]};
    case OpId::SHL_EvIb:
    case OpId::SAL_EvIb:
      return pick_shift<Sh::Shl>(in);
    case OpId::SHR_EvIb:
      return pick_shift<Sh::Shr>(in);
    case OpId::SAR_EvIb:
      return pick_shift<Sh::Sar>(in);
    case OpId::ROL_EvIb:
      return pick_shift<Sh::Rol>(in);
    case OpId::ROR_EvIb:
      return pick_shift<Sh::Ror>(in);
    case OpId::IMUL_GvEv:
      if (mem || (!w && !d)) return {};
      return w ? Pick{t_imul_rr<8, true, false>, t_imul_rr<8, false, false>, FlagUse::WriteAll}
               : Pick{t_imul_rr<4, true, false>, t_imul_rr<4, false, false>, FlagUse::WriteAll};
    case OpId::IMUL_GvEvIz:
    case OpId::IMUL_GvEvIb:
      if (mem || (!w && !d)) return {};
      return w ? Pick{t_imul_rr<8, true, true>, t_imul_rr<8, false, true>, FlagUse::WriteAll}
               : Pick{t_imul_rr<4, true, true>, t_imul_rr<4, false, true>, FlagUse::WriteAll};
    case OpId::Jcc_Jb:
    case OpId::Jcc_Jz:
      return {kJcc[in.cond]};
    case OpId::JMP_Jb:
    case OpId::JMP_Jz:
      return {t_jmp};
    case OpId::JMP_Ev:
      return {mem ? t_jmp_ind<true> : t_jmp_ind<false>};
    case OpId::CALL_Jz:
      return {t_call};
    case OpId::RET:
      return {t_ret};
    default:
      return {};
  }
}

}  // namespace

void Core::finish_block(Block& b, unsigned n) {
  Pick picks[kBlockMaxInsns];
  uint32_t cum = 0;
  unsigned end = 0;
  for (unsigned k = 0; k < n; ++k) {
    Insn& in = b.insns[k];
    cum += in.cost;
    end += in.len;
    in.cum = cum;
    in.end = static_cast<uint16_t>(end);
    in.fb = in.base < 16 ? in.base : 16;
    in.fi = in.index < 16 ? in.index : 16;
    if (in.id == static_cast<uint16_t>(OpId::MOV_rvIv)) in.rm = in.reg;  // see pick()
    picks[k] = in.id ? pick(in) : Pick{};
  }
  // Flag liveness, backwards: the flags are observable after the block and at every
  // instruction that reads them or may leave the block.
  bool live = true;
  for (unsigned k = n; k-- > 0;) {
    Insn& in = b.insns[k];
    const Pick& p = picks[k];
    in.tfn = p.with_flags;
    switch (p.use) {
      case FlagUse::WriteAll:
        if (!live && p.without_flags) in.tfn = p.without_flags;
        live = false;
        break;
      case FlagUse::Neutral:
        break;
      case FlagUse::Observe:
        live = true;
        break;
    }
  }
  Insn& s = b.insns[n];
  s = Insn{};
  s.end = static_cast<uint16_t>(end);
  s.cum = cum;
  s.tfn = (n > 0 && insn_ends_block(b.insns[n - 1])) ? t_end_term : t_end;
  b.count = n;
  b.total = cum;
}

}  // namespace pvsim::cpu
