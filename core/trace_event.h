// core/trace_event.h — the trace's event table and the record every sink sees.
//
// Every event pvsim traces is described once, in one table (core/trace_events.cpp): its
// name, its system ("kvm" for the names KVM's tracepoints use, "pvsim" for events KVM has
// no tracepoint for), its typed fields in the order of KVM's TP_STRUCT__entry, and the
// print format in the syntax of an ftrace `format` file ("\"...\", REC->field, ...").
// From that one description come the canonical text line, the JSON Lines object,
// `pvsim trace --list-events`, and the event formats inside a trace.dat file.
//
// Sinks (text, JSON Lines, trace.dat, Perfetto, the HTML timeline) receive TraceRecords:
// the event's description, its field values in table order, and the canonical line.
#pragma once
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/types.h"

namespace pvsim {

// A field's type, as an ftrace `format` file declares it. Integers are stored
// zero-extended (unsigned) or sign-extended (signed) in TraceValue::u; Str is a string
// (declared "__data_loc char[]" in a format file, like KVM's __string fields).
enum class TraceType : uint8_t { U8, U16, U32, U64, S8, S16, S32, S64, Str };

struct TraceFieldDesc {
  const char* name;   // as in KVM's TP_STRUCT__entry where KVM has the event
  TraceType type;
  const char* c_type;  // the declaration's type in a format file: "unsigned int", "u64", ...
};

struct TraceEventDesc {
  uint16_t id;         // index in trace_event_table()
  const char* system;  // "kvm" or "pvsim"
  const char* name;    // "kvm_exit", "pvsim_marker", ...
  std::span<const TraceFieldDesc> fields;
  const char* print_fmt;  // the `print fmt:` line of a format file, after "print fmt: "
};

// Every event, in id order. The table is constant for a given pvsim build.
std::span<const TraceEventDesc> trace_event_table();
const TraceEventDesc* find_trace_event(std::string_view name);  // nullptr when unknown

// The ids of the table's events (TraceEventDesc::id), for code that emits or switches on
// one event; code that only reads records may as well compare desc->name.
namespace trace_ids {
enum Id : uint16_t {
  kvm_exit, kvm_entry, kvm_msr, kvm_cpuid, kvm_pio, kvm_inj_exception, kvm_page_fault,
  kvm_hypercall, kvm_apic, kvm_apic_ipi, kvm_apic_accept_irq, kvm_eoi, kvm_inj_virq,
  kvm_pvclock_update, kvm_pv_tlb_flush, kvm_pv_eoi, kvm_try_async_get_page,
  kvm_async_pf_repeated_fault, kvm_async_pf_doublefault, kvm_async_pf_not_present,
  kvm_async_pf_ready, kvm_async_pf_completed, pvsim_exception, pvsim_stop, pvsim_inj_nmi,
  pvsim_vcpu, pvsim_apf, pvsim_host, pvsim_sched_out, pvsim_sched_in, pvsim_steal,
  pvsim_pv_eoi, pvsim_action, pvsim_marker,
  count
};
}  // namespace trace_ids

// Position of `field` in d.fields, or -1.
int trace_field_index(const TraceEventDesc& d, std::string_view field);
// A field declared "bool" (KVM's bool fields): JSON Lines writes it as true / false.
bool trace_field_is_bool(const TraceFieldDesc& f);
// A signed integer type (S8..S64): TraceValue::u holds it sign-extended.
inline bool trace_type_signed(TraceType t) {
  return t == TraceType::S8 || t == TraceType::S16 || t == TraceType::S32 || t == TraceType::S64;
}

// One field's value: integers in u (see TraceType), strings in s.
struct TraceValue {
  uint64_t u = 0;
  std::string_view s = {};
};

// What a sink sees for one event. Everything it points into lives only for the call.
struct TraceRecord {
  uint64_t index = 0;  // position in the canonical trace, from 0
  Tick ts{};           // virtual time
  unsigned vcpu = 0;   // the [cpu] column
  const TraceEventDesc* desc = nullptr;
  std::span<const TraceValue> values;  // one per desc->fields, same order
  std::string_view line;  // the canonical line, '\n' included
  size_t body = 0;        // line[body..] starts at the event name
};

// ---- rendering (core/trace_events.cpp) ----
// Each print_fmt is compiled once, on first use, into a small program; these run it.
//
// Appends the event's text (the print fmt evaluated over `values`, one per d.fields) to out.
void trace_render_text(const TraceEventDesc& d, std::span<const TraceValue> values, std::string& out);
// The same for a description outside the table (tests of the renderer): compiles d.print_fmt
// on every call. Throws std::logic_error when the fmt is outside the supported subset
// (core/trace_events.cpp lists it).
void trace_render_adhoc(const TraceEventDesc& d, std::span<const TraceValue> values, std::string& out);
// Appends the whole canonical line, "CPU <v>/KVM-<v> [<vvv>] <s>.<ns>: <name>: <text>\n";
// returns the offset where the event name starts (TraceRecord::body).
size_t trace_render_line(Tick ts, unsigned vcpu, const TraceEventDesc& d, std::span<const TraceValue> values,
                         std::string& out);
// Appends the line's head, "CPU <v>/KVM-<v> [<vvv>] <s>.<ns>: ".
void trace_render_head(Tick ts, unsigned vcpu, std::string& out);
// Appends the JSON Lines object of one event (no newline): "ts_ns", "vcpu", "event", then
// the fields in table order (integers in decimal, bool fields as true/false, strings escaped
// as RFC 8259 §7 asks).
void trace_render_json(Tick ts, unsigned vcpu, const TraceEventDesc& d, std::span<const TraceValue> values,
                       std::string& out);
// Appends `s` as a JSON string (quotes included).
void trace_append_json_string(std::string& out, std::string_view s);

// ---- event selection (--events) ----
// A shell-style glob over event names: '*' any run of characters, '?' one character.
bool trace_glob_match(std::string_view glob, std::string_view name);
// Parses "kvm_async_pf*,kvm_msr" / "kvm_*,-kvm_apic": comma-separated globs, each one adds
// the events it matches, or removes them with a leading '-', left to right; the selection
// starts empty, or with every event when the first term removes. `on` gets one flag per
// table event. Returns the term that matches no event (or is empty) on error.
std::optional<std::string> parse_trace_event_filter(std::string_view spec, std::vector<bool>& on);

// An output of the trace. on_event is called in emission order (the order the canonical
// hash covers) for the events the sink's filter lets through; on_finish once, when the run
// has ended, so sinks that sort or index can write their file then.
class TraceSink {
 public:
  virtual void on_event(const TraceRecord& r) = 0;
  virtual void on_finish() {}

 protected:
  ~TraceSink() = default;
};

}  // namespace pvsim
