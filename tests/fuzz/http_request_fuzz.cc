// The HTTP request path on raw bytes: the input is what a client sends on one connection (one or
// more pipelined HTTP/1.1 requests). Beast's request parser reads it as the server's sessions do
// (same header limit, a body limit, eager bodies); every request it completes goes to the real
// ApiService (collector with gzip/deflate bodies, profile reads and erasure, personalization,
// import, rules, settings, metrics, CORS) over an in-memory engine with a rule registry, and must
// be answered exactly once, within seconds, with a valid status. A body over the limit gets
// RequestTooLarge, as from the server. A last request whose body is shorter than its header says
// is handled with what there is (else nearly every mutation would only be an incomplete request).
// The socket side of api/http_server.cc (sessions, framing checks, lingering close) is left to
// tests/api/http_server_test.cc.
//
// The service is rebuilt every few thousand inputs so that what the engine stores stays small.
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <future>
#include <memory>
#include <string>

#include "api/api_service.h"
#include "rules/rule_registry.h"
#include "spdlog/spdlog.h"
#include "store/kv_store.h"
#include "tests/fuzz/fuzz_target.h"

namespace ecrm {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;

constexpr size_t kHeaderLimit = 16 * 1024;  // as api/http_server.cc
constexpr size_t kBodyLimit = 64 * 1024;
constexpr int kInputsPerService = 4000;

class Service {
 public:
  Service() {
    spdlog::set_level(spdlog::level::off);  // refusals are logged; the fuzzer makes many
    auto store = KvStore::Open(
        {.path = "/fuzz/db", .block_cache_bytes = 1 << 20, .clock = &clock_, .memory_env = env_});
    FUZZ_CHECK(store.ok(), "%s", store.status().ToString().c_str());
    store_ = *std::move(store);
    auto rules = RuleRegistry::Open(*store_);
    FUZZ_CHECK(rules.ok(), "%s", rules.status().ToString().c_str());
    rules_ = *std::move(rules);
    EngineOptions options;
    options.shards = 1;
    options.partitions = 8;
    options.shard.rules = rules_.get();
    auto engine = ProfileEngine::Create(*store_, *registry_, options);
    FUZZ_CHECK(engine.ok(), "%s", engine.status().ToString().c_str());
    engine_ = *std::move(engine);
    engine_->Start();
    ApiOptions api;
    api.write_keys = {"wk"};
    api.browser_write_keys = {"bk"};
    api.identity_secret = "s3cret";
    api.read_keys = {"rk"};
    api.admin_token = "admin";
    api.limits.max_request_bytes = 32 * 1024;
    api.rules = rules_.get();
    api.ready = [] { return true; };
    api_ = std::make_unique<ApiService>(*engine_, *registry_, clock_, std::move(api));
  }
  ~Service() {
    api_.reset();
    engine_->Stop();
    engine_.reset();
    rules_.reset();
    store_.reset();
  }

  ApiService& api() { return *api_; }
  ManualClock& clock() { return clock_; }

 private:
  ManualClock clock_{1'790'000'000'000};
  std::shared_ptr<MemoryEnv> env_ = NewMemoryEnv();
  std::shared_ptr<prometheus::Registry> registry_ = std::make_shared<prometheus::Registry>();
  std::unique_ptr<KvStore> store_;
  std::unique_ptr<RuleRegistry> rules_;
  std::unique_ptr<ProfileEngine> engine_;
  std::unique_ptr<ApiService> api_;
};

HttpRequest View(const http::request<http::string_body>& msg) {
  HttpRequest req;
  req.method = std::string_view(msg.method_string().data(), msg.method_string().size());
  req.target = std::string_view(msg.target().data(), msg.target().size());
  req.body = msg.body();
  for (const auto& field : msg) {
    req.headers.emplace_back(
        std::string_view(field.name_string().data(), field.name_string().size()),
        std::string_view(field.value().data(), field.value().size()));
  }
  return req;
}

void CheckResponse(const HttpResponse& r) {
  FUZZ_CHECK(r.status >= 100 && r.status <= 599, "status %d", r.status);
  if (r.status >= 400 && r.content_type == "application/json") {
    FUZZ_CHECK(r.body.starts_with("{"), "an error body that is not an object: %s", r.body.c_str());
  }
  for (const auto& [k, v] : r.headers) {
    FUZZ_CHECK(k.find_first_of("\r\n:") == std::string::npos, "header name %s", k.c_str());
    FUZZ_CHECK(v.find_first_of("\r\n") == std::string::npos, "header %s: a line break", k.c_str());
  }
}

// Hands `req` to the service and waits for its one answer.
void Call(Service& service, const HttpRequest& req) {
  auto answered = std::make_shared<std::atomic<int>>(0);
  auto done = std::make_shared<std::promise<HttpResponse>>();
  auto future = done->get_future();
  service.api().Handle(req, [answered, done](HttpResponse r) {
    FUZZ_CHECK(answered->fetch_add(1) == 0, "answered twice");
    done->set_value(std::move(r));
  });
  FUZZ_CHECK(future.wait_for(std::chrono::seconds(20)) == std::future_status::ready,
             "no answer within 20 s");
  CheckResponse(future.get());
}

}  // namespace
}  // namespace ecrm

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ecrm;
  static Service* service = nullptr;
  static int inputs = 0;
  if (service == nullptr || ++inputs % kInputsPerService == 0) {
    delete service;
    service = new Service();
  }
  service->clock().Advance(1000);  // the rate limiter and the sessions see time pass

  boost::asio::const_buffer rest(data, size);
  for (int requests = 0; rest.size() > 0 && requests < 8; requests++) {
    http::request_parser<http::string_body> parser;
    parser.eager(true);
    parser.header_limit(kHeaderLimit);
    parser.body_limit(kBodyLimit);
    beast::error_code ec;
    while (rest.size() > 0 && !parser.is_done()) {
      const size_t used = parser.put(rest, ec);
      rest += used;
      if (ec == http::error::need_more) {
        ec = {};
        if (used == 0) break;  // incomplete: the client would have to send more
        continue;
      }
      if (ec) break;
    }
    if (ec == http::error::body_limit) {
      CheckResponse(service->api().RequestTooLarge(View(parser.get())));
      break;
    }
    if (ec) break;  // refused by the server
    const auto& msg = parser.get();
    if (!parser.is_header_done() || (msg.version() != 10 && msg.version() != 11)) break;
    if (!parser.is_done()) {
      // The last request's body is incomplete: the client would send the rest. Mutations rarely
      // keep Content-Length right, so the handler gets the body received so far, as if that were
      // all (a chunked body likewise). The header still says what it said.
      if (parser.chunked() && msg.body().empty()) break;
      Call(*service, View(msg));
      break;
    }
    Call(*service, View(msg));
    if (!msg.keep_alive()) break;
  }
  return 0;
}
