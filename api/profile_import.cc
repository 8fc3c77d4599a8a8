#include "api/profile_import.h"

#include <simdjson.h>

#include <memory>

#include "api/api_service.h"
#include "common/json_writer.h"
#include "common/strings.h"
#include "common/time_format.h"

namespace ecrm {
namespace {

struct LineError {
  size_t line;
  std::string code;
  std::string message;
};

HttpResponse Json(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

std::string Answer(size_t imported, const std::vector<LineError>& errors) {
  std::string out;
  JsonWriter w(&out);
  w.BeginObject().Key("imported").Int(static_cast<int64_t>(imported));
  w.Key("rejected").Int(static_cast<int64_t>(errors.size()));
  w.Key("errors").BeginArray();
  for (const auto& e : errors) {
    w.BeginObject().Key("line").Int(static_cast<int64_t>(e.line));
    w.Key("code").String(e.code).Key("message").String(e.message).EndObject();
  }
  w.EndArray().EndObject();
  return out;
}

}  // namespace

ProfileImport::ProfileImport(ProfileEngine& engine, const Clock& clock, ImportOptions options)
    : engine_(engine), clock_(clock), options_(std::move(options)) {}

bool ProfileImport::KnownType(std::string_view type) const {
  if (type == "anonymous_id" || type == "user_id" || type == "email") return true;
  for (const auto& t : options_.identifier_types) {
    if (t == type) return true;
  }
  return false;
}

void ProfileImport::Handle(const HttpRequest& req, Responder respond) {
  simdjson::dom::parser parser;
  std::vector<Event> events;
  std::vector<LineError> errors;
  const TimeMs now = clock_.NowMs();
  size_t line_no = 0;
  std::string_view body = req.body;
  while (!body.empty()) {
    const size_t nl = body.find('\n');
    std::string_view line = body.substr(0, nl);
    body = nl == std::string_view::npos ? std::string_view() : body.substr(nl + 1);
    line_no++;
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) {
      line.remove_suffix(1);
    }
    if (line.empty()) continue;
    if (events.size() + errors.size() >= options_.max_lines) {
      return respond(
          Json(400, ErrorBody("too_many_lines", "at most " + std::to_string(options_.max_lines) +
                                                    " records per request")));
    }
    auto fail = [&](std::string code, std::string message) {
      errors.push_back({line_no, std::move(code), std::move(message)});
    };
    simdjson::dom::element doc;
    simdjson::dom::object record;
    if (parser.parse(line.data(), line.size()).get(doc) != simdjson::SUCCESS ||
        doc.get_object().get(record) != simdjson::SUCCESS) {
      fail("invalid_json", "not a JSON object");
      continue;
    }
    Event e;
    e.type = EventType::kIdentify;
    e.received_at = now;
    e.timestamp = now;
    std::string_view channel;
    if (record["channel"].get_string().get(channel) != simdjson::SUCCESS || channel.empty() ||
        channel.size() > 64) {
      fail("invalid_channel", "\"channel\" (1 to 64 characters, e.g. \"crm\") is required");
      continue;
    }
    e.channel = std::string(channel);
    if (auto at = record["updated_at"]; !at.error()) {
      std::string_view text;
      int64_t ms = 0;
      if (at.get_string().get(text) == simdjson::SUCCESS) {
        auto parsed = ParseIso8601(text);
        if (!parsed) {
          fail("invalid_timestamp", "updated_at must be ISO-8601 or epoch milliseconds");
          continue;
        }
        e.timestamp = *parsed;
      } else if (at.get_int64().get(ms) == simdjson::SUCCESS && ms > 0) {
        e.timestamp = ms;
      } else {
        fail("invalid_timestamp", "updated_at must be ISO-8601 or epoch milliseconds");
        continue;
      }
    }
    simdjson::dom::object identifiers;
    if (record["identifiers"].get_object().get(identifiers) != simdjson::SUCCESS) {
      fail("missing_identifier", "\"identifiers\" (an object of type: value) is required");
      continue;
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
      if (!KnownType(type)) {
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
          fail("invalid_identifier",
               "identifiers.phone must be an E.164 number like +4915112345678");
          ok = false;
          break;
        }
        e.identifiers.emplace_back("phone", *phone);
      } else {
        e.identifiers.emplace_back(std::string(type), std::string(v));
      }
    }
    if (!ok) continue;
    if (e.anonymous_id.empty() && e.user_id.empty() && e.email.empty() && e.identifiers.empty()) {
      fail("missing_identifier", "no usable identifier");
      continue;
    }
    if (auto traits = record["traits"]; !traits.error()) {
      simdjson::dom::object fields;
      if (traits.get_object().get(fields) != simdjson::SUCCESS) {
        fail("invalid_field_type", "traits must be an object");
        continue;
      }
      for (auto [k, v] : fields) e.traits.emplace_back(std::string(k), simdjson::minify(v));
    }
    events.push_back(std::move(e));
  }
  const size_t imported = events.size();
  if (events.empty()) return respond(Json(errors.empty() ? 400 : 200, Answer(0, errors)));
  auto shared_errors = std::make_shared<std::vector<LineError>>(std::move(errors));
  auto shared_respond = std::make_shared<Responder>(std::move(respond));
  const Status s = engine_.Submit(std::move(events), [=](Status status) {
    if (!status.ok()) {
      (*shared_respond)(Json(503, ErrorBody("unavailable", "the records could not be stored")));
      return;
    }
    (*shared_respond)(Json(200, Answer(imported, *shared_errors)));
  });
  if (s.ok()) return;
  if (absl::IsResourceExhausted(s)) {
    return (*shared_respond)(Json(429, ErrorBody("overloaded", "workers are busy; retry")));
  }
  (*shared_respond)(Json(503, ErrorBody("unavailable", "shutting down")));
}

}  // namespace ecrm
