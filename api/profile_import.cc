#include "api/profile_import.h"

#include <simdjson.h>

#include <memory>

#include "api/api_service.h"
#include "common/json_writer.h"

namespace ecrm {
namespace {

struct LineError {
  size_t line;
  std::string code;
  std::string message;
};

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

ProfileImport::ProfileImport(ProfileEngine& engine, const Clock& clock,
                             prometheus::Registry& registry, ImportOptions options)
    : engine_(engine), clock_(clock), options_(std::move(options)) {
  auto& family = prometheus::BuildCounter()
                     .Name("ecrm_import_records_total")
                     .Help("Profile records sent to POST /v1/profiles/import, by result")
                     .Register(registry);
  applied_ = &family.Add({{"result", "applied"}});
  rejected_ = &family.Add({{"result", "rejected"}});
}

bool ProfileImport::KnownType(std::string_view type) const {
  return options_.records.KnownType(type);
}

void ProfileImport::Handle(const HttpRequest& req, Responder respond) {
  ProfileRecordParser parser(options_.records);
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
          ErrorResponse(400, "too_many_lines",
                        "at most " + std::to_string(options_.max_lines) + " records per request"));
    }
    Event e;
    Rejection rejection;
    if (!parser.Parse(line, now, e, rejection)) {
      errors.push_back({line_no, std::move(rejection.code), std::move(rejection.message)});
      continue;
    }
    events.push_back(std::move(e));
  }
  const size_t imported = events.size();
  rejected_->Increment(static_cast<double>(errors.size()));
  if (events.empty()) return respond(JsonResponse(errors.empty() ? 400 : 200, Answer(0, errors)));
  auto shared_errors = std::make_shared<std::vector<LineError>>(std::move(errors));
  auto shared_respond = std::make_shared<Responder>(std::move(respond));
  const Status s = engine_.Submit(std::move(events), [=, this](Status status) {
    if (!status.ok()) {
      (*shared_respond)(ErrorResponse(503, "unavailable", "the records could not be stored"));
      return;
    }
    applied_->Increment(static_cast<double>(imported));
    (*shared_respond)(JsonResponse(200, Answer(imported, *shared_errors)));
  });
  if (s.ok()) return;
  if (absl::IsResourceExhausted(s)) {
    return (*shared_respond)(ErrorResponse(429, "overloaded", "workers are busy; retry"));
  }
  (*shared_respond)(ErrorResponse(503, "unavailable", "shutting down"));
}

}  // namespace ecrm
