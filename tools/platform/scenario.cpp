#include "tools/platform/scenario.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <sstream>
#include <utility>

#include "core/types.h"
#include "pvmsr/kvm_cpuid.h"
#include "tools/platform/explore.h"
#include "tools/platform/files.h"
#include "tools/platform/json_text.h"
#include "tools/platform/text.h"

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
    case RunStop::Point: return "point";
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

// ---- reading the JSON text -----------------------------------------------------------------
// nlohmann's DOM parser would take the text as it is. A scenario is input from anybody, so
// the text goes through nlohmann's SAX interface into our own builder, which adds what
// the DOM parser does not check: nesting depth (a value nested 10^5 levels deep is not a
// scenario, and printing or destroying it recursively would exhaust the stack), duplicate
// keys (RFC 8259 §4 leaves their meaning open; nlohmann keeps the last one silently), and
// positions for every message about the text itself.
constexpr size_t kMaxDepth = 32;  // the deepest shipped scenario nests 5 levels
// Keys of one object. nlohmann's ordered_json finds a key by a linear scan, and so does the
// duplicate check below, so an object of n keys costs n^2: 80 000 keys took a minute. The
// largest object a scenario has (`machine`) knows 13 keys; anything far beyond is not a
// scenario.
constexpr size_t kMaxKeys = 256;

// An input iterator over the text that publishes how far the lexer has read, so the SAX
// callbacks know where they are (nlohmann passes a position only to parse_error).
struct CountingIt {
  using iterator_category = std::input_iterator_tag;
  using value_type = char;
  using difference_type = std::ptrdiff_t;
  using pointer = const char*;
  using reference = const char&;
  const char* p = nullptr;
  const char** shared = nullptr;
  reference operator*() const { return *p; }
  CountingIt& operator++() {
    ++p;
    *shared = p;
    return *this;
  }
  CountingIt operator++(int) {
    CountingIt t = *this;
    ++*this;
    return t;
  }
  bool operator==(const CountingIt& o) const { return p == o.p; }
  bool operator!=(const CountingIt& o) const { return p != o.p; }
};

class ScenarioSax {
 public:
  using number_integer_t = Json::number_integer_t;
  using number_unsigned_t = Json::number_unsigned_t;
  using number_float_t = Json::number_float_t;
  using string_t = Json::string_t;
  using binary_t = Json::binary_t;

  ScenarioSax(Json& root, std::string_view text, const char* const* read_to, std::string file)
      : m_root(root), m_text(text), m_read_to(read_to), m_file(std::move(file)) {}

  std::optional<std::string> error;

  bool null() { return put(nullptr); }
  bool boolean(bool v) { return put(v); }
  bool number_integer(number_integer_t v) { return put(v); }
  bool number_unsigned(number_unsigned_t v) { return put(v); }
  bool number_float(number_float_t v, const string_t&) { return put(v); }
  bool string(string_t& v) { return put(std::move(v)); }
  bool binary(binary_t& v) { return put(Json::binary(std::move(v))); }
  bool start_object(std::size_t) { return open(Json::object()); }
  bool start_array(std::size_t) { return open(Json::array()); }
  bool end_object() { return close(); }
  bool end_array() { return close(); }

  bool key(string_t& k) {
    Frame& f = m_stack.back();
    const size_t at = key_start(offset());
    if (f.keys.size() >= kMaxKeys) {
      f.key = k;
      return fail(path_here(), fmt::format("more than {} keys in one object (at {}); no scenario needs that", kMaxKeys,
                                           line_col(at)));
    }
    for (const auto& [name, where] : f.keys)
      if (name == k) {
        f.key = k;
        return fail(path_here(), fmt::format("duplicate key {} at {} (first at {}); a key may appear once per object",
                                        quote_display(k, 60), line_col(at), line_col(where)));
      }
    f.keys.emplace_back(k, at);
    f.key = std::move(k);
    return true;
  }

  bool parse_error(std::size_t position, const std::string& token, const nlohmann::detail::exception& e) {
    if (e.id == 406) {
      // number overflow ("1e400"): out_of_range, which carries no position of its own.
      return fail(path_here(), fmt::format("number {} is out of range (at {})", escape_display(token, 40),
                                               line_col(position >= token.size() ? position - token.size() : 0)));
    }
    // nlohmann's what() is "[json.exception.parse_error.101] parse error at line L, column C:
    // ..."; keep the part from "line" on, which is what a person needs, escaped (the last
    // token it quotes is raw input).
    std::string msg = e.what();
    const auto at = msg.find("line ");
    if (at != std::string::npos) msg = msg.substr(at);
    error = fmt::format("{}: invalid JSON: {}", m_file, escape_display(msg, 300));
    return false;
  }

 private:
  struct Frame {
    Json* value;
    std::string key;   // objects: the current key
    std::vector<std::pair<std::string, size_t>> keys;  // keys seen, with their offsets
  };

  size_t offset() const { return static_cast<size_t>(*m_read_to - m_text.data()); }

  // The lexer has just read a key's closing quote: find its opening quote, the nearest
  // earlier '"' that is not escaped (preceded by an even number of backslashes).
  size_t key_start(size_t end) const {
    size_t q = end >= 2 ? end - 2 : 0;
    while (q > 0) {
      if (m_text[q] == '"') {
        size_t bs = 0;
        while (q > bs && m_text[q - 1 - bs] == '\\') ++bs;
        if (bs % 2 == 0) return q;
      }
      --q;
    }
    return q;
  }

  std::string line_col(size_t off) const {
    size_t line = 1, col = 1;
    for (size_t i = 0; i < off && i < m_text.size(); ++i) {
      if (m_text[i] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    return fmt::format("line {}, column {}", line, col);
  }

  // JSON Pointer of the place the parser is at: in each open object its current key, in
  // each open array the element being filled (for the innermost one, the next element).
  std::string path_here() const {
    std::string p;
    for (size_t i = 0; i < m_stack.size(); ++i) {
      const Frame& f = m_stack[i];
      if (f.value->is_object()) {
        p += '/';
        p += pointer_token(f.key);
      } else {
        const size_t n = f.value->size();
        p += fmt::format("/{}", i + 1 == m_stack.size() ? n : n - 1);
      }
      if (p.size() > 200) return p.substr(0, 200) + "...";
    }
    return p;
  }

  bool fail(const std::string& where, const std::string& problem) {
    error = fmt::format("{}: {}: {}", m_file, where.empty() ? "/" : where, problem);
    return false;
  }

  Json* place(Json&& v) {
    if (m_stack.empty()) {
      m_root = std::move(v);
      return &m_root;
    }
    Frame& f = m_stack.back();
    if (f.value->is_array()) {
      f.value->push_back(std::move(v));
      return &f.value->back();
    }
    Json& slot = (*f.value)[f.key];
    slot = std::move(v);
    return &slot;
  }

  bool put(Json&& v) {
    place(std::move(v));
    return true;
  }

  bool open(Json&& container) {
    if (m_stack.size() >= kMaxDepth)
      return fail(path_here(), fmt::format("nested deeper than {} levels (at {}); no scenario needs that",
                                               kMaxDepth, line_col(offset() > 0 ? offset() - 1 : 0)));
    Json* c = place(std::move(container));
    m_stack.push_back(Frame{c, {}, {}});
    return true;
  }

  bool close() {
    m_stack.pop_back();
    return true;
  }

  Json& m_root;
  std::string_view m_text;
  const char* const* m_read_to;
  std::string m_file;
  std::vector<Frame> m_stack;
};

class Checker {
 public:
  explicit Checker(std::string file) : m_file(std::move(file)) {}  // already escaped for display

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
    object(v, path, std::vector<std::string_view>(keys));
  }
  void object(const Json& v, std::string_view path, const std::vector<std::string_view>& keys) const {
    if (!v.is_object()) fail(path, fmt::format("must be an object, got {}", show(v)));
    for (auto it = v.begin(); it != v.end(); ++it) {
      bool known = false;
      for (auto k : keys) known |= (k == it.key());
      if (!known) {
        std::string allowed;
        for (auto k : keys) allowed += (allowed.empty() ? "" : ", ") + std::string(k);
        fail(child(path, it.key()), fmt::format("unknown key{} (allowed here: {})",
                                                it.key().empty() ? " \"\" (the empty string)" : "", allowed));
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

// `machine.kvm.bugs` (pvmsr/README.md §2.5): an array of flag names to turn on, or an object
// of flag name -> true/false. A flag belongs to the profile whose code path it changes;
// naming one of the other profile is refused rather than silently ignored.
void parse_bugs(const Checker& c, const Json& v, const std::string& p, KvmConfig& kvm) {
  const bool orig = kvm.abi == KvmAbi::Orig;
  const auto set = [&](const std::string& name, bool on, const std::string& at) {
    for (const KvmBugInfo& b : kvm_bug_table()) {
      if (b.name != name) continue;
      if (!(orig ? b.in_orig : b.in_modern))
        c.fail(at, fmt::format("{} is a bug of the {} profile (machine.kvm.abi {}); this scenario uses \"{}\"",
                               quote_display(name, 60), orig ? "modern" : "orig", orig ? "\"modern\"" : "\"orig\"",
                               orig ? "orig" : "modern"));
      kvm.bugs.*b.flag = on;
      return;
    }
    std::string known;
    for (const KvmBugInfo& b : kvm_bug_table())
      if (orig ? b.in_orig : b.in_modern) known += fmt::format("{}{}", known.empty() ? "" : ", ", b.name);
    c.fail(at, fmt::format("unknown bug {} (the {} profile has: {}; `pvsim bugs` lists them all)",
                           quote_display(name, 60), orig ? "orig" : "modern", known));
  };
  if (v.is_array()) {
    for (size_t i = 0; i < v.size(); ++i) set(c.string(v[i], Checker::child(p, i), true), true, Checker::child(p, i));
    return;
  }
  if (!v.is_object())
    c.fail(p, fmt::format("must be an array of bug names or an object of name: true/false, got {}", show(v)));
  for (auto it = v.begin(); it != v.end(); ++it) {
    const std::string at = Checker::child(p, it.key());
    set(it.key(), c.boolean(it.value(), at), at);
  }
}

void parse_machine(const Checker& c, const Json& m, MachineConfig& out) {
  const std::string p = "/machine";
  c.object(m, p,
           {"vcpus", "ram_mib", "tsc_khz", "tsc_start", "quantum", "exact_quantum", "kvm_cpuid",
            "ignore_unhandled_io", "start", "apic_bus_mhz", "ipi_latency_ns", "tsc_skew", "kvm",
            "irqchip", "cpu_vendor", "x2apic"});
  if (m.contains("vcpus")) out.vcpus = static_cast<unsigned>(c.integer(m["vcpus"], p + "/vcpus", 1, 64));
  if (m.contains("ram_mib")) out.ram_mib = c.integer(m["ram_mib"], p + "/ram_mib", 2, 65536);
  if (m.contains("tsc_khz")) out.tsc_khz = c.integer(m["tsc_khz"], p + "/tsc_khz", 1000, 10'000'000);
  if (m.contains("tsc_start")) out.tsc_start = c.u64(m["tsc_start"], p + "/tsc_start");
  if (m.contains("quantum")) out.quantum = c.integer(m["quantum"], p + "/quantum", 1, 1'000'000'000);
  if (m.contains("exact_quantum")) out.exact_quantum = c.boolean(m["exact_quantum"], p + "/exact_quantum");
  if (m.contains("x2apic")) out.x2apic = c.boolean(m["x2apic"], p + "/x2apic");
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
          if (!bit)
            c.fail(ip, fmt::format("unknown KVM feature name {} (the KVM_FEATURE_* names without the prefix, "
                                   "e.g. \"ASYNC_PF\"; pvmsr/README.md lists them)",
                                   quote_display(name, 60)));
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
  if (m.contains("irqchip"))
    // QEMU's kernel_irqchip values name the same two cases: "split" keeps the LAPICs in KVM (only
    // the IOAPIC moves out), so for KVM's lapic_in_kernel() it is "kernel"; "none" and
    // "userspace" both mean a VMM that emulates the LAPIC itself (kernel_irqchip=off).
    out.irqchip = c.choice(m["irqchip"], p + "/irqchip", {"kernel", "split", "none", "userspace"}) < 2
                      ? IrqChip::Kernel
                      : IrqChip::Userspace;
  if (m.contains("cpu_vendor"))
    out.cpu_vendor =
        c.choice(m["cpu_vendor"], p + "/cpu_vendor", {"intel", "amd"}) == 0 ? CpuVendor::Intel : CpuVendor::Amd;
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
        {"abi", "enforce_pv_cpuid", "master_clock", "kvmclock_sync_ms", "clock_update_delay_ms",
         "fix_hypercall_insn", "map_gpa_range_exit", "map_gpa_range_ret", "migration_control", "bugs"});
    if (k.contains("abi"))
      out.kvm.abi =
          c.choice(k["abi"], kp + "/abi", {"modern", "orig"}) == 0 ? KvmAbi::Modern : KvmAbi::Orig;
    out.kvm.bugs = kvm_bug_defaults(out.kvm.abi == KvmAbi::Orig ? AbiProfile::Orig : AbiProfile::Modern);
    if (k.contains("bugs")) parse_bugs(c, k["bugs"], kp + "/bugs", out.kvm);
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
    if (k.contains("fix_hypercall_insn"))
      out.kvm.fix_hypercall_insn = c.boolean(k["fix_hypercall_insn"], kp + "/fix_hypercall_insn");
    if (k.contains("map_gpa_range_exit"))
      out.kvm.map_gpa_range_exit = c.boolean(k["map_gpa_range_exit"], kp + "/map_gpa_range_exit");
    if (k.contains("map_gpa_range_ret")) {
      if (!out.kvm.map_gpa_range_exit)
        c.fail(kp + "/map_gpa_range_ret", "only meaningful with \"map_gpa_range_exit\": true");
      // The VMM writes a u64 into the exit's return field; as a guest RAX it is any value.
      out.kvm.map_gpa_range_ret =
          c.signed_integer(k["map_gpa_range_ret"], kp + "/map_gpa_range_ret", INT64_MIN, INT64_MAX);
    }
    if (k.contains("migration_control"))
      out.kvm.migration_control = c.boolean(k["migration_control"], kp + "/migration_control");
  }
}

// ---- host.memory ---------------------------------------------------------------------------

// 10^12 ns (1000 s) per fault-in: far beyond any disk, and start + latency stays far inside
// 64 bits for every virtual time the limits allow (10^18 ns).
constexpr uint64_t kMaxFaultInNs = 1'000'000'000'000ull;
constexpr unsigned kMaxIoWorkers = 1024;

// `gpa` and `size` of a range object (the caller has checked its keys): page-aligned, size
// > 0, inside RAM. Compared as gpa < ram and size <= ram - gpa, so no sum can wrap.
GpaRange parse_gpa_range(const Checker& c, const Json& v, const std::string& ip, const MachineConfig& machine) {
  for (const char* key : {"gpa", "size"})
    if (!v.contains(key)) c.fail(ip, fmt::format("missing required key \"{}\"", key));
  const uint64_t ram = machine.ram_bytes();
  GpaRange r;
  const std::string gp = ip + "/gpa", sp = ip + "/size";
  r.gpa = c.u64(v["gpa"], gp);
  if (r.gpa % kPageSize != 0)
    c.fail(gp, fmt::format("must be a multiple of the page size 0x{:x}, got {}", kPageSize, show(v["gpa"])));
  if (r.gpa >= ram)
    c.fail(gp, fmt::format("must be below the end of RAM at 0x{:x} (machine.ram_mib {}), got {}", ram,
                           machine.ram_mib, show(v["gpa"])));
  r.size = c.u64(v["size"], sp);
  if (r.size == 0) c.fail(sp, "must not be 0");
  if (r.size % kPageSize != 0)
    c.fail(sp, fmt::format("must be a multiple of the page size 0x{:x}, got {}", kPageSize, show(v["size"])));
  if (r.size > ram - r.gpa)
    c.fail(sp, fmt::format("must be at most 0x{:x}: RAM ends at 0x{:x} (machine.ram_mib {}), got {}", ram - r.gpa,
                           ram, machine.ram_mib, show(v["size"])));
  return r;
}

// `fault_in_ns`: an integer (a constant) or {"uniform_ns": [lo, hi]}.
FaultInLatency parse_latency(const Checker& c, const Json& v, const std::string& path) {
  FaultInLatency l;
  if (v.is_object()) {
    c.object(v, path, {"uniform_ns"});
    if (!v.contains("uniform_ns")) c.fail(path, "missing required key \"uniform_ns\"");
    const Json& u = v["uniform_ns"];
    const std::string up = path + "/uniform_ns";
    if (!u.is_array() || u.size() != 2)
      c.fail(up, fmt::format("must be [lo, hi], two integers of ns, got {}", show(u)));
    l.lo_ns = c.integer(u[0], up + "/0", 0, kMaxFaultInNs);
    l.hi_ns = c.integer(u[1], up + "/1", 0, kMaxFaultInNs);
    if (l.hi_ns < l.lo_ns)
      c.fail(up + "/1", fmt::format("must be at least the lower bound {} (both ends are included), got {}", l.lo_ns,
                                    l.hi_ns));
    l.uniform = true;
    return l;
  }
  if (!v.is_number())
    c.fail(path, fmt::format("must be an integer of ns or {{\"uniform_ns\": [lo, hi]}}, got {}", show(v)));
  l.lo_ns = l.hi_ns = c.integer(v, path, 0, kMaxFaultInNs);
  return l;
}

// Pages covered by the union of `ranges` (overlaps counted once).
uint64_t union_pages(std::vector<GpaRange> ranges) {
  std::sort(ranges.begin(), ranges.end(), [](const GpaRange& a, const GpaRange& b) { return a.gpa < b.gpa; });
  uint64_t bytes = 0, covered_to = 0;  // ranges end at most at the end of RAM: no wrap
  for (const GpaRange& r : ranges) {
    const uint64_t end = r.gpa + r.size;
    if (end <= covered_to) continue;
    bytes += end - std::max(r.gpa, covered_to);
    covered_to = end;
  }
  return bytes / kPageSize;
}

void parse_host_memory(const Checker& c, const Json& m, const MachineConfig& machine, HostMemoryConfig& out) {
  const std::string p = "/host/memory";
  c.object(m, p, {"swapped_out", "evict", "resident_limit_pages", "fault_in_ns", "latency_ranges", "io_workers"});
  auto array = [&](const char* key) -> const Json& {
    const Json& a = m[key];
    if (!a.is_array()) c.fail(Checker::child(p, key), fmt::format("must be an array, got {}", show(a)));
    return a;
  };
  if (m.contains("swapped_out")) {
    const Json& a = array("swapped_out");
    for (size_t i = 0; i < a.size(); ++i) {
      const std::string ip = Checker::child(p + "/swapped_out", i);
      c.object(a[i], ip, {"gpa", "size"});
      out.swapped_out.push_back(parse_gpa_range(c, a[i], ip, machine));
    }
  }
  if (m.contains("evict")) {
    const Json& a = array("evict");
    for (size_t i = 0; i < a.size(); ++i) {
      const std::string ip = Checker::child(p + "/evict", i);
      c.object(a[i], ip, {"at_us", "gpa", "size"});
      if (!a[i].contains("at_us")) c.fail(ip, "missing required key \"at_us\"");
      MemoryEviction e;
      // Same ceiling as host.preempt: 10^15 us = 10^18 ns, the largest max_virtual_ms.
      e.at_ns = c.integer(a[i]["at_us"], ip + "/at_us", 0, kMaxUs) * 1000;
      e.range = parse_gpa_range(c, a[i], ip, machine);
      out.evict.push_back(e);
    }
  }
  if (m.contains("fault_in_ns")) out.fault_in = parse_latency(c, m["fault_in_ns"], p + "/fault_in_ns");
  if (m.contains("latency_ranges")) {
    const Json& a = array("latency_ranges");
    const std::string ap = p + "/latency_ranges";
    for (size_t i = 0; i < a.size(); ++i) {
      const std::string ip = Checker::child(ap, i);
      c.object(a[i], ip, {"gpa", "size", "fault_in_ns"});
      LatencyRange r;
      r.range = parse_gpa_range(c, a[i], ip, machine);
      if (!a[i].contains("fault_in_ns")) c.fail(ip, "missing required key \"fault_in_ns\"");
      r.latency = parse_latency(c, a[i]["fault_in_ns"], ip + "/fault_in_ns");
      out.latency_ranges.push_back(r);
    }
    // Overlapping ranges are refused rather than resolved by a "first match" rule: every
    // page then has exactly one latency, whatever the order of the entries. Sorted by start,
    // some overlap exists exactly when two neighbours overlap; of those pairs, the one whose
    // later entry comes first in the file is reported.
    std::vector<size_t> order(out.latency_ranges.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    const auto& lr = out.latency_ranges;
    std::sort(order.begin(), order.end(), [&](size_t x, size_t y) {
      return lr[x].range.gpa < lr[y].range.gpa || (lr[x].range.gpa == lr[y].range.gpa && x < y);
    });
    std::optional<std::pair<size_t, size_t>> clash;  // (later entry, earlier entry)
    for (size_t k = 1; k < order.size(); ++k) {
      const GpaRange& prev = lr[order[k - 1]].range;
      if (lr[order[k]].range.gpa < prev.gpa + prev.size) {
        const auto pair = std::minmax(order[k - 1], order[k]);
        if (!clash || pair.second < clash->first) clash = std::pair(pair.second, pair.first);
      }
    }
    if (clash) {
      const GpaRange& other = lr[clash->second].range;
      c.fail(Checker::child(ap, clash->first),
             fmt::format("overlaps {} (0x{:x}-0x{:x}); latency ranges may not overlap",
                         Checker::child(ap, clash->second), other.gpa, other.gpa + other.size - 1));
    }
  }
  if (m.contains("io_workers"))
    out.io_workers = static_cast<unsigned>(c.integer(m["io_workers"], p + "/io_workers", 1, kMaxIoWorkers));
  if (m.contains("resident_limit_pages")) {
    const std::string lp = p + "/resident_limit_pages";
    const uint64_t ram_pages = machine.ram_bytes() / kPageSize;
    out.resident_limit_pages = c.integer(m["resident_limit_pages"], lp, 0, ram_pages);
    // Pages become resident only when a fetch completes, and each completion evicts to
    // stay within the limit; starting above it would need an eviction nobody asked for.
    const uint64_t swapped = union_pages(out.swapped_out);
    const uint64_t at_start = ram_pages - swapped;
    if (out.resident_limit_pages != 0 && out.resident_limit_pages < at_start)
      c.fail(lp, fmt::format("must be 0 (no limit) or at least the {} pages resident at time 0 (RAM's {} pages "
                             "minus {} swapped out), got {}; list more of RAM in swapped_out for a smaller limit",
                             at_start, ram_pages, swapped, out.resident_limit_pages));
  }
}

void parse_host(const Checker& c, const Json& h, const MachineConfig& machine, HostConfig& out) {
  const std::string p = "/host";
  const unsigned vcpus = machine.vcpus;
  c.object(h, p,
           {"pcpus", "policy", "pin", "slice_us", "preempt", "noise", "pause", "pv_store_ns",
            "wall_clock_ns", "monotonic_ns", "memory"});
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
  // The three kinds of host window share one shape: an object with `extra` keys and a span
  // written either as from_us/to_us or, to place a race at an exact instant, as
  // from_ns/to_ns.
  auto windows = [&](const char* key, std::initializer_list<const char*> extra, auto&& add) {
    const Json& a = h[key];
    const std::string ap = p + "/" + key;
    if (!a.is_array()) c.fail(ap, fmt::format("must be an array, got {}", show(a)));
    for (size_t i = 0; i < a.size(); ++i) {
      const std::string ip = Checker::child(ap, i);
      std::vector<std::string_view> keys(extra.begin(), extra.end());
      for (const char* k : {"from_us", "to_us", "from_ns", "to_ns"}) keys.push_back(k);
      c.object(a[i], ip, keys);
      for (const char* k : extra)
        if (!a[i].contains(k)) c.fail(ip, fmt::format("missing required key \"{}\"", k));
      const bool us = a[i].contains("from_us") || a[i].contains("to_us");
      const bool ns = a[i].contains("from_ns") || a[i].contains("to_ns");
      if (us && ns) c.fail(ip, "give the window in microseconds (from_us, to_us) or in nanoseconds (from_ns, to_ns), not both");
      const char* from_key = ns ? "from_ns" : "from_us";
      const char* to_key = ns ? "to_ns" : "to_us";
      for (const char* k : {from_key, to_key})
        if (!a[i].contains(k)) c.fail(ip, fmt::format("missing required key \"{}\"", k));
      // 10^15 us = 10^18 ns, the largest max_virtual_ms (10^12 ms): later windows never matter.
      const uint64_t max = ns ? kMaxUs * 1000 : kMaxUs;
      const uint64_t from = c.integer(a[i][from_key], ip + "/" + from_key, 0, max);
      const uint64_t to = c.integer(a[i][to_key], ip + "/" + to_key, 0, max);
      if (to <= from)
        c.fail(ip + "/" + to_key, fmt::format("must be greater than {} ({}), got {}", from_key, from, to));
      add(a[i], ip, ns ? from : from * 1000, ns ? to : to * 1000);
    }
  };
  if (h.contains("preempt"))
    windows("preempt", {"vcpu"}, [&](const Json& w, const std::string& ip, uint64_t from, uint64_t to) {
      const auto v = static_cast<unsigned>(c.integer(w["vcpu"], ip + "/vcpu", 0, vcpus - 1));
      out.preempt.push_back({v, from, to});
    });
  if (h.contains("noise"))
    windows("noise", {"pcpu"}, [&](const Json& w, const std::string& ip, uint64_t from, uint64_t to) {
      const auto pc = static_cast<unsigned>(c.integer(w["pcpu"], ip + "/pcpu", 0, out.pcpus - 1));
      out.noise.push_back({pc, from, to});
    });
  if (h.contains("pause"))
    windows("pause", {}, [&](const Json&, const std::string&, uint64_t from, uint64_t to) {
      out.pause.push_back({from, to});
    });
  // A store takes nanoseconds on real hardware; a whole millisecond per store is already far
  // beyond anything but a deliberately stretched race window.
  if (h.contains("pv_store_ns")) out.pv_store_ns = c.integer(h["pv_store_ns"], p + "/pv_store_ns", 0, 1'000'000);
  // KVM keeps both host clocks as signed 64-bit nanoseconds (ktime_t; kvmclock_offset is
  // s64), and the host model adds up to 10^18 ns of virtual time to them: cap at 2^63 - 1.
  if (h.contains("wall_clock_ns"))
    out.wall_clock_ns = c.nanoseconds(h["wall_clock_ns"], p + "/wall_clock_ns", INT64_MAX);
  if (h.contains("monotonic_ns"))
    out.monotonic_ns = c.nanoseconds(h["monotonic_ns"], p + "/monotonic_ns", INT64_MAX);
  if (h.contains("memory")) parse_host_memory(c, h["memory"], machine, out.memory);
}

// A trace pattern: non-empty, one line (trace lines never contain a line break), and not
// only wildcards (which would match every line and claim nothing).
std::string trace_pattern(const Checker& c, const Json& v, const std::string& path) {
  const std::string pat = c.string(v, path, true);
  if (pat.find_first_of("\n\r") != std::string::npos)
    c.fail(path, fmt::format("a trace line has no line break, so this never matches: {}", quote_display(pat, 80)));
  if (pat.find_first_not_of('*') == std::string::npos) c.fail(path, "must contain more than wildcards");
  return pat;
}

void parse_trace_expect(const Checker& c, const Json& a, const std::string& ap, const MachineConfig& machine,
                        std::vector<TraceExpect>& out) {
  if (!a.is_array()) c.fail(ap, fmt::format("must be an array, got {}", show(a)));
  for (size_t i = 0; i < a.size(); ++i) {
    const std::string ip = Checker::child(ap, i);
    const Json& t = a[i];
    c.object(t, ip, {"name", "in_order", "consecutive", "absent", "count", "min", "max", "vcpu"});
    if (!t.contains("name")) c.fail(ip, "missing required key \"name\"");
    TraceExpect x;
    x.name = c.string(t["name"], ip + "/name", true);
    // Names are cited in descriptions as [name]: keep them to a shape that cannot be
    // confused with prose or with KVM's own bracketed words.
    bool ok = x.name.size() <= 40 && x.name[0] >= 'a' && x.name[0] <= 'z';
    for (char ch : x.name) ok &= (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-';
    if (!ok)
      c.fail(ip + "/name", fmt::format("must be lower-case letters, digits and '-', starting with a letter, "
                                       "at most 40 characters, got {}", show(t["name"])));
    for (size_t j = 0; j < out.size(); ++j)
      if (out[j].name == x.name)
        c.fail(ip + "/name", fmt::format("name \"{}\" is already used at {}", x.name, Checker::child(ap, j)));
    const int kinds = int(t.contains("in_order")) + int(t.contains("absent")) + int(t.contains("count"));
    if (kinds != 1) c.fail(ip, "must have exactly one of \"in_order\", \"absent\" and \"count\"");
    if (t.contains("in_order")) {
      x.kind = TraceExpect::Kind::InOrder;
      const Json& l = t["in_order"];
      const std::string lp = ip + "/in_order";
      if (!l.is_array() || l.empty()) c.fail(lp, fmt::format("must be a non-empty array of patterns, got {}", show(l)));
      for (size_t j = 0; j < l.size(); ++j) x.patterns.push_back(trace_pattern(c, l[j], Checker::child(lp, j)));
      if (t.contains("consecutive")) x.consecutive = c.boolean(t["consecutive"], ip + "/consecutive");
    } else {
      for (const char* k : {"consecutive"})
        if (t.contains(k)) c.fail(Checker::child(ip, k), "only allowed with \"in_order\"");
    }
    if (t.contains("absent")) {
      x.kind = TraceExpect::Kind::Absent;
      x.patterns.push_back(trace_pattern(c, t["absent"], ip + "/absent"));
    }
    if (t.contains("count")) {
      x.kind = TraceExpect::Kind::Count;
      x.patterns.push_back(trace_pattern(c, t["count"], ip + "/count"));
      if (!t.contains("min") && !t.contains("max")) c.fail(ip, "\"count\" needs \"min\", \"max\" or both");
      x.min = t.contains("min") ? c.integer(t["min"], ip + "/min", 0, kMaxExactJsonInt) : 0;
      if (t.contains("max")) x.max = c.integer(t["max"], ip + "/max", x.min, kMaxExactJsonInt);
    } else {
      for (const char* k : {"min", "max"})
        if (t.contains(k)) c.fail(Checker::child(ip, k), "only allowed with \"count\"");
    }
    if (t.contains("vcpu")) x.vcpu = static_cast<unsigned>(c.integer(t["vcpu"], ip + "/vcpu", 0, machine.vcpus - 1));
    out.push_back(std::move(x));
  }
}

// A description points at the trace expectations that pin its claims by writing their
// names in brackets ("... the NMI is accepted like any interrupt [nmi-accepted]"). Both
// directions are checked, so neither a claim nor its check can go stale alone: every
// expect.trace name must be cited, and every [name]-shaped citation must exist.
void check_description_references(const Checker& c, const Scenario& s) {
  const std::string& d = s.description;
  std::vector<std::string> cited;
  for (size_t i = 0; i < d.size(); ++i) {
    if (d[i] != '[' || i + 1 >= d.size() || d[i + 1] < 'a' || d[i + 1] > 'z') continue;
    size_t j = i + 1;
    while (j < d.size() && ((d[j] >= 'a' && d[j] <= 'z') || (d[j] >= '0' && d[j] <= '9') || d[j] == '-')) ++j;
    if (j < d.size() && d[j] == ']') cited.emplace_back(d.substr(i + 1, j - i - 1));
  }
  for (const std::string& n : cited) {
    bool found = false;
    for (const TraceExpect& t : s.expect.trace) found |= t.name == n;
    if (!found)
      c.fail("/description", fmt::format("cites [{}], but /expect/trace has no entry named \"{}\"", n, n));
  }
  for (size_t i = 0; i < s.expect.trace.size(); ++i) {
    bool found = false;
    for (const std::string& n : cited) found |= n == s.expect.trace[i].name;
    if (!found)
      c.fail(Checker::child("/expect/trace", i) + "/name",
             fmt::format("\"{}\" is not cited in /description; write [{}] where the description makes the claim "
                         "it checks", s.expect.trace[i].name, s.expect.trace[i].name));
  }
}

void parse_expect(const Checker& c, const Json& e, const MachineConfig& machine, Expectations& out) {
  const std::string p = "/expect";
  c.object(e, p, {"stop", "exit_status", "console", "console_contains", "console_excludes",
                  "registers", "msrs", "trace_hash", "trace", "golden_trace"});
  if (e.contains("trace")) parse_trace_expect(c, e["trace"], p + "/trace", machine, out.trace);
  if (e.contains("golden_trace")) {
    out.golden_trace_as_written = c.string(e["golden_trace"], p + "/golden_trace", true);
    if (out.golden_trace_as_written.find('\0') != std::string::npos)
      c.fail(p + "/golden_trace", "contains a NUL character, which no file name can");
  }
  if (e.contains("stop")) {
    const std::string s = c.string(e["stop"], p + "/stop");
    for (RunStop r : {RunStop::Exit, RunStop::Finished, RunStop::Shutdown, RunStop::Deadlock,
                      RunStop::Limit, RunStop::UnhandledIo, RunStop::Unsupported, RunStop::Point})
      if (s == run_stop_name(r)) out.stop = r;
    if (!out.stop)
      c.fail(p + "/stop",
             fmt::format("must be one of \"exit\", \"finished\", \"shutdown\", \"deadlock\", "
                         "\"limit\", \"unhandled_io\", \"unsupported\", \"point\", got {}",
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
      if (!ok)
        c.fail(ip + "/reg", fmt::format("unknown register {} (rax..r15, rip, rflags, cr0, cr2, cr3, cr4, cr8, efer)",
                                        quote_display(r.reg, 60)));
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

namespace {
// What the schedule parser cannot know: the machine's vCPUs, pCPUs and RAM. `bad(point,
// problem)` reports a problem in the entry's point (true) or action (false).
template <class Bad>
void check_schedule_entry(const Scenario& s, const ScheduleEntry& e, Bad&& bad) {
  const unsigned vcpus = s.machine.vcpus;
  if (e.at.kind != GuestPoint::Kind::Time && e.at.vcpu >= vcpus)
    bad(true, fmt::format("vCPU {} does not exist (machine.vcpus is {})", e.at.vcpu, vcpus));
  const HostAction& a = e.action;
  switch (a.kind) {
    case ActionKind::Preempt:
    case ActionKind::Migrate:
    case ActionKind::Ipi:
    case ActionKind::KvmclockUpdate:
    case ActionKind::StealUpdate:
    case ActionKind::Store:
    case ActionKind::Run:
      if (a.vcpu >= vcpus) bad(false, fmt::format("vCPU {} does not exist (machine.vcpus is {})", a.vcpu, vcpus));
      break;
    default:
      break;
  }
  if (a.kind == ActionKind::Migrate && a.pcpu >= s.host.pcpus)
    bad(false, fmt::format("pCPU {} does not exist (host.pcpus is {})", a.pcpu, s.host.pcpus));
  const uint64_t ram = s.machine.ram_bytes();
  if (a.kind == ActionKind::Evict && (a.gpa >= ram || a.size > ram - a.gpa))
    bad(false, fmt::format("the range {:#x}+{:#x} is not inside guest RAM ({} MiB)", a.gpa, a.size, s.machine.ram_mib));
  if ((a.kind == ActionKind::Complete || a.kind == ActionKind::Delay) && !a.by_token && a.gpa >= ram)
    bad(false, fmt::format("{:#x} is not inside guest RAM ({} MiB)", a.gpa, s.machine.ram_mib));
}
}  // namespace

// `explore` (scenarios/README.md "explore"): the same choices as pvsim explore's options, as
// JSON; the texts go through the option parsers, so both accept exactly the same things.
ExploreSection parse_explore(const Checker& c, const Json& v, const std::string& fname, const Scenario& s) {
  c.object(v, "/explore", {"window", "place", "interleave", "bound", "pct", "depth", "outcome", "expect"});
  ExploreSection x;
  ExploreSpec& spec = x.spec;
  const auto where = [&](std::string_view key) { return fmt::format("{}: /explore/{}", fname, key); };
  if (!v.contains("window")) c.fail("/explore", "missing required key \"window\"");
  const unsigned modes = static_cast<unsigned>(v.contains("place") + v.contains("interleave") + v.contains("pct"));
  if (modes != 1) c.fail("/explore", "give exactly one of \"place\", \"interleave\" or \"pct\"");
  if (v.contains("bound") && !v.contains("interleave")) c.fail("/explore/bound", "only meaningful with \"interleave\"");
  if (v.contains("depth") && !v.contains("pct")) c.fail("/explore/depth", "only meaningful with \"pct\"");
  const auto vcpu_ok = [&](unsigned n, const std::string& at) {
    if (n >= s.machine.vcpus)
      c.fail(at, fmt::format("vCPU {} does not exist (machine.vcpus is {})", n, s.machine.vcpus));
  };
  try {
    parse_window(c.string(v["window"], "/explore/window", true), spec, where("window"));
    vcpu_ok(spec.vcpu, "/explore/window");
    if (v.contains("place")) {
      spec.vary = ExploreSpec::Vary::Placement;
      try {
        spec.action = parse_action(c.string(v["place"], "/explore/place", true), where("place"));
      } catch (const ScheduleError& e) {
        throw ExploreError(e.what());
      }
      ScheduleEntry probe;
      probe.at.kind = GuestPoint::Kind::Insn;
      probe.at.vcpu = spec.vcpu;
      probe.action = spec.action;
      check_schedule_entry(s, probe, [&](bool, std::string_view problem) { c.fail("/explore/place", problem); });
    }
    if (v.contains("interleave")) {
      spec.vary = ExploreSpec::Vary::Interleave;
      spec.vcpus = parse_vcpu_list(c.string(v["interleave"], "/explore/interleave", true), where("interleave"));
      if (spec.vcpus.size() < 2) c.fail("/explore/interleave", "at least two vCPUs take turns");
      for (size_t i = 0; i < spec.vcpus.size(); ++i) {
        vcpu_ok(spec.vcpus[i], "/explore/interleave");
        for (size_t j = 0; j < i; ++j)
          if (spec.vcpus[j] == spec.vcpus[i])
            c.fail("/explore/interleave", fmt::format("vCPU {} is named twice", spec.vcpus[i]));
      }
      if (v.contains("bound")) spec.bound = static_cast<unsigned>(c.integer(v["bound"], "/explore/bound", 1, 8));
    }
    if (v.contains("pct")) {
      spec.vary = ExploreSpec::Vary::Pct;
      spec.schedules = c.integer(v["pct"], "/explore/pct", 1, 1'000'000'000);
      if (v.contains("depth")) spec.depth = static_cast<unsigned>(c.integer(v["depth"], "/explore/depth", 1, 9));
      spec.seed = s.seed;  // PCT draws from the scenario's seed
      for (unsigned n = 0; n < s.machine.vcpus; ++n) spec.vcpus.push_back(n);
    }
    if (v.contains("outcome")) {
      const Json& o = v["outcome"];
      if (!o.is_array()) c.fail("/explore/outcome", fmt::format("must be an array of outcome fields, got {}", show(o)));
      spec.outcome.clear();
      for (size_t i = 0; i < o.size(); ++i)
        spec.outcome.push_back(c.string(o[i], Checker::child("/explore/outcome", i), true));
      check_outcome_fields(s.machine.vcpus, spec.outcome, where("outcome"));
    } else {
      spec.outcome = {"stop", "exit"};  // pvsim explore's --outcome default
    }
  } catch (const ExploreError& e) {
    throw ScenarioError(e.what());
  }
  if (v.contains("expect")) {
    const Json& e = v["expect"];
    c.object(e, "/explore/expect", {"variants", "failing", "groups"});
    if (e.contains("variants")) x.expect.variants = c.integer(e["variants"], "/explore/expect/variants", 1, kMaxExactJsonInt);
    if (e.contains("failing")) x.expect.failing = c.integer(e["failing"], "/explore/expect/failing", 0, kMaxExactJsonInt);
    if (e.contains("groups")) x.expect.groups = c.integer(e["groups"], "/explore/expect/groups", 1, kMaxExactJsonInt);
    uint64_t n = 0;
    try {
      n = variant_count(spec);
    } catch (const ExploreError& err) {
      c.fail("/explore", err.what());
    }
    if (x.expect.variants && *x.expect.variants != n)
      c.fail("/explore/expect/variants", fmt::format("the exploration has {} variants, not {}", n, *x.expect.variants));
    if (x.expect.failing && *x.expect.failing > n)
      c.fail("/explore/expect/failing", fmt::format("more than the {} variants of the exploration", n));
  }
  return x;
}

// ---- guest.boot, guest.cmdline, guest.modules ------------------------------------------------

namespace {

// A string the guest reads as a C string: a NUL inside would end it early, silently.
std::string guest_c_string(const Checker& c, const Json& v, const std::string& path, size_t max_bytes) {
  std::string str = c.string(v, path);
  if (str.size() > max_bytes)
    c.fail(path, fmt::format("is {} bytes long; at most {} are allowed", str.size(), max_bytes));
  if (str.find('\0') != std::string::npos)
    c.fail(path, "contains a NUL character, which would end the string the kernel reads early");
  return str;
}

// After guest.image and guest.format; `machine` is the scenario's machine object, if any
// (machine.start's default depends on the boot protocol).
void parse_boot(const Checker& c, const Json& g, const Json* machine, const std::filesystem::path& file,
                Scenario& s) {
  GuestConfig& out = s.guest;
  if (g.contains("boot"))
    out.boot = c.choice(g["boot"], "/guest/boot", {"direct", "multiboot"}) == 0 ? BootProtocol::Direct
                                                                                : BootProtocol::Multiboot;
  if (out.boot == BootProtocol::Direct) {
    for (const char* k : {"cmdline", "modules"})
      if (g.contains(k))
        c.fail(fmt::format("/guest/{}", k), "only meaningful with \"boot\": \"multiboot\"");
    return;
  }
  // Multiboot kernels are loaded from their ELF program headers; the a.out kludge (header
  // flag 16) that a flat image would need is not supported (multiboot.h).
  if (out.format == ImageFormat::Flat)
    c.fail("/guest/format", "\"flat\" cannot be used with \"boot\": \"multiboot\": pvsim loads a Multiboot "
                            "kernel from its ELF program headers (the a.out kludge is not supported)");
  if (g.contains("cmdline")) out.cmdline = guest_c_string(c, g["cmdline"], "/guest/cmdline", kMaxCmdlineBytes);
  if (g.contains("modules")) {
    const Json& a = g["modules"];
    const std::string ap = "/guest/modules";
    if (!a.is_array()) c.fail(ap, fmt::format("must be an array of {{\"path\": ..., \"string\": ...}}, got {}", show(a)));
    if (a.size() > kMaxModules) c.fail(ap, fmt::format("has {} entries; at most {} are allowed", a.size(), kMaxModules));
    for (size_t i = 0; i < a.size(); ++i) {
      const std::string ip = Checker::child(ap, i);
      c.object(a[i], ip, {"path", "string"});
      if (!a[i].contains("path")) c.fail(ip, "missing required key \"path\"");
      BootModule m;
      m.path_as_written = c.string(a[i]["path"], ip + "/path", true);
      if (m.path_as_written.find('\0') != std::string::npos)
        c.fail(ip + "/path", fmt::format("contains a NUL character, which no file name can: {}",
                                         quote_display(m.path_as_written, 100)));
      m.path = file.parent_path() / m.path_as_written;  // an absolute path stays as written
      m.string = a[i].contains("string") ? guest_c_string(c, a[i]["string"], ip + "/string", kMaxCmdlineBytes)
                                         : m.path_as_written;
      if (m.string.size() > kMaxCmdlineBytes)
        c.fail(ip + "/path", fmt::format("is {} bytes long, too long to be the module's string (at most {}); "
                                         "give \"string\" explicitly", m.string.size(), kMaxCmdlineBytes));
      out.modules.push_back(std::move(m));
    }
  }
  // A Multiboot loader runs on the bootstrap processor after firmware and hands over to
  // the kernel there; the application processors still wait for INIT and SIPI, as after
  // reset (SDM Vol. 3A §9.4 "Multiple-Processor (MP) Initialization").
  if (machine && machine->is_object() && machine->contains("start")) {
    if (s.machine.start == StartMode::All)
      c.fail("/machine/start", "\"all\" cannot be used with \"boot\": \"multiboot\": a Multiboot kernel starts "
                               "with only vCPU 0 running and wakes the others with INIT and SIPI (omit it, or write \"bsp\")");
  }
  s.machine.start = StartMode::Bsp;
  if (s.machine.ram_mib > kMaxMultibootRamMib)
    c.fail("/machine/ram_mib",
           fmt::format("{} MiB is more than {} MiB, the most a Multiboot guest can have here: pvsim's RAM is one "
                       "region from GPA 0, and a PC with more RAM splits it around the 32-bit PCI hole, which "
                       "the Multiboot memory map would have to describe", s.machine.ram_mib, kMaxMultibootRamMib));
}

// Module files must exist when the scenario loads, as the image must (their bytes are read
// when the image is loaded; multiboot.cpp).
void check_module_files(const Checker& c, const GuestConfig& g) {
  for (size_t i = 0; i < g.modules.size(); ++i) {
    const std::string ip = fmt::format("/guest/modules/{}/path", i);
    const std::filesystem::path& p = g.modules[i].path;
    if (auto kind = non_regular_kind(p)) {
      if (*kind == "missing") c.fail(ip, fmt::format("module file not found: {}", escape_display(p.string(), 400)));
      c.fail(ip, fmt::format("{} is {}, not a module file", escape_display(p.string(), 400), *kind));
    }
    std::error_code ec;
    const uint64_t size = std::filesystem::file_size(p, ec);
    if (ec) c.fail(ip, fmt::format("{}: cannot read its size: {}", escape_display(p.string(), 400), ec.message()));
    if (size > kMaxModuleBytes)
      c.fail(ip, fmt::format("{} is {} bytes; a module may be at most {}", escape_display(p.string(), 400), size,
                             size_words(kMaxModuleBytes)));
  }
}

}  // namespace

Scenario parse_scenario(std::string_view text, const std::filesystem::path& file) {
  const std::string fname = escape_display(file.string(), 400);
  const Checker c(fname);
  Json root;
  {
    const char* read_to = text.data();
    ScenarioSax sax(root, text, &read_to, fname);
    const CountingIt first{text.data(), &read_to};
    const CountingIt last{text.data() + text.size(), &read_to};
    const bool ok = Json::sax_parse(first, last, &sax, nlohmann::detail::input_format_t::json,
                                    /*strict=*/true, /*ignore_comments=*/true);
    if (!ok || sax.error) {
      root = Json();  // destroyed here, iteratively (basic_json's destructor keeps its own stack)
      throw ScenarioError(sax.error ? *sax.error : fmt::format("{}: invalid JSON", fname));
    }
  }

  Scenario s;
  s.file = file;
  c.object(root, "",
           {"name", "description", "seed", "machine", "host", "guest", "limits", "expect", "schedule", "explore"});
  s.name = file.stem().string();
  if (root.contains("name")) s.name = c.string(root["name"], "/name", true);
  if (!root.contains("description")) c.fail("", "missing required key \"description\"");
  s.description = c.string(root["description"], "/description", true);
  if (root.contains("seed")) s.seed = c.integer(root["seed"], "/seed", 0, ~0ull);
  if (root.contains("machine")) parse_machine(c, root["machine"], s.machine);
  // After machine: host checks name vCPUs, and its defaults depend on machine.vcpus.
  if (root.contains("host")) {
    parse_host(c, root["host"], s.machine, s.host);
  } else {
    parse_host(c, Json::object(), s.machine, s.host);
  }

  if (!root.contains("guest")) c.fail("", "missing required key \"guest\"");
  const Json& g = root["guest"];
  c.object(g, "/guest", {"image", "format", "boot", "cmdline", "modules"});
  if (!g.contains("image")) c.fail("/guest", "missing required key \"image\"");
  s.guest.image_as_written = c.string(g["image"], "/guest/image", true);
  // JSON can carry "\u0000"; a POSIX path cannot, and the C library would stop at it and
  // open a different file ("hello.elf\u0000junk" would boot hello.elf).
  if (s.guest.image_as_written.find('\0') != std::string::npos)
    c.fail("/guest/image", fmt::format("contains a NUL character, which no file name can: {}",
                                       quote_display(s.guest.image_as_written, 100)));
  s.guest.image = file.parent_path() / s.guest.image_as_written;
  if (g.contains("format")) {
    const std::string f = c.string(g["format"], "/guest/format");
    if (f == "elf") s.guest.format = ImageFormat::Elf;
    else if (f == "flat") s.guest.format = ImageFormat::Flat;
    else c.fail("/guest/format", fmt::format("must be \"elf\" or \"flat\", got {}", show(g["format"])));
  }
  parse_boot(c, g, root.contains("machine") ? &root["machine"] : nullptr, file, s);

  if (root.contains("limits")) {
    const Json& l = root["limits"];
    c.object(l, "/limits", {"max_instructions", "max_virtual_ms", "max_console_bytes", "max_trace_bytes"});
    if (l.contains("max_console_bytes"))
      s.limits.max_console_bytes = c.integer(l["max_console_bytes"], "/limits/max_console_bytes", 0, kMaxExactJsonInt);
    if (l.contains("max_trace_bytes"))
      s.limits.max_trace_bytes = c.integer(l["max_trace_bytes"], "/limits/max_trace_bytes", 0, kMaxExactJsonInt);
    if (l.contains("max_instructions"))
      s.limits.max_instructions = c.integer(l["max_instructions"], "/limits/max_instructions", 1, kMaxExactJsonInt);
    // 10^12 ms keeps max_virtual_ms * 10^6 ns inside 64 bits.
    if (l.contains("max_virtual_ms"))
      s.limits.max_virtual_ms = c.integer(l["max_virtual_ms"], "/limits/max_virtual_ms", 1, 1'000'000'000'000ull);
  }
  if (root.contains("expect")) parse_expect(c, root["expect"], s.machine, s.expect);
  if (root.contains("schedule")) {
    const Json& j = root["schedule"];
    Schedule sch;
    try {
      sch = parse_schedule_json(j, fname);
    } catch (const ScheduleError& e) {
      throw ScenarioError(e.what());
    }
    for (size_t k = 0; k < sch.entries.size(); ++k) {
      const std::string at = fmt::format("/schedule/{}", k);
      const bool obj = j[k].is_object();
      check_schedule_entry(s, sch.entries[k], [&](bool point, std::string_view problem) {
        c.fail(obj ? at + (point ? "/at" : "/do") : at, problem);
      });
      s.schedule.entries.push_back(sch.entries[k]);
      s.schedule_where.push_back(fmt::format("{}: {}", fname, at));
    }
  }
  if (root.contains("explore")) s.explore = parse_explore(c, root["explore"], fname, s);
  if (!s.expect.golden_trace_as_written.empty())
    s.expect.golden_trace = file.parent_path() / s.expect.golden_trace_as_written;
  check_description_references(c, s);

  if (auto kind = non_regular_kind(s.guest.image)) {
    if (*kind == "missing")
      c.fail("/guest/image", fmt::format("image file not found: {}", escape_display(s.guest.image.string(), 400)));
    c.fail("/guest/image", fmt::format("{} is {}, not an image file", escape_display(s.guest.image.string(), 400), *kind));
  }
  check_module_files(c, s.guest);
  return s;
}

void add_schedule(Scenario& s, const Schedule& extra, std::string_view origin) {
  if (s.schedule.entries.size() + extra.entries.size() > kMaxScheduleEntries)
    throw ScenarioError(fmt::format("{}: the scenario's schedule and this one together have more than {} entries",
                                    origin, kMaxScheduleEntries));
  for (size_t k = 0; k < extra.entries.size(); ++k) {
    check_schedule_entry(s, extra.entries[k], [&](bool, std::string_view problem) {
      throw ScenarioError(fmt::format("{}: entry {}: {}", origin, k + 1, problem));
    });
    s.schedule.entries.push_back(extra.entries[k]);
    s.schedule_where.push_back(fmt::format("{}: entry {}", origin, k + 1));
  }
}

Scenario load_scenario(const std::filesystem::path& file) {
  std::string text;
  try {
    text = read_regular_file(file, kMaxScenarioBytes, "scenario file");
  } catch (const FileError& e) {
    throw ScenarioError(e.what());
  }
  return parse_scenario(text, file);
}

}  // namespace pvsim
