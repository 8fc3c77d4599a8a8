// The CEL program representation: one flat vector of nodes built by the parser, then resolved in
// place by the checker (identifiers -> variables/slots/constant paths, calls -> builtins, constant
// folding, precomputed literal sets and regexes) and finally walked by the evaluator. Owned by a
// ProgramData (shared, immutable after Compile); no node is mutated during evaluation.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "rules/cel/value.h"

namespace re2 {
class RE2;
}

namespace ecrm::cel::internal {

enum class Op : uint8_t {
  kConst,    // value
  kIdent,    // name (parse only; resolved by the checker)
  kVar,      // var: Env index, path: constant selections collapsed into one Resolve call
  kSlot,     // var: comprehension slot
  kNow,      // the activation's evaluation time
  kSelect,   // kids[0].name
  kHas,      // has(kids[0].name), or var+path when collapsed
  kIndex,    // kids[0][kids[1]]
  kCall,     // fn(kids...), receiver first when receiver-style
  kAnd,      // kids[0] && kids[1]
  kOr,       // kids[0] || kids[1]
  kNot,      // !kids[0]
  kNeg,      // -kids[0]
  kCond,     // kids[0] ? kids[1] : kids[2]
  kList,     // [kids...]
  kMap,      // {kids[0]: kids[1], ...}
  kComp,     // comprehension: kids = {range, body[, filter]}
  kInConst,  // kids[0] in <constant list or map> (value), with a precomputed string set
};

enum class CompKind : uint8_t { kAll, kExists, kExistsOne, kMap, kMapFilter, kFilter };

// Builtin functions, resolved at compile time from name, style and arity.
enum class Fn : uint8_t {
  kNone,
  kAdd,
  kSub,
  kMul,
  kDiv,
  kMod,
  kEq,
  kNe,
  kLt,
  kLe,
  kGt,
  kGe,
  kIn,
  kSize,
  kStartsWith,
  kEndsWith,
  kContains,
  kMatches,
  kInt,
  kUint,
  kDouble,
  kString,
  kBool,
  kBytes,
  kType,
  kDyn,
  kTimestamp,
  kDuration,
  kGetFullYear,
  kGetMonth,
  kGetDate,
  kGetDayOfMonth,
  kGetDayOfWeek,
  kGetDayOfYear,
  kGetHours,
  kGetMinutes,
  kGetSeconds,
  kGetMilliseconds,
  kExp,
  kLog,
  kSigmoid,
  kMin,
  kMax,
  kNow,
};

struct Node {
  Op op = Op::kConst;
  Fn fn = Fn::kNone;
  CompKind comp = CompKind::kAll;
  bool receiver = false;  // call written as target.fn(...)
  int32_t pos = 0;        // byte offset in the source, for errors
  int32_t var = -1;       // Env index (kVar/kHas), slot (kSlot), iteration slot (kComp)
  int32_t slot2 = -1;     // kComp: accumulator / second variable slot
  std::string name;       // identifier, field or function name; comprehension variable
  std::vector<int32_t> kids;
  std::vector<std::string> path;  // kVar/kHas: collapsed constant selection path
  Value value;                    // kConst / kInConst: owned constant
  Value view;                     // value.Borrow(): what evaluation hands out (no refcounting)
  std::shared_ptr<const re2::RE2> regex;                    // matches() with a constant pattern
  std::shared_ptr<const std::vector<std::string>> strings;  // kInConst: sorted string members
};

}  // namespace ecrm::cel::internal
