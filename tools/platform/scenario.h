// tools/platform/scenario.h — a scenario file parsed and validated into typed values
// (scenarios/README.md is the format; scenario.schema.json its machine-readable twin).
//
// Every problem becomes one ScenarioError whose what() is a single line
//   FILE: /json/pointer: problem
// so a student sees exactly which key to fix. Nothing here runs the guest.
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "pvmsr/kvm_bugs.h"
#include "tools/platform/explore_spec.h"
#include "tools/platform/schedule.h"

namespace pvsim {

class ScenarioError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class ImageFormat : uint8_t { Auto, Elf, Flat };

// How a run ends (scenarios/README.md `expect.stop`).
enum class RunStop : uint8_t {
  Exit,
  Finished,
  Shutdown,
  Deadlock,
  Limit,
  UnhandledIo,
  Unsupported,
  Point  // a `schedule` entry's `stop` action
};
const char* run_stop_name(RunStop s);  // "exit", "finished", ..., "unsupported"

struct RegisterExpect {
  unsigned vcpu = 0;
  std::string reg;  // lower-case name as written: rax..r15, rip, rflags, cr0, ..., efer
  uint64_t value = 0;
};

struct MsrExpect {
  unsigned vcpu = 0;
  uint32_t msr = 0;
  uint64_t value = 0;
};

// One `expect.trace` entry (scenarios/README.md "Trace expectations"): a claim about the
// canonical trace that a scenario's description can point at by writing [name]. Patterns
// match a trace line's text from the event name on ("kvm_msr: msr_write 4b564d01 = 0x1"),
// anywhere in it; `*` matches any run of characters.
struct TraceExpect {
  enum class Kind : uint8_t { InOrder, Absent, Count };
  std::string name;
  Kind kind = Kind::InOrder;
  std::vector<std::string> patterns;  // InOrder: the sequence; Absent, Count: one pattern
  std::optional<unsigned> vcpu;       // only lines of this vCPU
  bool consecutive = false;           // InOrder: adjacent lines (among those of `vcpu`)
  uint64_t min = 1, max = UINT64_MAX; // Count
};

struct Expectations {
  std::optional<RunStop> stop;
  std::optional<unsigned> exit_status;
  std::optional<std::string> console;
  std::vector<std::string> console_contains;
  std::vector<std::string> console_excludes;
  std::vector<RegisterExpect> registers;
  std::vector<MsrExpect> msrs;
  std::optional<uint64_t> trace_hash;
  std::vector<TraceExpect> trace;
  // `expect.golden_trace`: the whole canonical trace, kept as text beside the scenario.
  std::optional<std::filesystem::path> golden_trace;  // resolved against the scenario's directory
  std::string golden_trace_as_written;
  bool any() const {
    return stop || exit_status || console || !console_contains.empty() ||
           !console_excludes.empty() || !registers.empty() || !msrs.empty() || trace_hash ||
           !trace.empty() || golden_trace;
  }
  // True when checking needs the console text kept in memory.
  bool needs_console() const { return console || !console_contains.empty() || !console_excludes.empty(); }
};

// `machine.start`: which vCPUs run from time 0. Bsp holds vCPUs 1.. in wait-for-SIPI
// (SDM Vol. 3A, "Multiple-Processor (MP) Initialization": after reset only the BSP runs).
enum class StartMode : uint8_t { All, Bsp };

// One `machine.tsc_skew` entry: vCPU `vcpu`'s TSC starts `offset` cycles away from
// machine.tsc_start and runs `ppm` parts per million fast (negative: slow), so scenarios
// can model unsynchronised TSCs (what KVM's per-vCPU TSC offset/scaling can produce).
struct TscSkew {
  unsigned vcpu = 0;
  int64_t offset = 0;
  int32_t ppm = 0;
};

// `machine.irqchip`: where the local APICs live, as KVM sees it (scenarios/README.md
// `machine`). Kernel is KVM_CREATE_IRQCHIP (QEMU's kernel_irqchip=on or split): KVM's
// lapic_in_kernel() is true. Userspace is a VMM that emulates the LAPIC itself: the guest
// still has a LAPIC, but KVM cannot deliver through it, so kvm_pv_enable_async_pf()
// refuses any non-zero MSR_KVM_ASYNC_PF_EN write (#GP) and async PF is never set up.
enum class IrqChip : uint8_t { Kernel, Userspace };

// `machine.kvm.abi`: which era of KVM's kvmclock the hypervisor side imitates
// (pvmsr/README.md §2.1): the seed-era ("orig") one or today's ("modern").
enum class KvmAbi : uint8_t { Modern, Orig };

// `machine.kvm`: knobs of the hypervisor side of the PV MSRs.
struct KvmConfig {
  KvmAbi abi = KvmAbi::Modern;
  bool enforce_pv_cpuid = false;         // KVM_CAP_ENFORCE_PV_FEATURE_CPUID (pvmsr/README.md §2.2)
  bool master_clock = true;              // pvclock_gtod master clock; only Modern uses it
  uint64_t kvmclock_sync_ms = 300'000;   // KVM's KVMCLOCK_SYNC_PERIOD (300 s); 0 = off
  uint64_t clock_update_delay_ms = 100;  // KVM's KVMCLOCK_UPDATE_DELAY (100 ms)
  // KVM_X86_QUIRK_FIX_HYPERCALL_INSN (on by default): the other vendor's hypercall opcode
  // is rewritten in guest memory; off, it raises #UD.
  bool fix_hypercall_insn = true;
  // The VMM enabled KVM_CAP_EXIT_HYPERCALL for KVM_HC_MAP_GPA_RANGE and answers with
  // `map_gpa_range_ret`; otherwise that hypercall returns -KVM_ENOSYS.
  bool map_gpa_range_exit = false;
  int64_t map_gpa_range_ret = 0;
  // The VMM implements MSR_KVM_MIGRATION_CONTROL through userspace MSR exits; KVM itself
  // has no handler, so without this the MSR raises #GP.
  bool migration_control = false;
  // `machine.kvm.bugs`: historic KVM bugs turned on or off one by one (pvmsr/README.md §2.5),
  // resolved against `abi`: the profile's defaults, then the scenario's own settings.
  KvmBugs bugs;
};

// `machine.cpu_vendor`: CPUID leaf 0's vendor string, and with it the native hypercall
// instruction (VMCALL on Intel, VMMCALL on AMD).
enum class CpuVendor : uint8_t { Intel, Amd };

struct MachineConfig {
  unsigned vcpus = 1;
  uint64_t ram_mib = 128;
  uint64_t tsc_khz = 2'500'000;
  uint64_t tsc_start = 0;
  uint64_t quantum = 10'000;
  // false: a slice ends at the last decoded-block boundary within the quantum (vcpu.h
  // Budget::Slice); true: after exactly `quantum` instructions, inside a block if need be.
  bool exact_quantum = false;
  uint32_t kvm_features = 0x01007efb;
  uint32_t kvm_hints = 0;
  uint32_t kvm_signature_eax = 0x40000001;
  bool ignore_unhandled_io = false;
  StartMode start = StartMode::All;
  IrqChip irqchip = IrqChip::Kernel;
  CpuVendor cpu_vendor = CpuVendor::Intel;
  uint64_t apic_bus_mhz = 1000;  // LAPIC timer input clock; 1000 MHz = KVM's 1 ns per count
  uint64_t ipi_latency_ns = 0;
  // `machine.x2apic`: CPUID.1:ECX[21]. false hides the x2APIC, as `-cpu ...,-x2apic` does in
  // QEMU; KVM's kvm_set_apic_base() then refuses IA32_APIC_BASE.EXTD with #GP.
  bool x2apic = true;
  std::vector<TscSkew> tsc_skew;  // at most one entry per vCPU (the parser enforces it)
  KvmConfig kvm;

  uint64_t ram_bytes() const { return ram_mib << 20; }
  uint64_t tsc_hz() const { return tsc_khz * 1000; }  // the nominal rate KVM believes
  // vCPU i's real TSC rate: tsc_hz() * (1 + ppm/10^6), rounded to the nearest Hz (ties
  // away from zero). Always > 0: ppm >= -100000 and tsc_khz >= 1000.
  uint64_t vcpu_tsc_hz(unsigned i) const;
  // vCPU i's TSC at time 0: tsc_start + offset, wrapping modulo 2^64 like the hardware
  // counter (SDM Vol. 3B, "Time-Stamp Counter": a 64-bit counter).
  uint64_t vcpu_tsc_start(unsigned i) const;
  // True when no vCPU has a non-zero offset or ppm: every TSC reads the same at any time.
  bool tsc_matched() const;
  // The tsc_skew entry of vCPU i, or nullptr.
  const TscSkew* skew_of(unsigned i) const;
};

// `guest.boot`: how the image is started (scenarios/guest/boot.md). Direct is pvsim's own
// 64-bit protocol (§1-§3); Multiboot is version 1 of the Multiboot specification (0.6.96),
// entered in 32-bit protected mode as QEMU's `-kernel` loader does (§8).
enum class BootProtocol : uint8_t { Direct, Multiboot };

// One `guest.modules` entry: a file the Multiboot loader puts in RAM for the kernel.
struct BootModule {
  std::filesystem::path path;  // resolved against the scenario's directory
  std::string path_as_written;
  std::string string;  // the module's string in the MBI; defaults to path_as_written
};

struct GuestConfig {
  std::filesystem::path image;  // resolved against the scenario's directory
  std::string image_as_written;
  ImageFormat format = ImageFormat::Auto;
  BootProtocol boot = BootProtocol::Direct;
  std::string cmdline;              // Multiboot only: the MBI's command line, verbatim
  std::vector<BootModule> modules;  // Multiboot only
};

// Bounds of the Multiboot inputs (the parser enforces them; scenarios/README.md `guest`).
constexpr size_t kMaxCmdlineBytes = 4095;
constexpr size_t kMaxModules = 64;
constexpr uint64_t kMaxModuleBytes = 64ull << 20;
// Above this RAM size a PC splits RAM around the 32-bit PCI hole (QEMU: 3.5 GiB for the
// i440FX machine), which pvsim's one RAM region at GPA 0 cannot describe to a Multiboot kernel.
constexpr uint64_t kMaxMultibootRamMib = 3584;

struct Limits {
  uint64_t max_instructions = 10'000'000'000ull;
  uint64_t max_virtual_ms = 60'000;
  // Caps on what a run produces (0 = none). The console is what the guest writes to port
  // 0xe9; the trace cap counts bytes of canonical text (the JSON Lines copy is about
  // 2.5 times larger). Reaching either ends the run with stop "limit".
  uint64_t max_console_bytes = kDefaultMaxConsoleBytes;
  uint64_t max_trace_bytes = kDefaultMaxTraceBytes;
  static constexpr uint64_t kDefaultMaxConsoleBytes = 16ull << 20;
  static constexpr uint64_t kDefaultMaxTraceBytes = 1ull << 30;
};

// `host.policy`: how the host scheduler places vCPU threads on physical CPUs.
enum class HostPolicy : uint8_t { Pinned, TimeSliced };

// `host.preempt` entry: vCPU `vcpu` holds no pCPU during [from_ns, to_ns).
struct PreemptWindow {
  unsigned vcpu = 0;
  uint64_t from_ns = 0;
  uint64_t to_ns = 0;
};

// `host.noise`: a host thread busy on pCPU `pcpu` during [from_ns, to_ns). Whatever vCPU
// the schedule puts on that pCPU then waits (involuntarily: run delay grows, and KVM marks
// it preempted in its steal-time record).
struct NoiseWindow {
  unsigned pcpu = 0;
  uint64_t from_ns = 0;
  uint64_t to_ns = 0;
};

// `host.pause`: the VMM stops the whole VM during [from_ns, to_ns) (QEMU's `stop`/`cont`)
// and, at resume, issues KVM_KVMCLOCK_CTRL on every vCPU. Paused time is not run delay:
// the vCPU threads wait in the VMM, not on a host run queue.
struct PauseWindow {
  uint64_t from_ns = 0;
  uint64_t to_ns = 0;
};

// ---- `host.memory`: the host side of guest RAM (host_memory.h, scenarios/README.md) ----
// Addresses and sizes are bytes, page-aligned, inside RAM (the parser checks all three).

// A guest-physical range [gpa, gpa + size).
struct GpaRange {
  uint64_t gpa = 0;
  uint64_t size = 0;
};

// The latency of one fault-in: a constant (lo_ns == hi_ns, uniform false) or, with
// `uniform`, drawn per fault-in from [lo_ns, hi_ns] (both ends included).
struct FaultInLatency {
  uint64_t lo_ns = 200'000;
  uint64_t hi_ns = 200'000;
  bool uniform = false;
};

// `host.memory.evict` entry: at virtual time at_ns, the range becomes non-resident.
struct MemoryEviction {
  uint64_t at_ns = 0;
  GpaRange range;
};

// `host.memory.latency_ranges` entry: fault-ins of pages in `range` take `latency`
// instead of the default. The parser refuses overlapping entries.
struct LatencyRange {
  GpaRange range;
  FaultInLatency latency;
};

struct HostMemoryConfig {
  std::vector<GpaRange> swapped_out;      // non-resident at time 0 (may overlap: the union)
  std::vector<MemoryEviction> evict;      // as written (HostMemory sorts them by time)
  // 0 = no limit. Otherwise at least the pages resident at time 0 (RAM minus the union of
  // swapped_out) and at most the pages of RAM; the parser enforces both.
  uint64_t resident_limit_pages = 0;
  FaultInLatency fault_in;                // every page outside latency_ranges
  std::vector<LatencyRange> latency_ranges;
  unsigned io_workers = 1;                // 1..1024
};

// `host`: the physical machine under the VM (host_model.h turns it into run windows).
// Host clocks are part of the scenario, never read from the real host.
struct HostConfig {
  unsigned pcpus = 0;  // after parsing always resolved: the default is machine.vcpus
  HostPolicy policy = HostPolicy::Pinned;
  std::vector<unsigned> pin;  // Pinned: pCPU of each vCPU, one entry per vCPU after parsing
  uint64_t slice_ns = 3'000'000;
  std::vector<PreemptWindow> preempt;  // as written (may overlap; HostModel merges them)
  std::vector<NoiseWindow> noise;      // as written (may overlap; HostModel merges them)
  std::vector<PauseWindow> pause;      // as written (may overlap; HostModel merges them)
  // Spacing of the separate guest-memory stores the host makes when it publishes kvmclock
  // or steal time at a vCPU's entry (pvmsr/host_stores.h); 0 = all at the entry instant.
  uint64_t pv_store_ns = 0;
  uint64_t wall_clock_ns = 1'700'000'000'000'000'000ull;  // host realtime at Tick 0
  uint64_t monotonic_ns = 1'000'000'000'000ull;           // host monotonic at Tick 0
  HostMemoryConfig memory;  // host_memory.h turns it into the residency model
};

struct Scenario {
  std::filesystem::path file;  // as given by the user (used in messages)
  std::string name;
  std::string description;
  uint64_t seed = 0;
  MachineConfig machine;
  HostConfig host;
  GuestConfig guest;
  Limits limits;
  Expectations expect;
  // `schedule` (scenarios/README.md "schedule"): host actions at guest points, the
  // scenario's own entries first, then those of `--schedule` (add_schedule). For messages
  // about an entry, schedule_where[k] names it ("FILE: /schedule/2", "--schedule: entry 3").
  Schedule schedule;
  std::vector<std::string> schedule_where;
  // `explore` (scenarios/README.md "explore"): the exploration `pvsim explore SCENARIO` runs
  // when no option says what to vary, and the counts it must give.
  std::optional<ExploreSection> explore;
};

// Appends `extra` to s.schedule after checking it against the machine (vCPU and pCPU
// indices, evicted ranges inside RAM); `origin` starts each message ("--schedule"), entries
// are counted from 1. Throws ScenarioError. Symbols are resolved when the image is loaded.
void add_schedule(Scenario& s, const Schedule& extra, std::string_view origin);

// Scenario files are small (the largest shipped one is a few KiB); anything beyond this is
// refused before it is read (a path like /dev/zero is refused as a device anyway).
constexpr uint64_t kMaxScenarioBytes = 16ull << 20;

// Reads and validates `file`; throws ScenarioError. Also checks that the image and the
// Multiboot module files exist (it does not load them: see loader.h).
Scenario load_scenario(const std::filesystem::path& file);
// Same from text already in memory; `file` names it in messages and anchors relative paths.
Scenario parse_scenario(std::string_view text, const std::filesystem::path& file);

// Parses "0x..." hex, or a decimal string; nullopt when malformed or above 64 bits.
std::optional<uint64_t> parse_u64_string(std::string_view s);

}  // namespace pvsim
