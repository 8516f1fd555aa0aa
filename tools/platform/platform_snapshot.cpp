// tools/platform/platform_snapshot.cpp — saving and restoring a whole Platform in memory
// (tools/platform/README.md "Snapshots").
//
// Every component saves its own state (X::Snapshot, X::save, X::restore); guest RAM goes
// through GuestMemory's undo log, so a snapshot costs nothing per page until the guest
// writes, and a restore copies back only the pages written since. Events are not saved by
// their owners: the EventQueue snapshot names the pending Event objects and their keys, and
// every Event lives as long as the Platform (members, or pools that only grow), so the
// restored queue re-links the very objects that were pending.
#include <stdexcept>

#include "tools/platform/platform.h"
#include "tools/platform/platform_cpu.h"

namespace pvsim {

struct Platform::Snapshot {
  uint64_t id = 0;
  unsigned level = 0;  // GuestMemory checkpoint level
  Tracer::Snapshot tracer;
  DebugCon::Snapshot console;
  ExitPorts::Snapshot exit;
  MarkerPort::Snapshot marker;  // unfinished marker lines
  Pic8259Pair::Snapshot pic;
  Pit8254::Snapshot pit;
  Uart16550::Snapshot uart;
  FwCfg::Snapshot fw_cfg;
  PcTestDev::Snapshot testdev;
  PowerOffPort::Snapshot poweroff;
  EventQueue::Snapshot events;
  Hypervisor::Snapshot hv;
  HostModel host;
  HostMemory host_mem;
  // Fetches in flight: the map, and what every pooled Fetch held (the pool only grows).
  std::vector<std::pair<uint64_t, Fetch*>> fetches;
  struct FetchData {
    uint64_t pfn;
    std::vector<std::pair<unsigned, uint32_t>> waiters;
  };
  std::vector<FetchData> fetch_data;
  std::vector<Fetch*> fetch_free;
  size_t next_eviction = 0;
  bool pause_resuming = false;
  std::vector<Vcpu::Snapshot> vcpus;
  std::vector<CpuState> cpus;
  std::vector<LocalApic::Snapshot> apics;
  std::vector<VState> state;
  std::vector<SchedKey> sched;
  struct IpiData {
    IpiRequest req;
    unsigned source;
    bool kick;
  };
  std::vector<IpiData> ipi_data;
  std::vector<IpiInFlight*> ipi_free;
  unsigned ipis_in_flight = 0;
  bool stopped = false;
  RunReport report;
  bool ran = false;
  uint64_t total = 0;
  std::vector<std::pair<uint64_t, bool>> armed;  // schedule entries: (hits, done)
  int run_first = -1;
  std::optional<TraceExpectChecker::Snapshot> trace_check;
  std::optional<GoldenChecker::Snapshot> golden;

  Snapshot(const HostModel& h, const HostMemory& m) : host(h), host_mem(m) {}
};

std::shared_ptr<const Platform::Snapshot> Platform::save() {
  // Only between scheduling steps: inside Vcpu::run or an event there is no clean state.
  if (m_running >= 0 || m_firing || m_paused) throw std::logic_error("Platform::save inside a step");
  auto s = std::make_shared<Snapshot>(m_host, m_host_mem);
  s->id = m_next_snap_id++;
  s->level = m_mem.checkpoint();
  m_snap_ids.resize(s->level - 1);
  m_snap_ids.push_back(s->id);
  s->tracer = m_tracer.save();
  s->console = m_console.save();
  s->exit = m_exit.save();
  s->marker = m_marker.save();
  s->pic = m_pic.save();
  s->pit = m_pit.save();
  s->uart = m_uart.save();
  s->fw_cfg = m_fw_cfg.save();
  s->testdev = m_testdev.save();
  s->poweroff = m_poweroff.save();
  s->events = m_events.save();
  s->hv = m_hv.save();
  for (const auto& [pfn, f] : m_fetches) s->fetches.emplace_back(pfn, f);
  for (const auto& f : m_fetch_pool) s->fetch_data.push_back({f->pfn, f->waiters});
  s->fetch_free = m_fetch_free;
  s->next_eviction = m_next_eviction;
  s->pause_resuming = m_pause_resuming;
  for (unsigned i = 0; i < vcpu_count(); ++i) {
    s->vcpus.push_back(m_vcpus[i]->save());
    s->cpus.push_back(static_cast<const CpuState&>(*m_cpus[i]));
    s->apics.push_back(m_cpus[i]->apic->save());
  }
  s->state = m_state;
  s->sched = m_sched;
  for (const auto& f : m_ipi_pool) s->ipi_data.push_back({f->req, f->source, f->kick});
  s->ipi_free = m_ipi_free;
  s->ipis_in_flight = m_ipis_in_flight;
  s->stopped = m_stopped;
  s->report = m_report;
  s->ran = m_ran;
  s->total = m_total;
  for (const Armed& a : m_armed) s->armed.emplace_back(a.hits, a.done);
  s->run_first = m_run_first;
  if (m_trace_check) s->trace_check = m_trace_check->save();
  if (m_golden) s->golden = m_golden->save();
  return s;
}

// The GuestMemory level a live snapshot owns (0: none). Levels move down when an older
// snapshot is forgotten (Platform::forget), so they are looked up by the snapshot's id.
unsigned Platform::snapshot_level(const Snapshot& s) const {
  for (size_t k = 0; k < m_snap_ids.size(); ++k)
    if (m_snap_ids[k] == s.id) return static_cast<unsigned>(k + 1);
  return 0;
}

void Platform::forget(const Snapshot& s) {
  const unsigned level = snapshot_level(s);
  if (level == 0) return;
  if (level == 1) {
    // The oldest: its pages fold into nothing older, so the next one must take them over.
    if (m_snap_ids.size() == 1) {
      m_mem.drop_checkpoints(0);
      m_snap_ids.clear();
      return;
    }
    // Folding level 2 into level 1 keeps level 1's (older) pages: the second snapshot's
    // restore would then return to the first one's RAM. Not supported: keep it.
    throw std::logic_error("Platform::forget: the oldest of several snapshots");
  }
  m_mem.merge_level(level - 1);
  m_snap_ids.erase(m_snap_ids.begin() + (level - 1));
}

void Platform::restore(const Snapshot& s) {
  if (m_running >= 0 || m_firing) throw std::logic_error("Platform::restore inside a step");
  const unsigned level = snapshot_level(s);
  if (level == 0)
    throw std::logic_error("Platform::restore: the snapshot was taken on another machine or "
                           "invalidated by restoring an older one");
  m_mem.rollback(level);
  m_snap_ids.resize(level);
  // A step a debugger had paused is gone with the state it ran in.
  m_paused.reset();
  m_debug_break = false;
  m_tracer.restore(s.tracer);
  m_console.restore(s.console);
  m_exit.restore(s.exit);
  m_marker.restore(s.marker);
  m_pic.restore(s.pic);
  m_pit.restore(s.pit);
  m_uart.restore(s.uart);
  m_fw_cfg.restore(s.fw_cfg);
  m_testdev.restore(s.testdev);
  m_poweroff.restore(s.poweroff);
  m_hv.restore(s.hv);
  m_host = s.host;
  m_host_mem = s.host_mem;
  m_fetches.clear();
  for (const auto& [pfn, f] : s.fetches) m_fetches.emplace(pfn, f);
  for (size_t k = 0; k < m_fetch_pool.size(); ++k) {
    Fetch& f = *m_fetch_pool[k];
    if (k < s.fetch_data.size()) {
      f.pfn = s.fetch_data[k].pfn;
      f.waiters = s.fetch_data[k].waiters;
    } else {
      f.pfn = 0;
      f.waiters.clear();
    }
  }
  m_fetch_free = s.fetch_free;
  // Fetches pooled after the snapshot are free again (which free one a later fetch reuses
  // is invisible: the event's key comes from the queue, not from the object).
  for (size_t k = s.fetch_data.size(); k < m_fetch_pool.size(); ++k) m_fetch_free.push_back(m_fetch_pool[k].get());
  m_next_eviction = s.next_eviction;
  m_pause_resuming = s.pause_resuming;
  for (unsigned i = 0; i < vcpu_count(); ++i) {
    m_vcpus[i]->restore(s.vcpus[i]);
    static_cast<CpuState&>(*m_cpus[i]) = s.cpus[i];
    m_cpus[i]->apic->restore(s.apics[i]);
  }
  m_state = s.state;
  m_sched = s.sched;
  for (size_t k = 0; k < m_ipi_pool.size(); ++k) {
    IpiInFlight& f = *m_ipi_pool[k];
    if (k < s.ipi_data.size()) {
      f.req = s.ipi_data[k].req;
      f.source = s.ipi_data[k].source;
      f.kick = s.ipi_data[k].kick;
    }
  }
  m_ipi_free = s.ipi_free;
  for (size_t k = s.ipi_data.size(); k < m_ipi_pool.size(); ++k) m_ipi_free.push_back(m_ipi_pool[k].get());
  m_ipis_in_flight = s.ipis_in_flight;
  m_stopped = s.stopped;
  m_report = s.report;
  m_ran = s.ran;
  m_total = s.total;
  // Entries armed after the snapshot (Platform::arm) go; the flags follow what is left.
  m_armed.resize(s.armed.size(), Armed{});
  m_has_insn_points = false;
  std::fill(m_has_rip_points.begin(), m_has_rip_points.end(), 0);
  for (size_t k = 0; k < m_armed.size(); ++k) {
    m_armed[k].hits = s.armed[k].first;
    m_armed[k].done = s.armed[k].second;
    const GuestPoint& at = m_armed[k].entry.at;
    if (at.kind == GuestPoint::Kind::Insn) m_has_insn_points = true;
    if (at.kind == GuestPoint::Kind::Rip) m_has_rip_points[at.vcpu] = 1;
  }
  m_run_first = s.run_first;
  update_extras();
  for (unsigned i = 0; i < vcpu_count(); ++i) update_breakpoints(i);
  // Read watchpoints keep no read translations of their pages (the snapshot's TLB may hold some).
  if (!m_mem.watches().empty()) {
    std::vector<uint64_t> read_pages;
    for (const GuestMemory::Watch& x : m_mem.watches())
      if (x.access & static_cast<uint8_t>(GuestMemory::WatchAccess::Read))
        for (uint64_t pfn = x.gpa >> kPageShift; x.len && pfn <= (x.gpa + x.len - 1) >> kPageShift; ++pfn)
          read_pages.push_back(pfn);
    for (auto& v : m_vcpus) v->drop_read_translations(read_pages);
  }
  if (m_trace_ring) {
    auto& l = m_trace_ring->lines;
    while (!l.empty() && l.back().first > m_tracer.event_count()) l.pop_back();
  }
  if (m_trace_check) m_trace_check->restore(*s.trace_check);
  if (m_golden) m_golden->restore(*s.golden);
  // Last: re-link exactly the events that were pending (owners above do not touch them).
  m_events.restore(s.events);
}

uint64_t Platform::restore_cost_pages(const Snapshot& s) const {
  uint64_t n = 0;
  const unsigned level = snapshot_level(s);
  if (level == 0) return 0;
  for (unsigned k = level; k <= m_mem.checkpoint_depth(); ++k) n += m_mem.checkpoint_pages(k);
  return n;
}

}  // namespace pvsim
