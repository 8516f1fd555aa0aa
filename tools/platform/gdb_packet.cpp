// tools/platform/gdb_packet.cpp — framing and hex helpers of the gdb remote protocol
// (gdb_packet.h).
#include "tools/platform/gdb_packet.h"

#include <fmt/format.h>

namespace pvsim::gdb {

namespace {
int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
constexpr char kDigits[] = "0123456789abcdef";
}  // namespace

void PacketReader::feed(std::string_view bytes) {
  for (const char ch : bytes) {
    const auto c = static_cast<uint8_t>(ch);
    switch (m_st) {
      case St::Idle:
        if (c == '$') {
          m_st = St::Body;
          m_body.clear();
          m_overflow = false;
          m_sum = 0;
        } else if (c == 0x03) {
          m_out.push_back({Incoming::Kind::Interrupt, {}});
        } else if (c == '+') {
          m_out.push_back({Incoming::Kind::Ack, {}});
        } else if (c == '-') {
          m_out.push_back({Incoming::Kind::Nak, {}});
        }
        // Anything else between packets is line noise: ignored, as gdb ignores it.
        break;
      case St::Body:
      case St::Escape:
        if (c == '#' && m_st == St::Body) {
          m_st = St::Sum1;
          break;
        }
        m_sum = static_cast<uint8_t>(m_sum + c);
        if (m_st == St::Body && c == '}') {
          m_st = St::Escape;
          break;
        }
        if (m_body.size() >= kMaxPacket) {
          m_overflow = true;  // keep summing to find the end, store nothing more
        } else {
          m_body.push_back(static_cast<char>(m_st == St::Escape ? (c ^ 0x20) : c));
        }
        m_st = St::Body;
        break;
      case St::Sum1: {
        const int v = hex_value(static_cast<char>(c));
        m_got = static_cast<uint8_t>((v < 0 ? 0x100 : v) << 4);  // invalid digit: a mismatch below
        m_st = v < 0 ? St::Idle : St::Sum2;
        if (v < 0) m_out.push_back({Incoming::Kind::BadPacket, {}});
        break;
      }
      case St::Sum2: {
        const int v = hex_value(static_cast<char>(c));
        m_st = St::Idle;
        if (v < 0 || m_overflow || static_cast<uint8_t>(m_got | v) != m_sum) {
          m_out.push_back({Incoming::Kind::BadPacket, {}});
        } else {
          m_out.push_back({Incoming::Kind::Packet, std::move(m_body)});
          m_body.clear();
        }
        break;
      }
    }
  }
}

std::optional<Incoming> PacketReader::next() {
  if (m_head >= m_out.size()) {
    m_out.clear();
    m_head = 0;
    return std::nullopt;
  }
  Incoming r = std::move(m_out[m_head++]);
  if (m_head == m_out.size()) {
    m_out.clear();
    m_head = 0;
  }
  return r;
}

std::string frame(std::string_view data) {
  std::string out = "$";
  uint8_t sum = 0;
  for (const char ch : data) {
    const auto c = static_cast<uint8_t>(ch);
    if (c == '$' || c == '#' || c == '}' || c == '*') {
      out.push_back('}');
      out.push_back(static_cast<char>(c ^ 0x20));
      sum = static_cast<uint8_t>(sum + '}' + (c ^ 0x20));
    } else {
      out.push_back(ch);
      sum = static_cast<uint8_t>(sum + c);
    }
  }
  out.push_back('#');
  out.push_back(kDigits[sum >> 4]);
  out.push_back(kDigits[sum & 15]);
  return out;
}

std::string to_hex(const void* data, size_t len) {
  std::string s;
  s.reserve(len * 2);
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < len; ++i) {
    s.push_back(kDigits[p[i] >> 4]);
    s.push_back(kDigits[p[i] & 15]);
  }
  return s;
}

std::string to_hex(std::string_view s) { return to_hex(s.data(), s.size()); }

std::optional<std::string> from_hex(std::string_view hex) {
  if (hex.size() % 2) return std::nullopt;
  std::string out;
  out.reserve(hex.size() / 2);
  for (size_t i = 0; i < hex.size(); i += 2) {
    const int hi = hex_value(hex[i]), lo = hex_value(hex[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<char>(hi * 16 + lo));
  }
  return out;
}

std::optional<uint64_t> parse_hex(std::string_view s) {
  if (s.empty() || s.size() > 16) return std::nullopt;
  uint64_t v = 0;
  for (const char c : s) {
    const int d = hex_value(c);
    if (d < 0) return std::nullopt;
    v = v << 4 | static_cast<uint64_t>(d);
  }
  return v;
}

std::string le_hex(uint64_t v, unsigned bytes) {
  std::string s;
  for (unsigned i = 0; i < bytes; ++i) {
    const auto b = static_cast<uint8_t>(i < 8 ? v >> (8 * i) : 0);
    s.push_back(kDigits[b >> 4]);
    s.push_back(kDigits[b & 15]);
  }
  return s;
}

std::optional<uint64_t> parse_le_hex(std::string_view s, unsigned bytes) {
  if (s.size() != 2 * static_cast<size_t>(bytes)) return std::nullopt;
  const auto raw = from_hex(s);
  if (!raw) return std::nullopt;
  uint64_t v = 0;
  for (unsigned i = 0; i < bytes && i < 8; ++i) v |= static_cast<uint64_t>(static_cast<uint8_t>((*raw)[i])) << (8 * i);
  return v;
}

std::optional<int64_t> parse_thread_id(std::string_view s) {
  if (s == "-1") return -1;
  // The multiprocess form pPID.TID: one process, so only the thread part counts.
  if (!s.empty() && s[0] == 'p') {
    const size_t dot = s.find('.');
    if (dot == std::string_view::npos) return std::nullopt;
    if (s.substr(1, dot - 1) != "-1" && !parse_hex(s.substr(1, dot - 1))) return std::nullopt;
    s = s.substr(dot + 1);
    if (s == "-1") return -1;
  }
  const auto v = parse_hex(s);
  if (!v || *v > 0x7fffffff) return std::nullopt;
  return static_cast<int64_t>(*v);
}

std::optional<std::vector<VContAction>> parse_vcont(std::string_view body) {
  // body: ";action[:tid];action[:tid]..." (after "vCont")
  std::vector<VContAction> out;
  if (body.empty() || body[0] != ';') return std::nullopt;
  body.remove_prefix(1);
  while (true) {
    const size_t semi = body.find(';');
    std::string_view item = body.substr(0, semi);
    if (item.empty()) return std::nullopt;
    VContAction a;
    const size_t colon = item.find(':');
    std::string_view op = item.substr(0, colon);
    if (colon != std::string_view::npos) {
      const auto t = parse_thread_id(item.substr(colon + 1));
      if (!t) return std::nullopt;
      a.thread = *t;
    }
    switch (op.empty() ? '\0' : op[0]) {
      case 'c':
      case 's':
      case 't':
        if (op.size() != 1) return std::nullopt;
        a.op = op[0];
        break;
      case 'C':
      case 'S':
        if (op.size() != 3 || !parse_hex(op.substr(1))) return std::nullopt;
        a.op = op[0] == 'C' ? 'c' : 's';
        break;
      case 'r': {
        const size_t comma = op.find(',');
        if (comma == std::string_view::npos) return std::nullopt;
        const auto s0 = parse_hex(op.substr(1, comma - 1)), s1 = parse_hex(op.substr(comma + 1));
        if (!s0 || !s1) return std::nullopt;
        a.op = 'r';
        a.range_start = *s0;
        a.range_end = *s1;
        break;
      }
      default:
        return std::nullopt;
    }
    out.push_back(a);
    if (semi == std::string_view::npos) break;
    body.remove_prefix(semi + 1);
  }
  return out;
}

}  // namespace pvsim::gdb
