// HttpServer: a Boost.Beast HTTP/1.1 server (keep-alive, one async session per connection) running
// on a fixed pool of io threads. Every request goes to one HttpHandler. This header hides Beast;
// only http_server.cc includes it, to keep build times down.
//
// Ownership: owned by the app; the handler must outlive it. Threading: Start/Stop from one control
// thread; the handler is called concurrently from the io threads.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "api/http_types.h"
#include "common/status.h"

namespace ecrm {

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;                // 0 picks a free port
  int threads = 1;                     // io threads
  size_t max_body_bytes = 500 * 1024;  // raw (possibly compressed) body limit
  int idle_timeout_seconds = 60;
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
