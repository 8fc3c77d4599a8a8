#include "app/config.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <iostream>
#include <thread>

#include "CLI/CLI.hpp"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "ingest/kafka_client.h"
#include "yaml-cpp/yaml.h"

extern char** environ;

namespace ecrm {
namespace {

// The machine's host name (the pod name in Kubernetes), or "" if it cannot be read.
std::string HostName() {
  char host[256] = {};
  return gethostname(host, sizeof(host) - 1) == 0 ? std::string(host) : std::string();
}

Status ParseHostPort(const std::string& text, Config& c) {
  const auto colon = text.rfind(':');
  uint32_t port = 0;
  if (colon == std::string::npos || colon == 0 ||
      !absl::SimpleAtoi(text.substr(colon + 1), &port) || port > 65535) {
    return absl::InvalidArgumentError("http-addr: expected HOST:PORT, got '" + text + "'");
  }
  c.http_host = text.substr(0, colon);
  if (c.http_host.size() > 2 && c.http_host.front() == '[' && c.http_host.back() == ']') {
    c.http_host = c.http_host.substr(1, c.http_host.size() - 2);
  }
  c.http_port = static_cast<uint16_t>(port);
  return absl::OkStatus();
}

template <typename T>
Status FromYaml(const YAML::Node& node, const std::string& key, T& out) {
  try {
    out = node.as<T>();
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError("key '" + key + "' has the wrong type");
  }
  return absl::OkStatus();
}

// The content of a secret's file (at most 64 KiB, trailing line breaks stripped). Errors name
// `what` and the path, never any of the content.
StatusOr<std::string> ReadSecretFile(const std::string& what, const std::string& path) {
  constexpr size_t kMaxBytes = 64 * 1024;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::InvalidArgumentError(what + ": cannot read " + path);
  std::string secret;
  char buf[4096];
  ssize_t n = 0;
  while ((n = ::read(fd, buf, sizeof(buf))) > 0 && secret.size() <= kMaxBytes) {
    secret.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  explicit_bzero(buf, sizeof(buf));
  if (n < 0) return absl::InvalidArgumentError(what + ": cannot read " + path);
  if (secret.size() > kMaxBytes) {
    return absl::InvalidArgumentError(what + ": " + path + " is larger than 64 KiB");
  }
  while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) secret.pop_back();
  if (secret.empty()) return absl::InvalidArgumentError(what + ": " + path + " is empty");
  return secret;
}

// Fills c.identity_secret from identity_secret_file or ECRM_IDENTITY_SECRET.
Status LoadIdentitySecret(Config& c) {
  const char* env = std::getenv("ECRM_IDENTITY_SECRET");
  const bool from_env = env != nullptr && *env != '\0';
  if (c.identity_secret_file.empty()) {
    c.identity_secret = from_env ? env : "";
    return absl::OkStatus();
  }
  if (from_env) {
    return absl::InvalidArgumentError(
        "identity_secret_file: ECRM_IDENTITY_SECRET is set as well; give only one");
  }
  ASSIGN_OR_RETURN(c.identity_secret,
                   ReadSecretFile("identity_secret_file", c.identity_secret_file));
  return absl::OkStatus();
}

// The keys in a keys file: one per line, trimmed; blank lines and '#' comments skipped.
Status AppendKeysFile(const std::string& what, const std::string& path,
                      std::vector<std::string>& keys) {
  if (path.empty()) return absl::OkStatus();
  ASSIGN_OR_RETURN(const std::string content, ReadSecretFile(what, path));
  size_t added = 0;
  for (std::string_view rest = content; !rest.empty();) {
    const size_t eol = rest.find('\n');
    std::string_view line = rest.substr(0, eol);
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.front()))) {
      line.remove_prefix(1);
    }
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) {
      line.remove_suffix(1);
    }
    rest = eol == std::string_view::npos ? std::string_view() : rest.substr(eol + 1);
    if (line.empty() || line.front() == '#') continue;
    keys.emplace_back(line);
    added++;
  }
  if (added == 0) return absl::InvalidArgumentError(what + ": " + path + " holds no key");
  return absl::OkStatus();
}

// Sets (or replaces) one librdkafka property, after checking it (ValidateKafkaProperty).
Status SetKafkaProperty(Config& c, const std::string& key, std::string value) {
  RETURN_IF_ERROR(ValidateKafkaProperty(key, value));
  for (auto& [k, v] : c.kafka_properties) {
    if (k == key) {
      v = std::move(value);
      return absl::OkStatus();
    }
  }
  c.kafka_properties.emplace_back(key, std::move(value));
  return absl::OkStatus();
}

// KEY=VALUE (or KEY=PATH with `from_file`) from a flag.
Status SetKafkaPropertyArg(Config& c, const std::string& arg, bool from_file) {
  const char* what = from_file ? "kafka_property_files" : "kafka_properties";
  const auto eq = arg.find('=');
  if (eq == std::string::npos || eq == 0) {
    // Not the argument itself: it may hold a secret.
    return absl::InvalidArgumentError(std::string(what) +
                                      ": expected KEY=" + (from_file ? "PATH" : "VALUE"));
  }
  const std::string key = arg.substr(0, eq);
  std::string value = arg.substr(eq + 1);
  if (from_file) {
    ASSIGN_OR_RETURN(value, ReadSecretFile(std::string(what) + ": " + key, value));
  }
  return SetKafkaProperty(c, key, std::move(value));
}

// ECRM_KAFKA_PROPERTY_SASL_MECHANISM=PLAIN sets sasl.mechanism; ECRM_KAFKA_PROPERTY_FILE_<KEY>
// names a file whose content is the value.
Status SetKafkaPropertiesFromEnvironment(Config& c) {
  constexpr std::string_view kPrefix = "ECRM_KAFKA_PROPERTY_";
  constexpr std::string_view kFile = "FILE_";
  std::vector<std::pair<std::string, std::string>> found;
  for (char** e = environ; e != nullptr && *e != nullptr; e++) {
    const std::string_view entry(*e);
    if (!entry.starts_with(kPrefix)) continue;
    const auto eq = entry.find('=');
    if (eq == std::string_view::npos) continue;
    found.emplace_back(std::string(entry.substr(kPrefix.size(), eq - kPrefix.size())),
                       std::string(entry.substr(eq + 1)));
  }
  std::sort(found.begin(), found.end());  // a fixed order: the environment's is not
  for (auto& [name, value] : found) {
    const bool from_file = std::string_view(name).starts_with(kFile);
    std::string key = absl::AsciiStrToLower(from_file ? name.substr(kFile.size()) : name);
    std::replace(key.begin(), key.end(), '_', '.');
    if (key.empty()) continue;
    RETURN_IF_ERROR(SetKafkaPropertyArg(c, key + "=" + value, from_file));
  }
  return absl::OkStatus();
}

// A YAML mapping of property -> value (or -> path).
Status SetKafkaPropertiesFromYaml(Config& c, const YAML::Node& node, bool from_file) {
  const char* what = from_file ? "kafka_property_files" : "kafka_properties";
  if (!node.IsMap()) {
    return absl::InvalidArgumentError(std::string("key '") + what + "' must be a mapping");
  }
  for (const auto& kv : node) {
    if (!kv.first.IsScalar() || !kv.second.IsScalar()) {
      return absl::InvalidArgumentError(std::string("key '") + what +
                                        "': keys and values must be plain scalars");
    }
    RETURN_IF_ERROR(
        SetKafkaPropertyArg(c, kv.first.Scalar() + "=" + kv.second.Scalar(), from_file));
  }
  return absl::OkStatus();
}

}  // namespace

StatusOr<Config> ParseServeConfig(int argc, const char* const* argv) {
  Config c;
  std::string http_addr = "127.0.0.1:8080";
  CLI::App app{"ecrm serve: run the profiling service", "ecrm serve"};
  app.set_help_flag("-h,--help", "Print this help and exit");

  struct Setting {
    const char* key;  // config-file key
    CLI::Option* option;
    std::function<Status(const YAML::Node&)> from_yaml;
  };
  std::vector<Setting> settings;
  auto add = [&](const char* flag, const char* key, const char* env, auto& target,
                 const char* help) {
    CLI::Option* opt;
    if constexpr (std::is_same_v<std::remove_reference_t<decltype(target)>, bool>) {
      opt = app.add_flag(flag, target, help)->envname(env);  // --flag or --flag=false
    } else {
      opt = app.add_option(flag, target, help)->envname(env);
    }
    settings.push_back(
        {key, opt, [&target, key](const YAML::Node& n) { return FromYaml(n, key, target); }});
    return opt;
  };
  app.add_option("--config", c.config_file, "YAML config file")->envname("ECRM_CONFIG");
  add("--http-addr", "http_addr", "ECRM_HTTP_ADDR", http_addr, "HTTP listen address HOST:PORT")
      ->capture_default_str();
  add("--data-dir", "data_dir", "ECRM_DATA_DIR", c.data_dir, "Data directory")
      ->capture_default_str();
  add("--write-key", "write_keys", "ECRM_WRITE_KEYS", c.write_keys,
      "Collector write key (repeatable; env: comma-separated)")
      ->delimiter(',');
  add("--browser-write-key", "browser_write_keys", "ECRM_BROWSER_WRITE_KEYS", c.browser_write_keys,
      "Collector write key for web pages and apps: identity claims need a user_hash "
      "(repeatable; env: comma-separated)")
      ->delimiter(',');
  add("--identity-secret-file", "identity_secret_file", "ECRM_IDENTITY_SECRET_FILE",
      c.identity_secret_file,
      "File holding the identity secret that verifies context.ecrm.user_hash (env "
      "ECRM_IDENTITY_SECRET gives the secret itself)");
  add("--read-key", "read_keys", "ECRM_READ_KEYS", c.read_keys,
      "Personalization read key (repeatable; env: comma-separated)")
      ->delimiter(',');
  add("--admin-token", "admin_token", "ECRM_ADMIN_TOKEN", c.admin_token,
      "Admin bearer token for profile reads");
  add("--workers", "workers", "ECRM_WORKERS", c.workers, "Worker shards (0 = one per core)")
      ->capture_default_str();
  add("--http-threads", "http_threads", "ECRM_HTTP_THREADS", c.http_threads,
      "HTTP io threads (0 = one per core)")
      ->capture_default_str();
  add("--partitions", "partitions", "ECRM_PARTITIONS", c.partitions,
      "Virtual partitions (fixed for a data dir)")
      ->capture_default_str();
  add("--log-level", "log_level", "ECRM_LOG_LEVEL", c.log_level, "trace|debug|info|warn|error|off")
      ->capture_default_str();
  add("--sync-writes", "sync_writes", "ECRM_SYNC_WRITES", c.sync_writes,
      "fsync the WAL on every group commit (survives machine crashes, slower)")
      ->capture_default_str();
  add("--cache-profiles", "cache_profiles", "ECRM_CACHE_PROFILES", c.cache_profiles,
      "Hot profiles cached per worker")
      ->capture_default_str();
  add("--cache-mb", "cache_mb", "ECRM_CACHE_MB", c.cache_mb,
      "Memory of the cached profiles per worker, MiB (estimated; the LRU ones beyond are dropped)")
      ->capture_default_str();
  add("--max-traits", "max_traits", "ECRM_MAX_TRAITS", c.max_traits,
      "Trait keys per profile; values beyond are dropped and counted")
      ->capture_default_str();
  add("--max-trait-bytes", "max_trait_bytes", "ECRM_MAX_TRAIT_BYTES", c.max_trait_bytes,
      "Bytes of trait keys and values per profile; values beyond are dropped and counted")
      ->capture_default_str();
  add("--retention-days", "retention_days", "ECRM_RETENTION_DAYS", c.retention_days,
      "Erase profiles (with their identifiers) not seen for this many days; 0 keeps them")
      ->capture_default_str();
  add("--retention-sweep-seconds", "retention_sweep_seconds", "ECRM_RETENTION_SWEEP_SECONDS",
      c.retention_sweep_seconds, "Seconds between two retention sweeps (the first one at start)")
      ->capture_default_str();
  add("--block-cache-mb", "block_cache_mb", "ECRM_BLOCK_CACHE_MB", c.block_cache_mb,
      "RocksDB block cache size")
      ->capture_default_str();
  add("--max-request-bytes", "max_request_bytes", "ECRM_MAX_REQUEST_BYTES", c.max_request_bytes,
      "Largest collector request body (decoded)")
      ->capture_default_str();
  add("--max-event-bytes", "max_event_bytes", "ECRM_MAX_EVENT_BYTES", c.max_event_bytes,
      "Largest single event")
      ->capture_default_str();
  add("--max-batch-events", "max_batch_events", "ECRM_MAX_BATCH_EVENTS", c.max_batch_events,
      "Most events in one batch")
      ->capture_default_str();
  add("--max-queue-depth", "max_queue_depth", "ECRM_MAX_QUEUE_DEPTH", c.max_queue_depth,
      "Queued tasks per worker before the collector answers 429")
      ->capture_default_str();
  add("--max-connections", "max_connections", "ECRM_MAX_CONNECTIONS", c.max_connections,
      "Open HTTP connections; further ones are answered 503 too_many_connections (lowered to "
      "fit the open-file limit)")
      ->capture_default_str();

  add("--kafka-brokers", "kafka_brokers", "ECRM_KAFKA_BROKERS", c.kafka_brokers,
      "Kafka bootstrap servers HOST:PORT[,...]; unset = embedded mode (no Kafka)");
  add("--kafka-group", "kafka_group", "ECRM_KAFKA_GROUP", c.kafka_group, "Kafka consumer group")
      ->capture_default_str();
  add("--instance-id", "instance_id", "ECRM_INSTANCE_ID", c.instance_id,
      "This instance's stable name in the consumer group (static membership: a restart within "
      "the session timeout moves no partition); default the host name, which is the pod name "
      "in a StatefulSet");
  add("--advertised-http-addr", "advertised_http_addr", "ECRM_ADVERTISED_HTTP_ADDR",
      c.advertised_http_addr,
      "HOST:PORT at which other instances reach this one's HTTP API (shown in GET /v1/cluster); "
      "default --http-addr, with the host name for 0.0.0.0 or ::");
  add("--kafka-topic", "kafka_topic", "ECRM_KAFKA_TOPIC", c.kafka_topic, "Kafka events topic")
      ->capture_default_str();
  add("--kafka-dlq-topic", "kafka_dlq_topic", "ECRM_KAFKA_DLQ_TOPIC", c.kafka_dlq_topic,
      "Kafka dead-letter topic")
      ->capture_default_str();
  add("--kafka-replication-factor", "kafka_replication_factor", "ECRM_KAFKA_REPLICATION_FACTOR",
      c.kafka_replication_factor,
      "Replication factor of the topics ecrm creates when missing (the dead-letter topic); "
      "-1 = the broker's default.replication.factor")
      ->capture_default_str();
  add("--kafka-profiles-topic", "kafka_profiles_topic", "ECRM_KAFKA_PROFILES_TOPIC",
      c.kafka_profiles_topic,
      "Kafka topic of profile records from other channels (as POST /v1/profiles/import); "
      "empty = not read")
      ->capture_default_str();
  add("--kafka-max-in-flight", "kafka_max_in_flight", "ECRM_KAFKA_MAX_IN_FLIGHT",
      c.kafka_max_in_flight,
      "Messages consumed but not yet durable before consumption pauses (backpressure)")
      ->capture_default_str();
  add("--kafka-prefetch-messages", "kafka_prefetch_messages", "ECRM_KAFKA_PREFETCH_MESSAGES",
      c.kafka_prefetch_messages,
      "Messages librdkafka may prefetch per consumer (about 1 KiB of memory each)")
      ->capture_default_str();
  add("--kafka-changelog", "kafka_changelog", "ECRM_KAFKA_CHANGELOG", c.kafka_changelog,
      "Also write every state change to the compacted topic <group>-changelog, in Kafka "
      "transactions, and restore assigned partitions from it (state follows its partition)")
      ->capture_default_str();
  add("--kafka-commit-interval-ms", "kafka_commit_interval_ms", "ECRM_KAFKA_COMMIT_INTERVAL_MS",
      c.kafka_commit_interval_ms,
      "How often the changelog transaction commits; consumed events are acknowledged then")
      ->capture_default_str();
  add("--standby-replicas", "standby_replicas", "ECRM_STANDBY_REPLICAS", c.standby_replicas,
      "Warm copies of each partition kept on this many other instances, which tail its changelog; "
      "a failover to one of them restores only what it had not read yet")
      ->capture_default_str();
  add("--state-cleanup-delay-ms", "state_cleanup_delay_ms", "ECRM_STATE_CLEANUP_DELAY_MS",
      c.state_cleanup_delay_ms,
      "A local copy of a partition neither owned nor standby here is dropped after this long; -1 "
      "= kept for ever")
      ->capture_default_str();
  add("--role", "role", "ECRM_ROLE", c.role,
      "all | collector (HTTP -> Kafka) | processor (Kafka -> profiles); Kafka mode only")
      ->capture_default_str();
  add("--blocked-identifier", "blocked_identifiers", "ECRM_BLOCKED_IDENTIFIERS",
      c.blocked_identifiers,
      "Identifier value treated as absent besides empty, null and undefined (repeatable; env: "
      "comma-separated)")
      ->delimiter(',');
  add("--identifier-type", "identifier_types", "ECRM_IDENTIFIER_TYPES", c.identifier_types,
      "An identifier type besides anonymous_id, user_id and email, e.g. crm_id (repeatable; env: "
      "comma-separated)")
      ->delimiter(',')
      ->capture_default_str();
  add("--cors-origin", "cors_origins", "ECRM_CORS_ORIGINS", c.cors_origins,
      "An origin (scheme://host[:port]) allowed to call from a browser, on every route "
      "(repeatable; env: comma-separated). None: any origin but null, on the collector, settings "
      "and personalization routes only")
      ->delimiter(',');
  add("--public-url", "public_url", "ECRM_PUBLIC_URL", c.public_url,
      "The collector's URL as browsers reach it (https://collect.shop.example), given to "
      "analytics.js by the settings route; empty: from the request's Host, not cacheable");
  add("--merge-survivor", "merge_survivor", "ECRM_MERGE_SURVIVOR", c.merge_survivor,
      "Which profile survives a merge: oldest (created first) or newest")
      ->capture_default_str();
  add("--identifier-limit", "identifier_limits", "ECRM_IDENTIFIER_LIMITS", c.identifier_limits,
      "Merge protection for another identifier type: TYPE=N, the most distinct values one profile "
      "may hold, e.g. crm_id=1 (repeatable; env: comma-separated)")
      ->delimiter(',');
  add("--consent", "consent", "ECRM_CONSENT", c.consent,
      "Consent mapping: PURPOSE=CATEGORY, PURPOSE store (behavioural data) or personalize; the "
      "events' context.consent.categoryPreferences[CATEGORY] grants or withdraws it, e.g. "
      "store=Analytics (repeatable; env: comma-separated; docs/privacy.md)")
      ->delimiter(',');
  add("--max-identifiers-per-type", "max_identifiers_per_type", "ECRM_MAX_IDENTIFIERS_PER_TYPE",
      c.max_identifiers_per_type,
      "The most values of one identifier type (email, phone, crm_id, custom; not those with a "
      "--identifier-limit) one profile lists; claims of more are not attached and counted")
      ->capture_default_str();
  add("--max-user-ids", "max_user_ids", "ECRM_MAX_USER_IDS", c.max_user_ids,
      "Merge protection: the most distinct user ids one profile may hold")
      ->capture_default_str();
  add("--rate-limit", "rate_limit", "ECRM_RATE_LIMIT", c.rate_limit,
      "Events per second per write key, burst of one second (0 = unlimited)")
      ->capture_default_str();
  add("--rule-budget-per-event", "rule_budget_per_event", "ECRM_RULE_BUDGET_PER_EVENT",
      c.rule_budget_per_event,
      "Cost units (about 20 ns each at most) all rules together may spend on one event; a rule "
      "beyond it is stopped and counted in ecrm_rule_errors_total{reason=\"event_budget\"}")
      ->capture_default_str();
  add("--log-format", "log_format", "ECRM_LOG_FORMAT", c.log_format,
      "text | json (one JSON object per line, for log collectors)")
      ->capture_default_str();
  add("--write-keys-file", "write_keys_file", "ECRM_WRITE_KEYS_FILE", c.write_keys_file,
      "File of server write keys, one per line (a mounted secret)");
  add("--browser-write-keys-file", "browser_write_keys_file", "ECRM_BROWSER_WRITE_KEYS_FILE",
      c.browser_write_keys_file, "File of browser write keys, one per line");
  add("--read-keys-file", "read_keys_file", "ECRM_READ_KEYS_FILE", c.read_keys_file,
      "File of personalization read keys, one per line");
  add("--admin-token-file", "admin_token_file", "ECRM_ADMIN_TOKEN_FILE", c.admin_token_file,
      "File holding the admin token, one per line (several during a rotation)");
  std::vector<std::string> property_args, property_file_args;
  app.add_option("--kafka-property", property_args,
                 "A librdkafka property KEY=VALUE for every Kafka client, e.g. "
                 "security.protocol=SASL_SSL (repeatable; env ECRM_KAFKA_PROPERTY_<KEY>)");
  app.add_option("--kafka-property-file", property_file_args,
                 "A librdkafka property KEY=PATH whose value is the file's content, e.g. "
                 "sasl.password=/etc/ecrm/secrets/kafka-password (repeatable; env "
                 "ECRM_KAFKA_PROPERTY_FILE_<KEY>)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    return absl::CancelledError("help");
  } catch (const CLI::ParseError& e) {
    return absl::InvalidArgumentError(e.what());
  }

  if (!c.config_file.empty()) {
    YAML::Node root;
    try {
      root = YAML::LoadFile(c.config_file);
    } catch (const YAML::Exception& e) {
      return absl::InvalidArgumentError("config file " + c.config_file + ": " + e.what());
    }
    if (root && !root.IsNull() && !root.IsMap()) {
      return absl::InvalidArgumentError("config file " + c.config_file + ": must be a mapping");
    }
    for (const auto& kv : root) {
      if (!kv.first.IsScalar()) {
        return absl::InvalidArgumentError("config file " + c.config_file +
                                          ": keys must be plain names");
      }
      const std::string key = kv.first.Scalar();
      if (key == "kafka_properties" || key == "kafka_property_files") {  // merged per key
        if (auto st = SetKafkaPropertiesFromYaml(c, kv.second, key == "kafka_property_files");
            !st.ok()) {
          return absl::InvalidArgumentError("config file " + c.config_file + ": " +
                                            std::string(st.message()));
        }
        continue;
      }
      auto it = std::find_if(settings.begin(), settings.end(),
                             [&](const Setting& s) { return key == s.key; });
      if (it == settings.end()) {
        return absl::InvalidArgumentError("config file " + c.config_file + ": unknown key '" + key +
                                          "'");
      }
      if (it->option->count() > 0) continue;  // a flag or environment variable wins
      if (auto s = it->from_yaml(kv.second); !s.ok()) {
        return absl::InvalidArgumentError("config file " + c.config_file + ": " +
                                          std::string(s.message()));
      }
    }
  }

  RETURN_IF_ERROR(SetKafkaPropertiesFromEnvironment(c));
  for (const auto& arg : property_args) RETURN_IF_ERROR(SetKafkaPropertyArg(c, arg, false));
  for (const auto& arg : property_file_args) RETURN_IF_ERROR(SetKafkaPropertyArg(c, arg, true));
  if (!c.kafka_properties.empty() && c.kafka_brokers.empty()) {
    return absl::InvalidArgumentError("kafka_properties: given without kafka_brokers");
  }
  if (c.log_format != "text" && c.log_format != "json") {
    return absl::InvalidArgumentError("log_format: must be text or json");
  }
  RETURN_IF_ERROR(AppendKeysFile("write_keys_file", c.write_keys_file, c.write_keys));
  RETURN_IF_ERROR(
      AppendKeysFile("browser_write_keys_file", c.browser_write_keys_file, c.browser_write_keys));
  RETURN_IF_ERROR(AppendKeysFile("read_keys_file", c.read_keys_file, c.read_keys));
  if (!c.admin_token_file.empty()) {
    if (!c.admin_token.empty()) {
      return absl::InvalidArgumentError("admin_token_file: admin_token is set as well; give one");
    }
    std::vector<std::string> tokens;
    RETURN_IF_ERROR(AppendKeysFile("admin_token_file", c.admin_token_file, tokens));
    c.admin_token = std::move(tokens.front());
    c.more_admin_tokens.assign(std::make_move_iterator(tokens.begin() + 1),
                               std::make_move_iterator(tokens.end()));
  }
  RETURN_IF_ERROR(ParseHostPort(http_addr, c));
  const int cores = std::max(1u, std::thread::hardware_concurrency());
  if (c.workers < 0 || c.workers > 256) {
    return absl::InvalidArgumentError("workers: must be between 0 and 256");
  }
  if (c.http_threads < 0 || c.http_threads > 256) {
    return absl::InvalidArgumentError("http_threads: must be between 0 and 256");
  }
  if (c.workers == 0) c.workers = cores;
  if (c.http_threads == 0) c.http_threads = cores;
  if (c.partitions < 1 || c.partitions > 65535) {
    return absl::InvalidArgumentError("partitions: must be between 1 and 65535");
  }
  if (c.data_dir.empty()) return absl::InvalidArgumentError("data_dir: must not be empty");
  if (c.max_event_bytes == 0 || c.max_request_bytes < c.max_event_bytes) {
    return absl::InvalidArgumentError(
        "max_request_bytes/max_event_bytes: need 0 < max_event_bytes <= max_request_bytes");
  }
  if (c.max_batch_events == 0) {
    return absl::InvalidArgumentError("max_batch_events: must be positive");
  }
  if (c.role != "all" && c.role != "collector" && c.role != "processor") {
    return absl::InvalidArgumentError("role: must be all, collector or processor");
  }
  if (c.role != "all" && c.kafka_brokers.empty()) {
    return absl::InvalidArgumentError("role: " + c.role + " needs kafka_brokers");
  }
  if (!c.kafka_brokers.empty() && (c.kafka_topic.empty() || c.kafka_dlq_topic.empty() ||
                                   c.kafka_group.empty() || c.kafka_topic == c.kafka_dlq_topic)) {
    return absl::InvalidArgumentError(
        "kafka_topic/kafka_dlq_topic/kafka_group: must be set, and the topics must differ");
  }
  if (c.instance_id.empty()) c.instance_id = HostName();
  if (c.instance_id.empty()) c.instance_id = "ecrm";
  if (c.instance_id.size() > 249 ||
      !std::all_of(c.instance_id.begin(), c.instance_id.end(), [](unsigned char ch) {
        return std::isalnum(ch) || ch == '.' || ch == '_' || ch == '-';
      })) {
    return absl::InvalidArgumentError(
        "instance_id: at most 249 characters of letters, digits, '.', '_' and '-'");
  }
  if (c.advertised_http_addr.empty() && c.http_port != 0) {
    const bool wildcard = c.http_host == "0.0.0.0" || c.http_host == "::" || c.http_host.empty();
    const std::string name = wildcard ? HostName() : c.http_host;
    if (!name.empty()) {
      c.advertised_http_addr = (name.find(':') != std::string::npos ? "[" + name + "]" : name) +
                               ":" + std::to_string(c.http_port);
    }
  }
  if (c.advertised_http_addr.size() > 200 ||
      c.advertised_http_addr.find_first_of(" @/,") != std::string::npos ||
      (!c.advertised_http_addr.empty() && c.advertised_http_addr.rfind(':') == std::string::npos)) {
    return absl::InvalidArgumentError("advertised_http_addr: expected HOST:PORT");
  }
  if (c.kafka_replication_factor != -1 &&
      (c.kafka_replication_factor < 1 || c.kafka_replication_factor > 32767)) {
    return absl::InvalidArgumentError(
        "kafka_replication_factor: must be -1 (the broker's default) or 1 to 32767");
  }
  if (c.standby_replicas < 0 || c.standby_replicas > 16) {
    return absl::InvalidArgumentError("standby_replicas: must be 0 to 16");
  }
  if (c.standby_replicas > 0 && !c.kafka_changelog) {
    return absl::InvalidArgumentError(
        "standby_replicas: standbys tail the changelog; "
        "--kafka-changelog=false has none");
  }
  if (c.state_cleanup_delay_ms < -1) {
    return absl::InvalidArgumentError("state_cleanup_delay_ms: must be -1 (never) or more");
  }
  if (c.kafka_commit_interval_ms < 5 || c.kafka_commit_interval_ms > 10000) {
    return absl::InvalidArgumentError("kafka_commit_interval_ms: must be 5 to 10000");
  }
  if (c.kafka_max_in_flight == 0) {
    return absl::InvalidArgumentError("kafka_max_in_flight: must be positive");
  }
  if (c.kafka_prefetch_messages < 1000 || c.kafka_prefetch_messages > 10000000) {
    return absl::InvalidArgumentError("kafka_prefetch_messages: must be 1000 to 10000000");
  }
  if (c.max_queue_depth == 0) {
    return absl::InvalidArgumentError("max_queue_depth: must be positive");
  }
  if (c.max_connections == 0) {
    return absl::InvalidArgumentError("max_connections: must be positive");
  }
  if (c.rate_limit < 0) return absl::InvalidArgumentError("rate_limit: must not be negative");
  if (c.rule_budget_per_event < 1000 || c.rule_budget_per_event > 100000000) {
    return absl::InvalidArgumentError("rule_budget_per_event: must be 1000 to 100000000");
  }
  if (c.max_user_ids < 1) return absl::InvalidArgumentError("max_user_ids: must be at least 1");
  if (c.max_identifiers_per_type < 1 || c.max_identifiers_per_type > 100000) {
    return absl::InvalidArgumentError("max_identifiers_per_type: must be 1 to 100000");
  }
  for (const auto& m : c.consent) {
    const auto eq = m.find('=');
    const std::string purpose = m.substr(0, eq);
    if (eq == std::string::npos || (purpose != "store" && purpose != "personalize") ||
        eq + 1 == m.size() || m.size() - eq - 1 > 128) {
      return absl::InvalidArgumentError(
          "consent: expected store=CATEGORY or personalize=CATEGORY (a category name of at most "
          "128 bytes), got '" +
          m + "'");
    }
  }
  for (const auto& limit : c.identifier_limits) {
    const auto eq = limit.find('=');
    int n = 0;
    if (eq == std::string::npos || eq == 0 ||
        std::from_chars(limit.data() + eq + 1, limit.data() + limit.size(), n).ec != std::errc() ||
        n < 1) {
      return absl::InvalidArgumentError("identifier_limits: expected TYPE=N with N >= 1, got '" +
                                        limit + "'");
    }
  }
  if (c.merge_survivor != "oldest" && c.merge_survivor != "newest") {
    return absl::InvalidArgumentError("merge_survivor: must be oldest or newest, got '" +
                                      c.merge_survivor + "'");
  }
  if (c.cache_profiles == 0) return absl::InvalidArgumentError("cache_profiles: must be positive");
  if (c.cache_mb == 0) return absl::InvalidArgumentError("cache_mb: must be positive");
  if (c.max_traits == 0) return absl::InvalidArgumentError("max_traits: must be positive");
  if (c.retention_days < 0 || c.retention_days > 3650) {
    // Beyond 3,650 days no event is accepted anyway (the event time window).
    return absl::InvalidArgumentError("retention_days: must be 0 (keep) to 3650");
  }
  if (c.retention_sweep_seconds < 1) {
    return absl::InvalidArgumentError("retention_sweep_seconds: must be at least 1");
  }
  if (c.max_trait_bytes == 0) {
    return absl::InvalidArgumentError("max_trait_bytes: must be positive");
  }
  for (const auto& k : c.write_keys) {
    if (k.empty() || k.find(':') != std::string::npos) {
      return absl::InvalidArgumentError("write_keys: a key must be non-empty and contain no ':'");
    }
  }
  for (const auto& k : c.browser_write_keys) {
    if (k.empty() || k.find(':') != std::string::npos) {
      return absl::InvalidArgumentError(
          "browser_write_keys: a key must be non-empty and contain no ':'");
    }
    if (std::find(c.write_keys.begin(), c.write_keys.end(), k) != c.write_keys.end()) {
      return absl::InvalidArgumentError(  // the key itself is not named: it is a secret
          "write_keys/browser_write_keys: a key is configured as both a server and a browser key");
    }
  }
  for (const auto& k : c.read_keys) {
    if (k.empty()) {  // an empty key would match a request without Authorization
      return absl::InvalidArgumentError("read_keys: a key must be non-empty");
    }
  }
  for (const auto& t : c.identifier_types) {
    // The type is part of stored keys ("type|value" and "type:value" in the API): no separators.
    if (t.empty() || t.size() > 32 || !std::islower(static_cast<unsigned char>(t.front())) ||
        !std::all_of(t.begin(), t.end(), [](unsigned char ch) {
          return std::islower(ch) || std::isdigit(ch) || ch == '_';
        })) {
      return absl::InvalidArgumentError("identifier_types: '" + t +
                                        "': a type is 1 to 32 of a-z, 0-9 and '_', starting with "
                                        "a letter");
    }
  }
  for (const auto& o : c.cors_origins) {
    const auto scheme = o.find("://");
    if (o != "null" && (scheme == std::string::npos || scheme == 0 || o.back() == '/' ||
                        o.find('/', scheme + 3) != std::string::npos || o.size() == scheme + 3)) {
      return absl::InvalidArgumentError("cors_origins: '" + o +
                                        "': an origin is scheme://host[:port], with no path");
    }
  }
  if (!c.public_url.empty() && !c.public_url.starts_with("https://") &&
      !c.public_url.starts_with("http://")) {
    return absl::InvalidArgumentError("public_url: '" + c.public_url +
                                      "': must start with https:// or http://");
  }
  if (!c.public_url.empty() && c.public_url.find_first_of(" \"?#") != std::string::npos) {
    return absl::InvalidArgumentError("public_url: '" + c.public_url +
                                      "': no spaces, quotes, query or fragment");
  }
  RETURN_IF_ERROR(LoadIdentitySecret(c));
  return c;
}

}  // namespace ecrm
