#include "app/service.h"

#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "common/json_writer.h"
#include "common/logging.h"
#include "ingest/kafka_admin.h"
#include "ingest/kafka_client.h"
#include "store/keys.h"

namespace ecrm {

namespace {

// The soft limit on open files, raised to the hard limit first. A container's soft limit is often
// 1,024, too few for the HTTP connections beside RocksDB's files and Kafka's sockets. 0: unknown.
rlim_t RaiseOpenFileLimit() {
  struct rlimit rl {};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
  if (rl.rlim_cur < rl.rlim_max) {
    const rlim_t before = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) == 0) {
      spdlog::info("open-file limit raised from {} to {} (the hard limit)", before, rl.rlim_max);
    } else {
      spdlog::warn("open-file limit stays at {}: cannot raise it to {}", before, rl.rlim_max);
      rl.rlim_cur = before;
    }
  }
  return rl.rlim_cur;
}

// `wanted` connections, or fewer if the open-file limit would not leave a quarter of it (at
// least 256 descriptors) for RocksDB's files, Kafka's sockets and the rest.
size_t FitConnections(size_t wanted, rlim_t files) {
  if (files == 0 || files == RLIM_INFINITY) return wanted;
  const rlim_t reserve = std::max<rlim_t>(256, files / 4);
  const size_t fit = files > reserve + 16 ? static_cast<size_t>(files - reserve) : 16;
  if (wanted <= fit) return wanted;
  spdlog::warn("max_connections lowered from {} to {} to fit the open-file limit of {}", wanted,
               fit, files);
  return fit;
}

}  // namespace

Service::Service(Config config, const Clock* clock)
    : config_(std::move(config)),
      clock_(clock ? clock : &system_clock_),
      registry_(std::make_shared<prometheus::Registry>()) {}

Service::~Service() { Stop(); }

Status Service::Start() {
  open_file_limit_ = RaiseOpenFileLimit();
  std::error_code ec;
  std::filesystem::create_directories(config_.data_dir, ec);
  if (ec) return absl::InvalidArgumentError("data_dir: cannot create " + config_.data_dir);
  // Profile data is for the service only: new files are created without group or other bits
  // (the umask), and a data dir written by an older version, whose RocksDB files were 0644, is
  // made owner-only once here.
  ::umask(077);
  namespace fs = std::filesystem;
  fs::permissions(config_.data_dir, fs::perms::group_all | fs::perms::others_all,
                  fs::perm_options::remove, ec);
  for (auto it = fs::recursive_directory_iterator(config_.data_dir, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    std::error_code ignored;  // a file RocksDB removed meanwhile
    if (!it->is_symlink(ignored)) {
      fs::permissions(it->path(), fs::perms::group_all | fs::perms::others_all,
                      fs::perm_options::remove, ignored);
    }
  }
  if (ec) return absl::InvalidArgumentError("data_dir: cannot read " + config_.data_dir);

  StoreOptions store_options;
  store_options.path = (std::filesystem::path(config_.data_dir) / "db").string();
  store_options.block_cache_bytes = config_.block_cache_mb << 20;
  store_options.sync_writes = config_.sync_writes;
  store_options.clock = clock_;
  ASSIGN_OR_RETURN(store_, KvStore::Open(store_options));
  store_metrics_ = std::make_unique<StoreMetrics>(*registry_, *store_);
  ASSIGN_OR_RETURN(
      rules_, RuleRegistry::Open(*store_, RuleBudget{.event_cost = config_.rule_budget_per_event}));
  rule_metrics_ = std::make_unique<RuleMetrics>(*registry_, *rules_);
  spdlog::info("rules: {}", rules_->Current()->Describe());

  auto gauge = [&](const char* name, const char* help) {
    return &prometheus::BuildGauge().Name(name).Help(help).Register(*registry_).Add({});
  };
  ready_gauge_ = gauge("ecrm_ready", "1 while /readyz answers 200, else 0");
  disk_free_ = gauge("ecrm_data_dir_free_bytes",
                     "Bytes available to ecrm on the data directory's file system");
  disk_capacity_ =
      gauge("ecrm_data_dir_capacity_bytes", "Size of the data directory's file system in bytes");

  const bool kafka = !config_.kafka_brokers.empty();
  // Every Kafka client made from here on gets the operator's properties (TLS, SASL) and counts
  // its errors.
  if (kafka) ConfigureKafkaClients(config_.kafka_properties, registry_.get());
  KafkaOptions kafka_options;
  kafka_options.brokers = config_.kafka_brokers;
  kafka_options.group = config_.kafka_group;
  kafka_options.instance_id = config_.instance_id;
  kafka_options.advertised_http_addr = config_.advertised_http_addr;
  kafka_options.topic = config_.kafka_topic;
  kafka_options.dlq_topic = config_.kafka_dlq_topic;
  kafka_options.profiles_topic = config_.kafka_profiles_topic;
  kafka_options.max_in_flight_messages = config_.kafka_max_in_flight;
  kafka_options.prefetch_messages = config_.kafka_prefetch_messages;
  kafka_options.changelog = config_.kafka_changelog;
  kafka_options.commit_interval_ms = config_.kafka_commit_interval_ms;
  uint32_t partitions = config_.partitions;
  if (kafka) {
    // In Kafka mode the virtual partitions are the topic's partitions.
    ASSIGN_OR_RETURN(auto stored, store_->Get(Cf::kMeta, kMetaPartitionCount));
    auto topic_partitions = WaitForKafka(/*may_go_on=*/stored && !kafka_options.changelog);
    if (absl::IsCancelled(topic_partitions.status())) return topic_partitions.status();
    if (topic_partitions.ok()) {
      partitions = static_cast<uint32_t>(*topic_partitions);
    } else if (absl::IsNotFound(topic_partitions.status())) {
      return absl::InvalidArgumentError("kafka_topic: " +
                                        std::string(topic_partitions.status().message()));
    } else if (stored) {  // broker down at start: carry on with what the data dir knows
      spdlog::warn("{}; starting with the stored partition count {}",
                   topic_partitions.status().ToString(), *stored);
      partitions = static_cast<uint32_t>(std::stoul(*stored));
    } else {
      return absl::UnavailableError("kafka_brokers/kafka_topic: " +
                                    std::string(topic_partitions.status().message()));
    }
  }
  EngineOptions engine_options;
  engine_options.shards = config_.workers > 0
                              ? config_.workers
                              : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  engine_options.partitions = partitions;
  engine_options.max_queue_depth = config_.max_queue_depth;
  engine_options.shard.cache_capacity = config_.cache_profiles;
  engine_options.shard.cache_bytes = config_.cache_mb << 20;
  engine_options.profiler.max_traits = config_.max_traits;
  engine_options.profiler.max_trait_bytes = config_.max_trait_bytes;
  for (const auto& m : config_.consent) {  // PURPOSE=CATEGORY, validated by the config
    const auto eq = m.find('=');
    (m.substr(0, eq) == "store" ? engine_options.profiler.consent_store
                                : engine_options.profiler.consent_personalize)
        .push_back(m.substr(eq + 1));
  }
  engine_options.shard.rules = rules_.get();
  engine_options.shard.identifier_limits = {{"user_id", config_.max_user_ids},
                                            {"anonymous_id", 1000}};
  engine_options.shard.max_identifiers_per_type = config_.max_identifiers_per_type;
  for (const auto& limit : config_.identifier_limits) {  // TYPE=N, validated by the config
    const auto eq = limit.find('=');
    engine_options.shard.identifier_limits[limit.substr(0, eq)] = std::stoi(limit.substr(eq + 1));
  }
  engine_options.shard.newer_survives = config_.merge_survivor == "newest";
  if (kafka && config_.role != "collector") {
    // ecrm's own topics are created when missing, with the events topic's partition count
    // (docs/kafka.md#topics). Dead letters are retried until delivered, so a topic the broker
    // refuses to create fails the start; a broker that does not answer is waited for later.
    std::vector<TopicSpec> own = {{config_.kafka_dlq_topic,
                                   static_cast<int>(partitions),
                                   config_.kafka_replication_factor,
                                   {}}};
    if (kafka_options.changelog) {
      // Compacted: the latest value of every key is the partition's state (docs/cluster.md).
      own.push_back({ChangelogTopic(kafka_options),
                     static_cast<int>(partitions),
                     config_.kafka_replication_factor,
                     {{"cleanup.policy", "compact"},
                      {"min.compaction.lag.ms", "60000"},
                      {"delete.retention.ms", "604800000"}}});
      // Shard messages between instances (docs/cluster.md#cross-instance-messages): each is read
      // once by its partition's owner, whose offset lives in its state. Kept 7 days, so a
      // partition may go unowned that long before messages for it are lost.
      own.push_back({InternalTopic(kafka_options),
                     static_cast<int>(partitions),
                     config_.kafka_replication_factor,
                     {{"cleanup.policy", "delete"}, {"retention.ms", "604800000"}}});
      // Rule pushes, shared by every instance (docs/cluster.md#rules): one partition, one key.
      own.push_back({RulesTopic(kafka_options),
                     1,
                     config_.kafka_replication_factor,
                     {{"cleanup.policy", "compact"}}});
    }
    auto created = EnsureTopics(config_.kafka_brokers, own, 10000);
    if (created.ok()) {
      for (const auto& name : *created) {
        int count = static_cast<int>(partitions);
        for (const auto& spec : own) {
          if (spec.name == name) count = spec.partitions;
        }
        spdlog::info("kafka: created topic {} ({} partitions, replication factor {})", name, count,
                     config_.kafka_replication_factor < 0
                         ? std::string("the broker's default")
                         : std::to_string(config_.kafka_replication_factor));
      }
    } else if (absl::IsUnavailable(created.status())) {
      spdlog::warn("{}; the topics {} are not checked", created.status().ToString(),
                   config_.kafka_dlq_topic + (kafka_options.changelog
                                                  ? ", " + ChangelogTopic(kafka_options) + " and " +
                                                        InternalTopic(kafka_options)
                                                  : std::string()));
    } else {
      return absl::InvalidArgumentError("kafka_dlq_topic: " +
                                        std::string(created.status().message()));
    }
    if (kafka_options.changelog) {
      ASSIGN_OR_RETURN(changelog_, KafkaChangelog::Create(kafka_options, partitions, *registry_));
      RETURN_IF_ERROR(changelog_->Start(30000));
      engine_options.shard.state_log = changelog_.get();
      ASSIGN_OR_RETURN(kafka_rules_, KafkaRules::Create(kafka_options, *rules_));
      RETURN_IF_ERROR(kafka_rules_->Start(30000));
      rules_->SetLog(kafka_rules_.get());
      // Partitions are this instance's only while assigned (cluster mode).
      engine_options.owned_by_assignment = true;
    }
  }
  // A collector-only instance owns no partition: its reads go to the processors that do.
  if (kafka && config_.role == "collector") engine_options.owned_by_assignment = true;
  engine_options.clock = clock_;
  ASSIGN_OR_RETURN(engine_, ProfileEngine::Create(*store_, *registry_, engine_options));
  engine_->Start();
  if (config_.retention_days > 0 && config_.role != "collector") {
    retention_ = std::make_unique<RetentionSweeper>(*engine_, *clock_, config_.retention_days,
                                                    config_.retention_sweep_seconds);
  }
  if (kafka && config_.role != "collector") {
    CollectorLimits limits{config_.max_request_bytes, config_.max_event_bytes,
                           config_.max_batch_events};
    limits.event.blocked_identifiers = config_.blocked_identifiers;
    limits.event.keep_properties = rules_->keep_event_properties();
    if (changelog_) {
      ASSIGN_OR_RETURN(
          standby_, ChangelogStandby::Create(kafka_options, partitions,
                                             config_.state_cleanup_delay_ms, *store_, *registry_));
      standby_->Start();
    }
    ASSIGN_OR_RETURN(consumer_,
                     KafkaConsumer::Create(kafka_options, *engine_, *registry_, *clock_, limits,
                                           changelog_.get(), store_.get(), standby_.get()));
    consumer_->Start();
    if (!kafka_options.profiles_topic.empty()) {
      ProfileRecordOptions records;
      records.identifier_types = config_.identifier_types;
      records.limits = limits.event;
      ASSIGN_OR_RETURN(profile_consumer_,
                       KafkaProfileConsumer::Create(kafka_options, *engine_, *registry_, *clock_,
                                                    std::move(records)));
      profile_consumer_->Start();
    }
  }
  if (kafka && config_.role != "processor") {
    ASSIGN_OR_RETURN(producer_, KafkaEventProducer::Create(kafka_options, *registry_));
  }

  ApiOptions api_options;
  api_options.write_keys = config_.write_keys;
  api_options.browser_write_keys = config_.browser_write_keys;
  api_options.identity_secret = config_.identity_secret;
  if (!config_.browser_write_keys.empty() && config_.identity_secret.empty() &&
      config_.role != "processor") {
    spdlog::warn(
        "browser write keys without an identity secret (--identity-secret-file): no userId claim "
        "sent with a browser key can be verified");
  }
  api_options.read_keys = config_.read_keys;
  api_options.admin_token = config_.admin_token;
  api_options.more_admin_tokens = config_.more_admin_tokens;
  api_options.limits.max_request_bytes = config_.max_request_bytes;
  api_options.limits.max_event_bytes = config_.max_event_bytes;
  api_options.limits.max_batch_events = config_.max_batch_events;
  api_options.limits.event.blocked_identifiers = config_.blocked_identifiers;
  api_options.limits.event.keep_properties = rules_->keep_event_properties();
  api_options.rate_limit_events = config_.rate_limit;
  api_options.cors_origins = config_.cors_origins;
  api_options.public_url = config_.public_url;
  api_options.before_scrape = [this] {
    ready_gauge_->Set(Ready() ? 1 : 0);  // first: it may recover the store
    store_metrics_->Refresh();
    rule_metrics_->Refresh();
    struct statvfs fs {};
    if (::statvfs(config_.data_dir.c_str(), &fs) == 0) {
      disk_free_->Set(static_cast<double>(fs.f_bavail) * static_cast<double>(fs.f_frsize));
      disk_capacity_->Set(static_cast<double>(fs.f_blocks) * static_cast<double>(fs.f_frsize));
    }
  };
  api_options.rules = rules_.get();
  api_options.identifier_types = config_.identifier_types;
  api_options.rule_metrics = rule_metrics_.get();
  api_options.ready = [this] { return Ready(); };
  api_options.cluster = [this] { return ClusterView(); };
  if (engine_options.owned_by_assignment) {
    cluster_members_ =
        gauge("ecrm_cluster_members", "Members of the consumer group in its latest description");
    auto on_group = [this](const GroupDescription& group) {
      cluster_members_->Set(static_cast<double>(group.members.size()));
      if (!standby_) return;  // also with no replicas: the cleanup needs to know the group is seen
      const auto placement = StandbyPlacement(group, config_.standby_replicas);
      std::set<uint32_t> mine, unknown;
      for (uint32_t p = 0; p < engine_->partition_count(); p++) {
        const auto it = placement.find(p);
        if (it == placement.end()) {
          unknown.insert(p);
        } else if (std::find(it->second.begin(), it->second.end(), config_.instance_id) !=
                   it->second.end()) {
          mine.insert(p);
        }
      }
      standby_->SetStandby(mine, unknown);
    };
    owners_ = std::make_unique<PartitionOwners>(config_.kafka_brokers, config_.kafka_group,
                                                config_.kafka_topic, engine_->partition_count(),
                                                std::move(on_group));
    api_options.directory = owners_.get();
    api_options.self_addr = config_.advertised_http_addr;
  }
  api_options.producer = producer_.get();
  api_options.collector_enabled = config_.role != "processor";
  api_ = std::make_unique<ApiService>(*engine_, *registry_, *clock_, std::move(api_options));

  HttpServerOptions http;
  http.host = config_.http_host;
  http.port = config_.http_port != 0 ? config_.http_port : startup_port_;
  // 0 means one per core (as ParseServeConfig resolves it; a Config built in code may not be).
  http.threads = config_.http_threads > 0
                     ? config_.http_threads
                     : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  http.max_body_bytes = config_.max_request_bytes;
  http.max_connections = FitConnections(config_.max_connections, open_file_limit_);
  http.registry = registry_.get();
  server_ = std::make_unique<HttpServer>(http, *api_);
  ASSIGN_OR_RETURN(port_, server_->Start());

  const auto addr_file = std::filesystem::path(config_.data_dir) / "ecrm.addr";
  std::ofstream(addr_file, std::ios::trunc) << config_.http_host << ":" << port_ << "\n";
  ready_ = true;
  spdlog::info("listening on {}:{} ({} workers, {} http threads, {} partitions, data in {}; {})",
               config_.http_host, port_, config_.workers, config_.http_threads, partitions,
               config_.data_dir,
               kafka ? "kafka " + config_.kafka_brokers + " topic " + config_.kafka_topic +
                           " role " + config_.role
                     : std::string("embedded"));
  return absl::OkStatus();
}

namespace {

// What answers on the HTTP port while the service waits for Kafka at start-up: alive, not ready
// (with the reason), and the metrics (ecrm_kafka_errors_total says why). Everything else is 503.
class StartupHandler final : public HttpHandler {
 public:
  StartupHandler(prometheus::Registry& registry, const std::string& reason)
      : registry_(registry), reason_(reason) {}
  void Handle(const HttpRequest& request, Responder respond) override {
    const std::string_view path = request.Path();
    if (path == "/healthz") return respond(JsonResponse(200, R"({"status":"ok"})"));
    if (path == "/metrics") return respond(MetricsResponse(registry_));
    std::lock_guard<std::mutex> lock(mu_);
    HttpResponse res = ErrorResponse(503, "starting", "waiting for Kafka: " + reason_);
    res.headers.emplace_back("Retry-After", "5");
    respond(std::move(res));
  }
  HttpResponse RequestTooLarge(const HttpRequest&) override {
    return ErrorResponse(503, "starting", "waiting for Kafka");
  }
  void SetReason(std::string reason) {
    std::lock_guard<std::mutex> lock(mu_);
    reason_ = std::move(reason);
  }

 private:
  prometheus::Registry& registry_;
  std::mutex mu_;
  std::string reason_;
};

}  // namespace

StatusOr<int> Service::WaitForKafka(bool may_go_on) {
  auto partitions =
      KafkaConsumer::TopicPartitions(config_.kafka_brokers, config_.kafka_topic, 10000);
  if (partitions.ok() || !absl::IsUnavailable(partitions.status()) || may_go_on) return partitions;
  // No answer (brokers away, a refused password or certificate): stay up and not ready, and keep
  // trying, so that an orchestrator sees the reason instead of a crash loop.
  std::string reason(partitions.status().message());
  spdlog::error("{}; retrying every 5 s (/readyz answers 503 meanwhile)", reason);
  StartupHandler handler(*registry_, reason);
  HttpServerOptions http;
  http.host = config_.http_host;
  http.port = config_.http_port;
  http.threads = 1;
  HttpServer waiting(http, handler);
  ASSIGN_OR_RETURN(const uint16_t port, waiting.Start());
  startup_port_ = port;  // the service answers on the same port (with --http-addr port 0 too)
  const auto addr_file = std::filesystem::path(config_.data_dir) / "ecrm.addr";
  std::ofstream(addr_file, std::ios::trunc) << config_.http_host << ":" << port << "\n";
  while (true) {
    for (int i = 0; i < 50; i++) {
      if (abort_start_ && abort_start_()) {
        waiting.Stop();
        return absl::CancelledError("stopped while waiting for Kafka");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    partitions = KafkaConsumer::TopicPartitions(config_.kafka_brokers, config_.kafka_topic, 10000);
    if (partitions.ok() || !absl::IsUnavailable(partitions.status())) break;
    if (partitions.status().message() != reason) {
      reason = std::string(partitions.status().message());
      spdlog::error("{}; retrying every 5 s", reason);
      handler.SetReason(reason);
    }
  }
  spdlog::info("kafka: the brokers answer; starting");
  waiting.StopAccepting();
  waiting.Stop();
  return partitions;
}

bool Service::Ready() const {
  // A store refusing writes (a full disk) is not ready; asking is also what retries its recovery
  // when no write comes (a balancer stops sending to an instance that is not ready).
  return ready_.load() && store_->TryResume() && (!consumer_ || consumer_->Ready()) &&
         (!producer_ || producer_->Ready());
}

void Service::Stop() {
  ready_ = false;
  if (server_) server_->StopAccepting();
  if (producer_) producer_->Stop(10000);  // answers collector requests whose messages are queued
  if (profile_consumer_) profile_consumer_->Stop();
  if (consumer_) consumer_->Stop();  // lets consumed messages become durable, then leaves
  if (standby_) standby_->Stop();
  if (retention_) retention_->Stop();
  if (engine_) engine_->Stop();  // answers everything accepted; later requests get 503
  if (server_) server_->Stop();
  server_.reset();
  api_.reset();
  owners_.reset();  // it calls standby_
  profile_consumer_.reset();
  consumer_.reset();
  standby_.reset();
  producer_.reset();
  retention_.reset();
  engine_.reset();
  rule_metrics_.reset();
  rules_.reset();
  store_metrics_.reset();
  store_.reset();
}

HttpResponse Service::ClusterView() const {
  const uint32_t partitions = engine_->partition_count();
  std::string body;
  JsonWriter w(&body);
  w.BeginObject();
  w.Key("mode").String(config_.kafka_brokers.empty() ? "embedded" : "kafka");
  w.Key("role").String(config_.role);
  w.Key("instance_id").String(config_.instance_id);
  w.Key("http_addr").String(config_.advertised_http_addr);
  w.Key("partition_count").Int(partitions);
  std::map<uint32_t, int64_t> restoring;  // partitions being restored here -> records applied
  std::map<uint32_t, int64_t> standbys;   // standby copies here -> their lag in records
  std::map<uint32_t, std::vector<std::string>> placement;  // partition -> standby instances
  // partition -> (owner's instance id, this instance's lag or -1 elsewhere)
  std::vector<std::pair<std::string, int64_t>> owners(partitions, {"", -1});
  if (config_.kafka_brokers.empty()) {
    for (auto& o : owners) o = {config_.instance_id, 0};
  } else if (consumer_) {
    w.Key("group").String(config_.kafka_group);
    w.Key("topic").String(config_.kafka_topic);
    auto group =
        DescribeGroup(config_.kafka_brokers, config_.kafka_group, config_.kafka_topic, 5000);
    if (group.ok()) {
      w.Key("group_state").String(group->state);
      w.Key("members").BeginArray();
      for (const auto& m : group->members) {
        w.BeginObject();
        w.Key("instance_id").String(m.instance_id);
        w.Key("client_id").String(m.client_id);
        if (!m.http_addr.empty()) w.Key("http_addr").String(m.http_addr);
        w.Key("host").String(m.host);
        w.Key("self").Bool(m.instance_id == config_.instance_id);
        w.Key("partitions").BeginArray();
        for (int p : m.partitions) {
          w.Int(p);
          if (p >= 0 && static_cast<uint32_t>(p) < partitions) owners[p].first = m.instance_id;
        }
        w.EndArray().EndObject();
      }
      w.EndArray();
      if (config_.standby_replicas > 0)
        placement = StandbyPlacement(*group, config_.standby_replicas);
    } else {
      w.Key("group_error").String(std::string(group.status().message()));
    }
    for (const auto& [p, lag] : consumer_->Partitions()) {
      if (p < partitions) owners[p] = {config_.instance_id, lag};
    }
    restoring = consumer_->Restoring();
    if (standby_) standbys = standby_->Standbys();
  }
  w.Key("partitions").BeginArray();
  for (uint32_t p = 0; p < partitions; p++) {
    const auto& [owner, lag] = owners[p];
    const bool mine = owner == config_.instance_id;
    w.BeginObject().Key("partition").Int(p);
    if (const auto r = restoring.find(p); r != restoring.end()) {
      // Assigned here and catching up from the changelog before it is consumed.
      w.Key("owner").String(config_.instance_id).Key("state").String("restoring");
      w.Key("restored_records").Int(r->second);
    } else if (owner.empty()) {
      w.Key("owner").Null().Key("state").String("unassigned");
    } else if (const auto sb = standbys.find(p); !mine && sb != standbys.end()) {
      // Owned elsewhere; this instance tails its changelog.
      w.Key("owner").String(owner).Key("state").String("standby");
      if (sb->second >= 0) w.Key("standby_lag").Int(sb->second);
    } else {
      w.Key("owner").String(owner).Key("state").String(mine ? "active" : "elsewhere");
    }
    if (mine && lag >= 0) w.Key("lag").Int(lag);
    if (const auto it = placement.find(p); it != placement.end()) {
      w.Key("standbys").BeginArray();
      for (const auto& id : it->second) w.String(id);
      w.EndArray();
    }
    w.EndObject();
  }
  w.EndArray().EndObject();
  return JsonResponse(200, std::move(body));
}

}  // namespace ecrm
