#include "ingest/kafka_admin.h"

#include <librdkafka/rdkafka.h>

#include <memory>

namespace ecrm {
namespace {

struct HandleDeleter {
  void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
};
struct QueueDeleter {
  void operator()(rd_kafka_queue_t* q) const { rd_kafka_queue_destroy(q); }
};
struct EventDeleter {
  void operator()(rd_kafka_event_t* e) const { rd_kafka_event_destroy(e); }
};
struct OptionsDeleter {
  void operator()(rd_kafka_AdminOptions_t* o) const { rd_kafka_AdminOptions_destroy(o); }
};

}  // namespace

// The C++ binding of librdkafka has no admin API, so this uses the C one.
StatusOr<std::vector<std::string>> EnsureTopics(const std::string& brokers,
                                                const std::vector<TopicSpec>& topics,
                                                int timeout_ms) {
  std::vector<std::string> created;
  if (topics.empty()) return created;
  char errstr[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers.c_str(), errstr, sizeof(errstr)) !=
          RD_KAFKA_CONF_OK ||
      rd_kafka_conf_set(conf, "client.id", "ecrm-admin", errstr, sizeof(errstr)) !=
          RD_KAFKA_CONF_OK) {
    rd_kafka_conf_destroy(conf);
    return absl::InvalidArgumentError(std::string("kafka: admin client: ") + errstr);
  }
  // rd_kafka_new takes the configuration over on success only.
  std::unique_ptr<rd_kafka_t, HandleDeleter> rk(
      rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr)));
  if (!rk) {
    rd_kafka_conf_destroy(conf);
    return absl::InvalidArgumentError(std::string("kafka: admin client: ") + errstr);
  }

  std::vector<rd_kafka_NewTopic_t*> new_topics;
  auto destroy_topics = [&] {
    rd_kafka_NewTopic_destroy_array(new_topics.data(), new_topics.size());
  };
  for (const auto& t : topics) {
    rd_kafka_NewTopic_t* nt = rd_kafka_NewTopic_new(t.name.c_str(), t.partitions,
                                                    t.replication_factor, errstr, sizeof(errstr));
    if (!nt) {
      destroy_topics();
      return absl::InvalidArgumentError("kafka: topic " + t.name + ": " + errstr);
    }
    new_topics.push_back(nt);
    for (const auto& [key, value] : t.configs) {
      if (rd_kafka_NewTopic_set_config(nt, key.c_str(), value.c_str()) !=
          RD_KAFKA_RESP_ERR_NO_ERROR) {
        destroy_topics();
        return absl::InvalidArgumentError("kafka: topic " + t.name + ": config " + key);
      }
    }
  }

  std::unique_ptr<rd_kafka_AdminOptions_t, OptionsDeleter> options(
      rd_kafka_AdminOptions_new(rk.get(), RD_KAFKA_ADMIN_OP_CREATETOPICS));
  (void)rd_kafka_AdminOptions_set_request_timeout(options.get(), timeout_ms, errstr,
                                                  sizeof(errstr));
  (void)rd_kafka_AdminOptions_set_operation_timeout(options.get(), timeout_ms, errstr,
                                                    sizeof(errstr));
  std::unique_ptr<rd_kafka_queue_t, QueueDeleter> queue(rd_kafka_queue_new(rk.get()));
  rd_kafka_CreateTopics(rk.get(), new_topics.data(), new_topics.size(), options.get(), queue.get());
  destroy_topics();

  // The request times out on its own (request timeout); wait a little longer than that.
  std::unique_ptr<rd_kafka_event_t, EventDeleter> event(
      rd_kafka_queue_poll(queue.get(), timeout_ms + 5000));
  if (!event) return absl::UnavailableError("kafka: creating topics: no answer from " + brokers);
  if (rd_kafka_event_error(event.get()) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    const auto err = rd_kafka_event_error(event.get());
    const std::string what =
        std::string("kafka: creating topics: ") + rd_kafka_event_error_string(event.get());
    if (err == RD_KAFKA_RESP_ERR__TIMED_OUT || err == RD_KAFKA_RESP_ERR__TRANSPORT) {
      return absl::UnavailableError(what);
    }
    return absl::InvalidArgumentError(what);
  }
  const rd_kafka_CreateTopics_result_t* result = rd_kafka_event_CreateTopics_result(event.get());
  if (!result) return absl::InternalError("kafka: creating topics: unexpected answer");
  size_t n = 0;
  const rd_kafka_topic_result_t** results = rd_kafka_CreateTopics_result_topics(result, &n);
  for (size_t i = 0; i < n; i++) {
    const auto err = rd_kafka_topic_result_error(results[i]);
    const std::string name = rd_kafka_topic_result_name(results[i]);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      created.push_back(name);
    } else if (err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
      const char* why = rd_kafka_topic_result_error_string(results[i]);
      return absl::InvalidArgumentError(
          "kafka: topic " + name + " could not be created: " + (why ? why : rd_kafka_err2str(err)));
    }
  }
  return created;
}

}  // namespace ecrm
