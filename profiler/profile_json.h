// Renders a profile as the JSON documents the API returns: the whole profile (GET /v1/profiles) and
// the compact personalization payload (GET /v1/personalize). Pure functions, thread-safe.
#pragma once

#include <string>

#include "profiler/profile.h"
#include "profiler/profile_updater.h"

namespace ecrm {

// `now` decides which segments have expired and where sliding-window counters end.
void RenderProfileJson(const Profile& profile, const ProfileUpdater& updater, TimeMs now,
                       std::string* out);

// The identity graph around a profile: its identifiers, the ids merged into it (aliases) and the
// merge history (GET /v1/profiles/{id}/identities).
void RenderIdentitiesJson(const Profile& profile, std::string* out);

struct PersonalizeOptions {
  size_t top_interests = 5;
  size_t recent_products = 10;
  TimeMs now = 0;  // segments expired by then are left out
};
// `profile` may be null: an unknown visitor gets the empty default payload.
void RenderPersonalizeJson(const Profile* profile, const ProfileUpdater& updater,
                           const PersonalizeOptions& options, std::string* out);

}  // namespace ecrm
