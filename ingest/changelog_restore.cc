#include "ingest/changelog_restore.h"

#include <librdkafka/rdkafkacpp.h>

#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <thread>

#include "common/logging.h"
#include "ingest/internal/kafka_conf.h"
#include "ingest/kafka_changelog.h"
#include "store/keys.h"

namespace ecrm {
namespace {

constexpr size_t kBatchRecords = 10000;
constexpr size_t kBatchBytes = 8 << 20;

StatusOr<bool> HoldsState(const KvStore& store, uint32_t p) {
  bool any = false;
  const std::string identities = PartitionPrefix(p);
  const std::string profiles = identities.substr(0, 4) + "-";
  auto found = [&](std::string_view, std::string_view) {
    any = true;
    return false;
  };
  RETURN_IF_ERROR(store.Scan(Cf::kProfiles, profiles, found));
  if (!any) RETURN_IF_ERROR(store.Scan(Cf::kIdentities, identities, found));
  return any;
}

}  // namespace

StatusOr<std::optional<int64_t>> Checkpoint(const KvStore& store, uint32_t p) {
  ASSIGN_OR_RETURN(auto stored, store.Get(Cf::kMeta, ChangelogCheckpointKey(p)));
  if (!stored || stored->size() != 8) return std::optional<int64_t>();
  return std::optional<int64_t>(static_cast<int64_t>(DecodeFixed64(stored->data())));
}

void PutCheckpoint(WriteBatch& batch, uint32_t p, int64_t next) {
  std::string value;
  PutFixed64(&value, static_cast<uint64_t>(next));
  batch.Put(Cf::kMeta, ChangelogCheckpointKey(p), value);
}

StatusOr<ResumePoint> PrepareCopy(KvStore& store, uint32_t p, int64_t low, int64_t high) {
  ResumePoint resume;
  ASSIGN_OR_RETURN(const auto checkpoint, Checkpoint(store, p));
  if (high == 0) {  // nothing logged: leave the copy alone
    if (!checkpoint) {
      ASSIGN_OR_RETURN(resume.unlogged, HoldsState(store, p));
    }
    resume.from = checkpoint.value_or(0);
    return resume;
  }
  resume.from = checkpoint.value_or(0);
  if (resume.from >= high) return resume;  // up to date
  bool drop = resume.from < low;  // what this copy missed may be compacted away, deletions included
  if (!drop && !checkpoint) {
    // No checkpoint but a changelog: whatever is here predates it or is a stranger's.
    ASSIGN_OR_RETURN(drop, HoldsState(store, p));
  }
  if (drop) {
    WriteBatch wipe = store.NewBatch();
    ErasePartition(wipe, p);
    RETURN_IF_ERROR(store.Write(wipe));
    resume.wiped = true;
  }
  if (drop || !checkpoint) resume.from = low;
  return resume;
}

bool ApplyChangelogRecord(WriteBatch& batch, const std::string* key, const void* payload,
                          size_t len) {
  const auto decoded = key ? DecodeChangelogKey(*key) : std::nullopt;
  if (!decoded) return false;
  if (payload == nullptr) {
    batch.Delete(static_cast<Cf>(decoded->cf), decoded->key);
  } else {
    batch.Put(static_cast<Cf>(decoded->cf), decoded->key,
              std::string_view(static_cast<const char*>(payload), len));
  }
  return true;
}

StatusOr<int64_t> SeedChangelog(const KvStore& store, uint32_t p, StateLog& log) {
  int64_t records = 0;
  WriteBatch batch = store.NewBatch();
  Status appended;
  auto flush = [&] {
    if (batch.Count() == 0 || !appended.ok()) return;
    appended = log.Append(batch, {}).status();
    records += static_cast<int64_t>(batch.Count());
    batch.Clear();
  };
  auto add = [&](Cf cf) {
    return [&, cf](std::string_view key, std::string_view value) {
      batch.Put(cf, key, value);
      if (batch.Count() >= kBatchRecords || batch.ByteSize() >= kBatchBytes) flush();
      return appended.ok();
    };
  };
  for (const auto& [cf, prefix] : PartitionKeyPrefixes(p)) {
    RETURN_IF_ERROR(store.Scan(static_cast<Cf>(cf), prefix, add(static_cast<Cf>(cf))));
  }
  flush();
  RETURN_IF_ERROR(appended);
  return records;
}

void ErasePartition(WriteBatch& batch, uint32_t p) {
  for (const auto& [cf, prefix] : PartitionKeyPrefixes(p)) {
    std::string end = prefix;
    end.back()++;  // every prefix ends in a separator ('-', '|') or a digit, never in 0xff
    batch.DeleteRange(static_cast<Cf>(cf), prefix, end);
  }
  batch.Delete(Cf::kMeta, ChangelogCheckpointKey(p));
}

StatusOr<RestoreStats> RestoreFromChangelog(
    const KafkaOptions& options, KvStore& store, const std::vector<uint32_t>& partitions,
    int timeout_ms, const std::function<void(uint32_t, int64_t)>& progress) {
  RestoreStats stats;
  if (partitions.empty()) return stats;
  const auto started = std::chrono::steady_clock::now();
  const std::string topic = ChangelogTopic(options);
  ASSIGN_OR_RETURN(
      auto conf,
      MakeKafkaConf(
          Plus(ManualReaderSettings(options.brokers, options.group + "-restore", "ecrm-restore"),
               {
                   {"isolation.level", "read_committed"},  // aborted epochs never restored
                   {"enable.partition.eof", "true"},
                   {"fetch.max.bytes", "52428800"},
                   {"max.partition.fetch.bytes", "16777216"},
                   // The end of a partition is seen when a fetch comes back empty, which a
                   // broker holds for up to this long (librdkafka's default, 500 ms, was
                   // the whole of a small partition's restore time).
                   {"fetch.wait.max.ms", "10"},
               })));
  std::string err;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer(RdKafka::KafkaConsumer::create(conf.get(), err));
  if (!consumer) return absl::InvalidArgumentError("kafka: restore consumer: " + err);

  std::vector<RdKafka::TopicPartition*> assignment;
  std::map<uint32_t, int64_t> next;  // partition -> next offset to read (and its checkpoint)
  for (uint32_t p : partitions) {
    int64_t low = 0, high = 0;
    // A topic created a moment ago may have no leader yet: retry until the deadline.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    RdKafka::ErrorCode code;
    while (true) {
      code = consumer->query_watermark_offsets(topic, static_cast<int32_t>(p), &low, &high, 5000);
      const bool transient =
          code == RdKafka::ERR_NOT_LEADER_FOR_PARTITION ||
          code == RdKafka::ERR_LEADER_NOT_AVAILABLE || code == RdKafka::ERR_UNKNOWN_TOPIC_OR_PART ||
          // a topic another instance created a moment ago, not yet in
          // this client's metadata
          code == RdKafka::ERR__UNKNOWN_PARTITION || code == RdKafka::ERR__UNKNOWN_TOPIC ||
          code == RdKafka::ERR__TIMED_OUT || code == RdKafka::ERR__TRANSPORT;
      if (!transient || std::chrono::steady_clock::now() > deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (code != RdKafka::ERR_NO_ERROR) {
      RdKafka::TopicPartition::destroy(assignment);
      return absl::UnavailableError("kafka: " + topic + "[" + std::to_string(p) +
                                    "] end offsets: " + RdKafka::err2str(code));
    }
    ASSIGN_OR_RETURN(const ResumePoint resume, PrepareCopy(store, p, low, high));
    if (resume.unlogged) stats.unlogged.push_back(p);
    if (resume.wiped) stats.wiped.push_back(p);
    if (resume.from >= high) continue;  // up to date (or nothing logged)
    const int64_t from = resume.from;
    next[p] = from;
    assignment.push_back(RdKafka::TopicPartition::create(topic, static_cast<int>(p), from));
  }
  if (assignment.empty()) return stats;
  const auto assign_err = consumer->assign(assignment);
  RdKafka::TopicPartition::destroy(assignment);
  if (assign_err != RdKafka::ERR_NO_ERROR) {
    return absl::UnavailableError("kafka: restore assign: " + RdKafka::err2str(assign_err));
  }

  std::set<uint32_t> open;
  for (const auto& [p, from] : next) open.insert(p);
  std::set<uint32_t> touched;           // partitions with records since the last write
  std::map<uint32_t, int64_t> applied;  // records per partition
  WriteBatch batch = store.NewBatch();
  auto write = [&]() -> Status {
    for (uint32_t p : touched) PutCheckpoint(batch, p, next[p]);
    if (batch.Count() == 0) return absl::OkStatus();
    Status s = store.Write(batch);
    batch.Clear();
    if (s.ok() && progress) {
      for (uint32_t p : touched) progress(p, applied[p]);
    }
    touched.clear();
    return s;
  };
  auto last_progress = std::chrono::steady_clock::now();
  while (!open.empty()) {
    std::unique_ptr<RdKafka::Message> m(consumer->consume(100));
    const auto now = std::chrono::steady_clock::now();
    switch (m->err()) {
      case RdKafka::ERR_NO_ERROR: {
        last_progress = now;
        const auto p = static_cast<uint32_t>(m->partition());
        if (!next.contains(p)) break;
        if (!ApplyChangelogRecord(batch, m->key(), m->payload(), m->len())) {
          spdlog::error("kafka: {}[{}] offset {}: unreadable changelog key; skipped", topic, p,
                        m->offset());
        }
        stats.records++;
        applied[p]++;
        next[p] = m->offset() + 1;
        touched.insert(p);
        if (batch.Count() >= kBatchRecords || batch.ByteSize() >= kBatchBytes) {
          RETURN_IF_ERROR(write());
        }
        break;
      }
      case RdKafka::ERR__PARTITION_EOF: {
        last_progress = now;
        const auto p = static_cast<uint32_t>(m->partition());
        // The end (for a read-committed reader, the last stable offset): skip the markers.
        if (next.contains(p) && m->offset() > next[p]) {
          next[p] = m->offset();
          touched.insert(p);
        }
        if (open.erase(p) && next[p] > 0) stats.restored.push_back(p);
        break;
      }
      case RdKafka::ERR__TIMED_OUT:
        break;
      default:
        spdlog::warn("kafka: restore: {}", m->errstr());
    }
    if (now - last_progress > std::chrono::milliseconds(timeout_ms)) {
      (void)write();
      consumer->close();
      return absl::DeadlineExceededError("kafka: restore from " + topic + " made no progress for " +
                                         std::to_string(timeout_ms) + " ms");
    }
  }
  RETURN_IF_ERROR(write());
  consumer->close();
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return stats;
}

}  // namespace ecrm
