// tools/platform/qemu_front.cpp — `pvsim qemu` (tools/platform/qemu_front.h,
// tools/platform/README.md "kvm-unit-tests through pvsim qemu").
#include "tools/platform/qemu_front.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <iostream>
#include <nlohmann/json.hpp>

#include "tools/platform/files.h"
#include "tools/platform/platform.h"
#include "tools/platform/text.h"

namespace pvsim {

namespace {

// Limits of the generated scenario. kvm-unit-tests bounds a test by host time (timeout(1)
// around QEMU, 90 s by default), which the front door cannot see; so no instruction limit
// a test could reach (2^53, JSON's largest exact integer, as the scenario parser allows),
// and one hour of virtual time, 40 times the longest default timeout, which only a guest
// waiting for timer events forever reaches (pvsim skips halted time: such a guest would
// otherwise run on without end). Console and trace: no cap, as QEMU has none.
constexpr uint64_t kNoInstructionLimit = 1ull << 53;
constexpr uint64_t kVirtualLimitMs = 3'600'000;

// The most vCPUs a scenario may have (scenarios/README.md `machine.vcpus`).
constexpr uint64_t kMaxVcpus = 64;

[[noreturn]] void usage(std::string msg) { throw QemuUsageError(std::move(msg)); }

std::string show(std::string_view s) { return escape_display(s, 200); }

std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> out;
  size_t at = 0;
  while (true) {
    const size_t c = s.find(sep, at);
    out.emplace_back(s.substr(at, c == std::string_view::npos ? std::string_view::npos : c - at));
    if (c == std::string_view::npos) break;
    at = c + 1;
  }
  return out;
}

// "key=value" → {key, value}; a piece without '=' → {"", piece}.
std::pair<std::string, std::string> key_value(const std::string& piece) {
  const size_t eq = piece.find('=');
  if (eq == std::string::npos) return {"", piece};
  return {piece.substr(0, eq), piece.substr(eq + 1)};
}

// A plain decimal number up to `max`.
std::optional<uint64_t> decimal(std::string_view v, uint64_t max) {
  if (v.empty() || v.size() > 19 || v.find_first_not_of("0123456789") != std::string_view::npos) return std::nullopt;
  uint64_t n = 0;
  for (char c : v) n = n * 10 + static_cast<uint64_t>(c - '0');
  return n <= max ? std::optional<uint64_t>(n) : std::nullopt;
}

// QEMU's boolean property values (qapi's "on"/"off" and the older "yes"/"no", "true"/"false").
std::optional<bool> on_off(std::string_view v) {
  if (v == "on" || v == "yes" || v == "true") return true;
  if (v == "off" || v == "no" || v == "false") return false;
  return std::nullopt;
}

// ---- -smp [[cpus=]N][,maxcpus=M][,sockets=S][,dies=D][,clusters=C][,cores=K][,threads=T] ----
// Missing topology counts are derived as QEMU 7.2 does for x86 (sockets preferred: the
// other counts default to 1 and sockets takes what is left); the product must equal
// maxcpus, and maxcpus must equal cpus (pvsim has no CPU hotplug).
unsigned parse_smp(const std::string& v) {
  const std::string where = "-smp " + show(v);
  std::optional<uint64_t> cpus, maxcpus, sockets, dies, clusters, cores, threads;
  const std::vector<std::string> pieces = split(v, ',');
  for (size_t i = 0; i < pieces.size(); ++i) {
    auto [k, val] = key_value(pieces[i]);
    if (k.empty()) {
      if (i != 0) usage(fmt::format("{}: {} is not a key=value parameter", where, quote_display(pieces[i], 40)));
      k = "cpus";
    }
    std::optional<uint64_t>* slot = k == "cpus" ? &cpus : k == "maxcpus" ? &maxcpus : k == "sockets" ? &sockets
                                    : k == "dies" ? &dies : k == "clusters" ? &clusters : k == "cores" ? &cores
                                    : k == "threads" ? &threads : nullptr;
    if (!slot)
      usage(fmt::format("{}: unknown parameter {} (cpus, maxcpus, sockets, dies, clusters, cores, threads)", where,
                        quote_display(k, 40)));
    // Each count is bounded so that the product of five cannot overflow.
    const auto n = decimal(val, 4096);
    if (!n) usage(fmt::format("{}: {}={} is not a number from 1 to 4096", where, k, show(val)));
    if (*n == 0) usage(fmt::format("{}: CPU topology parameters must be greater than zero", where));
    *slot = *n;
  }
  const uint64_t d = dies.value_or(1), cl = clusters.value_or(1), t = threads.value_or(1);
  const uint64_t want = maxcpus ? *maxcpus : cpus ? *cpus : 1;
  uint64_t k = cores.value_or(1);
  uint64_t s = sockets ? *sockets : std::max<uint64_t>(1, want / (d * cl * k * t));
  if (sockets && !cores) k = std::max<uint64_t>(1, want / (s * d * cl * t));
  const uint64_t product = s * d * cl * k * t;
  const uint64_t max_n = maxcpus ? *maxcpus : product;
  const uint64_t n = cpus ? *cpus : max_n;
  if (product != max_n)
    usage(fmt::format("{}: sockets ({}) * dies ({}) * clusters ({}) * cores ({}) * threads ({}) = {} is not maxcpus ({})",
                      where, s, d, cl, k, t, product, max_n));
  if (n > max_n) usage(fmt::format("{}: cpus ({}) is more than maxcpus ({})", where, n, max_n));
  if (n != max_n)
    usage(fmt::format("{}: maxcpus ({}) above cpus ({}) asks for CPU hotplug, which pvsim does not have", where, max_n, n));
  // kvm-unit-tests' --probe-maxsmp reads the last word of a line containing "SMP CPUs",
  // in parentheses, as the maximum (scripts/vmm.bash qemu_probe_maxsmp).
  if (n > kMaxVcpus) usage(fmt::format("{}: Invalid SMP CPUs {}: the most pvsim supports is ({})", where, n, kMaxVcpus));
  return static_cast<unsigned>(n);
}

// ---- -m [size=]N[K|M|G|T] (no suffix: MiB, as QEMU) ----
uint64_t parse_mem(const std::string& v) {
  const std::string where = "-m " + show(v);
  const std::vector<std::string> pieces = split(v, ',');
  std::optional<std::string> size;
  for (size_t i = 0; i < pieces.size(); ++i) {
    auto [k, val] = key_value(pieces[i]);
    if (k.empty() && i == 0) k = "size";
    if (k == "size") {
      size = val;
    } else if (k == "slots" || k == "maxmem") {
      usage(fmt::format("{}: memory hotplug ({}) is not supported by pvsim", where, k));
    } else {
      usage(fmt::format("{}: unknown parameter {} (size)", where, quote_display(k.empty() ? pieces[i] : k, 40)));
    }
  }
  if (!size) usage(fmt::format("{}: no size given", where));
  const std::string& sz = *size;
  size_t digits = 0;
  while (digits < sz.size() && sz[digits] >= '0' && sz[digits] <= '9') ++digits;
  const auto n = decimal(std::string_view(sz).substr(0, digits), 1ull << 40);
  const std::string suffix = sz.substr(digits);
  unsigned shift = 20;
  if (suffix == "k" || suffix == "K") shift = 10;
  else if (suffix == "g" || suffix == "G") shift = 30;
  else if (suffix == "t" || suffix == "T") shift = 40;
  else if (!(suffix.empty() || suffix == "m" || suffix == "M")) shift = 0;
  if (!n || shift == 0)
    usage(fmt::format("{}: not a size (a whole number of MiB, or one with a K, M, G or T suffix)", where));
  if (*n > ((1ull << 62) >> shift)) usage(fmt::format("{}: larger than pvsim's 65536 MiB", where));
  const uint64_t bytes = *n << shift;
  if (bytes % (1ull << 20)) usage(fmt::format("{}: not a whole number of MiB", where));
  const uint64_t mib = bytes >> 20;
  if (mib < 2 || mib > 65536) usage(fmt::format("{}: pvsim's RAM is from 2 to 65536 MiB, got {} MiB", where, mib));
  return mib;
}

// ---- -cpu MODEL[,+flag|-flag|flag=on|off|vendor=V]... ----
void parse_cpu(const std::string& v, QemuOptions& o) {
  const std::string where = "-cpu " + show(v);
  const std::vector<std::string> pieces = split(v, ',');
  const std::string& model = pieces[0];
  if (model == "qemu64") o.cpu_model = QemuCpuModel::Qemu64;
  else if (model == "max") o.cpu_model = QemuCpuModel::Max;
  else if (model == "host") o.cpu_model = QemuCpuModel::Host;
  else
    usage(fmt::format("{}: unsupported CPU model {} (pvsim has qemu64, max and host: pvsim qemu -cpu help)", where,
                      quote_display(model, 40)));
  // Every model starts from the same CPUID (qemu_cpu_list says why); the flags then apply.
  o.x2apic = true;
  o.vendor = CpuVendor::Intel;
  for (size_t i = 1; i < pieces.size(); ++i) {
    const std::string& p = pieces[i];
    std::string name;
    std::optional<bool> on;
    if (!p.empty() && (p[0] == '+' || p[0] == '-')) {
      name = p.substr(1);
      on = p[0] == '+';
    } else {
      auto [k, val] = key_value(p);
      if (k == "vendor") {
        if (val == "GenuineIntel") o.vendor = CpuVendor::Intel;
        else if (val == "AuthenticAMD") o.vendor = CpuVendor::Amd;
        else
          usage(fmt::format("{}: vendor {} is not supported (GenuineIntel or AuthenticAMD)", where,
                            quote_display(val, 40)));
        continue;
      }
      if (k.empty()) {
        name = val;  // a bare flag name turns it on (QEMU's legacy form)
        on = true;
      } else {
        name = k;
        on = on_off(val);
        if (!on)
          usage(fmt::format("{}: {} is not on or off for CPU feature {}", where, quote_display(val, 40),
                            quote_display(k, 40)));
      }
    }
    // QEMU spells feature names with '-' or '_' alike (tsc-deadline, tsc_deadline).
    std::replace(name.begin(), name.end(), '_', '-');
    if (name == "x2apic") {
      o.x2apic = *on;
    } else if (name == "tsc-deadline") {
      // pvsim's LAPIC always has the TSC-deadline timer mode (CPUID.1:ECX[24]); it cannot hide it.
      if (!*on) usage(fmt::format("{}: pvsim always has the TSC-deadline timer; it cannot be turned off", where));
    } else {
      usage(fmt::format("{}: CPU feature {} is not supported (pvsim qemu accepts x2apic, tsc-deadline and vendor=)",
                        where, quote_display(name, 40)));
    }
  }
}

// ---- -machine [type=]pc[,accel=A[:B]][,kernel-irqchip=on|split|off] ----
void check_accel(const std::string& where, const std::string& list) {
  for (const std::string& a : split(list, ':'))
    if (a != "kvm" && a != "tcg" && a != "hvf")
      usage(fmt::format("{}: accelerator {} is not supported (kvm, tcg or hvf; pvsim ignores which)", where,
                        quote_display(a, 40)));
}

void parse_machine(const std::string& v, QemuOptions& o) {
  const std::string where = "-machine " + show(v);
  const std::vector<std::string> pieces = split(v, ',');
  for (size_t i = 0; i < pieces.size(); ++i) {
    auto [k, val] = key_value(pieces[i]);
    if (k.empty() && i == 0) k = "type";
    if (k == "type") {
      if (val != "pc")
        usage(fmt::format("{}: unsupported machine type {} (pvsim is an ISA PC: 'pc')", where, quote_display(val, 40)));
    } else if (k == "accel") {
      check_accel(where, val);
    } else if (k == "kernel-irqchip" || k == "kernel_irqchip") {
      if (val == "on" || val == "split") o.irqchip_userspace = false;
      else if (val == "off") o.irqchip_userspace = true;
      else usage(fmt::format("{}: kernel-irqchip must be on, split or off", where));
    } else {
      usage(fmt::format("{}: unsupported machine property {} (type, accel, kernel-irqchip)", where,
                        quote_display(k.empty() ? pieces[i] : k, 40)));
    }
  }
}

// ---- -device DRIVER[,props] ----
void parse_device(const std::string& v) {
  const std::string where = "-device " + show(v);
  const std::vector<std::string> pieces = split(v, ',');
  const std::string& driver = pieces[0];
  if (driver == "pc-testdev") {
    if (pieces.size() > 1) usage(fmt::format("{}: pc-testdev has no properties", where));
  } else if (driver == "isa-debug-exit") {
    // pvsim's exit port is fixed at 0xf4 (devices/exit_ports.h); any iosize QEMU accepts
    // leaves it there.
    for (size_t i = 1; i < pieces.size(); ++i) {
      auto [k, val] = key_value(pieces[i]);
      const auto n = parse_u64_string(val);
      if (k == "iobase") {
        if (!n || *n != 0xf4) usage(fmt::format("{}: pvsim's isa-debug-exit is at iobase=0xf4 only", where));
      } else if (k == "iosize") {
        if (!n || *n < 1 || *n > 4) usage(fmt::format("{}: iosize must be from 1 to 4", where));
      } else {
        usage(fmt::format("{}: unsupported isa-debug-exit property {} (iobase, iosize)", where,
                          quote_display(k.empty() ? pieces[i] : k, 40)));
      }
    }
  } else if (driver == "pci-testdev") {
    usage(fmt::format("{}: pci-testdev is not supported (pvsim has no PCI bus)", where));
  } else {
    usage(fmt::format("{}: unsupported device {} (pvsim qemu -device help lists the devices)", where,
                      quote_display(driver, 40)));
  }
}

// QEMU's -initrd for a Multiboot kernel: modules separated by ',' (",," is a comma inside a
// name), each "FILE[ ARGS]" with the whole piece as the module string.
std::vector<QemuModule> parse_initrd(const std::string& v) {
  std::vector<QemuModule> out;
  std::string cur;
  for (size_t i = 0; i <= v.size(); ++i) {
    if (i < v.size() && v[i] == ',' && i + 1 < v.size() && v[i + 1] == ',') {
      cur += ',';
      ++i;
      continue;
    }
    if (i == v.size() || v[i] == ',') {
      const std::string path = cur.substr(0, cur.find(' '));
      if (path.empty()) usage(fmt::format("-initrd {}: a module without a file name", show(v)));
      out.push_back({path, cur});
      cur.clear();
      continue;
    }
    cur += v[i];
  }
  return out;
}

// The options that take an argument, by name without the leading dashes.
bool takes_argument(std::string_view name) {
  for (std::string_view n : {"kernel", "initrd", "append", "smp", "m", "cpu", "machine", "M", "accel", "device",
                             "global", "display", "serial", "vga", "monitor", "pvsim-trace", "pvsim-scenario"})
    if (n == name) return true;
  return false;
}

// Options QEMU has that pvsim refuses with a reason rather than "unsupported option".
std::optional<std::string> refused_reason(std::string_view name) {
  if (name == "gdb" || name == "s" || name == "S")
    return "not supported: save the run with --pvsim-scenario FILE and debug it with `pvsim run FILE --gdb PORT`";
  if (name == "incoming") return "migration is not supported by pvsim";
  if (name == "chardev" || name == "mon" || name == "qmp")
    return "character devices and monitors are not supported (the serial port is always stdio)";
  if (name == "nographic") return "not supported: use -display none -serial stdio";
  return std::nullopt;
}

std::string abs_path(const std::string& p, const std::filesystem::path& cwd) {
  const std::filesystem::path path(p);
  return (path.is_absolute() ? path : cwd / path).lexically_normal().string();
}

// The one-line reason a file cannot be read, as strerror words it; nullopt if it can be.
std::optional<std::string> unreadable(const std::string& p) {
  struct stat st;
  if (::stat(p.c_str(), &st) != 0) return std::string(std::strerror(errno));
  if (S_ISDIR(st.st_mode)) return std::string(std::strerror(EISDIR));
  // A FIFO or a device would block or never end; QEMU's loaders want a file too.
  if (!S_ISREG(st.st_mode)) return std::string("not a regular file");
  const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::string(std::strerror(errno));
  ::close(fd);
  return std::nullopt;
}

}  // namespace

QemuOptions parse_qemu_args(const std::vector<std::string>& args) {
  QemuOptions o;
  bool serial_given = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.size() < 2 || a[0] != '-') {
      // QEMU takes a bare argument as the first hard disk's image.
      usage(fmt::format("{}: disk images are not supported (pvsim boots a Multiboot -kernel)", quote_display(a, 100)));
    }
    // -opt and --opt are the same option, as in QEMU.
    const std::string name = a.substr(a[1] == '-' ? 2 : 1);
    const std::string shown = "-" + show(name);
    if (auto why = refused_reason(name)) usage(fmt::format("{}: {}", shown, *why));
    if (name == "h" || name == "help") {
      o.action = QemuOptions::Action::Help;
      return o;
    }
    if (name == "version") {
      o.action = QemuOptions::Action::Version;
      return o;
    }
    if (name == "nodefaults" || name == "no-reboot" || name == "no-user-config" || name == "enable-kvm") {
      continue;  // no meaning here (README: what pvsim qemu ignores)
    }
    if (!takes_argument(name)) usage(fmt::format("{}: unsupported option (pvsim qemu --help lists the accepted subset)", shown));
    if (i + 1 >= args.size()) usage(fmt::format("{}: requires an argument", shown));
    const std::string& v = args[++i];
    if (name == "kernel") {
      o.kernel = v;
    } else if (name == "initrd") {
      o.initrd = v;
      o.modules = parse_initrd(v);
    } else if (name == "append") {
      o.append = v;
    } else if (name == "smp") {
      o.vcpus = parse_smp(v);
    } else if (name == "m") {
      o.ram_mib = parse_mem(v);
    } else if (name == "cpu") {
      if (v == "help" || v == "?") {
        o.action = QemuOptions::Action::CpuHelp;
        return o;
      }
      parse_cpu(v, o);
    } else if (name == "machine" || name == "M") {
      parse_machine(v, o);
    } else if (name == "accel") {
      const std::vector<std::string> pieces = split(v, ',');
      check_accel("-accel " + show(v), pieces[0]);
      if (pieces.size() > 1) usage(fmt::format("-accel {}: accelerator properties are not supported", show(v)));
    } else if (name == "device") {
      if (v == "help" || v == "?") {
        o.action = QemuOptions::Action::DeviceHelp;
        return o;
      }
      parse_device(v);
    } else if (name == "global") {
      // kvm-unit-tests' x86/run always passes this one; pvsim's timers never queue lost ticks.
      if (v != "kvm-pit.lost_tick_policy=discard")
        usage(fmt::format("-global {}: unsupported (pvsim accepts only kvm-pit.lost_tick_policy=discard)", show(v)));
    } else if (name == "display" || name == "vga" || name == "monitor") {
      if (v != "none") usage(fmt::format("-{} {}: pvsim accepts only 'none'", name, show(v)));
    } else if (name == "serial") {
      const bool none = v == "none" || v == "null";
      if (v != "stdio" && !none)
        usage(fmt::format("-serial {}: pvsim accepts stdio, none or null (the serial port at 0x3f8 is stdout)", show(v)));
      if (serial_given && !none) usage(fmt::format("-serial {}: pvsim has one serial port", show(v)));
      if (!serial_given) o.serial_stdio = !none;
      serial_given = true;
    } else if (name == "pvsim-trace") {
      if (v == "-") usage("--pvsim-trace: give a file name (standard output carries the guest's console)");
      o.trace_file = v;
    } else if (name == "pvsim-scenario") {
      o.scenario_file = v;
    }
  }
  if (!o.kernel) usage("no -kernel given (pvsim boots Multiboot kernels only)");
  return o;
}

std::optional<std::string> check_qemu_files(const QemuOptions& o) {
  if (o.kernel)
    if (auto why = unreadable(*o.kernel)) return fmt::format("could not load kernel '{}': {}", show(*o.kernel), *why);
  for (const QemuModule& m : o.modules)
    if (auto why = unreadable(m.path)) return fmt::format("could not load initrd '{}': {}", show(m.path), *why);
  return std::nullopt;
}

std::string qemu_scenario_json(const QemuOptions& o, uint64_t wall_clock_ns, const std::filesystem::path& cwd) {
  using Json = nlohmann::ordered_json;
  const std::string kernel = o.kernel.value_or("");
  // Square brackets in a scenario description cite trace expectations
  // (scenarios/README.md "Trace expectations"); a file name must not look like one.
  std::string kernel_shown = kernel;
  std::replace(kernel_shown.begin(), kernel_shown.end(), '[', '(');
  std::replace(kernel_shown.begin(), kernel_shown.end(), ']', ')');
  const char* model = o.cpu_model == QemuCpuModel::Host ? "host" : o.cpu_model == QemuCpuModel::Max ? "max" : "qemu64";
  Json j;
  std::string stem = std::filesystem::path(kernel).stem().string();
  j["name"] = "qemu-" + (stem.empty() ? std::string("kernel") : stem);
  j["description"] = fmt::format(
      "Generated by `pvsim qemu` (tools/platform/README.md \"kvm-unit-tests through pvsim qemu\") from a QEMU "
      "command line: Multiboot kernel {}, {} vCPU{}, {} MiB, -cpu {}. host.wall_clock_ns is the host's clock when "
      "it ran (or PVSIM_QEMU_WALLCLOCK_NS).",
      kernel_shown, o.vcpus, o.vcpus == 1 ? "" : "s", o.ram_mib, model);
  Json machine;
  machine["vcpus"] = o.vcpus;
  machine["ram_mib"] = o.ram_mib;
  machine["x2apic"] = o.x2apic;
  machine["cpu_vendor"] = o.vendor == CpuVendor::Amd ? "amd" : "intel";
  if (o.irqchip_userspace) machine["irqchip"] = "userspace";
  j["machine"] = machine;
  // A decimal string: today's clock in ns is above 2^53, JSON's largest exact integer, which
  // the scenario parser refuses as a number (scenarios/README.md).
  j["host"] = Json{{"wall_clock_ns", std::to_string(wall_clock_ns)}};
  // A host that keeps at most resident_mib MiB of the guest resident (qemu_resident_mib):
  // RAM above that starts swapped out and the resident-set limit holds it there, so the
  // guest's first touches of it are host fault-ins — async page faults when the guest
  // enabled them (pvmsr/README.md §5). The host's defaults (200 us per fault-in) apply.
  if (o.resident_mib && o.ram_mib > o.resident_mib) {
    const uint64_t lo = o.resident_mib << 20, size = (o.ram_mib - o.resident_mib) << 20;
    j["host"]["memory"] = Json{{"swapped_out", Json::array({Json{{"gpa", fmt::format("{:#x}", lo)},
                                                                  {"size", fmt::format("{:#x}", size)}}})},
                               {"resident_limit_pages", o.resident_mib * 256}};
  }
  Json guest;
  guest["image"] = abs_path(kernel, cwd);
  guest["boot"] = "multiboot";
  // QEMU hands a Multiboot kernel "<kernel as given> <append>" (kvm-unit-tests reads argv[0]
  // from it), or the kernel name alone.
  guest["cmdline"] = o.append ? kernel + " " + *o.append : kernel;
  if (!o.modules.empty()) {
    Json mods = Json::array();
    for (const QemuModule& m : o.modules) mods.push_back(Json{{"path", abs_path(m.path, cwd)}, {"string", m.string}});
    guest["modules"] = mods;
  }
  j["guest"] = guest;
  j["limits"] = Json{{"max_instructions", kNoInstructionLimit},
                     {"max_virtual_ms", kVirtualLimitMs},
                     {"max_console_bytes", 0},
                     {"max_trace_bytes", 0}};
  return j.dump(2) + "\n";
}

std::string qemu_help_text(std::string_view pvsim_version) {
  return fmt::format(
      "QEMU emulator version {} (pvsim {}: QEMU-compatible front door)\n"
      "usage: pvsim qemu [options]   (or the pvsim-qemu symlink)\n"
      "\n"
      "Runs a Multiboot kernel (kvm-unit-tests' x86/*.flat) on pvsim, taking the subset of\n"
      "qemu-system-x86_64's options that kvm-unit-tests passes. Options may be spelled -opt or --opt.\n"
      "\n"
      "Honoured:\n"
      "  -kernel FILE          the Multiboot v1 kernel (ELF32)\n"
      "  -append STRING        kernel arguments; the command line is \"FILE STRING\", as QEMU gives it\n"
      "  -initrd FILE[ ARGS][,FILE...]  Multiboot modules; each string is the piece as given\n"
      "  -smp [cpus=]N[,maxcpus=N,sockets=,dies=,clusters=,cores=,threads=]   1 to 64 vCPUs\n"
      "  -m [size=]N[K|M|G|T]  RAM (no suffix: MiB; default 128)\n"
      "  -cpu qemu64|max|host[,+x2apic|-x2apic][,+tsc-deadline][,vendor=GenuineIntel|AuthenticAMD]\n"
      "  -machine [type=]pc[,accel=kvm|tcg|hvf][,kernel-irqchip=on|split|off]\n"
      "  -serial stdio|none|null   the UART at 0x3f8 (and port 0xe9) to stdout, or nowhere\n"
      "  -device pc-testdev, -device isa-debug-exit[,iobase=0xf4][,iosize=N]  (always present)\n"
      "Accepted and ignored:\n"
      "  -nodefaults --no-reboot -no-user-config -enable-kvm -accel kvm|tcg|hvf -display none\n"
      "  -vga none -monitor none -global kvm-pit.lost_tick_policy=discard\n"
      "Probes:\n"
      "  -h, -help  this text; -version; -device help (or ?); -cpu help (or ?)\n"
      "pvsim's own:\n"
      "  --pvsim-scenario FILE  write the generated scenario JSON to FILE and exit (run it with\n"
      "                         `pvsim run FILE` and every pvsim option: --trace, --gdb, --dump ...)\n"
      "  --pvsim-trace FILE     write the canonical trace to FILE\n"
      "Everything else (other options, devices, CPU models and flags, -chardev, -gdb, -S ...) is\n"
      "refused with one line naming it, exit 1.\n"
      "\n"
      "Exit status, as QEMU: (v << 1) | 1 for the guest's write of v to port 0xf4; 0 for the\n"
      "Shutdown power-off (port 0x8900) and for a triple fault; 1 with one line on stderr when\n"
      "pvsim ends the run (limit, unhandled I/O, unsupported, deadlock) or refuses the options.\n"
      "The guest's wall clock starts at the host's clock read once at start, or at\n"
      "PVSIM_QEMU_WALLCLOCK_NS (nanoseconds since the epoch) when set.\n"
      "More: tools/platform/README.md \"kvm-unit-tests through pvsim qemu\".\n",
      kQemuMimickedVersion, pvsim_version);
}

std::string qemu_version_text(std::string_view pvsim_version) {
  return fmt::format("QEMU emulator version {} (pvsim {}: QEMU-compatible front door)\n"
                     "pvsim is not QEMU: it accepts the options kvm-unit-tests passes and mirrors QEMU's\n"
                     "probe output and exit statuses.\n",
                     kQemuMimickedVersion, pvsim_version);
}

std::string qemu_device_list() {
  // QEMU's `-device help` format; x86/run greps for "pc-testdev" in double quotes.
  // pci-testdev is deliberately absent: x86/run would then pass -device pci-testdev.
  return "Misc devices:\n"
         "name \"isa-debug-exit\", bus ISA\n"
         "name \"pc-testdev\", bus ISA\n";
}

std::string qemu_cpu_list() {
  return "Available CPUs:\n"
         "x86 host    pvsim's CPUID: KVM's PV leaves, x2APIC, TSC-deadline (same for every model)\n"
         "x86 max     the same as host\n"
         "x86 qemu64  the same as host (QEMU's default model; under KVM it has x2APIC too)\n"
         "Flags: +x2apic / -x2apic (CPUID.1:ECX[21]), +tsc-deadline, vendor=GenuineIntel|AuthenticAMD\n";
}

uint64_t qemu_resident_mib(const char* env) {
  if (!env) return kQemuDefaultResidentMib;
  const auto n = decimal(env, uint64_t{1} << 24);
  if (!n) usage(fmt::format("PVSIM_QEMU_RESIDENT_MIB={}: not a number of MiB (0 = no limit)", quote_display(env, 40)));
  return *n;
}

uint64_t qemu_wall_clock_ns(const char* env, uint64_t realtime_ns) {
  if (!env) return realtime_ns;
  // The scenario's host.wall_clock_ns takes at most INT64_MAX (scenarios/README.md `host`).
  const auto n = decimal(env, static_cast<uint64_t>(INT64_MAX));
  if (!n)
    usage(fmt::format("PVSIM_QEMU_WALLCLOCK_NS={}: not a number of nanoseconds since the epoch", quote_display(env, 40)));
  return *n;
}

QemuExit qemu_exit_for(const RunReport& r) {
  const std::string detail = escape_display(r.stop_detail, 300);
  switch (r.stop) {
    case RunStop::Exit:
      // isa-debug-exit's ((v << 1) | 1) & 0xff, or 0 after the Shutdown power-off
      // (devices/exit_ports.h, devices/poweroff_port.h): QEMU says nothing about either.
      return {r.exit_status.value_or(0), ""};
    case RunStop::Shutdown:
      // QEMU with --no-reboot exits 0 on a triple fault; the runner reads 0 as FAIL. The line
      // says why (kvm-unit-tests logs stderr).
      return {0, fmt::format("the guest shut down (triple fault): {}", detail)};
    case RunStop::Finished:
      return {1, fmt::format("every vCPU wrote pvsim's port 0xf5 (\"finished\"), which QEMU's isa-debug-exit does not "
                             "have: {}", detail)};
    default:
      return {1, fmt::format("pvsim ended the run: {} ({}); rerun with --pvsim-scenario FILE and `pvsim run FILE` for "
                             "the details", run_stop_name(r.stop), detail)};
  }
}

int qemu_main(const std::vector<std::string>& args, std::string_view pvsim_version) {
  // The host clock, read once, before anything else takes time: the only host input of
  // the run (qemu_front.h).
  struct timespec ts {};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  const uint64_t realtime_ns =
      ts.tv_sec < 0 ? 0 : static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
  const auto fail = [](const std::string& msg) {
    std::cout.flush();
    fmt::print(stderr, "pvsim qemu: {}\n", msg);
    std::fflush(stderr);
    return 1;
  };
  QemuOptions o;
  uint64_t wall = 0;
  try {
    o = parse_qemu_args(args);
    switch (o.action) {
      case QemuOptions::Action::Help: std::cout << qemu_help_text(pvsim_version) << std::flush; return 0;
      case QemuOptions::Action::Version: std::cout << qemu_version_text(pvsim_version) << std::flush; return 0;
      case QemuOptions::Action::DeviceHelp: std::cout << qemu_device_list() << std::flush; return 0;
      case QemuOptions::Action::CpuHelp: std::cout << qemu_cpu_list() << std::flush; return 0;
      case QemuOptions::Action::Run: break;
    }
    // Files last, after every option was accepted (kvm-unit-tests' premature-failure probe).
    if (auto why = check_qemu_files(o)) return fail(*why);
    wall = qemu_wall_clock_ns(std::getenv("PVSIM_QEMU_WALLCLOCK_NS"), realtime_ns);
    o.resident_mib = qemu_resident_mib(std::getenv("PVSIM_QEMU_RESIDENT_MIB"));
  } catch (const QemuUsageError& e) {
    return fail(e.what());
  }
  std::error_code ec;
  const std::filesystem::path cwd = std::filesystem::current_path(ec);
  if (ec) return fail(fmt::format("cannot read the current directory: {}", ec.message()));
  const std::string json = qemu_scenario_json(o, wall, cwd);
  try {
    const Scenario s = parse_scenario(json, std::string(kQemuScenarioName));
    std::vector<OutputFile::Input> inputs{{s.guest.image, "the kernel"}};
    if (o.scenario_file) {
      OutputFile out;
      out.open(*o.scenario_file, "--pvsim-scenario", inputs, {});
      *out.stream() << json;
      out.commit();
      return 0;
    }
    OutputFile trace;
    if (o.trace_file) trace.open(*o.trace_file, "--pvsim-trace", inputs, {});
    PlatformOptions po;
    // The console (port 0xe9 and the UART, devices/debugcon.h) streams to stdout, flushed at
    // each line end; nothing else goes there.
    po.console_live = o.serial_stdio ? &std::cout : nullptr;
    po.keep_console = false;
    po.trace_text = trace.stream();
    Platform machine(s, po);
    const RunReport r = machine.run();
    std::cout.flush();
    trace.commit();
    const QemuExit e = qemu_exit_for(r);
    if (!e.message.empty()) fail(e.message);
    return e.status;
  } catch (const ScenarioError& e) {
    std::cout.flush();
    fmt::print(stderr, "{}\n", e.what());
    return 1;
  } catch (const FileError& e) {
    return fail(e.what());
  }
}

}  // namespace pvsim
