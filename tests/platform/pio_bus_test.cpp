#include <catch2/catch.hpp>

#include "core/pio_bus.h"

using namespace pvsim;

namespace {
struct NullDev final : PioDevice {
  void pio_read(Vcpu&, uint16_t, unsigned, uint32_t&) override {}
  void pio_write(Vcpu&, uint16_t, unsigned, uint32_t) override {}
};
}  // namespace

TEST_CASE("PioBus rejects overlapping, empty and wrapping claims", "[pio]") {
  PioBus bus;
  NullDev a, b;
  REQUIRE(bus.add(0xf4, 2, a, "exit"));
  CHECK_FALSE(bus.add(0xf5, 1, b, "x"));    // inside
  CHECK_FALSE(bus.add(0xf0, 5, b, "x"));    // overlaps the start
  CHECK_FALSE(bus.add(0xf0, 0x20, b, "x")); // covers it
  CHECK_FALSE(bus.add(0x10, 0, b, "x"));    // empty
  CHECK_FALSE(bus.add(0xffff, 2, b, "x"));  // wraps
  CHECK(bus.add(0xf0, 4, b, "below"));      // adjacent below
  CHECK(bus.add(0xf6, 1, b, "above"));      // adjacent above
  CHECK(bus.add(0xffff, 1, b, "top"));
  CHECK(std::string(bus.owner(0xf4)) == "exit");
  CHECK(std::string(bus.owner(0xf5)) == "exit");
  CHECK(std::string(bus.owner(0xf3)) == "below");
  CHECK(std::string(bus.owner(0xf6)) == "above");
  CHECK(std::string(bus.owner(0xffff)) == "top");
  CHECK(bus.owner(0xf7) == nullptr);
  CHECK(bus.owner(0) == nullptr);
}
