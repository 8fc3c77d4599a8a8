#include "ingest/kafka_changelog.h"

#include <librdkafka/rdkafkacpp.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "common/logging.h"
#include "ingest/internal/kafka_conf.h"
#include "prometheus/counter.h"
#include "prometheus/histogram.h"
#include "store/keys.h"

namespace ecrm {

std::string ChangelogTopic(const KafkaOptions& options) { return options.group + "-changelog"; }
std::string InternalTopic(const KafkaOptions& options) { return options.group + "-internal"; }

namespace {

Status FromKafkaError(const std::string& what, const RdKafka::Error& error) {
  std::string message = "kafka: " + what + ": " + error.str();
  if (error.is_fatal()) message += " (fatal)";
  if (error.txn_requires_abort()) message += " (the transaction must be aborted)";
  return absl::UnavailableError(message);
}

// Calls `call` (one transactional step) until it succeeds or fails with an error that is not
// retriable (a broker away, a timeout: the epoch waits, as it would for any commit), which it
// returns.
template <typename Call>
std::unique_ptr<RdKafka::Error> UntilNotRetriable(const char* what, Call&& call) {
  for (int attempt = 0;; attempt++) {
    std::unique_ptr<RdKafka::Error> e(call());
    if (!e || !e->is_retriable()) return e;
    if (attempt == 0) spdlog::warn("kafka: changelog: {}: {}; retrying", what, e->str());
  }
}

}  // namespace

struct KafkaChangelog::Impl : public RdKafka::DeliveryReportCb, public RdKafka::EventCb {
  Impl(const KafkaOptions& o, uint32_t partitions, prometheus::Registry& registry)
      : options(o),
        topic(ChangelogTopic(o)),
        internal_topic(InternalTopic(o)),
        delivered(partitions) {
    for (auto& d : delivered) d.store(-1);
    records = &prometheus::BuildCounter()
                   .Name("ecrm_changelog_records_total")
                   .Help("Writes sent to the changelog topic")
                   .Register(registry)
                   .Add({});
    messages = &prometheus::BuildCounter()
                    .Name("ecrm_internal_messages_produced_total")
                    .Help("Shard messages produced to the internal topic, for other instances")
                    .Register(registry)
                    .Add({});
    commits = &prometheus::BuildCounter()
                   .Name("ecrm_changelog_commits_total")
                   .Help("Changelog transactions committed")
                   .Register(registry)
                   .Add({});
    commit_seconds = &prometheus::BuildHistogram()
                          .Name("ecrm_changelog_commit_seconds")
                          .Help("Time to commit one changelog transaction, shards waiting")
                          .Register(registry)
                          .Add({}, prometheus::Histogram::BucketBoundaries{
                                       0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1});
  }

  // Delivery reports, served by Poll and by the flush inside commit_transaction, on the
  // committing thread.
  void dr_cb(RdKafka::Message& m) override {
    if (m.err() != RdKafka::ERR_NO_ERROR) {
      // The transaction cannot commit now; commit_transaction reports it.
      if (!delivery_failed.exchange(true)) {
        spdlog::error("kafka: changelog record not delivered: {}", m.errstr());
      }
      return;
    }
    if (m.msg_opaque() != nullptr) return;  // an internal-topic message: no checkpoint
    const auto p = static_cast<size_t>(m.partition());
    if (p < delivered.size() && m.offset() > delivered[p].load(std::memory_order_relaxed)) {
      delivered[p].store(m.offset(), std::memory_order_relaxed);
    }
  }

  void event_cb(RdKafka::Event& event) override {
    if (event.type() == RdKafka::Event::EVENT_ERROR) {
      const char* kind = CountKafkaError(event.err());
      spdlog::warn("kafka: changelog producer: {} ({}, {})", event.str(),
                   RdKafka::err2str(event.err()), kind);
    } else if (event.type() == RdKafka::Event::EVENT_LOG &&
               event.severity() <= RdKafka::Event::EVENT_SEVERITY_WARNING) {
      spdlog::warn("kafka: changelog producer: {} {}", event.fac(), event.str());
    }
  }

  // One record, held while a commit runs (see Append).
  struct Held {
    bool internal;  // for the internal topic, else the changelog
    int32_t partition;
    std::string key;
    std::optional<std::string> value;  // nullopt: a tombstone
  };

  // Produces one record into the open transaction, waiting for queue space (which delivery
  // reports, served on the committing thread, free). False on a hard error. Records of the
  // internal topic carry a non-null opaque, so that their delivery moves no checkpoint.
  bool Produce(bool internal, int32_t partition, std::string_view key,
               const std::string_view* value, std::string* error) {
    while (true) {
      const auto err = producer->produce(
          internal ? internal_topic : topic, partition, RdKafka::Producer::RK_MSG_COPY,
          value ? const_cast<char*>(value->data()) : nullptr, value ? value->size() : 0,
          key.empty() ? nullptr : key.data(), key.size(), 0,
          internal ? const_cast<std::string*>(&internal_topic) : nullptr);
      if (err == RdKafka::ERR_NO_ERROR) return true;
      if (err != RdKafka::ERR__QUEUE_FULL) {
        *error = RdKafka::err2str(err);
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }

  // Starts a cut: from now on appends are held in memory for the next epoch; waits until appends
  // still producing into this epoch are done. Returns this epoch's number and counts.
  struct Cut {
    uint64_t epoch;
    uint64_t records;
    uint64_t batches;
  };
  Cut BeginCut() {
    std::unique_lock<std::mutex> lock(mu);
    committing = true;
    while (active > 0) {  // appenders may wait for queue space: keep serving delivery reports
      cv.wait_for(lock, std::chrono::milliseconds(1));
      lock.unlock();
      producer->poll(0);
      lock.lock();
    }
    Cut cut{epoch, open_records, open_batches};
    epoch++;
    open_records = 0;
    open_batches = 0;
    return cut;
  }
  // A transactional step failed for good: no epoch can commit any more (appends fail from now on,
  // and the instance must restart). Ends the cut, dropping what it held.
  Status Fail(const std::string& what, const RdKafka::Error& e) {
    broken = true;
    const Status s = FromKafkaError("changelog: " + what, e);
    EndCut(/*drop=*/true);
    return s;
  }

  // A step failed with an error after which the transaction can only be aborted, not the
  // producer (for example ILLEGAL_GENERATION: the group moved to a new generation while this
  // epoch was open, as a member joined): Aborted, and the cut stays open (appends are held) until
  // Abort drops the epoch and what was held. Any other error is Fail's.
  Status FailOrAbort(const std::string& what, const RdKafka::Error& e) {
    if (!e.txn_requires_abort() || e.is_fatal()) return Fail(what, e);
    must_abort = true;
    return absl::AbortedError(FromKafkaError("changelog: " + what, e).message());
  }

  // Ends a cut: the records held meanwhile go into the transaction now open (or are dropped when
  // `drop`), and appends produce directly again.
  void EndCut(bool drop) {
    std::lock_guard<std::mutex> lock(mu);
    if (!drop && !broken.load()) {
      for (const auto& h : held) {
        std::string error;
        std::string_view value;
        if (h.value) value = *h.value;
        if (!Produce(h.internal, h.partition, h.key, h.value ? &value : nullptr, &error)) {
          spdlog::error("kafka: changelog: {}", error);
          broken = true;
          break;
        }
      }
    }
    held.clear();
    committing = false;
  }

  const KafkaOptions options;
  const std::string topic;
  const std::string internal_topic;
  std::unique_ptr<RdKafka::Producer> producer;
  std::vector<std::atomic<int64_t>> delivered;  // per partition: last delivered offset, this epoch
  std::atomic<bool> delivery_failed{false};
  std::atomic<bool> broken{false};      // an error left the open epoch uncommittable
  std::atomic<bool> must_abort{false};  // the open epoch can only be aborted (FailOrAbort)

  // Appends produce straight into the open transaction, except while a commit runs (librdkafka
  // takes no records then): then they are held here, for the next epoch, so that the shards do not
  // wait for the commit's round trips.
  std::mutex mu;
  std::condition_variable cv;
  int active = 0;             // guarded by mu: appends producing into the open epoch
  bool committing = false;    // guarded by mu
  uint64_t epoch = 1;         // guarded by mu
  uint64_t open_records = 0;  // guarded by mu: this epoch's records
  uint64_t open_batches = 0;  // guarded by mu: batches waiting for this epoch, records or not
  std::vector<Held> held;     // guarded by mu

  prometheus::Counter* records;
  prometheus::Counter* messages;
  prometheus::Counter* commits;
  prometheus::Histogram* commit_seconds;
};

StatusOr<std::unique_ptr<KafkaChangelog>> KafkaChangelog::Create(const KafkaOptions& options,
                                                                 uint32_t partitions,
                                                                 prometheus::Registry& registry) {
  if (options.instance_id.empty()) {
    return absl::InvalidArgumentError(
        "instance_id: the changelog's transactional id needs one (--instance-id)");
  }
  auto impl = std::make_unique<Impl>(options, partitions, registry);
  ASSIGN_OR_RETURN(
      auto conf,
      MakeKafkaConf(
          {
              {"bootstrap.servers", options.brokers},
              {"client.id", "ecrm-changelog"},
              // Stable per instance: a restarted process fences what its predecessor left open.
              {"transactional.id", options.group + "-" + options.instance_id},
              // An epoch left open by a frozen or dead instance blocks read-committed readers
              // of its partitions (a restoring successor) until the coordinator aborts it, and
              // an epoch that cannot commit for longer (the brokers are away) is aborted and
              // this producer fenced: a restart follows. 60 s rides out a broker restart.
              {"transaction.timeout.ms", "60000"},
              {"linger.ms", "5"},
              // One commit interval of writes, with room to spare: appenders wait beyond it.
              {"queue.buffering.max.messages", "1000000"},
              {"queue.buffering.max.kbytes", "524288"},
          },
          {.events = impl.get(), .delivery = impl.get()}));
  std::string err;
  impl->producer.reset(RdKafka::Producer::create(conf.get(), err));
  if (!impl->producer) return absl::InvalidArgumentError("kafka: changelog producer: " + err);
  return std::unique_ptr<KafkaChangelog>(new KafkaChangelog(std::move(impl)));
}

KafkaChangelog::KafkaChangelog(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

KafkaChangelog::~KafkaChangelog() {
  if (impl_->producer && !impl_->broken.load()) {
    // An epoch still open holds nothing acknowledged: abort it rather than leave it to time out.
    std::unique_ptr<RdKafka::Error> e(impl_->producer->abort_transaction(5000));
  }
}

const std::string& KafkaChangelog::topic() const { return impl_->topic; }

void KafkaChangelog::Poll() { impl_->producer->poll(0); }

Status KafkaChangelog::Start(int timeout_ms) {
  if (std::unique_ptr<RdKafka::Error> e(impl_->producer->init_transactions(timeout_ms)); e) {
    return FromKafkaError("changelog: init_transactions", *e);
  }
  if (std::unique_ptr<RdKafka::Error> e(impl_->producer->begin_transaction()); e) {
    return FromKafkaError("changelog: begin_transaction", *e);
  }
  return absl::OkStatus();
}

StatusOr<uint64_t> KafkaChangelog::Append(const WriteBatch& batch,
                                          std::span<const OutboundMessage> messages) {
  Impl& d = *impl_;
  std::unique_lock<std::mutex> lock(d.mu);
  if (d.broken.load()) {
    return absl::UnavailableError("kafka: changelog: no epoch can commit (see the log)");
  }
  const uint64_t epoch = d.epoch;
  // During a commit the records are held (under the lock) for the next epoch, which this batch
  // belongs to; otherwise they are produced into the open one, without the lock.
  const bool hold = d.committing;
  if (!hold) {
    d.active++;
    lock.unlock();
  }
  uint64_t sent = 0;
  std::string error;
  auto add = [&](bool internal, uint32_t partition, std::string_view key,
                 const std::string_view* value) {
    if (!error.empty()) return;
    if (hold) {
      d.held.push_back({internal, static_cast<int32_t>(partition), std::string(key),
                        value ? std::optional<std::string>(*value) : std::nullopt});
      sent++;
    } else if (d.Produce(internal, static_cast<int32_t>(partition), key, value, &error)) {
      sent++;
    }
  };
  batch.ForEach([&](Cf cf, std::string_view key, const std::string_view* value) {
    const auto partition = PartitionOfKey(static_cast<int>(cf), key);
    if (!partition) return;  // not partitioned state
    add(false, *partition, EncodeChangelogKey(static_cast<int>(cf), key), value);
  });
  const uint64_t state_records = sent;
  for (const auto& m : messages) {
    const std::string_view value = m.data;
    add(true, m.partition, {}, &value);
  }
  d.records->Increment(static_cast<double>(state_records));
  d.messages->Increment(static_cast<double>(sent - state_records));
  if (!hold) lock.lock();
  d.open_records += sent;
  d.open_batches++;
  if (!hold && --d.active == 0 && d.committing) d.cv.notify_all();
  if (!error.empty()) {
    d.broken = true;
    return absl::UnavailableError("kafka: changelog: " + error);
  }
  return epoch;
}

StatusOr<std::optional<KafkaChangelog::CommittedEpoch>> KafkaChangelog::Commit(
    RdKafka::KafkaConsumer& consumer, const std::map<uint32_t, int64_t>& offsets) {
  Impl& d = *impl_;
  if (d.broken.load()) return absl::UnavailableError("kafka: changelog: an earlier commit failed");
  if (d.must_abort.load()) {
    return absl::AbortedError("kafka: changelog: the open epoch must be aborted first");
  }
  {
    std::lock_guard<std::mutex> lock(d.mu);
    if (d.open_batches == 0) return std::optional<CommittedEpoch>();
  }
  const auto started = std::chrono::steady_clock::now();
  const Impl::Cut cut = d.BeginCut();
  const uint64_t epoch = cut.epoch;
  if (cut.records == 0) {  // only local writes (no partition's state): nothing to send
    d.EndCut(/*drop=*/false);
    return std::optional<CommittedEpoch>(CommittedEpoch{epoch, std::make_shared<Checkpoints>()});
  }
  if (!offsets.empty()) {
    std::vector<RdKafka::TopicPartition*> tps;
    for (const auto& [p, offset] : offsets) {
      tps.push_back(RdKafka::TopicPartition::create(d.options.topic, static_cast<int>(p), offset));
    }
    std::unique_ptr<RdKafka::ConsumerGroupMetadata> group(consumer.groupMetadata());
    auto e = UntilNotRetriable("send offsets", [&] {
      return d.producer->send_offsets_to_transaction(tps, group.get(), 10000);
    });
    RdKafka::TopicPartition::destroy(tps);
    if (e) return d.FailOrAbort("send_offsets_to_transaction", *e);
  }
  if (auto e = UntilNotRetriable("commit", [&] { return d.producer->commit_transaction(10000); })) {
    return d.FailOrAbort("commit_transaction", *e);
  }
  auto checkpoints = std::make_shared<Checkpoints>();
  for (size_t p = 0; p < d.delivered.size(); p++) {
    const int64_t last = d.delivered[p].exchange(-1, std::memory_order_relaxed);
    // Past the last record (the commit marker that follows is skipped by readers).
    if (last >= 0) (*checkpoints)[static_cast<uint32_t>(p)] = last + 1;
  }
  if (std::unique_ptr<RdKafka::Error> e(d.producer->begin_transaction()); e) {
    return d.Fail("begin_transaction", *e);
  }
  d.EndCut(/*drop=*/false);
  d.commits->Increment();
  d.commit_seconds->Observe(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  return std::optional<CommittedEpoch>(CommittedEpoch{epoch, std::move(checkpoints)});
}

Status KafkaChangelog::Abort() {
  Impl& d = *impl_;
  if (d.broken.load()) return absl::UnavailableError("kafka: changelog: an earlier commit failed");
  (void)d.BeginCut();  // the shards are idle: nothing is held, and nothing of this epoch survives
  if (auto e = UntilNotRetriable("abort", [&] { return d.producer->abort_transaction(10000); })) {
    return d.Fail("abort_transaction", *e);
  }
  for (auto& p : d.delivered) p.store(-1);
  if (std::unique_ptr<RdKafka::Error> e(d.producer->begin_transaction()); e) {
    return d.Fail("begin_transaction", *e);
  }
  d.must_abort = false;
  d.EndCut(/*drop=*/true);
  return absl::OkStatus();
}

}  // namespace ecrm
