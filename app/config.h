// Config: every setting of `ecrm serve`, parsed once at start-up from flags, ECRM_* environment
// variables and a YAML config file (in that order of precedence), validated, and passed by const&.
// Bad config is fatal at start with a message naming the key. Immutable after parsing.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace ecrm {

struct Config {
  std::string config_file;              // --config / ECRM_CONFIG: YAML file (optional)
  std::string http_host = "127.0.0.1";  // from --http-addr HOST:PORT (default 127.0.0.1:8080)
  uint16_t http_port = 8080;
  std::string data_dir = "./data";      // --data-dir: RocksDB and generated credentials
  std::vector<std::string> write_keys;  // --write-key (repeatable): server keys; generated
  std::vector<std::string> read_keys;   // --read-key (repeatable): personalization
  std::string admin_token;              // --admin-token; generated if none
  int workers = 0;                      // --workers: shard threads (0 = one per core)
  int http_threads = 0;                 // --http-threads: io threads (0 = one per core)
  uint32_t partitions = 64;             // --partitions: virtual partitions (fixed per data dir)
  std::string log_level = "info";       // --log-level: trace|debug|info|warn|error|off
  bool sync_writes = false;             // --sync-writes: fsync each group commit
  size_t cache_profiles = 100000;       // --cache-profiles: hot profiles per worker
  size_t cache_mb = 1024;               // --cache-mb: their memory per worker, MiB
  size_t max_traits = 1000;             // --max-traits: trait keys per profile
  size_t max_trait_bytes = 64 * 1024;   // --max-trait-bytes: trait keys + values per profile
  size_t block_cache_mb = 256;          // --block-cache-mb: RocksDB block cache
  // --retention-days: profiles not seen for that long are erased (0 = kept; docs/privacy.md).
  int retention_days = 0;
  int retention_sweep_seconds = 3600;     // --retention-sweep-seconds: between two retention sweeps
  size_t max_request_bytes = 500 * 1024;  // --max-request-bytes
  size_t max_event_bytes = 32 * 1024;     // --max-event-bytes
  size_t max_batch_events = 2500;         // --max-batch-events
  size_t max_queue_depth = 200000;        // --max-queue-depth: per worker, then 429
  // --max-connections: open HTTP connections; beyond, 503 too_many_connections. At start-up it is
  // lowered to what the open-file limit leaves after a reserve for RocksDB and Kafka.
  size_t max_connections = 10000;
  std::string kafka_brokers;         // --kafka-brokers: HOST:PORT[,...]; empty = embedded mode
  std::string kafka_group = "ecrm";  // --kafka-group: consumer group
  // --instance-id: this instance's static group membership (group.instance.id); "" = the host name.
  std::string instance_id;
  // --advertised-http-addr: HOST:PORT where other instances and tools reach this one's HTTP API;
  // "" = derived from --http-addr (the host name for a wildcard host), none if its port is 0.
  std::string advertised_http_addr;
  std::string kafka_topic = "ecrm.events";          // --kafka-topic: events topic
  std::string kafka_dlq_topic = "ecrm.events.dlq";  // --kafka-dlq-topic: dead letters
  int kafka_replication_factor =
      -1;  // --kafka-replication-factor of topics ecrm creates; -1 = broker's
  std::string kafka_profiles_topic = "ecrm.profiles";  // --kafka-profiles-topic ("" = off)
  std::string role = "all";             // --role: all | collector | processor (Kafka mode)
  size_t kafka_max_in_flight = 200000;  // --kafka-max-in-flight: consumed, not durable; then pause
  // --kafka-prefetch-messages: librdkafka's prefetch queue (about 1 KiB of memory per message).
  size_t kafka_prefetch_messages = 100000;
  // --kafka-changelog: state changes also go to the compacted "<group>-changelog" topic, in
  // transactions committed every --kafka-commit-interval-ms (docs/cluster.md).
  bool kafka_changelog = true;
  int kafka_commit_interval_ms = 100;
  // --standby-replicas: warm copies of each partition kept on that many other instances, by
  // tailing the changelog (docs/cluster.md#standby-replicas).
  int standby_replicas = 0;
  // --state-cleanup-delay-ms: a local copy neither owned nor standby here is dropped after this
  // long (-1: kept for ever).
  int64_t state_cleanup_delay_ms = 600000;
  // Identifier values treated as absent besides empty, "null" and "undefined" (always blocked),
  // compared trimmed and case-blind.
  std::vector<std::string> blocked_identifiers;
  // --cors-origin (repeatable): origins allowed to call from a browser; empty = any but null on
  // the browser routes only (docs/api.md#cors).
  std::vector<std::string> cors_origins;
  // --public-url: the collector's URL as browsers reach it, for the settings route.
  std::string public_url;
  int max_user_ids = 1;
  // --identifier-limit TYPE=N: merge protection for other types (e.g. crm_id=1).
  std::vector<std::string> identifier_limits;
  // --max-identifiers-per-type: values of one type without a limit a profile may list.
  size_t max_identifiers_per_type = 100;
  // --consent PURPOSE=CATEGORY (repeatable): which categories of Segment's
  // context.consent.categoryPreferences allow `store` (behavioural data) and `personalize`.
  std::vector<std::string> consent;
  std::string merge_survivor = "oldest";  // --merge-survivor: oldest | newest
  std::vector<std::string> identifier_types = {
      "phone", "crm_id"};  // besides the built-in three         // merge protection: distinct user
                           // ids one profile may hold
  int64_t rate_limit = 200000;  // --rate-limit: events/s per write key (0 = off), then 429
  // --rule-budget-per-event: cost units (cel::EvalBudget, ~20 ns each at most) all the rules of
  // one event may spend together; a rule beyond it is stopped (docs/rules.md#limits).
  uint64_t rule_budget_per_event = 200000;
  // --browser-write-key (repeatable): keys for web pages and apps, whose identity claims are not
  // trusted (docs/identity.md#write-keys-and-identity-verification); generated with a server key
  // when no key of either kind is configured. Disjoint from write_keys.
  std::vector<std::string> browser_write_keys;
  std::string identity_secret_file;  // --identity-secret-file: holds the identity secret
  // The HMAC key that verifies a browser event's context.ecrm.user_hash: the content of
  // identity_secret_file (trailing line breaks stripped) or ECRM_IDENTITY_SECRET; "" if neither.
  // A secret: never logged or printed.
  std::string identity_secret;
  // Secrets as files, as Kubernetes mounts them: one key per line (blank lines and lines starting
  // with '#' ignored), added to the lists above; the admin token file holds one token.
  std::string write_keys_file;          // --write-keys-file: server write keys
  std::string browser_write_keys_file;  // --browser-write-keys-file
  std::string read_keys_file;           // --read-keys-file
  // --admin-token-file (not with --admin-token): the first token is admin_token, any further ones
  // (a rotation in progress) are accepted too.
  std::string admin_token_file;
  std::vector<std::string> more_admin_tokens;
  // librdkafka properties for every Kafka client (TLS, SASL, tuning), applied after ecrm's own:
  // from kafka_properties / kafka_property_files in the YAML file, ECRM_KAFKA_PROPERTY_<KEY> and
  // ECRM_KAFKA_PROPERTY_FILE_<KEY> (KEY upper-case with '_' for '.'), then --kafka-property
  // KEY=VALUE and --kafka-property-file KEY=PATH (whose file's content is the value); for one key
  // the later source wins. Values may be secrets: never logged or printed.
  std::vector<std::pair<std::string, std::string>> kafka_properties;
  std::string log_format = "text";  // --log-format: text | json (one object per line)
};

// Parses argv (after the `serve` word) plus environment plus the config file. On --help, prints
// usage and returns a Cancelled status. Any error names the offending flag or key.
StatusOr<Config> ParseServeConfig(int argc, const char* const* argv);

}  // namespace ecrm
