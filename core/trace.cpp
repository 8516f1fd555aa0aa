// core/trace.cpp — canonical trace text, XXH3-64 hash and JSON Lines (see core/trace.h).
//
// Line shape (trace-cmd report, with the vCPU index in the [cpu] column and virtual time):
//   CPU <i>/KVM-<i> [<i, 3 digits>] <sec>.<ns, 9 digits>: <event>: <text>\n
//
// TP_printk formats reproduced (checked against arch/x86/kvm/trace.h of Linux 6.x; the
// text below is ours, the formats are facts about KVM's output):
//   kvm_exit          "vcpu %u reason %s rip 0x%lx info1 0x%016llx info2 0x%016llx
//                      intr_info 0x%08x error_code 0x%08x"   (VMX names, isa = VMX)
//   kvm_entry         "vcpu %u, rip 0x%lx"                   (immediate_exit never set)
//   kvm_msr           "msr_{read|write} %x = 0x%llx" + " (#GP)" when it faulted
//   kvm_cpuid         "func %x idx %x rax %lx rbx %lx rcx %lx rdx %lx, cpuid entry
//                      {found|not found}" + ", used max basic"
//   kvm_pio           "pio_{read|write} at 0x%x size %d count %d val 0x%x %s" where %s is
//                      "(...)" when count > 1 and "" otherwise. NOTE: KVM's format has a
//                      space before that %s, so a single-element access ends in a trailing
//                      space ("... val 0x68 "). We keep it for byte-exact KVM output.
//   kvm_inj_exception "#XX" (kvm_trace_sym_exc: DE DB BP OF BR UD NM DF TS NP SS GP PF MF
//                      AC MC; any other vector prints as __print_symbolic's fallback
//                      "0x%lx") + " (0x%x)" only when has_error + " [reinjected]"
//   kvm_page_fault    "vcpu %u rip 0x%lx address 0x%016llx error_code 0x%llx"
//   kvm_hypercall     "nr 0x%lx a0 0x%lx a1 0x%lx a2 0x%lx a3 0x%lx"
//   kvm_apic          "apic_{read|write} %s = 0x%llx" with the register's symbolic name
//                      (kvm_trace_symbol_apic; unknown offsets print as 0x%x)
//   kvm_apic_ipi      "dst %x vec %u (%s|%s|%s|%s|%s)": delivery mode, dest mode,
//                      assert/de-assert, trigger, shorthand
//   kvm_apic_accept_irq "apicid %x vec %u (%s|%s)": delivery mode from dm >> 8, trigger
//   kvm_eoi           "apicid %x vector %d"
//   kvm_inj_virq      "{IRQ|Soft/INTn} 0x%x" + " [reinjected]"
//   kvm_pv_tlb_flush  "vcpu %u need_flush_tlb %s" (true/false)
//   kvm_pv_eoi        "apicid %x vector %d"
//   kvm_pvclock_update "vcpu_id %u, pvclock { version %u, tsc_timestamp 0x%llx,
//                      system_time 0x%llx, tsc_to_system_mul 0x%x, tsc_shift %d, flags 0x%x }"
//   kvm_try_async_get_page, kvm_async_pf_repeated_fault (the 2.6.38-3.x name:
//   kvm_async_pf_doublefault)
//                     "gva = %#llx, gfn = %#llx"
//   kvm_async_pf_not_present, kvm_async_pf_ready
//                     "token %#llx gva %#llx"
//   kvm_async_pf_completed "gva %#llx address %#lx" (3.13+; the seed era added " pfn %#llx",
//                      a host page frame pvsim has no model of)
//   ('%#llx' is "0" for zero and "0x..." otherwise: the alternate form adds no prefix to 0.)
// pvsim events (no upstream tracepoint, hence the prefix):
//   pvsim_exception   "vector 0x%x (#XX) error_code 0x%x rip 0x%lx cr2 0x%lx"; the
//                      " error_code ..." part only when the exception pushes one
//   pvsim_inj_nmi     "NMI"
//   pvsim_vcpu        "<what>: <detail>" (detail omitted when empty)
//   pvsim_sched_out   "vcpu %u pcpu %u rip 0x%lx <why> until <seconds>"
//   pvsim_sched_in    "vcpu %u pcpu %u rip 0x%lx run_delay %lu" (cumulative ns)
//   pvsim_apf, pvsim_host, pvsim_steal, pvsim_pv_eoi, pvsim_action
//                     "<what>: <detail>" (detail omitted when empty)
//   pvsim_stop        "reason <word>: <detail>" (detail omitted when empty; its line
//                      breaks become "; ")
#include "core/trace.h"

#include <fmt/format.h>
#include <xxhash.h>

#include <ostream>

namespace pvsim {

struct Tracer::HashState {
  XXH3_state_t* state = nullptr;
};

const char* vmx_exit_reason_name(VmxExitReason r) {
  // Names as in VMX_EXIT_REASONS (arch/x86/include/uapi/asm/vmx.h).
  switch (r) {
    case VmxExitReason::ExceptionNmi: return "EXCEPTION_NMI";
    case VmxExitReason::ExternalInterrupt: return "EXTERNAL_INTERRUPT";
    case VmxExitReason::TripleFault: return "TRIPLE_FAULT";
    case VmxExitReason::InitSignal: return "INIT_SIGNAL";
    case VmxExitReason::Sipi: return "SIPI_SIGNAL";
    case VmxExitReason::InterruptWindow: return "INTERRUPT_WINDOW";
    case VmxExitReason::NmiWindow: return "NMI_WINDOW";
    case VmxExitReason::Cpuid: return "CPUID";
    case VmxExitReason::Hlt: return "HLT";
    case VmxExitReason::Invlpg: return "INVLPG";
    case VmxExitReason::Rdtsc: return "RDTSC";
    case VmxExitReason::Vmcall: return "VMCALL";
    case VmxExitReason::CrAccess: return "CR_ACCESS";
    case VmxExitReason::IoInstruction: return "IO_INSTRUCTION";
    case VmxExitReason::MsrRead: return "MSR_READ";
    case VmxExitReason::MsrWrite: return "MSR_WRITE";
    case VmxExitReason::PauseInstruction: return "PAUSE_INSTRUCTION";
    case VmxExitReason::ApicAccess: return "APIC_ACCESS";
    case VmxExitReason::EptViolation: return "EPT_VIOLATION";
    case VmxExitReason::Rdtscp: return "RDTSCP";
  }
  return "UNKNOWN";
}

namespace {

// kvm_trace_sym_exc: the exceptions KVM names; nullptr → printed as a hex number.
const char* exception_mnemonic(uint8_t vector) {
  switch (vector) {
    case 0: return "#DE";
    case 1: return "#DB";
    case 3: return "#BP";
    case 4: return "#OF";
    case 5: return "#BR";
    case 6: return "#UD";
    case 7: return "#NM";
    case 8: return "#DF";
    case 10: return "#TS";
    case 11: return "#NP";
    case 12: return "#SS";
    case 13: return "#GP";
    case 14: return "#PF";
    case 16: return "#MF";
    case 17: return "#AC";
    case 18: return "#MC";
    default: return nullptr;
  }
}

void append_exception_name(std::string& out, uint8_t vector) {
  if (const char* n = exception_mnemonic(vector)) out += n;
  else fmt::format_to(std::back_inserter(out), "0x{:x}", vector);
}

// JSON string body escaping (RFC 8259 §7): quote, backslash and control characters.
void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (u < 0x20) fmt::format_to(std::back_inserter(out), "\\u{:04x}", u);
        else out += c;
    }
  }
  out += '"';
}

}  // namespace

Tracer::Tracer() : m_hash(new HashState) {
  m_hash->state = XXH3_createState();
  XXH3_64bits_reset(m_hash->state);
}

Tracer::~Tracer() {
  XXH3_freeState(m_hash->state);
  delete m_hash;
}

uint64_t Tracer::hash() const { return XXH3_64bits_digest(m_hash->state); }

Tracer::Snapshot Tracer::save() const {
  Snapshot s;
  std::shared_ptr<XXH3_state_t> h(XXH3_createState(), [](XXH3_state_t* p) { XXH3_freeState(p); });
  XXH3_copyState(h.get(), m_hash->state);
  s.hash = std::move(h);
  s.count = m_count;
  s.bytes = m_bytes;
  return s;
}

void Tracer::restore(const Snapshot& s) {
  XXH3_copyState(m_hash->state, static_cast<const XXH3_state_t*>(s.hash.get()));
  m_count = s.count;
  m_bytes = s.bytes;
}

std::string Tracer::seconds(Tick t) {
  return fmt::format("{}.{:09}", t.value() / 1'000'000'000u, t.value() % 1'000'000'000u);
}

void Tracer::emit(Tick ts, unsigned vcpu, std::string_view event, std::string_view text,
                  std::initializer_list<TraceField> fields) {
  const uint64_t ns = ts.value();
  m_line.clear();
  auto out = std::back_inserter(m_line);
  fmt::format_to(out, "CPU {}/KVM-{} [{:03}] {}.{:09}: ", vcpu, vcpu, vcpu, ns / 1'000'000'000u,
                 ns % 1'000'000'000u);
  const size_t body = m_line.size();
  fmt::format_to(out, "{}: {}\n", event, text);
  XXH3_64bits_update(m_hash->state, m_line.data(), m_line.size());
  ++m_count;
  m_bytes += m_line.size();
  if (m_text) m_text->write(m_line.data(), static_cast<std::streamsize>(m_line.size()));
  // Observers may emit nothing (emit() is not re-entrant: m_line is shared).
  for (TraceObserver* o : m_observers) o->on_trace_line(vcpu, m_line, body);
  if (!m_jsonl) return;

  // Fixed key order: ts_ns, vcpu, event, then the event's fields in declaration order.
  m_line.clear();
  fmt::format_to(out, "{{\"ts_ns\":{},\"vcpu\":{},\"event\":", ns, vcpu);
  append_json_string(m_line, event);
  for (const TraceField& f : fields) {
    m_line += ',';
    append_json_string(m_line, f.name);
    m_line += ':';
    switch (f.kind) {
      case TraceField::Kind::U64: fmt::format_to(out, "{}", f.u); break;
      case TraceField::Kind::I64: fmt::format_to(out, "{}", static_cast<int64_t>(f.u)); break;
      case TraceField::Kind::Bool: m_line += f.u ? "true" : "false"; break;
      case TraceField::Kind::Str: append_json_string(m_line, f.s); break;
    }
  }
  m_line += "}\n";
  m_jsonl->write(m_line.data(), static_cast<std::streamsize>(m_line.size()));
}

// The typed events format into a local buffer first, because emit() reuses m_line.

void Tracer::kvm_exit(Tick ts, unsigned vcpu, VmxExitReason reason, uint64_t rip, uint64_t info1,
                      uint64_t info2, uint32_t intr_info, uint32_t error_code) {
  const char* name = vmx_exit_reason_name(reason);
  auto text = fmt::format(
      "vcpu {} reason {} rip 0x{:x} info1 0x{:016x} info2 0x{:016x} intr_info 0x{:08x} "
      "error_code 0x{:08x}",
      vcpu, name, rip, info1, info2, intr_info, error_code);
  emit(ts, vcpu, "kvm_exit", text,
       {TraceField::u64("exit_reason", static_cast<uint32_t>(reason)),
        TraceField::str("reason", name), TraceField::u64("guest_rip", rip),
        TraceField::u64("info1", info1), TraceField::u64("info2", info2),
        TraceField::u64("intr_info", intr_info), TraceField::u64("error_code", error_code)});
}

void Tracer::kvm_entry(Tick ts, unsigned vcpu, uint64_t rip) {
  auto text = fmt::format("vcpu {}, rip 0x{:x}", vcpu, rip);
  emit(ts, vcpu, "kvm_entry", text, {TraceField::u64("rip", rip)});
}

void Tracer::kvm_msr(Tick ts, unsigned vcpu, bool write, uint32_t ecx, uint64_t data,
                     bool exception) {
  auto text = fmt::format("msr_{} {:x} = 0x{:x}{}", write ? "write" : "read", ecx, data,
                          exception ? " (#GP)" : "");
  emit(ts, vcpu, "kvm_msr", text,
       {TraceField::boolean("write", write), TraceField::u64("ecx", ecx),
        TraceField::u64("data", data), TraceField::boolean("exception", exception)});
}

void Tracer::kvm_cpuid(Tick ts, unsigned vcpu, uint32_t function, uint32_t index, uint64_t rax,
                       uint64_t rbx, uint64_t rcx, uint64_t rdx, bool found,
                       bool used_max_basic) {
  auto text = fmt::format("func {:x} idx {:x} rax {:x} rbx {:x} rcx {:x} rdx {:x}, cpuid entry {}{}",
                          function, index, rax, rbx, rcx, rdx, found ? "found" : "not found",
                          used_max_basic ? ", used max basic" : "");
  emit(ts, vcpu, "kvm_cpuid", text,
       {TraceField::u64("function", function), TraceField::u64("index", index),
        TraceField::u64("rax", rax), TraceField::u64("rbx", rbx), TraceField::u64("rcx", rcx),
        TraceField::u64("rdx", rdx), TraceField::boolean("found", found),
        TraceField::boolean("used_max_basic", used_max_basic)});
}

void Tracer::kvm_pio(Tick ts, unsigned vcpu, bool write, uint16_t port, unsigned size,
                     unsigned count, uint32_t val) {
  auto text = fmt::format("pio_{} at 0x{:x} size {} count {} val 0x{:x} {}",
                          write ? "write" : "read", port, size, count, val,
                          count > 1 ? "(...)" : "");
  emit(ts, vcpu, "kvm_pio", text,
       {TraceField::boolean("rw", write), TraceField::u64("port", port),
        TraceField::u64("size", size), TraceField::u64("count", count),
        TraceField::u64("val", val)});
}

void Tracer::kvm_inj_exception(Tick ts, unsigned vcpu, uint8_t vector, bool has_error,
                               uint32_t error_code, bool reinjected) {
  std::string text;
  append_exception_name(text, vector);
  if (has_error) fmt::format_to(std::back_inserter(text), " (0x{:x})", error_code);
  if (reinjected) text += " [reinjected]";
  emit(ts, vcpu, "kvm_inj_exception", text,
       {TraceField::u64("exception", vector), TraceField::boolean("has_error", has_error),
        TraceField::u64("error_code", error_code), TraceField::boolean("reinjected", reinjected)});
}

void Tracer::kvm_page_fault(Tick ts, unsigned vcpu, uint64_t rip, uint64_t address,
                            uint64_t error_code) {
  auto text = fmt::format("vcpu {} rip 0x{:x} address 0x{:016x} error_code 0x{:x}", vcpu, rip,
                          address, error_code);
  emit(ts, vcpu, "kvm_page_fault", text,
       {TraceField::u64("guest_rip", rip), TraceField::u64("fault_address", address),
        TraceField::u64("error_code", error_code)});
}

void Tracer::kvm_hypercall(Tick ts, unsigned vcpu, uint64_t nr, uint64_t a0, uint64_t a1,
                           uint64_t a2, uint64_t a3) {
  auto text = fmt::format("nr 0x{:x} a0 0x{:x} a1 0x{:x} a2 0x{:x} a3 0x{:x}", nr, a0, a1, a2, a3);
  emit(ts, vcpu, "kvm_hypercall", text,
       {TraceField::u64("nr", nr), TraceField::u64("a0", a0), TraceField::u64("a1", a1),
        TraceField::u64("a2", a2), TraceField::u64("a3", a3)});
}

void Tracer::pvsim_exception(Tick ts, unsigned vcpu, uint8_t vector, bool has_error,
                             uint32_t error_code, uint64_t rip, uint64_t cr2) {
  std::string text = fmt::format("vector 0x{:x} (", vector);
  append_exception_name(text, vector);
  text += ')';
  if (has_error) fmt::format_to(std::back_inserter(text), " error_code 0x{:x}", error_code);
  fmt::format_to(std::back_inserter(text), " rip 0x{:x} cr2 0x{:x}", rip, cr2);
  emit(ts, vcpu, "pvsim_exception", text,
       {TraceField::u64("vector", vector), TraceField::boolean("has_error", has_error),
        TraceField::u64("error_code", error_code), TraceField::u64("rip", rip),
        TraceField::u64("cr2", cr2)});
}

void Tracer::pvsim_stop(Tick ts, unsigned vcpu, std::string_view reason,
                        std::string_view detail) {
  // A detail may span lines (a register dump); the canonical trace is one line per
  // event, so line breaks become "; " and trailing ones are dropped.
  std::string text = fmt::format("reason {}", reason);
  while (!detail.empty() && (detail.back() == '\n' || detail.back() == ' ')) detail.remove_suffix(1);
  if (!detail.empty()) {
    text += ": ";
    for (char c : detail) {
      if (c == '\n') text += "; ";
      else text += c;
    }
  }
  emit(ts, vcpu, "pvsim_stop", text,
       {TraceField::str("reason", reason), TraceField::str("detail", detail)});
}

namespace {
// Register names as KVM's kvm_trace_symbol_apic prints them (arch/x86/kvm/trace.h).
const char* apic_reg_name(uint32_t reg) {
  switch (reg) {
    case 0x20: return "APIC_ID";
    case 0x30: return "APIC_LVR";
    case 0x80: return "APIC_TASKPRI";
    case 0x90: return "APIC_ARBPRI";
    case 0xa0: return "APIC_PROCPRI";
    case 0xb0: return "APIC_EOI";
    case 0xc0: return "APIC_RRR";
    case 0xd0: return "APIC_LDR";
    case 0xe0: return "APIC_DFR";
    case 0xf0: return "APIC_SPIV";
    case 0x100: return "APIC_ISR";
    case 0x180: return "APIC_TMR";
    case 0x200: return "APIC_IRR";
    case 0x280: return "APIC_ESR";
    case 0x300: return "APIC_ICR";
    case 0x310: return "APIC_ICR2";
    case 0x320: return "APIC_LVTT";
    case 0x330: return "APIC_LVTTHMR";
    case 0x340: return "APIC_LVTPC";
    case 0x350: return "APIC_LVT0";
    case 0x360: return "APIC_LVT1";
    case 0x370: return "APIC_LVTERR";
    case 0x380: return "APIC_TMICT";
    case 0x390: return "APIC_TMCCT";
    case 0x3e0: return "APIC_TDCR";
    case 0x3f0: return "APIC_SELF_IPI";
    default: return nullptr;
  }
}
const char* const kDeliveryModeNames[8] = {"Fixed", "LowPrio", "SMI", "Res3",
                                           "NMI",   "INIT",    "SIPI", "ExtINT"};
const char* const kShorthandNames[4] = {"dst", "self", "all", "all-but-self"};
}  // namespace

void Tracer::kvm_apic(Tick ts, unsigned vcpu, bool write, uint32_t reg, uint64_t val) {
  std::string text = fmt::format("apic_{} ", write ? "write" : "read");
  if (const char* n = apic_reg_name(reg)) text += n;
  else fmt::format_to(std::back_inserter(text), "0x{:x}", reg);
  fmt::format_to(std::back_inserter(text), " = 0x{:x}", val);
  emit(ts, vcpu, "kvm_apic", text,
       {TraceField::boolean("rw", write), TraceField::u64("reg", reg), TraceField::u64("val", val)});
}

void Tracer::kvm_apic_ipi(Tick ts, unsigned vcpu, uint32_t icr_low, uint32_t dest_id) {
  auto text = fmt::format("dst {:x} vec {} ({}|{}|{}|{}|{})", dest_id, icr_low & 0xff,
                          kDeliveryModeNames[(icr_low >> 8) & 7],
                          (icr_low & (1u << 11)) ? "logical" : "physical",
                          (icr_low & (1u << 14)) ? "assert" : "de-assert",
                          (icr_low & (1u << 15)) ? "level" : "edge",
                          kShorthandNames[(icr_low >> 18) & 3]);
  emit(ts, vcpu, "kvm_apic_ipi", text,
       {TraceField::u64("icr_low", icr_low), TraceField::u64("dest_id", dest_id)});
}

void Tracer::kvm_apic_accept_irq(Tick ts, unsigned vcpu, uint32_t apicid, uint16_t dm,
                                 uint16_t tm, uint8_t vec) {
  auto text = fmt::format("apicid {:x} vec {} ({}|{})", apicid, vec, kDeliveryModeNames[(dm >> 8) & 7],
                          tm ? "level" : "edge");
  emit(ts, vcpu, "kvm_apic_accept_irq", text,
       {TraceField::u64("apicid", apicid), TraceField::u64("dm", dm), TraceField::u64("tm", tm),
        TraceField::u64("vec", vec)});
}

void Tracer::kvm_eoi(Tick ts, unsigned vcpu, uint32_t apicid, int vector) {
  auto text = fmt::format("apicid {:x} vector {}", apicid, vector);
  emit(ts, vcpu, "kvm_eoi", text,
       {TraceField::u64("apicid", apicid), TraceField::i64("vector", vector)});
}

void Tracer::kvm_pv_tlb_flush(Tick ts, unsigned vcpu, bool need_flush_tlb) {
  auto text = fmt::format("vcpu {} need_flush_tlb {}", vcpu, need_flush_tlb ? "true" : "false");
  emit(ts, vcpu, "kvm_pv_tlb_flush", text,
       {TraceField::u64("vcpu_id", vcpu), TraceField::boolean("need_flush_tlb", need_flush_tlb)});
}

void Tracer::kvm_pv_eoi(Tick ts, unsigned vcpu, uint32_t apicid, int vector) {
  auto text = fmt::format("apicid {:x} vector {}", apicid, vector);
  emit(ts, vcpu, "kvm_pv_eoi", text,
       {TraceField::u64("apicid", apicid), TraceField::i64("vector", vector)});
}

void Tracer::kvm_inj_virq(Tick ts, unsigned vcpu, unsigned vector, bool soft, bool reinjected) {
  auto text = fmt::format("{} 0x{:x}{}", soft ? "Soft/INTn" : "IRQ", vector,
                          reinjected ? " [reinjected]" : "");
  emit(ts, vcpu, "kvm_inj_virq", text,
       {TraceField::u64("vector", vector), TraceField::boolean("soft", soft),
        TraceField::boolean("reinjected", reinjected)});
}

void Tracer::kvm_pvclock_update(Tick ts, unsigned vcpu, uint32_t version, uint64_t tsc_timestamp,
                                uint64_t system_time, uint32_t tsc_to_system_mul,
                                int8_t tsc_shift, uint8_t flags) {
  auto text = fmt::format(
      "vcpu_id {}, pvclock {{ version {}, tsc_timestamp 0x{:x}, system_time 0x{:x}, "
      "tsc_to_system_mul 0x{:x}, tsc_shift {}, flags 0x{:x} }}",
      vcpu, version, tsc_timestamp, system_time, tsc_to_system_mul, static_cast<int>(tsc_shift),
      static_cast<unsigned>(flags));
  emit(ts, vcpu, "kvm_pvclock_update", text,
       {TraceField::u64("vcpu_id", vcpu), TraceField::u64("version", version),
        TraceField::u64("tsc_timestamp", tsc_timestamp), TraceField::u64("system_time", system_time),
        TraceField::u64("tsc_to_system_mul", tsc_to_system_mul),
        TraceField::i64("tsc_shift", tsc_shift), TraceField::u64("flags", flags)});
}

void Tracer::pvsim_inj_nmi(Tick ts, unsigned vcpu) {
  emit(ts, vcpu, "pvsim_inj_nmi", "NMI", {});
}

// The pvsim_ events that are a short word and a detail: "<what>: <detail>" (detail omitted
// when empty), JSON fields "what" and "detail".
void Tracer::what_detail(Tick ts, unsigned vcpu, std::string_view event, std::string_view what,
                         std::string_view detail) {
  std::string text(what);
  if (!detail.empty()) {
    text += ": ";
    text += detail;
  }
  emit(ts, vcpu, event, text, {TraceField::str("what", what), TraceField::str("detail", detail)});
}

void Tracer::pvsim_vcpu(Tick ts, unsigned vcpu, std::string_view what, std::string_view detail) {
  what_detail(ts, vcpu, "pvsim_vcpu", what, detail);
}

namespace {
// printf's "%#llx": the alternate form prefixes "0x" to non-zero values only.
std::string alt_hex(uint64_t v) { return v ? fmt::format("0x{:x}", v) : std::string("0"); }
}  // namespace

// KVM's event classes: kvm_async_get_page_class ("gva = %#llx, gfn = %#llx") and
// kvm_async_pf_nopresent_ready ("token %#llx gva %#llx"), one emitter each.
void Tracer::async_get_page_class(Tick ts, unsigned vcpu, std::string_view event, uint64_t gva, uint64_t gfn) {
  emit(ts, vcpu, event, fmt::format("gva = {}, gfn = {}", alt_hex(gva), alt_hex(gfn)),
       {TraceField::u64("gva", gva), TraceField::u64("gfn", gfn)});
}

void Tracer::async_pf_nopresent_ready(Tick ts, unsigned vcpu, std::string_view event, uint64_t token,
                                      uint64_t gva) {
  emit(ts, vcpu, event, fmt::format("token {} gva {}", alt_hex(token), alt_hex(gva)),
       {TraceField::u64("token", token), TraceField::u64("gva", gva)});
}

void Tracer::kvm_try_async_get_page(Tick ts, unsigned vcpu, uint64_t gva, uint64_t gfn) {
  async_get_page_class(ts, vcpu, "kvm_try_async_get_page", gva, gfn);
}

void Tracer::kvm_async_pf_repeated_fault(Tick ts, unsigned vcpu, uint64_t gva, uint64_t gfn) {
  async_get_page_class(ts, vcpu, "kvm_async_pf_repeated_fault", gva, gfn);
}

void Tracer::kvm_async_pf_doublefault(Tick ts, unsigned vcpu, uint64_t gva, uint64_t gfn) {
  async_get_page_class(ts, vcpu, "kvm_async_pf_doublefault", gva, gfn);
}

void Tracer::kvm_async_pf_not_present(Tick ts, unsigned vcpu, uint64_t token, uint64_t gva) {
  async_pf_nopresent_ready(ts, vcpu, "kvm_async_pf_not_present", token, gva);
}

void Tracer::kvm_async_pf_ready(Tick ts, unsigned vcpu, uint64_t token, uint64_t gva) {
  async_pf_nopresent_ready(ts, vcpu, "kvm_async_pf_ready", token, gva);
}

void Tracer::kvm_async_pf_completed(Tick ts, unsigned vcpu, uint64_t address, uint64_t gva) {
  auto text = fmt::format("gva {} address {}", alt_hex(gva), alt_hex(address));
  emit(ts, vcpu, "kvm_async_pf_completed", text,
       {TraceField::u64("address", address), TraceField::u64("gva", gva)});
}

void Tracer::pvsim_apf(Tick ts, unsigned vcpu, std::string_view what, std::string_view detail) {
  what_detail(ts, vcpu, "pvsim_apf", what, detail);
}

void Tracer::pvsim_host(Tick ts, unsigned vcpu, std::string_view what, std::string_view detail) {
  what_detail(ts, vcpu, "pvsim_host", what, detail);
}

void Tracer::pvsim_sched_out(Tick ts, unsigned vcpu, unsigned pcpu, uint64_t rip, std::string_view why,
                             Tick until) {
  auto text = fmt::format("vcpu {} pcpu {} rip 0x{:x} {} until {}", vcpu, pcpu, rip, why, seconds(until));
  emit(ts, vcpu, "pvsim_sched_out", text,
       {TraceField::u64("pcpu", pcpu), TraceField::u64("rip", rip), TraceField::str("why", why),
        TraceField::u64("until_ns", until.value())});
}

void Tracer::pvsim_sched_in(Tick ts, unsigned vcpu, unsigned pcpu, uint64_t rip, uint64_t run_delay_ns) {
  auto text = fmt::format("vcpu {} pcpu {} rip 0x{:x} run_delay {}", vcpu, pcpu, rip, run_delay_ns);
  emit(ts, vcpu, "pvsim_sched_in", text,
       {TraceField::u64("pcpu", pcpu), TraceField::u64("rip", rip), TraceField::u64("run_delay_ns", run_delay_ns)});
}

void Tracer::pvsim_steal(Tick ts, unsigned vcpu, std::string_view what, std::string_view detail) {
  what_detail(ts, vcpu, "pvsim_steal", what, detail);
}

void Tracer::pvsim_pv_eoi(Tick ts, unsigned vcpu, std::string_view what, std::string_view detail) {
  what_detail(ts, vcpu, "pvsim_pv_eoi", what, detail);
}

void Tracer::pvsim_action(Tick ts, unsigned vcpu, std::string_view point, std::string_view action) {
  what_detail(ts, vcpu, "pvsim_action", point, action);
}

}  // namespace pvsim
