#include "bench/load/event_generator.h"

#include <algorithm>
#include <cmath>

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
    : options_(options), zipf_(options.visitors, options.zipf_exponent), rng_(options.seed) {}

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
  const std::string message_id =
      options_.run_id + "-" + std::to_string(options_.seed) + "-" + std::to_string(seq_++);
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
  *out +=
      R"(,"timestamp":"2026-11-22T10:00:00.000Z","context":{"library":{"name":"analytics.js","version":"npm:next-1.84.3"},"userAgent":"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36","locale":"de-DE","page":{"path":"/","url":"https://shop.example/","referrer":""},"campaign":{"source":"newsletter","medium":"email","name":"autumn"}}})";
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
