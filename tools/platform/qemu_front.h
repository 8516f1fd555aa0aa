// tools/platform/qemu_front.h — `pvsim qemu`: a qemu-system-x86_64 command line in, a
// pvsim run out (tools/platform/README.md "kvm-unit-tests through pvsim qemu").
//
// kvm-unit-tests' runner (run_tests.sh, x86/run) starts `$QEMU` with QEMU's options, probes
// it for its help text, version and device list, and reads the guest's serial output and
// the process status. This front door accepts the subset of options that runner passes,
// turns them into an ordinary scenario (JSON text, parsed by parse_scenario like any
// scenario file) and runs it exactly as `pvsim run` would, with the console on stdout and
// nothing else on stdout or stderr unless the run ends abnormally.
//
// The one host input: host.wall_clock_ns is the host's CLOCK_REALTIME read once at start
// (kvm-unit-tests' kvmclock_test compares the guest's wall clock with `date +%s` taken
// just before), or PVSIM_QEMU_WALLCLOCK_NS when set, for reproducible runs.
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "tools/platform/scenario.h"

namespace pvsim {

struct RunReport;

// The QEMU version whose behaviour the front door mirrors (probe output, exit statuses,
// option syntax): Debian 12's QEMU, which the research runs were measured against.
inline constexpr std::string_view kQemuMimickedVersion = "7.2.0";

// Refused or malformed command line. what() is the message without the "pvsim qemu: "
// prefix, one line, naming the option as QEMU does ("-cpu qemu64,+avx: ...").
class QemuUsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// One Multiboot module from -initrd: QEMU's "FILE[ ARGS][,FILE[ ARGS]...]" form. The module
// string is the whole "FILE ARGS" piece as given; the file is the piece up to the first space.
struct QemuModule {
  std::string path;    // as given
  std::string string;  // what the guest sees as the module string
};

enum class QemuCpuModel : uint8_t { Qemu64, Max, Host };

struct QemuOptions {
  // What the command line asks for: a run, or one of the probes that print and exit 0.
  enum class Action : uint8_t { Run, Help, Version, DeviceHelp, CpuHelp };
  Action action = Action::Run;

  std::optional<std::string> kernel;  // -kernel, as given
  std::optional<std::string> append;  // -append
  std::optional<std::string> initrd;  // -initrd, as given
  std::vector<QemuModule> modules;    // -initrd split into modules

  unsigned vcpus = 1;      // -smp
  uint64_t ram_mib = 128;  // -m (QEMU's default: 128 MiB)
  QemuCpuModel cpu_model = QemuCpuModel::Qemu64;  // QEMU's default model for x86_64
  bool x2apic = true;                             // -cpu ...,±x2apic
  CpuVendor vendor = CpuVendor::Intel;            // -cpu ...,vendor=
  bool irqchip_userspace = false;                 // -machine kernel-irqchip=off
  bool serial_stdio = true;                       // -serial stdio (default) or none/null
  // The host side of guest RAM: how much of it may be resident at once, in MiB (0 = all).
  // Not a QEMU option: the environment's PVSIM_QEMU_RESIDENT_MIB, default
  // kQemuDefaultResidentMib (qemu_resident_mib).
  uint64_t resident_mib = 0;

  // pvsim's own options (spelled so that they cannot clash with QEMU's).
  std::optional<std::string> trace_file;     // --pvsim-trace FILE
  std::optional<std::string> scenario_file;  // --pvsim-scenario FILE
};

// The host memory a `pvsim qemu` VM may keep resident unless PVSIM_QEMU_RESIDENT_MIB says
// otherwise: 512 MiB, the memory cgroup kvm-unit-tests' asyncpf asks its users to set up
// ("cgroup configuration likely needed"), so a guest bigger than that has pages the host
// must fetch back — and async page faults to deliver.
constexpr uint64_t kQemuDefaultResidentMib = 512;
// PVSIM_QEMU_RESIDENT_MIB's value (nullptr: unset) -> MiB; 0 means no limit. Throws
// QemuUsageError naming the variable when it is not a number.
uint64_t qemu_resident_mib(const char* env);

// Parses a QEMU command line (without argv[0]); throws QemuUsageError. Options are read in
// order, as QEMU does: a probe option (-h, -version, -device help, -cpu help) ends the
// parsing and sets `action`. Every option may be spelled -opt or --opt.
QemuOptions parse_qemu_args(const std::vector<std::string>& args);

// The checks QEMU makes when it loads the files, after every option was accepted: nullopt
// when -kernel and -initrd's files can be opened for reading, else the one-line message
// ("could not load kernel 'FILE': No such file or directory"), without the prefix.
// kvm-unit-tests' premature-failure probe runs the real options with -kernel
// _NO_FILE_4Uhere_ and expects exactly this kind of line.
std::optional<std::string> check_qemu_files(const QemuOptions& o);

// The generated scenario (JSON text, keys in a fixed order). Relative -kernel and -initrd
// paths are made absolute against `cwd`, so the text can be saved and run from anywhere;
// the Multiboot command line and module strings keep them as given (QEMU passes them so).
std::string qemu_scenario_json(const QemuOptions& o, uint64_t wall_clock_ns, const std::filesystem::path& cwd);

// The name parse_scenario gets for the generated text (it starts every error message).
inline constexpr std::string_view kQemuScenarioName = "pvsim qemu (generated scenario)";

// Probe outputs. The help text's first line is "QEMU emulator version 7.2.0 (pvsim V: ...)"
// so that the runner's `IFS='[ .]' read _ _ _ MAJOR MINOR MICRO` reads 7, 2 and 0.
std::string qemu_help_text(std::string_view pvsim_version);
std::string qemu_version_text(std::string_view pvsim_version);
std::string qemu_device_list();
std::string qemu_cpu_list();

// The host wall clock for host.wall_clock_ns: PVSIM_QEMU_WALLCLOCK_NS (`env`, when not
// null) or `realtime_ns`. Throws QemuUsageError for a malformed variable.
uint64_t qemu_wall_clock_ns(const char* env, uint64_t realtime_ns);

// How a run ends for the process, mirroring QEMU (tools/platform/README.md "kvm-unit-tests
// through pvsim qemu"): `status` is the process exit status; `message` is empty for an end
// QEMU would report silently (isa-debug-exit, the Shutdown power-off) and otherwise one
// line for stderr (without the prefix).
struct QemuExit {
  int status = 0;
  std::string message;
};
QemuExit qemu_exit_for(const RunReport& r);

// The whole front door: `pvsim qemu ARGS...` and the `pvsim-qemu` symlink. Returns the
// process exit status; prints only what QEMU would (plus the one-line errors).
int qemu_main(const std::vector<std::string>& args, std::string_view pvsim_version);

}  // namespace pvsim
