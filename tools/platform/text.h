// tools/platform/text.h — making untrusted text safe to print on one line.
//
// Every error pvsim prints is one line on a terminal (README "Using it"). Text that comes
// from the user — file names, JSON keys, register or feature names, guest console bytes —
// may contain line breaks, NULs, ANSI escape sequences (ESC [ ...) or bytes that are not
// UTF-8. Printed raw, they split the message or reprogram the terminal. These helpers
// escape them, JSON-style, and bound the length.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

namespace pvsim {

// `s` with every control character escaped: C0 controls (< 0x20), DEL and the C1 controls
// U+0080..U+009F (which some terminals obey as 8-bit CSI etc.) become \n, \t, \r or \u00XX;
// bytes that are not part of valid UTF-8 become \xNN; a backslash becomes "\\" so the
// escaping is unambiguous. When the result would exceed `max_chars` characters, it is cut
// there and "..." appended. Printable UTF-8 (including non-ASCII letters) passes unchanged.
std::string escape_display(std::string_view s, size_t max_chars = 200);

// escape_display() inside double quotes, with '"' escaped too: "a\"b\n".
std::string quote_display(std::string_view s, size_t max_chars = 200);

}  // namespace pvsim
