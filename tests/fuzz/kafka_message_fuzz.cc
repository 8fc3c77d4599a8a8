// What ecrm reads from Kafka: a message of the events topic (ParseKafkaMessage: one event or a
// batch envelope, with the collector's `ecrm` stamp), a message of the internal shard topic
// (DecodeShardMessage), an event in its binary form (DecodeEvent) and a pending merge record
// (DecodePendingMerge). Each input goes through all four. Parsed events must carry an identifier,
// rejections a known code; a decoded binary value must re-encode to a value that decodes to the
// same bytes again.
#include <set>
#include <string>

#include "ingest/collector_parser.h"
#include "profiler/shard_message.h"
#include "tests/fuzz/fuzz_target.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ecrm;
  static auto* parser = new CollectorParser(CollectorLimits{});
  static const auto* codes =
      new std::set<std::string>(std::begin(kRejectionCodes), std::end(kRejectionCodes));
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  CollectorRequest out;
  if (const auto r = parser->ParseKafkaMessage(input, 1'790'000'000'000, out)) {
    FUZZ_CHECK(codes->contains(r->code), "unknown code %s", r->code.c_str());
    FUZZ_CHECK(r->http_status == 400, "status %d", r->http_status);
    FUZZ_CHECK(out.events.empty(), "events applied with a rejection");
  } else {
    FUZZ_CHECK(!out.events.empty(), "a message of no event accepted");
    for (const auto& e : out.events) FUZZ_CHECK(!e.RoutingKey().empty(), "no identifier");
  }

  if (auto m = DecodeShardMessage(input); m.ok()) {
    std::string once, twice;
    EncodeShardMessage(*m, &once);
    auto again = DecodeShardMessage(once);
    FUZZ_CHECK(again.ok(), "a re-encoded %s does not decode: %s", MessageName(*m),
               again.status().ToString().c_str());
    FUZZ_CHECK(again->index() == m->index(), "the kind changed");
    EncodeShardMessage(*again, &twice);
    FUZZ_CHECK(once == twice, "%s does not round-trip", MessageName(*m));
  } else {
    FUZZ_CHECK(absl::IsDataLoss(m.status()), "%s", m.status().ToString().c_str());
  }

  if (auto e = DecodeEvent(input); e.ok()) {
    std::string once, twice;
    EncodeEvent(*e, &once);
    auto again = DecodeEvent(once);
    FUZZ_CHECK(again.ok(), "a re-encoded event does not decode");
    EncodeEvent(*again, &twice);
    FUZZ_CHECK(once == twice, "an event does not round-trip");
  }

  if (auto p = DecodePendingMerge(input)) {
    auto again = DecodePendingMerge(EncodePendingMerge(*p));
    FUZZ_CHECK(again && EncodePendingMerge(*again) == EncodePendingMerge(*p),
               "a pending merge does not round-trip");
  }
  return 0;
}
