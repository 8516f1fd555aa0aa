// tests/core/workload_rig.h — a small guest workload and a deterministic "host" that drives
// it in pieces, for the snapshot (test_snapshot.cpp) and breakpoint (test_breakpoints.cpp)
// tests.
//
// The guest loops 40 times over: ALU work with lazy flags left pending across blocks, a
// read-modify-write of a data array, a store into its own code (the immediate of the next
// instruction, so its decoded block dies every iteration), a read of page X through a
// translation the TLB keeps after the guest changed X's PTE without INVLPG (SDM Vol. 3A
// §4.10.4.4: software must invalidate, until then the old translation may be used), every
// 8th iteration a remap of page Y with INVLPG and a REP MOVSB, a HLT every 16th, and a
// CLI / STI / NOP (interrupt shadow) each time. At the end it INVLPGs X, reads the new
// frame and writes the exit port. Interrupt (vector 0x30) and NMI handlers count in memory.
//
// The host runs it in pieces of varying budget, deadline and Budget mode, makes an
// interrupt pending at some boundaries (and always when the vCPU halts) and an NMI at
// others. Everything it decides depends only on the vCPU's state and its own (`Host`), so a
// run from the same state gives the same pieces.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "machine.h"

namespace pvsim::test {

class Workload {
 public:
  enum { RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI };
  static constexpr uint64_t kPageX = 0x400000, kPageY = 0x402000, kData = 0x200000;
  static constexpr uint8_t kIrqVector = 0x30;
  // Addresses in the guest code (offsets from Machine::kCode: the listing below).
  static constexpr uint64_t kLoop = Machine::kCode + 0x25;      // loop head (a block start)
  static constexpr uint64_t kLoadArr = Machine::kCode + 0x2f;   // inside the loop's first block
  static constexpr uint64_t kReadX = Machine::kCode + 0x4a;     // after the patched instruction
  static constexpr uint64_t kRepMovs = Machine::kCode + 0x76;   // rep movsb
  static constexpr uint64_t kAfterHlt = Machine::kCode + 0x87;  // cli
  static constexpr uint64_t kNop = Machine::kCode + 0x8d;       // in the STI shadow
  static constexpr uint64_t kIrqHandler = Machine::kCode + 0x800;
  static constexpr uint64_t kNmiHandler = Machine::kCode + 0x900;

  // What the host keeps between pieces; part of what a test saves with the vCPU.
  struct Host {
    bool irq_pending = false;  // the "interrupt controller": one vector waiting for the poll
    uint64_t pieces = 0;
  };
  // The outcome of one piece.
  struct Piece {
    StopReason reason = StopReason::None;
    uint64_t executed = 0, steps = 0, insns = 0, cycles = 0, rip = 0;
    bool operator==(const Piece& o) const {
      return reason == o.reason && executed == o.executed && steps == o.steps && insns == o.insns &&
             cycles == o.cycles && rip == o.rip;
    }
  };

  Machine m;
  Host host;
  uint64_t pt = 0;  // the page table of the 4 KiB-mapped region at 0x400000
  // Breakpoint stops met by piece(): (RIP, instruction count) of each.
  std::vector<std::pair<uint64_t, uint64_t>> stops;

  Workload() {
    pt = m.split_2m(kPageX);
    m.put(Machine::kCode, main_code());
    m.put(kIrqHandler, irq_code());
    m.put(kNmiHandler, nmi_code());
    m.set_gate(kIrqVector, kIrqHandler);
    m.set_gate(2, kNmiHandler);
    m.put64(kPageX, 0x1111);
    m.put64(kPageX + 0x1000, 0x2222);
    m.put64(kPageY, 0x3333);
    m.put64(kPageY + 0x1000, 0x4444);
    for (uint64_t k = 0; k < 64; ++k) m.put64(kData + 8 * k, k * 0x9e3779b97f4a7c15ull);
    m.vcpu.set_gpr(RDI, pt);  // the guest writes PTEs through it
    m.vcpu.set_interrupt_poll([this](Vcpu&) {
      if (!host.irq_pending) return -1;
      host.irq_pending = false;
      return static_cast<int>(kIrqVector);
    });
  }

  // One piece. With `follow_breakpoints`, a Breakpoint stop is counted and the piece goes on
  // with the rest of its budget, the same deadline and mode, as the platform does for a RIP
  // point that does not fire: the pieces must then be those of a run without breakpoints.
  Piece piece(bool follow_breakpoints = false) {
    Vcpu& v = m.vcpu;
    const uint64_t n = 1 + (v.instructions() * 7 + host.pieces) % 23;
    const Budget mode = host.pieces % 3 == 0 ? Budget::Slice : Budget::Exact;
    const Cycles deadline(v.cycles().value() + 15 + (host.pieces % 5) * 20);
    Vcpu::RunResult r = v.run(n, deadline, mode);
    uint64_t steps = v.last_run_steps();
    while (follow_breakpoints && r.reason == StopReason::Breakpoint) {
      stops.emplace_back(v.rip(), v.instructions());
      const Vcpu::RunResult more = v.run(n - steps, deadline, mode);
      r.executed += more.executed;
      steps += v.last_run_steps();
      r.reason = more.reason;
    }
    ++host.pieces;
    if (r.reason == StopReason::Halted || v.instructions() % 11 == 0) {
      host.irq_pending = true;
      v.notify_interrupt();
    }
    if (host.pieces % 29 == 0) v.inject_nmi();
    return {r.reason, r.executed, steps, v.instructions(), v.cycles().value(), v.rip()};
  }
  static bool final(const Piece& p) {
    return p.reason == StopReason::VmExitRequested || p.reason == StopReason::Shutdown ||
           p.reason == StopReason::IoError;
  }
  // Pieces until the guest ends (or `limit` pieces).
  std::vector<Piece> run_to_end(bool follow_breakpoints = false, size_t limit = 5000) {
    std::vector<Piece> out;
    while (out.size() < limit) {
      out.push_back(piece(follow_breakpoints));
      if (final(out.back())) break;
    }
    return out;
  }

  // Everything observable about the machine: registers (the QEMU-style dump covers RFLAGS,
  // segments, descriptor tables, control registers, EFER), time and count, pending-event
  // state, the guest memory the workload touches, and the host's state.
  std::string fingerprint() const {
    const Vcpu& v = m.vcpu;
    std::string s = v.dump_state();
    s += " insns=" + std::to_string(v.instructions()) +
         " cycles=" + std::to_string(v.cycles().value()) + " tsc=" + std::to_string(v.tsc()) +
         " halted=" + std::to_string(v.halted()) + " nmi=" + std::to_string(v.nmi_pending()) +
         std::to_string(v.nmi_blocked()) + " shadow=" + std::to_string(v.interrupt_shadow()) +
         " exc=" + std::to_string(v.exception_pending()) +
         " host=" + std::to_string(host.irq_pending) + "/" + std::to_string(host.pieces);
    for (unsigned r = 0; r < 16; ++r)
      s += " r" + std::to_string(r) + "=" + std::to_string(v.gpr(r));
    uint64_t h = 0xcbf29ce484222325ull;
    for (uint64_t base : {Machine::kCode, kData, kData + 0x1000, kPageX, kPageX + 0x1000, kPageY,
                          kPageY + 0x1000, pt, Machine::kStack - 0x1000}) {
      for (uint64_t off = 0; off < 0x1000; off += 8) {
        h = (h ^ m.get64(base + off)) * 0x100000001b3ull;
        h ^= h >> 29;
      }
    }
    s += " mem=" + std::to_string(h);
    return s;
  }

 private:
  static std::vector<uint8_t> main_code() {
    return {
        0x48, 0xc7, 0xc3, 0x00, 0x00, 0x40, 0x00,  // 000 mov rbx, 0x400000      ; X
        0x49, 0xc7, 0xc6, 0x00, 0x20, 0x40, 0x00,  // 007 mov r14, 0x402000      ; Y
        0x48, 0xc7, 0xc6, 0x00, 0x00, 0x20, 0x00,  // 00e mov rsi, 0x200000      ; data
        0xb9, 0x28, 0x00, 0x00, 0x00,              // 015 mov ecx, 40
        0x48, 0x8b, 0x03,                          // 01a mov rax, [rbx]         ; X in the TLB
        0x48, 0xc7, 0x07, 0x07, 0x10, 0x40,
        0x00,  // 01d mov qword [rdi], 0x401007 ; PTE of X, no INVLPG
        0xfb,  // 024 sti
        // loop:
        0x49, 0x01, 0xc8,                    // 025 add r8, rcx
        0x4d, 0x6b, 0xc8, 0x03,              // 028 imul r9, r8, 3
        0x4d, 0x31, 0xca,                    // 02c xor r10, r9
        0x48, 0x8b, 0x04, 0xce,              // 02f mov rax, [rsi + rcx*8]
        0x4c, 0x01, 0xd0,                    // 033 add rax, r10
        0x48, 0x89, 0x04, 0xce,              // 036 mov [rsi + rcx*8], rax
        0x4d, 0x39, 0xd0,                    // 03a cmp r8, r10           ; flags left lazy
        0x89, 0x0d, 0x03, 0x00, 0x00, 0x00,  // 03d mov [rip + 3], ecx    ; patches 043's imm32
        0x49, 0x81, 0xc3, 0x11, 0x11, 0x11, 0x11,  // 043 add r11, imm32
        0x4c, 0x03, 0x23,                          // 04a add r12, [rbx]        ; X: old frame
        0xf7, 0xc1, 0x07, 0x00, 0x00, 0x00,        // 04d test ecx, 7
        0x75, 0x26,                                // 053 jnz 07b
        0x48, 0x8b, 0x47, 0x10,                    // 055 mov rax, [rdi + 16]   ; PTE of Y
        0x48, 0x35, 0x00, 0x10, 0x00, 0x00,        // 059 xor rax, 0x1000       ; other frame
        0x48, 0x89, 0x47, 0x10,                    // 05f mov [rdi + 16], rax
        0x41, 0x0f, 0x01, 0x3e,                    // 063 invlpg [r14]
        0x56,                                      // 067 push rsi
        0x57,                                      // 068 push rdi
        0x51,                                      // 069 push rcx
        0x48, 0x8d, 0xbe, 0x00, 0x10, 0x00, 0x00,  // 06a lea rdi, [rsi + 0x1000]
        0xb9, 0x18, 0x00, 0x00, 0x00,              // 071 mov ecx, 24
        0xf3, 0xa4,                                // 076 rep movsb
        0x59,                                      // 078 pop rcx
        0x5f,                                      // 079 pop rdi
        0x5e,                                      // 07a pop rsi
        0x4d, 0x03, 0x2e,                          // 07b add r13, [r14]        ; Y
        0xf7, 0xc1, 0x0f, 0x00, 0x00, 0x00,        // 07e test ecx, 15
        0x75, 0x01,                                // 084 jnz 087
        0xf4,                                      // 086 hlt
        0xfa,                                      // 087 cli
        0x49, 0x83, 0xc7, 0x01,                    // 088 add r15, 1
        0xfb,                                      // 08c sti
        0x90,                                      // 08d nop                   ; STI shadow
        0xff, 0xc9,                                // 08e dec ecx
        0x75, 0x93,                                // 090 jnz 025
        0x0f, 0x01, 0x3b,                          // 092 invlpg [rbx]
        0x4c, 0x03, 0x23,                          // 095 add r12, [rbx]        ; X: new frame
        0xe6, 0xf4,                                // 098 out 0xf4, al          ; the end
        0xf4,                                      // 09a hlt
    };
  }
  static std::vector<uint8_t> irq_code() {
    return {
        0x50,                                            // push rax
        0x48, 0x8b, 0x04, 0x25, 0x00, 0x08, 0x20, 0x00,  // mov rax, [0x200800]
        0x48, 0xff, 0xc0,                                // inc rax
        0x48, 0x89, 0x04, 0x25, 0x00, 0x08, 0x20, 0x00,  // mov [0x200800], rax
        0x58,                                            // pop rax
        0x48, 0xcf,                                      // iretq
    };
  }
  static std::vector<uint8_t> nmi_code() {
    return {
        0x50,                                            // push rax
        0x48, 0x8b, 0x04, 0x25, 0x08, 0x08, 0x20, 0x00,  // mov rax, [0x200808]
        0x48, 0x83, 0xc0, 0x03,                          // add rax, 3
        0x48, 0x89, 0x04, 0x25, 0x08, 0x08, 0x20, 0x00,  // mov [0x200808], rax
        0x58,                                            // pop rax
        0x48, 0xcf,                                      // iretq
    };
  }
};

}  // namespace pvsim::test
