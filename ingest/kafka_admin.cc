#include "ingest/kafka_admin.h"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <memory>

#include "common/logging.h"
#include "ingest/kafka_client.h"

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

using Handle = std::unique_ptr<rd_kafka_t, HandleDeleter>;

// Errors of the admin client are counted and logged like every other client's.
void AdminError(rd_kafka_t*, int err, const char* reason, void*) {
  const char* kind = CountKafkaError(err);
  spdlog::warn("kafka: admin client: {} ({}, {})", reason,
               rd_kafka_err2str(static_cast<rd_kafka_resp_err_t>(err)), kind);
}

StatusOr<Handle> NewAdminClient(const std::string& brokers) {
  char errstr[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers.c_str(), errstr, sizeof(errstr)) !=
          RD_KAFKA_CONF_OK ||
      rd_kafka_conf_set(conf, "client.id", "ecrm-admin", errstr, sizeof(errstr)) !=
          RD_KAFKA_CONF_OK) {
    rd_kafka_conf_destroy(conf);
    return absl::InvalidArgumentError(std::string("kafka: admin client: ") + errstr);
  }
  for (const auto& [key, value] : KafkaClientProperties()) {  // validated by the config
    if (rd_kafka_conf_set(conf, key.c_str(), value.c_str(), errstr, sizeof(errstr)) !=
        RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      return absl::InvalidArgumentError("kafka_properties: " + key + ": refused");
    }
  }
  rd_kafka_conf_set_error_cb(conf, AdminError);
  // rd_kafka_new takes the configuration over on success only.
  Handle rk(rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr)));
  if (!rk) {
    rd_kafka_conf_destroy(conf);
    return absl::InvalidArgumentError(std::string("kafka: admin client: ") + errstr);
  }
  return rk;
}

// The answer to an admin request, or an error for a request that failed as a whole.
StatusOr<std::unique_ptr<rd_kafka_event_t, EventDeleter>> Await(rd_kafka_queue_t* queue,
                                                                const std::string& brokers,
                                                                const char* what, int timeout_ms) {
  // The request times out on its own (request timeout); wait a little longer than that.
  std::unique_ptr<rd_kafka_event_t, EventDeleter> event(
      rd_kafka_queue_poll(queue, timeout_ms + 5000));
  if (!event)
    return absl::UnavailableError(std::string("kafka: ") + what + ": no answer from " + brokers);
  if (const auto err = rd_kafka_event_error(event.get()); err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    const std::string message =
        std::string("kafka: ") + what + ": " + rd_kafka_event_error_string(event.get());
    if (err == RD_KAFKA_RESP_ERR__TIMED_OUT || err == RD_KAFKA_RESP_ERR__TRANSPORT) {
      return absl::UnavailableError(message);
    }
    return absl::InvalidArgumentError(message);
  }
  return event;
}

}  // namespace

std::string ProcessorClientId(std::string_view advertised_http_addr) {
  std::string id = "ecrm-processor";
  if (!advertised_http_addr.empty()) id.append("@").append(advertised_http_addr);
  return id;
}

// The C++ binding of librdkafka has no admin API, so this uses the C one.
StatusOr<std::vector<std::string>> EnsureTopics(const std::string& brokers,
                                                const std::vector<TopicSpec>& topics,
                                                int timeout_ms) {
  std::vector<std::string> created;
  if (topics.empty()) return created;
  char errstr[512];
  ASSIGN_OR_RETURN(Handle rk, NewAdminClient(brokers));

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

  ASSIGN_OR_RETURN(auto event, Await(queue.get(), brokers, "creating topics", timeout_ms));
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

StatusOr<GroupDescription> DescribeGroup(const std::string& brokers, const std::string& group,
                                         const std::string& topic, int timeout_ms) {
  ASSIGN_OR_RETURN(Handle rk, NewAdminClient(brokers));
  char errstr[512];
  std::unique_ptr<rd_kafka_AdminOptions_t, OptionsDeleter> options(
      rd_kafka_AdminOptions_new(rk.get(), RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS));
  (void)rd_kafka_AdminOptions_set_request_timeout(options.get(), timeout_ms, errstr,
                                                  sizeof(errstr));
  std::unique_ptr<rd_kafka_queue_t, QueueDeleter> queue(rd_kafka_queue_new(rk.get()));
  const char* groups[] = {group.c_str()};
  rd_kafka_DescribeConsumerGroups(rk.get(), groups, 1, options.get(), queue.get());
  ASSIGN_OR_RETURN(auto event, Await(queue.get(), brokers, "describing the group", timeout_ms));
  const rd_kafka_DescribeConsumerGroups_result_t* result =
      rd_kafka_event_DescribeConsumerGroups_result(event.get());
  if (!result) return absl::InternalError("kafka: describing the group: unexpected answer");
  size_t n = 0;
  const rd_kafka_ConsumerGroupDescription_t** described =
      rd_kafka_DescribeConsumerGroups_result_groups(result, &n);
  if (n != 1) return absl::InternalError("kafka: describing the group: no description");
  if (const rd_kafka_error_t* error = rd_kafka_ConsumerGroupDescription_error(described[0])) {
    return absl::UnavailableError(std::string("kafka: describing the group: ") +
                                  rd_kafka_error_string(error));
  }
  GroupDescription out;
  out.state =
      rd_kafka_consumer_group_state_name(rd_kafka_ConsumerGroupDescription_state(described[0]));
  const size_t members = rd_kafka_ConsumerGroupDescription_member_count(described[0]);
  for (size_t i = 0; i < members; i++) {
    const rd_kafka_MemberDescription_t* m =
        rd_kafka_ConsumerGroupDescription_member(described[0], static_cast<int>(i));
    GroupMember member;
    if (const char* id = rd_kafka_MemberDescription_group_instance_id(m)) member.instance_id = id;
    member.client_id = rd_kafka_MemberDescription_client_id(m);
    if (const auto at = member.client_id.find('@'); at != std::string::npos) {
      member.http_addr = member.client_id.substr(at + 1);
    }
    member.host = rd_kafka_MemberDescription_host(m);
    if (const rd_kafka_MemberAssignment_t* assignment = rd_kafka_MemberDescription_assignment(m)) {
      if (const rd_kafka_topic_partition_list_t* list =
              rd_kafka_MemberAssignment_partitions(assignment)) {
        for (int j = 0; j < list->cnt; j++) {
          if (list->elems[j].topic == topic) member.partitions.push_back(list->elems[j].partition);
        }
      }
    }
    std::sort(member.partitions.begin(), member.partitions.end());
    out.members.push_back(std::move(member));
  }
  std::sort(out.members.begin(), out.members.end(), [](const GroupMember& a, const GroupMember& b) {
    return a.instance_id < b.instance_id;
  });
  return out;
}

}  // namespace ecrm
