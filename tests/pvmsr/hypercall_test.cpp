// tests/pvmsr/hypercall_test.cpp — KVM's hypercall interface, host side (pvmsr/hypercalls.h,
// pvmsr/README.md §10), on real vCPUs running real VMCALL / VMMCALL instructions in long
// mode, with a fake platform (HypercallHost) that records what the hypercalls asked of it.
//
// The expected values are KVM's (arch/x86/kvm/x86.c ____kvm_emulate_hypercall,
// kvm_pv_clock_pairing, kvm_sched_yield, kvm_pv_kick_cpu_op, emulator_fix_hypercall;
// arch/x86/kvm/lapic.c kvm_pv_send_ipi; emulate.c's group 7 table), restated per case.
//
// 32-bit code: pvsim's core runs 64-bit code only (Vcpu::run stops a vCPU that is not in
// 64-bit mode), so the 32-bit rules are tested on the pure functions (hypercall_truncate,
// hypercall_ret) and by calling Hypercalls::handle directly on a vCPU put in compatibility
// mode (CS.L = 0), which is exactly what the core's hook would call.
#include "pvmsr/hypercalls.h"

#include <catch2/catch.hpp>
#include <cstring>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "core/env.h"
#include "core/vcpu.h"
#include "tests/cpu_envs.h"
#include "tests/pvmsr/snapshot_check.h"

using namespace pvsim;
using pvsim::test::NullEnv;

namespace {

enum { RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI };
constexpr uint64_t kRam = 16ull << 20;
constexpr uint64_t kPml4 = 0x10000, kPdpt = 0x11000, kPd = 0x12000, kPt = 0x13000;
constexpr uint64_t kGdt = 0x1000, kTss = 0x1080, kIdt = 0x2000, kHandlers = 0x3000;
constexpr uint64_t kCode = 0x400000;  // mapped through kPt (4 KiB pages), user-accessible
constexpr uint64_t kStack = 0x80000, kUserStack = 0x7f000;
constexpr uint64_t kCodePte = kPt + ((kCode >> 12) & 511) * 8;
const std::vector<uint8_t> kVmcall = {0x0f, 0x01, 0xc1};
const std::vector<uint8_t> kVmmcall = {0x0f, 0x01, 0xd9};
constexpr uint64_t kEnosys = static_cast<uint64_t>(-1000), kEperm = static_cast<uint64_t>(-1);
constexpr uint64_t kEinval = static_cast<uint64_t>(-22), kEfault = static_cast<uint64_t>(-14);
constexpr uint64_t kEopnotsupp = static_cast<uint64_t>(-95);

uint64_t handler(unsigned vec) { return kHandlers + vec * 16; }

// What a hypercall asked of the platform, in order.
struct Call {
  std::string what;  // ipi, kick, yield, pairing
  unsigned src = 0;
  uint32_t dest = 0;
  uint32_t icr = 0;
  bool operator==(const Call& o) const {
    return what == o.what && src == o.src && dest == o.dest && icr == o.icr;
  }
};
std::ostream& operator<<(std::ostream& os, const Call& c) {
  return os << c.what << "(src " << c.src << ", dest 0x" << std::hex << c.dest << ", icr 0x" << c.icr
            << std::dec << ")";
}

class FakeHost final : public HypercallHost {
 public:
  std::vector<Call> calls;
  // APIC ID -> what its LAPIC answers to an IPI (1 accepted, 0 refused); absent: -1.
  std::map<uint32_t, int> apics{{0, 1}, {1, 1}, {2, 1}, {3, 1}};
  bool pairing_ok = true;
  int64_t sec = 1'700'000'123, nsec = 456'789'012;
  uint64_t tsc = 0x0123456789abcdefull;

  int hc_deliver_ipi(unsigned src, uint32_t dest, uint32_t icr_low) override {
    calls.push_back({"ipi", src, dest, icr_low});
    const auto it = apics.find(dest);
    return it == apics.end() ? -1 : it->second;
  }
  void hc_kick(unsigned src, uint32_t dest) override { calls.push_back({"kick", src, dest, 0}); }
  void hc_sched_yield(unsigned src, uint32_t dest) override { calls.push_back({"yield", src, dest, 0}); }
  bool hc_clock_pairing(unsigned vcpu, int64_t& s, int64_t& ns, uint64_t& t) override {
    calls.push_back({"pairing", vcpu, 0, 0});
    s = sec;
    ns = nsec;
    t = tsc;
    return pairing_ok;
  }
  std::vector<uint32_t> ipi_dests() const {
    std::vector<uint32_t> d;
    for (const Call& c : calls)
      if (c.what == "ipi") d.push_back(c.dest);
    return d;
  }
};

void put64(GuestMemory& mem, uint64_t gpa, uint64_t v) {
  if (!mem.write_obj(Gpa(gpa), v)) FAIL("GPA " << gpa << " outside RAM");
}

// A VM of n vCPUs in 64-bit mode at CPL 0: flat GDT (ring 0 and ring 3 code/data), a TSS
// with RSP0, an IDT whose every vector is a HLT at handler(v), the first 1 GiB identity-
// mapped with user-writable 2 MiB pages, except the 2 MiB at kCode, mapped with 4 KiB pages
// (kPt) so a test can change the code page's rights.
struct Rig {
  GuestMemory mem{kRam};
  Tracer tracer;
  std::ostringstream text;
  NullEnv env;
  FakeHost host;
  std::vector<std::unique_ptr<Vcpu>> vcpus;
  std::unique_ptr<Hypercalls> hc;  // declared last: destroyed before the vCPUs

  explicit Rig(const HypercallConfig& cfg = {}, unsigned n = 1) {
    tracer.set_text_output(&text);
    put64(mem, kGdt + 0x08, 0x00af9b000000ffffull);  // code64 DPL0
    put64(mem, kGdt + 0x10, 0x00cf93000000ffffull);  // data DPL0
    put64(mem, kGdt + 0x18, 0x67 | (kTss << 16) | (0x8bull << 40));  // TSS (busy)
    put64(mem, kGdt + 0x28, 0x00cff3000000ffffull);  // data DPL3
    put64(mem, kGdt + 0x30, 0x00affb000000ffffull);  // code64 DPL3
    put64(mem, kTss + 4, 0x70000);                   // RSP0
    for (unsigned v = 0; v < 256; ++v) {
      const uint64_t h = handler(v);
      if (!mem.write(Gpa(h), "\xf4", 1)) FAIL("handler outside RAM");  // hlt
      put64(mem, kIdt + v * 16, (h & 0xffff) | (0x08ull << 16) | (0x8eull << 40) | (((h >> 16) & 0xffff) << 48));
      put64(mem, kIdt + v * 16 + 8, h >> 32);
    }
    put64(mem, kPml4, kPdpt | 7);
    put64(mem, kPdpt, kPd | 7);
    for (uint64_t j = 0; j < 512; ++j) put64(mem, kPd + j * 8, (j << 21) | 0x87);
    put64(mem, kPd + (kCode >> 21) * 8, kPt | 7);
    for (uint64_t k = 0; k < 512; ++k) put64(mem, kPt + k * 8, ((kCode & ~0x1fffffull) + (k << 12)) | 7);
    hc = std::make_unique<Hypercalls>(cfg, mem, tracer, host);
    for (unsigned i = 0; i < n; ++i) {
      VcpuConfig vc;
      vc.index = i;
      vc.count = n;
      vcpus.push_back(std::make_unique<Vcpu>(vc, mem, env, tracer));
      Vcpu& v = *vcpus.back();
      v.set_gdtr({kGdt, 0x37});
      v.set_idtr({kIdt, 0xfff});
      v.set_cr(0, 0x80010033);  // PG, WP, NE, ET, MP, PE
      v.set_cr(3, kPml4);
      v.set_cr(4, 0x20);        // PAE
      v.set_efer(0x500);        // LME, LMA
      v.set_seg(SegReg::CS, {0x08, 0, 0xffffffff, 0xa09b});
      for (SegReg s : {SegReg::SS, SegReg::DS, SegReg::ES, SegReg::FS, SegReg::GS})
        v.set_seg(s, {0x10, 0, 0xffffffff, 0xc093});
      v.set_tr({0x18, kTss, 0x67, 0x8b});
      v.set_rflags(0x2);
      v.set_gpr(RSP, kStack);
      hc->attach(v);
    }
  }
  Vcpu& v(unsigned i = 0) { return *vcpus.at(i); }
  std::string trace() const { return text.str(); }
  void to_user(unsigned i = 0) {
    v(i).set_seg(SegReg::CS, {0x33, 0, 0xffffffff, 0xa0fb});
    v(i).set_seg(SegReg::SS, {0x2b, 0, 0xffffffff, 0xc0f3});
    v(i).set_gpr(RSP, kUserStack);
  }
  // Puts `insn` followed by HLT at kCode, loads the registers (RDI = a canary) and runs
  // vCPU i one step at a time until RIP is past the instruction, or the vCPU halts in an
  // exception handler (the HLT after the instruction would #GP at CPL 3).
  uint64_t run(unsigned i, const HypercallRegs& r, const std::vector<uint8_t>& insn) {
    std::vector<uint8_t> code = insn;
    code.push_back(0xf4);
    REQUIRE(mem.write(Gpa(kCode), code.data(), code.size()));
    Vcpu& x = v(i);
    x.set_halted(false);
    x.set_rip(kCode);
    x.set_gpr(RAX, r.nr);
    x.set_gpr(RBX, r.a0);
    x.set_gpr(RCX, r.a1);
    x.set_gpr(RDX, r.a2);
    x.set_gpr(RSI, r.a3);
    x.set_gpr(RDI, 0x5a5a5a5a5a5a5a5aull);
    for (int k = 0; k < 10 && !x.halted() && x.rip() != kCode + insn.size(); ++k) x.step();
    REQUIRE((x.halted() || x.rip() == kCode + insn.size()));
    return x.gpr(RAX);
  }
  // A hypercall with the native instruction that must complete: RIP ends on the HLT after
  // it, and every register but RAX is as it was.
  uint64_t call(const HypercallRegs& r, unsigned i = 0) {
    const uint64_t rax = run(i, r, hc->native() == HypercallInsn::Vmcall ? kVmcall : kVmmcall);
    Vcpu& x = v(i);
    CHECK(x.rip() == kCode + 3);
    CHECK(x.gpr(RBX) == r.a0);
    CHECK(x.gpr(RCX) == r.a1);
    CHECK(x.gpr(RDX) == r.a2);
    CHECK(x.gpr(RSI) == r.a3);
    CHECK(x.gpr(RDI) == 0x5a5a5a5a5a5a5a5aull);
    return rax;
  }
  // A vCPU in compatibility mode (CS.L = 0), for Hypercalls::handle directly.
  void to_compat(unsigned i = 0) {
    SegmentCache cs = v(i).seg(SegReg::CS);
    cs.attrs = static_cast<uint16_t>((cs.attrs & ~(1u << 13)) | (1u << 14));  // L = 0, D = 1
    v(i).set_seg(SegReg::CS, cs);
  }
  uint64_t handle_direct(const HypercallRegs& r, unsigned i = 0) {
    Vcpu& x = v(i);
    x.set_gpr(RAX, r.nr);
    x.set_gpr(RBX, r.a0);
    x.set_gpr(RCX, r.a1);
    x.set_gpr(RDX, r.a2);
    x.set_gpr(RSI, r.a3);
    const HypercallResult res = hc->handle(x, hc->native());
    CHECK(res.action == HypercallAction::Done);
    return x.gpr(RAX);
  }
  // Snapshots (tests/pvmsr/snapshot_check.h): the component and guest RAM (a rewritten
  // instruction is in RAM).
  struct Snap {
    Hypercalls::Snapshot hc;
    unsigned level;
  };
  Snap save() { return Snap{hc->save(), mem.checkpoint()}; }
  void restore(const Snap& s) {
    hc->restore(s.hc);
    mem.rollback(s.level);
  }
  std::vector<uint8_t> ram() const { return pvsim::test::ram_image(mem); }
};

bool has(const std::string& t, const std::string& s) { return t.find(s) != std::string::npos; }
// The kvm_hypercall line KVM prints for these registers (all 64 bits of each).
std::string hc_line(const HypercallRegs& a) {
  std::ostringstream o;
  o << std::hex << "kvm_hypercall: nr 0x" << a.nr << " a0 0x" << a.a0 << " a1 0x" << a.a1 << " a2 0x"
    << a.a2 << " a3 0x" << a.a3 << "\n";
  return o.str();
}
size_t count_of(const std::string& t, const std::string& s) {
  size_t n = 0;
  for (size_t p = t.find(s); p != std::string::npos; p = t.find(s, p + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("hypercall table: every number in 64-bit mode at CPL 0", "[hypercall]") {
  struct Row {
    uint64_t nr;
    uint64_t want;
    std::vector<Call> calls;
  };
  const HypercallRegs args{0, 0x3000, 2, 0, 0};  // a0 = GPA for CLOCK_PAIRING, a1 = APIC ID 2
  const std::vector<Row> rows = {
      {0, kEnosys, {}},
      {kvm_hc::kVapicPollIrq, 0, {}},
      {kvm_hc::kMmuOp, kEnosys, {}},     // removed
      {kvm_hc::kFeatures, kEnosys, {}},  // never implemented on x86
      {4, kEnosys, {}},                  // PPC_MAP_MAGIC_PAGE: another architecture
      {kvm_hc::kKickCpu, 0, {{"kick", 0, 2, 0}, {"yield", 0, 2, 0}}},
      {6, kEnosys, {}},
      {7, kEnosys, {}},
      {8, kEnosys, {}},
      {kvm_hc::kClockPairing, kEopnotsupp, {}},  // a1 = 2 is not KVM_CLOCK_PAIRING_WALLCLOCK
      // a0 bits 12, 13 and a1 bit 1 from min 0: APIC IDs 12, 13 and 65, which no vCPU has
      {kvm_hc::kSendIpi, 0, {{"ipi", 0, 12, 0}, {"ipi", 0, 13, 0}, {"ipi", 0, 65, 0}}},
      {kvm_hc::kSchedYield, 0, {{"yield", 0, 0x3000, 0}}},  // a0 is the APIC ID
      {kvm_hc::kMapGpaRange, kEnosys, {}},       // the VMM did not ask for the exit
      {13, kEnosys, {}},
      {0x4b564d00, kEnosys, {}},
      {~0ull, kEnosys, {}},
  };
  for (const Row& row : rows) {
    INFO("nr " << row.nr);
    Rig r;
    HypercallRegs a = args;
    a.nr = row.nr;
    CHECK(r.call(a) == row.want);
    CHECK(r.host.calls == row.calls);
    CHECK(has(r.trace(), hc_line(a)));
    CHECK(r.hc->calls_total() == 1);
    if (row.nr <= kvm_hc::kMax) CHECK(r.hc->calls(row.nr) == 1);
    else CHECK(r.hc->calls_other() == 1);
  }
}

TEST_CASE("hypercall feature gates: only under PV-CPUID enforcement", "[hypercall]") {
  struct Gate {
    uint64_t nr;
    unsigned bit;
  };
  for (const Gate& g : {Gate{kvm_hc::kKickCpu, Hypercalls::kFeatureKickCpu},
                        Gate{kvm_hc::kSendIpi, Hypercalls::kFeatureSendIpi},
                        Gate{kvm_hc::kSchedYield, Hypercalls::kFeatureSchedYield}})
    for (bool enforce : {false, true})
      for (uint32_t features : {0u, 1u << g.bit, ~(1u << g.bit), ~0u}) {
        INFO("nr " << g.nr << " enforce " << enforce << " features 0x" << std::hex << features);
        HypercallConfig cfg;
        cfg.enforce_pv_cpuid = enforce;
        cfg.cpuid_features = features;
        Rig r(cfg);
        // KICK_CPU and SCHED_YIELD target APIC ID 1; SEND_IPI sends vector 0x40 to APIC ID 1.
        const HypercallRegs a{g.nr, g.nr == kvm_hc::kSchedYield ? 1u : 2u, 1, 0, 0x40};
        const bool gated = enforce && !(features & (1u << g.bit));
        const uint64_t rax = r.call(a);
        if (gated) {
          // guest_pv_has() false: -KVM_ENOSYS, and nothing reaches the platform.
          CHECK(rax == kEnosys);
          CHECK(r.host.calls.empty());
        } else {
          CHECK(rax == (g.nr == kvm_hc::kSendIpi ? 1u : 0u));
          CHECK(!r.host.calls.empty());
        }
      }
  // The ungated ones ignore CPUID even under enforcement.
  HypercallConfig cfg;
  cfg.enforce_pv_cpuid = true;
  cfg.cpuid_features = 0;
  Rig r(cfg);
  CHECK(r.call({kvm_hc::kVapicPollIrq, 0, 0, 0, 0}) == 0);
  CHECK(r.call({kvm_hc::kClockPairing, 0x3000, 0, 0, 0}) == 0);
}

TEST_CASE("hypercall at CPL 3: an exit, -KVM_EPERM, nothing done", "[hypercall]") {
  for (uint64_t nr : {kvm_hc::kVapicPollIrq, kvm_hc::kKickCpu, kvm_hc::kSendIpi, kvm_hc::kClockPairing,
                      uint64_t{99}}) {
    INFO("nr " << nr);
    Rig r;
    r.to_user();
    // Before VMCALL exited at every CPL this raised #UD in the guest (no exit at all).
    const HypercallRegs a{nr, 0x3000, 1, 0, 0x30};
    CHECK(r.call(a) == kEperm);
    CHECK(r.v().cpl() == 3);
    CHECK(r.host.calls.empty());
    CHECK(has(r.trace(), "reason VMCALL rip 0x400000"));
    CHECK(has(r.trace(), hc_line(a)));  // traced before the CPL check
    CHECK(!has(r.trace(), "pvsim_exception"));
    CHECK(!has(r.trace(), "kvm_inj_exception"));
    CHECK(r.hc->calls_total() == 1);
  }
}

TEST_CASE("32-bit rules: truncation of number, arguments and result", "[hypercall]") {
  // Pure functions (____kvm_emulate_hypercall / complete_hypercall_exit).
  const HypercallRegs wide{0x1'0000'0001ull, 0xffff'ffff'0000'1000ull, 0x8000'0000'0000'0002ull,
                           0x1'ffff'ffffull, 0x0123'4567'89ab'cdefull};
  const HypercallRegs t = hypercall_truncate(wide, false);
  CHECK(t.nr == 1);
  CHECK(t.a0 == 0x1000);
  CHECK(t.a1 == 2);
  CHECK(t.a2 == 0xffffffffull);
  CHECK(t.a3 == 0x89abcdefull);
  const HypercallRegs same = hypercall_truncate(wide, true);
  CHECK(same.nr == wide.nr);
  CHECK(same.a3 == wide.a3);
  CHECK(hypercall_ret(-1000, false) == 0xfffffc18ull);
  CHECK(hypercall_ret(-1000, true) == kEnosys);
  CHECK(hypercall_ret(-1, false) == 0xffffffffull);
  CHECK(hypercall_ret(3, false) == 3);

  // Through the handler on a vCPU in compatibility mode (the core itself runs only 64-bit
  // code, so this is how the 32-bit path is reached).
  Rig r;
  r.to_compat();
  CHECK(!r.v().long_mode_64());
  // nr 0x1_00000001 is VAPIC_POLL_IRQ once truncated: 0, not -KVM_ENOSYS.
  CHECK(r.handle_direct({0x1'0000'0001ull, 0, 0, 0, 0}) == 0);
  CHECK(has(r.trace(), "kvm_hypercall: nr 0x100000001 a0 0x0"));  // the trace shows all 64 bits
  CHECK(r.hc->calls(kvm_hc::kVapicPollIrq) == 1);
  // An unknown number: -KVM_ENOSYS as a 32-bit value.
  CHECK(r.handle_direct({0xdead'0000'0000'0063ull, 0, 0, 0, 0}) == 0xfffffc18ull);
  // SCHED_YIELD's APIC ID loses its high half too.
  r.host.calls.clear();
  CHECK(r.handle_direct({kvm_hc::kSchedYield, 0x7'0000'0003ull, 0, 0, 0}) == 0);
  CHECK(r.host.calls == std::vector<Call>{{"yield", 0, 3, 0}});
  // CLOCK_PAIRING's GPA: 0x1_00005000 -> 0x5000.
  CHECK(r.handle_direct({kvm_hc::kClockPairing, 0x1'0000'5000ull, 0, 0, 0}) == 0);
  int64_t sec = 0;
  REQUIRE(r.mem.read(Gpa(0x5000), &sec, 8));
  CHECK(sec == r.host.sec);
  // MAP_GPA_RANGE: the VMM's value is truncated too (complete_hypercall_exit).
  HypercallConfig cfg;
  cfg.map_gpa_range_exit = true;
  cfg.map_gpa_range_ret = -5;
  Rig m(cfg);
  m.to_compat();
  CHECK(m.handle_direct({kvm_hc::kMapGpaRange, 0x1000, 1, 0, 0}) == 0xfffffffbull);
  // CPL 3 in compatibility mode: -KVM_EPERM as 0xffffffff.
  Rig u;
  u.to_user();
  u.to_compat();
  CHECK(u.handle_direct({kvm_hc::kVapicPollIrq, 0, 0, 0, 0}) == 0xffffffffull);
}

TEST_CASE("SEND_IPI: bitmaps, min, ICR, count", "[hypercall][send_ipi]") {
  SECTION("low bitmap from min, high bitmap from min + 64; count of accepting LAPICs") {
    Rig r;
    r.host.apics = {{5, 1}, {6, 0}, {7, 1}, {69, 1}, {70, 1}, {127, 1}};
    // ICR: vector 0xf2, NMI delivery (4), level and trigger bits set, bits 12-13 and 16-17
    // (status, remote read status) and bits above 31 set: only vector, mode, level and
    // trigger reach the LAPIC.
    const uint64_t icr = 0xabcd'0000'0003'f4f2ull & ~0x800ull;
    const uint64_t rax = r.call({kvm_hc::kSendIpi, (1ull << 0) | (1ull << 1) | (1ull << 2) | (1ull << 3),
                                 (1ull << 0) | (1ull << 1) | (1ull << 58) | (1ull << 63), 5, icr});
    // 5 and 7 accept, 6 refuses, 8 does not exist; 69 and 70 accept, 127 accepts, 132 does not exist.
    CHECK(rax == 5);
    CHECK(r.host.ipi_dests() == std::vector<uint32_t>{5, 6, 7, 8, 69, 70, 127, 132});
    for (const Call& c : r.host.calls) CHECK(c.icr == 0xc4f2u);
  }
  SECTION("destination mode or shorthand bits: -KVM_EINVAL, nothing sent") {
    for (uint64_t bad : {0x800ull, 0x40000ull, 0x80000ull, 0xc0000ull}) {
      INFO("icr bit 0x" << std::hex << bad);
      Rig r;
      CHECK(r.call({kvm_hc::kSendIpi, 1, 1, 0, 0x30 | bad}) == kEinval);
      CHECK(r.host.calls.empty());
    }
  }
  SECTION("min: only its low 32 bits count, and min + 64 wraps as a u32") {
    Rig r;
    CHECK(r.call({kvm_hc::kSendIpi, 1, 0, 0x1'0000'0002ull, 0x30}) == 1);  // APIC ID 2
    CHECK(r.host.ipi_dests() == std::vector<uint32_t>{2});
    Rig w;
    w.host.apics = {{0x30, 1}};
    // min = 0xfffffff0: the low bitmap names IDs that do not exist (bits past 2^32 - 1 name
    // none at all); the high one starts at 0xfffffff0 + 64 = 0x30.
    CHECK(w.call({kvm_hc::kSendIpi, ~0ull, 1, 0xfffffff0u, 0x30}) == 1);
    const std::vector<uint32_t> d = w.host.ipi_dests();
    REQUIRE(d.size() == 17);
    CHECK(d.front() == 0xfffffff0u);
    CHECK(d[15] == 0xffffffffu);
    CHECK(d.back() == 0x30u);
  }
  SECTION("min beyond every APIC ID: 0, nobody receives") {
    Rig r;
    CHECK(r.call({kvm_hc::kSendIpi, ~0ull, ~0ull, 1000, 0x30}) == 0);
  }
  SECTION("no APIC map (no in-kernel LAPIC): -KVM_EOPNOTSUPP after the ICR check") {
    HypercallConfig cfg;
    cfg.irqchip_in_kernel = false;
    Rig r(cfg);
    CHECK(r.call({kvm_hc::kSendIpi, 1, 0, 0, 0x30}) == kEopnotsupp);
    CHECK(r.call({kvm_hc::kSendIpi, 1, 0, 0, 0x830}) == kEinval);
    CHECK(r.host.calls.empty());
  }
  SECTION("outside 64-bit mode: 32 bits per bitmap, the high one from min + 32") {
    Rig r;
    r.host.apics = {{1, 1}, {33, 1}, {65, 1}};
    r.to_compat();
    // a0 bit 32 and a1 bit 32 are gone with the truncation; a1 bit 0 is APIC ID 1 + 32.
    CHECK(r.handle_direct({kvm_hc::kSendIpi, 1 | (1ull << 32), 1 | (1ull << 32), 1, 0x30}) == 2);
    CHECK(r.host.ipi_dests() == std::vector<uint32_t>{1, 33});
  }
  SECTION("the sender's own index goes to the platform") {
    Rig r({}, 3);
    CHECK(r.call({kvm_hc::kSendIpi, 1, 0, 0, 0x30}, 2) == 1);
    REQUIRE(r.host.calls.size() == 1);
    CHECK(r.host.calls[0].src == 2);
  }
}

TEST_CASE("KICK_CPU and SCHED_YIELD: what reaches the platform", "[hypercall]") {
  Rig r({}, 2);
  // KICK_CPU: a0 (flags) is ignored; the kick takes a1's low 32 bits (an int APIC ID), the
  // yield compares all of a1, so an ID past 32 bits is kicked as its low half but yields to
  // nobody.
  CHECK(r.call({kvm_hc::kKickCpu, 0xffff, 1, 0, 0}, 1) == 0);
  CHECK(r.call({kvm_hc::kKickCpu, 0, 0x1'0000'0002ull, 0, 0}, 0) == 0);
  CHECK(r.host.calls == std::vector<Call>{{"kick", 1, 1, 0}, {"yield", 1, 1, 0}, {"kick", 0, 2, 0}});
  r.host.calls.clear();
  CHECK(r.call({kvm_hc::kSchedYield, 0, 0, 0, 0}, 1) == 0);
  CHECK(r.call({kvm_hc::kSchedYield, 0x1'0000'0000ull, 0, 0, 0}, 1) == 0);
  CHECK(r.host.calls == std::vector<Call>{{"yield", 1, 0, 0}});
  // Without an in-kernel LAPIC there is no APIC map: no target, still 0.
  HypercallConfig cfg;
  cfg.irqchip_in_kernel = false;
  Rig n(cfg);
  CHECK(n.call({kvm_hc::kKickCpu, 0, 0, 0, 0}) == 0);
  CHECK(n.call({kvm_hc::kSchedYield, 0, 0, 0, 0}) == 0);
  CHECK(n.host.calls.empty());
}

TEST_CASE("CLOCK_PAIRING: struct kvm_clock_pairing bytes and the failures", "[hypercall][clock_pairing]") {
  constexpr uint64_t kAt = 0x5ff0;  // crosses a page boundary: written page by page
  auto fill = [](Rig& r, uint64_t gpa, size_t n) {
    std::vector<uint8_t> junk(n, 0xa5);
    REQUIRE(r.mem.write(Gpa(gpa), junk.data(), n));
  };
  SECTION("the 64 bytes") {
    Rig r;
    fill(r, kAt, 80);
    CHECK(r.call({kvm_hc::kClockPairing, kAt, 0, 0, 0}) == 0);
    uint8_t b[80];
    REQUIRE(r.mem.read(Gpa(kAt), b, sizeof b));
    uint8_t want[64] = {};
    const int64_t sec = r.host.sec, nsec = r.host.nsec;
    const uint64_t tsc = r.host.tsc;
    std::memcpy(want + 0, &sec, 8);   // s64 sec
    std::memcpy(want + 8, &nsec, 8);  // s64 nsec
    std::memcpy(want + 16, &tsc, 8);  // u64 tsc
    // u32 flags = 0 at 24, u32 pad[9] = 0 at 28..63
    CHECK(std::memcmp(b, want, 64) == 0);
    for (size_t k = 64; k < 80; ++k) CHECK(b[k] == 0xa5);  // nothing past the struct
    CHECK(b[0] == 0x7b);  // 1'700'000'123 = 0x6553f17b, little-endian
    CHECK(r.host.calls == std::vector<Call>{{"pairing", 0, 0, 0}});
  }
  SECTION("type other than KVM_CLOCK_PAIRING_WALLCLOCK: -KVM_EOPNOTSUPP, nothing written") {
    Rig r;
    fill(r, kAt, 64);
    CHECK(r.call({kvm_hc::kClockPairing, kAt, 1, 0, 0}) == kEopnotsupp);
    CHECK(r.host.calls.empty());
    uint8_t b = 0;
    REQUIRE(r.mem.read(Gpa(kAt), &b, 1));
    CHECK(b == 0xa5);
  }
  SECTION("host clock not TSC-based: -KVM_EOPNOTSUPP, nothing written") {
    Rig r;
    r.host.pairing_ok = false;
    fill(r, kAt, 64);
    CHECK(r.call({kvm_hc::kClockPairing, kAt, 0, 0, 0}) == kEopnotsupp);
    uint8_t b = 0;
    REQUIRE(r.mem.read(Gpa(kAt), &b, 1));
    CHECK(b == 0xa5);
  }
  SECTION("outside RAM: -KVM_EFAULT; the pages before the first bad one are written") {
    Rig r;
    CHECK(r.call({kvm_hc::kClockPairing, 0xfee00000, 0, 0, 0}) == kEfault);  // MMIO, no memslot
    CHECK(r.call({kvm_hc::kClockPairing, ~0ull - 8, 0, 0, 0}) == kEfault);   // wraps
    fill(r, kRam - 16, 16);
    CHECK(r.call({kvm_hc::kClockPairing, kRam - 16, 0, 0, 0}) == kEfault);
    int64_t sec = 0;
    REQUIRE(r.mem.read(Gpa(kRam - 16), &sec, 8));
    CHECK(sec == r.host.sec);  // kvm_write_guest wrote the first page's part
  }
}

TEST_CASE("MAP_GPA_RANGE: -KVM_ENOSYS unless the VMM takes the exit", "[hypercall]") {
  Rig off;
  CHECK(off.call({kvm_hc::kMapGpaRange, 0x1000, 1, 0, 0}) == kEnosys);
  HypercallConfig cfg;
  cfg.map_gpa_range_exit = true;
  cfg.map_gpa_range_ret = 0x55;
  Rig r(cfg);
  CHECK(r.call({kvm_hc::kMapGpaRange, 0x1000, 1, 0x10, 0}) == 0x55);
  CHECK(r.call({kvm_hc::kMapGpaRange, 0x1001, 1, 0, 0}) == kEinval);  // not page-aligned
  CHECK(r.call({kvm_hc::kMapGpaRange, 0x1000, 0, 0, 0}) == kEinval);  // no pages
  CHECK(r.call({kvm_hc::kMapGpaRange, 0x1000, ~0ull, 0, 0}) == kEinval);  // gfn + npages wraps
  CHECK(r.call({kvm_hc::kMapGpaRange, 0xffff'ffff'ffff'f000ull, 1, 0, 0}) == 0x55);  // gfn 2^52-1 + 1: no wrap
  CHECK(r.hc->calls(kvm_hc::kMapGpaRange) == 5);
}

TEST_CASE("the other vendor's instruction: rewritten and re-executed, or #UD", "[hypercall][fix]") {
  SECTION("Intel: VMMCALL becomes VMCALL in guest memory, then the hypercall runs") {
    Rig r;
    const uint64_t rax = r.run(0, {kvm_hc::kSendIpi, 0x6, 0, 0, 0x30}, kVmmcall);
    CHECK(rax == 2);  // APIC IDs 1 and 2
    CHECK(r.v().rip() == kCode + 3);
    uint8_t b[3];
    REQUIRE(r.mem.read(Gpa(kCode), b, 3));
    CHECK(std::vector<uint8_t>(b, b + 3) == kVmcall);
    CHECK(r.hc->rewrites() == 1);
    CHECK(r.hc->calls(kvm_hc::kSendIpi) == 1);
    const std::string t = r.trace();
    const size_t ud = t.find("reason EXCEPTION_NMI rip 0x400000 info1 0x0000000000000000 info2 "
                             "0x0000000000000000 intr_info 0x80000306");
    const size_t again = t.find("kvm_entry: vcpu 0, rip 0x400000", ud);
    const size_t vmcall = t.find("reason VMCALL rip 0x400000", again);
    const size_t hc = t.find("kvm_hypercall: nr 0xa", vmcall);
    REQUIRE(ud != std::string::npos);
    CHECK(again != std::string::npos);
    CHECK(vmcall != std::string::npos);
    CHECK(hc != std::string::npos);
    CHECK(count_of(t, "kvm_hypercall") == 1);  // the #UD exit is no hypercall
  }
  SECTION("AMD: VMCALL becomes VMMCALL") {
    HypercallConfig cfg;
    cfg.amd = true;
    Rig r(cfg);
    CHECK(r.hc->native() == HypercallInsn::Vmmcall);
    CHECK(r.run(0, {kvm_hc::kVapicPollIrq, 0, 0, 0, 0}, kVmcall) == 0);
    uint8_t b[3];
    REQUIRE(r.mem.read(Gpa(kCode), b, 3));
    CHECK(std::vector<uint8_t>(b, b + 3) == kVmmcall);
    CHECK(r.v().rip() == kCode + 3);
    CHECK(r.call({kvm_hc::kVapicPollIrq, 0, 0, 0, 0}) == 0);  // the native one directly
  }
  SECTION("quirk off: #UD injected, memory untouched, no hypercall") {
    for (bool amd : {false, true}) {
      INFO("amd " << amd);
      HypercallConfig cfg;
      cfg.amd = amd;
      cfg.fix_hypercall_insn = false;
      Rig r(cfg);
      const std::vector<uint8_t>& wrong = amd ? kVmcall : kVmmcall;
      r.run(0, {kvm_hc::kVapicPollIrq, 0, 0, 0, 0}, wrong);
      CHECK(r.v().rip() == handler(6) + 1);  // halted in the #UD handler
      uint8_t b[3];
      REQUIRE(r.mem.read(Gpa(kCode), b, 3));
      CHECK(std::vector<uint8_t>(b, b + 3) == wrong);
      CHECK(has(r.trace(), "kvm_inj_exception: #UD\n"));
      CHECK(!has(r.trace(), "kvm_hypercall"));
      CHECK(!has(r.trace(), "pvsim_exception"));
      CHECK(r.hc->refused() == 1);
      CHECK(r.hc->calls_total() == 0);
    }
  }
  SECTION("AMD, VMCALL at CPL 3: #GP(0) from the emulator's privilege check, quirk or not") {
    for (bool quirk : {true, false}) {
      HypercallConfig cfg;
      cfg.amd = true;
      cfg.fix_hypercall_insn = quirk;
      Rig r(cfg);
      r.to_user();
      r.run(0, {kvm_hc::kVapicPollIrq, 0, 0, 0, 0}, kVmcall);
      CHECK(r.v().rip() == handler(13) + 1);
      CHECK(has(r.trace(), "kvm_inj_exception: #GP (0x0)"));
      uint8_t b = 0;
      REQUIRE(r.mem.read(Gpa(kCode + 2), &b, 1));
      CHECK(b == 0xc1);
    }
  }
  SECTION("Intel, VMMCALL at CPL 3: rewritten as a user write, then -KVM_EPERM") {
    Rig r;
    r.to_user();
    CHECK(r.run(0, {kvm_hc::kVapicPollIrq, 0, 0, 0, 0}, kVmmcall) == kEperm);
    CHECK(r.v().rip() == kCode + 3);
    CHECK(r.hc->rewrites() == 1);
  }
  SECTION("the rewrite faults: the guest gets the #PF of a write to its code page") {
    struct Case {
      bool user;
      uint64_t pte_flags;
      uint32_t error;
    };
    // Read-only user page: at CPL 3 a user write (P|W|U); at CPL 0 a supervisor write that
    // CR0.WP refuses (P|W).
    for (const Case& k : {Case{true, 0x5, 0x7}, Case{false, 0x5, 0x3}}) {
      INFO("user " << k.user);
      Rig r;
      if (k.user) r.to_user();
      put64(r.mem, kCodePte, kCode | k.pte_flags);
      r.run(0, {kvm_hc::kVapicPollIrq, 0, 0, 0, 0}, kVmmcall);
      CHECK(r.v().rip() == handler(14) + 1);
      CHECK(r.v().cr(2) == kCode);
      std::ostringstream inj;
      inj << "kvm_inj_exception: #PF (0x" << std::hex << k.error << ")";
      CHECK(has(r.trace(), inj.str()));
      uint8_t b = 0;
      REQUIRE(r.mem.read(Gpa(kCode + 2), &b, 1));
      CHECK(b == 0xd9);  // not rewritten
      CHECK(r.hc->rewrites() == 0);
      CHECK(!has(r.trace(), "kvm_hypercall"));
    }
  }
  SECTION("the rewritten instruction inside a longer block: stale decode never runs") {
    Rig r;
    // inc rbx; vmmcall; inc rbx; hlt
    const std::vector<uint8_t> code = {0x48, 0xff, 0xc3, 0x0f, 0x01, 0xd9, 0x48, 0xff, 0xc3, 0xf4};
    REQUIRE(r.mem.write(Gpa(kCode), code.data(), code.size()));
    Vcpu& v = r.v();
    v.set_rip(kCode);
    v.set_gpr(RAX, kvm_hc::kVapicPollIrq);
    v.set_gpr(RBX, 0);
    for (int k = 0; k < 10 && !v.halted(); ++k) v.run(100, Cycles(~0ull));
    CHECK(v.gpr(RAX) == 0);
    CHECK(v.gpr(RBX) == 2);
    CHECK(v.rip() == kCode + 10);
    CHECK(r.hc->rewrites() == 1);
    CHECK(r.hc->calls(kvm_hc::kVapicPollIrq) == 1);
  }
}

TEST_CASE("exit hook runs after kvm_exit and before the hypercall's own events", "[hypercall]") {
  Rig r;
  std::vector<std::string> seen;  // the trace's last line at each hook call
  r.v().set_exit_hook([&](Vcpu&) {
    const std::string t = r.trace();
    const size_t start = t.rfind('\n', t.size() - 2);
    seen.push_back(t.substr(start == std::string::npos ? 0 : start + 1));
  });
  CHECK(r.run(0, {kvm_hc::kVapicPollIrq, 0, 0, 0, 0}, kVmmcall) == 0);
  // EPT first touches, the #UD exit, the VMCALL exit, the HLT exit.
  const std::string t = r.trace();
  CHECK(seen.size() == count_of(t, "kvm_exit:"));
  bool saw_vmcall = false;
  for (const std::string& l : seen) {
    CHECK(has(l, "kvm_exit:"));
    saw_vmcall = saw_vmcall || has(l, "reason VMCALL");
  }
  CHECK(saw_vmcall);
  // The VMCALL exit's next line is its kvm_hypercall: the hook ran in between.
  const size_t next = t.find('\n', t.find("reason VMCALL")) + 1;
  CHECK(has(t.substr(next, t.find('\n', next) - next), "kvm_hypercall: nr 0x1 "));
}

// ---------------------------------------------------------------------------------------
// Snapshots (pvmsr/README.md §1.3)

namespace {

std::string hypercall_counters(const Hypercalls& hc) {
  std::ostringstream os;
  os << "calls";
  for (uint64_t nr = 0; nr <= kvm_hc::kMax; ++nr) os << " " << hc.calls(nr);
  os << " other " << hc.calls_other() << " total " << hc.calls_total() << " rewrites " << hc.rewrites()
     << " refused " << hc.refused() << "\n";
  return os.str();
}

}  // namespace

TEST_CASE("hypercall snapshot: restore, then the counters go as in an untouched copy",
          "[hypercall][snapshot]") {
  // Intel with the rewrite quirk (the wrong instruction is rewritten), and AMD without it
  // (refused with #UD).
  HypercallConfig amd_no_fix;
  amd_no_fix.amd = true;
  amd_no_fix.fix_hypercall_insn = false;
  for (const HypercallConfig& cfg : {HypercallConfig{}, amd_no_fix}) {
    INFO((cfg.amd ? "AMD" : "Intel"));
    const std::vector<uint8_t>& wrong = cfg.amd ? kVmcall : kVmmcall;
    auto make = [&cfg] {
      auto r = std::make_unique<Rig>(cfg, 2);
      r->call({kvm_hc::kSendIpi, 0x6, 0, 0, 0x30});
      r->call({kvm_hc::kVapicPollIrq, 0, 0, 0, 0}, 1);
      return r;
    };
    auto mutate = [&wrong](Rig& r) {
      r.call({kvm_hc::kKickCpu, 0, 1, 0, 0});
      r.call({1000, 0, 0, 0, 0});
      r.run(0, {kvm_hc::kSchedYield, 1, 0, 0, 0}, wrong);
      r.call({kvm_hc::kSendIpi, 0x1, 0, 0, 0x31}, 1);
      // The vCPUs' own state is not this snapshot's: leave vCPU 0 as make() did, its last
      // instruction a completed hypercall (the branch resets the stack pointers).
      r.call({kvm_hc::kVapicPollIrq, 0, 0, 0, 0}, 0);
    };
    auto branch = [&wrong](Rig& r, uint64_t base) {
      const size_t mark = r.trace().size();
      r.host.calls.clear();  // the stand-in platform's record of the calls before the branch
      std::ostringstream log;
      log << hypercall_counters(*r.hc);
      for (auto& x : r.vcpus) {
        x->advance_to(Cycles(ns_to_cycles(base, x->config().tsc_hz)));
        x->set_gpr(RSP, kStack);  // an exception delivered before the branch pushed a frame
      }
      log << r.call({kvm_hc::kSendIpi, 0x3, 0, 1, 0x32}) << "\n";
      log << r.run(1, {kvm_hc::kVapicPollIrq, 0, 0, 0, 0}, wrong) << "\n";
      log << r.call({77, 0, 0, 0, 0}, 1) << "\n";
      log << hypercall_counters(*r.hc);
      for (const Call& c : r.host.calls) log << c << "\n";
      return log.str() + r.trace().substr(mark);
    };
    pvsim::test::check_snapshot(make, mutate, branch, {100'000'000, 200'000'000});
  }
}
