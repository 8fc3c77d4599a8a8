// JSON bridge of the CEL engine for callers that already hold a simdjson DOM (bindings, dry-run
// API). Stateless; thread-safe.
#pragma once

#include <simdjson.h>

#include "rules/cel/value.h"

namespace ecrm::cel {

// Objects -> maps with string keys, arrays -> lists, integers -> int (uint beyond int64's range),
// other numbers -> double, strings -> owned strings, null -> null. The Value owns everything.
Value ValueFromJsonElement(simdjson::dom::element element);

}  // namespace ecrm::cel
