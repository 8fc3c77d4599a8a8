#include "rules/rule_set.h"

#include <simdjson.h>

#include <algorithm>
#include <charconv>
#include <set>

#include "rules/internal/event_type_index.h"

namespace ecrm {
namespace {

constexpr size_t kMaxRules = 10000;
constexpr size_t kMaxActions = 32;
constexpr size_t kMaxNameLength = 128;

const cel::Env& RuleEnv() {
  static const cel::Env env({"event", "profile", "now"});
  return env;
}

// Collects errors for one rule set document.
class RuleSetParser {
 public:
  explicit RuleSetParser(std::vector<RuleError>* errors) : errors_(errors) {}

  void Error(const std::string& rule, std::string field, std::string message, int line = 0,
             int column = 0) {
    errors_->push_back({rule, std::move(field), line, column, std::move(message)});
  }

  std::optional<cel::Program> CompileExpr(const std::string& rule, const std::string& field,
                                          std::string_view source) {
    std::vector<cel::CompileError> compile_errors;
    auto program = cel::Compile(source, RuleEnv(), &compile_errors);
    if (program.ok()) return *std::move(program);
    if (compile_errors.empty()) {
      Error(rule, field, std::string(program.status().message()));
    }
    for (const auto& e : compile_errors) Error(rule, field, e.message, e.line, e.column);
    return std::nullopt;
  }

  // A CEL expression given as a JSON string (or, for convenience, a number or bool literal).
  std::optional<cel::Program> ExprField(const std::string& rule, const std::string& field,
                                        simdjson::dom::element value) {
    std::string source;
    switch (value.type()) {
      case simdjson::dom::element_type::STRING:
        source = std::string(std::string_view(value.get_string().value_unsafe()));
        break;
      case simdjson::dom::element_type::INT64:
      case simdjson::dom::element_type::UINT64:
      case simdjson::dom::element_type::DOUBLE:
      case simdjson::dom::element_type::BOOL:
        source = simdjson::minify(value);
        break;
      default:
        Error(rule, field, "must be a CEL expression (a string)");
        return std::nullopt;
    }
    return CompileExpr(rule, field, source);
  }

  std::optional<std::string> Name(const std::string& rule, const std::string& field,
                                  simdjson::dom::element value) {
    std::string_view s;
    if (value.get_string().get(s) != simdjson::SUCCESS) {
      Error(rule, field, "must be a string");
      return std::nullopt;
    }
    if (s.empty() || s.size() > kMaxNameLength) {
      Error(rule, field, "must be 1 to 128 characters");
      return std::nullopt;
    }
    return std::string(s);
  }

  std::optional<int64_t> Duration(const std::string& rule, const std::string& field,
                                  simdjson::dom::element value) {
    std::string_view s;
    if (value.get_string().get(s) != simdjson::SUCCESS) {
      Error(rule, field, "must be a duration string such as \"30d\" or \"12h\"");
      return std::nullopt;
    }
    auto ms = ParseDurationMs(s);
    if (!ms.ok()) {
      Error(rule, field, std::string(ms.status().message()));
      return std::nullopt;
    }
    return *ms;
  }

  // Checks that `object` has only `allowed` keys.
  bool OnlyKeys(const std::string& rule, const std::string& field, simdjson::dom::object object,
                std::initializer_list<std::string_view> allowed) {
    bool ok = true;
    for (auto [key, unused] : object) {
      (void)unused;
      bool known = false;
      for (auto a : allowed) known = known || key == a;
      if (!known) {
        std::string expected;
        for (auto a : allowed) expected += (expected.empty() ? "" : ", ") + std::string(a);
        Error(rule, field, "unknown key '" + std::string(key) + "' (expected " + expected + ")");
        ok = false;
      }
    }
    return ok;
  }

  std::optional<RuleAction> Action(const std::string& rule, const std::string& field,
                                   simdjson::dom::element element) {
    simdjson::dom::object object;
    if (element.get_object().get(object) != simdjson::SUCCESS || object.size() != 1) {
      Error(rule, field,
            "an action is an object with exactly one key: add_segment, remove_segment, "
            "increment, set_trait, set_score or offer");
      return std::nullopt;
    }
    auto [kind, body] = *object.begin();
    const std::string path = field + "." + std::string(kind);
    RuleAction a;
    if (kind == "add_segment" || kind == "remove_segment") {
      a.kind =
          kind == "add_segment" ? RuleAction::Kind::kAddSegment : RuleAction::Kind::kRemoveSegment;
      if (body.is_string()) {
        auto name = Name(rule, path, body);
        if (!name) return std::nullopt;
        a.name = *name;
        return a;
      }
      simdjson::dom::object o;
      if (body.get_object().get(o) != simdjson::SUCCESS) {
        Error(rule, path, "must be a segment name or {\"name\": ..., \"ttl\": ...}");
        return std::nullopt;
      }
      const bool add = a.kind == RuleAction::Kind::kAddSegment;
      if (!(add ? OnlyKeys(rule, path, o, {"name", "ttl"}) : OnlyKeys(rule, path, o, {"name"}))) {
        return std::nullopt;
      }
      auto name_el = o["name"];
      if (name_el.error()) {
        Error(rule, path + ".name", "is required");
        return std::nullopt;
      }
      auto name = Name(rule, path + ".name", name_el.value_unsafe());
      if (!name) return std::nullopt;
      a.name = *name;
      if (auto ttl = o["ttl"]; !ttl.error()) {
        auto ms = Duration(rule, path + ".ttl", ttl.value_unsafe());
        if (!ms) return std::nullopt;
        a.ttl_ms = *ms;
      }
      return a;
    }
    simdjson::dom::object o;
    if (body.get_object().get(o) != simdjson::SUCCESS) {
      Error(rule, path, "must be an object");
      return std::nullopt;
    }
    auto required = [&](std::string_view key) -> std::optional<simdjson::dom::element> {
      auto el = o[key];
      if (el.error()) {
        Error(rule, path + "." + std::string(key), "is required");
        return std::nullopt;
      }
      return el.value_unsafe();
    };
    if (kind == "increment") {
      a.kind = RuleAction::Kind::kIncrement;
      if (!OnlyKeys(rule, path, o, {"counter", "by", "window"})) return std::nullopt;
      auto counter = required("counter");
      if (!counter) return std::nullopt;
      auto name = Name(rule, path + ".counter", *counter);
      if (!name) return std::nullopt;
      a.name = *name;
      if (auto by = o["by"]; !by.error()) {
        a.value = ExprField(rule, path + ".by", by.value_unsafe());
        if (!a.value) return std::nullopt;
      }
      if (auto window = o["window"]; !window.error()) {
        auto ms = Duration(rule, path + ".window", window.value_unsafe());
        if (!ms) return std::nullopt;
        a.window_ms = *ms;
      }
      return a;
    }
    if (kind == "set_trait" || kind == "set_score") {
      a.kind = kind == "set_trait" ? RuleAction::Kind::kSetTrait : RuleAction::Kind::kSetScore;
      if (!OnlyKeys(rule, path, o, {"name", "value"})) return std::nullopt;
      auto name_el = required("name");
      auto value_el = required("value");
      if (!name_el || !value_el) return std::nullopt;
      auto name = Name(rule, path + ".name", *name_el);
      if (!name) return std::nullopt;
      a.name = *name;
      a.value = ExprField(rule, path + ".value", *value_el);
      if (!a.value) return std::nullopt;
      return a;
    }
    if (kind == "offer") {
      a.kind = RuleAction::Kind::kOffer;
      if (!OnlyKeys(rule, path, o, {"id", "priority"})) return std::nullopt;
      auto id_el = required("id");
      if (!id_el) return std::nullopt;
      auto id = Name(rule, path + ".id", *id_el);
      if (!id) return std::nullopt;
      a.name = *id;
      if (auto priority = o["priority"]; !priority.error()) {
        int64_t p = 0;
        if (priority.value_unsafe().get_int64().get(p) != simdjson::SUCCESS) {
          Error(rule, path + ".priority", "must be an integer");
          return std::nullopt;
        }
        a.priority = p;
      }
      return a;
    }
    Error(rule, field,
          "unknown action '" + std::string(kind) +
              "' (expected add_segment, remove_segment, increment, set_trait, set_score or offer)");
    return std::nullopt;
  }

  std::optional<Rule> ParseRule(size_t index, simdjson::dom::element element) {
    const std::string where = "rules[" + std::to_string(index) + "]";
    simdjson::dom::object o;
    if (element.get_object().get(o) != simdjson::SUCCESS) {
      Error("", where, "a rule must be an object with id, when and then");
      return std::nullopt;
    }
    Rule rule;
    auto id_el = o["id"];
    if (id_el.error()) {
      Error("", where + ".id", "is required");
      return std::nullopt;
    }
    auto id = Name("", where + ".id", id_el.value_unsafe());
    if (!id) return std::nullopt;
    rule.id = *id;
    const size_t errors_before = errors_->size();
    OnlyKeys(rule.id, "rule", o, {"id", "when", "then", "once", "description"});
    if (auto when = o["when"]; !when.error()) {
      std::string_view source;
      if (when.value_unsafe().get_string().get(source) != simdjson::SUCCESS) {
        Error(rule.id, "when", "must be a CEL expression (a string)");
      } else {
        rule.when_source = std::string(source);
        if (auto program = CompileExpr(rule.id, "when", source)) rule.when = *std::move(program);
      }
    } else {
      rule.when_source = "true";
      rule.when = *CompileExpr(rule.id, "when", "true");
    }
    if (auto once = o["once"]; !once.error()) {
      std::string_view s;
      if (once.value_unsafe().get_string().get(s) == simdjson::SUCCESS && s == "session") {
        rule.once = OnceScope::kSession;
      } else if (s == "profile") {
        rule.once = OnceScope::kProfile;
      } else {
        Error(rule.id, "once", "must be \"session\" or \"profile\"");
      }
    }
    simdjson::dom::array then;
    auto then_el = o["then"];
    if (then_el.error() || then_el.get_array().get(then) != simdjson::SUCCESS) {
      Error(rule.id, "then", "is required: a non-empty array of actions");
    } else if (then.size() == 0 || then.size() > kMaxActions) {
      Error(rule.id, "then", "must hold 1 to 32 actions");
    } else {
      size_t i = 0;
      for (auto action : then) {
        auto a = Action(rule.id, "then[" + std::to_string(i++) + "]", action);
        if (a) rule.actions.push_back(*std::move(a));
      }
    }
    if (errors_->size() != errors_before) return std::nullopt;
    return rule;
  }

 private:
  std::vector<RuleError>* errors_;
};

}  // namespace

StatusOr<std::shared_ptr<const RuleSet>> RuleSet::Compile(std::string_view json, uint64_t version,
                                                          std::vector<RuleError>* errors,
                                                          StatsFor stats_for, void* stats_ctx,
                                                          const RuleBudget& budget) {
  std::vector<RuleError> local;
  if (!errors) errors = &local;
  RuleSetParser parser(errors);
  simdjson::dom::parser json_parser;
  simdjson::padded_string padded(json);
  simdjson::dom::element doc;
  if (auto error = json_parser.parse(padded).get(doc); error) {
    parser.Error("", "",
                 std::string("the rule set is not valid JSON: ") + simdjson::error_message(error));
    return absl::InvalidArgumentError("invalid rule set");
  }
  simdjson::dom::array rules;
  simdjson::dom::object root;
  if (doc.get_object().get(root) != simdjson::SUCCESS || root["rules"].get_array().get(rules)) {
    parser.Error("", "rules", "the rule set must be an object with a \"rules\" array");
    return absl::InvalidArgumentError("invalid rule set");
  }
  if (rules.size() > kMaxRules) {
    parser.Error("", "rules", "at most 10000 rules per set");
    return absl::InvalidArgumentError("invalid rule set");
  }
  auto set = std::shared_ptr<RuleSet>(new RuleSet());
  set->version_ = version;
  set->budget_ = budget;
  set->rules_json_ = simdjson::minify(rules);
  std::set<std::string> ids;
  size_t index = 0;
  for (auto element : rules) {
    auto rule = parser.ParseRule(index++, element);
    if (!rule) continue;
    if (!ids.insert(rule->id).second) {
      parser.Error(rule->id, "id", "duplicate rule id");
      continue;
    }
    set->rules_.push_back(*std::move(rule));
  }
  if (!errors->empty()) return absl::InvalidArgumentError("invalid rule set");
  // Stats only for a valid set: a rejected push leaves no rule labels behind.
  for (Rule& rule : set->rules_) {
    if (stats_for) rule.stats = stats_for(stats_ctx, rule.id);
    if (!rule.stats) rule.stats = std::make_shared<RuleStats>();
  }
  auto reads_properties = [](const cel::Program& program) {
    for (const auto& read : program.variables_read()) {
      if (read.variable == "event" && (read.path.empty() || read.path[0] == "properties")) {
        return true;
      }
    }
    return false;
  };
  for (const Rule& rule : set->rules_) {
    set->reads_event_properties_ = set->reads_event_properties_ || reads_properties(rule.when);
    for (const auto& action : rule.actions) {
      if (action.value) {
        set->reads_event_properties_ =
            set->reads_event_properties_ || reads_properties(*action.value);
      }
    }
  }
  for (const Rule& rule : set->rules_) {
    const uint32_t mask = rules_internal::EventTypeMask(rule.when);
    for (size_t t = 0; t < kRuleEventTypes.size(); t++) {
      if (mask & (1u << t)) set->by_type_[t].push_back(&rule);
    }
    if (mask == rules_internal::kAnyEventType) set->by_type_.back().push_back(&rule);
  }
  // Second level for track events: the event name.
  constexpr size_t kTrack = 1;
  static_assert(kRuleEventTypes[kTrack] == "track");
  std::vector<std::vector<std::string>> names_of;
  for (const Rule* rule : set->by_type_[kTrack]) {
    names_of.push_back(rules_internal::EventNames(rule->when));
    for (const auto& name : names_of.back()) set->by_track_name_[name];
  }
  for (auto& [name, list] : set->by_track_name_) {
    for (size_t i = 0; i < names_of.size(); i++) {
      const auto& names = names_of[i];
      if (names.empty() || std::find(names.begin(), names.end(), name) != names.end()) {
        list.push_back(set->by_type_[kTrack][i]);
      }
    }
  }
  for (size_t i = 0; i < names_of.size(); i++) {
    if (names_of[i].empty()) set->track_any_name_.push_back(set->by_type_[kTrack][i]);
  }
  return std::shared_ptr<const RuleSet>(std::move(set));
}

std::shared_ptr<const RuleSet> RuleSet::Empty() {
  static const std::shared_ptr<const RuleSet> empty(new RuleSet());
  return empty;
}

const std::vector<const Rule*>& RuleSet::RulesFor(std::string_view event_type,
                                                  std::string_view event_name) const {
  if (event_type == "track") {
    auto it = by_track_name_.find(event_name);
    return it != by_track_name_.end() ? it->second : track_any_name_;
  }
  for (size_t t = 0; t < kRuleEventTypes.size(); t++) {
    if (kRuleEventTypes[t] == event_type) return by_type_[t];
  }
  return by_type_.back();
}

std::string RuleSet::Describe() const {
  return "rule set v" + std::to_string(version_) + " (" + std::to_string(size()) + " rules)";
}

StatusOr<int64_t> ParseDurationMs(std::string_view text) {
  const auto invalid = [&] {
    return absl::InvalidArgumentError("invalid duration '" + std::string(text) +
                                      "': expected e.g. 30d, 12h, 1h30m, 45s or 500ms");
  };
  if (text.empty()) return invalid();
  int64_t total = 0;
  size_t i = 0;
  while (i < text.size()) {
    int64_t n = 0;
    auto [end, ec] = std::from_chars(text.data() + i, text.data() + text.size(), n);
    if (ec != std::errc() || n < 0) return invalid();
    i = static_cast<size_t>(end - text.data());
    int64_t unit = 0;
    if (text.substr(i, 2) == "ms") {
      unit = 1;
      i += 2;
    } else if (i < text.size()) {
      switch (text[i]) {
        case 'd':
          unit = 86400000;
          break;
        case 'h':
          unit = 3600000;
          break;
        case 'm':
          unit = 60000;
          break;
        case 's':
          unit = 1000;
          break;
        default:
          return invalid();
      }
      i++;
    } else {
      return invalid();
    }
    if (n > (int64_t{1} << 52) / unit) return invalid();
    total += n * unit;
  }
  if (total <= 0) return invalid();
  return total;
}

}  // namespace ecrm
