#include "api/rules_api.h"

#include <simdjson.h>

#include "api/api_service.h"
#include "common/json_writer.h"
#include "common/logging.h"
#include "common/strings.h"
#include "profiler/profile_json.h"
#include "profiler/rule_target.h"
#include "rules/rule_eval.h"

namespace ecrm {
namespace {

HttpResponse InvalidRuleSet(const std::vector<RuleError>& errors) {
  std::string out;
  JsonWriter w(&out);
  w.BeginObject().Key("error").BeginObject();
  w.Key("code").String("invalid_rule_set");
  std::string message = "the rule set is invalid";
  if (!errors.empty()) {
    const auto& e = errors.front();
    message = (e.rule.empty() ? "" : "rule '" + e.rule + "' ") + (e.field.empty() ? "" : e.field) +
              (e.line > 0 ? " " + std::to_string(e.line) + ":" + std::to_string(e.column) : "") +
              (e.rule.empty() && e.field.empty() ? "" : ": ") + e.message;
    if (errors.size() > 1) message += " (and " + std::to_string(errors.size() - 1) + " more)";
  }
  w.Key("message").String(message);
  w.Key("details").BeginArray();
  for (const auto& e : errors) {
    w.BeginObject().Key("rule").String(e.rule).Key("field").String(e.field);
    if (e.line > 0) w.Key("line").Int(e.line).Key("column").Int(e.column);
    w.Key("message").String(e.message).EndObject();
  }
  w.EndArray().EndObject().EndObject();
  return JsonResponse(400, std::move(out));
}

// Fills a dry-run profile from its JSON form (the fields GET /v1/profiles returns that rules
// read: traits, counters, scores, segments, offers, stats). Unknown fields are ignored.
std::optional<std::string> ProfileFromJson(simdjson::dom::object o, Profile& p) {
  for (auto [key, value] : o) {
    if (key == "traits" || key == "counters" || key == "scores" || key == "offers") {
      simdjson::dom::object fields;
      if (value.get_object().get(fields) != simdjson::SUCCESS) {
        return "profile." + std::string(key) + " must be an object";
      }
      for (auto [k, v] : fields) {
        const std::string name(k);
        if (key == "traits") {
          p.traits[name] = {simdjson::minify(v), 0};
          continue;
        }
        double d = 0;
        if (v.get_double().get(d) != simdjson::SUCCESS) {
          return "profile." + std::string(key) + "." + name + " must be a number";
        }
        if (key == "counters") p.counters[name] = d;
        if (key == "scores") p.scores[name] = d;
        if (key == "offers") p.offers[name] = static_cast<int64_t>(d);
      }
    } else if (key == "segments") {
      simdjson::dom::array list;
      if (value.get_array().get(list) != simdjson::SUCCESS)
        return "profile.segments must be a list";
      for (auto item : list) {
        std::string_view name;
        if (item.get_string().get(name) != simdjson::SUCCESS) {
          return "profile.segments must hold strings";
        }
        p.segments[std::string(name)] = 0;
      }
    } else if (key == "stats") {
      simdjson::dom::object stats;
      if (value.get_object().get(stats) != simdjson::SUCCESS)
        return "profile.stats must be an object";
      for (auto [k, v] : stats) {
        int64_t n = 0;
        double d = 0;
        if (k == "revenue") {
          if (v.get_double().get(d) != simdjson::SUCCESS)
            return "profile.stats.revenue must be a number";
          p.stats.revenue = d;
          continue;
        }
        if (k == "first_seen" || k == "last_seen") continue;
        if (v.get_int64().get(n) != simdjson::SUCCESS) {
          return "profile.stats." + std::string(k) + " must be an integer";
        }
        if (k == "events") p.stats.events = n;
        if (k == "page_views") p.stats.page_views = n;
        if (k == "screen_views") p.stats.screen_views = n;
        if (k == "sessions") p.stats.sessions = n;
        if (k == "orders") p.stats.orders = n;
      }
    }
  }
  return std::nullopt;
}

// Records what each rule of a dry run did.
class DryRunRecorder final : public RuleObserver {
 public:
  explicit DryRunRecorder(JsonWriter& w) : w_(w) {}
  void OnRule(const Rule& rule, bool matched, std::string_view error,
              std::span<const cel::Value> values) override {
    w_.BeginObject().Key("rule").String(rule.id).Key("matched").Bool(matched);
    if (!error.empty()) w_.Key("error").String(error);
    w_.Key("actions").BeginArray();
    for (size_t i = 0; i < values.size() && i < rule.actions.size(); i++) {
      const RuleAction& a = rule.actions[i];
      w_.BeginObject();
      switch (a.kind) {
        case RuleAction::Kind::kAddSegment:
          w_.Key("add_segment").String(a.name);
          break;
        case RuleAction::Kind::kRemoveSegment:
          w_.Key("remove_segment").String(a.name);
          break;
        case RuleAction::Kind::kIncrement:
          w_.Key("increment").BeginObject().Key("counter").String(a.name).Key("by");
          w_.Raw(a.value ? CelValueToJson(values[i]) : "1").EndObject();
          break;
        case RuleAction::Kind::kSetTrait:
        case RuleAction::Kind::kSetScore:
          w_.Key(a.kind == RuleAction::Kind::kSetTrait ? "set_trait" : "set_score").BeginObject();
          w_.Key("name").String(a.name).Key("value").Raw(CelValueToJson(values[i])).EndObject();
          break;
        case RuleAction::Kind::kOffer:
          w_.Key("offer").BeginObject().Key("id").String(a.name);
          w_.Key("priority").Int(a.priority).EndObject();
          break;
      }
      w_.EndObject();
    }
    w_.EndArray().EndObject();
  }

 private:
  JsonWriter& w_;
};

}  // namespace

RulesApi::RulesApi(RuleRegistry& registry, RuleMetrics* metrics, ProfileEngine& engine,
                   const Clock& clock, const CollectorLimits& limits)
    : registry_(registry), metrics_(metrics), engine_(engine), clock_(clock), limits_(limits) {
  limits_.event.keep_properties = nullptr;  // a dry run may read properties the active set does not
}

HttpResponse RulesApi::Handle(const HttpRequest& req, std::string_view path) {
  auto only = [&](std::string_view method) {
    return req.method == method
               ? std::optional<HttpResponse>()
               : ErrorResponse(405, "method_not_allowed", "use " + std::string(method));
  };
  if (path == "/v1/rules") {
    if (req.method == "GET") return Get();
    if (req.method == "PUT") return Push(req);
    return ErrorResponse(405, "method_not_allowed", "use GET or PUT");
  }
  if (path == "/v1/rules/validate") return only("POST").value_or(Validate(req));
  if (path == "/v1/rules/rollback") return only("POST").value_or(Rollback(req));
  if (path == "/v1/rules/test") return only("POST").value_or(Test(req));
  return ErrorResponse(404, "not_found", "no such route");
}

HttpResponse RulesApi::Get() {
  const auto current = registry_.Current();
  std::string out = "{\"version\":" + std::to_string(current->version()) +
                    ",\"rules\":" + current->rules_json() + "}";
  return JsonResponse(200, std::move(out));
}

HttpResponse RulesApi::Push(const HttpRequest& req) {
  std::vector<RuleError> errors;
  auto version = registry_.Push(req.body, &errors);
  if (!version.ok()) {
    if (absl::IsInvalidArgument(version.status())) {
      if (metrics_) metrics_->PushRejected();
      return InvalidRuleSet(errors);
    }
    spdlog::error("rule push failed: {}", version.status().ToString());
    if (absl::IsUnavailable(version.status())) {  // cluster mode: the rules topic is away
      return ErrorResponse(503, "unavailable", "the rule set could not be shared; retry");
    }
    return ErrorResponse(500, "internal", "the rule set could not be stored");
  }
  if (metrics_) metrics_->PushAccepted();
  spdlog::info("rule set v{} active", *version);
  return JsonResponse(200, "{\"version\":" + std::to_string(*version) + "}");
}

HttpResponse RulesApi::Validate(const HttpRequest& req) {
  std::vector<RuleError> errors;
  auto set = registry_.Validate(req.body, &errors);
  if (!set.ok()) {
    if (metrics_) metrics_->PushRejected();
    return InvalidRuleSet(errors);
  }
  return JsonResponse(200, "{\"valid\":true,\"rules\":" + std::to_string((*set)->size()) + "}");
}

HttpResponse RulesApi::Rollback(const HttpRequest& req) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  uint64_t version = 0;
  if (parser.parse(req.body.data(), req.body.size()).get(doc) != simdjson::SUCCESS) {
    return ErrorResponse(400, "invalid_json", "the body is not valid JSON");
  }
  if (doc["version"].get_uint64().get(version) != simdjson::SUCCESS) {
    return ErrorResponse(400, "invalid_request",
                         "expected {\"version\": N} with a positive integer N");
  }
  auto result = registry_.Rollback(version);
  if (!result.ok()) {
    if (absl::IsNotFound(result.status())) {
      return ErrorResponse(404, "not_found", std::string(result.status().message()));
    }
    spdlog::error("rule rollback failed: {}", result.status().ToString());
    if (absl::IsUnavailable(result.status())) {
      return ErrorResponse(503, "unavailable", "the rollback could not be shared; retry");
    }
    return ErrorResponse(500, "internal", "the rollback could not be stored");
  }
  spdlog::info("rule set v{} re-activated as v{}", version, *result);
  return JsonResponse(200, "{\"version\":" + std::to_string(*result) + "}");
}

HttpResponse RulesApi::Test(const HttpRequest& req) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  simdjson::dom::object body;
  if (parser.parse(req.body.data(), req.body.size()).get(doc) != simdjson::SUCCESS) {
    return ErrorResponse(400, "invalid_json", "the body is not valid JSON");
  }
  if (doc.get_object().get(body) != simdjson::SUCCESS) {
    return ErrorResponse(400, "invalid_request",
                         "expected an object with event, and rules or profile");
  }
  // The rule set: given ({"rules": [...]} or just the array), else the active one.
  std::shared_ptr<const RuleSet> set;
  bool given = false;
  if (auto rules = body["rules"]; !rules.error()) {
    given = true;
    std::string document = simdjson::minify(rules.value_unsafe());
    if (rules.value_unsafe().is_array()) document = "{\"rules\":" + document + "}";
    std::vector<RuleError> errors;
    auto compiled = registry_.Validate(document, &errors);
    if (!compiled.ok()) return InvalidRuleSet(errors);
    set = *std::move(compiled);
  } else {
    set = registry_.Current();
  }
  // The event, parsed exactly as the collector would.
  auto event_el = body["event"];
  if (event_el.error() || !event_el.value_unsafe().is_object()) {
    return ErrorResponse(400, "invalid_request", "\"event\" (a Segment event object) is required");
  }
  CollectorParser collector(limits_);
  CollectorRequest parsed;
  const std::string batch = "{\"batch\":[" + simdjson::minify(event_el.value_unsafe()) + "]}";
  if (auto rejection = collector.Parse(batch, std::nullopt, clock_.NowMs(), parsed)) {
    return ErrorResponse(400, rejection->code, "event: " + rejection->message);
  }
  Event& event = parsed.events.front();
  // The profile: a stored one, a given one, or a fresh one.
  Profile profile;
  if (auto id = body["profile_id"]; !id.error()) {
    std::string_view identifier;
    if (id.get_string().get(identifier) != simdjson::SUCCESS) {
      return ErrorResponse(400, "invalid_request", "profile_id must be a string \"type:value\"");
    }
    const auto colon = identifier.find(':');
    if (colon == std::string_view::npos) {
      return ErrorResponse(400, "invalid_identifier", "profile_id must be \"type:value\"");
    }
    std::string value(identifier.substr(colon + 1));
    if (identifier.substr(0, colon) == "email") value = NormalizeEmail(value);
    auto found = engine_.Lookup(identifier.substr(0, colon), value);
    if (!found.ok()) return ErrorResponse(500, "internal", "profile could not be read");
    if (!found->has_value())
      return ErrorResponse(404, "not_found", "no profile for that identifier");
    profile = **std::move(found);
  } else if (auto given_profile = body["profile"]; !given_profile.error()) {
    simdjson::dom::object o;
    if (given_profile.get_object().get(o) != simdjson::SUCCESS) {
      return ErrorResponse(400, "invalid_request", "profile must be an object");
    }
    if (auto problem = ProfileFromJson(o, profile))
      return ErrorResponse(400, "invalid_profile", *problem);
  }
  if (profile.id.empty()) profile.id = "dry-run";
  engine_.updater().Apply(profile, event);

  std::string out;
  JsonWriter w(&out);
  w.BeginObject().Key("version");
  if (given) {
    w.Null();
  } else {
    w.Int(static_cast<int64_t>(set->version()));
  }
  w.Key("results").BeginArray();
  RuleJsonScratch scratch;
  ProfileRuleTarget target(event, profile, engine_.updater(), scratch);
  DryRunRecorder recorder(w);
  ApplyRules(*set, EventTypeName(event.type), event.event, target, false, &recorder);
  w.EndArray();
  std::string rendered;
  RenderProfileJson(profile, engine_.updater(), event.timestamp, &rendered);
  w.Key("profile").Raw(rendered).EndObject();
  return JsonResponse(200, std::move(out));
}

}  // namespace ecrm
