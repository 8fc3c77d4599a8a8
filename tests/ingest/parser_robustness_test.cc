// Deterministic mutation testing of everything that parses untrusted bytes: the collector parser
// (HTTP and Kafka shapes) and the profile decoder. Each mutated input must give either a result or
// a precise rejection — never a crash, a hang or (under the ASan build) a memory error. A stand-in
// for a libFuzzer target until clang is part of the toolchain.
#include <gtest/gtest.h>

#include <random>
#include <set>

#include "ingest/collector_parser.h"
#include "profiler/profile_codec.h"

namespace ecrm {
namespace {

const char* kSeeds[] = {
    R"({"sentAt":"2026-01-01T00:00:10Z","context":{"campaign":{"source":"s"},"userAgent":"Mozilla/5.0 (iPhone) Mobile"},"batch":[{"type":"identify","anonymousId":"a","userId":"u","traits":{"email":" A@B.c ","n":[1,2,{"x":null}]}},{"type":"track","anonymousId":"a","event":"Order Completed","properties":{"revenue":5.5,"products":[{"product_id":7,"category":"c","price":1e3}]},"timestamp":"2026-01-01T00:00:00.123+02:00"}]})",
    R"({"type":"page","userId":"u","properties":{"url":"https://x.example/a?b=c","referrer":"https://g.example/"},"messageId":"m1"})",
    R"({"batch":[{"type":"alias","userId":"u","previousId":"p"},{"type":"group","anonymousId":"a","groupId":"g","traits":{}}],"receivedAt":"2026-01-01T00:00:00Z"})",
};

std::string Mutate(const std::string& seed, std::mt19937_64& rng) {
  std::string s = seed;
  const int edits = 1 + static_cast<int>(rng() % 4);
  static const char kInteresting[] = "{}[]\":,\\ 0-9eE.+tfnul\x01\xff";
  for (int e = 0; e < edits && !s.empty(); e++) {
    const size_t pos = rng() % s.size();
    switch (rng() % 4) {
      case 0:
        s[pos] = kInteresting[rng() % (sizeof(kInteresting) - 1)];
        break;
      case 1:
        s.erase(pos, 1 + rng() % 8);
        break;
      case 2:
        s.insert(pos, 1, kInteresting[rng() % (sizeof(kInteresting) - 1)]);
        break;
      case 3:
        s.resize(pos);
        break;
    }
  }
  return s;
}

TEST(ParserRobustness, MutatedRequestsAreParsedOrPreciselyRejected) {
  const std::set<std::string> codes(std::begin(kRejectionCodes), std::end(kRejectionCodes));
  CollectorParser parser{CollectorLimits{}};
  parser.set_keep_raw(true);
  std::mt19937_64 rng(42);
  int accepted = 0, rejected = 0;
  for (int i = 0; i < 20000; i++) {
    const std::string input = Mutate(kSeeds[i % 3], rng);
    CollectorRequest out;
    std::optional<Rejection> r;
    switch (i % 3) {
      case 0:
        r = parser.Parse(input, std::nullopt, 1'790'000'000'000, out);
        break;
      case 1:
        r = parser.Parse(input, EventType::kPage, 1'790'000'000'000, out);
        break;
      case 2:
        r = parser.ParseKafkaMessage(input, 1'790'000'000'000, out);
        break;
    }
    if (r) {
      ASSERT_TRUE(codes.contains(r->code)) << r->code << " for " << input;
      ASSERT_EQ(r->http_status, 400) << input;
      ASSERT_TRUE(out.events.empty());
      rejected++;
    } else {
      ASSERT_EQ(out.events.size(), out.raw.size());
      for (const auto& e : out.events) ASSERT_FALSE(e.RoutingKey().empty()) << input;
      accepted++;
    }
  }
  EXPECT_GT(accepted, 100);  // the mutations are not all fatal: both paths are exercised
  EXPECT_GT(rejected, 1000);
}

TEST(ParserRobustness, MutatedProfileValuesDecodeOrFailCleanly) {
  Profile p;
  p.id = "0001-00000000000000aa";
  p.identities["anonymous_id"] = {"a", "b"};
  p.traits["k"] = {R"("v")", 1};
  p.interests["c"] = {1.5, 2};
  p.recent_products.push_back({"p", "n", "c", 1, true, 3});
  p.segments = {{"s", 0}};
  p.offers["o"] = 1;
  p.windowed_counters["w"] = {1000, {{0, 1}}};
  std::string good;
  EncodeProfile(p, &good);
  std::mt19937_64 rng(7);
  int ok = 0;
  for (int i = 0; i < 20000; i++) {
    std::string bytes = good;
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits; e++) {
      const size_t pos = rng() % bytes.size();
      if (rng() % 2) {
        bytes[pos] = static_cast<char>(rng());
      } else {
        bytes.resize(pos);
      }
      if (bytes.empty()) break;
    }
    auto decoded = DecodeProfile(bytes);
    if (decoded.ok()) {
      ok++;
    } else {
      ASSERT_EQ(decoded.status().code(), absl::StatusCode::kDataLoss);
    }
  }
  EXPECT_GT(ok, 0);
}

}  // namespace
}  // namespace ecrm
