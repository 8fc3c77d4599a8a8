// HttpServer over real sockets, driven by a tiny raw client: request framing the server must refuse
// (smuggling vectors), HEAD, malformed requests, over-limit bodies, the connection limit and accept
// errors when the process is out of descriptors.
#include "api/http_server.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace ecrm {
namespace {

using namespace std::chrono_literals;

// Answers every request 200 with what it saw; a body over the limit 413.
class TestHandler final : public HttpHandler {
 public:
  void Handle(const HttpRequest& req, Responder respond) override {
    requests++;
    HttpResponse res;
    res.body = R"({"method":")" + std::string(req.method) + R"(","path":")" +
               std::string(req.Path()) + R"(","body":)" + std::to_string(req.body.size()) + "}";
    respond(std::move(res));
  }
  HttpResponse RequestTooLarge(const HttpRequest&) override {
    HttpResponse res;
    res.status = 413;
    res.body = R"({"error":{"code":"request_too_large","message":"too large"}})";
    res.headers.emplace_back("Connection", "close");
    return res;
  }
  std::atomic<int> requests{0};
};

int Connect(uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  EXPECT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  timeval tv{.tv_sec = 5, .tv_usec = 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  return fd;
}

// Sends all of `data`; false once the connection refuses more (as a client sees a reset).
bool Send(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Everything the server sends until it closes the connection (5 s at most).
std::string ReadAll(int fd) {
  std::string out;
  char buf[16384];
  while (true) {
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

struct Response {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  size_t size = 0;  // bytes of the raw input it took; 0: incomplete
};

// The first response in `raw` (no body for a HEAD answer).
Response Parse(std::string_view raw, bool head = false) {
  Response r;
  const size_t end = raw.find("\r\n\r\n");
  if (end == std::string_view::npos || !raw.starts_with("HTTP/1.")) return r;
  std::istringstream lines(std::string(raw.substr(0, end)));
  std::string line;
  std::getline(lines, line);
  r.status = std::atoi(line.substr(9, 3).c_str());
  while (std::getline(lines, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = line.substr(0, colon);
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.erase(0, 1);
    r.headers[name] = value;
  }
  const size_t length =
      head ? 0 : static_cast<size_t>(std::atoll(r.headers["content-length"].c_str()));
  if (raw.size() < end + 4 + length) return r;
  r.body = std::string(raw.substr(end + 4, length));
  r.size = end + 4 + length;
  return r;
}

// Reads one response from a kept-alive connection.
Response ReadResponse(int fd, bool head = false) {
  std::string raw;
  char buf[4096];
  while (true) {
    Response r = Parse(raw, head);
    if (r.size > 0) return r;
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) return r;
    raw.append(buf, static_cast<size_t>(n));
  }
}

std::string ErrorCode(const Response& r) {
  const size_t at = r.body.find(R"("code":")");
  if (at == std::string::npos) return "";
  const size_t start = at + 8;
  return r.body.substr(start, r.body.find('"', start) - start);
}

class HttpServerTest : public ::testing::Test {
 protected:
  void StartServer(HttpServerOptions options = {}) {
    options.port = 0;
    options.threads = 1;
    server_ = std::make_unique<HttpServer>(options, handler_);
    auto port = server_->Start();
    ASSERT_TRUE(port.ok()) << port.status();
    port_ = *port;
  }
  void TearDown() override {
    if (server_) server_->Stop();
  }

  // Sends `request` on a new connection; the one answer, then the connection must be closed.
  Response ExpectRefused(const std::string& request, int status, const std::string& code) {
    const int fd = Connect(port_);
    Send(fd, request);
    const std::string raw = ReadAll(fd);
    ::close(fd);
    const Response r = Parse(raw);
    EXPECT_EQ(r.status, status) << request.substr(0, 200) << "\n--- answer:\n" << raw;
    EXPECT_EQ(ErrorCode(r), code) << raw;
    EXPECT_EQ(r.headers.count("content-type") ? r.headers.at("content-type") : "",
              "application/json")
        << raw;
    EXPECT_EQ(r.headers.count("connection") ? r.headers.at("connection") : "", "close") << raw;
    EXPECT_EQ(r.size, raw.size()) << "more than one answer: " << raw;
    return r;
  }

  TestHandler handler_;
  std::unique_ptr<HttpServer> server_;
  uint16_t port_ = 0;
};

// RFC 9112 §6.3: a Transfer-Encoding whose last coding is not chunked leaves the body's end
// unknown. Beast reads such a request as one without a body, and what follows (here a second
// request hidden in the "body") would be answered as the next request: request smuggling.
TEST_F(HttpServerTest, TransferEncodingNotEndingInChunkedIs400AndCloses) {
  StartServer();
  for (const std::string te : {"chunked, identity", "identity", "gzip", "chunked, chunked", ","}) {
    ExpectRefused("POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: " + te +
                      "\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
                  400, "invalid_transfer_encoding");
  }
  // Spread over two fields the same.
  ExpectRefused(
      "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: "
      "identity\r\n\r\n"
      "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
      400, "invalid_transfer_encoding");
  EXPECT_EQ(handler_.requests.load(), 0);
}

TEST_F(HttpServerTest, TransferEncodingWithContentLengthIs400) {
  StartServer();
  const std::string smuggled = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
  for (const std::string fields : {"Transfer-Encoding: identity\r\nContent-Length: 5",
                                   "Transfer-Encoding: gzip\r\nContent-Length: 5",
                                   "Content-Length: 5\r\nTransfer-Encoding: chunked",
                                   "Transfer-Encoding: chunked\r\nContent-Length: 5"}) {
    const int fd = Connect(port_);
    Send(fd, "POST /a HTTP/1.1\r\nHost: x\r\n" + fields + "\r\n\r\n0\r\n\r\n" + smuggled);
    const std::string raw = ReadAll(fd);
    ::close(fd);
    Response r = Parse(raw);
    EXPECT_EQ(r.status, 400) << fields << "\n" << raw;
    EXPECT_TRUE(ErrorCode(r) == "invalid_transfer_encoding" ||
                ErrorCode(r) == "invalid_content_length")
        << raw;
    EXPECT_EQ(r.headers["connection"], "close") << raw;
    EXPECT_EQ(r.size, raw.size()) << raw;
  }
  EXPECT_EQ(handler_.requests.load(), 0);
}

TEST_F(HttpServerTest, TransferCodingsBesidesChunkedAre501) {
  StartServer();
  ExpectRefused(
      "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, "
      "chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
      501, "unsupported_transfer_encoding");
  EXPECT_EQ(handler_.requests.load(), 0);
}

TEST_F(HttpServerTest, ConflictingOrRepeatedContentLengthIs400) {
  StartServer();
  for (const std::string fields : {"Content-Length: 5\r\nContent-Length: 6", "Content-Length: 5, 5",
                                   "Content-Length: 5\r\nContent-Length: 5", "Content-Length: 5, 6",
                                   "Content-Length: -5", "Content-Length: 5x"}) {
    ExpectRefused("POST /a HTTP/1.1\r\nHost: x\r\n" + fields + "\r\n\r\nhello", 400,
                  "invalid_content_length");
  }
  EXPECT_EQ(handler_.requests.load(), 0);
}

TEST_F(HttpServerTest, ChunkedAndContentLengthBodiesStillWorkOnAKeptAliveConnection) {
  StartServer();
  const int fd = Connect(port_);
  Send(fd,
       "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
  Response r = ReadResponse(fd);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, R"({"method":"POST","path":"/a","body":5})");
  Send(fd,
       "POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
  r = ReadResponse(fd);
  EXPECT_EQ(r.body, R"({"method":"POST","path":"/b","body":3})");
  Send(fd, "POST /c HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi");
  r = ReadResponse(fd);
  EXPECT_EQ(r.body, R"({"method":"POST","path":"/c","body":2})");
  ::close(fd);
}

// A HEAD answer is the GET's header, Content-Length included, and no body: the next answer on the
// connection follows the header directly.
TEST_F(HttpServerTest, HeadAnswersCarryNoBody) {
  StartServer();
  const int fd = Connect(port_);
  Send(fd,
       "HEAD /x HTTP/1.1\r\nHost: x\r\n\r\n"
       "GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  const std::string raw = ReadAll(fd);
  ::close(fd);
  const Response head = Parse(raw, /*head=*/true);
  ASSERT_GT(head.size, 0u) << raw;
  EXPECT_EQ(head.status, 200);
  const std::string get_body = R"({"method":"GET","path":"/x","body":0})";
  EXPECT_EQ(head.headers.at("content-length"), std::to_string(get_body.size() + 1));
  const std::string rest = raw.substr(head.size);
  ASSERT_TRUE(rest.starts_with("HTTP/1.1 200")) << "bytes after the HEAD header:\n" << raw;
  const Response get = Parse(rest);
  EXPECT_EQ(get.body, R"({"method":"GET","path":"/x","body":0})");
  EXPECT_EQ(get.size, rest.size());
}

// Requests Beast cannot parse are answered (JSON error, Connection: close) before the close.
TEST_F(HttpServerTest, MalformedRequestsAreAnsweredBeforeTheClose) {
  StartServer();
  ExpectRefused(
      "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
      400, "malformed_request");
  ExpectRefused(
      "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", 400,
      "malformed_request");
  ExpectRefused("GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(20000, 'a') + "\r\n\r\n", 431,
                "header_too_large");
  std::string many = "GET / HTTP/1.1\r\nHost: x\r\n";
  for (int i = 0; i < 1000; i++) many += "X-H" + std::to_string(i) + ": 0123456789\r\n";
  ExpectRefused(many + "\r\n", 431, "header_too_large");
  ExpectRefused("GET /\r\n\r\n", 400, "malformed_request");  // HTTP/0.9
  ExpectRefused("GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505, "http_version_not_supported");
  ExpectRefused("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, "http_version_not_supported");
  ExpectRefused("GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", 400, "malformed_request");
  ExpectRefused("G(T / HTTP/1.1\r\nHost: x\r\n\r\n", 400, "malformed_request");
  // Bare LF line endings: Beast refuses them; if it ever accepts them, the request is answered.
  const int fd = Connect(port_);
  Send(fd, "GET /lf HTTP/1.1\nHost: x\n\n");
  const Response r = Parse(ReadAll(fd));
  ::close(fd);
  if (r.status != 200) {
    EXPECT_EQ(r.status, 400);
    EXPECT_EQ(ErrorCode(r), "malformed_request");
  }
  EXPECT_EQ(handler_.requests.load(), r.status == 200 ? 1 : 0);
}

// A client that sends an over-limit body without waiting (no Expect: 100-continue) can send all of
// it and then reads the answer: the server discards the rest of the body (a lingering close)
// instead of closing with unread input, which resets the connection under the client's writes.
TEST_F(HttpServerTest, AnOverLimitBodySentAtOnceStillGetsItsAnswer) {
  HttpServerOptions options;
  options.max_body_bytes = 64 * 1024;
  options.linger_bytes = 64 * 1024 * 1024;
  StartServer(options);
  // More than loopback's socket buffers take in while the server answers.
  const std::string body(16 * 1024 * 1024, 'x');
  for (int i = 0; i < 3; i++) {
    const int fd = Connect(port_);
    // Clients (node's http, curl) give up on a write error before reading any answer.
    EXPECT_TRUE(Send(fd, "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                             std::to_string(body.size()) + "\r\n\r\n" + body))
        << "attempt " << i
        << ": the connection was reset while the body was sent: " << std::strerror(errno);
    const std::string raw = ReadAll(fd);
    ::close(fd);
    const Response r = Parse(raw);
    EXPECT_EQ(r.status, 413) << "attempt " << i << ": " << raw.size() << " bytes: " << raw;
    EXPECT_EQ(ErrorCode(r), "request_too_large");
  }
  // Chunked: the limit is met in the middle of the body.
  std::string chunked = "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 512; i++) chunked += "8000\r\n" + std::string(0x8000, 'y') + "\r\n";
  chunked += "0\r\n\r\n";
  const int fd = Connect(port_);
  EXPECT_TRUE(Send(fd, chunked)) << std::strerror(errno);
  const Response r = Parse(ReadAll(fd));
  ::close(fd);
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(handler_.requests.load(), 0);
}

TEST_F(HttpServerTest, ConnectionsOverTheLimitAre503) {
  HttpServerOptions options;
  options.max_connections = 3;
  StartServer(options);
  std::vector<int> open;
  for (int i = 0; i < 3; i++) {
    open.push_back(Connect(port_));
    Send(open.back(), "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_EQ(ReadResponse(open.back()).status, 200);  // accepted and kept alive
  }
  // A fourth is answered at once, before it sends anything, and one that sends a request too.
  ExpectRefused("", 503, "too_many_connections");
  ExpectRefused("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 503, "too_many_connections");
  // The open ones are still served.
  Send(open[0], "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(ReadResponse(open[0]).status, 200);
  // Once one closes, a new connection is served again.
  ::close(open.back());
  open.pop_back();
  int status = 0;
  for (int attempt = 0; attempt < 50 && status != 200; attempt++) {
    std::this_thread::sleep_for(20ms);
    const int fd = Connect(port_);
    Send(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    status = ReadResponse(fd).status;
    ::close(fd);
  }
  EXPECT_EQ(status, 200);
  for (int fd : open) ::close(fd);
}

int OpenDescriptors() {
  int n = 0;
  DIR* dir = ::opendir("/proc/self/fd");
  if (!dir) return -1;
  while (const dirent* e = ::readdir(dir)) {
    if (e->d_name[0] != '.') n++;
  }
  ::closedir(dir);
  return n - 1;  // the directory's own
}

// CPU seconds (user + system) the process `pid` has used.
double CpuSeconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::istringstream fields(stat.substr(stat.rfind(')') + 2));
  std::string field;
  long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && fields >> field; i++) {
    if (i == 14) utime = std::atol(field.c_str());
    if (i == 15) stime = std::atol(field.c_str());
  }
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// Expect: 100-continue: 100 Continue at once, then the answer to the body; a body over the limit
// is refused before the client sends it (the client does not wait out its timeout either way).
TEST_F(HttpServerTest, ExpectContinueIsAnsweredBeforeTheBody) {
  HttpServerOptions options;
  options.max_body_bytes = 1000;
  StartServer(options);
  const int fd = Connect(port_);
  Send(fd,
       "POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
  char buf[64];
  const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);  // within SO_RCVTIMEO (5 s)
  ASSERT_GT(n, 0);
  EXPECT_EQ(std::string(buf, static_cast<size_t>(n)), "HTTP/1.1 100 Continue\r\n\r\n");
  Send(fd, "hello");
  const Response r = ReadResponse(fd);
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.body.find(R"("body":5)"), std::string::npos) << r.body;
  ::close(fd);

  const int big = Connect(port_);
  Send(big,
       "POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n"
       "Expect: 100-continue\r\n\r\n");
  const Response refused = ReadResponse(big);
  EXPECT_EQ(refused.status, 413);
  EXPECT_EQ(ErrorCode(refused), "request_too_large");
  ::close(big);
  EXPECT_EQ(handler_.requests.load(), 1);
}

// Out of descriptors (EMFILE), the accept loop waits between attempts instead of spinning, the
// open connections are still served, and new ones are once descriptors are free again. The server
// runs in a child process whose open-file limit leaves room for 3 connections.
TEST_F(HttpServerTest, OutOfDescriptorsTheAcceptLoopBacksOffAndRecovers) {
#if defined(__SANITIZE_ADDRESS__)
  // The sanitizer runtime probes memory through a pipe of its own before UBSan's vptr check on
  // the server's log call; out of descriptors, the probe fails and reports a false "invalid vptr".
  GTEST_SKIP() << "the sanitizer runtime itself needs descriptors; covered by the release run";
#endif
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {  // the server
    ::close(pipe_fds[0]);
    TestHandler handler;
    HttpServerOptions options;
    options.port = 0;
    options.threads = 1;
    HttpServer server(options, handler);
    auto port = server.Start();
    if (!port.ok()) ::_exit(1);
    rlimit limit{};
    ::getrlimit(RLIMIT_NOFILE, &limit);
    // Room for 3 more descriptors once the pipe (counted here) is closed.
    limit.rlim_cur = static_cast<rlim_t>(OpenDescriptors() + 2);
    if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) ::_exit(2);
    const uint16_t p = *port;
    if (::write(pipe_fds[1], &p, sizeof(p)) != sizeof(p)) ::_exit(3);
    ::close(pipe_fds[1]);
    ::pause();
    ::_exit(0);
  }
  ::close(pipe_fds[1]);
  uint16_t port = 0;
  ASSERT_EQ(::read(pipe_fds[0], &port, sizeof(port)), static_cast<ssize_t>(sizeof(port)));
  ::close(pipe_fds[0]);

  // 8 connections: 3 accepted, the others wait in the backlog while accept fails with EMFILE.
  std::vector<int> clients;
  for (int i = 0; i < 8; i++) clients.push_back(Connect(port));
  std::this_thread::sleep_for(300ms);
  const double cpu_before = CpuSeconds(pid);
  std::this_thread::sleep_for(1s);
  const double cpu = CpuSeconds(pid) - cpu_before;
  EXPECT_LT(cpu, 0.3) << "the server used " << cpu << " s of CPU in 1 s: accept is spinning";
  // An accepted connection is still answered.
  Send(clients[0], "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(ReadResponse(clients[0]).status, 200);
  // Descriptors free again: the queued connections are accepted (and seen closed), and a new one
  // is served within the longest wait between accept attempts.
  for (int fd : clients) ::close(fd);
  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (status != 200 && std::chrono::steady_clock::now() < deadline) {
    const int fd = Connect(port);
    Send(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    status = ReadResponse(fd).status;
    ::close(fd);
    if (status != 200) std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(status, 200);
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
}

}  // namespace
}  // namespace ecrm
