// Writes the binary seeds of the fuzz corpora (tests/fuzz/corpus/), made by the real encoders:
// profiles for profile_codec, and for kafka_message the collector's stamped Kafka envelopes, every
// kind of shard message, an event and a pending merge. Usage: fuzz_seed_gen <corpus dir>.
#include <filesystem>
#include <fstream>
#include <string>

#include "ingest/collector_parser.h"
#include "profiler/profile_codec.h"
#include "profiler/shard_message.h"
#include "store/keys.h"

namespace ecrm {
namespace {

std::filesystem::path root;

void Write(const std::string& dir, const std::string& name, const std::string& bytes) {
  std::filesystem::create_directories(root / dir);
  std::ofstream(root / dir / name, std::ios::binary) << bytes;
}

Event SomeEvent() {
  Event e;
  e.type = EventType::kTrack;
  e.message_id = "m-1";
  e.anonymous_id = "a";
  e.user_id = "u";
  e.event = "Order Completed";
  e.email = "a@b.c";
  e.properties = R"({"revenue":5.5})";
  e.timestamp = 1'790'000'000'000;
  e.received_at = 1'790'000'000'100;
  e.client_time = 1'789'999'999'000;
  e.traits = {{"plan", R"("gold")"}};
  e.identifiers = {{"phone", "+4915112345678"}};
  e.products = {{"p1", "Shoe", "shoes", 99.5, true}};
  e.revenue = 5.5;
  e.has_revenue = true;
  e.touch = {"google", "cpc", "spring", "", "", "https://g.example/", 1'790'000'000'000};
  e.device = {"mobile", "iOS", "Safari", "analytics.js"};
  e.message_hash = 0x1234567890abcdefULL;
  return e;
}

void Profiles() {
  Profile empty;
  empty.id = MakeProfileId(3, 1);
  std::string out;
  EncodeProfile(empty, &out);
  Write("profile_codec", "empty.bin", out);

  Profile p;
  p.id = MakeProfileId(5, 0xaa);
  p.identities["anonymous_id"] = {"a", "b"};
  p.identities["email"] = {"a@b.c"};
  p.traits["plan"] = {R"("gold")", 1'790'000'000'000, ""};
  p.traits["tier"] = {"3", 1'790'000'000'000, "crm"};
  p.stats = {12, 5, 1, 2, 1, 99.5, 1'789'000'000'000, 1'790'000'000'000};
  p.session_intervals = {{1'789'000'000'000, 1'789'000'600'000, 4},
                         {1'790'000'000'000, 1'790'000'300'000, 8}};
  p.sessions_dropped = 1;
  p.interests["shoes"] = {1.5, 1'790'000'000'000};
  p.recent_products.push_back({"p1", "Shoe", "shoes", 99.5, true, 1'790'000'000'000});
  p.first_touch = {"google", "cpc", "spring", "", "", "https://g.example/", 1'789'000'000'000};
  p.device = {"mobile", "iOS", "Safari", "analytics.js"};
  p.counters["shoe_views"] = 4;
  p.segments = {{"vip", 0}, {"recent", 1'791'000'000'000}};
  p.scores["churn"] = 0.25;
  p.offers["o1"] = 1'790'000'000'000;
  p.windowed_counters["views_1h"].window_ms = 3'600'000;
  p.windowed_counters["views_1h"].Add(1'790'000'000'000, 2);
  p.rules_fired["welcome"] = "1790000000000";
  p.merged_ids = {MakeProfileId(5, 0xbb)};
  p.history.push_back({1'790'000'000'000, true, MakeProfileId(5, 0xbb), "user_id:u", "m-1", ""});
  p.history.push_back(
      {1'790'000'000'001, false, MakeProfileId(6, 0xcc), "email:x@y.z", "", "limit"});
  p.RememberMessage(0x1234, 1'790'000'000'000, 86'400'000);
  EncodeProfile(p, &out);
  Write("profile_codec", "full.bin", out);
  Write("profile_codec", "alias.bin", EncodeAlias(MakeProfileId(5, 0xaa)));
}

void KafkaMessages() {
  const char* requests[] = {
      R"({"sentAt":"2026-09-21T13:20:10Z","context":{"campaign":{"source":"s"},"userAgent":"Mozilla/5.0 (iPhone) Mobile"},"batch":[{"type":"identify","anonymousId":"a","userId":"u","traits":{"email":" A@B.c ","n":[1,2,{"x":null}]}},{"type":"track","anonymousId":"a","event":"Order Completed","properties":{"revenue":5.5,"products":[{"product_id":7,"category":"c","price":1e3}]},"timestamp":"2026-09-21T13:20:00.123+02:00"}]})",
      R"({"batch":[{"type":"page","userId":"u","properties":{"url":"https://x.example/a?b=c"},"messageId":"m1"},{"type":"alias","userId":"u","previousId":"p"},{"type":"group","anonymousId":"a","groupId":"g","traits":{}}]})",
  };
  CollectorParser parser{CollectorLimits{}};
  parser.set_keep_raw(true);
  int n = 0;
  for (const char* body : requests) {
    CollectorRequest out;
    if (parser.Parse(body, std::nullopt, 1'790'000'000'000, out)) continue;
    for (size_t i = 0; i < out.events.size(); i++) {
      out.events[i].source = "k1";
      out.events[i].trusted = i % 2 == 0;
      StampEnvelope(out.events[i], out.raw[i]);
      Write("kafka_message", "envelope-" + std::to_string(n++) + ".json", out.raw[i].value);
    }
  }
  const std::string a = MakeProfileId(1, 0xa), b = MakeProfileId(2, 0xb);
  const msg::MergeLink link{a, b, "user_id:u", 1'790'000'000'000, "m-1", true, b};
  const ShardMessage messages[] = {
      msg::RouteEvent{3, SomeEvent()},
      msg::ApplyEvent{a, SomeEvent()},
      msg::ClaimIdentity{3, "user_id", "u", a, 1'790'000'000'000, "m-1", true, false, true},
      msg::AttachIdentity{a, "email", "a@b.c"},
      msg::SourceOffset{3, 42},
      msg::MergeCheck{link},
      msg::MergeSend{link, {"x", "y"}},
      msg::MergeAbsorb{a, b, "user_id:u", 1'790'000'000'000, "m-1", "profile bytes"},
      msg::MergeDone{a},
      msg::RepointIdentity{3, "user_id", "u", a, b},
      msg::DetachIdentity{a, "email", "a@b.c", b, 1'790'000'000'000, "m-1"},
      msg::RecordRefusal{a, b, "email:a@b.c", 1'790'000'000'000, "m-1", "limit"},
      msg::DeleteProfile{a},
      msg::DeleteIdentity{3, "user_id", "u", {"m-1"}},
      msg::DeleteAlias{b},
      msg::InternalOffset{3, 43},
  };
  for (const ShardMessage& m : messages) {
    std::string out;
    EncodeShardMessage(m, &out);
    Write("kafka_message", std::string("shard-") + MessageName(m) + ".bin", out);
  }
  std::string event;
  EncodeEvent(SomeEvent(), &event);
  Write("kafka_message", "event.bin", event);
  Write("kafka_message", "pending-merge.bin",
        EncodePendingMerge({a, b, "user_id:u", 1'790'000'000'000, "m-1", "profile bytes"}));
}

}  // namespace
}  // namespace ecrm

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <corpus dir>\n", argv[0]);
    return 2;
  }
  ecrm::root = argv[1];
  ecrm::Profiles();
  ecrm::KafkaMessages();
  return 0;
}
