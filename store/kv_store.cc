#include "store/kv_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <filesystem>

#include "rocksdb/cache.h"
#include "rocksdb/compaction_filter.h"
#include "rocksdb/db.h"
#include "rocksdb/env.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/options.h"
#include "rocksdb/perf_level.h"
#include "rocksdb/statistics.h"
#include "rocksdb/table.h"
#include "rocksdb/write_batch.h"
#include "spdlog/spdlog.h"
#include "store/keys.h"
#include "store/rocksdb_status.h"

namespace ecrm {

namespace {

int64_t SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

constexpr const char* kCfNames[kNumCfs] = {"profiles", "identities", "dedup", "meta"};

// Drops dedup records (value = fixed64 received-at millis) older than the dedup window.
// Called by RocksDB's compaction threads; stateless apart from const members.
class DedupExpiryFilter final : public rocksdb::CompactionFilter {
 public:
  DedupExpiryFilter(const Clock* clock, int64_t window_ms) : clock_(clock), window_ms_(window_ms) {}
  bool Filter(int /*level*/, const rocksdb::Slice& /*key*/, const rocksdb::Slice& value,
              std::string* /*new_value*/, bool* /*value_changed*/) const override {
    if (value.size() != 8) return false;
    const auto received = static_cast<int64_t>(DecodeFixed64(value.data()));
    return clock_->NowMs() - received > window_ms_;
  }
  const char* Name() const override { return "ecrm.DedupExpiryFilter"; }

 private:
  const Clock* clock_;
  int64_t window_ms_;
};

const SystemClock kSystemClock;

// Drops RocksDB's info log. A read-only open would otherwise rotate the running database's LOG
// file (LOG -> LOG.old.<time>): an offline check should leave the data dir as it found it.
class DiscardLogger final : public rocksdb::Logger {
 public:
  void Logv(const char* /*format*/, va_list /*ap*/) override {}
  void Logv(const rocksdb::InfoLogLevel /*level*/, const char* /*format*/,
            va_list /*ap*/) override {}
};

// RocksDB's warnings and errors, in ecrm's own log (its info messages are not formatted at all).
// Instead of RocksDB's LOG file in the data dir: on a full disk, RocksDB writing about the write
// error to a LOG file that had already failed a write trips an assertion in Debian's build
// (WritableFileWriter::AssertFalseAndGetStatusForPrevError) and aborts the process.
class SpdlogLogger final : public rocksdb::Logger {
 public:
  SpdlogLogger() : rocksdb::Logger(rocksdb::InfoLogLevel::WARN_LEVEL) {}
  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override {
    Logv(rocksdb::InfoLogLevel::INFO_LEVEL, format, ap);
  }
  void Logv(const rocksdb::InfoLogLevel level, const char* format, va_list ap) override {
    if (level < GetInfoLogLevel()) return;
    char buf[1024];
    const int n = std::vsnprintf(buf, sizeof buf, format, ap);
    if (n < 0) return;
    const std::string_view message(buf, std::min<size_t>(static_cast<size_t>(n), sizeof buf - 1));
    if (level >= rocksdb::InfoLogLevel::ERROR_LEVEL) {
      spdlog::error("rocksdb: {}", message);
    } else {
      spdlog::warn("rocksdb: {}", message);
    }
  }
};

// Whether another process holds RocksDB's lock on the database at `path`. RocksDB takes it with
// fcntl(F_SETLK, F_WRLCK) on <path>/LOCK; F_GETLK reports such a lock without taking one.
bool LockedByAnotherProcess(const std::string& path) {
  const std::string lock_file = (std::filesystem::path(path) / "LOCK").string();
  const int fd = ::open(lock_file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  struct flock f = {};
  f.l_type = F_WRLCK;
  f.l_whence = SEEK_SET;
  const bool locked = ::fcntl(fd, F_GETLK, &f) == 0 && f.l_type != F_UNLCK;
  ::close(fd);
  return locked;
}

}  // namespace

class MemoryEnv {
 public:
  MemoryEnv() : env(rocksdb::NewMemEnv(rocksdb::Env::Default())) {}
  std::unique_ptr<rocksdb::Env> env;
};

std::shared_ptr<MemoryEnv> NewMemoryEnv() { return std::make_shared<MemoryEnv>(); }

WriteBatch::WriteBatch() : batch_(std::make_unique<rocksdb::WriteBatch>()) {}
WriteBatch::~WriteBatch() = default;
WriteBatch::WriteBatch(WriteBatch&&) noexcept = default;
WriteBatch& WriteBatch::operator=(WriteBatch&&) noexcept = default;

void WriteBatch::Put(Cf cf, std::string_view key, std::string_view value) {
  ECRM_CHECK(handles_ != nullptr);
  const auto s = batch_->Put(handles_[static_cast<int>(cf)], rocksdb::Slice(key.data(), key.size()),
                             rocksdb::Slice(value.data(), value.size()));
  ECRM_CHECK(s.ok());
  count_++;
}

void WriteBatch::Delete(Cf cf, std::string_view key) {
  ECRM_CHECK(handles_ != nullptr);
  const auto s =
      batch_->Delete(handles_[static_cast<int>(cf)], rocksdb::Slice(key.data(), key.size()));
  ECRM_CHECK(s.ok());
  count_++;
}

void WriteBatch::DeleteRange(Cf cf, std::string_view begin, std::string_view end) {
  ECRM_CHECK(handles_ != nullptr);
  const auto s = batch_->DeleteRange(handles_[static_cast<int>(cf)],
                                     rocksdb::Slice(begin.data(), begin.size()),
                                     rocksdb::Slice(end.data(), end.size()));
  ECRM_CHECK(s.ok());
  count_++;
}

size_t WriteBatch::ByteSize() const { return batch_->GetDataSize(); }

void WriteBatch::Clear() {
  batch_->Clear();
  count_ = 0;
}

void WriteBatch::ForEachImpl(WriteCallback cb, void* ctx) const {
  struct Handler : rocksdb::WriteBatch::Handler {
    WriteCallback cb;
    void* ctx;
    rocksdb::ColumnFamilyHandle* const* handles;
    Cf CfOf(uint32_t id) const {
      for (int i = 0; i < kNumCfs; i++) {
        if (handles[i]->GetID() == id) return static_cast<Cf>(i);
      }
      ECRM_CHECK(false);  // ecrm's batches only write its own column families
      return Cf::kMeta;
    }
    rocksdb::Status PutCF(uint32_t id, const rocksdb::Slice& k, const rocksdb::Slice& v) override {
      const std::string_view value(v.data(), v.size());
      cb(ctx, CfOf(id), std::string_view(k.data(), k.size()), &value);
      return rocksdb::Status::OK();
    }
    rocksdb::Status DeleteCF(uint32_t id, const rocksdb::Slice& k) override {
      cb(ctx, CfOf(id), std::string_view(k.data(), k.size()), nullptr);
      return rocksdb::Status::OK();
    }
  };
  if (count_ == 0) return;
  ECRM_CHECK(handles_ != nullptr);
  Handler h;
  h.cb = cb;
  h.ctx = ctx;
  h.handles = handles_;
  ECRM_CHECK(batch_->Iterate(&h).ok());
}

StatusOr<std::unique_ptr<KvStore>> KvStore::Open(const StoreOptions& options) {
  std::unique_ptr<KvStore> store(new KvStore());
  store->options_ = options;
  const Clock* clock = options.clock ? options.clock : &kSystemClock;

  rocksdb::DBOptions db_options;
  db_options.create_if_missing = true;
  db_options.create_missing_column_families = true;
  db_options.max_background_jobs = 2;
  db_options.bytes_per_sync = 1 << 20;
  db_options.max_total_wal_size = 256 << 20;
  store->stats_ = rocksdb::CreateDBStatistics();
  // Only tickers are exported (app/store_metrics.cc); histograms would cost every Get and Write.
  store->stats_->set_stats_level(rocksdb::StatsLevel::kExceptHistogramOrTimers);
  db_options.statistics = store->stats_;
  db_options.info_log = std::make_shared<SpdlogLogger>();
  if (options.memory_env) db_options.env = options.memory_env->env.get();

  // Index and filter blocks live in the block cache (bounded memory) with high priority, in a
  // pool that data blocks cannot evict them from.
  rocksdb::LRUCacheOptions cache_options;
  cache_options.capacity = options.block_cache_bytes;
  cache_options.num_shard_bits = 4;
  cache_options.high_pri_pool_ratio = 0.5;
  store->cache_ = rocksdb::NewLRUCache(cache_options);
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = store->cache_;
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  // Partitioned filters and indexes: a file's filter is cut into 4 KB blocks that are cached one
  // by one. A whole-file filter of a large dedup file (MBs) did not fit a cache shard, so every
  // look-up read it from disk and checksummed it again (45 us per event in a 5M-event drain).
  table.index_type = rocksdb::BlockBasedTableOptions::IndexType::kTwoLevelIndexSearch;
  table.partition_filters = true;
  table.metadata_block_size = 4096;
  table.cache_index_and_filter_blocks = true;
  table.cache_index_and_filter_blocks_with_high_priority = true;
  table.pin_top_level_index_and_filter = true;
  table.pin_l0_filter_and_index_blocks_in_cache = true;

  std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
  cfs.emplace_back(rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions());  // unused
  for (int i = 0; i < kNumCfs; i++) {
    rocksdb::ColumnFamilyOptions cf_options;
    cf_options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
    cf_options.compression = rocksdb::kLZ4Compression;
    cf_options.bottommost_compression = rocksdb::kLZ4Compression;
    cf_options.write_buffer_size = 64 << 20;
    if (static_cast<Cf>(i) == Cf::kDedup) {
      // Hashes do not compress: compressing them only cost flush and compaction CPU.
      cf_options.compression = rocksdb::kNoCompression;
      cf_options.bottommost_compression = rocksdb::kNoCompression;
      store->dedup_filter_ = std::make_unique<DedupExpiryFilter>(clock, options.dedup_window_ms);
      cf_options.compaction_filter = store->dedup_filter_.get();
      cf_options.periodic_compaction_seconds = 24 * 3600;
      // Nearly every dedup look-up misses (a new messageId): a whole-key bloom filter on the
      // memtable answers those without walking the skip list.
      cf_options.memtable_prefix_bloom_size_ratio = 0.05;
      cf_options.memtable_whole_key_filtering = true;
    }
    cfs.emplace_back(kCfNames[i], cf_options);
  }
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* db = nullptr;
  if (options.read_only) {
    db_options.info_log = std::make_shared<DiscardLogger>();
    std::error_code ec;
    if (!std::filesystem::exists(std::filesystem::path(options.path) / "CURRENT", ec)) {
      return absl::NotFoundError("no database at " + options.path);
    }
    if (LockedByAnotherProcess(options.path)) {
      return absl::FailedPreconditionError("the database at " + options.path +
                                           " is in use by another process (a running ecrm?)");
    }
    RETURN_IF_ERROR(
        FromRocks(rocksdb::DB::OpenForReadOnly(db_options, options.path, cfs, &handles, &db,
                                               /*error_if_wal_file_exists=*/false)));
  } else {
    // Made here, so that RocksDB does not log a missing directory as an error.
    if (options.memory_env) {
      (void)db_options.env->CreateDirIfMissing(options.path);
    } else {
      std::error_code ec;
      std::filesystem::create_directories(options.path, ec);
    }
    RETURN_IF_ERROR(FromRocks(rocksdb::DB::Open(db_options, options.path, cfs, &handles, &db)));
  }
  store->db_.reset(db);
  store->default_handle_ = handles[0];
  for (int i = 0; i < kNumCfs; i++) store->handles_[i] = handles[static_cast<size_t>(i) + 1];
  return store;
}

void KvStore::DisablePerfCountersOnThisThread() { rocksdb::SetPerfLevel(rocksdb::kDisable); }

KvStore::~KvStore() {
  if (!db_) return;
  for (auto* h : handles_) {
    if (h) db_->DestroyColumnFamilyHandle(h);
  }
  if (default_handle_) db_->DestroyColumnFamilyHandle(default_handle_);
  db_->Close().PermitUncheckedError();
  db_.reset();
}

WriteBatch KvStore::NewBatch() const {
  WriteBatch batch;
  batch.handles_ = handles_;
  return batch;
}

Status KvStore::Write(WriteBatch& batch) {
  rocksdb::WriteOptions wo;
  wo.sync = options_.sync_writes;
  // Writers put a batch's keys in key order; with this hint each memtable insert starts where the
  // previous one ended (also when two shards' batches are inserted concurrently).
  wo.memtable_insert_hint_per_batch = true;
  if (!writable() && !TryResume()) return RefusingWrites();
  return Note(FromRocks(db_->Write(wo, batch.batch_.get())));
}

// Not sent to RocksDB: after a failed write it holds a background error until Resume().
Status KvStore::RefusingWrites() {
  return absl::UnavailableError(
      "rocksdb: the store refuses writes since a write failed (a full disk?); recovery is "
      "retried every second");
}

Status KvStore::Note(Status status) {
  if (!status.ok()) {
    if (!write_failing_.exchange(true, std::memory_order_relaxed)) {
      last_resume_ms_.store(SteadyMs(), std::memory_order_relaxed);  // first retry in a second
    }
  } else if (!writable()) {
    write_failing_.store(false, std::memory_order_relaxed);
  }
  return status;
}

bool KvStore::TryResume() {
  if (writable()) return true;
  const int64_t now = SteadyMs();
  int64_t last = last_resume_ms_.load(std::memory_order_relaxed);
  if (now - last < 1000 || !last_resume_ms_.compare_exchange_strong(last, now)) return false;
  // Resume() clears RocksDB's background error after flushing the memtables, which fails (and
  // changes nothing) while the disk is still full.
  if (!db_->Resume().ok()) return false;
  resumes_.fetch_add(1, std::memory_order_relaxed);
  write_failing_.store(false, std::memory_order_relaxed);
  return true;
}

StatusOr<std::optional<std::string>> KvStore::Get(Cf cf, std::string_view key) const {
  std::string value;
  const auto s = db_->Get(rocksdb::ReadOptions(), handles_[static_cast<int>(cf)],
                          rocksdb::Slice(key.data(), key.size()), &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  RETURN_IF_ERROR(FromRocks(s));
  return std::optional<std::string>(std::move(value));
}

Status KvStore::Put(Cf cf, std::string_view key, std::string_view value) {
  rocksdb::WriteOptions wo;
  wo.sync = options_.sync_writes;
  if (!writable() && !TryResume()) return RefusingWrites();
  return Note(
      FromRocks(db_->Put(wo, handles_[static_cast<int>(cf)], rocksdb::Slice(key.data(), key.size()),
                         rocksdb::Slice(value.data(), value.size()))));
}

Status KvStore::ScanImpl(Cf cf, std::string_view prefix, ScanCallback cb, void* ctx) const {
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(rocksdb::ReadOptions(), handles_[static_cast<int>(cf)]));
  const rocksdb::Slice p(prefix.data(), prefix.size());
  for (it->Seek(p); it->Valid() && it->key().starts_with(p); it->Next()) {
    if (!cb(ctx, std::string_view(it->key().data(), it->key().size()),
            std::string_view(it->value().data(), it->value().size()))) {
      break;
    }
  }
  return FromRocks(it->status());
}

Status KvStore::CompactAll() {
  for (auto* h : handles_) {
    RETURN_IF_ERROR(
        FromRocks(db_->CompactRange(rocksdb::CompactRangeOptions(), h, nullptr, nullptr)));
  }
  return absl::OkStatus();
}

uint64_t KvStore::IntProperty(std::string_view name) const {
  uint64_t total = 0;
  for (auto* h : handles_) {
    uint64_t v = 0;
    if (db_->GetIntProperty(h, rocksdb::Slice(name.data(), name.size()), &v)) total += v;
  }
  return total;
}

uint64_t KvStore::Ticker(uint32_t ticker) const { return stats_->getTickerCount(ticker); }

}  // namespace ecrm
