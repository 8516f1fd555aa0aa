// tools/platform/trace_dat.h — the trace as trace-cmd's own trace.dat file (pvsim run --trace-dat).
//
// The file is version 6 of the format trace-cmd documents in trace-cmd.dat(5) (the man page
// "trace-cmd.dat.v6" installed with Debian's trace-cmd): the version trace-cmd 2.x wrote and
// 3.x still reads (version 7 adds sections and compression, which pvsim does not need):
//   magic, "tracing", "6", endianness (little), long size (8), page size (4096);
//   header_page and header_event: the ring-buffer page and record header descriptions a
//     64-bit kernel publishes in tracefs (events/header_page, events/header_event);
//   no ftrace-internal event formats; two event systems, "kvm" and "pvsim", with one
//     `format` text per event of core/trace_event.h's table (the syntax of tracefs'
//     events/<system>/<event>/format);
//   no kallsyms, no trace_printk formats; the saved cmdlines; the CPU count; an empty option list;
//   "flyrecord": one buffer per vCPU (the vCPUs are the file's CPUs), each a run of 4096-byte
//     ring-buffer pages, page-aligned in the file.
//
// A page is what the kernel's ring buffer hands to a reader: an 8-byte timestamp, an 8-byte
// commit word (bytes of data used), then records. A record starts with a 32-bit header:
// type_len (5 low bits) and time_delta (27 high bits, ns since the previous record or the
// page's timestamp). type_len 1..28 means a payload of type_len * 4 bytes follows; 0 means
// the next 32-bit word holds the payload length + 4 and the payload follows it; 30 is a
// TIME_EXTEND record whose next word holds bits 27.. of a delta too large for 27 bits (the
// record after it has delta 0). A payload is the event's binary record: the 8 common bytes
// (common_type = event ID, common_flags, common_preempt_count, common_pid), the fields at
// their natural alignment, then the data of string fields, which the fixed part locates with
// a 32-bit `__data_loc` word (offset in the record | length including the NUL << 16).
//
// Timestamps are virtual nanoseconds. pvsim sometimes traces an event for vCPU X stamped
// before X's latest one (the hypervisor acting on X's behalf from another vCPU's step); a
// ring buffer's times never go backwards, so each vCPU's records are stable-sorted by time
// when the file is written (equal times keep their trace order).
#pragma once
#include <cstdint>
#include <iosfwd>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "core/trace_event.h"

namespace pvsim {

// Event IDs in the file are kTraceDatIdBase + TraceEventDesc::id: far above the IDs a kernel
// gives its own ftrace events, so a reader never mistakes one of ours for one of those.
inline constexpr uint16_t kTraceDatIdBase = 1000;
// vCPU i is task "CPU i/KVM" (QEMU's vCPU thread name, as the canonical text's comm) with pid
// kTraceDatPidBase + i. The canonical text uses pid i, but pid 0 is the idle task in ftrace:
// trace-cmd prints "<idle>" for it whatever the saved cmdlines say.
inline constexpr int32_t kTraceDatPidBase = 1000;
inline constexpr uint32_t kTraceDatPageSize = 4096;
// Page bytes after the timestamp and commit words.
inline constexpr uint32_t kTraceDatPageData = kTraceDatPageSize - 16;
// The largest payload a record may have: it and its headers (length word, a TIME_EXTEND
// before it) fit in one page. String data beyond it is cut off (the record keeps its NULs).
inline constexpr uint32_t kTraceDatMaxPayload = kTraceDatPageData - 16;

// Where an event's fields sit in its binary record.
struct TraceDatField {
  unsigned offset = 0;
  unsigned size = 0;  // 4 for a string (its __data_loc word)
  bool is_signed = false;
};
struct TraceDatLayout {
  std::vector<TraceDatField> fields;  // one per TraceEventDesc::fields, same order
  unsigned fixed_size = 0;            // common part + fields, padded to the largest alignment
};
TraceDatLayout trace_dat_layout(const TraceEventDesc& d);

// The event's `format` text, as tracefs prints it (name, ID, common and event fields with
// offset/size/signed, print fmt).
std::string trace_dat_format(const TraceEventDesc& d);

// The binary record (payload) of one event: values one per d.fields (missing ones are 0 / "").
std::string trace_dat_payload(const TraceEventDesc& d, const TraceDatLayout& l, unsigned vcpu,
                              std::span<const TraceValue> values);

// The sink. Records are kept in memory (one byte arena per vCPU) and the file is written to
// `out` by on_finish().
class TraceDatWriter final : public TraceSink {
 public:
  // `vcpus`: the scenario's vCPU count (the file's CPU count; a record of a higher vCPU adds
  // CPUs). `events`: the events whose formats the file describes (the whole table in pvsim
  // run, so a reader lists every event); an event a record uses is described in any case.
  TraceDatWriter(std::ostream& out, unsigned vcpus, std::span<const TraceEventDesc> events);
  ~TraceDatWriter();
  TraceDatWriter(const TraceDatWriter&) = delete;
  TraceDatWriter& operator=(const TraceDatWriter&) = delete;

  void on_event(const TraceRecord& r) override;
  void on_finish() override;  // writes the whole file (once)

  uint64_t records() const { return m_records; }
  uint64_t pages() const { return m_pages; }  // written by on_finish

 private:
  struct Event {
    const TraceEventDesc* desc;
    TraceDatLayout layout;
  };
  struct Rec {
    uint64_t ts;
    uint64_t offset;  // in the vCPU's arena
    uint32_t size;
  };
  struct Cpu {
    std::string arena;
    std::vector<Rec> recs;
  };
  const Event& event(const TraceEventDesc* d);
  std::string header() const;
  std::string cpu_pages(Cpu& c);

  std::ostream& m_out;
  std::map<uint16_t, Event> m_events;  // by TraceEventDesc::id: the file lists them in id order
  std::vector<Cpu> m_cpus;
  uint64_t m_records = 0;
  uint64_t m_pages = 0;
  bool m_finished = false;
};

}  // namespace pvsim
