// The Kafka half of ecrm-load: fill the events topic with the synthetic stream, and watch ecrm's
// applied-events counter to measure Kafka -> durable profiles throughput.
#include "bench/load/kafka_load.h"

#include <librdkafka/rdkafkacpp.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <thread>

#include "bench/load/event_generator.h"
#include "bench/load/http_client.h"

namespace ecrm::bench {
namespace {

class CountingReport : public RdKafka::DeliveryReportCb {
 public:
  void dr_cb(RdKafka::Message& m) override { (m.err() ? failed : delivered)++; }
  uint64_t delivered = 0;
  uint64_t failed = 0;
};

// ecrm_events_applied_total from /metrics, or -1.
double AppliedEvents(KeepAliveClient& client) {
  std::string text;
  if (client.Request("GET", "/metrics", "", "", &text) != 200) return -1;
  const std::string name = "\necrm_events_applied_total ";
  const auto pos = text.find(name);
  return pos == std::string::npos ? -1 : std::stod(text.substr(pos + name.size()));
}

}  // namespace

int KafkaProduce(const std::string& brokers, const std::string& topic, uint64_t events,
                 const GeneratorOptions& generator) {
  std::string err;
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  CountingReport report;
  conf->set("bootstrap.servers", brokers, err);
  conf->set("partitioner", "murmur2_random", err);
  conf->set("linger.ms", "20", err);
  conf->set("batch.num.messages", "10000", err);
  conf->set("compression.type", "lz4", err);
  conf->set("queue.buffering.max.messages", "1000000", err);
  conf->set("dr_cb", &report, err);
  std::unique_ptr<RdKafka::Producer> producer(RdKafka::Producer::create(conf.get(), err));
  if (!producer) {
    std::fprintf(stderr, "kafka: %s\n", err.c_str());
    return 2;
  }
  EventGenerator gen(generator);
  const auto start = std::chrono::steady_clock::now();
  std::string value;
  for (uint64_t i = 0; i < events; i++) {
    value.clear();
    gen.AppendEvent(&value);
    // The key is the anonymous id, as ecrm's collector and the Segment spec would key it.
    const auto a = value.find("\"anonymousId\":\"") + 15;
    const std::string key = value.substr(a, value.find('"', a) - a);
    while (producer->produce(topic, RdKafka::Topic::PARTITION_UA, RdKafka::Producer::RK_MSG_COPY,
                             value.data(), value.size(), key.data(), key.size(), 0,
                             nullptr) == RdKafka::ERR__QUEUE_FULL) {
      producer->poll(10);
    }
    producer->poll(0);
  }
  producer->flush(60000);
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("produced=%llu failed=%llu in %.2fs (%.0f events/s into %s)\n",
              static_cast<unsigned long long>(report.delivered),
              static_cast<unsigned long long>(report.failed), secs,
              static_cast<double>(report.delivered) / secs, topic.c_str());
  return report.failed == 0 ? 0 : 1;
}

int WatchApplied(const std::string& host, uint16_t port, uint64_t target, double timeout_seconds,
                 const std::function<double()>& server_cpu_seconds) {
  KeepAliveClient client(host, port);
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + std::chrono::duration<double>(timeout_seconds);
  double first = -1, first_at = 0, last = -1;
  double cpu_first = -1, cpu_last = -1;
  std::chrono::steady_clock::time_point last_change = start;
  while (std::chrono::steady_clock::now() < deadline) {
    const double applied = AppliedEvents(client);
    const double t =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (applied > 0 && first < 0) {
      first = applied;
      first_at = t;
      cpu_first = server_cpu_seconds ? server_cpu_seconds() : -1;
    }
    if (applied != last) {
      last_change = std::chrono::steady_clock::now();
      cpu_last = server_cpu_seconds ? server_cpu_seconds() : -1;
    }
    last = applied;
    if (applied >= static_cast<double>(target)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const double end = std::chrono::duration<double>(last_change - start).count();
  std::printf(
      "applied=%.0f target=%llu; from first progress (%.2fs) to last (%.2fs): %.0f events/s\n",
      last, static_cast<unsigned long long>(target), first_at, end,
      end > first_at ? (last - first) / (end - first_at) : 0.0);
  if (cpu_first >= 0 && cpu_last > cpu_first && last > first && end > first_at) {
    const double cpu = cpu_last - cpu_first;
    std::printf("server cpu: %.2f cores busy; %.2f us CPU per event\n", cpu / (end - first_at),
                cpu / (last - first) * 1e6);
  }
  return last >= static_cast<double>(target) ? 0 : 1;
}

}  // namespace ecrm::bench
