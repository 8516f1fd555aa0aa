// Exact text of every trace event (core/trace.cpp), the hash, and the JSON Lines shape.
#include <fmt/format.h>
#include <xxhash.h>

#include <catch2/catch.hpp>
#include <sstream>

#include "core/trace.h"

using namespace pvsim;

namespace {
// Runs one emit on a fresh tracer and returns the text line.
template <class F>
std::string line_of(F&& f) {
  Tracer t;
  std::ostringstream os;
  t.set_text_output(&os);
  f(t);
  return os.str();
}
}  // namespace

TEST_CASE("trace line prefix: comm, pid, 3-digit cpu, 9-digit ns", "[trace]") {
  CHECK(line_of([](Tracer& t) { t.kvm_entry(Tick(12345), 0, 0x100000); }) ==
        "CPU 0/KVM-0 [000] 0.000012345: kvm_entry: vcpu 0, rip 0x100000\n");
  CHECK(line_of([](Tracer& t) { t.kvm_entry(Tick(3'000'000'007ull), 12, 0x1); }) ==
        "CPU 12/KVM-12 [012] 3.000000007: kvm_entry: vcpu 12, rip 0x1\n");
}

TEST_CASE("kvm_exit text", "[trace]") {
  CHECK(line_of([](Tracer& t) {
          t.kvm_exit(Tick(0), 1, VmxExitReason::MsrWrite, 0x100234, 0, 0, 0, 0);
        }) == "CPU 1/KVM-1 [001] 0.000000000: kvm_exit: vcpu 1 reason MSR_WRITE rip 0x100234 info1 "
              "0x0000000000000000 info2 0x0000000000000000 intr_info 0x00000000 error_code 0x00000000\n");
  CHECK(line_of([](Tracer& t) {
          t.kvm_exit(Tick(0), 0, VmxExitReason::EptViolation, 0xffffffff80001000ull, 0x181, 0x12345678abcdef,
                     0x80000b0e, 0xdead);
        }) == "CPU 0/KVM-0 [000] 0.000000000: kvm_exit: vcpu 0 reason EPT_VIOLATION rip 0xffffffff80001000 "
              "info1 0x0000000000000181 info2 0x0012345678abcdef intr_info 0x80000b0e error_code 0x0000dead\n");
}

TEST_CASE("vmx_exit_reason_name covers every enumerator", "[trace]") {
  CHECK(std::string(vmx_exit_reason_name(VmxExitReason::ExceptionNmi)) == "EXCEPTION_NMI");
  CHECK(std::string(vmx_exit_reason_name(VmxExitReason::ExternalInterrupt)) == "EXTERNAL_INTERRUPT");
  CHECK(std::string(vmx_exit_reason_name(VmxExitReason::TripleFault)) == "TRIPLE_FAULT");
  CHECK(std::string(vmx_exit_reason_name(VmxExitReason::InitSignal)) == "INIT_SIGNAL");
  CHECK(std::string(vmx_exit_reason_name(VmxExitReason::Sipi)) == "SIPI_SIGNAL");
  CHECK(std::string(vmx_exit_reason_name(VmxExitReason::InterruptWindow)) == "INTERRUPT_WINDOW");
  CHECK(std::string(vmx_exit_reason_name(VmxExitReason::NmiWindow)) == "NMI_WINDOW");
  CHECK(std::string(vmx_exit_reason_name(VmxExitReason::Cpuid)) == "CPUID");
  CHECK(std::string(vmx_exit_reason_name(VmxExitReason::Hlt)) == "HLT");
  CHECK(std::string(vmx_exit_reason_name(VmxExitReason::Invlpg)) == "INVLPG");
  CHECK(std::string(vmx_exit_reason_name(VmxExitReason::Rdtsc)) == "RDTSC");
  CHECK(std::string(vmx_exit_reason_name(VmxExitReason::Vmcall)) == "VMCALL");
  CHECK(std::string(vmx_exit_reason_name(VmxExitReason::CrAccess)) == "CR_ACCESS");
  CHECK(std::string(vmx_exit_reason_name(VmxExitReason::IoInstruction)) == "IO_INSTRUCTION");
  CHECK(std::string(vmx_exit_reason_name(VmxExitReason::MsrRead)) == "MSR_READ");
  CHECK(std::string(vmx_exit_reason_name(VmxExitReason::MsrWrite)) == "MSR_WRITE");
  CHECK(std::string(vmx_exit_reason_name(VmxExitReason::PauseInstruction)) == "PAUSE_INSTRUCTION");
  CHECK(std::string(vmx_exit_reason_name(VmxExitReason::ApicAccess)) == "APIC_ACCESS");
  CHECK(std::string(vmx_exit_reason_name(VmxExitReason::EptViolation)) == "EPT_VIOLATION");
  CHECK(std::string(vmx_exit_reason_name(VmxExitReason::Rdtscp)) == "RDTSCP");
}

TEST_CASE("kvm_msr text", "[trace]") {
  CHECK(line_of([](Tracer& t) { t.kvm_msr(Tick(0), 0, true, 0x4b564d02, 0x1, false); }) ==
        "CPU 0/KVM-0 [000] 0.000000000: kvm_msr: msr_write 4b564d02 = 0x1\n");
  CHECK(line_of([](Tracer& t) { t.kvm_msr(Tick(0), 0, false, 0xdeadbeef, 0, true); }) ==
        "CPU 0/KVM-0 [000] 0.000000000: kvm_msr: msr_read deadbeef = 0x0 (#GP)\n");
}

TEST_CASE("kvm_cpuid text", "[trace]") {
  CHECK(line_of([](Tracer& t) {
          t.kvm_cpuid(Tick(0), 0, 0x40000000, 0, 0x40000001, 0x4b4d564b, 0x564b4d56, 0x4d, true, false);
        }) == "CPU 0/KVM-0 [000] 0.000000000: kvm_cpuid: func 40000000 idx 0 rax 40000001 rbx 4b4d564b "
              "rcx 564b4d56 rdx 4d, cpuid entry found\n");
  CHECK(line_of([](Tracer& t) { t.kvm_cpuid(Tick(0), 0, 0x40000002, 3, 0, 1, 0x201, 0, false, true); }) ==
        "CPU 0/KVM-0 [000] 0.000000000: kvm_cpuid: func 40000002 idx 3 rax 0 rbx 1 rcx 201 rdx 0, cpuid "
        "entry not found, used max basic\n");
  CHECK(line_of([](Tracer& t) { t.kvm_cpuid(Tick(0), 0, 5, 0, 0, 0, 0, 0, false, false); }) ==
        "CPU 0/KVM-0 [000] 0.000000000: kvm_cpuid: func 5 idx 0 rax 0 rbx 0 rcx 0 rdx 0, cpuid entry not found\n");
}

TEST_CASE("kvm_pio text keeps KVM's space before the (...) marker", "[trace]") {
  CHECK(line_of([](Tracer& t) { t.kvm_pio(Tick(0), 0, true, 0xe9, 1, 1, 0x68); }) ==
        "CPU 0/KVM-0 [000] 0.000000000: kvm_pio: pio_write at 0xe9 size 1 count 1 val 0x68 \n");
  CHECK(line_of([](Tracer& t) { t.kvm_pio(Tick(0), 0, false, 0x3f8, 2, 5, 0xffff); }) ==
        "CPU 0/KVM-0 [000] 0.000000000: kvm_pio: pio_read at 0x3f8 size 2 count 5 val 0xffff (...)\n");
}

TEST_CASE("kvm_inj_exception text", "[trace]") {
  CHECK(line_of([](Tracer& t) { t.kvm_inj_exception(Tick(0), 0, 13, true, 0, false); }) ==
        "CPU 0/KVM-0 [000] 0.000000000: kvm_inj_exception: #GP (0x0)\n");
  CHECK(line_of([](Tracer& t) { t.kvm_inj_exception(Tick(0), 0, 6, false, 0, false); }) ==
        "CPU 0/KVM-0 [000] 0.000000000: kvm_inj_exception: #UD\n");
  CHECK(line_of([](Tracer& t) { t.kvm_inj_exception(Tick(0), 0, 14, true, 0x1b, true); }) ==
        "CPU 0/KVM-0 [000] 0.000000000: kvm_inj_exception: #PF (0x1b) [reinjected]\n");
  // NMI (2) and #XM (19) are not in kvm_trace_sym_exc: printed as a number.
  CHECK(line_of([](Tracer& t) { t.kvm_inj_exception(Tick(0), 0, 2, false, 0, false); }) ==
        "CPU 0/KVM-0 [000] 0.000000000: kvm_inj_exception: 0x2\n");
  const char* names[] = {"#DE", "#DB", nullptr, "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", nullptr,
                         "#TS", "#NP", "#SS", "#GP", "#PF", nullptr, "#MF", "#AC", "#MC", nullptr};
  for (uint8_t v = 0; v < 20; ++v) {
    std::string want = names[v] ? names[v] : fmt::format("0x{:x}", v);
    CHECK(line_of([v](Tracer& t) { t.kvm_inj_exception(Tick(0), 0, v, false, 0, false); }) ==
          "CPU 0/KVM-0 [000] 0.000000000: kvm_inj_exception: " + want + "\n");
  }
}

TEST_CASE("kvm_page_fault and kvm_hypercall text", "[trace]") {
  CHECK(line_of([](Tracer& t) { t.kvm_page_fault(Tick(0), 3, 0x100010, 0x200000, 0x181); }) ==
        "CPU 3/KVM-3 [003] 0.000000000: kvm_page_fault: vcpu 3 rip 0x100010 address 0x0000000000200000 "
        "error_code 0x181\n");
  CHECK(line_of([](Tracer& t) { t.kvm_hypercall(Tick(0), 0, 5, 0, 1, 0x10, 0xffffffffffffffffull); }) ==
        "CPU 0/KVM-0 [000] 0.000000000: kvm_hypercall: nr 0x5 a0 0x0 a1 0x1 a2 0x10 a3 0xffffffffffffffff\n");
}

TEST_CASE("pvsim events text", "[trace]") {
  CHECK(line_of([](Tracer& t) { t.pvsim_exception(Tick(0), 0, 14, true, 5, 0x100123, 0x7000); }) ==
        "CPU 0/KVM-0 [000] 0.000000000: pvsim_exception: vector 0xe (#PF) error_code 0x5 rip 0x100123 cr2 0x7000\n");
  CHECK(line_of([](Tracer& t) { t.pvsim_exception(Tick(0), 0, 0, false, 0, 0x100000, 0); }) ==
        "CPU 0/KVM-0 [000] 0.000000000: pvsim_exception: vector 0x0 (#DE) rip 0x100000 cr2 0x0\n");
  CHECK(line_of([](Tracer& t) { t.pvsim_stop(Tick(1), 0, "exit", "vCPU 0 wrote port 0xf4"); }) ==
        "CPU 0/KVM-0 [000] 0.000000001: pvsim_stop: reason exit: vCPU 0 wrote port 0xf4\n");
  CHECK(line_of([](Tracer& t) { t.pvsim_stop(Tick(1), 0, "limit", ""); }) ==
        "CPU 0/KVM-0 [000] 0.000000001: pvsim_stop: reason limit\n");
  CHECK(line_of([](Tracer& t) { t.pvsim_stop(Tick(1), 0, "shutdown", "a\nb\n"); }) ==
        "CPU 0/KVM-0 [000] 0.000000001: pvsim_stop: reason shutdown: a; b\n");
}

TEST_CASE("hash is XXH3-64 of the canonical text, with or without a text stream", "[trace]") {
  Tracer with, without;
  std::ostringstream os;
  with.set_text_output(&os);
  for (Tracer* t : {&with, &without}) {
    CHECK(t->hash() == XXH3_64bits("", 0));
    t->kvm_entry(Tick(5), 0, 0x100000);
    t->kvm_msr(Tick(6), 1, true, 0x10, 7, false);
    t->pvsim_stop(Tick(7), 0, "exit", "x");
  }
  const std::string text = os.str();
  CHECK(with.hash() == XXH3_64bits(text.data(), text.size()));
  CHECK(without.hash() == with.hash());
  CHECK(with.event_count() == 3);
  Tracer other;
  other.kvm_entry(Tick(5), 0, 0x100001);
  CHECK(other.hash() != XXH3_64bits("", 0));
}

TEST_CASE("JSON Lines: fixed key order, escaping, one object per line", "[trace]") {
  Tracer t;
  std::ostringstream js;
  t.set_jsonl_output(&js);
  t.kvm_msr(Tick(42), 1, true, 0x4b564d02, 0x1001, false);
  t.pvsim_stop(Tick(43), 0, "shutdown", "say \"hi\"\\\x01");
  CHECK(js.str() ==
        "{\"ts_ns\":42,\"vcpu\":1,\"event\":\"kvm_msr\",\"write\":1,\"ecx\":1263947010,\"data\":4097,"
        "\"exception\":0}\n"
        "{\"ts_ns\":43,\"vcpu\":0,\"event\":\"pvsim_stop\",\"reason\":\"shutdown\",\"detail\":\"say "
        "\\\"hi\\\"\\\\\\u0001\"}\n");
}

TEST_CASE("generic emit with signed fields", "[trace]") {
  Tracer t;
  std::ostringstream os, js;
  t.set_text_output(&os);
  t.set_jsonl_output(&js);
  t.emit(Tick(0), 2, "kvm_pvclock_update", "vcpu_id 2, x",
         {TraceField::i64("tsc_shift", -1), TraceField::u64("flags", 3)});
  CHECK(os.str() == "CPU 2/KVM-2 [002] 0.000000000: kvm_pvclock_update: vcpu_id 2, x\n");
  CHECK(js.str() == "{\"ts_ns\":0,\"vcpu\":2,\"event\":\"kvm_pvclock_update\",\"tsc_shift\":-1,\"flags\":3}\n");
}
