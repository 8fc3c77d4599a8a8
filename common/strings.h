// Small std::string_view helpers. (Debian's abseil is built with its own absl::string_view, not
// std::string_view, so absl's string functions do not accept ours without copies.) Pure,
// thread-safe.
#pragma once

#include <cctype>
#include <optional>
#include <string>
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

// An email identifier as ecrm stores it: surrounding whitespace trimmed, ASCII lower-cased.
inline std::string NormalizeEmail(std::string_view email) {
  while (!email.empty() && std::isspace(static_cast<unsigned char>(email.front()))) {
    email.remove_prefix(1);
  }
  while (!email.empty() && std::isspace(static_cast<unsigned char>(email.back()))) {
    email.remove_suffix(1);
  }
  std::string out(email);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// A phone number in E.164 ("+4915112345678"): spaces, dashes, dots and parentheses are dropped,
// a leading "00" becomes "+"; nullopt unless the result is "+" and 7 to 15 digits.
inline std::optional<std::string> NormalizePhone(std::string_view phone) {
  std::string out;
  for (char c : phone) {
    if (c == ' ' || c == '-' || c == '.' || c == '(' || c == ')' || c == '\t') continue;
    out.push_back(c);
  }
  if (out.starts_with("00")) out = "+" + out.substr(2);
  if (out.size() < 8 || out.size() > 16 || out[0] != '+' || out[1] == '0') return std::nullopt;
  for (size_t i = 1; i < out.size(); i++) {
    if (!std::isdigit(static_cast<unsigned char>(out[i]))) return std::nullopt;
  }
  return out;
}

}  // namespace ecrm
