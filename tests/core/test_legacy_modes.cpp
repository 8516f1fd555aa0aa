// tests/core/test_legacy_modes.cpp — execution outside 64-bit mode: the INIT state and the
// start-up IPI (SDM Vol. 3A §9.1.1 Table 9-1, §9.4.4.1), real-address mode (segment loads,
// 16-bit addressing, stack, near and far transfers, LOOP/JCXZ, IVT delivery and IRET, SDM
// Vol. 3A chapter 20), the switches between real, 16/32-bit protected, compatibility and
// 64-bit mode (SDM Vol. 3A §9.8, §9.9) and the decoded-block cache keeping the modes apart.
// Programs are hand-assembled: each byte line names its offset and instruction (GNU as,
// Intel syntax; checked with objdump -m i8086 / i386 / x86-64).
#include <catch2/catch.hpp>

#include "legacy_machine.h"

using namespace pvsim;
using pvsim::test::LegacyMachine;
using pvsim::test::Machine;

namespace {
enum { RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI };
constexpr uint64_t kLMA = 0x400, kLME = 0x100;
using Bytes = std::vector<uint8_t>;
}  // namespace

// ---------------------------------------------------------------------------------------
// INIT and SIPI
// ---------------------------------------------------------------------------------------

TEST_CASE("INIT: reset_to_init gives the SDM Table 9-1 state from long mode", "[legacy][init]") {
  Machine m;  // 64-bit mode with paging, a TSS and dirty registers
  for (unsigned r = 0; r < 16; ++r) m.vcpu.set_gpr(r, 0x1111111111111111ull * (r + 1));
  m.vcpu.set_gpr(RAX, 0x1234);
  m.vcpu.set_gpr(RBX, 0xff);
  m.code({0x0f, 0x23, 0xc0,   // mov dr0, rax
          0x0f, 0x23, 0xfb,   // mov dr7, rbx
          0x0f, 0x23, 0xf3}); // mov dr6, rbx
  m.run(3);
  m.vcpu.set_rflags(0x247ed7);
  m.vcpu.set_cr(2, 0xdead000);

  m.vcpu.reset_to_init();
  CHECK(m.vcpu.rip() == 0xfffffff0);  // linear: CS.base 0xffff0000 + EIP 0xfff0
  CHECK(m.vcpu.rflags() == 0x2);
  CHECK(m.vcpu.cr(0) == 0x60000010);  // CD, NW, ET
  CHECK(m.vcpu.cr(2) == 0);
  CHECK(m.vcpu.cr(3) == 0);
  CHECK(m.vcpu.cr(4) == 0);
  CHECK(m.vcpu.efer() == 0);
  CHECK(m.vcpu.cpl() == 0);
  for (unsigned r = 0; r < 16; ++r) {
    INFO("gpr " << r);
    if (r == RDX)
      CHECK(((m.vcpu.gpr(r) >> 8) & 0xf) == 6);  // EDX 000n06xxH: family 6
    else
      CHECK(m.vcpu.gpr(r) == 0);
  }
  const SegmentCache cs = m.vcpu.seg(SegReg::CS);
  CHECK(cs.selector == 0xf000);
  CHECK(cs.base == 0xffff0000);
  CHECK(cs.limit == 0xffff);
  CHECK((cs.attrs & 0xff) == 0x9b);  // present, code, readable, accessed
  CHECK((cs.attrs & 0x6000) == 0);   // neither L nor D: 16-bit code
  for (SegReg s : {SegReg::DS, SegReg::ES, SegReg::SS, SegReg::FS, SegReg::GS}) {
    const SegmentCache d = m.vcpu.seg(s);
    INFO("segment " << static_cast<unsigned>(s));
    CHECK(d.selector == 0);
    CHECK(d.base == 0);
    CHECK(d.limit == 0xffff);
    CHECK((d.attrs & 0xff) == 0x93);  // present, data, writable, accessed
  }
  CHECK(m.vcpu.gdtr().base == 0);
  CHECK(m.vcpu.gdtr().limit == 0xffff);
  CHECK(m.vcpu.idtr().base == 0);
  CHECK(m.vcpu.idtr().limit == 0xffff);
  CHECK(m.vcpu.ldtr().selector == 0);
  CHECK(m.vcpu.ldtr().base == 0);
  CHECK(m.vcpu.ldtr().limit == 0xffff);
  CHECK(m.vcpu.tr().selector == 0);
  CHECK(m.vcpu.tr().base == 0);
  CHECK(m.vcpu.tr().limit == 0xffff);

  // The debug registers (DR0-DR3 0, DR6 FFFF0FF0H, DR7 400H) are only visible to MOV DRn:
  // start the vCPU with a SIPI and read them in real mode.
  m.vcpu.start_at_sipi(0x08);
  CHECK(m.vcpu.rip() == 0x8000);
  CHECK(m.vcpu.seg(SegReg::CS).selector == 0x0800);
  CHECK(m.vcpu.seg(SegReg::CS).base == 0x8000);
  m.put(0x8000, {
      0x0f, 0x21, 0xf8,  // 0000: mov eax, dr7
      0x0f, 0x21, 0xc1,  // 0003: mov ecx, dr0
      0x0f, 0x21, 0xf2,  // 0006: mov edx, dr6
      0xb8, 0x34, 0x12,  // 0009: mov ax, 0x1234   (16-bit decode: 3 bytes)
      0x40,              // 000c: inc ax            (not a REX prefix)
      0xf4,              // 000d: hlt
  });
  m.vcpu.set_gpr(RCX, 0x5555);
  CHECK(m.run(10).reason == StopReason::Halted);
  CHECK(m.vcpu.rip() == 0x800e);
  CHECK(m.vcpu.gpr(RCX) == 0);
  CHECK(m.vcpu.gpr(RDX) == 0xffff0ff0);
  CHECK(m.vcpu.gpr(RAX) == 0x1235);  // EAX was DR7 = 0x400, then AX = 0x1234, + 1
}

TEST_CASE("SIPI: start_at_sipi starts real mode at vector << 12", "[legacy][init]") {
  LegacyMachine m;  // reset_to_init + start_at_sipi(0x08)
  CHECK(m.sel(SegReg::CS) == 0x0800);
  CHECK(m.base(SegReg::CS) == 0x8000);
  CHECK(m.vcpu.seg(SegReg::CS).limit == 0xffff);
  CHECK(m.vcpu.rip() == 0x8000);
  CHECK(m.ip() == 0);
  CHECK(!m.vcpu.halted());
  m.vcpu.start_at_sipi(0x9f);
  CHECK(m.sel(SegReg::CS) == 0x9f00);
  CHECK(m.base(SegReg::CS) == 0x9f000);
  CHECK(m.vcpu.rip() == 0x9f000);
  m.put(0x9f000, {0x66, 0xb8, 0x78, 0x56, 0x34, 0x12,  // mov eax, 0x12345678 (66: 32-bit)
                  0xf4});                              // hlt
  CHECK(m.run(5).reason == StopReason::Halted);
  CHECK(m.vcpu.gpr(RAX) == 0x12345678);
  CHECK(m.ip() == 7);
}

// ---------------------------------------------------------------------------------------
// Real-address mode
// ---------------------------------------------------------------------------------------

TEST_CASE("real mode: segment loads set base = selector * 16 and keep limit and attributes",
          "[legacy][real]") {
  LegacyMachine m;
  // FS carries a 4 GiB limit and B/G attributes as if loaded in protected mode.
  m.vcpu.set_seg(SegReg::FS, {0x20, 0, 0xffffffff, LegacyMachine::kAttrData32});
  m.code({
      0xb8, 0x34, 0x12,                          // 0000: mov ax, 0x1234
      0x8e, 0xd8,                                // 0003: mov ds, ax
      0x68, 0x45, 0x23,                          // 0005: push 0x2345
      0x07,                                      // 0008: pop es
      0x0f, 0xb4, 0x1e, 0x10, 0x00,              // 0009: lfs bx, [0x10]
      0x0f, 0xb5, 0x0e, 0x14, 0x00,              // 000e: lgs cx, [0x14]
      0x0f, 0xb2, 0x26, 0x18, 0x00,              // 0013: lss sp, [0x18]
      0xc4, 0x3e, 0x1c, 0x00,                    // 0018: les di, [0x1c]
      0xc5, 0x36, 0x20, 0x00,                    // 001c: lds si, [0x20]
      0x66, 0x0f, 0xb2, 0x26, 0x28, 0x00,        // 0020: lss esp, [0x28]
      0xf4,                                      // 0026: hlt
  });
  // Far pointers (offset, selector) read through DS = 0x1234 (base 0x12340) ...
  m.put16(0x12350, 0xbeef), m.put16(0x12352, 0x4567);
  m.put16(0x12354, 0xcafe), m.put16(0x12356, 0x5678);
  m.put16(0x12358, 0x0100), m.put16(0x1235a, 0x6789);
  m.put16(0x1235c, 0x1111), m.put16(0x1235e, 0x789a);
  m.put16(0x12360, 0x2222), m.put16(0x12362, 0x89ab);
  // ... and, after LDS, through DS = 0x89ab (base 0x89ab0): m16:32 for LSS ESP.
  m.put32(0x89ad8, 0x00012345), m.put16(0x89adc, 0x9abc);

  m.run(2);
  CHECK(m.sel(SegReg::DS) == 0x1234);
  CHECK(m.base(SegReg::DS) == 0x12340);
  m.run(2);
  CHECK(m.sel(SegReg::ES) == 0x2345);
  CHECK(m.base(SegReg::ES) == 0x23450);
  m.step();  // lfs
  CHECK(m.sel(SegReg::FS) == 0x4567);
  CHECK(m.base(SegReg::FS) == 0x45670);
  CHECK(m.vcpu.seg(SegReg::FS).limit == 0xffffffff);  // kept (SDM Vol. 3A §20.1.1)
  CHECK(m.vcpu.seg(SegReg::FS).attrs == LegacyMachine::kAttrData32);
  CHECK((m.vcpu.gpr(RBX) & 0xffff) == 0xbeef);
  m.step();  // lgs
  CHECK(m.sel(SegReg::GS) == 0x5678);
  CHECK(m.base(SegReg::GS) == 0x56780);
  CHECK((m.vcpu.gpr(RCX) & 0xffff) == 0xcafe);
  m.step();  // lss sp
  CHECK(m.sel(SegReg::SS) == 0x6789);
  CHECK(m.base(SegReg::SS) == 0x67890);
  CHECK(m.sp() == 0x0100);
  m.step();  // les
  CHECK(m.sel(SegReg::ES) == 0x789a);
  CHECK(m.base(SegReg::ES) == 0x789a0);
  CHECK((m.vcpu.gpr(RDI) & 0xffff) == 0x1111);
  m.step();  // lds
  CHECK(m.sel(SegReg::DS) == 0x89ab);
  CHECK(m.base(SegReg::DS) == 0x89ab0);
  CHECK((m.vcpu.gpr(RSI) & 0xffff) == 0x2222);
  m.step();  // lss esp (66: 32-bit offset)
  CHECK(m.sel(SegReg::SS) == 0x9abc);
  CHECK(m.base(SegReg::SS) == 0x9abc0);
  CHECK((m.vcpu.gpr(RSP) & 0xffffffff) == 0x00012345);
  for (SegReg s : {SegReg::DS, SegReg::ES, SegReg::SS, SegReg::GS}) {
    INFO("segment " << static_cast<unsigned>(s));
    CHECK(m.vcpu.seg(s).limit == 0xffff);
    CHECK(m.vcpu.seg(s).attrs == LegacyMachine::kAttrData16);
  }
  CHECK(m.step().reason == StopReason::Halted);
  CHECK(m.ip() == 0x27);
}

TEST_CASE("real mode: unreal mode keeps a 4 GiB limit cached in protected mode",
          "[legacy][real]") {
  LegacyMachine m;
  m.put32(0x200000, 0xdeadbeef);
  m.code({
      0x0f, 0x01, 0x16, 0xf0, 0x05,              // 0000: lgdt [0x5f0]
      0x0f, 0x20, 0xc0,                          // 0005: mov eax, cr0
      0x0c, 0x01,                                // 0008: or al, 1
      0x0f, 0x22, 0xc0,                          // 000a: mov cr0, eax
      0xb8, 0x20, 0x00,                          // 000d: mov ax, 0x20
      0x8e, 0xe8,                                // 0010: mov gs, ax
      0x0f, 0x20, 0xc0,                          // 0012: mov eax, cr0
      0x24, 0xfe,                                // 0015: and al, 0xfe
      0x0f, 0x22, 0xc0,                          // 0017: mov cr0, eax
      0x31, 0xc0,                                // 001a: xor ax, ax
      0x8e, 0xe8,                                // 001c: mov gs, ax
      0x66, 0xbb, 0x00, 0x00, 0x20, 0x00,        // 001e: mov ebx, 0x200000
      0x65, 0x67, 0x66, 0x8b, 0x03,              // 0024: mov eax, gs:[ebx]
      0xb8, 0x00, 0x10,                          // 0029: mov ax, 0x1000
      0x8e, 0xd8,                                // 002c: mov ds, ax
      0xf4,                                      // 002e: hlt
  });
  CHECK(m.run(40).reason == StopReason::Halted);
  CHECK(m.ip() == 0x2f);
  CHECK((m.vcpu.cr(0) & 1) == 0);
  CHECK(m.sel(SegReg::CS) == 0x0800);  // CS never changed: no far jump
  const SegmentCache gs = m.vcpu.seg(SegReg::GS);
  CHECK(gs.selector == 0);
  CHECK(gs.base == 0);
  CHECK(gs.limit == 0xffffffff);  // from the flat descriptor, kept by the real-mode load
  CHECK(gs.attrs == LegacyMachine::kAttrData32);
  CHECK((m.vcpu.gpr(RAX) & 0xffffffff) == 0xdead1000);  // EAX = gs:[0x200000], then AX
  CHECK(m.sel(SegReg::DS) == 0x1000);
  CHECK(m.base(SegReg::DS) == 0x10000);
  CHECK(m.vcpu.seg(SegReg::DS).limit == 0xffff);
}

TEST_CASE("real mode: 16-bit ModRM forms, default segments and overrides", "[legacy][real]") {
  LegacyMachine m;
  // A byte pattern over 0x1000..0x16000 makes every word distinguishable.
  for (uint64_t a = 0x1000; a < 0x16000; ++a)
    m.mem.write_obj(Gpa(a), static_cast<uint8_t>((a * 2654435761u) >> 13));
  m.code({
      0x8b, 0x00,                                // 0000: mov ax, [bx+si]
      0x8b, 0x01,                                // 0002: mov ax, [bx+di]
      0x8b, 0x02,                                // 0004: mov ax, [bp+si]
      0x8b, 0x03,                                // 0006: mov ax, [bp+di]
      0x8b, 0x04,                                // 0008: mov ax, [si]
      0x8b, 0x05,                                // 000a: mov ax, [di]
      0x8b, 0x46, 0x00,                          // 000c: mov ax, [bp]
      0x8b, 0x07,                                // 000f: mov ax, [bx]
      0xa1, 0x34, 0x12,                          // 0011: mov ax, [0x1234]
      0x8b, 0x16, 0x36, 0x12,                    // 0014: mov dx, [0x1236]
      0x8b, 0x42, 0xfe,                          // 0018: mov ax, [bp+si-2]
      0x8b, 0x81, 0x00, 0x80,                    // 001b: mov ax, [bx+di+0x8000]
      0x26, 0x8b, 0x02,                          // 001f: mov ax, es:[bp+si]
      0x3e, 0x8b, 0x46, 0x00,                    // 0022: mov ax, ds:[bp]
      0x36, 0x8b, 0x07,                          // 0026: mov ax, ss:[bx]
      0x2e, 0xa1, 0x00, 0x01,                    // 0029: mov ax, cs:[0x100]
      0x64, 0x8b, 0x07,                          // 002d: mov ax, fs:[bx]
      0x65, 0x8b, 0x05,                          // 0030: mov ax, gs:[di]
      0x67, 0x8b, 0x04, 0x24,                    // 0033: mov ax, [esp]
      0x67, 0x8b, 0x45, 0x04,                    // 0037: mov ax, [ebp+4]
      0x67, 0x8b, 0x04, 0x7b,                    // 003b: mov ax, [ebx+edi*2]
      0x67, 0x8b, 0x44, 0xfd, 0x00,              // 003f: mov ax, [ebp+edi*8]
      0x67, 0x8b, 0x0d, 0x00, 0x20, 0x00, 0x00,  // 0044: addr32 mov cx, ds:[0x2000]
      0x89, 0x0b,                                // 004b: mov [bp+di], cx
      0xf4,                                      // 004d: hlt
  });
  m.real_seg(SegReg::DS, 0x100);
  m.real_seg(SegReg::SS, 0x200);
  m.real_seg(SegReg::ES, 0x300);
  m.real_seg(SegReg::FS, 0x400);
  m.real_seg(SegReg::GS, 0x500);
  m.vcpu.set_gpr(RBX, 0xf000);
  m.vcpu.set_gpr(RSI, 0x0022);
  m.vcpu.set_gpr(RDI, 0x0304);
  m.vcpu.set_gpr(RBP, 0x0450);
  m.vcpu.set_gpr(RSP, 0x0600);
  struct Case {
    unsigned reg;
    uint64_t linear;
    const char* what;
  };
  const Case cases[] = {
      {RAX, 0x1000 + 0xf022, "[bx+si] DS"},
      {RAX, 0x1000 + 0xf304, "[bx+di] DS"},
      {RAX, 0x2000 + 0x0472, "[bp+si] SS"},
      {RAX, 0x2000 + 0x0754, "[bp+di] SS"},
      {RAX, 0x1000 + 0x0022, "[si] DS"},
      {RAX, 0x1000 + 0x0304, "[di] DS"},
      {RAX, 0x2000 + 0x0450, "[bp+0] SS"},
      {RAX, 0x1000 + 0xf000, "[bx] DS"},
      {RAX, 0x1000 + 0x1234, "moffs16 DS"},
      {RDX, 0x1000 + 0x1236, "[disp16] DS"},
      {RAX, 0x2000 + 0x0470, "[bp+si-2] SS"},
      {RAX, 0x1000 + 0x7304, "[bx+di+0x8000] wraps at 64 KiB"},
      {RAX, 0x3000 + 0x0472, "es:[bp+si]"},
      {RAX, 0x1000 + 0x0450, "ds:[bp]"},
      {RAX, 0x2000 + 0xf000, "ss:[bx]"},
      {RAX, 0x8000 + 0x0100, "cs:moffs16"},
      {RAX, 0x4000 + 0xf000, "fs:[bx]"},
      {RAX, 0x5000 + 0x0304, "gs:[di]"},
      {RAX, 0x2000 + 0x0600, "67 [esp] SS"},
      {RAX, 0x2000 + 0x0454, "67 [ebp+4] SS"},
      {RAX, 0x1000 + 0xf608, "67 [ebx+edi*2] DS"},
      {RAX, 0x2000 + 0x1c70, "67 [ebp+edi*8] SS"},
      {RCX, 0x1000 + 0x2000, "67 [disp32] DS"},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    m.step();
    CHECK((m.vcpu.gpr(c.reg) & 0xffff) == m.get16(c.linear));
  }
  m.step();  // mov [bp+di], cx
  CHECK(m.get16(0x2000 + 0x0754) == (m.vcpu.gpr(RCX) & 0xffff));
  CHECK(m.step().reason == StopReason::Halted);
  CHECK(m.ip() == 0x4e);
}

TEST_CASE("real mode: PUSH and POP wrap SP at 64 KiB and keep ESP[31:16]", "[legacy][real]") {
  LegacyMachine m;
  m.code({
      0x50,                                      // 0000: push ax
      0x66, 0x50,                                // 0001: push eax
      0x66, 0x59,                                // 0003: pop ecx
      0x5a,                                      // 0005: pop dx
      0xf4,                                      // 0006: hlt
  });
  m.real_seg(SegReg::SS, 0x200);
  m.vcpu.set_gpr(RSP, 0x12340000);
  m.vcpu.set_gpr(RAX, 0x89abcdef);
  m.step();
  CHECK(m.vcpu.gpr(RSP) == 0x1234fffe);
  CHECK(m.get16(0x2000 + 0xfffe) == 0xcdef);
  m.step();
  CHECK(m.vcpu.gpr(RSP) == 0x1234fffa);
  CHECK(m.get32(0x2000 + 0xfffa) == 0x89abcdef);
  m.step();
  CHECK((m.vcpu.gpr(RCX) & 0xffffffff) == 0x89abcdef);
  CHECK(m.vcpu.gpr(RSP) == 0x1234fffe);
  m.step();
  CHECK((m.vcpu.gpr(RDX) & 0xffff) == 0xcdef);
  CHECK(m.vcpu.gpr(RSP) == 0x12340000);  // SP wrapped to 0, ESP[31:16] untouched
}

TEST_CASE("real mode: near CALL/RET with 16- and 32-bit operands, far CALL, RETF, JMP far",
          "[legacy][real]") {
  LegacyMachine m;
  m.code({
      0xe8, 0x10, 0x00,                          // 0000: call near16
      0x66, 0xe8, 0x0d, 0x00, 0x00, 0x00,        // 0003: data32 call near32
      0x9a, 0x00, 0x00, 0x00, 0x09,              // 0009: call 0x0900:0x0000
      0xea, 0x00, 0x00, 0x00, 0x0a,              // 000e: jmp 0x0a00:0x0000
      0xc2, 0x02, 0x00,                          // 0013: ret 2
      0x66, 0xc3,                                // 0016: data32 ret
  });
  m.put(0x9000, {0xcb});              // 0900:0000: retf
  m.put(0x9010, {0xca, 0x04, 0x00});  // 0900:0010: retf 4
  m.put(0xa000, {
      0x68, 0x11, 0x11,                          // 0000: push 0x1111
      0x68, 0x22, 0x22,                          // 0003: push 0x2222
      0x9a, 0x10, 0x00, 0x00, 0x09,              // 0006: call 0x0900:0x0010
      0xf4,                                      // 000b: hlt
  });
  m.real_seg(SegReg::SS, 0x200);
  m.vcpu.set_gpr(RSP, 0x100);
  m.step();  // call near16
  CHECK(m.ip() == 0x13);
  CHECK(m.sp() == 0xfe);
  CHECK(m.get16(0x20fe) == 0x0003);
  m.step();  // ret 2
  CHECK(m.ip() == 0x03);
  CHECK(m.sp() == 0x102);
  m.step();  // calld near32: a 4-byte return address
  CHECK(m.ip() == 0x16);
  CHECK(m.sp() == 0xfe);
  CHECK(m.get32(0x20fe) == 0x00000009);
  m.step();  // retd
  CHECK(m.ip() == 0x09);
  CHECK(m.sp() == 0x102);
  m.step();  // call 0x0900:0x0000
  CHECK(m.sel(SegReg::CS) == 0x0900);
  CHECK(m.base(SegReg::CS) == 0x9000);
  CHECK(m.vcpu.rip() == 0x9000);
  CHECK(m.sp() == 0xfe);
  CHECK(m.get16(0x2100) == 0x0800);  // CS pushed first
  CHECK(m.get16(0x20fe) == 0x000e);  // then IP
  m.step();  // retf
  CHECK(m.sel(SegReg::CS) == 0x0800);
  CHECK(m.vcpu.rip() == 0x800e);
  CHECK(m.sp() == 0x102);
  m.step();  // jmp 0x0a00:0x0000
  CHECK(m.sel(SegReg::CS) == 0x0a00);
  CHECK(m.vcpu.rip() == 0xa000);
  CHECK(m.sp() == 0x102);
  m.run(2);  // two pushes of arguments
  m.step();  // call 0x0900:0x0010
  CHECK(m.vcpu.rip() == 0x9010);
  CHECK(m.sp() == 0xfa);
  CHECK(m.get16(0x20fc) == 0x0a00);
  CHECK(m.get16(0x20fa) == 0x000b);
  m.step();  // retf 4: pops IP and CS, then releases the two arguments
  CHECK(m.sel(SegReg::CS) == 0x0a00);
  CHECK(m.vcpu.rip() == 0xa00b);
  CHECK(m.sp() == 0x102);
  CHECK(m.step().reason == StopReason::Halted);
}

TEST_CASE("real mode: a 32-bit near RET or JMP beyond the 64 KiB CS limit raises #GP",
          "[legacy][real]") {
  // SDM Vol. 2B "RET" and Vol. 2A "JMP": a near target beyond the CS limit is #GP(0) in
  // real-address mode too (the limit stays 0xffff); the instruction does not complete.
  struct Case {
    Bytes insn;
    const char* what;
  };
  const Case cases[] = {
      {{0x66, 0xc3}, "retd to 0x00012345"},                             // retd
      {{0x66, 0xe9, 0x00, 0x00, 0x01, 0x00}, "jmp near32 to 0x10006"},  // jmp .+0x10006
  };
  for (const Case& c : cases) {
    INFO(c.what);
    LegacyMachine m;
    m.ivt(13, 0x0900, 0x0050);
    m.put(0x9050, {0xf4});
    m.code(c.insn);
    m.real_seg(SegReg::SS, 0x200);
    m.vcpu.set_gpr(RSP, 0xfc);
    m.put32(0x20fc, 0x00012345);
    m.run(3);
    CHECK(m.vcpu.rip() == 0x9051);      // halted in the #GP handler
    CHECK(m.sp() == 0xf6);              // the RET's pop undone, then FLAGS, CS, IP
    CHECK(m.get16(0x20f6) == 0x0000);  // IP of the faulting instruction
  }
}

TEST_CASE("real mode: LOOP and JCXZ count in CX, with 67 in ECX", "[legacy][real]") {
  LegacyMachine m;
  m.code({
      0xe2, 0xfe,                                // 0000: a: loop a
      0x67, 0xe2, 0xfd,                          // 0002: b: addr32 loop b
      0xe3, 0xfe,                                // 0005: c: jcxz c
      0x67, 0xe3, 0xfd,                          // 0007: d: jecxz d
      0xf4,                                      // 000a: hlt
  });
  m.vcpu.set_gpr(RCX, 0x00010002);
  m.step();  // CX 2 -> 1: taken
  CHECK(m.ip() == 0);
  CHECK(m.vcpu.gpr(RCX) == 0x00010001);
  m.step();  // CX 1 -> 0: falls through; ECX[31:16] untouched
  CHECK(m.ip() == 2);
  CHECK(m.vcpu.gpr(RCX) == 0x00010000);
  m.step();  // 67: ECX 0x10000 -> 0xffff: taken
  CHECK(m.ip() == 2);
  CHECK(m.vcpu.gpr(RCX) == 0x0000ffff);
  m.vcpu.set_gpr(RCX, 1);
  m.step();  // ECX 1 -> 0: falls through
  CHECK(m.ip() == 5);
  CHECK(m.vcpu.gpr(RCX) == 0);
  m.vcpu.set_gpr(RCX, 0x00010000);
  m.step();  // jcxz: CX = 0 -> taken
  CHECK(m.ip() == 5);
  m.vcpu.set_rip(0x8007);
  m.step();  // jecxz: ECX = 0x10000 -> not taken
  CHECK(m.ip() == 0xa);
  m.vcpu.set_rip(0x8007);
  m.vcpu.set_gpr(RCX, 0xffff00000000ull);  // ECX = 0; RCX[63:32] does not count
  m.step();
  CHECK(m.ip() == 7);
}

TEST_CASE("real mode: INT n through the IVT and a 16-bit IRET", "[legacy][real]") {
  LegacyMachine m;
  m.ivt(0x11, 0x0900, 0x0020);
  m.put(0x9020, {0xcf});  // iret
  m.code({0xcd, 0x11,     // 0000: int 0x11
          0xf4});         // 0002: hlt
  m.real_seg(SegReg::SS, 0x200);
  m.vcpu.set_gpr(RSP, 0x100);
  m.vcpu.set_rflags(0x40603);  // AC, DF, IF, CF
  m.step();
  CHECK(m.sel(SegReg::CS) == 0x0900);
  CHECK(m.vcpu.rip() == 0x9020);
  CHECK(m.sp() == 0xfa);
  CHECK(m.get16(0x20fa) == 0x0002);  // IP of the next instruction
  CHECK(m.get16(0x20fc) == 0x0800);
  CHECK(m.get16(0x20fe) == 0x0603);  // FLAGS image
  CHECK(m.vcpu.rflags() == 0x403);   // IF, TF and AC cleared (SDM Vol. 3A §20.1.4)
  m.step();
  CHECK(m.sel(SegReg::CS) == 0x0800);
  CHECK(m.vcpu.rip() == 0x8002);
  CHECK(m.sp() == 0x100);
  CHECK(m.vcpu.rflags() == 0x603);  // FLAGS back; AC stays clear (not in a 16-bit image)

  // A 16-bit IRET replaces FLAGS[15:0] only: EFLAGS[31:16] stay; reserved bits 3, 5 and 15
  // of the image are dropped and bit 1 reads 1.
  m.put(0x8010, {0xcf});
  m.vcpu.set_rip(0x8010);
  m.vcpu.set_rflags(0x240002);  // ID, AC
  m.put16(0x20fa, 0x0030), m.put16(0x20fc, 0x0800), m.put16(0x20fe, 0xffff);
  m.vcpu.set_gpr(RSP, 0xfa);
  m.step();
  CHECK(m.vcpu.rip() == 0x8030);
  CHECK(m.vcpu.rflags() == 0x247fd7);
}

TEST_CASE("real mode: IRETD loads the image's flags but keeps VM, VIF and VIP",
          "[legacy][real]") {
  // SDM Vol. 2A "IRET" real-address mode: EFLAGS = (image AND 257FD5H) OR (EFLAGS AND 1A0000H).
  struct Case {
    uint32_t before, image, after;
  };
  const Case cases[] = {
      {0x00000002, 0xffffffff, 0x00257fd7},  // VM, VIF, VIP (and reserved bits) not loaded
      {0x00180002, 0x00000000, 0x00180002},  // VIF and VIP kept
      {0x00180002, 0xffffffff, 0x003d7fd7},
      {0x00000002, 0x001a0000, 0x00000002},
  };
  for (const Case& c : cases) {
    INFO("before " << std::hex << c.before << " image " << c.image);
    LegacyMachine m;
    m.code({0x66, 0xcf});  // iretd
    m.real_seg(SegReg::SS, 0x200);
    m.vcpu.set_gpr(RSP, 0xf4);
    m.put32(0x20f4, 0x00000030);  // EIP
    m.put32(0x20f8, 0xdead0800);  // CS (the upper half of the slot is ignored)
    m.put32(0x20fc, c.image);
    m.vcpu.set_rflags(c.before);
    m.step();
    CHECK(m.sel(SegReg::CS) == 0x0800);
    CHECK(m.vcpu.rip() == 0x8030);
    CHECK(m.sp() == 0x100);
    CHECK(m.vcpu.rflags() == c.after);
  }
}

TEST_CASE("real mode: #DE from DIV goes through IVT vector 0 without an error code",
          "[legacy][real]") {
  LegacyMachine m;
  m.ivt(0, 0x0900, 0x0040);
  m.put(0x9040, {0xf4});
  m.code({0x90,         // 0000: nop
          0xf6, 0xf3,   // 0001: div bl
          0xf4});       // 0003: hlt
  m.real_seg(SegReg::SS, 0x200);
  m.vcpu.set_gpr(RSP, 0x100);
  m.vcpu.set_gpr(RAX, 0x0100);
  m.vcpu.set_gpr(RBX, 0);
  m.vcpu.set_rflags(0x202);
  REQUIRE(m.run_to(0x9040));
  CHECK(m.sel(SegReg::CS) == 0x0900);
  CHECK(m.sp() == 0xfa);  // FLAGS, CS, IP: 6 bytes, no error code
  CHECK(m.get16(0x20fa) == 0x0001);  // the faulting DIV
  CHECK(m.get16(0x20fc) == 0x0800);
  CHECK(m.get16(0x20fe) == 0x0202);
  CHECK(m.vcpu.rflags() == 0x2);
  CHECK(m.vcpu.gpr(RAX) == 0x0100);
}

TEST_CASE("real mode: IVT limit violations escalate to #GP, #DF and a triple fault",
          "[legacy][real]") {
  auto machine = [](uint16_t limit) {
    auto m = std::make_unique<LegacyMachine>();
    m->ivt(8, 0x0900, 0x0060);
    m->ivt(13, 0x0900, 0x0050);
    m->put(0x9050, {0xf4});
    m->put(0x9060, {0xf4});
    m->code({0x90,         // 0000: nop
             0xcd, 0x11,   // 0001: int 0x11
             0xf4});       // 0003: hlt
    m->real_seg(SegReg::SS, 0x200);
    m->vcpu.set_gpr(RSP, 0x100);
    m->vcpu.set_idtr({0, limit});
    return m;
  };
  SECTION("vector 0x11 beyond the limit: #GP through vector 13") {
    auto m = machine(0x37);  // vectors 0-13
    REQUIRE(m->run_to(0x9050));
    CHECK(m->sp() == 0xfa);              // no error code in real mode
    CHECK(m->get16(0x20fa) == 0x0001);  // the INT instruction
    CHECK(m->get16(0x20fc) == 0x0800);
  }
  SECTION("vector 13 beyond the limit too: #DF through vector 8") {
    auto m = machine(0x23);  // vectors 0-8
    REQUIRE(m->run_to(0x9060));
    CHECK(m->sp() == 0xfa);
    CHECK(m->get16(0x20fa) == 0x0001);
  }
  SECTION("vector 8 beyond the limit: triple fault, shutdown") {
    auto m = machine(0x1f);  // vectors 0-7
    CHECK(m->run(10).reason == StopReason::Shutdown);
    CHECK(m->vcpu.stop_detail().find("triple fault") != std::string::npos);
  }
}

// ---------------------------------------------------------------------------------------
// Mode switches
// ---------------------------------------------------------------------------------------

TEST_CASE("mode switch: real to 16-bit PM to 32-bit PM and back to real mode",
          "[legacy][modes]") {
  LegacyMachine m;
  m.code({
      0x0f, 0x01, 0x16, 0xf0, 0x05,              // 0000: lgdt [0x5f0]
      0x0f, 0x20, 0xc0,                          // 0005: mov eax, cr0
      0x0c, 0x01,                                // 0008: or al, 1
      0x0f, 0x22, 0xc0,                          // 000a: mov cr0, eax
      0xea, 0x12, 0x80, 0x08, 0x00,              // 000d: jmp 0x08:0x8000+pm16
      0xb8, 0x20, 0x00,                          // 0012: mov ax, 0x20
      0x8e, 0xd8,                                // 0015: mov ds, ax
      0xbb, 0x34, 0x12,                          // 0017: mov bx, 0x1234
      0x66, 0xea, 0x22, 0x80, 0x00, 0x00, 0x18, 0x00, // 001a: data32 jmp 0x18:0x8000+pm32
      0xb8, 0x44, 0x33, 0x22, 0x11,              // 0022: mov eax, 0x11223344
      0xa3, 0x00, 0x70, 0x00, 0x00,              // 0027: mov [0x7000], eax
      0xea, 0x33, 0x80, 0x00, 0x00, 0x08, 0x00,  // 002c: jmp 0x08:0x8000+pm16b
      0xb8, 0x10, 0x00,                          // 0033: mov ax, 0x10
      0x8e, 0xd8,                                // 0036: mov ds, ax
      0x0f, 0x20, 0xc0,                          // 0038: mov eax, cr0
      0x24, 0xfe,                                // 003b: and al, 0xfe
      0x0f, 0x22, 0xc0,                          // 003d: mov cr0, eax
      0xea, 0x45, 0x00, 0x00, 0x08,              // 0040: jmp 0x0800:real
      0x31, 0xc0,                                // 0045: xor ax, ax
      0x8e, 0xd8,                                // 0047: mov ds, ax
      0xb8, 0x78, 0x56,                          // 0049: mov ax, 0x5678
      0xf4,                                      // 004c: hlt
  });
  REQUIRE(m.run_to(0x8012));  // pm16: CS = 0x08, base 0, so EIP = linear
  CHECK((m.vcpu.cr(0) & 1) == 1);
  CHECK(m.sel(SegReg::CS) == LegacyMachine::kCode16);
  CHECK(m.base(SegReg::CS) == 0);
  CHECK((m.vcpu.seg(SegReg::CS).attrs & 0x4000) == 0);  // D = 0
  CHECK(m.vcpu.gdtr().base == LegacyMachine::kGdt);
  m.run(3);
  CHECK(m.sel(SegReg::DS) == LegacyMachine::kData32);
  CHECK(m.vcpu.seg(SegReg::DS).limit == 0xffffffff);
  CHECK((m.vcpu.gpr(RBX) & 0xffff) == 0x1234);
  CHECK(m.vcpu.rip() == 0x801a);
  m.step();  // jmp dword 0x18:pm32
  CHECK(m.sel(SegReg::CS) == LegacyMachine::kCode32);
  CHECK(m.vcpu.rip() == 0x8022);
  m.step();  // mov eax, imm32: 5 bytes in 32-bit code
  CHECK(m.vcpu.rip() == 0x8027);
  CHECK((m.vcpu.gpr(RAX) & 0xffffffff) == 0x11223344);
  m.step();  // mov [0x7000], eax (moffs32)
  CHECK(m.get32(0x7000) == 0x11223344);
  m.step();  // jmp 0x08:pm16b (ptr16:32)
  CHECK(m.sel(SegReg::CS) == LegacyMachine::kCode16);
  CHECK(m.vcpu.rip() == 0x8033);
  REQUIRE(m.run_to(0x8045));  // real: after PE=0 and jmp 0x0800:real
  CHECK((m.vcpu.cr(0) & 1) == 0);
  CHECK(m.sel(SegReg::CS) == 0x0800);
  CHECK(m.base(SegReg::CS) == 0x8000);
  CHECK(m.sel(SegReg::DS) == LegacyMachine::kData16);
  CHECK(m.run(10).reason == StopReason::Halted);
  CHECK(m.ip() == 0x4d);
  CHECK(m.ax() == 0x5678);
  CHECK(m.sel(SegReg::DS) == 0);
  CHECK(m.base(SegReg::DS) == 0);
  CHECK(m.vcpu.seg(SegReg::DS).limit == 0xffff);
}

TEST_CASE("mode switch: 32-bit PM to IA-32e, compatibility mode, LJMP and RETF into 64-bit code",
          "[legacy][modes]") {
  LegacyMachine m;
  m.enter_pm32(0x9000);
  m.code_at(0x9000, {
      0x0f, 0x20, 0xe0,                          // 0000: mov eax, cr4
      0x83, 0xc8, 0x20,                          // 0003: or eax, 0x20
      0x0f, 0x22, 0xe0,                          // 0006: mov cr4, eax
      0xb8, 0x00, 0x00, 0x02, 0x00,              // 0009: mov eax, 0x20000
      0x0f, 0x22, 0xd8,                          // 000e: mov cr3, eax
      0xb9, 0x80, 0x00, 0x00, 0xc0,              // 0011: mov ecx, 0xc0000080
      0x0f, 0x32,                                // 0016: rdmsr
      0x0d, 0x00, 0x01, 0x00, 0x00,              // 0018: or eax, 0x100
      0x0f, 0x30,                                // 001d: wrmsr
      0x0f, 0x20, 0xc0,                          // 001f: mov eax, cr0
      0x0d, 0x00, 0x00, 0x00, 0x80,              // 0022: or eax, 0x80000000
      0x0f, 0x22, 0xc0,                          // 0027: mov cr0, eax
      0xb8, 0x01, 0x00, 0x00, 0x00,              // 002a: mov eax, 1
      0x40,                                      // 002f: inc eax
      0x50,                                      // 0030: push eax
      0xea, 0x38, 0x90, 0x00, 0x00, 0x28, 0x00,  // 0031: jmp 0x28:0x9000+long1
      0x48, 0xb8, 0x88, 0x77, 0x66, 0x55,        // 0038: mov rax, 0x1122334455667788
      0x44, 0x33, 0x22, 0x11,
      0x6a, 0x18,                                // 0042: push 0x18
      0x68, 0x4b, 0x90, 0x00, 0x00,              // 0044: push OFFSET 0x9000+compat2
      0x48, 0xcb,                                // 0049: rex.w retf
      0xbb, 0x02, 0x00, 0x00, 0x00,              // 004b: mov ebx, 0x2
      0x6a, 0x28,                                // 0050: push 0x28
      0x68, 0x58, 0x90, 0x00, 0x00,              // 0052: push OFFSET 0x9000+long2
      0xcb,                                      // 0057: retf
      0x48, 0xff, 0xc3,                          // 0058: inc rbx
      0xf4,                                      // 005b: hlt
  });
  REQUIRE(m.run_to(0x902a));  // compat: right after mov cr0, eax
  CHECK(m.vcpu.efer() == (kLME | kLMA));
  CHECK(m.vcpu.cr(0) == 0x80000011);
  CHECK(m.sel(SegReg::CS) == LegacyMachine::kCode32);  // compatibility mode
  m.step();
  CHECK(m.vcpu.rip() == 0x902f);  // b8 imm32: 32-bit operand default
  CHECK(m.vcpu.gpr(RAX) == 1);
  m.step();
  CHECK(m.vcpu.rip() == 0x9030);  // 40 is INC EAX, not a REX prefix
  CHECK(m.vcpu.gpr(RAX) == 2);
  m.step();  // push eax: SS.B = 1, 4 bytes
  CHECK(m.vcpu.gpr(RSP) == 0x6ffc);
  CHECK(m.get32(0x6ffc) == 2);
  m.step();  // jmp 0x28:long1 (ptr16:32) into 64-bit code
  CHECK(m.sel(SegReg::CS) == LegacyMachine::kCode64);
  CHECK(m.vcpu.rip() == 0x9038);
  m.step();
  CHECK(m.vcpu.gpr(RAX) == 0x1122334455667788ull);
  CHECK(m.vcpu.rip() == 0x9042);
  m.run(3);  // push 0x18; push compat2; rex.w retf: back to compatibility mode
  CHECK(m.sel(SegReg::CS) == LegacyMachine::kCode32);
  CHECK(m.vcpu.rip() == 0x904b);
  CHECK(m.vcpu.gpr(RSP) == 0x6ffc);
  m.run(3);  // mov ebx, 2; push 0x28; push long2 (4 bytes each)
  CHECK(m.vcpu.gpr(RSP) == 0x6ff4);
  m.step();  // retf (32-bit) into 64-bit code
  CHECK(m.sel(SegReg::CS) == LegacyMachine::kCode64);
  CHECK(m.vcpu.rip() == 0x9058);
  CHECK(m.vcpu.gpr(RSP) == 0x6ffc);
  m.step();
  CHECK(m.vcpu.gpr(RBX) == 3);
  CHECK(m.step().reason == StopReason::Halted);
  CHECK(m.vcpu.rip() == 0x905c);
}

TEST_CASE("mode switch: CR0.PG faults without PAE, without PE and in 64-bit mode",
          "[legacy][modes]") {
  SECTION("PG with EFER.LME but no CR4.PAE: #GP") {
    LegacyMachine m;
    m.ivt(13, 0x0900, 0x0050);
    m.put(0x9050, {0xf4});
    m.vcpu.set_efer(kLME);
    m.code({0x66, 0xb8, 0x11, 0x00, 0x00, 0x80,   // 0000: mov eax, 0x80000011 (PG|PE|ET)
            0x0f, 0x22, 0xc0});                   // 0006: mov cr0, eax
    REQUIRE(m.run_to(0x9050));
    CHECK(m.vcpu.cr(0) == 0x60000010);
    CHECK(m.vcpu.efer() == kLME);
    CHECK(m.get16(m.vcpu.gpr(RSP) & 0xffff) == 0x0006);  // the MOV CR0
  }
  SECTION("PG without PE: #GP") {
    LegacyMachine m;
    m.ivt(13, 0x0900, 0x0050);
    m.put(0x9050, {0xf4});
    m.code({0x66, 0xb8, 0x10, 0x00, 0x00, 0x80,   // 0000: mov eax, 0x80000010 (PG|ET)
            0x0f, 0x22, 0xc0});                   // 0006: mov cr0, eax
    REQUIRE(m.run_to(0x9050));
    CHECK(m.vcpu.cr(0) == 0x60000010);
    CHECK(m.get16(m.vcpu.gpr(RSP) & 0xffff) == 0x0006);
  }
  SECTION("clearing PG in 64-bit mode: #GP") {
    LegacyMachine m;
    m.enter_ia32e(LegacyMachine::kCode64, 0x9000);
    m.code_at(0x9000, {0xb8, 0x11, 0x00, 0x00, 0x00,   // 0000: mov eax, 0x11
                       0x0f, 0x22, 0xc0});             // 0005: mov cr0, rax
    REQUIRE(m.run_to(LegacyMachine::handler(13)));
    CHECK(m.vcpu.cr(0) == 0x80000011);
    CHECK(m.vcpu.efer() == (kLME | kLMA));
    CHECK(m.get64(m.vcpu.gpr(RSP) + 8) == 0x9005);  // after the error code: the MOV CR0
  }
}

TEST_CASE("mode switch: clearing CR0.PG in compatibility mode leaves IA-32e mode",
          "[legacy][modes]") {
  LegacyMachine m;
  m.enter_ia32e(LegacyMachine::kCode32, 0x9000);
  // The hypervisor hears of the CR0.PG change (KVM's kvm_post_set_cr0; Vcpu::set_paging_hook).
  std::vector<bool> pg_changes;
  m.vcpu.set_paging_hook([&](Vcpu&, bool now) { pg_changes.push_back(now); });
  m.code_at(0x9000, {
      0x0f, 0x20, 0xc0,                          // 0000: mov eax, cr0
      0x25, 0xff, 0xff, 0xff, 0x7f,              // 0003: and eax, 0x7fffffff
      0x0f, 0x22, 0xc0,                          // 0008: mov cr0, eax
      0xb8, 0x78, 0x56, 0x34, 0x12,              // 000b: mov eax, 0x12345678
      0xf4,                                      // 0010: hlt
  });
  m.run(3);
  CHECK(m.vcpu.cr(0) == 0x11);
  CHECK(m.vcpu.efer() == kLME);  // LMA cleared, LME stays
  CHECK(pg_changes == std::vector<bool>{false});
  m.step();                      // 32-bit protected mode, paging off
  CHECK(m.vcpu.gpr(RAX) == 0x12345678);
  CHECK(m.step().reason == StopReason::Halted);
  CHECK(m.vcpu.rip() == 0x9011);
}

TEST_CASE("mode switch: IRETQ from a 64-bit handler returns to compatibility mode",
          "[legacy][modes]") {
  LegacyMachine m;
  m.enter_ia32e(LegacyMachine::kCode32, 0x9000);
  m.put(LegacyMachine::handler(0x40), {0x48, 0xcf});  // iretq
  m.code_at(0x9000, {0xcd, 0x40,   // 0000: int 0x40
                     0x40,         // 0002: inc eax (in 64-bit code a REX prefix)
                     0x40,         // 0003: inc eax
                     0xf4});       // 0004: hlt
  m.vcpu.set_gpr(RAX, 5);
  m.step();
  CHECK(m.vcpu.rip() == LegacyMachine::handler(0x40));
  CHECK(m.sel(SegReg::CS) == LegacyMachine::kCode64);
  const uint64_t sp = m.vcpu.gpr(RSP);
  CHECK(sp == 0x7000 - 40);
  CHECK(m.get64(sp) == 0x9002);                     // EIP
  CHECK(m.get64(sp + 8) == LegacyMachine::kCode32);  // CS
  CHECK(m.get64(sp + 24) == 0x7000);                // ESP
  CHECK(m.get64(sp + 32) == LegacyMachine::kData32);  // SS
  m.step();  // iretq
  CHECK(m.sel(SegReg::CS) == LegacyMachine::kCode32);
  CHECK(m.vcpu.rip() == 0x9002);
  CHECK(m.vcpu.gpr(RSP) == 0x7000);
  CHECK(m.run(5).reason == StopReason::Halted);
  CHECK(m.vcpu.gpr(RAX) == 7);
  CHECK(m.vcpu.rip() == 0x9005);
}

TEST_CASE("block cache: the same bytes at one GPA run as 16-bit, then 32-bit, then 16-bit code",
          "[legacy][modes]") {
  // b8 01 00 00 00 f4 is "mov ax, 1; add [bx+si], al; hlt" in 16-bit code and
  // "mov eax, 1; hlt" in 32-bit code.
  LegacyMachine m;
  m.put(0x9000, {0xb8, 0x01, 0x00, 0x00, 0x00, 0xf4});
  m.put(0x1030, {0x40});
  auto run_real = [&]() {
    m.vcpu.set_cr(0, 0x60000010);
    m.vcpu.set_seg(SegReg::CS, {0x0900, 0x9000, 0xffff, LegacyMachine::kAttrCode16});
    m.real_seg(SegReg::DS, 0x100);
    m.vcpu.set_gpr(RBX, 0x10);
    m.vcpu.set_gpr(RSI, 0x20);
    m.vcpu.set_gpr(RAX, 0xaaaa0000);
    m.vcpu.set_rip(0x9000);
    m.vcpu.set_halted(false);
    return m.run(10).reason;
  };
  CHECK(run_real() == StopReason::Halted);
  CHECK(m.vcpu.gpr(RAX) == 0xaaaa0001);
  CHECK(m.get8(0x1030) == 0x41);  // DS:[BX+SI] += AL
  CHECK(m.vcpu.rip() == 0x9006);

  m.enter_pm32(0x9000);
  m.vcpu.set_gpr(RAX, 0xaaaa0000);
  m.vcpu.set_halted(false);
  CHECK(m.run(10).reason == StopReason::Halted);
  CHECK(m.vcpu.gpr(RAX) == 1);
  CHECK(m.get8(0x1030) == 0x41);  // no ADD in 32-bit code
  CHECK(m.vcpu.rip() == 0x9006);

  CHECK(run_real() == StopReason::Halted);
  CHECK(m.vcpu.gpr(RAX) == 0xaaaa0001);
  CHECK(m.get8(0x1030) == 0x42);
}

TEST_CASE("segment limits: beyond the limit is #GP(0), through SS #SS(0), expand-down inverts",
          "[legacy][segments]") {
  // SDM Vol. 3A §5.3: compatibility mode checks limits as protected mode does (the 64-bit
  // IDT's handlers are HLTs at handler(v)).
  auto run_one = [](std::vector<uint8_t> code, auto setup) {
    LegacyMachine m;
    m.enter_ia32e(LegacyMachine::kCode32, 0x9000);
    setup(m);
    m.code_at(0x9000, code);
    m.step();
    return m.vcpu.rip();
  };
  const auto limit_ds = [](uint32_t limit, uint16_t attrs) {
    return [=](LegacyMachine& m) { m.vcpu.set_seg(SegReg::DS, {LegacyMachine::kData32, 0, limit, attrs}); };
  };
  const std::vector<uint8_t> load_2000 = {0xa1, 0x00, 0x20, 0x00, 0x00, 0xf4};  // mov eax, [0x2000]
  const std::vector<uint8_t> load_0800 = {0xa1, 0x00, 0x08, 0x00, 0x00, 0xf4};  // mov eax, [0x800]
  // Expand-up, limit 0xfff: 0x800 is inside, 0x2000 beyond.
  CHECK(run_one(load_0800, limit_ds(0xfff, 0xc093)) == 0x9005);
  CHECK(run_one(load_2000, limit_ds(0xfff, 0xc093)) == LegacyMachine::handler(13));
  // Expand-down (type 7), limit 0xfff, B = 1: valid offsets are 0x1000..0xffffffff.
  CHECK(run_one(load_2000, limit_ds(0xfff, 0xc097)) == 0x9005);
  CHECK(run_one(load_0800, limit_ds(0xfff, 0xc097)) == LegacyMachine::handler(13));
  // Through SS (an ESP-based operand, and a push): #SS(0).
  const auto small_ss = [](LegacyMachine& m) {
    m.vcpu.set_seg(SegReg::SS, {LegacyMachine::kData32, 0, 0xfff, 0xc093});
  };
  CHECK(run_one({0x8b, 0x04, 0x24, 0xf4}, small_ss) == LegacyMachine::handler(12));  // mov eax, [esp]
  CHECK(run_one({0x50, 0xf4}, small_ss) == LegacyMachine::handler(12));              // push eax
  CHECK(run_one({0x50, 0xf4}, [](LegacyMachine&) {}) == 0x9001);                    // flat SS: fine
}

TEST_CASE("segment limits in real mode: a 67-prefixed offset beyond 0xffff is #GP", "[legacy][segments]") {
  LegacyMachine m;  // real mode, DS limit 0xffff from INIT
  m.ivt(13, 0, 0x9000);
  m.put(0x9000, {0xf4});
  m.code({0x67, 0x8a, 0x03,   // 0000: mov al, [ebx]
          0xf4});
  m.vcpu.set_gpr(RBX, 0x10000);
  m.step();
  CHECK(m.vcpu.rip() == 0x9000);
  LegacyMachine u;  // the same access with a 4 GiB DS limit (unreal mode) reads the byte
  u.put(0x10000, {0x5a});
  u.vcpu.set_seg(SegReg::DS, {0, 0, 0xffffffff, 0x93});
  u.code({0x67, 0x8a, 0x03, 0xf4});
  u.vcpu.set_gpr(RBX, 0x10000);
  u.step();
  CHECK((u.vcpu.gpr(RAX) & 0xff) == 0x5a);
}

TEST_CASE("32-bit protected mode delivers through 8-byte IDT gates and IRET returns",
          "[legacy][events]") {
  // SDM Vol. 3A §6.11-§6.12: a 32-bit interrupt gate (type 0xE) and a 32-bit trap gate
  // (type 0xF) to handlers at CPL 0; EFLAGS, CS, EIP (and the error code) on the stack.
  LegacyMachine m;
  m.enter_pm32(0x9000, 0x7000);
  constexpr uint64_t kIdt = 0xa000;
  auto gate = [&](unsigned v, uint32_t off, unsigned type) {
    m.put64(kIdt + v * 8, (off & 0xffff) | (uint64_t{LegacyMachine::kCode32} << 16) |
                              (uint64_t{0x80u | type} << 40) | (uint64_t{off >> 16} << 48));
  };
  gate(0x30, 0xb000, 0xf);  // trap gate: IF stays
  gate(13, 0xb100, 0xe);    // interrupt gate: IF cleared; #GP pushes an error code
  m.vcpu.set_idtr({kIdt, 0x7ff});
  m.put(0xb000, {0xcf});        // iretd
  m.put(0xb100, {0xf4});        // hlt
  m.code_at(0x9000, {0xfb,                              // 0000: sti
                     0xcd, 0x30,                        // 0001: int 0x30
                     0x8e, 0xd8});                      // 0003: mov ds, eax (selector 0x4b: beyond the GDT)
  m.step();  // sti
  m.step();  // int 0x30
  CHECK(m.vcpu.rip() == 0xb000);
  CHECK((m.vcpu.rflags() & (1u << 9)) != 0);  // trap gate
  CHECK(m.vcpu.gpr(RSP) == 0x7000 - 12);
  CHECK(m.get32(0x7000 - 12) == 0x9003);                // EIP after INT
  CHECK(m.get32(0x7000 - 8) == LegacyMachine::kCode32);  // CS
  CHECK((m.get32(0x7000 - 4) & 0x202) == 0x202);        // EFLAGS with IF
  m.step();  // iretd
  CHECK(m.vcpu.rip() == 0x9003);
  CHECK(m.vcpu.gpr(RSP) == 0x7000);
  m.vcpu.set_gpr(RAX, 0x4b);
  m.step();  // mov ds -> #GP(0x48)
  CHECK(m.vcpu.rip() == 0xb100);
  CHECK((m.vcpu.rflags() & (1u << 9)) == 0);  // interrupt gate
  CHECK(m.get32(0x7000 - 16) == 0x48);        // the error code: the selector
  CHECK(m.get32(0x7000 - 12) == 0x9003);      // EIP of the faulting MOV
}
