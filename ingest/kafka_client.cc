#include "ingest/kafka_client.h"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <array>
#include <memory>
#include <string_view>

#include "prometheus/counter.h"
#include "prometheus/registry.h"

namespace ecrm {
namespace {

// Keys ecrm sets itself because its correctness depends on them: the group, static membership,
// offsets kept in its own state, transactions, read-committed reads, the collector's partitioner
// (the same murmur2 hash routes events and HTTP reads), and the callbacks.
constexpr std::array<std::string_view, 16> kManaged = {"bootstrap.servers",
                                                       "metadata.broker.list",
                                                       "group.id",
                                                       "group.instance.id",
                                                       "client.id",
                                                       "enable.auto.commit",
                                                       "enable.auto.offset.store",
                                                       "auto.offset.reset",
                                                       "isolation.level",
                                                       "transactional.id",
                                                       "enable.idempotence",
                                                       "partition.assignment.strategy",
                                                       "partitioner",
                                                       "acks",
                                                       "enable.partition.eof",
                                                       "group.protocol"};

struct Kinds {
  prometheus::Counter* authentication = nullptr;
  prometheus::Counter* authorization = nullptr;
  prometheus::Counter* ssl = nullptr;
  prometheus::Counter* transport = nullptr;
  prometheus::Counter* other = nullptr;
};

// Written once by ConfigureKafkaClients before any client thread exists; read-only afterwards.
KafkaProperties g_properties;
Kinds g_kinds;

}  // namespace

Status ValidateKafkaProperty(const std::string& key, const std::string& value) {
  if (key.empty()) return absl::InvalidArgumentError("kafka_properties: an empty key");
  if (std::find(kManaged.begin(), kManaged.end(), key) != kManaged.end() || key.ends_with("_cb") ||
      key == "opaque") {
    return absl::InvalidArgumentError("kafka_properties: " + key +
                                      " is set by ecrm itself and cannot be overridden" +
                                      (key == "bootstrap.servers" ? " (use --kafka-brokers)" : ""));
  }
  std::unique_ptr<rd_kafka_conf_t, decltype(&rd_kafka_conf_destroy)> conf(rd_kafka_conf_new(),
                                                                          rd_kafka_conf_destroy);
  char err[512] = {};
  if (rd_kafka_conf_set(conf.get(), key.c_str(), value.c_str(), err, sizeof(err)) ==
      RD_KAFKA_CONF_OK) {
    return absl::OkStatus();
  }
  // librdkafka's message quotes the value ("Invalid value \"...\" for configuration property"):
  // it may be a secret, so only the kind of failure is kept.
  const std::string_view message(err);
  if (message.find("No such configuration property") != std::string_view::npos) {
    return absl::InvalidArgumentError("kafka_properties: " + key +
                                      ": no such librdkafka configuration property");
  }
  return absl::InvalidArgumentError("kafka_properties: " + key +
                                    ": librdkafka refuses the value (not shown: it may be a "
                                    "secret)");
}

void ConfigureKafkaClients(KafkaProperties properties, prometheus::Registry* registry) {
  g_properties = std::move(properties);
  if (registry == nullptr || g_kinds.other != nullptr) return;
  auto& family = prometheus::BuildCounter()
                     .Name("ecrm_kafka_errors_total")
                     .Help(
                         "Errors reported by the Kafka clients, by kind (authentication, "
                         "authorization, ssl, transport, other)")
                     .Register(*registry);
  g_kinds.authentication = &family.Add({{"kind", "authentication"}});
  g_kinds.authorization = &family.Add({{"kind", "authorization"}});
  g_kinds.ssl = &family.Add({{"kind", "ssl"}});
  g_kinds.transport = &family.Add({{"kind", "transport"}});
  g_kinds.other = &family.Add({{"kind", "other"}});
}

const KafkaProperties& KafkaClientProperties() { return g_properties; }

const char* CountKafkaError(int err) {
  const char* kind = "other";
  prometheus::Counter* counter = g_kinds.other;
  switch (err) {
    case RD_KAFKA_RESP_ERR__AUTHENTICATION:
    case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
      kind = "authentication";
      counter = g_kinds.authentication;
      break;
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
      kind = "authorization";
      counter = g_kinds.authorization;
      break;
    case RD_KAFKA_RESP_ERR__SSL:
      kind = "ssl";
      counter = g_kinds.ssl;
      break;
    case RD_KAFKA_RESP_ERR__TRANSPORT:
    case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
    case RD_KAFKA_RESP_ERR__RESOLVE:
      kind = "transport";
      counter = g_kinds.transport;
      break;
    default:
      break;
  }
  if (counter != nullptr) counter->Increment();
  return kind;
}

}  // namespace ecrm
