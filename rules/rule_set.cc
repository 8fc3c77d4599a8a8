#include "rules/rule_set.h"

namespace ecrm {

std::string RuleSet::Describe() const {
  return "rule set v" + std::to_string(version_) + " (" + std::to_string(size()) + " rules)";
}

}  // namespace ecrm
