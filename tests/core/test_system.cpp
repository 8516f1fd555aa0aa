// tests/core/test_system.cpp — system instructions: CPUID, MSRs (architectural rules and
// the injected #GP of unknown MSRs), TSC, CR writes, LTR/LGDT, port I/O and its stops,
// HLT, the interrupt hook (STI shadow, HLT wake), VMCALL, and their trace events.
#include <catch2/catch.hpp>

#include "machine.h"

using namespace pvsim;
using pvsim::test::Machine;

namespace {
enum { RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI };
bool has(const std::string& t, const std::string& s) {
  return t.find(s) != std::string::npos;
}
}  // namespace

TEST_CASE("CPUID goes to the platform and is traced as a VM exit", "[system]") {
  Machine m;
  m.vcpu.set_gpr(RAX, 0x40000001);
  m.vcpu.set_gpr(RCX, 7);
  m.vcpu.set_gpr(RBX, ~0ull);
  m.code({0x0f, 0xa2} /* cpuid */);
  m.step();
  CHECK(m.vcpu.gpr(RAX) == 0x40000001u * 3 + 1);
  CHECK(m.vcpu.gpr(RBX) == 0x756e6547);
  CHECK(m.vcpu.gpr(RCX) == 7);
  const std::string t = m.trace();
  CHECK(has(t, "reason CPUID rip 0x100000"));
  CHECK(has(t, "kvm_cpuid: func 40000001 idx 7"));
  CHECK(has(t, "kvm_entry: vcpu 0, rip 0x100002"));
  CHECK(m.vcpu.cycles().value() >= 1200);
}

TEST_CASE("RDMSR/WRMSR: architectural MSRs and the injected #GP", "[system][msr]") {
  Machine m;
  m.install_idt_all_hlt();
  // Unknown MSR: #GP(0) injected by the hypervisor (kvm_msr ... (#GP) + kvm_inj_exception).
  m.vcpu.set_gpr(RCX, 0x12345);
  m.code({0x0f, 0x32} /* rdmsr */);
  m.step();
  CHECK(m.vcpu.rip() == m.handler_addr(13));
  const std::string t = m.trace();
  CHECK(has(t, "reason MSR_READ"));
  CHECK(has(t, "kvm_msr: msr_read 12345 = 0x0 (#GP)"));
  CHECK(has(t, "kvm_inj_exception: #GP (0x0)"));
  CHECK(!has(t, "pvsim_exception"));

  auto wr = [](Machine& mm, uint32_t msr, uint64_t v) {
    mm.vcpu.set_gpr(RCX, msr);
    mm.vcpu.set_gpr(RAX, v & 0xffffffff);
    mm.vcpu.set_gpr(RDX, v >> 32);
    mm.code({0x0f, 0x30});
    mm.step();
    return mm.vcpu.rip() == Machine::kCode + 2;  // false: #GP delivered
  };
  auto rd = [](Machine& mm, uint32_t msr) {
    mm.vcpu.set_gpr(RCX, msr);
    mm.code({0x0f, 0x32});
    mm.step();
    return (mm.vcpu.gpr(RDX) << 32) | (mm.vcpu.gpr(RAX) & 0xffffffff);
  };
  Machine e;
  e.install_idt_all_hlt();
  CHECK(wr(e, 0xC0000080, 0xd01));  // SCE|LME|LMA|NXE: ok
  CHECK(rd(e, 0xC0000080) == 0xd01);
  CHECK_FALSE(wr(e, 0xC0000080, 0xd01 | 2));  // reserved bit
  Machine p;
  p.install_idt_all_hlt();
  CHECK(wr(p, 0x277, 0x0007040600070406ull));
  CHECK_FALSE(wr(p, 0x277, 0x0007040600070402ull));  // type 2 is reserved
  Machine f;
  f.install_idt_all_hlt();
  CHECK_FALSE(wr(f, 0xC0000100, 0x0000800000000000ull));  // non-canonical FS base
  CHECK(wr(f, 0xC0000103, 0x7));
  CHECK(rd(f, 0xC0000103) == 7);
  CHECK_FALSE(wr(f, 0xC0000103, 0x100000000ull));  // TSC_AUX upper half reserved
  CHECK(rd(f, 0xFE) == 0);
  CHECK_FALSE(wr(f, 0xFE, 0));            // MTRRcap is read-only
  CHECK(rd(f, 0x1b) == 0xfee00900u);      // APIC base, BSP
  CHECK_FALSE(wr(f, 0x1b, 0xfee00901u));  // reserved bit 0
  // IA32_TSC: a write sets the TSC; it keeps counting from there.
  CHECK(wr(f, 0x10, 1'000'000'000'000ull));
  const uint64_t t1 = rd(f, 0x10);
  CHECK(t1 > 1'000'000'000'000ull);
  CHECK(t1 < 1'000'000'000'000ull + 10'000);
  CHECK(f.vcpu.tsc() >= t1);  // Vcpu::tsc() includes the guest's adjustment

  // RDMSR at CPL3: #GP(0) from the CPU itself (no VM exit, a pvsim_exception).
  Machine u;
  u.install_idt_all_hlt();
  u.split_2m(0);
  u.put64(Machine::kTss + 4, 0x70000);
  u.vcpu.set_seg(SegReg::CS, {0x33, 0, 0xffffffff, 0xa0fb});
  u.vcpu.set_seg(SegReg::SS, {0x2b, 0, 0xffffffff, 0xc0f3});
  u.vcpu.set_gpr(RSP, 0x7f000);
  u.vcpu.set_gpr(RCX, 0x10);
  u.code({0x0f, 0x32} /* rdmsr */);
  u.step();
  CHECK(u.vcpu.rip() == u.handler_addr(13));
  CHECK(!has(u.trace(), "MSR_READ"));
  CHECK(has(u.trace(), "pvsim_exception"));
}

TEST_CASE("RDTSC/RDTSCP and CR4.TSD", "[system]") {
  Machine m;
  m.vcpu.set_gpr(RCX, 0xC0000103);
  m.vcpu.set_gpr(RAX, 5);
  m.vcpu.set_gpr(RDX, 0);
  m.code({0x0f, 0x30, 0x0f, 0x31, 0x48, 0x89, 0xc3, 0x0f, 0x01,
          0xf9} /* wrmsr; rdtsc; mov rbx, rax; rdtscp */);
  m.run(4);
  CHECK(m.vcpu.gpr(RCX) == 5);
  CHECK(m.vcpu.gpr(RAX) > m.vcpu.gpr(RBX));
  CHECK(m.vcpu.gpr(RAX) == (m.vcpu.tsc() & 0xffffffff));
  Machine t;
  t.install_idt_all_hlt();
  t.split_2m(0);
  t.put64(Machine::kTss + 4, 0x70000);
  t.vcpu.set_cr(4, 0x20 | 0x4);
  t.vcpu.set_seg(SegReg::CS, {0x33, 0, 0xffffffff, 0xa0fb});
  t.vcpu.set_seg(SegReg::SS, {0x2b, 0, 0xffffffff, 0xc0f3});
  t.vcpu.set_gpr(RSP, 0x7f000);
  t.code({0x0f, 0x31} /* rdtsc */);
  t.step();
  CHECK(t.vcpu.rip() == t.handler_addr(13));
}

TEST_CASE("MOV to CRn: reserved bits #GP, CR8", "[system]") {
  auto try_cr = [](unsigned n, uint64_t v) {
    Machine m;
    m.install_idt_all_hlt();
    m.vcpu.set_gpr(RAX, v);
    const uint8_t modrm = static_cast<uint8_t>(0xc0 | ((n & 7) << 3));
    if (n == 8)
      m.code({0x44, 0x0f, 0x22, modrm});
    else
      m.code({0x0f, 0x22, modrm});
    m.step();
    return m.vcpu.rip() != m.handler_addr(13) ? m.vcpu.cr(n) : ~0ull;
  };
  CHECK(try_cr(0, 0x80010033) == 0x80010033);
  CHECK(try_cr(0, 0x1'80010033ull) == ~0ull);  // bits 63:32
  CHECK(try_cr(0, 0x00010033) == ~0ull);       // PG=0 in long mode
  CHECK(try_cr(0, 0xa0010033) == ~0ull);       // NW without CD
  CHECK(try_cr(4, 0x20 | 0x80) == 0xa0);
  CHECK(try_cr(4, 0x20 | (1u << 17)) == ~0ull);  // PCIDE unsupported
  CHECK(try_cr(4, 0x0) == ~0ull);                // clearing PAE in long mode
  CHECK(try_cr(3, 0x10000) == 0x10000);
  CHECK(try_cr(3, 1ull << 50) == ~0ull);  // above MAXPHYADDR
  CHECK(try_cr(8, 0xf) == 0xf);
  CHECK(try_cr(8, 0x10) == ~0ull);
  Machine u;
  u.install_idt_all_hlt();
  u.code({0x0f, 0x22, 0xe8});  // mov cr5, rax
  u.step();
  CHECK(u.vcpu.rip() == u.handler_addr(6));
}

TEST_CASE("LGDT/SGDT/LIDT, LTR marks the TSS busy", "[system]") {
  Machine m;
  m.install_idt_all_hlt();
  // Make the TSS descriptor available (type 9), then LTR.
  m.put64(0x1018, m.get64(0x1018) & ~(2ull << 40));
  m.put(0x5000, {0x37, 0x00});
  m.put64(0x5002, 0x1000);
  m.vcpu.set_gpr(RAX, 0x18);
  m.code({0x0f, 0x01, 0x14, 0x25, 0x00, 0x50, 0x00, 0x00, 0x0f, 0x01, 0x04, 0x25, 0x00, 0x51, 0x00, 0x00, 0x0f, 0x00, 0xd8, 0x0f, 0x00, 0xcb}  /* lgdt [0x5000]; sgdt [0x5100]; ltr ax; str rbx */);
  m.run(4);
  CHECK(m.get64(0x5102) == 0x1000);
  CHECK((m.get64(0x5100) & 0xffff) == 0x37);
  CHECK(((m.get64(0x1018) >> 40) & 0xf) == 0xb);
  CHECK(m.vcpu.tr().base == Machine::kTss);
  CHECK(m.vcpu.gpr(RBX) == 0x18);
  // LTR of a busy TSS: #GP(selector).
  m.code({0x0f, 0x00, 0xd8} /* ltr ax */);
  m.step();
  CHECK(m.vcpu.rip() == m.handler_addr(13));
  CHECK(m.get64(m.vcpu.gpr(RSP)) == 0x18);
}

TEST_CASE("port I/O: exits, values, unhandled port stop, exit port", "[system][io]") {
  Machine m;
  m.vcpu.set_gpr(RAX, 0x1234'5678);
  m.vcpu.set_gpr(RDX, 0x90);
  m.code({0xef, 0xe4, 0x81, 0xbe, 0x00, 0x02, 0x10, 0x00, 0xb9, 0x03, 0x00, 0x00, 0x00, 0xf3,
          0x6e} /* out dx, eax; in al, 0x81; mov esi, 0x100200; mov ecx, 3; rep outsb */);
  m.put(0x100200, {'a', 'b', 'c'});
  CHECK(m.run(7).executed == 7);  // 4 + the 3 elements of rep outsb, one instruction each
  REQUIRE(m.env.log.size() == 5);
  CHECK(m.env.log[0].value == 0x12345678);
  CHECK(m.env.log[0].size == 4);
  CHECK((m.vcpu.gpr(RAX) & 0xffffffff) == 0x1234565a);
  CHECK(m.env.log[4].value == 'c');
  const std::string t = m.trace();
  CHECK(has(t, "reason IO_INSTRUCTION rip 0x100000 info1 0x0000000000900003"));
  CHECK(has(t, "kvm_pio: pio_write at 0x90 size 4 count 1 val 0x12345678"));
  CHECK(has(t, "kvm_pio: pio_read at 0x81 size 1 count 1 val 0x5a"));

  Machine u;
  u.vcpu.set_gpr(RDX, 0x3f8);
  u.code({0xee} /* out dx, al */);
  auto r = u.step();
  CHECK(r.reason == StopReason::IoError);
  CHECK(has(u.vcpu.stop_detail(), "out port 0x3f8"));
  CHECK(u.vcpu.rip() == Machine::kCode);

  Machine x;
  x.code({0xe6, 0xf4, 0xf4} /* out 0xf4, al; hlt */);
  auto r2 = x.run(10);
  CHECK(r2.reason == StopReason::VmExitRequested);
  CHECK(r2.executed == 1);
  CHECK(!has(x.trace(), "kvm_entry: vcpu 0, rip 0x100002"));
}

TEST_CASE("HLT stops the vCPU, the interrupt hook wakes it, STI shadow", "[system][irq]") {
  Machine m;
  m.install_idt_all_hlt();
  m.code({0xfb, 0xf4, 0x48, 0xff, 0xc0} /* sti; hlt; inc rax */);
  auto r = m.run(10);
  CHECK(r.reason == StopReason::Halted);
  CHECK(m.vcpu.halted());
  CHECK(has(m.trace(), "reason HLT"));
  CHECK(m.run(10).reason == StopReason::Halted);  // nothing can wake it
  int delivered = 0;
  m.vcpu.set_interrupt_poll([&](Vcpu&) { return delivered++ == 0 ? 0x30 : -1; });
  m.put(m.handler_addr(0x30), {0x48, 0xcf} /* iretq */);
  m.vcpu.notify_interrupt();
  m.run(2);  // wake + deliver, iretq, inc rax
  CHECK(!m.vcpu.halted());
  CHECK(m.vcpu.gpr(RAX) == 1);
  CHECK(has(m.trace(), "kvm_entry: vcpu 0, rip 0x100002"));

  // STI shadow: an interrupt pending across STI is taken after the next instruction.
  Machine s;
  s.install_idt_all_hlt();
  s.vcpu.set_interrupt_poll([](Vcpu&) { return 0x31; });
  s.vcpu.notify_interrupt();
  s.code({0xfb, 0x48, 0xff, 0xc0, 0x48, 0xff, 0xc0} /* sti; inc rax; inc rax */);
  s.run(1);  // sti
  s.run(1);  // inc (shadow)
  CHECK(s.vcpu.gpr(RAX) == 1);
  s.run(1);  // interrupt delivered instead of the next inc
  CHECK(s.vcpu.rip() == s.handler_addr(0x31));
}

TEST_CASE("VMCALL: #UD without a hypercall handler, hook when present", "[system]") {
  Machine m;
  m.install_idt_all_hlt();
  m.code({0x0f, 0x01, 0xc1} /* vmcall */);
  m.step();
  CHECK(m.vcpu.rip() == m.handler_addr(6));
  Machine h;
  h.vcpu.set_hypercall_handler([](Vcpu& v, HypercallInsn) {
    v.set_gpr(0, 42);
    return HypercallResult{};
  });
  h.code({0x0f, 0x01, 0xc1} /* vmcall */);
  h.step();
  CHECK(h.vcpu.gpr(RAX) == 42);
  CHECK(h.vcpu.rip() == Machine::kCode + 3);
}

TEST_CASE("dump_state looks like QEMU -d cpu", "[system]") {
  Machine m;
  m.vcpu.set_gpr(RAX, 0x1122);
  const std::string d = m.vcpu.dump_state();
  CHECK(has(d, "RAX=0000000000001122"));
  CHECK(has(d, "RIP=0000000000100000"));
  CHECK(has(d, "CS =0008"));
  CHECK(has(d, "CR0=80010033"));
  CHECK(has(d, "EFER=0000000000000500"));
}

TEST_CASE("time gate: RDTSC waits until the vCPU may observe time", "[system]") {
  Machine m;
  bool allow = false;
  m.vcpu.set_time_gate([&](Vcpu&) { return allow; });
  m.code({0x48, 0xff, 0xc3, 0x0f, 0x31, 0x48, 0xff, 0xc3} /* inc rbx; rdtsc; inc rbx */);
  const auto r = m.run(10);
  CHECK(r.reason == StopReason::Deadline);
  CHECK(r.executed == 1);
  CHECK(m.vcpu.rip() == Machine::kCode + 3);  // still on RDTSC
  const uint64_t cyc = m.vcpu.cycles().value();
  allow = true;
  m.run(2);
  CHECK(m.vcpu.gpr(RBX) == 2);
  CHECK(m.vcpu.gpr(RAX) == ((cyc + 20) & 0xffffffff));  // TSC at the RDTSC, cost included
}
