#include "ingest/kafka_consumer.h"

#include <librdkafka/rdkafkacpp.h>
#include <pthread.h>

#include <algorithm>
#include <chrono>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/logging.h"
#include "ingest/changelog_restore.h"
#include "ingest/internal/kafka_conf.h"
#include "ingest/kafka_admin.h"
#include "ingest/offset_tracker.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"

namespace ecrm {
namespace {

using SteadyClock = std::chrono::steady_clock;

// Offsets are tracked per source: an events-topic partition p is source p, partition p of the
// internal topic is source p | kInternalSource.
constexpr uint32_t kInternalSource = 1u << 31;
bool IsInternal(uint32_t source) { return (source & kInternalSource) != 0; }
uint32_t PartitionOf(uint32_t source) { return source & ~kInternalSource; }

// A dead letter in flight: the original message's coordinates and what to send again on failure.
struct DeadLetter {
  uint32_t partition;
  int64_t offset;
  std::string key;
  std::string payload;
  std::string code;
  std::string message;
};

}  // namespace

struct KafkaConsumer::Impl : public RdKafka::RebalanceCb,
                             public RdKafka::EventCb,
                             public RdKafka::DeliveryReportCb {
  Impl(const KafkaOptions& o, ProfileEngine& e, prometheus::Registry& registry, const Clock& c,
       const CollectorLimits& limits, KafkaChangelog* log, KvStore* kv, ChangelogStandby* sb)
      : options(o), engine(e), clock(c), parser(limits), changelog(log), store(kv), standby(sb) {
    auto counter = [&](const char* name,
                       const char* help) -> prometheus::Family<prometheus::Counter>& {
      return prometheus::BuildCounter().Name(name).Help(help).Register(registry);
    };
    consumed =
        &counter("ecrm_kafka_messages_consumed_total", "Messages consumed from the events topic")
             .Add({});
    auto& dead = counter("ecrm_kafka_messages_dead_lettered_total",
                         "Messages sent to the dead-letter topic, by reason");
    for (const char* code : kRejectionCodes) dead_lettered[code] = &dead.Add({{"reason", code}});
    rebalances =
        &counter("ecrm_kafka_rebalances_total", "Partition assignments and revocations").Add({});
    retried =
        &counter("ecrm_kafka_submit_retries_total", "Times a message waited for full worker queues")
             .Add({});
    pauses = &counter("ecrm_kafka_consumer_pauses_total",
                      "Times consumption was paused because workers fell behind")
                  .Add({});
    assigned_gauge = &prometheus::BuildGauge()
                          .Name("ecrm_kafka_partitions_assigned")
                          .Help("Partitions of the events topic this instance consumes")
                          .Register(registry)
                          .Add({});
    fatal_gauge = &prometheus::BuildGauge()
                       .Name("ecrm_kafka_consumer_fatal")
                       .Help(
                           "1 after a fatal consumer error (e.g. fenced by another instance "
                           "with the same --instance-id): not ready until restarted")
                       .Register(registry)
                       .Add({});
    paused_gauge = &prometheus::BuildGauge()
                        .Name("ecrm_kafka_consumer_paused")
                        .Help("1 while consumption is stopped for backpressure")
                        .Register(registry)
                        .Add({});
    lag_family = &prometheus::BuildGauge()
                      .Name("ecrm_kafka_consumer_lag")
                      .Help("Messages between the partition's end and the consumer's position")
                      .Register(registry);
    restoring_gauge =
        &prometheus::BuildGauge()
             .Name("ecrm_changelog_restoring_partitions")
             .Help("Partitions being restored from the changelog (not ready meanwhile)")
             .Register(registry)
             .Add({});
    restored_records = &counter("ecrm_changelog_restored_records_total",
                                "Changelog records applied to restore assigned partitions")
                            .Add({});
    restore_seconds =
        &prometheus::BuildHistogram()
             .Name("ecrm_changelog_restore_seconds")
             .Help("Time to restore the partitions of one assignment")
             .Register(registry)
             .Add({}, prometheus::Histogram::BucketBoundaries{0.01, 0.1, 0.5, 1, 5, 15, 60, 300});
    epochs_aborted = &counter("ecrm_changelog_epochs_aborted_total",
                              "Open changelog epochs aborted (assignment lost, or a commit the "
                              "group refused after a rebalance); their messages are read again")
                          .Add({});
    rejoins = &counter("ecrm_kafka_consumer_rejoins_total",
                       "Consumers recreated after their own rejoin fenced them (a session timeout "
                       "while the brokers were away)")
                   .Add({});
    internal_consumed = &counter("ecrm_internal_messages_consumed_total",
                                 "Shard messages consumed from the internal topic (sent by other "
                                 "instances to partitions this one owns)")
                             .Add({});
    internal_corrupt = &counter("ecrm_internal_messages_corrupt_total",
                                "Internal-topic messages that could not be decoded (skipped)")
                            .Add({});
    batch_events =
        &prometheus::BuildHistogram()
             .Name("ecrm_kafka_message_events")
             .Help("Events per consumed message")
             .Register(registry)
             .Add({}, prometheus::Histogram::BucketBoundaries{1, 2, 5, 10, 50, 100, 500, 2500});
  }

  struct Completion {
    uint32_t partition;
    int64_t offset;
    bool ok;
  };

  // --- librdkafka callbacks (all on the consumer thread, inside consume()/poll()) ---

  void rebalance_cb(RdKafka::KafkaConsumer* c, RdKafka::ErrorCode err,
                    std::vector<RdKafka::TopicPartition*>& partitions) override {
    rebalances->Increment();
    if (err == RdKafka::ERR__ASSIGN_PARTITIONS) {
      if (changelog) Restore(partitions);
      for (auto* tp : partitions) {
        const auto p = static_cast<uint32_t>(tp->partition());
        auto stored = engine.SourceOffset(p);
        if (!stored.ok()) {
          // Without its resume point the partition would be replayed from the start, past the
          // dedup window: stop loudly instead, and let the supervisor restart ecrm.
          spdlog::critical("kafka: cannot read the stored offset of partition {}: {}", p,
                           stored.status().ToString());
          std::abort();
        }
        int64_t start = RdKafka::Topic::OFFSET_BEGINNING;
        if (stored->has_value()) start = **stored;
        tp->set_offset(start);
        committed[p] = start;
        if (start >= 0) {
          std::lock_guard<std::mutex> lock(offsets_mu);
          txn_offsets[p] = start;
        }
        assigned.insert(p);
        SetView(p, -1);
        spdlog::info("kafka: assigned {}[{}] from offset {}", tp->topic(), p,
                     start == RdKafka::Topic::OFFSET_BEGINNING ? std::string("beginning")
                                                               : std::to_string(start));
      }
      // Cooperative: `partitions` are the ones added; the others keep flowing.
      if (std::unique_ptr<RdKafka::Error> error(c->incremental_assign(partitions)); error) {
        spdlog::critical("kafka: incremental assign: {}", error->str());
        std::abort();  // the group and this instance would disagree on what it owns
      }
      if (inbox) AssignInternal(partitions);
      in_group = true;
      assigned_gauge->Set(static_cast<double>(assigned.size()));
    } else {
      const bool lost = c->assignment_lost();
      std::vector<uint32_t> gone;
      for (auto* tp : partitions) gone.push_back(static_cast<uint32_t>(tp->partition()));
      if (inbox) UnassignInternal(gone);
      if (changelog && lost) {
        // Another instance may own them already: nothing more of this epoch may commit, and
        // what names them from now on goes to their new owner.
        if (inbox) engine.SetOwned(gone, false);
        DiscardEpoch();
      } else {
        // Let everything consumed from these partitions become durable and record its offsets
        // before another consumer takes over (with a changelog: committed, so the next owner
        // restores all of it).
        Flush();
        WaitForInFlight(std::chrono::seconds(30));
        // From here on work for them is relayed to their next owner; what the shards wrote of
        // them until now commits with this epoch.
        if (inbox) engine.SetOwned(gone, false);
        CommitEpoch();
      }
      {  // no later commit may name them: the next owner's offsets are not ours to write
        std::lock_guard<std::mutex> lock(offsets_mu);
        for (auto* tp : partitions) txn_offsets.erase(static_cast<uint32_t>(tp->partition()));
      }
      if (changelog) engine.ForgetPartitions(gone);  // nothing of them stays cached
      if (standby) standby->Release(gone);           // a standby again, or dropped later
      for (auto* tp : partitions) {
        const auto p = static_cast<uint32_t>(tp->partition());
        tracker.Reset(p);
        tracker.Reset(p | kInternalSource);
        rewind.erase(p | kInternalSource);
        committed.erase(p | kInternalSource);
        assigned.erase(p);
        {
          std::lock_guard<std::mutex> lock(view_mu);
          view.erase(p);
        }
        spdlog::info("kafka: revoked {}[{}]", tp->topic(), p);
        rewind.erase(p);
        if (auto g = lag_gauges.find(p); g != lag_gauges.end()) {
          lag_family->Remove(g->second);
          lag_gauges.erase(g);
        }
      }
      // `partitions` are the ones taken away (all of them when the assignment was lost).
      if (lost) spdlog::warn("kafka: assignment lost (session timed out or fenced)");
      if (std::unique_ptr<RdKafka::Error> error(c->incremental_unassign(partitions)); error) {
        spdlog::critical("kafka: incremental unassign: {}", error->str());
        std::abort();
      }
      if (lost) in_group = false;
      assigned_gauge->Set(static_cast<double>(assigned.size()));
    }
  }

  // Cluster mode: the newly assigned partitions are this instance's to write from now on (they
  // are restored), their partitions of the internal topic are consumed from the stored offsets,
  // and the merges a crash interrupted in them are resumed.
  void AssignInternal(const std::vector<RdKafka::TopicPartition*>& partitions) {
    std::vector<uint32_t> ps;
    std::vector<RdKafka::TopicPartition*> tps;
    for (auto* tp : partitions) {
      const auto p = static_cast<uint32_t>(tp->partition());
      ps.push_back(p);
      auto stored = engine.InternalOffset(p);
      if (!stored.ok()) {
        spdlog::critical("kafka: cannot read the stored internal offset of partition {}: {}", p,
                         stored.status().ToString());
        std::abort();
      }
      const int64_t start =
          stored->has_value() ? **stored : static_cast<int64_t>(RdKafka::Topic::OFFSET_BEGINNING);
      committed[p | kInternalSource] = start;
      tps.push_back(RdKafka::TopicPartition::create(internal_topic, static_cast<int>(p), start));
    }
    engine.SetOwned(ps, true);
    std::unique_ptr<RdKafka::Error> error(inbox->incremental_assign(tps));
    RdKafka::TopicPartition::destroy(tps);
    if (error) {
      spdlog::critical("kafka: assign {}: {}", internal_topic, error->str());
      std::abort();
    }
    internal_assigned += static_cast<int>(ps.size());
    engine.ResumePendingMerges(ps);
  }

  // Stops consuming the internal topic's partitions of `partitions` (before they are made
  // durable and given up).
  void UnassignInternal(const std::vector<uint32_t>& partitions) {
    std::vector<RdKafka::TopicPartition*> tps;
    for (uint32_t p : partitions) {
      tps.push_back(RdKafka::TopicPartition::create(internal_topic, static_cast<int>(p)));
    }
    std::unique_ptr<RdKafka::Error> error(inbox->incremental_unassign(tps));
    RdKafka::TopicPartition::destroy(tps);
    if (error) {
      spdlog::critical("kafka: unassign {}: {}", internal_topic, error->str());
      std::abort();
    }
    internal_assigned -= static_cast<int>(partitions.size());
  }

  void event_cb(RdKafka::Event& event) override {
    if (event.type() == RdKafka::Event::EVENT_ERROR) {
      const char* kind = CountKafkaError(event.err());
      if (event.err() == RdKafka::ERR__ALL_BROKERS_DOWN) {
        broker_up = false;
      }
      if (event.err() == RdKafka::ERR__AUTHENTICATION || event.err() == RdKafka::ERR__SSL) {
        // Credentials or certificates refused: not ready until a broker answers again.
        broker_up = false;
      }
      if (event.fatal()) return Fatal(event.str());
      spdlog::warn("kafka: {} ({}, {})", event.str(), RdKafka::err2str(event.err()), kind);
    } else if (event.type() == RdKafka::Event::EVENT_LOG &&
               event.severity() <= RdKafka::Event::EVENT_SEVERITY_WARNING) {
      if (event.fac() == "SESSTMOUT") session_timed_out = SteadyClock::now();
      spdlog::warn("kafka: {} {}", event.fac(), event.str());
    }
  }

  // Brings the newly assigned partitions' local state up to the changelog before they are consumed.
  // The stored offsets read afterwards are the ones that went with the restored state.
  void Restore(const std::vector<RdKafka::TopicPartition*>& partitions) {
    std::vector<uint32_t> ps;
    {
      std::lock_guard<std::mutex> lock(view_mu);
      for (auto* tp : partitions) {
        ps.push_back(static_cast<uint32_t>(tp->partition()));
        restoring[ps.back()] = 0;
      }
      restoring_count = static_cast<int>(restoring.size());
    }
    restoring_gauge->Set(static_cast<double>(ps.size()));
    if (standby) standby->Acquire(ps);  // its copies stop changing; the restore goes on from them
    auto stats = RestoreFromChangelog(options, *store, ps, 60000, [this](uint32_t p, int64_t n) {
      std::lock_guard<std::mutex> lock(view_mu);
      restoring[p] = n;
    });
    {
      std::lock_guard<std::mutex> lock(view_mu);
      restoring.clear();
      restoring_count = 0;
    }
    restoring_gauge->Set(0);
    if (!stats.ok()) {
      // Consuming from a stale copy would fork the partition's history: restart and try again.
      spdlog::critical("kafka: restoring partitions from the changelog failed: {}",
                       stats.status().ToString());
      std::abort();
    }
    restored_records->Increment(static_cast<double>(stats->records));
    restore_seconds->Observe(stats->seconds);
    if (stats->records > 0 || !stats->wiped.empty()) {
      spdlog::info(
          "kafka: restored {} partitions from {} ({} records in {:.2f} s; {} restored whole)",
          stats->restored.size(), changelog->topic(), stats->records, stats->seconds,
          stats->wiped.size());
    }
    if (!stats->unlogged.empty()) Seed(stats->unlogged);
  }

  // Partitions with local state and an empty changelog (a data dir from before the changelog):
  // their whole state goes to the changelog in one transaction, with whatever the shards append
  // meanwhile, so the log is never half seeded.
  void Seed(const std::vector<uint32_t>& partitions) {
    std::lock_guard<std::mutex> lock(commit_mu);
    int64_t records = 0;
    for (uint32_t p : partitions) {
      auto seeded = SeedChangelog(*store, p, *changelog);
      if (!seeded.ok()) {
        Fatal("seeding the changelog of partition " + std::to_string(p) + ": " +
              seeded.status().ToString());
        return;
      }
      records += *seeded;
    }
    CommitEpochLocked();
    if (abort_requested.load()) {
      // A seed must commit whole, before anything else of its partitions: start again.
      Fatal("the changelog seed's transaction was refused by the group; restart to seed again");
      return;
    }
    if (!fatal.load()) {
      spdlog::info("kafka: seeded {} from {} partitions' local state ({} records)",
                   changelog->topic(), partitions.size(), records);
    }
  }

  // The committer thread: commits every commit interval, so that consuming never waits for a
  // commit's round trips, and serves the changelog's delivery reports meanwhile.
  void RunCommitter() {
    while (!committer_stop.load()) {
      const auto next = SteadyClock::now() + std::chrono::milliseconds(options.commit_interval_ms);
      while (SteadyClock::now() < next && !committer_stop.load()) {
        changelog->Poll();
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
      CommitEpoch();
    }
  }

  // The assignment was lost (a session timeout): the open epoch is aborted and everything the
  // shards hold of it dropped; the store has every committed epoch, from which the partitions
  // assigned next are restored as usual. Events of the lost partitions not yet handed over are
  // dropped too: they are read again by whoever owns them now.
  void DiscardEpoch(bool reread = false) {
    std::lock_guard<std::mutex> lock(commit_mu);
    if (fatal.load()) return;
    abort_requested = false;
    pending_events.clear();
    pending_offsets.clear();
    pending_messages.clear();
    pending_message_offsets.clear();
    while (!engine.Idle()) {  // appends may wait for delivery reports to free queue space
      changelog->Poll();
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (Status s = changelog->Abort(); !s.ok()) {
      Fatal(s.ToString());
      return;
    }
    engine.EpochAborted();
    epochs_aborted->Increment();
    if (reread) {  // the partitions are still ours: read what the epoch held again
      for (uint32_t p : assigned) {
        rewind.insert(p);
        if (inbox) rewind.insert(p | kInternalSource);
      }
      spdlog::warn("kafka: the open changelog epoch was aborted; its messages are read again");
      return;
    }
    spdlog::warn("kafka: assignment lost: the open changelog epoch was aborted");
  }

  // Commits the open changelog epoch with the consumed offsets; the shards then write it. Called
  // by the committer thread every commit interval, and by the consumer thread when it must know
  // everything is committed (revocation, shutdown).
  void CommitEpoch() {
    std::lock_guard<std::mutex> lock(commit_mu);
    CommitEpochLocked();
  }

  void CommitEpochLocked() {
    if (!changelog || fatal.load()) return;
    std::map<uint32_t, int64_t> offsets;
    {
      std::lock_guard<std::mutex> olock(offsets_mu);
      offsets = txn_offsets;
    }
    auto done = changelog->Commit(*consumer, offsets);
    if (absl::IsAborted(done.status())) {
      // The group moved to a new generation while the epoch was open: the epoch is dropped and
      // its messages read again (DiscardEpoch, on the consumer thread), as Kafka Streams aborts
      // and re-reads after a commit its group refused.
      if (!abort_requested.exchange(true)) {
        spdlog::warn("kafka: {}; the epoch is aborted and its messages read again",
                     std::string(done.status().message()));
      }
      return;
    }
    if (!done.ok()) {
      // Fenced (another process took this instance's id, or its partitions moved while it was
      // frozen) or timed out: nothing of the open epoch is durable, and no later epoch can
      // commit. The store holds only committed epochs, so a restart continues exactly.
      commit_failed = true;
      Fatal(done.status().ToString());
      return;
    }
    if (*done) engine.EpochCommitted((*done)->epoch, (*done)->checkpoints);
  }

  // For example fenced by another member with the same group.instance.id: this consumer can
  // consume no more, so the instance stays not ready until it is restarted.
  void Fatal(const std::string& what) {
    if (SelfFenced()) {
      if (!rejoin_requested.exchange(true)) {
        spdlog::warn(
            "kafka: fenced by this instance's own rejoin after its session timed out (librdkafka "
            "#3437: the broker was away longer than session.timeout.ms); joining again with a new "
            "consumer");
      }
      return;
    }
    if (fatal.exchange(true)) return;
    fatal_gauge->Set(1);
    spdlog::critical(
        "kafka: fatal consumer error: {}; not ready until restarted (is another instance running "
        "with --instance-id {}?)",
        what, options.instance_id);
  }

  // A static member whose session timed out (the brokers were away) rejoins with a new member id,
  // which the coordinator gives its group.instance.id; the old member id's late heartbeat is then
  // answered FENCED_INSTANCE_ID, and librdkafka raises a fatal error against its own successor
  // (librdkafka #3437). Told apart from a second process with this --instance-id by the session
  // timeout just before it, and by happening at most once a minute.
  bool SelfFenced() {
    if (commit_failed.load() || !consumer) return false;
    std::string reason;
    if (consumer->fatal_error(reason) != RdKafka::ERR_FENCED_INSTANCE_ID) return false;
    const auto now = SteadyClock::now();
    return session_timed_out && now - *session_timed_out < std::chrono::seconds(60) &&
           (!last_rejoin || now - *last_rejoin > std::chrono::seconds(60));
  }

  // Replaces the fenced consumer with a new one, which joins the group afresh. What the old one
  // was assigned is lost (its revocation aborts the open epoch, as for any lost assignment), and
  // what the new one is assigned is restored as usual. Consumer thread.
  void Rejoin() {
    rejoin_requested = false;
    last_rejoin = SteadyClock::now();
    consumer->close();  // its revocation callback, if it still had partitions
    std::string err;
    std::unique_ptr<RdKafka::KafkaConsumer> fresh(
        RdKafka::KafkaConsumer::create(consumer_conf.get(), err));
    if (!fresh) {
      Fatal("recreating the consumer: " + err);
      return;
    }
    {
      std::lock_guard<std::mutex> lock(commit_mu);  // the committer reads `consumer`
      consumer.swap(fresh);
    }
    in_group = false;
    if (const auto code = consumer->subscribe({options.topic}); code != RdKafka::ERR_NO_ERROR) {
      Fatal("subscribe to " + options.topic + ": " + RdKafka::err2str(code));
      return;
    }
    rejoins->Increment();
  }

  void SetView(uint32_t p, int64_t lag) {
    std::lock_guard<std::mutex> lock(view_mu);
    view[p] = lag;
  }

  // Dead-letter deliveries.
  void dr_cb(RdKafka::Message& message) override {
    std::unique_ptr<DeadLetter> letter(static_cast<DeadLetter*>(message.msg_opaque()));
    if (message.err() == RdKafka::ERR_NO_ERROR) {
      CompleteLocally(letter->partition, letter->offset, absl::OkStatus());
      return;
    }
    spdlog::warn("kafka: dead letter for {}:{} not delivered ({}); retrying", letter->partition,
                 letter->offset, message.errstr());
    ProduceDeadLetter(std::move(letter));
  }

  // --- the consumer thread ---

  void Run() {
    auto last_lag = SteadyClock::now();
    while (!stopping.load()) {
      if (rejoin_requested.load()) Rejoin();
      if (abort_requested.load()) DiscardEpoch(/*reread=*/true);
      if (fatal.load()) {  // nothing more to consume; keep delivering dead letters
        if (commit_failed.load() && !left_group) {
          // A fenced commit (a zombie, say): leave the group, so that the partitions this
          // instance can no longer process go to another member. The revocation runs in the
          // consume() calls below; what they return is dropped.
          left_group = true;
          spdlog::warn("kafka: leaving the group after the failed commit");
          (void)consumer->unsubscribe();
        }
        if (left_group) std::unique_ptr<RdKafka::Message>(consumer->consume(100));
        producer->poll(left_group ? 0 : 100);
        continue;
      }
      if (paused) {  // backpressure: leave the messages with librdkafka until the workers catch up
        Flush();     // what was consumed must reach the workers, or nothing drains
        Backpressure();
        if (paused) {
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
          producer->poll(0);
          DrainCompletions();
          continue;
        }
      }
      const bool pending = !pending_offsets.empty() || !pending_message_offsets.empty();
      std::unique_ptr<RdKafka::Message> m(
          consumer->consume(pending ? 0 : (internal_assigned > 0 ? 5 : 50)));
      const auto now = SteadyClock::now();  // read once per message: it shows in profiles
      bool idle = false;
      switch (m->err()) {
        case RdKafka::ERR_NO_ERROR:
          broker_up = true;
          if (!pending) pending_since = now;
          Handle(*m);
          break;
        case RdKafka::ERR__PARTITION_EOF:
          broker_up = true;
          idle = true;
          break;
        case RdKafka::ERR__TIMED_OUT:
          idle = true;
          break;
        case RdKafka::ERR__FATAL:
          idle = true;
          Fatal(m->errstr());
          break;
        default:
          idle = true;
          spdlog::warn("kafka: consume: {}", m->errstr());
      }
      // What other instances sent this one's partitions: taken every millisecond or when idle.
      if (internal_assigned > 0 && (idle || now - last_internal > std::chrono::milliseconds(1))) {
        last_internal = now;
        ConsumeInternal(now);
      }
      // Hand events over in batches: one queue hand-off and one acknowledgement per batch.
      const bool have = !pending_offsets.empty() || !pending_message_offsets.empty();
      if (have && (idle || pending_events.size() + pending_messages.size() >= kMaxBatchEvents ||
                   now - pending_since > std::chrono::milliseconds(5))) {
        Flush();
      }
      producer->poll(0);
      DrainCompletions();
      Backpressure();
      if (now - last_lag > std::chrono::seconds(1)) {
        last_lag = now;
        UpdateLag();
        if (!broker_up) ProbeBroker();
      }
    }
  }

  // Takes what the internal topic has ready, up to one batch's worth.
  void ConsumeInternal(SteadyClock::time_point now) {
    for (size_t n = 0; n < kMaxBatchEvents; n++) {
      std::unique_ptr<RdKafka::Message> m(inbox->consume(0));
      if (m->err() == RdKafka::ERR__TIMED_OUT || m->err() == RdKafka::ERR__PARTITION_EOF) return;
      if (m->err() != RdKafka::ERR_NO_ERROR) {
        if (m->err() == RdKafka::ERR__FATAL) Fatal(m->errstr());
        spdlog::warn("kafka: consume {}: {}", internal_topic, m->errstr());
        return;
      }
      const uint32_t source = static_cast<uint32_t>(m->partition()) | kInternalSource;
      if (rewind.contains(source)) continue;  // dropped; re-read after the seek
      internal_consumed->Increment();
      if (pending_offsets.empty() && pending_message_offsets.empty()) pending_since = now;
      tracker.Begin(source, m->offset());
      auto decoded =
          DecodeShardMessage(std::string_view(static_cast<const char*>(m->payload()), m->len()));
      if (!decoded.ok()) {
        // Only ecrm instances write this topic: a newer version's message, or a bug. Counted and
        // logged (not its content: it may hold PII), and skipped.
        internal_corrupt->Increment();
        spdlog::error("kafka: {}[{}] offset {}: {}; skipped", internal_topic, m->partition(),
                      m->offset(), decoded.status().ToString());
        pending_message_offsets.push_back({source, m->offset(), true});
        continue;
      }
      pending_messages.push_back(*std::move(decoded));
      pending_message_offsets.push_back({source, m->offset(), true});
    }
  }

  void Handle(RdKafka::Message& m) {
    consumed->Increment();
    const auto p = static_cast<uint32_t>(m.partition());
    const int64_t offset = m.offset();
    if (rewind.contains(p)) return;  // dropped; re-read after the seek
    tracker.Begin(p, offset);
    const std::string_view value(static_cast<const char*>(m.payload()), m.len());
    const std::string key = m.key() ? *m.key() : std::string();
    CollectorRequest request;
    if (auto rejection = parser.ParseKafkaMessage(value, ReceivedAt(m), request)) {
      auto letter = std::make_unique<DeadLetter>(DeadLetter{
          p, offset, key, std::string(value), rejection->code,
          rejection->message +
              (rejection->index >= 0 ? " (item " + std::to_string(rejection->index) + ")" : "")});
      const auto it = dead_lettered.find(rejection->code);
      (it != dead_lettered.end() ? it->second : dead_lettered["internal"])->Increment();
      ProduceDeadLetter(std::move(letter));
      return;
    }
    batch_events->Observe(static_cast<double>(request.events.size()));
    for (size_t i = 0; i < request.events.size(); i++) {
      auto& e = request.events[i];
      if (e.message_id.empty()) {
        e.message_id =
            "kafka-" + std::to_string(p) + "-" + std::to_string(offset) + "-" + std::to_string(i);
      }
      pending_events.push_back(std::move(e));
    }
    pending_offsets.push_back({p, offset, true});
  }

  // When the message reached Kafka: its timestamp (the producer's create time, or the broker's
  // append time if the topic keeps that), else now. A lagging or replaying consumer thus gives an
  // event the same received-at, and the same clock-skew correction, as a prompt one. A batch
  // envelope's own `receivedAt` (the collector's) still takes precedence.
  TimeMs ReceivedAt(const RdKafka::Message& m) const {
    const auto ts = m.timestamp();
    if (ts.type != RdKafka::MessageTimestamp::MSG_TIMESTAMP_NOT_AVAILABLE && ts.timestamp > 0) {
      return ts.timestamp;
    }
    return clock.NowMs();
  }

  // Submits the pending events of (possibly) many messages as one request; its acknowledgement
  // completes all of their offsets.
  void Flush() {
    FlushMessages();
    if (pending_offsets.empty()) return;
    while (true) {
      auto offsets = std::make_shared<std::vector<Completion>>(pending_offsets);
      const Status s = engine.Submit(std::move(pending_events), [this, offsets](Status status) {
        std::lock_guard<std::mutex> lock(done_mu);
        for (auto c : *offsets) {
          c.ok = status.ok();
          done.push_back(c);
        }
      });
      if (s.ok()) break;
      if (!absl::IsResourceExhausted(s)) {  // the engine is stopping: re-read these later
        for (const auto& c : pending_offsets) rewind.insert(c.partition);
        break;
      }
      retried->Increment();
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      DrainCompletions();
    }
    pending_events.clear();
    pending_offsets.clear();
  }

  // Hands the internal topic's pending messages to the shards.
  void FlushMessages() {
    if (pending_message_offsets.empty()) return;
    auto offsets = std::make_shared<std::vector<Completion>>(std::move(pending_message_offsets));
    const Status s =
        engine.SubmitMessages(std::move(pending_messages), [this, offsets](Status status) {
          std::lock_guard<std::mutex> lock(done_mu);
          for (auto c : *offsets) {
            c.ok = status.ok();
            done.push_back(c);
          }
        });
    if (!s.ok()) {  // the engine is stopping: read them again later
      for (const auto& c : *offsets) rewind.insert(c.partition);
    }
    pending_messages.clear();
    pending_message_offsets.clear();
  }

  void ProduceDeadLetter(std::unique_ptr<DeadLetter> letter) {
    RdKafka::Headers* headers = RdKafka::Headers::create();
    headers->add("ecrm-error-code", letter->code);
    headers->add("ecrm-error-message", letter->message);
    headers->add("ecrm-source-topic", options.topic);
    headers->add("ecrm-source-partition", std::to_string(letter->partition));
    headers->add("ecrm-source-offset", std::to_string(letter->offset));
    DeadLetter* raw = letter.get();
    const auto err = producer->produce(
        options.dlq_topic, RdKafka::Topic::PARTITION_UA, RdKafka::Producer::RK_MSG_COPY,
        const_cast<char*>(raw->payload.data()), raw->payload.size(),
        raw->key.empty() ? nullptr : raw->key.data(), raw->key.size(), 0, headers, raw);
    if (err != RdKafka::ERR_NO_ERROR) {
      delete headers;  // only freed by librdkafka on success
      spdlog::warn("kafka: dead letter not queued ({}); will retry", RdKafka::err2str(err));
      pending_letters.push_back(std::move(letter));
      return;
    }
    letter.release();  // owned by the delivery report now
  }

  // Acknowledgements come from shard threads (and dead-letter reports from this thread).
  void CompleteLocally(uint32_t p, int64_t offset, const Status& status) {
    std::lock_guard<std::mutex> lock(done_mu);
    done.push_back({p, offset, status.ok()});
  }

  void DrainCompletions() {
    std::vector<Completion> batch;
    {
      std::lock_guard<std::mutex> lock(done_mu);
      batch.swap(done);
    }
    std::unordered_map<uint32_t, int64_t> advanced;
    for (const auto& c : batch) {
      if (!assigned.contains(PartitionOf(c.partition))) continue;
      if (!c.ok) {  // not durable: read the partition again from its watermark
        rewind.insert(c.partition);
        continue;
      }
      if (auto wm = tracker.Complete(c.partition, c.offset)) advanced[c.partition] = *wm;
    }
    if (!advanced.empty()) {
      std::lock_guard<std::mutex> lock(offsets_mu);
      for (const auto& [p, wm] : advanced) {
        if (!IsInternal(p)) txn_offsets[p] = wm;
      }
    }
    for (const auto& [source, wm] : advanced) {
      committed[source] = wm;
      offsets_in_flight->fetch_add(1);
      auto stored = [source, left = offsets_in_flight](Status s) {
        left->fetch_sub(1);
        if (!s.ok()) {
          spdlog::error("kafka: offset of {}partition {} not stored: {}",
                        IsInternal(source) ? "internal " : "", PartitionOf(source), s.ToString());
        }
      };
      if (IsInternal(source)) {
        engine.CommitInternalOffset(PartitionOf(source), wm, std::move(stored));
      } else {
        engine.CommitSourceOffset(source, wm, std::move(stored));
      }
    }
    if (!pending_letters.empty()) {  // one retry per turn of the loop
      auto letter = std::move(pending_letters.front());
      pending_letters.erase(pending_letters.begin());
      ProduceDeadLetter(std::move(letter));
    }
    for (auto it = rewind.begin(); it != rewind.end();) {
      const uint32_t source = *it;
      const uint32_t p = PartitionOf(source);
      // Everything in flight for the partition is abandoned (late completions are ignored); the
      // seek re-reads it, and what was already applied is deduplicated (internal messages are
      // idempotent: docs/cluster.md#cross-instance-messages).
      tracker.Reset(source);
      const int64_t from =
          committed.contains(source) ? committed[source] : RdKafka::Topic::OFFSET_BEGINNING;
      const std::string& topic = IsInternal(source) ? internal_topic : options.topic;
      std::unique_ptr<RdKafka::TopicPartition> tp(
          RdKafka::TopicPartition::create(topic, static_cast<int>(p), from));
      const auto err = (IsInternal(source) ? inbox.get() : consumer.get())->seek(*tp, 1000);
      if (err != RdKafka::ERR_NO_ERROR) {
        spdlog::warn("kafka: seek {}[{}] to {}: {}", topic, p, from, RdKafka::err2str(err));
        ++it;
        continue;
      }
      spdlog::warn("kafka: re-reading {}[{}] from offset {}", topic, p, from);
      it = rewind.erase(it);
    }
  }

  // Until every consumed message and its offset record are durable (committed, with a changelog).
  void WaitForInFlight(std::chrono::seconds limit) {
    const auto deadline = SteadyClock::now() + limit;
    while ((tracker.TotalInFlight() > 0 || offsets_in_flight->load() > 0) &&
           SteadyClock::now() < deadline) {
      if (changelog && fatal.load()) return;  // no commit can come: nothing more becomes durable
      producer->poll(changelog ? 2 : 10);
      if (changelog) CommitEpoch();
      if (abort_requested.load()) DiscardEpoch(/*reread=*/true);  // what was in flight fails
      DrainCompletions();
    }
  }

  void Backpressure() {
    const bool over = tracker.TotalInFlight() >= options.max_in_flight_messages ||
                      engine.TotalQueueDepth() >= options.pause_queue_depth;
    const bool under = tracker.TotalInFlight() < options.max_in_flight_messages / 2 &&
                       engine.TotalQueueDepth() < options.pause_queue_depth / 2;
    if (!paused && over) {
      SetPaused(true);
    } else if (paused && under) {
      SetPaused(false);
    }
  }

  // Pausing stops calling consume(), not librdkafka's pause(): a paused partition loses its
  // prefetched messages and fetches them again on resume, which left the workers idle for up to
  // half a second per pause. Unconsumed messages wait in librdkafka's prefetch queue, bounded by
  // queued.min.messages and queued.max.messages.kbytes, and then in the broker. Stopping for long
  // is safe: heartbeats run on librdkafka's threads, and a pause lasts as long as the workers need
  // to drain half their queues (milliseconds), far below max.poll.interval.ms.
  void SetPaused(bool pause) {
    paused = pause;
    paused_gauge->Set(pause ? 1 : 0);
    if (pause) pauses->Increment();
  }

  void UpdateLag() {
    for (uint32_t p : assigned) {
      int64_t low = 0, high = 0;
      if (consumer->get_watermark_offsets(options.topic, static_cast<int32_t>(p), &low, &high) !=
          RdKafka::ERR_NO_ERROR) {
        continue;
      }
      std::vector<RdKafka::TopicPartition*> tps = {
          RdKafka::TopicPartition::create(options.topic, static_cast<int>(p))};
      consumer->position(tps);
      // No position right after an assignment or a seek: the watermark it resumes from, not the
      // partition's start (which showed a re-read as the whole partition's lag).
      const auto resume = committed.find(p);
      const int64_t pos = tps[0]->offset() >= 0                              ? tps[0]->offset()
                          : resume != committed.end() && resume->second >= 0 ? resume->second
                                                                             : low;
      RdKafka::TopicPartition::destroy(tps);
      auto& gauge = lag_gauges[p];
      if (!gauge) gauge = &lag_family->Add({{"partition", std::to_string(p)}});
      gauge->Set(static_cast<double>(std::max<int64_t>(0, high - pos)));
      SetView(p, std::max<int64_t>(0, high - pos));
    }
  }

  void ProbeBroker() {
    RdKafka::Metadata* md = nullptr;
    if (consumer->metadata(false, nullptr, &md, 1000) == RdKafka::ERR_NO_ERROR) broker_up = true;
    delete md;
  }

  KafkaOptions options;
  ProfileEngine& engine;
  const Clock& clock;
  CollectorParser parser;
  KafkaChangelog* const changelog;  // null: state in RocksDB only
  KvStore* const store;             // restored into (with a changelog)
  ChangelogStandby* const standby;  // null: no standby copies here
  // Commits come from the committer thread and from this one; one at a time.
  std::mutex commit_mu;
  std::mutex offsets_mu;
  std::map<uint32_t, int64_t> txn_offsets;  // guarded by offsets_mu: watermarks to commit
  std::thread committer;
  std::atomic<bool> committer_stop{false};
  std::atomic<bool> commit_failed{false};  // the fatal error was a failed changelog commit
  // A commit was refused in a way that loses only the open epoch (KafkaChangelog::Commit's
  // Aborted): the consumer thread aborts it and reads its messages again.
  std::atomic<bool> abort_requested{false};
  bool left_group = false;  // consumer thread: unsubscribed after it
  // Offset records handed to the engine and not yet durable (shared with their callbacks).
  std::shared_ptr<std::atomic<int64_t>> offsets_in_flight =
      std::make_shared<std::atomic<int64_t>>(0);
  std::unique_ptr<RdKafka::KafkaConsumer> consumer;  // replaced only by Rejoin, under commit_mu
  std::unique_ptr<RdKafka::Conf> consumer_conf;
  std::optional<SteadyClock::time_point> session_timed_out;  // consumer thread (event_cb)
  std::optional<SteadyClock::time_point> last_rejoin;        // consumer thread
  std::atomic<bool> rejoin_requested{false};
  // Cluster mode (with a changelog): the internal topic's partitions of the assigned ones, by
  // manual assignment (no group of its own), read-committed.
  std::unique_ptr<RdKafka::KafkaConsumer> inbox;
  std::string internal_topic;
  int internal_assigned = 0;  // consumer thread
  SteadyClock::time_point last_internal;
  std::vector<ShardMessage> pending_messages;  // decoded, not yet handed to the engine
  std::vector<Completion> pending_message_offsets;
  std::unique_ptr<RdKafka::Producer> producer;  // dead letters
  std::thread thread;
  std::atomic<bool> stopping{false};
  std::atomic<bool> broker_up{false};
  std::atomic<bool> in_group{false};
  std::atomic<bool> fatal{false};  // a fatal consumer error (e.g. fenced): never ready again
  // What GET /v1/cluster shows of this instance: its partitions and their lag (-1: not known yet).
  mutable std::mutex view_mu;
  std::map<uint32_t, int64_t> view;       // guarded by view_mu
  std::map<uint32_t, int64_t> restoring;  // guarded by view_mu: partition -> records applied
  std::atomic<int> restoring_count{0};
  bool paused = false;
  static constexpr size_t kMaxBatchEvents = 2000;
  std::vector<Event> pending_events;  // parsed, not yet handed to the engine
  std::vector<Completion> pending_offsets;
  SteadyClock::time_point pending_since;
  OffsetTracker tracker;
  std::unordered_set<uint32_t> assigned;
  std::unordered_set<uint32_t> rewind;
  std::unordered_map<uint32_t, int64_t> committed;
  std::vector<std::unique_ptr<DeadLetter>> pending_letters;
  std::mutex done_mu;
  std::vector<Completion> done;  // guarded by done_mu

  prometheus::Counter* consumed;
  std::unordered_map<std::string, prometheus::Counter*> dead_lettered;
  prometheus::Counter* rebalances;
  prometheus::Counter* retried;
  prometheus::Gauge* paused_gauge;
  prometheus::Gauge* assigned_gauge;
  prometheus::Gauge* fatal_gauge;
  prometheus::Counter* pauses;
  prometheus::Family<prometheus::Gauge>* lag_family;
  std::unordered_map<uint32_t, prometheus::Gauge*> lag_gauges;
  prometheus::Histogram* batch_events;
  prometheus::Counter* internal_consumed;
  prometheus::Counter* epochs_aborted;
  prometheus::Counter* rejoins;
  prometheus::Counter* internal_corrupt;
  prometheus::Counter* restored_records;
  prometheus::Gauge* restoring_gauge;
  prometheus::Histogram* restore_seconds;
};

StatusOr<std::unique_ptr<KafkaConsumer>> KafkaConsumer::Create(
    const KafkaOptions& options, ProfileEngine& engine, prometheus::Registry& registry,
    const Clock& clock, const CollectorLimits& limits, KafkaChangelog* changelog, KvStore* store,
    ChangelogStandby* standby) {
  if (changelog && !store) return absl::InvalidArgumentError("kafka: a changelog needs the store");
  auto impl =
      std::make_unique<Impl>(options, engine, registry, clock, limits, changelog, store, standby);
  const size_t prefetch_kbytes = std::clamp<size_t>(options.prefetch_messages, 1024, 2097151);
  std::vector<std::pair<std::string, std::string>> settings = {
      {"bootstrap.servers", options.brokers},
      {"group.id", options.group},
      {"client.id", ProcessorClientId(options.advertised_http_addr)},
      {"enable.auto.commit", "false"},  // offsets live in RocksDB
      {"auto.offset.reset", "earliest"},
      {"enable.partition.eof", "true"},
      // Incremental rebalances: partitions that do not move keep flowing while others
      // do (docs/kafka.md#membership).
      {"partition.assignment.strategy", "cooperative-sticky"},
      // When a partition's prefetch queue reaches one of these limits, librdkafka waits
      // fetch.queue.backoff.ms before it fetches for it again (1 s by default, which made a
      // 100,000-message queue run dry): 20 ms lets a small queue keep the workers fed. Measured
      // in docs/performance.md (librdkafka 2.8 and the prefetch queue).
      {"queued.max.messages.kbytes", std::to_string(prefetch_kbytes)},
      {"fetch.queue.backoff.ms", "20"},
      {"fetch.wait.max.ms", "50"},
      {"max.partition.fetch.bytes", "4194304"},
      {"queued.min.messages", std::to_string(options.prefetch_messages)},
      // A crashed member holds its partitions until its session expires: keep it short.
      {"session.timeout.ms", "10000"},
      {"heartbeat.interval.ms", "1000"},
  };
  // Static membership: a restart within the session timeout keeps the partitions, with no
  // rebalance; a second process with the same id fences the first (a fatal error, below).
  if (!options.instance_id.empty()) settings.emplace_back("group.instance.id", options.instance_id);
  // Offsets of other members' aborted or open transactions are not read as committed.
  if (changelog) settings.emplace_back("isolation.level", "read_committed");
  ASSIGN_OR_RETURN(auto conf,
                   MakeKafkaConf(settings, {.events = impl.get(), .rebalance = impl.get()}));
  std::string err;
  impl->consumer.reset(RdKafka::KafkaConsumer::create(conf.get(), err));
  impl->consumer_conf = std::move(conf);  // kept: a consumer fenced by its own rejoin is recreated
  if (!impl->consumer) return absl::InvalidArgumentError("kafka: consumer: " + err);

  if (changelog) {
    impl->internal_topic = InternalTopic(options);
    ASSIGN_OR_RETURN(auto iconf,
                     MakeKafkaConf(
                         // Its offsets live in RocksDB (InternalOffsetKey).
                         Plus(ManualReaderSettings(
                                  options.brokers, options.group + "-internal-reader",
                                  ProcessorClientId(options.advertised_http_addr) + "-internal"),
                              {{"isolation.level", "read_committed"},
                               {"fetch.wait.max.ms", "10"},
                               {"fetch.queue.backoff.ms", "10"}}),
                         {.events = impl.get()}));
    impl->inbox.reset(RdKafka::KafkaConsumer::create(iconf.get(), err));
    if (!impl->inbox) return absl::InvalidArgumentError("kafka: internal-topic consumer: " + err);
  }
  ASSIGN_OR_RETURN(auto pconf, MakeKafkaConf({{"bootstrap.servers", options.brokers},
                                              {"client.id", "ecrm-dead-letters"},
                                              {"enable.idempotence", "true"}},
                                             {.events = impl.get(), .delivery = impl.get()}));
  impl->producer.reset(RdKafka::Producer::create(pconf.get(), err));
  if (!impl->producer) return absl::InvalidArgumentError("kafka: dead-letter producer: " + err);
  return std::unique_ptr<KafkaConsumer>(new KafkaConsumer(std::move(impl)));
}

KafkaConsumer::KafkaConsumer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

KafkaConsumer::~KafkaConsumer() { Stop(); }

void KafkaConsumer::Start() {
  const auto err = impl_->consumer->subscribe({impl_->options.topic});
  if (err != RdKafka::ERR_NO_ERROR) {
    spdlog::error("kafka: subscribe to {}: {}", impl_->options.topic, RdKafka::err2str(err));
  }
  impl_->thread = std::thread([this] {
    pthread_setname_np(pthread_self(), "ecrm-kafka");
    impl_->Run();
  });
  if (impl_->changelog) {
    impl_->committer = std::thread([this] {
      pthread_setname_np(pthread_self(), "ecrm-commit");
      impl_->RunCommitter();
    });
  }
}

void KafkaConsumer::Stop() {
  if (!impl_->thread.joinable()) return;
  impl_->stopping = true;
  impl_->thread.join();
  impl_->Flush();
  impl_->WaitForInFlight(std::chrono::seconds(30));
  if (impl_->committer.joinable()) {
    impl_->committer_stop = true;
    impl_->committer.join();
  }
  impl_->CommitEpoch();
  impl_->producer->flush(5000);
  // Runs the revoke callback; a static member sends no LeaveGroup (docs/kafka.md#membership).
  impl_->consumer->close();
  if (impl_->inbox) impl_->inbox->close();
}

std::map<uint32_t, int64_t> KafkaConsumer::Partitions() const {
  std::lock_guard<std::mutex> lock(impl_->view_mu);
  return impl_->view;
}

bool KafkaConsumer::Ready() const {
  return impl_->broker_up.load() && impl_->in_group.load() && !impl_->fatal.load() &&
         impl_->restoring_count.load() == 0;
}

std::map<uint32_t, int64_t> KafkaConsumer::Restoring() const {
  std::lock_guard<std::mutex> lock(impl_->view_mu);
  return impl_->restoring;
}

StatusOr<int> KafkaConsumer::TopicPartitions(const std::string& brokers, const std::string& topic,
                                             int timeout_ms) {
  // The first start's first request: a refused password or certificate shows here, as the
  // error events the client got while it waited (the metadata call itself only times out).
  struct LastError final : RdKafka::EventCb {
    void event_cb(RdKafka::Event& event) override {
      if (event.type() != RdKafka::Event::EVENT_ERROR) return;
      const char* kind = CountKafkaError(event.err());
      std::lock_guard<std::mutex> lock(mu);
      if (message.empty() || event.err() == RdKafka::ERR__AUTHENTICATION ||
          event.err() == RdKafka::ERR__SSL) {
        message = std::string(kind) + ": " + event.str();
      }
    }
    std::mutex mu;
    std::string message;
  } last_error;
  ASSIGN_OR_RETURN(auto conf,
                   MakeKafkaConf({{"bootstrap.servers", brokers}}, {.events = &last_error}));
  std::string err;
  std::unique_ptr<RdKafka::Producer> client(RdKafka::Producer::create(conf.get(), err));
  if (!client) return absl::InvalidArgumentError("kafka: " + err);
  std::unique_ptr<RdKafka::Topic> t(RdKafka::Topic::create(client.get(), topic, nullptr, err));
  RdKafka::Metadata* md = nullptr;
  const auto code = client->metadata(false, t.get(), &md, timeout_ms);
  std::unique_ptr<RdKafka::Metadata> owned(md);
  if (code != RdKafka::ERR_NO_ERROR) {
    client->poll(0);  // serves the error events queued meanwhile to last_error
    std::lock_guard<std::mutex> lock(last_error.mu);
    return absl::UnavailableError(
        "kafka: metadata from " + brokers + ": " + RdKafka::err2str(code) +
        (last_error.message.empty() ? "" : " (" + last_error.message + ")"));
  }
  for (const auto* tm : *owned->topics()) {
    if (tm->topic() != topic) continue;
    if (tm->err() != RdKafka::ERR_NO_ERROR) {
      return absl::NotFoundError("kafka: topic " + topic + ": " + RdKafka::err2str(tm->err()));
    }
    return static_cast<int>(tm->partitions()->size());
  }
  return absl::NotFoundError("kafka: topic " + topic + " does not exist");
}

}  // namespace ecrm
