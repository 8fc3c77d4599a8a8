// Profile: everything ecrm knows about one visitor. A value type owned by the shard that owns the
// profile's partition (or by a reader holding a decoded copy); never shared between threads.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/clock.h"
#include "profiler/event.h"

namespace ecrm {

struct TraitValue {
  std::string json;       // minified JSON value
  TimeMs updated_at = 0;  // event time of the identify that set it (last write by event time wins)
  std::string source;     // the channel that set it ("" = web/app events, "rules", "crm", ...)
};

struct ProfileStats {
  int64_t events = 0;        // every accepted event of any type
  int64_t page_views = 0;    // page events
  int64_t screen_views = 0;  // screen events
  int64_t sessions = 0;
  int64_t orders = 0;  // Order Completed
  double revenue = 0;  // sum of Order Completed revenue (or total)
  TimeMs first_seen = 0;
  TimeMs last_seen = 0;
};

// One session: a run of events with no gap longer than the session timeout.
struct SessionInterval {
  TimeMs start = 0;
  TimeMs end = 0;
  int64_t events = 0;
  bool operator==(const SessionInterval&) const = default;
};

struct SessionState {
  std::string id;  // "<profile id>-<n>"
  TimeMs started_at = 0;
  TimeMs last_event_at = 0;
  int64_t events = 0;
};

struct Interest {
  double score = 0;  // decayed to updated_at
  TimeMs updated_at = 0;
};

struct RecentProduct {
  std::string product_id;
  std::string name;
  std::string category;
  double price = 0;
  bool has_price = false;
  TimeMs viewed_at = 0;
};

// A sliding count over event time (an `increment` rule action with a window): the window is cut
// into kBuckets buckets, so the count is exact to one bucket's width. Part of a Profile.
struct WindowedCounter {
  static constexpr int kBuckets = 24;
  int64_t window_ms = 0;
  std::vector<std::pair<TimeMs, double>> buckets;  // (bucket start, sum), oldest first

  // The sum of the buckets that overlap (now - window, now].
  double Sum(TimeMs now) const;
  // Adds `by` at event time `at` (late events land in their own bucket if still in the window)
  // and drops buckets that fell out of the window relative to `at`.
  void Add(TimeMs at, double by);
};

// One entry of a profile's merge history: a merge done or refused (merge protection).
struct MergeRecord {
  TimeMs at = 0;           // event time of the event that linked the two profiles
  bool merged = false;     // false: refused
  std::string other;       // the other profile's id (the absorbed one, or the one refused)
  std::string identifier;  // "type:value" that linked them
  std::string message_id;  // of the linking event, if it had one
  std::string reason;      // why a merge was refused
};

// What the person consented to (docs/privacy.md#consent), from the latest event (by event time)
// that stated it: 0 = never stated, 1 = granted, -1 = denied.
struct ConsentState {
  int8_t store = 0;        // behavioural data (stats, sessions, interests, rule state, ...)
  int8_t personalize = 0;  // GET /v1/personalize answers with this profile
  TimeMs store_at = 0;
  TimeMs personalize_at = 0;
  bool operator==(const ConsentState&) const = default;
};

struct Profile {
  std::string id;
  // type ("anonymous_id", "user_id", "email") -> values in the order they were attached.
  std::map<std::string, std::vector<std::string>> identities;
  std::map<std::string, TraitValue> traits;
  ProfileStats stats;
  SessionState session;  // the latest session (by time), derived from session_intervals
  // The most recent sessions (sorted by start, at most kMaxSessions) and how many older ones were
  // summarised away: sessions do not depend on the order events arrive in, as long as a late
  // event falls within the kept ones.
  std::vector<SessionInterval> session_intervals;
  int64_t sessions_dropped = 0;
  static constexpr size_t kMaxSessions = 50;
  std::map<std::string, Interest> interests;
  std::vector<RecentProduct> recent_products;  // newest first, at most kMaxRecentProducts
  Touch first_touch;
  Touch last_touch;
  DeviceInfo device;
  // Filled by rules (rules/): counters, segments (name -> expiry, 0 = none), scores, offers
  // (id -> priority), windowed counters, and which `once` rules fired (rule id -> session id).
  std::map<std::string, double> counters;
  std::map<std::string, TimeMs> segments;
  std::map<std::string, double> scores;
  std::map<std::string, int64_t> offers;
  std::map<std::string, WindowedCounter> windowed_counters;
  std::map<std::string, std::string> rules_fired;
  // Identity resolution: ids of profiles merged into this one (kept as aliases) and the history.
  std::vector<std::string> merged_ids;
  std::vector<MergeRecord> history;  // oldest first, at most kMaxHistory
  static constexpr size_t kMaxHistory = 50;
  ConsentState consent;
  // Behavioural data may be kept (no withdrawal of the store consent).
  bool StoresBehaviour() const { return consent.store >= 0; }
  // Drops the behavioural data (a withdrawal of consent): what is left is the id, identifiers,
  // traits, merge history, consent, last_seen (for retention) and the dedup fingerprints.
  void DropBehaviour();
  // Dedup (docs/identity.md#dedup): the message hashes (Event::message_hash) of this person's
  // recent events with their received-at time, oldest first: at most kMaxRecentMessages, none older
  // than the dedup window. Kept in the profile, so a retry is found wherever the profile moved and
  // a merge unites both sets.
  struct SeenMessage {
    uint64_t hash = 0;
    TimeMs received_at = 0;
    bool operator==(const SeenMessage&) const = default;
  };
  std::vector<SeenMessage> recent_messages;
  static constexpr size_t kMaxRecentMessages = 256;
  bool SawMessage(uint64_t hash) const;
  // Records a message; drops entries older than `window_ms` before `received_at`, then the oldest
  // beyond kMaxRecentMessages.
  void RememberMessage(uint64_t hash, TimeMs received_at, TimeMs window_ms);

  // Segment membership at `now` (expired segments are kept until the next write drops them).
  bool InSegment(const std::string& name, TimeMs now) const;

  bool HasIdentity(const std::string& type, const std::string& value) const;
  // Adds the identity if absent; returns true if it was added.
  bool AddIdentity(const std::string& type, const std::string& value);
  // Removes the identity if present; returns true if it was removed.
  bool RemoveIdentity(const std::string& type, const std::string& value);
  // About how much memory this profile holds decoded: the struct, every heap-allocated string,
  // map node and vector buffer (with the allocator's per-block overhead). Used to bound the
  // shard's profile cache by bytes; measured against jemalloc in tests/profiler.
  size_t MemoryBytes() const;
};

}  // namespace ecrm
