// tests/core/machine.h — a small long-mode test machine for the CPU core tests.
//
// Layout (GPA = linear, identity-mapped with 2 MiB pages over the first 1 GiB):
//   0x1000 GDT: 0x08 code64 DPL0, 0x10 data DPL0, 0x18 TSS (busy, base 0x1080),
//               0x28 data DPL3, 0x30 code64 DPL3
//   0x1080 TSS, 0x2000 IDT (256 gates, all absent until set_gate()), 0x10000 PML4,
//   0x11000 PDPT, 0x12000 PD, 0x13000.. spare page-table pages, 0x80000 stack top,
//   0x100000 code.
#pragma once
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <sstream>
#include <vector>

#include "core/env.h"
#include "core/guest_memory.h"
#include "core/trace.h"
#include "core/vcpu.h"

namespace pvsim::test {

struct PortAccess {
  bool write;
  uint16_t port;
  unsigned size;
  uint32_t value;
};

// Ports 0x80..0xff are claimed (reads return 0x5a5a5a5a masked); others are unhandled.
// Port 0xf4 ends the VM like the platform's exit port.
class TestEnv : public CpuEnv {
 public:
  std::vector<PortAccess> log;
  IoStatus pio_read(Vcpu&, uint16_t port, unsigned size, uint32_t& v) override {
    if (port < 0x80 || port > 0xff) return IoStatus::Unhandled;
    v = 0x5a5a5a5au & (size == 4 ? 0xffffffffu : (1u << (8 * size)) - 1);
    log.push_back({false, port, size, v});
    return IoStatus::Ok;
  }
  IoStatus pio_write(Vcpu& vcpu, uint16_t port, unsigned size, uint32_t v) override {
    if (port < 0x80 || port > 0xff) return IoStatus::Unhandled;
    log.push_back({true, port, size, v});
    if (port == 0xf4) vcpu.request_stop(StopReason::VmExitRequested);
    return IoStatus::Ok;
  }
  // MMIO: unclaimed unless a test installs handlers.
  std::function<IoStatus(Gpa, unsigned, uint64_t&)> on_mmio_read;
  std::function<IoStatus(Gpa, unsigned, uint64_t)> on_mmio_write;
  IoStatus mmio_read(Vcpu&, Gpa gpa, unsigned size, uint64_t& v) override {
    return on_mmio_read ? on_mmio_read(gpa, size, v) : IoStatus::Unhandled;
  }
  IoStatus mmio_write(Vcpu&, Gpa gpa, unsigned size, uint64_t v) override {
    return on_mmio_write ? on_mmio_write(gpa, size, v) : IoStatus::Unhandled;
  }
  CpuidResult cpuid(Vcpu&, uint32_t leaf, uint32_t sub) override {
    CpuidResult r;
    r.eax = leaf * 3 + 1;
    r.ebx = 0x756e6547;
    r.ecx = sub;
    r.edx = 0x49656e69;
    return r;
  }
};

class Machine {
 public:
  static constexpr uint64_t kRam = 16ull << 20;
  static constexpr uint64_t kCode = 0x100000;
  static constexpr uint64_t kStack = 0x80000;
  static constexpr uint64_t kIdt = 0x2000;
  static constexpr uint64_t kTss = 0x1080;
  static constexpr uint64_t kPml4 = 0x10000, kPdpt = 0x11000, kPd = 0x12000;

  GuestMemory mem{kRam};
  Tracer tracer;
  std::ostringstream trace_text;
  TestEnv env;
  Vcpu vcpu;

  Machine();
  // Writes bytes at GPA addr (host-side write: bumps code generations).
  void put(uint64_t addr, std::initializer_list<uint8_t> bytes);
  void put(uint64_t addr, const std::vector<uint8_t>& bytes);
  void put64(uint64_t addr, uint64_t v) { mem.write_obj(Gpa(addr), v); }
  void put32(uint64_t addr, uint32_t v) { mem.write_obj(Gpa(addr), v); }
  uint64_t get64(uint64_t addr) const {
    uint64_t v = 0;
    mem.read_obj(Gpa(addr), v);
    return v;
  }
  uint8_t get8(uint64_t addr) const {
    uint8_t v = 0;
    mem.read_obj(Gpa(addr), v);
    return v;
  }
  // Places code at kCode and points RIP at it.
  void code(std::initializer_list<uint8_t> bytes) {
    put(kCode, bytes);
    vcpu.set_rip(kCode);
  }
  // IDT gate: type 0xE interrupt gate / 0xF trap gate.
  void set_gate(unsigned vec, uint64_t handler, unsigned dpl = 0, unsigned ist = 0,
                unsigned type = 0xE, uint16_t sel = 0x08, bool present = true);
  // Installs an IDT whose vector v handler is at 0x3000 + v*16 (each a HLT), present.
  void install_idt_all_hlt();
  uint64_t handler_addr(unsigned vec) const { return 0x3000 + vec * 16; }
  // Maps the 2 MiB region containing `va` through a fresh 4 KiB page table (identity),
  // returning the GPA of that page table.
  uint64_t split_2m(uint64_t va);
  uint64_t pte_addr(uint64_t va) const;  // after split_2m
  Vcpu::RunResult step() { return vcpu.step(); }
  Vcpu::RunResult run(uint64_t n) { return vcpu.run(n, Cycles(~0ull)); }
  std::string trace() const { return trace_text.str(); }

 private:
  uint64_t m_next_pt = 0x13000;
};

}  // namespace pvsim::test
