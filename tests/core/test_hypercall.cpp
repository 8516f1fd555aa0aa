// tests/core/test_hypercall.cpp — the core's side of KVM's hypercall interface and the
// exit hook (core/vcpu.h: set_hypercall_handler, set_exit_hook, write_linear, long_mode_64).
//
// Architectural and KVM basis: VMCALL in VMX non-root operation is a VM exit at every CPL
// (SDM Vol. 3C §26.1.2); VMMCALL is #UD on Intel, which KVM always intercepts and hands to
// its emulator (handle_ud); the emulator rewrites a wrong-vendor hypercall in guest memory
// with emulator_write_emulated (a guest-linear write with the walker's permission checks)
// and re-executes it. kvm_lapic_sync_from_vapic runs after every exit, before the exit is
// handled: the exit hook's place. The hypercall semantics themselves are pvmsr's
// (tests/pvmsr/hypercall_test.cpp).
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "machine.h"

using namespace pvsim;
using pvsim::test::Machine;

namespace {
enum { RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI };
constexpr uint64_t kNoDeadline = ~0ull;

bool has(const std::string& t, const std::string& s) {
  return t.find(s) != std::string::npos;
}
size_t count_of(const std::string& t, const std::string& s) {
  size_t n = 0;
  for (size_t p = t.find(s); p != std::string::npos; p = t.find(s, p + 1)) ++n;
  return n;
}
std::string last_line(const std::string& t) {
  if (t.empty()) return {};
  const size_t end = t.size() - 1;  // the final '\n'
  const size_t start = t.rfind('\n', end - 1);
  return t.substr(start == std::string::npos ? 0 : start + 1, end - (start == std::string::npos ? 0 : start + 1));
}

// Runs at CPL 3 from kCode with a user stack: the code's 2 MiB region and the stack's get
// 4 KiB user page tables (Machine::split_2m).
void to_user(Machine& m) {
  m.split_2m(Machine::kCode);
  m.split_2m(0x7f000);
  m.vcpu.set_seg(SegReg::CS, {0x33, 0, 0xffffffff, 0xa0fb});
  m.vcpu.set_seg(SegReg::SS, {0x2b, 0, 0xffffffff, 0xc0f3});
  m.put64(Machine::kTss + 4, 0x70000);  // RSP0 for the #UD / #GP delivery
  m.vcpu.set_gpr(RSP, 0x7f000);
}

// A handler that records what ran and answers a fixed action.
struct Recorder {
  std::vector<HypercallInsn> seen;
  std::vector<unsigned> cpl;
  HypercallResult answer;
  void install(Vcpu& v, HypercallInsn native = HypercallInsn::Vmcall) {
    v.set_hypercall_handler(
        [this](Vcpu& vc, HypercallInsn insn) {
          seen.push_back(insn);
          cpl.push_back(vc.cpl());
          if (answer.action == HypercallAction::Done) vc.set_gpr(RAX, 0x1234);
          return answer;
        },
        native);
  }
};
}  // namespace

TEST_CASE("VMMCALL decodes, and both hypercall instructions #UD on a vCPU without a hypervisor",
          "[hypercall]") {
  for (uint8_t modrm : {uint8_t{0xc1}, uint8_t{0xd9}}) {
    INFO("0f 01 " << std::hex << unsigned{modrm});
    Machine m;
    m.install_idt_all_hlt();
    m.code({0x0f, 0x01, modrm});
    m.step();
    CHECK(m.vcpu.rip() == m.handler_addr(6));
    CHECK(has(m.trace(), "pvsim_exception: vector 0x6 (#UD)"));
    CHECK(!has(m.trace(), "reason VMCALL"));
  }
  // The other encodings of group 7 /3 (VMRUN, VMLOAD, ... : 0f 01 d8, da-df) stay #UD,
  // even with a hypervisor: only VMMCALL became an instruction.
  Machine u;
  u.install_idt_all_hlt();
  Recorder rec;
  rec.install(u.vcpu);
  u.code({0x0f, 0x01, 0xd8} /* vmrun */);
  u.step();
  CHECK(u.vcpu.rip() == u.handler_addr(6));
  CHECK(rec.seen.empty());
}

TEST_CASE("VMCALL exits as VMCALL at CPL 0 and CPL 3, Done moves RIP past it", "[hypercall]") {
  for (bool user : {false, true}) {
    INFO("CPL " << (user ? 3 : 0));
    Machine m;
    m.install_idt_all_hlt();
    if (user) to_user(m);
    Recorder rec;
    rec.install(m.vcpu);
    m.code({0x0f, 0x01, 0xc1, 0x48, 0xff, 0xc3} /* vmcall; inc rbx */);
    // Before this change a VMCALL at CPL > 0 raised #UD without an exit; VMX non-root
    // VMCALL exits at every CPL and KVM answers -KVM_EPERM.
    const uint64_t cyc0 = m.vcpu.cycles().value();
    const auto r = m.run(2);
    CHECK(r.executed == 2);
    REQUIRE(rec.seen.size() == 1);
    CHECK(rec.seen[0] == HypercallInsn::Vmcall);
    CHECK(rec.cpl[0] == (user ? 3u : 0u));
    CHECK(m.vcpu.gpr(RAX) == 0x1234);
    CHECK(m.vcpu.gpr(RBX) == 1);
    CHECK(m.vcpu.rip() == Machine::kCode + 6);
    CHECK(has(m.trace(), "kvm_exit: vcpu 0 reason VMCALL rip 0x100000 info1 0x0000000000000000 "
                         "info2 0x0000000000000000 intr_info 0x00000000 error_code 0x00000000"));
    CHECK(has(m.trace(), "kvm_entry: vcpu 0, rip 0x100003"));
    CHECK(!has(m.trace(), "pvsim_exception"));
    // The round trip (1200) and INC (1), plus the first-touch EPT exits of the fetch and,
    // at CPL 3, of the user page tables.
    CHECK(m.vcpu.cycles().value() - cyc0 >= 1201);
  }
}

TEST_CASE("the non-native hypercall instruction exits as a #UD exception exit", "[hypercall]") {
  struct Case {
    HypercallInsn native;
    uint8_t modrm;
    HypercallInsn ran;
    const char* reason;
  };
  for (const Case& k : {Case{HypercallInsn::Vmcall, 0xd9, HypercallInsn::Vmmcall, "EXCEPTION_NMI"},
                        Case{HypercallInsn::Vmcall, 0xc1, HypercallInsn::Vmcall, "VMCALL"},
                        Case{HypercallInsn::Vmmcall, 0xd9, HypercallInsn::Vmmcall, "VMCALL"},
                        Case{HypercallInsn::Vmmcall, 0xc1, HypercallInsn::Vmcall, "EXCEPTION_NMI"}}) {
    INFO("native " << (k.native == HypercallInsn::Vmcall ? "vmcall" : "vmmcall") << " ran 0f 01 "
                   << std::hex << unsigned{k.modrm});
    Machine m;
    m.install_idt_all_hlt();
    Recorder rec;
    rec.install(m.vcpu, k.native);
    m.code({0x0f, 0x01, k.modrm});
    m.step();
    REQUIRE(rec.seen.size() == 1);
    CHECK(rec.seen[0] == k.ran);
    const std::string want =
        std::string("reason ") + k.reason + " rip 0x100000 info1 0x0000000000000000 info2 " +
        "0x0000000000000000 intr_info " + (std::string(k.reason) == "VMCALL" ? "0x00000000" : "0x80000306");
    CHECK(has(m.trace(), want));
    CHECK(m.vcpu.rip() == Machine::kCode + 3);
  }
}

TEST_CASE("hypercall actions: #UD and other exceptions are injected at the instruction",
          "[hypercall]") {
  SECTION("Ud") {
    Machine m;
    m.install_idt_all_hlt();
    Recorder rec;
    rec.answer.action = HypercallAction::Ud;
    rec.install(m.vcpu);
    m.code({0x0f, 0x01, 0xd9});
    m.step();  // the exit, then the injected #UD's delivery
    CHECK(m.vcpu.rip() == m.handler_addr(6));
    CHECK(m.get64(Machine::kStack - 40) == Machine::kCode);  // frame RIP: the instruction
    const std::string t = m.trace();
    CHECK(has(t, "kvm_inj_exception: #UD\n"));
    CHECK(has(t, "kvm_entry: vcpu 0, rip 0x100000"));
    CHECK(!has(t, "pvsim_exception"));  // the hypervisor's injection, not a guest fault
  }
  SECTION("Inject #PF with CR2") {
    Machine m;
    m.install_idt_all_hlt();
    Recorder rec;
    rec.answer.action = HypercallAction::Inject;
    rec.answer.exception = GuestException{14, true, 0x7, 0x100001};
    rec.install(m.vcpu);
    m.code({0x0f, 0x01, 0xd9});
    m.step();
    CHECK(m.vcpu.rip() == m.handler_addr(14));
    CHECK(m.vcpu.cr(2) == 0x100001);
    CHECK(m.get64(Machine::kStack - 48) == 0x7);  // error code below RIP, CS, RFLAGS, RSP, SS
    CHECK(has(m.trace(), "kvm_inj_exception: #PF (0x7)"));
  }
}

TEST_CASE("Retry: a rewritten hypercall re-executes from fresh bytes", "[hypercall]") {
  // The handler does what KVM's emulator_fix_hypercall does for the wrong vendor's
  // instruction: write the native one over it with write_linear, RIP unchanged.
  for (uint64_t budget : {uint64_t{1}, uint64_t{100}}) {  // per instruction / whole block
    INFO("budget " << budget);
    Machine m;
    m.install_idt_all_hlt();
    std::vector<HypercallInsn> seen;
    m.vcpu.set_hypercall_handler([&](Vcpu& v, HypercallInsn insn) {
      seen.push_back(insn);
      if (insn == HypercallInsn::Vmmcall) {
        const uint8_t vmcall[3] = {0x0f, 0x01, 0xc1};
        GuestException f;
        REQUIRE(v.write_linear(v.rip(), vmcall, 3, f) == LinearAccess::Ok);
        return HypercallResult{HypercallAction::Retry, {}};
      }
      v.set_gpr(RAX, 7);
      return HypercallResult{};
    });
    m.code({0x48, 0xff, 0xc3, 0x0f, 0x01, 0xd9, 0x48, 0xff, 0xc3, 0xf4} /* inc rbx; vmmcall; inc rbx; hlt */);
    uint64_t steps = 0;
    while (!m.vcpu.halted() && steps < 20) steps += m.vcpu.run(budget, Cycles(kNoDeadline)).executed;
    CHECK(m.get8(Machine::kCode + 5) == 0xc1);
    REQUIRE(seen.size() == 2);
    CHECK(seen[0] == HypercallInsn::Vmmcall);
    CHECK(seen[1] == HypercallInsn::Vmcall);
    CHECK(m.vcpu.gpr(RAX) == 7);
    CHECK(m.vcpu.gpr(RBX) == 2);
    // inc, the emulated (rewritten) VMMCALL, VMCALL, inc, hlt: five retired steps.
    CHECK(m.vcpu.instructions() == 5);
    const std::string t = m.trace();
    CHECK(count_of(t, "kvm_entry: vcpu 0, rip 0x100003") == 1);  // after the rewrite
    CHECK(count_of(t, "kvm_entry: vcpu 0, rip 0x100006") == 1);  // after the VMCALL
  }
}

TEST_CASE("write_linear: guest page-table permissions, A/D bits, page order, no EPT exit",
          "[hypercall]") {
  const uint8_t bytes[3] = {0xaa, 0xbb, 0xcc};
  SECTION("supervisor write to a read-only page: #PF only with CR0.WP") {
    Machine m;
    const uint64_t pt = m.split_2m(0x400000);
    m.put64(pt + 1 * 8, 0x401000 | 0x5);  // present, user, read-only
    GuestException f;
    CHECK(m.vcpu.write_linear(0x401010, bytes, 3, f) == LinearAccess::Fault);
    CHECK(f.vector == 14);
    CHECK(f.has_error);
    CHECK(f.error == 0x3);  // P | W
    CHECK(f.cr2 == 0x401010);
    CHECK(m.get8(0x401010) == 0);
    m.vcpu.set_cr(0, m.vcpu.cr(0) & ~(1ull << 16));  // CR0.WP = 0
    CHECK(m.vcpu.write_linear(0x401010, bytes, 3, f) == LinearAccess::Ok);
    CHECK(m.get8(0x401012) == 0xcc);
    CHECK((m.get64(pt + 1 * 8) & 0x60) == 0x60);  // A and D set on the leaf
  }
  SECTION("CPL 3 writes as a user: a supervisor page faults with U") {
    Machine m;
    to_user(m);
    const uint64_t pt = m.split_2m(0x400000);
    m.put64(pt + 2 * 8, 0x402000 | 0x3);  // present, writable, supervisor
    GuestException f;
    CHECK(m.vcpu.write_linear(0x402000, bytes, 3, f) == LinearAccess::Fault);
    CHECK(f.error == 0x7);  // P | W | U
    CHECK(m.vcpu.write_linear(0x403000, bytes, 3, f) == LinearAccess::Ok);
  }
  SECTION("page by page: the first page is written before the second faults") {
    Machine m;
    const uint64_t pt = m.split_2m(0x400000);
    m.put64(pt + 6 * 8, 0);  // 0x406000 not present
    GuestException f;
    CHECK(m.vcpu.write_linear(0x405fff, bytes, 3, f) == LinearAccess::Fault);
    CHECK(f.error == 0x2);  // not present, write
    CHECK(f.cr2 == 0x406000);
    CHECK(m.get8(0x405fff) == 0xaa);
    CHECK(m.get8(0x406000) == 0);
    CHECK(!m.vcpu.exception_pending());  // nothing left queued in the core
  }
  SECTION("a page not in the modelled EPT is no exit") {
    Machine m;
    int ept_calls = 0;
    m.vcpu.set_ept_hook([&](Vcpu&, const Vcpu::EptFault&) {
      ++ept_calls;
      return Vcpu::EptResult{};
    });
    m.code({0x48, 0xff, 0xc3, 0xf4} /* inc rbx; hlt */);
    m.run(2);
    const int after_run = ept_calls;
    CHECK(after_run > 0);
    const size_t exits = count_of(m.trace(), "kvm_exit:");
    m.mem.ept_unmap(0x500000 >> 12);
    GuestException f;
    CHECK(m.vcpu.write_linear(0x500000, bytes, 3, f) == LinearAccess::Ok);
    CHECK(ept_calls == after_run);
    CHECK(count_of(m.trace(), "kvm_exit:") == exits);
    CHECK(m.get8(0x500001) == 0xbb);
  }
  SECTION("decoded code on the written page dies") {
    Machine m;
    m.code({0x48, 0xff, 0xc3, 0xf4} /* inc rbx; hlt */);
    m.run(2);
    CHECK(m.vcpu.gpr(RBX) == 1);
    const uint8_t inc_rcx[3] = {0x48, 0xff, 0xc1};
    GuestException f;
    CHECK(m.vcpu.write_linear(Machine::kCode, inc_rcx, 3, f) == LinearAccess::Ok);
    m.vcpu.set_halted(false);
    m.vcpu.set_rip(Machine::kCode);
    m.run(1);
    CHECK(m.vcpu.gpr(RCX) == 1);  // the new bytes ran, not the cached INC RBX
    CHECK(m.vcpu.gpr(RBX) == 1);
  }
  SECTION("a target outside RAM stops the vCPU") {
    Machine m;
    GuestException f;
    CHECK(m.vcpu.write_linear(Machine::kRam + 0x10, bytes, 3, f) == LinearAccess::Stopped);
    CHECK(has(m.vcpu.stop_detail(), "outside RAM"));
  }
}

TEST_CASE("long_mode_64: EFER.LMA and CS.L", "[hypercall]") {
  Machine m;
  CHECK(m.vcpu.long_mode_64());
  SegmentCache cs = m.vcpu.seg(SegReg::CS);
  cs.attrs &= static_cast<uint16_t>(~(1u << 13));  // compatibility mode
  m.vcpu.set_seg(SegReg::CS, cs);
  CHECK(!m.vcpu.long_mode_64());
  cs.attrs |= 1u << 13;
  m.vcpu.set_seg(SegReg::CS, cs);
  m.vcpu.set_efer(m.vcpu.efer() & ~(1ull << 10));
  CHECK(!m.vcpu.long_mode_64());
}

TEST_CASE("exit hook: once per kvm_exit, right after it, before the exit's own events",
          "[hypercall][exit_hook]") {
  Machine m;
  m.install_idt_all_hlt();
  std::vector<std::string> at_hook;  // the trace's last line when the hook ran
  std::vector<std::string> order;
  m.vcpu.set_exit_hook([&](Vcpu&) {
    at_hook.push_back(last_line(m.trace()));
    order.push_back("exit");
  });
  m.vcpu.set_entry_hook([&](Vcpu&) { order.push_back("entry"); });
  Recorder rec;
  rec.install(m.vcpu);
  m.vcpu.set_gpr(RCX, 0x10);  // IA32_TSC for the RDMSR
  // cpuid; rdmsr; out 0x80, al; vmcall; hlt
  m.code({0x0f, 0xa2, 0x0f, 0x32, 0xe6, 0x80, 0x0f, 0x01, 0xc1, 0xf4});
  m.run(10);
  const std::string t = m.trace();
  const size_t exits = count_of(t, "kvm_exit:");
  CHECK(exits >= 6);  // EPT violations of the first fetch, then the five instructions
  CHECK(at_hook.size() == exits);
  for (const std::string& l : at_hook) CHECK(has(l, "kvm_exit:"));
  // Each exit's own event follows the hook, not precedes it.
  CHECK(t.find("reason CPUID") < t.find("kvm_cpuid:"));
  CHECK(has(t, "reason EPT_VIOLATION"));
  for (const char* r : {"reason CPUID", "reason MSR_READ", "reason IO_INSTRUCTION", "reason VMCALL",
                        "reason HLT"})
    CHECK(has(t, r));
  // Exit then entry, alternating, for the instruction exits (the hook runs before the
  // requests of the entry that ends the exit).
  REQUIRE(order.size() >= 2);
  CHECK(order.front() == "exit");
  for (size_t k = 1; k < order.size(); ++k) CHECK(order[k] != order[k - 1]);
}
