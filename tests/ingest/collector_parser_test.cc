#include "ingest/collector_parser.h"

#include <gtest/gtest.h>

#include <array>
#include <string>
#include <utility>

#include "common/time_format.h"

namespace ecrm {
namespace {

constexpr TimeMs kNow = 1'790'000'000'000;

class ParserTest : public ::testing::Test {
 protected:
  std::optional<Rejection> Batch(const std::string& body) {
    return parser_.Parse(body, std::nullopt, kNow, out_);
  }
  std::optional<Rejection> Single(EventType type, const std::string& body) {
    return parser_.Parse(body, type, kNow, out_);
  }
  void ExpectRejected(const std::string& body, const std::string& code, int index) {
    auto r = Batch(body);
    ASSERT_TRUE(r.has_value()) << body;
    EXPECT_EQ(r->code, code) << body;
    EXPECT_EQ(r->index, index) << body;
    EXPECT_EQ(r->http_status, 400);
    EXPECT_TRUE(out_.events.empty());
  }
  CollectorParser parser_{CollectorLimits{}};
  CollectorRequest out_;
};

TEST_F(ParserTest, ParsesABatchWithContextMergeAndWriteKey) {
  auto r = Batch(
      R"({"writeKey":"wk","context":{"userAgent":"Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148 Safari/604.1","campaign":{"source":"news","medium":"email","name":"spring"}},
    "batch":[
      {"type":"identify","anonymousId":"a1","userId":"u1","traits":{"email":"  Ada@Example.COM ","name":"Ada","age":36},"context":{"traits":{"name":"Old","city":"Oslo"}}},
      {"type":"track","anonymousId":"a1","event":"Viewed Product","properties":{"product_id":123,"category":"shoes","price":"9"}},
      {"type":"track","anonymousId":"a1","event":"Order Completed","properties":{"total":50,"products":[{"sku":"s1","category":"bags"},{"product_id":"p2"}]},"context":{"campaign":{"source":"override"}}}
    ]})");
  ASSERT_FALSE(r.has_value()) << r->code << ": " << r->message;
  EXPECT_EQ(out_.body_write_key, "wk");
  ASSERT_EQ(out_.events.size(), 3u);
  const Event& id = out_.events[0];
  EXPECT_EQ(id.type, EventType::kIdentify);
  EXPECT_EQ(id.email, "ada@example.com");
  std::map<std::string, std::string> traits(id.traits.begin(), id.traits.end());
  EXPECT_EQ(traits["name"], R"("Ada")");  // top-level traits override context.traits
  EXPECT_EQ(traits["city"], R"("Oslo")");
  EXPECT_EQ(traits["age"], "36");
  EXPECT_EQ(id.device.os, "ios");
  EXPECT_EQ(id.device.type, "mobile");
  EXPECT_EQ(id.touch.source, "news");  // from the batch context
  const Event& view = out_.events[1];
  EXPECT_EQ(view.event, "Product Viewed");  // v1 name normalised
  ASSERT_EQ(view.products.size(), 1u);
  EXPECT_EQ(view.products[0].product_id, "123");
  EXPECT_FALSE(view.products[0].has_price);  // a string price is not a number
  const Event& order = out_.events[2];
  EXPECT_TRUE(order.has_revenue);
  EXPECT_EQ(order.revenue, 50);
  ASSERT_EQ(order.products.size(), 2u);
  EXPECT_EQ(order.products[0].product_id, "s1");
  EXPECT_EQ(order.touch.source, "override");  // the item's context wins
  EXPECT_EQ(order.timestamp, kNow);
}

// Segment's consent management: context.consent.categoryPreferences, from the item's context or
// else the batch's; the first of duplicate categories wins; anything but an object of booleans
// (at most 64 categories) is refused.
TEST_F(ParserTest, ReadsConsentCategoryPreferences) {
  auto r = Batch(
      R"({"context":{"consent":{"categoryPreferences":{"Analytics":false,"Advertising":true}}},
    "batch":[
      {"type":"page","anonymousId":"a1"},
      {"type":"page","anonymousId":"a1","context":{"consent":{"categoryPreferences":{"Analytics":true,"Analytics":false}}}},
      {"type":"page","anonymousId":"a1","context":{"consent":{}}}
    ]})");
  ASSERT_FALSE(r.has_value()) << r->code << ": " << r->message;
  ASSERT_EQ(out_.events.size(), 3u);
  using Prefs = std::vector<std::pair<std::string, bool>>;
  EXPECT_EQ(out_.events[0].consent, (Prefs{{"Analytics", false}, {"Advertising", true}}));
  EXPECT_EQ(out_.events[1].consent, (Prefs{{"Analytics", true}}));
  EXPECT_EQ(out_.events[2].consent, Prefs{});
  const std::string page = R"({"batch":[{"type":"page","anonymousId":"a","context":{"consent":)";
  ExpectRejected(page + R"(5}}]})", "invalid_field_type", 0);
  ExpectRejected(page + R"({"categoryPreferences":[true]}}}]})", "invalid_field_type", 0);
  ExpectRejected(page + R"({"categoryPreferences":{"Analytics":"yes"}}}}]})", "invalid_field_type",
                 0);
  std::string many;
  for (int i = 0; i <= 64; i++) many += (i ? ",\"c" : "\"c") + std::to_string(i) + "\":true";
  ExpectRejected(page + R"({"categoryPreferences":{)" + many + "}}}}]}", "invalid_field_type", 0);
}

TEST_F(ParserTest, CorrectsClockSkewFromSentAt) {
  // Device clock 1 hour behind: sent 10 s after the event by the device's clock.
  auto r = Batch(R"({"sentAt":"2026-01-01T00:00:10Z","batch":[
      {"type":"track","anonymousId":"a","event":"E","timestamp":"2026-01-01T00:00:00Z"},
      {"type":"track","anonymousId":"a","event":"E","originalTimestamp":"2026-01-01T00:00:05Z","sentAt":"2026-01-01T00:00:06Z"},
      {"type":"track","anonymousId":"a","event":"E"}]})");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(out_.events[0].timestamp, kNow - 10'000);
  EXPECT_EQ(out_.events[1].timestamp, kNow - 1'000);  // per-event sentAt wins over the batch's
  EXPECT_EQ(out_.events[2].timestamp, kNow);
  EXPECT_EQ(out_.events[0].received_at, kNow);
}

TEST_F(ParserTest, TimestampWithoutSentAtIsTakenAsIs) {
  auto r = Single(
      EventType::kPage,
      R"({"anonymousId":"a","timestamp":"2026-01-01T00:00:00Z","properties":{"referrer":"https://www.google.com/","url":"https://shop.example/x"}})");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(out_.events[0].timestamp, *ParseIso8601("2026-01-01T00:00:00Z"));
  EXPECT_EQ(out_.events[0].touch.referrer, "https://www.google.com/");
}

TEST_F(ParserTest, InternalReferrerIsNotATouch) {
  auto r = Single(
      EventType::kPage,
      R"({"anonymousId":"a","context":{"page":{"referrer":"https://shop.example/a","url":"https://shop.example/b"}}})");
  ASSERT_FALSE(r.has_value());
  EXPECT_TRUE(out_.events[0].touch.empty());
}

TEST_F(ParserTest, SingleEndpointTakesTypeFromPath) {
  auto r = Single(EventType::kTrack, R"({"userId":"u","event":"Signed Up","type":"page"})");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(out_.events[0].type, EventType::kTrack);
  EXPECT_EQ(out_.events[0].RoutingKey(), "u");
  EXPECT_EQ(out_.events[0].RoutingIdentityType(), "user_id");
}

TEST_F(ParserTest, RejectsEachKindOfBadInputWithItsIndex) {
  const std::string ok = R"({"type":"track","anonymousId":"a","event":"E"})";
  ExpectRejected("{not json", "invalid_json", -1);
  ExpectRejected(R"({"batch":[1,2]} trailing)", "invalid_json", -1);
  ExpectRejected("[1]", "invalid_event", -1);
  ExpectRejected("{}", "missing_field", -1);
  ExpectRejected(R"({"batch":{}})", "invalid_field_type", -1);
  ExpectRejected(R"({"batch":[)" + ok + R"(,{"anonymousId":"a"}]})", "missing_type", 1);
  ExpectRejected(R"({"batch":[{"type":"foo","anonymousId":"a"}]})", "invalid_type", 0);
  ExpectRejected(R"({"batch":[{"type":7,"anonymousId":"a"}]})", "invalid_field_type", 0);
  ExpectRejected(R"({"batch":[)" + ok + "," + ok + R"(,{"type":"track","anonymousId":"a"}]})",
                 "missing_event", 2);
  ExpectRejected(R"({"batch":[{"type":"page"}]})", "missing_identifier", 0);
  ExpectRejected(R"({"batch":[{"type":"page","userId":"","anonymousId":""}]})",
                 "missing_identifier", 0);
  ExpectRejected(R"({"batch":[{"type":"page","userId":42}]})", "invalid_field_type", 0);
  ExpectRejected(R"({"batch":[{"type":"track","anonymousId":"a","event":"E","properties":"x"}]})",
                 "invalid_field_type", 0);
  ExpectRejected(R"({"batch":[{"type":"identify","anonymousId":"a","traits":[1]}]})",
                 "invalid_field_type", 0);
  ExpectRejected(R"({"batch":[{"type":"page","anonymousId":"a","context":5}]})",
                 "invalid_field_type", 0);
  ExpectRejected(R"({"batch":[{"type":"page","anonymousId":"a","timestamp":"yesterday"}]})",
                 "invalid_timestamp", 0);
  ExpectRejected(R"({"batch":[{"type":"page","anonymousId":"a","timestamp":5}]})",
                 "invalid_timestamp", 0);
  ExpectRejected(R"({"sentAt":"soon","batch":[]})", "invalid_timestamp", -1);
  ExpectRejected(R"({"batch":[{"type":"page","anonymousId":"a","messageId":")" +
                     std::string(101, 'm') + R"("}]})",
                 "invalid_message_id", 0);
  ExpectRejected(R"({"batch":[{"type":"alias","userId":"u"}]})", "missing_field", 0);
  ExpectRejected(R"({"batch":[{"type":"group","userId":"u"}]})", "missing_field", 0);
  ExpectRejected(R"({"writeKey":5,"batch":[]})", "invalid_field_type", -1);
}

TEST_F(ParserTest, EnforcesSizeAndCountLimits) {
  CollectorLimits limits;
  limits.max_batch_events = 3;
  limits.max_event_bytes = 200;
  limits.max_request_bytes = 1000;
  CollectorParser small(limits);
  const std::string ok = R"({"type":"track","anonymousId":"a","event":"E"})";
  auto r = small.Parse(R"({"batch":[)" + ok + "," + ok + "," + ok + "," + ok + "]}", std::nullopt,
                       kNow, out_);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->code, "batch_too_large");
  const std::string big =
      R"({"type":"track","anonymousId":"a","event":")" + std::string(300, 'x') + R"("})";
  r = small.Parse(R"({"batch":[)" + ok + "," + ok + "," + big + "]}", std::nullopt, kNow, out_);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->code, "event_too_large");
  EXPECT_EQ(r->index, 2);
  r = small.Parse(std::string(1001, ' '), std::nullopt, kNow, out_);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->code, "request_too_large");
  r = small.Parse(big, EventType::kTrack, kNow, out_);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->code, "event_too_large");
  EXPECT_EQ(r->index, -1);
}

TEST_F(ParserTest, EventSizeIsMeasuredMinifiedAtTheExactBoundary) {
  CollectorLimits limits;
  limits.max_event_bytes = 200;
  CollectorParser small(limits);
  auto event_of_size = [](size_t size) {
    const std::string head =
        R"({"type":"track","anonymousId":"a","n":[1,-2,3.5,true,null],"event":")";
    return head + std::string(size - head.size() - 2, 'x') + "\"}";
  };
  ASSERT_EQ(event_of_size(200).size(), 200u);
  // Pretty-printed whitespace does not count; the batch body itself is well over 200 bytes.
  const std::string pad(300, ' ');
  EXPECT_FALSE(
      small.Parse(R"({"batch":[)" + pad + event_of_size(200) + pad + "]}", std::nullopt, kNow, out_)
          .has_value());
  auto r = small.Parse(R"({"batch":[)" + pad + event_of_size(201) + "]}", std::nullopt, kNow, out_);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->code, "event_too_large");
}

TEST_F(ParserTest, EmptyBatchIsAccepted) {
  EXPECT_FALSE(Batch(R"({"batch":[]})").has_value());
  EXPECT_TRUE(out_.events.empty());
}

// Fields are found in one pass over each object; the result must be what looking each one up
// would give: the first of duplicate keys wins, null counts as absent, and an item's context
// field falls back to the batch's only when the item lacks it (or has it as null).
TEST_F(ParserTest, DuplicateKeysNullsAndContextFallbackAsWithLookups) {
  auto r = Batch(
      R"({"context":{"page":{"url":"https://shop.example/","referrer":"https://batch.example/"},
                     "library":{"name":"batch-lib"},"userAgent":"Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"},
    "batch":[
      {"type":"track","event":"First","event":"Second","anonymousId":"a1","userId":null,
       "context":{"library":null,"page":{"url":"https://shop.example/p","referrer":"https://item.example/"},
                  "os":{"name":"custom-os"}}},
      {"type":"page","anonymousId":"a2","messageId":null,"context":null}
    ]})");
  ASSERT_FALSE(r.has_value()) << r->code << ": " << r->message;
  ASSERT_EQ(out_.events.size(), 2u);
  const Event& first = out_.events[0];
  EXPECT_EQ(first.event, "First");
  EXPECT_EQ(first.user_id, "");
  EXPECT_EQ(first.device.library, "batch-lib");              // null in the item: the batch's
  EXPECT_EQ(first.touch.referrer, "https://item.example/");  // the item's page wins
  EXPECT_EQ(first.device.os, "custom-os");
  EXPECT_EQ(first.device.browser, "firefox");  // from the batch's user agent
  const Event& second = out_.events[1];
  EXPECT_EQ(second.message_id, "");
  EXPECT_EQ(second.device.library, "batch-lib");
  EXPECT_EQ(second.device.os, "linux");
  EXPECT_EQ(second.touch.referrer, "https://batch.example/");
}

// One rule for a key given twice in an object: the first occurrence wins, for event fields and
// traits alike; top-level traits win over context.traits.
TEST_F(ParserTest, TheFirstOfDuplicateKeysWinsForTraitsToo) {
  auto r = Batch(
      R"({"batch":[{"type":"identify","userId":"u","userId":"other",
        "traits":{"plan":"gold","plan":"free","email":"a@x.example","email":"b@x.example"},
        "context":{"traits":{"plan":"bronze","city":"Oslo","city":"Rome"}}}]})");
  ASSERT_FALSE(r.has_value()) << r->code << ": " << r->message;
  ASSERT_EQ(out_.events.size(), 1u);
  const Event& e = out_.events[0];
  EXPECT_EQ(e.user_id, "u");
  EXPECT_EQ(e.email, "a@x.example");
  std::map<std::string, std::string> traits(e.traits.begin(), e.traits.end());
  EXPECT_EQ(e.traits.size(), traits.size());  // each key once
  EXPECT_EQ(traits["plan"], R"("gold")");
  EXPECT_EQ(traits["email"], R"("a@x.example")");
  EXPECT_EQ(traits["city"], R"("Oslo")");
}

TEST_F(ParserTest, EventTimesFarFromReceiptAreRejected) {
  const std::string now = FormatIso8601(kNow);
  const std::string in_23h = FormatIso8601(kNow + 23 * 3'600'000LL);
  const std::string in_25h = FormatIso8601(kNow + 25 * 3'600'000LL);
  const std::string nine_years_ago = FormatIso8601(kNow - 9 * 365 * 86'400'000LL);
  const std::string eleven_years_ago = FormatIso8601(kNow - 11 * 365 * 86'400'000LL);
  auto one = [](const std::string& fields) {
    return R"({"batch":[{"type":"page","anonymousId":"a"},{"type":"page","anonymousId":"a",)" +
           fields + "}]}";
  };
  for (const std::string& bad :
       {one(R"("timestamp":"9999-12-31T23:59:59Z")"), one(R"("timestamp":"0000-01-01T00:00:00Z")"),
        one(R"("timestamp":")" + in_25h + "\""), one(R"("timestamp":")" + eleven_years_ago + "\""),
        one(R"("originalTimestamp":"9999-01-01T00:00:00Z")"),
        // A device time that is fine, with a sentAt that puts the corrected time far back.
        one(R"("originalTimestamp":")" + now + R"(","sentAt":"9999-01-01T00:00:00Z")")}) {
    ExpectRejected(bad, "invalid_timestamp", 1);
    EXPECT_NE(parser_.Parse(bad, std::nullopt, kNow, out_)->message.find("received"),
              std::string::npos);
  }
  // A batch-level sentAt far off is refused at the first event.
  ExpectRejected(R"({"sentAt":"9999-01-01T00:00:00Z","batch":[{"type":"page","anonymousId":"a"}]})",
                 "invalid_timestamp", 0);
  // Inside the window: accepted as they are.
  for (const std::string& t : {in_23h, nine_years_ago}) {
    ASSERT_FALSE(Batch(one(R"("timestamp":")" + t + "\"")).has_value()) << t;
    EXPECT_EQ(FormatIso8601(out_.events[1].timestamp), t);
  }
  // A Kafka message's receivedAt is bounded against the time it was consumed.
  CollectorRequest kafka;
  auto k = parser_.ParseKafkaMessage(
      R"({"type":"page","anonymousId":"a","receivedAt":"9999-01-01T00:00:00Z"})", kNow, kafka);
  ASSERT_TRUE(k.has_value());
  EXPECT_EQ(k->code, "invalid_timestamp");
}

TEST_F(ParserTest, AmountsMustBeFiniteAndBoundedAndEmailsShort) {
  auto track = [](const std::string& props) {
    return R"({"batch":[{"type":"track","event":"Order Completed","anonymousId":"a","properties":)" +
           props + "}]}";
  };
  for (const std::string& props :
       {std::string(R"({"revenue":1e308})"), std::string(R"({"total":-1e16})"),
        std::string(R"({"products":[{"product_id":"p","price":1e300}]})"),
        std::string(R"({"product_id":"p","price":2e15})")}) {
    ExpectRejected(track(props), "invalid_number", 0);
  }
  ASSERT_FALSE(Batch(track(R"({"revenue":1e15,"products":[{"product_id":"p","price":-1e15}]})"))
                   .has_value());
  EXPECT_EQ(out_.events[0].revenue, 1e15);
  ExpectRejected(R"({"batch":[{"type":"identify","userId":"u","traits":{"email":")" +
                     std::string(250, 'x') + R"(@x.io"}}]})",
                 "invalid_identifier", 0);
  ASSERT_FALSE(Batch(R"({"batch":[{"type":"identify","userId":"u","traits":{"email":")" +
                     std::string(240, 'x') + R"(@x.io"}}]})")
                   .has_value());
}

// The user-agent classification is cached per thread; many different agents (more than the
// cache holds) must each keep their own answer.
TEST_F(ParserTest, UserAgentsAreClassifiedTheSameWhenCached) {
  const std::pair<std::string, std::array<std::string, 3>> agents[] = {
      {"Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X) Safari/604.1", {"safari", "ios", "tablet"}},
      {"Mozilla/5.0 (Linux; Android 14; Pixel 8) Chrome/126.0 Mobile Safari/537.36",
       {"chrome", "android", "mobile"}},
      {"Googlebot/2.1 (+http://www.google.com/bot.html)", {"bot", "", "bot"}},
      {"Mozilla/5.0 (Windows NT 10.0) Chrome/126.0 Safari/537.36 Edg/126.0",
       {"edge", "windows", "desktop"}}};
  for (int round = 0; round < 3; round++) {
    for (int i = 0; i < 1000; i++) {
      const auto& [ua, want] = agents[i % 4];
      const std::string unique = ua + " v" + std::to_string(i % 300);  // overflow the cache
      ASSERT_FALSE(Batch(R"({"batch":[{"type":"page","anonymousId":"a","context":{"userAgent":")" +
                         unique + R"("}}]})")
                       .has_value());
      const DeviceInfo& d = out_.events.at(0).device;
      ASSERT_EQ(d.browser, want[0]) << unique;
      ASSERT_EQ(d.os, want[1]) << unique;
      ASSERT_EQ(d.type, want[2]) << unique;
    }
  }
}

}  // namespace
}  // namespace ecrm

namespace ecrm {
namespace {

std::string Encode(const Event& e) {
  std::string s = std::string(EventTypeName(e.type)) + "|" + e.message_id + "|" + e.anonymous_id +
                  "|" + e.user_id + "|" + e.event + "|" + e.email + "|" +
                  std::to_string(e.timestamp) + "|" + std::to_string(e.received_at) + "|" +
                  e.touch.source + "|" + e.device.browser + "|" + std::to_string(e.products.size());
  for (const auto& [k, v] : e.traits) s += "|" + k + "=" + v;
  return s;
}

TEST(KafkaMessages, RawMessagesParseBackToTheSameEvents) {
  CollectorParser http{CollectorLimits{}};
  http.set_keep_raw(true);
  CollectorRequest sent;
  ASSERT_FALSE(
      http.Parse(
              R"({"sentAt":"2026-01-01T00:00:10Z","context":{"campaign":{"source":"news"},"userAgent":"Mozilla/5.0 Firefox/120.0"},"batch":[
      {"type":"identify","anonymousId":"a","userId":"u","traits":{"email":"A@B.c"},"timestamp":"2026-01-01T00:00:00Z"},
      {"type":"track","anonymousId":"a","event":"Order Completed","properties":{"revenue":5,"products":[{"product_id":"p"}]}}]})",
              std::nullopt, kNow, sent)
          .has_value());
  ASSERT_EQ(sent.raw.size(), 2u);
  EXPECT_EQ(sent.raw[0].key, "a");
  CollectorParser consumer{CollectorLimits{}};
  for (size_t i = 0; i < sent.raw.size(); i++) {
    CollectorRequest got;
    auto r = consumer.ParseKafkaMessage(sent.raw[i].value, kNow + 60'000, got);  // consumed later
    ASSERT_FALSE(r.has_value()) << r->code << " " << sent.raw[i].value;
    ASSERT_EQ(got.events.size(), 1u);
    EXPECT_EQ(Encode(got.events[0]), Encode(sent.events[i]));
  }
}

TEST(KafkaMessages, SingleEndpointEventsCarryTheirType) {
  CollectorParser http{CollectorLimits{}};
  http.set_keep_raw(true);
  CollectorRequest sent;
  ASSERT_FALSE(
      http.Parse(R"({"userId":"u","event":"E","type":"page"})", EventType::kTrack, kNow, sent)
          .has_value());
  CollectorParser consumer{CollectorLimits{}};
  CollectorRequest got;
  ASSERT_FALSE(consumer.ParseKafkaMessage(sent.raw[0].value, kNow, got).has_value());
  EXPECT_EQ(got.events[0].type, EventType::kTrack);
  EXPECT_EQ(sent.raw[0].key, "u");
}

TEST(KafkaMessages, PlainEventsAndEnvelopesFromOtherProducers) {
  CollectorParser consumer{CollectorLimits{}};
  CollectorRequest got;
  ASSERT_FALSE(
      consumer.ParseKafkaMessage(R"({"type":"page","anonymousId":"a"})", kNow, got).has_value());
  EXPECT_EQ(got.events[0].received_at, kNow);
  ASSERT_FALSE(
      consumer
          .ParseKafkaMessage(
              R"({"batch":[{"type":"page","anonymousId":"a"},{"type":"page","anonymousId":"b"}]})",
              kNow, got)
          .has_value());
  EXPECT_EQ(got.events.size(), 2u);
  auto r = consumer.ParseKafkaMessage(R"({"anonymousId":"a"})", kNow, got);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->code, "missing_type");
  r = consumer.ParseKafkaMessage("not json", kNow, got);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->code, "invalid_json");
  r = consumer.ParseKafkaMessage(R"({"receivedAt":"later","batch":[]})", kNow, got);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->code, "invalid_timestamp");
}

TEST_F(ParserTest, ReadsTheUserHashFromContextEcrm) {
  const std::string hash(64, 'a');
  ASSERT_FALSE(Batch(R"({"context":{"ecrm":{"user_hash":"batch"}},"batch":[
      {"type":"identify","userId":"u1","context":{"ecrm":{"user_hash":")" +
                     hash + R"("}}},
      {"type":"identify","userId":"u2"},
      {"type":"identify","userId":"u3","context":{"ecrm":{"user_hash":null}}}]})")
                   .has_value());
  ASSERT_EQ(out_.events.size(), 3u);
  EXPECT_EQ(out_.events[0].user_hash, hash);
  EXPECT_EQ(out_.events[1].user_hash, "batch");  // the batch context is the fallback
  EXPECT_EQ(out_.events[2].user_hash, "");
  EXPECT_TRUE(out_.events[0].trusted);  // marked later, by the caller that knows the key
  EXPECT_EQ(out_.events[0].source, "");
  ASSERT_FALSE(
      Batch(R"({"batch":[{"type":"page","anonymousId":"a","context":{"ecrm":{}}}]})").has_value());

  ExpectRejected(R"({"batch":[{"type":"page","anonymousId":"a"},
      {"type":"identify","userId":"u","context":{"ecrm":{"user_hash":42}}}]})",
                 "invalid_field_type", 1);
  ExpectRejected(R"({"batch":[{"type":"identify","userId":"u","context":{"ecrm":{"user_hash":")" +
                     std::string(129, 'a') + R"("}}}]})",
                 "invalid_field_type", 0);
  ExpectRejected(R"({"batch":[{"type":"identify","userId":"u","context":{"ecrm":"x"}}]})",
                 "invalid_field_type", 0);
  EXPECT_FALSE(
      Batch(R"({"batch":[{"type":"identify","userId":"u","context":{"ecrm":{"user_hash":")" +
            std::string(128, 'a') + R"("}}}]})")
          .has_value());
}

TEST(KafkaMessages, TheEcrmEnvelopeFieldMarksEveryEvent) {
  CollectorParser consumer{CollectorLimits{}};
  CollectorRequest got;
  // Without the field (another producer): trusted, no source; a user_hash is dropped.
  ASSERT_FALSE(
      consumer
          .ParseKafkaMessage(
              R"({"batch":[{"type":"identify","userId":"u","context":{"ecrm":{"user_hash":"h"}}},
                                    {"type":"page","anonymousId":"a"}]})",
              kNow, got)
          .has_value());
  ASSERT_EQ(got.events.size(), 2u);
  for (const auto& e : got.events) {
    EXPECT_TRUE(e.trusted);
    EXPECT_EQ(e.source, "");
    EXPECT_FALSE(e.user_hash_valid);
    EXPECT_EQ(e.user_hash, "");
  }
  ASSERT_FALSE(
      consumer.ParseKafkaMessage(R"({"type":"page","anonymousId":"a"})", kNow, got).has_value());
  EXPECT_TRUE(got.events[0].trusted);

  // With it: onto every event of the message, in either form.
  ASSERT_FALSE(
      consumer
          .ParseKafkaMessage(
              R"({"batch":[{"type":"identify","userId":"u"},{"type":"page","anonymousId":"a"}],
                  "ecrm":{"source":"0123456789abcdef","trusted":false,"userHashValid":true}})",
              kNow, got)
          .has_value());
  ASSERT_EQ(got.events.size(), 2u);
  for (const auto& e : got.events) {
    EXPECT_FALSE(e.trusted);
    EXPECT_EQ(e.source, "0123456789abcdef");
    EXPECT_TRUE(e.user_hash_valid);
  }
  ASSERT_FALSE(consumer
                   .ParseKafkaMessage(
                       R"({"type":"page","anonymousId":"a","ecrm":{"source":"s","trusted":false}})",
                       kNow, got)
                   .has_value());
  EXPECT_FALSE(got.events[0].trusted);
  EXPECT_EQ(got.events[0].source, "s");
  EXPECT_FALSE(got.events[0].user_hash_valid);

  for (const char* bad :
       {R"({"batch":[{"type":"page","anonymousId":"a"}],"ecrm":"server"})",
        R"({"batch":[{"type":"page","anonymousId":"a"}],"ecrm":{"trusted":"yes"}})",
        R"({"batch":[{"type":"page","anonymousId":"a"}],"ecrm":{"source":1}})",
        R"({"batch":[{"type":"page","anonymousId":"a"}],"ecrm":{"userHashValid":1}})"}) {
    auto r = consumer.ParseKafkaMessage(bad, kNow, got);
    ASSERT_TRUE(r.has_value()) << bad;
    EXPECT_EQ(r->code, "invalid_field_type") << bad;
    EXPECT_TRUE(got.events.empty());
  }
}

TEST(KafkaMessages, StampedEnvelopesParseBackWithTheirMarks) {
  CollectorParser http{CollectorLimits{}};
  http.set_keep_raw(true);
  CollectorRequest sent;
  ASSERT_FALSE(
      http.Parse(R"({"userId":"u","event":"E"})", EventType::kTrack, kNow, sent).has_value());
  sent.events[0].source = "k\"ey";  // escaped in the envelope
  sent.events[0].trusted = false;
  sent.events[0].user_hash_valid = true;
  StampEnvelope(sent.events[0], sent.raw[0]);
  EXPECT_TRUE(sent.raw[0].value.ends_with(
      R"(,"ecrm":{"source":"k\"ey","trusted":false,"userHashValid":true}})"))
      << sent.raw[0].value;
  CollectorParser consumer{CollectorLimits{}};
  CollectorRequest got;
  ASSERT_FALSE(consumer.ParseKafkaMessage(sent.raw[0].value, kNow, got).has_value());
  EXPECT_EQ(got.events[0].source, "k\"ey");
  EXPECT_FALSE(got.events[0].trusted);
  EXPECT_TRUE(got.events[0].user_hash_valid);
  EXPECT_EQ(Encode(got.events[0]), Encode(sent.events[0]));
}

}  // namespace
}  // namespace ecrm
