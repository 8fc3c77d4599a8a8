// The collector's cost of identity verification (docs/identity.md#trusted-identity): the HMAC of
// one browser identify's userId, and marking a request of 100 events (server and browser keys).
#include <benchmark/benchmark.h>

#include "ingest/identity_trust.h"

namespace ecrm {
namespace {

void BM_VerifyUserHash(benchmark::State& state) {
  const IdentityTrust trust("a-32-byte-identity-secret-abcdef");
  const std::string hash = HmacSha256Hex("a-32-byte-identity-secret-abcdef", "user-1234567");
  for (auto _ : state) benchmark::DoNotOptimize(trust.VerifyUserHash("user-1234567", hash));
}
BENCHMARK(BM_VerifyUserHash);

void BM_MarkRequest(benchmark::State& state) {
  const bool browser = state.range(0) != 0;
  const IdentityTrust trust("a-32-byte-identity-secret-abcdef");
  const WriteKeyInfo key{browser ? WriteKeyKind::kBrowser : WriteKeyKind::kServer,
                         "0123456789abcdef"};
  CollectorRequest request;
  for (int i = 0; i < 100; i++) {
    Event e;
    e.anonymous_id = "anon-" + std::to_string(i);
    if (i % 10 == 0) {  // one identify with a user hash in ten events
      e.type = EventType::kIdentify;
      e.user_id = "user-" + std::to_string(i);
    }
    request.events.push_back(std::move(e));
  }
  const std::vector<Event> fresh = request.events;
  for (auto _ : state) {
    state.PauseTiming();
    request.events = fresh;
    for (auto& e : request.events) {
      if (!e.user_id.empty())
        e.user_hash = HmacSha256Hex("a-32-byte-identity-secret-abcdef", e.user_id);
    }
    state.ResumeTiming();
    trust.Mark(key, request);
    benchmark::DoNotOptimize(request.events.data());
  }
  state.SetItemsProcessed(state.iterations() * 100);
}
BENCHMARK(BM_MarkRequest)->Arg(0)->Arg(1)->ArgName("browser");

}  // namespace
}  // namespace ecrm
