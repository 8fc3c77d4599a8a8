// Kafka topic administration at start-up: ecrm creates the topics it owns (today the dead-letter
// topic; the changelog and internal topics of scale-out later) when they are missing, the way Kafka
// Streams and Kafka Connect create their internal topics. Start-up only; blocking.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace ecrm {

struct TopicSpec {
  std::string name;
  int partitions = 1;
  int replication_factor = -1;  // -1: the broker's default.replication.factor
  std::vector<std::pair<std::string, std::string>> configs;  // e.g. cleanup.policy=compact
};

// Creates every topic in `topics` that does not exist yet; one that exists is left as it is.
// Returns the names it created. Unavailable if no broker answers within `timeout_ms`;
// InvalidArgument with the broker's reason if it refuses a topic (for example a replication factor
// above the number of brokers, or no permission to create topics).
StatusOr<std::vector<std::string>> EnsureTopics(const std::string& brokers,
                                                const std::vector<TopicSpec>& topics,
                                                int timeout_ms);

// The processor's client.id: "ecrm-processor", or "ecrm-processor@HOST:PORT" with its advertised
// HTTP address. librdkafka has no custom assignor and so no subscription user data: the address
// rides in the client id, which DescribeConsumerGroups reports for each member.
std::string ProcessorClientId(std::string_view advertised_http_addr);

// A consumer group as the group coordinator sees it (DescribeConsumerGroups).
struct GroupMember {
  std::string instance_id;  // group.instance.id; empty for a dynamic member
  std::string client_id;
  std::string http_addr;  // from the client id (ProcessorClientId); empty if it names none
  std::string host;
  std::vector<int> partitions;  // assigned partitions of the topic asked about, ascending
};
struct GroupDescription {
  std::string state;  // Stable, PreparingRebalance, CompletingRebalance, Empty, Dead, ...
  std::vector<GroupMember> members;
};
// Unavailable if no broker answers within `timeout_ms`.
StatusOr<GroupDescription> DescribeGroup(const std::string& brokers, const std::string& group,
                                         const std::string& topic, int timeout_ms);

}  // namespace ecrm
