#include "profiler/rule_target.h"

#include <cmath>

#include "common/json_writer.h"
#include "common/time_format.h"

namespace ecrm {
namespace {

constexpr int64_t kNanosPerMs = 1000000;

cel::Value NoSuchKey() { return cel::Value::StaticError("no such key"); }
cel::Value NotAMap() {
  return cel::Value::StaticError("field selection on a value that is not a map");
}

cel::Value Ref(const std::string& s) { return cel::Value::StringRef(s); }
cel::Value Time(TimeMs t) { return cel::Value::Timestamp(t * kNanosPerMs); }

cel::Value FromDom(simdjson::dom::element e) {
  switch (e.type()) {
    case simdjson::dom::element_type::ARRAY: {
      auto list = std::make_shared<std::vector<cel::Value>>();
      simdjson::dom::array array;
      if (e.get_array().get(array) != simdjson::SUCCESS) return cel::Value::Null();
      for (auto item : array) list->push_back(FromDom(item));
      return cel::Value::List(std::move(list));
    }
    case simdjson::dom::element_type::OBJECT: {
      std::vector<cel::MapValue::Entry> entries;
      simdjson::dom::object object;
      if (e.get_object().get(object) != simdjson::SUCCESS) return cel::Value::Null();
      for (auto [k, v] : object) {
        entries.emplace_back(cel::Value::StringRef(k), FromDom(v));
      }
      return cel::MapValue::Make(std::move(entries));
    }
    // CEL reads JSON numbers as doubles (google.protobuf.Value).
    case simdjson::dom::element_type::INT64:
    case simdjson::dom::element_type::UINT64:
    case simdjson::dom::element_type::DOUBLE: {
      double d = 0;
      if (e.get_double().get(d) != simdjson::SUCCESS) return cel::Value::Null();  // ints too
      return cel::Value::Double(d);
    }
    case simdjson::dom::element_type::STRING: {
      std::string_view s;
      if (e.get_string().get(s) != simdjson::SUCCESS) return cel::Value::Null();
      return cel::Value::StringRef(s);
    }
    case simdjson::dom::element_type::BOOL: {
      bool b = false;
      if (e.get_bool().get(b) != simdjson::SUCCESS) return cel::Value::Null();
      return cel::Value::Bool(b);
    }
    case simdjson::dom::element_type::NULL_VALUE:
      return cel::Value::Null();
  }
  return cel::Value::Null();
}

using Path = std::span<const std::string>;

template <typename Found>
Found WalkDom(simdjson::dom::element e, Path path, cel::Value* out) {
  for (size_t i = 0; i < path.size(); i++) {
    simdjson::dom::object o;
    if (e.get_object().get(o) != simdjson::SUCCESS) {
      *out = NotAMap();
      return Found::kError;
    }
    simdjson::dom::element next;
    if (o.at_key(path[i]).get(next) != simdjson::SUCCESS) {
      *out = NoSuchKey();
      return i + 1 == path.size() ? Found::kMissingLast : Found::kError;
    }
    e = next;
  }
  *out = FromDom(e);
  return Found::kYes;
}

template <typename Found>
Found WalkValue(cel::Value v, Path path, cel::Value* out) {
  for (size_t i = 0; i < path.size(); i++) {
    if (v.kind() != cel::Kind::kMap) {
      *out = NotAMap();
      return Found::kError;
    }
    const cel::Value* next = v.AsMap().FindString(path[i]);
    if (!next) {
      *out = NoSuchKey();
      return i + 1 == path.size() ? Found::kMissingLast : Found::kError;
    }
    v = *next;
  }
  *out = std::move(v);
  return Found::kYes;
}

// Map builder for the profile's structured fields.
class MapBuilder {
 public:
  MapBuilder& Add(std::string_view key, cel::Value v) {
    entries_.emplace_back(cel::Value::StringRef(key), std::move(v));
    return *this;
  }
  MapBuilder& AddIf(bool present, std::string_view key, cel::Value v) {
    if (present) Add(key, std::move(v));
    return *this;
  }
  cel::Value Build() { return cel::MapValue::Make(std::move(entries_)); }

 private:
  std::vector<cel::MapValue::Entry> entries_;
};

cel::Value TouchValue(const Touch& t) {
  MapBuilder m;
  m.AddIf(!t.source.empty(), "source", Ref(t.source))
      .AddIf(!t.medium.empty(), "medium", Ref(t.medium))
      .AddIf(!t.campaign.empty(), "campaign", Ref(t.campaign))
      .AddIf(!t.term.empty(), "term", Ref(t.term))
      .AddIf(!t.content.empty(), "content", Ref(t.content))
      .AddIf(!t.referrer.empty(), "referrer", Ref(t.referrer))
      .AddIf(t.at != 0, "at", Time(t.at));
  return m.Build();
}

void AppendTraitsObject(const std::vector<std::pair<std::string, std::string>>& traits,
                        std::string* out) {
  out->clear();
  out->push_back('{');
  for (const auto& [k, v] : traits) {
    if (out->size() > 1) out->push_back(',');
    AppendJsonString(out, k);
    out->push_back(':');
    out->append(v);
  }
  out->push_back('}');
}

void WriteValue(JsonWriter& w, const cel::Value& v) {
  switch (v.kind()) {
    case cel::Kind::kNull:
    case cel::Kind::kError:
      w.Null();
      return;
    case cel::Kind::kBool:
      w.Bool(v.AsBool());
      return;
    case cel::Kind::kInt:
      w.Int(v.AsInt());
      return;
    case cel::Kind::kUint:
      w.Raw(std::to_string(v.AsUint()));
      return;
    case cel::Kind::kDouble:
      if (std::isfinite(v.AsDouble())) {
        w.Double(v.AsDouble());
      } else {
        w.Null();
      }
      return;
    case cel::Kind::kString:
    case cel::Kind::kBytes:
    case cel::Kind::kType:
      w.String(v.AsString());
      return;
    case cel::Kind::kList:
      w.BeginArray();
      for (const auto& item : v.AsList()) WriteValue(w, item);
      w.EndArray();
      return;
    case cel::Kind::kMap:
      w.BeginObject();
      for (const auto& [key, value] : v.AsMap().entries()) {
        if (key.kind() == cel::Kind::kString) {
          w.Key(key.AsString());
        } else {
          w.Key(key.DebugString());
        }
        WriteValue(w, value);
      }
      w.EndObject();
      return;
    case cel::Kind::kTimestamp:
      w.String(FormatIso8601(v.AsTimestampNanos() / kNanosPerMs));
      return;
    case cel::Kind::kDuration:
      w.String(std::to_string(static_cast<double>(v.AsDurationNanos()) / 1e9) + "s");
      return;
  }
}

}  // namespace

std::string CelValueToJson(const cel::Value& value) {
  std::string out;
  JsonWriter w(&out);
  WriteValue(w, value);
  return out;
}

ProfileRuleTarget::ProfileRuleTarget(const Event& event, Profile& profile,
                                     const ProfileUpdater& updater, RuleJsonScratch& scratch)
    : event_(event),
      profile_(profile),
      updater_(updater),
      scratch_(scratch),
      now_(event.timestamp) {}

const simdjson::dom::element* ProfileRuleTarget::Parsed(simdjson::dom::parser& parser,
                                                        std::string_view json,
                                                        std::optional<simdjson::dom::element>* slot,
                                                        bool* parsed) const {
  if (!*parsed) {
    *parsed = true;
    simdjson::dom::element root;
    if (!json.empty() && parser.parse(json.data(), json.size()).get(root) == simdjson::SUCCESS) {
      *slot = root;
    }
  }
  return slot->has_value() ? &**slot : nullptr;
}

cel::Value ProfileRuleTarget::Resolve(int var, Path path) const {
  cel::Value out;
  Lookup(var, path, &out);
  return out;
}

cel::Value ProfileRuleTarget::Now() const { return Time(now_); }

cel::Value ProfileRuleTarget::Has(int var, Path path) const {
  cel::Value out;
  switch (Lookup(var, path, &out)) {
    case Found::kYes:
      return cel::Value::Bool(true);
    case Found::kMissingLast:
      return cel::Value::Bool(false);
    case Found::kError:
      break;
  }
  return out;
}

ProfileRuleTarget::Found ProfileRuleTarget::Lookup(int var, Path path, cel::Value* out) const {
  if (var == kVarNow) {
    if (!path.empty()) {
      *out = NotAMap();
      return Found::kError;
    }
    *out = Time(now_);
    return Found::kYes;
  }
  if (path.empty()) {
    *out = cel::Value::StaticError("select a field of 'event' or 'profile'");
    return Found::kError;
  }
  if (var == memo_var_ && path.data() == memo_path_ && path.size() == memo_size_) {
    *out = memo_value_;
    return memo_found_;
  }
  const Found found = var == kVarEvent ? LookupEvent(path, out) : LookupProfile(path, out);
  memo_var_ = var;
  memo_path_ = path.data();
  memo_size_ = path.size();
  memo_found_ = found;
  memo_value_ = *out;
  return found;
}

ProfileRuleTarget::Found ProfileRuleTarget::LookupEvent(Path path, cel::Value* out) const {
  const std::string& field = path[0];
  const Path rest = path.subspan(1);
  cel::Value v;
  if (field == "properties" || field == "traits") {
    const simdjson::dom::element* root;
    if (field == "properties") {
      root = Parsed(scratch_.properties, event_.properties, &properties_, &properties_parsed_);
    } else {
      if (!event_traits_parsed_) AppendTraitsObject(event_.traits, &event_traits_json_);
      root =
          Parsed(scratch_.event_traits, event_traits_json_, &event_traits_, &event_traits_parsed_);
    }
    if (!root) {
      *out = NoSuchKey();
      return rest.empty() ? Found::kMissingLast : Found::kError;
    }
    return WalkDom<Found>(*root, rest, out);
  }
  auto text = [&](const std::string& s) {
    if (s.empty()) return false;
    v = Ref(s);
    return true;
  };
  bool present = false;
  if (field == "type") {
    v = cel::Value::StringRef(EventTypeName(event_.type));
    present = true;
  } else if (field == "event") {
    present = text(event_.event);
  } else if (field == "name") {
    present = text(event_.name);
  } else if (field == "userId") {
    present = text(event_.user_id);
  } else if (field == "anonymousId") {
    present = text(event_.anonymous_id);
  } else if (field == "messageId") {
    present = text(event_.message_id);
  } else if (field == "previousId") {
    present = text(event_.previous_id);
  } else if (field == "groupId") {
    present = text(event_.group_id);
  } else if (field == "timestamp") {
    v = Time(event_.timestamp);
    present = true;
  } else if (field == "receivedAt") {
    present = event_.received_at != 0;
    v = Time(event_.received_at);
  }
  if (!present) {
    *out = NoSuchKey();
    return rest.empty() ? Found::kMissingLast : Found::kError;
  }
  return WalkValue<Found>(std::move(v), rest, out);
}

ProfileRuleTarget::Found ProfileRuleTarget::LookupProfile(Path path, cel::Value* out) const {
  const std::string& field = path[0];
  const Path rest = path.subspan(1);
  const Profile& p = profile_;
  auto missing = [&] {
    *out = NoSuchKey();
    return rest.empty() ? Found::kMissingLast : Found::kError;
  };
  // Fast paths for the leaves rules read most.
  if (rest.size() == 1) {
    const std::string& key = rest[0];
    if (field == "counters") {
      if (auto w = p.windowed_counters.find(key); w != p.windowed_counters.end()) {
        *out = cel::Value::Double(w->second.Sum(now_));
        return Found::kYes;
      }
      auto it = p.counters.find(key);
      if (it == p.counters.end()) {
        *out = NoSuchKey();
        return Found::kMissingLast;
      }
      *out = cel::Value::Double(it->second);
      return Found::kYes;
    }
    if (field == "stats") {
      const auto& st = p.stats;
      const std::pair<std::string_view, int64_t> ints[] = {{"events", st.events},
                                                           {"page_views", st.page_views},
                                                           {"screen_views", st.screen_views},
                                                           {"sessions", st.sessions},
                                                           {"orders", st.orders}};
      for (const auto& [name, value] : ints) {
        if (key == name) {
          *out = cel::Value::Int(value);
          return Found::kYes;
        }
      }
      if (key == "revenue") {
        *out = cel::Value::Double(st.revenue);
        return Found::kYes;
      }
    }
    if (field == "scores") {
      auto it = p.scores.find(key);
      if (it == p.scores.end()) {
        *out = NoSuchKey();
        return Found::kMissingLast;
      }
      *out = cel::Value::Double(it->second);
      return Found::kYes;
    }
  }
  if (field == "traits") {
    if (!profile_traits_parsed_) {
      std::vector<std::pair<std::string, std::string>> traits;
      traits.reserve(p.traits.size());
      for (const auto& [k, t] : p.traits) traits.emplace_back(k, t.json);
      AppendTraitsObject(traits, &profile_traits_json_);
    }
    const auto* root = Parsed(scratch_.profile_traits, profile_traits_json_, &profile_traits_,
                              &profile_traits_parsed_);
    if (!root) return missing();
    return WalkDom<Found>(*root, rest, out);
  }
  const auto& s = p.stats;
  MapBuilder m;
  if (field == "id") {
    return WalkValue<Found>(Ref(p.id), rest, out);
  } else if (field == "stats") {
    m.Add("events", cel::Value::Int(s.events))
        .Add("page_views", cel::Value::Int(s.page_views))
        .Add("screen_views", cel::Value::Int(s.screen_views))
        .Add("sessions", cel::Value::Int(s.sessions))
        .Add("orders", cel::Value::Int(s.orders))
        .Add("revenue", cel::Value::Double(s.revenue))
        .AddIf(s.first_seen != 0, "first_seen", Time(s.first_seen))
        .AddIf(s.last_seen != 0, "last_seen", Time(s.last_seen));
  } else if (field == "counters") {
    for (const auto& [k, v] : p.counters) {
      if (!p.windowed_counters.contains(k)) m.Add(k, cel::Value::Double(v));
    }
    for (const auto& [k, c] : p.windowed_counters) m.Add(k, cel::Value::Double(c.Sum(now_)));
  } else if (field == "scores") {
    for (const auto& [k, v] : p.scores) m.Add(k, cel::Value::Double(v));
  } else if (field == "segments") {
    auto list = std::make_shared<std::vector<cel::Value>>();
    for (const auto& [name, expires_at] : p.segments) {
      if (expires_at == 0 || expires_at > now_) list->push_back(Ref(name));
    }
    return WalkValue<Found>(cel::Value::List(std::move(list)), rest, out);
  } else if (field == "offers") {
    for (const auto& [id, priority] : p.offers) m.Add(id, cel::Value::Int(priority));
  } else if (field == "interests") {
    for (const auto& [k, i] : p.interests) {
      m.Add(k, cel::Value::Double(updater_.DecayedScore(i, now_)));
    }
  } else if (field == "session") {
    if (p.session.id.empty()) return missing();
    m.Add("id", Ref(p.session.id))
        .Add("events", cel::Value::Int(p.session.events))
        .Add("started_at", Time(p.session.started_at))
        .Add("last_event_at", Time(p.session.last_event_at));
  } else if (field == "device") {
    m.AddIf(!p.device.type.empty(), "type", Ref(p.device.type))
        .AddIf(!p.device.os.empty(), "os", Ref(p.device.os))
        .AddIf(!p.device.browser.empty(), "browser", Ref(p.device.browser))
        .AddIf(!p.device.library.empty(), "library", Ref(p.device.library));
  } else if (field == "identities") {
    for (const auto& [type, values] : p.identities) {
      auto list = std::make_shared<std::vector<cel::Value>>();
      for (const auto& v : values) list->push_back(Ref(v));
      m.Add(type, cel::Value::List(std::move(list)));
    }
  } else if (field == "recent_products") {
    auto list = std::make_shared<std::vector<cel::Value>>();
    for (const auto& r : p.recent_products) {
      MapBuilder item;
      item.Add("product_id", Ref(r.product_id))
          .AddIf(!r.name.empty(), "name", Ref(r.name))
          .AddIf(!r.category.empty(), "category", Ref(r.category))
          .AddIf(r.has_price, "price", cel::Value::Double(r.price))
          .Add("viewed_at", Time(r.viewed_at));
      list->push_back(item.Build());
    }
    return WalkValue<Found>(cel::Value::List(std::move(list)), rest, out);
  } else if (field == "first_touch" || field == "last_touch") {
    const Touch& t = field == "first_touch" ? p.first_touch : p.last_touch;
    if (t.empty()) return missing();
    return WalkValue<Found>(TouchValue(t), rest, out);
  } else {
    return missing();
  }
  return WalkValue<Found>(m.Build(), rest, out);
}

bool ProfileRuleTarget::AlreadyFired(const std::string& rule_id, OnceScope scope) const {
  auto it = profile_.rules_fired.find(rule_id);
  if (it == profile_.rules_fired.end()) return false;
  return scope == OnceScope::kProfile || it->second == profile_.session.id;
}

void ProfileRuleTarget::MarkFired(const std::string& rule_id) {
  Forget();
  profile_.rules_fired[rule_id] = profile_.session.id;
}

void ProfileRuleTarget::AddSegment(const std::string& name, int64_t ttl_ms) {
  Forget();
  profile_.segments[name] = ttl_ms > 0 ? now_ + ttl_ms : 0;
}

void ProfileRuleTarget::RemoveSegment(const std::string& name) {
  Forget();
  profile_.segments.erase(name);
}

void ProfileRuleTarget::Increment(const std::string& counter, double by, int64_t window_ms) {
  Forget();
  if (window_ms <= 0) {
    profile_.windowed_counters.erase(counter);
    profile_.counters[counter] += by;
    return;
  }
  auto& c = profile_.windowed_counters[counter];
  if (c.window_ms != window_ms) c = WindowedCounter{window_ms, {}};  // a new window restarts
  c.Add(now_, by);
  profile_.counters.erase(counter);
}

void ProfileRuleTarget::SetTrait(const std::string& name, const cel::Value& value) {
  Forget();
  auto& trait = profile_.traits[name];
  if (trait.updated_at > now_) return;  // the last write by event time wins
  trait.json = CelValueToJson(value);
  trait.updated_at = now_;
  trait.source = "rules";
  profile_traits_parsed_ = false;  // a later rule reads the new value
  profile_traits_.reset();
}

void ProfileRuleTarget::SetScore(const std::string& name, double value) {
  Forget();
  profile_.scores[name] = value;
}

void ProfileRuleTarget::AddOffer(const std::string& id, int64_t priority) {
  Forget();
  profile_.offers[id] = priority;
}

}  // namespace ecrm
