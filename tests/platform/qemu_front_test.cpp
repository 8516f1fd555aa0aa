// tests/platform/qemu_front_test.cpp — `pvsim qemu` (tools/platform/qemu_front.h): the QEMU
// option parser, the probes' output as kvm-unit-tests' runner reads it, the generated
// scenario and the exit-status mapping. tests/kut runs the real runner against the binary.
#include <catch2/catch.hpp>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "tools/platform/platform.h"
#include "tools/platform/qemu_front.h"

using namespace pvsim;
using Json = nlohmann::json;
using Args = std::vector<std::string>;

namespace {

// The options kvm-unit-tests' x86/run passes to every test (x86/run, scripts/arch-run.bash
// run_test), with the test's own after -kernel.
Args kut_line(const Args& test_opts) {
  Args a{"--no-reboot", "-nodefaults", "-global", "kvm-pit.lost_tick_policy=discard", "-device", "pc-testdev",
         "-device", "isa-debug-exit,iobase=0xf4,iosize=0x4", "-display", "none", "-serial", "stdio",
         "-machine", "accel=tcg", "-kernel", "x86/smptest.flat"};
  a.insert(a.end(), test_opts.begin(), test_opts.end());
  a.insert(a.end(), {"-initrd", "/tmp/tmp.env"});
  return a;
}

// The message parse_qemu_args throws for `args` ("" when it accepts them).
std::string error_of(const Args& args) {
  try {
    parse_qemu_args(args);
  } catch (const QemuUsageError& e) {
    return e.what();
  }
  return "";
}

QemuOptions with_kernel(Args more) {
  more.insert(more.begin(), {"-kernel", "k.elf"});
  return parse_qemu_args(more);
}

}  // namespace

TEST_CASE("qemu front: defaults are QEMU's (qemu64 with 1 vCPU and 128 MiB and the serial port on stdout)", "[qemu]") {
  const QemuOptions o = parse_qemu_args({"-kernel", "k.elf"});
  CHECK(o.action == QemuOptions::Action::Run);
  CHECK(*o.kernel == "k.elf");
  CHECK(!o.append);
  CHECK(!o.initrd);
  CHECK(o.modules.empty());
  CHECK(o.vcpus == 1);
  CHECK(o.ram_mib == 128);
  CHECK(o.cpu_model == QemuCpuModel::Qemu64);
  CHECK(o.x2apic);
  CHECK(o.vendor == CpuVendor::Intel);
  CHECK(!o.irqchip_userspace);
  CHECK(o.serial_stdio);
  CHECK(!o.trace_file);
  CHECK(!o.scenario_file);
}

TEST_CASE("qemu front: every command line of the nine kvm-unit-tests is accepted", "[qemu]") {
  // x86/unittests.cfg: the -smp, -append and qemu_params of each test.
  const std::vector<Args> tests{
      {"-smp", "2", "-append", "10000000 1700000000"},                // kvmclock_test
      {"-smp", "1", "-cpu", "max,vendor=GenuineIntel"},               // msr
      {"-smp", "2"}, {"-smp", "3"}, {"-smp", "1"},                    // smptest, smptest3, setjmp/realmode/hypercall
      {"-smp", "1", "-cpu", "max"},                                   // tsc
      {"-smp", "2", "-cpu", "qemu64,+x2apic,+tsc-deadline"},          // x2apic
      {"-smp", "2", "-cpu", "qemu64,-x2apic,+tsc-deadline"},          // xapic
      {"-smp", "1", "-cpu", "host", "-m", "2048"},                    // asyncpf
  };
  for (const Args& t : tests) {
    INFO(t.size());
    CHECK(error_of(kut_line(t)) == "");
  }
  const QemuOptions kvmclock = parse_qemu_args(kut_line(tests[0]));
  CHECK(kvmclock.vcpus == 2);
  CHECK(*kvmclock.append == "10000000 1700000000");
  REQUIRE(kvmclock.modules.size() == 1);
  CHECK(kvmclock.modules[0].path == "/tmp/tmp.env");
  CHECK(kvmclock.modules[0].string == "/tmp/tmp.env");
  const QemuOptions msr = parse_qemu_args(kut_line(tests[1]));
  CHECK(msr.cpu_model == QemuCpuModel::Max);
  CHECK(msr.vendor == CpuVendor::Intel);
  CHECK(parse_qemu_args(kut_line(tests[6])).x2apic);
  CHECK(!parse_qemu_args(kut_line(tests[7])).x2apic);
  const QemuOptions apf = parse_qemu_args(kut_line(tests[8]));
  CHECK(apf.cpu_model == QemuCpuModel::Host);
  CHECK(apf.ram_mib == 2048);
}

TEST_CASE("qemu front: the one-dash and two-dash spellings are the same option", "[qemu]") {
  const QemuOptions o = parse_qemu_args({"--kernel", "k.elf", "--smp", "3", "--m", "256", "--cpu", "max",
                                         "--append", "x", "--no-reboot", "-no-reboot", "--nodefaults",
                                         "--machine", "accel=kvm", "-M", "pc", "--serial", "stdio"});
  CHECK(*o.kernel == "k.elf");
  CHECK(o.vcpus == 3);
  CHECK(o.ram_mib == 256);
  CHECK(o.cpu_model == QemuCpuModel::Max);
  CHECK(*o.append == "x");
  // A later option of the same kind wins, as in QEMU.
  CHECK(with_kernel({"-smp", "2", "-smp", "4"}).vcpus == 4);
}

TEST_CASE("qemu front: smp forms", "[qemu]") {
  CHECK(with_kernel({"-smp", "3"}).vcpus == 3);
  CHECK(with_kernel({"-smp", "cpus=3"}).vcpus == 3);
  CHECK(with_kernel({"-smp", "4,maxcpus=4"}).vcpus == 4);
  CHECK(with_kernel({"-smp", "cpus=4,maxcpus=4,sockets=2,cores=2,threads=1"}).vcpus == 4);
  CHECK(with_kernel({"-smp", "sockets=2,cores=2"}).vcpus == 4);
  CHECK(with_kernel({"-smp", "sockets=1,dies=1,clusters=1,cores=2,threads=2"}).vcpus == 4);
  CHECK(with_kernel({"-smp", "cpus=2,sockets=1"}).vcpus == 2);  // cores derived: 2
  CHECK(with_kernel({"-smp", "cpus=6,cores=3"}).vcpus == 6);    // sockets derived: 2
  CHECK(with_kernel({"-smp", "64"}).vcpus == 64);
  CHECK(error_of({"-kernel", "k", "-smp", "0"}) == "-smp 0: CPU topology parameters must be greater than zero");
  CHECK(error_of({"-kernel", "k", "-smp", "cpus=2,maxcpus=4"}) ==
        "-smp cpus=2,maxcpus=4: maxcpus (4) above cpus (2) asks for CPU hotplug, which pvsim does not have");
  CHECK(error_of({"-kernel", "k", "-smp", "cpus=4,maxcpus=4,sockets=3,cores=1"}) ==
        "-smp cpus=4,maxcpus=4,sockets=3,cores=1: sockets (3) * dies (1) * clusters (1) * cores (1) * threads (1) = 3 "
        "is not maxcpus (4)");
  // Without maxcpus the topology gives it (QEMU 7.2), and cpus may not exceed it.
  CHECK(error_of({"-kernel", "k", "-smp", "cpus=4,sockets=3,cores=1"}) ==
        "-smp cpus=4,sockets=3,cores=1: cpus (4) is more than maxcpus (3)");
  CHECK(error_of({"-kernel", "k", "-smp", "cpus=5,maxcpus=4"}) == "-smp cpus=5,maxcpus=4: cpus (5) is more than maxcpus (4)");
  // kvm-unit-tests' --probe-maxsmp takes the last word, in parentheses, of a line with "SMP CPUs".
  const std::string too_many = error_of({"-kernel", "k", "-smp", "65"});
  CHECK(too_many == "-smp 65: Invalid SMP CPUs 65: the most pvsim supports is (64)");
  CHECK(too_many.find("SMP CPUs") != std::string::npos);
  CHECK(too_many.substr(too_many.rfind(' ') + 1) == "(64)");
  CHECK(error_of({"-kernel", "k", "-smp", "2,foo=1"}) ==
        "-smp 2,foo=1: unknown parameter \"foo\" (cpus, maxcpus, sockets, dies, clusters, cores, threads)");
  CHECK(error_of({"-kernel", "k", "-smp", "two"}) == "-smp two: cpus=two is not a number from 1 to 4096");
  CHECK(error_of({"-kernel", "k", "-smp", "2,3"}) == "-smp 2,3: \"3\" is not a key=value parameter");
}

TEST_CASE("qemu front: memory size forms", "[qemu]") {
  CHECK(with_kernel({"-m", "2048"}).ram_mib == 2048);
  CHECK(with_kernel({"-m", "2048M"}).ram_mib == 2048);
  CHECK(with_kernel({"-m", "512m"}).ram_mib == 512);
  CHECK(with_kernel({"-m", "2G"}).ram_mib == 2048);
  CHECK(with_kernel({"-m", "size=1g"}).ram_mib == 1024);
  CHECK(with_kernel({"-m", "1048576K"}).ram_mib == 1024);
  CHECK(with_kernel({"-m", "64G"}).ram_mib == 65536);
  CHECK(error_of({"-kernel", "k", "-m", "1.5G"}) ==
        "-m 1.5G: not a size (a whole number of MiB, or one with a K, M, G or T suffix)");
  CHECK(error_of({"-kernel", "k", "-m", "1536K"}) == "-m 1536K: not a whole number of MiB");
  CHECK(error_of({"-kernel", "k", "-m", "1"}) == "-m 1: pvsim's RAM is from 2 to 65536 MiB, got 1 MiB");
  CHECK(error_of({"-kernel", "k", "-m", "1T"}) == "-m 1T: pvsim's RAM is from 2 to 65536 MiB, got 1048576 MiB");
  CHECK(error_of({"-kernel", "k", "-m", "2048,slots=2,maxmem=4G"}) ==
        "-m 2048,slots=2,maxmem=4G: memory hotplug (slots) is not supported by pvsim");
  CHECK(error_of({"-kernel", "k", "-m", "lots"}) ==
        "-m lots: not a size (a whole number of MiB, or one with a K, M, G or T suffix)");
}

TEST_CASE("qemu front: cpu models and flags", "[qemu]") {
  CHECK(with_kernel({"-cpu", "qemu64"}).cpu_model == QemuCpuModel::Qemu64);
  CHECK(with_kernel({"-cpu", "max"}).cpu_model == QemuCpuModel::Max);
  CHECK(with_kernel({"-cpu", "host"}).cpu_model == QemuCpuModel::Host);
  // x2APIC: present in every model (KVM's qemu64 has it), hidden by -x2apic in any spelling.
  CHECK(with_kernel({"-cpu", "qemu64"}).x2apic);
  CHECK(with_kernel({"-cpu", "host"}).x2apic);
  CHECK(with_kernel({"-cpu", "qemu64,+x2apic,+tsc-deadline"}).x2apic);
  CHECK(!with_kernel({"-cpu", "qemu64,-x2apic,+tsc-deadline"}).x2apic);
  CHECK(!with_kernel({"-cpu", "max,x2apic=off"}).x2apic);
  CHECK(with_kernel({"-cpu", "max,x2apic=off,x2apic"}).x2apic);
  CHECK(with_kernel({"-cpu", "max,tsc_deadline=on"}).x2apic);
  // A later -cpu starts from its own model: its flags do not carry over.
  CHECK(with_kernel({"-cpu", "qemu64,-x2apic", "-cpu", "max"}).x2apic);
  CHECK(with_kernel({"-cpu", "max,vendor=GenuineIntel"}).vendor == CpuVendor::Intel);
  CHECK(with_kernel({"-cpu", "qemu64,vendor=AuthenticAMD"}).vendor == CpuVendor::Amd);
  CHECK(error_of({"-kernel", "k", "-cpu", "IvyBridge,phys-bits=36"}) ==
        "-cpu IvyBridge,phys-bits=36: unsupported CPU model \"IvyBridge\" (pvsim has qemu64, max and host: pvsim qemu "
        "-cpu help)");
  CHECK(error_of({"-kernel", "k", "-cpu", "max,+vmx"}) ==
        "-cpu max,+vmx: CPU feature \"vmx\" is not supported (pvsim qemu accepts x2apic, tsc-deadline and vendor=)");
  CHECK(error_of({"-kernel", "k", "-cpu", "max,host-phys-bits"}) ==
        "-cpu max,host-phys-bits: CPU feature \"host-phys-bits\" is not supported (pvsim qemu accepts x2apic, "
        "tsc-deadline and vendor=)");
  CHECK(error_of({"-kernel", "k", "-cpu", "qemu64,-tsc-deadline"}) ==
        "-cpu qemu64,-tsc-deadline: pvsim always has the TSC-deadline timer; it cannot be turned off");
  CHECK(error_of({"-kernel", "k", "-cpu", "max,vendor=CentaurHauls"}) ==
        "-cpu max,vendor=CentaurHauls: vendor \"CentaurHauls\" is not supported (GenuineIntel or AuthenticAMD)");
  CHECK(error_of({"-kernel", "k", "-cpu", "max,x2apic=maybe"}) ==
        "-cpu max,x2apic=maybe: \"maybe\" is not on or off for CPU feature \"x2apic\"");
}

TEST_CASE("qemu front: machine and accel and device and global and the ignored options", "[qemu]") {
  for (const char* m : {"accel=kvm", "accel=tcg", "accel=hvf", "accel=kvm:tcg", "pc,accel=kvm", "type=pc",
                        "accel=kvm,kernel-irqchip=split", "accel=kvm,kernel_irqchip=on"}) {
    INFO(m);
    CHECK(error_of({"-kernel", "k", "-machine", m}) == "");
    CHECK(!with_kernel({"-machine", m}).irqchip_userspace);
  }
  CHECK(with_kernel({"-machine", "accel=kvm,kernel-irqchip=off"}).irqchip_userspace);
  CHECK(error_of({"-kernel", "k", "-machine", "q35"}) ==
        "-machine q35: unsupported machine type \"q35\" (pvsim is an ISA PC: 'pc')");
  CHECK(error_of({"-kernel", "k", "-machine", "accel=xen"}) ==
        "-machine accel=xen: accelerator \"xen\" is not supported (kvm, tcg or hvf; pvsim ignores which)");
  CHECK(error_of({"-kernel", "k", "-machine", "accel=tcg,thread=single"}) ==
        "-machine accel=tcg,thread=single: unsupported machine property \"thread\" (type, accel, kernel-irqchip)");
  CHECK(error_of({"-kernel", "k", "-machine", "vmport=on"}) ==
        "-machine vmport=on: unsupported machine property \"vmport\" (type, accel, kernel-irqchip)");
  CHECK(error_of({"-kernel", "k", "-accel", "kvm", "-accel", "tcg", "-enable-kvm"}) == "");
  CHECK(error_of({"-kernel", "k", "-accel", "kvm,kernel-irqchip=on"}) ==
        "-accel kvm,kernel-irqchip=on: accelerator properties are not supported");

  CHECK(error_of({"-kernel", "k", "-device", "pc-testdev", "-device", "isa-debug-exit", "-device",
                  "isa-debug-exit,iobase=0xf4,iosize=0x4", "-device", "isa-debug-exit,iosize=2"}) == "");
  CHECK(error_of({"-kernel", "k", "-device", "isa-debug-exit,iobase=0x501"}) ==
        "-device isa-debug-exit,iobase=0x501: pvsim's isa-debug-exit is at iobase=0xf4 only");
  CHECK(error_of({"-kernel", "k", "-device", "isa-debug-exit,iosize=8"}) ==
        "-device isa-debug-exit,iosize=8: iosize must be from 1 to 4");
  CHECK(error_of({"-kernel", "k", "-device", "pci-testdev"}) ==
        "-device pci-testdev: pci-testdev is not supported (pvsim has no PCI bus)");
  CHECK(error_of({"-kernel", "k", "-device", "hyperv-testdev"}) ==
        "-device hyperv-testdev: unsupported device \"hyperv-testdev\" (pvsim qemu -device help lists the devices)");
  CHECK(error_of({"-kernel", "k", "-device", "pc-testdev,foo=1"}) == "-device pc-testdev,foo=1: pc-testdev has no properties");

  CHECK(error_of({"-kernel", "k", "-global", "kvm-pit.lost_tick_policy=delay"}) ==
        "-global kvm-pit.lost_tick_policy=delay: unsupported (pvsim accepts only kvm-pit.lost_tick_policy=discard)");
  CHECK(error_of({"-kernel", "k", "-nodefaults", "-no-user-config", "--no-reboot", "-display", "none", "-vga", "none",
                  "-monitor", "none"}) == "");
  CHECK(error_of({"-kernel", "k", "-display", "gtk"}) == "-display gtk: pvsim accepts only 'none'");
  CHECK(error_of({"-kernel", "k", "-monitor", "stdio"}) == "-monitor stdio: pvsim accepts only 'none'");

  CHECK(!with_kernel({"-serial", "none"}).serial_stdio);
  CHECK(!with_kernel({"-serial", "null"}).serial_stdio);
  CHECK(with_kernel({"-serial", "stdio", "-serial", "none"}).serial_stdio);  // COM2 absent: fine
  CHECK(error_of({"-kernel", "k", "-serial", "file:out.txt"}) ==
        "-serial file:out.txt: pvsim accepts stdio, none or null (the serial port at 0x3f8 is stdout)");
  CHECK(error_of({"-kernel", "k", "-serial", "stdio", "-serial", "stdio"}) == "-serial stdio: pvsim has one serial port");
}

TEST_CASE("qemu front: refused options name themselves in one line", "[qemu]") {
  CHECK(error_of({"-kernel", "k", "-hda", "disk.img"}) ==
        "-hda: unsupported option (pvsim qemu --help lists the accepted subset)");
  CHECK(error_of({"-kernel", "k", "--overcommit", "cpu-pm=on"}) ==
        "-overcommit: unsupported option (pvsim qemu --help lists the accepted subset)");
  CHECK(error_of({"-kernel"}) == "-kernel: requires an argument");
  CHECK(error_of({"--smp"}) == "-smp: requires an argument");
  CHECK(error_of({"-kernel", "k", "disk.img"}) == "\"disk.img\": disk images are not supported (pvsim boots a "
                                                   "Multiboot -kernel)");
  const std::string gdb_hint =
      "not supported: save the run with --pvsim-scenario FILE and debug it with `pvsim run FILE --gdb PORT`";
  CHECK(error_of({"-kernel", "k", "-gdb", "tcp::1234"}) == "-gdb: " + gdb_hint);
  CHECK(error_of({"-kernel", "k", "-s"}) == "-s: " + gdb_hint);
  CHECK(error_of({"-kernel", "k", "-S"}) == "-S: " + gdb_hint);
  CHECK(error_of({"-kernel", "k", "-incoming", "tcp:0:4444"}) == "-incoming: migration is not supported by pvsim");
  CHECK(error_of({"-kernel", "k", "-chardev", "file,id=x,path=y"}) ==
        "-chardev: character devices and monitors are not supported (the serial port is always stdio)");
  CHECK(error_of({"-kernel", "k", "--pvsim-trace", "-"}) ==
        "--pvsim-trace: give a file name (standard output carries the guest's console)");
  CHECK(error_of({"-smp", "2"}) == "no -kernel given (pvsim boots Multiboot kernels only)");
  CHECK(error_of({"-kernel", "k", "-initrd", ",x"}) == "-initrd ,x: a module without a file name");
  // Control characters in what is quoted back stay on one line.
  CHECK(error_of({"-kernel", "k", "-cpu", "max,+a\nb"}).find('\n') == std::string::npos);
}

TEST_CASE("qemu front: initrd modules in QEMU's Multiboot form", "[qemu]") {
  const QemuOptions one = with_kernel({"-initrd", "env.txt"});
  REQUIRE(one.modules.size() == 1);
  CHECK(one.modules[0].path == "env.txt");
  CHECK(one.modules[0].string == "env.txt");
  const QemuOptions two = with_kernel({"-initrd", "m1 arg1 arg2,m2"});
  REQUIRE(two.modules.size() == 2);
  CHECK(two.modules[0].path == "m1");
  CHECK(two.modules[0].string == "m1 arg1 arg2");
  CHECK(two.modules[1].path == "m2");
  CHECK(two.modules[1].string == "m2");
  const QemuOptions comma = with_kernel({"-initrd", "a,,b"});
  REQUIRE(comma.modules.size() == 1);
  CHECK(comma.modules[0].path == "a,b");
}

TEST_CASE("qemu front: probes print what kvm-unit-tests' runner reads", "[qemu]") {
  for (const char* h : {"-h", "--help", "-help"}) CHECK(parse_qemu_args({h}).action == QemuOptions::Action::Help);
  for (const char* v : {"-version", "--version"}) CHECK(parse_qemu_args({v}).action == QemuOptions::Action::Version);
  for (const char* d : {"?", "help"})
    CHECK(parse_qemu_args({"-device", d}).action == QemuOptions::Action::DeviceHelp);
  CHECK(parse_qemu_args({"-cpu", "help"}).action == QemuOptions::Action::CpuHelp);
  // Options are read in order: a probe ends the parsing (QEMU exits there), an error before it wins.
  CHECK(parse_qemu_args({"-smp", "2", "-h", "-frobnicate"}).action == QemuOptions::Action::Help);
  CHECK(error_of({"-frobnicate", "-h"}) == "-frobnicate: unsupported option (pvsim qemu --help lists the accepted subset)");

  // search_qemu_binary: `$QEMU --help | grep -q QEMU`. env_params: the first line of -h read
  // with IFS='[ .]' into _ _ _ MAJOR MINOR MICRO (scripts/arch-run.bash).
  const std::string help = qemu_help_text("9.8.7");
  CHECK(help.find("QEMU") != std::string::npos);
  const std::string first = help.substr(0, help.find('\n'));
  CHECK(first == "QEMU emulator version 7.2.0 (pvsim 9.8.7: QEMU-compatible front door)");
  std::vector<std::string> words;
  std::string w;
  for (char c : first) {
    if (c == ' ' || c == '.') {
      // IFS whitespace runs collapse; each '.' delimits a field (POSIX field splitting).
      if (!w.empty() || c == '.') words.push_back(w);
      w.clear();
    } else {
      w += c;
    }
  }
  REQUIRE(words.size() >= 6);
  CHECK(words[3] == "7");
  CHECK(words[4] == "2");
  CHECK(words[5] == "0");
  CHECK(qemu_version_text("9.8.7").substr(0, first.size()) == first);

  // x86/run: `$QEMU -device '?' | grep -F '"pc-testdev"'`, and -device pci-testdev is passed
  // when "pci-testdev" appears anywhere, which pvsim cannot honour.
  const std::string devices = qemu_device_list();
  CHECK(devices.find("name \"pc-testdev\", bus ISA\n") != std::string::npos);
  CHECK(devices.find("name \"isa-debug-exit\", bus ISA\n") != std::string::npos);
  CHECK(devices.find("pci-testdev") == std::string::npos);
  CHECK(qemu_cpu_list().find("qemu64") != std::string::npos);
}

TEST_CASE("qemu front: kernel and initrd files are checked after the options", "[qemu]") {
  // scripts/vmm.bash qemu_parse_premature_failure: a line naming the file and matching
  // "[Cc]ould not (load|open) kernel|error loading|failed to load" (a plain scan: GCC 12
  // warns inside <regex> in sanitizer builds).
  auto runner_pattern = [](const std::string& l) {
    for (const char* p : {"ould not load kernel", "ould not open kernel", "error loading", "failed to load"}) {
      const size_t k = l.find(p);
      if (k == std::string::npos) continue;
      if (p[0] != 'o' || (k > 0 && (l[k - 1] == 'c' || l[k - 1] == 'C'))) return true;
    }
    return false;
  };
  const std::string missing = check_qemu_files(parse_qemu_args({"-kernel", "_NO_FILE_4Uhere_"})).value_or("");
  CHECK(missing == "could not load kernel '_NO_FILE_4Uhere_': No such file or directory");
  CHECK(runner_pattern(missing));
  CHECK_FALSE(runner_pattern("pvsim: kernel missing"));
  // The options are judged first: with a refused one the probe sees that one's line.
  CHECK(error_of({"-kernel", "_NO_FILE_4Uhere_", "-cpu", "Opteron_G1"}).find("Opteron_G1") != std::string::npos);

  const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                    ("pvsim-qemu-front-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string kernel = (dir / "k.elf").string(), env = (dir / "env").string();
  std::ofstream(kernel) << "x";
  std::ofstream(env) << "NR_CPUS=1\n";
  CHECK(!check_qemu_files(parse_qemu_args({"-kernel", kernel, "-initrd", env})));
  CHECK(*check_qemu_files(parse_qemu_args({"-kernel", dir.string()})) ==
        "could not load kernel '" + dir.string() + "': Is a directory");
  CHECK(*check_qemu_files(parse_qemu_args({"-kernel", kernel, "-initrd", env + ",nothere"})) ==
        "could not load initrd 'nothere': No such file or directory");
  std::filesystem::remove_all(dir);
}

TEST_CASE("qemu front: the generated scenario", "[qemu]") {
  const QemuOptions o = parse_qemu_args(kut_line({"-smp", "2", "-append", "10000000 1700000000"}));
  const std::string text = qemu_scenario_json(o, 1'700'000'123'000'000'000ull, "/w");
  const Json j = Json::parse(text);
  // Keys in a fixed order (the text is what --pvsim-scenario writes).
  CHECK(text.find("\"name\"") < text.find("\"description\""));
  CHECK(text.find("\"machine\"") < text.find("\"host\""));
  CHECK(text.find("\"host\"") < text.find("\"guest\""));
  CHECK(text.find("\"guest\"") < text.find("\"limits\""));
  CHECK(j["name"] == "qemu-smptest");
  CHECK(j["description"].get<std::string>().find("Multiboot kernel x86/smptest.flat, 2 vCPUs, 128 MiB") !=
        std::string::npos);
  CHECK(j["machine"] == Json::parse(R"({"vcpus": 2, "ram_mib": 128, "x2apic": true, "cpu_vendor": "intel"})"));
  CHECK(j["host"] == Json::parse(R"({"wall_clock_ns": "1700000123000000000"})"));
  CHECK(j["guest"] == Json::parse(R"({"image": "/w/x86/smptest.flat", "boot": "multiboot",
                                      "cmdline": "x86/smptest.flat 10000000 1700000000",
                                      "modules": [{"path": "/tmp/tmp.env", "string": "/tmp/tmp.env"}]})"));
  CHECK(j["limits"] == Json::parse(R"({"max_instructions": 9007199254740992, "max_virtual_ms": 3600000,
                                       "max_console_bytes": 0, "max_trace_bytes": 0})"));

  // No -append: the command line is the kernel name alone; no -initrd: no modules key.
  const Json bare = Json::parse(qemu_scenario_json(parse_qemu_args({"-kernel", "../k.elf"}), 5, "/w/sub"));
  CHECK(bare["guest"] == Json::parse(R"({"image": "/w/k.elf", "boot": "multiboot", "cmdline": "../k.elf"})"));
  CHECK(bare["host"]["wall_clock_ns"] == "5");
  // An absolute kernel stays as it is; xapic, AMD and kernel-irqchip=off reach the machine.
  const Json xapic = Json::parse(qemu_scenario_json(
      parse_qemu_args({"-kernel", "/k/apic.flat", "-smp", "2", "-cpu", "qemu64,-x2apic,vendor=AuthenticAMD", "-m",
                       "2G", "-machine", "accel=kvm,kernel-irqchip=off", "-initrd", "rel.env a b", "-append", ""}),
      0, "/w"));
  CHECK(xapic["machine"] == Json::parse(R"({"vcpus": 2, "ram_mib": 2048, "x2apic": false, "cpu_vendor": "amd",
                                            "irqchip": "userspace"})"));
  CHECK(xapic["guest"] == Json::parse(R"({"image": "/k/apic.flat", "boot": "multiboot", "cmdline": "/k/apic.flat ",
                                          "modules": [{"path": "/w/rel.env", "string": "rel.env a b"}]})"));
  // Square brackets in a file name would cite trace expectations in the description.
  const Json odd = Json::parse(qemu_scenario_json(parse_qemu_args({"-kernel", "a[b]c.flat"}), 0, "/w"));
  CHECK(odd["description"].get<std::string>().find('[') == std::string::npos);
  CHECK(odd["guest"]["cmdline"] == "a[b]c.flat");
}

TEST_CASE("qemu front: PVSIM_QEMU_WALLCLOCK_NS overrides the host clock", "[qemu]") {
  CHECK(qemu_wall_clock_ns(nullptr, 42) == 42);
  CHECK(qemu_wall_clock_ns("1700000000000000000", 42) == 1'700'000'000'000'000'000ull);
  CHECK(qemu_wall_clock_ns("9223372036854775807", 42) == 9223372036854775807ull);
  for (const char* bad : {"", "abc", "-1", "1e9", "9223372036854775808"}) {
    INFO(bad);
    CHECK_THROWS_AS(qemu_wall_clock_ns(bad, 42), QemuUsageError);
  }
  CHECK_THROWS_WITH(qemu_wall_clock_ns("soon", 0),
                    "PVSIM_QEMU_WALLCLOCK_NS=\"soon\": not a number of nanoseconds since the epoch");
}

TEST_CASE("qemu front: exit statuses mirror QEMU's", "[qemu]") {
  const auto end = [](RunStop stop, std::optional<uint8_t> status, std::string detail) {
    RunReport r;
    r.stop = stop;
    r.exit_status = status;
    r.stop_detail = std::move(detail);
    return qemu_exit_for(r);
  };
  // isa-debug-exit: the status the platform computed, ((v << 1) | 1) & 0xff, silently.
  for (uint8_t s : {1, 3, 77, 255}) {
    const QemuExit e = end(RunStop::Exit, s, "port 0xf4");
    CHECK(e.status == s);
    CHECK(e.message.empty());
  }
  // The Shutdown power-off on 0x8900: 0, silently.
  CHECK(end(RunStop::Exit, 0, "Shutdown").status == 0);
  CHECK(end(RunStop::Exit, 0, "Shutdown").message.empty());
  // A triple fault: QEMU --no-reboot's 0, with the reason on stderr.
  const QemuExit shut = end(RunStop::Shutdown, std::nullopt, "vCPU 0 shut down: triple fault");
  CHECK(shut.status == 0);
  CHECK(shut.message == "the guest shut down (triple fault): vCPU 0 shut down: triple fault");
  // pvsim's own ends: 1 and one line. The runner passes a status-1 run whose stderr lines
  // all say "warning" (scripts/vmm.bash qemu_fixup_return_code): these must not.
  for (RunStop s : {RunStop::Limit, RunStop::UnhandledIo, RunStop::Unsupported, RunStop::Deadlock, RunStop::Finished}) {
    const QemuExit e = end(s, std::nullopt, "detail\nsecond line");
    INFO(run_stop_name(s));
    CHECK(e.status == 1);
    CHECK(!e.message.empty());
    CHECK(e.message.find('\n') == std::string::npos);
    CHECK(e.message.find("warning") == std::string::npos);
  }
  CHECK(end(RunStop::Limit, std::nullopt, "max_virtual_ms (3600000 ms) reached").message ==
        "pvsim ended the run: limit (max_virtual_ms (3600000 ms) reached); rerun with --pvsim-scenario FILE and "
        "`pvsim run FILE` for the details");
}

// The round trip through the scenario parser needs the Multiboot keys (guest.boot,
// guest.cmdline, guest.modules, machine.x2apic), which come with tools/platform/multiboot.h.
#if __has_include("tools/platform/multiboot.h")
TEST_CASE("qemu front: the generated scenario parses as the front door runs it", "[qemu]") {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                    ("pvsim-qemu-front-rt-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string kernel = (dir / "k.elf").string(), env = (dir / "env").string();
  std::ofstream(kernel) << "x";
  std::ofstream(env) << "NR_CPUS=2\n";
  const QemuOptions o = parse_qemu_args({"-kernel", kernel, "-smp", "2", "-m", "2048", "-cpu",
                                         "qemu64,-x2apic,vendor=AuthenticAMD", "-append", "1 2", "-initrd", env});
  const Scenario s = parse_scenario(qemu_scenario_json(o, 1'700'000'000'000'000'000ull, "/"),
                                    std::string(kQemuScenarioName));
  CHECK(s.guest.boot == BootProtocol::Multiboot);
  CHECK(s.guest.image == std::filesystem::path(kernel));
  CHECK(s.guest.cmdline == kernel + " 1 2");
  REQUIRE(s.guest.modules.size() == 1);
  CHECK(s.guest.modules[0].path == std::filesystem::path(env));
  CHECK(s.guest.modules[0].string == env);
  CHECK(s.machine.vcpus == 2);
  CHECK(s.machine.ram_mib == 2048);
  CHECK(!s.machine.x2apic);
  CHECK(s.machine.cpu_vendor == CpuVendor::Amd);
  CHECK(s.machine.start == StartMode::Bsp);
  CHECK(s.host.wall_clock_ns == 1'700'000'000'000'000'000ull);
  CHECK(s.limits.max_instructions == 1ull << 53);
  CHECK(s.limits.max_virtual_ms == 3'600'000);
  CHECK(s.limits.max_console_bytes == 0);
  std::filesystem::remove_all(dir);
}
#endif
