// Hostile clients against the API and admin ports (issue 20), over raw sockets so that a test
// controls exactly which bytes are sent and when: ultracore-engine as a subprocess, the real
// PostgreSQL, a dev broker. Each test states what it showed before its fix.
//
// Waits here are bounds that stop a broken test from hanging, never speed assertions: what a
// test checks is whether the engine answered, and what. Figures (latency, peak memory) are
// printed for the report.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>
#include <pqxx/pqxx>

#include "engine_harness.h"

namespace ultracore::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

constexpr const char* kCustomersTopic = "ultracore.customers.events";
constexpr const char* kAccountsTopic = "ultracore.accounts.events";
constexpr const char* kToken = "api-s3cret";
constexpr const char* kAdminToken = "admin-s3cret";

double secondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

/// What came back on a connection: the status (-1: closed or timed out without an answer).
struct Reply {
  int status = -1;
  std::string head;
  std::string body;
  nlohmann::json parsed() const { return nlohmann::json::parse(body, nullptr, false); }
};

/// One TCP connection to 127.0.0.1:port, driven byte by byte.
class Connection {
 public:
  explicit Connection(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(static_cast<std::uint16_t>(port));
    connected_ = fd_ >= 0 && ::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
  }
  ~Connection() {
    if (fd_ >= 0) ::close(fd_);
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  bool connected() const { return connected_; }

  /// False once the peer closed or reset the connection.
  bool send(std::string_view data) {
    while (!data.empty()) {
      const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  /// Reads one response (head, then Content-Length bytes of body) within `bound`.
  Reply read(std::chrono::milliseconds bound) {
    Reply reply;
    std::string data;
    const auto deadline = std::chrono::steady_clock::now() + bound;
    std::size_t head_end = std::string::npos;
    std::size_t body_length = 0;
    for (;;) {
      if (head_end == std::string::npos) {
        head_end = data.find("\r\n\r\n");
        if (head_end != std::string::npos) {
          reply.head = data.substr(0, head_end);
          if (reply.head.rfind("HTTP/1.1 ", 0) == 0) reply.status = std::stoi(reply.head.substr(9, 3));
          const auto at = lower(reply.head).find("content-length: ");
          if (at != std::string::npos) body_length = std::stoul(reply.head.substr(at + 16));
        }
      }
      if (head_end != std::string::npos && data.size() >= head_end + 4 + body_length) {
        reply.body = data.substr(head_end + 4, body_length);
        return reply;
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
      char buffer[4096];
      const ssize_t n = ::recv(fd_, buffer, sizeof(buffer), 0);
      if (n <= 0) break;
      data.append(buffer, static_cast<std::size_t>(n));
    }
    if (head_end == std::string::npos) reply.status = -1;
    return reply;
  }

  /// Waits (bounded) until the peer closes: recv returns 0 or an error. Anything it sends
  /// before is discarded. False if the connection is still open when `bound` ends.
  bool waitClosed(std::chrono::milliseconds bound, const std::function<void()>& meanwhile = {}) {
    const auto deadline = std::chrono::steady_clock::now() + bound;
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 100) > 0) {
        char buffer[4096];
        if (::recv(fd_, buffer, sizeof(buffer), 0) <= 0) return true;
      }
      if (meanwhile) meanwhile();
    }
    return false;
  }

 private:
  static std::string lower(std::string text) {
    for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return text;
  }

  int fd_ = -1;
  bool connected_ = false;
};

/// Sends a whole request on a fresh connection and reads its response.
Reply request(int port, const std::string& text, std::chrono::milliseconds bound = 30s) {
  Connection c(port);
  if (!c.connected() || !c.send(text)) return {};
  return c.read(bound);
}

std::string get(const std::string& path, const std::string& headers = "") {
  return "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers + "\r\n";
}

std::string bearer(const std::string& token) { return "Authorization: Bearer " + token + "\r\n"; }

/// The peak resident set of a process (VmHWM), in MiB; -1 when unknown.
long peakRssMiB(int pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6)) / 1024;
  }
  return -1;
}

class ApiSecurityTest : public ::testing::Test {
 protected:
  ApiSecurityTest() : broker_(DevBroker::Options{1, 4, {kCustomersTopic, kAccountsTopic}}) {}

  /// Writes the manifest (`api_extra`/`admin_extra` are flow-map entries added to api:/admin:)
  /// and starts the engine. Returns false when it did not come up.
  void start(const std::string& api_extra = std::string(", token: ") + kToken,
             const std::string& admin_extra = std::string(", token: ") + kAdminToken,
             bool with_customers = true) {
    port_ = freePort();
    manifest_ = dir_.path() / "projections.yaml";
    std::ofstream out(manifest_);
    out << "kafka:\n"
        << "  bootstrap.servers: " << broker_.bootstrap() << "\n"
        << "  session.timeout.ms: 3000\n"
        << "  heartbeat.interval.ms: 500\n"
        << "  fetch.wait.max.ms: 10\n"
        << "postgres:\n  url: " << db_.url() << "\n" << postgres_extra_
        << "api: { listen: 127.0.0.1:" << port_ << ", max_body_bytes: 2048" << api_extra << " }\n"
        << "admin: { listen: 127.0.0.1:0" << admin_extra << " }\n"
        << "plugins:\n"
        << "  - { name: customers, library: "
        << (binaryDir() / "plugins/customers/libultracore_customers.so").string() << " }\n"
        << "  - { name: accounts, library: "
        << (binaryDir() / "plugins/accounts/libultracore_accounts.so").string() << " }\n"
        << extra_plugins_ << "projections:\n";
    if (with_customers) {
      out << "  - { name: customers, plugin: customers, topics: [" << kCustomersTopic
          << "], batch: { max_events: 500, max_wait_ms: 5 } }\n";
    }
    out << "  - { name: accounts, plugin: accounts, topics: [" << kAccountsTopic
        << "], batch: { max_events: 500, max_wait_ms: 5 } }\n";
    out.close();
    engine_ = startEngine(manifest_, dir_.path() / "engine.log");
    ASSERT_TRUE(waitForEngineRunning(*engine_)) << engine_->log();
    admin_port_ = adminPort(*engine_);
    ASSERT_GT(admin_port_, 0) << engine_->log();
    ASSERT_TRUE(waitUntil([&] {
      return request(port_, get("/readyz"), 5s).status == 200;
    }, 60s)) << engine_->log();
  }

  void TearDown() override {
    if (engine_ && engine_->running()) {
      engine_->signal(SIGTERM);
      EXPECT_EQ(engine_->wait(30s), 0) << engine_->log();
    }
  }

  /// A POST head with the API token (or none) and the given extra headers.
  static std::string postHead(const std::string& path, const std::string& headers,
                              const std::string& token = kToken) {
    return "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" +
           (token.empty() ? "" : bearer(token)) + headers + "\r\n";
  }

  DevBroker broker_;
  TestDatabase db_;
  TempDir dir_;
  std::filesystem::path manifest_;
  int port_ = 0;
  int admin_port_ = 0;
  std::unique_ptr<Subprocess> engine_;
  std::string postgres_extra_;  ///< more `postgres:` lines ("  key: value\n")
  std::string extra_plugins_;   ///< more `plugins:` lines
};

// ---- 1. bodies are checked before they are read -----------------------------------------------

// Before the fix: every case but the too-long Content-Length waited for a body that never came
// and answered 400 when the read timed out (the token, length and encoding were only looked at
// after the body was read), and the admin port never answered 413 (it had no limit at all).
TEST_F(ApiSecurityTest, BodiesAreCheckedBeforeTheyAreRead) {
  start();
  struct Case {
    const char* name;
    int port;
    std::string head;
    int status;
  };
  const std::string json_type = "Content-Type: application/json\r\n";
  const std::vector<Case> cases = {
      {"api: chunked without token", port_,
       postHead("/api/v1/customers", json_type + "Transfer-Encoding: chunked\r\n", ""), 401},
      {"api: chunked", port_, postHead("/api/v1/customers", json_type + "Transfer-Encoding: chunked\r\n"), 411},
      {"api: no length", port_, postHead("/api/v1/customers", json_type), 411},
      {"api: too long", port_, postHead("/api/v1/customers", json_type + "Content-Length: 100000000\r\n"), 413},
      {"api: gzip", port_,
       postHead("/api/v1/customers", json_type + "Content-Encoding: gzip\r\nContent-Length: 100\r\n"), 415},
      {"admin: chunked without token", admin_port_,
       postHead("/api/v1/projections/customers/pause", json_type + "Transfer-Encoding: chunked\r\n", ""), 401},
      {"admin: chunked", admin_port_,
       postHead("/api/v1/projections/customers/pause", json_type + "Transfer-Encoding: chunked\r\n",
                kAdminToken), 411},
      {"admin: too long", admin_port_,
       postHead("/api/v1/projections/customers/pause", json_type + "Content-Length: 100000000\r\n",
                kAdminToken), 413},
      {"admin: gzip", admin_port_,
       postHead("/api/v1/projections/customers/pause",
                json_type + "Content-Encoding: gzip\r\nContent-Length: 100\r\n", kAdminToken), 415},
      // A head over 64 KiB (before: served, the limit was only head plus body together).
      {"api: 70 KiB of headers", port_,
       postHead("/api/v1/customers", json_type + "Content-Length: 16\r\n" +
                                         std::string("X-Pad: ") + std::string(70 * 1024, 'a') + "\r\n"),
       431},
  };
  for (const auto& c : cases) {
    // The head and a first piece of the body; the rest never comes.
    Connection connection(c.port);
    ASSERT_TRUE(connection.connected()) << c.name;
    ASSERT_TRUE(connection.send(c.head + "10\r\n0123456789abcdef")) << c.name;
    const auto started = std::chrono::steady_clock::now();
    const Reply reply = connection.read(30s);
    std::printf("[ figures  ] %s: HTTP %d after %.3f s\n", c.name, reply.status, secondsSince(started));
    EXPECT_EQ(reply.status, c.status) << c.name << ": " << reply.head << "\n" << reply.body;
    if (reply.status >= 400) {
      EXPECT_TRUE(reply.parsed().is_object()) << c.name << ": " << reply.body;
    }
  }
}

// Before the fix: the engine read all 200 MiB of a chunked body sent without a token before
// answering 401 (peak RSS figures in the output).
TEST_F(ApiSecurityTest, ALargeChunkedBodyWithoutTheTokenIsRefusedUnread) {
  start();
  const long before = peakRssMiB(engine_->pid());
  Connection connection(port_);
  ASSERT_TRUE(connection.connected());
  ASSERT_TRUE(connection.send(postHead("/api/v1/customers",
                                       "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n", "")));
  constexpr std::size_t kChunk = 1 << 20;
  constexpr std::size_t kChunks = 200;
  char size_line[32];
  std::snprintf(size_line, sizeof(size_line), "%zx\r\n", kChunk);
  const std::string chunk = std::string(size_line) + std::string(kChunk, 'x') + "\r\n";
  std::size_t sent = 0;
  while (sent < kChunks && connection.send(chunk)) ++sent;
  if (sent == kChunks) connection.send("0\r\n\r\n");
  const Reply reply = connection.read(60s);
  const long after = peakRssMiB(engine_->pid());
  std::printf("[ figures  ] peak RSS %ld MiB before, %ld MiB after; %zu of %zu MiB sent; HTTP %d\n",
              before, after, sent, kChunks, reply.status);
  EXPECT_LT(sent, kChunks) << "the engine read the whole body";
}

// ---- 2. idle and slow connections --------------------------------------------------------

/// Connections that send a request head one byte at a time, forever (until the test ends).
class Trickler {
 public:
  Trickler(int port, int count) {
    for (int i = 0; i < count; ++i) {
      connections_.push_back(std::make_unique<Connection>(port));
      connections_.back()->send("GET /api/v1/customers HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ");
    }
    thread_ = std::thread([this] {
      while (!done_) {
        for (auto& c : connections_) c->send("x");
        std::this_thread::sleep_for(300ms);
      }
    });
  }
  ~Trickler() {
    done_ = true;
    thread_.join();
  }

 private:
  std::vector<std::unique_ptr<Connection>> connections_;
  std::atomic<bool> done_{false};
  std::thread thread_;
};

// Before the fix: 24 trickling connections held all 16 API workers (4 on admin) and /healthz
// got no answer at all while they trickled.
TEST_F(ApiSecurityTest, SlowSocketsDoNotStopHealthz) {
  start();
  for (const int port : {port_, admin_port_}) {
    Trickler slow(port, 24);
    std::this_thread::sleep_for(1s);  // they hold what they can
    const auto started = std::chrono::steady_clock::now();
    const Reply health = request(port, get("/healthz"), 20s);
    std::printf("[ figures  ] %s /healthz under 24 trickling sockets: HTTP %d after %.3f s\n",
                port == port_ ? "api" : "admin", health.status, secondsSince(started));
    EXPECT_EQ(health.status, 200) << (port == port_ ? "api" : "admin");
    // Anything else is served (trickled heads hold no worker), never left hanging.
    const std::string path = port == port_ ? "/api/v1/customers?limit=1" : "/api/v1/projections";
    const Reply other = request(port, get(path, bearer(port == port_ ? kToken : kAdminToken)), 20s);
    EXPECT_EQ(other.status, 200) << other.body;
  }
}

// Before the fix: an idle keep-alive connection kept its worker and its client's slot, so one
// client with more keep-alive connections than the per-client cap (12 of 16 API workers), such
// as the latency bench's 16 or a gateway, got 503 on the others (83 of 400 bench requests
// failed at 50/s). Idle connections now wait in the parking and hold neither.
TEST_F(ApiSecurityTest, IdleKeepAliveConnectionsHoldNoWorker) {
  start();
  constexpr int kConnections = 40;
  std::vector<std::unique_ptr<Connection>> connections;
  for (int round = 0; round < 2; ++round) {
    for (int i = 0; i < kConnections; ++i) {
      if (round == 0) connections.push_back(std::make_unique<Connection>(port_));
      Connection& c = *connections[static_cast<std::size_t>(i)];
      ASSERT_TRUE(c.send(get("/readyz"))) << "round " << round << " connection " << i;
      const Reply reply = c.read(20s);
      // A worker answers 200; the busy lane answers 503 and closes.
      ASSERT_EQ(reply.status, 200) << "round " << round << " connection " << i << ": " << reply.body
                                   << engine_->log();
    }
  }
}

// Before the fix: a request head trickled one byte every 300 ms kept its worker for as long as
// it trickled (the read timeout restarted with every byte); the connection was still open after
// the 60 s bound.
TEST_F(ApiSecurityTest, ATrickledRequestIsCutOffAtTheRequestDeadline) {
  start();
  Connection connection(port_);
  ASSERT_TRUE(connection.send("GET /api/v1/customers HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "));
  const auto started = std::chrono::steady_clock::now();
  auto last = started;
  const bool closed = connection.waitClosed(60s, [&] {
    if (std::chrono::steady_clock::now() - last >= 300ms) {
      connection.send("x");
      last = std::chrono::steady_clock::now();
    }
  });
  std::printf("[ figures  ] trickled request: %s after %.1f s\n", closed ? "closed" : "still open",
              secondsSince(started));
  EXPECT_TRUE(closed);
}

// ---- 3. consistency waits and idempotency locks --------------------------------------------

// Before the fix: a token past the log end waited the full 5 s and answered 504; 24 concurrent
// waits all waited (none refused), each holding a worker and a PostgreSQL connection.
TEST_F(ApiSecurityTest, ConsistencyWaitsAreBoundedAndCapped) {
  start();
  const std::string auth = bearer(kToken);
  const auto past = request(port_, get(std::string("/api/v1/customers/X?consistent_with=") +
                                           kCustomersTopic + ":0:999999", auth));
  EXPECT_EQ(past.status, 400) << past.body;
  EXPECT_EQ(past.parsed()["error"]["code"], "token_past_log_end") << past.body;

  // A position in the log that the projection never reaches: it stops (on_error: fail) at a
  // record that is not an envelope, at offset 0 of partition 0.
  produce(broker_.bootstrap(), {{kCustomersTopic, "K", "not an envelope", 0},
                                {kCustomersTopic, "K", "not one either", 0}});
  const std::string token = std::string(kCustomersTopic) + ":0:0";
  std::vector<std::thread> waits;
  std::mutex mutex;
  std::map<int, int> statuses;
  for (int i = 0; i < 24; ++i) {
    waits.emplace_back([&] {
      const Reply r = request(port_, get("/api/v1/customers/X?consistent_with=" + token, auth));
      std::lock_guard lock(mutex);
      ++statuses[r.status];
    });
  }
  std::this_thread::sleep_for(1s);
  auto started = std::chrono::steady_clock::now();
  const Reply health = request(port_, get("/healthz"), 20s);
  std::printf("[ figures  ] /healthz during 24 waits: HTTP %d after %.3f s\n", health.status, secondsSince(started));
  started = std::chrono::steady_clock::now();
  const Reply list = request(port_, get("/api/v1/accounts/NOPE", auth), 20s);
  std::printf("[ figures  ] a query during 24 waits: HTTP %d after %.3f s\n", list.status, secondsSince(started));
  for (auto& t : waits) t.join();
  for (const auto& [status, count] : statuses) std::printf("[ figures  ] waits: %d x HTTP %d\n", count, status);
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(list.status, 404);
  EXPECT_GT(statuses[503], 0) << "no wait was refused";
  EXPECT_GT(statuses[504], 0);
}

// Before the fix: a request whose Idempotency-Key was locked by another request waited on
// pg_advisory_lock for as long as the lock was held (no answer within the 20 s bound).
TEST_F(ApiSecurityTest, ABusyIdempotencyKeyAnswers409) {
  start();
  pqxx::connection holder(db_.url());
  pqxx::nontransaction(holder).exec("SELECT pg_advisory_lock(hashtext('ultracore.api.idempotency/DEFAULT/key-busy'))");
  const std::string body = R"({"first_name":"A","last_name":"B","email":"a@b"})";
  const std::string head = postHead("/api/v1/customers", "Content-Type: application/json\r\nIdempotency-Key: key-busy\r\n"
                                                         "Content-Length: " + std::to_string(body.size()) + "\r\n");
  const Reply busy = request(port_, head + body, 20s);
  EXPECT_EQ(busy.status, 409) << busy.body;
  EXPECT_EQ(busy.parsed()["error"]["code"], "in_progress") << busy.body;
  pqxx::nontransaction(holder).exec("SELECT pg_advisory_unlock_all()");
  const Reply done = request(port_, head + body);
  EXPECT_EQ(done.status, 201) << done.body;
}

// Before the fix: an Idempotency-Key stored two days ago still bound the key (here: 422
// idempotency_key_reused for a new request); the table had no retention at all.
TEST_F(ApiSecurityTest, AnIdempotencyKeyExpiresAfterItsRetention) {
  start();
  {
    pqxx::connection old(db_.url());
    pqxx::nontransaction(old).exec(
        "INSERT INTO ultracore_api_idempotency (tenant_id, idempotency_key, request_md5, status, "
        "response, created_at) VALUES ('DEFAULT', 'key-old', md5('another request'), 201, "
        "'{\"old\":true}', now() - interval '2 days')");
  }
  const std::string body = R"({"first_name":"A","last_name":"B","email":"a@b"})";
  const Reply fresh = request(port_, postHead("/api/v1/customers", "Content-Type: application/json\r\nIdempotency-Key: key-old\r\n"
                                                                   "Content-Length: " + std::to_string(body.size()) + "\r\n") + body);
  EXPECT_EQ(fresh.status, 201) << fresh.body;
  EXPECT_EQ(queryValue(db_.url(), "SELECT count(*) FROM ultracore_api_idempotency WHERE idempotency_key = 'key-old' "
                                  "AND created_at > now() - interval '1 hour'"), "1");
}

// ---- 6. safe defaults ------------------------------------------------------------------------

// Before the fix: a text/plain command (what a cross-site form or no-cors fetch can send) was
// accepted (201), any Host was served (DNS rebinding), and an admin action fired on an empty
// text/plain POST (202).
TEST_F(ApiSecurityTest, CrossSiteShapedRequestsAreRefused) {
  start(std::string(", token: ") + kToken, "");
  const std::string body = R"({"first_name":"A","last_name":"B","email":"a@b"})";
  const std::string length = "Content-Length: " + std::to_string(body.size()) + "\r\n";
  const Reply plain = request(port_, postHead("/api/v1/customers", "Content-Type: text/plain\r\n" + length) + body);
  EXPECT_EQ(plain.status, 415) << plain.body;
  const Reply untyped = request(port_, postHead("/api/v1/customers", length) + body);
  EXPECT_EQ(untyped.status, 415) << untyped.body;
  const Reply typed = request(port_, postHead("/api/v1/customers", "Content-Type: application/json; charset=utf-8\r\n" + length) + body);
  EXPECT_EQ(typed.status, 201) << typed.body;

  const Reply rebound = request(port_, "GET /api/v1/customers HTTP/1.1\r\nHost: attacker.example:" +
                                           std::to_string(port_) + "\r\n" + bearer(kToken) + "\r\n");
  EXPECT_EQ(rebound.status, 421) << rebound.body;
  const Reply local = request(port_, "GET /api/v1/customers HTTP/1.1\r\nHost: localhost:" +
                                         std::to_string(port_) + "\r\n" + bearer(kToken) + "\r\n");
  EXPECT_EQ(local.status, 200) << local.body;

  // The admin port here has no token (loopback): its actions still need a JSON body.
  const Reply fired = request(admin_port_, postHead("/api/v1/projections/customers/pause",
                                                    "Content-Type: text/plain\r\nContent-Length: 0\r\n", ""));
  EXPECT_EQ(fired.status, 415) << fired.body;
  const Reply admin_rebound = request(admin_port_, "GET /metrics HTTP/1.1\r\nHost: attacker.example\r\n\r\n");
  EXPECT_EQ(admin_rebound.status, 421) << admin_rebound.body;
  const Reply paused = request(admin_port_, postHead("/api/v1/projections/customers/pause",
                                                     "Content-Type: application/json\r\nContent-Length: 2\r\n", "") + "{}");
  EXPECT_EQ(paused.status, 202) << paused.body;
  // The API's token is not an admin credential.
  EXPECT_EQ(request(admin_port_, get("/api/v1/projections", bearer("wrong"))).status, 200)
      << "no admin token: the admin port is open on loopback";
}

// ---- 7. errors say what the client did wrong ---------------------------------------------------

// Before the fix: invalid UTF-8 in an id or a query parameter answered 500 with PostgreSQL's
// text (SQLSTATE 22021), in a path 500 with [json.exception.type_error.316], and an invalid
// X-User-Id was stamped into the event (or crashed the same way).
TEST_F(ApiSecurityTest, MalformedInputIs400AndNeverShowsInternals) {
  start();
  const std::string auth = bearer(kToken);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"id", get("/api/v1/customers/%FF%FE", auth)},
      {"query parameter", get("/api/v1/customers?after=%FF", auth)},
      {"path", get("/api/v1/%FF", auth)},
      {"tenant", get("/api/v1/customers", auth + "X-Tenant-Id: a\r\nX-Tenant-Id: b\r\n")},
      {"user", postHead("/api/v1/customers", "Content-Type: application/json\r\nContent-Length: 48\r\nX-User-Id: \x01\xff\r\n") +
                   R"({"first_name":"A","last_name":"B","email":"a@b"})"},
  };
  for (const auto& [name, text] : cases) {
    const Reply reply = request(port_, text);
    EXPECT_EQ(reply.status, 400) << name << ": " << reply.body;
    EXPECT_EQ(reply.body.find("json.exception"), std::string::npos) << name << ": " << reply.body;
    EXPECT_EQ(reply.body.find("SQLSTATE"), std::string::npos) << name << ": " << reply.body;
    EXPECT_TRUE(reply.parsed().is_object()) << name << ": " << reply.body;
  }
}

// Before the fix: with its PostgreSQL sessions killed, a query answered libpq's text.
TEST_F(ApiSecurityTest, ADatabaseFailureAnswers503WithAnErrorIdAndNoLibpqText) {
  start();
  const std::string auth = bearer(kToken);
  ASSERT_EQ(request(port_, get("/api/v1/customers", auth)).status, 200);
  pqxx::connection admin(db_.url());
  pqxx::nontransaction(admin).exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
             "AND pid <> pg_backend_pid()");
  const Reply reply = request(port_, get("/api/v1/customers", auth));
  std::printf("[ figures  ] after terminate: HTTP %d %s\n", reply.status, reply.body.c_str());
  if (reply.status != 200) {
    EXPECT_EQ(reply.status, 503) << reply.body;
    const json error = reply.parsed()["error"];
    EXPECT_TRUE(error.contains("error_id")) << reply.body;
    for (const char* leak : {"terminat", "server closed", "SQLSTATE", "host", "127.0.0.1", "postgres"}) {
      EXPECT_EQ(reply.body.find(leak), std::string::npos) << leak << " in " << reply.body;
    }
    if (error.contains("error_id")) {
      EXPECT_NE(engine_->log().find(error["error_id"].get<std::string>()), std::string::npos) << engine_->log();
    }
  }
}

// Before the fix: the admin server's own exception handler answered e.what(), here libpq's
// text (measured: 500 "Could not obtain client encoding: not connected." after its PostgreSQL
// session was terminated).
TEST_F(ApiSecurityTest, AnAdminFailureAnswersAnErrorIdAndNoInternals) {
  start();
  pqxx::connection admin(db_.url());
  pqxx::nontransaction(admin).exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
                                   "AND pid <> pg_backend_pid()");
  const Reply reply = request(admin_port_, postHead("/api/v1/projections/customers/rebuild",
                                                    "Content-Type: application/json\r\nContent-Length: 2\r\n",
                                                    kAdminToken) + "{}");
  std::printf("[ figures  ] admin rebuild after terminate: HTTP %d %s\n", reply.status, reply.body.c_str());
  ASSERT_EQ(reply.status, 500) << reply.body;
  const json error = reply.parsed()["error"];
  ASSERT_TRUE(error.is_object() && error.contains("error_id")) << reply.body;
  for (const char* leak : {"terminat", "server closed", "SQLSTATE", "host", "127.0.0.1", "postgres"}) {
    EXPECT_EQ(reply.body.find(leak), std::string::npos) << leak << " in " << reply.body;
  }
  EXPECT_NE(engine_->log().find(error["error_id"].get<std::string>()), std::string::npos) << engine_->log();
}

// ---- 4. tenancy bound to the credential ------------------------------------------------------

// Before the fix: the manifest knew no `tokens:` (the engine refused to start), and any token
// served any tenant.
TEST_F(ApiSecurityTest, ATokenServesOnlyItsTenants) {
  start(", tokens: [ { token: only-a, tenants: [tenant-a] }, { token: a-and-b, tenants: [tenant-a, tenant-b] },"
        " { token: gateway-1, tenants: '*', gateway: true } ]");
  const std::string body = R"({"first_name":"A","last_name":"B","email":"a@b"})";
  const auto create = [&](const std::string& token, const std::string& tenant) {
    return request(port_, postHead("/api/v1/customers",
                                   "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
                                       "\r\n" + (tenant.empty() ? "" : "X-Tenant-Id: " + tenant + "\r\n"),
                                   token) + body).status;
  };
  EXPECT_EQ(create("only-a", "tenant-a"), 201);
  EXPECT_EQ(create("only-a", ""), 201) << "a token of one tenant needs no X-Tenant-Id";
  EXPECT_EQ(create("only-a", "tenant-b"), 403);
  EXPECT_EQ(create("only-a", "DEFAULT"), 403);
  EXPECT_EQ(create("a-and-b", "tenant-b"), 201);
  EXPECT_EQ(create("a-and-b", "tenant-c"), 403);
  EXPECT_EQ(create("gateway-1", "tenant-z"), 201);
  EXPECT_EQ(request(port_, get("/api/v1/customers", bearer("only-a") + "X-Tenant-Id: tenant-b\r\n")).status, 403);
  EXPECT_EQ(queryValue(db_.url(), "SELECT count(*) FROM processed_events WHERE projection = 'customers'").empty(), false);
  EXPECT_TRUE(waitUntil([&] {
    return queryValue(db_.url(), "SELECT count(*) FROM customers.customers WHERE tenant_id = 'tenant-a'") == "2";
  }, 30s));
}

// ---- 5. an event never changes another tenant's rows --------------------------------------------

// Before the fix: a CustomerUpdated of tenant-b carrying tenant-a's customer id changed
// tenant-a's row (the projection's UPDATE matched on the id alone).
TEST_F(ApiSecurityTest, AnEventOfAnotherTenantNeverChangesARow) {
  start();
  produce(broker_.bootstrap(),
          {{kCustomersTopic, "CUST-T5", envelope("8c6f0e0e-0005-4000-8000-000000000001", "CustomerCreated", "CUST-T5",
                                                 {{"first_name", "A"}, {"last_name", "B"}, {"email", "a@tenant-a"}},
                                                 "tenant-a")}});
  ASSERT_TRUE(waitUntil([&] {
    return queryValue(db_.url(), "SELECT email FROM customers.customers WHERE customer_id = 'CUST-T5'") == "a@tenant-a";
  }, 30s));
  produce(broker_.bootstrap(),
          {{kCustomersTopic, "CUST-T5", envelope("8c6f0e0e-0005-4000-8000-000000000002", "CustomerUpdated", "CUST-T5",
                                                 {{"email", "mine@tenant-b"}}, "tenant-b")}});
  // Applied, or refused (this fixture's on_error is fail: the projection stops at it).
  ASSERT_TRUE(waitUntil([&] {
    return queryValue(db_.url(), "SELECT count(*) FROM processed_events WHERE event_id = "
                                 "'8c6f0e0e-0005-4000-8000-000000000002'") == "1" ||
           queryValue(db_.url(), "SELECT state FROM ultracore_projection_status WHERE projection = 'customers'") == "failed";
  }, 30s));
  EXPECT_EQ(queryValue(db_.url(), "SELECT email FROM customers.customers WHERE customer_id = 'CUST-T5'"), "a@tenant-a");
  EXPECT_EQ(queryValue(db_.url(), "SELECT tenant_id FROM customers.customers WHERE customer_id = 'CUST-T5'"), "tenant-a");
}

// Before the fix: tenant-b creating a customer with an id tenant-a already had got 409
// customer_exists (it learnt that the id exists), and its CustomerCreated could never be
// projected (the key was the id alone).
TEST_F(ApiSecurityTest, TwoTenantsMayEachOwnAnIdAndACreateRevealsNoOtherTenantsIds) {
  start(", tokens: [ { token: only-a, tenants: [tenant-a] }, { token: only-b, tenants: [tenant-b] } ]");
  const auto create = [&](const std::string& token, const std::string& email) {
    const std::string body = R"({"customer_id":"CUST-SHARED","first_name":"A","last_name":"B","email":")" + email + "\"}";
    return request(port_, postHead("/api/v1/customers", "Content-Type: application/json\r\nContent-Length: " +
                                                            std::to_string(body.size()) + "\r\n", token) + body);
  };
  const Reply a = create("only-a", "a@tenant-a");
  ASSERT_EQ(a.status, 201) << a.body;
  ASSERT_TRUE(waitUntil([&] {
    return request(port_, get("/api/v1/customers/CUST-SHARED", bearer("only-a"))).status == 200;
  }, 30s));
  const Reply b = create("only-b", "b@tenant-b");
  EXPECT_EQ(b.status, 201) << b.body;
  EXPECT_EQ(b.body.find("exists"), std::string::npos) << b.body;
  ASSERT_TRUE(waitUntil([&] {
    return request(port_, get("/api/v1/customers/CUST-SHARED", bearer("only-b"))).status == 200;
  }, 30s)) << engine_->log();
  EXPECT_EQ(request(port_, get("/api/v1/customers/CUST-SHARED", bearer("only-a"))).parsed()["email"], "a@tenant-a");
  EXPECT_EQ(request(port_, get("/api/v1/customers/CUST-SHARED", bearer("only-b"))).parsed()["email"], "b@tenant-b");
  EXPECT_EQ(create("only-a", "again@tenant-a").status, 409) << "its own tenant's id is still a conflict";
}

// ---- 8. least privilege in PostgreSQL -----------------------------------------------------------

// Before the fix: with no manifest projection named customers, the accounts plugin's
// {schema:customers} was quoted as given and read whatever schema "customers" held (here a
// planted table): the account was opened for a customer the engine never saw (201, published).
TEST_F(ApiSecurityTest, AnUnknownSchemaNameFailsLoudly) {
  {
    pqxx::connection planted(db_.url());
    pqxx::nontransaction(planted).exec(
        "CREATE SCHEMA customers; CREATE TABLE customers.customers (customer_id text, tenant_id "
        "text, status text); INSERT INTO customers.customers VALUES ('CUST-PLANTED', 'DEFAULT', "
        "'active')");
  }
  start(std::string(", token: ") + kToken, std::string(", token: ") + kAdminToken, false);
  const std::string body = R"({"customer_id":"CUST-PLANTED","account_type":"checking","currency":"EUR"})";
  const Reply opened = request(port_, postHead("/api/v1/accounts", "Content-Type: application/json\r\nContent-Length: " +
                                                   std::to_string(body.size()) + "\r\n") + body);
  std::printf("[ figures  ] account for a planted customer: HTTP %d %s\n", opened.status, opened.body.c_str());
  EXPECT_EQ(opened.status, 500) << opened.body;
  EXPECT_TRUE(opened.parsed()["error"].contains("error_id")) << opened.body;
  EXPECT_NE(engine_->log().find("unknown projection 'customers' in {schema:customers}"), std::string::npos)
      << engine_->log();
}

/// The test plugin whose query handlers try to write and to send two statements at once.
std::string sneakyPlugin() {
  return "  - { name: sneaky, library: " + (binaryDir() / "tests/plugins/libultracore_test_sneaky_api.so").string() +
         " }\n";
}

/// Runs what a least-privilege API must refuse and what it must still do; `engine_` is up.
void expectLeastPrivilege(int port, Subprocess& engine, const std::string& db_url, const std::string& token) {
  const std::string auth = bearer(token);
  const std::string body = R"({"customer_id":"CUST-P8","first_name":"A","last_name":"B","email":"a@b"})";
  const std::string head = "POST /api/v1/customers HTTP/1.1\r\nHost: 127.0.0.1\r\n" + auth +
                           "Content-Type: application/json\r\nIdempotency-Key: key-p8\r\nContent-Length: " +
                           std::to_string(body.size()) + "\r\n\r\n";
  // What the API needs: Idempotency-Keys (insert, then replay) and consistency waits (offsets).
  const Reply created = request(port, head + body);
  ASSERT_EQ(created.status, 201) << created.body << engine.log();
  const Reply replayed = request(port, head + body);
  EXPECT_EQ(replayed.status, 201) << replayed.body;
  EXPECT_NE(replayed.head.find("Idempotent-Replayed: true"), std::string::npos) << replayed.head;
  const std::string token_text = created.parsed().value("consistency_token", "");
  const Reply read = request(port, get("/api/v1/customers/CUST-P8?consistent_with=" + token_text, auth));
  ASSERT_EQ(read.status, 200) << read.body << engine.log();

  // A handler that opens its READ ONLY transaction for writing and updates a read model.
  const Reply wrote = request(port, get("/api/v1/sneaky/write/CUST-P8", auth));
  std::printf("[ figures  ] handler write: HTTP %d %s\n", wrote.status, wrote.body.c_str());
  EXPECT_EQ(wrote.status, 500) << wrote.body;
  const json error = wrote.parsed()["error"];
  ASSERT_TRUE(error.is_object() && error.contains("error_id")) << wrote.body;
  for (const char* leak : {"permission", "SQLSTATE", "customers", "postgres", "ultracore_api"}) {
    EXPECT_EQ(wrote.body.find(leak), std::string::npos) << leak << " in " << wrote.body;
  }
  const std::string log = engine.log();
  const auto logged = log.find(error["error_id"].get<std::string>());
  ASSERT_NE(logged, std::string::npos) << log;
  EXPECT_NE(log.find("permission denied for table customers", logged), std::string::npos) << log;
  EXPECT_EQ(queryValue(db_url, "SELECT email FROM customers.customers WHERE customer_id = 'CUST-P8'"), "a@b");

  // Two statements in one parameterless Reader call: the extended protocol takes one.
  const Reply two = request(port, get("/api/v1/sneaky/two-statements", auth));
  std::printf("[ figures  ] two statements: HTTP %d %s\n", two.status, two.body.c_str());
  EXPECT_EQ(two.status, 500) << two.body;
  EXPECT_NE(engine.log().find("cannot insert multiple commands into a prepared statement"), std::string::npos)
      << engine.log();
}

// Before the fix: the API's pool connected as the tables' owner (a superuser in the dev
// stack): the handler's UPDATE changed the customer (200 {"done":true}), and "SELECT 1; SELECT 2"
// ran through the simple protocol (200).
TEST_F(ApiSecurityTest, AnApiHandlerCannotWriteAndSendsOneStatementPerCall) {
  extra_plugins_ = sneakyPlugin();
  start();
  expectLeastPrivilege(port_, *engine_, db_.url(), kToken);
  EXPECT_EQ(queryValue(db_.url(), "SELECT string_agg(privilege_type, ',' ORDER BY privilege_type) FROM "
                                  "information_schema.role_table_grants WHERE grantee = 'ultracore_api' "
                                  "AND table_name = 'ultracore_api_idempotency'"),
            "DELETE,INSERT,SELECT");
}

// The operator's way: postgres.api_url names a login of the API's own, a member of
// postgres.api_role (here created by the test, as an operator would).
TEST_F(ApiSecurityTest, TheApiConnectsWithItsOwnLoginWhenGiven) {
  {
    pqxx::connection admin(db_.url());
    pqxx::nontransaction(admin).exec(
        "DO $$ BEGIN CREATE ROLE ultracore_api_t20 NOLOGIN; EXCEPTION WHEN duplicate_object OR unique_violation "
        "THEN NULL; END $$; DO $$ BEGIN CREATE ROLE ultracore_api_t20_login LOGIN IN ROLE ultracore_api_t20; "
        "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$");
  }
  std::string login_url = db_.url();
  const auto at = login_url.find("postgres@");
  ASSERT_NE(at, std::string::npos) << login_url;
  login_url.replace(at, 8, "ultracore_api_t20_login");
  postgres_extra_ = "  api_role: ultracore_api_t20\n  api_url: " + login_url + "\n";
  extra_plugins_ = sneakyPlugin();
  start();
  expectLeastPrivilege(port_, *engine_, db_.url(), kToken);
  EXPECT_NE(queryValue(db_.url(), "SELECT count(*) FROM pg_stat_activity WHERE usename = 'ultracore_api_t20_login' "
                                  "AND datname = current_database()"),
            "0");
}

// ---- 9. shutdown with the broker down --------------------------------------------------------

// A guard, not a reproduction: the issue's 3.5 minutes (the admin sampler blocked in
// rd_kafka_query_watermark_offsets) did not reproduce against the dev broker, neither stopped
// (exit 0 after 0.3 s) nor answering nothing (rtt 300 s: exit 0 after 0.2 s; with 100
// partitions per topic 0.3 s before the sampler's budget, 0.1 s after). Every broker call on a
// thread that stop() joins is bounded by a time-out (audit in the issue 20 report); the
// sampler's queries share a 1 s budget per sample and stop when stop() begins.
TEST_F(ApiSecurityTest, SigtermWithTheBrokerSilentExitsZero) {
  start();
  // The broker still accepts connections but answers nothing for five minutes.
  broker_.control("/brokers/1/rtt?ms=300000");
  std::this_thread::sleep_for(3s);  // the sampler and runners are caught in calls to it
  const auto started = std::chrono::steady_clock::now();
  engine_->signal(SIGTERM);
  const auto status = engine_->wait(60s);
  std::printf("[ figures  ] SIGTERM with the broker silent: %s after %.1f s\n",
              status ? ("exit " + std::to_string(*status)).c_str() : "still running", secondsSince(started));
  if (!status) engine_->kill();
  EXPECT_EQ(status, std::optional<int>(0)) << engine_->log();
  engine_.reset();
}

}  // namespace
}  // namespace ultracore::testing
