// KvStore: ecrm's RocksDB database, with one column family per kind of data (profiles, identities,
// dedup, meta). It knows bytes and keys, not profiles: the profiler owns the value formats.
//
// Ownership: created once by the app (or a test) and shared by reference; it must outlive every
// shard and reader. Threading: all methods are thread-safe (RocksDB's own synchronisation); ecrm
// adds no lock. Writes go through the WAL; `sync_writes` additionally fsyncs each group commit.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/status.h"

namespace rocksdb {
class DB;
class ColumnFamilyHandle;
class WriteBatch;
class Cache;
class Statistics;
class CompactionFilter;
}  // namespace rocksdb

namespace ecrm {

enum class Cf : int { kProfiles = 0, kIdentities = 1, kDedup = 2, kMeta = 3 };
inline constexpr int kNumCfs = 4;

// An in-memory file system for tests (RocksDB's MemEnv): a store opened on it writes no file, and
// a later Open with the same env and path sees what an earlier one wrote, as after a restart.
// Opaque; shared by the stores opened on it, which it must outlive.
class MemoryEnv;
std::shared_ptr<MemoryEnv> NewMemoryEnv();

struct StoreOptions {
  std::string path;                      // database directory; created if missing
  size_t block_cache_bytes = 256 << 20;  // shared LRU block cache
  bool sync_writes = false;              // fsync the WAL on every write (machine-crash durability)
  int64_t dedup_window_ms = 24LL * 3600 * 1000;  // dedup records older than this are compacted away
  const Clock* clock = nullptr;  // for the dedup expiry; must outlive the store (null = system)
  // Open with RocksDB's DB::OpenForReadOnly, for offline tools (`ecrm check`): takes no write
  // lock and never creates anything; Write and Put fail. Fails with NotFound when `path` holds no
  // database, and with FailedPrecondition while another process (a running ecrm) holds the
  // database's lock, because what it reads then could be missing writes still in flight.
  bool read_only = false;
  std::shared_ptr<MemoryEnv> memory_env;  // tests only: keep the database in memory (null: disk)
};

// A set of writes applied atomically by KvStore::Write. Not thread-safe; owned by one writer.
class WriteBatch {
 public:
  WriteBatch();
  ~WriteBatch();
  WriteBatch(WriteBatch&&) noexcept;
  WriteBatch& operator=(WriteBatch&&) noexcept;

  void Put(Cf cf, std::string_view key, std::string_view value);
  void Delete(Cf cf, std::string_view key);
  // Deletes every key in [begin, end). Not reported by ForEach.
  void DeleteRange(Cf cf, std::string_view begin, std::string_view end);
  size_t Count() const { return count_; }
  size_t ByteSize() const;
  void Clear();
  // Calls fn(cf, key, value) for every write in order; value is null for a delete.
  template <typename Fn>
  void ForEach(Fn&& fn) const;

 private:
  friend class KvStore;
  using WriteCallback = void (*)(void* ctx, Cf cf, std::string_view key,
                                 const std::string_view* value);
  void ForEachImpl(WriteCallback cb, void* ctx) const;
  std::unique_ptr<rocksdb::WriteBatch> batch_;
  size_t count_ = 0;
  rocksdb::ColumnFamilyHandle* const* handles_ = nullptr;
};

class KvStore {
 public:
  static StatusOr<std::unique_ptr<KvStore>> Open(const StoreOptions& options);
  // Turns off RocksDB's per-thread perf counters for the calling thread (they cost a
  // thread-local access on every Get and Write). Called once by each hot-path worker thread.
  static void DisablePerfCountersOnThisThread();
  ~KvStore();
  KvStore(const KvStore&) = delete;
  KvStore& operator=(const KvStore&) = delete;

  // A batch bound to this store's column families.
  WriteBatch NewBatch() const;
  Status Write(WriteBatch& batch);

  // nullopt when the key is absent.
  StatusOr<std::optional<std::string>> Get(Cf cf, std::string_view key) const;
  Status Put(Cf cf, std::string_view key, std::string_view value);

  // Calls fn(key, value) for every key that starts with `prefix`, in key order; stops when fn
  // returns false.
  template <typename Fn>
  Status Scan(Cf cf, std::string_view prefix, Fn&& fn) const;

  // Compacts every column family fully (tests and maintenance; runs the dedup expiry filter).
  Status CompactAll();

  // Numeric RocksDB property (e.g. "rocksdb.estimate-num-keys"), summed over column families.
  uint64_t IntProperty(std::string_view name) const;
  int64_t dedup_window_ms() const { return options_.dedup_window_ms; }
  // A ticker from RocksDB's statistics (a rocksdb::Tickers value, e.g. rocksdb::BYTES_WRITTEN).
  uint64_t Ticker(uint32_t ticker) const;

  // False from a failed write (a full disk, an I/O error: RocksDB then refuses every write) until
  // a write succeeds again. While false, Write, Put and TryResume ask RocksDB to Resume() — at
  // most once a second — so the store recovers on its own once the cause is gone
  // (docs/errors.md#a-full-disk).
  bool writable() const { return !write_failing_.load(std::memory_order_relaxed); }
  // Attempts a recovery now if the store is not writable and none was tried in the last second.
  // Returns writable(). Thread-safe; called by readiness checks.
  bool TryResume();
  // Recoveries that succeeded since the store opened.
  uint64_t resumes() const { return resumes_.load(std::memory_order_relaxed); }

 private:
  KvStore() = default;
  using ScanCallback = bool (*)(void* ctx, std::string_view key, std::string_view value);
  Status ScanImpl(Cf cf, std::string_view prefix, ScanCallback cb, void* ctx) const;

  // The status of a write, noting a failure (and a success after one) for writable().
  Status Note(Status status);
  static Status RefusingWrites();
  StoreOptions options_;
  std::atomic<bool> write_failing_{false};
  std::atomic<int64_t> last_resume_ms_{0};  // steady clock
  std::atomic<uint64_t> resumes_{0};
  std::shared_ptr<rocksdb::Cache> cache_;
  std::shared_ptr<rocksdb::Statistics> stats_;
  std::unique_ptr<rocksdb::CompactionFilter> dedup_filter_;  // outlives db_ (declared first)
  std::unique_ptr<rocksdb::DB> db_;
  rocksdb::ColumnFamilyHandle* handles_[kNumCfs] = {};
  rocksdb::ColumnFamilyHandle* default_handle_ =
      nullptr;  // RocksDB requires it; ecrm stores nothing there
};

template <typename Fn>
void WriteBatch::ForEach(Fn&& fn) const {
  ForEachImpl(
      [](void* ctx, Cf cf, std::string_view k, const std::string_view* v) {
        (*static_cast<std::remove_reference_t<Fn>*>(ctx))(cf, k, v);
      },
      const_cast<void*>(static_cast<const void*>(&fn)));
}

template <typename Fn>
Status KvStore::Scan(Cf cf, std::string_view prefix, Fn&& fn) const {
  return ScanImpl(
      cf, prefix,
      [](void* ctx, std::string_view k, std::string_view v) {
        return (*static_cast<std::remove_reference_t<Fn>*>(ctx))(k, v);
      },
      &fn);
}

}  // namespace ecrm
