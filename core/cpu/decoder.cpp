// core/cpu/decoder.cpp — table-driven decoder (SDM Vol. 2A chapter 2, "Instruction Format").
#include "core/cpu/decoder.h"

#include <array>
#include <vector>

#include "core/cpu/core.h"
#include "core/cpu/handlers.h"

namespace pvsim::cpu {

namespace {

struct OpInfo {
  Handler fn;
  const char* name;
  uint8_t map, opcode, span, pfx, modrm, mod, reg, rm, imm, size;
  uint16_t cost;
  uint8_t attr;
  OpId id;
};

constexpr OpInfo kOps[] = {
#define OP(name, map, opc, span, pfx, modrm, mod, reg, rm, imm, size, cost, attr)                 \
  {&name, #name, map,       static_cast<uint8_t>(opc), span, pfx, modrm, mod, reg, rm, imm, size, \
   cost,  attr,  OpId::name},
#include "core/cpu/opcodes.def"
#undef OP
};

// Candidate lines per (map, opcode), in table order. Built once; decode-time only.
struct Slots {
  std::array<std::vector<uint16_t>, 4 * 256> lines;
  Slots() {
    for (uint16_t k = 0; k < std::size(kOps); ++k) {
      const OpInfo& o = kOps[k];
      for (unsigned j = 0; j < o.span; ++j)
        lines[o.map * 256 + ((o.opcode + j) & 0xff)].push_back(k);
    }
  }
};
const Slots& slots() {
  static const Slots s;
  return s;
}

constexpr unsigned kMaxLen = 15;

}  // namespace

const char* op_name(OpId id) {
  const auto n = static_cast<uint16_t>(id);
  if (n == 0 || n > std::size(kOps)) return "(invalid)";
  return kOps[n - 1].name;
}

DecodeStatus decode(const uint8_t* p, size_t avail, Insn& out, uint8_t mode) {
  size_t pos = 0;
  uint8_t rex = 0, rep = 0, seg = 0;
  int sego = -1;  // segment override outside 64-bit mode (ES 0 .. GS 5), -1 = none
  bool opsz = false, adsz = false, lock = false;
  const bool leg = mode != kMode64;
  auto need = [&](size_t n) { return pos + n <= avail; };
  auto limit_status = [&]() {
    return pos + 1 > kMaxLen ? DecodeStatus::TooLong : DecodeStatus::NeedMore;
  };

  // Legacy prefixes and REX. A REX prefix only counts when it immediately precedes the
  // opcode (SDM Vol. 2A §2.2.1): any legacy prefix after it cancels it. Outside 64-bit
  // mode 40-4F are INC/DEC (opcodes.def) and the four classic segment overrides count.
  uint8_t b;
  for (;;) {
    if (pos >= kMaxLen) return DecodeStatus::TooLong;
    if (!need(1)) return DecodeStatus::NeedMore;
    b = p[pos];
    if ((b & 0xf0) == 0x40 && !leg) {
      rex = b;
      ++pos;
      continue;
    }
    bool is_prefix = true;
    switch (b) {
      case 0x66:
        opsz = true;
        break;
      case 0x67:
        adsz = true;
        break;
      case 0xf0:
        lock = true;
        break;
      case 0xf2:
      case 0xf3:
        rep = b;
        break;
      case 0x64:
        seg = 4;  // FS
        sego = 4;
        break;
      case 0x65:
        seg = 5;  // GS
        sego = 5;
        break;
      case 0x26:
      case 0x2e:
      case 0x36:
      case 0x3e:
        sego = (b >> 3) & 3;  // ES 0, CS 1, SS 2, DS 3; no-ops in 64-bit mode
        break;
      default:
        is_prefix = false;
        break;
    }
    if (!is_prefix) break;
    rex = 0;
    ++pos;
  }

  // Opcode and map.
  unsigned map = MAP_1B;
  uint8_t op = p[pos++];
  if (op == 0x0f) {
    if (pos >= kMaxLen) return DecodeStatus::TooLong;
    if (!need(1)) return DecodeStatus::NeedMore;
    op = p[pos++];
    map = MAP_0F;
    if (op == 0x38 || op == 0x3a) {
      if (pos >= kMaxLen) return DecodeStatus::TooLong;
      if (!need(1)) return DecodeStatus::NeedMore;
      map = op == 0x38 ? MAP_0F38 : MAP_0F3A;
      op = p[pos++];
    }
  }
  const std::vector<uint16_t>& cand = slots().lines[map * 256 + op];
  if (cand.empty()) return DecodeStatus::Invalid;

  // ModRM (all lines of one opcode agree on whether it has one).
  const bool has_modrm = kOps[cand.front()].modrm == MODRM;
  uint8_t modrm = 0, mod = 0, mreg = 0, mrm = 0;
  if (has_modrm) {
    if (pos >= kMaxLen) return DecodeStatus::TooLong;
    if (!need(1)) return DecodeStatus::NeedMore;
    modrm = p[pos++];
    mod = modrm >> 6;
    // MOV to/from CRn and DRn ignore the mod field: the operand is always a register and
    // no SIB or displacement follows (SDM Vol. 2B "MOV—Move to/from Control Registers").
    if (map == MAP_0F && (op & 0xfc) == 0x20) mod = 3;
    mreg = (modrm >> 3) & 7;
    mrm = modrm & 7;
  }
  const OpInfo* info = nullptr;
  for (uint16_t k : cand) {
    const OpInfo& o = kOps[k];
    if (o.pfx == PF3 && rep != 0xf3) continue;
    if (o.pfx == PNONE && rep) continue;
    if ((o.attr & A_NO64) && !leg) continue;
    if ((o.attr & A_ONLY64) && leg) continue;
    if (has_modrm) {
      if (o.reg != NA && o.reg != mreg) continue;
      if (o.mod == MMEM && mod == 3) continue;
      if (o.mod == MREG && mod != 3) continue;
      if (o.rm != NA && o.rm != mrm) continue;
    }
    info = &o;
    break;
  }
  if (!info) return DecodeStatus::Invalid;

  Insn in{};
  in.fn = info->fn;
  in.id = static_cast<uint16_t>(info->id);
  in.cost = info->cost;
  in.seg = seg;
  in.pfx = (rex ? P_REX : 0) | ((rex & 8) ? P_REXW : 0) | (rep == 0xf3 ? P_REP : 0) |
           (rep == 0xf2 ? P_REPNE : 0) | (lock ? P_LOCK : 0);
  if (!leg) {
    in.asz = adsz ? 4 : 8;
    switch (info->size) {
      case SB:
        in.osz = 1;
        break;
      case SV:
        in.osz = (rex & 8) ? 8 : opsz ? 2 : 4;
        break;
      case SD64:
        in.osz = opsz ? 2 : 8;
        break;
      case SF64:
        in.osz = 8;
        break;
      default:
        in.osz = 2;
        break;
    }
  } else {
    // Outside 64-bit mode CS.D picks the default operand and address size and 66 / 67
    // select the other one (SDM Vol. 1 §3.6, Table 3-4); the "default 64" and "forced 64"
    // kinds are plain operand-size forms there.
    const uint8_t dflt = mode == kMode16 ? 2 : 4;
    const uint8_t other = mode == kMode16 ? 4 : 2;
    in.pfx |= P_LEG;
    in.asz = adsz ? other : dflt;
    in.osz = info->size == SB ? 1 : info->size == SW ? 2 : opsz ? other : dflt;
    in.seg = sego >= 0 ? static_cast<uint8_t>(sego) : 3;  // DS unless overridden
  }
  if (info->span == 16) in.cond = op & 0xf;
  if (info->span == 8) in.reg = (op & 7) | ((rex & 1) << 3);

  if (has_modrm) {
    in.reg = mreg | ((rex & 4) << 1);
    // rm is also kept for memory forms: MOV to/from CRn ignores mod (SDM Vol. 2B).
    in.rm = mrm | ((rex & 1) << 3);
    if (mod == 3) {
      in.pfx |= P_MOD3;
    } else if (in.asz == 2) {
      // 16-bit addressing (SDM Vol. 2A Table 2-1): base and index from rm, disp8 / disp16.
      in.cost += kMemOperandCycles;
      static constexpr uint8_t kBase16[8] = {3, 3, 5, 5, 6, 7, 5, 3};  // BX BX BP BP SI DI BP BX
      static constexpr uint8_t kIndex16[8] = {6, 7, 6, 7, kRegNone, kRegNone, kRegNone, kRegNone};
      in.base = kBase16[mrm];
      in.index = kIndex16[mrm];
      unsigned dsz = mod == 1 ? 1 : mod == 2 ? 2 : 0;
      if (mod == 0 && mrm == 6) {
        in.base = kRegNone;  // [disp16]
        dsz = 2;
      }
      if (dsz) {
        if (pos + dsz > kMaxLen) return DecodeStatus::TooLong;
        if (!need(dsz)) return DecodeStatus::NeedMore;
        in.disp = dsz == 1 ? static_cast<int8_t>(p[pos])
                           : static_cast<int16_t>(p[pos] | (p[pos + 1] << 8));
        pos += dsz;
      }
      if (sego < 0 && in.base == 5) in.seg = 2;  // BP-based forms default to SS
    } else {
      in.cost += kMemOperandCycles;
      if (mrm == 4) {  // SIB
        if (pos >= kMaxLen) return DecodeStatus::TooLong;
        if (!need(1)) return DecodeStatus::NeedMore;
        const uint8_t sib = p[pos++];
        const uint8_t idx = ((sib >> 3) & 7) | ((rex & 2) << 2);
        const uint8_t base = (sib & 7) | ((rex & 1) << 3);
        in.scale = sib >> 6;
        in.index = idx == 4 ? kRegNone : idx;  // index 100b without REX.X: no index
        if ((sib & 7) == 5 && mod == 0) {
          in.base = kRegNone;  // disp32, no base
          mod = 2;             // read a disp32 below
        } else {
          in.base = base;
        }
      } else if (mrm == 5 && mod == 0) {
        // RIP-relative in 64-bit mode (SDM Vol. 2A §2.2.1.6), a plain disp32 outside it.
        in.base = leg ? kRegNone : kRegRip;
        mod = 2;
      } else {
        in.base = mrm | ((rex & 1) << 3);
      }
      if (mod == 1) {
        if (pos >= kMaxLen) return DecodeStatus::TooLong;
        if (!need(1)) return DecodeStatus::NeedMore;
        in.disp = static_cast<int8_t>(p[pos++]);
      } else if (mod == 2) {
        if (pos + 4 > kMaxLen) {
          pos = kMaxLen;
          return limit_status();
        }
        if (!need(4)) return DecodeStatus::NeedMore;
        in.disp = static_cast<int32_t>(p[pos] | (p[pos + 1] << 8) | (p[pos + 2] << 16) |
                                       (static_cast<uint32_t>(p[pos + 3]) << 24));
        pos += 4;
      }
      // ESP- and EBP-based forms default to SS (SDM Vol. 1 §3.7.4).
      if (leg && sego < 0 && (in.base == 4 || in.base == 5)) in.seg = 2;
    }
  }

  // Immediate.
  unsigned isz = 0;
  bool isign = false;
  switch (info->imm) {
    case I_NONE:
      break;
    case I_B:
      isz = 1;
      break;
    case I_BS:
    case I_J8:
      isz = 1;
      isign = true;
      break;
    case I_W:
      isz = 2;
      break;
    case I_Z:
      isz = in.osz == 2 ? 2 : 4;
      isign = true;
      break;
    case I_V:
      isz = in.osz;
      break;
    case I_J32:
      isz = leg && in.osz == 2 ? 2 : 4;  // rel16 with a 16-bit operand size outside 64-bit mode
      isign = true;
      break;
    case I_AP:
      isz = in.osz + 2u;  // ptr16:16 / ptr16:32: offset, then the selector
      break;
    case I_MOFFS:
      isz = in.asz;
      break;
  }
  if (isz) {
    if (pos + isz > kMaxLen) return DecodeStatus::TooLong;
    if (!need(isz)) return DecodeStatus::NeedMore;
    uint64_t v = 0;
    for (unsigned k = 0; k < isz; ++k) v |= static_cast<uint64_t>(p[pos + k]) << (8 * k);
    pos += isz;
    if (info->imm == I_AP) {
      in.disp = static_cast<int32_t>(v >> (8 * in.osz));  // the selector
      v &= size_mask(in.osz);
    }
    if (isign) v = static_cast<uint64_t>(sext(v, isz));
    in.imm = v;
  }
  if (lock && (!(info->attr & A_LOCK) || (in.pfx & P_MOD3))) return DecodeStatus::Invalid;
  in.len = static_cast<uint8_t>(pos);
  out = in;
  return DecodeStatus::Ok;
}

bool insn_ends_block(const Insn& i) {
  const auto n = i.id;
  return n == 0 || n > std::size(kOps) || (kOps[n - 1].attr & A_TERM);
}

size_t decode_length(const uint8_t* p, size_t n, uint8_t mode) {
  Insn in;
  return decode(p, n, in, mode) == DecodeStatus::Ok ? in.len : 0;
}

}  // namespace pvsim::cpu
