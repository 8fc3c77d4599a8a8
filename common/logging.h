// Logging set-up: spdlog to stderr with a fixed pattern. Call InitLogging once at start-up; the
// spdlog macros are thread-safe afterwards. Never log PII (identifiers, traits, IPs): log counts
// and ids of our own (profile ids are opaque).
#pragma once

#include <string_view>

#include "spdlog/spdlog.h"

namespace ecrm {

// `level` is one of trace, debug, info, warn, error, off. Returns false for an unknown level.
bool InitLogging(std::string_view level);

}  // namespace ecrm
