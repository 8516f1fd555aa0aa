#include "devices/pit8254.h"

#include <algorithm>

#include "core/vcpu.h"

namespace pvsim {

namespace {
constexpr uint64_t kNsPerSec = 1'000'000'000;

uint32_t modulus(const Pit8254Counter& k) { return k.bcd ? 10000u : 65536u; }

// a mod m for a possibly negative a.
uint32_t wrap(int64_t a, uint32_t m) {
  const int64_t r = a % static_cast<int64_t>(m);
  return static_cast<uint32_t>(r < 0 ? r + m : r);
}

// Four BCD digits as a number. Digits above 9 keep their binary weight (undefined input).
uint32_t from_bcd(uint16_t raw) {
  return (raw & 0xf) + ((raw >> 4) & 0xf) * 10u + ((raw >> 8) & 0xf) * 100u + ((raw >> 12) & 0xf) * 1000u;
}

uint16_t to_bcd(uint32_t v) {
  return static_cast<uint16_t>((v % 10) | (v / 10 % 10) << 4 | (v / 100 % 10) << 8 | (v / 1000 % 10) << 12);
}

// Mode 3's high half: ceil(N/2) pulses (datasheet, "Mode 3": "(N+1)/2" for odd counts).
int64_t high_half(uint32_t n) { return (static_cast<int64_t>(n) + 1) / 2; }
}  // namespace

Pit8254::Pit8254() {
  // Counter 2's GATE is port 0x61 bit 0, clear after reset.
  m_counters[2].gate = false;
}

int64_t Pit8254::pulses_at(Tick t) {
  return static_cast<int64_t>(static_cast<unsigned __int128>(t.value()) * kHz / kNsPerSec);
}

Tick Pit8254::pulse_time(int64_t p) {
  if (p <= 0) return Tick(0);
  const unsigned __int128 n = static_cast<unsigned __int128>(p) * kNsPerSec + (kHz - 1);
  return Tick(static_cast<uint64_t>(n / kHz));
}

// ---------------------------------------------------------------- the counting model

Pit8254::Sample Pit8254::sample_segment(const Pit8254Counter& k, const Pit8254Segment& s, int64_t c) {
  const uint32_t m = modulus(k);
  const int64_t n = s.n;
  const int64_t kk = c - s.origin;  // >= 0: callers pass c >= s.start >= s.origin
  switch (k.mode) {
    case 0:
    case 1:
      return {wrap(n - kk, m), kk >= n, false};
    case 2: {
      const int64_t j = kk % n;
      return {wrap(n - j, m), j != n - 1, false};
    }
    case 3: {
      const int64_t j = kk % n, hl = high_half(s.n);
      const int64_t top = (n & 1) ? n - 1 : n;  // odd counts load N - 1
      const int64_t ce = j < hl ? top - 2 * j : top - 2 * (j - hl);
      return {wrap(ce, m), j < hl, false};
    }
    default:  // 4, 5
      return {wrap(n - kk, m), kk != n, false};
  }
}

Pit8254::Sample Pit8254::sample(const Pit8254Counter& k, int64_t c) {
  if (k.has_next && c >= k.next.start) return sample_segment(k, k.next, c);
  if (!k.running || c < k.cur.start) return {k.hold % modulus(k), k.hold_out, true};
  Sample s = sample_segment(k, k.cur, c);
  s.null = k.has_next || k.stale;
  return s;
}

void Pit8254::settle(Pit8254Counter& k, int64_t c) {
  if (k.has_next && c >= k.next.start) {
    k.cur = k.next;
    k.has_next = false;
  }
}

// The first pulse p > after at which OUT goes from low to high. Candidates are the few
// pulses where a rise can happen (a segment's start, mode 0/1's terminal count, the pulse
// after a mode 4/5 strobe, the next period boundary in modes 2/3); each is checked against
// sample(), which is the definition of OUT.
std::optional<int64_t> Pit8254::next_rise(const Pit8254Counter& k, int64_t after) {
  std::array<int64_t, 6> cand{};
  size_t nc = 0;
  const auto segment = [&](const Pit8254Segment& s, int64_t from) {
    cand[nc++] = s.start;
    switch (k.mode) {
      case 0:
      case 1:
        cand[nc++] = s.origin + s.n;
        break;
      case 2:
      case 3: {
        const int64_t kk = from - s.origin;
        const int64_t m = kk < 0 ? 1 : kk / s.n + 1;
        cand[nc++] = s.origin + m * s.n;
        break;
      }
      default:
        cand[nc++] = s.origin + s.n + 1;
        break;
    }
  };
  if (k.running) segment(k.cur, after);
  if (k.has_next) segment(k.next, std::max(after, k.next.start));
  std::optional<int64_t> best;
  for (size_t i = 0; i < nc; ++i) {
    const int64_t p = cand[i];
    if (p <= after || (best && p >= *best)) continue;
    if (!sample(k, p - 1).out && sample(k, p).out) best = p;
  }
  return best;
}

uint16_t Pit8254::encode(const Pit8254Counter& k, uint32_t ce) {
  return k.bcd ? to_bcd(ce % 10000) : static_cast<uint16_t>(ce);
}

// ---------------------------------------------------------------- programming

void Pit8254::write_control(uint8_t value, int64_t c) {
  const unsigned sc = value >> 6;
  const unsigned rw = (value >> 4) & 3;
  if (sc == 3) {
    // Read-back (datasheet, "Read-Back Command"): D5 = 0 latches the counts, D4 = 0 the
    // status, of the counters whose bits D3-D1 are set. A latch not yet read stays.
    for (unsigned i = 0; i < 3; ++i) {
      if (!(value & (2u << i))) continue;
      Pit8254Counter& k = m_counters[i];
      if (!(value & 0x20)) latch_count(k, c);
      if (!(value & 0x10) && !k.status_latched) {
        const Sample s = sample(k, c);
        k.status = static_cast<uint8_t>((s.out ? 0x80 : 0) | (s.null ? 0x40 : 0) | k.control);
        k.status_latched = true;
      }
    }
    return;
  }
  Pit8254Counter& k = m_counters[sc];
  if (rw == 0) {  // counter latch command
    latch_count(k, c);
    return;
  }
  settle(k, c);
  // The CE stops where it is (the datasheet leaves its contents undefined until a count
  // is loaded; keeping the last value is the simplest defined choice).
  k.hold = sample(k, c).ce;
  k.control = value & 0x3f;
  k.rw = static_cast<uint8_t>(rw);
  const unsigned mode = (value >> 1) & 7;
  k.mode = static_cast<uint8_t>(mode >= 6 ? mode - 4 : mode);  // X10 = 2, X11 = 3
  k.bcd = (value & 1) != 0;
  k.write_msb = k.read_msb = false;
  k.count_latched = k.status_latched = false;
  k.has_count = k.stale = k.running = k.has_next = false;
  // "When a Control Word is written to a Counter ... OUT goes to a known initial state":
  // low in mode 0, high in the others.
  k.hold_out = k.mode != 0;
}

void Pit8254::latch_count(Pit8254Counter& k, int64_t c) {
  if (k.count_latched) return;  // "subsequent latch commands are ignored until read"
  k.latch = encode(k, sample(k, c).ce);
  k.count_latched = true;
  k.latch_msb = false;
}

void Pit8254::write_counter(unsigned i, uint8_t value, int64_t c) {
  Pit8254Counter& k = m_counters[i];
  switch (k.rw) {
    case 1:
      load_count(k, value, c);
      break;
    case 2:
      load_count(k, static_cast<uint16_t>(value << 8), c);
      break;
    case 3:
      if (!k.write_msb) {
        k.write_lsb = value;
        k.write_msb = true;
        if (k.mode == 0) {
          // Mode 0: "writing the first byte disables counting; OUT is set low immediately".
          settle(k, c);
          k.hold = sample(k, c).ce;
          k.hold_out = false;
          k.running = k.has_next = false;
        }
      } else {
        k.write_msb = false;
        load_count(k, static_cast<uint16_t>(k.write_lsb | value << 8), c);
      }
      break;
    default:  // never programmed: no access mode yet, the write goes nowhere
      break;
  }
}

void Pit8254::load_count(Pit8254Counter& k, uint16_t raw, int64_t c) {
  settle(k, c);
  uint32_t n = k.bcd ? from_bcd(raw) : raw;
  if (n == 0) n = modulus(k);
  k.cr = n;
  k.has_count = true;
  const Sample now = sample(k, c);
  const auto load_next_pulse = [&](bool out_until_then) {
    k.hold = now.ce;
    k.hold_out = out_until_then;
    k.running = true;
    k.has_next = false;
    k.cur = {n, c + 1, c + 1};
  };
  switch (k.mode) {
    case 0:  // a new count restarts the count; OUT low until terminal count
      load_next_pulse(false);
      break;
    case 4:  // retriggered by the write; OUT as it is until the load
      load_next_pulse(now.out);
      break;
    case 1:
    case 5:  // waits for a gate trigger; a running one-shot/strobe is not disturbed
      if (k.running) k.stale = true;
      break;
    default: {  // 2, 3
      if (!k.running || c < k.cur.start) {
        load_next_pulse(now.out);
        break;
      }
      // Running: the new count takes over at the end of the current period (mode 2) or
      // half-period (mode 3), where the CE would have been reloaded anyway.
      const int64_t j = (c - k.cur.origin) % k.cur.n;
      Pit8254Segment s;
      s.n = n;
      if (k.mode == 2) {
        s.start = s.origin = c - j + k.cur.n;
      } else if (j < high_half(k.cur.n)) {
        s.start = c - j + high_half(k.cur.n);  // OUT falls here: start in the low half
        s.origin = s.start - high_half(n);
      } else {
        s.start = s.origin = c - j + k.cur.n;
      }
      k.next = s;
      k.has_next = true;
      break;
    }
  }
}

void Pit8254::set_gate(Pit8254Counter& k, bool level, int64_t c) {
  settle(k, c);
  const bool rising = level && !k.gate;
  k.gate = level;
  if (!rising || !k.has_count) return;
  if (k.mode == 0 || k.mode == 4) return;  // GATE only enables counting there (not modelled)
  // Modes 1 and 5 are triggered, modes 2 and 3 restart: the count register loads on the
  // next pulse (datasheet, GATE pin operations table).
  const Sample now = sample(k, c);
  k.hold = now.ce;
  k.hold_out = now.out;
  k.running = true;
  k.has_next = k.stale = false;
  k.cur = {k.cr, c + 1, c + 1};
}

uint8_t Pit8254::read_counter(unsigned i, int64_t c) {
  Pit8254Counter& k = m_counters[i];
  if (k.status_latched) {
    k.status_latched = false;
    return k.status;
  }
  uint16_t v;
  bool msb;
  if (k.count_latched) {
    v = k.latch;
    if (k.rw == 3 && !k.latch_msb) {
      msb = false;
      k.latch_msb = true;
    } else {
      msb = k.rw == 2 || (k.rw == 3 && k.latch_msb);
      k.count_latched = k.latch_msb = false;
    }
  } else {
    v = encode(k, sample(k, c).ce);
    msb = k.rw == 2 || (k.rw == 3 && k.read_msb);
    if (k.rw == 3) k.read_msb = !k.read_msb;
  }
  return static_cast<uint8_t>(msb ? v >> 8 : v);
}

// ---------------------------------------------------------------- ports

uint32_t Pit8254::read(uint16_t offset, unsigned size, Tick now) {
  const int64_t c = pulses_at(now);
  uint32_t value = 0;
  for (unsigned i = 0; i < size; ++i) {
    const unsigned lane = offset + i;
    // The control word register cannot be read (datasheet: "no-operation, 3-state").
    const uint8_t b = lane < 3 ? read_counter(lane, c) : 0xff;
    value |= uint32_t{b} << (8 * i);
  }
  return value;
}

void Pit8254::write(uint16_t offset, unsigned size, uint32_t value, Tick now) {
  // Edges that are already due belong to the old programming: deliver them first.
  fire_until(now);
  const int64_t c = pulses_at(now);
  for (unsigned i = 0; i < size; ++i) {
    const unsigned lane = offset + i;
    const uint8_t b = static_cast<uint8_t>(value >> (8 * i));
    if (lane < 3)
      write_counter(lane, b, c);
    else if (lane == 3)
      write_control(b, c);
  }
  rearm(now);
}

uint8_t Pit8254::read_port61(Tick now) {
  const bool refresh = (now.value() >> 14) & 1;
  const bool out2 = sample(m_counters[2], pulses_at(now)).out;
  return static_cast<uint8_t>((m_port61 & 0x0f) | (refresh ? 0x10 : 0) | (out2 ? 0x20 : 0));
}

void Pit8254::write_port61(uint8_t value, Tick now) {
  fire_until(now);
  m_port61 = value & 0x0f;
  set_gate(m_counters[2], (value & 1) != 0, pulses_at(now));
  rearm(now);
}

void Pit8254::pio_read(Vcpu& vcpu, uint16_t offset, unsigned size, uint32_t& value) {
  value = read(offset, size, vcpu.now());
}

void Pit8254::pio_write(Vcpu& vcpu, uint16_t offset, unsigned size, uint32_t value) {
  write(offset, size, value, vcpu.now());
}

// Port 0x61 is one byte; wider accesses get floating lanes above it.
void Pit8254::Port61::pio_read(Vcpu& vcpu, uint16_t, unsigned size, uint32_t& value) {
  const uint32_t floating = size >= 4 ? 0xffffff00u : ((1u << (8 * size)) - 1) & ~0xffu;
  value = floating | m_pit.read_port61(vcpu.now());
}

void Pit8254::Port61::pio_write(Vcpu& vcpu, uint16_t, unsigned, uint32_t value) {
  m_pit.write_port61(static_cast<uint8_t>(value), vcpu.now());
}

// ---------------------------------------------------------------- IRQ 0

std::optional<Tick> Pit8254::next_irq_ns(Tick now) const {
  const std::optional<int64_t> p = next_rise(m_counters[0], m_irq_checked);
  if (!p) return std::nullopt;
  const Tick t = pulse_time(*p);
  return t < now ? now : t;
}

bool Pit8254::fire_until(Tick now) {
  const int64_t c = pulses_at(now);
  if (c <= m_irq_checked) return false;
  const std::optional<int64_t> p = next_rise(m_counters[0], m_irq_checked);
  m_irq_checked = c;
  settle(m_counters[0], c);
  if (!p || *p > c) return false;
  if (m_irq) {
    m_irq(true);
    m_irq(false);
  }
  return true;
}

void Pit8254::attach_events(EventQueue& q, Tick now) {
  m_queue = &q;
  rearm(now);
}

void Pit8254::rearm(Tick now) {
  if (!m_queue) return;
  const std::optional<Tick> t = next_irq_ns(now);
  if (t)
    m_queue->schedule(m_event, *t, EventPriority::DeviceTimer);
  else
    EventQueue::cancel(m_event);
}

void Pit8254::event_fired() {
  const Tick t = m_event.when();
  fire_until(t);
  rearm(t);
}

void Pit8254::set_bios_state(Tick now) {
  write(3, 1, 0x34, now);  // counter 0, LSB then MSB, mode 2, binary
  write(0, 1, 0x00, now);
  write(0, 1, 0x00, now);
}

uint16_t Pit8254::count(unsigned i, Tick now) const {
  const Pit8254Counter& k = m_counters.at(i);
  return encode(k, sample(k, pulses_at(now)).ce);
}

bool Pit8254::out(unsigned i, Tick now) const { return sample(m_counters.at(i), pulses_at(now)).out; }

bool Pit8254::null_count(unsigned i, Tick now) const {
  return sample(m_counters.at(i), pulses_at(now)).null;
}

}  // namespace pvsim
