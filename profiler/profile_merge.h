// MergeProfiles: folds one profile (the merged-away one) into another (the survivor) when identity
// resolution finds they are the same person. Summaries combine, so the cost does not grow with
// history: stats add up, recent products and sessions interleave by time, interests decay to a
// common time and add, traits keep the value with the latest event time, identities unite.
// The result does not depend on which of the two is the survivor, apart from the id — unless the
// traits together pass the caps (ProfilerConfig::max_traits, max_trait_bytes): then the survivor's
// are kept first. Returns the number of trait values dropped by the caps. Pure, thread-safe.
#pragma once

#include "profiler/profile.h"
#include "profiler/profile_updater.h"

namespace ecrm {

size_t MergeProfiles(Profile& survivor, const Profile& absorbed, const ProfileUpdater& updater);

// Adds a history entry, keeping the newest Profile::kMaxHistory (ordered by time).
void AddHistory(Profile& profile, MergeRecord record);

}  // namespace ecrm
