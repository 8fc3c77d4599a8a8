#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>

#include "ingest/changelog_standby.h"

namespace ecrm {
namespace {

GroupMember Member(std::string id, std::vector<int> partitions) {
  GroupMember m;
  m.instance_id = std::move(id);
  m.partitions = std::move(partitions);
  return m;
}

TEST(StandbyPlacement, StandbysAreTheMembersAfterTheOwnerInIdOrder) {
  GroupDescription group;
  // Listed out of order: the placement sorts by instance id.
  group.members = {Member("ecrm-2", {2, 5}), Member("ecrm-0", {0, 3}), Member("ecrm-1", {1, 4})};
  const auto one = StandbyPlacement(group, 1);
  EXPECT_EQ(one.at(0), std::vector<std::string>{"ecrm-1"});
  EXPECT_EQ(one.at(4), std::vector<std::string>{"ecrm-2"});
  EXPECT_EQ(one.at(5), std::vector<std::string>{"ecrm-0"});  // wraps around
  const auto two = StandbyPlacement(group, 2);
  EXPECT_EQ(two.at(1), (std::vector<std::string>{"ecrm-2", "ecrm-0"}));
}

TEST(StandbyPlacement, NeverTheOwnerAndNoMoreThanTheOtherMembers) {
  std::mt19937 rng(7);
  for (int round = 0; round < 200; round++) {
    const int members = 1 + static_cast<int>(rng() % 5);
    const int partitions = 1 + static_cast<int>(rng() % 12);
    const int replicas = static_cast<int>(rng() % 4);
    GroupDescription group;
    for (int m = 0; m < members; m++) group.members.push_back(Member("i" + std::to_string(m), {}));
    std::set<int> unowned;
    for (int p = 0; p < partitions; p++) {
      if (rng() % 6 == 0) {  // mid-rebalance: nobody owns it
        unowned.insert(p);
        continue;
      }
      group.members[rng() % members].partitions.push_back(p);
    }
    const auto placement = StandbyPlacement(group, replicas);
    for (const auto& m : group.members) {
      for (int p : m.partitions) {
        const auto& standbys = placement.at(static_cast<uint32_t>(p));
        EXPECT_EQ(static_cast<int>(standbys.size()), std::min(replicas, members - 1));
        const std::set<std::string> distinct(standbys.begin(), standbys.end());
        EXPECT_EQ(distinct.size(), standbys.size()) << "a member holds two copies of " << p;
        EXPECT_FALSE(distinct.contains(m.instance_id)) << "the owner of " << p << " is a standby";
      }
    }
    for (int p : unowned) EXPECT_FALSE(placement.contains(static_cast<uint32_t>(p)));
  }
}

TEST(StandbyPlacement, DynamicMembersAreNamedByTheirClientId) {
  GroupDescription group;
  GroupMember a;
  a.client_id = "ecrm-processor@10.0.0.1:8080";
  a.partitions = {0};
  GroupMember b;
  b.client_id = "ecrm-processor@10.0.0.2:8080";
  b.partitions = {1};
  group.members = {a, b};
  const auto placement = StandbyPlacement(group, 1);
  EXPECT_EQ(placement.at(0), std::vector<std::string>{b.client_id});
  EXPECT_EQ(placement.at(1), std::vector<std::string>{a.client_id});
}

}  // namespace
}  // namespace ecrm
