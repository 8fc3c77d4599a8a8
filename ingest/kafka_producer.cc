#include "ingest/kafka_producer.h"

#include <librdkafka/rdkafkacpp.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "common/logging.h"
#include "ingest/internal/kafka_conf.h"
#include "prometheus/counter.h"

namespace ecrm {

struct KafkaEventProducer::Impl : public RdKafka::DeliveryReportCb, public RdKafka::EventCb {
  void dr_cb(RdKafka::Message& message) override {
    auto* ack = static_cast<std::shared_ptr<AckGroup>*>(message.msg_opaque());
    if (message.err() == RdKafka::ERR_NO_ERROR) {
      produced->Increment();
      broker_up = true;
      (*ack)->Done(absl::OkStatus());
    } else {
      failed->Increment();
      (*ack)->Done(absl::UnavailableError("kafka: " + message.errstr()));
    }
    delete ack;
  }
  void event_cb(RdKafka::Event& event) override {
    if (event.type() == RdKafka::Event::EVENT_ERROR) {
      const char* kind = CountKafkaError(event.err());
      if (event.err() == RdKafka::ERR__ALL_BROKERS_DOWN ||
          event.err() == RdKafka::ERR__AUTHENTICATION || event.err() == RdKafka::ERR__SSL) {
        broker_up = false;
      }
      spdlog::warn("kafka producer: {} ({}, {})", event.str(), RdKafka::err2str(event.err()), kind);
    }
  }

  KafkaOptions options;
  std::unique_ptr<RdKafka::Producer> producer;
  std::thread poller;
  std::atomic<bool> stopping{false};
  std::atomic<bool> broker_up{true};
  prometheus::Counter* produced = nullptr;
  prometheus::Counter* failed = nullptr;
};

StatusOr<std::unique_ptr<KafkaEventProducer>> KafkaEventProducer::Create(
    const KafkaOptions& options, prometheus::Registry& registry) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  auto& family = prometheus::BuildCounter()
                     .Name("ecrm_kafka_messages_produced_total")
                     .Help("Event messages produced by the collector, by outcome")
                     .Register(registry);
  impl->produced = &family.Add({{"outcome", "acknowledged"}});
  impl->failed = &family.Add({{"outcome", "failed"}});
  ASSIGN_OR_RETURN(auto conf, MakeKafkaConf({{"bootstrap.servers", options.brokers},
                                             {"client.id", "ecrm-collector"},
                                             {"enable.idempotence", "true"},
                                             {"acks", "all"},
                                             {"partitioner", "murmur2_random"},
                                             {"linger.ms", "5"},
                                             {"compression.type", "lz4"},
                                             {"message.timeout.ms", "30000"},
                                             {"queue.buffering.max.messages", "500000"}},
                                            {.events = impl.get(), .delivery = impl.get()}));
  std::string err;
  impl->producer.reset(RdKafka::Producer::create(conf.get(), err));
  if (!impl->producer) return absl::InvalidArgumentError("kafka: producer: " + err);
  Impl* raw = impl.get();
  impl->poller = std::thread([raw] {
    auto last_probe = std::chrono::steady_clock::now();
    while (!raw->stopping.load()) {
      raw->producer->poll(50);
      // After an outage, find out that a broker answers again even if no request comes in.
      if (!raw->broker_up.load() &&
          std::chrono::steady_clock::now() - last_probe > std::chrono::seconds(1)) {
        last_probe = std::chrono::steady_clock::now();
        RdKafka::Metadata* md = nullptr;
        if (raw->producer->metadata(false, nullptr, &md, 1000) == RdKafka::ERR_NO_ERROR) {
          raw->broker_up = true;
        }
        delete md;
      }
    }
  });
  return std::unique_ptr<KafkaEventProducer>(new KafkaEventProducer(std::move(impl)));
}

KafkaEventProducer::KafkaEventProducer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

KafkaEventProducer::~KafkaEventProducer() { Stop(5000); }

Status KafkaEventProducer::Produce(std::vector<RawEventMessage> messages, AckGroup::Callback done) {
  if (impl_->stopping.load()) return absl::UnavailableError("kafka producer stopped");
  if (messages.empty()) {
    done(absl::OkStatus());
    return absl::OkStatus();
  }
  auto ack = std::make_shared<AckGroup>(static_cast<int>(messages.size()), std::move(done));
  for (size_t i = 0; i < messages.size(); i++) {
    auto& m = messages[i];
    auto* opaque = new std::shared_ptr<AckGroup>(ack);
    const auto err = impl_->producer->produce(
        impl_->options.topic, RdKafka::Topic::PARTITION_UA, RdKafka::Producer::RK_MSG_COPY,
        m.value.data(), m.value.size(), m.key.data(), m.key.size(), 0, opaque);
    if (err != RdKafka::ERR_NO_ERROR) {
      delete opaque;
      if (i == 0) {  // nothing queued: fail at once; `done` is never called
        return err == RdKafka::ERR__QUEUE_FULL ? absl::ResourceExhaustedError("kafka queue full")
                                               : absl::UnavailableError(RdKafka::err2str(err));
      }
      // Some are queued: the request fails through `done` once those are reported.
      for (size_t j = i; j < messages.size(); j++) {
        ack->Done(absl::UnavailableError(std::string("kafka: ") + RdKafka::err2str(err)));
      }
      return absl::OkStatus();
    }
  }
  return absl::OkStatus();
}

void KafkaEventProducer::Stop(int timeout_ms) {
  if (!impl_->poller.joinable()) return;
  impl_->stopping = true;  // new requests are refused (503); queued ones are flushed below
  impl_->producer->flush(timeout_ms);
  impl_->poller.join();
}

bool KafkaEventProducer::Ready() const { return impl_->broker_up.load(); }

}  // namespace ecrm
