#include "tools/platform/text.h"

#include <fmt/format.h>

#include <cstdint>

namespace pvsim {

namespace {

// Length of the valid UTF-8 sequence starting at s[i] (RFC 3629 §4: no overlongs, no
// surrogates, nothing above U+10FFFF), or 0 when the byte there does not start one.
size_t utf8_length(std::string_view s, size_t i, uint32_t& cp) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const auto cont = [&](size_t k) { return i + k < s.size() && (b(k) & 0xc0) == 0x80; };
  const unsigned char c = b(0);
  if (c < 0x80) {
    cp = c;
    return 1;
  }
  if (c >= 0xc2 && c <= 0xdf && cont(1)) {
    cp = (c & 0x1fu) << 6 | (b(1) & 0x3fu);
    return 2;
  }
  if (c >= 0xe0 && c <= 0xef && cont(1) && cont(2)) {
    cp = (c & 0x0fu) << 12 | (b(1) & 0x3fu) << 6 | (b(2) & 0x3fu);
    if (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return 3;
  }
  if (c >= 0xf0 && c <= 0xf4 && cont(1) && cont(2) && cont(3)) {
    cp = (c & 0x07u) << 18 | (b(1) & 0x3fu) << 12 | (b(2) & 0x3fu) << 6 | (b(3) & 0x3fu);
    if (cp < 0x10000 || cp > 0x10ffff) return 0;
    return 4;
  }
  return 0;
}

std::string escape(std::string_view s, size_t max_chars, bool quote) {
  std::string out;
  size_t chars = 0;
  for (size_t i = 0; i < s.size();) {
    if (chars >= max_chars) {
      out += "...";
      break;
    }
    uint32_t cp = 0;
    const size_t n = utf8_length(s, i, cp);
    if (n == 0) {
      out += fmt::format("\\x{:02x}", static_cast<unsigned char>(s[i]));
      ++i;
    } else {
      if (cp == '\n') out += "\\n";
      else if (cp == '\t') out += "\\t";
      else if (cp == '\r') out += "\\r";
      else if (cp == '\\') out += "\\\\";
      else if (quote && cp == '"') out += "\\\"";
      else if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f)) out += fmt::format("\\u{:04x}", cp);
      else out.append(s.substr(i, n));
      i += n;
    }
    ++chars;
  }
  return out;
}

}  // namespace

std::string escape_display(std::string_view s, size_t max_chars) { return escape(s, max_chars, false); }

std::string quote_display(std::string_view s, size_t max_chars) {
  std::string out(1, '"');  // not "\"" + ...: g++ 12 warns falsely (-Wrestrict) on that form
  out += escape(s, max_chars, true);
  out += '"';
  return out;
}

}  // namespace pvsim
