#include "bench/load/event_generator.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>

#include "common/time_format.h"

namespace ecrm::bench {

ZipfSampler::ZipfSampler(uint64_t n, double exponent) : cdf_(n) {
  double sum = 0;
  for (uint64_t i = 0; i < n; i++) {
    sum += 1.0 / std::pow(static_cast<double>(i + 1), exponent);
    cdf_[i] = sum;
  }
  for (auto& c : cdf_) c /= sum;
}

uint64_t ZipfSampler::Sample(std::mt19937_64& rng) const {
  const double u = std::uniform_real_distribution<double>(0, 1)(rng);
  return static_cast<uint64_t>(std::lower_bound(cdf_.begin(), cdf_.end(), u) - cdf_.begin());
}

EventGenerator::EventGenerator(const GeneratorOptions& options)
    : options_(options),
      zipf_(options.visitors, options.zipf_exponent),
      rng_(options.seed),
      id_rng_(std::hash<std::string>{}(options.run_id) ^ (options.seed * 0x9e3779b97f4a7c15ULL)) {}

namespace {

// A version-4 UUID from two random words, as analytics-node and rudder-sdk-node send them.
std::string Uuid(uint64_t a, uint64_t b) {
  a = (a & ~0xf000ULL) | 0x4000ULL;        // version 4
  b = (b & ~(3ULL << 62)) | (2ULL << 62);  // variant 10
  char buf[40];
  std::snprintf(
      buf, sizeof(buf), "%08llx-%04llx-%04llx-%04llx-%012llx",
      static_cast<unsigned long long>(a >> 32), static_cast<unsigned long long>((a >> 16) & 0xffff),
      static_cast<unsigned long long>(a & 0xffff), static_cast<unsigned long long>(b >> 48),
      static_cast<unsigned long long>(b & 0xffffffffffffULL));
  return buf;
}

}  // namespace

std::string EventGenerator::VisitorId(uint64_t i) { return "anon-" + std::to_string(i); }

void EventGenerator::AppendEvent(std::string* out) {
  if (remaining_ <= 0) {
    visitor_ = zipf_.Sample(rng_);
    remaining_ = options_.events_per_visit / 2 +
                 static_cast<int>(rng_() % static_cast<uint64_t>(options_.events_per_visit + 1));
  }
  remaining_--;
  static const char* kCategories[] = {"shoes", "bags", "shirts", "watches", "toys", "books"};
  const uint64_t r = rng_();
  const char* category = kCategories[r % 6];
  const uint64_t product = (r >> 8) % 5000;
  const std::string visitor = VisitorId(visitor_);
  const uint64_t id_hi = id_rng_();
  const std::string message_id = Uuid(id_hi, id_rng_());
  const std::string timestamp =
      FormatIso8601(options_.start_time_ms + static_cast<int64_t>(seq_ / 100));
  seq_++;
  const int kind = static_cast<int>((r >> 24) % 100);
  *out += R"({"messageId":")" + message_id + R"(","anonymousId":")" + visitor + "\"";
  if (kind < 40) {
    *out += R"(,"type":"page","name":"Category","properties":{"path":"/c/)" +
            std::string(category) + R"(","url":"https://shop.example/c/)" + category +
            R"(","title":"Shop - )" + category + R"(","referrer":"https://www.google.com/"})";
  } else if (kind < 85) {
    *out += R"(,"type":"track","event":"Product Viewed","properties":{"product_id":"p)" +
            std::to_string(product) + R"(","category":")" + category + R"(","name":"Product )" +
            std::to_string(product) + R"(","price":)" + std::to_string(10 + product % 90) +
            R"(,"currency":"EUR"})";
  } else if (kind < 97) {
    *out +=
        R"(,"type":"track","event":"Product Added","properties":{"cart_id":"c1","product_id":"p)" +
        std::to_string(product) + R"(","category":")" + category + R"(","quantity":1})";
  } else {
    *out += R"(,"type":"track","event":"Order Completed","properties":{"order_id":"o)" +
            std::to_string(seq_) + R"(","revenue":)" + std::to_string(20 + product % 200) +
            R"(,"currency":"EUR","products":[{"product_id":"p)" + std::to_string(product) +
            R"(","category":")" + category + R"("}]})";
  }
  *out += R"(,"timestamp":")" + timestamp + R"(")";
  *out +=
      R"(,"context":{"library":{"name":"analytics.js","version":"npm:next-1.84.3"},"userAgent":"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36","locale":"de-DE","page":{"path":"/","url":"https://shop.example/","referrer":""},"campaign":{"source":"newsletter","medium":"email","name":"autumn"}}})";
}

std::string EventGenerator::Batch(int n) {
  std::string out = R"({"sentAt":"2026-11-22T10:00:01.000Z","batch":[)";
  for (int i = 0; i < n; i++) {
    if (i) out.push_back(',');
    AppendEvent(&out);
  }
  out += "]}";
  return out;
}

}  // namespace ecrm::bench
