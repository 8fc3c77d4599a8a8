#include "profiler/graph_check.h"

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/murmur2.h"
#include "profiler/profile_codec.h"
#include "store/keys.h"
#include "tests/testutil/temp_dir.h"

namespace ecrm {
namespace {

using Kind = GraphViolation::Kind;
constexpr uint32_t kPartitions = 16;

// Stores written by hand, each breaking one invariant of a clean graph.
class GraphCheckTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = KvStore::Open({.path = dir_.Sub("db")});
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    ASSERT_TRUE(store_->Put(Cf::kMeta, kMetaPartitionCount, std::to_string(kPartitions)).ok());
  }

  static std::string Id(uint32_t partition, uint64_t n) { return MakeProfileId(partition, n); }

  void PutProfile(const std::string& key, std::map<std::string, std::vector<std::string>> ids,
                  std::vector<std::string> merged = {}, std::string id = "") {
    Profile p;
    p.id = id.empty() ? key : id;
    p.identities = std::move(ids);
    p.merged_ids = std::move(merged);
    p.traits["name"] = {.json = "\"Ada\""};
    std::string bytes;
    EncodeProfile(p, &bytes);
    ASSERT_TRUE(store_->Put(Cf::kProfiles, key, bytes).ok());
  }
  void PutAlias(const std::string& id, const std::string& target) {
    ASSERT_TRUE(store_->Put(Cf::kProfiles, id, EncodeAlias(target)).ok());
  }
  void PutIdentity(const std::string& type, const std::string& value, const std::string& profile,
                   bool verified = true) {
    ASSERT_TRUE(store_
                    ->Put(Cf::kIdentities,
                          IdentityKey(PartitionForKey(value, kPartitions), type, value),
                          EncodeIdentityRecord(profile, verified))
                    .ok());
  }

  // A profile with an anonymous id, a user id and a second device merged in through a chain of
  // two aliases (the second device's record still points at the first alias); and one more.
  void PutCleanGraph() {
    PutProfile(s_, {{"anonymous_id", {"a1", "a2"}}, {"user_id", {"u1"}}}, {l1_, l2_});
    PutAlias(l1_, l2_);
    PutAlias(l2_, s_);
    PutIdentity("anonymous_id", "a1", s_);
    PutIdentity("anonymous_id", "a2", l1_);
    PutIdentity("user_id", "u1", s_, /*verified=*/false);
    PutProfile(t_, {{"email", {"ada@example.com"}}});
    PutIdentity("email", "ada@example.com", t_);
  }

  std::vector<GraphViolation> Check() {
    violations_.clear();
    auto counts = CheckIdentityGraph(*store_, [&](const GraphViolation& v) {
      EXPECT_EQ(v.message.find('\n'), std::string::npos) << v.message;
      violations_.push_back(v);
    });
    EXPECT_TRUE(counts.ok()) << counts.status();
    if (counts.ok()) {
      counts_ = *counts;
      EXPECT_EQ(counts_.violations, violations_.size());
    }
    return violations_;
  }
  std::vector<Kind> Kinds() {
    std::vector<Kind> kinds;
    for (const auto& v : Check()) kinds.push_back(v.kind);
    return kinds;
  }
  std::string Messages() const {
    std::string all;
    for (const auto& v : violations_) all += v.message + "\n";
    return all;
  }

  testing::TempDir dir_;
  std::unique_ptr<KvStore> store_;
  std::vector<GraphViolation> violations_;
  GraphCheckCounts counts_;
  const std::string s_ = Id(3, 0x10), l1_ = Id(5, 0x20), l2_ = Id(7, 0x30), t_ = Id(9, 0x40);
};

TEST_F(GraphCheckTest, CleanGraphWithAnAliasChainPasses) {
  PutCleanGraph();
  EXPECT_TRUE(Check().empty()) << Messages();
  EXPECT_EQ(counts_.profiles, 2u);
  EXPECT_EQ(counts_.aliases, 2u);
  EXPECT_EQ(counts_.identity_records, 4u);
}

TEST_F(GraphCheckTest, MissingPartitionCountIsAnError) {
  testing::TempDir other;
  auto store = KvStore::Open({.path = other.path()});
  ASSERT_TRUE(store.ok());
  auto counts = CheckIdentityGraph(**store, [](const GraphViolation&) {});
  EXPECT_EQ(counts.status().code(), absl::StatusCode::kFailedPrecondition);
}

// 1: key shape and partition.
TEST_F(GraphCheckTest, MalformedIdentityKey) {
  PutCleanGraph();
  ASSERT_TRUE(store_->Put(Cf::kIdentities, "00zz|user_id:u9", s_).ok());
  ASSERT_TRUE(store_->Put(Cf::kIdentities, "0001|no-colon", s_).ok());
  EXPECT_EQ(Kinds(), (std::vector<Kind>{Kind::kMalformedIdentityKey, Kind::kMalformedIdentityKey}));
  EXPECT_NE(Messages().find("\"00zz|user_id:u9\""), std::string::npos) << Messages();
}

TEST_F(GraphCheckTest, IdentityInTheWrongPartition) {
  PutCleanGraph();
  const uint32_t right = PartitionForKey("u2", kPartitions);
  const std::string key = IdentityKey((right + 1) % kPartitions, "user_id", "u2");
  ASSERT_TRUE(store_->Put(Cf::kIdentities, key, t_).ok());
  PutProfile(t_, {{"email", {"ada@example.com"}}, {"user_id", {"u2"}}});
  // The record is where no reader looks, so the profile's identifier has none.
  EXPECT_EQ(Kinds(),
            (std::vector<Kind>{Kind::kWrongIdentityPartition, Kind::kListedWithoutRecord}));
  EXPECT_NE(Messages().find(key), std::string::npos) << Messages();
}

// 2: the record leads to a live profile.
TEST_F(GraphCheckTest, IdentityPointingAtAMissingProfile) {
  PutCleanGraph();
  PutIdentity("user_id", "u7", Id(1, 0x99));
  EXPECT_EQ(Kinds(), (std::vector<Kind>{Kind::kDanglingIdentity}));
  EXPECT_NE(Messages().find(Id(1, 0x99) + ", which does not exist"), std::string::npos)
      << Messages();
}

TEST_F(GraphCheckTest, IdentityThroughAnAliasToAMissingProfile) {
  PutCleanGraph();
  PutAlias(l2_, Id(1, 0x99));  // l1 -> l2 -> missing; a2 points at l1, s lists l1 and l2
  // The alias with the missing target is reported, not every alias before it; s's merged ids
  // are both broken.
  EXPECT_EQ(Kinds(), (std::vector<Kind>{Kind::kDanglingIdentity, Kind::kBadMergedId,
                                        Kind::kBadMergedId, Kind::kAliasToMissing}))
      << Messages();
}

TEST_F(GraphCheckTest, AliasCycleIsReportedOnce) {
  PutCleanGraph();
  PutAlias(l2_, l1_);  // l1 -> l2 -> l1
  PutProfile(s_, {{"anonymous_id", {"a1"}}, {"user_id", {"u1"}}});
  PutIdentity("anonymous_id", "a2", l2_);
  EXPECT_EQ(Kinds(), (std::vector<Kind>{Kind::kDanglingIdentity, Kind::kAliasCycle}));
  EXPECT_NE(Messages().find("alias cycle " + l1_ + " -> " + l2_ + " -> " + l1_), std::string::npos)
      << Messages();
}

TEST_F(GraphCheckTest, AliasToItself) {
  PutCleanGraph();
  const std::string self = Id(2, 0x77);
  PutAlias(self, self);
  EXPECT_EQ(Kinds(), (std::vector<Kind>{Kind::kAliasCycle}));
}

// 3: the profile lists the identifier.
TEST_F(GraphCheckTest, ProfileDoesNotListItsIdentifier) {
  PutCleanGraph();
  PutIdentity("email", "bob@example.com", t_);
  EXPECT_EQ(Kinds(), (std::vector<Kind>{Kind::kIdentityNotListed}));
  EXPECT_NE(Messages().find("which does not list email:bob@example.com"), std::string::npos)
      << Messages();
}

// 4: what a profile lists leads back to it.
TEST_F(GraphCheckTest, ListedIdentifierWithoutRecord) {
  PutCleanGraph();
  PutProfile(t_, {{"email", {"ada@example.com"}}, {"user_id", {"u5"}}});
  EXPECT_EQ(Kinds(), (std::vector<Kind>{Kind::kListedWithoutRecord}));
}

TEST_F(GraphCheckTest, IdentifierListedByTwoProfiles) {
  PutCleanGraph();
  PutProfile(t_, {{"email", {"ada@example.com"}}, {"user_id", {"u1"}}});
  EXPECT_EQ(Kinds(), (std::vector<Kind>{Kind::kListedTwice}));
  EXPECT_NE(Messages().find("user_id:u1 is listed by two live profiles, " + t_ + " and " + s_),
            std::string::npos)
      << Messages();
}

TEST_F(GraphCheckTest, IdentifierListedByAProfileItsRecordDoesNotLeadTo) {
  PutCleanGraph();
  PutProfile(t_, {{"email", {"ada@example.com"}}, {"user_id", {"u1"}}});
  PutProfile(s_, {{"anonymous_id", {"a1", "a2"}}}, {l1_, l2_});
  EXPECT_EQ(Kinds(), (std::vector<Kind>{Kind::kIdentityNotListed, Kind::kListedElsewhere}));
}

// 5: profile keys and values.
TEST_F(GraphCheckTest, MalformedProfileKeys) {
  PutCleanGraph();
  PutProfile("nope", {});
  PutProfile(Id(kPartitions, 1), {});  // a partition the data dir does not have
  PutProfile("0001-0000000000000ABC", {});
  EXPECT_EQ(Kinds(), (std::vector<Kind>{Kind::kMalformedProfileKey, Kind::kMalformedProfileKey,
                                        Kind::kMalformedProfileKey}))
      << Messages();
}

TEST_F(GraphCheckTest, ProfileIdDiffersFromItsKey) {
  PutCleanGraph();
  PutProfile(t_, {{"email", {"ada@example.com"}}}, {}, Id(9, 0x41));
  EXPECT_EQ(Kinds(), (std::vector<Kind>{Kind::kProfileIdMismatch}));
}

TEST_F(GraphCheckTest, UndecodableProfile) {
  PutCleanGraph();
  ASSERT_TRUE(store_->Put(Cf::kProfiles, t_, std::string("\x07garbage")).ok());
  EXPECT_EQ(Kinds(), (std::vector<Kind>{Kind::kUndecodableProfile}));
  EXPECT_EQ(counts_.profiles, 2u);
}

TEST_F(GraphCheckTest, AliasToAMissingProfile) {
  PutCleanGraph();
  const std::string orphan = Id(4, 0x55);
  PutAlias(orphan, Id(4, 0x56));
  EXPECT_EQ(Kinds(), (std::vector<Kind>{Kind::kAliasToMissing}));
  EXPECT_EQ(counts_.aliases, 3u);
}

// 6: merged ids are aliases leading back.
TEST_F(GraphCheckTest, MergedIdsThatAreNotAliasesOfTheProfile) {
  PutCleanGraph();
  PutProfile(t_, {{"email", {"ada@example.com"}}}, {Id(1, 0x99), s_, l1_});
  EXPECT_EQ(Kinds(),
            (std::vector<Kind>{Kind::kBadMergedId, Kind::kBadMergedId, Kind::kBadMergedId}));
  const std::string m = Messages();
  EXPECT_NE(m.find("merged id " + Id(1, 0x99) + ", which does not exist"), std::string::npos) << m;
  EXPECT_NE(m.find("merged id " + s_ + ", which is a profile, not an alias"), std::string::npos)
      << m;
  EXPECT_NE(m.find("ends at another profile"), std::string::npos) << m;
}

TEST_F(GraphCheckTest, IdentifierBytesAreEscaped) {
  PutCleanGraph();
  PutIdentity("user_id", "evil\nline\"", Id(1, 0x99));
  ASSERT_EQ(Kinds(), (std::vector<Kind>{Kind::kDanglingIdentity}));
  EXPECT_NE(Messages().find("evil\\x0aline\\x22"), std::string::npos) << Messages();
  EXPECT_EQ(Messages().find("Ada"), std::string::npos);  // never trait values
}

}  // namespace
}  // namespace ecrm
