#include "app/config.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <fstream>

#include "tests/testutil/temp_dir.h"

namespace ecrm {
namespace {

StatusOr<Config> Parse(std::vector<const char*> args) {
  args.insert(args.begin(), "serve");
  return ParseServeConfig(static_cast<int>(args.size()), args.data());
}

TEST(Config, Defaults) {
  auto c = Parse({});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->http_host, "127.0.0.1");
  EXPECT_EQ(c->http_port, 8080);
  EXPECT_EQ(c->data_dir, "./data");
  EXPECT_GE(c->workers, 1);
  EXPECT_EQ(c->partitions, 64u);
}

TEST(Config, FlagsBeatEnvironmentBeatsFile) {
  testing::TempDir dir;
  const std::string file = dir.Sub("ecrm.yaml");
  std::ofstream(file) << "http_addr: 0.0.0.0:9000\ndata_dir: /from/file\nworkers: 3\n"
                         "write_keys: [a, b]\nadmin_token: filetoken\n";
  ::setenv("ECRM_DATA_DIR", "/from/env", 1);
  ::setenv("ECRM_ADMIN_TOKEN", "envtoken", 1);
  auto c = Parse({"--config", file.c_str(), "--admin-token", "flagtoken", "--write-key", "k1",
                  "--write-key", "k2"});
  ::unsetenv("ECRM_DATA_DIR");
  ::unsetenv("ECRM_ADMIN_TOKEN");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->http_host, "0.0.0.0");
  EXPECT_EQ(c->http_port, 9000);
  EXPECT_EQ(c->data_dir, "/from/env");
  EXPECT_EQ(c->workers, 3);
  EXPECT_EQ(c->admin_token, "flagtoken");
  EXPECT_EQ(c->write_keys, (std::vector<std::string>{"k1", "k2"}));
}

TEST(Config, BooleanFlagsNeedNoValue) {
  auto c = Parse({"--sync-writes", "--http-addr", "127.0.0.1:9"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->sync_writes);
  EXPECT_EQ(c->http_port, 9);
  c = Parse({"--sync-writes=false"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->sync_writes);
  EXPECT_FALSE(Parse({"--max-queue-depth", "0"}).ok());
}

// Static group membership: the host name unless given; an id Kafka would refuse is refused here.
TEST(Config, InstanceIdDefaultsToTheHostNameAndIsChecked) {
  char host[256] = {};
  ASSERT_EQ(gethostname(host, sizeof(host) - 1), 0);
  auto c = Parse({});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->instance_id, std::string(host));
  c = Parse({"--instance-id", "ecrm-2"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->instance_id, "ecrm-2");
  for (const char* bad : {"a b", "a/b", "ä"}) {
    auto refused = Parse({"--instance-id", bad});
    ASSERT_FALSE(refused.ok()) << bad;
    EXPECT_NE(refused.status().message().find("instance_id"), std::string_view::npos);
  }
  EXPECT_FALSE(Parse({"--instance-id", std::string(250, 'a').c_str()}).ok());
}

TEST(Config, KafkaReplicationFactorIsTheBrokersDefaultOrPositive) {
  auto c = Parse({});
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->kafka_replication_factor, -1);
  c = Parse({"--kafka-replication-factor", "3"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->kafka_replication_factor, 3);
  for (const char* bad : {"0", "-2", "40000"}) {
    auto refused = Parse({"--kafka-replication-factor", bad});
    ASSERT_FALSE(refused.ok()) << bad;
    EXPECT_NE(refused.status().message().find("kafka_replication_factor"), std::string_view::npos);
  }
}

// The HTTP address other instances are told: --http-addr, with the host name for a wildcard.
TEST(Config, AdvertisedHttpAddrComesFromTheHttpAddr) {
  char host[256] = {};
  ASSERT_EQ(gethostname(host, sizeof(host) - 1), 0);
  auto c = Parse({});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->advertised_http_addr, "127.0.0.1:8080");
  c = Parse({"--http-addr", "0.0.0.0:9000"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->advertised_http_addr, std::string(host) + ":9000");
  c = Parse({"--http-addr", "127.0.0.1:0"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->advertised_http_addr, "");  // a port picked at start is not known yet
  c = Parse({"--advertised-http-addr", "ecrm-1.ecrm.shop.svc:8080"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->advertised_http_addr, "ecrm-1.ecrm.shop.svc:8080");
  for (const char* bad : {"no-port", "a b:1", "x@y:1"}) {
    auto refused = Parse({"--advertised-http-addr", bad});
    ASSERT_FALSE(refused.ok()) << bad;
    EXPECT_NE(refused.status().message().find("advertised_http_addr"), std::string_view::npos);
  }
}

TEST(Config, KafkaPrefetchIsBounded) {
  auto c = Parse({});
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->kafka_prefetch_messages, 100000u);
  c = Parse({"--kafka-prefetch-messages", "200000"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->kafka_prefetch_messages, 200000u);
  c = Parse({"--kafka-prefetch-messages", "999"});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(std::string(c.status().message()).find("kafka_prefetch_messages"), std::string::npos);
  EXPECT_FALSE(Parse({"--kafka-prefetch-messages", "10000001"}).ok());
}

TEST(Config, MaxConnectionsIsPositive) {
  auto c = Parse({});
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->max_connections, 10000u);
  c = Parse({"--max-connections", "3"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->max_connections, 3u);
  c = Parse({"--max-connections", "0"});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(std::string(c.status().message()).find("max_connections"), std::string::npos);
}

TEST(Config, CorsOriginsAndThePublicUrlAreChecked) {
  auto c = Parse({"--cors-origin", "https://shop.example", "--cors-origin", "http://localhost:3000",
                  "--public-url", "https://collect.shop.example/ecrm"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->cors_origins,
            (std::vector<std::string>{"https://shop.example", "http://localhost:3000"}));
  EXPECT_EQ(c->public_url, "https://collect.shop.example/ecrm");
  for (const char* bad :
       {"shop.example", "https://shop.example/", "https://shop.example/x", "://x"}) {
    c = Parse({"--cors-origin", bad});
    EXPECT_FALSE(c.ok()) << bad;
    if (!c.ok()) {
      EXPECT_NE(std::string(c.status().message()).find("cors_origins"), std::string::npos);
    }
  }
  for (const char* bad : {"collect.shop.example", "ftp://x", "https://x/?a=1", "https://x y"}) {
    EXPECT_FALSE(Parse({"--public-url", bad}).ok()) << bad;
  }
  EXPECT_TRUE(Parse({"--max-traits", "10", "--max-trait-bytes", "100", "--cache-mb", "1"}).ok());
  for (const char* flag : {"--max-traits", "--max-trait-bytes", "--cache-mb"}) {
    EXPECT_FALSE(Parse({flag, "0"}).ok()) << flag;
  }
}

TEST(Config, RuleBudgetPerEventIsBounded) {
  auto c = Parse({});
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->rule_budget_per_event, 200000u);
  c = Parse({"--rule-budget-per-event", "50000"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->rule_budget_per_event, 50000u);
  c = Parse({"--rule-budget-per-event", "999"});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(std::string(c.status().message()).find("rule_budget_per_event"), std::string::npos);
}

TEST(Config, TheChangelogIsOnByDefaultAndItsCommitIntervalBounded) {
  auto c = Parse({});
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->kafka_changelog);
  EXPECT_EQ(c->kafka_commit_interval_ms, 100);
  c = Parse({"--kafka-changelog=false", "--kafka-commit-interval-ms", "250"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->kafka_changelog);
  EXPECT_EQ(c->kafka_commit_interval_ms, 250);
  for (const char* bad : {"4", "10001", "-1"}) {
    c = Parse({"--kafka-commit-interval-ms", bad});
    ASSERT_FALSE(c.ok()) << bad;
    EXPECT_NE(std::string(c.status().message()).find("kafka_commit_interval_ms"),
              std::string::npos);
  }
}

TEST(Config, StandbyReplicasNeedTheChangelogAndTheCleanupDelayIsBounded) {
  auto c = Parse({});
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->standby_replicas, 0);
  EXPECT_EQ(c->state_cleanup_delay_ms, 600000);
  c = Parse({"--standby-replicas", "2", "--state-cleanup-delay-ms", "-1"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->standby_replicas, 2);
  EXPECT_EQ(c->state_cleanup_delay_ms, -1);
  for (const char* bad : {"-1", "17"}) {
    c = Parse({"--standby-replicas", bad});
    ASSERT_FALSE(c.ok()) << bad;
    EXPECT_NE(std::string(c.status().message()).find("standby_replicas"), std::string::npos);
  }
  c = Parse({"--standby-replicas", "1", "--kafka-changelog=false"});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(std::string(c.status().message()).find("changelog"), std::string::npos);
  c = Parse({"--state-cleanup-delay-ms", "-2"});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(std::string(c.status().message()).find("state_cleanup_delay_ms"), std::string::npos);
}

TEST(Config, EnvListsAreCommaSeparated) {
  ::setenv("ECRM_WRITE_KEYS", "x,y", 1);
  auto c = Parse({});
  ::unsetenv("ECRM_WRITE_KEYS");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->write_keys, (std::vector<std::string>{"x", "y"}));
}

TEST(Config, ErrorsNameTheKey) {
  testing::TempDir dir;
  const std::string file = dir.Sub("bad.yaml");
  std::ofstream(file) << "http_adr: 1.2.3.4:5\n";
  auto c = Parse({"--config", file.c_str()});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(std::string(c.status().message()).find("unknown key 'http_adr'"), std::string::npos);

  std::ofstream(file, std::ios::trunc) << "workers: many\n";
  c = Parse({"--config", file.c_str()});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(std::string(c.status().message()).find("'workers'"), std::string::npos);

  c = Parse({"--http-addr", "nonsense"});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(std::string(c.status().message()).find("http-addr"), std::string::npos);
  c = Parse({"--partitions", "0"});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(std::string(c.status().message()).find("partitions"), std::string::npos);
  c = Parse({"--write-key", "a:b"});
  ASSERT_FALSE(c.ok());
  c = Parse({"--no-such-flag"});
  ASSERT_FALSE(c.ok());
  c = Parse({"--merge-survivor", "biggest"});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(std::string(c.status().message()).find("merge_survivor"), std::string::npos);
  c = Parse({"--max-user-ids", "0"});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(std::string(c.status().message()).find("max_user_ids"), std::string::npos);
  c = Parse({"--identifier-limit", "crm_id"});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(std::string(c.status().message()).find("identifier_limits"), std::string::npos);
  c = Parse({"--blocked-identifier", "anon", "--identifier-type", "loyalty_id"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->blocked_identifiers, (std::vector<std::string>{"anon"}));
  EXPECT_EQ(c->identifier_types, (std::vector<std::string>{"loyalty_id"}));
}

TEST(Config, BrowserWriteKeysFromFlagsEnvironmentAndFile) {
  auto c = Parse({"--browser-write-key", "b1", "--browser-write-key", "b2", "--write-key", "s1"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->browser_write_keys, (std::vector<std::string>{"b1", "b2"}));
  EXPECT_EQ(c->write_keys, (std::vector<std::string>{"s1"}));

  ::setenv("ECRM_BROWSER_WRITE_KEYS", "x,y", 1);
  c = Parse({});
  ::unsetenv("ECRM_BROWSER_WRITE_KEYS");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->browser_write_keys, (std::vector<std::string>{"x", "y"}));
  EXPECT_TRUE(c->write_keys.empty());

  testing::TempDir dir;
  const std::string file = dir.Sub("ecrm.yaml");
  std::ofstream(file) << "browser_write_keys: [fb]\nwrite_keys: [fs]\n";
  c = Parse({"--config", file.c_str()});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->browser_write_keys, (std::vector<std::string>{"fb"}));
  EXPECT_EQ(c->write_keys, (std::vector<std::string>{"fs"}));
  c = Parse({"--config", file.c_str(), "--browser-write-key", "flag"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->browser_write_keys, (std::vector<std::string>{"flag"}));
}

TEST(Config, AKeyCannotBeBothKinds) {
  auto c = Parse({"--write-key", "same", "--browser-write-key", "same"});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(std::string(c.status().message()).find("browser_write_keys"), std::string::npos);
  EXPECT_EQ(std::string(c.status().message()).find("same"), std::string::npos);  // not named
  ::setenv("ECRM_WRITE_KEYS", "k", 1);
  c = Parse({"--browser-write-key", "k"});
  ::unsetenv("ECRM_WRITE_KEYS");
  EXPECT_FALSE(c.ok());
  c = Parse({"--browser-write-key", "a:b"});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(std::string(c.status().message()).find("browser_write_keys"), std::string::npos);
}

TEST(Config, IdentitySecretFromAFileOrTheEnvironment) {
  testing::TempDir dir;
  const std::string path = dir.Sub("secret");
  std::ofstream(path) << "correct horse\n";
  auto c = Parse({"--identity-secret-file", path.c_str()});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->identity_secret, "correct horse");  // the trailing newline stripped
  EXPECT_EQ(c->identity_secret_file, path);

  ::setenv("ECRM_IDENTITY_SECRET_FILE", path.c_str(), 1);
  c = Parse({});
  ::unsetenv("ECRM_IDENTITY_SECRET_FILE");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->identity_secret, "correct horse");

  const std::string file = dir.Sub("ecrm.yaml");
  std::ofstream(file) << "identity_secret_file: " << path << "\n";
  c = Parse({"--config", file.c_str()});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->identity_secret, "correct horse");

  ::setenv("ECRM_IDENTITY_SECRET", "direct", 1);
  c = Parse({});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->identity_secret, "direct");
  c = Parse({"--identity-secret-file", path.c_str()});  // two sources: which one was meant?
  ::unsetenv("ECRM_IDENTITY_SECRET");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(std::string(c.status().message()).find("correct"), std::string::npos);

  c = Parse({});
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->identity_secret, "");  // none: no browser claim verifies
}

TEST(Config, AnUnreadableOrEmptySecretFileNamesThePathOnly) {
  testing::TempDir dir;
  const std::string missing = dir.Sub("missing");
  auto c = Parse({"--identity-secret-file", missing.c_str()});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(std::string(c.status().message()).find("identity_secret_file"), std::string::npos);
  EXPECT_NE(std::string(c.status().message()).find(missing), std::string::npos);
  c = Parse({"--identity-secret-file", dir.path().c_str()});  // a directory
  ASSERT_FALSE(c.ok());
  EXPECT_NE(std::string(c.status().message()).find(dir.path()), std::string::npos);
  const std::string empty = dir.Sub("empty");
  std::ofstream(empty) << "\n";
  c = Parse({"--identity-secret-file", empty.c_str()});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(std::string(c.status().message()).find("is empty"), std::string::npos);
  const std::string big = dir.Sub("big");
  std::ofstream(big) << std::string(70000, 'x');
  c = Parse({"--identity-secret-file", big.c_str()});
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(std::string(c.status().message()).find("xxx"), std::string::npos);
}

TEST(Config, KafkaPropertiesMergePerKeyFileThenEnvironmentThenFlags) {
  testing::TempDir dir;
  const std::string password = dir.Sub("password");
  std::ofstream(password) << "from-the-file\n";
  const std::string file = dir.Sub("ecrm.yaml");
  std::ofstream(file) << "kafka_brokers: b:9093\nkafka_properties:\n  security.protocol: SASL_SSL\n"
                         "  sasl.mechanism: PLAIN\n  sasl.username: yaml\n"
                         "kafka_property_files:\n  sasl.password: "
                      << password << "\n";
  ::setenv("ECRM_KAFKA_PROPERTY_SASL_MECHANISM", "SCRAM-SHA-512", 1);
  auto c = Parse({"--config", file.c_str(), "--kafka-property", "sasl.username=flag"});
  ::unsetenv("ECRM_KAFKA_PROPERTY_SASL_MECHANISM");
  ASSERT_TRUE(c.ok()) << c.status();
  const std::vector<std::pair<std::string, std::string>> want = {
      {"security.protocol", "SASL_SSL"},
      {"sasl.mechanism", "SCRAM-SHA-512"},
      {"sasl.username", "flag"},
      {"sasl.password", "from-the-file"}};
  EXPECT_EQ(c->kafka_properties, want);
}

TEST(Config, KafkaPropertiesAreCheckedWithoutShowingTheirValues) {
  for (const char* arg : {"security.protocol=hunter2", "no.such.key=hunter2", "group.id=hunter2",
                          "bootstrap.servers=hunter2", "noequals"}) {
    auto c = Parse({"--kafka-brokers", "b:1", "--kafka-property", arg});
    ASSERT_FALSE(c.ok()) << arg;
    EXPECT_EQ(std::string(c.status().message()).find("hunter2"), std::string::npos) << c.status();
  }
  EXPECT_FALSE(Parse({"--kafka-property", "linger.ms=5"}).ok());  // without kafka_brokers
  EXPECT_FALSE(
      Parse({"--kafka-brokers", "b:1", "--kafka-property-file", "sasl.password=/no/such"}).ok());
  auto tuned = Parse({"--kafka-brokers", "b:1", "--kafka-property", "session.timeout.ms=30000"});
  ASSERT_TRUE(tuned.ok()) << tuned.status();
}

TEST(Config, KeysComeFromMountedSecretFiles) {
  testing::TempDir dir;
  const std::string keys = dir.Sub("write-keys");
  std::ofstream(keys) << "# rotated 2026-12\nsk_new\n\n  sk_old  \n";
  const std::string token = dir.Sub("admin-token");
  std::ofstream(token) << "the-token\n";
  const std::string empty = dir.Sub("empty");
  std::ofstream(empty) << "\n# nothing\n";
  auto c = Parse({"--write-keys-file", keys.c_str(), "--admin-token-file", token.c_str(),
                  "--read-keys-file", keys.c_str()});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->write_keys, (std::vector<std::string>{"sk_new", "sk_old"}));
  EXPECT_EQ(c->read_keys, (std::vector<std::string>{"sk_new", "sk_old"}));
  EXPECT_EQ(c->admin_token, "the-token");
  auto rotating = Parse({"--admin-token-file", keys.c_str()});  // two tokens: a rotation
  ASSERT_TRUE(rotating.ok()) << rotating.status();
  EXPECT_EQ(rotating->admin_token, "sk_new");
  EXPECT_EQ(rotating->more_admin_tokens, (std::vector<std::string>{"sk_old"}));
  EXPECT_FALSE(Parse({"--admin-token-file", token.c_str(), "--admin-token", "x"}).ok());
  EXPECT_FALSE(Parse({"--browser-write-keys-file", empty.c_str()}).ok());
  EXPECT_FALSE(Parse({"--write-keys-file", dir.Sub("missing").c_str()}).ok());
}

TEST(Config, LogFormatIsTextOrJson) {
  auto c = Parse({"--log-format", "json"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->log_format, "json");
  EXPECT_FALSE(Parse({"--log-format", "xml"}).ok());
}

TEST(Config, AnEmptyReadKeyIsRefused) {
  // An empty key would let a request without Authorization personalize.
  EXPECT_FALSE(Parse({"--read-key", ""}).ok());
  EXPECT_FALSE(Parse({"--read-key", "rk", "--read-key", ""}).ok());
  EXPECT_TRUE(Parse({"--read-key", "rk"}).ok());
}

TEST(Config, IdentifierTypesHaveNoSeparators) {
  for (const char* bad : {"crm:id", "a|b", "", "Loyalty", "1st", "has space"}) {
    EXPECT_FALSE(Parse({"--identifier-type", bad}).ok()) << bad;
  }
  auto c = Parse({"--identifier-type", "loyalty_no2"});
  ASSERT_TRUE(c.ok()) << c.status();
}

}  // namespace
}  // namespace ecrm
