// tools/platform/gdb_server.h — `pvsim run SCENARIO --gdb PORT|unix:PATH`: a gdb remote
// serial protocol server inside pvsim, with reverse execution (tools/platform/README.md
// "Debugging with gdb").
//
// vCPU i is thread i + 1. gdb's breakpoints and watchpoints live in the emulator (core
// breakpoints, GuestMemory watches), never in guest memory. Every stop is one that changes
// nothing about the run (Platform::DebugObserver): going on from it does exactly what a run
// without gdb does, so a session that only looks ends with the plain run's trace hash.
// Going backwards restores a checkpoint and re-executes deterministically to the target.
#pragma once
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "tools/platform/gdb_packet.h"
#include "tools/platform/platform.h"

namespace pvsim {

// Where to listen: a TCP port on 127.0.0.1 (0: any free port) or a Unix socket path.
struct GdbEndpoint {
  bool unix_socket = false;
  uint16_t port = 0;
  std::string path;
};
// "PORT" (0-65535) or "unix:PATH"; nullopt otherwise.
std::optional<GdbEndpoint> parse_gdb_endpoint(std::string_view text);

// A listening socket. Plain POSIX sockets: one blocking connection at a time, polled for
// Ctrl-C between slices of the run, is all the protocol needs (an event loop such as
// Boost.Asio's would add a dependency and nothing else).
class GdbListener {
 public:
  // Throws std::runtime_error with a one-line message (address in use, path too long, ...).
  explicit GdbListener(const GdbEndpoint& e);
  ~GdbListener();
  GdbListener(const GdbListener&) = delete;
  GdbListener& operator=(const GdbListener&) = delete;
  // "127.0.0.1:PORT" (the port actually bound) or the socket path.
  std::string where() const;
  // Waits for gdb; returns the connected descriptor (the caller owns it).
  int accept_one();

 private:
  int m_fd = -1;
  GdbEndpoint m_ep;
};

struct GdbOptions {
  uint64_t checkpoint_interval = 200'000;  // instructions (all vCPUs) between checkpoints
  size_t max_checkpoints = 64;             // more: the interval doubles, every other one goes
  uint64_t poll_instructions = 100'000;    // how often a running machine looks for Ctrl-C
};

class GdbSession final : private Platform::DebugObserver {
 public:
  enum class End : uint8_t {
    Detached,  // D: the run goes on to its end without gdb
    Killed,    // k / vKill: the run ends here
    Closed,    // the connection went away (treated as a detach)
  };
  // `fd`: a connected socket (or one end of a socketpair in the tests); closed by the destructor.
  GdbSession(Platform& p, int fd, GdbOptions opts = {});
  ~GdbSession() override;
  GdbSession(const GdbSession&) = delete;
  GdbSession& operator=(const GdbSession&) = delete;
  // Serves until gdb detaches, kills or goes away. Leaves the machine without any debugger
  // state (breakpoints, step modes, watches, observer), paused steps included, ready for
  // Platform::run() to finish.
  End serve();
  // For tests: one packet body in, the reply body out (no framing, no socket).
  std::string handle(std::string_view packet);
  // Checkpoints kept now, and what restoring the last reverse target cost.
  size_t checkpoints() const { return m_cps.size(); }

 private:
  // ---- positions and checkpoints ----
  // A place a stop can be: the start of the run, or a boundary vCPU `vcpu` reaches as a
  // breakpoint (inside its step) with vcpu_steps == `steps`. Between two such boundaries a
  // vCPU's step count always grows, so the pair names one boundary of the run.
  struct Pos {
    bool start = true;
    unsigned vcpu = 0;
    uint64_t steps = 0;
  };
  struct Checkpoint {
    uint64_t id = 0;
    uint64_t insns = 0;               // Platform::instructions() when taken
    std::vector<uint64_t> steps;      // every vCPU's vcpu_steps when taken
    std::shared_ptr<const Platform::Snapshot> snap;
  };
  // A watched access: the `ordinal`-th reported since checkpoint `cp` was taken or restored.
  struct Hit {
    uint64_t cp = 0;
    uint64_t ordinal = 0;
    int vcpu = -1;          // the vCPU it is attributed to (-1: an event between steps)
    uint64_t vcpu_steps = 0;  // that vCPU's step count as the platform knew it then
    uint64_t insns = 0;     // Platform::instructions() then
    uint64_t addr = 0;      // the watchpoint's address as gdb gave it
    int type = 2;           // 2 write, 3 read, 4 access
    bool host = false;      // the hypervisor's (or a device's) write, not a guest instruction's
    bool write = true;
  };
  // The stop gdb is told about.
  struct StopInfo {
    enum class Why : uint8_t { Trap, Interrupt, Breakpoint, Watch, Begin, Exited } why = Why::Trap;
    unsigned vcpu = 0;
    uint64_t addr = 0;
    int type = 2;
    bool host = false;  // Watch: by the hypervisor
    bool write = true;  // Watch: a write
    bool reverse = false;
  };

  static StopInfo make_stop(StopInfo::Why why, unsigned vcpu);
  static StopInfo watch_stop(unsigned vcpu, const Hit& h, bool reverse);

  // Platform::DebugObserver
  bool debug_boundary(unsigned vcpu) override;
  void debug_watch(const GuestMemory::Watch& w, uint64_t gpa, uint64_t len, bool write, bool host,
                   int vcpu) override;

  void take_checkpoint();
  void restore_checkpoint(size_t index);
  size_t checkpoint_for(unsigned vcpu, uint64_t steps) const;  // latest with steps[vcpu] <= steps
  size_t checkpoint_index(uint64_t id) const;
  // Runs forward taking checkpoints and polling for Ctrl-C; returns Break on an interrupt.
  Platform::DebugStop run_forward(const std::optional<Platform::StopPoint>& pt);
  bool poll_interrupt();
  // Puts the machine at `p` (restore + re-execution); false if the run ends first.
  bool goto_pos(const Pos& p);
  // Re-executes to a watched access: `after` the boundary of its vCPU that follows it, else
  // the last boundary before it. False when it cannot be found.
  bool goto_hit(const Hit& h, bool after);
  Pos current_pos() const;
  // The last boundary of `vcpu` before the current position (nullopt: none, the start).
  std::optional<Pos> previous_boundary(unsigned vcpu);

  // ---- commands ----
  std::string resume(const std::vector<gdb::VContAction>& actions);
  std::string do_continue(int step_vcpu, bool others_run);
  std::string reverse_step(unsigned vcpu);
  std::string reverse_continue();
  std::string stop_reply();
  std::string after_forward_stop(Platform::DebugStop st);
  std::string read_registers(unsigned vcpu);
  std::string write_registers(unsigned vcpu, std::string_view hex);
  std::string read_register(unsigned vcpu, unsigned reg);
  std::string write_register(unsigned vcpu, unsigned reg, std::string_view hex);
  std::string read_memory(std::string_view args);
  std::string write_memory(std::string_view args, bool binary);
  std::string breakpoint(std::string_view args, bool insert);
  std::string query(std::string_view packet);
  std::string monitor(const std::string& cmd);
  std::string xfer_features(std::string_view args);
  bool thread_ok(int64_t t) const;
  unsigned thread_vcpu(int64_t t, unsigned fallback) const;
  // Guest-linear to guest-physical through vCPU `vcpu`'s page tables, read-only (no A/D
  // bits, no exits, no faults): nullopt when not mapped.
  std::optional<uint64_t> translate(unsigned vcpu, uint64_t la) const;
  void apply_watches();
  void clear_debug_state();
  void send(std::string_view body);
  bool read_more();  // blocking; false at EOF/error

  Platform& m_p;
  int m_fd;
  GdbOptions m_opts;
  gdb::PacketReader m_in;
  std::string m_last_reply;
  bool m_noack = false;
  bool m_interrupted = false;
  unsigned m_g = 0;  // H g: the thread registers and memory go through
  bool m_phys = false;  // monitor phys: m/M take guest-physical addresses
  std::set<uint64_t> m_bps;
  struct WatchSpec {
    int type = 2;
    uint64_t addr = 0, len = 0;
    std::vector<GuestMemory::Watch> ranges;  // guest-physical, per page
  };
  std::vector<WatchSpec> m_watches;
  std::vector<Checkpoint> m_cps;
  uint64_t m_interval;
  uint64_t m_next_cp_id = 1;
  uint64_t m_hits_since_cp = 0;
  StopInfo m_stop;
  bool m_ended = false;  // the run is over (W sent)

  // What the observer does now.
  enum class Mode : uint8_t { Run, Step, Seek, Scan, HitSeek };
  Mode m_mode = Mode::Run;
  int m_step_vcpu = -1;        // Step: the vCPU stepping; Seek/Scan: the target's vCPU
  uint64_t m_step_from = 0;    // Step: its steps when the step began
  bool m_step_others = false;  // Step: others continue (`vCont;s:N;c`): their breakpoints count
  uint64_t m_seek_steps = 0;   // Seek/Scan: the target boundary's steps
  bool m_seek_armed = false;   // Seek/Scan: the target vCPU is in step mode (final approach)
  std::vector<Pos> m_seen;     // Seek: boundaries of the target vCPU passed on the way
  std::optional<Hit> m_pending;       // Run/Step: a watched access to resolve
  std::vector<std::pair<Pos, std::optional<Hit>>> m_scan_hits;  // Scan: breakpoint or watch hits
  Hit m_target_hit;            // HitSeek
  bool m_hit_seen = false;     // HitSeek: the target access happened
  std::optional<Pos> m_before_hit;  // HitSeek: the last boundary before it
  bool m_report_next = false;  // HitSeek: pause at the next boundary after it
  double m_last_reverse_ms = 0;  // monitor stats
  uint64_t m_replayed = 0;       // instructions re-executed by reverse commands
};

}  // namespace pvsim
