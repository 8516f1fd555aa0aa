// pvmsr/async_pf.cpp — see async_pf.h. Sections: the gfn table and tokens; construction
// and MSRs; the fault path; completion and page-ready; other events.
//
// Function names in comments are KVM's (arch/x86/kvm/x86.c, mmu/mmu.c, virt/kvm/async_pf.c);
// "3.0" means the x86.c / mmu.c / async_pf.c of the 3.0-3.1 era that the orig profile
// reproduces. pvmsr/README.md §5 describes the behaviour in prose.
#include "pvmsr/async_pf.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/vcpu.h"

namespace pvsim {

// ---------------------------------------------------------------------------------------
// The gfn table and tokens

unsigned ApfGfnTable::home_slot(uint64_t gfn, AbiProfile abi) {
  // hash_32(gfn & 0xffffffff, order_base_2(64)): a 32-bit multiply, keep the top 6 bits.
  const uint32_t mult = abi == AbiProfile::Modern ? kMultiplierModern : kMultiplierOrig;
  const uint32_t product = static_cast<uint32_t>(gfn) * mult;
  return product >> (32 - 6);
}

void ApfGfnTable::reset() { m_slots.fill(kEmpty); }

unsigned ApfGfnTable::size() const {
  return static_cast<unsigned>(
      std::count_if(m_slots.begin(), m_slots.end(), [](uint64_t g) { return g != kEmpty; }));
}

void ApfGfnTable::add(uint64_t gfn) {
  unsigned key = home_slot(gfn);
  // KVM loops until it finds an empty slot; a full table never reaches here (header).
  for (unsigned i = 0; i < kSlots && m_slots[key] != kEmpty; ++i) key = (key + 1) % kSlots;
  m_slots[key] = gfn;
}

unsigned ApfGfnTable::probe_slot(uint64_t gfn) const {
  unsigned key = home_slot(gfn);
  for (unsigned i = 0; i < kSlots && m_slots[key] != gfn && m_slots[key] != kEmpty; ++i)
    key = (key + 1) % kSlots;
  return key;
}

bool ApfGfnTable::find(uint64_t gfn) const { return m_slots[probe_slot(gfn)] == gfn; }

void ApfGfnTable::del(uint64_t gfn) {
  unsigned i = probe_slot(gfn);
  unsigned j = i;
  if (m_abi == AbiProfile::Modern && m_slots[i] != gfn) return;
  // Backward-shift deletion: empty slot i, then walk j along the cluster; an entry at j
  // whose home k lies cyclically in (i, j] is still reachable and stays, any other one
  // moves into the hole, which then moves to j. The cluster's end (an empty slot) stops it.
  for (;;) {
    m_slots[i] = kEmpty;
    unsigned k;
    do {
      j = (j + 1) % kSlots;
      if (m_slots[j] == kEmpty) return;
      k = home_slot(m_slots[j]);
    } while (i <= j ? (i < k && k <= j) : (i < k || k <= j));
    m_slots[i] = m_slots[j];
    i = j;
  }
}

uint32_t apf_next_token(uint32_t& id, unsigned vcpu_id, bool never_zero) {
  // u32 arithmetic throughout, as vcpu->arch.apf.id is a u32: id << 12 loses the top 12
  // bits, so the counter part of the token repeats every 2^20 allocations.
  if (never_zero && (id << 12) == 0) id = 1;  // alloc_apf_token, 6f3c1fc53d86
  const uint32_t token = (id << 12) | static_cast<uint32_t>(vcpu_id);
  ++id;
  return token;
}

// ---------------------------------------------------------------------------------------
// Construction and MSRs

AsyncPf::AsyncPf(const AsyncPfConfig& cfg, unsigned vcpus, GuestMemory& mem, Tracer& tracer,
                 ApfHost& host)
    : m_cfg(cfg),
      m_bugs(cfg.bugs.value_or(kvm_bug_defaults(cfg.abi))),
      m_mem(mem),
      m_tracer(tracer),
      m_host(host),
      m_attached(vcpus, nullptr) {
  // kvm_arch_vcpu_create -> kvm_async_pf_hash_reset: every table starts empty.
  m_vcpus.resize(vcpus);
  for (VcpuApf& s : m_vcpus) s.gfns = ApfGfnTable(cfg.abi);
}

bool AsyncPf::feature_visible(unsigned bit) const {
  // guest_pv_has (pvmsr/README.md §2.2): without enforcement every feature is "present".
  // As for kvmclock, enforcement applies to both profiles when the scenario asks for it.
  return !m_cfg.enforce_pv_cpuid || ((m_cfg.cpuid_features >> bit) & 1u) != 0;
}

Tick AsyncPf::vcpu_now(unsigned v) const {
  const Vcpu* vc = m_attached.at(v);
  return vc ? vc->now() : Tick(0);
}

bool AsyncPf::enabled(unsigned v) const {
  const uint64_t en = st(v).msr_en;
  if (m_cfg.abi == AbiProfile::Orig) return (en & kEnabled) != 0;
  // kvm_pv_async_pf_enabled (since 5.8): ENABLED without DELIVERY_AS_INT counts as off.
  return (en & (kEnabled | kDeliveryAsInt)) == (kEnabled | kDeliveryAsInt);
}

// The area is reached through the gfn_to_hva_cache set up at enable time; when that set-up
// failed, every later access through it fails too (kvm_write_guest_offset_cached sees the
// error hva), so page-not-present and page-ready writes are silently lost.
bool AsyncPf::write_area_u32(VcpuApf& s, uint64_t offset, uint32_t value) {
  if (!s.area_ok) return false;
  return m_mem.write(Gpa(s.area + offset), &value, sizeof(value));
}

bool AsyncPf::read_area_u32(const VcpuApf& s, uint64_t offset, uint32_t& value) const {
  if (!s.area_ok) return false;
  return m_mem.read(Gpa(s.area + offset), &value, sizeof(value));
}

void AsyncPf::attach(Vcpu& v) {
  const unsigned i = v.index();
  m_attached.at(i) = &v;

  // 0x4b564d02 exists in both profiles; reads return the raw stored value, gated by
  // feature 4 (kvm_get_msr_common).
  MsrHandler en;
  en.index = kMsrEn;
  en.name = "MSR_KVM_ASYNC_PF_EN";
  en.read = [this, i](Vcpu&, uint64_t& value) {
    if (!feature_visible(static_cast<unsigned>(KvmFeature::AsyncPf))) return MsrStatus::Gp;
    value = st(i).msr_en;
    return MsrStatus::Ok;
  };
  en.write = [this, i](Vcpu&, uint64_t value) {
    if (!feature_visible(static_cast<unsigned>(KvmFeature::AsyncPf))) return MsrStatus::Gp;
    return write_en(i, value) ? MsrStatus::Ok : MsrStatus::Gp;
  };
  v.msrs().add(std::move(en));

  // 0x4b564d06 and 0x4b564d07 arrived with interrupt-based page-ready (Linux 5.8); the
  // orig profile's KVM had no case for them, so they stay unregistered (#GP).
  if (m_cfg.abi == AbiProfile::Orig) return;

  MsrHandler in;
  in.index = kMsrInt;
  in.name = "MSR_KVM_ASYNC_PF_INT";
  in.read = [this, i](Vcpu&, uint64_t& value) {
    if (!feature_visible(static_cast<unsigned>(KvmFeature::AsyncPfInt))) return MsrStatus::Gp;
    value = st(i).msr_int;
    return MsrStatus::Ok;
  };
  in.write = [this, i](Vcpu&, uint64_t value) {
    if (!feature_visible(static_cast<unsigned>(KvmFeature::AsyncPfInt))) return MsrStatus::Gp;
    return write_int(i, value) ? MsrStatus::Ok : MsrStatus::Gp;
  };
  v.msrs().add(std::move(in));

  MsrHandler ack;
  ack.index = kMsrAck;
  ack.name = "MSR_KVM_ASYNC_PF_ACK";
  ack.read = [this](Vcpu&, uint64_t& value) {
    if (!feature_visible(static_cast<unsigned>(KvmFeature::AsyncPfInt))) return MsrStatus::Gp;
    value = 0;  // kvm_get_msr_common: always reads 0
    return MsrStatus::Ok;
  };
  ack.write = [this, i](Vcpu&, uint64_t value) {
    if (!feature_visible(static_cast<unsigned>(KvmFeature::AsyncPfInt))) return MsrStatus::Gp;
    write_ack(i, value);  // never #GP: other bits are ignored
    return MsrStatus::Ok;
  };
  v.msrs().add(std::move(ack));
}

// MSR_KVM_ASYNC_PF_EN after the feature-4 gate. Modern = kvm_pv_enable_async_pf, orig =
// its 3.0 body; the order of the steps is KVM's and observable (pvmsr/README.md §5.1).
bool AsyncPf::write_en(unsigned v, uint64_t value) {
  VcpuApf& s = st(v);
  const Tick now = vcpu_now(v);
  if (m_cfg.abi == AbiProfile::Orig) {
    if (value & 0x3c) return false;  // bits 5:2 reserved in the seed era
    s.msr_en = value;
    if (!(value & kEnabled)) {
      clear_queue(v, now, "disable");
      s.gfns.reset();
      return true;
    }
    // kvm_gfn_to_hva_cache_init of the 4-byte `reason` word; the value stays stored
    // when it fails.
    s.area = value & ~0x3full;
    s.area_ok = m_mem.contains(Gpa(s.area), 4);
    if (!s.area_ok) return false;
    s.send_user_only = !(value & kSendAlways);
    wakeup_all(v, now);
    return true;
  }

  if (value & 0x30) return false;  // bits 5:4 reserved
  // Only through guest_pv_has, so only under enforcement.
  if ((value & kDeliveryAsPfVmexit) &&
      !feature_visible(static_cast<unsigned>(KvmFeature::AsyncPfVmexit)))
    return false;
  if ((value & kDeliveryAsInt) && !feature_visible(static_cast<unsigned>(KvmFeature::AsyncPfInt)))
    return false;
  // No in-kernel LAPIC: only 0 is accepted, and then nothing at all happens (the value is
  // not even stored; it can only be 0 already).
  if (!m_cfg.irqchip_in_kernel) return value == 0;
  s.msr_en = value;  // stored before the cache set-up below can fail
  if (!enabled(v)) {
    clear_queue(v, now, "disable");
    s.gfns.reset();
    return true;
  }
  s.area = value & ~0x3full;
  s.area_ok = m_mem.contains(Gpa(s.area), 8);  // flags and token: 8 bytes
  if (!s.area_ok) return false;
  s.send_always = (value & kSendAlways) != 0;
  s.delivery_as_pf_vmexit = (value & kDeliveryAsPfVmexit) != 0;
  wakeup_all(v, now);
  return true;
}

// kvm_pv_enable_async_pf_int (after the feature-14 gate).
bool AsyncPf::write_int(unsigned v, uint64_t value) {
  if (value >> 8) return false;                // bits 63:8 reserved
  if (!m_cfg.irqchip_in_kernel) return false;  // no LAPIC to deliver through
  VcpuApf& s = st(v);
  s.msr_int = value;
  s.vec = static_cast<uint8_t>(value & 0xff);  // KVM_ASYNC_PF_VEC_MASK; not validated
  return true;
}

// The MSR_KVM_ASYNC_PF_ACK case of kvm_set_msr_common: bit 0 frees the page-ready slot and
// runs the completion check right there, inside the WRMSR.
void AsyncPf::write_ack(unsigned v, uint64_t value) {
  if (!(value & 1)) return;
  st(v).pageready_pending = false;
  check_completion(v, vcpu_now(v));
}

// ---------------------------------------------------------------------------------------
// The fault path

AsyncPf::FaultResult AsyncPf::on_fault(unsigned v, Tick now, uint64_t gpa, const ApfVcpuState& cpu) {
  VcpuApf& s = st(v);
  Counters& c = s.counters;
  const uint64_t gfn = gpa >> kPageShift;
  // kvm_can_do_async_pf (modern) / can_do_async_pf (3.0): an in-kernel LAPIC, no event
  // awaiting re-injection or exception pending, and interrupts deliverable now, because
  // even the fallback (a synthetic halt) must be woken by an interrupt. It does not ask
  // whether the guest enabled async PF. Not modelled: KVM_CAP_X86_DISABLE_EXITS(HLT)
  // (modern then also requires can_deliver).
  if (!m_cfg.irqchip_in_kernel || cpu.event_pending || !cpu.interrupts_allowed) {
    ++c.sync;
    return {FaultKind::Sync, 0};
  }
  m_tracer.kvm_try_async_get_page(now, v, gpa, gfn);
  if (s.gfns.find(gfn)) {
    if (m_cfg.abi == AbiProfile::Modern) m_tracer.kvm_async_pf_repeated_fault(now, v, gpa, gfn);
    else m_tracer.kvm_async_pf_doublefault(now, v, gpa, gfn);
    s.halted = true;  // KVM_REQ_APF_HALT, serviced at the retry's entry
    apf_trace(v, now, "halt", fmt::format("repeated fault on gfn 0x{:x}", gfn));
    ++c.repeated;
    return {FaultKind::RepeatedHalt, 0};
  }
  // kvm_arch_setup_async_pf allocates the token before kvm_setup_async_pf checks the
  // limit, so a fault refused for the limit still consumes one.
  // machine.kvm.bugs.apf_token_zero (5.8-5.16, pvmsr/README.md §2.5): the modern protocol
  // without alloc_apf_token's skip, so vCPU 0's first token is 0, the "slot free" value.
  const uint32_t token =
      apf_next_token(s.id, v, m_cfg.abi == AbiProfile::Modern && !m_bugs.apf_token_zero);
  if (s.queued >= kMaxOutstanding) {
    ++c.sync;
    ++c.sync_limit;
    return {FaultKind::Sync, token};
  }
  Work w;
  w.token = token;
  w.gfn = gfn;
  w.gpa = gpa;
  ++s.queued;

  // kvm_arch_async_page_not_present: traced and recorded in the gfn table before the
  // delivery decision, so a work that ends in a halt is traced as well.
  m_tracer.kvm_async_pf_not_present(now, v, token, gpa);
  s.gfns.add(gfn);
  bool deliver;
  const char* why_not = nullptr;
  if (m_cfg.abi == AbiProfile::Modern) {
    // kvm_can_deliver_async_pf: enabled, SEND_ALWAYS or CPL > 0, and paging on (nested
    // guests and protected state are not modelled). Then `flags` = 1, 4 bytes at offset 0
    // (apf_put_user_notpresent); a failed write also ends in the halt.
    const bool can_deliver = enabled(v) && (s.send_always || cpu.cpl != 0) && cpu.paging;
    deliver = can_deliver && write_area_u32(s, 0, kReasonPageNotPresent);
    if (can_deliver && !deliver) why_not = "not-present write failed";
  } else {
    // 3.0: disabled, or "user only" at CPL 0, halts; else `reason` = 1. No paging check.
    const bool can_deliver = (s.msr_en & kEnabled) && !(s.send_user_only && cpu.cpl == 0);
    deliver = can_deliver && write_area_u32(s, 0, kReasonPageNotPresent);
    // 3.0 neither injected nor halted when the write failed: the instruction was retried,
    // found its gfn outstanding and halted through the repeated-fault path. pvsim halts
    // here at once; only the trace differs (no second EPT violation / doublefault line).
    if (can_deliver && !deliver) why_not = "not-present write failed";
  }
  w.notpresent_injected = deliver;
  s.queue.push_back(w);
  if (deliver) {
    ++c.injected;
    return {FaultKind::Injected, token};
  }
  s.halted = true;  // KVM_REQ_APF_HALT
  std::string detail = fmt::format("token 0x{:x} gfn 0x{:x}", token, gfn);
  if (why_not) detail += fmt::format(" ({})", why_not);
  apf_trace(v, now, "halt", detail);
  ++c.halted;
  return {FaultKind::Halt, token};
}

// ---------------------------------------------------------------------------------------
// Completion and page-ready

// kvm_arch_async_page_present_queued (modern): the request, and a kick unless the guest
// has not yet acknowledged the previous page-ready. Orig had no request: 3.0's __vcpu_run
// polled kvm_check_async_pf_completion on every pass of its loop; pvsim stands that poll
// in with the same request, re-raised by check_completion while completions remain.
void AsyncPf::present_queued(unsigned v, Tick now) {
  m_host.apf_request_ready(v);
  if (m_cfg.abi == AbiProfile::Orig) return;
  if (!st(v).pageready_pending) m_host.apf_kick(v);
  else set_held(v, now, Held::AwaitAck, 0);
}

// kvm_async_pf_wakeup_all: a "wake all" completion, only when none is pending already.
void AsyncPf::wakeup_all(unsigned v, Tick now) {
  VcpuApf& s = st(v);
  if (!s.done.empty()) return;
  Work w;
  w.wakeup_all = true;  // token and gpa stay 0 (the work is zero-allocated in KVM)
  s.done.push_back(w);
  ++s.counters.wake_alls;
  apf_trace(v, now, "wake_all", fmt::format("token 0x{:x}", kWakeAllToken));
  present_queued(v, now);  // `first`: the list was empty
  ++s.queued;
}

// async_pf_execute, after the page is in: the work joins the done list.
void AsyncPf::complete(unsigned v, uint32_t token, Tick now) {
  VcpuApf& s = st(v);
  auto it = std::find_if(s.queue.begin(), s.queue.end(),
                         [token](const Work& w) { return w.token == token; });
  if (it == s.queue.end()) {
    // Cancelled by a disable, a reset or (orig) a paging toggle: KVM cancelled or freed
    // the work, so nothing of it is ever seen again.
    ++s.counters.ignored;
    return;
  }
  const Work w = *it;
  s.queue.erase(it);
  const bool first = s.done.empty();
  s.done.push_back(w);
  ++s.counters.completed;
  // `address` is the hva of the page (kvm_vcpu_gfn_to_hva: page-aligned), `gva` the
  // faulting address itself.
  const uint64_t hva = m_cfg.hva_base + (w.gfn << kPageShift);
  if (m_cfg.abi == AbiProfile::Modern) {
    if (first) present_queued(v, now);  // before the trace, as in async_pf_execute
    m_tracer.kvm_async_pf_completed(now, v, hva, w.gpa);
  } else {
    m_tracer.kvm_async_pf_completed(now, v, hva, w.gpa);
    m_host.apf_request_ready(v);  // the 3.0 poll (present_queued above)
  }
  // A blocked vCPU wakes: async_pf_execute ends with __kvm_vcpu_wake_up (2.6.38:
  // wake_up_interruptible on vcpu->wq), and the non-empty done list makes it runnable
  // (kvm_vcpu_has_events / kvm_arch_vcpu_runnable), in both eras.
  m_host.apf_kick(v);
}

void AsyncPf::check_completion(unsigned v, Tick now) {
  VcpuApf& s = st(v);
  if (m_cfg.abi == AbiProfile::Modern) {
    // kvm_check_async_pf_completion with kvm_arch_can_dequeue_async_page_present: with
    // async PF off, drain silently; on, only while the LAPIC is enabled (2f15d027c05f) and
    // the guest's token slot reads 0. With apf_ready_lost_lapic_disabled (5.8-5.12,
    // pvmsr/README.md §2.5) the LAPIC is not asked: the page-ready is dequeued, its token
    // written and its interrupt handed to a LAPIC that drops it (__apic_accept_irq ignores
    // a software-disabled APIC), and the slot stays busy.
    while (!s.done.empty()) {
      if (enabled(v)) {
        if (!m_bugs.apf_ready_lost_lapic_disabled && !m_host.apf_lapic_enabled(v))
          return set_held(v, now, Held::LapicDisabled, 0);
        uint32_t slot = 0;
        if (!read_area_u32(s, kTokenOffset, slot)) return set_held(v, now, Held::SlotUnreadable, 0);
        if (slot != 0) return set_held(v, now, Held::SlotBusy, slot);
      }
      const Work w = s.done.front();
      s.done.pop_front();
      s.held = Held::None;
      present(v, w, now);
      --s.queued;
    }
    s.held = Held::None;
    return;
  }
  // 3.0: kvm_arch_can_inject_async_page_present. The #PF that present() queues makes
  // kvm_event_needs_reinjection true, which ends the loop after one injection.
  while (!s.done.empty()) {
    if ((s.msr_en & kEnabled) && !m_host.apf_can_inject_present(v)) {
      set_held(v, now, Held::IrqBlocked, 0);
      break;
    }
    const Work w = s.done.front();
    s.done.pop_front();
    s.held = Held::None;
    const bool injected = present(v, w, now);
    --s.queued;
    if (injected) break;
  }
  if (s.done.empty()) s.held = Held::None;
  else m_host.apf_request_ready(v);  // polled again at the next entry
}

// kvm_arch_async_page_present (both eras). Returns whether a page-ready was injected.
bool AsyncPf::present(unsigned v, const Work& w, Tick now) {
  VcpuApf& s = st(v);
  bool injected = false;
  if (m_cfg.abi == AbiProfile::Modern) {
    const uint32_t token = w.wakeup_all ? kWakeAllToken : w.token;
    if (!w.wakeup_all) s.gfns.del(w.gfn);
    m_tracer.kvm_async_pf_ready(now, v, token, w.gpa);
    // Only works whose not-present reached the guest, and wake-alls, are announced
    // (2a18b7e7cd88, 5.8-rc1); apf_ready_without_not_present (pvmsr/README.md §2.5) brings
    // back the 5.8 merge window, which announced every work. The token goes to offset 4.
    const bool announce =
        w.wakeup_all || w.notpresent_injected || m_bugs.apf_ready_without_not_present;
    if (announce && enabled(v) &&
        write_area_u32(s, kTokenOffset, token)) {
      s.pageready_pending = true;
      m_host.apf_inject_interrupt(v, s.vec);  // kvm_apic_set_irq: fixed, edge
      injected = true;
    }
    // Always runnable again, injected or not: a completion also ends a guest HLT.
    end_halt(v, now, w.wakeup_all ? "wake-all" : "its page is in");
    m_host.apf_wake(v);
  } else {
    // 3.0 traced before replacing a wake-all's token, so a wake-all reads "token 0 gva 0".
    m_tracer.kvm_async_pf_ready(now, v, w.token, w.gpa);
    const uint32_t token = w.wakeup_all ? kWakeAllToken : w.token;
    if (!w.wakeup_all) s.gfns.del(w.gfn);
    // Every work is announced, including those that only halted (the seed-era guest
    // tolerates an unknown token by recording it), with `reason` = 2 and #PF CR2 = token.
    if ((s.msr_en & kEnabled) && write_area_u32(s, 0, kReasonPageReady)) {
      m_host.apf_inject_page_fault(v, token);
      injected = true;
    }
    // Only the synthetic halt ends here; 3.0 left a guest HLT to kvm_vcpu_block's
    // runnable check (has_done), which had already run by the time this executes.
    end_halt(v, now, w.wakeup_all ? "wake-all" : "its page is in");
  }
  if (injected) ++s.counters.ready_delivered;
  else ++s.counters.ready_silent;
  return injected;
}

// kvm_clear_async_pf_completion_queue: outstanding work is cancelled and completed work
// freed, with no page-ready for any of it; queued becomes 0.
void AsyncPf::clear_queue(unsigned v, Tick now, const char* why) {
  VcpuApf& s = st(v);
  const size_t n = s.queue.size(), m = s.done.size();
  s.queue.clear();
  s.done.clear();
  s.queued = 0;
  s.held = Held::None;
  if (n + m == 0) return;
  s.counters.dropped += n + m;
  apf_trace(v, now, "dropped", fmt::format("{} outstanding, {} completed ({})", n, m, why));
}

void AsyncPf::set_held(unsigned v, Tick now, Held why, uint32_t value) {
  VcpuApf& s = st(v);
  // Once per change of reason (or of the busy slot's value): the completion check runs at
  // every entry while something waits, and the trace must not grow with the wait.
  if (s.held == why && s.held_value == value) return;
  s.held = why;
  s.held_value = value;
  std::string detail;
  switch (why) {
    case Held::None: return;
    case Held::LapicDisabled: detail = "LAPIC disabled"; break;
    case Held::SlotBusy: detail = fmt::format("token slot busy (0x{:x})", value); break;
    case Held::SlotUnreadable: detail = "token slot not in RAM"; break;
    case Held::AwaitAck: detail = "page-ready awaiting ACK, vCPU not kicked"; break;
    case Held::IrqBlocked: detail = "interrupts not allowed"; break;
  }
  apf_trace(v, now, "held", detail);
}

void AsyncPf::apf_trace(unsigned v, Tick now, std::string_view what, const std::string& detail) {
  m_tracer.pvsim_apf(now, v, what, detail);
}

// ---------------------------------------------------------------------------------------
// Other events

bool AsyncPf::halted(unsigned v) const { return st(v).halted; }
void AsyncPf::clear_halt(unsigned v) { end_halt(v, vcpu_now(v), "woken by another event"); }

// The synthetic halt ends (pvsim_apf "halt_end", the pair of "halt"): KVM traces neither.
void AsyncPf::end_halt(unsigned v, Tick now, const char* why) {
  VcpuApf& s = st(v);
  if (!s.halted) return;
  s.halted = false;
  apf_trace(v, now, "halt_end", why);
}
bool AsyncPf::has_done(unsigned v) const { return !st(v).done.empty(); }

// apic_set_spiv requests KVM_REQ_APF_READY on every SVR write with the enable bit set
// (and kvm_lapic_set_base on a hardware enable). 3.0 had no such request: it did not
// look at the LAPIC, and polled at every entry anyway.
// The request is part of 2f15d027c05f: under apf_ready_lost_lapic_disabled (5.8-5.12) an
// SVR enable re-checks nothing.
void AsyncPf::on_lapic_sw_enable(unsigned v) {
  if (m_cfg.abi == AbiProfile::Modern && !m_bugs.apf_ready_lost_lapic_disabled)
    m_host.apf_request_ready(v);
}

void AsyncPf::on_paging_enabled(unsigned v) { on_paging_changed(v, true); }

void AsyncPf::on_paging_changed(unsigned v, bool paging_now) {
  if (m_cfg.abi == AbiProfile::Orig || m_bugs.apf_pg_toggle_drops_work) {
    // 3.0 kvm_set_cr0, and kvm_post_set_cr0 until ab4e41eb9fab (6.19-rc1; modern with
    // apf_pg_toggle_drops_work, pvmsr/README.md §2.5): any CR0.PG change flushes the queue
    // and the gfn table, and turning paging back on re-checks nothing.
    clear_queue(v, vcpu_now(v), "CR0.PG");
    st(v).gfns.reset();
    return;
  }
  // kvm_post_set_cr0 since ab4e41eb9fab: the queue survives paging off; turning paging
  // back on re-checks it when async PF is enabled.
  if (paging_now && enabled(v)) m_host.apf_request_ready(v);
}

// kvm_vcpu_reset: both MSR values 0, the queue and the table flushed, the synthetic halt
// over. It leaves apf.vec, apf.id, pageready_pending and the area cache alone, and so does
// pvsim (a stale pageready_pending only suppresses kicks).
void AsyncPf::reset(unsigned v) {
  VcpuApf& s = st(v);
  s.msr_en = 0;
  s.msr_int = 0;
  clear_queue(v, vcpu_now(v), "reset");
  s.gfns.reset();
  s.halted = false;
}

}  // namespace pvsim
