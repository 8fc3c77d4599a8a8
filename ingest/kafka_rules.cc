#include "ingest/kafka_rules.h"

#include <pthread.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "common/logging.h"
#include "ingest/internal/kafka_conf.h"

namespace ecrm {

std::string RulesTopic(const KafkaOptions& options) { return options.group + "-rules"; }

namespace {
constexpr std::string_view kRulesKey = "rules";  // one key: compaction keeps the latest set
}  // namespace

struct KafkaRules::Impl : public RdKafka::DeliveryReportCb {
  Impl(const KafkaOptions& o, RuleRegistry& r) : options(o), topic(RulesTopic(o)), registry(r) {}

  void dr_cb(RdKafka::Message& m) override {
    std::lock_guard<std::mutex> lock(mu);
    delivered_offset = m.err() == RdKafka::ERR_NO_ERROR ? m.offset() : -1;
    delivery_error = m.err() == RdKafka::ERR_NO_ERROR ? "" : m.errstr();
    delivered = true;
  }

  // Activates one record of the topic as version offset + 1.
  void Apply(const RdKafka::Message& m) {
    const uint64_t version = static_cast<uint64_t>(m.offset()) + 1;
    const std::string_view document(static_cast<const char*>(m.payload()), m.len());
    if (const Status s = registry.ApplyShared(version, document); !s.ok()) {
      spdlog::error("rules: {}; the active set stays", s.ToString());
    } else {
      spdlog::info("rules: rule set v{} active (from {})", version, topic);
    }
    std::lock_guard<std::mutex> lock(mu);
    applied_offset = m.offset();
    applied_cv.notify_all();
  }

  void Follow() {
    while (!stop.load()) {
      std::unique_ptr<RdKafka::Message> m(consumer->consume(200));
      if (m->err() == RdKafka::ERR_NO_ERROR) {
        Apply(*m);
      } else if (m->err() != RdKafka::ERR__TIMED_OUT && m->err() != RdKafka::ERR__PARTITION_EOF) {
        spdlog::warn("rules: consume {}: {}", topic, m->errstr());
      }
    }
  }

  const KafkaOptions options;
  const std::string topic;
  RuleRegistry& registry;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer;
  std::unique_ptr<RdKafka::Producer> producer;
  std::thread thread;
  std::atomic<bool> stop{false};
  std::mutex publish_mu;  // one push at a time
  std::mutex mu;
  std::condition_variable applied_cv;
  int64_t applied_offset = -1;  // guarded by mu: the last record applied
  bool delivered = false;       // guarded by mu
  int64_t delivered_offset = -1;
  std::string delivery_error;
};

StatusOr<std::unique_ptr<KafkaRules>> KafkaRules::Create(const KafkaOptions& options,
                                                         RuleRegistry& registry) {
  auto impl = std::make_unique<Impl>(options, registry);
  ASSIGN_OR_RETURN(
      auto cconf,
      MakeKafkaConf(
          Plus(ManualReaderSettings(options.brokers, options.group + "-rules-reader", "ecrm-rules"),
               {{"enable.partition.eof", "true"}})));
  std::string err;
  impl->consumer.reset(RdKafka::KafkaConsumer::create(cconf.get(), err));
  if (!impl->consumer) return absl::InvalidArgumentError("kafka: rules consumer: " + err);
  ASSIGN_OR_RETURN(auto pconf, MakeKafkaConf({{"bootstrap.servers", options.brokers},
                                              {"client.id", "ecrm-rules"},
                                              {"enable.idempotence", "true"},
                                              {"linger.ms", "0"}},
                                             {.delivery = impl.get()}));
  impl->producer.reset(RdKafka::Producer::create(pconf.get(), err));
  if (!impl->producer) return absl::InvalidArgumentError("kafka: rules producer: " + err);
  return std::unique_ptr<KafkaRules>(new KafkaRules(std::move(impl)));
}

KafkaRules::KafkaRules(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

KafkaRules::~KafkaRules() {
  impl_->stop = true;
  if (impl_->thread.joinable()) impl_->thread.join();
  impl_->consumer->close();
}

Status KafkaRules::Start(int timeout_ms) {
  Impl& d = *impl_;
  int64_t low = 0, high = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {  // a topic created a moment ago has no leader yet
    const auto err = d.consumer->query_watermark_offsets(d.topic, 0, &low, &high, 2000);
    if (err == RdKafka::ERR_NO_ERROR) break;
    const bool transient =
        err == RdKafka::ERR_NOT_LEADER_FOR_PARTITION || err == RdKafka::ERR_LEADER_NOT_AVAILABLE ||
        err == RdKafka::ERR_UNKNOWN_TOPIC_OR_PART ||
        // a topic another instance created a moment ago, not yet in
        // this client's metadata
        err == RdKafka::ERR__UNKNOWN_PARTITION || err == RdKafka::ERR__UNKNOWN_TOPIC ||
        err == RdKafka::ERR__TIMED_OUT || err == RdKafka::ERR__TRANSPORT;
    if (!transient || std::chrono::steady_clock::now() > deadline) {
      return absl::UnavailableError("kafka: rules topic " + d.topic + ": " + RdKafka::err2str(err));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  // Catch up to the end, keeping only the latest set, so that no older one is active meanwhile.
  std::unique_ptr<RdKafka::TopicPartition> tp(RdKafka::TopicPartition::create(d.topic, 0, low));
  std::vector<RdKafka::TopicPartition*> tps = {tp.get()};
  if (d.consumer->assign(tps) != RdKafka::ERR_NO_ERROR) {
    return absl::UnavailableError("kafka: assign " + d.topic);
  }
  std::unique_ptr<RdKafka::Message> latest;
  int64_t next = low;
  while (next < high) {
    if (std::chrono::steady_clock::now() > deadline) {
      return absl::UnavailableError("kafka: reading " + d.topic + " timed out");
    }
    std::unique_ptr<RdKafka::Message> m(d.consumer->consume(200));
    if (m->err() == RdKafka::ERR_NO_ERROR) {
      next = m->offset() + 1;
      latest = std::move(m);
    } else if (m->err() == RdKafka::ERR__PARTITION_EOF) {
      break;  // compaction left a gap at the end
    }
  }
  if (latest) d.Apply(*latest);
  d.thread = std::thread([&d] {
    pthread_setname_np(pthread_self(), "ecrm-rules");
    d.Follow();
  });
  return absl::OkStatus();
}

StatusOr<uint64_t> KafkaRules::Publish(std::string_view rules_document) {
  Impl& d = *impl_;
  std::lock_guard<std::mutex> one(d.publish_mu);
  {
    std::lock_guard<std::mutex> lock(d.mu);
    d.delivered = false;
  }
  const auto err = d.producer->produce(
      d.topic, 0, RdKafka::Producer::RK_MSG_COPY, const_cast<char*>(rules_document.data()),
      rules_document.size(), kRulesKey.data(), kRulesKey.size(), 0, nullptr);
  if (err != RdKafka::ERR_NO_ERROR) {
    return absl::UnavailableError("kafka: rules: " + RdKafka::err2str(err));
  }
  d.producer->flush(10000);  // serves the delivery report
  int64_t offset;
  {
    std::lock_guard<std::mutex> lock(d.mu);
    if (!d.delivered || d.delivered_offset < 0) {
      return absl::UnavailableError("kafka: rules: not delivered: " +
                                    (d.delivered ? d.delivery_error : std::string("timed out")));
    }
    offset = d.delivered_offset;
  }
  std::unique_lock<std::mutex> lock(d.mu);
  if (!d.applied_cv.wait_for(lock, std::chrono::seconds(10),
                             [&] { return d.applied_offset >= offset; })) {
    return absl::UnavailableError("kafka: rules: published but not yet read back");
  }
  return static_cast<uint64_t>(offset) + 1;
}

}  // namespace ecrm
