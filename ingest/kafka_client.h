// What every librdkafka client of ecrm shares: the operator's properties (--kafka-property, for
// TLS, SASL and tuning; docs/kafka.md#security-and-client-properties) and the counter of client
// errors (ecrm_kafka_errors_total{kind}).
//
// ConfigureKafkaClients is called once at start-up, before the first client is made, and the
// settings are immutable afterwards, so readers need no lock. Property values may be secrets
// (sasl.password): nothing here logs a value, and errors name the key only.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace prometheus {
class Registry;
}

namespace ecrm {

using KafkaProperties = std::vector<std::pair<std::string, std::string>>;

// Checks one operator property: a key librdkafka knows, a value it accepts, and not one that ecrm
// sets itself for correctness (group.id, transactional.id, isolation.level, ...). The error
// names the key and says why, never the value.
Status ValidateKafkaProperty(const std::string& key, const std::string& value);

// Installs the properties applied to every consumer, producer and admin client after ecrm's own
// settings (so tuning keys such as session.timeout.ms override ecrm's defaults), and registers
// ecrm_kafka_errors_total in `registry` (may be null: errors are then only logged). Once, at
// start-up.
void ConfigureKafkaClients(KafkaProperties properties, prometheus::Registry* registry);

// The installed properties (empty before ConfigureKafkaClients).
const KafkaProperties& KafkaClientProperties();

// Counts one librdkafka error by kind (authentication, ssl, transport, other) and returns the
// kind. Any thread.
const char* CountKafkaError(int rd_kafka_resp_err);

}  // namespace ecrm
