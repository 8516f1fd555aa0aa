// The port devices kvm-unit-tests expects of QEMU's pc machine, as standalone objects: the
// 16550A UART (devices/uart16550.h), fw_cfg (devices/fw_cfg.h), pc-testdev
// (devices/pc_testdev.h) and the "Shutdown" power-off port (devices/poweroff_port.h).
#include <catch2/catch.hpp>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/guest_memory.h"
#include "core/trace.h"
#include "core/vcpu.h"
#include "devices/fw_cfg.h"
#include "devices/pc_testdev.h"
#include "devices/poweroff_port.h"
#include "devices/uart16550.h"
#include "tests/cpu_envs.h"

using namespace pvsim;

namespace {

// A bare vCPU for the PioDevice interface (the devices only ask for the index and stop).
struct OneVcpu {
  explicit OneVcpu(unsigned index = 0, unsigned count = 1) : mem(16 * kPageSize) {
    VcpuConfig c;
    c.index = index;
    c.count = count;
    v = std::make_unique<Vcpu>(c, mem, env, tracer);
  }
  GuestMemory mem;
  Tracer tracer;
  test::NullEnv env;
  std::unique_ptr<Vcpu> v;
};

uint32_t in(PioDevice& d, Vcpu& v, uint16_t offset, unsigned size = 1) {
  uint32_t x = 0xdeadbeef;
  d.pio_read(v, offset, size, x);
  return x;
}
void out(PioDevice& d, Vcpu& v, uint16_t offset, uint32_t value, unsigned size = 1) {
  d.pio_write(v, offset, size, value);
}

struct Uart {
  Uart16550 u{[this](Vcpu&, uint8_t b) { sent.push_back(static_cast<char>(b)); }};
  std::string sent;
};

}  // namespace

// ------------------------------------------------------------------ UART

TEST_CASE("16550A: reset values as QEMU's serial_reset leaves them", "[uart]") {
  OneVcpu c;
  Uart t;
  Vcpu& v = *c.v;
  CHECK(in(t.u, v, Uart16550::kRbrThr) == 0x00);  // nothing received
  CHECK(in(t.u, v, Uart16550::kIer) == 0x00);
  CHECK(in(t.u, v, Uart16550::kIirFcr) == 0x01);  // no interrupt pending, FIFOs off
  CHECK(in(t.u, v, Uart16550::kLcr) == 0x00);
  CHECK(in(t.u, v, Uart16550::kMcr) == 0x08);
  CHECK(in(t.u, v, Uart16550::kLsr) == 0x60);     // THRE | TEMT, no DR
  CHECK(in(t.u, v, Uart16550::kMsr) == 0xb0);
  CHECK(in(t.u, v, Uart16550::kScr) == 0x00);
  CHECK(t.u.divisor() == 12);
}

TEST_CASE("16550A: THR bytes reach the sink, DLAB turns offsets 0/1 into the divisor latch", "[uart]") {
  OneVcpu c;
  Uart t;
  Vcpu& v = *c.v;
  // kvm-unit-tests' serial_init: DLAB, divisor 1 (115200), DLAB off, IER 0, 8N1, FCR 0, MCR 3.
  out(t.u, v, Uart16550::kLcr, in(t.u, v, Uart16550::kLcr) | 0x80);
  out(t.u, v, Uart16550::kRbrThr, 0x01);
  out(t.u, v, Uart16550::kIer, 0x00);
  CHECK(in(t.u, v, Uart16550::kRbrThr) == 0x01);  // DLL
  CHECK(in(t.u, v, Uart16550::kIer) == 0x00);     // DLM
  CHECK(t.u.divisor() == 1);
  CHECK(t.sent.empty());  // the DLL write was not a character
  out(t.u, v, Uart16550::kLcr, in(t.u, v, Uart16550::kLcr) & ~0x80u);
  out(t.u, v, Uart16550::kIer, 0x00);
  out(t.u, v, Uart16550::kLcr, 0x03);
  out(t.u, v, Uart16550::kIirFcr, 0x00);
  out(t.u, v, Uart16550::kMcr, 0x03);
  CHECK(t.u.divisor() == 1);  // IER writes with DLAB clear leave DLM alone
  CHECK(in(t.u, v, Uart16550::kLcr) == 0x03);
  CHECK(in(t.u, v, Uart16550::kMcr) == 0x03);
  for (char ch : std::string("ok\r\n")) {
    CHECK((in(t.u, v, Uart16550::kLsr) & 0x20) != 0);  // never busy
    out(t.u, v, Uart16550::kRbrThr, static_cast<uint8_t>(ch));
  }
  CHECK(t.sent == "ok\r\n");
  CHECK(in(t.u, v, Uart16550::kRbrThr) == 0x00);  // RBR with DLAB clear
  // Divisor high byte through DLM.
  out(t.u, v, Uart16550::kLcr, 0x83);
  out(t.u, v, Uart16550::kIer, 0x12);
  CHECK(t.u.divisor() == 0x1201);
  CHECK(in(t.u, v, Uart16550::kIer) == 0x12);
  CHECK(t.sent == "ok\r\n");
}

TEST_CASE("16550A: IER, FCR/IIR, MCR, SCR, LSR and MSR as plain registers", "[uart]") {
  OneVcpu c;
  Uart t;
  Vcpu& v = *c.v;
  out(t.u, v, Uart16550::kIer, 0xff);
  CHECK(in(t.u, v, Uart16550::kIer) == 0x0f);  // bits 4-7 always 0
  CHECK(in(t.u, v, Uart16550::kIirFcr) == 0x01);  // IER is stored only: never an interrupt
  out(t.u, v, Uart16550::kIirFcr, 0xc7);          // enable + clear both FIFOs, trigger 14
  CHECK(in(t.u, v, Uart16550::kIirFcr) == 0xc1);
  out(t.u, v, Uart16550::kIirFcr, 0xc6);          // without the enable bit: FIFOs off
  CHECK(in(t.u, v, Uart16550::kIirFcr) == 0x01);
  out(t.u, v, Uart16550::kMcr, 0xff);
  CHECK(in(t.u, v, Uart16550::kMcr) == 0x1f);
  out(t.u, v, Uart16550::kScr, 0xa5);
  CHECK(in(t.u, v, Uart16550::kScr) == 0xa5);
  out(t.u, v, Uart16550::kLsr, 0x00);  // factory-test writes are dropped
  out(t.u, v, Uart16550::kMsr, 0x00);
  CHECK(in(t.u, v, Uart16550::kLsr) == 0x60);
  // Loopback: MSR shows MCR's outputs (RTS->CTS, DTR->DSR, OUT1->RI, OUT2->DCD) and a THR
  // byte does not go out.
  out(t.u, v, Uart16550::kMcr, 0x10 | 0x01);  // LOOP | DTR
  CHECK(in(t.u, v, Uart16550::kMsr) == 0x20);
  out(t.u, v, Uart16550::kMcr, 0x10 | 0x02 | 0x04 | 0x08);  // LOOP | RTS | OUT1 | OUT2
  CHECK(in(t.u, v, Uart16550::kMsr) == 0xd0);
  out(t.u, v, Uart16550::kRbrThr, 'x');
  CHECK(t.sent.empty());
  out(t.u, v, Uart16550::kMcr, 0x08);
  CHECK(in(t.u, v, Uart16550::kMsr) == 0xb0);
  out(t.u, v, Uart16550::kRbrThr, 'y');
  CHECK(t.sent == "y");
}

TEST_CASE("16550A: a wide access is split into byte accesses to consecutive ports", "[uart]") {
  OneVcpu c;
  Uart t;
  Vcpu& v = *c.v;
  out(t.u, v, Uart16550::kRbrThr, 0x0341, 2);  // THR 'A', IER 3
  CHECK(t.sent == "A");
  CHECK(t.u.ier() == 0x03);
  CHECK(in(t.u, v, Uart16550::kLsr, 2) == 0xb060u);        // LSR, MSR
  CHECK(in(t.u, v, Uart16550::kMsr, 4) == 0xffff00b0u);    // MSR, SCR, then past offset 7
  out(t.u, v, Uart16550::kScr, 0x11223344u, 4);            // only SCR is in range
  CHECK(in(t.u, v, Uart16550::kScr) == 0x44);
}

TEST_CASE("16550A: a snapshot restores every register", "[uart]") {
  OneVcpu c;
  Uart t;
  Vcpu& v = *c.v;
  out(t.u, v, Uart16550::kLcr, 0x83);
  out(t.u, v, Uart16550::kRbrThr, 0x34);
  out(t.u, v, Uart16550::kLcr, 0x1b);
  out(t.u, v, Uart16550::kScr, 0x77);
  out(t.u, v, Uart16550::kIirFcr, 0x01);
  const auto snap = t.u.save();
  out(t.u, v, Uart16550::kLcr, 0x80);
  out(t.u, v, Uart16550::kRbrThr, 0x99);
  out(t.u, v, Uart16550::kScr, 0x00);
  out(t.u, v, Uart16550::kIirFcr, 0x00);
  t.u.restore(snap);
  CHECK(t.u.lcr() == 0x1b);
  CHECK(t.u.divisor() == 0x0034);
  CHECK(in(t.u, v, Uart16550::kScr) == 0x77);
  CHECK(in(t.u, v, Uart16550::kIirFcr) == 0xc1);
}

// ------------------------------------------------------------------ fw_cfg

namespace {
void select(FwCfg& f, Vcpu& v, uint16_t key) { out(f, v, 0, key, 2); }
std::vector<uint8_t> read_bytes(FwCfg& f, Vcpu& v, unsigned n) {
  std::vector<uint8_t> r;
  for (unsigned i = 0; i < n; ++i) r.push_back(static_cast<uint8_t>(in(f, v, 1)));
  return r;
}
using Bytes = std::vector<uint8_t>;
}  // namespace

TEST_CASE("fw_cfg: signature, ID, RAM size and CPU counts as little-endian byte streams", "[fw_cfg]") {
  OneVcpu c;
  Vcpu& v = *c.v;
  FwCfg f(3, 0x1'2345'6000ull);
  select(f, v, FwCfg::kSignature);
  CHECK(read_bytes(f, v, 6) == Bytes{'Q', 'E', 'M', 'U', 0, 0});  // then past the end: 0
  select(f, v, FwCfg::kId);
  CHECK(read_bytes(f, v, 5) == Bytes{1, 0, 0, 0, 0});  // traditional interface, no DMA
  select(f, v, FwCfg::kRamSize);
  CHECK(read_bytes(f, v, 9) == Bytes{0x00, 0x60, 0x45, 0x23, 0x01, 0, 0, 0, 0});
  select(f, v, FwCfg::kNbCpus);
  CHECK(read_bytes(f, v, 3) == Bytes{3, 0, 0});
  select(f, v, FwCfg::kMaxCpus);
  CHECK(read_bytes(f, v, 3) == Bytes{3, 0, 0});
  // Selecting again restarts the item; the write-channel bit does not change the lookup.
  select(f, v, FwCfg::kSignature);
  CHECK(read_bytes(f, v, 2) == Bytes{'Q', 'E'});
  select(f, v, FwCfg::kSignature | FwCfg::kWriteChannel);
  CHECK(read_bytes(f, v, 4) == Bytes{'Q', 'E', 'M', 'U'});
}

TEST_CASE("fw_cfg: unknown keys and reads past the end give 0, invalid accesses do nothing", "[fw_cfg]") {
  OneVcpu c;
  Vcpu& v = *c.v;
  FwCfg f(2, 4u << 20);
  for (uint16_t key : {uint16_t{0x0002}, uint16_t{0x0004}, uint16_t{0x0019}, uint16_t{0x8000}, uint16_t{0xffff}}) {
    select(f, v, key);
    CHECK(read_bytes(f, v, 20) == Bytes(20, 0));
  }
  // Long past the end stays 0 (the offset never wraps into the item).
  select(f, v, FwCfg::kNbCpus);
  CHECK(read_bytes(f, v, 2) == Bytes{2, 0});
  CHECK(read_bytes(f, v, 1000) == Bytes(1000, 0));
  // A byte write to the selector, a 32-bit one, and data-port writes select nothing.
  select(f, v, FwCfg::kSignature);
  CHECK(read_bytes(f, v, 1) == Bytes{'Q'});
  out(f, v, 0, FwCfg::kNbCpus, 1);
  out(f, v, 0, FwCfg::kNbCpus, 4);
  out(f, v, 1, 0x55, 1);
  CHECK(read_bytes(f, v, 3) == Bytes{'E', 'M', 'U'});
  // Only an 8-bit read of 0x511 is a data read; others float and do not advance.
  select(f, v, FwCfg::kSignature);
  CHECK(in(f, v, 0, 1) == 0xffffffffu);
  CHECK(in(f, v, 0, 2) == 0xffffffffu);
  CHECK(in(f, v, 1, 2) == 0xffffffffu);
  CHECK(read_bytes(f, v, 1) == Bytes{'Q'});
}

TEST_CASE("fw_cfg: a snapshot restores the selection and the offset", "[fw_cfg]") {
  OneVcpu c;
  Vcpu& v = *c.v;
  FwCfg f(1, 4u << 20);
  select(f, v, FwCfg::kSignature);
  read_bytes(f, v, 1);
  const auto snap = f.save();
  select(f, v, FwCfg::kRamSize);
  read_bytes(f, v, 3);
  f.restore(snap);
  CHECK(read_bytes(f, v, 3) == Bytes{'E', 'M', 'U'});
}

// ------------------------------------------------------------------ pc-testdev

TEST_CASE("pc-testdev: the scratch register at 0xe0 reads back at sizes 1, 2 and 4", "[testdev]") {
  OneVcpu c;
  Vcpu& v = *c.v;
  PcTestDev d;
  out(d, v, 0, 0x11223344u, 4);
  CHECK(in(d, v, 0, 4) == 0x11223344u);
  CHECK(in(d, v, 0, 2) == 0x3344u);
  CHECK(in(d, v, 2, 2) == 0x1122u);
  CHECK(in(d, v, 1, 1) == 0x33u);
  CHECK(in(d, v, 3, 1) == 0x11u);
  out(d, v, 0, 0xaabb, 2);
  CHECK(d.scratch() == 0x1122aabbu);
  out(d, v, 3, 0xcc, 1);
  CHECK(d.scratch() == 0xcc22aabbu);
  out(d, v, 2, 0xdead'beefu, 4);  // lanes past byte 3 are dropped
  CHECK(d.scratch() == 0xbeefaabbu);
  CHECK(in(d, v, 3, 4) == 0x000000beu);
}

TEST_CASE("pc-testdev: the flush port accepts writes and changes nothing", "[testdev]") {
  OneVcpu c;
  Vcpu& v = *c.v;
  PcTestDev d;
  out(d, v, 0, 0x5a5a5a5au, 4);
  out(d, v, 4, 0x00100000u, 4);
  out(d, v, 5, 0xff, 1);
  CHECK(d.scratch() == 0x5a5a5a5au);
  CHECK(in(d, v, 4, 4) == 0xffffffffu);
}

TEST_CASE("pc-testdev: IRQ ports record each line's level and call on_irq", "[testdev]") {
  OneVcpu c;
  Vcpu& v = *c.v;
  std::vector<std::pair<unsigned, bool>> calls;
  PcTestDev d([&](unsigned line, bool level) { calls.emplace_back(line, level); });
  PioDevice& irq = d.irq_ports();
  out(irq, v, 11, 1);
  CHECK(d.irq_level(11));
  out(irq, v, 11, 0);
  CHECK_FALSE(d.irq_level(11));
  out(irq, v, 23, 0x80);  // any non-zero byte raises
  out(irq, v, 0, 0x100, 2);  // only byte writes count
  out(irq, v, 4, 1, 4);
  CHECK(d.irq_level(23));
  CHECK_FALSE(d.irq_level(0));
  CHECK_FALSE(d.irq_level(4));
  CHECK(calls == std::vector<std::pair<unsigned, bool>>{{11, true}, {11, false}, {23, true}});
  CHECK(in(irq, v, 11) == 0xffffffffu);
  const auto snap = d.save();
  out(irq, v, 23, 0);
  out(d, v, 0, 7, 4);
  d.restore(snap);
  CHECK(d.irq_level(23));
  CHECK(d.scratch() == 0);
}

// ------------------------------------------------------------------ power-off port

namespace {
// Writes `text` byte by byte; returns after how many bytes a power-off was first requested
// (0: never).
size_t feed(PowerOffPort& p, Vcpu& v, const std::string& text, unsigned size = 1) {
  for (size_t i = 0; i < text.size(); ++i) {
    p.pio_write(v, 0, size, static_cast<uint8_t>(text[i]) | 0x4200u);
    if (p.requested()) return i + 1;
  }
  return 0;
}
}  // namespace

TEST_CASE("0x8900: \"Shutdown\" powers off, a broken sequence does not", "[poweroff]") {
  OneVcpu c(2, 3);
  Vcpu& v = *c.v;
  {
    PowerOffPort p;
    CHECK(feed(p, v, "Shutdown") == 8);
    CHECK(p.vcpu() == 2);
  }
  {
    PowerOffPort p;  // words: only the low byte counts
    CHECK(feed(p, v, "Shutdown", 2) == 8);
  }
  const std::vector<std::string> broken_ones = {"Shutdow", "shutdown", "Shut down", "SShutdown", "",
                                                std::string("Shutdow\0n", 9)};
  for (const std::string& broken : broken_ones) {
    PowerOffPort p;
    CAPTURE(broken);
    CHECK(feed(p, v, broken) == 0);
    CHECK_FALSE(p.requested());
  }
  {
    // A mismatch restarts the match; the next full sequence still works.
    PowerOffPort p;
    CHECK(feed(p, v, "ShutXShutdown") == 13);
  }
  {
    PowerOffPort p;
    CHECK(feed(p, v, "S!Shutdown") == 10);
  }
  {
    PowerOffPort p;
    CHECK(feed(p, v, "Shutdo") == 0);
    CHECK(p.matched() == 6);
    const auto snap = p.save();
    CHECK(feed(p, v, "X") == 0);
    CHECK(p.matched() == 0);
    p.restore(snap);
    CHECK(feed(p, v, "wn") == 2);
  }
  {
    PowerOffPort p;
    uint32_t x = 0;
    p.pio_read(v, 0, 1, x);
    CHECK(x == 0xffffffffu);
  }
}
