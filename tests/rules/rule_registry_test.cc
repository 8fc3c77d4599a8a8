// The registry with a shared log (cluster mode): pushes and rollbacks go to the log, invalid sets
// never do, and a set read back from the log is activated at the log's version.
#include "rules/rule_registry.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/testutil/temp_dir.h"

namespace ecrm {
namespace {

// Hands every publish straight back as the next log version, as the rules topic's reader would.
class LoopbackLog final : public RuleLog {
 public:
  explicit LoopbackLog(RuleRegistry& registry) : registry_(registry) {}
  StatusOr<uint64_t> Publish(std::string_view document) override {
    published.emplace_back(document);
    const uint64_t version = 100 + published.size();  // the log's numbering, not the registry's
    RETURN_IF_ERROR(registry_.ApplyShared(version, document));
    return version;
  }
  std::vector<std::string> published;

 private:
  RuleRegistry& registry_;
};

constexpr std::string_view kSet =
    R"({"rules":[{"id":"a","when":"true","then":[{"add_segment":"s"}]}]})";
constexpr std::string_view kOther =
    R"({"rules":[{"id":"b","when":"true","then":[{"add_segment":"t"}]}]})";

TEST(RuleRegistry, WithALogPushesGetTheLogsVersionsAndInvalidOnesNeverReachIt) {
  testing::TempDir dir;
  auto store = KvStore::Open({.path = dir.Sub("db")});
  ASSERT_TRUE(store.ok());
  auto registry = RuleRegistry::Open(**store);
  ASSERT_TRUE(registry.ok());
  LoopbackLog log(**registry);
  (*registry)->SetLog(&log);

  std::vector<RuleError> errors;
  auto v = (*registry)->Push(kSet, &errors);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(*v, 101u);
  EXPECT_EQ((*registry)->Current()->version(), 101u);

  auto bad = (*registry)->Push(R"({"rules":[{"id":"x","when":"((","then":[]}]})", &errors);
  EXPECT_TRUE(absl::IsInvalidArgument(bad.status()));
  EXPECT_FALSE(errors.empty());
  EXPECT_EQ(log.published.size(), 1u);  // refused here, never shared

  errors.clear();
  ASSERT_TRUE((*registry)->Push(kOther, &errors).ok());
  auto back = (*registry)->Rollback(101);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, 103u);
  EXPECT_EQ(log.published.size(), 3u);
  EXPECT_NE((*registry)->Current()->rules_json().find("\"a\""), std::string::npos);

  // Read back twice (a restart's catch-up): nothing changes.
  ASSERT_TRUE((*registry)->ApplyShared(103, log.published[2]).ok());
  EXPECT_EQ((*registry)->Current()->version(), 103u);

  // The active shared version survives a restart.
  registry->reset();
  auto reopened = RuleRegistry::Open(**store);
  ASSERT_TRUE(reopened.ok());
  EXPECT_EQ((*reopened)->Current()->version(), 103u);
}

}  // namespace
}  // namespace ecrm
