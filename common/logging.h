// Logging set-up: spdlog to stderr with a fixed pattern. Call InitLogging once at start-up; the
// spdlog macros are thread-safe afterwards. Never log PII (identifiers, traits, IPs): log counts
// and ids of our own (profile ids are opaque).
#pragma once

#include <string_view>

#include "spdlog/spdlog.h"

namespace ecrm {

// `level` is one of trace, debug, info, warn, error, off; `format` is text (a fixed pattern) or
// json (one object per line: time, level, thread, logger, message). False for an unknown one.
bool InitLogging(std::string_view level, std::string_view format = "text");

}  // namespace ecrm
