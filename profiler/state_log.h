// StateLog: a second home for the shards' writes, so that a partition's state can follow it to
// another instance. In Kafka mode it is the changelog topic, written in Kafka transactions
// (ingest/kafka_changelog.h, docs/cluster.md#changelog); embedded mode has none.
//
// Writes are grouped in epochs, one per transaction. A shard appends each batch's writes to the
// current epoch and keeps the batch, unwritten, until the log reports the epoch committed
// (ProfileEngine::EpochCommitted); only then does the batch reach RocksDB and are its
// acknowledgements sent. So the local store never holds state the log does not, and a crash at
// any point leaves it at a committed epoch: what a restore from the log gives too.
//
// Ownership: created by the app before the engine, which it must outlive. Threading: Append is
// called by every shard thread at once.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>

#include "common/status.h"
#include "store/kv_store.h"

namespace ecrm {

// The log position each partition's state reached with a committed epoch: the next changelog
// offset to read it from (written as ChangelogCheckpointKey with the epoch's batches).
using Checkpoints = std::map<uint32_t, int64_t>;

// A shard message (EncodeShardMessage) for a partition that another instance owns. It goes to
// that partition of the internal topic in the same epoch as the batch that sent it, so it is
// delivered exactly when the batch's effects commit (docs/cluster.md#cross-instance-messages).
struct OutboundMessage {
  uint32_t partition;
  std::string data;
};

class StateLog {
 public:
  virtual ~StateLog() = default;
  // Appends the writes of `batch` that belong to a partition (PartitionOfKey), and `messages`,
  // and returns the epoch they joined. An error means the epoch can never commit; the batch must
  // be treated as failed.
  [[nodiscard]] virtual StatusOr<uint64_t> Append(const WriteBatch& batch,
                                                  std::span<const OutboundMessage> messages) = 0;
};

}  // namespace ecrm
