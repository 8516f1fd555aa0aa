// tools/platform/schedule.h — host actions pinned to exact guest points: the data, the two
// parsers (the `--schedule` string and the scenario's `schedule` section) and the
// canonical formatter. scenarios/README.md "schedule" is the user's description of the
// syntax; what each action does to the VM is the platform's business, not this file's.
//
// Every problem is one ScheduleError whose what() is a single line:
//   ORIGIN: position N: problem                     (parse_schedule; N = 1-based character)
//   FILE: /schedule/2/do: position 9: problem       (parse_schedule_json; a JSON pointer)
//   FILE: /schedule/1: problem
// Text quoted from the input is escaped (text.h), so a message never spans two lines.
// Nothing here throws anything else on any input (the parsers are fuzzed).
#pragma once
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace pvsim {

class ScheduleError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Where in the guest's execution an action happens.
struct GuestPoint {
  enum class Kind : uint8_t { Insn, Rip, Time };
  Kind kind = Kind::Time;
  unsigned vcpu = 0;        // Insn, Rip
  uint64_t insn = 0;        // Insn: the boundary at which the vCPU has retired exactly `insn` instructions
  uint64_t rip = 0;         // Rip given as an address (0 when given as a symbol)
  std::string symbol;       // Rip given as a symbol (the platform resolves it); empty otherwise
  uint64_t sym_offset = 0;  // symbol+offset (0 when given as an address)
  uint64_t hit = 1;         // Rip: the K-th time the vCPU reaches it (1-based)
  uint64_t time_ns = 0;     // Time: virtual time
  bool operator==(const GuestPoint&) const = default;
};

enum class ActionKind : uint8_t {
  Preempt,         // preempt vN DURATION
  Migrate,         // migrate vN pM
  Complete,        // complete gpa=HEX | token=HEX
  Delay,           // delay gpa=HEX | token=HEX DURATION
  Evict,           // evict gpa=HEX [+SIZE]
  Ipi,             // ipi vN VECTOR
  KvmclockUpdate,  // kvmclock vN
  StealUpdate,     // steal vN
  Pause,           // pause DURATION
  Store,           // store vN
  Run,             // run vN
  RunAuto,         // run auto
  Stop             // stop
};

// The action's keyword as written ("preempt", ..., "run" for both Run and RunAuto).
const char* action_name(ActionKind k);

// One action. Fields an action kind does not use stay at their defaults, so two parsed
// actions compare equal exactly when they were written alike (up to spelling).
struct HostAction {
  ActionKind kind = ActionKind::Stop;
  unsigned vcpu = 0;      // Preempt, Migrate, Ipi, KvmclockUpdate, StealUpdate, Store, Run
  unsigned pcpu = 0;      // Migrate
  uint64_t ns = 0;        // Preempt, Delay, Pause: > 0
  uint64_t gpa = 0;       // Complete/Delay with !by_token, Evict: page-aligned
  uint64_t size = 0;      // Evict: bytes, a non-zero multiple of 4096 (4096 when not written)
  bool by_token = false;  // Complete, Delay: the target is an async PF token, not a gpa
  uint32_t token = 0;     // Complete, Delay with by_token (never 0xffffffff, the wake-all)
  uint8_t vector = 0;     // Ipi: 16..255
  bool operator==(const HostAction&) const = default;
};

struct ScheduleEntry {
  GuestPoint at;
  HostAction action;
  std::string why;  // JSON form only: text for students; never part of the string form
  bool operator==(const ScheduleEntry&) const = default;
};

struct Schedule {
  std::vector<ScheduleEntry> entries;  // in the order written
  bool operator==(const Schedule&) const = default;
};

// Bounds on one schedule (string or JSON section); the platform may combine a scenario's
// schedule with the option's and should hold the sum to the same entry bound.
constexpr size_t kMaxScheduleEntries = 100'000;
constexpr size_t kMaxScheduleTextBytes = 1u << 20;  // string form: the text; JSON: at/do/strings summed
constexpr unsigned kMaxScheduleCpuIndex = 1023;     // vN, pM; the machine's own bounds are checked later
constexpr uint64_t kMaxScheduleNs = 1'000'000'000'000'000'000ull;  // 10^18 ns, as limits.max_virtual_ms
constexpr uint64_t kSchedulePageSize = 4096;

// The string form: "POINT: ACTION; POINT: ACTION ..." (scenarios/README.md "schedule").
// `origin` starts every message verbatim ("--schedule").
Schedule parse_schedule(std::string_view text, std::string_view origin);

// One point or one action alone (the JSON form's "at" and "do"); same messages.
GuestPoint parse_point(std::string_view text, std::string_view origin);
HostAction parse_action(std::string_view text, std::string_view origin);

// The scenario's `schedule` value (the array itself). `file` starts every message verbatim
// (the scenario parser passes its display name), followed by a JSON pointer under
// /schedule. Both JSON flavours are accepted; the scenario parser uses ordered_json, so
// "the first unknown key" is the first one written.
Schedule parse_schedule_json(const nlohmann::json& j, std::string_view file);
Schedule parse_schedule_json(const nlohmann::ordered_json& j, std::string_view file);

// Canonical string forms: parse_schedule(format_schedule(s), o) == s for every parsed,
// non-empty s, except that `why` is dropped. Entries are joined by "; "; numbers of
// instructions and hits are decimal, addresses, offsets, sizes and tokens 0x lower-case
// hex, vectors decimal, durations in the largest unit that divides them exactly (2ms,
// 1500ns, 0ns). An empty schedule formats as "" (which parse_schedule refuses).
std::string format_schedule(const Schedule& s);
std::string format_point(const GuestPoint& p);
std::string format_action(const HostAction& a);
std::string format_duration(uint64_t ns);

}  // namespace pvsim
