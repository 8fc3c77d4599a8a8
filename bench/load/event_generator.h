// EventGenerator: a realistic synthetic clickstream for benchmarks and the load tool. Visitors are
// drawn from a Zipf distribution; each visit is ~20 events (pages, product views, adds, sometimes
// an order) of ~600 bytes of Segment-spec JSON, with a unique messageId. Deterministic for a seed.
// Not thread-safe: one generator per thread.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace ecrm::bench {

class ZipfSampler {
 public:
  ZipfSampler(uint64_t n, double exponent);
  uint64_t Sample(std::mt19937_64& rng) const;  // 0..n-1, 0 most frequent

 private:
  std::vector<double> cdf_;
};

struct GeneratorOptions {
  uint64_t visitors = 100000;
  double zipf_exponent = 1.1;
  int events_per_visit = 20;
  uint64_t seed = 1;
  std::string run_id = "r";  // seeds the messageIds, so separate runs never deduplicate
  // The client time of the first event ("timestamp"); later events advance 1 ms per 100 events.
  int64_t start_time_ms = 1'795'341'600'000;  // 2026-11-22T10:00:00Z
};

class EventGenerator {
 public:
  explicit EventGenerator(const GeneratorOptions& options);
  // Appends one event object (no trailing comma) to `out`.
  void AppendEvent(std::string* out);
  // A whole /v1/batch body of `n` events.
  std::string Batch(int n);
  // The anonymous id of visitor i (for personalization reads).
  static std::string VisitorId(uint64_t i);

 private:
  GeneratorOptions options_;
  ZipfSampler zipf_;
  std::mt19937_64 rng_;
  std::mt19937_64 id_rng_;  // messageIds: random like the UUIDs of real tracking libraries
  uint64_t visitor_ = 0;
  int remaining_ = 0;
  uint64_t seq_ = 0;
};

}  // namespace ecrm::bench
