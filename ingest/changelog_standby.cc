#include "ingest/changelog_standby.h"

#include <librdkafka/rdkafkacpp.h>
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <optional>
#include <thread>

#include "common/logging.h"
#include "ingest/changelog_restore.h"
#include "ingest/internal/kafka_conf.h"
#include "ingest/kafka_changelog.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"

namespace ecrm {
namespace {

using Steady = std::chrono::steady_clock;
constexpr size_t kBatchRecords = 10000;
constexpr size_t kBatchBytes = 8 << 20;
// What was read is written at least this often, so a standby's checkpoint trails its reads by
// little, and a failover restores little.
constexpr auto kWriteEvery = std::chrono::milliseconds(200);

}  // namespace

struct ChangelogStandby::Impl {
  Impl(const KafkaOptions& o, uint32_t n, int64_t delay, KvStore& s, prometheus::Registry& registry)
      : options(o), partitions(n), drop_delay_ms(delay), store(s), batch(s.NewBatch()) {
    standby_gauge = &prometheus::BuildGauge()
                         .Name("ecrm_standby_partitions")
                         .Help("Partitions of which this instance keeps a warm standby copy")
                         .Register(registry)
                         .Add({});
    records = &prometheus::BuildCounter()
                   .Name("ecrm_standby_records_total")
                   .Help("Changelog records applied to standby copies")
                   .Register(registry)
                   .Add({});
    dropped = &prometheus::BuildCounter()
                   .Name("ecrm_standby_dropped_partitions_total")
                   .Help("Local copies dropped after the cleanup delay (neither owned nor standby)")
                   .Register(registry)
                   .Add({});
    lag_family = &prometheus::BuildGauge()
                      .Name("ecrm_standby_lag_records")
                      .Help("Changelog records a standby copy is behind, per partition")
                      .Register(registry);
  }

  // --- the standby thread ---

  void Run() {
    auto last_write = Steady::now();
    auto last_check = Steady::now() - std::chrono::seconds(10);
    while (!stop.load()) {
      const auto now = Steady::now();
      if (now - last_check >= std::chrono::seconds(1)) {
        last_check = now;
        Reconcile();
        UpdateLag();
        DropStale(now);
      }
      if (tailing_count.load() == 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        continue;
      }
      std::unique_ptr<RdKafka::Message> m(consumer->consume(50));
      std::lock_guard<std::mutex> lock(mu);
      const auto p = static_cast<uint32_t>(m->partition());
      switch (m->err()) {
        case RdKafka::ERR_NO_ERROR:
          if (!tailing.contains(p)) break;  // acquired or given up since it was fetched
          if (!ApplyChangelogRecord(batch, m->key(), m->payload(), m->len())) {
            spdlog::error("kafka: {}[{}] offset {}: unreadable changelog key; skipped", topic, p,
                          m->offset());
          }
          next[p] = m->offset() + 1;
          touched.insert(p);
          applied++;
          if (batch.Count() >= kBatchRecords || batch.ByteSize() >= kBatchBytes) WriteLocked();
          break;
        case RdKafka::ERR__PARTITION_EOF:
          // The last stable offset: skip the transaction markers below it.
          if (tailing.contains(p) && m->offset() > next[p]) {
            next[p] = m->offset();
            touched.insert(p);
          }
          break;
        case RdKafka::ERR__TIMED_OUT:
          break;
        default:
          spdlog::warn("kafka: standby: {}", m->errstr());
      }
      if (Steady::now() - last_write >= kWriteEvery) {
        last_write = Steady::now();
        WriteLocked();
      }
    }
    std::lock_guard<std::mutex> lock(mu);
    WriteLocked();
  }

  // Writes what was read, with the checkpoint each partition reached. A failed write leaves the
  // checkpoints where they were: the records are read again.
  void WriteLocked() {
    for (uint32_t p : touched) PutCheckpoint(batch, p, next[p]);
    touched.clear();
    if (batch.Count() == 0) return;
    const size_t count = batch.Count();
    if (Status s = store.Write(batch); !s.ok()) {
      spdlog::error("standby: writing {} changelog records: {}; they are read again", count,
                    s.ToString());
      batch.Clear();
      for (uint32_t p : tailing) pending_seek.insert(p);
      return;
    }
    batch.Clear();
    records->Increment(static_cast<double>(applied));
    applied = 0;
  }

  // Makes the standby consumer's assignment the wanted partitions less the acquired ones.
  void Reconcile() {
    std::set<uint32_t> add, remove;
    {
      std::lock_guard<std::mutex> lock(mu);
      std::set<uint32_t> desired;
      for (uint32_t p : wanted) {
        if (!active.contains(p)) desired.insert(p);
      }
      // Acquired partitions left `tailing` already (Acquire) but are still assigned here.
      for (uint32_t p : assigned) {
        if (!desired.contains(p) || pending_seek.contains(p)) remove.insert(p);
      }
      for (uint32_t p : desired) {
        if (!assigned.contains(p) || remove.contains(p)) add.insert(p);
      }
      if (!remove.empty()) WriteLocked();  // what was read of them is kept
      for (uint32_t p : remove) {
        tailing.erase(p);
        next.erase(p);
      }
      pending_seek.clear();
    }
    if (!remove.empty()) {
      std::vector<RdKafka::TopicPartition*> tps;
      for (uint32_t p : remove) {
        tps.push_back(RdKafka::TopicPartition::create(topic, static_cast<int>(p)));
      }
      std::unique_ptr<RdKafka::Error> error(consumer->incremental_unassign(tps));
      RdKafka::TopicPartition::destroy(tps);
      if (error) {
        spdlog::warn("kafka: standby: unassign: {}", error->str());
      } else {
        for (uint32_t p : remove) assigned.erase(p);
      }
    }
    std::vector<RdKafka::TopicPartition*> tps;
    std::vector<uint32_t> adding;
    for (uint32_t p : add) {
      if (assigned.contains(p)) continue;  // its unassign failed: tried again in a second
      int64_t low = 0, high = 0;
      const auto code =
          consumer->query_watermark_offsets(topic, static_cast<int32_t>(p), &low, &high, 2000);
      if (code != RdKafka::ERR_NO_ERROR) continue;  // tried again in a second
      std::lock_guard<std::mutex> lock(mu);
      if (active.contains(p) || !wanted.contains(p)) continue;  // acquired meanwhile
      auto resume = PrepareCopy(store, p, low, high);
      if (!resume.ok()) {
        spdlog::error("standby: partition {}: {}", p, resume.status().ToString());
        continue;
      }
      if (resume->unlogged) continue;  // local state from before the changelog: its owner seeds
      if (resume->wiped) spdlog::info("standby: partition {}: copy dropped, tailed whole", p);
      tailing.insert(p);
      local.insert(p);
      next[p] = resume->from;
      adding.push_back(p);
      tps.push_back(RdKafka::TopicPartition::create(topic, static_cast<int>(p), resume->from));
    }
    if (!tps.empty()) {
      std::unique_ptr<RdKafka::Error> error(consumer->incremental_assign(tps));
      RdKafka::TopicPartition::destroy(tps);
      std::lock_guard<std::mutex> lock(mu);
      if (error) {
        spdlog::warn("kafka: standby: assign: {}", error->str());
        for (uint32_t p : adding) tailing.erase(p);
      } else {
        assigned.insert(adding.begin(), adding.end());
      }
    }
    std::lock_guard<std::mutex> lock(mu);
    tailing_count = static_cast<int>(tailing.size());
    standby_gauge->Set(static_cast<double>(tailing.size()));
  }

  void UpdateLag() {
    std::lock_guard<std::mutex> lock(mu);
    for (auto it = lag_gauges.begin(); it != lag_gauges.end();) {
      if (tailing.contains(it->first)) {
        ++it;
        continue;
      }
      lag_family->Remove(it->second);
      lags.erase(it->first);
      it = lag_gauges.erase(it);
    }
    for (uint32_t p : tailing) {
      int64_t low = 0, high = 0;
      if (consumer->get_watermark_offsets(topic, static_cast<int32_t>(p), &low, &high) !=
              RdKafka::ERR_NO_ERROR ||
          high < 0) {
        continue;
      }
      auto& gauge = lag_gauges[p];
      if (!gauge) gauge = &lag_family->Add({{"partition", std::to_string(p)}});
      const int64_t lag = std::max<int64_t>(0, high - next[p]);
      gauge->Set(static_cast<double>(lag));
      lags[p] = lag;
    }
  }

  // Copies neither acquired nor tailed for longer than the delay are dropped.
  void DropStale(Steady::time_point now) {
    if (drop_delay_ms < 0) return;
    std::lock_guard<std::mutex> lock(mu);
    // Only while the group is known (SetStandby came recently): during a broker outage, or before
    // the first assignment, a copy is idle because nothing is assigned, not because it moved.
    if (!group_seen || now - *group_seen > std::chrono::seconds(10)) {
      idle_since.clear();
      return;
    }
    for (auto it = local.begin(); it != local.end();) {
      const uint32_t p = *it;
      if (active.contains(p) || tailing.contains(p)) {
        idle_since.erase(p);
        ++it;
        continue;
      }
      auto [since, fresh] = idle_since.try_emplace(p, now);
      if (fresh || now - since->second < std::chrono::milliseconds(drop_delay_ms)) {
        ++it;
        continue;
      }
      WriteBatch wipe = store.NewBatch();
      ErasePartition(wipe, p);
      if (Status s = store.Write(wipe); !s.ok()) {
        spdlog::error("standby: dropping the copy of partition {}: {}", p, s.ToString());
        ++it;
        continue;
      }
      spdlog::info("standby: dropped the copy of partition {} (neither owned nor standby here)", p);
      dropped->Increment();
      idle_since.erase(p);
      it = local.erase(it);
    }
  }

  const KafkaOptions options;
  const uint32_t partitions;
  const int64_t drop_delay_ms;
  KvStore& store;
  std::string topic;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer;
  std::set<uint32_t> assigned;  // standby thread: the partitions `consumer` is assigned
  std::thread thread;
  std::atomic<bool> stop{false};
  std::atomic<int> tailing_count{0};

  mutable std::mutex mu;
  std::set<uint32_t> wanted;         // guarded by mu: SetStandby's partitions
  std::set<uint32_t> active;         // guarded by mu: acquired by the consumer
  std::set<uint32_t> tailing;        // guarded by mu: assigned to `consumer` and applied
  std::set<uint32_t> local;          // guarded by mu: copies with a checkpoint in the store
  std::set<uint32_t> pending_seek;   // guarded by mu: to assign again (a failed write or assign)
  std::map<uint32_t, int64_t> next;  // guarded by mu: the next offset to apply
  std::map<uint32_t, int64_t> lags;  // guarded by mu
  std::set<uint32_t> touched;        // guarded by mu: partitions read since the last write
  std::map<uint32_t, Steady::time_point> idle_since;  // guarded by mu
  std::optional<Steady::time_point> group_seen;       // guarded by mu: the last SetStandby
  WriteBatch batch;                                   // guarded by mu
  int64_t applied = 0;                                // guarded by mu: records in `batch`

  prometheus::Gauge* standby_gauge;
  prometheus::Counter* records;
  prometheus::Counter* dropped;
  prometheus::Family<prometheus::Gauge>* lag_family;
  std::map<uint32_t, prometheus::Gauge*> lag_gauges;  // guarded by mu
};

StatusOr<std::unique_ptr<ChangelogStandby>> ChangelogStandby::Create(
    const KafkaOptions& options, uint32_t partitions, int64_t drop_delay_ms, KvStore& store,
    prometheus::Registry& registry) {
  auto impl = std::make_unique<Impl>(options, partitions, drop_delay_ms, store, registry);
  impl->topic = ChangelogTopic(options);
  ASSIGN_OR_RETURN(
      auto conf,
      MakeKafkaConf(
          Plus(ManualReaderSettings(options.brokers, options.group + "-standby", "ecrm-standby"),
               {{"isolation.level", "read_committed"},
                {"enable.partition.eof", "true"},
                {"fetch.wait.max.ms", "100"}})));
  std::string err;
  impl->consumer.reset(RdKafka::KafkaConsumer::create(conf.get(), err));
  if (!impl->consumer) return absl::InvalidArgumentError("kafka: standby consumer: " + err);
  // The copies already here (their checkpoints say so): dropped after the delay unless used.
  for (uint32_t p = 0; p < partitions; p++) {
    ASSIGN_OR_RETURN(const auto checkpoint, Checkpoint(store, p));
    if (checkpoint) impl->local.insert(p);
  }
  return std::unique_ptr<ChangelogStandby>(new ChangelogStandby(std::move(impl)));
}

ChangelogStandby::ChangelogStandby(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

ChangelogStandby::~ChangelogStandby() { Stop(); }

void ChangelogStandby::Start() {
  impl_->thread = std::thread([this] {
    pthread_setname_np(pthread_self(), "ecrm-standby");
    impl_->Run();
  });
}

void ChangelogStandby::Stop() {
  if (!impl_->thread.joinable()) return;
  impl_->stop = true;
  impl_->thread.join();
  impl_->consumer->close();
}

void ChangelogStandby::SetStandby(const std::set<uint32_t>& standby,
                                  const std::set<uint32_t>& unknown) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  std::set<uint32_t> wanted;
  for (uint32_t p : standby) {
    if (p < impl_->partitions) wanted.insert(p);
  }
  for (uint32_t p : unknown) {
    if (impl_->wanted.contains(p)) wanted.insert(p);
  }
  impl_->wanted = std::move(wanted);
  impl_->group_seen = Steady::now();
}

void ChangelogStandby::Acquire(const std::vector<uint32_t>& partitions) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->WriteLocked();  // a standby's progress is the restore's head start
  for (uint32_t p : partitions) {
    impl_->active.insert(p);
    impl_->local.insert(p);
    impl_->tailing.erase(p);  // its records still fetched are ignored
    impl_->next.erase(p);
  }
  impl_->tailing_count = static_cast<int>(impl_->tailing.size());
}

void ChangelogStandby::Release(const std::vector<uint32_t>& partitions) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  for (uint32_t p : partitions) impl_->active.erase(p);
}

std::map<uint32_t, int64_t> ChangelogStandby::Standbys() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  std::map<uint32_t, int64_t> out;
  for (uint32_t p : impl_->tailing) {
    const auto lag = impl_->lags.find(p);
    out[p] = lag == impl_->lags.end() ? -1 : lag->second;
  }
  return out;
}

std::map<uint32_t, std::vector<std::string>> StandbyPlacement(const GroupDescription& group,
                                                              int replicas) {
  std::map<uint32_t, std::vector<std::string>> placement;
  std::vector<std::string> ids;
  std::map<std::string, std::vector<int>> owned;
  for (const auto& m : group.members) {
    const std::string id = m.instance_id.empty() ? m.client_id : m.instance_id;
    ids.push_back(id);
    owned[id] = m.partitions;
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  const int n = static_cast<int>(ids.size());
  for (int i = 0; i < n; i++) {
    for (int p : owned[ids[i]]) {
      if (p < 0) continue;
      auto& standbys = placement[static_cast<uint32_t>(p)];
      for (int k = 1; k <= std::min(replicas, n - 1); k++) standbys.push_back(ids[(i + k) % n]);
    }
  }
  return placement;
}

}  // namespace ecrm
