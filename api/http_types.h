// The HTTP request/response values that handlers see, free of Boost.Beast so that only
// api/http_server.cc and api/forwarder.cc compile Beast. A request's views point into the server's
// buffers and are valid only during the synchronous part of Handle(); copy what an asynchronous
// answer needs.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ecrm {

struct HttpRequest {
  std::string_view method;  // "GET", "POST", ...
  std::string_view target;  // path and query
  std::string_view body;
  std::vector<std::pair<std::string_view, std::string_view>> headers;

  // The first header of that name (case-insensitive), or empty.
  std::string_view Header(std::string_view name) const;
  std::string_view Path() const { return target.substr(0, target.find('?')); }
  std::string_view Query() const {
    const auto q = target.find('?');
    return q == std::string_view::npos ? std::string_view() : target.substr(q + 1);
  }
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

// Sends the response; may be called from any thread, exactly once.
using Responder = std::function<void(HttpResponse)>;

// Implemented by the API; called on an HTTP thread.
class HttpHandler {
 public:
  virtual ~HttpHandler() = default;
  virtual void Handle(const HttpRequest& request, Responder respond) = 0;
  // A request the server refused before the handler saw it (e.g. body over the limit).
  virtual HttpResponse RequestTooLarge(const HttpRequest& request) = 0;
};

}  // namespace ecrm
