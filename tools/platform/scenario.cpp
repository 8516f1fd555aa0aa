#include "tools/platform/scenario.h"

#include <fmt/format.h>

#include <cstdint>
#include <fstream>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <sstream>

#include "pvmsr/kvm_cpuid.h"

namespace pvsim {

using Json = nlohmann::ordered_json;  // keeps file order, so "first unknown key" is the first written

const char* run_stop_name(RunStop s) {
  switch (s) {
    case RunStop::Exit: return "exit";
    case RunStop::Finished: return "finished";
    case RunStop::Shutdown: return "shutdown";
    case RunStop::Deadlock: return "deadlock";
    case RunStop::Limit: return "limit";
    case RunStop::UnhandledIo: return "unhandled_io";
    case RunStop::Unsupported: return "unsupported";
  }
  return "?";
}

std::optional<uint64_t> parse_u64_string(std::string_view s) {
  if (s.empty()) return std::nullopt;
  uint64_t v = 0;
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    s.remove_prefix(2);
    if (s.size() > 16) return std::nullopt;
    for (char c : s) {
      unsigned d;
      if (c >= '0' && c <= '9') d = static_cast<unsigned>(c - '0');
      else if (c >= 'a' && c <= 'f') d = static_cast<unsigned>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') d = static_cast<unsigned>(c - 'A' + 10);
      else return std::nullopt;
      v = (v << 4) | d;
    }
    return v;
  }
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    const uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (~0ull - d) / 10) return std::nullopt;
    v = v * 10 + d;
  }
  return v;
}

namespace {

constexpr uint64_t kMaxExactJsonInt = 1ull << 53;  // README: JSON integers only up to 53 bits
constexpr uint64_t kMaxMs = 1'000'000'000'000ull;  // 10^12 ms: times 10^6 still fits in 64 bits
constexpr uint64_t kMaxUs = 1'000'000'000'000'000ull;  // 10^15 us = 10^18 ns

// JSON Pointer token escaping (RFC 6901 §3).
std::string pointer_token(std::string_view key) {
  std::string out;
  for (char c : key) {
    if (c == '~') out += "~0";
    else if (c == '/') out += "~1";
    else out += c;
  }
  return out;
}

// Short rendering of a JSON value for "got ..." (long strings/objects are cut).
std::string show(const Json& v) {
  std::string s = v.dump();
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

class Checker {
 public:
  explicit Checker(std::string file) : m_file(std::move(file)) {}

  [[noreturn]] void fail(std::string_view path, std::string_view problem) const {
    throw ScenarioError(fmt::format("{}: {}: {}", m_file, path.empty() ? "/" : path, problem));
  }

  static std::string child(std::string_view path, std::string_view key) {
    return fmt::format("{}/{}", path, pointer_token(key));
  }
  static std::string child(std::string_view path, size_t index) {
    return fmt::format("{}/{}", path, index);
  }

  void object(const Json& v, std::string_view path, std::initializer_list<std::string_view> keys) const {
    if (!v.is_object()) fail(path, fmt::format("must be an object, got {}", show(v)));
    for (auto it = v.begin(); it != v.end(); ++it) {
      bool known = false;
      for (auto k : keys) known |= (k == it.key());
      if (!known) {
        std::string allowed;
        for (auto k : keys) allowed += (allowed.empty() ? "" : ", ") + std::string(k);
        fail(child(path, it.key()), fmt::format("unknown key (allowed here: {})", allowed));
      }
    }
  }

  uint64_t integer(const Json& v, std::string_view path, uint64_t lo, uint64_t hi) const {
    if (v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0)) {
      const uint64_t x = v.get<uint64_t>();
      if (x >= lo && x <= hi) return x;
    }
    fail(path, fmt::format("must be an integer from {} to {}, got {}", lo, hi, show(v)));
  }

  int64_t signed_integer(const Json& v, std::string_view path, int64_t lo, int64_t hi) const {
    if (v.is_number_integer() &&
        !(v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))) {
      const int64_t x = v.get<int64_t>();
      if (x >= lo && x <= hi) return x;
    }
    fail(path, fmt::format("must be an integer from {} to {}, got {}", lo, hi, show(v)));
  }

  // One of `names` (as a JSON string); returns its index.
  size_t choice(const Json& v, std::string_view path,
                std::initializer_list<std::string_view> names) const {
    if (v.is_string()) {
      size_t i = 0;
      for (auto n : names) {
        if (n == v.get<std::string>()) return i;
        ++i;
      }
    }
    std::string list;
    size_t i = 0;
    for (auto n : names) {
      list += fmt::format("{}\"{}\"", i == 0 ? "" : (i + 1 == names.size() ? " or " : ", "), n);
      ++i;
    }
    fail(path, fmt::format("must be {}, got {}", list, show(v)));
  }

  // Hex string, decimal string, or a JSON integer up to 2^53.
  uint64_t u64(const Json& v, std::string_view path, uint64_t hi = ~0ull) const {
    std::optional<uint64_t> x;
    if (v.is_string()) {
      x = parse_u64_string(v.get<std::string>());
      if (!x) fail(path, fmt::format("must be a hex string like \"0x1f\" or a decimal string, got {}", show(v)));
    } else if (v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0)) {
      x = v.get<uint64_t>();
      if (*x > kMaxExactJsonInt)
        fail(path, fmt::format("integer {} does not fit in 53 bits; write it as a hex string", *x));
    } else {
      fail(path, fmt::format("must be a hex string like \"0x1f\", got {}", show(v)));
    }
    if (*x > hi) fail(path, fmt::format("must be at most 0x{:x}, got {}", hi, show(v)));
    return *x;
  }

  // Nanoseconds as a decimal string (JSON integers stop at 2^53, and host clocks in ns
  // since 1970 are near 2^61) or a JSON integer; at most `hi`.
  uint64_t nanoseconds(const Json& v, std::string_view path, uint64_t hi) const {
    std::optional<uint64_t> x;
    if (v.is_string()) {
      x = parse_u64_string(v.get<std::string>());
    } else if (v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0)) {
      x = v.get<uint64_t>();
      if (*x > kMaxExactJsonInt)
        fail(path,
             fmt::format("integer {} does not fit in 53 bits; write it as a decimal string", *x));
    }
    if (!x)
      fail(path, fmt::format(
                     "must be a decimal string like \"1700000000000000000\" or an integer, got {}",
                     show(v)));
    if (*x > hi) fail(path, fmt::format("must be at most {}, got {}", hi, show(v)));
    return *x;
  }

  std::string string(const Json& v, std::string_view path, bool non_empty = false) const {
    if (!v.is_string()) fail(path, fmt::format("must be a string, got {}", show(v)));
    std::string s = v.get<std::string>();
    if (non_empty && s.empty()) fail(path, "must not be empty");
    return s;
  }

  bool boolean(const Json& v, std::string_view path) const {
    if (!v.is_boolean()) fail(path, fmt::format("must be true or false, got {}", show(v)));
    return v.get<bool>();
  }

  std::vector<std::string> strings(const Json& v, std::string_view path) const {
    if (!v.is_array()) fail(path, fmt::format("must be an array of strings, got {}", show(v)));
    std::vector<std::string> out;
    for (size_t i = 0; i < v.size(); ++i) out.push_back(string(v[i], child(path, i)));
    return out;
  }

 private:
  std::string m_file;
};

constexpr std::string_view kRegisterNames[] = {
    "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8",  "r9",  "r10", "r11",
    "r12", "r13", "r14", "r15", "rip", "rflags", "cr0", "cr2", "cr3", "cr4", "cr8", "efer"};

void parse_machine(const Checker& c, const Json& m, MachineConfig& out) {
  const std::string p = "/machine";
  c.object(m, p,
           {"vcpus", "ram_mib", "tsc_khz", "tsc_start", "quantum", "exact_quantum", "kvm_cpuid",
            "ignore_unhandled_io", "start", "apic_bus_mhz", "ipi_latency_ns", "tsc_skew", "kvm"});
  if (m.contains("vcpus")) out.vcpus = static_cast<unsigned>(c.integer(m["vcpus"], p + "/vcpus", 1, 64));
  if (m.contains("ram_mib")) out.ram_mib = c.integer(m["ram_mib"], p + "/ram_mib", 2, 65536);
  if (m.contains("tsc_khz")) out.tsc_khz = c.integer(m["tsc_khz"], p + "/tsc_khz", 1000, 10'000'000);
  if (m.contains("tsc_start")) out.tsc_start = c.u64(m["tsc_start"], p + "/tsc_start");
  if (m.contains("quantum")) out.quantum = c.integer(m["quantum"], p + "/quantum", 1, 1'000'000'000);
  if (m.contains("exact_quantum")) out.exact_quantum = c.boolean(m["exact_quantum"], p + "/exact_quantum");
  if (m.contains("ignore_unhandled_io"))
    out.ignore_unhandled_io = c.boolean(m["ignore_unhandled_io"], p + "/ignore_unhandled_io");
  if (m.contains("kvm_cpuid")) {
    const Json& k = m["kvm_cpuid"];
    const std::string kp = p + "/kvm_cpuid";
    c.object(k, kp, {"features", "hints", "signature_eax"});
    if (k.contains("features")) {
      const Json& f = k["features"];
      if (f.is_array()) {
        uint32_t bits = 0;
        for (size_t i = 0; i < f.size(); ++i) {
          const std::string ip = Checker::child(kp + "/features", i);
          const std::string name = c.string(f[i], ip);
          auto bit = kvm_feature_bit(name);
          if (!bit) c.fail(ip, fmt::format("unknown KVM feature name \"{}\" (kvm-pv-spec §1.2 names, e.g. \"ASYNC_PF\")", name));
          bits |= 1u << *bit;
        }
        out.kvm_features = bits;
      } else {
        out.kvm_features = static_cast<uint32_t>(c.u64(f, kp + "/features", 0xffffffffu));
      }
    }
    if (k.contains("hints")) out.kvm_hints = static_cast<uint32_t>(c.u64(k["hints"], kp + "/hints", 0xffffffffu));
    if (k.contains("signature_eax"))
      out.kvm_signature_eax = static_cast<uint32_t>(c.u64(k["signature_eax"], kp + "/signature_eax", 0xffffffffu));
  }
  if (m.contains("start"))
    out.start =
        c.choice(m["start"], p + "/start", {"all", "bsp"}) == 0 ? StartMode::All : StartMode::Bsp;
  // 10 GHz is far above any real APIC bus; 1 MHz is far below (KVM runs its timer at 1 GHz).
  if (m.contains("apic_bus_mhz"))
    out.apic_bus_mhz = c.integer(m["apic_bus_mhz"], p + "/apic_bus_mhz", 1, 10'000);
  if (m.contains("ipi_latency_ns"))
    out.ipi_latency_ns = c.integer(m["ipi_latency_ns"], p + "/ipi_latency_ns", 0, 1'000'000'000);
  if (m.contains("tsc_skew")) {
    const Json& a = m["tsc_skew"];
    const std::string ap = p + "/tsc_skew";
    if (!a.is_array()) c.fail(ap, fmt::format("must be an array, got {}", show(a)));
    for (size_t i = 0; i < a.size(); ++i) {
      const std::string ip = Checker::child(ap, i);
      c.object(a[i], ip, {"vcpu", "offset", "ppm"});
      if (!a[i].contains("vcpu")) c.fail(ip, "missing required key \"vcpu\"");
      TscSkew t;
      t.vcpu = static_cast<unsigned>(c.integer(a[i]["vcpu"], ip + "/vcpu", 0, out.vcpus - 1));
      for (size_t j = 0; j < out.tsc_skew.size(); ++j)
        if (out.tsc_skew[j].vcpu == t.vcpu)
          c.fail(ip + "/vcpu",
                 fmt::format("vCPU {} is already listed at {}", t.vcpu, Checker::child(ap, j)));
      // Offsets are JSON integers, so they stop at 2^53 like every exact JSON integer here.
      if (a[i].contains("offset"))
        t.offset = c.signed_integer(a[i]["offset"], ip + "/offset",
                                    -static_cast<int64_t>(kMaxExactJsonInt),
                                    static_cast<int64_t>(kMaxExactJsonInt));
      // +-10% is already far beyond any crystal (tens of ppm); it keeps every rate > 0.
      if (a[i].contains("ppm"))
        t.ppm = static_cast<int32_t>(c.signed_integer(a[i]["ppm"], ip + "/ppm", -100'000, 100'000));
      out.tsc_skew.push_back(t);
    }
  }
  if (m.contains("kvm")) {
    const Json& k = m["kvm"];
    const std::string kp = p + "/kvm";
    c.object(
        k, kp,
        {"abi", "enforce_pv_cpuid", "master_clock", "kvmclock_sync_ms", "clock_update_delay_ms"});
    if (k.contains("abi"))
      out.kvm.abi =
          c.choice(k["abi"], kp + "/abi", {"modern", "orig"}) == 0 ? KvmAbi::Modern : KvmAbi::Orig;
    if (k.contains("enforce_pv_cpuid"))
      out.kvm.enforce_pv_cpuid = c.boolean(k["enforce_pv_cpuid"], kp + "/enforce_pv_cpuid");
    if (k.contains("master_clock"))
      out.kvm.master_clock = c.boolean(k["master_clock"], kp + "/master_clock");
    // Same ceiling as limits.max_virtual_ms: a period in ns still fits in 64 bits.
    if (k.contains("kvmclock_sync_ms"))
      out.kvm.kvmclock_sync_ms =
          c.integer(k["kvmclock_sync_ms"], kp + "/kvmclock_sync_ms", 0, kMaxMs);
    if (k.contains("clock_update_delay_ms"))
      out.kvm.clock_update_delay_ms =
          c.integer(k["clock_update_delay_ms"], kp + "/clock_update_delay_ms", 0, kMaxMs);
  }
}

void parse_host(const Checker& c, const Json& h, unsigned vcpus, HostConfig& out) {
  const std::string p = "/host";
  c.object(h, p,
           {"pcpus", "policy", "pin", "slice_us", "preempt", "wall_clock_ns", "monotonic_ns"});
  out.pcpus = vcpus;
  if (h.contains("pcpus"))
    out.pcpus = static_cast<unsigned>(c.integer(h["pcpus"], p + "/pcpus", 1, 256));
  if (h.contains("policy"))
    out.policy = c.choice(h["policy"], p + "/policy", {"pinned", "time_sliced"}) == 0
                     ? HostPolicy::Pinned
                     : HostPolicy::TimeSliced;
  if (h.contains("pin")) {
    const Json& a = h["pin"];
    const std::string ap = p + "/pin";
    if (out.policy != HostPolicy::Pinned) c.fail(ap, "only allowed with \"policy\": \"pinned\"");
    if (!a.is_array()) c.fail(ap, fmt::format("must be an array of pCPU numbers, got {}", show(a)));
    if (a.size() != vcpus)
      c.fail(ap, fmt::format("must have one entry per vCPU ({}), got {}", vcpus, a.size()));
    for (size_t i = 0; i < a.size(); ++i)
      out.pin.push_back(
          static_cast<unsigned>(c.integer(a[i], Checker::child(ap, i), 0, out.pcpus - 1)));
  }
  if (out.policy == HostPolicy::Pinned && out.pin.empty())
    for (unsigned i = 0; i < vcpus; ++i) out.pin.push_back(i % out.pcpus);
  if (h.contains("slice_us"))
    out.slice_ns = c.integer(h["slice_us"], p + "/slice_us", 1, 1'000'000) * 1000;
  if (h.contains("preempt")) {
    const Json& a = h["preempt"];
    const std::string ap = p + "/preempt";
    if (!a.is_array()) c.fail(ap, fmt::format("must be an array, got {}", show(a)));
    for (size_t i = 0; i < a.size(); ++i) {
      const std::string ip = Checker::child(ap, i);
      c.object(a[i], ip, {"vcpu", "from_us", "to_us"});
      for (const char* key : {"vcpu", "from_us", "to_us"})
        if (!a[i].contains(key)) c.fail(ip, fmt::format("missing required key \"{}\"", key));
      PreemptWindow w;
      w.vcpu = static_cast<unsigned>(c.integer(a[i]["vcpu"], ip + "/vcpu", 0, vcpus - 1));
      // 10^15 us = 10^18 ns, the largest max_virtual_ms (10^12 ms): later windows never matter.
      const uint64_t from = c.integer(a[i]["from_us"], ip + "/from_us", 0, kMaxUs);
      const uint64_t to = c.integer(a[i]["to_us"], ip + "/to_us", 0, kMaxUs);
      if (to <= from)
        c.fail(ip + "/to_us", fmt::format("must be greater than from_us ({}), got {}", from, to));
      w.from_ns = from * 1000;
      w.to_ns = to * 1000;
      out.preempt.push_back(w);
    }
  }
  // KVM keeps both host clocks as signed 64-bit nanoseconds (ktime_t; kvmclock_offset is
  // s64), and the host model adds up to 10^18 ns of virtual time to them: cap at 2^63 - 1.
  if (h.contains("wall_clock_ns"))
    out.wall_clock_ns = c.nanoseconds(h["wall_clock_ns"], p + "/wall_clock_ns", INT64_MAX);
  if (h.contains("monotonic_ns"))
    out.monotonic_ns = c.nanoseconds(h["monotonic_ns"], p + "/monotonic_ns", INT64_MAX);
}

void parse_expect(const Checker& c, const Json& e, const MachineConfig& machine, Expectations& out) {
  const std::string p = "/expect";
  c.object(e, p, {"stop", "exit_status", "console", "console_contains", "console_excludes",
                  "registers", "msrs", "trace_hash"});
  if (e.contains("stop")) {
    const std::string s = c.string(e["stop"], p + "/stop");
    for (RunStop r : {RunStop::Exit, RunStop::Finished, RunStop::Shutdown, RunStop::Deadlock,
                      RunStop::Limit, RunStop::UnhandledIo, RunStop::Unsupported})
      if (s == run_stop_name(r)) out.stop = r;
    if (!out.stop)
      c.fail(p + "/stop",
             fmt::format("must be one of \"exit\", \"finished\", \"shutdown\", \"deadlock\", "
                         "\"limit\", \"unhandled_io\", \"unsupported\", got {}",
                         show(e["stop"])));
  }
  if (e.contains("exit_status")) out.exit_status = static_cast<unsigned>(c.integer(e["exit_status"], p + "/exit_status", 0, 255));
  if (e.contains("console")) out.console = c.string(e["console"], p + "/console");
  if (e.contains("console_contains")) out.console_contains = c.strings(e["console_contains"], p + "/console_contains");
  if (e.contains("console_excludes")) out.console_excludes = c.strings(e["console_excludes"], p + "/console_excludes");
  if (e.contains("trace_hash")) {
    const std::string hp = p + "/trace_hash";
    if (!e["trace_hash"].is_string()) c.fail(hp, fmt::format("must be a hex string like \"0x0123456789abcdef\", got {}", show(e["trace_hash"])));
    out.trace_hash = c.u64(e["trace_hash"], hp);
  }
  auto vcpu_index = [&](const Json& item, const std::string& ip) {
    if (!item.contains("vcpu")) c.fail(ip, "missing required key \"vcpu\"");
    return static_cast<unsigned>(c.integer(item["vcpu"], ip + "/vcpu", 0, machine.vcpus - 1));
  };
  if (e.contains("registers")) {
    const Json& a = e["registers"];
    if (!a.is_array()) c.fail(p + "/registers", fmt::format("must be an array, got {}", show(a)));
    for (size_t i = 0; i < a.size(); ++i) {
      const std::string ip = Checker::child(p + "/registers", i);
      c.object(a[i], ip, {"vcpu", "reg", "value"});
      RegisterExpect r;
      r.vcpu = vcpu_index(a[i], ip);
      if (!a[i].contains("reg")) c.fail(ip, "missing required key \"reg\"");
      r.reg = c.string(a[i]["reg"], ip + "/reg");
      bool ok = false;
      for (auto n : kRegisterNames) ok |= (n == r.reg);
      if (!ok) c.fail(ip + "/reg", fmt::format("unknown register \"{}\" (rax..r15, rip, rflags, cr0, cr2, cr3, cr4, cr8, efer)", r.reg));
      if (!a[i].contains("value")) c.fail(ip, "missing required key \"value\"");
      r.value = c.u64(a[i]["value"], ip + "/value");
      out.registers.push_back(r);
    }
  }
  if (e.contains("msrs")) {
    const Json& a = e["msrs"];
    if (!a.is_array()) c.fail(p + "/msrs", fmt::format("must be an array, got {}", show(a)));
    for (size_t i = 0; i < a.size(); ++i) {
      const std::string ip = Checker::child(p + "/msrs", i);
      c.object(a[i], ip, {"vcpu", "msr", "value"});
      MsrExpect m;
      m.vcpu = vcpu_index(a[i], ip);
      if (!a[i].contains("msr")) c.fail(ip, "missing required key \"msr\"");
      m.msr = static_cast<uint32_t>(c.u64(a[i]["msr"], ip + "/msr", 0xffffffffu));
      if (!a[i].contains("value")) c.fail(ip, "missing required key \"value\"");
      m.value = c.u64(a[i]["value"], ip + "/value");
      out.msrs.push_back(m);
    }
  }
}

}  // namespace

const TscSkew* MachineConfig::skew_of(unsigned i) const {
  for (const TscSkew& t : tsc_skew)
    if (t.vcpu == i) return &t;
  return nullptr;
}

uint64_t MachineConfig::vcpu_tsc_hz(unsigned i) const {
  const uint64_t hz = tsc_hz();
  const TscSkew* t = skew_of(i);
  if (!t || t->ppm == 0) return hz;
  // hz * ppm <= 10^10 * 10^5 = 10^15: exact in int64. Round to nearest, ties away from 0.
  const int64_t num = static_cast<int64_t>(hz) * t->ppm;
  const int64_t delta = num >= 0 ? (num + 500'000) / 1'000'000 : -((-num + 500'000) / 1'000'000);
  return static_cast<uint64_t>(static_cast<int64_t>(hz) + delta);
}

uint64_t MachineConfig::vcpu_tsc_start(unsigned i) const {
  const TscSkew* t = skew_of(i);
  // Unsigned arithmetic wraps modulo 2^64, which is what a negative offset means here.
  return t ? tsc_start + static_cast<uint64_t>(t->offset) : tsc_start;
}

bool MachineConfig::tsc_matched() const {
  for (const TscSkew& t : tsc_skew)
    if (t.offset != 0 || t.ppm != 0) return false;
  return true;
}

Scenario parse_scenario(std::string_view text, const std::filesystem::path& file) {
  const std::string fname = file.string();
  const Checker c(fname);
  Json root;
  try {
    root = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/true,
                       /*ignore_comments=*/true);
  } catch (const Json::parse_error& e) {
    // nlohmann's what() is "[json.exception.parse_error.101] parse error at line L, column C: ...";
    // keep the part from "line" on, which is what a person needs.
    std::string msg = e.what();
    auto at = msg.find("line ");
    if (at != std::string::npos) msg = msg.substr(at);
    throw ScenarioError(fmt::format("{}: invalid JSON: {}", fname, msg));
  }

  Scenario s;
  s.file = file;
  c.object(root, "",
           {"name", "description", "seed", "machine", "host", "guest", "limits", "expect"});
  s.name = file.stem().string();
  if (root.contains("name")) s.name = c.string(root["name"], "/name", true);
  if (!root.contains("description")) c.fail("", "missing required key \"description\"");
  s.description = c.string(root["description"], "/description", true);
  if (root.contains("seed")) s.seed = c.integer(root["seed"], "/seed", 0, ~0ull);
  if (root.contains("machine")) parse_machine(c, root["machine"], s.machine);
  // After machine: host checks name vCPUs, and its defaults depend on machine.vcpus.
  if (root.contains("host")) {
    parse_host(c, root["host"], s.machine.vcpus, s.host);
  } else {
    parse_host(c, Json::object(), s.machine.vcpus, s.host);
  }

  if (!root.contains("guest")) c.fail("", "missing required key \"guest\"");
  const Json& g = root["guest"];
  c.object(g, "/guest", {"image", "format"});
  if (!g.contains("image")) c.fail("/guest", "missing required key \"image\"");
  s.guest.image_as_written = c.string(g["image"], "/guest/image", true);
  s.guest.image = file.parent_path() / s.guest.image_as_written;
  if (g.contains("format")) {
    const std::string f = c.string(g["format"], "/guest/format");
    if (f == "elf") s.guest.format = ImageFormat::Elf;
    else if (f == "flat") s.guest.format = ImageFormat::Flat;
    else c.fail("/guest/format", fmt::format("must be \"elf\" or \"flat\", got {}", show(g["format"])));
  }

  if (root.contains("limits")) {
    const Json& l = root["limits"];
    c.object(l, "/limits", {"max_instructions", "max_virtual_ms"});
    if (l.contains("max_instructions"))
      s.limits.max_instructions = c.integer(l["max_instructions"], "/limits/max_instructions", 1, kMaxExactJsonInt);
    // 10^12 ms keeps max_virtual_ms * 10^6 ns inside 64 bits.
    if (l.contains("max_virtual_ms"))
      s.limits.max_virtual_ms = c.integer(l["max_virtual_ms"], "/limits/max_virtual_ms", 1, 1'000'000'000'000ull);
  }
  if (root.contains("expect")) parse_expect(c, root["expect"], s.machine, s.expect);

  std::error_code ec;
  if (!std::filesystem::is_regular_file(s.guest.image, ec))
    c.fail("/guest/image", fmt::format("image file not found: {}", s.guest.image.string()));
  return s;
}

Scenario load_scenario(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw ScenarioError(fmt::format("{}: cannot open scenario file", file.string()));
  std::ostringstream ss;
  ss << in.rdbuf();
  return parse_scenario(ss.str(), file);
}

}  // namespace pvsim
