// tests/core/test_snapshot.cpp — Vcpu::save / Vcpu::restore (core/README.md "Snapshots").
//
// The property: after GuestMemory::rollback to the checkpoint taken with the snapshot and
// Vcpu::restore, the vCPU does exactly what it did after the save — the same stops, counts,
// cycles, registers, memory and trace text — and again after a second restore from the
// same snapshot. The workload (workload_rig.h) modifies its own code and data after every
// save point, remaps a page with INVLPG (a translation made after the save must not
// survive the restore) and reads a page through a translation the guest made stale before
// the save (it must come back: the TLB is guest-visible, SDM Vol. 3A §4.10.4.4).
#include <catch2/catch.hpp>
#include <vector>

#include "workload_rig.h"

using namespace pvsim;
using pvsim::test::Machine;
using pvsim::test::Workload;

TEST_CASE("a restored vCPU repeats its run from every save point, twice", "[snapshot]") {
  Workload ref;
  const std::vector<Workload::Piece> ref_pieces = ref.run_to_end();
  REQUIRE(Workload::final(ref_pieces.back()));
  REQUIRE(ref_pieces.back().reason == StopReason::VmExitRequested);
  REQUIRE(ref_pieces.size() > 100);
  const std::string ref_fp = ref.fingerprint();
  const std::string ref_text = ref.m.trace();
  // The workload did what it is there for: the stale read of X saw the old frame 40 times
  // plus the new one once, Y alternated, interrupts and NMIs were taken.
  CHECK(ref.m.vcpu.gpr(12) == 40 * 0x1111 + 0x2222);
  CHECK(ref.m.get64(Workload::kData + 0x800) > 5);
  CHECK(ref.m.get64(Workload::kData + 0x808) > 0);

  unsigned halted = 0, nmi = 0, mid_rep = 0, shadow = 0, lazy = 0;
  for (size_t p = 0; p < ref_pieces.size(); ++p) {
    Workload w;
    for (size_t k = 0; k < p; ++k) w.piece();
    Vcpu& v = w.m.vcpu;
    halted += v.halted();
    nmi += v.nmi_pending();
    mid_rep += v.rip() == Workload::kRepMovs && v.gpr(Workload::RCX) != 24;
    shadow += v.interrupt_shadow();
    lazy += v.rip() == Machine::kCode + 0x3d;  // right after CMP: flags still lazy
    const Vcpu::Snapshot snap = v.save();
    const Workload::Host host = w.host;
    const unsigned level = w.m.mem.checkpoint();
    const size_t mark = w.m.trace().size();
    const std::vector<Workload::Piece> a = w.run_to_end();
    const std::string fp = w.fingerprint();
    const std::string text = w.m.trace().substr(mark);
    INFO("saved after piece " << p);
    // Saving (and the checkpoint) changed nothing.
    CHECK(a == std::vector<Workload::Piece>(ref_pieces.begin() + static_cast<std::ptrdiff_t>(p),
                                            ref_pieces.end()));
    CHECK(fp == ref_fp);
    CHECK(text == ref_text.substr(mark));
    for (int again = 0; again < 2; ++again) {
      INFO("restore " << again + 1);
      w.m.mem.rollback(level);
      v.restore(snap);
      w.host = host;
      const size_t mark2 = w.m.trace().size();
      const std::vector<Workload::Piece> b = w.run_to_end();
      CHECK(b == a);
      CHECK(w.fingerprint() == fp);
      CHECK(w.m.trace().substr(mark2) == text);
    }
  }
  // The save points covered the states a snapshot must carry.
  CHECK(halted > 0);
  CHECK(nmi > 0);
  CHECK(mid_rep > 0);
  CHECK(shadow > 0);
  WARN("snapshot points: " << ref_pieces.size() << " (halted " << halted << ", NMI pending " << nmi
                           << ", mid-REP " << mid_rep << ", STI shadow " << shadow
                           << ", lazy flags " << lazy << ")");
}

namespace {
// X at 0x400000 maps frame 0x400000 (holds 0x1111); frame 0x401000 holds 0x2222.
struct TlbRig {
  Machine m;
  uint64_t pt;
  TlbRig() {
    pt = m.split_2m(0x400000);
    m.put64(0x400000, 0x1111);
    m.put64(0x401000, 0x2222);
  }
};
}  // namespace

TEST_CASE("restore keeps the translations the TLB held at the save, stale ones included",
          "[snapshot][tlb]") {
  TlbRig r;
  // mov rax, [0x400000]            ; X into the TLB (old frame)
  // mov qword [pt], 0x401007        ; X's PTE now names the new frame: no INVLPG
  // --- save here ---
  // mov rbx, [0x400000]            ; still the old frame through the TLB
  // invlpg [0x400000]
  // mov rcx, [0x400000]            ; the new frame
  // hlt
  std::vector<uint8_t> code = {0x48, 0x8b, 0x04, 0x25, 0x00, 0x00, 0x40, 0x00};
  const uint8_t pt_lo = static_cast<uint8_t>(r.pt), pt_hi = static_cast<uint8_t>(r.pt >> 8),
                pt_hi2 = static_cast<uint8_t>(r.pt >> 16);
  for (uint8_t b :
       {uint8_t{0x48}, uint8_t{0xc7}, uint8_t{0x04}, uint8_t{0x25}, pt_lo, pt_hi, pt_hi2,
        uint8_t{0x00}, uint8_t{0x07}, uint8_t{0x10}, uint8_t{0x40}, uint8_t{0x00}})
    code.push_back(b);
  for (uint8_t b : {0x48, 0x8b, 0x1c, 0x25, 0x00, 0x00, 0x40, 0x00,  // mov rbx, [0x400000]
                    0x0f, 0x01, 0x3c, 0x25, 0x00, 0x00, 0x40, 0x00,  // invlpg [0x400000]
                    0x48, 0x8b, 0x0c, 0x25, 0x00, 0x00, 0x40, 0x00,  // mov rcx, [0x400000]
                    0xf4})
    code.push_back(static_cast<uint8_t>(b));
  r.m.put(Machine::kCode, code);
  r.m.vcpu.set_rip(Machine::kCode);
  REQUIRE(r.m.run(2).executed == 2);
  const Vcpu::Snapshot snap = r.m.vcpu.save();
  const unsigned level = r.m.mem.checkpoint();
  REQUIRE(r.m.run(100).reason == StopReason::Halted);
  CHECK(r.m.vcpu.gpr(3) == 0x1111);  // stale
  CHECK(r.m.vcpu.gpr(1) == 0x2222);
  for (int again = 0; again < 2; ++again) {
    r.m.mem.rollback(level);
    r.m.vcpu.restore(snap);
    r.m.vcpu.set_gpr(3, 0);
    r.m.vcpu.set_gpr(1, 0);
    REQUIRE(r.m.run(100).reason == StopReason::Halted);
    CHECK(r.m.vcpu.gpr(3) == 0x1111);  // the restored TLB still holds the old frame
    CHECK(r.m.vcpu.gpr(1) == 0x2222);
  }
}

TEST_CASE("restore drops the translations made after the save", "[snapshot][tlb]") {
  TlbRig r;
  // --- save here (nothing of X in the TLB) ---
  // mov rax, [0x400000]            ; old frame
  // mov qword [pt], 0x401007        ; X -> new frame
  // invlpg [0x400000]
  // mov rbx, [0x400000]            ; new frame, now in the TLB
  // hlt
  std::vector<uint8_t> code = {0x48, 0x8b, 0x04, 0x25, 0x00, 0x00, 0x40, 0x00};
  for (uint8_t b :
       {uint8_t{0x48}, uint8_t{0xc7}, uint8_t{0x04}, uint8_t{0x25}, static_cast<uint8_t>(r.pt),
        static_cast<uint8_t>(r.pt >> 8), static_cast<uint8_t>(r.pt >> 16), uint8_t{0x00},
        uint8_t{0x07}, uint8_t{0x10}, uint8_t{0x40}, uint8_t{0x00}})
    code.push_back(b);
  for (uint8_t b : {0x0f, 0x01, 0x3c, 0x25, 0x00, 0x00, 0x40, 0x00,  // invlpg [0x400000]
                    0x48, 0x8b, 0x1c, 0x25, 0x00, 0x00, 0x40, 0x00,  // mov rbx, [0x400000]
                    0xf4})
    code.push_back(static_cast<uint8_t>(b));
  r.m.put(Machine::kCode, code);
  r.m.vcpu.set_rip(Machine::kCode);
  const Vcpu::Snapshot snap = r.m.vcpu.save();
  const unsigned level = r.m.mem.checkpoint();
  REQUIRE(r.m.run(100).reason == StopReason::Halted);
  CHECK(r.m.vcpu.gpr(0) == 0x1111);
  CHECK(r.m.vcpu.gpr(3) == 0x2222);
  r.m.mem.rollback(level);  // X's PTE names the old frame again
  r.m.vcpu.restore(snap);
  REQUIRE(r.m.run(100).reason == StopReason::Halted);
  CHECK(r.m.vcpu.gpr(0) == 0x1111);  // not the new frame a surviving translation would give
  CHECK(r.m.vcpu.gpr(3) == 0x2222);
}

TEST_CASE("restore brings back run control: halt, pending NMI, STI shadow, exit state",
          "[snapshot]") {
  Machine m;
  m.install_idt_all_hlt();
  m.put(m.handler_addr(2), {0xfb, 0xf4});  // the NMI handler: sti (a shadow of its own); hlt
  // sti; nop; nop; hlt
  m.code({0xfb, 0x90, 0x90, 0xf4});
  REQUIRE(m.run(1).executed == 1);  // STI: the shadow covers the first NOP
  m.vcpu.inject_nmi();
  CHECK(m.vcpu.interrupt_shadow());
  const Vcpu::Snapshot snap = m.vcpu.save();
  const unsigned level = m.mem.checkpoint();
  const size_t mark = m.trace().size();
  // The NMI waits for the shadow to end: NOP, then delivery to vector 2's STI; HLT.
  auto a1 = m.run(2);
  auto a2 = m.run(5);
  const std::string fp = m.vcpu.dump_state();
  const std::string text = m.trace().substr(mark);
  CHECK(m.vcpu.halted());
  CHECK(m.vcpu.nmi_blocked());
  CHECK(m.vcpu.rip() == m.handler_addr(2) + 2);
  m.mem.rollback(level);
  m.vcpu.restore(snap);
  CHECK(!m.vcpu.halted());
  CHECK(m.vcpu.nmi_pending());
  CHECK(!m.vcpu.nmi_blocked());
  CHECK(m.vcpu.interrupt_shadow());
  const size_t mark2 = m.trace().size();
  auto b1 = m.run(2);
  auto b2 = m.run(5);
  CHECK(b1.reason == a1.reason);
  CHECK(b1.executed == a1.executed);
  CHECK(b2.reason == a2.reason);
  CHECK(b2.executed == a2.executed);
  CHECK(m.vcpu.dump_state() == fp);
  CHECK(m.trace().substr(mark2) == text);
  // Saved while halted (in the NMI handler's HLT): a restore puts it back into the HLT.
  const Vcpu::Snapshot halted = m.vcpu.save();
  m.vcpu.set_halted(false);
  m.vcpu.restore(halted);
  CHECK(m.vcpu.halted());
  CHECK(m.run(5).reason == StopReason::Halted);
}
