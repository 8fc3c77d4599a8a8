#include "api/rate_limiter.h"

#include <algorithm>

namespace ecrm {

RateLimiter::RateLimiter(const std::vector<std::string>& keys, int64_t events_per_second,
                         const Clock& clock, int64_t min_burst)
    : rate_(events_per_second), burst_(std::max(events_per_second, min_burst)), clock_(clock) {
  for (const auto& key : keys) {
    auto bucket = std::make_unique<Bucket>();
    bucket->tokens = burst_;
    bucket->refilled_at = clock_.NowMs();
    buckets_[key] = std::move(bucket);
  }
}

void RateLimiter::Refill(Bucket& b) {
  const TimeMs now = clock_.NowMs();
  TimeMs last = b.refilled_at.load(std::memory_order_relaxed);
  if (now <= last || !b.refilled_at.compare_exchange_strong(last, now)) return;
  const int64_t add = rate_ * (now - last) / 1000;
  int64_t t = b.tokens.fetch_add(add, std::memory_order_relaxed) + add;
  while (t > burst_ && !b.tokens.compare_exchange_weak(t, burst_)) {
  }
}

void RateLimiter::Refund(const std::string& key, int64_t events) {
  if (rate_ <= 0) return;
  const auto it = buckets_.find(key);
  if (it != buckets_.end()) it->second->tokens.fetch_add(events, std::memory_order_relaxed);
}

bool RateLimiter::TryAcquire(const std::string& key, int64_t events) {
  if (rate_ <= 0) return true;
  const auto it = buckets_.find(key);
  if (it == buckets_.end()) return true;
  Bucket& b = *it->second;
  Refill(b);
  if (b.tokens.fetch_sub(events, std::memory_order_relaxed) - events < 0) {
    b.tokens.fetch_add(events, std::memory_order_relaxed);
    return false;
  }
  return true;
}

}  // namespace ecrm
