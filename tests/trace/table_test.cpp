// The event table and its print-format renderer (core/trace_event.h, core/trace_events.cpp):
// every description compiles, the renderer's printf conversions agree with the C library's,
// the subset's operators and symbol tables, JSON Lines from the table, and --events globs.
#include <catch2/catch.hpp>

#include <cinttypes>
#include <cstdio>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/trace.h"
#include "core/trace_event.h"

using namespace pvsim;

namespace {

std::string render(const TraceEventDesc& d, std::vector<TraceValue> v) {
  std::string out;
  trace_render_adhoc(d, v, out);
  return out;
}

// A description outside the table, for the renderer alone.
struct Adhoc {
  std::vector<TraceFieldDesc> fields;
  TraceEventDesc d;
  Adhoc(std::vector<TraceFieldDesc> f, const char* fmt) : fields(std::move(f)), d{0, "test", "adhoc", fields, fmt} {}
};

}  // namespace

TEST_CASE("the event table: ids, names, fields and formats", "[trace][table]") {
  const auto table = trace_event_table();
  REQUIRE(table.size() == trace_ids::count);
  std::set<std::string> names;
  for (size_t k = 0; k < table.size(); ++k) {
    const TraceEventDesc& d = table[k];
    INFO(d.name);
    CHECK(d.id == k);
    CHECK(names.insert(d.name).second);
    CHECK(find_trace_event(d.name) == &d);
    // KVM's names in the "kvm" system, pvsim's own with the prefix (core/trace.h).
    CHECK(std::string(d.system) == (std::string(d.name).rfind("pvsim_", 0) == 0 ? "pvsim" : "kvm"));
    std::set<std::string> fields;
    for (const TraceFieldDesc& f : d.fields) {
      CHECK(fields.insert(f.name).second);
      CHECK(trace_field_index(d, f.name) == static_cast<int>(&f - d.fields.data()));
    }
    CHECK(trace_field_index(d, "no_such_field") == -1);
    // Every print fmt compiles, and renders with all-zero values.
    std::vector<TraceValue> zeros(d.fields.size());
    std::string text;
    CHECK_NOTHROW(trace_render_text(d, zeros, text));
    CHECK_NOTHROW(render(d, zeros));
  }
  CHECK(find_trace_event("kvm_nope") == nullptr);
  CHECK(find_trace_event("pvsim_marker")->id == trace_ids::pvsim_marker);
  CHECK(table[trace_ids::kvm_exit].name == std::string("kvm_exit"));
  CHECK(table[trace_ids::pvsim_action].name == std::string("pvsim_action"));
}

TEST_CASE("renderer: integer conversions print what printf prints", "[trace][table]") {
  // The same values through the renderer and through snprintf with the same conversions.
  // A field is read as its bits, zero-extended (as libtraceevent reads a record): an int of
  // -1 is 0xffffffff, so %d prints -1 and %lld 4294967295; an s8 of -1 prints 255.
  Adhoc a({{"u", TraceType::U64, "u64"}, {"s", TraceType::S32, "int"}, {"b", TraceType::S8, "s8"}},
          "\"%u|%d|%x|%lx|%llx|%#llx|%#lx|%016llx|%08x|%09llu|%llu|%d|%lld|%.3x|%.0x|%5u|%05d|%d\", REC->u, REC->u, "
          "REC->u, REC->u, REC->u, REC->u, REC->u, REC->u, REC->u, REC->u, REC->u, REC->s, REC->s, REC->u, REC->u, "
          "REC->u, REC->s, REC->b");
  for (uint64_t u : {0ull, 1ull, 9ull, 0xabull, 0xffffffffull, 0x100000000ull, 0x123456789abcdefull, ~0ull}) {
    for (int64_t s : {0ll, 1ll, -1ll, -2147483648ll, 2147483647ll, 42ll}) {
      for (int8_t b : {int8_t{0}, int8_t{-1}, int8_t{-128}, int8_t{127}}) {
        char want[512];
        const auto u32 = static_cast<unsigned>(u);
        std::snprintf(want, sizeof want,
                      "%u|%d|%x|%lx|%llx|%#llx|%#lx|%016llx|%08x|%09llu|%llu|%d|%lld|%.3x|%.0x|%5u|%05d|%d", u32,
                      static_cast<int>(u32), u32, static_cast<unsigned long>(u), static_cast<unsigned long long>(u),
                      static_cast<unsigned long long>(u), static_cast<unsigned long>(u),
                      static_cast<unsigned long long>(u), u32, static_cast<unsigned long long>(u),
                      static_cast<unsigned long long>(u), static_cast<int>(s),
                      static_cast<long long>(static_cast<uint32_t>(s)), u32, u32, u32, static_cast<int>(s),
                      static_cast<int>(static_cast<uint8_t>(b)));
        INFO(u << " " << s << " " << int(b));
        CHECK(render(a.d, {{u}, {static_cast<uint64_t>(s)}, {static_cast<uint64_t>(static_cast<int64_t>(b))}}) == want);
      }
    }
  }
}

TEST_CASE("renderer: precision from an argument, strings, ?:, operators, symbols", "[trace][table]") {
  Adhoc a({{"has", TraceType::U8, "u8"}, {"code", TraceType::U32, "u32"}, {"name", TraceType::Str, "char[]"},
           {"empty", TraceType::Str, "char[]"}, {"ns", TraceType::U64, "u64"}},
          "\"[%s%.*x%s] %s/%s %llu.%09llu %u %u %u %u %u %u %s %s %s%%\", REC->has ? \"(0x\" : \"\", REC->has, "
          "REC->has ? REC->code : 0, REC->has ? \")\" : \"\", __get_str(name), __get_str(empty), "
          "REC->ns / 1000000000, REC->ns % 1000000000, __get_dynamic_array_len(name), "
          "__get_dynamic_array_len(empty) > 1, REC->code >> 8 & 0x7, (REC->code & (1<<11)) != 0, "
          "!REC->has, REC->code - 1 + 2 * 3 == 6 + REC->code - 1 || 0, "
          "__print_symbolic(REC->code, { 0, \"zero\" }, { 0x10, \"sixteen\" }), "
          "__print_symbolic(REC->code >> 8 & 0x7, { 0x0, \"Fixed\" }, { 0x4, \"NMI\" }), "
          "REC->has && REC->code ? \"both\" : \"not both\"");
  CHECK(render(a.d, {{1}, {0x10}, {0, "abc"}, {0, ""}, {3'000'000'007ull}}) ==
        "[(0x10)] abc/ 3.000000007 4 0 0 0 0 1 sixteen Fixed both%");
  CHECK(render(a.d, {{0}, {0x4800}, {0, "x"}, {0, "y"}, {5}}) ==
        "[] x/y 0.000000005 2 1 0 1 1 1 0x4800 Fixed not both%");
  CHECK(render(a.d, {{1}, {0}, {0, ""}, {0, ""}, {0}}) == "[(0x0)] / 0.000000000 1 0 0 0 0 1 zero Fixed not both%");
  CHECK(render(a.d, {{0}, {0x400}, {0, ""}, {0, ""}, {0}}) == "[] / 0.000000000 1 0 4 0 1 1 0x400 NMI not both%");
}

TEST_CASE("renderer: a print fmt outside the subset is refused, naming the event", "[trace][table]") {
  const auto bad = [](const char* fmt) {
    Adhoc a({{"x", TraceType::U32, "u32"}, {"s", TraceType::Str, "char[]"}}, fmt);
    try {
      (void)render(a.d, {{1}, {0, "s"}});
    } catch (const std::logic_error& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  CHECK(bad("\"%f\", REC->x").find("trace event adhoc: print fmt at offset") == 0);
  CHECK(bad("\"%f\", REC->x").find("unsupported conversion") != std::string::npos);
  CHECK(bad("\"%u %u\", REC->x").find("fewer arguments than conversions") != std::string::npos);
  CHECK(bad("\"%u\", REC->x, REC->x").find("more arguments") != std::string::npos);
  CHECK(bad("\"%u\", REC->y").find("no field 'y'") != std::string::npos);
  CHECK(bad("\"%u\", __print_flags(REC->x, \"|\", { 1, \"a\" })").find("unsupported '__print_flags'") != std::string::npos);
  CHECK(bad("\"%s\", __get_str(x)").find("not a string") != std::string::npos);
  CHECK(bad("\"%5s\", __get_str(s)").find("unsupported %s flags") != std::string::npos);
  CHECK(bad("\"%u\"").find("fewer arguments") != std::string::npos);
  CHECK(bad("REC->x").find("expected the format string") != std::string::npos);
  CHECK(bad("\"%u\", (REC->x").find("expected ')'") != std::string::npos);
  CHECK(bad("\"%u\", REC->x ? 1").find("expected ':'") != std::string::npos);
  CHECK(bad("\"%s\", __get_str(s)") == "accepted");
}

TEST_CASE("canonical lines of the events whose print fmt differs from KVM's", "[trace][table]") {
  // The adaptations core/trace_events.cpp explains, against the text the goldens pin.
  Tracer t;
  std::ostringstream os;
  t.set_text_output(&os);
  t.kvm_inj_exception(Tick(0), 0, 14, true, 0, false);
  t.kvm_inj_exception(Tick(0), 0, 2, false, 0x55, true);  // no error code: none printed, whatever the field holds
  t.pvsim_exception(Tick(0), 0, 13, true, 0x18, 0x1000, 0);
  t.pvsim_exception(Tick(0), 0, 0x30, false, 7, 0x1000, 0);
  t.kvm_apic(Tick(0), 0, false, 0x400, 0x123456789);  // APIC_EFEAT: a number in pvsim's text
  t.kvm_exit(Tick(0), 0, VmxExitReason::Hlt, 1, 2, 3, 4, 5);
  t.pvsim_sched_out(Tick(0), 3, 1, 0x10, "preempted", Tick(12'000'000'345ull));
  t.pvsim_vcpu(Tick(0), 1, "sipi", "");
  t.pvsim_marker(Tick(0), 2, "phase 2: go");
  t.pvsim_stop(Tick(0), 0, "shutdown", "triple fault\nRAX=0\n\n");
  CHECK(os.str() ==
        "CPU 0/KVM-0 [000] 0.000000000: kvm_inj_exception: #PF (0x0)\n"
        "CPU 0/KVM-0 [000] 0.000000000: kvm_inj_exception: 0x2 [reinjected]\n"
        "CPU 0/KVM-0 [000] 0.000000000: pvsim_exception: vector 0xd (#GP) error_code 0x18 rip 0x1000 cr2 0x0\n"
        "CPU 0/KVM-0 [000] 0.000000000: pvsim_exception: vector 0x30 (0x30) rip 0x1000 cr2 0x0\n"
        "CPU 0/KVM-0 [000] 0.000000000: kvm_apic: apic_read 0x400 = 0x123456789\n"
        "CPU 0/KVM-0 [000] 0.000000000: kvm_exit: vcpu 0 reason HLT rip 0x1 info1 0x0000000000000002 info2 "
        "0x0000000000000003 intr_info 0x00000004 error_code 0x00000005\n"
        "CPU 3/KVM-3 [003] 0.000000000: pvsim_sched_out: vcpu 3 pcpu 1 rip 0x10 preempted until 12.000000345\n"
        "CPU 1/KVM-1 [001] 0.000000000: pvsim_vcpu: sipi\n"
        "CPU 2/KVM-2 [002] 0.000000000: pvsim_marker: phase 2: go\n"
        "CPU 0/KVM-0 [000] 0.000000000: pvsim_stop: reason shutdown: triple fault; RAX=0\n");
}

TEST_CASE("JSON Lines from the table: key order, types, escaping", "[trace][table]") {
  Tracer t;
  std::ostringstream js;
  t.set_jsonl_output(&js);
  t.kvm_entry(Tick(7), 1, 0x100000);
  t.kvm_cpuid(Tick(8), 0, 1, 0, 2, 3, 4, 5, true, false);
  t.kvm_pvclock_update(Tick(9), 2, 3, 4, 5, 6, -5, 1);
  t.kvm_inj_virq(Tick(10), 0, 0x20, false, true);
  t.pvsim_marker(Tick(11), 3, "a\"b\\c\n\x1f\xc3\xa9");
  t.pvsim_inj_nmi(Tick(12), 0);
  CHECK(js.str() ==
        "{\"ts_ns\":7,\"vcpu\":1,\"event\":\"kvm_entry\",\"vcpu_id\":1,\"rip\":1048576,\"immediate_exit\":false}\n"
        "{\"ts_ns\":8,\"vcpu\":0,\"event\":\"kvm_cpuid\",\"function\":1,\"index\":0,\"rax\":2,\"rbx\":3,\"rcx\":4,"
        "\"rdx\":5,\"found\":true,\"used_max_basic\":false}\n"
        "{\"ts_ns\":9,\"vcpu\":2,\"event\":\"kvm_pvclock_update\",\"vcpu_id\":2,\"version\":3,\"tsc_timestamp\":4,"
        "\"system_time\":5,\"tsc_to_system_mul\":6,\"tsc_shift\":-5,\"flags\":1}\n"
        "{\"ts_ns\":10,\"vcpu\":0,\"event\":\"kvm_inj_virq\",\"irq\":32,\"soft\":false,\"reinjected\":true}\n"
        "{\"ts_ns\":11,\"vcpu\":3,\"event\":\"pvsim_marker\",\"text\":\"a\\\"b\\\\c\\n\\u001f\xc3\xa9\"}\n"
        "{\"ts_ns\":12,\"vcpu\":0,\"event\":\"pvsim_inj_nmi\"}\n");
}

TEST_CASE("event filter (--events): globs, exclusions, and a term that matches nothing", "[trace][filter]") {
  CHECK(trace_glob_match("kvm_*", "kvm_exit"));
  CHECK(trace_glob_match("*", ""));
  CHECK(trace_glob_match("kvm_async_pf*", "kvm_async_pf_ready"));
  CHECK_FALSE(trace_glob_match("kvm_async_pf*", "kvm_try_async_get_page"));
  CHECK(trace_glob_match("*async*", "kvm_try_async_get_page"));
  CHECK(trace_glob_match("kvm_?sr", "kvm_msr"));
  CHECK_FALSE(trace_glob_match("kvm_?sr", "kvm_mssr"));
  CHECK(trace_glob_match("a*b*c", "aXbYbZc"));
  CHECK_FALSE(trace_glob_match("a*b*c", "aXbYbZ"));
  CHECK_FALSE(trace_glob_match("kvm_msr", "kvm_msrx"));

  const auto selected = [](const std::string& spec) {
    std::vector<bool> on;
    const auto bad = parse_trace_event_filter(spec, on);
    REQUIRE_FALSE(bad);
    std::set<std::string> out;
    for (const TraceEventDesc& d : trace_event_table())
      if (on.at(d.id)) out.insert(d.name);
    return out;
  };
  CHECK(selected("kvm_async_pf*,kvm_msr") ==
        std::set<std::string>{"kvm_async_pf_completed", "kvm_async_pf_doublefault", "kvm_async_pf_not_present",
                              "kvm_async_pf_ready", "kvm_async_pf_repeated_fault", "kvm_msr"});
  const auto kvm = selected("kvm_*");
  const auto kvm_no_apic = selected("kvm_*,-kvm_apic");
  CHECK(kvm.count("kvm_apic"));
  CHECK_FALSE(kvm_no_apic.count("kvm_apic"));
  CHECK(kvm_no_apic.count("kvm_apic_ipi"));
  CHECK(kvm_no_apic.size() == kvm.size() - 1);
  // A first term that removes starts from every event.
  const auto all_but = selected("-pvsim_*");
  CHECK(all_but == kvm);
  CHECK(selected(" kvm_msr , kvm_pio ") == std::set<std::string>{"kvm_msr", "kvm_pio"});
  // Later terms win: added back after a removal.
  CHECK(selected("-kvm_*,kvm_msr").count("kvm_msr"));

  std::vector<bool> on;
  CHECK(parse_trace_event_filter("kvm_msr,kvm_nosuch*", on) == std::optional<std::string>("kvm_nosuch*"));
  CHECK(parse_trace_event_filter("kvm_msr,-bogus", on) == std::optional<std::string>("-bogus"));
  CHECK(parse_trace_event_filter("kvm_msr,,kvm_pio", on) == std::optional<std::string>(""));
  CHECK(parse_trace_event_filter("", on) == std::optional<std::string>(""));
  CHECK(parse_trace_event_filter("-", on) == std::optional<std::string>("-"));
}
