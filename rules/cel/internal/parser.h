// Parser of the CEL engine: recursive descent over the lexer's tokens into a flat node vector, with
// CEL's macros (has, all, exists, exists_one, map, filter) expanded into comprehension nodes.
// Nesting is bounded (kMaxNesting for parentheses and literals, kMaxTreeDepth for the node tree) so
// hostile input fails cleanly instead of overflowing the stack. One Parser per compilation.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "rules/cel/internal/ast.h"

namespace ecrm::cel::internal {

inline constexpr int kMaxNesting = 100;
inline constexpr int kMaxTreeDepth = 500;

struct ParseError {
  int32_t pos;
  std::string message;
};

struct ParseResult {
  std::vector<Node> nodes;
  int32_t root = -1;
  std::vector<ParseError> errors;  // empty on success
};

ParseResult Parse(std::string_view source);

}  // namespace ecrm::cel::internal
