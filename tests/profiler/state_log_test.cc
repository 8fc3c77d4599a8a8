// The engine with a state log (deferred mode, profiler/state_log.h): batches reach the store only
// once their epoch has committed, acknowledgements wait for it, the shards read their own
// uncommitted writes, and a stop before the commit leaves the store as it was.
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <map>
#include <mutex>
#include <thread>
#include <utility>

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
  StatusOr<uint64_t> Append(const WriteBatch& batch,
                            std::span<const OutboundMessage> messages) override {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& m : messages) outbound_.push_back(m);
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
  std::vector<OutboundMessage> outbound() {
    std::lock_guard<std::mutex> lock(mu_);
    return outbound_;
  }
  std::vector<OutboundMessage> TakeOutbound() {
    std::lock_guard<std::mutex> lock(mu_);
    return std::exchange(outbound_, {});
  }

 private:
  std::mutex mu_;
  uint64_t epoch_ = 1;
  size_t appended_ = 0;
  std::map<uint32_t, std::vector<std::string>> records_;
  std::vector<OutboundMessage> outbound_;
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

// Two instances of one cluster, each with its own store and log, owning half of the partitions:
// what one sends to a partition of the other goes through its log (as the internal topic would
// carry it), and the other handles it as it would a local message.
class TwoInstancesTest : public ::testing::Test {
 protected:
  struct Instance {
    testing::TempDir dir;
    prometheus::Registry registry;
    RecordingLog log;
    std::unique_ptr<KvStore> store;
    std::unique_ptr<ProfileEngine> engine;
  };

  void SetUp() override {
    for (int i = 0; i < 2; i++) {
      Instance& in = instances_[i];
      auto store = KvStore::Open({.path = in.dir.Sub("db")});
      ASSERT_TRUE(store.ok()) << store.status();
      in.store = *std::move(store);
      EngineOptions options;
      options.shards = 2;
      options.partitions = kPartitions;
      options.owned_by_assignment = true;
      options.shard.state_log = &in.log;
      auto engine = ProfileEngine::Create(*in.store, in.registry, options);
      ASSERT_TRUE(engine.ok()) << engine.status();
      in.engine = *std::move(engine);
      in.engine->Start();
      std::vector<uint32_t> mine;
      for (uint32_t p = 0; p < kPartitions; p++) {
        if (Owner(p) == i) mine.push_back(p);
      }
      in.engine->SetOwned(mine, true);
    }
  }

  static int Owner(uint32_t p) { return p < kPartitions / 2 ? 0 : 1; }
  // A value whose partition the given instance owns.
  static std::string OwnedBy(int instance, const std::string& stem) {
    for (int i = 0;; i++) {
      std::string v = stem + std::to_string(i);
      if (Owner(PartitionForKey(v, kPartitions)) == instance) return v;
    }
  }

  // Commits both instances' epochs and delivers what each sent the other, until nothing moves.
  // Returns the messages delivered.
  size_t Pump() {
    size_t delivered = 0;
    for (int round = 0; round < 50; round++) {
      size_t moved = 0;
      for (auto& in : instances_) {
        WaitIdle(*in.engine);
        in.engine->EpochCommitted(in.log.Close(), std::make_shared<Checkpoints>());
      }
      for (auto& in : instances_) {
        for (auto& out : in.log.TakeOutbound()) {
          auto m = DecodeShardMessage(out.data);
          EXPECT_TRUE(m.ok()) << m.status();
          if (!m.ok()) continue;
          EXPECT_EQ(DestinationPartition(*m), out.partition);
          Instance& to = instances_[Owner(out.partition)];
          EXPECT_NE(&to, &in) << MessageName(*m) << " sent through the log to a local partition";
          std::vector<ShardMessage> one;
          one.push_back(*std::move(m));
          EXPECT_TRUE(
              to.engine->SubmitMessages(std::move(one), [](Status s) { EXPECT_TRUE(s.ok()) << s; })
                  .ok());
          moved++;
        }
      }
      delivered += moved;
      if (moved == 0) break;
    }
    for (auto& in : instances_) {  // the last deliveries' epochs, and the stores settle
      WaitIdle(*in.engine);
      in.engine->EpochCommitted(in.log.Close(), std::make_shared<Checkpoints>());
      in.engine->Sync();  // the committed batches are in the store (written asynchronously)
    }
    return delivered;
  }

  static void WaitIdle(ProfileEngine& engine) {
    for (int i = 0; i < 5000 && !engine.Idle(); i++) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    ASSERT_TRUE(engine.Idle());
  }

  std::future<Status> Submit(int instance, std::vector<Event> events) {
    auto done = std::make_shared<std::promise<Status>>();
    auto future = done->get_future();
    EXPECT_TRUE(instances_[instance]
                    .engine->Submit(std::move(events), [done](Status s) { done->set_value(s); })
                    .ok());
    return future;
  }

  // The profile an identifier leads to, read from the instance owning the identifier's
  // partition, then the profile from the instance owning the profile's partition.
  std::optional<Profile> Read(const std::string& type, const std::string& value) {
    const uint32_t p = PartitionForKey(value, kPartitions);
    auto record = instances_[Owner(p)].store->Get(Cf::kIdentities, IdentityKey(p, type, value));
    EXPECT_TRUE(record.ok());
    if (!record.ok() || !record->has_value()) return std::nullopt;
    const std::string id = DecodeIdentityRecord(**record).profile_id;
    auto profile = instances_[Owner(*PartitionOfProfileId(id))].engine->LookupById(id);
    EXPECT_TRUE(profile.ok());
    return profile.ok() ? *profile : std::nullopt;
  }

  static constexpr uint32_t kPartitions = 8;
  Instance instances_[2];
};

TEST_F(TwoInstancesTest, FollowUpsForTheOtherInstanceGoThroughTheLogAndArriveOnce) {
  const std::string anon = OwnedBy(0, "anon-");
  const std::string user = OwnedBy(1, "user-");
  Event identify = Track(anon, "m1");
  identify.type = EventType::kIdentify;
  identify.user_id = user;
  auto first = Submit(0, {identify});
  WaitIdle(*instances_[0].engine);
  // The claim of the user id waits in the log for the epoch, and so does the acknowledgement.
  const auto sent = instances_[0].log.outbound();
  ASSERT_EQ(sent.size(), 1u);
  auto claim = DecodeShardMessage(sent[0].data);
  ASSERT_TRUE(claim.ok());
  ASSERT_TRUE(std::holds_alternative<msg::ClaimIdentity>(*claim)) << MessageName(*claim);
  EXPECT_EQ(std::get<msg::ClaimIdentity>(*claim).value, user);
  EXPECT_EQ(first.wait_for(std::chrono::milliseconds(50)), std::future_status::timeout);
  EXPECT_GE(Pump(), 1u);
  ASSERT_EQ(first.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_TRUE(first.get().ok());

  // The user id leads to the profile on the other instance, which lists it.
  auto profile = Read("user_id", user);
  ASSERT_TRUE(profile.has_value());
  EXPECT_EQ(Owner(*PartitionOfProfileId(profile->id)), 0);
  EXPECT_EQ(profile->stats.events, 1);

  // An event known only by the user id goes to instance 1, which forwards it to the profile.
  Event later = Track("", "m2");
  later.user_id = user;
  auto second = Submit(1, {later, later});  // and its duplicate
  EXPECT_GE(Pump(), 1u);
  ASSERT_EQ(second.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_TRUE(second.get().ok());
  profile = Read("user_id", user);
  ASSERT_TRUE(profile.has_value());
  EXPECT_EQ(profile->stats.events, 2);
  auto by_anon = Read("anonymous_id", anon);
  ASSERT_TRUE(by_anon.has_value());
  EXPECT_EQ(by_anon->id, profile->id);
}

TEST_F(TwoInstancesTest, AMergeAcrossInstancesKeepsEveryEventOnce) {
  // Two devices, each on its own instance, then the same user id on both: one profile.
  const std::string a = OwnedBy(0, "dev-a-");
  const std::string b = OwnedBy(1, "dev-b-");
  const std::string user = OwnedBy(1, "user-");
  std::vector<std::future<Status>> acks;
  acks.push_back(Submit(0, {Track(a, "a1"), Track(a, "a2")}));
  acks.push_back(Submit(1, {Track(b, "b1")}));
  Pump();
  Event ia = Track(a, "a3");
  ia.type = EventType::kIdentify;
  ia.user_id = user;
  Event ib = Track(b, "b2");
  ib.type = EventType::kIdentify;
  ib.user_id = user;
  acks.push_back(Submit(0, {ia}));
  acks.push_back(Submit(1, {ib}));
  Pump();
  for (auto& f : acks) {
    ASSERT_EQ(f.wait_for(std::chrono::seconds(5)), std::future_status::ready);
    EXPECT_TRUE(f.get().ok());
  }
  auto pa = Read("anonymous_id", a);
  auto pb = Read("anonymous_id", b);
  auto pu = Read("user_id", user);
  ASSERT_TRUE(pa && pb && pu);
  EXPECT_EQ(pa->id, pu->id);
  EXPECT_EQ(pb->id, pu->id);
  EXPECT_EQ(pu->stats.events, 5);
}

TEST_F(TwoInstancesTest, APartitionGivenUpIsWrittenByItsNewOwner) {
  // Instance 0 gives up the partition of `anon`: an event for it that it still receives (queued
  // before the move) is relayed to instance 1 instead of written here.
  const std::string anon = OwnedBy(0, "moved-");
  const uint32_t p = PartitionForKey(anon, kPartitions);
  instances_[0].engine->SetOwned({p}, false);
  auto ack = Submit(0, {Track(anon, "x1")});
  WaitIdle(*instances_[0].engine);
  const auto sent = instances_[0].log.outbound();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].partition, p);
  // Delivered by hand: in this test the partition's owner is still computed as instance 0.
  auto m = DecodeShardMessage(sent[0].data);
  ASSERT_TRUE(m.ok());
  EXPECT_TRUE(std::holds_alternative<msg::RouteEvent>(*m));
  instances_[0].engine->EpochCommitted(instances_[0].log.Close(), std::make_shared<Checkpoints>());
  ASSERT_EQ(ack.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_TRUE(ack.get().ok());
  auto local = instances_[0].engine->Lookup("anonymous_id", anon);
  ASSERT_TRUE(local.ok());
  EXPECT_FALSE(local->has_value()) << "written by an instance that gave the partition up";
  instances_[1].engine->SetOwned({p}, true);
  std::vector<ShardMessage> one;
  one.push_back(*std::move(m));
  auto done = std::make_shared<std::promise<Status>>();
  auto relayed = done->get_future();
  ASSERT_TRUE(instances_[1]
                  .engine->SubmitMessages(std::move(one), [done](Status s) { done->set_value(s); })
                  .ok());
  WaitIdle(*instances_[1].engine);
  instances_[1].engine->EpochCommitted(instances_[1].log.Close(), std::make_shared<Checkpoints>());
  ASSERT_EQ(relayed.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  auto there = instances_[1].engine->Lookup("anonymous_id", anon);
  ASSERT_TRUE(there.ok() && there->has_value());
  EXPECT_EQ((*there)->stats.events, 1);
}

}  // namespace
}  // namespace ecrm
