// tests/oracle/forms.cpp — form tables (opcodes from SDM Vol. 2D Appendix A, one-byte
// and two-byte opcode maps; group numbers from Table A-6).
#include "tests/oracle/forms.h"

#include <string>
#include <tuple>

namespace pvsim::oracle {

namespace {

const char* const kAluName[8] = {"ADD", "OR", "ADC", "SBB", "AND", "SUB", "XOR", "CMP"};
const char* const kShiftName[8] = {"ROL", "ROR", "RCL", "RCR", "SHL", "SHR", "SAL6", "SAR"};
// Condition names as Zydis spells them (SDM aliases: NB = AE, Z = E, NBE = A, NL = GE ...).
const char* const kCond[16] = {"O", "NO", "B", "NB", "Z", "NZ", "BE", "NBE",
                               "S", "NS", "P",  "NP", "L", "NL", "LE", "NLE"};

std::string osz(unsigned bits) { return " o" + std::to_string(bits); }

// A form template; `add` expands it into its register and memory forms.
struct Spec {
  std::string name;
  std::vector<uint8_t> opcode;
  Operands ops = Operands::EG;
  unsigned opsize = 32;
  uint8_t ext = 0;
  unsigned imm_bytes = 0;
  ImmKind imm_kind = ImmKind::Value;
  FlagRule flags = FlagRule::AllDefined;
  Special special = Special::None;
  Reference reference = Reference::Unicorn;
  unsigned rm_bits = 0;   // 0: same as opsize
  unsigned reg_bits = 0;  // 0: same as opsize
  uint8_t mandatory = 0;
};

Form to_form(const Spec& s, bool mem) {
  Form f;
  f.name = s.name + osz(s.opsize);
  f.opcode = s.opcode;
  f.mandatory = s.mandatory;
  f.ops = s.ops;
  f.ext = s.ext;
  f.opsize = s.opsize;
  f.rm_bits = s.rm_bits ? s.rm_bits : s.opsize;
  f.reg_bits = s.reg_bits ? s.reg_bits : s.opsize;
  f.imm_bytes = s.imm_bytes;
  f.imm_kind = s.imm_kind;
  f.flags = s.flags;
  f.special = s.special;
  f.reference = s.reference;
  f.mem = mem;
  const bool has_rm = s.ops == Operands::EG || s.ops == Operands::GE || s.ops == Operands::E ||
                      s.ops == Operands::EI || s.ops == Operands::GEI || s.ops == Operands::EGI;
  if (has_rm) f.name += mem ? " mem" : " reg";
  return f;
}

void add(std::vector<Form>& out, const Spec& s) {
  const bool has_rm = s.ops == Operands::EG || s.ops == Operands::GE || s.ops == Operands::E ||
                      s.ops == Operands::EI || s.ops == Operands::GEI || s.ops == Operands::EGI;
  out.push_back(to_form(s, false));
  if (has_rm) out.push_back(to_form(s, true));
}

// Iz: 16-bit immediate with a 16-bit operand, else 32 bits (sign-extended for 64).
unsigned iz(unsigned opsize) { return opsize == 16 ? 2 : 4; }

// Byte form opcode `b8`, word/dword/qword form `bv` (the usual even/odd opcode pair).
void add_sized(std::vector<Form>& out, Spec s, uint8_t b8, uint8_t bv, bool with8,
               const std::vector<uint8_t>& prefix_bytes = {}) {
  for (unsigned size : {8u, 16u, 32u, 64u}) {
    if (size == 8 && !with8) continue;
    Spec t = s;
    t.opsize = size;
    t.opcode = prefix_bytes;
    t.opcode.push_back(size == 8 ? b8 : bv);
    if (t.ops == Operands::AccI || t.ops == Operands::EI || t.ops == Operands::GEI) {
      if (t.imm_bytes == 0) t.imm_bytes = size == 8 ? 1 : iz(size);
    }
    add(out, t);
  }
}

}  // namespace

std::vector<Form> alu_forms(unsigned op) {
  std::vector<Form> out;
  const std::string n = kAluName[op];
  // AND OR XOR: "The OF and CF flags are cleared; ... AF is undefined" (SDM AND).
  const FlagRule rule = (op == 1 || op == 4 || op == 6) ? FlagRule::Logic : FlagRule::AllDefined;
  const uint8_t row = static_cast<uint8_t>(op * 8);
  Spec s;
  s.flags = rule;
  s.name = n + " E,G";
  s.ops = Operands::EG;
  add_sized(out, s, row + 0, row + 1, true);
  s.name = n + " G,E";
  s.ops = Operands::GE;
  add_sized(out, s, row + 2, row + 3, true);
  s.name = n + " acc,imm";
  s.ops = Operands::AccI;
  add_sized(out, s, row + 4, row + 5, true);
  s.name = n + " E,Iz";
  s.ops = Operands::EI;
  s.ext = static_cast<uint8_t>(op);
  add_sized(out, s, 0x80, 0x81, true);
  s.name = n + " E,Ib(sx)";
  s.imm_bytes = 1;
  add_sized(out, s, 0x80, 0x83, false);  // 83 /op: imm8 sign-extended to the operand size
  return out;
}

std::vector<Form> test_forms() {
  std::vector<Form> out;
  Spec s;
  s.flags = FlagRule::Logic;
  s.name = "TEST E,G";
  add_sized(out, s, 0x84, 0x85, true);
  s.name = "TEST acc,imm";
  s.ops = Operands::AccI;
  add_sized(out, s, 0xa8, 0xa9, true);
  s.name = "TEST E,I";
  s.ops = Operands::EI;
  s.ext = 0;
  add_sized(out, s, 0xf6, 0xf7, true);
  return out;
}

std::vector<Form> inc_dec_neg_not_forms() {
  std::vector<Form> out;
  Spec s;
  s.ops = Operands::E;
  for (auto [name, grp8, grpv, ext] : {std::tuple{"INC", 0xfe, 0xff, 0}, std::tuple{"DEC", 0xfe, 0xff, 1},
                                       std::tuple{"NOT", 0xf6, 0xf7, 2}, std::tuple{"NEG", 0xf6, 0xf7, 3}}) {
    s.name = name;
    s.ext = static_cast<uint8_t>(ext);
    add_sized(out, s, static_cast<uint8_t>(grp8), static_cast<uint8_t>(grpv), true);
  }
  return out;
}

std::vector<Form> shift_forms(unsigned ext) {
  std::vector<Form> out;
  const std::string n = kShiftName[ext];
  Spec s;
  s.ext = static_cast<uint8_t>(ext);
  s.flags = ext <= 3 ? FlagRule::Rotate : (ext == 7 ? FlagRule::Sar : FlagRule::ShlShr);
  s.name = n + " E,1";
  s.ops = Operands::E;
  add_sized(out, s, 0xd0, 0xd1, true);
  s.name = n + " E,CL";
  s.special = Special::CountCl;
  add_sized(out, s, 0xd2, 0xd3, true);
  s.name = n + " E,Ib";
  s.special = Special::None;
  s.ops = Operands::EI;
  s.imm_bytes = 1;
  s.imm_kind = ImmKind::Count;
  add_sized(out, s, 0xc0, 0xc1, true);
  return out;
}

std::vector<Form> double_shift_forms() {
  std::vector<Form> out;
  for (unsigned size : {16u, 32u, 64u}) {
    for (auto [name, op_ib, op_cl] : {std::tuple{"SHLD", 0xa4, 0xa5}, std::tuple{"SHRD", 0xac, 0xad}}) {
      Spec s;
      s.flags = FlagRule::DoubleShift;
      s.opsize = size;
      s.name = std::string(name) + " E,G,Ib";
      s.opcode = {0x0f, static_cast<uint8_t>(op_ib)};
      s.ops = Operands::EGI;
      s.imm_bytes = 1;
      s.imm_kind = ImmKind::Count;
      add(out, s);
      s.name = std::string(name) + " E,G,CL";
      s.opcode = {0x0f, static_cast<uint8_t>(op_cl)};
      s.ops = Operands::EG;
      s.imm_bytes = 0;
      s.special = Special::CountCl;
      add(out, s);
    }
  }
  return out;
}

std::vector<Form> mul_forms() {
  std::vector<Form> out;
  Spec s;
  s.flags = FlagRule::Mul;
  s.ops = Operands::E;
  s.name = "MUL E";
  s.ext = 4;
  add_sized(out, s, 0xf6, 0xf7, true);
  s.name = "IMUL E";
  s.ext = 5;
  add_sized(out, s, 0xf6, 0xf7, true);
  for (unsigned size : {16u, 32u, 64u}) {
    Spec t;
    t.flags = FlagRule::Mul;
    t.opsize = size;
    t.name = "IMUL G,E";
    t.ops = Operands::GE;
    t.opcode = {0x0f, 0xaf};
    add(out, t);
    t.name = "IMUL G,E,Ib";
    t.ops = Operands::GEI;
    t.opcode = {0x6b};
    t.imm_bytes = 1;
    add(out, t);
    t.name = "IMUL G,E,Iz";
    t.opcode = {0x69};
    t.imm_bytes = iz(size);
    add(out, t);
  }
  return out;
}

std::vector<Form> div_forms() {
  std::vector<Form> out;
  Spec s;
  s.flags = FlagRule::Div;
  s.ops = Operands::E;
  s.name = "DIV E";
  s.ext = 6;
  s.special = Special::Div;
  add_sized(out, s, 0xf6, 0xf7, true);
  s.name = "IDIV E";
  s.ext = 7;
  s.special = Special::Idiv;
  add_sized(out, s, 0xf6, 0xf7, true);
  return out;
}

std::vector<Form> bit_test_forms() {
  std::vector<Form> out;
  const char* const names[4] = {"BT", "BTS", "BTR", "BTC"};
  const uint8_t reg_ops[4] = {0xa3, 0xab, 0xb3, 0xbb};
  for (unsigned size : {16u, 32u, 64u}) {
    for (unsigned i = 0; i < 4; ++i) {
      Spec s;
      s.flags = FlagRule::BitTest;
      s.opsize = size;
      s.name = std::string(names[i]) + " E,G";
      s.opcode = {0x0f, reg_ops[i]};
      s.special = Special::BitOffsetReg;
      add(out, s);
      s.name = std::string(names[i]) + " E,Ib";
      s.opcode = {0x0f, 0xba};
      s.ops = Operands::EI;
      s.ext = static_cast<uint8_t>(4 + i);
      s.imm_bytes = 1;
      s.imm_kind = ImmKind::Count;
      s.special = Special::None;
      add(out, s);
    }
  }
  return out;
}

std::vector<Form> bit_scan_forms() {
  std::vector<Form> out;
  for (unsigned size : {16u, 32u, 64u}) {
    Spec s;
    s.opsize = size;
    s.ops = Operands::GE;
    s.flags = FlagRule::BitScan;
    s.name = "BSF G,E";
    s.opcode = {0x0f, 0xbc};
    add(out, s);
    s.name = "BSR G,E";
    s.opcode = {0x0f, 0xbd};
    add(out, s);
    s.flags = FlagRule::CountZeros;
    s.mandatory = 0xf3;
    s.name = "TZCNT G,E";
    s.opcode = {0x0f, 0xbc};
    add(out, s);
    s.name = "LZCNT G,E";
    s.opcode = {0x0f, 0xbd};
    add(out, s);
    s.flags = FlagRule::AllDefined;
    s.reference = Reference::PopcntModel;
    s.name = "POPCNT G,E";
    s.opcode = {0x0f, 0xb8};
    add(out, s);
  }
  return out;
}

std::vector<Form> cmov_forms() {
  std::vector<Form> out;
  for (unsigned cc = 0; cc < 16; ++cc) {
    for (unsigned size : {16u, 32u, 64u}) {
      Spec s;
      s.opsize = size;
      s.ops = Operands::GE;
      s.name = std::string("CMOV") + kCond[cc] + " G,E";
      s.opcode = {0x0f, static_cast<uint8_t>(0x40 + cc)};
      add(out, s);
    }
  }
  return out;
}

std::vector<Form> setcc_forms() {
  std::vector<Form> out;
  for (unsigned cc = 0; cc < 16; ++cc) {
    Spec s;
    s.opsize = 8;
    s.ops = Operands::E;
    s.ext = 0xff;  // "the reg field ... is not used" (SDM SETcc): any value must work
    s.name = std::string("SET") + kCond[cc] + " E";
    s.opcode = {0x0f, static_cast<uint8_t>(0x90 + cc)};
    add(out, s);
  }
  return out;
}

std::vector<Form> move_extend_forms() {
  std::vector<Form> out;
  struct Ext {
    const char* name;
    uint8_t op;
    unsigned src;
  };
  for (const Ext& x : {Ext{"MOVZX G,Eb", 0xb6, 8}, Ext{"MOVZX G,Ew", 0xb7, 16},
                       Ext{"MOVSX G,Eb", 0xbe, 8}, Ext{"MOVSX G,Ew", 0xbf, 16}}) {
    for (unsigned size : {16u, 32u, 64u}) {
      Spec s;
      s.opsize = size;
      s.ops = Operands::GE;
      s.rm_bits = x.src;
      s.name = x.name;
      s.opcode = {0x0f, x.op};
      add(out, s);
    }
  }
  // MOVSXD: REX.W 63 sign-extends r/m32; without REX.W it is a plain 32/16-bit move
  // (SDM MOVSX/MOVSXD: "MOVSXD r32, r/m32" and "MOVSXD r16, r/m16").
  for (unsigned size : {16u, 32u, 64u}) {
    Spec s;
    s.opsize = size;
    s.ops = Operands::GE;
    s.rm_bits = size == 16 ? 16 : 32;
    s.name = "MOVSXD G,E";
    s.opcode = {0x63};
    add(out, s);
  }
  return out;
}

std::vector<Form> exchange_forms() {
  std::vector<Form> out;
  for (unsigned size : {32u, 64u}) {  // BSWAP r16 is undefined (SDM BSWAP): not generated
    Spec s;
    s.opsize = size;
    s.ops = Operands::OpReg;
    s.name = "BSWAP r";
    s.opcode = {0x0f, 0xc8};
    add(out, s);
  }
  Spec s;
  s.name = "XCHG E,G";
  add_sized(out, s, 0x86, 0x87, true);
  for (unsigned size : {16u, 32u, 64u}) {
    Spec t;
    t.opsize = size;
    t.ops = Operands::OpReg;
    t.name = "XCHG rAX,r";  // 90+r; r = 0 without REX.B is NOP (SDM NOP/XCHG)
    t.opcode = {0x90};
    add(out, t);
  }
  s.name = "XADD E,G";
  add_sized(out, s, 0xc0, 0xc1, true, {0x0f});
  s.name = "CMPXCHG E,G";
  s.special = Special::Cmpxchg;
  add_sized(out, s, 0xb0, 0xb1, true, {0x0f});
  return out;
}

std::vector<Form> convert_forms() {
  std::vector<Form> out;
  for (unsigned size : {16u, 32u, 64u}) {
    Spec s;
    s.opsize = size;
    s.ops = Operands::None;
    s.name = size == 16 ? "CBW" : size == 32 ? "CWDE" : "CDQE";
    s.opcode = {0x98};
    add(out, s);
    s.name = size == 16 ? "CWD" : size == 32 ? "CDQ" : "CQO";
    s.opcode = {0x99};
    add(out, s);
  }
  return out;
}

std::vector<Form> lea_forms() {
  std::vector<Form> out;
  for (bool a32 : {false, true}) {
    for (unsigned size : {16u, 32u, 64u}) {
      Spec s;
      s.opsize = size;
      s.ops = Operands::GE;
      s.name = "LEA G,M";
      s.opcode = {0x8d};
      Form f = to_form(s, true);
      f.lea = true;
      f.addr32 = a32;
      if (a32) f.name += " a32";
      out.push_back(f);
    }
  }
  return out;
}

std::vector<Form> addr32_forms() {
  std::vector<Form> out;
  for (unsigned size : {8u, 32u, 64u}) {
    Spec s;
    s.opsize = size;
    s.name = "ADD E,G";
    s.opcode = {static_cast<uint8_t>(size == 8 ? 0x00 : 0x01)};
    Form f = to_form(s, true);
    f.addr32 = true;
    f.name += " a32";
    out.push_back(f);
    s.name = "SUB G,E";
    s.ops = Operands::GE;
    s.opcode = {static_cast<uint8_t>(size == 8 ? 0x2a : 0x2b)};
    f = to_form(s, true);
    f.addr32 = true;
    f.name += " a32";
    out.push_back(f);
  }
  return out;
}

}  // namespace pvsim::oracle

// ===================== forms outside 64-bit mode =====================

namespace pvsim::oracle {

namespace {

unsigned default_size(CpuMode m) { return m == CpuMode::Real16 ? 16 : 32; }

// The 64-bit tables carried to a legacy mode: the same opcodes with 8/16/32-bit operands
// (a 64-bit operand size does not exist there, SDM Vol. 1 §3.6.1), eight registers and the
// mode's addressing. MOVSXD (0x63 is ARPL outside 64-bit mode) and the 0x67 forms of
// 64-bit mode are dropped. `a16` adds, for every memory form, a twin with the other
// address size: 16-bit ModRM addressing (67 in 32-bit code). Real mode only gets its
// native 16-bit addressing: 32-bit offsets above 0xffff are beyond the 64 KiB limits.
std::vector<Form> retarget(const std::vector<Form>& in, CpuMode m, bool a16) {
  std::vector<Form> out;
  const unsigned def = default_size(m);
  for (Form f : in) {
    if (f.opsize == 64 || f.addr32 || f.opcode == std::vector<uint8_t>{0x63}) continue;
    f.mode = m;
    f.asize = def;
    const std::string base_name = f.name;
    f.name = std::string(mode_name(m)) + " " + base_name;
    out.push_back(f);
    if (a16 && m == CpuMode::Prot32 && f.mem && f.special != Special::BitOffsetReg) {
      f.asize = 16;
      f.name += " a16";
      out.push_back(f);
    }
  }
  return out;
}

Form legacy_form(CpuMode m, std::string name, std::vector<uint8_t> opcode, Operands ops,
                 unsigned opsize, bool mem = false) {
  Form f;
  f.mode = m;
  f.asize = default_size(m);
  f.name = std::string(mode_name(m)) + " " + name + osz(opsize);
  if (ops == Operands::EG || ops == Operands::GE || ops == Operands::E || ops == Operands::EI ||
      ops == Operands::GEI || ops == Operands::EGI)
    f.name += mem ? " mem" : " reg";
  f.opcode = std::move(opcode);
  f.ops = ops;
  f.opsize = opsize;
  f.rm_bits = f.reg_bits = opsize;
  f.mem = mem;
  return f;
}

}  // namespace

std::vector<Form> legacy_alu_forms(CpuMode m) {
  std::vector<Form> all;
  for (unsigned op = 0; op < 8; ++op) {
    auto v = alu_forms(op);
    all.insert(all.end(), v.begin(), v.end());
  }
  auto t = test_forms();
  all.insert(all.end(), t.begin(), t.end());
  auto n = inc_dec_neg_not_forms();
  all.insert(all.end(), n.begin(), n.end());
  std::vector<Form> out = retarget(all, m, true);
  // INC/DEC r16/r32: 40+r / 48+r, the one-byte forms 64-bit mode gave to REX.
  for (unsigned size : {16u, 32u}) {
    Form f = legacy_form(m, "INC r", {0x40}, Operands::OpReg, size);
    out.push_back(f);
    f = legacy_form(m, "DEC r", {0x48}, Operands::OpReg, size);
    out.push_back(f);
  }
  return out;
}

std::vector<Form> legacy_shift_forms(CpuMode m) {
  std::vector<Form> all;
  for (unsigned ext : {0u, 1u, 2u, 3u, 4u, 5u, 7u}) {
    auto v = shift_forms(ext);
    all.insert(all.end(), v.begin(), v.end());
  }
  auto d = double_shift_forms();
  all.insert(all.end(), d.begin(), d.end());
  return retarget(all, m, false);
}

std::vector<Form> legacy_muldiv_forms(CpuMode m) {
  std::vector<Form> all = mul_forms();
  auto d = div_forms();
  all.insert(all.end(), d.begin(), d.end());
  return retarget(all, m, false);
}

std::vector<Form> legacy_bit_forms(CpuMode m) {
  std::vector<Form> all = bit_test_forms();
  auto s = bit_scan_forms();
  all.insert(all.end(), s.begin(), s.end());
  return retarget(all, m, false);
}

std::vector<Form> legacy_cond_forms(CpuMode m) {
  std::vector<Form> all = cmov_forms();
  auto s = setcc_forms();
  all.insert(all.end(), s.begin(), s.end());
  return retarget(all, m, false);
}

std::vector<Form> legacy_move_forms(CpuMode m) {
  std::vector<Form> all = move_extend_forms();
  auto x = exchange_forms();
  all.insert(all.end(), x.begin(), x.end());
  auto c = convert_forms();
  all.insert(all.end(), c.begin(), c.end());
  auto l = lea_forms();
  all.insert(all.end(), l.begin(), l.end());
  std::vector<Form> out = retarget(all, m, true);
  // MOV (SDM MOV): 88/89/8A/8B, C6/C7 /0, B0+r / B8+r, A0-A3 moffs.
  for (unsigned size : {8u, 16u, 32u}) {
    const bool b = size == 8;
    for (bool mem : {false, true}) {
      out.push_back(legacy_form(m, "MOV E,G", {uint8_t(b ? 0x88 : 0x89)}, Operands::EG, size, mem));
      out.push_back(legacy_form(m, "MOV G,E", {uint8_t(b ? 0x8a : 0x8b)}, Operands::GE, size, mem));
      Form f = legacy_form(m, "MOV E,I", {uint8_t(b ? 0xc6 : 0xc7)}, Operands::EI, size, mem);
      f.imm_bytes = b ? 1 : iz(size);
      out.push_back(f);
      if (mem && m == CpuMode::Prot32) {
        for (Form g : {legacy_form(m, "MOV E,G", {uint8_t(b ? 0x88 : 0x89)}, Operands::EG, size, true),
                       legacy_form(m, "MOV G,E", {uint8_t(b ? 0x8a : 0x8b)}, Operands::GE, size, true)}) {
          g.asize = 16;
          g.name += " a16";
          out.push_back(g);
        }
      }
    }
    Form f = legacy_form(m, "MOV r,I", {uint8_t(b ? 0xb0 : 0xb8)}, Operands::OpReg, size);
    f.imm_bytes = size / 8;
    out.push_back(f);
    const std::vector<unsigned> asizes =
        m == CpuMode::Prot32 ? std::vector<unsigned>{32, 16} : std::vector<unsigned>{16};
    for (unsigned as : asizes) {
      for (bool store : {false, true}) {
        Form g = legacy_form(m, store ? "MOV moffs,acc" : "MOV acc,moffs",
                             {uint8_t((store ? 0xa2 : 0xa0) + (b ? 0 : 1))}, Operands::Moffs, size);
        g.mem = true;
        g.asize = as;
        if (as != default_size(m)) g.name += " a" + std::to_string(as);
        out.push_back(g);
      }
    }
  }
  return out;
}

std::vector<Form> legacy_stack_forms(CpuMode m) {
  std::vector<Form> out;
  for (unsigned size : {16u, 32u}) {
    auto stack = [&](Form f) {
      f.special = Special::Stack;
      out.push_back(f);
    };
    stack(legacy_form(m, "PUSH r", {0x50}, Operands::OpReg, size));
    stack(legacy_form(m, "POP r", {0x58}, Operands::OpReg, size));
    Form f = legacy_form(m, "PUSH Iz", {0x68}, Operands::None, size);
    f.imm_bytes = iz(size);
    stack(f);
    f = legacy_form(m, "PUSH Ib", {0x6a}, Operands::None, size);
    f.imm_bytes = 1;
    stack(f);
    for (bool mem : {false, true}) {
      f = legacy_form(m, "PUSH E", {0xff}, Operands::E, size, mem);
      f.ext = 6;
      stack(f);
      f = legacy_form(m, "POP E", {0x8f}, Operands::E, size, mem);
      f.ext = 0;
      stack(f);
    }
  }
  return out;
}

std::vector<Form> legacy_string_forms(CpuMode m) {
  std::vector<Form> out;
  struct Str {
    const char* name;
    uint8_t op;
    bool cond;  // CMPS/SCAS: REPE and REPNE both
  };
  const std::vector<unsigned> asizes =
      m == CpuMode::Prot32 ? std::vector<unsigned>{32, 16} : std::vector<unsigned>{16};
  for (const Str& s : {Str{"MOVS", 0xa4, false}, Str{"CMPS", 0xa6, true}, Str{"STOS", 0xaa, false},
                       Str{"LODS", 0xac, false}, Str{"SCAS", 0xae, true}}) {
    for (unsigned size : {8u, 16u, 32u}) {
      for (unsigned as : asizes) {
        for (uint8_t rep : {uint8_t{0}, uint8_t{0xf3}, uint8_t{0xf2}}) {
          if (rep == 0xf2 && !s.cond) continue;  // F2 on MOVS/STOS/LODS: undocumented
          std::string name = s.name;
          if (rep) name = std::string(rep == 0xf2 ? "REPNE " : s.cond ? "REPE " : "REP ") + name;
          Form f = legacy_form(m, name, {uint8_t(s.op + (size == 8 ? 0 : 1))}, Operands::None, size);
          f.special = Special::String;
          f.asize = as;
          f.rep = rep;
          if (as != default_size(m)) f.name += " a" + std::to_string(as);
          out.push_back(f);
        }
      }
    }
  }
  return out;
}

std::vector<Form> legacy_bcd_forms(CpuMode m) {
  std::vector<Form> out;
  struct Bcd {
    const char* name;
    uint8_t op;
    FlagRule rule;
    unsigned imm;
  };
  for (const Bcd& b : {Bcd{"DAA", 0x27, FlagRule::Daa, 0}, Bcd{"DAS", 0x2f, FlagRule::Daa, 0},
                       Bcd{"AAA", 0x37, FlagRule::Aaa, 0}, Bcd{"AAS", 0x3f, FlagRule::Aaa, 0},
                       Bcd{"AAM", 0xd4, FlagRule::Aam, 1}, Bcd{"AAD", 0xd5, FlagRule::Aam, 1},
                       Bcd{"SALC", 0xd6, FlagRule::AllDefined, 0}}) {
    Form f = legacy_form(m, b.name, {b.op}, Operands::None, 8);
    f.flags = b.rule;
    f.imm_bytes = b.imm;
    if (b.op == 0xd4) f.special = Special::Aam;
    out.push_back(f);
  }
  return out;
}

}  // namespace pvsim::oracle
