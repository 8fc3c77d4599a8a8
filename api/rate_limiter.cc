#include "api/rate_limiter.h"

#include <algorithm>

namespace ecrm {

// Tokens are kept in thousandths, so a refill of `rate_` tokens per second adds exactly `rate_`
// thousandths per elapsed millisecond: no fraction is ever dropped, however often the bucket is
// refilled (a refill at every millisecond earns the same as one refill a second later).
namespace {
constexpr int64_t kScale = 1000;
}  // namespace

RateLimiter::RateLimiter(const std::vector<std::string>& keys, int64_t events_per_second,
                         const Clock& clock, int64_t min_burst)
    : rate_(events_per_second), burst_(std::max(events_per_second, min_burst)), clock_(clock) {
  for (const auto& key : keys) {
    auto bucket = std::make_unique<Bucket>();
    bucket->milli_tokens = burst_ * kScale;
    bucket->refilled_at = clock_.NowMs();
    buckets_[key] = std::move(bucket);
  }
}

void RateLimiter::Refill(Bucket& b) {
  const TimeMs now = clock_.NowMs();
  TimeMs last = b.refilled_at.load(std::memory_order_relaxed);
  // Exactly one thread claims each elapsed interval [last, now); its tokens are added whole.
  if (now <= last || !b.refilled_at.compare_exchange_strong(last, now)) return;
  // The bucket is full after burst/rate seconds, so a longer gap needs no multiplication that
  // could overflow.
  const int64_t elapsed = std::min<int64_t>(now - last, (burst_ / rate_ + 1) * 1000);
  const int64_t add = rate_ * elapsed;
  Cap(b, b.milli_tokens.fetch_add(add, std::memory_order_relaxed) + add);
}

void RateLimiter::Cap(Bucket& b, int64_t t) {
  const int64_t full = burst_ * kScale;
  while (t > full && !b.milli_tokens.compare_exchange_weak(t, full, std::memory_order_relaxed)) {
  }
}

void RateLimiter::Refund(const std::string& key, int64_t events) {
  if (rate_ <= 0) return;
  const auto it = buckets_.find(key);
  if (it == buckets_.end()) return;
  const int64_t give = events * kScale;
  Cap(*it->second, it->second->milli_tokens.fetch_add(give, std::memory_order_relaxed) + give);
}

bool RateLimiter::TryAcquire(const std::string& key, int64_t events) {
  if (rate_ <= 0) return true;
  const auto it = buckets_.find(key);
  if (it == buckets_.end()) return true;
  Bucket& b = *it->second;
  Refill(b);
  const int64_t take = events * kScale;
  if (b.milli_tokens.fetch_sub(take, std::memory_order_relaxed) - take < 0) {
    b.milli_tokens.fetch_add(take, std::memory_order_relaxed);
    return false;
  }
  return true;
}

}  // namespace ecrm
