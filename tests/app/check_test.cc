// `ecrm check`: flags and errors in process, and the real binary on a data dir written by a real
// ProfileEngine.
#include "app/check.h"

#include <gtest/gtest.h>
#include <prometheus/registry.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <future>
#include <sstream>

#include "common/murmur2.h"
#include "profiler/engine.h"
#include "store/keys.h"
#include "tests/testutil/temp_dir.h"

namespace ecrm {
namespace {

constexpr uint32_t kPartitions = 16;

struct Result {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

Result RunBinary(const std::string& args) {
  const std::string command = std::string(ECRM_BINARY) + " " + args + " 2>&1";
  Result result;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return result;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), pipe)) > 0) result.output.append(buf, n);
  const int status = ::pclose(pipe);
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  return result;
}

Result RunInProcess(std::vector<const char*> args) {
  args.insert(args.begin(), "check");
  std::ostringstream out, err;
  Result result;
  result.exit_code = RunCheck(static_cast<int>(args.size()), args.data(), out, err);
  result.output = out.str() + err.str();
  return result;
}

Event MakeEvent(EventType type, std::string anon, std::string user) {
  Event e;
  e.type = type;
  e.anonymous_id = std::move(anon);
  e.user_id = std::move(user);
  e.timestamp = 1'790'000'000'000;
  e.received_at = e.timestamp;
  if (type == EventType::kTrack) e.event = "Clicked";
  return e;
}

class CheckCommandTest : public ::testing::Test {
 protected:
  std::string DbPath() const { return dir_.Sub("db"); }

  std::unique_ptr<KvStore> OpenStore(const std::string& path = "") {
    auto store = KvStore::Open({.path = path.empty() ? DbPath() : path});
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? *std::move(store) : nullptr;
  }

  // Two visitors; the first logs in on a device after using the site as that user elsewhere,
  // which merges the two profiles (one alias).
  void WriteWithEngine(const std::string& db_path = "") {
    auto store = OpenStore(db_path);
    ASSERT_NE(store, nullptr);
    prometheus::Registry registry;
    EngineOptions options;
    options.shards = 2;
    options.partitions = kPartitions;
    auto engine = ProfileEngine::Create(*store, registry, options);
    ASSERT_TRUE(engine.ok()) << engine.status();
    (*engine)->Start();
    auto submit = [&](std::vector<Event> events) {
      std::promise<Status> done;
      auto future = done.get_future();
      Status queued =
          (*engine)->Submit(std::move(events), [&](Status s) { done.set_value(std::move(s)); });
      ASSERT_TRUE(queued.ok()) << queued;
      ASSERT_TRUE(future.get().ok());
    };
    submit({MakeEvent(EventType::kPage, "device-1", "")});
    submit({MakeEvent(EventType::kTrack, "", "user-1")});
    Event identify = MakeEvent(EventType::kIdentify, "device-1", "user-1");
    identify.email = "ada@example.com";
    submit({identify});
    submit({MakeEvent(EventType::kPage, "device-2", "")});
    auto merged = (*engine)->Lookup("anonymous_id", "device-1");
    ASSERT_TRUE(merged.ok() && merged->has_value());
    ASSERT_EQ((*merged)->merged_ids.size(), 1u) << "the identify should have merged";
    (*engine)->Stop();
  }

  std::string Args() const { return "check --data-dir " + dir_.path(); }

  testing::TempDir dir_;
};

TEST_F(CheckCommandTest, UsageAndOpenErrorsExitTwo) {
  EXPECT_EQ(RunInProcess({"--bogus"}).exit_code, 2);
  EXPECT_EQ(RunInProcess({"--limit", "x"}).exit_code, 2);
  const Result help = RunInProcess({"--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.output.find("--limit"), std::string::npos) << help.output;
  const Result missing = RunInProcess({"--data-dir", "/nonexistent/ecrm"});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.output.find("no database at /nonexistent/ecrm/db"), std::string::npos)
      << missing.output;
}

TEST_F(CheckCommandTest, EngineWrittenDataDirPassesUntilARecordIsCorrupted) {
  WriteWithEngine();
  const Result clean = RunBinary(Args());
  EXPECT_EQ(clean.exit_code, 0) << clean.output;
  EXPECT_EQ(clean.output, "checked 2 profiles, 1 aliases, 4 identity records: 0 violations\n");

  // Point the user id at a profile that does not exist.
  const std::string key = IdentityKey(PartitionForKey("user-1", kPartitions), "user_id", "user-1");
  const std::string missing = MakeProfileId(1, 0x1234);
  {
    auto store = OpenStore();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Put(Cf::kIdentities, key, EncodeIdentityRecord(missing, true)).ok());
  }
  const Result corrupt = RunBinary(Args());
  EXPECT_EQ(corrupt.exit_code, 1) << corrupt.output;
  EXPECT_EQ(corrupt.output,
            "identity \"" + key + "\": points at profile " + missing +
                ", which does not exist\n"
                "checked 2 profiles, 1 aliases, 4 identity records: 1 violations\n");

  // And the email at the other visitor's profile, which does not list it.
  {
    auto store = OpenStore();
    ASSERT_NE(store, nullptr);
    auto other = store->Get(Cf::kIdentities, IdentityKey(PartitionForKey("device-2", kPartitions),
                                                         "anonymous_id", "device-2"));
    ASSERT_TRUE(other.ok() && other->has_value());
    ASSERT_TRUE(store
                    ->Put(Cf::kIdentities,
                          IdentityKey(PartitionForKey("ada@example.com", kPartitions), "email",
                                      "ada@example.com"),
                          **other)
                    .ok());
  }
  const Result two = RunBinary(Args());
  EXPECT_EQ(two.exit_code, 1) << two.output;
  EXPECT_NE(two.output.find("which does not list email:ada@example.com"), std::string::npos)
      << two.output;
  EXPECT_NE(two.output.find(": 3 violations\n"), std::string::npos) << two.output;

  const Result limited = RunBinary(Args() + " --limit 1");
  EXPECT_EQ(limited.exit_code, 1);
  EXPECT_NE(limited.output.find(": 3 violations (first 1 shown)\n"), std::string::npos)
      << limited.output;
  EXPECT_EQ(std::count(limited.output.begin(), limited.output.end(), '\n'), 2);
}

// A merge cut short by a crash is named, so the operator starts ecrm once before trusting a clean
// or a failing check.
TEST_F(CheckCommandTest, SaysWhenMergesAwaitTheNextStart) {
  WriteWithEngine();
  {
    auto store = OpenStore();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Put(Cf::kMeta, PendingMergeKey(MakeProfileId(1, 0x77)), "x").ok());
  }
  const Result r = RunInProcess({"--data-dir", dir_.path().c_str()});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("1 merges were cut short by a crash"), std::string::npos) << r.output;
}

TEST_F(CheckCommandTest, RefusesADataDirInUse) {
  WriteWithEngine();
  auto store = OpenStore();  // holds the lock, as a running ecrm does
  ASSERT_NE(store, nullptr);
  const Result busy = RunBinary(Args());
  EXPECT_EQ(busy.exit_code, 2) << busy.output;
  EXPECT_NE(busy.output.find("in use by another process"), std::string::npos) << busy.output;
}

// Two data dirs written by the same events in the same order hold the same state, partition by
// partition; a changed identity record changes its own partition's digest and no other.
TEST_F(CheckCommandTest, PartitionDigestsAgreeForEqualStateAndNameTheChangedPartition) {
  WriteWithEngine();
  testing::TempDir other;  // the same history in a second data dir
  WriteWithEngine(other.Sub("db"));
  const Result a = RunBinary(Args() + " --partition-digests");
  const Result b = RunBinary("check --data-dir " + other.path() + " --partition-digests");
  ASSERT_EQ(a.exit_code, 0) << a.output;
  ASSERT_EQ(b.exit_code, 0) << b.output;
  EXPECT_EQ(std::count(a.output.begin(), a.output.end(), '\n'), kPartitions) << a.output;
  EXPECT_EQ(a.output, b.output);
  EXPECT_NE(a.output.find(" records 0\n"), std::string::npos);  // some partitions are empty

  const uint32_t changed = PartitionForKey("user-1", kPartitions);
  {
    auto store = OpenStore();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store
                    ->Put(Cf::kIdentities, IdentityKey(changed, "user_id", "user-1"),
                          EncodeIdentityRecord(MakeProfileId(1, 0x1234), true))
                    .ok());
  }
  const Result after = RunBinary(Args() + " --partition-digests");
  ASSERT_EQ(after.exit_code, 0) << after.output;
  std::istringstream was(b.output), now(after.output);
  std::string line_was, line_now;
  std::vector<std::string> differing;
  while (std::getline(was, line_was) && std::getline(now, line_now)) {
    if (line_was != line_now) differing.push_back(line_now.substr(0, 14));
  }
  char expected[16];
  std::snprintf(expected, sizeof(expected), "partition %04x", changed);
  EXPECT_EQ(differing, std::vector<std::string>{expected});
}

}  // namespace
}  // namespace ecrm
