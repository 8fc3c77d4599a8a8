// ProfileRuleTarget: binds one event and the profile it applies to as the `event`, `profile` and
// `now` of rule expressions, and applies rule actions to the profile. Created per event by the
// shard that owns the profile (or by a dry run on a copy); lives for one ApplyRules call; used by
// one thread. Field values are read straight from the Event and Profile structs; JSON (event
// properties and traits, profile traits) is parsed lazily, once per event, only when a rule reads
// it. Strings are borrowed from the event, the profile or the parsed JSON, so nothing is copied.
#pragma once

#include <simdjson.h>

#include <memory>
#include <optional>
#include <string>

#include "profiler/event.h"
#include "profiler/profile.h"
#include "profiler/profile_updater.h"
#include "rules/rule_eval.h"

namespace ecrm {

// Reusable parsing buffers for ProfileRuleTarget; one per thread (shard), reused across events.
struct RuleJsonScratch {
  simdjson::dom::parser properties;
  simdjson::dom::parser event_traits;
  simdjson::dom::parser profile_traits;
  std::string buffer;
};

class ProfileRuleTarget final : public RuleTarget {
 public:
  // `now` is the event time: sliding windows end there and segment ttls start there.
  ProfileRuleTarget(const Event& event, Profile& profile, const ProfileUpdater& updater,
                    RuleJsonScratch& scratch);

  cel::Value Resolve(int var, std::span<const std::string> path) const override;
  cel::Value Has(int var, std::span<const std::string> path) const override;
  cel::Value Now() const override;  // now(): the event's time, as the variable `now`

  bool AlreadyFired(const std::string& rule_id, OnceScope scope) const override;
  void MarkFired(const std::string& rule_id) override;
  void AddSegment(const std::string& name, int64_t ttl_ms) override;
  void RemoveSegment(const std::string& name) override;
  void Increment(const std::string& counter, double by, int64_t window_ms) override;
  void SetTrait(const std::string& name, const cel::Value& value) override;
  void SetScore(const std::string& name, double value) override;
  void AddOffer(const std::string& id, int64_t priority) override;

 private:
  enum class Found { kYes, kMissingLast, kError };
  Found Lookup(int var, std::span<const std::string> path, cel::Value* out) const;
  Found LookupEvent(std::span<const std::string> path, cel::Value* out) const;
  Found LookupProfile(std::span<const std::string> path, cel::Value* out) const;
  // The JSON object `json` parsed with `parser` (cached in `*slot`); null if empty or invalid.
  const simdjson::dom::element* Parsed(simdjson::dom::parser& parser, std::string_view json,
                                       std::optional<simdjson::dom::element>* slot,
                                       bool* parsed) const;

  const Event& event_;
  Profile& profile_;
  const ProfileUpdater& updater_;
  RuleJsonScratch& scratch_;
  TimeMs now_;
  mutable std::optional<simdjson::dom::element> properties_, event_traits_, profile_traits_;
  mutable bool properties_parsed_ = false, event_traits_parsed_ = false,
               profile_traits_parsed_ = false;
  mutable std::string event_traits_json_, profile_traits_json_;
  // The last lookup (`has(x) && x > 3` reads x twice); forgotten whenever an action changes the
  // profile. Paths are identified by address: a Program passes the same span for the same path.
  mutable int memo_var_ = -1;
  mutable const std::string* memo_path_ = nullptr;
  mutable size_t memo_size_ = 0;
  mutable Found memo_found_ = Found::kError;
  mutable cel::Value memo_value_;
  void Forget() { memo_path_ = nullptr; }
};

// JSON rendering of a CEL value (timestamps as RFC 3339 strings, durations as "1.5s").
std::string CelValueToJson(const cel::Value& value);

}  // namespace ecrm
