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

// Everything held about a person, for an access request (GET /v1/profiles/{id}/export,
// docs/privacy.md#export): the profile as GET /v1/profiles renders it, its identity graph, and
// what those leave out (each trait's time and source, every kept session, interest scores with
// their times, segment expiries, windowed counter buckets, fired `once` rules, and how many
// message fingerprints dedup keeps).
void RenderExportJson(const Profile& profile, const ProfileUpdater& updater, TimeMs now,
                      std::string* out);

struct PersonalizeOptions {
  size_t top_interests = 5;
  size_t recent_products = 10;
  TimeMs now = 0;  // segments expired by then are left out
};
// `profile` may be null: an unknown visitor gets the empty default payload.
void RenderPersonalizeJson(const Profile* profile, const ProfileUpdater& updater,
                           const PersonalizeOptions& options, std::string* out);

}  // namespace ecrm
