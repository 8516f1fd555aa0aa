// pvmsr/hypercalls.cpp — KVM's hypercall interface, host side (see hypercalls.h).
#include "pvmsr/hypercalls.h"

#include <algorithm>
#include <cstring>

namespace pvsim {

namespace {
constexpr unsigned kRax = 0, kRcx = 1, kRdx = 2, kRbx = 3, kRsi = 6;
constexpr uint64_t kLow32 = 0xffffffffull;
constexpr uint8_t kGpVector = 13;

// ICR fields (arch/x86/include/asm/apicdef.h) that kvm_pv_send_ipi looks at.
constexpr uint64_t kApicDestLogical = 0x800;   // APIC_DEST_MASK: destination mode
constexpr uint64_t kApicShortMask = 0xc0000;   // APIC_SHORT_MASK: destination shorthand
constexpr uint64_t kApicVectorMask = 0xff;     // APIC_VECTOR_MASK
constexpr uint64_t kApicModeMask = 0x700;      // APIC_MODE_MASK: delivery mode
constexpr uint64_t kApicIntAssert = 0x4000;    // APIC_INT_ASSERT: level
constexpr uint64_t kApicLevelTrig = 0x8000;    // APIC_INT_LEVELTRIG: trigger mode

// The three bytes each vendor's patch_hypercall writes (vmx_patch_hypercall,
// svm_patch_hypercall).
constexpr uint8_t kVmcall[3] = {0x0f, 0x01, 0xc1};
constexpr uint8_t kVmmcall[3] = {0x0f, 0x01, 0xd9};
}  // namespace

HypercallRegs hypercall_truncate(const HypercallRegs& r, bool op_64_bit) {
  if (op_64_bit) return r;
  return HypercallRegs{r.nr & kLow32, r.a0 & kLow32, r.a1 & kLow32, r.a2 & kLow32, r.a3 & kLow32};
}

uint64_t hypercall_ret(int64_t ret, bool op_64_bit) {
  const uint64_t v = static_cast<uint64_t>(ret);
  return op_64_bit ? v : (v & kLow32);
}

Hypercalls::Hypercalls(const HypercallConfig& cfg, GuestMemory& mem, Tracer& tracer,
                       HypercallHost& host)
    : m_cfg(cfg),
      m_mem(mem),
      m_tracer(tracer),
      m_host(host),
      m_native(cfg.amd ? HypercallInsn::Vmmcall : HypercallInsn::Vmcall) {}

void Hypercalls::attach(Vcpu& v) {
  v.set_hypercall_handler([this](Vcpu& vc, HypercallInsn insn) { return handle(vc, insn); },
                          m_native);
}

uint64_t Hypercalls::calls_total() const {
  uint64_t n = m_calls_other;
  for (uint64_t c : m_calls) n += c;
  return n;
}

HypercallResult Hypercalls::handle(Vcpu& v, HypercallInsn insn) {
  if (insn != m_native) return wrong_instruction(v, insn);
  // ____kvm_emulate_hypercall: the trace shows the registers before the 32-bit truncation.
  const HypercallRegs raw{v.gpr(kRax), v.gpr(kRbx), v.gpr(kRcx), v.gpr(kRdx), v.gpr(kRsi)};
  m_tracer.kvm_hypercall(v.now(), v.index(), raw.nr, raw.a0, raw.a1, raw.a2, raw.a3);
  const bool op_64_bit = v.long_mode_64();
  const HypercallRegs r = hypercall_truncate(raw, op_64_bit);
  if (r.nr <= kvm_hc::kMax)
    ++m_calls[r.nr];
  else
    ++m_calls_other;
  const int64_t ret = v.cpl() != 0 ? -kvm_err::kEperm : dispatch(v, r, op_64_bit);
  v.set_gpr(kRax, hypercall_ret(ret, op_64_bit));
  return HypercallResult{HypercallAction::Done, {}};
}

int64_t Hypercalls::dispatch(Vcpu& v, const HypercallRegs& r, bool op_64_bit) {
  const unsigned src = v.index();
  switch (r.nr) {
    case kvm_hc::kVapicPollIrq:
      return 0;
    case kvm_hc::kKickCpu:
      if (!pv_has(kFeatureKickCpu)) return -kvm_err::kEnosys;
      // kvm_pv_kick_cpu_op takes the APIC ID as an int (the low 32 bits of a1);
      // kvm_sched_yield compares all of a1 with the map's largest APIC ID.
      if (m_cfg.irqchip_in_kernel) m_host.hc_kick(src, static_cast<uint32_t>(r.a1));
      sched_yield(src, r.a1);
      return 0;
    case kvm_hc::kClockPairing:
      return clock_pairing(src, r.a0, r.a1);
    case kvm_hc::kSendIpi:
      if (!pv_has(kFeatureSendIpi)) return -kvm_err::kEnosys;
      // `min` is a u32 parameter of kvm_pv_send_ipi: a2's low 32 bits, in any mode.
      return send_ipi(src, r.a0, r.a1, static_cast<uint32_t>(r.a2), r.a3, op_64_bit);
    case kvm_hc::kSchedYield:
      if (!pv_has(kFeatureSchedYield)) return -kvm_err::kEnosys;
      sched_yield(src, r.a0);
      return 0;
    case kvm_hc::kMapGpaRange: {
      if (!m_cfg.map_gpa_range_exit) return -kvm_err::kEnosys;
      const uint64_t gpa = r.a0, npages = r.a1;
      const uint64_t gfn = gpa >> kPageShift;
      if ((gpa & (kPageSize - 1)) != 0 || npages == 0 || gfn + npages <= gfn)
        return -kvm_err::kEinval;
      // KVM_EXIT_HYPERCALL: the VMM's answer comes back through complete_hypercall_exit.
      return m_cfg.map_gpa_range_ret;
    }
    default:  // 2 MMU_OP (removed), 3 FEATURES (never implemented on x86) and the rest
      return -kvm_err::kEnosys;
  }
}

// kvm_pv_send_ipi / __pv_send_ipi (lapic.c).
int64_t Hypercalls::send_ipi(unsigned src, uint64_t low, uint64_t high, uint32_t min,
                             uint64_t icr, bool op_64_bit) {
  if (icr & (kApicDestLogical | kApicShortMask)) return -kvm_err::kEinval;
  if (!m_cfg.irqchip_in_kernel) return -kvm_err::kEopnotsupp;  // no APIC map (-EOPNOTSUPP)
  const uint32_t icr_low =
      static_cast<uint32_t>(icr & (kApicVectorMask | kApicModeMask | kApicIntAssert | kApicLevelTrig));
  // The second bitmap starts one "cluster" later: 64 APIC IDs, 32 outside 64-bit mode,
  // where each bitmap register holds only 32 bits. The addition is u32 arithmetic: it
  // wraps, so a `min` just below 2^32 sends the high bitmap to APIC IDs near 0.
  int count = send_ipi_half(src, low, min, icr_low);
  count += send_ipi_half(src, high, min + (op_64_bit ? 64u : 32u), icr_low);
  return count;
}

int Hypercalls::send_ipi_half(unsigned src, uint64_t bitmap, uint32_t min, uint32_t icr_low) {
  // KVM walks bits 0 .. min(63, max_apic_id - min) and skips empty phys_map slots, so an
  // ID beyond the largest one in the VM, or one no vCPU has, receives nothing: the host
  // answers -1 for those. No ID past 2^32 - 1 exists (min + i never wraps in KVM, where
  // min <= max_apic_id is checked first).
  int count = 0;
  for (unsigned i = 0; i < 64; ++i) {
    if (!((bitmap >> i) & 1)) continue;
    const uint64_t id = static_cast<uint64_t>(min) + i;
    if (id > kLow32) break;
    const int r = m_host.hc_deliver_ipi(src, static_cast<uint32_t>(id), icr_low);
    if (r > 0) count += r;
  }
  return count;
}

// kvm_sched_yield: the target is the phys_map entry for dest_id, which is compared whole
// (an unsigned long) with the map's largest APIC ID, so an ID past 32 bits finds nobody.
void Hypercalls::sched_yield(unsigned src, uint64_t dest_id) {
  if (!m_cfg.irqchip_in_kernel || dest_id > kLow32) return;
  m_host.hc_sched_yield(src, static_cast<uint32_t>(dest_id));
}

// kvm_pv_clock_pairing (x86.c, CONFIG_X86_64).
int64_t Hypercalls::clock_pairing(unsigned vcpu, uint64_t gpa, uint64_t clock_type) {
  if (clock_type != 0) return -kvm_err::kEopnotsupp;  // only KVM_CLOCK_PAIRING_WALLCLOCK
  KvmClockPairing cp{};
  if (!m_host.hc_clock_pairing(vcpu, cp.sec, cp.nsec, cp.tsc)) return -kvm_err::kEopnotsupp;
  // kvm_write_guest: one page at a time; a page outside guest RAM (or in MMIO space, which
  // is not a memslot) ends it with -EFAULT after the pages before it were written.
  uint8_t bytes[sizeof cp];
  std::memcpy(bytes, &cp, sizeof cp);
  uint64_t done = 0;
  while (done < sizeof cp) {
    const uint64_t at = gpa + done;
    const uint64_t n = std::min<uint64_t>(sizeof cp - done, kPageSize - (at & (kPageSize - 1)));
    if (at < gpa || !m_mem.write(Gpa(at), bytes + done, n)) return -kvm_err::kEfault;
    done += n;
  }
  return 0;
}

// The other vendor's instruction: #UD, intercepted, and handed to KVM's emulator
// (handle_ud, EMULTYPE_TRAP_UD). Both are EmulateOnUD in emulate.c's opcode table; VMCALL
// is also Priv, so at CPL > 0 the emulator answers #GP(0) before em_hypercall runs.
// em_hypercall -> emulator_fix_hypercall: without the quirk, #UD; with it, the native
// instruction's 3 bytes are written at RIP (emulator_write_emulated: the guest's page
// tables, the guest's permissions, a fault goes to the guest) and RIP stays, so the guest
// executes the rewritten instruction next.
HypercallResult Hypercalls::wrong_instruction(Vcpu& v, HypercallInsn insn) {
  if (insn == HypercallInsn::Vmcall && v.cpl() != 0) {
    ++m_refused;
    return HypercallResult{HypercallAction::Inject, GuestException{kGpVector, true, 0, 0}};
  }
  if (!m_cfg.fix_hypercall_insn) {
    ++m_refused;
    return HypercallResult{HypercallAction::Ud, {}};
  }
  const uint8_t* bytes = m_native == HypercallInsn::Vmcall ? kVmcall : kVmmcall;
  GuestException fault;
  switch (v.write_linear(v.rip(), bytes, 3, fault)) {
    case LinearAccess::Ok:
      ++m_rewrites;
      return HypercallResult{HypercallAction::Retry, {}};
    case LinearAccess::Fault:
      return HypercallResult{HypercallAction::Inject, fault};
    case LinearAccess::Stopped:
      break;  // the vCPU stopped (the core looks at that first)
  }
  return HypercallResult{HypercallAction::Retry, {}};
}

}  // namespace pvsim
