// Small std::string_view helpers. (Debian's abseil is built with its own absl::string_view, not
// std::string_view, so absl's string functions do not accept ours without copies.) Pure, thread-safe.
#pragma once

#include <cctype>
#include <string_view>

namespace ecrm {

inline bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); i++) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

inline bool StartsWithIgnoreCase(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && EqualsIgnoreCase(s.substr(0, prefix.size()), prefix);
}

}  // namespace ecrm
