// Lexer of the CEL engine: turns source text into tokens (decoding string and bytes literals).
// One Lexer per compilation; not thread-safe, owns nothing beyond its tokens.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ecrm::cel::internal {

enum class Tok : uint8_t {
  kEnd,
  kIdent,
  kQuotedIdent,
  kInt,
  kUint,
  kDouble,
  kString,
  kBytes,
  kTrue,
  kFalse,
  kNull,
  kIn,
  kLParen,
  kRParen,
  kLBracket,
  kRBracket,
  kLBrace,
  kRBrace,
  kDot,
  kComma,
  kColon,
  kQuestion,
  kPlus,
  kMinus,
  kStar,
  kSlash,
  kPercent,
  kNot,
  kEq,
  kNe,
  kLt,
  kLe,
  kGt,
  kGe,
  kAnd,
  kOr,
  kError,
};

struct Token {
  Tok kind = Tok::kEnd;
  int32_t pos = 0;   // byte offset
  std::string text;  // identifier, decoded string/bytes, or error message for kError
  uint64_t u = 0;    // kInt (magnitude, may be 2^63 for a negated literal) / kUint;
                     // kIdent: 1 for a reserved word (only valid after '.')
  double d = 0;      // kDouble
};

// Tokenizes everything; stops at the first error (last token kError) or at kEnd.
std::vector<Token> Lex(std::string_view source);

std::string_view TokName(Tok t);

}  // namespace ecrm::cel::internal
