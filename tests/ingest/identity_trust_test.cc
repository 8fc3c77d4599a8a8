#include "ingest/identity_trust.h"

#include <gtest/gtest.h>

#include <string>

#include "ingest/key_id.h"

namespace ecrm {
namespace {

constexpr TimeMs kNow = 1'790'000'000'000;

TEST(HmacSha256Hex, MatchesRfc4231TestCase2) {
  EXPECT_EQ(HmacSha256Hex("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(KeyId, IsSixteenStableHexDigitsThatDoNotContainTheKey) {
  const std::string id = KeyId("wk_secret");
  EXPECT_EQ(id.size(), 16u);
  EXPECT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_EQ(KeyId("wk_secret"), id);
  EXPECT_NE(KeyId("wk_secreT"), id);
  EXPECT_EQ(id.find("secret"), std::string::npos);
}

TEST(IdentityTrust, VerifiesTheUserHashOfTheUserId) {
  const IdentityTrust trust("s3cret");
  const std::string good = HmacSha256Hex("s3cret", "u1");
  EXPECT_TRUE(trust.VerifyUserHash("u1", good));
  EXPECT_FALSE(trust.VerifyUserHash("u2", good));
  EXPECT_FALSE(trust.VerifyUserHash("", HmacSha256Hex("s3cret", "")));
  EXPECT_FALSE(trust.VerifyUserHash("u1", ""));
  EXPECT_FALSE(trust.VerifyUserHash("u1", good.substr(0, 63)));
  std::string upper = good;
  for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_FALSE(trust.VerifyUserHash("u1", upper));  // lowercase hex only
  EXPECT_FALSE(trust.VerifyUserHash("u1", HmacSha256Hex("other", "u1")));
  EXPECT_FALSE(IdentityTrust("").VerifyUserHash("u1", HmacSha256Hex("", "u1")));
}

class MarkTest : public ::testing::Test {
 protected:
  CollectorRequest Parse(const std::string& body, bool keep_raw = false) {
    CollectorParser parser{CollectorLimits{}};
    parser.set_keep_raw(keep_raw);
    CollectorRequest out;
    auto r = parser.Parse(body, std::nullopt, kNow, out);
    EXPECT_FALSE(r.has_value()) << r->code << ": " << r->message;
    return out;
  }
  std::string Body() const {
    return R"({"batch":[
      {"type":"identify","userId":"u1","context":{"ecrm":{"user_hash":")" +
           HmacSha256Hex("s3cret", "u1") + R"("}}},
      {"type":"identify","userId":"u2","context":{"ecrm":{"user_hash":")" +
           HmacSha256Hex("s3cret", "u1") + R"("}}},
      {"type":"page","anonymousId":"a1"}]})";
  }
  const IdentityTrust trust_{"s3cret"};
};

TEST_F(MarkTest, ServerKeyEventsAreTrusted) {
  CollectorRequest request = Parse(Body());
  trust_.Mark({WriteKeyKind::kServer, KeyId("sk")}, request);
  ASSERT_EQ(request.events.size(), 3u);
  for (const auto& e : request.events) {
    EXPECT_EQ(e.source, KeyId("sk"));
    EXPECT_TRUE(e.trusted);
    EXPECT_FALSE(e.user_hash_valid);
    EXPECT_TRUE(e.user_hash.empty());
  }
}

TEST_F(MarkTest, BrowserKeyEventsAreUntrustedAndVerifyOnlyAMatchingUserHash) {
  CollectorRequest request = Parse(Body());
  EXPECT_FALSE(request.events[0].user_hash.empty());  // as parsed, before the mark
  trust_.Mark({WriteKeyKind::kBrowser, KeyId("bk")}, request);
  ASSERT_EQ(request.events.size(), 3u);
  EXPECT_TRUE(request.events[0].user_hash_valid);
  EXPECT_FALSE(request.events[1].user_hash_valid);  // u1's hash on u2's claim
  EXPECT_FALSE(request.events[2].user_hash_valid);  // no user id, no hash
  for (const auto& e : request.events) {
    EXPECT_EQ(e.source, KeyId("bk"));
    EXPECT_FALSE(e.trusted);
    EXPECT_TRUE(e.user_hash.empty());
  }
  request = Parse(Body());
  IdentityTrust("").Mark({WriteKeyKind::kBrowser, KeyId("bk")}, request);  // no secret
  EXPECT_FALSE(request.events[0].user_hash_valid);
}

TEST_F(MarkTest, KafkaEnvelopesCarryTheMarksAndAClientCannotInjectThem) {
  // A client's own top-level `ecrm` is ignored on HTTP; the envelope carries the computed marks.
  std::string body = Body();
  body.insert(1, R"("ecrm":{"source":"forged","trusted":true,"userHashValid":true},)");
  CollectorRequest request = Parse(body, true);
  trust_.Mark({WriteKeyKind::kBrowser, KeyId("bk")}, request);
  ASSERT_EQ(request.raw.size(), 3u);
  EXPECT_NE(request.raw[1].value.find(R"("ecrm":{"source":")" + KeyId("bk") +
                                      R"(","trusted":false,"userHashValid":false}})"),
            std::string::npos)
      << request.raw[1].value;
  EXPECT_EQ(request.raw[1].value.find("forged"), std::string::npos);
  CollectorParser consumer{CollectorLimits{}};
  const bool expected_valid[] = {true, false, false};
  for (size_t i = 0; i < request.raw.size(); i++) {
    CollectorRequest got;
    auto r = consumer.ParseKafkaMessage(request.raw[i].value, kNow, got);
    ASSERT_FALSE(r.has_value()) << r->code << " " << request.raw[i].value;
    ASSERT_EQ(got.events.size(), 1u);
    EXPECT_EQ(got.events[0].source, KeyId("bk"));
    EXPECT_FALSE(got.events[0].trusted);
    EXPECT_EQ(got.events[0].user_hash_valid, expected_valid[i]) << i;
    EXPECT_TRUE(got.events[0].user_hash.empty());
  }
}

}  // namespace
}  // namespace ecrm
