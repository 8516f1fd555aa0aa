// tests/core/test_realmode_insns.cpp — the legacy-only instructions real-mode code uses
// (kvm-unit-tests' realmode test among others): decimal adjustment (DAA, DAS, AAA, AAS, AAM,
// AAD; expected values computed from the SDM Vol. 2A pseudo-code written out below), SALC,
// XLAT, PUSHA/POPA, segment-register pushes and pops, SMSW/LMSW, MOV DRn, the x87 control
// instructions and #NM, CPUID/RDTSC, and the STI shadow with HLT woken by an interrupt.
// Byte encodings checked with objdump -m i8086.
#include <catch2/catch.hpp>

#include "legacy_machine.h"

using namespace pvsim;
using pvsim::test::LegacyMachine;

namespace {
enum { RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI };
constexpr uint64_t CF = 0x1, PF = 0x4, AF = 0x10, ZF = 0x40, SF = 0x80;

bool parity_even(uint8_t v) {
  unsigned n = 0;
  for (unsigned b = 0; b < 8; ++b) n += (v >> b) & 1;
  return n % 2 == 0;
}
uint64_t szp(uint8_t v) {
  return (v & 0x80 ? SF : 0) | (v == 0 ? ZF : 0) | (parity_even(v) ? PF : 0);
}

// Runs the one-byte (or two-byte) instruction at 0x8000 with AX and the flags given.
struct Adjust {
  LegacyMachine m;
  explicit Adjust(std::vector<uint8_t> insn) {
    insn.push_back(0xf4);
    m.code(insn);
  }
  void run(uint16_t ax, uint64_t flags) {
    m.vcpu.set_rip(LegacyMachine::kCode);
    m.vcpu.set_gpr(RAX, 0xabcd0000u | ax);
    m.vcpu.set_rflags(0x2 | flags);
    m.step();
  }
  uint16_t ax() const { return m.ax(); }
  uint64_t flags() const { return m.vcpu.rflags(); }
};

struct BcdResult {
  uint8_t al;
  bool cf, af;
};
// SDM Vol. 2A "DAA—Decimal Adjust AL after Addition", Operation.
BcdResult sdm_daa(uint8_t al, bool cf, bool af) {
  const uint8_t old_al = al;
  const bool old_cf = cf;
  cf = false;
  if ((al & 0x0f) > 9 || af) {
    const unsigned sum = al + 6u;
    al = static_cast<uint8_t>(sum);
    cf = old_cf || sum > 0xff;  // carry from AL + 6
    af = true;
  } else {
    af = false;
  }
  if (old_al > 0x99 || old_cf) {
    al = static_cast<uint8_t>(al + 0x60);
    cf = true;
  } else {
    cf = false;
  }
  return {al, cf, af};
}
// SDM Vol. 2A "DAS—Decimal Adjust AL after Subtraction", Operation.
BcdResult sdm_das(uint8_t al, bool cf, bool af) {
  const uint8_t old_al = al;
  const bool old_cf = cf;
  cf = false;
  if ((al & 0x0f) > 9 || af) {
    const bool borrow = al < 6;  // borrow from AL - 6
    al = static_cast<uint8_t>(al - 6);
    cf = old_cf || borrow;
    af = true;
  } else {
    af = false;
  }
  if (old_al > 0x99 || old_cf) {
    al = static_cast<uint8_t>(al - 0x60);
    cf = true;
  }
  return {al, cf, af};
}
}  // namespace

// ---------------------------------------------------------------------------------------
// Decimal and ASCII adjustment
// ---------------------------------------------------------------------------------------

TEST_CASE("DAS: all 1024 AL x CF x AF inputs match the SDM pseudo-code", "[legacy][bcd]") {
  Adjust t({0x2f});  // das
  unsigned bad = 0;
  for (unsigned al = 0; al < 256; ++al)
    for (unsigned cf = 0; cf < 2; ++cf)
      for (unsigned af = 0; af < 2; ++af) {
        t.run(static_cast<uint16_t>(0x5a00 | al), (cf ? CF : 0) | (af ? AF : 0));
        const BcdResult e = sdm_das(static_cast<uint8_t>(al), cf, af);
        // EFLAGS[7:0] exactly: CF, PF, AF, ZF, SF from the result, bit 1 set, 3 and 5 clear.
        const uint64_t want = 0x2 | (e.cf ? CF : 0) | (e.af ? AF : 0) | szp(e.al);
        if (t.ax() != (0x5a00 | e.al) || (t.flags() & 0xff) != want) {
          if (++bad <= 8)
            FAIL_CHECK("DAS AL=" << al << " CF=" << cf << " AF=" << af << ": got AX="
                                 << t.ax() << " flags=" << (t.flags() & 0xff) << ", want AL="
                                 << unsigned(e.al) << " flags=" << want);
        }
      }
  CHECK(bad == 0);
  CHECK(t.m.vcpu.instructions() == 1024);
}

TEST_CASE("DAA: all 1024 AL x CF x AF inputs match the SDM pseudo-code", "[legacy][bcd]") {
  Adjust t({0x27});  // daa
  unsigned bad = 0;
  for (unsigned al = 0; al < 256; ++al)
    for (unsigned cf = 0; cf < 2; ++cf)
      for (unsigned af = 0; af < 2; ++af) {
        t.run(static_cast<uint16_t>(0xa500 | al), (cf ? CF : 0) | (af ? AF : 0));
        const BcdResult e = sdm_daa(static_cast<uint8_t>(al), cf, af);
        const uint64_t want = 0x2 | (e.cf ? CF : 0) | (e.af ? AF : 0) | szp(e.al);
        if (t.ax() != (0xa500 | e.al) || (t.flags() & 0xff) != want) {
          if (++bad <= 8)
            FAIL_CHECK("DAA AL=" << al << " CF=" << cf << " AF=" << af << ": got AX="
                                 << t.ax() << " flags=" << (t.flags() & 0xff) << ", want AL="
                                 << unsigned(e.al) << " flags=" << want);
        }
      }
  CHECK(bad == 0);
}

TEST_CASE("AAA: AX + 106H on a decimal carry, AL high nibble cleared", "[legacy][bcd]") {
  // SDM Vol. 2A "AAA": IF ((AL AND 0FH) > 9) or (AF = 1) THEN AX := AX + 106H; AF := 1;
  // CF := 1; ELSE AF := 0; CF := 0; FI; AL := AL AND 0FH. OF, SF, ZF, PF undefined.
  Adjust t({0x37});  // aaa
  for (unsigned ah : {0x00u, 0x7fu, 0xfeu, 0xffu})
    for (unsigned al = 0; al < 256; ++al)
      for (unsigned af = 0; af < 2; ++af) {
        uint16_t ax = static_cast<uint16_t>(ah << 8 | al);
        const bool adj = (al & 0xf) > 9 || af;
        if (adj) ax = static_cast<uint16_t>(ax + 0x106);
        ax &= 0xff0f;
        t.run(static_cast<uint16_t>(ah << 8 | al), af ? AF : 0);
        INFO("AX=" << (ah << 8 | al) << " AF=" << af);
        REQUIRE(t.ax() == ax);
        REQUIRE((t.flags() & (CF | AF)) == (adj ? CF | AF : 0));
      }
}

TEST_CASE("AAS: AX - 6 and AH - 1 on a decimal borrow, AL high nibble cleared",
          "[legacy][bcd]") {
  // SDM Vol. 2A "AAS": IF ((AL AND 0FH) > 9) or (AF = 1) THEN AX := AX - 6; AH := AH - 1;
  // AF := 1; CF := 1; AL := AL AND 0FH; ELSE CF := 0; AF := 0; AL := AL AND 0FH; FI.
  // Inputs with AL >= 6 (no borrow out of AL - 6 into AH); the AL < 6 case is below.
  Adjust t({0x3f});  // aas
  for (unsigned ah : {0x00u, 0x01u, 0x80u, 0xffu})
    for (unsigned al = 6; al < 256; ++al)
      for (unsigned af = 0; af < 2; ++af) {
        uint16_t ax = static_cast<uint16_t>(ah << 8 | al);
        const bool adj = (al & 0xf) > 9 || af;
        if (adj) {
          ax = static_cast<uint16_t>(ax - 6);
          ax = static_cast<uint16_t>(ax - 0x100);
        }
        ax &= 0xff0f;
        t.run(static_cast<uint16_t>(ah << 8 | al), af ? AF : 0);
        INFO("AX=" << (ah << 8 | al) << " AF=" << af);
        REQUIRE(t.ax() == ax);
        REQUIRE((t.flags() & (CF | AF)) == (adj ? CF | AF : 0));
      }
}

TEST_CASE("AAS with AL < 6 borrows from AH (AX - 6, then AH - 1)", "[legacy][bcd]") {
  // The SDM pseudo-code subtracts 6 from the whole of AX, so with AL < 6 the subtraction
  // borrows from AH and AH is then decremented once more: AX 0x0205 with AF = 1 gives
  // 0x0205 - 6 = 0x01ff, AH - 1 -> 0x00ff, AL AND 0FH -> 0x000f.
  Adjust t({0x3f});  // aas
  for (unsigned ah : {0x00u, 0x01u, 0x02u, 0x80u, 0xffu})
    for (unsigned al = 0; al < 6; ++al) {
      uint16_t ax = static_cast<uint16_t>(ah << 8 | al);
      ax = static_cast<uint16_t>(ax - 6);      // AX := AX - 6 (borrows from AH)
      ax = static_cast<uint16_t>(ax - 0x100);  // AH := AH - 1
      ax &= 0xff0f;                            // AL := AL AND 0FH
      t.run(static_cast<uint16_t>(ah << 8 | al), AF);
      INFO("AX=" << (ah << 8 | al));
      CHECK(t.ax() == ax);
      CHECK((t.flags() & (CF | AF)) == (CF | AF));
    }
}

TEST_CASE("AAM and AAD with base 10 and other bases, AAM 0 raises #DE", "[legacy][bcd]") {
  {
    Adjust t({0xd4, 0x0a});  // aam (base 10)
    for (unsigned al = 0; al < 256; ++al) {
      t.run(static_cast<uint16_t>(0x7700 | al), CF | AF);
      const uint8_t nal = static_cast<uint8_t>(al % 10);
      INFO("AL=" << al);
      REQUIRE(t.ax() == ((al / 10) << 8 | nal));
      REQUIRE((t.flags() & (SF | ZF | PF)) == szp(nal));
    }
  }
  {
    Adjust t({0xd4, 0x07});  // aam 7
    t.run(0x00ff, 0);
    CHECK(t.ax() == ((255 / 7) << 8 | (255 % 7)));
  }
  {
    Adjust t({0xd5, 0x0a});  // aad (base 10): AL = AL + AH * 10, AH = 0
    for (unsigned ah = 0; ah < 256; ah += 3)
      for (unsigned al = 0; al < 256; al += 5) {
        t.run(static_cast<uint16_t>(ah << 8 | al), 0);
        const uint8_t nal = static_cast<uint8_t>(al + ah * 10);
        INFO("AX=" << (ah << 8 | al));
        REQUIRE(t.ax() == nal);
        REQUIRE((t.flags() & (SF | ZF | PF)) == szp(nal));
      }
  }
  {
    Adjust t({0xd5, 0x07});  // aad 7
    t.run(0x0304, 0);
    CHECK(t.ax() == 3 * 7 + 4);
  }
  {
    Adjust t({0xd4, 0x00});  // aam 0: #DE through IVT vector 0
    t.m.ivt(0, 0x0900, 0x0040);
    t.m.put(0x9040, {0xf4});
    t.m.real_seg(SegReg::SS, 0x200);
    t.m.vcpu.set_gpr(RSP, 0x100);
    t.run(0x1234, 0);
    REQUIRE(t.m.run_to(0x9040));
    CHECK(t.m.get16(0x20fa) == 0);  // the AAM
    CHECK(t.ax() == 0x1234);
  }
}

TEST_CASE("SALC sets AL from CF and leaves the flags alone", "[legacy][bcd]") {
  Adjust t({0xd6});  // salc
  t.run(0x1234, CF | ZF);
  CHECK(t.ax() == 0x12ff);
  CHECK(t.flags() == (0x2 | CF | ZF));
  t.run(0x12ff, PF | SF);
  CHECK(t.ax() == 0x1200);
  CHECK(t.flags() == (0x2 | PF | SF));
}

TEST_CASE("XLAT reads DS:[BX + AL] with 16-bit wrap, overrides and 67", "[legacy][real]") {
  LegacyMachine m;
  m.code({0xd7,          // 0000: xlat  (DS:[BX+AL], 16-bit address)
          0x26, 0xd7,    // 0001: xlat es:[bx]
          0x67, 0xd7,    // 0003: xlat ds:[ebx] (32-bit address)
          0xf4});
  m.real_seg(SegReg::DS, 0x100);
  m.real_seg(SegReg::ES, 0x300);
  m.put(0x1000 + 0x0010, {0x5a});
  m.put(0x3000 + 0xfff5, {0x3c});
  m.put(0x1000 + 0xffff + 0x3c, {0x77});
  m.vcpu.set_gpr(RBX, 0xfff0);
  m.vcpu.set_gpr(RAX, 0x1120);
  m.step();  // (0xfff0 + 0x20) & 0xffff = 0x0010
  CHECK(m.ax() == 0x115a);
  m.vcpu.set_gpr(RAX, 0x1105);
  m.step();  // ES:0xfff5
  CHECK(m.ax() == 0x113c);
  // A 32-bit address does not wrap at 64 KiB; DS gets a 4 GiB limit (unreal mode) so the
  // offset 0x1003b is inside it, as it must be on hardware.
  m.vcpu.set_seg(SegReg::DS, {0x100, 0x1000, 0xffffffff, LegacyMachine::kAttrData32});
  m.vcpu.set_gpr(RBX, 0xffff);
  m.step();  // DS:(0xffff + 0x3c)
  CHECK(m.ax() == 0x1177);
}

// ---------------------------------------------------------------------------------------
// Stack images
// ---------------------------------------------------------------------------------------

TEST_CASE("PUSHA/POPA and PUSHAD/POPAD images", "[legacy][real]") {
  LegacyMachine m;
  m.code({0x60,          // 0000: pusha
          0x61,          // 0001: popa
          0x66, 0x60,    // 0002: pushad
          0x66, 0x61,    // 0004: popad
          0xf4});
  m.real_seg(SegReg::SS, 0x200);
  const uint32_t vals[8] = {0x1111a0a0, 0x2222c1c1, 0x3333d2d2, 0x4444b3b3,
                            0x00000100, 0x6666b5b5, 0x7777c6c6, 0x8888d7d7};
  for (unsigned r = 0; r < 8; ++r) m.vcpu.set_gpr(r, vals[r]);
  m.step();
  CHECK(m.sp() == 0x100 - 16);
  // From the lowest address: DI SI BP SP(before) BX DX CX AX.
  for (unsigned k = 0; k < 8; ++k) {
    INFO("slot " << k);
    CHECK(m.get16(0x2000 + 0xf0 + 2 * k) == (vals[7 - k] & 0xffff));
  }
  m.put16(0x2000 + 0xf0 + 6, 0x5555);  // the SP image is skipped by POPA
  for (unsigned r = 0; r < 8; ++r)
    if (r != RSP) m.vcpu.set_gpr(r, 0xffff0000);
  m.step();
  CHECK(m.vcpu.gpr(RSP) == 0x100);
  for (unsigned r = 0; r < 8; ++r) {
    INFO("gpr " << r);
    if (r != RSP) CHECK(m.vcpu.gpr(r) == (0xffff0000u | (vals[r] & 0xffff)));
  }
  for (unsigned r = 0; r < 8; ++r) m.vcpu.set_gpr(r, vals[r]);
  m.step();
  CHECK(m.sp() == 0x100 - 32);
  for (unsigned k = 0; k < 8; ++k) {
    INFO("slot " << k);
    CHECK(m.get32(0x2000 + 0xe0 + 4 * k) == vals[7 - k]);
  }
  m.put32(0x2000 + 0xe0 + 12, 0x5555);
  for (unsigned r = 0; r < 8; ++r)
    if (r != RSP) m.vcpu.set_gpr(r, 0);
  m.step();
  CHECK(m.vcpu.gpr(RSP) == 0x100);
  for (unsigned r = 0; r < 8; ++r) {
    INFO("gpr " << r);
    CHECK(m.vcpu.gpr(r) == vals[r]);
  }
}

TEST_CASE("PUSH/POP ES, CS, SS, DS, FS, GS in real mode", "[legacy][real]") {
  LegacyMachine m;
  m.code({
      0x06,                                      // 0000: push es
      0x1f,                                      // 0001: pop ds
      0x0f, 0xa0,                                // 0002: push fs
      0x0f, 0xa9,                                // 0004: pop gs
      0x16,                                      // 0006: push ss
      0x07,                                      // 0007: pop es
      0x0e,                                      // 0008: push cs
      0x0f, 0xa1,                                // 0009: pop fs
      0x66, 0x1e,                                // 000b: data32 push ds
      0x66, 0x0f, 0xa9,                          // 000d: data32 pop gs
      0x1e,                                      // 0010: push ds
      0x17,                                      // 0011: pop ss
      0xf4,                                      // 0012: hlt
  });
  m.real_seg(SegReg::SS, 0x200);
  m.real_seg(SegReg::ES, 0x1111);
  m.real_seg(SegReg::FS, 0x3333);
  m.vcpu.set_gpr(RSP, 0x100);
  m.run(2);
  CHECK(m.sel(SegReg::DS) == 0x1111);
  CHECK(m.base(SegReg::DS) == 0x11110);
  CHECK(m.sp() == 0x100);
  m.run(2);
  CHECK(m.sel(SegReg::GS) == 0x3333);
  CHECK(m.base(SegReg::GS) == 0x33330);
  m.run(2);
  CHECK(m.sel(SegReg::ES) == 0x200);
  CHECK(m.base(SegReg::ES) == 0x2000);
  m.run(2);
  CHECK(m.sel(SegReg::FS) == 0x0800);
  CHECK(m.base(SegReg::FS) == 0x8000);
  m.step();  // pushd ds: 4 bytes of stack, the selector in the low word
  CHECK(m.sp() == 0xfc);
  CHECK(m.get16(0x20fc) == 0x1111);
  m.step();  // popd gs
  CHECK(m.sp() == 0x100);
  CHECK(m.sel(SegReg::GS) == 0x1111);
  CHECK(m.base(SegReg::GS) == 0x11110);
  m.run(2);  // push ds; pop ss
  CHECK(m.sel(SegReg::SS) == 0x1111);
  CHECK(m.base(SegReg::SS) == 0x11110);
  CHECK(m.sp() == 0x100);
  CHECK(m.step().reason == StopReason::Halted);
}

// ---------------------------------------------------------------------------------------
// System instructions
// ---------------------------------------------------------------------------------------

TEST_CASE("SMSW r32 stores all of CR0, SMSW m16 two bytes, LMSW cannot clear PE",
          "[legacy][system]") {
  LegacyMachine m;
  m.code({0x66, 0x0f, 0x01, 0xe0,         // 0000: smsw eax
          0x0f, 0x01, 0xe3,               // 0004: smsw bx
          0x0f, 0x01, 0x26, 0x00, 0x01,   // 0007: smsw [0x100]
          0x0f, 0x01, 0xf1,               // 000c: lmsw cx
          0x0f, 0x01, 0xf1,               // 000f: lmsw cx
          0x0f, 0x01, 0xf1,               // 0012: lmsw cx
          0x0f, 0x01, 0xf1,               // 0015: lmsw cx
          0xf4});
  m.vcpu.set_gpr(RBX, 0xdead0000);
  m.put(0x100, {0xff, 0xff, 0xee});
  m.step();
  CHECK(m.vcpu.gpr(RAX) == 0x60000010);  // CD | NW | ET from the INIT state
  m.step();
  CHECK(m.vcpu.gpr(RBX) == 0xdead0010);
  m.step();
  CHECK(m.get16(0x100) == 0x0010);
  CHECK(m.get8(0x102) == 0xee);
  m.vcpu.set_gpr(RCX, 0xfffe);  // MP, EM, TS (bits above 3 are ignored), PE = 0
  m.step();
  CHECK(m.vcpu.cr(0) == 0x6000001e);
  m.vcpu.set_gpr(RCX, 0x0001);  // PE = 1 (MP, EM, TS cleared)
  m.step();
  CHECK(m.vcpu.cr(0) == 0x60000011);
  m.vcpu.set_gpr(RCX, 0x0000);  // PE stays 1
  m.step();
  CHECK(m.vcpu.cr(0) == 0x60000011);
  m.vcpu.set_gpr(RCX, 0x0008);
  m.step();
  CHECK(m.vcpu.cr(0) == 0x60000019);
}

TEST_CASE("MOV DRn: the mod field is ignored, DR6 and DR7 fixed bits", "[legacy][system]") {
  LegacyMachine m;
  m.code({
      0x66, 0x0f, 0x01, 0xe0,                    // 0000: smsw eax
      0x0f, 0x01, 0xe3,                          // 0004: smsw bx
      0x0f, 0x01, 0x26, 0x00, 0x01,              // 0007: smsw [0x100]
      0x0f, 0x01, 0xf1,                          // 000c: lmsw cx
      0x0f, 0x23, 0xc3,                          // 000f: mov dr0, ebx
      0x0f, 0x21, 0x00,                          // 0012: .byte 0x0f, 0x21, 0x00
      0x0f, 0x21, 0xf1,                          // 0015: mov ecx, dr6
      0x0f, 0x21, 0xfa,                          // 0018: mov edx, dr7
      0x0f, 0x23, 0xf6,                          // 001b: mov dr6, esi
      0x0f, 0x23, 0xff,                          // 001e: mov dr7, edi
      0x0f, 0x21, 0xf1,                          // 0021: mov ecx, dr6
      0x0f, 0x21, 0xfa,                          // 0024: mov edx, dr7
      0xf4,                                      // 0027: hlt
  });
  m.vcpu.set_rip(LegacyMachine::kCode + 0xf);
  m.vcpu.set_gpr(RBX, 0x12345678);
  m.vcpu.set_gpr(RSI, 0);
  m.vcpu.set_gpr(RDI, 0);
  m.step();  // mov dr0, ebx
  m.step();  // 0f 21 00: mov eax, dr0 — three bytes, no memory operand
  CHECK(m.ip() == 0x15);
  CHECK(m.vcpu.gpr(RAX) == 0x12345678);
  m.run(2);
  CHECK(m.vcpu.gpr(RCX) == 0xffff0ff0);
  CHECK(m.vcpu.gpr(RDX) == 0x400);
  m.run(2);  // DR6 = 0, DR7 = 0
  m.vcpu.set_gpr(RCX, 0);
  m.vcpu.set_gpr(RDX, 0);
  m.run(2);
  CHECK(m.vcpu.gpr(RCX) == 0xffff0ff0);  // reserved bits read 1
  CHECK(m.vcpu.gpr(RDX) == 0x400);       // bit 10 reads 1
  CHECK(m.step().reason == StopReason::Halted);
}

TEST_CASE("x87 FNINIT, FNSTSW, FNSTCW values and #NM with CR0.TS or CR0.EM",
          "[legacy][system][x87]") {
  {
    LegacyMachine m;
    m.code({
      0xdb, 0xe3,                                // 0000: fninit
      0x67, 0xdd, 0x38,                          // 0002: fnstsw [eax]
      0x67, 0xd9, 0x3b,                          // 0005: fnstcw [ebx]
      0xdf, 0xe0,                                // 0008: fnstsw ax
      0xd9, 0x3e, 0x04, 0x01,                    // 000a: fnstcw [0x104]
      0xf4,                                      // 000e: hlt
    });
    m.put(0x100, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff});
    m.vcpu.set_gpr(RAX, 0x100);
    m.vcpu.set_gpr(RBX, 0x102);
    m.run(3);
    CHECK(m.get16(0x100) == 0x0000);  // FSW after FNINIT
    CHECK(m.get16(0x102) == 0x037f);  // FCW after FNINIT
    m.vcpu.set_gpr(RAX, 0xffffffff);
    m.step();  // fnstsw ax
    CHECK(m.vcpu.gpr(RAX) == 0xffff0000);
    m.step();
    CHECK(m.get16(0x104) == 0x037f);
    CHECK(m.step().reason == StopReason::Halted);
  }
  // CR0.TS (task switched) and CR0.EM (emulation) make x87 instructions #NM (SDM Vol. 3A
  // Table 2-2); FWAIT only with MP and TS.
  struct Case {
    uint64_t cr0;
    uint8_t b0, b1;
    bool nm;
    const char* what;
  };
  const Case cases[] = {
      {0x60000018, 0xdb, 0xe3, true, "fninit, TS"},
      {0x60000014, 0xdb, 0xe3, true, "fninit, EM"},
      {0x60000010, 0xdb, 0xe3, false, "fninit"},
      {0x60000018, 0xdf, 0xe0, true, "fnstsw ax, TS"},
      {0x60000018, 0x9b, 0x90, false, "fwait, TS without MP"},
      {0x6000001a, 0x9b, 0x90, true, "fwait, MP and TS"},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    LegacyMachine m;
    m.ivt(7, 0x0900, 0x0070);
    m.put(0x9070, {0xf4});
    m.real_seg(SegReg::SS, 0x200);
    m.vcpu.set_gpr(RSP, 0x100);
    m.code({0x90, c.b0, c.b1, 0xf4});  // nop; insn; hlt
    m.vcpu.set_cr(0, c.cr0);
    m.run(4);
    if (c.nm) {
      CHECK(m.vcpu.rip() == 0x9071);  // halted in the #NM handler
      CHECK(m.get16(0x20fa) == 0x0001);
    } else {
      CHECK(m.vcpu.rip() == 0x8004);
    }
  }
}

TEST_CASE("CPUID and RDTSC in real mode write 32-bit registers", "[legacy][system]") {
  LegacyMachine m;
  m.code({0x0f, 0xa2,    // 0000: cpuid
          0x0f, 0x31,    // 0002: rdtsc
          0xf4});
  m.vcpu.set_gpr(RAX, 0);
  m.vcpu.set_gpr(RCX, 0x55);
  m.step();
  CHECK(m.vcpu.gpr(RAX) == 1);  // TestEnv: leaf * 3 + 1
  CHECK(m.vcpu.gpr(RBX) == 0x756e6547);
  CHECK(m.vcpu.gpr(RCX) == 0x55);
  CHECK(m.vcpu.gpr(RDX) == 0x49656e69);
  const uint64_t before = m.vcpu.tsc();
  m.step();
  const uint64_t after = m.vcpu.tsc();
  const uint64_t tsc = (m.vcpu.gpr(RDX) << 32) | m.vcpu.gpr(RAX);
  CHECK(m.vcpu.gpr(RAX) >> 32 == 0);
  CHECK(tsc >= before);
  CHECK(tsc <= after);
  CHECK(m.ip() == 4);
}

TEST_CASE("STI shadow: HLT runs before a pending interrupt, which then wakes it",
          "[legacy][system][irq]") {
  // kvm-unit-tests' realmode "sti inhibit": sti; hlt with an interrupt already pending.
  LegacyMachine m;
  m.ivt(0x20, 0x0900, 0x0000);
  m.put(0x9000, {0xcf});  // iret
  m.code({0xfb,           // 0000: sti
          0xf4,           // 0001: hlt
          0x40,           // 0002: inc ax
          0xf4});         // 0003: hlt
  m.real_seg(SegReg::SS, 0x200);
  m.vcpu.set_gpr(RSP, 0x100);
  int polls = 0;
  m.vcpu.set_interrupt_poll([&](Vcpu&) { return polls++ == 0 ? 0x20 : -1; });
  m.vcpu.notify_interrupt();
  m.step();  // sti: the interrupt stays blocked for one more instruction
  CHECK(m.vcpu.rip() == 0x8001);
  CHECK(polls == 0);
  m.step();  // hlt, and at once the delivery that wakes it
  CHECK(m.vcpu.rip() == 0x9000);
  CHECK(m.get16(0x20fa) == 0x0002);  // return to the instruction after HLT
  CHECK(m.run(3).reason == StopReason::Halted);
  CHECK(m.ax() == 1);
  CHECK(polls >= 1);

  // With nothing pending, HLT stops the vCPU; a later interrupt wakes it.
  LegacyMachine h;
  h.ivt(0x20, 0x0900, 0x0000);
  h.put(0x9000, {0xcf});
  h.code({0xfb, 0xf4, 0x40, 0xf4});
  h.real_seg(SegReg::SS, 0x200);
  h.vcpu.set_gpr(RSP, 0x100);
  CHECK(h.run(5).reason == StopReason::Halted);
  CHECK(h.vcpu.rip() == 0x8002);
  int hp = 0;
  h.vcpu.set_interrupt_poll([&](Vcpu&) { return hp++ == 0 ? 0x20 : -1; });
  h.vcpu.notify_interrupt();
  CHECK(h.run(5).reason == StopReason::Halted);
  CHECK(h.ax() == 1);
  CHECK(h.vcpu.rip() == 0x8004);
}

TEST_CASE("82 /r is 80 /r outside 64-bit mode and #UD in 64-bit mode", "[legacy][decoder]") {
  {
    LegacyMachine m;                  // real mode (INIT + SIPI 0x08)
    m.code({0x82, 0xc0, 0x05,         // 0000: add al, 5 (the 82 alias)
            0x82, 0xf8, 0x15,         // 0003: cmp al, 0x15
            0xf4});
    m.vcpu.set_gpr(RAX, 0x1210);
    m.step();
    CHECK(m.ax() == 0x1215);
    m.step();
    CHECK((m.vcpu.rflags() & ZF) != 0);
  }
  {
    LegacyMachine m;
    m.enter_ia32e(LegacyMachine::kCode64, LegacyMachine::kCode);
    m.code({0x82, 0xc0, 0x05});  // no such instruction in 64-bit mode (SDM Vol. 2D A.2.5 "i64")
    m.step();
    CHECK(m.vcpu.rip() == LegacyMachine::handler(6));
  }
}

TEST_CASE("SLDT STR LLDT LTR are #UD in real mode, and F3 0F AE /5 is no LFENCE", "[legacy][decoder]") {
  for (const std::vector<uint8_t>& insn : std::vector<std::vector<uint8_t>>{
           {0x0f, 0x00, 0xc0},         // sldt ax
           {0x0f, 0x00, 0xc8},         // str ax
           {0x0f, 0x00, 0xd0},         // lldt ax
           {0x0f, 0x00, 0xd8},         // ltr ax
           {0xf3, 0x0f, 0xae, 0xe8},   // incsspd eax (CET): #UD here, not LFENCE
           {0xf2, 0x0f, 0xae, 0xf0}})  // F2 0F AE /6: #UD, not MFENCE
  {
    LegacyMachine m;
    m.ivt(6, 0, 0x9000);
    m.put(0x9000, {0xf4});
    m.code(insn);
    m.step();
    INFO("first byte " << int(insn[0]) << " length " << insn.size());
    CHECK(m.vcpu.rip() == 0x9000);
    // The pushed IP is the faulting instruction's (offset 0 in CS 0x0800), the frame's CS 0x0800.
    CHECK(m.get16(m.base(SegReg::SS) + m.sp()) == 0);
    CHECK(m.get16(m.base(SegReg::SS) + static_cast<uint16_t>(m.sp() + 2)) == 0x0800);
  }
  LegacyMachine m;  // without F2/F3 the fence still runs
  m.code({0x0f, 0xae, 0xe8, 0xf4});
  m.step();
  CHECK(m.ip() == 3);
}

TEST_CASE("INTO, CALL far m16:16, FLDCW and FNCLEX in real mode", "[legacy][x87]") {
  LegacyMachine m;
  m.ivt(4, 0, 0x9000);
  m.put(0x9000, {0xcf});                    // #OF handler: iret
  m.put(0x9020, {0xcb});                    // 0900:0020: retf
  m.put(0x200, {0x20, 0x00, 0x00, 0x09});  // m16:16 = 0900:0020
  m.put(0x210, {0x7f, 0x02});              // a control word: 0x027f
  m.code({
      0xce,                    // 0000: into (OF = 0: nothing)
      0xb0, 0x7f,              // 0001: mov al, 0x7f
      0x04, 0x01,              // 0003: add al, 1 (OF = 1)
      0xce,                    // 0005: into -> IVT vector 4
      0xff, 0x1e, 0x00, 0x02,  // 0006: call far [0x200]
      0xd9, 0x2e, 0x10, 0x02,  // 000a: fldcw [0x210]
      0xd9, 0x3e, 0x12, 0x02,  // 000e: fnstcw [0x212]
      0xdb, 0xe2,              // 0012: fnclex
      0xf4,                    // 0014: hlt
  });
  m.step();
  CHECK(m.ip() == 1);
  m.run(2);
  CHECK(m.ip() == 5);
  m.step();  // into with OF = 1: a trap, the pushed IP is the next instruction's
  CHECK(m.vcpu.rip() == 0x9000);
  CHECK(m.get16(m.base(SegReg::SS) + m.sp()) == 0x0006);
  m.step();  // iret
  CHECK(m.ip() == 6);
  m.step();  // call far [0x200]
  CHECK(m.sel(SegReg::CS) == 0x0900);
  CHECK(m.vcpu.rip() == 0x9020);
  CHECK(m.get16(m.base(SegReg::SS) + m.sp()) == 0x000a);                                  // IP
  CHECK(m.get16(m.base(SegReg::SS) + static_cast<uint16_t>(m.sp() + 2)) == 0x0800);       // CS
  m.step();  // retf
  CHECK(m.sel(SegReg::CS) == 0x0800);
  CHECK(m.ip() == 0x0a);
  m.run(2);  // fldcw, fnstcw
  CHECK(m.get16(0x212) == 0x027f);
  m.step();  // fnclex
  CHECK(m.ip() == 0x14);
  CHECK(m.step().reason == StopReason::Halted);
}
