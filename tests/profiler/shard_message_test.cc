// Shard messages: every kind survives its binary form with random field values, names the right
// destination partition, and a truncated, corrupt or unknown value is an error, never a crash.
#include "profiler/shard_message.h"

#include <gtest/gtest.h>

#include <random>
#include <tuple>

#include "store/keys.h"

namespace ecrm {
namespace {

class Filler {
 public:
  explicit Filler(uint64_t seed) : rng_(seed) {}
  std::string Str() {
    std::string s(rng_() % 12, '\0');
    for (char& c : s) c = static_cast<char>(rng_() % 256);  // any byte, NULs included
    return s;
  }
  std::string ProfileId() { return MakeProfileId(Partition(), rng_()); }
  uint32_t Partition() { return static_cast<uint32_t>(rng_() % 64); }
  int64_t Time() { return static_cast<int64_t>(rng_() % (1ULL << 42)) - (1LL << 40); }
  bool Bool() { return rng_() % 2 == 0; }
  std::vector<std::string> Strs() {
    std::vector<std::string> v(rng_() % 4);
    for (auto& s : v) s = Str();
    return v;
  }
  std::vector<std::pair<std::string, std::string>> Pairs() {
    std::vector<std::pair<std::string, std::string>> v(rng_() % 4);
    for (auto& [a, b] : v) {
      a = Str();
      b = Str();
    }
    return v;
  }
  Event MakeEvent() {
    Event e;
    e.type = static_cast<EventType>(rng_() % 7);
    for (std::string* s :
         {&e.message_id, &e.anonymous_id, &e.user_id, &e.event, &e.name, &e.previous_id,
          &e.group_id, &e.email, &e.properties, &e.channel, &e.source}) {
      *s = Str();
    }
    e.timestamp = Time();
    e.received_at = Time();
    e.client_time = Time();
    e.traits = Pairs();
    e.identifiers = Pairs();
    e.products.resize(rng_() % 3);
    for (auto& p : e.products) {
      p.product_id = Str();
      p.name = Str();
      p.category = Str();
      p.price = static_cast<double>(rng_() % 100000) / 100;
      p.has_price = Bool();
    }
    e.revenue = static_cast<double>(rng_() % 100000) / 7;
    e.has_revenue = Bool();
    e.touch = {Str(), Str(), Str(), Str(), Str(), Str(), Time()};
    e.device = {Str(), Str(), Str(), Str()};
    e.message_hash = rng_();
    e.trusted = Bool();
    e.user_hash_valid = Bool();
    if (Bool()) e.consent = {{Str(), Bool()}, {Str(), Bool()}};
    return e;
  }
  msg::MergeLink Link() {
    return {ProfileId(), ProfileId(), Str(), Time(), Str(), Bool(), ProfileId()};
  }
  std::vector<ShardMessage> OneOfEach() {
    return {
        msg::RouteEvent{Partition(), MakeEvent()},
        msg::ApplyEvent{ProfileId(), MakeEvent()},
        msg::ClaimIdentity{Partition(), Str(), Str(), ProfileId(), Time(), Str(), Bool(), Bool(),
                           Bool()},
        msg::AttachIdentity{ProfileId(), Str(), Str()},
        msg::SourceOffset{Partition(), Time()},
        msg::MergeCheck{Link()},
        msg::MergeSend{Link(), Strs()},
        msg::MergeAbsorb{ProfileId(), ProfileId(), Str(), Time(), Str(), Str()},
        msg::MergeDone{ProfileId()},
        msg::RepointIdentity{Partition(), Str(), Str(), ProfileId(), ProfileId()},
        msg::DetachIdentity{ProfileId(), Str(), Str(), Str(), Time(), Str()},
        msg::RecordRefusal{ProfileId(), Str(), Str(), Time(), Str(), Str()},
        msg::DeleteProfile{ProfileId(), Time(), Time()},
        msg::DeleteIdentity{Partition(), Str(), Str(), Strs(), Time()},
        msg::DeleteAlias{ProfileId()},
        msg::InternalOffset{Partition(), Time()},
    };
  }

 private:
  std::mt19937_64 rng_;
};

bool SameEvent(const Event& a, const Event& b) {
  auto key = [](const Event& e) {
    return std::tie(e.type, e.message_id, e.anonymous_id, e.user_id, e.event, e.name, e.previous_id,
                    e.group_id, e.timestamp, e.received_at, e.client_time, e.traits, e.email,
                    e.properties, e.revenue, e.has_revenue, e.identifiers, e.channel, e.source,
                    e.message_hash, e.trusted, e.user_hash_valid, e.consent);
  };
  if (key(a) != key(b) || a.products.size() != b.products.size()) return false;
  for (size_t i = 0; i < a.products.size(); i++) {
    const auto& p = a.products[i];
    const auto& q = b.products[i];
    if (std::tie(p.product_id, p.name, p.category, p.price, p.has_price) !=
        std::tie(q.product_id, q.name, q.category, q.price, q.has_price)) {
      return false;
    }
  }
  const auto touch = [](const Touch& t) {
    return std::tie(t.source, t.medium, t.campaign, t.term, t.content, t.referrer, t.at);
  };
  const auto device = [](const DeviceInfo& d) {
    return std::tie(d.type, d.os, d.browser, d.library);
  };
  return touch(a.touch) == touch(b.touch) && device(a.device) == device(b.device);
}

// Two messages are equal when their encodings are: checked separately for events, whose every
// field is compared above, so that this is not the encoder judging itself alone.
std::string Encoded(const ShardMessage& m) {
  std::string out;
  EncodeShardMessage(m, &out);
  return out;
}

// A message without the fields version 2 added is written as version 1, which instances not yet
// upgraded read; one with them as version 2. Both decode; a version from the future is refused.
TEST(ShardMessage, TheOldestVersionThatHoldsTheMessageIsWritten) {
  Event e;
  e.type = EventType::kPage;
  e.anonymous_id = "a1";
  e.timestamp = 1'790'000'000'000;
  Event with_consent = e;
  with_consent.consent = {{"Analytics", false}};
  const std::pair<ShardMessage, int> cases[] = {
      {msg::RouteEvent{7, e}, 1},
      {msg::RouteEvent{7, with_consent}, 2},
      {msg::ApplyEvent{"0001-00000000000000aa", with_consent}, 2},
      {msg::DeleteProfile{"0001-00000000000000aa", 0, 0}, 1},
      {msg::DeleteProfile{"0001-00000000000000aa", 1'790'000'000'000, 0}, 2},
      {msg::DeleteIdentity{3, "email", "a@b.c", {"0001-00000000000000aa"}, 0}, 1},
      {msg::DeleteIdentity{3, "email", "a@b.c", {"0001-00000000000000aa"}, 5}, 2},
      {msg::MergeDone{"0001-00000000000000aa"}, 1}};
  for (const auto& [m, version] : cases) {
    std::string bytes = Encoded(m);
    EXPECT_EQ(bytes[0], version) << MessageName(m);
    auto decoded = DecodeShardMessage(bytes);
    ASSERT_TRUE(decoded.ok()) << MessageName(m) << ": " << decoded.status();
    EXPECT_EQ(Encoded(*decoded), bytes) << MessageName(m);
    if (version == 2) {  // the version 2 fields are read only from a version 2 message
      bytes[0] = 1;
      EXPECT_FALSE(DecodeShardMessage(bytes).ok()) << MessageName(m);
    }
    bytes[0] = 3;
    EXPECT_FALSE(DecodeShardMessage(bytes).ok()) << MessageName(m);
  }
  auto route = DecodeShardMessage(Encoded(msg::RouteEvent{7, with_consent}));
  ASSERT_TRUE(route.ok());
  EXPECT_EQ(std::get<msg::RouteEvent>(*route).event.consent, with_consent.consent);
}

TEST(ShardMessage, EveryKindRoundTripsWithRandomFields) {
  for (uint64_t seed = 1; seed <= 200; seed++) {
    Filler f(seed);
    for (const ShardMessage& m : f.OneOfEach()) {
      const std::string bytes = Encoded(m);
      auto decoded = DecodeShardMessage(bytes);
      ASSERT_TRUE(decoded.ok()) << MessageName(m) << " seed " << seed << ": " << decoded.status();
      ASSERT_EQ(decoded->index(), m.index()) << MessageName(m);
      EXPECT_EQ(Encoded(*decoded), bytes) << MessageName(m) << " seed " << seed;
      EXPECT_EQ(DestinationPartition(*decoded), DestinationPartition(m));
      if (const auto* route = std::get_if<msg::RouteEvent>(&m)) {
        EXPECT_TRUE(SameEvent(std::get<msg::RouteEvent>(*decoded).event, route->event)) << seed;
      }
      if (const auto* apply = std::get_if<msg::ApplyEvent>(&m)) {
        EXPECT_TRUE(SameEvent(std::get<msg::ApplyEvent>(*decoded).event, apply->event)) << seed;
      }
    }
  }
}

TEST(ShardMessage, FieldsArriveInTheirPlaces) {
  msg::ClaimIdentity claim{
      7,     "email", "a@example.com", MakeProfileId(3, 42), 1'790'000'000'000, "m-1", true,
      false, false};
  auto decoded = DecodeShardMessage(Encoded(claim));
  ASSERT_TRUE(decoded.ok());
  const auto& c = std::get<msg::ClaimIdentity>(*decoded);
  EXPECT_EQ(c.partition, 7u);
  EXPECT_EQ(c.type, "email");
  EXPECT_EQ(c.value, "a@example.com");
  EXPECT_EQ(c.profile_id, MakeProfileId(3, 42));
  EXPECT_EQ(c.at, 1'790'000'000'000);
  EXPECT_EQ(c.message_id, "m-1");
  EXPECT_TRUE(c.explicit_link);
  EXPECT_FALSE(c.link_only);
  EXPECT_FALSE(c.verified);
}

TEST(ShardMessage, DestinationIsTheIdentifiersOrTheProfilesPartition) {
  const std::string survivor = MakeProfileId(5, 1);
  const std::string loser = MakeProfileId(9, 2);
  msg::MergeLink link{survivor, loser, "user_id:u", 0, "", false, survivor};
  EXPECT_EQ(DestinationPartition(msg::MergeCheck{link}), 5u);
  EXPECT_EQ(DestinationPartition(msg::MergeSend{link, {}}), 9u);
  EXPECT_EQ(DestinationPartition(msg::MergeAbsorb{survivor, loser, "", 0, "", ""}), 5u);
  EXPECT_EQ(DestinationPartition(msg::MergeDone{loser}), 9u);
  EXPECT_EQ(DestinationPartition(msg::ClaimIdentity{12, "user_id", "u", survivor}), 12u);
  EXPECT_EQ(DestinationPartition(msg::RepointIdentity{13, "user_id", "u", survivor, loser}), 13u);
  EXPECT_EQ(DestinationPartition(msg::ApplyEvent{loser, Event{}}), 9u);
  EXPECT_EQ(DestinationPartition(msg::DeleteAlias{loser}), 9u);
  EXPECT_EQ(DestinationPartition(msg::InternalOffset{14, 7}), 14u);
  EXPECT_STREQ(MessageName(msg::MergeSend{link, {}}), "MergeSend");
}

TEST(ShardMessage, TruncatedCorruptAndUnknownValuesAreErrors) {
  Filler f(99);
  for (const ShardMessage& m : f.OneOfEach()) {
    const std::string bytes = Encoded(m);
    for (size_t n = 0; n < bytes.size(); n++) {
      EXPECT_FALSE(DecodeShardMessage(bytes.substr(0, n)).ok()) << MessageName(m) << " " << n;
    }
    EXPECT_FALSE(DecodeShardMessage(bytes + "x").ok()) << MessageName(m);
  }
  std::string bytes = Encoded(msg::DeleteAlias{MakeProfileId(1, 1)});
  bytes[0] = static_cast<char>(kShardMessageVersion + 1);
  EXPECT_TRUE(absl::IsDataLoss(DecodeShardMessage(bytes).status()));
  bytes = Encoded(msg::DeleteAlias{MakeProfileId(1, 1)});
  bytes[1] = static_cast<char>(200);
  EXPECT_TRUE(absl::IsDataLoss(DecodeShardMessage(bytes).status()));
  // An event type out of range.
  Event e;
  e.type = EventType::kMerge;
  std::string event_bytes;
  EncodeEvent(e, &event_bytes);
  ASSERT_TRUE(DecodeEvent(event_bytes).ok());
  event_bytes[0] = 0x7f;
  EXPECT_FALSE(DecodeEvent(event_bytes).ok());
  // Random bytes never crash the decoder.
  std::mt19937_64 rng(5);
  for (int i = 0; i < 5000; i++) {
    std::string junk(rng() % 40, '\0');
    for (char& c : junk) c = static_cast<char>(rng() % 256);
    if (!junk.empty()) junk[0] = static_cast<char>(kShardMessageVersion);
    (void)DecodeShardMessage(junk);
  }
}

}  // namespace
}  // namespace ecrm
