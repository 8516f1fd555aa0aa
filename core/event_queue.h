// core/event_queue.h — the global queue of timed callbacks in virtual time
// (tools/platform/README.md §4.2 and §8: timers are scheduled, never ticked).
//
// Ordering is a total order on (when, priority, seq):
//   when     — virtual nanoseconds (Tick);
//   priority — a named EventPriority, lower value fires first at the same tick;
//   seq      — a per-queue counter taken at every schedule(), so ties on (when, priority)
//              fire in FIFO order of scheduling. gem5's eventq breaks such ties LIFO; FIFO
//              is what a reader of a trace expects ("scheduled first, fires first").
// Because seq is unique the key is unique, so the container is an intrusive *set* and the
// order never depends on pointer values or on the container's balancing history.
//
// Events are intrusive nodes owned by their component (an APF completion, a LAPIC timer):
// schedule/cancel/reschedule never allocate, and cancellation is an O(log n) unlink.
// A scheduled Event remembers its queue, so destroying it unlinks it, and destroying the
// queue detaches every pending Event; neither side can be left with a dangling node.
#pragma once
#include <boost/intrusive/set.hpp>
#include <cstdint>
#include <optional>
#include <vector>

#include "core/types.h"

namespace pvsim {

// Order of events that fall on the same Tick. Gaps between values leave room for new
// classes without renumbering; only the relative order matters and it is part of the
// trace contract (changing it changes golden traces).
enum class EventPriority : uint8_t {
  // Host-side state changes: an async-PF page becoming resident, a host I/O completing.
  // They go first so that anything else at the same tick already sees the new host state
  // (KVM completes APF work in kvm_check_async_pf_completion before entering the guest).
  HostCompletion = 10,
  // Device timers: LAPIC one-shot/periodic/TSC-deadline expiry (SDM Vol. 3A §11.5.4).
  // They raise interrupt requests before vCPU wake-up decisions at the same tick.
  DeviceTimer = 20,
  // Everything without a reason to be elsewhere.
  Default = 50,
  // vCPU scheduling decisions (wake a halted vCPU, host-scheduler preemption and steal
  // accounting): after all state at this tick has settled, so a woken vCPU sees it.
  VcpuSchedule = 70,
  // Observers (statistics sampling, trace flushes): last, they see the final state of the
  // tick and never perturb what the guest observes.
  Observer = 90,
};

class EventQueue;

// A timed callback. Not copyable or movable: the queue links the object itself.
// The handler is a plain function pointer plus context (no std::function, so scheduling
// never allocates and firing is one indirect call); MemberEvent below binds a method.
class Event {
 public:
  using Handler = void (*)(void* context, Event& self);

  // `name` must outlive the Event (string literal); it is for reports and debugging.
  Event(Handler handler, void* context, const char* name = "event")
      : m_handler(handler), m_context(context), m_name(name) {}
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  // Unlinks itself when still pending, so an owner may be destroyed at any time.
  ~Event();

  bool scheduled() const { return m_queue != nullptr; }
  // Key of the pending schedule, or of the last one once it fired or was cancelled.
  Tick when() const { return m_when; }
  EventPriority priority() const { return m_prio; }
  uint64_t seq() const { return m_seq; }
  const char* name() const { return m_name; }

 private:
  friend class EventQueue;
  friend struct EventOrder;

  // safe_link: the hook knows whether it is linked, and Boost checks (in debug builds)
  // that it is not destroyed while linked — ~Event() unlinks first, so it never is.
  boost::intrusive::set_member_hook<boost::intrusive::link_mode<boost::intrusive::safe_link>>
      m_hook;
  Handler m_handler;
  void* m_context;
  const char* m_name;
  EventQueue* m_queue = nullptr;  // non-null exactly while linked into that queue
  Tick m_when{};
  EventPriority m_prio = EventPriority::Default;
  uint64_t m_seq = 0;
};

// Binds a member function: `MemberEvent<&LocalApic::timer_expired> m_timer{*this, "lapic"};`
// The thunk is a template instantiation, so there is no virtual call and no allocation.
template <auto Method>
class MemberEvent;

template <class Owner, void (Owner::*Method)()>
class MemberEvent<Method> : public Event {
 public:
  explicit MemberEvent(Owner& owner, const char* name = "event")
      : Event(&MemberEvent::thunk, &owner, name) {}

 private:
  static void thunk(void* context, Event&) { (static_cast<Owner*>(context)->*Method)(); }
};

// Strict total order on (when, priority, seq).
struct EventOrder {
  bool operator()(const Event& a, const Event& b) const {
    if (a.m_when != b.m_when) return a.m_when < b.m_when;
    if (a.m_prio != b.m_prio) return a.m_prio < b.m_prio;
    return a.m_seq < b.m_seq;
  }
};

class EventQueue {
 public:
  EventQueue() = default;
  EventQueue(const EventQueue&) = delete;
  EventQueue& operator=(const EventQueue&) = delete;
  // Detaches (does not fire) every pending event; they become unscheduled.
  ~EventQueue();

  // Schedules `e` at (when, prio) with a fresh seq. An event already pending — in this or
  // another queue — is moved: it is unlinked first, so it fires once, at the new time, and
  // goes behind events already scheduled at the same (when, prio).
  // `when` may lie before the time of the event being fired: such an event is simply the
  // new minimum and fires next within the current run_until (the queue has no notion of
  // "now"; the caller owns virtual time and decides whether that is legal).
  void schedule(Event& e, Tick when, EventPriority prio = EventPriority::Default);

  // Unschedules `e` wherever it is pending. Returns whether it was pending; a fired,
  // cancelled or never-scheduled event is left alone and yields false.
  static bool cancel(Event& e);

  // Time of the earliest pending event, if any (the scheduler's next deadline).
  std::optional<Tick> next_time() const {
    if (m_set.empty()) return std::nullopt;
    return m_set.begin()->m_when;
  }

  // Fires, in (when, priority, seq) order, every event with when <= t, including events
  // that handlers schedule during this call. Each event is unlinked before its handler
  // runs, so a handler may reschedule or destroy its own event and schedule or cancel any
  // other. Returns the number of events fired. Destroying the queue from a handler is
  // undefined. A handler that keeps rescheduling at <= t keeps this call running: that is
  // a livelock in the model, and it is the caller's (bounded) loop that must catch it.
  uint64_t run_until(Tick t);

  // Fires the single earliest event if its time is <= t. Returns whether one fired.
  // For callers that interleave events with other work at the same tick.
  bool run_one(Tick t);

  bool empty() const { return m_set.empty(); }
  uint64_t size() const { return m_set.size(); }

  // Snapshots (tools/platform/README.md "Snapshots"): which events are pending, with their
  // exact keys, and the next seq. restore() unlinks whatever is pending now and re-links
  // the saved events with their saved keys, so the firing order after a restore is the
  // order the saved queue had. The Event objects are identified by address: every event a
  // snapshot names must still exist when it is restored (owners keep their events for the
  // life of the machine, and pools of events only grow).
  struct Snapshot {
    struct Pending {
      Event* event;
      Tick when;
      EventPriority prio;
      uint64_t seq;
    };
    std::vector<Pending> pending;  // in firing order
    uint64_t next_seq = 0;
  };
  Snapshot save() const;
  void restore(const Snapshot& s);

 private:
  using Set = boost::intrusive::set<
      Event, boost::intrusive::member_hook<Event, decltype(Event::m_hook), &Event::m_hook>,
      boost::intrusive::compare<EventOrder>, boost::intrusive::constant_time_size<true>>;

  void unlink(Event& e);

  Set m_set;
  uint64_t m_next_seq = 0;
};

}  // namespace pvsim
