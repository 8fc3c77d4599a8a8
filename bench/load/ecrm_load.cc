// ecrm-load: the end-to-end load tool. Drives a running ecrm over HTTP on loopback and reports
// throughput and latency percentiles (client-side, and server-side from ecrm's own histograms).
//
//   ecrm-load collect     --target 127.0.0.1:8080 --write-key K [--connections 4 --batch 100
//   --seconds 10] ecrm-load personalize --target 127.0.0.1:8080 --read-key R  [--connections 4
//   --seconds 10]
//
// Bounded: it stops after --seconds (or --max-requests) and only ever targets the given address.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/escaping.h"
#include "bench/load/event_generator.h"
#include "bench/load/http_client.h"
#include "bench/load/kafka_load.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string mode;
  std::string target = "127.0.0.1:8080";
  std::string write_key;
  std::string read_key;
  int connections = 4;
  int batch = 100;
  double seconds = 10;
  uint64_t max_requests = 0;  // 0 = until --seconds
  uint64_t visitors = 100000;
  double zipf = 1.1;
  int server_pid = 0;  // if set, the server's CPU time is read from /proc to report CPU per request
  std::string run_id;
};

// Cumulative bucket counts of ecrm_http_request_duration_seconds for one route, from /metrics text.
std::map<double, double> ServerBuckets(ecrm::bench::KeepAliveClient& client,
                                       const std::string& route) {
  std::string text;
  std::map<double, double> buckets;
  if (client.Request("GET", "/metrics", "", "", &text) != 200) return buckets;
  const std::string prefix = "ecrm_http_request_duration_seconds_bucket{";
  size_t pos = 0;
  while ((pos = text.find(prefix, pos)) != std::string::npos) {
    const size_t end = text.find('\n', pos);
    const std::string line = text.substr(pos, end - pos);
    pos = end;
    if (line.find("route=\"" + route + "\"") == std::string::npos) continue;
    const size_t le = line.find("le=\"");
    const std::string bound = line.substr(le + 4, line.find('"', le + 4) - le - 4);
    const double b = bound == "+Inf" ? INFINITY : std::stod(bound);
    buckets[b] = std::stod(line.substr(line.rfind(' ') + 1));
  }
  return buckets;
}

// The q-quantile from cumulative bucket deltas, interpolating linearly inside a bucket.
double BucketQuantile(const std::map<double, double>& before, const std::map<double, double>& after,
                      double q) {
  std::vector<std::pair<double, double>> cum;
  for (const auto& [bound, count] : after) {
    const auto it = before.find(bound);
    cum.emplace_back(bound, count - (it == before.end() ? 0 : it->second));
  }
  if (cum.empty() || cum.back().second <= 0) return NAN;
  const double rank = q * cum.back().second;
  double prev_bound = 0, prev_count = 0;
  for (const auto& [bound, count] : cum) {
    if (count >= rank) {
      if (std::isinf(bound)) return prev_bound;
      const double in_bucket = count - prev_count;
      return prev_bound +
             (bound - prev_bound) * (in_bucket > 0 ? (rank - prev_count) / in_bucket : 0);
    }
    prev_bound = bound;
    prev_count = count;
  }
  return prev_bound;
}

// utime + stime of a process in seconds, from /proc/<pid>/stat; -1 if unreadable.
double ProcessCpuSeconds(int pid) {
  std::FILE* f = std::fopen(("/proc/" + std::to_string(pid) + "/stat").c_str(), "r");
  if (!f) return -1;
  char buf[4096];
  const size_t n = std::fread(buf, 1, sizeof(buf) - 1, f);
  std::fclose(f);
  buf[n] = 0;
  const char* p = std::strrchr(buf, ')');  // the command name may contain spaces
  if (!p) return -1;
  unsigned long long utime = 0, stime = 0;
  // Fields after ')': state(3) ... utime(14) stime(15).
  if (std::sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) !=
      2) {
    return -1;
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double Percentile(std::vector<double>& v, double q) {
  if (v.empty()) return NAN;
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(i), v.end());
  return v[i];
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"ecrm-load: drive a running ecrm and measure it"};
  app.add_option(
         "mode", o.mode,
         "collect | personalize | kafka-produce (fill the topic) | watch (time ecrm draining it)")
      ->required()
      ->check(CLI::IsMember({"collect", "personalize", "kafka-produce", "watch"}));
  std::string brokers, topic = "ecrm.events";
  uint64_t kafka_events = 1000000;
  app.add_option("--kafka-brokers", brokers, "kafka-produce: bootstrap servers");
  app.add_option("--kafka-topic", topic, "kafka-produce: topic")->capture_default_str();
  app.add_option("--events", kafka_events,
                 "kafka-produce: events to produce; watch: applied events to wait for")
      ->capture_default_str();
  app.add_option("--target", o.target, "ecrm HOST:PORT (loopback)")->capture_default_str();
  app.add_option("--write-key", o.write_key, "collector write key");
  app.add_option("--read-key", o.read_key, "personalization read key (or the admin token)");
  app.add_option("--connections", o.connections, "parallel keep-alive connections")
      ->capture_default_str();
  app.add_option("--batch", o.batch, "events per /v1/batch request")->capture_default_str();
  app.add_option("--seconds", o.seconds, "run time")->capture_default_str();
  app.add_option("--max-requests", o.max_requests, "stop after this many requests in all");
  app.add_option("--visitors", o.visitors, "distinct visitors (Zipf-distributed)")
      ->capture_default_str();
  app.add_option("--zipf", o.zipf, "Zipf exponent")->capture_default_str();
  app.add_option("--run-id", o.run_id, "seeds the random messageIds (default: time-based)");
  app.add_option("--server-pid", o.server_pid,
                 "pid of the ecrm process, to report its CPU time per request and per event");
  CLI11_PARSE(app, argc, argv);
  if (o.run_id.empty()) {
    o.run_id = "load" + std::to_string(std::chrono::system_clock::now().time_since_epoch().count());
  }
  if (o.mode == "kafka-produce") {
    ecrm::bench::GeneratorOptions g;
    g.visitors = o.visitors;
    g.zipf_exponent = o.zipf;
    g.run_id = o.run_id;
    return ecrm::bench::KafkaProduce(brokers, topic, kafka_events, g);
  }
  const auto colon = o.target.rfind(':');
  const std::string host = o.target.substr(0, colon);
  const auto port = static_cast<uint16_t>(std::stoi(o.target.substr(colon + 1)));
  if (o.mode == "watch") {
    std::function<double()> cpu;
    if (o.server_pid) cpu = [pid = o.server_pid] { return ProcessCpuSeconds(pid); };
    return ecrm::bench::WatchApplied(host, port, kafka_events, o.seconds, cpu);
  }
  const bool collect = o.mode == "collect";
  const std::string route = collect ? "collect_batch" : "personalize";
  const std::string headers = collect ? "Content-Type: application/json\r\nAuthorization: Basic " +
                                            absl::Base64Escape(o.write_key + ":") + "\r\n"
                                      : "Authorization: Bearer " + o.read_key + "\r\n";

  ecrm::bench::KeepAliveClient control(host, port);
  const auto server_before = ServerBuckets(control, route);

  const double cpu_before = o.server_pid ? ProcessCpuSeconds(o.server_pid) : -1;
  std::atomic<uint64_t> requests{0}, events{0}, errors{0};
  std::mutex mu;
  std::vector<double> latencies;
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::duration<double>(o.seconds);
  std::vector<std::thread> threads;
  for (int t = 0; t < o.connections; t++) {
    threads.emplace_back([&, t] {
      ecrm::bench::GeneratorOptions g;
      g.visitors = o.visitors;
      g.zipf_exponent = o.zipf;
      g.seed = static_cast<uint64_t>(t) + 1;
      g.run_id = o.run_id;
      ecrm::bench::EventGenerator gen(g);
      ecrm::bench::ZipfSampler zipf(o.visitors, o.zipf);
      std::mt19937_64 rng(static_cast<uint64_t>(t) + 100);
      ecrm::bench::KeepAliveClient client(host, port);
      std::vector<double> mine;
      std::string body, response;
      while (Clock::now() < deadline) {
        if (o.max_requests && requests.fetch_add(1) >= o.max_requests) break;
        if (!o.max_requests) requests.fetch_add(1);
        int status;
        const auto t0 = Clock::now();
        if (collect) {
          body = gen.Batch(o.batch);
          status = client.Request("POST", "/v1/batch", headers, body, &response);
        } else {
          const std::string target = "/v1/personalize/anonymous_id:" +
                                     ecrm::bench::EventGenerator::VisitorId(zipf.Sample(rng));
          status = client.Request("GET", target, headers, "", &response);
        }
        mine.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
        if (status == 200) {
          if (collect) events.fetch_add(static_cast<uint64_t>(o.batch));
        } else {
          errors.fetch_add(1);
          if (status == 429) std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
      }
      std::lock_guard<std::mutex> lock(mu);
      latencies.insert(latencies.end(), mine.begin(), mine.end());
    });
  }
  for (auto& th : threads) th.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  const double cpu_after = o.server_pid ? ProcessCpuSeconds(o.server_pid) : -1;
  const auto server_after = ServerBuckets(control, route);

  const uint64_t done = latencies.size();
  std::printf("mode=%s connections=%d batch=%d elapsed=%.2fs\n", o.mode.c_str(), o.connections,
              collect ? o.batch : 0, elapsed);
  std::printf("requests=%llu (%.0f/s) errors=%llu\n", static_cast<unsigned long long>(done),
              static_cast<double>(done) / elapsed, static_cast<unsigned long long>(errors.load()));
  if (collect) {
    std::printf("events acknowledged=%llu (%.0f events/s)\n",
                static_cast<unsigned long long>(events.load()),
                static_cast<double>(events.load()) / elapsed);
  }
  std::printf("client latency ms: p50=%.3f p90=%.3f p99=%.3f p99.9=%.3f\n",
              Percentile(latencies, 0.5) * 1e3, Percentile(latencies, 0.9) * 1e3,
              Percentile(latencies, 0.99) * 1e3, Percentile(latencies, 0.999) * 1e3);
  std::printf(
      "server latency ms (ecrm_http_request_duration_seconds, route=%s): p50=%.3f p99=%.3f\n",
      route.c_str(), BucketQuantile(server_before, server_after, 0.5) * 1e3,
      BucketQuantile(server_before, server_after, 0.99) * 1e3);
  if (cpu_before >= 0 && cpu_after >= 0 && !latencies.empty()) {
    const double cpu = cpu_after - cpu_before;
    const double units =
        collect ? static_cast<double>(events.load()) : static_cast<double>(latencies.size());
    std::printf(
        "server cpu: %.2f cores busy; %.2f us CPU per %s => %.0f %s/s per fully used core\n",
        cpu / elapsed, cpu / units * 1e6, collect ? "event" : "request", units / cpu,
        collect ? "events" : "requests");
  }
  return errors.load() > 0 && done > 0 && errors.load() == done ? 1 : 0;
}
