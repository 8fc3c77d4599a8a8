// RetentionSweeper: the --retention-days policy. A thread that, at start and then every
// --retention-sweep-seconds, erases the profiles not seen for the retention period
// (ProfileEngine::ExpireInactive: identifiers, aliases and the erasure ledger, as an erasure
// request does). See docs/privacy.md#retention.
//
// Ownership: created by Service after the engine, destroyed (or stopped) before it.
#pragma once

#include <condition_variable>
#include <mutex>
#include <thread>

#include "common/clock.h"
#include "profiler/engine.h"

namespace ecrm {

class RetentionSweeper {
 public:
  RetentionSweeper(ProfileEngine& engine, const Clock& clock, int retention_days,
                   int sweep_seconds);
  ~RetentionSweeper();
  RetentionSweeper(const RetentionSweeper&) = delete;
  RetentionSweeper& operator=(const RetentionSweeper&) = delete;

  // Ends the current sweep after its chunk and joins the thread. Idempotent.
  void Stop();

 private:
  void Run();

  ProfileEngine& engine_;
  const Clock& clock_;
  const TimeMs retention_ms_;
  const std::chrono::seconds interval_;
  std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace ecrm
