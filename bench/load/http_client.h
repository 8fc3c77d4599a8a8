// KeepAliveClient: a blocking HTTP/1.1 client on one keep-alive connection, for the load tool.
// Minimal on purpose (Content-Length bodies only) so that the load generator costs little CPU next
// to the server it measures. One per thread; not thread-safe.
#pragma once

#include <cstdint>
#include <string>

namespace ecrm::bench {

class KeepAliveClient {
 public:
  KeepAliveClient(std::string host, uint16_t port) : host_(std::move(host)), port_(port) {}
  ~KeepAliveClient();
  // Returns the status code, or -1 on a connection error (the next call reconnects).
  int Request(const std::string& method, const std::string& target, const std::string& headers,
              const std::string& body, std::string* response_body);

 private:
  bool Connect();
  void Close();
  std::string host_;
  uint16_t port_;
  int fd_ = -1;
  std::string buffer_;
};

}  // namespace ecrm::bench
