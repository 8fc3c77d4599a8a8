#include "rules/rule_registry.h"

#include <cinttypes>
#include <cstdio>
#include <set>
#include <string_view>

namespace ecrm {
namespace {

// meta CF: "rules|v|<20-digit version>" -> the rules array (JSON); "rules|active" -> version.
constexpr std::string_view kVersionPrefix = "rules|v|";
constexpr std::string_view kActiveKey = "rules|active";

std::string VersionKey(uint64_t version) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%020" PRIu64, version);
  return std::string(kVersionPrefix) + buf;
}

std::string Document(const std::string& rules_json) { return "{\"rules\":" + rules_json + "}"; }

}  // namespace

StatusOr<std::unique_ptr<RuleRegistry>> RuleRegistry::Open(KvStore& store,
                                                           const RuleBudget& budget) {
  auto registry = std::unique_ptr<RuleRegistry>(new RuleRegistry(store, budget));
  registry->current_.store(RuleSet::Empty());
  RETURN_IF_ERROR(
      store.Scan(Cf::kMeta, kVersionPrefix, [&](std::string_view key, std::string_view) {
        registry->latest_ = std::max<uint64_t>(
            registry->latest_,
            std::strtoull(std::string(key.substr(kVersionPrefix.size())).c_str(), nullptr, 10));
        return true;
      }));
  ASSIGN_OR_RETURN(auto active, store.Get(Cf::kMeta, kActiveKey));
  if (!active) return registry;
  const uint64_t version = std::strtoull(active->c_str(), nullptr, 10);
  ASSIGN_OR_RETURN(auto rules_json, store.Get(Cf::kMeta, VersionKey(version)));
  if (!rules_json) {
    return absl::DataLossError("active rule set version " + *active + " is missing");
  }
  std::vector<RuleError> errors;
  auto set =
      RuleSet::Compile(Document(*rules_json), version, &errors, &StatsFor, registry.get(), budget);
  if (!set.ok()) {
    return absl::DataLossError("stored rule set v" + *active +
                               " no longer compiles: " + (errors.empty() ? "" : errors[0].message));
  }
  registry->Publish(*std::move(set));
  return registry;
}

void RuleRegistry::Publish(std::shared_ptr<const RuleSet> set) {
  // Properties are kept from before the set is visible, so no event evaluated by it lacks them
  // (events parsed just before may still lack them: those read as absent fields).
  if (set->reads_event_properties()) keep_event_properties_.store(true);
  const bool keep = set->reads_event_properties();
  // Stats (and so metric series) only for the ids of the active set: pushes of ever new ids must
  // not pile up series. A shard still evaluating the previous set keeps its stats alive.
  std::set<std::string_view> active;
  for (const Rule& rule : set->rules()) active.insert(rule.id);
  std::erase_if(stats_, [&](const auto& entry) { return !active.contains(entry.first); });
  current_.store(std::move(set));
  keep_event_properties_.store(keep);
}

std::shared_ptr<RuleStats> RuleRegistry::StatsFor(void* self, const std::string& rule_id) {
  auto* r = static_cast<RuleRegistry*>(self);  // called with mu_ held or before publication
  auto& stats = r->stats_[rule_id];
  if (!stats) stats = std::make_shared<RuleStats>();
  return stats;
}

StatusOr<std::shared_ptr<const RuleSet>> RuleRegistry::Validate(std::string_view json,
                                                                std::vector<RuleError>* errors) {
  return RuleSet::Compile(json, 0, errors, nullptr, nullptr, budget_);
}

StatusOr<uint64_t> RuleRegistry::Activate(std::string_view rules_document,
                                          std::vector<RuleError>* errors) {
  // mu_ is held by the caller.
  const uint64_t version = latest_ + 1;
  ASSIGN_OR_RETURN(auto set,
                   RuleSet::Compile(rules_document, version, errors, &StatsFor, this, budget_));
  WriteBatch batch = store_.NewBatch();
  batch.Put(Cf::kMeta, VersionKey(version), set->rules_json());
  batch.Put(Cf::kMeta, kActiveKey, std::to_string(version));
  RETURN_IF_ERROR(store_.Write(batch));
  latest_ = version;
  Publish(std::move(set));
  return version;
}

StatusOr<uint64_t> RuleRegistry::Push(std::string_view json, std::vector<RuleError>* errors) {
  if (log_) {
    // Invalid sets are refused here; valid ones get their version from the log (not under mu_:
    // the log's reader activates it through ApplyShared).
    RETURN_IF_ERROR(RuleSet::Compile(json, 0, errors).status());
    return log_->Publish(json);
  }
  std::lock_guard lock(mu_);
  return Activate(json, errors);
}

Status RuleRegistry::ApplyShared(uint64_t version, std::string_view rules_document) {
  std::lock_guard lock(mu_);
  if (current_.load()->version() == version) return absl::OkStatus();
  std::vector<RuleError> errors;
  auto set = RuleSet::Compile(rules_document, version, &errors, &StatsFor, this, budget_);
  if (!set.ok()) {
    return absl::InvalidArgumentError(
        "shared rule set v" + std::to_string(version) +
        " does not compile here: " + (errors.empty() ? "" : errors[0].message));
  }
  WriteBatch batch = store_.NewBatch();
  batch.Put(Cf::kMeta, VersionKey(version), (*set)->rules_json());
  batch.Put(Cf::kMeta, kActiveKey, std::to_string(version));
  RETURN_IF_ERROR(store_.Write(batch));
  latest_ = std::max(latest_, version);
  Publish(*std::move(set));
  return absl::OkStatus();
}

StatusOr<uint64_t> RuleRegistry::Rollback(uint64_t version) {
  std::string document;
  {
    std::lock_guard lock(mu_);
    if (version == 0 || version > latest_) {
      return absl::NotFoundError("no rule set version " + std::to_string(version));
    }
    ASSIGN_OR_RETURN(auto rules_json, store_.Get(Cf::kMeta, VersionKey(version)));
    if (!rules_json) return absl::NotFoundError("no rule set version " + std::to_string(version));
    if (!log_) return Activate(Document(*rules_json), nullptr);
    document = Document(*rules_json);
  }
  return log_->Publish(document);  // activated here by the log's reader (ApplyShared)
}

std::vector<std::pair<std::string, std::shared_ptr<RuleStats>>> RuleRegistry::AllStats() const {
  std::lock_guard lock(mu_);
  return {stats_.begin(), stats_.end()};
}

uint64_t RuleRegistry::latest_version() const {
  std::lock_guard lock(mu_);
  return latest_;
}

}  // namespace ecrm
