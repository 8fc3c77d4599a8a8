#include "api/forwarder.h"

#include <pthread.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <thread>
#include <unordered_map>

namespace ecrm {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

struct Connection {
  explicit Connection(net::io_context& ioc) : stream(ioc) {}
  beast::tcp_stream stream;
  beast::flat_buffer buffer;
};

}  // namespace

struct Forwarder::Impl {
  explicit Impl(int ms) : timeout(ms), work(net::make_work_guard(ioc)), resolver(ioc) {
    thread = std::thread([this] {
      pthread_setname_np(pthread_self(), "ecrm-forward");
      ioc.run();
    });
  }
  ~Impl() {
    work.reset();
    ioc.stop();
    thread.join();
  }

  // One request on its way; everything below runs on the forwarder's thread.
  struct Op : std::enable_shared_from_this<Op> {
    Impl* impl;
    std::string addr;
    http::request<http::empty_body> req;
    http::response<http::string_body> res;
    std::unique_ptr<Connection> conn;
    bool reused = false;
    bool retried = false;
    Done done;

    void Start() {
      auto& idle = impl->idle[addr];
      if (!idle.empty()) {
        conn = std::move(idle.back());
        idle.pop_back();
        reused = true;
        return Write();
      }
      reused = false;
      const auto colon = addr.rfind(':');
      if (colon == std::string::npos || colon == 0) {
        return Finish(absl::InvalidArgumentError("forward: address without a port: " + addr));
      }
      impl->resolver.async_resolve(
          addr.substr(0, colon), addr.substr(colon + 1),
          [self = shared_from_this()](beast::error_code ec, tcp::resolver::results_type found) {
            if (ec) return self->Finish(self->Unreachable("resolve", ec));
            self->conn = std::make_unique<Connection>(self->impl->ioc);
            self->conn->stream.expires_after(std::chrono::milliseconds(self->impl->timeout));
            self->conn->stream.async_connect(found, [self](beast::error_code ec2, tcp::endpoint) {
              if (ec2) return self->Finish(self->Unreachable("connect", ec2));
              self->conn->stream.socket().set_option(tcp::no_delay(true), ec2);
              self->Write();
            });
          });
    }

    void Write() {
      conn->stream.expires_after(std::chrono::milliseconds(impl->timeout));
      http::async_write(conn->stream, req,
                        [self = shared_from_this()](beast::error_code ec, size_t) {
                          if (ec) return self->Failed(ec);
                          self->Read();
                        });
    }

    void Read() {
      res = {};
      http::async_read(conn->stream, conn->buffer, res,
                       [self = shared_from_this()](beast::error_code ec, size_t) {
                         if (ec) return self->Failed(ec);
                         self->Answered();
                       });
    }

    // A kept-alive connection may have been closed by the peer meanwhile: once, a fresh one.
    void Failed(beast::error_code ec) {
      conn.reset();
      if (reused && !retried) {
        retried = true;
        return Start();
      }
      Finish(Unreachable("request", ec));
    }

    void Answered() {
      HttpResponse out;
      out.status = static_cast<int>(res.result_int());
      out.content_type = std::string(res[http::field::content_type]);
      out.body = std::move(res.body());
      for (const auto field : {http::field::cache_control, http::field::retry_after}) {
        if (const auto it = res.find(field); it != res.end()) {
          out.headers.emplace_back(std::string(it->name_string()), std::string(it->value()));
        }
      }
      if (res.keep_alive()) {
        conn->stream.expires_never();
        impl->idle[addr].push_back(std::move(conn));
      }
      Finish(std::move(out));
    }

    Status Unreachable(const char* step, beast::error_code ec) const {
      return absl::UnavailableError("forward: " + std::string(step) + " " + addr + ": " +
                                    ec.message());
    }

    void Finish(StatusOr<HttpResponse> result) {
      Done d = std::move(done);
      d(std::move(result));
    }
  };

  const int timeout;
  net::io_context ioc;
  net::executor_work_guard<net::io_context::executor_type> work;
  tcp::resolver resolver;
  std::unordered_map<std::string, std::vector<std::unique_ptr<Connection>>> idle;  // by address
  std::thread thread;
};

Forwarder::Forwarder(int timeout_ms) : impl_(std::make_unique<Impl>(timeout_ms)) {}

Forwarder::~Forwarder() = default;

void Forwarder::Send(std::string addr, std::string_view method, std::string_view target,
                     std::vector<std::pair<std::string, std::string>> headers, Done done) {
  auto op = std::make_shared<Impl::Op>();
  op->impl = impl_.get();
  op->req = http::request<http::empty_body>(
      http::string_to_verb(beast::string_view(method.data(), method.size())), std::string(target),
      11);
  op->req.set(http::field::host, addr);
  op->req.keep_alive(true);
  for (const auto& [name, value] : headers) op->req.set(name, value);
  op->addr = std::move(addr);
  op->done = std::move(done);
  net::post(impl_->ioc, [op] { op->Start(); });
}

}  // namespace ecrm

namespace ecrm {

void Forwarder::After(int ms, std::function<void()> fn) {
  auto timer = std::make_shared<net::steady_timer>(impl_->ioc, std::chrono::milliseconds(ms));
  timer->async_wait([timer, fn = std::move(fn)](beast::error_code ec) {
    if (!ec) fn();
  });
}

}  // namespace ecrm
