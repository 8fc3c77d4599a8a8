// Status values for the event path: ecrm uses absl::Status / absl::StatusOr everywhere an operation
// can fail with an expected error (bad input, I/O). Exceptions are reserved for start-up; broken
// invariants use ECRM_CHECK, which aborts loudly.
#pragma once

#include <cstdio>
#include <cstdlib>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace ecrm {

using Status = absl::Status;
template <typename T>
using StatusOr = absl::StatusOr<T>;

}  // namespace ecrm

#define ECRM_STATUS_CONCAT_INNER(a, b) a##b
#define ECRM_STATUS_CONCAT(a, b) ECRM_STATUS_CONCAT_INNER(a, b)

// Returns from the enclosing function if `expr` yields a non-OK status.
#define RETURN_IF_ERROR(expr)                    \
  do {                                           \
    ::absl::Status ecrm_status_ = (expr);        \
    if (!ecrm_status_.ok()) return ecrm_status_; \
  } while (0)

// ASSIGN_OR_RETURN(lhs, expr): evaluates a StatusOr, returns its status on error, else assigns.
#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL(ECRM_STATUS_CONCAT(ecrm_statusor_, __LINE__), lhs, expr)
#define ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                          \
  if (!tmp.ok()) return tmp.status();         \
  lhs = std::move(tmp).value()

// A broken invariant: print and abort. Never used for input errors.
#define ECRM_CHECK(cond)                                                                  \
  do {                                                                                    \
    if (!(cond)) {                                                                        \
      std::fprintf(stderr, "%s:%d: invariant violated: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                       \
    }                                                                                     \
  } while (0)
