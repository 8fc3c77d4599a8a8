// RestoreFromChangelog: brings this instance's copy of some partitions up to what the changelog
// topic holds (docs/cluster.md#restore), before they are consumed. Each partition is read,
// read-committed, from its checkpoint (ChangelogCheckpointKey; the start when there is none) to
// its end, and applied to the store in batches, each with the checkpoint it reached, so a restore
// cut short resumes where it stopped. A copy whose checkpoint is below the log's start (what it
// missed may have been compacted away, deletions included) is dropped and restored whole.
//
// A partition whose changelog is empty while this store holds state for it (a data dir from
// before the changelog) is reported in `unlogged`; the caller seeds the changelog from it
// (SeedChangelog).
//
// Thread-compatible: call from one thread; the shards must hold nothing cached of the partitions.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "ingest/kafka_options.h"
#include "profiler/state_log.h"
#include "store/kv_store.h"

namespace ecrm {

struct RestoreStats {
  int64_t records = 0;             // changelog records applied
  std::vector<uint32_t> restored;  // partitions that read at least one record
  std::vector<uint32_t> wiped;     // partitions dropped first (checkpoint below the log start)
  std::vector<uint32_t> unlogged;  // empty changelog, local state present
  double seconds = 0;
};

// `progress(partition, records applied so far)` is called after each batch written.
StatusOr<RestoreStats> RestoreFromChangelog(
    const KafkaOptions& options, KvStore& store, const std::vector<uint32_t>& partitions,
    int timeout_ms, const std::function<void(uint32_t, int64_t)>& progress = nullptr);

// Appends everything this store holds of `partition` to `log` (not to the store), in batches: the
// changelog of a data dir from before the changelog. Commit the epoch afterwards, as one
// transaction, so that the partition's log is never half seeded. Returns the records appended.
StatusOr<int64_t> SeedChangelog(const KvStore& store, uint32_t partition, StateLog& log);

// The changelog offset this store's copy of `partition` has reached (its next record to read);
// nullopt when it has none.
StatusOr<std::optional<int64_t>> Checkpoint(const KvStore& store, uint32_t partition);
void PutCheckpoint(WriteBatch& batch, uint32_t partition, int64_t next);

// Where this store's copy of `partition` goes on reading a changelog partition whose offsets span
// [low, high): from its checkpoint; or from the log's start, after dropping a copy that cannot go
// on (its checkpoint is below the log's start, so what it missed may be compacted away, deletions
// included; or it holds state but no checkpoint). An empty log (high 0) leaves the copy alone;
// `unlogged` then says it holds state without a checkpoint (a data dir from before the changelog).
struct ResumePoint {
  int64_t from = 0;
  bool wiped = false;
  bool unlogged = false;
};
StatusOr<ResumePoint> PrepareCopy(KvStore& store, uint32_t partition, int64_t low, int64_t high);

// Adds one changelog record (its key and value; a null value is a tombstone) to `batch`. False,
// and nothing added, when the key is not a changelog key.
bool ApplyChangelogRecord(WriteBatch& batch, const std::string* key, const void* payload,
                          size_t len);

// Drops everything this store holds of `partition`, its checkpoint included.
void ErasePartition(WriteBatch& batch, uint32_t partition);

}  // namespace ecrm
