#include "rules/cel/json.h"

#include "absl/status/status.h"
#include "rules/cel/cel.h"

namespace ecrm::cel {

Value ValueFromJsonElement(simdjson::dom::element element) {
  switch (element.type()) {
    case simdjson::dom::element_type::ARRAY: {
      auto list = std::make_shared<std::vector<Value>>();
      for (simdjson::dom::element e : simdjson::dom::array(element)) {
        list->push_back(ValueFromJsonElement(e));
      }
      return Value::List(std::move(list));
    }
    case simdjson::dom::element_type::OBJECT: {
      std::vector<MapValue::Entry> entries;
      for (simdjson::dom::key_value_pair kv : simdjson::dom::object(element)) {
        entries.emplace_back(Value::String(std::string(kv.key)), ValueFromJsonElement(kv.value));
      }
      return MapValue::Make(std::move(entries));
    }
    case simdjson::dom::element_type::INT64:
      return Value::Int(int64_t(element));
    case simdjson::dom::element_type::UINT64:
      return Value::Uint(uint64_t(element));
    case simdjson::dom::element_type::DOUBLE:
      return Value::Double(double(element));
    case simdjson::dom::element_type::STRING:
      return Value::String(std::string(std::string_view(element)));
    case simdjson::dom::element_type::BOOL:
      return Value::Bool(bool(element));
    case simdjson::dom::element_type::NULL_VALUE:
      return Value::Null();
  }
  return Value::Null();
}

absl::StatusOr<Value> ValueFromJson(std::string_view json) {
  simdjson::dom::parser parser;
  simdjson::padded_string padded(json);
  simdjson::dom::element root;
  auto error = parser.parse(padded).get(root);
  if (error) {
    return absl::InvalidArgumentError(std::string("invalid JSON: ") +
                                      simdjson::error_message(error));
  }
  Value v = ValueFromJsonElement(root);
  if (v.is_error()) return absl::InvalidArgumentError(std::string(v.ErrorMessage()));
  return v;
}

}  // namespace ecrm::cel
