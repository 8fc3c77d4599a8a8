// Identity resolution costs: MergeProfiles on two full profiles, merges per second through the
// shards (each merge: a login on a second device, i.e. an identify linking two existing
// profiles, durable in RocksDB), and a profile read right after a merge.
#include <benchmark/benchmark.h>

#include <filesystem>
#include <future>

#include "profiler/engine.h"
#include "profiler/profile_json.h"
#include "profiler/profile_merge.h"

namespace ecrm {
namespace {

Profile Full(const std::string& id, TimeMs t0) {
  Profile p;
  p.id = id;
  p.identities["anonymous_id"] = {"anon-" + id};
  for (int i = 0; i < 20; i++) {
    p.traits["trait" + std::to_string(i)] = {"\"value\"", t0 + i};
    p.recent_products.push_back({"p" + std::to_string(i), "name", "cat", 9.99, true, t0 - i});
    p.counters["c" + std::to_string(i)] = i;
  }
  for (int i = 0; i < 10; i++) p.interests["cat" + std::to_string(i)] = {1.0 + i, t0};
  p.stats = {100, 40, 0, 12, 2, 99.5, t0 - 1000, t0};
  return p;
}

void BM_MergeProfiles(benchmark::State& state) {
  ProfileUpdater updater(ProfilerConfig{});
  const Profile a = Full("0001-0000000000010000", 1'700'000'000'000);
  const Profile b = Full("0002-0000000000020000", 1'700'000'500'000);
  for (auto _ : state) {
    Profile s = a;
    MergeProfiles(s, b, updater);
    benchmark::DoNotOptimize(s);
  }
}
BENCHMARK(BM_MergeProfiles);

Event Make(EventType type, std::string anon, std::string user, TimeMs at) {
  Event e;
  e.type = type;
  e.anonymous_id = std::move(anon);
  e.user_id = std::move(user);
  e.timestamp = at;
  e.received_at = at;
  return e;
}

void Wait(ProfileEngine& engine, std::vector<Event> events) {
  auto done = std::make_shared<std::promise<void>>();
  auto f = done->get_future();
  if (!engine.Submit(std::move(events), [done](Status) { done->set_value(); }).ok()) std::abort();
  f.get();
}

// Per iteration: 100 users, each already known on device 1 (identify) and browsing on device 2;
// then the 100 logins on device 2 (the merges) are submitted together and awaited.
void BM_MergesThroughTheShards(benchmark::State& state) {
  const std::string dir = std::filesystem::temp_directory_path() / "ecrm-bench-merge";
  std::filesystem::remove_all(dir);
  auto registry = std::make_shared<prometheus::Registry>();
  auto store = *KvStore::Open({.path = dir});
  EngineOptions options;
  options.shards = 2;
  auto engine = *ProfileEngine::Create(*store, *registry, options);
  engine->Start();
  constexpr int kUsers = 100;
  int64_t round = 0;
  for (auto _ : state) {
    state.PauseTiming();
    std::vector<Event> setup;
    const std::string r = std::to_string(round++);
    for (int i = 0; i < kUsers; i++) {
      const std::string u = "u" + r + "-" + std::to_string(i);
      setup.push_back(Make(EventType::kIdentify, "d1-" + u, u, 1'700'000'000'000));
      setup.push_back(Make(EventType::kPage, "d2-" + u, "", 1'700'000'100'000));
    }
    Wait(*engine, std::move(setup));
    std::vector<Event> logins;
    for (int i = 0; i < kUsers; i++) {
      const std::string u = "u" + r + "-" + std::to_string(i);
      logins.push_back(Make(EventType::kIdentify, "d2-" + u, u, 1'700'000'200'000));
    }
    state.ResumeTiming();
    Wait(*engine, std::move(logins));
  }
  state.SetItemsProcessed(state.iterations() * kUsers);
  state.counters["merges"] = benchmark::Counter(static_cast<double>(state.iterations() * kUsers),
                                                benchmark::Counter::kIsRate);
  // A read right after the last merge (by the merged-away device), as /v1/personalize does it.
  const std::string last = "d2-u" + std::to_string(round - 1) + "-" + std::to_string(kUsers - 1);
  const auto start = std::chrono::steady_clock::now();
  constexpr int kReads = 1000;
  std::string out;
  for (int i = 0; i < kReads; i++) {
    auto p = engine->Lookup("anonymous_id", last);
    if (!p.ok() || !p->has_value() || (**p).stats.events != 3)
      std::abort();  // identify + page + login
    out.clear();
    RenderPersonalizeJson(&**p, engine->updater(), PersonalizeOptions{}, &out);
  }
  state.counters["read_after_merge_us"] =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count() /
      kReads;
  engine.reset();
  store.reset();
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_MergesThroughTheShards)->UseRealTime()->MinTime(2);

}  // namespace
}  // namespace ecrm
