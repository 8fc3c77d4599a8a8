#include "app/retention.h"

#include "common/logging.h"

namespace ecrm {

RetentionSweeper::RetentionSweeper(ProfileEngine& engine, const Clock& clock, int retention_days,
                                   int sweep_seconds)
    : engine_(engine),
      clock_(clock),
      retention_ms_(static_cast<TimeMs>(retention_days) * 24 * 3600 * 1000),
      interval_(sweep_seconds) {
  thread_ = std::thread([this] { Run(); });
}

RetentionSweeper::~RetentionSweeper() { Stop(); }

void RetentionSweeper::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void RetentionSweeper::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    lock.unlock();
    const TimeMs started = clock_.NowMs();
    auto erased = engine_.ExpireInactive(started - retention_ms_);
    if (erased.ok()) {
      if (*erased > 0) {
        spdlog::info("retention: erased {} profiles not seen for {} days ({} ms)", *erased,
                     retention_ms_ / (24 * 3600 * 1000), clock_.NowMs() - started);
      }
    } else if (!absl::IsUnavailable(erased.status())) {  // Unavailable: the engine is stopping
      spdlog::error("retention: the sweep failed: {}; retried at the next one",
                    erased.status().ToString());
    }
    lock.lock();
    wake_.wait_for(lock, interval_, [this] { return stopping_; });
  }
}

}  // namespace ecrm
