// tests/core/test_ept_hook.cpp — the hypervisor's view of the core (core/README.md "EPT
// model and host memory"): the typed EPT-violation outcome (map, stall, async-PF
// injection, synthetic halt), the entry hook's place in an exit's trace, injected
// exceptions, and eviction (GuestMemory::ept_unmap) dropping every cached translation.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "machine.h"

using namespace pvsim;
using namespace pvsim::test;

namespace {

constexpr unsigned RAX = 0, RCX = 1, RDX = 2, RBX = 3;
constexpr uint64_t kData = 0x200000;  // a page the hook controls

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at < text.size()) {
    const size_t nl = text.find('\n', at);
    const std::string line = text.substr(at, nl - at);
    const size_t body = line.find(": ", line.find(']'));
    out.push_back(body == std::string::npos ? line : line.substr(body + 2));
    at = nl == std::string::npos ? text.size() : nl + 1;
  }
  return out;
}

// Index of the first line at or after `from` that starts with `prefix`, or -1.
int find_line(const std::vector<std::string>& ls, const std::string& prefix, size_t from = 0) {
  for (size_t i = from; i < ls.size(); ++i)
    if (ls[i].rfind(prefix, 0) == 0) return static_cast<int>(i);
  return -1;
}

// mov rbx, [0x200000] (absolute disp32 through SIB); hlt
void load_code(Machine& m) {
  m.code({0x48, 0x8b, 0x1c, 0x25, 0x00, 0x00, 0x20, 0x00, 0xf4});
  m.put64(kData, 0x1122334455667788ull);
}

}  // namespace

TEST_CASE("EPT hook: Map proceeds and is asked once per page", "[ept]") {
  Machine m;
  load_code(m);
  unsigned calls = 0;
  std::vector<uint64_t> gpas;
  m.vcpu.set_ept_hook([&](Vcpu&, const Vcpu::EptFault& f) {
    ++calls;
    gpas.push_back(f.gpa.value());
    return Vcpu::EptResult{};
  });
  m.run(2);
  CHECK(m.vcpu.gpr(RBX) == 0x1122334455667788ull);
  // The code page, the data page (paging structures live in one page each, below).
  CHECK(std::find(gpas.begin(), gpas.end(), kData) != gpas.end());
  const unsigned before = calls;
  m.vcpu.set_rip(Machine::kCode);
  m.vcpu.set_halted(false);
  m.run(1);
  CHECK(calls == before);  // mapped pages exit no more
}

TEST_CASE("EPT hook: Stall charges the vCPU's time and maps the page", "[ept]") {
  Machine m;
  load_code(m);
  m.vcpu.set_ept_hook([&](Vcpu&, const Vcpu::EptFault& f) {
    Vcpu::EptResult r;
    if (f.gpa.value() == kData) {
      r.action = Vcpu::EptAction::Stall;
      r.stall_ns = 1'000'000;  // 1 ms
    }
    return r;
  });
  m.run(1);
  CHECK(m.vcpu.gpr(RBX) == 0x1122334455667788ull);
  CHECK(m.vcpu.now().value() >= 1'000'000);
  CHECK(m.mem.ept_mapped(kData >> 12));
}

TEST_CASE("EPT hook: InjectPageFault delivers #PF(0) with CR2 = token and retries the instruction",
          "[ept]") {
  Machine m;
  load_code(m);
  m.install_idt_all_hlt();
  bool inject = true;
  Vcpu::EptFault seen{};
  m.vcpu.set_ept_hook([&](Vcpu&, const Vcpu::EptFault& f) {
    Vcpu::EptResult r;
    if (f.gpa.value() == kData && inject) {
      seen = f;
      r.action = Vcpu::EptAction::InjectPageFault;
      r.token = 0x1000;
    }
    return r;
  });
  m.vcpu.set_rflags(m.vcpu.rflags() | 0x200);
  m.run(1);  // the load fails, the injected #PF is delivered in the same step
  CHECK(m.vcpu.rip() == m.handler_addr(14));
  CHECK(m.vcpu.cr(2) == 0x1000);
  CHECK(m.vcpu.gpr(RBX) == 0);
  // Frame: error code 0, then the faulting RIP (the instruction is retried after IRET).
  const uint64_t rsp = m.vcpu.gpr(4);
  CHECK(m.get64(rsp) == 0);
  CHECK(m.get64(rsp + 8) == Machine::kCode);
  CHECK_FALSE(m.mem.ept_mapped(kData >> 12));
  CHECK(seen.interrupts_allowed);
  CHECK(seen.cpl == 0);
  CHECK_FALSE(seen.event_delivery);
  const auto ls = lines(m.trace());
  const int inj = find_line(ls, "kvm_inj_exception: #PF (0x0)");
  REQUIRE(inj >= 1);
  CHECK(ls.at(static_cast<size_t>(inj) - 1).find("kvm_page_fault: ") == 0);
  CHECK(ls.at(static_cast<size_t>(inj) - 1).find("address 0x0000000000200000") != std::string::npos);
  CHECK(ls.at(static_cast<size_t>(inj) + 1).rfind("kvm_entry: vcpu 0, rip 0x100000", 0) == 0);
  CHECK(find_line(ls, "pvsim_exception: ") == -1);  // injected, not raised by the guest
  // Retry: now the host maps it.
  inject = false;
  m.vcpu.set_rip(Machine::kCode);
  m.vcpu.set_halted(false);
  m.run(1);
  CHECK(m.vcpu.gpr(RBX) == 0x1122334455667788ull);
}

TEST_CASE("EPT hook: Halt leaves RIP on the instruction and charges nothing for it", "[ept]") {
  Machine m;
  load_code(m);
  bool halt = true;
  m.vcpu.set_ept_hook([&](Vcpu&, const Vcpu::EptFault& f) {
    Vcpu::EptResult r;
    if (f.gpa.value() == kData && halt) r.action = Vcpu::EptAction::Halt;
    return r;
  });
  const uint64_t insns = m.vcpu.instructions();
  const Vcpu::RunResult res = m.run(5);
  CHECK(res.reason == StopReason::Halted);
  CHECK(m.vcpu.halted());
  CHECK(m.vcpu.rip() == Machine::kCode);
  CHECK(m.vcpu.instructions() == insns);
  CHECK(m.vcpu.gpr(RBX) == 0);
  // The exit stays open: no kvm_entry after the page fault until the vCPU runs again.
  auto ls = lines(m.trace());
  const int pf = find_line(ls, "kvm_page_fault: ", 0);
  REQUIRE(pf >= 0);
  int last_pf = pf;
  for (int k = pf + 1; (k = find_line(ls, "kvm_page_fault: ", static_cast<size_t>(k))) >= 0; ++k) last_pf = k;
  CHECK(find_line(ls, "kvm_entry: ", static_cast<size_t>(last_pf)) == -1);
  // Woken (the platform clears the halt): kvm_entry at the same RIP, then the retry.
  halt = false;
  m.vcpu.set_halted(false);
  m.run(1);
  CHECK(m.vcpu.gpr(RBX) == 0x1122334455667788ull);
  ls = lines(m.trace());
  CHECK(ls.at(static_cast<size_t>(last_pf) + 1).rfind("kvm_entry: vcpu 0, rip 0x100000", 0) == 0);
}

TEST_CASE("EPT hook: accesses of event delivery say so", "[ept]") {
  Machine m;
  m.install_idt_all_hlt();
  m.code({0x0f, 0x0b});  // ud2: #UD pushes a frame on the stack at kStack
  std::vector<Vcpu::EptFault> faults;
  m.vcpu.set_ept_hook([&](Vcpu&, const Vcpu::EptFault& f) {
    faults.push_back(f);
    return Vcpu::EptResult{};
  });
  m.run(2);
  bool stack_seen = false;
  for (const auto& f : faults)
    if (f.gpa.value() >> 12 == (Machine::kStack - 8) >> 12) {
      stack_seen = true;
      CHECK(f.event_delivery);
    }
  CHECK(stack_seen);
}

TEST_CASE("EPT hook: the STI shadow makes interrupts not allowed for exactly one instruction", "[ept]") {
  Machine m;
  // cli; sti; mov rbx,[0x200000]; mov rcx,[0x201000]; hlt
  m.code({0xfa, 0xfb, 0x48, 0x8b, 0x1c, 0x25, 0x00, 0x00, 0x20, 0x00, 0x48, 0x8b, 0x0c, 0x25, 0x00,
          0x10, 0x20, 0x00, 0xf4});
  std::vector<Vcpu::EptFault> faults;
  m.vcpu.set_ept_hook([&](Vcpu&, const Vcpu::EptFault& f) {
    if (f.gpa.value() == kData || f.gpa.value() == kData + 0x1000) faults.push_back(f);
    return Vcpu::EptResult{};
  });
  m.run(10);
  REQUIRE(faults.size() == 2);
  CHECK_FALSE(faults[0].interrupts_allowed);  // in the shadow of STI
  CHECK(faults[1].interrupts_allowed);
}

TEST_CASE("entry hook runs before kvm_entry of an exit, and before an injected #GP", "[ept]") {
  Machine m;
  // wrmsr (ecx = 0x4b564d00, registered below); wrmsr (ecx = 0x12345, unknown: #GP); hlt
  m.install_idt_all_hlt();
  m.code({0x0f, 0x30, 0xb9, 0x45, 0x23, 0x01, 0x00, 0x0f, 0x30, 0xf4});
  m.vcpu.set_gpr(RCX, 0x4b564d00);
  m.vcpu.set_gpr(RAX, 1);
  m.vcpu.set_gpr(RDX, 0);
  MsrHandler h;
  h.index = 0x4b564d00;
  h.name = "test";
  h.write = [](Vcpu&, uint64_t) { return MsrStatus::Ok; };
  m.vcpu.msrs().add(h);
  m.vcpu.set_entry_hook([&](Vcpu& v) { m.tracer.pvsim_vcpu(v.now(), v.index(), "entry_hook", ""); });
  m.run(3);
  const auto ls = lines(m.trace());
  const int msr = find_line(ls, "kvm_msr: msr_write 4b564d00");
  REQUIRE(msr >= 0);
  CHECK(ls.at(static_cast<size_t>(msr) + 1) == "pvsim_vcpu: entry_hook");
  CHECK(ls.at(static_cast<size_t>(msr) + 2).rfind("kvm_entry: ", 0) == 0);
  const int gp = find_line(ls, "kvm_msr: msr_write 12345");
  REQUIRE(gp >= 0);
  CHECK(ls.at(static_cast<size_t>(gp) + 1) == "pvsim_vcpu: entry_hook");
  CHECK(ls.at(static_cast<size_t>(gp) + 2) == "kvm_inj_exception: #GP (0x0)");
  CHECK(ls.at(static_cast<size_t>(gp) + 3).rfind("kvm_entry: ", 0) == 0);
}

TEST_CASE("inject_exception: delivered at the next boundary, ends HLT, not a guest exception", "[ept]") {
  Machine m;
  m.install_idt_all_hlt();
  m.code({0xf4, 0x90});  // hlt; nop
  const Vcpu::RunResult r0 = m.run(5);
  CHECK(r0.reason == StopReason::Halted);
  m.vcpu.inject_exception(14, true, 0, 0xffffffff);
  m.run(1);  // the delivery, then the handler's HLT
  CHECK(m.vcpu.rip() == m.handler_addr(14) + 1);
  CHECK(m.vcpu.cr(2) == 0xffffffff);
  CHECK(m.get64(m.vcpu.gpr(4) + 8) == Machine::kCode + 1);  // resumes after the HLT
  const auto ls = lines(m.trace());
  CHECK(find_line(ls, "kvm_inj_exception: #PF (0x0)") >= 0);
  CHECK(find_line(ls, "pvsim_exception: ") == -1);
}

// kvm_multiple_exception: a hypervisor that queues a second exception before the first is
// delivered gets what the CPU would make of the pair (SDM Vol. 3A Table 6-5). The async-PF
// bug apf_ready_on_pending_pf (pvmsr/README.md §2.5) relies on #PF + #PF = #DF.
TEST_CASE("inject_exception twice before delivery: #PF+#PF and #GP+#GP are #DF, benign ones replace", "[ept]") {
  struct Pair {
    uint8_t first, second, delivered;
  };
  for (const Pair& p : {Pair{14, 14, 8}, Pair{13, 13, 8}, Pair{14, 13, 8}, Pair{13, 14, 14}, Pair{6, 14, 14},
                        Pair{14, 6, 6}}) {
    Machine m;
    m.install_idt_all_hlt();
    m.code({0xf4, 0x90});  // hlt; nop
    m.run(5);
    m.vcpu.inject_exception(p.first, p.first != 6, 0x10, 0x1000);
    m.vcpu.inject_exception(p.second, p.second != 6, 0x20, 0x2000);
    m.run(1);
    INFO("first " << unsigned(p.first) << " then " << unsigned(p.second));
    CHECK(m.vcpu.rip() == m.handler_addr(p.delivered) + 1);
    const auto ls = lines(m.trace());
    if (p.delivered == 8) {
      CHECK(find_line(ls, "kvm_inj_exception: #DF (0x0)") >= 0);
      CHECK(m.get64(m.vcpu.gpr(4)) == 0);  // #DF pushes error code 0
    }
  }
  // Anything serious after a pending #DF: triple fault, the VM shuts down.
  Machine m;
  m.install_idt_all_hlt();
  m.code({0xf4, 0x90});
  m.run(5);
  m.vcpu.inject_exception(14, true, 0, 0x1000);
  m.vcpu.inject_exception(14, true, 0, 0x2000);
  m.vcpu.inject_exception(13, true, 0, 0);
  CHECK(m.run(1).reason == StopReason::Shutdown);
}

TEST_CASE("ept_unmap drops every cached translation of the page at the next run", "[ept]") {
  Machine m;
  // mov rbx,[0x200000]; jmp back to it
  m.code({0x48, 0x8b, 0x1c, 0x25, 0x00, 0x00, 0x20, 0x00, 0xeb, 0xf6});
  m.put64(kData, 7);
  unsigned data_faults = 0;
  m.vcpu.set_ept_hook([&](Vcpu&, const Vcpu::EptFault& f) {
    if (f.gpa.value() == kData) ++data_faults;
    return Vcpu::EptResult{};
  });
  m.run(100);
  CHECK(data_faults == 1);
  const uint64_t epoch = m.mem.host_unmap_epoch();
  m.mem.ept_unmap(kData >> 12);
  CHECK(m.mem.host_unmap_epoch() == epoch + 1);
  m.mem.ept_unmap(kData >> 12);  // already unmapped: nothing changes
  CHECK(m.mem.host_unmap_epoch() == epoch + 1);
  m.run(100);
  CHECK(data_faults == 2);
  // The code page too: its decoded blocks die with the mapping.
  m.mem.ept_unmap(Machine::kCode >> 12);
  unsigned code_faults = 0;
  m.vcpu.set_ept_hook([&](Vcpu&, const Vcpu::EptFault& f) {
    if (f.gpa.value() >> 12 == Machine::kCode >> 12) ++code_faults;
    return Vcpu::EptResult{};
  });
  m.run(10);
  CHECK(code_faults == 1);
}
