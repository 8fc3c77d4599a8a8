#include "profiler/engine.h"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <set>

#include "common/murmur2.h"
#include "profiler/graph_check.h"
#include "profiler/profile_codec.h"
#include "store/keys.h"
#include "tests/testutil/temp_dir.h"

namespace ecrm {
namespace {

Event MakeEvent(EventType type, std::string anon, std::string user, std::string message_id = "") {
  Event e;
  e.type = type;
  e.anonymous_id = std::move(anon);
  e.user_id = std::move(user);
  e.message_id = std::move(message_id);
  e.timestamp = 1'790'000'000'000;
  e.received_at = e.timestamp;
  if (type == EventType::kTrack) e.event = "Clicked";
  return e;
}

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override { Open(); }

  void Open(uint32_t partitions = 16) {
    engine_.reset();
    store_.reset();
    registry_ = std::make_shared<prometheus::Registry>();
    auto store = KvStore::Open({.path = dir_.Sub("db")});
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    EngineOptions options;
    options.shards = 2;
    options.partitions = partitions;
    options.clock = &clock_;
    auto engine = ProfileEngine::Create(*store_, *registry_, options);
    ASSERT_TRUE(engine.ok()) << engine.status();
    engine_ = *std::move(engine);
    engine_->Start();
  }

  Status SubmitAndWait(std::vector<Event> events) {
    std::promise<Status> done;
    auto future = done.get_future();
    Status queued = engine_->Submit(std::move(events), [&](Status s) { done.set_value(s); });
    if (!queued.ok()) return queued;
    return future.get();
  }

  int64_t Events(const std::string& type, const std::string& value) {
    auto p = engine_->Lookup(type, value);
    EXPECT_TRUE(p.ok());
    return p.ok() && p->has_value() ? (*p)->stats.events : -1;
  }

  // An anonymous id and a user id on different shards (partition parity differs with 2 shards).
  std::pair<std::string, std::string> IdsOnDifferentShards() {
    for (int i = 0;; i++) {
      const std::string a = "anon-" + std::to_string(i), u = "user-" + std::to_string(i);
      if (PartitionForKey(a, 16) % 2 != PartitionForKey(u, 16) % 2) return {a, u};
    }
  }

  Status EraseAndWait(const std::string& type, const std::string& value) {
    std::promise<Status> done;
    auto future = done.get_future();
    auto erased = engine_->DeleteProfile(type, value, [&](Status s) { done.set_value(s); });
    if (!erased.ok()) return erased.status();
    return future.get();
  }

  double Counter(const std::string& name, const std::string& label_value = "") {
    double total = 0;
    for (const auto& family : registry_->Collect()) {
      if (family.name != name) continue;
      for (const auto& m : family.metric) {
        if (!label_value.empty() && (m.label.empty() || m.label.front().value != label_value)) {
          continue;
        }
        total += m.counter.value;
      }
    }
    return total;
  }

  // Every key and value of every column family, concatenated (to look for what must be gone).
  std::string EverythingStored() {
    std::string all;
    for (Cf cf : {Cf::kProfiles, Cf::kIdentities, Cf::kMeta}) {
      (void)store_->Scan(cf, "", [&](std::string_view k, std::string_view v) {
        all.append(k).append("\n").append(v).append("\n");
        return true;
      });
    }
    return all;
  }

  ManualClock clock_{1'790'000'000'000 + 24LL * 3600 * 1000};  // a day after the events
  testing::TempDir dir_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<KvStore> store_;
  std::unique_ptr<ProfileEngine> engine_;
};

TEST_F(EngineTest, CountsEveryEventOncePerVisitor) {
  std::vector<Event> events;
  for (int i = 0; i < 300; i++) {
    events.push_back(MakeEvent(EventType::kTrack, "v" + std::to_string(i % 7), ""));
  }
  ASSERT_TRUE(SubmitAndWait(std::move(events)).ok());
  int64_t total = 0;
  for (int v = 0; v < 7; v++) total += Events("anonymous_id", "v" + std::to_string(v));
  EXPECT_EQ(total, 300);
  EXPECT_EQ(Events("anonymous_id", "v0"), 43);  // i % 7 == 0 for 43 of 0..299
  EXPECT_EQ(Events("anonymous_id", "nobody"), -1);
}

TEST_F(EngineTest, IdentifyAttachesUserAcrossShardsAndUserOnlyEventsFollow) {
  const auto [anon, user] = IdsOnDifferentShards();
  ASSERT_TRUE(SubmitAndWait({MakeEvent(EventType::kPage, anon, "")}).ok());
  Event identify = MakeEvent(EventType::kIdentify, anon, user);
  identify.email = "ada@example.com";
  ASSERT_TRUE(SubmitAndWait({identify}).ok());
  // Routed by the user id to the other shard, forwarded to the anonymous profile's owner.
  ASSERT_TRUE(SubmitAndWait({MakeEvent(EventType::kTrack, "", user)}).ok());

  auto by_anon = engine_->Lookup("anonymous_id", anon);
  auto by_user = engine_->Lookup("user_id", user);
  auto by_email = engine_->Lookup("email", "ada@example.com");
  ASSERT_TRUE(by_anon.ok() && by_anon->has_value());
  ASSERT_TRUE(by_user.ok() && by_user->has_value());
  ASSERT_TRUE(by_email.ok() && by_email->has_value());
  EXPECT_EQ((*by_anon)->id, (*by_user)->id);
  EXPECT_EQ((*by_anon)->id, (*by_email)->id);
  EXPECT_EQ((*by_anon)->stats.events, 3);
  EXPECT_TRUE((*by_anon)->HasIdentity("user_id", user));
  EXPECT_TRUE((*by_anon)->HasIdentity("email", "ada@example.com"));
}

// Dedup keys are looked up per batch in one MultiGet, keyed by the routing key's partition. An
// event whose profile lives in another partition (here: routed by the user id, applied to the
// anonymous profile on the other shard) must still be recognised when it comes again, within a
// batch and across batches and restarts.
TEST_F(EngineTest, DuplicatesOfForwardedEventsCountOnce) {
  const auto [anon, user] = IdsOnDifferentShards();
  ASSERT_TRUE(SubmitAndWait({MakeEvent(EventType::kPage, anon, "")}).ok());
  ASSERT_TRUE(SubmitAndWait({MakeEvent(EventType::kIdentify, anon, user)}).ok());
  Event e = MakeEvent(EventType::kTrack, "", user, "fw-1");
  e.client_time = 1'790'000'000'123;
  ASSERT_TRUE(SubmitAndWait({e, e}).ok());
  ASSERT_TRUE(SubmitAndWait({e}).ok());
  Open();
  ASSERT_TRUE(SubmitAndWait({e, MakeEvent(EventType::kTrack, "", user, "fw-2")}).ok());
  EXPECT_EQ(Events("user_id", user), 4);  // page, identify, fw-1, fw-2
  EXPECT_EQ(Events("anonymous_id", anon), 4);
}

TEST_F(EngineTest, DuplicateMessageIdsCountOnceEvenAcrossRestart) {
  ASSERT_TRUE(SubmitAndWait({MakeEvent(EventType::kTrack, "a", "", "m1"),
                             MakeEvent(EventType::kTrack, "a", "", "m1"),
                             MakeEvent(EventType::kTrack, "a", "", "m2")})
                  .ok());
  EXPECT_EQ(Events("anonymous_id", "a"), 2);
  Open();
  ASSERT_TRUE(SubmitAndWait({MakeEvent(EventType::kTrack, "a", "", "m2"),
                             MakeEvent(EventType::kTrack, "a", "", "m3")})
                  .ok());
  EXPECT_EQ(Events("anonymous_id", "a"), 3);
}

// A schema-1 data dir kept messageIds in dedup keys. After the upgrade its records still catch
// duplicates for one dedup window, and no longer after that.
TEST_F(EngineTest, Schema1DedupRecordsCountForOneWindowAfterUpgrade) {
  ASSERT_TRUE(SubmitAndWait({MakeEvent(EventType::kTrack, "a", "", "m0")}).ok());
  auto profile = engine_->Lookup("anonymous_id", "a");
  ASSERT_TRUE(profile.ok() && profile->has_value());
  const uint32_t partition = *PartitionOfProfileId((*profile)->id);
  engine_.reset();
  // Turn the store back into schema 1: records keyed by messageId.
  std::string ts;
  PutFixed64(&ts, 1'790'000'000'000);
  WriteBatch batch = store_->NewBatch();
  batch.Put(Cf::kDedup, LegacyDedupKey(partition, "m1"), ts);
  batch.Put(Cf::kDedup, LegacyDedupKey(partition, "m2"), ts);
  batch.Put(Cf::kMeta, kMetaSchemaVersion, "1");
  ASSERT_TRUE(store_->Write(batch).ok());

  Open();
  EXPECT_EQ(*store_->Get(Cf::kMeta, kMetaSchemaVersion), std::string(kCurrentSchemaVersion));
  auto until = store_->Get(Cf::kMeta, kMetaLegacyDedupUntil);
  ASSERT_TRUE(until.ok() && until->has_value() && (*until)->size() == 8);
  Event m1 = MakeEvent(EventType::kTrack, "a", "", "m1");
  m1.received_at = static_cast<TimeMs>(DecodeFixed64((*until)->data())) - 1;
  Event m3 = MakeEvent(EventType::kTrack, "a", "", "m3");
  m3.received_at = m1.received_at;
  ASSERT_TRUE(SubmitAndWait({m1, m3}).ok());
  EXPECT_EQ(Events("anonymous_id", "a"), 2);  // m1 was a duplicate of the old record
  // Past the window the old records are expired: m2 counts.
  Event m2 = MakeEvent(EventType::kTrack, "a", "", "m2");
  m2.received_at = static_cast<TimeMs>(DecodeFixed64((*until)->data())) + 1;
  ASSERT_TRUE(SubmitAndWait({m2}).ok());
  EXPECT_EQ(Events("anonymous_id", "a"), 3);
}

// Retries and replays repeat an event's messageId: it is a duplicate whatever its received-at, also
// after a restart (the hashes are in the stored profile).
TEST_F(EngineTest, DuplicatesMatchOnMessageIdAndClientTime) {
  Event e = MakeEvent(EventType::kTrack, "a", "", "m1");
  e.client_time = 1'790'000'000'000;
  Event retry = e;
  retry.received_at += 60'000;  // arrives a minute later
  Event untimed = MakeEvent(EventType::kTrack, "a", "", "m2");
  ASSERT_TRUE(SubmitAndWait({e, retry, untimed}).ok());
  Open();  // from RocksDB, not the in-memory sets
  ASSERT_TRUE(SubmitAndWait({retry, untimed}).ok());
  EXPECT_EQ(Events("anonymous_id", "a"), 2);
}

TEST_F(EngineTest, Schema2DedupRecordsCountForOneWindowAfterUpgrade) {
  ASSERT_TRUE(SubmitAndWait({MakeEvent(EventType::kTrack, "a", "", "m0")}).ok());
  auto profile = engine_->Lookup("anonymous_id", "a");
  ASSERT_TRUE(profile.ok() && profile->has_value());
  const uint32_t partition = *PartitionOfProfileId((*profile)->id);
  engine_.reset();
  // Turn the store back into schema 2: time-ordered records per partition.
  constexpr TimeMs kClientTime = 1'790'000'000'000;
  std::string ts;
  PutFixed64(&ts, kClientTime);
  WriteBatch batch = store_->NewBatch();
  batch.Put(Cf::kDedup, AsView(DedupKey(partition, kClientTime, "m1")), ts);
  batch.Put(Cf::kDedup, AsView(DedupKey(partition, kClientTime, "m2")), ts);
  batch.Put(Cf::kMeta, kMetaSchemaVersion, "2");
  ASSERT_TRUE(store_->Write(batch).ok());

  Open();
  EXPECT_EQ(*store_->Get(Cf::kMeta, kMetaSchemaVersion), std::string(kCurrentSchemaVersion));
  EXPECT_EQ(*store_->Get(Cf::kMeta, kMetaLegacyDedupSchema), std::string("2"));
  auto until = store_->Get(Cf::kMeta, kMetaLegacyDedupUntil);
  ASSERT_TRUE(until.ok() && until->has_value() && (*until)->size() == 8);
  Event m1 = MakeEvent(EventType::kTrack, "a", "", "m1");
  m1.client_time = kClientTime;
  m1.received_at = static_cast<TimeMs>(DecodeFixed64((*until)->data())) - 1;
  Event m3 = MakeEvent(EventType::kTrack, "a", "", "m3");
  m3.received_at = m1.received_at;
  ASSERT_TRUE(SubmitAndWait({m1, m3}).ok());
  EXPECT_EQ(Events("anonymous_id", "a"), 2);  // m1 was a duplicate of the old record
  Event m2 = MakeEvent(EventType::kTrack, "a", "", "m2");
  m2.client_time = kClientTime;
  m2.received_at = static_cast<TimeMs>(DecodeFixed64((*until)->data())) + 1;
  ASSERT_TRUE(SubmitAndWait({m2}).ok());
  EXPECT_EQ(Events("anonymous_id", "a"), 3);  // past the window
}

// A crash between a merge's two batches (the loser aliased, the survivor not yet updated) leaves a
// pending merge record; the next start finishes the merge.
TEST_F(EngineTest, AMergeInterruptedByACrashResumesAtStart) {
  ASSERT_TRUE(SubmitAndWait({MakeEvent(EventType::kTrack, "a", "", "m0"),
                             MakeEvent(EventType::kTrack, "b", "", "m1"),
                             MakeEvent(EventType::kTrack, "b", "", "m2")})
                  .ok());
  auto a = engine_->Lookup("anonymous_id", "a");
  auto b = engine_->Lookup("anonymous_id", "b");
  ASSERT_TRUE(a.ok() && a->has_value() && b.ok() && b->has_value());
  engine_.reset();
  // What the loser's batch of a merge of b into a writes: the alias and the pending record.
  msg::MergeAbsorb absorb;
  absorb.survivor = (*a)->id;
  absorb.loser = (*b)->id;
  absorb.link = "user_id:u";
  absorb.at = 1'790'000'000'000;
  EncodeProfile(**b, &absorb.loser_profile);
  WriteBatch batch = store_->NewBatch();
  batch.Put(Cf::kProfiles, (*b)->id, EncodeAlias((*a)->id));
  batch.Put(Cf::kMeta, PendingMergeKey((*b)->id), EncodePendingMerge(absorb));
  ASSERT_TRUE(store_->Write(batch).ok());

  Open();
  engine_->Stop();  // Start re-sent the absorb; Stop waits until it is done
  EXPECT_EQ(Events("anonymous_id", "b"), 3);
  EXPECT_EQ(Events("anonymous_id", "a"), 3);
  EXPECT_FALSE(store_->Get(Cf::kMeta, PendingMergeKey((*b)->id))->has_value());
  // A second start has nothing to resume, and the absorb is not applied twice.
  Open();
  EXPECT_EQ(Events("anonymous_id", "a"), 3);
}

TEST(PendingMerge, RoundTripsAndRejectsTruncatedValues) {
  msg::MergeAbsorb absorb;
  absorb.survivor = "0001-0000000000000001";
  absorb.loser = "0002-0000000000000002";
  absorb.link = "user_id:u";
  absorb.message_id = "m-1";
  absorb.loser_profile = std::string("\x06\x00binary", 8);
  absorb.at = 1'790'000'000'123;
  const std::string value = EncodePendingMerge(absorb);
  auto decoded = DecodePendingMerge(value);
  ASSERT_TRUE(decoded.has_value());
  EXPECT_EQ(decoded->survivor, absorb.survivor);
  EXPECT_EQ(decoded->loser, absorb.loser);
  EXPECT_EQ(decoded->link, absorb.link);
  EXPECT_EQ(decoded->message_id, absorb.message_id);
  EXPECT_EQ(decoded->loser_profile, absorb.loser_profile);
  EXPECT_EQ(decoded->at, absorb.at);
  for (size_t n = 0; n < value.size(); n++) {
    EXPECT_FALSE(DecodePendingMerge(value.substr(0, n)).has_value()) << n;
  }
}

// A data dir written by a newer ecrm is refused rather than misread.
TEST_F(EngineTest, NewerSchemaIsRefused) {
  engine_.reset();
  ASSERT_TRUE(store_->Put(Cf::kMeta, kMetaSchemaVersion, "99").ok());
  EngineOptions options;
  options.shards = 2;
  options.partitions = 16;
  auto engine = ProfileEngine::Create(*store_, *registry_, options);
  ASSERT_FALSE(engine.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(engine.status())) << engine.status();
}

// Profile ids are (partition, event time, a counter that restarts with the process): after a
// restart, a new visitor whose first event has the same time as an earlier one's in the same
// partition must not get that visitor's id (a 100-kill soak once joined strangers this way).
TEST_F(EngineTest, ANewProfileNeverReusesAnIdAfterARestart) {
  std::vector<std::string> same_partition;
  for (int i = 0; same_partition.size() < 6; i++) {
    const std::string a = "visitor-" + std::to_string(i);
    if (PartitionForKey(a, 16) == 3) same_partition.push_back(a);
  }
  std::set<std::string> ids;
  for (size_t i = 0; i < same_partition.size(); i++) {
    ASSERT_TRUE(SubmitAndWait({MakeEvent(EventType::kPage, same_partition[i], "")}).ok());
    Open();  // a restart: the counter starts again
  }
  for (const auto& a : same_partition) {
    auto p = engine_->Lookup("anonymous_id", a);
    ASSERT_TRUE(p.ok() && p->has_value()) << a;
    EXPECT_EQ((**p).stats.events, 1) << a;
    EXPECT_EQ((**p).identities.at("anonymous_id"), std::vector<std::string>{a});
    ids.insert((**p).id);
  }
  EXPECT_EQ(ids.size(), same_partition.size());
}

TEST_F(EngineTest, StateSurvivesReopen) {
  ASSERT_TRUE(SubmitAndWait({MakeEvent(EventType::kPage, "a", "u")}).ok());
  Open();
  ASSERT_TRUE(SubmitAndWait({MakeEvent(EventType::kPage, "a", "")}).ok());
  EXPECT_EQ(Events("anonymous_id", "a"), 2);
  EXPECT_EQ(Events("user_id", "u"), 2);
}

TEST_F(EngineTest, StopAnswersEverythingAcceptedThenRefuses) {
  const auto [anon, user] = IdsOnDifferentShards();
  std::atomic<int> ok{0}, failed{0};
  for (int i = 0; i < 200; i++) {
    // Identify events spawn cross-shard claims and attaches: follow-ups must finish too.
    Event e = MakeEvent(EventType::kIdentify, anon + "-" + std::to_string(i),
                        user + "-" + std::to_string(i));
    ASSERT_TRUE(engine_->Submit({e}, [&](Status s) { (s.ok() ? ok : failed)++; }).ok());
  }
  engine_->Stop();
  EXPECT_EQ(ok.load(), 200);
  EXPECT_EQ(failed.load(), 0);
  bool called = false;
  EXPECT_EQ(
      engine_->Submit({MakeEvent(EventType::kPage, "late", "")}, [&](Status) { called = true; })
          .code(),
      absl::StatusCode::kUnavailable);
  EXPECT_FALSE(called);
  Open();
  for (int i = 0; i < 200; i += 37) {
    auto p = engine_->Lookup("user_id", user + "-" + std::to_string(i));
    ASSERT_TRUE(p.ok() && p->has_value()) << i;
    EXPECT_TRUE((*p)->HasIdentity("anonymous_id", anon + "-" + std::to_string(i)));
  }
}

TEST_F(EngineTest, PartitionCountIsFixedPerDataDir) {
  engine_.reset();
  EngineOptions options;
  options.partitions = 32;
  auto engine = ProfileEngine::Create(*store_, *registry_, options);
  EXPECT_EQ(engine.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(EngineTest, FullQueuesRejectWithoutQueueing) {
  engine_.reset();
  registry_ = std::make_shared<prometheus::Registry>();
  EngineOptions options;
  options.shards = 2;
  options.partitions = 16;
  options.max_queue_depth = 0;  // every queue counts as full
  auto engine = ProfileEngine::Create(*store_, *registry_, options);
  ASSERT_TRUE(engine.ok());
  bool called = false;
  Status s =
      (*engine)->Submit({MakeEvent(EventType::kPage, "a", "")}, [&](Status) { called = true; });
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_FALSE(called);
}

}  // namespace
}  // namespace ecrm

namespace ecrm {
namespace {

TEST_F(EngineTest, CorruptProfileIsQuarantinedAndRestarted) {
  ASSERT_TRUE(SubmitAndWait({MakeEvent(EventType::kPage, "c", "")}).ok());
  auto before = engine_->Lookup("anonymous_id", "c");
  ASSERT_TRUE(before.ok() && before->has_value());
  const std::string id = (*before)->id;
  engine_.reset();  // drop the cached copy
  ASSERT_TRUE(store_->Put(Cf::kProfiles, id, "\x01garbage").ok());
  Open();
  ASSERT_TRUE(SubmitAndWait({MakeEvent(EventType::kPage, "c", "")}).ok());
  auto after = engine_->Lookup("anonymous_id", "c");
  ASSERT_TRUE(after.ok() && after->has_value());
  EXPECT_EQ((*after)->id, id);
  EXPECT_EQ((*after)->stats.events, 1);
  auto kept = store_->Get(Cf::kMeta, std::string(kMetaCorruptPrefix) + id);
  ASSERT_TRUE(kept.ok() && kept->has_value());
  EXPECT_EQ(**kept, "\x01garbage");
  EXPECT_EQ(Counter("ecrm_profiles_corrupt_total"), 1);
}

}  // namespace
}  // namespace ecrm

namespace ecrm {
namespace {

TEST_F(EngineTest, ReaderIdentityCacheBelongsToOneEngine) {
  ASSERT_TRUE(SubmitAndWait({MakeEvent(EventType::kPage, "cached", "")}).ok());
  ASSERT_TRUE(engine_->Lookup("anonymous_id", "cached")->has_value());  // now cached on this thread
  testing::TempDir other_dir;
  auto registry = std::make_shared<prometheus::Registry>();
  auto other_store = KvStore::Open({.path = other_dir.path()});
  ASSERT_TRUE(other_store.ok());
  EngineOptions options;
  options.shards = 1;
  options.partitions = 16;
  auto other = ProfileEngine::Create(**other_store, *registry, options);
  ASSERT_TRUE(other.ok());
  auto found = (*other)->Lookup("anonymous_id", "cached");
  ASSERT_TRUE(found.ok());
  EXPECT_FALSE(found->has_value());
  EXPECT_TRUE(engine_->Lookup("anonymous_id", "cached")->has_value());
}

}  // namespace
}  // namespace ecrm

namespace ecrm {
namespace {

double CounterValue(prometheus::Registry& registry, const std::string& name) {
  double sum = 0;
  for (const auto& family : registry.Collect()) {
    if (family.name != name) continue;
    for (const auto& m : family.metric) sum += m.counter.value + m.gauge.value;
  }
  return sum;
}

// An engine of two shards over eight partitions with the limits a test sets.
class EngineLimits : public ::testing::Test {
 protected:
  EngineLimits() {
    options_.shards = 2;
    options_.partitions = 8;
  }
  void Start() {
    auto store = KvStore::Open({.path = dir_.Sub("db")});
    ASSERT_TRUE(store.ok());
    store_ = *std::move(store);
    engine_ = *ProfileEngine::Create(*store_, *registry_, options_);
    engine_->Start();
  }
  void SubmitAndWait(std::vector<Event> events) {
    std::promise<Status> done;
    ASSERT_TRUE(engine_->Submit(std::move(events), [&](Status s) { done.set_value(s); }).ok());
    ASSERT_TRUE(done.get_future().get().ok());
  }
  testing::TempDir dir_;
  std::shared_ptr<prometheus::Registry> registry_ = std::make_shared<prometheus::Registry>();
  EngineOptions options_;
  std::unique_ptr<KvStore> store_;
  std::unique_ptr<ProfileEngine> engine_;
};

// 120 identifies of 2,200 new trait keys each once gave one profile 264,000 traits (3.7 MB).
TEST_F(EngineLimits, AProfileStopsGrowingAtItsTraitCapsAndTheDropsAreCounted) {
  options_.profiler.max_traits = 500;
  options_.profiler.max_trait_bytes = 20'000;
  options_.shard.cache_bytes = 64 << 10;  // a few profiles: the rest are reloaded from RocksDB
  Start();
  size_t sent = 0;
  for (int round = 0; round < 30; round++) {
    std::vector<Event> events;
    Event e = MakeEvent(EventType::kIdentify, "grower", "");
    for (int i = 0; i < 200; i++) {
      e.traits.emplace_back("r" + std::to_string(round) + "_" + std::to_string(i), "\"value\"");
    }
    sent += e.traits.size();
    events.push_back(std::move(e));
    for (int v = 0; v < 20; v++)
      events.push_back(MakeEvent(EventType::kPage, "v" + std::to_string(v), ""));
    SubmitAndWait(std::move(events));
  }
  auto p = engine_->Lookup("anonymous_id", "grower");
  ASSERT_TRUE(p.ok() && p->has_value());
  const Profile& grown = **p;
  EXPECT_LE(grown.traits.size(), 500u);
  EXPECT_LE(ProfileUpdater::TraitBytes(grown), 20'000u);
  EXPECT_EQ(CounterValue(*registry_, "ecrm_profile_traits_dropped_total"),
            static_cast<double>(sent - grown.traits.size()));
  EXPECT_LE(CounterValue(*registry_, "ecrm_profile_cache_bytes"), 2.0 * (64 << 10));
  engine_->Stop();
}

// 2,000 anonymous ids of 1 KB once gave one profile 2 MB: merges stop at the anonymous_id limit.
TEST_F(EngineLimits, AProfileHoldsAtMostTheAnonymousIdLimitAndFurtherDevicesStaySeparate) {
  options_.shard.identifier_limits["anonymous_id"] = 50;
  Start();
  for (int i = 0; i < 60; i++) {
    SubmitAndWait({MakeEvent(EventType::kIdentify, "device-" + std::to_string(i), "many-devices")});
  }
  auto p = engine_->Lookup("user_id", "many-devices");
  ASSERT_TRUE(p.ok() && p->has_value());
  EXPECT_EQ((**p).identities.at("anonymous_id").size(), 50u);
  EXPECT_EQ(CounterValue(*registry_, "ecrm_profile_merges_refused_total"), 10);
  // A device past the limit keeps its own profile (with its own events).
  auto last = engine_->Lookup("anonymous_id", "device-59");
  ASSERT_TRUE(last.ok() && last->has_value());
  EXPECT_NE((**last).id, (**p).id);
  EXPECT_EQ((**last).stats.events, 1);
  engine_->Stop();
}

}  // namespace
}  // namespace ecrm

namespace ecrm {
namespace {

// The erasure ledger: after an erasure, a replay of the person's old events, a late event and a
// late claim of one of their identifiers do not bring them back, also after a restart. A visit
// dated after the erasure starts a fresh profile. What stays is a hash, never the identifiers.
TEST_F(EngineTest, AnErasedPersonIsNotBroughtBackByLateEventsOrReplays) {
  const auto [anon, user] = IdsOnDifferentShards();
  Event page = MakeEvent(EventType::kPage, anon, "", "p1");
  Event identify = MakeEvent(EventType::kIdentify, anon, user, "i1");
  identify.email = "ada-erased@example.com";
  identify.trusted = true;
  ASSERT_TRUE(SubmitAndWait({page, identify}).ok());
  ASSERT_EQ(Events("user_id", user), 2);
  ASSERT_TRUE(EraseAndWait("user_id", user).ok());
  EXPECT_EQ(Events("anonymous_id", anon), -1);

  // The replay (also after a restart, also by the email alone) and a late event of the device.
  Open();
  Event by_email = MakeEvent(EventType::kTrack, "", "", "t1");
  by_email.email = "ada-erased@example.com";
  ASSERT_TRUE(
      SubmitAndWait({page, identify, by_email, MakeEvent(EventType::kTrack, anon, "", "late"),
                     MakeEvent(EventType::kTrack, "", user, "late-2")})
          .ok());
  EXPECT_EQ(Events("anonymous_id", anon), -1);
  EXPECT_EQ(Events("user_id", user), -1);
  EXPECT_EQ(Events("email", "ada-erased@example.com"), -1);
  EXPECT_EQ(Counter("ecrm_erasure_ledger_dropped_total"), 5);

  // A late event of a new device claiming the erased user id: the device keeps its event, the
  // user id stays erased.
  Event claim = MakeEvent(EventType::kIdentify, "new-device", user, "i2");
  claim.trusted = true;
  ASSERT_TRUE(SubmitAndWait({claim}).ok());
  EXPECT_EQ(Events("anonymous_id", "new-device"), 1);
  EXPECT_EQ(Events("user_id", user), -1);
  auto device = engine_->Lookup("anonymous_id", "new-device");
  ASSERT_TRUE(device.ok() && device->has_value());
  EXPECT_FALSE((*device)->HasIdentity("user_id", user));

  // A visit after the erasure is a new one.
  Event later = MakeEvent(EventType::kPage, anon, "", "p2");
  later.timestamp = clock_.NowMs() + 1000;
  later.received_at = later.timestamp;
  ASSERT_TRUE(SubmitAndWait({later}).ok());
  EXPECT_EQ(Events("anonymous_id", anon), 1);

  const std::string stored = EverythingStored();
  EXPECT_EQ(stored.find(user), std::string::npos);
  EXPECT_EQ(stored.find("ada-erased"), std::string::npos);
}

// Retention: ExpireInactive erases the profiles last seen before the cutoff, with their
// identifiers and aliases, and enters them in the erasure ledger; the others stay as they were.
TEST_F(EngineTest, ExpireInactiveErasesOnlyProfilesNotSeenSinceTheCutoff) {
  const TimeMs t = 1'790'000'000'000;
  auto at = [](Event e, TimeMs time) {
    e.timestamp = time;
    e.received_at = time;
    return e;
  };
  // An old person (two devices merged by a user id) and a recent visitor.
  Event a = at(MakeEvent(EventType::kIdentify, "old-a", "old-user", "m1"), t);
  Event b = at(MakeEvent(EventType::kIdentify, "old-b", "old-user", "m2"), t + 1);
  a.trusted = b.trusted = true;
  ASSERT_TRUE(SubmitAndWait({a, b}).ok());
  ASSERT_TRUE(
      SubmitAndWait({at(MakeEvent(EventType::kPage, "recent", "", "m3"), t + 10'000)}).ok());
  ASSERT_EQ(Events("anonymous_id", "old-b"), 2);

  auto expired = engine_->ExpireInactive(t + 5'000);
  ASSERT_TRUE(expired.ok()) << expired.status();
  EXPECT_EQ(*expired, 1u);
  EXPECT_EQ(Events("anonymous_id", "old-a"), -1);
  EXPECT_EQ(Events("anonymous_id", "old-b"), -1);
  EXPECT_EQ(Events("user_id", "old-user"), -1);
  EXPECT_EQ(Events("anonymous_id", "recent"), 1);
  EXPECT_EQ(Counter("ecrm_profiles_deleted_total", "retention"), 1);
  // No profile or alias of the old person is left; a replay of their history is dropped.
  const std::string stored = EverythingStored();
  EXPECT_EQ(stored.find("old-"), std::string::npos);
  ASSERT_TRUE(SubmitAndWait({a, b}).ok());
  EXPECT_EQ(Events("user_id", "old-user"), -1);
  // A second sweep finds nothing more.
  expired = engine_->ExpireInactive(t + 5'000);
  ASSERT_TRUE(expired.ok());
  EXPECT_EQ(*expired, 0u);
}

// A profile lists at most max_identifiers_per_type (100) values of an unlimited type: claims of
// more are not attached, and their identifiers lead nowhere, whether the claims come in one batch
// (the attach refuses them) or one by one (the claim is not even sent). The graph stays whole.
TEST_F(EngineTest, AProfileListsAtMostTheCapOfEachIdentifierType) {
  auto identify = [](const std::string& anon, int i) {
    Event e = MakeEvent(EventType::kIdentify, anon, "", anon + "-m" + std::to_string(i));
    e.email = anon + "-" + std::to_string(i) + "@example.com";
    return e;
  };
  std::vector<Event> batch;
  for (int i = 0; i < 105; i++) batch.push_back(identify("together", i));
  ASSERT_TRUE(SubmitAndWait(std::move(batch)).ok());
  for (int i = 0; i < 105; i++) ASSERT_TRUE(SubmitAndWait({identify("apart", i)}).ok());
  for (const std::string anon : {"together", "apart"}) {
    auto p = engine_->Lookup("anonymous_id", anon);
    ASSERT_TRUE(p.ok() && p->has_value());
    const auto& emails = (*p)->identities.at("email");
    EXPECT_EQ(emails.size(), 100u) << anon;
    EXPECT_EQ((*p)->stats.events, 105) << anon;  // the events themselves are applied
    int leading_here = 0;
    for (int i = 0; i < 105; i++) {
      auto by_email = engine_->Lookup("email", anon + "-" + std::to_string(i) + "@example.com");
      ASSERT_TRUE(by_email.ok());
      if (by_email->has_value()) {
        EXPECT_EQ((*by_email)->id, (*p)->id);
        leading_here++;
      }
    }
    EXPECT_EQ(leading_here, 100) << anon;
  }
  EXPECT_EQ(Counter("ecrm_identifiers_capped_total"), 10);
  engine_->Sync();
  auto counts =
      CheckIdentityGraph(*store_, [](const GraphViolation& v) { ADD_FAILURE() << v.message; });
  ASSERT_TRUE(counts.ok()) << counts.status();
}

}  // namespace
}  // namespace ecrm
