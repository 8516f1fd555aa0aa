#include "tools/platform/platform.h"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

#include "core/vcpu.h"
#include "tools/platform/boot.h"

namespace pvsim {

namespace {

uint64_t size_mask(unsigned size) { return size >= 8 ? ~0ull : (1ull << (size * 8)) - 1; }

LoadedImage load_or_explain(GuestMemory& mem, const Scenario& s) {
  try {
    return load_image_file(mem, s.guest.image, s.guest.format);
  } catch (const LoadError& e) {
    throw ScenarioError(fmt::format("{}: /guest/image: {}", s.file.string(), e.what()));
  }
}

}  // namespace

bool RunReport::success() const {
  if (expectations_given) return expectation_failures.empty();
  return stop == RunStop::Exit || stop == RunStop::Finished;
}

Platform::Platform(const Scenario& s, const PlatformOptions& opts)
    : m_scenario(s),
      m_mem(s.machine.ram_bytes()),
      m_exit(s.machine.vcpus),
      m_kvm_cpuid(s.machine.kvm_features, s.machine.kvm_hints, s.machine.kvm_signature_eax),
      m_cpuid(s.machine.vcpus, m_kvm_cpuid),
      m_poll_control(s.machine.vcpus) {
  m_tracer.set_text_output(opts.trace_text);
  m_tracer.set_jsonl_output(opts.trace_jsonl);
  m_console.set_live_output(opts.console_live);
  // Fixed wiring: a failure here is a programming error, not a scenario problem.
  if (!m_bus.add(DebugCon::kPort, 1, m_console, "debugcon") ||
      !m_bus.add(ExitPorts::kBase, ExitPorts::kCount, m_exit, "exit-ports"))
    throw std::logic_error("platform: overlapping port claims");

  build_boot_memory(m_mem);
  m_image = load_or_explain(m_mem, s);

  const unsigned n = s.machine.vcpus;
  for (unsigned i = 0; i < n; ++i) {
    VcpuConfig cfg;
    cfg.index = i;
    cfg.count = n;
    cfg.tsc_hz = s.machine.tsc_hz();
    cfg.tsc_start = s.machine.tsc_start;
    m_vcpus.push_back(std::make_unique<Vcpu>(cfg, m_mem, *this, m_tracer));
    m_poll_control.attach(*m_vcpus.back());
    init_vcpu_boot_state(*m_vcpus.back(), i, n, s.machine.ram_bytes(), m_image.entry);
  }
  m_state.assign(n, VState::Runnable);
}

Platform::~Platform() = default;

IoStatus Platform::pio_read(Vcpu& vcpu, uint16_t port, unsigned size, uint32_t& value) {
  if (m_bus.read(vcpu, port, size, value) == IoStatus::Ok) {
    value &= static_cast<uint32_t>(size_mask(size));
    return IoStatus::Ok;
  }
  if (!m_scenario.machine.ignore_unhandled_io) return IoStatus::Unhandled;
  value = static_cast<uint32_t>(size_mask(size));  // floating bus: all ones
  return IoStatus::Ok;
}

IoStatus Platform::pio_write(Vcpu& vcpu, uint16_t port, unsigned size, uint32_t value) {
  if (m_bus.write(vcpu, port, size, value) == IoStatus::Ok) return IoStatus::Ok;
  return m_scenario.machine.ignore_unhandled_io ? IoStatus::Ok : IoStatus::Unhandled;
}

// Nothing is mapped outside RAM yet (the LAPIC page arrives with the LAPIC): every
// access is a hole, reported like an unhandled KVM_EXIT_MMIO unless the scenario
// chose to ignore them.
IoStatus Platform::mmio_read(Vcpu&, Gpa, unsigned size, uint64_t& value) {
  if (!m_scenario.machine.ignore_unhandled_io) return IoStatus::Unhandled;
  value = size_mask(size);
  return IoStatus::Ok;
}

IoStatus Platform::mmio_write(Vcpu&, Gpa, unsigned, uint64_t) {
  return m_scenario.machine.ignore_unhandled_io ? IoStatus::Ok : IoStatus::Unhandled;
}

CpuidResult Platform::cpuid(Vcpu& vcpu, uint32_t leaf, uint32_t subleaf) {
  return m_cpuid.lookup(vcpu.index(), leaf, subleaf);
}

std::string Platform::describe(unsigned i) const {
  const Vcpu& v = *m_vcpus[i];
  const char* word = "running";
  switch (m_state[i]) {
    case VState::Runnable: word = "runnable"; break;
    case VState::Halted: word = "halted"; break;
    case VState::Finished: word = "finished"; break;
    case VState::AtLimit: word = "at the virtual time limit"; break;
  }
  std::string sym = m_image.symbolize(v.rip());
  return fmt::format("vCPU {} {} at rip 0x{:x}{}{} (IF={})", i, word, v.rip(), sym.empty() ? "" : " ",
                     sym, (v.rflags() >> 9) & 1);
}

RunReport Platform::run() {
  if (m_ran) throw std::logic_error("Platform::run called twice");
  m_ran = true;
  const Scenario& s = m_scenario;
  const unsigned n = vcpu_count();
  const uint64_t hz = s.machine.tsc_hz();
  const Cycles limit_cycles(ns_to_cycles(s.limits.max_virtual_ms * 1'000'000ull, hz));

  RunReport r;
  uint64_t total = 0;
  bool stopped = false;
  auto stop = [&](RunStop why, unsigned who, std::string detail) {
    r.stop = why;
    r.stop_vcpu = who;
    r.stop_detail = std::move(detail);
    stopped = true;
  };

  while (!stopped) {
    // Smallest local time first, ties to the lowest index (strict < keeps the first).
    int pick = -1;
    for (unsigned i = 0; i < n; ++i)
      if (m_state[i] == VState::Runnable &&
          (pick < 0 || m_vcpus[i]->cycles() < m_vcpus[static_cast<unsigned>(pick)]->cycles()))
        pick = static_cast<int>(i);
    if (pick < 0) {
      if (std::any_of(m_state.begin(), m_state.end(), [](VState st) { return st == VState::AtLimit; })) {
        stop(RunStop::Limit, 0, fmt::format("max_virtual_ms ({} ms) reached", s.limits.max_virtual_ms));
      } else if (std::all_of(m_state.begin(), m_state.end(), [](VState st) { return st == VState::Finished; })) {
        stop(RunStop::Finished, 0, "every vCPU wrote port 0xf5");
        r.exit_status = 0;
      } else {
        // No interrupt source exists yet (the LAPIC comes later), so a halted vCPU can
        // never wake: with nobody runnable, the VM is stuck.
        std::string d = "every vCPU is halted or finished and nothing can wake one:";
        for (unsigned i = 0; i < n; ++i) d += (i ? "; " : " ") + describe(i);
        stop(RunStop::Deadlock, 0, d);
      }
      break;
    }
    const unsigned i = static_cast<unsigned>(pick);
    Vcpu& v = *m_vcpus[i];
    const uint64_t budget = std::min(s.machine.quantum, s.limits.max_instructions - total);
    const Vcpu::RunResult res = v.run(budget, limit_cycles);
    total += res.executed;
    switch (res.reason) {
      case StopReason::None:
      case StopReason::InsnLimit:
      case StopReason::Deadline:
        break;
      case StopReason::Halted:
        m_state[i] = VState::Halted;
        break;
      case StopReason::VcpuFinished:
        m_state[i] = VState::Finished;
        break;
      case StopReason::VmExitRequested:
        stop(RunStop::Exit, i, fmt::format("vCPU {} wrote port 0xf4", m_exit.exit_vcpu()));
        r.stop_vcpu = m_exit.exit_vcpu();
        r.exit_status = m_exit.exit_status();
        break;
      case StopReason::Shutdown:
        stop(RunStop::Shutdown, i, fmt::format("vCPU {} shut down: {}", i, v.stop_detail()));
        r.stop_dump = v.dump_state();
        break;
      case StopReason::IoError:
        stop(RunStop::UnhandledIo, i, fmt::format("vCPU {}: {}", i, v.stop_detail()));
        r.stop_dump = v.dump_state();
        break;
    }
    if (stopped) break;
    if (m_state[i] == VState::Runnable && v.cycles() >= limit_cycles) m_state[i] = VState::AtLimit;
    if (total >= s.limits.max_instructions)
      stop(RunStop::Limit, i, fmt::format("max_instructions ({}) reached", s.limits.max_instructions));
  }

  r.instructions = total;
  for (unsigned i = 0; i < n; ++i) {
    const Vcpu& v = *m_vcpus[i];
    VcpuReport vr{i, v.instructions(), v.cycles().value(), v.now().value(), describe(i)};
    r.virtual_ns = std::max(r.virtual_ns, vr.virtual_ns);
    r.vcpus.push_back(std::move(vr));
  }
  // The stop is the last canonical event, stamped with the stopping vCPU's time (the
  // furthest time for VM-wide stops such as deadlock and limit).
  const bool vm_wide = r.stop == RunStop::Deadlock || r.stop == RunStop::Limit || r.stop == RunStop::Finished;
  const Tick ts = vm_wide ? Tick(r.virtual_ns) : m_vcpus[r.stop_vcpu]->now();
  m_tracer.pvsim_stop(ts, r.stop_vcpu, run_stop_name(r.stop), r.stop_detail);

  r.console = m_console.output();
  r.trace_hash = m_tracer.hash();
  r.trace_events = m_tracer.event_count();
  check_expectations(r);
  return r;
}

RunReport run_scenario(const Scenario& s, const PlatformOptions& opts) {
  Platform p(s, opts);
  return p.run();
}

}  // namespace pvsim
