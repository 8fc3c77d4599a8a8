// MakeKafkaConf: a librdkafka global configuration from key/value settings and callbacks, shared by
// ecrm's consumers and producers. The operator's properties (KafkaClientProperties: TLS, SASL,
// tuning) are applied after `settings`. A client made without an event callback gets one that
// counts and logs its errors. A rejected setting is an error naming the key. Start-up only.
#pragma once

#include <librdkafka/rdkafkacpp.h>

// The headers of the librdkafka that scripts/build-librdkafka.sh builds, not bookworm's 2.0.2
// (docs/kafka.md#which-librdkafka).
static_assert(RD_KAFKA_VERSION >= 0x020800ff, "librdkafka 2.8.0 or newer");

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/logging.h"
#include "common/status.h"
#include "ingest/kafka_client.h"

namespace ecrm {

// The event callback of clients that have none of their own: errors are counted
// (ecrm_kafka_errors_total) and logged, with librdkafka's warnings. Stateless, so one serves all.
class CountingKafkaEvents final : public RdKafka::EventCb {
 public:
  void event_cb(RdKafka::Event& event) override {
    if (event.type() == RdKafka::Event::EVENT_ERROR) {
      const char* kind = CountKafkaError(event.err());
      spdlog::warn("kafka: {} ({}, {})", event.str(), RdKafka::err2str(event.err()), kind);
    } else if (event.type() == RdKafka::Event::EVENT_LOG &&
               event.severity() <= RdKafka::Event::EVENT_SEVERITY_WARNING) {
      spdlog::warn("kafka: {} {}", event.fac(), event.str());
    }
  }
  static CountingKafkaEvents* Instance() {
    static CountingKafkaEvents events;
    return &events;
  }
};

struct KafkaCallbacks {
  RdKafka::EventCb* events = nullptr;
  RdKafka::DeliveryReportCb* delivery = nullptr;
  RdKafka::RebalanceCb* rebalance = nullptr;
};

inline StatusOr<std::unique_ptr<RdKafka::Conf>> MakeKafkaConf(
    const std::vector<std::pair<std::string, std::string>>& settings,
    const KafkaCallbacks& callbacks = {}) {
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  std::string err;
  for (const auto& [key, value] : settings) {
    if (conf->set(key, value, err) != RdKafka::Conf::CONF_OK) {
      return absl::InvalidArgumentError("kafka: " + key + ": " + err);
    }
  }
  for (const auto& [key, value] : KafkaClientProperties()) {  // validated by the config
    if (conf->set(key, value, err) != RdKafka::Conf::CONF_OK) {
      return absl::InvalidArgumentError("kafka_properties: " + key + ": refused");
    }
  }
  RdKafka::EventCb* events = callbacks.events ? callbacks.events : CountingKafkaEvents::Instance();
  if (conf->set("event_cb", events, err) != RdKafka::Conf::CONF_OK ||
      (callbacks.delivery &&
       conf->set("dr_cb", callbacks.delivery, err) != RdKafka::Conf::CONF_OK) ||
      (callbacks.rebalance &&
       conf->set("rebalance_cb", callbacks.rebalance, err) != RdKafka::Conf::CONF_OK)) {
    return absl::InternalError("kafka: " + err);
  }
  return conf;
}

// The settings of a consumer that never joins its group: partitions by manual assignment, no
// commits (where it reads from lives in RocksDB, or it reads from the start). `group_id` is
// required by the client but unused. Add what the reader needs besides (isolation, fetch waits).
inline std::vector<std::pair<std::string, std::string>> ManualReaderSettings(
    const std::string& brokers, const std::string& group_id, const std::string& client_id) {
  return {{"bootstrap.servers", brokers},
          {"group.id", group_id},
          {"client.id", client_id},
          {"enable.auto.commit", "false"},
          {"enable.auto.offset.store", "false"},
          {"auto.offset.reset", "earliest"}};
}

// `settings` followed by `more`.
inline std::vector<std::pair<std::string, std::string>> Plus(
    std::vector<std::pair<std::string, std::string>> settings,
    const std::vector<std::pair<std::string, std::string>>& more) {
  settings.insert(settings.end(), more.begin(), more.end());
  return settings;
}

}  // namespace ecrm
