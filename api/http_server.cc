#include "api/http_server.h"

#include <pthread.h>

#include <atomic>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <future>
#include <optional>
#include <thread>
#include <vector>

#include "common/logging.h"

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

// One connection: read a request, hand it to the handler, write the answer, repeat (keep-alive).
// Owned by shared_ptr copies held in its pending asynchronous operations and responders.
// Threading: all its handlers run on its strand.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket&& socket, HttpHandler& handler, const HttpServerOptions& options)
      : stream_(std::move(socket)), handler_(handler), options_(options) {}

  void Run() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->Read(); });
  }

 private:
  void Read() {
    parser_.emplace();
    parser_->body_limit(options_.max_body_bytes);
    parser_->header_limit(16 * 1024);
    stream_.expires_after(std::chrono::seconds(options_.idle_timeout_seconds));
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
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

  void OnRead(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == net::error::operation_aborted ||
        ec == beast::error::timeout || ec == net::error::connection_reset) {
      return Close();
    }
    if (ec == http::error::body_limit) {
      // Answer with the API's error, then close: the rest of the body is not read.
      keep_alive_ = false;
      auto& msg = parser_->get();
      return Write(handler_.RequestTooLarge(View(msg)));
    }
    if (ec) return Close();
    auto& msg = parser_->get();
    keep_alive_ = msg.keep_alive();
    version_ = msg.version();
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
    for (auto& [k, v] : response.headers) res->set(k, v);
    res->body() = std::move(response.body);
    res->keep_alive(keep_alive_);
    res->prepare_payload();
    http::async_write(stream_, *res,
                      [self = shared_from_this(), res](beast::error_code ec, size_t) {
                        if (ec || !self->keep_alive_) return self->Close();
                        self->Read();
                      });
  }

  void Close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  HttpHandler& handler_;
  const HttpServerOptions& options_;
  bool keep_alive_ = true;
  unsigned version_ = 11;
  std::atomic<bool> in_handler_{false};
  std::thread::id handler_thread_;
  std::optional<HttpResponse> sync_response_;  // set only on the strand, during Handle
};

}  // namespace

struct HttpServer::Impl {
  Impl(const HttpServerOptions& o, HttpHandler& h)
      : options(o),
        handler(h),
        ioc(o.threads),
        work(net::make_work_guard(ioc)),
        acceptor(net::make_strand(ioc)) {}

  void Accept() {
    acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
      if (ec == net::error::operation_aborted) return;
      if (!ec) {
        socket.set_option(tcp::no_delay(true), ec);
        std::make_shared<Session>(std::move(socket), handler, options)->Run();
      }
      Accept();
    });
  }

  HttpServerOptions options;
  HttpHandler& handler;
  net::io_context ioc;
  // Keeps the io threads running until Stop(), even with no connection and the acceptor closed.
  net::executor_work_guard<net::io_context::executor_type> work;
  tcp::acceptor acceptor;
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
