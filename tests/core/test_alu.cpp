// tests/core/test_alu.cpp — per-instruction state cases: ALU, shifts, mul/div, bits,
// moves, stack and string instructions. Each case sets registers/memory, step()s one
// instruction and checks registers, flags and memory.
#include <catch2/catch.hpp>

#include "machine.h"

using namespace pvsim;
using pvsim::test::Machine;

namespace {
constexpr uint64_t CF = 1, PF = 4, AF = 0x10, ZF = 0x40, SF = 0x80, OF = 0x800, DF = 0x400;
constexpr uint64_t ARITH = CF | PF | AF | ZF | SF | OF;
enum { RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8, R9, R10, R11, R12, R13, R14, R15 };

void one(Machine& m, std::initializer_list<uint8_t> code) {
  m.code(code);
  auto r = m.step();
  INFO("stop reason " << static_cast<int>(r.reason) << " detail " << m.vcpu.stop_detail() << "\n"
                      << m.vcpu.dump_state() << m.trace());
  REQUIRE(r.executed == 1);
}
// A REP string instruction of `elements` iterations: each iteration is one instruction
// (core/README.md "REP string instructions"), so run() with that budget completes it.
void rep(Machine& m, std::initializer_list<uint8_t> code, uint64_t elements) {
  m.code(code);
  auto r = m.run(elements);
  INFO("stop reason " << static_cast<int>(r.reason) << " detail " << m.vcpu.stop_detail() << "\n"
                      << m.vcpu.dump_state() << m.trace());
  REQUIRE(r.executed == elements);
  REQUIRE(m.vcpu.rip() == Machine::kCode + code.size());
}
}  // namespace

TEST_CASE("add/sub/adc/sbb flags", "[alu]") {
  Machine m;
  m.vcpu.set_gpr(RAX, 0x7fffffffffffffffull);
  m.vcpu.set_gpr(RBX, 1);
  one(m, {0x48, 0x01, 0xd8} /* add rax, rbx */);
  CHECK(m.vcpu.gpr(RAX) == 0x8000000000000000ull);
  CHECK((m.vcpu.rflags() & ARITH) == (SF | OF | AF | PF));
  CHECK(m.vcpu.rip() == Machine::kCode + 3);

  m.vcpu.set_gpr(RAX, 0xffffffff);
  m.vcpu.set_gpr(RBX, 0xdeadbeef00000001ull);
  one(m, {0x01, 0xd8} /* add eax, ebx */);
  CHECK(m.vcpu.gpr(RAX) == 0);  // 32-bit result zero-extends
  CHECK((m.vcpu.rflags() & ARITH) == (CF | ZF | PF | AF));

  m.vcpu.set_gpr(RAX, 0x1234);
  m.vcpu.set_rflags(0x2 | CF);
  one(m, {0x14, 0xff} /* adc al, 0xff */);
  CHECK(m.vcpu.gpr(RAX) == 0x1234);
  CHECK((m.vcpu.rflags() & CF) != 0);

  m.vcpu.set_gpr(RCX, 0);
  m.vcpu.set_rflags(0x2 | CF);
  one(m, {0x83, 0xd9, 0x00} /* sbb ecx, 0 */);
  CHECK(m.vcpu.gpr(RCX) == 0xffffffffull);
  CHECK((m.vcpu.rflags() & ARITH) == (CF | SF | PF | AF));

  m.vcpu.set_gpr(RDX, 0x80);
  one(m, {0x80, 0xea, 0x01} /* sub dl, 1 */);
  CHECK(m.vcpu.gpr(RDX) == 0x7f);
  CHECK((m.vcpu.rflags() & ARITH) == (OF | AF));

  m.vcpu.set_gpr(RAX, 5);
  one(m, {0x48, 0x83, 0xf8, 0x06} /* cmp rax, 6 */);
  CHECK(m.vcpu.gpr(RAX) == 5);
  CHECK((m.vcpu.rflags() & ARITH) == (CF | SF | PF | AF));
}

TEST_CASE("byte registers AH..BH vs SPL..DIL", "[alu]") {
  Machine m;
  m.vcpu.set_gpr(RAX, 0x1122);
  one(m, {0xb4, 0x77} /* mov ah, 0x77 */);
  CHECK(m.vcpu.gpr(RAX) == 0x7722);
  m.vcpu.set_gpr(RSI, 0xff00);
  one(m, {0x40, 0xb6, 0x33} /* mov sil, 0x33 */);
  CHECK(m.vcpu.gpr(RSI) == 0xff33);
  m.vcpu.set_gpr(RBX, 0xabcd);
  one(m, {0x30, 0xdf} /* xor bh, bl */);
  CHECK(m.vcpu.gpr(RBX) == ((0xab ^ 0xcd) << 8 | 0xcd));
}

TEST_CASE("logic, inc/dec, neg, not", "[alu]") {
  Machine m;
  m.vcpu.set_gpr(RAX, 0xf0);
  m.vcpu.set_rflags(0x2 | CF | OF);
  one(m, {0x83, 0xe0, 0x0f} /* and eax, 0x0f */);
  CHECK(m.vcpu.gpr(RAX) == 0);
  CHECK((m.vcpu.rflags() & ARITH) == (ZF | PF));

  m.vcpu.set_gpr(RCX, 0xff);
  m.vcpu.set_rflags(0x2 | CF);
  one(m, {0xfe, 0xc1} /* inc cl */);
  CHECK(m.vcpu.gpr(RCX) == 0);
  CHECK((m.vcpu.rflags() & ARITH) == (CF | ZF | PF | AF));  // CF preserved

  m.vcpu.set_gpr(RDX, 5);
  one(m, {0x48, 0xf7, 0xda} /* neg rdx */);
  CHECK(m.vcpu.gpr(RDX) == static_cast<uint64_t>(-5));
  CHECK((m.vcpu.rflags() & CF) != 0);

  m.vcpu.set_gpr(RDX, 0x00ff);
  one(m, {0x66, 0xf7, 0xd2} /* not dx */);
  CHECK(m.vcpu.gpr(RDX) == 0xff00);

  // Memory forms, including LOCK.
  m.put64(0x5000, 41);
  m.vcpu.set_gpr(RBX, 0x5000);
  one(m, {0xf0, 0x48, 0xff, 0x03} /* lock inc qword ptr [rbx] */);
  CHECK(m.get64(0x5000) == 42);
  m.vcpu.set_gpr(RCX, 0x100);
  one(m, {0x48, 0x83, 0x84, 0xcb, 0x08, 0xf8, 0xff, 0xff,
          0x08} /* add qword ptr [rbx+8*rcx-0x7f8], 8 */);  // [0x5000 + 0x800 - 0x7f8] = 0x5008
  CHECK(m.get64(0x5008) == 8);
}

TEST_CASE("mul, imul, div, idiv", "[alu]") {
  Machine m;
  m.vcpu.set_gpr(RAX, 0xffffffffffffffffull);
  m.vcpu.set_gpr(RBX, 2);
  one(m, {0x48, 0xf7, 0xe3} /* mul rbx */);
  CHECK(m.vcpu.gpr(RAX) == 0xfffffffffffffffeull);
  CHECK(m.vcpu.gpr(RDX) == 1);
  CHECK((m.vcpu.rflags() & (CF | OF)) == (CF | OF));

  m.vcpu.set_gpr(RAX, static_cast<uint64_t>(-3));
  m.vcpu.set_gpr(RCX, 7);
  one(m, {0x48, 0x6b, 0xc1, 0x05} /* imul rax, rcx, 5 */);
  CHECK(m.vcpu.gpr(RAX) == 35);
  CHECK((m.vcpu.rflags() & (CF | OF)) == 0);

  m.vcpu.set_gpr(RAX, 0x40000000);
  one(m, {0x0f, 0xaf, 0xc0} /* imul eax, eax */);
  CHECK(m.vcpu.gpr(RAX) == 0);
  CHECK((m.vcpu.rflags() & (CF | OF)) == (CF | OF));

  m.vcpu.set_gpr(RAX, 100);
  m.vcpu.set_gpr(RDX, 0);
  m.vcpu.set_gpr(RCX, 7);
  one(m, {0x48, 0xf7, 0xf1} /* div rcx */);
  CHECK(m.vcpu.gpr(RAX) == 14);
  CHECK(m.vcpu.gpr(RDX) == 2);

  m.vcpu.set_gpr(RAX, static_cast<uint64_t>(-100));
  m.vcpu.set_gpr(RDX, ~0ull);
  m.vcpu.set_gpr(RCX, 7);
  one(m, {0x48, 0xf7, 0xf9} /* idiv rcx */);
  CHECK(m.vcpu.gpr(RAX) == static_cast<uint64_t>(-14));
  CHECK(m.vcpu.gpr(RDX) == static_cast<uint64_t>(-2));

  m.vcpu.set_gpr(RAX, 0x1234);
  m.vcpu.set_gpr(RCX, 0x20);
  one(m, {0xf6, 0xf1} /* div cl */);
  CHECK((m.vcpu.gpr(RAX) & 0xffff) == ((0x14 << 8) | 0x91));
}

TEST_CASE("shifts and rotates", "[alu]") {
  Machine m;
  m.vcpu.set_gpr(RAX, 0x81);
  one(m, {0xd0, 0xe0} /* shl al, 1 */);
  CHECK((m.vcpu.gpr(RAX) & 0xff) == 0x02);
  CHECK((m.vcpu.rflags() & (CF | OF)) == (CF | OF));

  m.vcpu.set_gpr(RAX, 0x8000000000000000ull);
  m.vcpu.set_gpr(RCX, 63);
  one(m, {0x48, 0xd3, 0xf8} /* sar rax, cl */);
  CHECK(m.vcpu.gpr(RAX) == ~0ull);

  m.vcpu.set_gpr(RAX, 0x12345678);
  one(m, {0xc1, 0xc0, 0x08} /* rol eax, 8 */);
  CHECK(m.vcpu.gpr(RAX) == 0x34567812);
  CHECK((m.vcpu.rflags() & CF) == 0);

  m.vcpu.set_gpr(RAX, 1);
  m.vcpu.set_rflags(0x2);
  one(m, {0xd1, 0xd8} /* rcr eax, 1 */);
  CHECK(m.vcpu.gpr(RAX) == 0);
  CHECK((m.vcpu.rflags() & CF) != 0);
  one(m, {0xd1, 0xd0} /* rcl eax, 1 */);
  CHECK(m.vcpu.gpr(RAX) == 1);

  // Count 0: flags untouched.
  m.vcpu.set_rflags(0x2 | ZF | CF);
  m.vcpu.set_gpr(RAX, 5);
  m.vcpu.set_gpr(RCX, 0);
  one(m, {0xd3, 0xe8} /* shr eax, cl */);
  CHECK(m.vcpu.gpr(RAX) == 5);
  CHECK((m.vcpu.rflags() & (ZF | CF)) == (ZF | CF));

  m.vcpu.set_gpr(RAX, 0x1111222233334444ull);
  m.vcpu.set_gpr(RDX, 0xaaaabbbbccccddddull);
  one(m, {0x48, 0x0f, 0xa4, 0xd0, 0x10} /* shld rax, rdx, 16 */);
  CHECK(m.vcpu.gpr(RAX) == 0x222233334444aaaaull);
  m.vcpu.set_gpr(RCX, 8);
  one(m, {0x48, 0x0f, 0xad, 0xd0} /* shrd rax, rdx, cl */);
  CHECK(m.vcpu.gpr(RAX) == 0xdd222233334444aaull);
}

TEST_CASE("bit operations and scans", "[alu]") {
  Machine m;
  // Bit-string addressing: BT with a register offset reaches past the operand.
  m.put64(0x6000, 0);
  m.put64(0x6008, 0x4);  // bit 66 of the string at 0x6000
  m.vcpu.set_gpr(RBX, 0x6000);
  m.vcpu.set_gpr(RCX, 66);
  one(m, {0x48, 0x0f, 0xa3, 0x0b} /* bt qword ptr [rbx], rcx */);
  CHECK((m.vcpu.rflags() & CF) != 0);
  m.vcpu.set_gpr(RCX, static_cast<uint64_t>(-1));  // bit -1 = bit 63 of [rbx-8]
  m.put64(0x5ff8, 0);
  one(m, {0x48, 0x0f, 0xab, 0x0b} /* bts qword ptr [rbx], rcx */);
  CHECK((m.vcpu.rflags() & CF) == 0);
  CHECK(m.get64(0x5ff8) == 0x8000000000000000ull);
  m.vcpu.set_gpr(RAX, 0xff);
  one(m, {0x0f, 0xba, 0xf0, 0x23} /* btr eax, 35 */);  // imm masked to 3
  CHECK(m.vcpu.gpr(RAX) == 0xf7);

  m.vcpu.set_gpr(RAX, 0x100);
  one(m, {0x48, 0x0f, 0xbc, 0xd0} /* bsf rdx, rax */);
  CHECK(m.vcpu.gpr(RDX) == 8);
  one(m, {0x48, 0x0f, 0xbd, 0xd0} /* bsr rdx, rax */);
  CHECK(m.vcpu.gpr(RDX) == 8);
  m.vcpu.set_gpr(RAX, 0);
  m.vcpu.set_gpr(RDX, 77);
  one(m, {0x48, 0x0f, 0xbc, 0xd0} /* bsf rdx, rax */);
  CHECK(m.vcpu.gpr(RDX) == 77);
  CHECK((m.vcpu.rflags() & ZF) != 0);
  one(m, {0xf3, 0x48, 0x0f, 0xbc, 0xd0} /* tzcnt rdx, rax */);
  CHECK(m.vcpu.gpr(RDX) == 64);
  CHECK((m.vcpu.rflags() & CF) != 0);
  m.vcpu.set_gpr(RAX, 0x00f0);
  one(m, {0x66, 0xf3, 0x0f, 0xbd, 0xc0} /* lzcnt ax, ax */);
  CHECK((m.vcpu.gpr(RAX) & 0xffff) == 8);
  m.vcpu.set_gpr(RAX, 0xf0f0);
  one(m, {0xf3, 0x0f, 0xb8, 0xc8} /* popcnt ecx, eax */);
  CHECK(m.vcpu.gpr(RCX) == 8);

  m.vcpu.set_rflags(0x2 | ZF);
  m.vcpu.set_gpr(RAX, ~0ull);
  one(m, {0x0f, 0x95, 0xc0} /* setne al */);
  CHECK(m.vcpu.gpr(RAX) == 0xffffffffffffff00ull);
  m.vcpu.set_gpr(RCX, 0xffffffff00000000ull);
  m.vcpu.set_gpr(RDX, 9);
  one(m, {0x0f, 0x45, 0xca} /* cmovne ecx, edx */);  // false, but 32-bit still zero-extends
  CHECK(m.vcpu.gpr(RCX) == 0);
  one(m, {0x48, 0x0f, 0x44, 0xca} /* cmove rcx, rdx */);
  CHECK(m.vcpu.gpr(RCX) == 9);
}

TEST_CASE("moves, exchange, compare-exchange", "[alu]") {
  Machine m;
  m.vcpu.set_gpr(RAX, 0xffffffffffffffffull);
  one(m, {0xb8, 0x01, 0x00, 0x00, 0x00} /* mov eax, 1 */);
  CHECK(m.vcpu.gpr(RAX) == 1);
  one(m, {0x48, 0xbb, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22,
          0x11} /* movabs rbx, 0x1122334455667788 */);
  CHECK(m.vcpu.gpr(RBX) == 0x1122334455667788ull);
  one(m, {0x48, 0x0f, 0xbe, 0xcb} /* movsx rcx, bl */);
  CHECK(m.vcpu.gpr(RCX) == 0xffffffffffffff88ull);
  one(m, {0x0f, 0xb7, 0xcb} /* movzx ecx, bx */);
  CHECK(m.vcpu.gpr(RCX) == 0x7788);
  m.vcpu.set_gpr(RDX, 0x80000000);
  one(m, {0x48, 0x63, 0xf2} /* movsxd rsi, edx */);
  CHECK(m.vcpu.gpr(RSI) == 0xffffffff80000000ull);
  one(m, {0x48, 0x0f, 0xcb} /* bswap rbx */);
  CHECK(m.vcpu.gpr(RBX) == 0x8877665544332211ull);
  one(m, {0x48, 0x8d, 0x7c, 0x8b, 0x10} /* lea rdi, [rbx+rcx*4+0x10] */);
  CHECK(m.vcpu.gpr(RDI) == 0x8877665544332211ull + 0x7788 * 4 + 0x10);
  // RIP-relative load.
  m.put64(Machine::kCode + 0x100, 0xcafef00d);
  one(m, {0x48, 0x8b, 0x05, 0xf9, 0x00, 0x00, 0x00} /* mov rax, [rip+0xf9] */);
  CHECK(m.vcpu.gpr(RAX) == 0xcafef00d);
  // xchg r8 with rax (90+REX.B is not NOP).
  m.vcpu.set_gpr(R8, 7);
  one(m, {0x49, 0x90} /* xchg r8, rax */);
  CHECK(m.vcpu.gpr(RAX) == 7);
  CHECK(m.vcpu.gpr(R8) == 0xcafef00d);

  m.put64(0x7000, 10);
  m.vcpu.set_gpr(RBX, 0x7000);
  m.vcpu.set_gpr(RAX, 10);
  m.vcpu.set_gpr(RCX, 20);
  one(m, {0xf0, 0x48, 0x0f, 0xb1, 0x0b} /* lock cmpxchg [rbx], rcx */);
  CHECK(m.get64(0x7000) == 20);
  CHECK((m.vcpu.rflags() & ZF) != 0);
  one(m, {0xf0, 0x48, 0x0f, 0xb1, 0x0b} /* lock cmpxchg [rbx], rcx */);
  CHECK(m.vcpu.gpr(RAX) == 20);
  CHECK((m.vcpu.rflags() & ZF) == 0);
  m.vcpu.set_gpr(RDX, 5);
  one(m, {0xf0, 0x48, 0x0f, 0xc1, 0x13} /* lock xadd [rbx], rdx */);
  CHECK(m.vcpu.gpr(RDX) == 20);
  CHECK(m.get64(0x7000) == 25);

  // CMPXCHG16B
  m.put64(0x7010, 1);
  m.put64(0x7018, 2);
  m.vcpu.set_gpr(RBX, 0x7010);
  m.vcpu.set_gpr(RAX, 1);
  m.vcpu.set_gpr(RDX, 2);
  m.vcpu.set_gpr(RCX, 4);
  m.vcpu.set_gpr(RSI, 3);
  m.code({0x48, 0x89, 0xde, 0x48, 0xc7, 0xc3, 0x03, 0x00, 0x00, 0x00, 0x48, 0x0f, 0xc7,
          0x0e} /* mov rsi, rbx; mov rbx, 3; cmpxchg16b [rsi] */);
  m.run(3);
  CHECK(m.get64(0x7010) == 3);
  CHECK(m.get64(0x7018) == 4);
  CHECK((m.vcpu.rflags() & ZF) != 0);

  m.vcpu.set_gpr(RAX, 0x1234);
  one(m, {0x98} /* cwde */);
  CHECK(m.vcpu.gpr(RAX) == 0x1234);
  m.vcpu.set_gpr(RAX, 0x80000000);
  one(m, {0x48, 0x98} /* cdqe */);
  CHECK(m.vcpu.gpr(RAX) == 0xffffffff80000000ull);
  one(m, {0x48, 0x99} /* cqo */);
  CHECK(m.vcpu.gpr(RDX) == ~0ull);
}

TEST_CASE("stack: push/pop/call/ret/leave, pushf/popf", "[stack]") {
  Machine m;
  m.code({0x6a, 0x12, 0x53, 0x59, 0x5a, 0xe8, 0x02, 0x00, 0x00, 0x00, 0xcc, 0xcc,
          0xc3} /* push 0x12; push rbx; pop rcx; pop rdx; call .+7; int3; int3; ret */);
  m.vcpu.set_gpr(RBX, 0x77);
  m.run(4);
  CHECK(m.vcpu.gpr(RCX) == 0x77);
  CHECK(m.vcpu.gpr(RDX) == 0x12);
  CHECK(m.vcpu.gpr(RSP) == Machine::kStack);
  m.step();  // call
  CHECK(m.vcpu.rip() == Machine::kCode + 12);
  CHECK(m.vcpu.gpr(RSP) == Machine::kStack - 8);
  CHECK(m.get64(Machine::kStack - 8) == Machine::kCode + 10);
  m.step();  // ret
  CHECK(m.vcpu.rip() == Machine::kCode + 10);

  m.vcpu.set_gpr(RBP, 0x70000);
  m.put64(0x70000, 0x1111);
  one(m, {0xc9} /* leave */);
  CHECK(m.vcpu.gpr(RSP) == 0x70008);
  CHECK(m.vcpu.gpr(RBP) == 0x1111);

  // POPF at CPL0 may set IF and IOPL; pushf shows them.
  m.vcpu.set_gpr(RSP, Machine::kStack);
  m.put64(Machine::kStack, 0x3202 | CF);
  m.code({0x9d, 0x9c} /* popfq; pushfq */);
  m.run(2);
  CHECK((m.vcpu.rflags() & 0x3200) == 0x3200);
  CHECK(m.get64(Machine::kStack) == (0x3202 | CF));
}

TEST_CASE("string instructions with REP and DF", "[string]") {
  Machine m;
  for (int k = 0; k < 16; ++k) m.put(0x8000 + k, {static_cast<uint8_t>(k + 1)});
  m.vcpu.set_gpr(RSI, 0x8000);
  m.vcpu.set_gpr(RDI, 0x9000);
  m.vcpu.set_gpr(RCX, 16);
  rep(m, {0xf3, 0xa4} /* rep movsb */, 16);
  CHECK(m.vcpu.gpr(RCX) == 0);
  CHECK(m.vcpu.gpr(RSI) == 0x8010);
  CHECK(m.get8(0x900f) == 16);

  m.vcpu.set_gpr(RAX, 0xabababababababab);
  m.vcpu.set_gpr(RDI, 0x9100);
  m.vcpu.set_gpr(RCX, 3);
  rep(m, {0xf3, 0x48, 0xab} /* rep stosq */, 3);
  CHECK(m.get64(0x9110) == 0xabababababababab);
  CHECK(m.vcpu.gpr(RDI) == 0x9118);

  // repne scasb finds 5 at index 4
  m.vcpu.set_gpr(RAX, 5);
  m.vcpu.set_gpr(RDI, 0x8000);
  m.vcpu.set_gpr(RCX, 100);
  rep(m, {0xf2, 0xae} /* repne scasb */, 5);
  CHECK(m.vcpu.gpr(RDI) == 0x8005);
  CHECK(m.vcpu.gpr(RCX) == 95);
  CHECK((m.vcpu.rflags() & ZF) != 0);

  // DF=1: lodsb walks down.
  m.vcpu.set_rflags(0x2 | DF);
  m.vcpu.set_gpr(RSI, 0x8003);
  one(m, {0xac} /* lodsb */);
  CHECK((m.vcpu.gpr(RAX) & 0xff) == 4);
  CHECK(m.vcpu.gpr(RSI) == 0x8002);
}
