#include "ingest/profile_record.h"

#include "common/strings.h"
#include "common/time_format.h"

namespace ecrm {

bool ProfileRecordOptions::KnownType(std::string_view type) const {
  if (type == "anonymous_id" || type == "user_id" || type == "email") return true;
  for (const auto& t : identifier_types) {
    if (t == type) return true;
  }
  return false;
}

bool ProfileRecordParser::Parse(std::string_view json, TimeMs received_at, Event& out,
                                Rejection& rejection) {
  auto fail = [&](std::string code, std::string message) {
    rejection.http_status = 400;
    rejection.code = std::move(code);
    rejection.message = std::move(message);
  };
  simdjson::dom::element doc;
  simdjson::dom::object record;
  if (parser_.parse(json.data(), json.size()).get(doc) != simdjson::SUCCESS ||
      doc.get_object().get(record) != simdjson::SUCCESS) {
    fail("invalid_json", "not a JSON object");
    return false;
  }
  Event e;
  e.type = EventType::kIdentify;
  e.received_at = received_at;
  e.timestamp = received_at;
  std::string_view channel;
  if (record["channel"].get_string().get(channel) != simdjson::SUCCESS || channel.empty() ||
      channel.size() > 64) {
    fail("invalid_channel", "\"channel\" (1 to 64 characters, e.g. \"crm\") is required");
    return false;
  }
  e.channel = std::string(channel);
  if (auto at = record["updated_at"]; !at.error()) {
    std::string_view text;
    int64_t ms = 0;
    if (at.get_string().get(text) == simdjson::SUCCESS) {
      auto parsed = ParseIso8601(text);
      if (!parsed) {
        fail("invalid_timestamp", "updated_at must be ISO-8601 or epoch milliseconds");
        return false;
      }
      e.timestamp = *parsed;
    } else if (at.get_int64().get(ms) == simdjson::SUCCESS && ms > 0) {
      e.timestamp = ms;
    } else {
      fail("invalid_timestamp", "updated_at must be ISO-8601 or epoch milliseconds");
      return false;
    }
  }
  simdjson::dom::object identifiers;
  if (record["identifiers"].get_object().get(identifiers) != simdjson::SUCCESS) {
    fail("missing_identifier", "\"identifiers\" (an object of type: value) is required");
    return false;
  }
  bool ok = true;
  for (auto [type, value] : identifiers) {
    std::string_view v;
    if (value.get_string().get(v) != simdjson::SUCCESS ||
        v.size() > options_.limits.max_identifier) {
      fail("invalid_identifier", "identifiers." + std::string(type) + " must be a string");
      ok = false;
      break;
    }
    if (!options_.KnownType(type)) {
      fail("unknown_identifier_type",
           "identifier type '" + std::string(type) + "' is not configured (--identifier-type)");
      ok = false;
      break;
    }
    if (options_.limits.IsBlocked(v)) continue;  // a placeholder: as if absent
    if (type == "anonymous_id") {
      e.anonymous_id = std::string(v);
    } else if (type == "user_id") {
      e.user_id = std::string(v);
    } else if (type == "email") {
      e.email = NormalizeEmail(v);
    } else if (type == "phone") {
      auto phone = NormalizePhone(v);
      if (!phone) {
        fail("invalid_identifier", "identifiers.phone must be an E.164 number like +4915112345678");
        ok = false;
        break;
      }
      e.identifiers.emplace_back("phone", *phone);
    } else {
      e.identifiers.emplace_back(std::string(type), std::string(v));
    }
  }
  if (!ok) return false;
  if (e.anonymous_id.empty() && e.user_id.empty() && e.email.empty() && e.identifiers.empty()) {
    fail("missing_identifier", "no usable identifier");
    return false;
  }
  if (auto traits = record["traits"]; !traits.error()) {
    simdjson::dom::object fields;
    if (traits.get_object().get(fields) != simdjson::SUCCESS) {
      fail("invalid_field_type", "traits must be an object");
      return false;
    }
    for (auto [k, v] : fields) e.traits.emplace_back(std::string(k), simdjson::minify(v));
  }
  out = std::move(e);
  return true;
}

}  // namespace ecrm
