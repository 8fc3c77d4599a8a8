// RuleRegistry: the versions of the rule set and which one is active. A push validates and
// compiles the whole set, stores it as a new version in RocksDB (meta CF) and swaps it in
// atomically (in cluster mode through a shared log, so every instance gets the same version);
// shards read Current() once per batch, so every event is evaluated by exactly one version. The
// active set survives restarts. Owned by the app. Threading: Current() is lock-free for readers (an
// atomic shared_ptr); Push/Rollback serialise on a mutex (admin path only).
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/status.h"
#include "rules/rule_set.h"
#include "store/kv_store.h"

namespace ecrm {

// Cluster mode: where pushes go so that every instance activates the same versions in the same
// order (ingest/kafka_rules.h, a compacted topic). Publish returns the version once this
// instance has activated it.
class RuleLog {
 public:
  virtual ~RuleLog() = default;
  [[nodiscard]] virtual StatusOr<uint64_t> Publish(std::string_view rules_document) = 0;
};

class RuleRegistry {
 public:
  // Loads and compiles the active set (if any). Fails if a stored set no longer compiles. Every
  // set compiled here (pushed, validated, rolled back, shared) is evaluated within `budget`.
  static StatusOr<std::unique_ptr<RuleRegistry>> Open(KvStore& store,
                                                      const RuleBudget& budget = {});

  std::shared_ptr<const RuleSet> Current() const { return current_.load(); }
  // True while the active set reads event.properties; the collector keeps them only then.
  const std::atomic<bool>* keep_event_properties() const { return &keep_event_properties_; }

  // Compiles `json` without storing it (version 0). InvalidArgument with `errors` when invalid.
  StatusOr<std::shared_ptr<const RuleSet>> Validate(std::string_view json,
                                                    std::vector<RuleError>* errors);
  // Validates, stores as the next version and activates it; returns the new version. With a log
  // (SetLog), the valid set goes to the log instead, and the version is the log's.
  StatusOr<uint64_t> Push(std::string_view json, std::vector<RuleError>* errors);
  // Re-activates stored version `version` as a new version. NotFound for an unknown version.
  StatusOr<uint64_t> Rollback(uint64_t version);

  // Cluster mode: pushes and rollbacks go through `log` from now on. Call before serving.
  void SetLog(RuleLog* log) { log_ = log; }
  // Cluster mode: the log's set `version` (its numbering, shared by every instance), stored and
  // activated here; nothing if it is already the active version. A set that does not compile
  // (it did where it was pushed) is logged and skipped.
  Status ApplyShared(uint64_t version, std::string_view rules_document);

  // Stats of the rule ids of the active set (those of earlier sets are dropped on activation), and
  // of a set being activated.
  std::vector<std::pair<std::string, std::shared_ptr<RuleStats>>> AllStats() const;
  uint64_t latest_version() const;

 private:
  RuleRegistry(KvStore& store, const RuleBudget& budget) : store_(store), budget_(budget) {}
  static std::shared_ptr<RuleStats> StatsFor(void* self, const std::string& rule_id);
  // Compiles (filling `errors` if invalid), stores and publishes the next version.
  StatusOr<uint64_t> Activate(std::string_view rules_document, std::vector<RuleError>* errors);

  KvStore& store_;
  const RuleBudget budget_;
  RuleLog* log_ = nullptr;
  std::atomic<std::shared_ptr<const RuleSet>> current_;
  std::atomic<bool> keep_event_properties_{false};
  // Activates `set` and forgets the stats of rule ids it no longer has. mu_ held (or in Open).
  void Publish(std::shared_ptr<const RuleSet> set);
  mutable std::mutex mu_;  // guards pushes, latest_ and stats_
  uint64_t latest_ = 0;
  std::map<std::string, std::shared_ptr<RuleStats>> stats_;
};

}  // namespace ecrm
