// tests/oracle/encoder.cpp — random concrete encodings of a Form (SDM Vol. 2A §2.1–2.2:
// legacy prefixes, REX, opcode, ModRM, SIB, displacement, immediate).
#include <cstdio>
#include <utility>

#include "tests/oracle/form.h"

namespace pvsim::oracle {

namespace {

bool has_modrm(Operands o) {
  return o == Operands::EG || o == Operands::GE || o == Operands::E || o == Operands::EI ||
         o == Operands::GEI || o == Operands::EGI;
}
bool reg_is_operand(Operands o) {
  return o == Operands::EG || o == Operands::GE || o == Operands::GEI || o == Operands::EGI;
}

class Bytes {
 public:
  void put(uint8_t b) {
    if (m_len < 15) m_buf[m_len] = b;
    ++m_len;
  }
  void put_le(uint64_t v, unsigned n) {
    for (unsigned i = 0; i < n; ++i) put(static_cast<uint8_t>(v >> (8 * i)));
  }
  unsigned len() const { return m_len; }
  uint8_t* data() { return m_buf; }

 private:
  uint8_t m_buf[16] = {};
  unsigned m_len = 0;
};

// A random linear address inside the data window for a fixed-address operand; BT*'s bit
// offset adds up to ±1 KiB to it, so that form stays central.
uint64_t window_target(const Form& f, SplitMix64& rng, uint64_t data_base) {
  return f.special == Special::BitOffsetReg ? data_base + 3 * 1024 + rng.below(2048)
                                            : data_base + 64 + rng.below(kDataSize - 128);
}

// 16-bit ModRM memory forms (SDM Vol. 2A Table 2-1): rm -> base, index.
constexpr int kRm16Base[8] = {3, 3, 5, 5, -1, -1, 5, 3};     // BX BX BP BP - - BP BX
constexpr int kRm16Index[8] = {6, 7, 6, 7, 6, 7, -1, -1};    // SI DI SI DI SI DI - -

// Encodings outside 64-bit mode: no REX (0x40-0x4F are INC/DEC), eight registers, no
// RIP-relative form ([disp32] is absolute), 66/67 toggle between the mode's default
// (32 bits with CS.D = 1, 16 in real mode) and the other size (SDM Vol. 1 §3.6,
// Vol. 2A §2.1.1 and Table 2-1 / 2-2).
Encoded encode_legacy(const Form& f, SplitMix64& rng, uint64_t addr) {
  Encoded e;
  e.addr = addr;
  const ModeLayout lay = layout_of(f.mode);
  const unsigned def = f.mode == CpuMode::Real16 ? 16 : 32;
  const bool modrm = has_modrm(f.ops);
  if (reg_is_operand(f.ops) || f.ops == Operands::OpReg) e.reg = static_cast<int>(rng.below(8));
  unsigned mod = 3, rm_field = 0, sib_base = 0, sib_index = 4;
  bool use_sib = false;
  unsigned disp_bytes = 0;
  if (modrm && !f.mem) {
    e.rm = static_cast<int>(rng.below(8));
    rm_field = static_cast<unsigned>(e.rm);
  } else if (modrm && f.asize == 32) {
    const unsigned mode = static_cast<unsigned>(rng.below(8));
    if (mode == 6) {  // mod 00 rm 101: [disp32], absolute outside 64-bit mode (Table 2-2)
      e.absolute = true;
      mod = 0;
      rm_field = 5;
      disp_bytes = 4;
      e.fixed_ea = window_target(f, rng, lay.data_base);
      e.disp = static_cast<int64_t>(e.fixed_ea - lay.data_seg_base);
    } else if (mode == 5) {  // SIB base 101 with mod 00: [index*scale + disp32]
      use_sib = true;
      mod = 0;
      sib_base = 5;
      disp_bytes = 4;
      do e.index = static_cast<int>(rng.below(8)); while (e.index == 4);
      e.scale = 1u << rng.below(4);
      e.disp = static_cast<int64_t>(lay.data_base + kDataSize / 2 - lay.data_seg_base);
    } else {
      e.base = static_cast<int>(rng.below(8));
      const bool sib = mode >= 3 || e.base == 4;
      mod = mode <= 2 ? mode : static_cast<unsigned>(rng.below(3));
      disp_bytes = mod == 1 ? 1 : (mod == 2 ? 4 : 0);
      if (disp_bytes == 1) e.disp = static_cast<int8_t>(rng.next());
      if (disp_bytes == 4) e.disp = static_cast<int32_t>(edge_value(rng, 32));
      if (mod == 0 && e.base == 5) {  // [EBP] needs an explicit disp8 of 0
        mod = 1;
        disp_bytes = 1;
        e.disp = 0;
      }
      if (sib) {
        use_sib = true;
        sib_base = static_cast<unsigned>(e.base);
        if (mode == 3 || mode == 4) {
          do e.index = static_cast<int>(rng.below(8)); while (e.index == 4);
          e.scale = 1u << rng.below(4);
        }
      } else {
        rm_field = static_cast<unsigned>(e.base);
      }
    }
    if (use_sib) {
      rm_field = 4;
      sib_index = e.index < 0 ? 4u : static_cast<unsigned>(e.index);
    }
  } else if (modrm) {  // 16-bit addressing
    rm_field = static_cast<unsigned>(rng.below(8));
    mod = static_cast<unsigned>(rng.below(3));
    if (mod == 0 && rm_field == 6) {  // [disp16]
      e.absolute = true;
      disp_bytes = 2;
      e.fixed_ea = window_target(f, rng, lay.data_base);
      e.disp = static_cast<int64_t>(e.fixed_ea - lay.data_seg_base);
    } else {
      e.base = kRm16Base[rm_field];
      e.index = kRm16Index[rm_field];
      if (e.base < 0) std::swap(e.base, e.index);  // [SI] / [DI]: one register, call it base
      disp_bytes = mod;                             // mod 01: disp8, mod 10: disp16
      if (mod == 1) e.disp = static_cast<int8_t>(rng.next());
      if (mod == 2) e.disp = static_cast<int16_t>(edge_value(rng, 16));
    }
  }

  uint8_t legacy[5];
  unsigned nlegacy = 0;
  if (f.opsize != 8 && f.opsize != def) legacy[nlegacy++] = 0x66;
  if (f.asize != def) legacy[nlegacy++] = 0x67;
  if (f.rep) legacy[nlegacy++] = f.rep;
  // Segment overrides: every data segment has the same base, so any override leaves the
  // address alone; CS differs from the others in real mode.
  static constexpr uint8_t kSeg32[] = {0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65};
  static constexpr uint8_t kSeg16[] = {0x26, 0x36, 0x3e, 0x64, 0x65};
  if (rng.one_in(8)) {
    legacy[nlegacy++] = f.mode == CpuMode::Real16 ? kSeg16[rng.below(sizeof kSeg16)]
                                                  : kSeg32[rng.below(sizeof kSeg32)];
  }
  for (unsigned i = nlegacy; i > 1; --i) {
    unsigned j = static_cast<unsigned>(rng.below(i));
    std::swap(legacy[i - 1], legacy[j]);
  }
  if (f.mandatory) legacy[nlegacy++] = f.mandatory;

  Bytes out;
  for (unsigned i = 0; i < nlegacy; ++i) out.put(legacy[i]);
  for (size_t i = 0; i < f.opcode.size(); ++i) {
    uint8_t op = f.opcode[i];
    if (f.ops == Operands::OpReg && i + 1 == f.opcode.size()) op |= static_cast<uint8_t>(e.reg);
    out.put(op);
  }
  if (modrm) {
    unsigned reg_field;
    if (reg_is_operand(f.ops)) reg_field = static_cast<unsigned>(e.reg);
    else reg_field = f.ext == 0xff ? static_cast<unsigned>(rng.below(8)) : f.ext;
    out.put(static_cast<uint8_t>((mod << 6) | (reg_field << 3) | (rm_field & 7)));
    if (use_sib) {
      unsigned ss = e.scale == 8 ? 3 : e.scale == 4 ? 2 : e.scale == 2 ? 1 : 0;
      out.put(static_cast<uint8_t>((ss << 6) | ((sib_index & 7) << 3) | (sib_base & 7)));
    }
  }
  e.disp_offset = out.len();
  out.put_le(static_cast<uint64_t>(e.disp), disp_bytes);
  if (f.ops == Operands::Moffs) {  // an address-size offset (SDM MOV, "moffs")
    e.absolute = true;
    e.fixed_ea = window_target(f, rng, lay.data_base);
    e.disp = static_cast<int64_t>(e.fixed_ea - lay.data_seg_base);
    out.put_le(static_cast<uint64_t>(e.disp), f.asize / 8);
  }
  if (f.imm_bytes) {
    if (f.imm_kind == ImmKind::Count) e.imm = count_value(rng, f.opsize);
    else e.imm = edge_value(rng, f.imm_bytes * 8) & width_mask(f.imm_bytes * 8);
    out.put_le(e.imm, f.imm_bytes);
  }
  e.len = out.len();
  if (e.len > 15) {
    std::fprintf(stderr, "oracle encoder: %s produced a %u-byte encoding\n", f.name.c_str(), e.len);
    e.len = 15;
  }
  for (unsigned i = 0; i < e.len; ++i) e.bytes[i] = out.data()[i];
  return e;
}

}  // namespace

const char* mode_name(CpuMode m) {
  switch (m) {
    case CpuMode::Long64: return "long64";
    case CpuMode::Prot32: return "prot32";
    case CpuMode::Real16: return "real16";
  }
  return "?";
}

Encoded encode(const Form& f, SplitMix64& rng, uint64_t addr) {
  if (f.mode != CpuMode::Long64) return encode_legacy(f, rng, addr);
  Encoded e;
  e.addr = addr;
  const bool modrm = has_modrm(f.ops);

  // --- choose registers and the addressing mode ---
  if (reg_is_operand(f.ops) || f.ops == Operands::OpReg) e.reg = static_cast<int>(rng.below(16));
  unsigned mod = 3, rm_field = 0, sib_base = 0, sib_index = 4;
  bool use_sib = false;
  unsigned disp_bytes = 0;
  if (modrm && !f.mem) {
    e.rm = static_cast<int>(rng.below(16));
    rm_field = static_cast<unsigned>(e.rm);
  } else if (modrm) {
    // Addressing modes of SDM Vol. 2A Tables 2-2/2-3 in their 64-bit form (§2.2.1.3–.6).
    const unsigned mode = static_cast<unsigned>(rng.below(8));
    auto pick_disp = [&](unsigned m) {
      mod = m;
      disp_bytes = m == 1 ? 1 : (m == 2 ? 4 : 0);
      if (disp_bytes == 1) e.disp = static_cast<int8_t>(rng.next());
      if (disp_bytes == 4) e.disp = static_cast<int32_t>(edge_value(rng, 32));
    };
    if (mode == 6) {  // RIP-relative: mod 00 rm 101, disp32 patched below
      e.rip_rel = true;
      mod = 0;
      rm_field = 5;
      disp_bytes = 4;
    } else if (mode == 5) {  // SIB, no base: mod 00 base 101 → [index*scale + disp32]
      use_sib = true;
      mod = 0;
      sib_base = 5;
      disp_bytes = 4;
      do e.index = static_cast<int>(rng.below(16)); while (e.index == 4);
      e.scale = 1u << rng.below(4);
      // The per-case index value is small; disp32 carries the window address.
      e.disp = static_cast<int32_t>(kDataBase + kDataSize / 2);
    } else {
      e.base = static_cast<int>(rng.below(16));
      const bool sib = mode >= 3 || (e.base & 7) == 4;  // RSP/R12 as base always need a SIB
      // mode 0: [base]; 1: [base+disp8]; 2: [base+disp32]; 3,4: [base+index*scale+disp];
      // 7: SIB with no index ([base+disp] spelled the long way).
      pick_disp(mode <= 2 ? mode : static_cast<unsigned>(rng.below(3)));
      // mod 00 with base 101 means "no base"/RIP: RBP/R13 need an explicit disp8 of 0.
      if (mod == 0 && (e.base & 7) == 5) {
        mod = 1;
        disp_bytes = 1;
        e.disp = 0;
      }
      if (sib) {
        use_sib = true;
        sib_base = static_cast<unsigned>(e.base & 7);
        if (mode == 3 || mode == 4) {
          do e.index = static_cast<int>(rng.below(16)); while (e.index == 4);  // 100 = none
          e.scale = 1u << rng.below(4);
        }
      } else {
        rm_field = static_cast<unsigned>(e.base & 7);
      }
    }
    if (use_sib) {
      rm_field = 4;
      sib_index = e.index < 0 ? 4u : static_cast<unsigned>(e.index);
    }
  }

  // --- REX (SDM Vol. 2A §2.2.1) ---
  const bool w = f.opsize == 64;
  const bool r = e.reg >= 8 && f.ops != Operands::OpReg;
  const bool x = use_sib && sib_index >= 8;
  bool b = false;
  if (f.ops == Operands::OpReg) b = e.reg >= 8;
  else if (modrm && !f.mem) b = e.rm >= 8;
  else if (use_sib) b = e.base >= 8;
  else if (modrm && f.mem && !e.rip_rel) b = e.base >= 8;
  bool need_rex = w || r || x || b;
  // Optional empty REX: with byte registers it switches AH..BH to SPL..DIL, elsewhere it
  // must be ignored. REX.X without a SIB byte is ignored too.
  if (!need_rex && rng.one_in(3)) need_rex = true;
  uint8_t rex = static_cast<uint8_t>(0x40 | (w ? 8 : 0) | (r ? 4 : 0) | (x ? 2 : 0) | (b ? 1 : 0));
  if (need_rex && !use_sib && !x && rng.one_in(4)) rex |= 2;
  e.rex = need_rex;

  // --- legacy prefixes, in a random order (SDM §2.1.1: "any order") except that a
  // mandatory prefix (F3 for TZCNT/LZCNT/POPCNT) is kept last, its documented place ---
  uint8_t legacy[4];
  unsigned nlegacy = 0;
  if (f.opsize == 16) legacy[nlegacy++] = 0x66;
  if (f.addr32) legacy[nlegacy++] = 0x67;
  // CS/SS/DS/ES overrides are ignored in 64-bit mode (SDM Vol. 3A §3.4.4).
  static constexpr uint8_t kNullSeg[] = {0x2e, 0x36, 0x3e, 0x26};
  if (rng.one_in(16)) legacy[nlegacy++] = kNullSeg[rng.below(4)];
  for (unsigned i = nlegacy; i > 1; --i) {
    unsigned j = static_cast<unsigned>(rng.below(i));
    std::swap(legacy[i - 1], legacy[j]);
  }
  if (f.mandatory) legacy[nlegacy++] = f.mandatory;

  Bytes out;
  for (unsigned i = 0; i < nlegacy; ++i) out.put(legacy[i]);
  if (need_rex) out.put(rex);
  for (size_t i = 0; i < f.opcode.size(); ++i) {
    uint8_t op = f.opcode[i];
    if (f.ops == Operands::OpReg && i + 1 == f.opcode.size()) op |= static_cast<uint8_t>(e.reg & 7);
    out.put(op);
  }
  if (modrm) {
    unsigned reg_field;
    if (reg_is_operand(f.ops)) reg_field = static_cast<unsigned>(e.reg & 7);
    else reg_field = f.ext == 0xff ? static_cast<unsigned>(rng.below(8)) : f.ext;
    out.put(static_cast<uint8_t>((mod << 6) | (reg_field << 3) | (rm_field & 7)));
    if (use_sib) {
      unsigned ss = e.scale == 8 ? 3 : e.scale == 4 ? 2 : e.scale == 2 ? 1 : 0;
      out.put(static_cast<uint8_t>((ss << 6) | ((sib_index & 7) << 3) | (sib_base & 7)));
    }
  }
  const unsigned disp_at = out.len();
  e.disp_offset = disp_at;
  out.put_le(static_cast<uint64_t>(e.disp), disp_bytes);
  if (f.imm_bytes) {
    if (f.imm_kind == ImmKind::Count) {
      e.imm = count_value(rng, f.opsize);
    } else {
      e.imm = edge_value(rng, f.imm_bytes * 8) & width_mask(f.imm_bytes * 8);
    }
    out.put_le(e.imm, f.imm_bytes);
  }
  e.len = out.len();
  if (e.len > 15) {
    // Longer than the architectural limit (#UD-GP territory): the generator must not
    // produce these; report loudly instead of silently testing something else.
    std::fprintf(stderr, "oracle encoder: %s produced a %u-byte encoding\n", f.name.c_str(), e.len);
    e.len = 15;
  }
  if (e.rip_rel) {
    // RIP-relative displacement is relative to the next instruction (SDM §2.2.1.6).
    // BT*/Ev,Gv add a signed bit offset of up to ±1 KiB to the address: stay central.
    e.fixed_ea = f.special == Special::BitOffsetReg ? kDataBase + 3 * 1024 + rng.below(2048)
                                                    : kDataBase + 64 + rng.below(kDataSize - 128);
    const uint64_t next = addr + e.len;
    uint64_t ea = e.fixed_ea;
    if (f.addr32) ea &= 0xffffffffu;
    e.disp = static_cast<int32_t>(static_cast<uint32_t>(ea - next));
    for (unsigned i = 0; i < 4; ++i)
      out.data()[disp_at + i] = static_cast<uint8_t>(static_cast<uint64_t>(e.disp) >> (8 * i));
  }
  for (unsigned i = 0; i < e.len; ++i) e.bytes[i] = out.data()[i];
  return e;
}

std::string hex_bytes(const uint8_t* p, unsigned n) {
  std::string s;
  char buf[4];
  for (unsigned i = 0; i < n; ++i) {
    std::snprintf(buf, sizeof buf, "%02x", p[i]);
    if (i) s += ' ';
    s += buf;
  }
  return s;
}

}  // namespace pvsim::oracle
