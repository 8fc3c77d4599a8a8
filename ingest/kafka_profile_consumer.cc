#include "ingest/kafka_profile_consumer.h"

#include <librdkafka/rdkafkacpp.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

#include "common/logging.h"
#include "ingest/internal/kafka_conf.h"
#include "prometheus/counter.h"

namespace ecrm {

struct KafkaProfileConsumer::Impl {
  Impl(const KafkaOptions& o, ProfileEngine& e, prometheus::Registry& registry, const Clock& c,
       ProfileRecordOptions records)
      : options(o), engine(e), clock(c), parser(std::move(records)) {
    auto& family = prometheus::BuildCounter()
                       .Name("ecrm_kafka_profile_records_total")
                       .Help("Profile records read from the profiles topic, by result")
                       .Register(registry);
    applied = &family.Add({{"result", "applied"}});
    rejected = &family.Add({{"result", "rejected"}});
  }

  void Run() {
    constexpr size_t kMaxBatch = 1000;
    std::vector<Event> pending;
    bool uncommitted = false;
    auto last_flush = std::chrono::steady_clock::now();
    while (!stopping.load()) {
      std::unique_ptr<RdKafka::Message> m(consumer->consume(50));
      if (m->err() == RdKafka::ERR_NO_ERROR) {
        Handle(*m, pending);
        uncommitted = true;
      } else if (m->err() != RdKafka::ERR__TIMED_OUT && m->err() != RdKafka::ERR__PARTITION_EOF) {
        spdlog::debug("kafka profiles: consume: {}", m->errstr());
      }
      const bool due =
          std::chrono::steady_clock::now() - last_flush > std::chrono::milliseconds(50);
      if (uncommitted &&
          (pending.size() >= kMaxBatch || due || m->err() != RdKafka::ERR_NO_ERROR)) {
        if (!Apply(pending)) continue;  // stopping: the offsets stay uncommitted, re-read later
        pending.clear();
        const auto err = consumer->commitSync();
        if (err != RdKafka::ERR_NO_ERROR && err != RdKafka::ERR__NO_OFFSET) {
          spdlog::warn("kafka profiles: commit: {}", RdKafka::err2str(err));
        }
        uncommitted = false;
        last_flush = std::chrono::steady_clock::now();
      }
    }
  }

  void Handle(RdKafka::Message& m, std::vector<Event>& pending) {
    std::string_view body(static_cast<const char*>(m.payload()), m.len());
    while (!body.empty()) {
      const size_t nl = body.find('\n');
      std::string_view line = body.substr(0, nl);
      body = nl == std::string_view::npos ? std::string_view() : body.substr(nl + 1);
      if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
      Event e;
      Rejection rejection;
      if (!parser.Parse(line, clock.NowMs(), e, rejection)) {
        rejected->Increment();
        spdlog::warn("kafka profiles: partition {} offset {}: record skipped: {} ({})",
                     m.partition(), m.offset(), rejection.code, rejection.message);
        continue;
      }
      pending.push_back(std::move(e));
    }
  }

  // Submits and waits until durable; false if the engine is stopping.
  bool Apply(std::vector<Event>& events) {
    if (events.empty()) return true;
    const size_t n = events.size();
    while (!stopping.load()) {
      auto done = std::make_shared<std::promise<Status>>();
      auto result = done->get_future();
      std::vector<Event> copy = events;  // Submit leaves its input alone only on failure
      const Status s =
          engine.Submit(std::move(copy), [done](Status status) { done->set_value(status); });
      if (s.ok()) {
        if (result.get().ok()) {
          applied->Increment(static_cast<double>(n));
          return true;
        }
      } else if (!absl::IsResourceExhausted(s)) {
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }

  KafkaOptions options;
  ProfileEngine& engine;
  const Clock& clock;
  ProfileRecordParser parser;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer;
  std::atomic<bool> stopping{false};
  std::thread thread;
  prometheus::Counter* applied;
  prometheus::Counter* rejected;
};

StatusOr<std::unique_ptr<KafkaProfileConsumer>> KafkaProfileConsumer::Create(
    const KafkaOptions& options, ProfileEngine& engine, prometheus::Registry& registry,
    const Clock& clock, ProfileRecordOptions records) {
  auto impl = std::make_unique<Impl>(options, engine, registry, clock, std::move(records));
  ASSIGN_OR_RETURN(auto conf, MakeKafkaConf({
                                  {"bootstrap.servers", options.brokers},
                                  {"group.id", options.group + "-profiles"},
                                  {"client.id", "ecrm-profiles"},
                                  {"enable.auto.commit", "false"},
                                  {"auto.offset.reset", "earliest"},
                                  {"session.timeout.ms", "10000"},
                                  {"heartbeat.interval.ms", "1000"},
                                  {"topic.metadata.refresh.interval.ms", "5000"},
                              }));
  std::string err;
  impl->consumer.reset(RdKafka::KafkaConsumer::create(conf.get(), err));
  if (!impl->consumer) return absl::InvalidArgumentError("kafka: profiles consumer: " + err);
  const auto sub = impl->consumer->subscribe({options.profiles_topic});
  if (sub != RdKafka::ERR_NO_ERROR) {
    return absl::InvalidArgumentError("kafka: subscribe " + options.profiles_topic + ": " +
                                      RdKafka::err2str(sub));
  }
  return std::unique_ptr<KafkaProfileConsumer>(new KafkaProfileConsumer(std::move(impl)));
}

KafkaProfileConsumer::KafkaProfileConsumer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

KafkaProfileConsumer::~KafkaProfileConsumer() { Stop(); }

void KafkaProfileConsumer::Start() {
  impl_->thread = std::thread([this] {
    pthread_setname_np(pthread_self(), "ecrm-kprofiles");
    impl_->Run();
  });
}

void KafkaProfileConsumer::Stop() {
  if (!impl_->thread.joinable()) return;
  impl_->stopping = true;
  impl_->thread.join();
  impl_->consumer->close();
}

}  // namespace ecrm
