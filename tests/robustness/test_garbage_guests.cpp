// tests/robustness/test_garbage_guests.cpp — guests made of random bytes.
//
// Guest misbehaviour must never crash or corrupt the host (preamble "Hard rules"): each
// seed builds a guest whose RAM, code, registers and — depending on the variant — IDT,
// GDT and page tables are garbage, runs it for up to 10^5 instructions, and requires:
//   * run() returns, with a StopReason that ends a run cleanly (never None/Deadline),
//     never more instructions than asked for, and instructions() equal to what run()
//     reported as executed;
//   * Shutdown / IoError come with a stop_detail() explanation, and dump_state() works;
//   * the same seed run again from scratch ends in the identical state (GPRs, RIP,
//     RFLAGS, instruction count, cycle count, stop reason, and an XXH3 hash of all RAM),
//     i.e. no uninitialised host state leaks into the simulation.
// Host-memory safety itself is proven by running this suite under ASan+UBSan
// (-DPVSIM_SANITIZE=ON): GuestMemory is one mmap'd region and every guest-controlled
// access must be bounds-checked; any stray host access is reported by the sanitizer.
//
// Knobs: PVSIM_ROBUST_SEEDS (default 400), PVSIM_ROBUST_INSNS (default 100000).
#include <catch2/catch.hpp>
#include <xxhash.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "core/guest_memory.h"
#include "core/trace.h"
#include "core/vcpu.h"
#include "tests/oracle/long_mode.h"
#include "tests/oracle/rng.h"

using namespace pvsim;
using namespace pvsim::oracle;
using pvsim::test::PermissiveEnv;

namespace {

constexpr uint64_t kRam = 4ull << 20;  // small: random addresses often land in RAM

uint64_t env_knob(const char* name, uint64_t def) {
  if (const char* s = std::getenv(name)) {
    char* end = nullptr;
    const unsigned long long v = std::strtoull(s, &end, 10);
    if (end != s && *end == '\0' && v > 0) return v;
  }
  return def;
}


enum class Variant : uint8_t {
  GarbageCode,         // valid boot tables, IDTR = {0, 0}: first exception is a triple fault
  GarbageIdt,          // IDTR points at random bytes inside RAM
  GarbagePageTables,   // CR3 points at random bytes (plausible entries half the time)
  GarbageEverything,   // random GDT and IDT and page tables and CR3
  GarbageHandlers,     // a valid IDT whose 256 gates lead into random code: runs go long,
                       // taking exceptions in garbage handlers over and over
};
constexpr unsigned kVariants = 5;
constexpr uint64_t kIdtBase = 0x16000;  // just above the boot page tables

struct Outcome {
  StopReason reason = StopReason::None;
  uint64_t executed = 0;
  uint64_t gpr[16] = {};
  uint64_t rip = 0, rflags = 0, instructions = 0, cycles = 0, ram_hash = 0;
  std::string detail, dump;
};

// Random "paging entry": half the time present+writable with an address inside RAM,
// so walks go several levels deep into garbage before failing.
uint64_t plausible_entry(SplitMix64& rng) {
  const uint64_t raw = rng.next();
  if (rng.one_in(2)) return raw;
  return (raw & 0xfff) | 0x3 | ((rng.below(kRam) & ~0xfffull));
}

Outcome run_seed(uint64_t seed, uint64_t max_insns) {
  SplitMix64 rng(seed * 0x9e3779b97f4a7c15ull + 0x243f6a8885a308d3ull);
  const Variant variant = static_cast<Variant>(seed % kVariants);
  const bool strict_io = (seed / kVariants) % 2 == 1;
  const bool strip_hlt = (seed / (2 * kVariants)) % 2 == 1;  // longer runs: HLT -> NOP

  GuestMemory mem(kRam);
  // All of RAM random (including where the boot tables go, before they are written).
  {
    uint8_t* p = mem.host_ptr(Gpa(0), kRam);
    for (uint64_t i = 0; i < kRam; i += 8) {
      uint64_t v = rng.next();
      if (strip_hlt)
        for (unsigned b = 0; b < 8; ++b)
          if (((v >> (8 * b)) & 0xff) == 0xf4) v ^= 0x64ull << (8 * b);  // 0xf4 -> 0x90
      std::memcpy(p + i, &v, 8);
    }
    mem.note_write(Gpa(0), kRam);
  }
  if (variant != Variant::GarbageEverything) write_boot_tables(mem);

  NullEnv strict_env;
  PermissiveEnv permissive_env;
  CpuEnv& env = strict_io ? static_cast<CpuEnv&>(strict_env) : permissive_env;
  Tracer tracer;
  VcpuConfig cfg;
  Vcpu v(cfg, mem, env, tracer);
  enter_long_mode(v);

  switch (variant) {
    case Variant::GarbageCode: break;
    case Variant::GarbageIdt:
      v.set_idtr(DescriptorTable{rng.below(kRam), static_cast<uint16_t>(rng.next())});
      break;
    case Variant::GarbagePageTables: {
      const uint64_t cr3 = 0x100000 + (rng.below(kRam - 0x200000) & ~0xfffull);
      for (unsigned i = 0; i < 512; ++i) {
        const uint64_t e = plausible_entry(rng);
        mem.write_obj(Gpa(cr3 + i * 8), e);
      }
      v.set_cr(3, cr3);
      break;
    }
    case Variant::GarbageEverything:
      v.set_gdtr(DescriptorTable{rng.next(), static_cast<uint16_t>(rng.next())});
      v.set_idtr(DescriptorTable{rng.next(), static_cast<uint16_t>(rng.next())});
      v.set_cr(3, rng.below(kRam) & ~0xfffull);
      break;
    case Variant::GarbageHandlers:
      // 64-bit interrupt gates (SDM Vol. 3A §6.14.1, Figure 6-8): selector 0x08, P=1,
      // DPL=0, type 0xE, IST 0, offset = a random RAM address.
      for (unsigned vec = 0; vec < 256; ++vec) {
        const uint64_t off = rng.below(kRam);
        const uint64_t lo = (off & 0xffff) | (0x08ull << 16) | (0x8eull << 40) |
                            (((off >> 16) & 0xffff) << 48);
        const uint64_t hi = off >> 32;
        mem.write_obj(Gpa(kIdtBase + vec * 16), lo);
        mem.write_obj(Gpa(kIdtBase + vec * 16 + 8), hi);
      }
      v.set_idtr(DescriptorTable{kIdtBase, 0xfff});
      break;
  }
  for (unsigned r = 0; r < 16; ++r) v.set_gpr(r, rng.one_in(2) ? rng.below(kRam) : rng.next());
  // Exception delivery pushes on RSP: keep it in RAM above the boot structures when the
  // variant wants delivery to work.
  if (variant == Variant::GarbageHandlers) v.set_gpr(4, 0x20000 + (rng.below(kRam - 0x20000) & ~0xfull));
  // Arithmetic flags and DF random; IF stays 0 (no interrupt source here).
  v.set_rflags(0x2 | (rng.next() & 0xcd5));
  v.set_rip(rng.one_in(8) ? rng.next() : rng.below(kRam));

  const Vcpu::RunResult rr = v.run(max_insns, Cycles(~0ull));
  Outcome o;
  o.reason = rr.reason;
  o.executed = rr.executed;
  for (unsigned r = 0; r < 16; ++r) o.gpr[r] = v.gpr(r);
  o.rip = v.rip();
  o.rflags = v.rflags();
  o.instructions = v.instructions();
  o.cycles = v.cycles().value();
  o.detail = v.stop_detail();
  o.dump = v.dump_state();
  o.ram_hash = XXH3_64bits(mem.host_ptr(Gpa(0), kRam), kRam);
  return o;
}

const char* reason_name(StopReason r) {
  switch (r) {
    case StopReason::None: return "None";
    case StopReason::InsnLimit: return "InsnLimit";
    case StopReason::Deadline: return "Deadline";
    case StopReason::Breakpoint: return "Breakpoint";
    case StopReason::Halted: return "Halted";
    case StopReason::VcpuFinished: return "VcpuFinished";
    case StopReason::VmExitRequested: return "VmExitRequested";
    case StopReason::Shutdown: return "Shutdown";
    case StopReason::IoError: return "IoError";
    case StopReason::Unsupported: return "Unsupported";
  }
  return "?";
}

}  // namespace

TEST_CASE("garbage guests end cleanly and deterministically", "[robustness]") {
  const uint64_t seeds = env_knob("PVSIM_ROBUST_SEEDS", 400);
  const uint64_t max_insns = env_knob("PVSIM_ROBUST_INSNS", 100000);
  uint64_t by_reason[16] = {};
  uint64_t total_insns = 0;
  for (uint64_t seed = 0; seed < seeds; ++seed) {
    INFO("seed " << seed << " (variant " << seed % kVariants << ")");
    const Outcome a = run_seed(seed, max_insns);
    INFO("stop " << reason_name(a.reason) << " after " << a.executed << ": " << a.detail);
    ++by_reason[static_cast<unsigned>(a.reason) & 15];
    total_insns += a.executed;

    const bool clean = a.reason == StopReason::InsnLimit || a.reason == StopReason::Halted ||
                       a.reason == StopReason::VcpuFinished ||
                       a.reason == StopReason::VmExitRequested ||
                       a.reason == StopReason::Shutdown || a.reason == StopReason::IoError;
    CHECK(clean);
    CHECK(a.executed <= max_insns);
    // run()'s budget counts exception deliveries as steps (core/cpu/core.cpp), so an
    // InsnLimit stop may retire fewer than max_insns; the retired count must still match.
    CHECK(a.instructions == a.executed);
    if (a.reason == StopReason::Shutdown || a.reason == StopReason::IoError)
      CHECK_FALSE(a.detail.empty());
    CHECK_FALSE(a.dump.empty());

    // Determinism: a second, independent run of the same seed.
    const Outcome b = run_seed(seed, max_insns);
    CHECK(static_cast<int>(a.reason) == static_cast<int>(b.reason));
    CHECK(a.executed == b.executed);
    CHECK(a.instructions == b.instructions);
    CHECK(a.cycles == b.cycles);
    CHECK(a.rip == b.rip);
    CHECK(a.rflags == b.rflags);
    CHECK(std::memcmp(a.gpr, b.gpr, sizeof a.gpr) == 0);
    CHECK(a.ram_hash == b.ram_hash);
    CHECK(a.detail == b.detail);
  }
  // The suite must actually exercise long runs and the fault paths, not only stop at
  // the first byte; a change that made every guest die immediately would hide bugs.
  WARN("stop reasons: InsnLimit=" << by_reason[1] << " Halted=" << by_reason[3]
                                  << " Finished=" << by_reason[4] << " Exit=" << by_reason[5]
                                  << " Shutdown=" << by_reason[6] << " IoError=" << by_reason[7]
                                  << "; instructions executed=" << total_insns);
  CHECK(by_reason[static_cast<unsigned>(StopReason::Shutdown)] > 0);
  CHECK(total_insns > seeds * 10);
}
