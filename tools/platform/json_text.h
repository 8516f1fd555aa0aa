// tools/platform/json_text.h — JSON values and pointers in one-line messages (the scenario
// parser and the schedule parser share them; text.h has the escaping rules).
#pragma once
#include <string>
#include <string_view>

#include "tools/platform/text.h"

namespace pvsim {

// JSON Pointer token (RFC 6901 §3: "~" → "~0", "/" → "~1"), escaped for display so that a
// key holding a line break or an escape sequence cannot break the one-line message.
inline std::string pointer_token(std::string_view key) {
  std::string out;
  for (char c : key) {
    if (c == '~') out += "~0";
    else if (c == '/') out += "~1";
    else out += c;
  }
  return escape_display(out, 80);
}

// Short rendering of a JSON value (nlohmann json or ordered_json) for "got ...", compact
// as dump() writes it: at most about 60 characters, strings escaped (quote_display), and
// never deeper than the characters it may still print, so even a value nested without
// limit costs a bounded amount of stack and text.
template <class J>
void render_json(const J& v, std::string& out, size_t budget) {
  if (out.size() >= budget) return;
  if (v.is_object() || v.is_array()) {
    const bool obj = v.is_object();
    out += obj ? '{' : '[';
    bool first = true;
    for (auto it = v.begin(); it != v.end() && out.size() < budget; ++it) {
      if (!first) out += ',';
      first = false;
      if (obj) out += quote_display(it.key(), budget) + ":";
      render_json(it.value(), out, budget);
    }
    out += obj ? '}' : ']';
  } else if (v.is_string()) {
    out += quote_display(v.template get_ref<const std::string&>(), budget);
  } else if (v.is_binary()) {
    out += "(binary)";
  } else {
    out += v.dump();  // numbers, booleans, null: short and plain ASCII
  }
}

template <class J>
std::string show(const J& v) {
  constexpr size_t kShow = 60;
  std::string s;
  render_json(v, s, kShow);
  if (s.size() > kShow) s = s.substr(0, kShow - 3) + "...";
  return s;
}

}  // namespace pvsim
