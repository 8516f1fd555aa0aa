// tests/fuzz/fuzz_loader.cpp — fuzz target: the ELF64 and flat image loaders.
//
// Input: the bytes of an image file. Each input is loaded three times, into a fresh 4 MiB
// guest RAM each: as "format": "elf", as "flat" and with the automatic choice (ELF magic
// or not), so one corpus drives both loaders and the detection. 4 MiB keeps a load cheap
// (a segment's zero-filled tail is at most the RAM size) while still above the boot
// regions and the flat load address (loader.h), so placement checks on both sides of the
// end of RAM are reachable. image_checks.h lists what is checked.
#include <cstddef>
#include <cstdint>
#include <span>

#include "tests/fuzz/image_checks.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  constexpr uint64_t kRam = 4ull << 20;
  const std::span<const uint8_t> bytes(data, size);
  for (pvsim::ImageFormat f : {pvsim::ImageFormat::Elf, pvsim::ImageFormat::Flat, pvsim::ImageFormat::Auto})
    pvsim::fuzz::load_and_check(kRam, bytes, "fuzz.img", f);
  return 0;
}
