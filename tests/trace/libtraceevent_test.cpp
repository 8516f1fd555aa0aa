// Every event's print fmt, evaluated by libtraceevent (the library `trace-cmd report` and
// KernelShark print events with) over the binary record a trace.dat holds
// (tools/platform/trace_dat.h), prints exactly pvsim's canonical text. So the table's
// formats are ones the real tools understand, not only pvsim's own renderer.
#include <catch2/catch.hpp>

#include <map>
#include <string>
#include <vector>

#include "core/trace.h"
#include "tools/platform/trace_dat.h"

extern "C" {
#include <event-parse.h>
#include <trace-seq.h>
}

using namespace pvsim;

namespace {

struct Keep final : TraceSink {
  struct Rec {
    const TraceEventDesc* desc;
    unsigned vcpu;
    std::vector<TraceValue> values;
    std::vector<std::string> strings;
    std::string text;  // the canonical text after "name: ", without '\n'
  };
  std::vector<Rec> recs;
  void on_event(const TraceRecord& r) override {
    Rec k{r.desc, r.vcpu, {r.values.begin(), r.values.end()}, {}, {}};
    for (const TraceValue& v : r.values) k.strings.emplace_back(v.s);
    const std::string_view body = r.line.substr(r.body + std::string_view(r.desc->name).size() + 2);
    k.text = std::string(body.substr(0, body.size() - 1));
    recs.push_back(std::move(k));
  }
};

// Each event method with values at the edges of its format (the list trace_diff_test.cpp
// rebuilds too), and the events whose text depends on a condition both ways.
void emit_all(Tracer& t) {
  const Tick ts(1'234'567'890'123);
  t.kvm_exit(ts, 0, VmxExitReason::MsrWrite, 0x101fa6, 0, UINT64_MAX, 0x80000b0e, 0xffffffffu);
  for (auto r : {VmxExitReason::ExceptionNmi, VmxExitReason::Hlt, VmxExitReason::IoInstruction, VmxExitReason::Rdtscp,
                 VmxExitReason::EptViolation, VmxExitReason::Sipi, VmxExitReason::CrAccess})
    t.kvm_exit(ts, 3, r, 1, 2, 3, 4, 5);
  t.kvm_entry(Tick(0), 63, 0xffffffff81000000);
  t.kvm_msr(ts, 1, true, 0xc0000100, 0x800000000000, true);
  t.kvm_msr(ts, 1, false, 0x4b564d01, 0, false);
  t.kvm_cpuid(ts, 2, 0x40000001, 0, 1, 2, 3, 4, true, false);
  t.kvm_cpuid(ts, 2, 0x80000099, 7, 0, 0, 0, 0, false, true);
  t.kvm_pio(ts, 0, true, 0xe9, 1, 1, 0x68);
  t.kvm_pio(ts, 0, false, 0xffff, 4, 12, 0xffffffffu);
  for (uint8_t v : {0, 1, 2, 3, 8, 13, 14, 18, 19, 0x99})
    for (bool err : {false, true}) t.kvm_inj_exception(ts, 0, v, err, err ? 0x1b : 0x55, v == 8);
  t.kvm_page_fault(ts, 0, 0x100000, 0x10000, 0x181);
  t.kvm_hypercall(ts, 0, 5, 0, 1, UINT64_MAX, 3);
  for (uint32_t reg : {0x20u, 0xb0u, 0x300u, 0x310u, 0x3f0u, 0x3f8u, 0x400u})
    t.kvm_apic(ts, 0, reg & 0x10, reg, reg == 0x300 ? 0x1000040e1ull : 7);
  for (uint32_t icr : {0xc4ee1u, 0x4500u, 0x8c0ecu, 0x60699u, 0x7ffu}) t.kvm_apic_ipi(ts, 0, icr, 0xff);
  for (uint16_t dm = 0; dm < 8; ++dm) t.kvm_apic_accept_irq(ts, 1, 3, static_cast<uint16_t>(dm << 8), dm & 1, 255);
  t.kvm_eoi(ts, 1, 3, -1);
  t.kvm_eoi(ts, 1, 0xff, 236);
  t.kvm_inj_virq(ts, 1, 0xe1, false, true);
  t.kvm_inj_virq(ts, 1, 0x20, true, false);
  t.kvm_pvclock_update(ts, 3, 4, 0xac88, 0x4503, 0xcccccccc, -1, 0x3);
  t.kvm_pvclock_update(ts, 3, 0xffffffffu, 0, 0, 0, 127, 0xff);
  t.kvm_pvclock_update(ts, 3, 0, 0, 0, 0, -128, 0);
  t.kvm_pv_tlb_flush(ts, 1, true);
  t.kvm_pv_tlb_flush(ts, 1, false);
  t.kvm_pv_eoi(ts, 1, 1, 236);
  t.kvm_try_async_get_page(ts, 0, 0, 0x10);
  t.kvm_async_pf_repeated_fault(ts, 0, 0x10000, 0x10);
  t.kvm_async_pf_doublefault(ts, 0, 0x10000, 0);
  t.kvm_async_pf_not_present(ts, 0, 0x80000001, 0x10000);
  t.kvm_async_pf_ready(ts, 0, 0xffffffff, 0);
  t.kvm_async_pf_completed(ts, 0, 0x7f0000001000, 0x10000);
  t.kvm_async_pf_completed(ts, 0, 0, 0);
  t.pvsim_exception(ts, 0, 13, true, 0, 0x1234, 0);
  t.pvsim_exception(ts, 0, 3, false, 0, 0x1234, 0xdead);
  t.pvsim_exception(ts, 0, 0x20, true, 0xffffffff, 0, UINT64_MAX);
  t.pvsim_stop(ts, 0, "shutdown", "triple fault\nRAX=0 RBX=1\n  \n");
  t.pvsim_stop(ts, 0, "exit", "");
  t.pvsim_inj_nmi(ts, 2);
  t.pvsim_vcpu(ts, 1, "init", "wait-for-SIPI");
  t.pvsim_vcpu(ts, 1, "sipi", "");
  t.pvsim_apf(ts, 1, "halt", "token 0x1");
  t.pvsim_host(ts, 1, "store", "record (64 bytes at gpa 0x236d40), entry follows");
  t.pvsim_steal(ts, 1, "preempted", "0x0 -> 0x1");
  t.pvsim_pv_eoi(ts, 1, "arm", "vector 236");
  t.pvsim_sched_out(ts, 1, 1, 0x10500c, "preempted", Tick(699'800));
  t.pvsim_sched_out(ts, 2, 0, 0, "woken, waits for a pCPU", Tick(12'345'678'901'234ull));
  t.pvsim_sched_in(ts, 1, 0, 0x10500c, 399'800);
  t.pvsim_action(ts, 0, "v0.insn=1200", "preempt v1 50us: vCPU 1 holds no pCPU from 0.000001000 to 0.000051000");
  t.pvsim_marker(ts, 2, "phase 2: reader saw a torn value (50% done)");
}

}  // namespace

TEST_CASE("libtraceevent prints every event as the canonical text", "[trace][libtraceevent]") {
  Tracer t;
  Keep k;
  t.add_sink(&k, false);
  emit_all(t);
  tep_handle* tep = tep_alloc();
  REQUIRE(tep);
  tep_set_long_size(tep, 8);
  tep_set_page_size(tep, 4096);
  tep_set_file_bigendian(tep, TEP_LITTLE_ENDIAN);
  tep_set_local_bigendian(tep, TEP_LITTLE_ENDIAN);
  std::map<uint16_t, TraceDatLayout> layouts;
  // Every event's format parses, whether the run used it or not.
  for (const TraceEventDesc& d : trace_event_table()) {
    INFO(d.name);
    const std::string f = trace_dat_format(d);
    tep_event* ev = nullptr;
    CHECK(tep_parse_format(tep, &ev, f.data(), f.size(), d.system) == TEP_ERRNO__SUCCESS);
    layouts.emplace(d.id, trace_dat_layout(d));
  }
  std::map<std::string, int> seen;
  for (const Keep::Rec& r : k.recs) {
    std::vector<TraceValue> values = r.values;
    for (size_t i = 0; i < values.size(); ++i) values[i].s = r.strings[i];
    std::string payload = trace_dat_payload(*r.desc, layouts.at(r.desc->id), r.vcpu, values);
    tep_record rec{};
    rec.data = payload.data();
    rec.size = static_cast<int>(payload.size());
    rec.cpu = static_cast<int>(r.vcpu);
    trace_seq s;
    trace_seq_init(&s);
    tep_print_event(tep, &s, &rec, "%s", TEP_PRINT_INFO);
    trace_seq_terminate(&s);
    const std::string got(s.buffer, s.len);
    trace_seq_destroy(&s);
    INFO(r.desc->name);
    CHECK(got == r.text);
    ++seen[r.desc->name];
  }
  tep_free(tep);
  CHECK(seen.size() == trace_event_table().size());
}
