// The engine with a state log (deferred mode, profiler/state_log.h): batches reach the store only
// once their epoch has committed, acknowledgements wait for it, the shards read their own
// uncommitted writes, and a stop before the commit leaves the store as it was.
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <map>
#include <mutex>
#include <thread>

#include "common/murmur2.h"
#include "profiler/engine.h"
#include "profiler/profile_codec.h"
#include "store/keys.h"
#include "tests/testutil/temp_dir.h"

namespace ecrm {
namespace {

// Records what the shards append, per epoch; the test decides when an epoch commits.
class RecordingLog final : public StateLog {
 public:
  StatusOr<uint64_t> Append(const WriteBatch& batch) override {
    std::lock_guard<std::mutex> lock(mu_);
    batch.ForEach([&](Cf cf, std::string_view key, const std::string_view* value) {
      const auto p = PartitionOfKey(static_cast<int>(cf), key);
      if (!p) return;
      records_[*p].push_back(EncodeChangelogKey(static_cast<int>(cf), key) + "=" +
                             (value ? std::string(*value) : "<deleted>"));
    });
    appended_++;
    return epoch_;
  }
  // Closes the open epoch; the caller reports it committed to the engine.
  uint64_t Close() {
    std::lock_guard<std::mutex> lock(mu_);
    return epoch_++;
  }
  size_t appended() {
    std::lock_guard<std::mutex> lock(mu_);
    return appended_;
  }
  size_t records(uint32_t p) {
    std::lock_guard<std::mutex> lock(mu_);
    return records_[p].size();
  }

 private:
  std::mutex mu_;
  uint64_t epoch_ = 1;
  size_t appended_ = 0;
  std::map<uint32_t, std::vector<std::string>> records_;
};

Event Track(const std::string& anon, const std::string& message_id) {
  Event e;
  e.type = EventType::kTrack;
  e.event = "Clicked";
  e.anonymous_id = anon;
  e.message_id = message_id;
  e.timestamp = 1'790'000'000'000;
  e.received_at = e.timestamp;
  return e;
}

class StateLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = KvStore::Open({.path = dir_.Sub("db")});
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    EngineOptions options;
    options.shards = 2;
    options.partitions = 8;
    options.shard.state_log = &log_;
    options.shard.cache_capacity = 1;  // evicted between batches: reads must see the overlay
    auto engine = ProfileEngine::Create(*store_, registry_, options);
    ASSERT_TRUE(engine.ok()) << engine.status();
    engine_ = *std::move(engine);
    engine_->Start();
  }

  std::future<Status> Submit(std::vector<Event> events) {
    auto done = std::make_shared<std::promise<Status>>();
    auto future = done->get_future();
    EXPECT_TRUE(engine_->Submit(std::move(events), [done](Status s) { done->set_value(s); }).ok());
    return future;
  }

  // Waits until the shards have processed everything submitted (and appended its batches).
  void WaitForIdle() {
    for (int i = 0; i < 5000 && !engine_->Idle(); i++) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    ASSERT_TRUE(engine_->Idle());
  }

  int64_t StoredEvents(const std::string& anon) {
    auto p = engine_->Lookup("anonymous_id", anon);
    EXPECT_TRUE(p.ok());
    return p.ok() && p->has_value() ? (*p)->stats.events : -1;
  }

  testing::TempDir dir_;
  prometheus::Registry registry_;
  RecordingLog log_;
  std::unique_ptr<KvStore> store_;
  std::unique_ptr<ProfileEngine> engine_;
};

TEST_F(StateLogTest, BatchesWaitForTheirEpochAndShardsReadTheirOwnWrites) {
  auto first = Submit({Track("a", "m1"), Track("b", "m2")});
  WaitForIdle();
  ASSERT_GE(log_.appended(), 1u);
  EXPECT_EQ(first.wait_for(std::chrono::milliseconds(50)), std::future_status::timeout)
      << "acknowledged before the epoch committed";
  EXPECT_EQ(StoredEvents("a"), -1) << "in the store before the epoch committed";

  // The same visitor again, and a duplicate: the shard must read "a" from its uncommitted writes
  // (the cache holds one profile, so it was evicted).
  const size_t before = log_.appended();
  auto second = Submit({Track("a", "m3"), Track("b", "m4"), Track("a", "m1")});
  WaitForIdle();
  EXPECT_GT(log_.appended(), before);
  EXPECT_EQ(second.wait_for(std::chrono::milliseconds(50)), std::future_status::timeout);

  const uint64_t epoch = log_.Close();
  engine_->EpochCommitted(epoch, std::make_shared<Checkpoints>(Checkpoints{{0, 17}, {5, 3}}));
  ASSERT_EQ(first.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  ASSERT_EQ(second.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_TRUE(first.get().ok());
  EXPECT_TRUE(second.get().ok());
  EXPECT_EQ(StoredEvents("a"), 2);  // m1 once, m3
  EXPECT_EQ(StoredEvents("b"), 2);
  // The checkpoints were written with the epoch, by the shards owning those partitions (each
  // shard on its own thread: a shard whose batches carried none of these acks may be later).
  for (uint32_t p : {0u, 5u}) {
    auto stored = store_->Get(Cf::kMeta, ChangelogCheckpointKey(p));
    for (int i = 0; i < 5000 && stored.ok() && !stored->has_value(); i++) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      stored = store_->Get(Cf::kMeta, ChangelogCheckpointKey(p));
    }
    ASSERT_TRUE(stored.ok() && stored->has_value()) << p;
    EXPECT_EQ(DecodeFixed64((*stored)->data()), p == 0 ? 17u : 3u);
  }
  const uint32_t pa = PartitionForKey("a", 8);
  EXPECT_GE(log_.records(pa), 2u);  // its profile and identity record, at least
}

TEST_F(StateLogTest, AStopBeforeTheCommitLeavesTheStoreAsItWasAndFailsTheAcks) {
  auto pending = Submit({Track("c", "m1")});
  WaitForIdle();
  ASSERT_GE(log_.appended(), 1u);
  engine_->Stop();
  ASSERT_EQ(pending.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_TRUE(absl::IsUnavailable(pending.get()));
  EXPECT_EQ(StoredEvents("c"), -1);
}

}  // namespace
}  // namespace ecrm
