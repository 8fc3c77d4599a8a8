// The whole pipeline in-process: the real HTTP server on a free port, the shards, RocksDB in a temp
// dir; a restart of the service on the same data dir.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "app/service.h"
#include "tests/testutil/http_client.h"
#include "tests/testutil/temp_dir.h"

namespace ecrm {
namespace {

using testing::HttpCall;

Config TestConfig(const std::string& dir) {
  Config c;
  c.http_port = 0;
  c.data_dir = dir;
  c.write_keys = {"wk"};
  c.read_keys = {"rk"};
  c.admin_token = "admin";
  c.workers = 2;
  c.http_threads = 2;
  c.partitions = 16;
  c.max_request_bytes = 64 * 1024;
  return c;
}

const std::vector<std::pair<std::string, std::string>> kCollect = {
    {"Authorization", "Basic d2s6"}, {"Content-Type", "application/json"}};  // "wk:"
const std::vector<std::pair<std::string, std::string>> kAdmin = {{"Authorization", "Bearer admin"}};

TEST(Pipeline, HttpCollectorToProfilesAcrossARestart) {
  testing::TempDir dir;
  std::string batch = R"({"batch":[)";
  for (int i = 0; i < 100; i++) {
    if (i) batch += ",";
    batch += R"({"type":"track","event":"Product Viewed","anonymousId":"v)" +
             std::to_string(i % 10) + R"(","messageId":"m)" + std::to_string(i) +
             R"(","properties":{"product_id":"p)" + std::to_string(i) + R"(","category":"c"}})";
  }
  batch += "]}";
  {
    Service service(TestConfig(dir.path()));
    ASSERT_TRUE(service.Start().ok());
    auto r = HttpCall(service.port(), "POST", "/v1/batch", batch, kCollect);
    ASSERT_EQ(r.status, 200) << r.body;
    auto p = HttpCall(service.port(), "GET", "/v1/profiles/anonymous_id:v3", "", kAdmin);
    ASSERT_EQ(p.status, 200);
    EXPECT_NE(p.body.find(R"("events":10)"), std::string::npos) << p.body;
  }
  Service service(TestConfig(dir.path()));
  ASSERT_TRUE(service.Start().ok());
  // The same batch again (a client retry): deduplicated by messageId.
  ASSERT_EQ(HttpCall(service.port(), "POST", "/v1/batch", batch, kCollect).status, 200);
  auto p = HttpCall(service.port(), "GET", "/v1/profiles/anonymous_id:v3", "", kAdmin);
  EXPECT_NE(p.body.find(R"("events":10)"), std::string::npos) << p.body;
  auto metrics = HttpCall(service.port(), "GET", "/metrics");
  EXPECT_EQ(metrics.status, 200);
  EXPECT_NE(metrics.body.find("ecrm_events_duplicate_total 100"), std::string::npos);
  EXPECT_NE(metrics.body.find("ecrm_rocksdb_estimated_keys"), std::string::npos);
}

TEST(Pipeline, OversizedBodyGets400AndTheServerKeepsServing) {
  testing::TempDir dir;
  Service service(TestConfig(dir.path()));
  ASSERT_TRUE(service.Start().ok());
  auto r = HttpCall(service.port(), "POST", "/v1/batch", std::string(70 * 1024, ' '), kCollect);
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("request_too_large"), std::string::npos) << r.body;
  auto ok =
      HttpCall(service.port(), "POST", "/v1/track", R"({"userId":"u","event":"E"})", kCollect);
  EXPECT_EQ(ok.status, 200);
  auto metrics = HttpCall(service.port(), "GET", "/metrics");
  EXPECT_NE(metrics.body.find(R"(ecrm_events_rejected_total{reason="request_too_large"} 1)"),
            std::string::npos);
}

// Profile data is for the service only: RocksDB's files, the credentials and the data dir itself
// have no group or other permission bits, also for a data dir written before this was so.
TEST(Pipeline, DataFilesAreReadableByTheServiceOnly) {
  testing::TempDir dir;
  const std::string old_file = dir.Sub("left-by-an-old-version");
  std::ofstream(old_file) << "x";
  std::filesystem::permissions(old_file, std::filesystem::perms::others_read,
                               std::filesystem::perm_options::add);
  {
    Service service(TestConfig(dir.path()));
    ASSERT_TRUE(service.Start().ok());
    service.Stop();
  }
  int files = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir.path())) {
    const auto perms = entry.status().permissions();
    EXPECT_EQ(perms & (std::filesystem::perms::group_all | std::filesystem::perms::others_all),
              std::filesystem::perms::none)
        << entry.path();
    files++;
  }
  EXPECT_GT(files, 5);  // RocksDB's files were checked
  EXPECT_EQ(std::filesystem::status(dir.path()).permissions() &
                (std::filesystem::perms::group_all | std::filesystem::perms::others_all),
            std::filesystem::perms::none);
}

}  // namespace
}  // namespace ecrm
