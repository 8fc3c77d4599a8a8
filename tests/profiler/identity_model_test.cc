// The identity reference-model test (docs/identity.md#how-order-independence-is-tested): seeded
// random histories of visitors, devices, logins, emails, aliases, CRM records and duplicates are
// sent to a real ProfileEngine in a random arrival order, split over random requests (several in
// flight at once), 1, 2 or 4 shards and restarts. Every profile, read by each of its identifiers,
// must equal what the reference model gives: all events sorted by event time, each connected
// component of the identity graph folded with the same ProfileUpdater. A failing history is shrunk
// to a minimal one and printed as a scenario file for tests/identity/scenarios/.
//
// ECRM_MODEL_HISTORIES (default 1500) and ECRM_MODEL_SEED (default 1) set the run; the long form is
// bench/identity/model.sh (100,000 histories).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <map>
#include <mutex>
#include <numeric>
#include <random>
#include <set>
#include <span>
#include <sstream>
#include <thread>
#include <utility>

#include "common/murmur2.h"
#include "common/time_format.h"
#include "profiler/engine.h"
#include "profiler/graph_check.h"
#include "profiler/profile_codec.h"
#include "profiler/profile_updater.h"
#include "tests/testutil/temp_dir.h"

namespace ecrm {
namespace {

constexpr TimeMs kT0 = 1'790'000'000'000;
constexpr uint32_t kModelPartitions = 16;

struct History {
  std::vector<Event> events;          // distinct events, each with a unique messageId
  std::vector<size_t> arrival;        // indices into events, in arrival order (duplicates repeat)
  std::vector<size_t> request_end;    // arrival positions where a request ends (ascending)
  std::vector<size_t> restart_after;  // request numbers after which the engine restarts
  // Erasures (DELETE by an identifier) between rounds: request number after which -> identifier.
  std::map<size_t, std::string> erase_after;
  int shards = 2;
  // 0: one engine writing straight to its store (embedded mode). N > 0: a cluster of N instances
  // in deferred mode, each owning some partitions, exchanging messages as through the internal
  // topic; a restart also moves partitions between them (with their state, as a restore would).
  int instances = 0;
  int in_flight = 1;            // requests submitted at once (a round)
  bool shared_devices = false;  // people share devices: merge protection decides (see below)
};

// A person has devices, maybe a user id and maybe an email; no device or identifier is shared, so
// no merge-protection rule ever applies and the components are determined by the links alone.
History Generate(uint64_t seed, bool shared_devices = false) {
  std::mt19937_64 rng(seed);
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<uint64_t>(n)); };
  History h;
  const int people = 1 + pick(4);
  struct Person {
    std::vector<std::string> devices;
    std::string user, email, crm_id;
  };
  std::vector<Person> persons(static_cast<size_t>(people));
  for (int p = 0; p < people; p++) {
    Person& person = persons[static_cast<size_t>(p)];
    const int devices = 1 + pick(3);
    for (int d = 0; d < devices; d++) {
      person.devices.push_back("a" + std::to_string(p) + "-" + std::to_string(d));
    }
    if (pick(10) < 8) person.user = "u" + std::to_string(p);
    if (pick(10) < 5) person.email = "p" + std::to_string(p) + "@example.com";
    if (pick(10) < 4) person.crm_id = "C-" + std::to_string(p);
  }
  const int n = 2 + pick(14);
  for (int i = 0; i < n; i++) {
    const Person& person = persons[static_cast<size_t>(pick(people))];
    // With shared devices, anyone may use anyone's device: two user ids meet on one device.
    const Person& owner = shared_devices ? persons[static_cast<size_t>(pick(people))] : person;
    const std::string& device =
        owner.devices[static_cast<size_t>(pick(static_cast<int>(owner.devices.size())))];
    Event e;
    e.message_id = "m" + std::to_string(i);
    e.timestamp = kT0 + static_cast<TimeMs>(pick(600)) * 60'000 + pick(1000);
    e.received_at = e.timestamp;
    e.client_time = e.timestamp;
    const int kind = pick(10);
    const std::string trait = "\"v" + std::to_string(pick(100)) + "\"";
    if (kind <= 2) {  // a track or page on a device
      e.type = kind == 2 ? EventType::kPage : EventType::kTrack;
      e.anonymous_id = device;
      if (kind == 1) {
        e.event = "Order Completed";
        e.revenue = 10 + pick(90);
        e.has_revenue = true;
      } else if (kind == 0) {
        e.event = "Clicked";
      }
    } else if (kind <= 5) {  // identify on a device: a login, maybe with an email
      e.type = EventType::kIdentify;
      e.anonymous_id = device;
      e.user_id = person.user;
      if (pick(2) == 0) e.email = person.email;
      e.traits = {{"plan", trait}};
    } else if (kind == 6 && !person.user.empty()) {  // a server-side event by user id only
      e.type = pick(2) ? EventType::kTrack : EventType::kIdentify;
      if (e.type == EventType::kTrack) e.event = "Clicked";
      if (e.type == EventType::kIdentify) e.traits = {{"plan", trait}};
      e.user_id = person.user;
    } else if (kind == 7 && !person.user.empty() && !shared_devices) {
      // alias: this device is that user (an explicit link, which merge protection lets through:
      // not sent with shared devices, whose check is that no profile holds two user ids)
      e.type = EventType::kAlias;
      e.previous_id = device;
      e.user_id = person.user;
    } else if (kind == 8 && (!person.user.empty() || !person.email.empty())) {  // a CRM record
      e.type = EventType::kIdentify;
      e.channel = "crm";
      e.user_id = person.user;
      e.email = person.email;
      if (!person.crm_id.empty()) e.identifiers = {{"crm_id", person.crm_id}};
      e.traits = {{"tier", trait}};
    } else {
      e.type = EventType::kTrack;
      e.event = "Clicked";
      e.anonymous_id = device;
    }
    h.events.push_back(std::move(e));
  }
  for (size_t i = 0; i < h.events.size(); i++) h.arrival.push_back(i);
  std::shuffle(h.arrival.begin(), h.arrival.end(), rng);
  for (int d = pick(3); d > 0; d--) {  // retries: a later copy of an earlier arrival
    const size_t at = static_cast<size_t>(pick(static_cast<int>(h.arrival.size())));
    h.arrival.insert(
        h.arrival.begin() +
            static_cast<long>(at + 1 +
                              static_cast<size_t>(pick(static_cast<int>(h.arrival.size() - at)))),
        h.arrival[at]);
  }
  for (size_t pos = 0; pos < h.arrival.size();) {
    pos = std::min(h.arrival.size(), pos + 1 + static_cast<size_t>(pick(4)));
    h.request_end.push_back(pos);
  }
  const int shard_choice[] = {1, 2, 4};
  h.shards = shard_choice[pick(3)];
  h.in_flight = 1 + pick(4);
  if (pick(4) == 0)
    h.restart_after.push_back(static_cast<size_t>(pick(static_cast<int>(h.request_end.size()))));
  if (!shared_devices && pick(6) == 0) {  // (with shared devices the model has no components)
    const Event& e = h.events[static_cast<size_t>(pick(static_cast<int>(h.events.size())))];
    const std::string identifier = !e.user_id.empty() && pick(2) ? "user_id:" + e.user_id
                                   : !e.anonymous_id.empty()     ? "anonymous_id:" + e.anonymous_id
                                   : !e.email.empty()            ? "email:" + e.email
                                                                 : "user_id:" + e.user_id;
    h.erase_after[static_cast<size_t>(pick(static_cast<int>(h.request_end.size())))] = identifier;
  }
  h.shared_devices = shared_devices;
  return h;
}

// The identifiers an event links, as "type:value".
std::vector<std::string> Links(const Event& e) {
  std::vector<std::string> out;
  if (!e.anonymous_id.empty()) out.push_back("anonymous_id:" + e.anonymous_id);
  if (!e.user_id.empty()) out.push_back("user_id:" + e.user_id);
  if (!e.email.empty()) out.push_back("email:" + e.email);
  if (!e.previous_id.empty()) out.push_back("anonymous_id:" + e.previous_id);
  for (const auto& [type, value] : e.identifiers) out.push_back(type + ":" + value);
  return out;
}

struct Expected {
  std::set<std::string> identifiers;
  Profile profile;
};

// The events in effect at the end (in arrival order of rounds) and the identifiers each links.
struct Live {
  std::vector<const Event*> events;
  std::map<const Event*, std::vector<std::string>> links;
};

// Union-find over "type:value" identifiers, linked by the events in effect.
class Components {
 public:
  explicit Components(const Live& live) {
    for (const Event* e : live.events) {
      const auto& links = live.links.at(e);
      for (const auto& l : links) parent_.emplace(l, l);
      for (size_t i = 1; i < links.size(); i++) parent_[Find(links[i])] = Find(links[0]);
    }
  }
  std::string Find(const std::string& x) {
    auto it = parent_.find(x);
    if (it == parent_.end() || it->second == x) return x;
    return it->second = Find(it->second);
  }
  const std::map<std::string, std::string>& nodes() const { return parent_; }

 private:
  std::map<std::string, std::string> parent_;
};

// A repeated messageId is a duplicate while the first copy is in effect. An erasure between rounds
// drops the erased person's events (and with them what dedup knew of them) and enters their
// identifiers in the erasure ledger: every event of the test is dated before the erasure (the
// engine's clock is the real one), so a later event routed by an erased identifier is dropped,
// and a later event's claim of one is (the event keeps its other identifiers).
Live InEffect(const History& h) {
  Live live;
  std::set<std::string> ids;
  std::set<std::string> erased;
  size_t start = 0;
  for (size_t r = 0; r < h.request_end.size(); r += static_cast<size_t>(h.in_flight)) {
    const size_t round_end = std::min(h.request_end.size(), r + h.in_flight);
    for (size_t pos = start; pos < h.request_end[round_end - 1]; pos++) {
      const Event& e = h.events[h.arrival[pos]];
      std::vector<std::string> links = Links(e);
      if (erased.contains(links.front())) continue;
      if (!ids.insert(e.message_id).second) continue;
      std::erase_if(links, [&](const std::string& l) { return erased.contains(l); });
      live.events.push_back(&e);
      live.links[&e] = std::move(links);
    }
    start = h.request_end[round_end - 1];
    for (size_t k = r; k < round_end; k++) {
      const auto erase = h.erase_after.find(k);
      if (erase == h.erase_after.end()) continue;
      Components c(live);
      if (!c.nodes().contains(erase->second)) continue;
      const std::string root = c.Find(erase->second);
      for (const auto& [id, _] : c.nodes()) {
        if (c.Find(id) == root) erased.insert(id);
      }
      std::erase_if(live.events, [&](const Event* e) {
        if (c.Find(live.links.at(e).front()) != root) return false;
        ids.erase(e->message_id);
        live.links.erase(e);
        return true;
      });
    }
  }
  return live;
}

// The reference model: union the identifiers of the events in effect, then fold each component's
// events in event-time order with the same ProfileUpdater.
std::vector<Expected> Model(const History& h, const ProfileUpdater& updater) {
  Live live = InEffect(h);
  Components c(live);
  std::map<std::string, Expected> by_root;
  for (const auto& [id, _] : c.nodes()) by_root[c.Find(id)].identifiers.insert(id);
  std::vector<const Event*> ordered = live.events;
  std::stable_sort(ordered.begin(), ordered.end(),
                   [](const Event* a, const Event* b) { return a->timestamp < b->timestamp; });
  for (const Event* e : ordered) {
    updater.Apply(by_root[c.Find(live.links.at(e).front())].profile, *e);
  }
  std::vector<Expected> out;
  for (auto& [_, x] : by_root) out.push_back(std::move(x));
  return out;
}

// The state log of one cluster instance: epochs, and the messages each sent to other instances.
class ClusterLog final : public StateLog {
 public:
  StatusOr<uint64_t> Append(const WriteBatch&, std::span<const OutboundMessage> messages) override {
    std::lock_guard<std::mutex> lock(mu_);
    out_.insert(out_.end(), messages.begin(), messages.end());
    return epoch_;
  }
  // Closes the open epoch: its number and the messages sent in it.
  std::pair<uint64_t, std::vector<OutboundMessage>> Close() {
    std::lock_guard<std::mutex> lock(mu_);
    return {epoch_++, std::exchange(out_, {})};
  }

 private:
  std::mutex mu_;
  uint64_t epoch_ = 1;
  std::vector<OutboundMessage> out_;
};

// N instances sharing the partitions, as Kafka mode runs them: each has its own store, engine and
// log; a pump thread commits every instance's epochs and delivers their outbound messages to the
// owners (in order per sender, as one producer's messages to one partition are), which is what
// the changelog transaction and the internal topic do. Requests go to the owner of each event's
// routing partition, as the events topic's partitioning does.
class Cluster {
 public:
  Cluster(int instances, int shards, uint32_t partitions, std::shared_ptr<MemoryEnv> env,
          const std::string& dir, uint64_t seed)
      : shards_(shards), partitions_(partitions), env_(std::move(env)), rng_(seed) {
    nodes_.resize(static_cast<size_t>(instances));
    for (size_t i = 0; i < nodes_.size(); i++) {
      auto store = KvStore::Open({.path = dir + "/node" + std::to_string(i),
                                  .block_cache_bytes = 1 << 20,
                                  .memory_env = env_});
      ECRM_CHECK(store.ok());
      nodes_[i].store = *std::move(store);
    }
    for (uint32_t p = 0; p < partitions_; p++) owner_.push_back(static_cast<int>(p) % instances);
    Open();
  }
  ~Cluster() { Close(); }

  // Splits the events by the owner of their routing partition; `done` runs when all are done.
  void Submit(std::vector<Event>&& events, AckGroup::Callback done) {
    std::vector<std::vector<Event>> parts(nodes_.size());
    for (auto& e : events) {
      parts[static_cast<size_t>(owner_[PartitionForKey(e.RoutingKey(), partitions_)])].push_back(
          std::move(e));
    }
    auto group = std::make_shared<AckGroup>(static_cast<int>(nodes_.size()), std::move(done));
    for (size_t i = 0; i < nodes_.size(); i++) {
      const Status s =
          nodes_[i].engine->Submit(std::move(parts[i]), [group](Status st) { group->Done(st); });
      if (!s.ok()) group->Done(s);
    }
  }

  // On the instance owning the identifier's partition, as an HTTP request routed there would be.
  StatusOr<std::string> DeleteProfile(std::string_view type, std::string_view value,
                                      AckGroup::Callback done) {
    const int owner = owner_[PartitionForKey(value, partitions_)];
    return nodes_[static_cast<size_t>(owner)].engine->DeleteProfile(type, value, std::move(done));
  }

  // Everything delivered, committed and written; then the instances stop and start again, and
  // every partition may move to another instance, its state copied there first.
  void Restart() {
    Close();
    std::vector<int> next(owner_.size());
    for (auto& o : next) o = static_cast<int>(rng_() % nodes_.size());
    for (uint32_t p = 0; p < partitions_; p++) {
      if (next[p] != owner_[p])
        Move(p, *nodes_[static_cast<size_t>(owner_[p])].store,
             *nodes_[static_cast<size_t>(next[p])].store);
    }
    owner_ = next;
    Open();
  }

  // A store holding each partition's state as its owner has it, after everything settled: what
  // the checks read.
  std::unique_ptr<KvStore> Union(const std::string& path) {
    Quiesce();
    for (auto& n : nodes_) n.engine->Sync();  // committed batches are written asynchronously
    auto store = KvStore::Open({.path = path, .block_cache_bytes = 1 << 20, .memory_env = env_});
    ECRM_CHECK(store.ok());
    for (uint32_t p = 0; p < partitions_; p++) {
      Move(p, *nodes_[static_cast<size_t>(owner_[p])].store, **store);
    }
    return *std::move(store);
  }

  // Until a whole turn of the pump finds every instance idle with nothing to deliver.
  void Quiesce() {
    if (!pump_.joinable()) return;
    for (int quiet = 0; quiet < 3;) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      bool idle = true;
      for (auto& n : nodes_) idle = idle && n.engine->Idle();
      quiet = idle && delivered_in_turn_.load() == 0 ? quiet + 1 : 0;
    }
  }

 private:
  struct Node {
    std::unique_ptr<KvStore> store;
    std::shared_ptr<prometheus::Registry> registry;
    std::unique_ptr<ClusterLog> log;
    std::unique_ptr<ProfileEngine> engine;
  };

  void Open() {
    for (size_t i = 0; i < nodes_.size(); i++) {
      Node& n = nodes_[i];
      n.registry = std::make_shared<prometheus::Registry>();
      n.log = std::make_unique<ClusterLog>();
      EngineOptions options;
      options.shards = shards_;
      options.partitions = partitions_;
      options.owned_by_assignment = true;
      options.shard.state_log = n.log.get();
      auto engine = ProfileEngine::Create(*n.store, *n.registry, options);
      ECRM_CHECK(engine.ok());
      n.engine = *std::move(engine);
      n.engine->Start();
    }
    stop_ = false;
    pump_ = std::thread([this] { Pump(); });
    for (size_t i = 0; i < nodes_.size(); i++) {
      std::vector<uint32_t> mine;
      for (uint32_t p = 0; p < partitions_; p++) {
        if (owner_[p] == static_cast<int>(i)) mine.push_back(p);
      }
      nodes_[i].engine->SetOwned(mine, true);
      nodes_[i].engine->ResumePendingMerges(mine);
    }
  }

  void Close() {
    if (!pump_.joinable()) return;
    Quiesce();
    stop_ = true;
    pump_.join();
    for (auto& n : nodes_) {
      n.engine->Stop();
      n.engine.reset();
    }
  }

  void Pump() {
    while (!stop_.load()) {
      size_t delivered = 0;
      for (auto& n : nodes_) {
        auto [epoch, messages] = n.log->Close();
        n.engine->EpochCommitted(epoch, std::make_shared<Checkpoints>());
        for (auto& out : messages) {
          auto m = DecodeShardMessage(out.data);
          ECRM_CHECK(m.ok());
          ECRM_CHECK(DestinationPartition(*m) == out.partition);
          std::vector<ShardMessage> one;
          one.push_back(*std::move(m));
          Node& to = nodes_[static_cast<size_t>(owner_[out.partition])];
          ECRM_CHECK(&to != &n);  // a message for a local partition never leaves its instance
          ECRM_CHECK(to.engine
                         ->SubmitMessages(std::move(one),
                                          [](Status s) {
                                            if (s.ok()) return;
                                            std::fprintf(stderr, "a delivered message failed: %s\n",
                                                         s.ToString().c_str());
                                            std::abort();
                                          })
                         .ok());
          delivered++;
        }
      }
      delivered_in_turn_ = delivered;
      std::this_thread::sleep_for(std::chrono::microseconds(300));
    }
  }

  // Copies partition p's state from one store to another (replacing what that one had of it), as
  // a restore from the changelog does.
  static void Move(uint32_t p, const KvStore& from, KvStore& to) {
    WriteBatch batch = to.NewBatch();
    for (const auto& [cf, prefix] : PartitionKeyPrefixes(p)) {
      std::string end = prefix;
      end.back()++;
      batch.DeleteRange(static_cast<Cf>(cf), prefix, end);
      ECRM_CHECK(from.Scan(static_cast<Cf>(cf), prefix,
                           [&](std::string_view key, std::string_view value) {
                             batch.Put(static_cast<Cf>(cf), key, value);
                             return true;
                           })
                     .ok());
    }
    ECRM_CHECK(to.Write(batch).ok());
  }

  const int shards_;
  const uint32_t partitions_;
  std::shared_ptr<MemoryEnv> env_;
  std::mt19937_64 rng_;
  std::vector<Node> nodes_;
  std::vector<int> owner_;  // partition -> instance; changed only while the pump is stopped
  std::thread pump_;
  std::atomic<bool> stop_{false};
  std::atomic<size_t> delivered_in_turn_{0};
};

class Runner {
 public:
  explicit Runner(const History& h) : h_(h) {}

  // Runs the history; returns the differences from the model (empty: it holds).
  std::vector<std::string> Run() {
    testing::TempDir dir;
    if (std::getenv("ECRM_TRACE")) std::fprintf(stderr, "---- run: %zu events\n", h_.events.size());
    Open(dir.Sub("db"));
    std::vector<std::string> problems;
    size_t start = 0;
    for (size_t r = 0; r < h_.request_end.size(); r += static_cast<size_t>(h_.in_flight)) {
      std::vector<std::future<Status>> pending;
      std::vector<std::shared_ptr<std::promise<Status>>> promises;
      for (size_t k = r; k < std::min(h_.request_end.size(), r + h_.in_flight); k++) {
        std::vector<Event> request;
        for (size_t pos = start; pos < h_.request_end[k]; pos++) {
          request.push_back(h_.events[h_.arrival[pos]]);
        }
        start = h_.request_end[k];
        auto promise = std::make_shared<std::promise<Status>>();
        pending.push_back(promise->get_future());
        if (cluster_) {
          cluster_->Submit(std::move(request), [promise](Status st) { promise->set_value(st); });
          continue;
        }
        const Status s =
            engine_->Submit(std::move(request), [promise](Status st) { promise->set_value(st); });
        if (!s.ok()) promise->set_value(s);
      }
      for (auto& f : pending) {
        const Status s = f.get();
        if (!s.ok()) problems.push_back("request failed: " + s.ToString());
      }
      for (size_t k = r; k < r + static_cast<size_t>(h_.in_flight); k++) {
        const auto erase = h_.erase_after.find(k);
        if (erase == h_.erase_after.end()) continue;
        const auto colon = erase->second.find(':');
        std::promise<Status> erased;
        // In a cluster an acknowledgement means durable, not yet applied everywhere: what an
        // event sent to other instances is applied there after its epoch commits. An erasure
        // in the model comes after all of it (and before the next round), so wait for both.
        if (cluster_) cluster_->Quiesce();
        const std::string type = erase->second.substr(0, colon);
        const std::string value = erase->second.substr(colon + 1);
        auto on_erased = [&](Status st) { erased.set_value(st); };
        auto deleted = cluster_ ? cluster_->DeleteProfile(type, value, on_erased)
                                : engine_->DeleteProfile(type, value, on_erased);
        if (deleted.ok()) {
          const Status st = erased.get_future().get();
          if (!st.ok()) problems.push_back("erasure failed: " + st.ToString());
        } else if (!absl::IsNotFound(deleted.status())) {
          problems.push_back("erasure refused: " + deleted.status().ToString());
        }
        if (cluster_) cluster_->Quiesce();
      }
      for (size_t after : h_.restart_after) {
        if (after >= r && after < r + static_cast<size_t>(h_.in_flight)) {
          if (cluster_) {
            cluster_->Restart();
          } else {
            Open(dir.Sub("db"));
          }
        }
      }
    }
    if (cluster_) {
      // The checks read one store with every partition's state from its owner, through a plain
      // engine (no instance alone can follow an alias to a profile another one holds).
      store_ = cluster_->Union(dir.Sub("union"));
      cluster_.reset();
      registry_ = std::make_shared<prometheus::Registry>();
      EngineOptions options;
      options.shards = 1;
      options.partitions = kModelPartitions;
      auto engine = ProfileEngine::Create(*store_, *registry_, options);
      ECRM_CHECK(engine.ok());
      engine_ = *std::move(engine);
      engine_->Start();
    }
    if (h_.shared_devices) {
      CheckConserved(problems);
    } else {
      const ProfileUpdater updater(ProfilerConfig{});
      for (const Expected& x : Model(h_, updater)) Compare(x, problems);
    }
    engine_->Stop();
    auto counts = CheckIdentityGraph(
        *store_, [&](const GraphViolation& v) { problems.push_back("graph: " + v.message); });
    if (!counts.ok()) problems.push_back("graph check failed: " + counts.status().ToString());
    if (!problems.empty() && std::getenv("ECRM_MODEL_DUMP")) Dump(problems);
    engine_.reset();
    store_.reset();
    return problems;
  }

 private:
  void Open(const std::string& path) {
    engine_.reset();
    store_.reset();
    if (h_.instances > 0) {
      cluster_ = std::make_unique<Cluster>(h_.instances, h_.shards, kModelPartitions, env_, path,
                                           h_.events.size() * 7919 + h_.arrival.size());
      return;
    }
    auto store = KvStore::Open({.path = path, .block_cache_bytes = 1 << 20, .memory_env = env_});
    ECRM_CHECK(store.ok());
    store_ = *std::move(store);
    registry_ = std::make_shared<prometheus::Registry>();
    EngineOptions options;
    options.shards = h_.shards;
    options.partitions = kModelPartitions;
    auto engine = ProfileEngine::Create(*store_, *registry_, options);
    ECRM_CHECK(engine.ok());
    engine_ = *std::move(engine);
    engine_->Start();
  }

  void Compare(const Expected& x, std::vector<std::string>& problems) {
    std::string first_id;
    for (const std::string& identifier : x.identifiers) {
      const auto colon = identifier.find(':');
      auto got = engine_->Lookup(identifier.substr(0, colon), identifier.substr(colon + 1));
      if (!got.ok() || !got->has_value()) {
        problems.push_back(identifier + ": no profile");
        continue;
      }
      const Profile& p = **got;
      if (first_id.empty()) first_id = p.id;
      if (p.id != first_id) {
        problems.push_back(identifier + ": profile " + p.id + ", not " + first_id +
                           " like the rest of its component");
        continue;
      }
      if (identifier != *x.identifiers.begin()) continue;  // the content is checked once
      const Profile& want = x.profile;
      auto expect = [&](const std::string& what, auto got_value, auto want_value) {
        if (got_value != want_value) {
          std::ostringstream s;
          s << identifier << ": " << what << " " << got_value << ", want " << want_value;
          problems.push_back(s.str());
        }
      };
      expect("stats.events", p.stats.events, want.stats.events);
      expect("stats.page_views", p.stats.page_views, want.stats.page_views);
      expect("stats.orders", p.stats.orders, want.stats.orders);
      expect("stats.revenue", p.stats.revenue, want.stats.revenue);
      expect("stats.sessions", p.stats.sessions, want.stats.sessions);
      expect("stats.first_seen", p.stats.first_seen, want.stats.first_seen);
      expect("stats.last_seen", p.stats.last_seen, want.stats.last_seen);
      for (const auto& [key, value] : want.traits) {
        const auto it = p.traits.find(key);
        expect("traits." + key, it == p.traits.end() ? "(none)" : it->second.json, value.json);
      }
      std::set<std::string> listed;
      for (const auto& [type, values] : p.identities) {
        for (const auto& v : values) listed.insert(type + ":" + v);
      }
      if (listed != x.identifiers) {
        std::string got_ids, want_ids;
        for (const auto& s : listed) got_ids += s + " ";
        for (const auto& s : x.identifiers) want_ids += s + " ";
        problems.push_back(identifier + ": identities [" + got_ids + "], want [" + want_ids + "]");
      }
    }
  }

  // With shared devices, merge protection decides by arrival where a second user's events go, so
  // only what holds in any order is checked: every event in effect is counted once, no profile
  // holds two user ids, and every identifier a profile lists leads to it (the graph check).
  void CheckConserved(std::vector<std::string>& problems) {
    int64_t counted = 0, want = 0;
    for (const Event* e : InEffect(h_).events) want += e->channel.empty() ? 1 : 0;
    (void)store_->Scan(Cf::kProfiles, "", [&](std::string_view k, std::string_view v) {
      if (DecodeAlias(v)) return true;
      auto p = DecodeProfile(v);
      if (!p.ok()) {
        problems.push_back("undecodable profile " + std::string(k));
        return true;
      }
      counted += p->stats.events;
      const auto users = p->identities.find("user_id");
      if (users != p->identities.end() && users->second.size() > 1) {
        problems.push_back("profile " + std::string(k) + " holds " +
                           std::to_string(users->second.size()) + " user ids");
      }
      return true;
    });
    if (counted != want) {
      problems.push_back("events counted " + std::to_string(counted) + ", want " +
                         std::to_string(want));
    }
  }

  // The store's identity records and profiles, for a failing history (ECRM_MODEL_DUMP=1).
  void Dump(std::vector<std::string>& problems) {
    (void)store_->Scan(Cf::kIdentities, "", [&](std::string_view k, std::string_view v) {
      problems.push_back("record " + std::string(k) + " -> " + std::string(v));
      return true;
    });
    (void)store_->Scan(Cf::kProfiles, "", [&](std::string_view k, std::string_view v) {
      std::string line = "profile " + std::string(k);
      if (auto alias = DecodeAlias(v)) {
        line += " alias of " + *alias;
      } else if (auto p = DecodeProfile(v); p.ok()) {
        line += " events " + std::to_string(p->stats.events) + " ids";
        for (const auto& [t, vs] : p->identities) {
          for (const auto& x : vs) line += " " + t + ":" + x;
        }
        line += " merged";
        for (const auto& m : p->merged_ids) line += " " + m;
        for (const auto& hst : p->history) line += " | " + hst.identifier + " " + hst.reason;
      }
      problems.push_back(line);
      return true;
    });
    (void)store_->Scan(Cf::kMeta, "merge|", [&](std::string_view k, std::string_view) {
      problems.push_back("pending " + std::string(k));
      return true;
    });
  }

  const History& h_;
  std::shared_ptr<MemoryEnv> env_ = NewMemoryEnv();  // a restart reopens the same files
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<KvStore> store_;
  std::unique_ptr<ProfileEngine> engine_;
  std::unique_ptr<Cluster> cluster_;
};

// With concurrency a failure may not repeat: a candidate counts as failing if any of a few runs
// fails.
bool Fails(const History& h, std::vector<std::string>* problems = nullptr) {
  for (int attempt = 0; attempt < (h.in_flight > 1 || h.instances > 0 ? 3 : 1); attempt++) {
    auto p = Runner(h).Run();
    if (!p.empty()) {
      if (problems) *problems = std::move(p);
      return true;
    }
  }
  return false;
}

// Removes events (with their duplicates), then requests' splits, while the history still fails.
History Shrink(History h) {
  for (bool progress = true; progress;) {
    progress = false;
    for (size_t victim = 0; victim < h.events.size() && h.events.size() > 1; victim++) {
      History c = h;
      c.events.erase(c.events.begin() + static_cast<long>(victim));
      std::vector<size_t> arrival, ends;
      size_t start = 0;
      for (size_t end : h.request_end) {
        for (size_t pos = start; pos < end; pos++) {
          if (h.arrival[pos] == victim) continue;
          arrival.push_back(h.arrival[pos] - (h.arrival[pos] > victim ? 1 : 0));
        }
        if (ends.empty() || ends.back() != arrival.size()) ends.push_back(arrival.size());
        start = end;
      }
      c.arrival = arrival;
      c.request_end = ends;
      c.restart_after.clear();
      for (size_t r : h.restart_after) {
        if (r < c.request_end.size()) c.restart_after.push_back(r);
      }
      c.erase_after.clear();
      for (const auto& [r, id] : h.erase_after) {
        if (r < c.request_end.size()) c.erase_after[r] = id;
      }
      if (Fails(c)) {
        h = std::move(c);
        progress = true;
        break;
      }
    }
  }
  return h;
}

// A failing history as a scenario file for tests/identity/scenarios/ (one event or import record
// per request, in arrival order; the model's components as same_profile, its counts as expect).
std::string ScenarioJson(const History& h) {
  std::ostringstream s;
  s << "{\"description\": \"shrunk by identity_model_test (" << h.shards << " shards, "
    << h.in_flight << " requests in flight";
  if (h.instances > 0) s << ", " << h.instances << " instances";
  for (const auto& [r, id] : h.erase_after) s << "; " << id << " erased after request " << r;
  for (size_t r : h.restart_after) s << "; restarted after request " << r;
  s << ")\"";
  std::string open_key;
  for (size_t i = 0; i < h.arrival.size(); i++) {
    const Event& e = h.events[h.arrival[i]];
    const std::string key = e.channel.empty() ? "events" : "import";
    if (key != open_key) {
      s << (open_key.empty() ? "" : "]") << ",\n \"" << key << "\": [";
      open_key = key;
    } else {
      s << ",";
    }
    s << "\n  {";
    std::string traits;
    if (!e.email.empty()) traits += "\"email\": \"" + e.email + "\"";
    for (const auto& [k, v] : e.traits) traits += (traits.empty() ? "\"" : ", \"") + k + "\": " + v;
    if (!e.channel.empty()) {  // an import record
      s << "\"channel\": \"" << e.channel << "\", \"updated_at\": \"" << FormatIso8601(e.timestamp)
        << "\", \"identifiers\": {";
      std::string ids;
      if (!e.user_id.empty()) ids += "\"user_id\": \"" + e.user_id + "\"";
      if (!e.email.empty())
        ids += std::string(ids.empty() ? "" : ", ") + "\"email\": \"" + e.email + "\"";
      for (const auto& [type, value] : e.identifiers) {
        ids += std::string(ids.empty() ? "" : ", ") + "\"" + type + "\": \"" + value + "\"";
      }
      s << ids << "}, \"traits\": {" << traits << "}}";
      continue;
    }
    s << "\"type\": \"" << EventTypeName(e.type) << "\", \"messageId\": \"" << e.message_id
      << "\", \"timestamp\": \"" << FormatIso8601(e.timestamp) << "\"";
    if (!e.anonymous_id.empty()) s << ", \"anonymousId\": \"" << e.anonymous_id << "\"";
    if (!e.user_id.empty()) s << ", \"userId\": \"" << e.user_id << "\"";
    if (!e.previous_id.empty()) s << ", \"previousId\": \"" << e.previous_id << "\"";
    if (!e.event.empty()) s << ", \"event\": \"" << e.event << "\"";
    if (!traits.empty()) s << ", \"traits\": {" << traits << "}";
    if (e.has_revenue) s << ", \"properties\": {\"revenue\": " << e.revenue << "}";
    s << "}";
  }
  if (!open_key.empty()) s << "]";
  if (!h.shared_devices) {
    const ProfileUpdater updater(ProfilerConfig{});
    std::string same, expect;
    for (const Expected& x : Model(h, updater)) {
      std::string group;
      for (const auto& id : x.identifiers) group += (group.empty() ? "\"" : ", \"") + id + "\"";
      same += (same.empty() ? "[" : ", [") + group + "]";
      expect += (expect.empty() ? "\"" : ", \"") + *x.identifiers.begin() +
                "\": {\"stats\": {\"events\": " + std::to_string(x.profile.stats.events) + "}}";
    }
    s << ",\n \"same_profile\": [" << same << "],\n \"expect\": {" << expect << "}";
  }
  s << "}\n";
  return s.str();
}

int EnvInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : fallback;
}

void RunHistories(bool shared_devices, int default_histories, int default_seconds, int at_least,
                  bool cluster = false) {
  const int histories = EnvInt("ECRM_MODEL_HISTORIES", default_histories);
  const uint64_t seed = static_cast<uint64_t>(EnvInt("ECRM_MODEL_SEED", 1));
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::seconds(EnvInt("ECRM_MODEL_SECONDS", default_seconds));
  int run = EnvInt("ECRM_MODEL_FIRST", 0);
  const int first = run;
  for (; run < histories && std::chrono::steady_clock::now() < deadline; run++) {
    History h = Generate(seed * 1'000'003 + static_cast<uint64_t>(run), shared_devices);
    if (cluster) {
      // 2 or 3 instances, and a restart that moves partitions in half of the histories.
      h.instances = 2 + run % 2;
      if (h.restart_after.empty() && run % 4 < 2) {
        h.restart_after.push_back(static_cast<size_t>(run) % h.request_end.size());
      }
    }
    std::vector<std::string> problems;
    if (!Fails(h, &problems)) continue;
    const History small = Shrink(h);
    std::vector<std::string> small_problems;
    if (!Fails(small, &small_problems)) small_problems = problems;
    std::string report;
    for (const auto& p : small_problems) report += "  " + p + "\n";
    FAIL() << "history " << run << " (seed " << seed << ") differs from the model:\n"
           << report << "shrunk to " << small.events.size() << " events:\n"
           << ScenarioJson(small);
  }
  std::printf("identity model%s%s: %d histories held\n", shared_devices ? " (shared devices)" : "",
              cluster ? " (cluster)" : "", run - first);
  EXPECT_GE(run - first, std::min(histories - first, at_least));  // a run that checked little fails
}

// The sanitizer build (debug, ASan/UBSan) runs about ten times slower: fewer histories in the
// same time, which still must not be almost none.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr int kSlowdown = 10;
#else
constexpr int kSlowdown = 1;
#endif

TEST(IdentityModel, EveryProfileEqualsTheReferenceModel) {
  RunHistories(false, 3000, 45, 200 / kSlowdown);
}

TEST(IdentityModel, SharedDevicesLoseNothingAndNeverJoinTwoUsers) {
  RunHistories(true, 1000, 15, 60 / kSlowdown);
}

// The same histories on a cluster: merges and follow-ups cross instances, partitions move with
// their state at restarts, and every profile still equals the model.
TEST(IdentityModel, AClusterOfInstancesEqualsTheReferenceModel) {
  RunHistories(false, 1000, 30, 60 / kSlowdown, /*cluster=*/true);
}

}  // namespace
}  // namespace ecrm
