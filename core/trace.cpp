// core/trace.cpp — the Tracer: canonical text, XXH3-64 hash, observers and sinks (see
// core/trace.h). What each event prints comes from its description in the event table
// (core/trace_events.cpp); the typed methods below only put their arguments in the table's
// field order.
//
// Line shape (trace-cmd report, with the vCPU index in the [cpu] column and virtual time):
//   CPU <i>/KVM-<i> [<i, 3 digits>] <sec>.<ns, 9 digits>: <event>: <text>\n
#include "core/trace.h"

#include <fmt/format.h>
#include <xxhash.h>

#include <algorithm>
#include <ostream>

namespace pvsim {

namespace id = trace_ids;

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

// ---- the text and JSON Lines sinks ---------------------------------------------------------

void TraceTextSink::on_event(const TraceRecord& r) {
  if (m_os) m_os->write(r.line.data(), static_cast<std::streamsize>(r.line.size()));
}

void TraceJsonlSink::on_event(const TraceRecord& r) {
  if (!m_os) return;
  m_buf.clear();
  trace_render_json(r.ts, r.vcpu, *r.desc, r.values, m_buf);
  m_buf += '\n';
  m_os->write(m_buf.data(), static_cast<std::streamsize>(m_buf.size()));
}

void TraceTimeOrderSink::on_event(const TraceRecord& r) {
  Rec rec{r.index, r.ts.value(), r.vcpu, r.desc, static_cast<uint32_t>(m_values.size()), r.body, std::string(r.line)};
  for (const TraceValue& v : r.values) {
    TraceValue c = v;
    if (!v.s.empty()) c.s = m_strings.emplace_back(v.s);
    m_values.push_back(c);
  }
  m_recs.push_back(std::move(rec));
}

void TraceTimeOrderSink::on_finish() {
  // Emission order breaks ties: the records arrived in it, and the sort is stable.
  std::stable_sort(m_recs.begin(), m_recs.end(), [](const Rec& a, const Rec& b) { return a.ts < b.ts; });
  for (const Rec& rec : m_recs) {
    TraceRecord r;
    r.index = rec.index;
    r.ts = Tick(rec.ts);
    r.vcpu = rec.vcpu;
    r.desc = rec.desc;
    r.values = std::span<const TraceValue>(m_values).subspan(rec.values, rec.desc->fields.size());
    r.line = rec.line;
    r.body = rec.body;
    for (TraceSink* s : m_next) s->on_event(r);
  }
  m_recs.clear();
  m_values.clear();
  m_strings.clear();
  for (TraceSink* s : m_next) s->on_finish();
}

// ---- the Tracer ---------------------------------------------------------------------------

Tracer::Tracer() : m_hash(new HashState) {
  m_hash->state = XXH3_createState();
  XXH3_64bits_reset(m_hash->state);
}

Tracer::~Tracer() {
  // No finish() here: a sink may be gone already (declared after its Tracer), and the run's
  // last event, pvsim_stop, has finished the sinks of every run.
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
  // The sinks keep their marks: events up to them are not given again.
}

std::string Tracer::seconds(Tick t) {
  return fmt::format("{}.{:09}", t.value() / 1'000'000'000u, t.value() % 1'000'000'000u);
}

// The built-in outputs come first, then add_sink's. A built-in whose stream changed starts
// at the next event; the others keep their marks.
void Tracer::rewire() {
  const auto mark_of = [this](TraceSink* s) {
    for (const Slot& x : m_slots)
      if (x.sink == s) return x.mark;
    return m_count;
  };
  std::vector<Slot> slots;
  const bool text = m_text.stream() != nullptr, jsonl = m_jsonl.stream() != nullptr;
  if (m_time_order && (text || jsonl)) {
    if (!m_order) {
      std::vector<TraceSink*> next;
      if (text) next.push_back(&m_text);
      if (jsonl) next.push_back(&m_jsonl);
      m_order = std::make_unique<TraceTimeOrderSink>(std::move(next));
    }
    slots.push_back({m_order.get(), true, mark_of(m_order.get())});
  } else {
    if (text) slots.push_back({&m_text, true, mark_of(&m_text)});
    if (jsonl) slots.push_back({&m_jsonl, true, mark_of(&m_jsonl)});
  }
  for (Slot& u : m_user) {
    u.mark = mark_of(u.sink);
    slots.push_back(u);
  }
  m_slots = std::move(slots);
}

void Tracer::set_text_output(std::ostream* os) {
  // A new stream is a new sink: drop the old slot so that it starts at the next event.
  std::erase_if(m_slots, [this](const Slot& s) { return s.sink == &m_text; });
  m_text.set_stream(os);
  m_order.reset();
  rewire();
}

void Tracer::set_jsonl_output(std::ostream* os) {
  std::erase_if(m_slots, [this](const Slot& s) { return s.sink == &m_jsonl; });
  m_jsonl.set_stream(os);
  m_order.reset();
  rewire();
}

void Tracer::add_sink(TraceSink* s, bool filtered) {
  remove_sink(s);
  m_user.push_back({s, filtered, m_count});
  rewire();
}

void Tracer::remove_sink(TraceSink* s) {
  std::erase_if(m_user, [s](const Slot& x) { return x.sink == s; });
  std::erase_if(m_slots, [s](const Slot& x) { return x.sink == s; });
}

void Tracer::set_event_filter(std::vector<bool> on) {
  if (!on.empty()) on.resize(trace_event_table().size(), false);
  m_filter = std::move(on);
}

void Tracer::set_time_order(bool on) {
  m_time_order = on;
  rewire();
}

void Tracer::finish() {
  if (m_finished) return;
  m_finished = true;
  for (const Slot& s : m_slots) s.sink->on_finish();
}

void Tracer::emit_event(uint16_t event, Tick ts, unsigned vcpu, std::span<const TraceValue> values) {
  const TraceEventDesc& d = trace_event_table()[event];
  m_line.clear();
  const size_t body = trace_render_line(ts, vcpu, d, values, m_line);
  XXH3_64bits_update(m_hash->state, m_line.data(), m_line.size());
  const uint64_t index = m_count++;
  m_bytes += m_line.size();
  // Observers and sinks may emit nothing (emit_event is not re-entrant: m_line is shared).
  for (TraceObserver* o : m_observers) o->on_trace_line(vcpu, m_line, body);
  if (m_slots.empty()) return;
  TraceRecord r;
  r.index = index;
  r.ts = ts;
  r.vcpu = vcpu;
  r.desc = &d;
  r.values = values;
  r.line = m_line;
  r.body = body;
  const bool selected = m_filter.empty() || m_filter[event];
  for (Slot& s : m_slots) {
    if (index < s.mark) continue;  // given before a restore
    s.mark = index + 1;
    if (selected || !s.filtered) s.sink->on_event(r);
  }
}

void Tracer::emit(Tick ts, unsigned vcpu, std::string_view event, std::string_view text,
                  std::initializer_list<TraceField> fields) {
  m_line.clear();
  trace_render_head(ts, vcpu, m_line);
  const size_t body = m_line.size();
  m_line += event;
  m_line += ": ";
  m_line += text;
  m_line += '\n';
  XXH3_64bits_update(m_hash->state, m_line.data(), m_line.size());
  ++m_count;
  m_bytes += m_line.size();
  for (TraceObserver* o : m_observers) o->on_trace_line(vcpu, m_line, body);
  if (std::ostream* os = m_text.stream()) os->write(m_line.data(), static_cast<std::streamsize>(m_line.size()));
  std::ostream* js = m_jsonl.stream();
  if (!js) return;
  m_json.clear();
  fmt::format_to(std::back_inserter(m_json), "{{\"ts_ns\":{},\"vcpu\":{},\"event\":", ts.value(), vcpu);
  trace_append_json_string(m_json, event);
  for (const TraceField& f : fields) {
    m_json += ',';
    trace_append_json_string(m_json, f.name);
    m_json += ':';
    switch (f.kind) {
      case TraceField::Kind::U64: fmt::format_to(std::back_inserter(m_json), "{}", f.u); break;
      case TraceField::Kind::I64: fmt::format_to(std::back_inserter(m_json), "{}", static_cast<int64_t>(f.u)); break;
      case TraceField::Kind::Bool: m_json += f.u ? "true" : "false"; break;
      case TraceField::Kind::Str: trace_append_json_string(m_json, f.s); break;
    }
  }
  m_json += "}\n";
  js->write(m_json.data(), static_cast<std::streamsize>(m_json.size()));
}

// ---- the typed events: arguments in table order ---------------------------------------------

namespace {
constexpr uint64_t sext(int64_t v) { return static_cast<uint64_t>(v); }
constexpr uint64_t b(bool v) { return v ? 1 : 0; }
TraceValue str(std::string_view s) { return {0, s}; }
}  // namespace

void Tracer::kvm_exit(Tick ts, unsigned vcpu, VmxExitReason reason, uint64_t rip, uint64_t info1,
                      uint64_t info2, uint32_t intr_info, uint32_t error_code) {
  // isa = KVM_ISA_VMX (1).
  const TraceValue v[] = {{static_cast<uint32_t>(reason)}, {rip}, {1}, {info1}, {info2}, {intr_info}, {error_code}, {vcpu}};
  emit_event(id::kvm_exit, ts, vcpu, v);
}

void Tracer::kvm_entry(Tick ts, unsigned vcpu, uint64_t rip) {
  const TraceValue v[] = {{vcpu}, {rip}, {0}};
  emit_event(id::kvm_entry, ts, vcpu, v);
}

void Tracer::kvm_msr(Tick ts, unsigned vcpu, bool write, uint32_t ecx, uint64_t data, bool exception) {
  const TraceValue v[] = {{b(write)}, {ecx}, {data}, {b(exception)}};
  emit_event(id::kvm_msr, ts, vcpu, v);
}

void Tracer::kvm_cpuid(Tick ts, unsigned vcpu, uint32_t function, uint32_t index, uint64_t rax, uint64_t rbx,
                       uint64_t rcx, uint64_t rdx, bool found, bool used_max_basic) {
  const TraceValue v[] = {{function}, {index}, {rax}, {rbx}, {rcx}, {rdx}, {b(found)}, {b(used_max_basic)}};
  emit_event(id::kvm_cpuid, ts, vcpu, v);
}

void Tracer::kvm_pio(Tick ts, unsigned vcpu, bool write, uint16_t port, unsigned size, unsigned count, uint32_t val) {
  const TraceValue v[] = {{b(write)}, {port}, {size}, {count}, {val}};
  emit_event(id::kvm_pio, ts, vcpu, v);
}

void Tracer::kvm_inj_exception(Tick ts, unsigned vcpu, uint8_t vector, bool has_error, uint32_t error_code,
                               bool reinjected) {
  const TraceValue v[] = {{vector}, {b(has_error)}, {error_code}, {b(reinjected)}};
  emit_event(id::kvm_inj_exception, ts, vcpu, v);
}

void Tracer::kvm_page_fault(Tick ts, unsigned vcpu, uint64_t rip, uint64_t address, uint64_t error_code) {
  const TraceValue v[] = {{vcpu}, {rip}, {address}, {error_code}};
  emit_event(id::kvm_page_fault, ts, vcpu, v);
}

void Tracer::kvm_hypercall(Tick ts, unsigned vcpu, uint64_t nr, uint64_t a0, uint64_t a1, uint64_t a2,
                           uint64_t a3) {
  const TraceValue v[] = {{nr}, {a0}, {a1}, {a2}, {a3}};
  emit_event(id::kvm_hypercall, ts, vcpu, v);
}

void Tracer::kvm_apic(Tick ts, unsigned vcpu, bool write, uint32_t reg, uint64_t val) {
  const TraceValue v[] = {{b(write)}, {reg}, {val}};
  emit_event(id::kvm_apic, ts, vcpu, v);
}

void Tracer::kvm_apic_ipi(Tick ts, unsigned vcpu, uint32_t icr_low, uint32_t dest_id) {
  const TraceValue v[] = {{icr_low}, {dest_id}};
  emit_event(id::kvm_apic_ipi, ts, vcpu, v);
}

void Tracer::kvm_apic_accept_irq(Tick ts, unsigned vcpu, uint32_t apicid, uint16_t dm, uint16_t tm, uint8_t vec) {
  const TraceValue v[] = {{apicid}, {dm}, {tm}, {vec}};
  emit_event(id::kvm_apic_accept_irq, ts, vcpu, v);
}

void Tracer::kvm_eoi(Tick ts, unsigned vcpu, uint32_t apicid, int vector) {
  const TraceValue v[] = {{apicid}, {sext(vector)}};
  emit_event(id::kvm_eoi, ts, vcpu, v);
}

void Tracer::kvm_pv_tlb_flush(Tick ts, unsigned vcpu, bool need_flush_tlb) {
  const TraceValue v[] = {{vcpu}, {b(need_flush_tlb)}};
  emit_event(id::kvm_pv_tlb_flush, ts, vcpu, v);
}

void Tracer::kvm_pv_eoi(Tick ts, unsigned vcpu, uint32_t apicid, int vector) {
  const TraceValue v[] = {{apicid}, {sext(vector)}};
  emit_event(id::kvm_pv_eoi, ts, vcpu, v);
}

void Tracer::kvm_inj_virq(Tick ts, unsigned vcpu, unsigned vector, bool soft, bool reinjected) {
  const TraceValue v[] = {{vector}, {b(soft)}, {b(reinjected)}};
  emit_event(id::kvm_inj_virq, ts, vcpu, v);
}

void Tracer::kvm_pvclock_update(Tick ts, unsigned vcpu, uint32_t version, uint64_t tsc_timestamp,
                                uint64_t system_time, uint32_t tsc_to_system_mul, int8_t tsc_shift, uint8_t flags) {
  const TraceValue v[] = {{vcpu},        {version},           {tsc_timestamp}, {system_time},
                          {tsc_to_system_mul}, {sext(tsc_shift)}, {flags}};
  emit_event(id::kvm_pvclock_update, ts, vcpu, v);
}

void Tracer::kvm_try_async_get_page(Tick ts, unsigned vcpu, uint64_t gva, uint64_t gfn) {
  const TraceValue v[] = {{gva}, {gfn}};
  emit_event(id::kvm_try_async_get_page, ts, vcpu, v);
}

void Tracer::kvm_async_pf_repeated_fault(Tick ts, unsigned vcpu, uint64_t gva, uint64_t gfn) {
  const TraceValue v[] = {{gva}, {gfn}};
  emit_event(id::kvm_async_pf_repeated_fault, ts, vcpu, v);
}

void Tracer::kvm_async_pf_doublefault(Tick ts, unsigned vcpu, uint64_t gva, uint64_t gfn) {
  const TraceValue v[] = {{gva}, {gfn}};
  emit_event(id::kvm_async_pf_doublefault, ts, vcpu, v);
}

void Tracer::kvm_async_pf_not_present(Tick ts, unsigned vcpu, uint64_t token, uint64_t gva) {
  const TraceValue v[] = {{token}, {gva}};
  emit_event(id::kvm_async_pf_not_present, ts, vcpu, v);
}

void Tracer::kvm_async_pf_ready(Tick ts, unsigned vcpu, uint64_t token, uint64_t gva) {
  const TraceValue v[] = {{token}, {gva}};
  emit_event(id::kvm_async_pf_ready, ts, vcpu, v);
}

void Tracer::kvm_async_pf_completed(Tick ts, unsigned vcpu, uint64_t address, uint64_t gva) {
  const TraceValue v[] = {{address}, {gva}};
  emit_event(id::kvm_async_pf_completed, ts, vcpu, v);
}

void Tracer::pvsim_exception(Tick ts, unsigned vcpu, uint8_t vector, bool has_error, uint32_t error_code,
                             uint64_t rip, uint64_t cr2) {
  const TraceValue v[] = {{vector}, {b(has_error)}, {error_code}, {rip}, {cr2}};
  emit_event(id::pvsim_exception, ts, vcpu, v);
}

void Tracer::pvsim_stop(Tick ts, unsigned vcpu, std::string_view reason, std::string_view detail) {
  // A detail may span lines (a register dump); the canonical trace is one line per event,
  // so trailing line breaks and spaces are dropped and the others become "; " (in the
  // field too, so every form of the trace carries the same text).
  while (!detail.empty() && (detail.back() == '\n' || detail.back() == ' ')) detail.remove_suffix(1);
  std::string one_line;
  if (detail.find('\n') != std::string_view::npos) {
    for (char c : detail) {
      if (c == '\n') one_line += "; ";
      else one_line += c;
    }
    detail = one_line;
  }
  const TraceValue v[] = {str(reason), str(detail)};
  emit_event(id::pvsim_stop, ts, vcpu, v);
  // The run's last event (Platform::finish emits it once the run is over): the sinks can
  // write their files now, before the machine (and this Tracer) goes away.
  finish();
}

void Tracer::pvsim_inj_nmi(Tick ts, unsigned vcpu) { emit_event(id::pvsim_inj_nmi, ts, vcpu, {}); }

void Tracer::what_detail(Tick ts, unsigned vcpu, uint16_t event, std::string_view what, std::string_view detail) {
  const TraceValue v[] = {str(what), str(detail)};
  emit_event(event, ts, vcpu, v);
}

void Tracer::pvsim_vcpu(Tick ts, unsigned vcpu, std::string_view what, std::string_view detail) {
  what_detail(ts, vcpu, id::pvsim_vcpu, what, detail);
}

void Tracer::pvsim_apf(Tick ts, unsigned vcpu, std::string_view what, std::string_view detail) {
  what_detail(ts, vcpu, id::pvsim_apf, what, detail);
}

void Tracer::pvsim_host(Tick ts, unsigned vcpu, std::string_view what, std::string_view detail) {
  what_detail(ts, vcpu, id::pvsim_host, what, detail);
}

void Tracer::pvsim_steal(Tick ts, unsigned vcpu, std::string_view what, std::string_view detail) {
  what_detail(ts, vcpu, id::pvsim_steal, what, detail);
}

void Tracer::pvsim_pv_eoi(Tick ts, unsigned vcpu, std::string_view what, std::string_view detail) {
  what_detail(ts, vcpu, id::pvsim_pv_eoi, what, detail);
}

void Tracer::pvsim_action(Tick ts, unsigned vcpu, std::string_view point, std::string_view action) {
  what_detail(ts, vcpu, id::pvsim_action, point, action);
}

void Tracer::pvsim_sched_out(Tick ts, unsigned vcpu, unsigned pcpu, uint64_t rip, std::string_view why, Tick until) {
  const TraceValue v[] = {{vcpu}, {pcpu}, {rip}, str(why), {until.value()}};
  emit_event(id::pvsim_sched_out, ts, vcpu, v);
}

void Tracer::pvsim_sched_in(Tick ts, unsigned vcpu, unsigned pcpu, uint64_t rip, uint64_t run_delay_ns) {
  const TraceValue v[] = {{vcpu}, {pcpu}, {rip}, {run_delay_ns}};
  emit_event(id::pvsim_sched_in, ts, vcpu, v);
}

void Tracer::pvsim_marker(Tick ts, unsigned vcpu, std::string_view text) {
  const TraceValue v[] = {str(text)};
  emit_event(id::pvsim_marker, ts, vcpu, v);
}

}  // namespace pvsim
