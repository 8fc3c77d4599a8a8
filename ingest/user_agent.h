// A small user-agent classifier: browser family, OS family and device type, for profile.device.
// Deliberately coarse (no version numbers): enough for personalization rules. Thread-safe: each
// thread keeps its own small cache of recent classifications.
#pragma once

#include <string_view>

#include "profiler/event.h"

namespace ecrm {

// Fills the empty fields of `device` from `user_agent`.
void ClassifyUserAgent(std::string_view user_agent, DeviceInfo& device);

}  // namespace ecrm
