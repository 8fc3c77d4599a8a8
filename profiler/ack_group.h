// AckGroup: counts the pieces of work one request spawned across shards and calls its callback
// once, when the last piece is durable (or failed). Created by the engine per request, shared
// (shared_ptr) by every task the request spawns. Thread-safe: Add/Done may be called from any shard
// thread.
#pragma once

#include <atomic>
#include <functional>
#include <mutex>

#include "common/status.h"

namespace ecrm {

class AckGroup {
 public:
  using Callback = std::function<void(Status)>;
  AckGroup(int pending, Callback callback) : pending_(pending), callback_(std::move(callback)) {}

  // Registers `n` more pieces of work; call before handing them to another shard.
  void Add(int n) { pending_.fetch_add(n, std::memory_order_relaxed); }

  // One piece is finished. The first error wins; the callback runs on the thread of the last Done.
  void Done(const Status& status) {
    if (!status.ok()) {
      std::lock_guard<std::mutex> lock(error_mu_);  // taken only on failure
      if (error_.ok()) error_ = status;
    }
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      Status result;
      {
        std::lock_guard<std::mutex> lock(error_mu_);
        result = error_;
      }
      callback_(result);
    }
  }

 private:
  std::atomic<int> pending_;
  std::mutex error_mu_;
  Status error_;
  Callback callback_;
};

}  // namespace ecrm
