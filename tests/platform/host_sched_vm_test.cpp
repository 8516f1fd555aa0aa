// Whole-VM checks of the host scheduler's new inputs and of the PV pieces the platform
// wires (tools/platform/README.md §5, pvmsr/README.md §6-§10): host noise and pauses as run
// delay (or not), KVM_KVMCLOCK_CTRL at a resume, the CPU vendor, MSR_KVM_MIGRATION_CONTROL
// with and without a VMM that implements it, and PV-CPUID enforcement of the PV MSRs
// through the platform.
#include <catch2/catch.hpp>
#include <cstdint>
#include <cstdio>
#include <map>
#include <sstream>
#include <string>

#include "core/vcpu.h"
#include "tools/platform/platform.h"

using namespace pvsim;

namespace {

Scenario shipped(const char* name) {
  return load_scenario(std::string(PVSIM_SCENARIO_DIR) + "/" + name);
}

size_t count_of(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("host noise on a pCPU is run delay of the vCPU it displaces, and a put marks it preempted",
          "[smp][host]") {
  Scenario s = shipped("spinlock-q10000.json");
  s.host.noise.push_back(NoiseWindow{1, 200'000, 700'000});  // a host thread on pCPU 1
  s.expect.golden_trace.reset();
  std::ostringstream trace;
  PlatformOptions o;
  o.trace_text = &trace;
  const RunReport r = run_scenario(s, o);
  CHECK(r.success());
  CHECK(r.vcpus.at(1).run_delay_ns == 500'000);
  for (const VcpuReport& v : r.vcpus)
    if (v.index != 1) CHECK(v.run_delay_ns == 0);
  const std::string text = trace.str();
  CHECK(count_of(text, "pvsim_sched_out: vcpu 1 pcpu 1 rip ") == 1);
  CHECK(text.find(" preempted until 0.000700000\n") != std::string::npos);
  CHECK(count_of(text, "pvsim_sched_in: vcpu 1 pcpu 1 rip ") == 1);
  CHECK(text.find(" run_delay 500000\n") != std::string::npos);
}

TEST_CASE("a pause stops every vCPU without run delay, and the resume issues KVM_KVMCLOCK_CTRL",
          "[smp][host]") {
  Scenario s = shipped("spinlock-q10000.json");
  s.host.pause.push_back(PauseWindow{200'000, 700'000});
  s.expect.golden_trace.reset();
  std::ostringstream trace;
  PlatformOptions o;
  o.trace_text = &trace;
  const RunReport r = run_scenario(s, o);
  CHECK(r.success());
  for (const VcpuReport& v : r.vcpus) {
    INFO("vCPU " << v.index);
    CHECK(v.run_delay_ns == 0);
  }
  const std::string text = trace.str();
  CHECK(text.find("0.000200000: pvsim_host: pause: the VMM stops the VM until 0.000700000\n") != std::string::npos);
  // spinlock never enables kvmclock: KVM_KVMCLOCK_CTRL fails (-EINVAL) on every vCPU.
  CHECK(text.find("0.000700000: pvsim_host: resume: KVM_KVMCLOCK_CTRL on vCPUs none (no kvmclock)\n") !=
        std::string::npos);
  CHECK(count_of(text, " paused until 0.000700000\n") == 8);
  CHECK(count_of(text, " preempted until ") == 0);
}

TEST_CASE("machine.cpu_vendor sets CPUID leaf 0, the KVM leaves stay", "[smp][host]") {
  Scenario s = shipped("hello-O2.json");
  for (const bool amd : {false, true}) {
    s.machine.cpu_vendor = amd ? CpuVendor::Amd : CpuVendor::Intel;
    Platform p(s);
    const CpuidResult l0 = p.cpuid(p.vcpu(0), 0, 0);
    char vendor[13] = {};
    for (int k = 0; k < 4; ++k) {
      vendor[k] = static_cast<char>(l0.ebx >> (8 * k));
      vendor[4 + k] = static_cast<char>(l0.edx >> (8 * k));
      vendor[8 + k] = static_cast<char>(l0.ecx >> (8 * k));
    }
    CHECK(std::string(vendor) == (amd ? "AuthenticAMD" : "GenuineIntel"));
    CHECK(p.cpuid(p.vcpu(0), 0x40000000, 0).ebx == 0x4b4d564b);  // "KVMK"
    // Past the basic range: Intel answers with the highest basic leaf, AMD with zeros.
    const CpuidResult past = p.cpuid(p.vcpu(0), 0x20, 0);
    CHECK(past.used_max_basic == !amd);
  }
}

TEST_CASE("MSR_KVM_MIGRATION_CONTROL: #GP without a VMM that implements it, VM-wide with one",
          "[smp][host]") {
  Scenario s = shipped("hello-smp4.json");
  constexpr uint32_t kMsr = 0x4b564d08;
  // KVM of every era has no handler: the profile changes nothing.
  for (const KvmAbi abi : {KvmAbi::Modern, KvmAbi::Orig}) {
    s.machine.kvm.abi = abi;
    Platform p(s);
    uint64_t v = 0;
    CHECK(p.vcpu(0).msrs().read(p.vcpu(0), kMsr, v) == MsrStatus::Gp);
    CHECK(p.vcpu(0).msrs().write(p.vcpu(0), kMsr, 1) == MsrStatus::Gp);
  }
  s.machine.kvm.migration_control = true;
  for (const KvmAbi abi : {KvmAbi::Modern, KvmAbi::Orig}) {
    s.machine.kvm.abi = abi;
    Platform p(s);
    uint64_t v = 0;
    CHECK(p.vcpu(0).msrs().read(p.vcpu(0), kMsr, v) == MsrStatus::Ok);
    CHECK(v == 1);  // KVM_MIGRATION_READY for a guest without encrypted memory
    CHECK(p.vcpu(1).msrs().write(p.vcpu(1), kMsr, 0) == MsrStatus::Ok);
    CHECK(p.vcpu(3).msrs().read(p.vcpu(3), kMsr, v) == MsrStatus::Ok);
    CHECK(v == 0);  // one value for the VM
    CHECK(p.vcpu(0).msrs().write(p.vcpu(0), kMsr, 2) == MsrStatus::Gp);
  }
  // Under enforcement the guest must have been told (feature 17).
  s.machine.kvm.abi = KvmAbi::Modern;
  s.machine.kvm.enforce_pv_cpuid = true;
  for (const bool advertised : {false, true}) {
    s.machine.kvm_features = 0x01007efb | (advertised ? 1u << 17 : 0u);
    Platform p(s);
    uint64_t v = 0;
    CHECK(p.vcpu(0).msrs().read(p.vcpu(0), kMsr, v) == (advertised ? MsrStatus::Ok : MsrStatus::Gp));
  }
}

TEST_CASE("PV-CPUID enforcement through the platform: a hidden feature's MSR raises #GP", "[smp][host]") {
  Scenario s = shipped("hello-O2.json");
  s.machine.kvm.enforce_pv_cpuid = true;
  struct Row {
    uint32_t msr;
    unsigned bit;
  };
  const Row rows[] = {{0x4b564d03, 5}, {0x4b564d04, 6}, {0x4b564d05, 12}, {0x4b564d02, 4}, {0x4b564d01, 3}};
  for (const Row& row : rows) {
    for (const bool visible : {false, true}) {
      INFO("MSR 0x" << std::hex << row.msr << (visible ? " advertised" : " hidden"));
      s.machine.kvm_features = visible ? 0x01007efb | (1u << row.bit) : 0x01007efb & ~(1u << row.bit);
      Platform p(s);
      uint64_t v = 0;
      CHECK(p.vcpu(0).msrs().read(p.vcpu(0), row.msr, v) == (visible ? MsrStatus::Ok : MsrStatus::Gp));
    }
  }
}

TEST_CASE("pv-steal: at every steal-time update the guest's steal equals the host model's run delay",
          "[smp][host][steal]") {
  // The record starts at 0 and modern KVM never re-bases last_steal, so `steal` must equal
  // the vCPU's cumulative run delay at each update: the last pvsim_sched_in's value, or 0
  // before the first one. Halted time never appears (a halt adds no sched_in).
  Scenario s = shipped("pv-steal.json");
  std::ostringstream trace;
  PlatformOptions o;
  o.trace_text = &trace;
  const RunReport r = run_scenario(s, o);
  CHECK(r.success());
  std::map<unsigned, uint64_t> run_delay;
  std::map<unsigned, unsigned> updates;
  std::istringstream in(trace.str());
  std::string line;
  while (std::getline(in, line)) {
    unsigned cpu = 0;
    if (std::sscanf(line.c_str(), "CPU %u/", &cpu) != 1) continue;
    const size_t sin = line.find("pvsim_sched_in: ");
    if (sin != std::string::npos) {
      const size_t at = line.find(" run_delay ", sin);
      REQUIRE(at != std::string::npos);
      run_delay[cpu] = std::stoull(line.substr(at + 11));
      continue;
    }
    const size_t up = line.find("pvsim_steal: update: steal ");
    if (up == std::string::npos) continue;
    INFO(line);
    CHECK(std::stoull(line.substr(up + 27)) == run_delay[cpu]);
    ++updates[cpu];
  }
  for (unsigned v = 0; v < 4; ++v) {
    INFO("vCPU " << v);
    CHECK(updates[v] >= 5);
    CHECK(run_delay[v] == r.vcpus.at(v).run_delay_ns);  // the last sched_in had it all
  }
}
