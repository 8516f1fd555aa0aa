// tests/gdb/gdb_packet_test.cpp — the framing layer of the gdb remote protocol
// (tools/platform/gdb_packet.h): packets, escapes, checksums, interrupts, limits, and
// arbitrary bytes that must never crash the reader or the parsers.
#include <catch2/catch.hpp>

#include <cstdint>
#include <string>

#include "core/prng.h"
#include "tools/platform/gdb_packet.h"

using namespace pvsim::gdb;

namespace {
std::vector<Incoming> feed_all(std::string_view bytes) {
  PacketReader r;
  r.feed(bytes);
  std::vector<Incoming> out;
  while (auto in = r.next()) out.push_back(*in);
  return out;
}
}  // namespace

TEST_CASE("gdb packets: framing round trip with escapes") {
  for (const std::string& body : {std::string("qSupported:multiprocess+"), std::string("X1000,4:$#}*"),
                                 std::string(""), std::string("\x03\x7d\x23", 3)}) {
    const std::string f = frame(body);
    const auto got = feed_all(f);
    REQUIRE(got.size() == 1);
    CHECK(got[0].kind == Incoming::Kind::Packet);
    CHECK(got[0].data == body);
  }
  CHECK(frame("OK") == "$OK#9a");  // the manual's own example checksum
  CHECK(frame("}") == "$}]#da");
}

TEST_CASE("gdb packets: acks, interrupts and noise between packets") {
  const auto got = feed_all(std::string("+-xyz\x03$g#67+", 12));
  REQUIRE(got.size() == 5);
  CHECK(got[0].kind == Incoming::Kind::Ack);
  CHECK(got[1].kind == Incoming::Kind::Nak);
  CHECK(got[2].kind == Incoming::Kind::Interrupt);
  CHECK(got[3].kind == Incoming::Kind::Packet);
  CHECK(got[3].data == "g");
  CHECK(got[4].kind == Incoming::Kind::Ack);
}

TEST_CASE("gdb packets: a bad checksum or digit is a BadPacket, and the next packet still parses") {
  auto got = feed_all("$g#00$g#67");
  REQUIRE(got.size() == 2);
  CHECK(got[0].kind == Incoming::Kind::BadPacket);
  CHECK(got[1].kind == Incoming::Kind::Packet);
  got = feed_all("$g#zz$?#3f");
  REQUIRE(got.size() >= 2);
  CHECK(got[0].kind == Incoming::Kind::BadPacket);
  CHECK(got.back().kind == Incoming::Kind::Packet);
  CHECK(got.back().data == "?");
}

TEST_CASE("gdb packets: an oversized packet is refused without buffering it") {
  std::string body(kMaxPacket + 100, 'a');
  const auto got = feed_all(frame(body) + frame("g"));
  REQUIRE(got.size() == 2);
  CHECK(got[0].kind == Incoming::Kind::BadPacket);
  CHECK(got[0].data.empty());
  CHECK(got[1].data == "g");
  // Exactly the limit is fine.
  const auto ok = feed_all(frame(std::string(kMaxPacket, 'b')));
  REQUIRE(ok.size() == 1);
  CHECK(ok[0].kind == Incoming::Kind::Packet);
}

TEST_CASE("gdb packets: a packet split across reads") {
  PacketReader r;
  const std::string f = frame("m100000,40");
  for (char c : f) r.feed(std::string_view(&c, 1));
  const auto in = r.next();
  REQUIRE(in);
  CHECK(in->data == "m100000,40");
  CHECK(!r.next());
}

TEST_CASE("gdb hex helpers reject malformed input") {
  CHECK(parse_hex("1f") == 0x1fu);
  CHECK(!parse_hex(""));
  CHECK(!parse_hex("12345678901234567"));  // 17 digits
  CHECK(!parse_hex("1g"));
  CHECK(from_hex("4f4b") == std::string("OK"));
  CHECK(!from_hex("4f4"));
  CHECK(!from_hex("zz"));
  CHECK(le_hex(0x1122334455667788ull, 8) == "8877665544332211");
  CHECK(parse_le_hex("8877665544332211", 8) == 0x1122334455667788ull);
  CHECK(!parse_le_hex("887766", 4));
  CHECK(le_hex(1, 10) == "01000000000000000000");
}

TEST_CASE("gdb thread ids and vCont lists") {
  CHECK(parse_thread_id("-1") == -1);
  CHECK(parse_thread_id("0") == 0);
  CHECK(parse_thread_id("2") == 2);
  CHECK(parse_thread_id("p1.2") == 2);
  CHECK(parse_thread_id("p-1.-1") == -1);
  CHECK(!parse_thread_id("p1"));
  CHECK(!parse_thread_id("x"));
  CHECK(!parse_thread_id(""));
  auto a = parse_vcont(";s:2;c");
  REQUIRE(a);
  REQUIRE(a->size() == 2);
  CHECK((*a)[0].op == 's');
  CHECK((*a)[0].thread == 2);
  CHECK((*a)[1].op == 'c');
  CHECK((*a)[1].thread == -1);
  a = parse_vcont(";C05:1;r1000,2000:2");
  REQUIRE(a);
  CHECK((*a)[0].op == 'c');
  CHECK((*a)[1].op == 'r');
  CHECK((*a)[1].range_end == 0x2000u);
  for (const char* bad : {"", ";", ";x", ";s:", ";s:zz", ";C5", ";ss", ";c;", ";r1000"}) {
    INFO(bad);
    CHECK(!parse_vcont(bad));
  }
}

TEST_CASE("gdb packets: random bytes never crash the reader or the parsers") {
  pvsim::SplitMix64 rng(0x9db1u);
  PacketReader r;
  size_t packets = 0;
  for (int round = 0; round < 20000; ++round) {
    std::string chunk;
    const size_t n = rng.next() % 64;
    for (size_t k = 0; k < n; ++k) {
      const uint64_t x = rng.next();
      // Mostly protocol characters, so that packets do form now and then.
      static const char kAlpha[] = "$#}*+-\x03" "0123456789abcdefvCont;sc:Zzm,gG";
      chunk.push_back((x & 3) ? kAlpha[(x >> 8) % (sizeof kAlpha - 1)] : static_cast<char>(x >> 16));
    }
    r.feed(chunk);
    while (auto in = r.next()) {
      if (in->kind != Incoming::Kind::Packet) continue;
      ++packets;
      CHECK(in->data.size() <= kMaxPacket);
      (void)parse_vcont(in->data);
      (void)parse_thread_id(in->data);
      (void)parse_hex(in->data);
      (void)from_hex(in->data);
    }
    // Framing what came in gives it back.
    const std::string body = chunk.substr(0, chunk.size() / 2);
    const auto back = feed_all(frame(body));
    REQUIRE(back.size() == 1);
    CHECK(back[0].data == body);
  }
  CHECK(packets > 0);
}
