#include "api/http_server.h"

#include <pthread.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <future>
#include <optional>
#include <thread>
#include <vector>

#include "common/json_writer.h"
#include "common/logging.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/registry.h"

namespace ecrm {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

std::string_view HttpRequest::Header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (beast::iequals(beast::string_view(k.data(), k.size()),
                       beast::string_view(name.data(), name.size())))
      return v;
  }
  return {};
}

namespace {

constexpr size_t kHeaderLimit = 16 * 1024;
// Refused connections still being answered (503, then a lingering close); beyond this many a
// further one is closed without an answer, so that refusals cannot use up the descriptors.
constexpr size_t kMaxRefusing = 256;

// The codes of the answers the server gives itself (label values of
// ecrm_http_protocol_errors_total).
enum class ProtocolError : int {
  kMalformed = 0,
  kContentLength,
  kTransferEncoding,
  kUnsupportedCoding,
  kHeaderTooLarge,
  kVersion,
  kCount
};
constexpr const char* kProtocolCodes[] = {
    "malformed_request",         "invalid_content_length",
    "invalid_transfer_encoding", "unsupported_transfer_encoding",
    "header_too_large",          "http_version_not_supported"};
static_assert(std::size(kProtocolCodes) == static_cast<size_t>(ProtocolError::kCount));
constexpr int kProtocolStatus[] = {400, 400, 400, 501, 431, 505};

HttpResponse JsonError(int status, std::string_view code, std::string_view message) {
  HttpResponse res;
  res.status = status;
  JsonWriter w(&res.body);
  w.BeginObject().Key("error").BeginObject();
  w.Key("code").String(code).Key("message").String(message);
  w.EndObject().EndObject();
  res.headers.emplace_back("Connection", "close");
  return res;
}

// What the server and its sessions share. Lives as long as the io context (see Impl).
struct ServerState {
  ServerState(const HttpServerOptions& o, HttpHandler& h) : options(o), handler(h) {
    if (!o.registry) return;
    auto& refused = prometheus::BuildCounter()
                        .Name("ecrm_http_connections_refused_total")
                        .Help(
                            "Connections answered 503 too_many_connections (max_connections), "
                            "and accept errors such as EMFILE (accept_error)")
                        .Register(*o.registry);
    refused_max = &refused.Add({{"reason", "max_connections"}});
    accept_errors = &refused.Add({{"reason", "accept_error"}});
    open_gauge = &prometheus::BuildGauge()
                      .Name("ecrm_http_connections_open")
                      .Help("Open HTTP connections (refused ones not included)")
                      .Register(*o.registry)
                      .Add({});
    auto& errors = prometheus::BuildCounter()
                       .Name("ecrm_http_protocol_errors_total")
                       .Help("Requests the HTTP server answered itself for their framing, by code")
                       .Register(*o.registry);
    for (size_t i = 0; i < protocol_errors.size(); i++) {
      protocol_errors[i] = &errors.Add({{"code", kProtocolCodes[i]}});
    }
  }

  void Opened() {
    open.fetch_add(1, std::memory_order_relaxed);
    if (open_gauge) open_gauge->Increment();
  }
  void Closed() {
    open.fetch_sub(1, std::memory_order_relaxed);
    if (open_gauge) open_gauge->Decrement();
  }
  void Count(prometheus::Counter* c) {
    if (c) c->Increment();
  }

  const HttpServerOptions& options;
  HttpHandler& handler;
  std::atomic<size_t> open{0};
  std::atomic<size_t> refusing{0};
  prometheus::Counter* refused_max = nullptr;
  prometheus::Counter* accept_errors = nullptr;
  prometheus::Gauge* open_gauge = nullptr;
  std::array<prometheus::Counter*, static_cast<size_t>(ProtocolError::kCount)> protocol_errors{};
};

// The framing a request's header asks for, beyond what Beast checks: Transfer-Encoding must end in
// chunked (else the body's end is unknown: RFC 9112 §6.3), may not come with Content-Length, and
// chunked is the only coding; Content-Length appears once, as one number.
using FramingError = std::pair<ProtocolError, std::string_view>;

std::optional<FramingError> CheckFraming(const http::request<http::string_body>& msg) {
  int content_lengths = 0;
  bool content_length_list = false;
  std::vector<std::string_view> codings;
  bool transfer_encoding = false;
  for (const auto& field : msg) {
    const std::string_view value(field.value().data(), field.value().size());
    if (field.name() == http::field::content_length) {
      content_lengths++;
      content_length_list |= value.find(',') != std::string_view::npos;
    } else if (field.name() == http::field::transfer_encoding) {
      transfer_encoding = true;
      size_t pos = 0;
      while (pos <= value.size()) {
        size_t end = value.find(',', pos);
        if (end == std::string_view::npos) end = value.size();
        std::string_view token = value.substr(pos, end - pos);
        while (!token.empty() && (token.front() == ' ' || token.front() == '\t'))
          token.remove_prefix(1);
        while (!token.empty() && (token.back() == ' ' || token.back() == '\t'))
          token.remove_suffix(1);
        if (!token.empty()) codings.push_back(token);
        pos = end + 1;
      }
    }
  }
  auto chunked = [](std::string_view s) {
    return beast::iequals(beast::string_view(s.data(), s.size()), beast::string_view("chunked"));
  };
  if (transfer_encoding) {
    if (content_lengths > 0) {
      return FramingError{ProtocolError::kTransferEncoding,
                          "Transfer-Encoding and Content-Length together"};
    }
    if (codings.empty() || !chunked(codings.back())) {
      return FramingError{ProtocolError::kTransferEncoding,
                          "the last transfer coding must be chunked"};
    }
    if (std::any_of(codings.begin(), codings.end() - 1, chunked)) {
      return FramingError{ProtocolError::kTransferEncoding, "chunked applied more than once"};
    }
    if (codings.size() > 1) {
      return FramingError{ProtocolError::kUnsupportedCoding,
                          "chunked is the only transfer coding supported"};
    }
  }
  if (content_lengths > 1 || content_length_list) {
    return FramingError{ProtocolError::kContentLength, "more than one Content-Length"};
  }
  return std::nullopt;
}

// One connection: read a request, hand it to the handler, write the answer, repeat (keep-alive).
// Owned by shared_ptr copies held in its pending asynchronous operations and responders.
// Threading: all its handlers run on its strand.
class Session : public std::enable_shared_from_this<Session> {
 public:
  // `counted`: the connection is one of the open connections (not a refused one).
  Session(tcp::socket&& socket, ServerState& state, bool counted)
      : stream_(std::move(socket)),
        state_(state),
        handler_(state.handler),
        options_(state.options),
        counted_(counted),
        linger_ms_(state.options.linger_ms) {}
  ~Session() {
    if (counted_)
      state_.Closed();
    else
      state_.refusing.fetch_sub(1, std::memory_order_relaxed);
  }

  void Run() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->Read(); });
  }

  // Answers `response` without reading a request, then closes.
  void Refuse(HttpResponse response) {
    net::dispatch(stream_.get_executor(), [self = shared_from_this(), r = std::move(response)] {
      self->keep_alive_ = false;
      // No body to discard, only the request line and header if the client sends them now.
      self->linger_ms_ = std::min(self->linger_ms_, 250);
      self->Write(r);
    });
  }

 private:
  void Read() {
    parser_.emplace();
    parser_->body_limit(options_.max_body_bytes);
    parser_->header_limit(kHeaderLimit);
    head_ = false;
    stream_.expires_after(std::chrono::seconds(options_.idle_timeout_seconds));
    http::async_read_header(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnHeader(ec); });
  }

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

  void OnHeader(beast::error_code ec) {
    if (ec) return OnReadError(ec);
    auto& msg = parser_->get();
    if (msg.version() != 10 && msg.version() != 11) {
      return Fail(ProtocolError::kVersion, "only HTTP/1.0 and HTTP/1.1 are served");
    }
    version_ = msg.version();
    head_ = msg.method() == http::verb::head;
    if (auto bad = CheckFraming(msg)) return Fail(bad->first, bad->second);
    if (parser_->is_done()) return OnRead({});
    // A client that asks before sending its body (Expect: 100-continue, as curl does for large
    // bodies) hears at once whether it may: an over-limit body is refused before it is sent, any
    // other gets 100 Continue (RFC 9110 §10.1.1) instead of the client's timeout (curl: 1 s).
    if (msg.version() == 11 && beast::iequals(msg[http::field::expect], "100-continue")) {
      if (parser_->content_length() && *parser_->content_length() > options_.max_body_bytes) {
        keep_alive_ = false;
        return Write(handler_.RequestTooLarge(View(msg)));
      }
      auto go_on = std::make_shared<http::response<http::empty_body>>(http::status::continue_, 11);
      http::async_write(stream_, *go_on,
                        [self = shared_from_this(), go_on](beast::error_code ec, size_t) {
                          if (ec) return self->Close();
                          self->ReadBody();
                        });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
  }

  void OnReadError(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == http::error::partial_message ||
        ec == net::error::operation_aborted || ec == beast::error::timeout ||
        ec == net::error::connection_reset || ec == net::error::eof) {
      return Close();
    }
    if (ec == http::error::body_limit) {
      // Answer with the API's error, then close: the rest of the body is discarded.
      keep_alive_ = false;
      return Write(handler_.RequestTooLarge(View(parser_->get())));
    }
    if (ec == http::error::header_limit) {
      return Fail(ProtocolError::kHeaderTooLarge,
                  "request header exceeds " + std::to_string(kHeaderLimit) + " bytes");
    }
    if (ec == http::error::bad_content_length) {
      return Fail(ProtocolError::kContentLength, "conflicting or malformed Content-Length");
    }
    if (ec == http::error::bad_transfer_encoding) {
      return Fail(ProtocolError::kTransferEncoding,
                  "Transfer-Encoding repeated or with Content-Length");
    }
    if (ec == http::error::bad_version && OtherHttpVersion()) {
      return Fail(ProtocolError::kVersion, "only HTTP/1.0 and HTTP/1.1 are served");
    }
    if (ec.category() == http::make_error_code(http::error::bad_method).category()) {
      return Fail(ProtocolError::kMalformed, "malformed HTTP/1.1 request (" + ec.message() + ")");
    }
    Close();  // a socket error: nobody to answer
  }

  // Whether the unparsed request line (still in the buffer) ends in a well-formed version other
  // than 1.x, such as HTTP/2.0: Beast refuses those as it refuses garbled ones.
  bool OtherHttpVersion() const {
    const auto data = buffer_.cdata();
    std::string_view line(static_cast<const char*>(data.data()), data.size());
    line = line.substr(0, line.find('\n'));
    if (line.ends_with('\r')) line.remove_suffix(1);
    if (line.size() < 9) return false;
    const std::string_view v = line.substr(line.size() - 9);
    auto digit = [](char c) { return c >= '0' && c <= '9'; };
    return v.starts_with(" HTTP/") && digit(v[6]) && v[7] == '.' && digit(v[8]) && v[6] != '1';
  }

  // Answers a request the handler does not see, then closes.
  void Fail(ProtocolError error, std::string_view message) {
    const auto i = static_cast<size_t>(error);
    state_.Count(state_.protocol_errors[i]);
    keep_alive_ = false;
    if (version_ != 10) version_ = 11;
    Write(JsonError(kProtocolStatus[i], kProtocolCodes[i], message));
  }

  void OnRead(beast::error_code ec) {
    if (ec) return OnReadError(ec);
    auto& msg = parser_->get();
    keep_alive_ = msg.keep_alive();
    const HttpRequest req = View(msg);
    // A handler that answers before returning (reads, errors) is written straight away on this
    // strand; one that answers later from another thread (collector acks) is posted back to it.
    handler_thread_ = std::this_thread::get_id();
    in_handler_.store(true, std::memory_order_release);
    handler_.Handle(req, [self = shared_from_this()](HttpResponse response) {
      if (self->in_handler_.load(std::memory_order_acquire) &&
          std::this_thread::get_id() == self->handler_thread_) {
        self->sync_response_ = std::move(response);
        return;
      }
      net::post(self->stream_.get_executor(),
                [self, r = std::move(response)]() mutable { self->Write(std::move(r)); });
    });
    in_handler_.store(false, std::memory_order_release);
    if (sync_response_) {
      HttpResponse response = std::move(*sync_response_);
      sync_response_.reset();
      Write(std::move(response));
    }
  }

  void Write(HttpResponse response) {
    auto res = std::make_shared<http::response<http::string_body>>();
    res->version(version_);
    res->result(static_cast<http::status>(response.status));
    res->set(http::field::server, "ecrm");
    if (!response.content_type.empty()) res->set(http::field::content_type, response.content_type);
    for (auto& [k, v] : response.headers) {
      if (beast::iequals(beast::string_view(k.data(), k.size()), "connection") &&
          beast::iequals(beast::string_view(v.data(), v.size()), "close")) {
        keep_alive_ = false;
      }
      res->set(k, v);
    }
    res->body() = std::move(response.body);
    res->keep_alive(keep_alive_);
    res->prepare_payload();
    auto done = [self = shared_from_this(), res](beast::error_code ec, size_t) {
      self->AfterWrite(ec);
    };
    if (head_) {
      // HEAD: the header the GET would have (its Content-Length included), without the body.
      auto sr = std::make_shared<http::response_serializer<http::string_body>>(*res);
      http::async_write_header(stream_, *sr,
                               [done, sr](beast::error_code ec, size_t n) { done(ec, n); });
      return;
    }
    http::async_write(stream_, *res, std::move(done));
  }

  void AfterWrite(beast::error_code ec) {
    if (ec) return Close();
    if (!keep_alive_) return Linger();
    Read();
  }

  // A lingering close: stop sending, then read and discard what the client still sends (the rest
  // of a refused body) until it closes, for at most linger_ms and linger_bytes. Closing with
  // unread data would reset the connection, and the client could lose the answer just written.
  void Linger() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    if (ec || linger_ms_ <= 0) return Close();
    stream_.expires_after(std::chrono::milliseconds(linger_ms_));
    drain_ = std::make_unique<std::array<char, 16384>>();
    lingered_ = 0;
    Drain();
  }

  void Drain() {
    stream_.async_read_some(net::buffer(*drain_),
                            [self = shared_from_this()](beast::error_code ec, size_t n) {
                              self->lingered_ += n;
                              if (ec || self->lingered_ >= self->options_.linger_bytes) {
                                return self->Close();
                              }
                              self->Drain();
                            });
  }

  void Close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.socket().close(ec);
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  ServerState& state_;
  HttpHandler& handler_;
  const HttpServerOptions& options_;
  const bool counted_;
  bool keep_alive_ = true;
  bool head_ = false;
  unsigned version_ = 11;
  std::atomic<bool> in_handler_{false};
  std::thread::id handler_thread_;
  std::optional<HttpResponse> sync_response_;  // set only on the strand, during Handle
  std::unique_ptr<std::array<char, 16384>> drain_;
  size_t lingered_ = 0;
  int linger_ms_;
};

bool ResourceShortage(const beast::error_code& ec) {
  return ec == net::error::no_descriptors || ec == net::error::no_buffer_space ||
         ec == net::error::no_memory ||
         ec == beast::error_code(ENFILE, boost::system::system_category());
}

}  // namespace

struct HttpServer::Impl {
  Impl(const HttpServerOptions& o, HttpHandler& h)
      : options(o),
        state(options, h),
        ioc(o.threads),
        work(net::make_work_guard(ioc)),
        acceptor(net::make_strand(ioc)),
        backoff_timer(acceptor.get_executor()) {}

  void Accept() {
    acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
      if (ec == net::error::operation_aborted || !acceptor.is_open()) return;
      if (ec) return OnAcceptError(ec);
      backoff_ms = 0;
      socket.set_option(tcp::no_delay(true), ec);
      if (state.open.load(std::memory_order_relaxed) >= options.max_connections) {
        state.Count(state.refused_max);
        if (state.refusing.fetch_add(1, std::memory_order_relaxed) >= kMaxRefusing) {
          state.refusing.fetch_sub(1, std::memory_order_relaxed);
          socket.close(ec);
        } else {
          std::make_shared<Session>(std::move(socket), state, /*counted=*/false)
              ->Refuse(JsonError(503, "too_many_connections",
                                 "the server has " + std::to_string(options.max_connections) +
                                     " connections open; retry later"));
        }
      } else {
        state.Opened();
        std::make_shared<Session>(std::move(socket), state, /*counted=*/true)->Run();
      }
      Accept();
    });
  }

  // Out of descriptors or buffers: accepting again at once would fail at once (a busy loop that
  // starves the open connections). Wait, doubling the wait while the shortage lasts.
  void OnAcceptError(const beast::error_code& ec) {
    state.Count(state.accept_errors);
    if (!ResourceShortage(ec)) return Accept();  // e.g. a connection aborted while queued
    const bool first = backoff_ms == 0;
    backoff_ms = first ? std::max(1, options.accept_backoff_ms)
                       : std::min(backoff_ms * 2, std::max(1, options.accept_backoff_max_ms));
    if (first) {
      spdlog::warn("http: cannot accept connections ({}); retrying every {}..{} ms", ec.message(),
                   backoff_ms, options.accept_backoff_max_ms);
    }
    backoff_timer.expires_after(std::chrono::milliseconds(backoff_ms));
    backoff_timer.async_wait([this](beast::error_code wait_ec) {
      if (wait_ec || !acceptor.is_open()) return;
      Accept();
    });
  }

  HttpServerOptions options;
  // Before the io context: sessions destroyed with the context still count themselves out.
  ServerState state;
  net::io_context ioc;
  // Keeps the io threads running until Stop(), even with no connection and the acceptor closed.
  net::executor_work_guard<net::io_context::executor_type> work;
  tcp::acceptor acceptor;
  net::steady_timer backoff_timer;  // on the acceptor's strand
  int backoff_ms = 0;               // 0: the last accept succeeded
  bool accepting = false;
  std::vector<std::thread> threads;
};

HttpServer::HttpServer(const HttpServerOptions& options, HttpHandler& handler)
    : impl_(std::make_unique<Impl>(options, handler)) {}

HttpServer::~HttpServer() { Stop(); }

StatusOr<uint16_t> HttpServer::Start() {
  beast::error_code ec;
  const auto address = net::ip::make_address(impl_->options.host, ec);
  if (ec) return absl::InvalidArgumentError("http-addr: bad host '" + impl_->options.host + "'");
  const tcp::endpoint endpoint(address, impl_->options.port);
  auto& acc = impl_->acceptor;
  acc.open(endpoint.protocol(), ec);
  if (!ec) acc.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acc.bind(endpoint, ec);
  if (!ec) acc.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    return absl::UnavailableError("http-addr: cannot listen on " + impl_->options.host + ":" +
                                  std::to_string(impl_->options.port) + ": " + ec.message());
  }
  const uint16_t port = acc.local_endpoint().port();
  impl_->Accept();
  impl_->accepting = true;
  for (int i = 0; i < impl_->options.threads; i++) {
    impl_->threads.emplace_back([this, i] {
      const std::string name = "ecrm-http-" + std::to_string(i);
      pthread_setname_np(pthread_self(), name.c_str());
      impl_->ioc.run();
    });
  }
  return port;
}

void HttpServer::StopAccepting() {
  if (impl_->threads.empty() || !impl_->accepting) return;
  impl_->accepting = false;
  std::promise<void> closed;
  net::post(impl_->acceptor.get_executor(), [this, &closed] {
    beast::error_code ec;
    impl_->acceptor.close(ec);
    impl_->backoff_timer.cancel();
    closed.set_value();
  });
  closed.get_future().wait();
}

void HttpServer::Stop() {
  if (impl_->threads.empty()) return;
  StopAccepting();
  impl_->work.reset();
  impl_->ioc.stop();
  for (auto& t : impl_->threads) t.join();
  impl_->threads.clear();
}

}  // namespace ecrm
