#include "ingest/collector_parser.h"

#include <charconv>

#include "common/json_writer.h"
#include "common/status.h"
#include "common/time_format.h"

namespace ecrm {
namespace {

Rejection Make(std::string code, std::string message, int index = -1) {
  return Rejection{400, std::move(code), std::move(message), index};
}

// The size of `e` as minified JSON (as simdjson::minify would write it), computed without
// serialising it. Object keys are counted as stored; keys needing escapes count once.
size_t MinifiedSize(simdjson::dom::element e) {
  char buf[32];
  switch (e.type()) {
    case simdjson::dom::element_type::OBJECT: {
      size_t n = 2;
      bool first = true;
      for (auto field : simdjson::dom::object(e)) {
        n += (first ? 0 : 1) + field.key.size() + 3 + MinifiedSize(field.value);
        first = false;
      }
      return n;
    }
    case simdjson::dom::element_type::ARRAY: {
      size_t n = 2;
      bool first = true;
      for (auto item : simdjson::dom::array(e)) {
        n += (first ? 0 : 1) + MinifiedSize(item);
        first = false;
      }
      return n;
    }
    case simdjson::dom::element_type::STRING: {
      const std::string_view s(e);
      size_t n = s.size() + 2;
      for (const char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        if (c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t' || c == '\b' ||
            c == '\f') {
          n += 1;
        } else if (c < 0x20) {
          n += 5;  // \u00XX
        }
      }
      return n;
    }
    case simdjson::dom::element_type::BOOL:
      return bool(e) ? 4 : 5;
    case simdjson::dom::element_type::NULL_VALUE:
      return 4;
    case simdjson::dom::element_type::INT64:
      return static_cast<size_t>(std::to_chars(buf, buf + sizeof(buf), int64_t(e)).ptr - buf);
    case simdjson::dom::element_type::UINT64:
      return static_cast<size_t>(std::to_chars(buf, buf + sizeof(buf), uint64_t(e)).ptr - buf);
    case simdjson::dom::element_type::DOUBLE:
      return static_cast<size_t>(std::to_chars(buf, buf + sizeof(buf), double(e)).ptr - buf);
  }
  return 0;
}

// The trust marks of a Kafka message's events: its top-level `ecrm` object (StampEnvelope), or
// the defaults (trusted, no source) for messages of other producers.
struct EnvelopeTrust {
  std::string_view source;
  bool trusted = true;
  bool user_hash_valid = false;

  void Apply(Event& event) const {
    event.source.assign(source);
    event.trusted = trusted;
    event.user_hash_valid = user_hash_valid;
    event.user_hash.clear();
  }
};

std::optional<Rejection> ReadEnvelopeTrust(simdjson::dom::object top, EnvelopeTrust& out) {
  simdjson::dom::element e;
  if (top.at_key("ecrm").get(e) != simdjson::SUCCESS || e.is_null()) return std::nullopt;
  simdjson::dom::object ecrm;
  if (e.get_object().get(ecrm) != simdjson::SUCCESS) {
    return Make("invalid_field_type", "ecrm must be an object");
  }
  simdjson::dom::element v;
  if (ecrm.at_key("source").get(v) == simdjson::SUCCESS && !v.is_null() &&
      v.get_string().get(out.source) != simdjson::SUCCESS) {
    return Make("invalid_field_type", "ecrm.source must be a string");
  }
  if (ecrm.at_key("trusted").get(v) == simdjson::SUCCESS && !v.is_null() &&
      v.get_bool().get(out.trusted) != simdjson::SUCCESS) {
    return Make("invalid_field_type", "ecrm.trusted must be a boolean");
  }
  if (ecrm.at_key("userHashValid").get(v) == simdjson::SUCCESS && !v.is_null() &&
      v.get_bool().get(out.user_hash_valid) != simdjson::SUCCESS) {
    return Make("invalid_field_type", "ecrm.userHashValid must be a boolean");
  }
  return std::nullopt;
}

}  // namespace

void StampEnvelope(const Event& event, RawEventMessage& message) {
  ECRM_CHECK(!message.value.empty() && message.value.back() == '}');
  message.value.pop_back();
  message.value += R"(,"ecrm":)";
  JsonWriter w(&message.value);
  w.BeginObject();
  w.Key("source").String(event.source);
  w.Key("trusted").Bool(event.trusted);
  w.Key("userHashValid").Bool(event.user_hash_valid);
  w.EndObject();
  message.value += '}';
}

CollectorParser::CollectorParser(const CollectorLimits& limits)
    : limits_(limits), parser_(limits.max_request_bytes + 64) {}

std::optional<Rejection> CollectorParser::Parse(std::string_view body,
                                                std::optional<EventType> path_type,
                                                TimeMs received_at, CollectorRequest& out) {
  return ParseImpl(body, path_type, false, received_at, out);
}

std::optional<Rejection> CollectorParser::ParseKafkaMessage(std::string_view body,
                                                            TimeMs consumed_at,
                                                            CollectorRequest& out) {
  return ParseImpl(body, std::nullopt, true, consumed_at, out);
}

void CollectorParser::KeepRaw(simdjson::dom::element item, const Event& event, bool single_endpoint,
                              std::string_view context_json, std::string_view sent_at,
                              CollectorRequest& out) {
  std::string item_json = simdjson::minify(item);
  if (single_endpoint) {  // the type came from the path: put it in the event itself (first wins)
    item_json = std::string(R"({"type":")") + EventTypeName(event.type) + "\"" +
                (item_json.size() > 2 ? "," : "") + item_json.substr(1);
  }
  std::string value = R"({"batch":[)" + item_json + "]";
  if (!context_json.empty()) value += R"(,"context":)" + std::string(context_json);
  if (!sent_at.empty()) value += R"(,"sentAt":")" + std::string(sent_at) + "\"";
  value += R"(,"receivedAt":")" + FormatIso8601(event.received_at) + "\"}";
  out.raw.push_back({event.RoutingKey(), std::move(value)});
}

std::optional<Rejection> CollectorParser::ParseImpl(std::string_view body,
                                                    std::optional<EventType> path_type, bool kafka,
                                                    TimeMs received_at, CollectorRequest& out) {
  out.events.clear();
  out.body_write_key.clear();
  out.raw.clear();
  if (body.size() > limits_.max_request_bytes) {
    return Make("request_too_large",
                "request body exceeds " + std::to_string(limits_.max_request_bytes) + " bytes");
  }
  simdjson::dom::element root;
  if (auto err = parser_.parse(body.data(), body.size(), true).get(root); err) {
    return Make("invalid_json", std::string("malformed JSON: ") + simdjson::error_message(err));
  }
  simdjson::dom::object top;
  if (root.get_object().get(top) != simdjson::SUCCESS) {
    return Make("invalid_event", "the body must be a JSON object");
  }
  std::string_view write_key;
  if (simdjson::dom::element wk; top.at_key("writeKey").get(wk) == simdjson::SUCCESS) {
    if (wk.get_string().get(write_key) != simdjson::SUCCESS && !wk.is_null()) {
      return Make("invalid_field_type", "writeKey must be a string");
    }
  }
  out.body_write_key.assign(write_key);

  EventContext ctx;
  ctx.received_at = received_at;
  ctx.path_type = path_type;
  const bool check_item_size = body.size() > limits_.max_event_bytes;
  simdjson::dom::element batch_el;
  const bool has_batch =
      top.at_key("batch").get(batch_el) == simdjson::SUCCESS && !batch_el.is_null();
  EnvelopeTrust trust;
  if (kafka) {
    if (simdjson::dom::element r; top.at_key("receivedAt").get(r) == simdjson::SUCCESS) {
      std::string_view text;
      std::optional<TimeMs> at;
      if (r.get_string().get(text) != simdjson::SUCCESS || !(at = ParseIso8601(text))) {
        return Make("invalid_timestamp", "receivedAt is not an ISO-8601 time");
      }
      if (std::string why = limits_.event.TimeOutOfWindow(*at, received_at); !why.empty()) {
        return Make("invalid_timestamp", "receivedAt " + why);
      }
      ctx.received_at = *at;
    }
    // Only here: the HTTP collector never reads a client's `ecrm` (its envelopes get their own).
    if (auto rejection = ReadEnvelopeTrust(top, trust)) return rejection;
  }

  if (path_type || (kafka && !has_batch)) {
    if (check_item_size && MinifiedSize(root) > limits_.max_event_bytes) {
      return Make("event_too_large",
                  "event exceeds " + std::to_string(limits_.max_event_bytes) + " bytes");
    }
    Event event;
    Rejection rejection;
    if (!BuildEvent(root, ctx, limits_.event, event, rejection)) return rejection;
    if (keep_raw_) KeepRaw(root, event, path_type.has_value(), {}, {}, out);
    if (kafka) trust.Apply(event);
    out.events.push_back(std::move(event));
    return std::nullopt;
  }

  if (!has_batch) return Make("missing_field", "batch is required");
  simdjson::dom::array batch;
  if (batch_el.get_array().get(batch) != simdjson::SUCCESS) {
    return Make("invalid_field_type", "batch must be an array");
  }
  if (batch.size() > limits_.max_batch_events) {
    return Make("batch_too_large", "batch has " + std::to_string(batch.size()) +
                                       " events; the limit is " +
                                       std::to_string(limits_.max_batch_events));
  }
  if (simdjson::dom::element c; top.at_key("context").get(c) == simdjson::SUCCESS && !c.is_null()) {
    if (!c.is_object()) return Make("invalid_field_type", "context must be an object");
    ctx.batch_context = c;
    ctx.has_batch_context = true;
  }
  std::string context_json;
  std::string_view sent_at_text;
  if (keep_raw_ && ctx.has_batch_context) context_json = simdjson::minify(ctx.batch_context);
  if (simdjson::dom::element s; top.at_key("sentAt").get(s) == simdjson::SUCCESS && !s.is_null()) {
    std::string_view text;
    if (s.get_string().get(text) != simdjson::SUCCESS ||
        !(ctx.batch_sent_at = ParseIso8601(text))) {
      return Make("invalid_timestamp", "sentAt is not an ISO-8601 time");
    }
    sent_at_text = text;
  }
  out.events.reserve(batch.size());
  int index = 0;
  for (simdjson::dom::element item : batch) {
    if (check_item_size && MinifiedSize(item) > limits_.max_event_bytes) {
      out.events.clear();
      out.raw.clear();
      return Make("event_too_large",
                  "event exceeds " + std::to_string(limits_.max_event_bytes) + " bytes", index);
    }
    Event event;
    Rejection rejection;
    if (!BuildEvent(item, ctx, limits_.event, event, rejection)) {
      out.events.clear();
      out.raw.clear();
      rejection.index = index;
      return rejection;
    }
    if (keep_raw_) KeepRaw(item, event, false, context_json, sent_at_text, out);
    if (kafka) trust.Apply(event);
    out.events.push_back(std::move(event));
    index++;
  }
  return std::nullopt;
}

}  // namespace ecrm
