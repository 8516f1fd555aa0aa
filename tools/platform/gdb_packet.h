// tools/platform/gdb_packet.h — the framing layer of gdb's remote serial protocol
// (tools/platform/README.md "Debugging with gdb"; the GDB manual, appendix "Remote Protocol",
// sections "Overview" and "Packets").
//
// A packet is `$DATA#CS`: CS is the sum of DATA's bytes modulo 256 in two hex digits; in
// DATA, `}` escapes the next byte (XOR 0x20) so that `$`, `#`, `}` and `*` can be carried.
// The receiver acknowledges with `+` (or `-` to ask for it again) until no-ack mode is
// negotiated (QStartNoAckMode). Outside a packet, a lone 0x03 byte is an interrupt (Ctrl-C).
// Everything here is pure: bytes in, events out, so the unit tests feed it arbitrary input.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pvsim::gdb {

// Largest packet body accepted (and advertised as PacketSize): gdb splits memory transfers
// to fit. A longer packet is not buffered: its bytes are counted up to the checksum and it
// comes out as a BadPacket (answered `-`).
constexpr size_t kMaxPacket = 0x4000;

// What the reader made of the bytes so far.
struct Incoming {
  enum class Kind : uint8_t {
    Packet,     // a well-formed packet; `data` is unescaped
    BadPacket,  // checksum mismatch, or longer than kMaxPacket: to be NAKed (`-`)
    Interrupt,  // 0x03 outside a packet
    Ack,        // `+`
    Nak,        // `-`: resend the last reply
  };
  Kind kind = Kind::Packet;
  std::string data;
};

class PacketReader {
 public:
  // Feeds bytes; complete items are queued in arrival order.
  void feed(std::string_view bytes);
  std::optional<Incoming> next();
  bool pending() const { return m_head < m_out.size(); }

 private:
  enum class St : uint8_t { Idle, Body, Escape, Sum1, Sum2 };
  St m_st = St::Idle;
  std::string m_body;
  bool m_overflow = false;
  uint8_t m_sum = 0;
  uint8_t m_got = 0;
  std::vector<Incoming> m_out;
  size_t m_head = 0;
};

// `$DATA#CS` with DATA escaped as needed.
std::string frame(std::string_view data);

// ---- hex helpers (all reject malformed input rather than guessing) ----
std::string to_hex(const void* data, size_t len);
std::string to_hex(std::string_view s);
// Hex digit pairs to bytes; nullopt on an odd length or a non-hex digit.
std::optional<std::string> from_hex(std::string_view hex);
// A hex number (1..16 digits); nullopt otherwise.
std::optional<uint64_t> parse_hex(std::string_view s);
// Little-endian byte order, `bytes` wide, as the g/p packets carry registers.
std::string le_hex(uint64_t v, unsigned bytes);
std::optional<uint64_t> parse_le_hex(std::string_view s, unsigned bytes);

// Thread ids of H, T, vCont and qThreadInfo: -1 (all), 0 (any), or a positive id.
std::optional<int64_t> parse_thread_id(std::string_view s);

// One action of a vCont packet: `c`, `s`, `C sig`, `S sig`, `t`, `r start,end`, with an
// optional `:thread`.
struct VContAction {
  char op = 'c';      // 'c', 's', 't' or 'r' (C and S are c and s with a signal, ignored)
  int64_t thread = -1;  // -1: every thread without an action of its own
  uint64_t range_start = 0, range_end = 0;  // 'r'
};
// nullopt for a malformed list (answered with an error).
std::optional<std::vector<VContAction>> parse_vcont(std::string_view body);

}  // namespace pvsim::gdb
