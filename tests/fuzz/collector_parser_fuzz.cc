// The collector parser on untrusted request bodies: every input goes through the batch endpoint
// (/v1/batch), a single-event endpoint (the type from the input's length) and the Kafka message
// path. Each must give events or a precise rejection (a known code, status 400, nothing applied);
// accepted HTTP events become Kafka messages (raw, stamped) that the consumer parses back to the
// same event. Supersedes tests/ingest/parser_robustness_test.cc.
#include <set>
#include <string>

#include "ingest/collector_parser.h"
#include "tests/fuzz/fuzz_target.h"

namespace ecrm {
namespace {

constexpr TimeMs kNow = 1'790'000'000'000;

const std::set<std::string>& Codes() {
  static const auto* codes =
      new std::set<std::string>(std::begin(kRejectionCodes), std::end(kRejectionCodes));
  return *codes;
}

void CheckOutcome(const std::optional<Rejection>& r, const CollectorRequest& out,
                  std::string_view input) {
  if (r) {
    FUZZ_CHECK(Codes().contains(r->code), "unknown code %s", r->code.c_str());
    FUZZ_CHECK(r->http_status == 400, "status %d for %s", r->http_status, r->code.c_str());
    FUZZ_CHECK(!r->message.empty(), "no message for %s", r->code.c_str());
    FUZZ_CHECK(out.events.empty(), "%zu events applied with a rejection", out.events.size());
    return;
  }
  for (const auto& e : out.events) {
    FUZZ_CHECK(!e.RoutingKey().empty(), "an event without identifier from %.*s",
               static_cast<int>(input.size()), input.data());
  }
}

}  // namespace
}  // namespace ecrm

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ecrm;
  static auto* http = [] {
    auto* p = new CollectorParser(CollectorLimits{});
    p->set_keep_raw(true);
    return p;
  }();
  static auto* consumer = new CollectorParser(CollectorLimits{});
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  // /v1/batch, then /v1/<type> (the six types in turn).
  const std::optional<EventType> types[] = {
      std::nullopt,       EventType::kTrack, EventType::kPage, EventType::kIdentify,
      EventType::kScreen, EventType::kAlias, EventType::kGroup};
  for (const auto& type : {types[0], types[1 + size % 6]}) {
    CollectorRequest out;
    const auto r = http->Parse(input, type, kNow, out);
    CheckOutcome(r, out, input);
    if (r) continue;
    FUZZ_CHECK(out.events.size() == out.raw.size(), "%zu events, %zu raw", out.events.size(),
               out.raw.size());
    if (type)
      FUZZ_CHECK(out.events.size() == 1, "%zu events on a single-event path", out.events.size());
    for (size_t i = 0; i < out.events.size(); i++) {
      const Event& e = out.events[i];
      FUZZ_CHECK(out.raw[i].key == e.RoutingKey(), "raw key %s, routing key %s",
                 out.raw[i].key.c_str(), e.RoutingKey().c_str());
      StampEnvelope(e, out.raw[i]);
      CollectorRequest back;
      const auto k = consumer->ParseKafkaMessage(out.raw[i].value, kNow + 60'000, back);
      FUZZ_CHECK(!k, "the consumer refuses the collector's message (%s: %s): %s", k->code.c_str(),
                 k->message.c_str(), out.raw[i].value.c_str());
      FUZZ_CHECK(back.events.size() == 1, "%zu events from one message", back.events.size());
      const Event& b = back.events[0];
      FUZZ_CHECK(b.type == e.type && b.RoutingKey() == e.RoutingKey() &&
                     b.message_id == e.message_id && b.timestamp == e.timestamp &&
                     b.received_at == e.received_at && b.event == e.event,
                 "the message parses to another event: %s", out.raw[i].value.c_str());
    }
  }

  // The Kafka message path on the raw input.
  CollectorRequest out;
  CheckOutcome(consumer->ParseKafkaMessage(input, kNow, out), out, input);
  return 0;
}
