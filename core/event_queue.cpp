// core/event_queue.cpp — see event_queue.h for the ordering contract.
#include "core/event_queue.h"

namespace pvsim {

Event::~Event() {
  // The owner may die before its event fires (a vCPU torn down with a timer armed, an
  // APF completion dropped with its pipeline): leave no dangling node in the tree.
  EventQueue::cancel(*this);
}

EventQueue::~EventQueue() {
  // Owners normally die before the queue (a Platform declares the queue first), but a
  // test or a half-built Platform may drop the queue first: mark every node unscheduled so
  // its later destructor does not reach back into freed memory.
  m_set.clear_and_dispose([](Event* e) { e->m_queue = nullptr; });
}

void EventQueue::unlink(Event& e) {
  m_set.erase(m_set.iterator_to(e));
  e.m_queue = nullptr;
}

void EventQueue::schedule(Event& e, Tick when, EventPriority prio) {
  // The key must not change while the node is in a tree, so a reschedule unlinks first.
  if (e.m_queue != nullptr) e.m_queue->unlink(e);
  e.m_when = when;
  e.m_prio = prio;
  // 2^64 schedules cannot happen in a run, so seq never wraps and keys stay unique.
  e.m_seq = m_next_seq++;
  m_set.insert(e);
  e.m_queue = this;
}

bool EventQueue::cancel(Event& e) {
  if (e.m_queue == nullptr) return false;
  e.m_queue->unlink(e);
  return true;
}

bool EventQueue::run_one(Tick t) {
  if (m_set.empty()) return false;
  Event& e = *m_set.begin();
  if (e.m_when > t) return false;
  // Unlink before the call: the handler may reschedule this very event or destroy it,
  // and the queue must not touch `e` afterwards.
  unlink(e);
  e.m_handler(e.m_context, e);
  return true;
}

uint64_t EventQueue::run_until(Tick t) {
  // Re-reading the minimum after every handler is what makes events that handlers add
  // (at the same or an earlier time) fire in key order within this call.
  uint64_t fired = 0;
  while (run_one(t)) ++fired;
  return fired;
}

EventQueue::Snapshot EventQueue::save() const {
  Snapshot s;
  s.pending.reserve(m_set.size());
  for (const Event& e : m_set) s.pending.push_back({const_cast<Event*>(&e), e.m_when, e.m_prio, e.m_seq});
  s.next_seq = m_next_seq;
  return s;
}

void EventQueue::restore(const Snapshot& s) {
  m_set.clear_and_dispose([](Event* e) { e->m_queue = nullptr; });
  for (const Snapshot::Pending& p : s.pending) {
    Event& e = *p.event;
    // An event pending in another queue is moved here, as schedule() would.
    if (e.m_queue != nullptr) e.m_queue->unlink(e);
    e.m_when = p.when;
    e.m_prio = p.prio;
    e.m_seq = p.seq;
    m_set.insert(e);
    e.m_queue = this;
  }
  m_next_seq = s.next_seq;
}

}  // namespace pvsim
