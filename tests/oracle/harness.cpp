// tests/oracle/harness.cpp — the differential rig: pvsim's Vcpu against Unicorn (QEMU TCG)
// for one instruction at a time.
//
// Speed: Unicorn 2.0.1 does not invalidate translated blocks on uc_mem_write, and its
// explicit invalidation (uc_ctl_remove_cache) costs ~0.4 ms. So a form's random
// encodings are laid out once in a pool of 32-byte slots (each followed by HLT so a
// translation block holds just the instruction under test), a fresh engine is opened
// per form, and each case only rewrites registers and data memory. One case then costs
// well under a microsecond in Unicorn.
//
// Oracle quirks (where Unicorn 2.0.1 is not the reference, each compensated in run_form):
//   1. POPCNT: CPUID.01H:ECX.POPCNT is masked for every CPU model, so POPCNT is #UD; the
//      expected result comes from a model (Reference::PopcntModel).
//   2. CMPXCHG r/m32 with equal operands writes RAX (zero-extending EAX) in Unicorn; the SDM
//      writes only the destination, so RAX is taken from the input.
//   3. SHLD/SHRD Ev,Gv,Ib with a RIP-relative operand: QEMU computes RIP without the
//      immediate byte; Unicorn's copy of the code gets disp32 + 1.
//   4. UC_MODE_16: reading EIP gives CS.base + EIP; IP is read instead.
//   5. REP string instructions: QEMU runs each iteration as its own pass over the
//      instruction, so Unicorn runs until the next instruction instead of for one count.
//
// Modes. A form runs in the code mode it names (form.h CpuMode):
//   Long64  scenarios/guest/boot.md's 64-bit state (long_mode.h), Unicorn UC_MODE_64.
//   Prot32  32-bit protected mode, paging off: CR0 = PE|ET, EFER = 0, CS.D = SS.B = 1,
//           every segment flat (base 0, limit 4 GiB); Unicorn UC_MODE_32 (its reset state:
//           CR0.PE, 32-bit CS and SS, segment bases 0).
//   Real16  real mode: CR0 = ET, CS = kRealCs, DS = ES = SS = FS = GS = kRealDs (bases
//           selector << 4, limits 64 KiB); Unicorn UC_MODE_16 with the same selectors.
// Outside 64-bit mode only EAX..EDI exist. pvsim's registers keep 64 bits, so the oracle
// fills their upper halves (and R8-R15) with random values: 32-bit code must neither see
// nor disturb them except as the SDM says (a 32-bit destination writes bits 63:32 as 0 in
// pvsim, architecturally undefined after a mode switch, so bits 63:32 of RAX..RDI are not
// compared; R8-R15 must come back unchanged). EIP/IP is compared as the linear address
// (pvsim's rip outside 64-bit mode is CS.base + EIP, core/cpu/core.h Core::cmode).
#include "tests/oracle/harness.h"

#include <unicorn/unicorn.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "core/guest_memory.h"
#include "core/trace.h"
#include "core/vcpu.h"
#include "tests/oracle/long_mode.h"

namespace pvsim::oracle {

namespace {

constexpr uint64_t kRamSize = 16ull << 20;
constexpr unsigned kPoolMax = 2048;
constexpr unsigned kMaxSamples = 3;

// SDM GPR numbering → Unicorn register ids.
constexpr int kUcGpr[16] = {
    UC_X86_REG_RAX, UC_X86_REG_RCX, UC_X86_REG_RDX, UC_X86_REG_RBX,
    UC_X86_REG_RSP, UC_X86_REG_RBP, UC_X86_REG_RSI, UC_X86_REG_RDI,
    UC_X86_REG_R8,  UC_X86_REG_R9,  UC_X86_REG_R10, UC_X86_REG_R11,
    UC_X86_REG_R12, UC_X86_REG_R13, UC_X86_REG_R14, UC_X86_REG_R15,
};
constexpr int kUcGpr32[8] = {
    UC_X86_REG_EAX, UC_X86_REG_ECX, UC_X86_REG_EDX, UC_X86_REG_EBX,
    UC_X86_REG_ESP, UC_X86_REG_EBP, UC_X86_REG_ESI, UC_X86_REG_EDI,
};
constexpr const char* kGprName[16] = {"RAX", "RCX", "RDX", "RBX", "RSP", "RBP", "RSI", "RDI",
                                      "R8",  "R9",  "R10", "R11", "R12", "R13", "R14", "R15"};

// The Vcpu state of each mode (see "Modes" above). Segment attributes in the VMX
// access-rights layout (long_mode.h): 0xc09b = 32-bit code, 0xc093 = 32-bit data, 4 KiB
// granularity; 0x9b / 0x93 = the real-mode code/data attributes (SDM Vol. 3A §9.1.1,
// Table 9-1).
void enter_mode(Vcpu& v, CpuMode m) {
  if (m == CpuMode::Long64) {
    enter_long_mode(v);
    return;
  }
  v.set_efer(0);
  v.set_cr(4, 0);
  v.set_cr(3, 0);
  v.set_cr(2, 0);
  v.set_cr(0, m == CpuMode::Prot32 ? 0x11 : 0x10);  // PE|ET, or ET alone (real mode)
  if (m == CpuMode::Prot32) {
    v.set_seg(SegReg::CS, SegmentCache{0x08, 0, 0xffffffff, 0xc09b});
    for (SegReg s : {SegReg::SS, SegReg::DS, SegReg::ES, SegReg::FS, SegReg::GS})
      v.set_seg(s, SegmentCache{0x10, 0, 0xffffffff, 0xc093});
    v.set_tr(SegmentCache{0x18, kTssBase, 0x67, kTss64BusyAttrs});
  } else {
    v.set_seg(SegReg::CS, SegmentCache{kRealCs, uint64_t{kRealCs} << 4, 0xffff, 0x9b});
    for (SegReg s : {SegReg::SS, SegReg::DS, SegReg::ES, SegReg::FS, SegReg::GS})
      v.set_seg(s, SegmentCache{kRealDs, uint64_t{kRealDs} << 4, 0xffff, 0x93});
    v.set_tr(SegmentCache{0, 0, 0xffff, 0x8b});
  }
  v.set_gdtr(DescriptorTable{kGdtBase, 0x27});
  // IDTR limit 0: an exception cannot be delivered and ends in a shutdown, which the
  // harness sees as the fault (DIV #DE, AAM 0).
  v.set_idtr(DescriptorTable{0, 0});
  v.set_rflags(0x2);
}

struct State {
  uint64_t gpr[16] = {};
  uint64_t rip = 0;
  uint64_t rflags = 0x2;
};

// Byte registers: without any REX prefix, encodings 4-7 name AH CH DH BH (bits 15:8 of
// RAX..RBX); with one they name SPL BPL SIL DIL (SDM Vol. 2A §3.7.2.1, Table 3-1).
uint64_t read_operand(const uint64_t* gpr, int r, unsigned bits, bool rex) {
  if (bits == 8 && !rex && r >= 4 && r < 8) return (gpr[r - 4] >> 8) & 0xff;
  return gpr[r] & width_mask(bits);
}
void write_operand(uint64_t* gpr, int r, unsigned bits, bool rex, uint64_t v) {
  if (bits == 8 && !rex && r >= 4 && r < 8) {
    gpr[r - 4] = (gpr[r - 4] & ~0xff00ull) | ((v & 0xff) << 8);
    return;
  }
  const uint64_t m = width_mask(bits);
  gpr[r] = (gpr[r] & ~m) | (v & m);
}

// Inverse of an odd number modulo 2^64 (Newton: each step doubles the correct bits).
uint64_t inverse_odd(uint64_t m) {
  uint64_t x = m;  // correct to 3 bits for odd m
  for (int i = 0; i < 5; ++i) x *= 2 - m * x;
  return x;
}

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

std::string hex64(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%016" PRIx64, v);
  return buf;
}

// #DE prediction for DIV/IDIV (SDM Vol. 2A DIV/IDIV "Operation"): divisor 0, or a
// quotient that does not fit the destination.
bool divide_faults(bool is_signed, unsigned w, uint64_t hi, uint64_t lo, uint64_t divisor) {
  const uint64_t m = width_mask(w);
  hi &= m;
  lo &= m;
  divisor &= m;
  if (divisor == 0) return true;
  using u128 = unsigned __int128;
  using i128 = __int128;
  const u128 dividend = (static_cast<u128>(hi) << w) | lo;  // 2w bits, w ≤ 64
  if (!is_signed) return dividend / divisor > m;
  auto sext = [](u128 v, unsigned bits) -> i128 {
    if (bits >= 128) return static_cast<i128>(v);
    const u128 sign = static_cast<u128>(1) << (bits - 1);
    return static_cast<i128>((v ^ sign) - sign);
  };
  const i128 n = sext(dividend, 2 * w);
  const i128 d = sext(divisor, w);
  const i128 min_w = -(static_cast<i128>(1) << (w - 1));
  const i128 max_w = (static_cast<i128>(1) << (w - 1)) - 1;
  if (w == 64 && d == -1) {
    // n / -1 = -n; the only C++ overflow is n = INT128_MIN, which faults anyway.
    const i128 int128_min = static_cast<i128>(static_cast<u128>(1) << 127);
    if (n == int128_min) return true;
  }
  const i128 q = n / d;  // C++ truncates toward zero, as IDIV does
  return q < min_w || q > max_w;
}

}  // namespace

uint64_t oracle_case_count() {
  if (const char* s = std::getenv("PVSIM_ORACLE_CASES")) {
    char* end = nullptr;
    const unsigned long long v = std::strtoull(s, &end, 10);
    if (end != s && *end == '\0' && v > 0) return v;
    std::fprintf(stderr, "PVSIM_ORACLE_CASES: expected a positive integer, got '%s'\n", s);
    std::exit(2);
  }
  return 100000;
}

uint64_t oracle_legacy_case_count() {
  if (const char* s = std::getenv("PVSIM_ORACLE_LEGACY_CASES")) {
    char* end = nullptr;
    const unsigned long long v = std::strtoull(s, &end, 10);
    if (end != s && *end == '\0' && v > 0) return v;
    std::fprintf(stderr, "PVSIM_ORACLE_LEGACY_CASES: expected a positive integer, got '%s'\n", s);
    std::exit(2);
  }
  return std::max<uint64_t>(oracle_case_count() / 4, 1);
}

uint64_t oracle_seed_for(const std::string& form_name) {
  uint64_t base = 0;
  if (const char* s = std::getenv("PVSIM_ORACLE_SEED")) base = std::strtoull(s, nullptr, 0);
  return fnv1a(form_name) ^ (base * 0x9e3779b97f4a7c15ull);
}

struct DiffRig::Impl {
  GuestMemory mem{kRamSize};
  NullEnv env;
  Tracer tracer;
  std::unique_ptr<Vcpu> vcpu;
  CpuMode mode = CpuMode::Long64;
  uint8_t* uc_data = nullptr;  // Unicorn's data window (uc_mem_map_ptr), page aligned

  Impl() {
    if (!write_boot_tables(mem)) throw std::runtime_error("oracle: boot tables do not fit RAM");
    uc_data = static_cast<uint8_t*>(std::aligned_alloc(4096, kDataSize));
    if (!uc_data) throw std::bad_alloc();
    reset_vcpu();
  }
  ~Impl() { std::free(uc_data); }

  void reset_vcpu() {
    vcpu.reset();
    VcpuConfig cfg;
    vcpu = std::make_unique<Vcpu>(cfg, mem, env, tracer);
    enter_mode(*vcpu, mode);
  }

  uint8_t* pv_data() { return mem.host_ptr(Gpa(layout_of(mode).data_base), kDataSize); }

  FormReport run_form(const Form& f, uint64_t seed, uint64_t cases);
};

DiffRig::DiffRig() : m_impl(std::make_unique<Impl>()) {}
DiffRig::~DiffRig() = default;
FormReport DiffRig::run_form(const Form& f, uint64_t seed, uint64_t cases) {
  return m_impl->run_form(f, seed, cases);
}

DiffRig& shared_rig() {
  static DiffRig rig;
  return rig;
}

namespace {

// One Unicorn engine for one form's code pool.
class UcEngine {
 public:
  UcEngine(CpuMode mode, const uint8_t* code, uint64_t code_size, uint8_t* data)
      : m_legacy(mode != CpuMode::Long64) {
    const ModeLayout lay = layout_of(mode);
    check(uc_open(UC_ARCH_X86,
                  mode == CpuMode::Long64 ? UC_MODE_64
                  : mode == CpuMode::Prot32 ? UC_MODE_32
                                            : UC_MODE_16,
                  &m_uc),
          "uc_open");
    // Haswell: has LZCNT/TZCNT/POPCNT (without ABM/BMI1 QEMU decodes F3 0F BC/BD as
    // BSF/BSR, which is what such CPUs do — not what we test).
    check(uc_ctl_set_cpu_model(m_uc, UC_CPU_X86_HASWELL), "uc_ctl_set_cpu_model");
    const uint64_t code_map = (code_size + 0xfff) & ~0xfffull;
    check(uc_mem_map(m_uc, lay.code_base, code_map, UC_PROT_READ | UC_PROT_EXEC),
          "uc_mem_map code");
    check(uc_mem_write(m_uc, lay.code_base, code, code_size), "uc_mem_write code");
    check(uc_mem_map_ptr(m_uc, lay.data_base, kDataSize, UC_PROT_READ | UC_PROT_WRITE, data),
          "uc_mem_map_ptr data");
    if (mode == CpuMode::Real16) {
      // Real-mode segment loads: base = selector << 4 (Unicorn's 16-bit register writes).
      uint64_t cs = kRealCs, ds = kRealDs;
      check(uc_reg_write(m_uc, UC_X86_REG_CS, &cs), "uc_reg_write CS");
      for (int r : {UC_X86_REG_DS, UC_X86_REG_ES, UC_X86_REG_SS, UC_X86_REG_FS, UC_X86_REG_GS})
        check(uc_reg_write(m_uc, r, &ds), "uc_reg_write data segment");
      m_cs_base = lay.code_seg_base;
    }
    // Exceptions (#DE from DIV/IDIV) arrive as UC_HOOK_INTR: record the vector and stop.
    // Without a hook Unicorn 2.0.1 returns UC_ERR_EXCEPTION and leaves the engine in a
    // state where the next faulting instruction is not reported.
    check(uc_hook_add(m_uc, &m_hook, UC_HOOK_INTR, reinterpret_cast<void*>(&on_interrupt), this,
                      1, 0),
          "uc_hook_add");
    // The exception bookkeeping QEMU keeps for #DF detection (old_exception) is only
    // cleared by a real IDT delivery, which the hook pre-empts: the second #DE would
    // come back as #DF and the third not at all. A context saved now and restored
    // after every fault resets it.
    check(uc_context_alloc(m_uc, &m_clean), "uc_context_alloc");
    check(uc_context_save(m_uc, m_clean), "uc_context_save");
    if (m_legacy) {
      for (int i = 0; i < 8; ++i) m_ids[i] = kUcGpr32[i];
      m_ids[8] = UC_X86_REG_EFLAGS;
      // Unicorn 2.0.1 quirk: in UC_MODE_16 a read of EIP returns CS.base + EIP; IP is the
      // offset itself (real-mode code never has EIP above 0xffff here).
      m_ids[9] = mode == CpuMode::Real16 ? UC_X86_REG_IP : UC_X86_REG_EIP;
    } else {
      for (int i = 0; i < 16; ++i) m_ids[i] = kUcGpr[i];
      m_ids[16] = UC_X86_REG_RFLAGS;
      m_ids[17] = UC_X86_REG_RIP;
    }
  }
  ~UcEngine() {
    uc_context_free(m_clean);
    uc_close(m_uc);
  }
  UcEngine(const UcEngine&) = delete;
  UcEngine& operator=(const UcEngine&) = delete;

  // Executes one instruction from `in`; returns UC_ERR_OK or the error Unicorn reported.
  // `vector` is the exception raised, or -1. `until` != 0: run until that address instead
  // of counting one instruction (QEMU runs each REP iteration as its own pass over the
  // instruction, so a count of 1 would stop after the first iteration).
  uc_err step(const State& in, State& out, int& vector, uint64_t until = 0) {
    m_vector = -1;
    uint64_t vals[18];
    void* ptrs[18];
    const int ngpr = m_legacy ? 8 : 16;
    for (int i = 0; i < ngpr; ++i) vals[i] = m_legacy ? in.gpr[i] & 0xffffffffu : in.gpr[i];
    vals[ngpr] = in.rflags;
    vals[ngpr + 1] = in.rip;
    for (int i = 0; i < ngpr + 2; ++i) ptrs[i] = &vals[i];
    // Outside 64-bit mode uc_emu_start sets the PC itself (a linear address; in 16-bit
    // mode Unicorn subtracts CS.base), so EIP is only read back.
    uc_reg_write_batch(m_uc, m_ids, ptrs, m_legacy ? ngpr + 1 : ngpr + 2);
    const uc_err err = until ? uc_emu_start(m_uc, in.rip, until, 0, 0)
                             : uc_emu_start(m_uc, in.rip, 0, 0, 1);
    uc_reg_read_batch(m_uc, m_ids, ptrs, ngpr + 2);
    for (int i = 0; i < 16; ++i) out.gpr[i] = in.gpr[i];
    for (int i = 0; i < ngpr; ++i)  // 32-bit reads fill only the low half of the slot
      out.gpr[i] = m_legacy ? (in.gpr[i] & ~0xffffffffull) | (vals[i] & 0xffffffffu) : vals[i];
    out.rflags = m_legacy ? vals[ngpr] & 0xffffffffu : vals[ngpr];
    out.rip = m_legacy ? (vals[ngpr + 1] & (m_cs_base ? 0xffffu : 0xffffffffu)) + m_cs_base
                       : vals[ngpr + 1];
    vector = m_vector;
    if (err != UC_ERR_OK || m_vector >= 0) uc_context_restore(m_uc, m_clean);
    return err;
  }

 private:
  static void check(uc_err e, const char* what) {
    if (e != UC_ERR_OK)
      throw std::runtime_error(std::string("oracle: ") + what + ": " + uc_strerror(e));
  }
  static void on_interrupt(uc_engine* uc, uint32_t intno, void* self) {
    static_cast<UcEngine*>(self)->m_vector = static_cast<int>(intno);
    uc_emu_stop(uc);
  }
  uc_engine* m_uc = nullptr;
  uc_hook m_hook = 0;
  uc_context* m_clean = nullptr;
  int m_vector = -1;
  bool m_legacy = false;
  uint64_t m_cs_base = 0;
  int m_ids[18];
};

bool is_count_rule(FlagRule r) {
  return r == FlagRule::ShlShr || r == FlagRule::Sar || r == FlagRule::Rotate ||
         r == FlagRule::DoubleShift;
}

}  // namespace

FormReport DiffRig::Impl::run_form(const Form& f, uint64_t seed, uint64_t cases) {
  FormReport rep;
  SplitMix64 rng(seed);
  const ModeLayout lay = layout_of(f.mode);
  const bool leg = f.mode != CpuMode::Long64;
  const uint64_t data_base = lay.data_base;
  if (f.mode != mode) {
    mode = f.mode;
    reset_vcpu();
  }

  // --- the code pool: distinct encodings, each in its own HLT-padded slot ---
  const unsigned pool_n = static_cast<unsigned>(std::min<uint64_t>(cases, kPoolMax));
  std::vector<Encoded> pool;
  pool.reserve(pool_n);
  std::vector<uint8_t> code(pool_n * kSlotSize, 0xf4);  // HLT
  for (unsigned i = 0; i < pool_n; ++i) {
    Encoded e;
    for (;;) {
      e = encode(f, rng, lay.code_base + i * kSlotSize);
      // A bit-offset register that also forms the address could not be both small and
      // an address: draw another encoding.
      if (f.special == Special::BitOffsetReg && f.mem && (e.reg == e.base || e.reg == e.index))
        continue;
      // The stack pointer cannot both point at the stack slot and form the operand's
      // address (and POP computes an ESP-based address after the increment, SDM POP).
      if (f.special == Special::Stack && f.mem && (e.base == 4 || e.index == 4)) continue;
      break;
    }
    std::memcpy(&code[i * kSlotSize], e.bytes, e.len);
    pool.push_back(e);
  }
  if (!mem.write(Gpa(lay.code_base), code.data(), code.size()))
    throw std::runtime_error("oracle: code pool outside RAM");
  std::vector<uint8_t> uc_code = code;
  const bool shxd_imm = f.ops == Operands::EGI && f.opcode.size() == 2 && f.opcode[0] == 0x0f &&
                        (f.opcode[1] == 0xa4 || f.opcode[1] == 0xac);
  if (shxd_imm) {  // quirk 3
    for (unsigned i = 0; i < pool_n; ++i) {
      if (!pool[i].rip_rel) continue;
      uint8_t* d = &uc_code[i * kSlotSize + pool[i].disp_offset];
      uint32_t disp;
      std::memcpy(&disp, d, 4);
      disp += 1;
      std::memcpy(d, &disp, 4);
    }
  }
  UcEngine uc(f.mode, uc_code.data(), uc_code.size(), uc_data);

  // Same random data window in both engines.
  for (uint64_t i = 0; i < kDataSize; i += 8) {
    const uint64_t v = rng.next();
    std::memcpy(uc_data + i, &v, 8);
  }
  mem.write(Gpa(data_base), uc_data, kDataSize);

  const unsigned w = f.opsize;
  // Address size and the segment base every data access adds (all data segments share it).
  const unsigned as = leg ? f.asize : (f.addr32 ? 32 : 64);
  const uint64_t amask = width_mask(as);
  const uint64_t seg_base = lay.data_seg_base;
  // The pool entry of the next case is chosen one case ahead and prefetched: a random
  // 2048-entry pool does not stay in cache next to Unicorn's working set.
  uint64_t next_idx = rng.below(pool_n);
  for (uint64_t n = 0; n < cases; ++n) {
    const Encoded& e = pool[next_idx];
    next_idx = rng.below(pool_n);
    __builtin_prefetch(&pool[next_idx]);
    State in;
    for (auto& g : in.gpr) g = edge_value(rng, rng.one_in(2) ? w : 64);
    // Random arithmetic flags; DF, IF, TF and the rest stay clear (bit 1 is always 1).
    in.rflags = 0x2 | (rng.next() & kArithFlags);
    in.rip = e.addr;
    // Linear range a string instruction may touch, written to both engines below.
    uint64_t str_lo = 0, str_hi = 0;

    // --- operand constraints (before the address, which must win) ---
    uint64_t divisor = 0;
    if (f.special == Special::CountCl) {
      in.gpr[1] = (in.gpr[1] & ~0xffull) | count_value(rng, w);
    } else if (f.special == Special::Div || f.special == Special::Idiv) {
      const unsigned dw = f.rm_bits;
      const uint64_t m = width_mask(dw);
      divisor = edge_value(rng, dw) & m;
      if (divisor == 0 && !rng.one_in(8)) divisor = (rng.next() & m) | 1;
      uint64_t lo = edge_value(rng, dw) & m, hi;
      if (rng.one_in(8)) {
        hi = rng.next() & m;  // mostly #DE: exercises the fault path of both
      } else if (f.special == Special::Div) {
        hi = divisor ? rng.next() % divisor : 0;
      } else {
        hi = (lo >> (dw - 1)) ? m : 0;  // sign-extended dividend: fits unless MIN / -1
      }
      if (dw == 8) {
        in.gpr[0] = (in.gpr[0] & ~0xffffull) | (hi << 8) | lo;
      } else {
        write_operand(in.gpr, 0, dw, true, lo);
        write_operand(in.gpr, 2, dw, true, hi);
      }
      if (!f.mem) write_operand(in.gpr, e.rm, dw, e.rex, divisor);
    } else if (f.special == Special::Stack) {
      // rSP inside the window; SS.B decides ESP or SP (real mode: the bits above SP stay
      // random and must not matter, SDM Vol. 1 §6.2.3).
      const uint64_t sp = data_base + 64 + rng.below(kDataSize - 128) - seg_base;
      const uint64_t spm = f.mode == CpuMode::Real16 ? 0xffff : 0xffffffff;
      in.gpr[4] = (in.gpr[4] & ~spm) | sp;
    } else if (f.special == Special::String) {
      // rSI / rDI (address-size wide) inside the window with room for 16 elements either
      // way; rCX small for REP; DF random (SDM Vol. 1 §7.3.9).
      const uint64_t si = data_base + 128 + rng.below(kDataSize - 256);
      const uint64_t di = data_base + 128 + rng.below(kDataSize - 256);
      in.gpr[6] = (in.gpr[6] & ~amask) | (si - seg_base);
      in.gpr[7] = (in.gpr[7] & ~amask) | (di - seg_base);
      if (f.rep) in.gpr[1] = (in.gpr[1] & ~amask) | (rng.one_in(8) ? 0 : rng.below(17));
      if (rng.one_in(2)) in.rflags |= 0x400;  // DF
      str_lo = data_base + 64;
      str_hi = data_base + kDataSize - 64;
      // Make REPE CMPS / SCAS run on: equal elements around rDI (a copy of the bytes around
      // rSI, or the accumulator repeated) for a random stretch.
      const bool cmps = (f.opcode[0] & 0xfe) == 0xa6, scas = (f.opcode[0] & 0xfe) == 0xae;
      if (f.rep && (cmps || scas) && rng.one_in(2)) {
        const unsigned bytes = w / 8;
        const unsigned n_el = static_cast<unsigned>(rng.below(17));
        const bool down = in.rflags & 0x400;
        for (unsigned k = 0; k < n_el; ++k) {
          const uint64_t k_off = static_cast<uint64_t>(k) * bytes;
          const uint64_t d = down ? di - k_off : di + k_off;
          const uint64_t src = down ? si - k_off : si + k_off;
          for (unsigned i = 0; i < bytes; ++i)
            uc_data[d + i - data_base] =
                cmps ? uc_data[src + i - data_base] : static_cast<uint8_t>(in.gpr[0] >> (8 * i));
        }
        mem.write(Gpa(data_base), uc_data, kDataSize);
      }
    } else if (f.special == Special::BitOffsetReg && f.mem) {
      const int64_t off = static_cast<int64_t>(rng.below(2 * 8 * 1024)) - 8 * 1024;  // bits
      in.gpr[e.reg] = (rng.next() & ~width_mask(f.reg_bits)) |
                      (static_cast<uint64_t>(off) & width_mask(f.reg_bits));
    }

    // --- the effective address: solve base/index values so it lands in the window ---
    uint64_t ea = 0;
    if (f.mem) {
      uint64_t target;
      if (f.special == Special::BitOffsetReg) target = data_base + 3 * 1024 + rng.below(2048);
      else if (rng.one_in(4)) target = data_base + 0x1000 - rng.below(16);  // page crossing
      else target = data_base + 64 + rng.below(kDataSize - 128);
      const bool narrow = as < 64;  // registers above the address size hold random bits
      const uint64_t disp = static_cast<uint64_t>(e.disp);
      // The solver works on the offset within the segment.
      target -= seg_base;
      if (e.rip_rel || e.absolute) {
        target = e.fixed_ea - seg_base;
      } else if (e.base < 0) {
        // [index*scale + disp32]: disp is the window's middle, the index a small offset.
        const int64_t k = static_cast<int64_t>(rng.below(256)) - 128;
        uint64_t idx = static_cast<uint64_t>(k);
        if (narrow) idx = (rng.next() & ~amask) | (idx & amask);
        in.gpr[e.index] = idx;
        target = (disp + static_cast<uint64_t>(k) * e.scale) & amask;
      } else if (e.index == e.base) {
        // base*(scale+1) + disp = target; scale+1 is odd except for scale 1.
        const uint64_t mult = e.scale + 1;
        uint64_t rhs = target - disp;
        uint64_t v;
        if (mult & 1) {
          v = rhs * inverse_odd(mult);
        } else {
          target -= rhs & 1;
          rhs = target - disp;
          v = ((rhs & amask) >> 1) | (rng.one_in(2) ? (amask ^ (amask >> 1)) : 0);
        }
        if (narrow) v = (rng.next() & ~amask) | (v & amask);
        in.gpr[e.base] = v;
      } else {
        uint64_t idx = 0;
        if (e.index >= 0) {
          idx = edge_value(rng, 64);
          in.gpr[e.index] = idx;
        }
        uint64_t b = target - idx * e.scale - disp;
        if (narrow) b = (rng.next() & ~amask) | (b & amask);
        in.gpr[e.base] = b;
      }
      // Recompute from the final registers (SDM Vol. 1 §3.7.5) as a self-check; the
      // segment base is added after the address-size truncation (SDM Vol. 3A §3.4).
      uint64_t calc = e.rip_rel ? e.addr + e.len + disp : disp;
      if (e.base >= 0) calc += in.gpr[e.base];
      if (e.index >= 0) calc += in.gpr[e.index] * e.scale;
      ea = seg_base + (calc & amask);
      if (!f.lea && (ea < data_base || ea + 16 > data_base + kDataSize)) {
        ++rep.mismatches;
        if (rep.samples.size() < kMaxSamples)
          rep.samples.push_back("[" + f.name + "] harness bug: EA " + hex64(ea) +
                                " outside the data window, bytes " + hex_bytes(e.bytes, e.len));
        continue;
      }
      if (!f.lea) {
        uint8_t buf[16];
        const uint64_t v = edge_value(rng, f.rm_bits);
        std::memcpy(buf, &v, 8);
        const uint64_t r2 = rng.next();
        std::memcpy(buf + 8, &r2, 8);
        if (f.special == Special::Div || f.special == Special::Idiv)
          std::memcpy(buf, &divisor, f.rm_bits / 8);
        if (f.special == Special::Cmpxchg && rng.one_in(3)) std::memcpy(buf, &in.gpr[0], 8);
        std::memcpy(uc_data + (ea - data_base), buf, 16);
        mem.write(Gpa(ea), buf, 16);
      }
    } else if (f.special == Special::Cmpxchg && rng.one_in(3)) {
      write_operand(in.gpr, e.rm, f.rm_bits, e.rex, in.gpr[0]);
    }

    // --- what is undefined for this input ---
    auto rm_value = [&]() -> uint64_t {
      if (!f.mem) return read_operand(in.gpr, e.rm, f.rm_bits, e.rex);
      uint64_t v = 0;
      std::memcpy(&v, uc_data + (ea - data_base), 8);
      return v & width_mask(f.rm_bits);
    };
    unsigned raw_count = 0;
    if (f.special == Special::CountCl) raw_count = in.gpr[1] & 0xff;
    else if (f.imm_kind == ImmKind::Count) raw_count = static_cast<unsigned>(e.imm & 0xff);
    else if (is_count_rule(f.flags)) raw_count = 1;  // the D0/D1 "by 1" forms
    const Undefined undef =
        undefined_for(f.flags, w, raw_count, f.flags == FlagRule::BitScan ? rm_value() : 1);

    bool expect_fault = false;
    if (f.special == Special::Div || f.special == Special::Idiv) {
      const unsigned dw = f.rm_bits;
      const uint64_t hi = dw == 8 ? (in.gpr[0] >> 8) & 0xff : in.gpr[2];
      const uint64_t lo = in.gpr[0];
      expect_fault = divide_faults(f.special == Special::Idiv, dw, hi, lo, rm_value());
    }
    if (f.special == Special::Aam) expect_fault = (e.imm & 0xff) == 0;  // SDM AAM: #DE

    // Quirk 2 needs the comparison outcome, decided from the inputs.
    // (Not when the destination is EAX itself: then DEST := SRC does write RAX.)
    const bool cmpxchg32_equal = f.special == Special::Cmpxchg && f.rm_bits == 32 &&
                                 (f.mem || e.rm != 0) &&
                                 (in.gpr[0] & 0xffffffffu) == rm_value();
    const uint64_t popcnt_src = f.reference == Reference::PopcntModel ? rm_value() : 0;

    // Input snapshot for the report (memory operand bytes before execution).
    uint8_t mem_before[16] = {};
    if (f.mem && !f.lea) std::memcpy(mem_before, uc_data + (ea - data_base), 16);

    // --- pvsim ---
    Vcpu& v = *vcpu;
    for (unsigned r = 0; r < 16; ++r) v.set_gpr(r, in.gpr[r]);
    v.set_rflags(in.rflags);
    v.set_rip(in.rip);
    Vcpu::RunResult pr = v.step();
    // A REP string instruction may stop between iterations with RIP still on it (the
    // documented progress, core/cpu/insn.h Handler); step on until it completes. rCX is
    // at most 16, so more than 64 steps means pvsim is stuck.
    for (int k = 0; f.rep && k < 64 && pr.reason == StopReason::InsnLimit && v.rip() == e.addr; ++k)
      pr = v.step();
    State pv;
    for (unsigned r = 0; r < 16; ++r) pv.gpr[r] = v.gpr(r);
    pv.rflags = v.rflags();
    pv.rip = v.rip();
    const bool pv_fault = pr.reason != StopReason::InsnLimit;
    std::string pv_detail = pv_fault ? v.stop_detail() : std::string();

    // --- Unicorn ---
    State uo;
    int uvec = -1;
    uc_err uerr = UC_ERR_OK;
    if (f.reference == Reference::PopcntModel) {  // quirk 1
      uo = in;
      uo.rip = e.addr + e.len;
      write_operand(uo.gpr, e.reg, w, true, static_cast<uint64_t>(__builtin_popcountll(popcnt_src)));
      if (w == 32) uo.gpr[e.reg] &= 0xffffffffu;  // 32-bit destinations zero-extend
      uo.rflags = (in.rflags & ~kArithFlags) | (popcnt_src == 0 ? kZF : 0);
    } else {
      uerr = uc.step(in, uo, uvec, f.rep ? e.addr + e.len : 0);
      if (cmpxchg32_equal && uerr == UC_ERR_OK && uvec < 0) uo.gpr[0] = in.gpr[0];  // quirk 2
    }
    const bool uc_fault = uerr != UC_ERR_OK || uvec >= 0;

    ++rep.cases;
    std::string diff;
    if (expect_fault || pv_fault || uc_fault) {
      if (expect_fault && pv_fault && uvec == 0 && uerr == UC_ERR_OK) {
        ++rep.expected_faults;
      } else {
        diff += "  fault: predicted=" + std::string(expect_fault ? "#DE" : "none") +
                " unicorn=" + (uvec >= 0 ? "vector " + std::to_string(uvec)
                                          : uc_fault ? std::string(uc_strerror(uerr)) : "none") +
                " pvsim=" + (pv_fault ? "stop(" + std::to_string(static_cast<int>(pr.reason)) +
                                            "): " + pv_detail
                                      : std::string("none")) +
                "\n";
      }
      if (pv_fault) reset_vcpu();  // a shut-down vCPU is rebuilt, not reused
      // Memory is unchanged by a faulting instruction in both; resync regardless.
      mem.write(Gpa(data_base), uc_data, kDataSize);
    } else {
      uint64_t dest_mask = 0;  // register bits excluded because the result is undefined
      if (undef.dest) dest_mask = w == 32 ? ~0ull : width_mask(w);
      const int dest_reg = undef.dest ? (f.ops == Operands::GE ? e.reg : (f.mem ? -1 : e.rm)) : -1;
      for (int r = 0; r < 16; ++r) {
        uint64_t cmp = r == dest_reg ? ~dest_mask : ~0ull;
        if (leg && r < 8) cmp &= 0xffffffffu;  // see "Modes"
        if ((pv.gpr[r] ^ uo.gpr[r]) & cmp)
          diff += std::string("  ") + kGprName[r] + ": unicorn=" + hex64(uo.gpr[r]) +
                  " pvsim=" + hex64(pv.gpr[r]) + "\n";
      }
      const uint64_t fcmp = ~undef.flags;
      if ((pv.rflags ^ uo.rflags) & fcmp)
        diff += "  RFLAGS: unicorn=" + hex64(uo.rflags) + " pvsim=" + hex64(pv.rflags) +
                " (compared bits " + hex64(fcmp & 0x3fffff) + ")\n";
      if (pv.rip != uo.rip)
        diff += "  RIP: unicorn=" + hex64(uo.rip) + " pvsim=" + hex64(pv.rip) + "\n";
      if (uo.rip != e.addr + e.len)
        diff += "  harness: unicorn RIP " + hex64(uo.rip) + " != encoder length end " +
                hex64(e.addr + e.len) + "\n";
      if (undef.dest && f.mem && f.ops != Operands::GE)  // undefined memory destination
        mem.write(Gpa(ea), uc_data + (ea - data_base), w / 8);
      const uint8_t* pvd = pv_data();
      if (std::memcmp(pvd, uc_data, kDataSize) != 0) {
        uint64_t first = 0, last = 0;
        bool any = false;
        for (uint64_t i = 0; i < kDataSize; ++i)
          if (pvd[i] != uc_data[i]) {
            if (!any) first = i;
            last = i;
            any = true;
          }
        const unsigned span = static_cast<unsigned>(std::min<uint64_t>(last - first + 1, 16));
        diff += "  memory differs at " + hex64(data_base + first) + ".." +
                hex64(data_base + last) + ": unicorn=" + hex_bytes(uc_data + first, span) +
                " pvsim=" + hex_bytes(pvd + first, span) + "\n";
        mem.write(Gpa(data_base), uc_data, kDataSize);  // resync to the reference
      }
    }

    if (!diff.empty()) {
      ++rep.mismatches;
      if (rep.samples.size() < kMaxSamples) {
        std::string s = "[" + f.name + "] seed=" + hex64(seed) + " case=" + std::to_string(n) +
                        " bytes=" + hex_bytes(e.bytes, e.len) + " at " + hex64(e.addr) + "\n";
        s += "  in:";
        for (int r = 0; r < 16; ++r) s += std::string(" ") + kGprName[r] + "=" + hex64(in.gpr[r]);
        s += " RFLAGS=" + hex64(in.rflags) + "\n";
        if (f.mem && !f.lea) s += "  mem[" + hex64(ea) + "]=" + hex_bytes(mem_before, 16) + "\n";
        if (f.special == Special::String)
          s += "  string window " + hex64(str_lo) + ".." + hex64(str_hi) +
               " (rSI/rDI/rCX above; the window is reproducible from the seed)\n";
        s += diff;
        rep.samples.push_back(std::move(s));
      }
    }
  }
  return rep;
}

}  // namespace pvsim::oracle
