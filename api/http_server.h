// HttpServer: a Boost.Beast HTTP/1.1 server (keep-alive, one async session per connection) running
// on a fixed pool of io threads. Every request goes to one HttpHandler. This header hides Beast;
// only http_server.cc includes it, to keep build times down.
//
// The server itself answers what never reaches the handler, each with a JSON error body and
// `Connection: close`: malformed framing (400; ambiguous Transfer-Encoding or Content-Length,
// bad chunks, bad lines), headers over 16 KiB (431), an HTTP version other than 1.0/1.1 (505),
// transfer codings besides chunked (501), and connections over max_connections (503). After an
// answer that closes the connection it stops sending and discards what the client still sends
// for a bounded time (a lingering close), so the client reads the answer instead of a reset.
//
// Ownership: owned by the app; the handler must outlive it. Threading: Start/Stop from one control
// thread; the handler is called concurrently from the io threads.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "api/http_types.h"
#include "common/status.h"

namespace prometheus {
class Registry;
}

namespace ecrm {

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;                // 0 picks a free port
  int threads = 1;                     // io threads
  size_t max_body_bytes = 500 * 1024;  // raw (possibly compressed) body limit
  int idle_timeout_seconds = 60;
  // Open connections beyond this are answered 503 too_many_connections and closed.
  size_t max_connections = 10000;
  // After a closing answer: discard what the client still sends for up to this long / this much.
  int linger_ms = 1000;
  size_t linger_bytes = 4 * 1024 * 1024;
  // Accept errors (EMFILE, ENFILE, ENOBUFS, ...): wait this long before accepting again, doubling
  // up to the maximum while the errors last.
  int accept_backoff_ms = 50;
  int accept_backoff_max_ms = 1000;
  // Where the server's own counters go (ecrm_http_connections_*, ecrm_http_protocol_errors_total);
  // null: none. Must outlive the server.
  prometheus::Registry* registry = nullptr;
};

class HttpServer {
 public:
  HttpServer(const HttpServerOptions& options, HttpHandler& handler);
  ~HttpServer();
  // Binds and starts the io threads. Returns the bound port.
  StatusOr<uint16_t> Start();
  // Closes the listening socket; open connections are still served until Stop().
  void StopAccepting();
  // Stops the io threads; unanswered requests are dropped.
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ecrm
