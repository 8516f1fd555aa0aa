// tests/fuzz/image_checks.h — loading one image into a fresh guest RAM, with the loader's
// promises checked (tools/platform/loader.h): a LoadError is one line that names the
// image, and "everything is checked before a byte is copied", so a failed load leaves the
// fresh RAM untouched (not one page of it resident); a successful one has its symbols
// sorted by address, and symbolize() works on any address.
#pragma once
#include <algorithm>
#include <cstdint>
#include <span>
#include <string>

#include "core/guest_memory.h"
#include "tests/fuzz/fuzz_check.h"
#include "tools/platform/loader.h"

namespace pvsim::fuzz {

inline void load_and_check(uint64_t ram_bytes, std::span<const uint8_t> bytes, const std::string& name,
                           ImageFormat format) {
  GuestMemory mem(ram_bytes);
  try {
    const LoadedImage img = load_image_bytes(mem, bytes, name, format);
    fuzz_check(std::is_sorted(img.symbols.begin(), img.symbols.end(),
                              [](const Symbol& a, const Symbol& b) { return a.addr < b.addr; }),
               "LoadedImage::symbols is not sorted by address");
    (void)img.symbolize(img.entry);
    // Bounded: an image may carry thousands of symbols; the first ones reach every branch.
    const size_t n = std::min<size_t>(img.symbols.size(), 64);
    for (size_t i = 0; i < n; ++i) {
      (void)img.symbolize(img.symbols[i].addr);
      (void)img.symbolize(img.symbols[i].addr + img.symbols[i].size);
      (void)img.symbolize(img.symbols[i].addr - 1);
    }
  } catch (const LoadError& e) {
    check_one_line_message(e.what(), name + ": ");
    fuzz_check(mem.resident_bytes() == 0, "a failed load wrote into guest RAM (loader.h: checked before a byte is copied)",
               e.what());
  }
}

}  // namespace pvsim::fuzz
