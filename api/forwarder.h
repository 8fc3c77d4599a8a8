// Forwarder: the HTTP client with which an instance hands a read (or an erasure) to the instance
// that owns the partition it needs (docs/cluster.md#any-instance-answers). It runs on a thread of
// its own, asynchronously, so that the HTTP threads never wait for a peer (two instances
// forwarding to each other could otherwise hold each other's threads), and keeps connections to
// each peer alive for the next request.
//
// Ownership: owned by the ApiService; destroying it stops the thread and drops requests still in
// flight (the HTTP server, stopped first, has closed their connections). Threading: Send and After
// from any thread; `done` and `fn` run on the forwarder's thread.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "api/http_types.h"
#include "common/status.h"

namespace ecrm {

// Where partitions not owned here are served: cluster mode's view of the group's members.
class PartitionDirectory {
 public:
  virtual ~PartitionDirectory() = default;
  // The advertised HTTP address ("host:port") of the instance that owns `partition`, as last
  // learned; empty if none is known.
  virtual std::string OwnerAddress(uint32_t partition) const = 0;
  // Learn the owners again (after a forwarded request found an owner gone). Asynchronous: a
  // refresh is at most one round trip to Kafka away.
  virtual void Refresh() = 0;
};

class Forwarder {
 public:
  explicit Forwarder(int timeout_ms);
  ~Forwarder();

  using Done = std::function<void(StatusOr<HttpResponse>)>;
  // `method` `target` to `addr` ("host:port") with `headers`; `done` gets the peer's answer
  // (status, content type, body, and its Cache-Control and Retry-After headers), or Unavailable
  // when the peer cannot be reached or does not answer within the timeout. A kept-alive
  // connection the peer had closed is replaced once.
  void Send(std::string addr, std::string_view method, std::string_view target,
            std::vector<std::pair<std::string, std::string>> headers, Done done);
  // Runs `fn` on the forwarder's thread after `ms` milliseconds (a retry's pause).
  void After(int ms, std::function<void()> fn);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ecrm
