#include "bench/load/http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace ecrm::bench {

KeepAliveClient::~KeepAliveClient() { Close(); }

void KeepAliveClient::Close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  buffer_.clear();
}

bool KeepAliveClient::Connect() {
  fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port_);
  ::inet_pton(AF_INET, host_.c_str(), &addr.sin_addr);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    Close();
    return false;
  }
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return true;
}

int KeepAliveClient::Request(const std::string& method, const std::string& target,
                             const std::string& headers, const std::string& body,
                             std::string* response_body) {
  if (fd_ < 0 && !Connect()) return -1;
  std::string req = method + " " + target + " HTTP/1.1\r\nHost: " + host_ + "\r\n" + headers +
                    "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n";
  req += body;
  size_t sent = 0;
  while (sent < req.size()) {
    const ssize_t n = ::send(fd_, req.data() + sent, req.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) {
      Close();
      return -1;
    }
    sent += static_cast<size_t>(n);
  }
  char chunk[65536];
  size_t header_end;
  while ((header_end = buffer_.find("\r\n\r\n")) == std::string::npos) {
    const ssize_t n = ::recv(fd_, chunk, sizeof(chunk), 0);
    if (n <= 0) {
      Close();
      return -1;
    }
    buffer_.append(chunk, static_cast<size_t>(n));
  }
  const int status = std::atoi(buffer_.c_str() + 9);
  size_t length = 0;
  const char* cl = ::strcasestr(buffer_.c_str(), "\r\ncontent-length:");
  if (cl != nullptr && cl < buffer_.c_str() + header_end)
    length = std::strtoul(cl + 17, nullptr, 10);
  const size_t total = header_end + 4 + length;
  while (buffer_.size() < total) {
    const ssize_t n = ::recv(fd_, chunk, sizeof(chunk), 0);
    if (n <= 0) {
      Close();
      return -1;
    }
    buffer_.append(chunk, static_cast<size_t>(n));
  }
  if (response_body) response_body->assign(buffer_, header_end + 4, length);
  const bool close = ::strcasestr(buffer_.substr(0, header_end).c_str(), "connection: close");
  buffer_.erase(0, total);
  if (close) Close();
  return status;
}

}  // namespace ecrm::bench
