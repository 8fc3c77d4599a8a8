#include "app/credentials.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "tests/testutil/temp_dir.h"
#include "yaml-cpp/yaml.h"

namespace ecrm {
namespace {

std::string Read(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

TEST(Credentials, AFirstStartGeneratesABrowserAndAServerKey) {
  testing::TempDir dir;
  Config config;
  config.data_dir = dir.path();
  bool generated = false;
  ASSERT_TRUE(EnsureCredentials(config, generated).ok());
  EXPECT_TRUE(generated);
  ASSERT_EQ(config.browser_write_keys.size(), 1u);
  ASSERT_EQ(config.write_keys.size(), 1u);
  EXPECT_NE(config.browser_write_keys[0], config.write_keys[0]);
  EXPECT_FALSE(config.admin_token.empty());
  ASSERT_EQ(config.read_keys.size(), 1u);

  const std::string path = dir.Sub("credentials.yaml");
  const YAML::Node file = YAML::LoadFile(path);
  EXPECT_EQ(file["browser_write_key"].as<std::string>(), config.browser_write_keys[0]);
  EXPECT_EQ(file["server_write_key"].as<std::string>(), config.write_keys[0]);
  EXPECT_FALSE(file["write_key"]);
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  Config again;  // a later start reads the same keys
  again.data_dir = dir.path();
  ASSERT_TRUE(EnsureCredentials(again, generated).ok());
  EXPECT_FALSE(generated);
  EXPECT_EQ(again.browser_write_keys, config.browser_write_keys);
  EXPECT_EQ(again.write_keys, config.write_keys);
  EXPECT_EQ(again.admin_token, config.admin_token);
}

TEST(Credentials, AnOldFileWithWriteKeyKeepsItAsTheServerKey) {
  testing::TempDir dir;
  const std::string path = dir.Sub("credentials.yaml");
  const std::string old = "write_key: wk_old\nadmin_token: at_old\nread_key: rk_old\n";
  std::ofstream(path) << old;
  Config config;
  config.data_dir = dir.path();
  bool generated = true;
  ASSERT_TRUE(EnsureCredentials(config, generated).ok());
  EXPECT_FALSE(generated);
  EXPECT_EQ(config.write_keys, (std::vector<std::string>{"wk_old"}));
  EXPECT_TRUE(config.browser_write_keys.empty());
  EXPECT_EQ(config.admin_token, "at_old");
  EXPECT_EQ(config.read_keys, (std::vector<std::string>{"rk_old"}));
  EXPECT_EQ(Read(path), old);  // left as it was
}

TEST(Credentials, ConfiguredKeysOfEitherKindAreNotFilledFromTheFile) {
  testing::TempDir dir;
  std::ofstream(dir.Sub("credentials.yaml"))
      << "browser_write_key: wk_b\nserver_write_key: sk_s\nadmin_token: at\nread_key: rk\n";
  Config config;
  config.data_dir = dir.path();
  config.browser_write_keys = {"mine"};
  bool generated = true;
  ASSERT_TRUE(EnsureCredentials(config, generated).ok());
  EXPECT_FALSE(generated);
  EXPECT_EQ(config.browser_write_keys, (std::vector<std::string>{"mine"}));
  EXPECT_TRUE(config.write_keys.empty());
  EXPECT_EQ(config.admin_token, "at");  // only the missing settings come from the file

  Config both;
  both.data_dir = dir.Sub("unused");
  both.browser_write_keys = {"b"};
  both.admin_token = "t";
  ASSERT_TRUE(EnsureCredentials(both, generated).ok());
  EXPECT_FALSE(generated);
  EXPECT_FALSE(std::filesystem::exists(dir.Sub("unused/credentials.yaml")));
}

}  // namespace
}  // namespace ecrm
