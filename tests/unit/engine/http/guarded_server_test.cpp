// GuardedServer on a loopback socket with a handler the test holds: when a client address has
// as many requests in progress as per_client allows, its next connection is answered 503
// server_busy by the busy lane (after max_queue_wait), /healthz still answers 200, and the
// operator gets one rate-limited "saturated" warning, not one line per refused connection.

#include "engine/http/guarded_server.h"

#include <httplib.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <memory>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "support/latch.h"

namespace ultracore::engine {
namespace {

using namespace std::chrono_literals;

/// Captures spdlog's default logger for the test's lifetime.
class LogCapture {
 public:
  LogCapture() : previous_(spdlog::default_logger()) {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(stream_);
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("capture", sink));
  }
  ~LogCapture() { spdlog::set_default_logger(previous_); }
  std::string text() {
    spdlog::default_logger()->flush();
    return stream_.str();
  }

 private:
  std::ostringstream stream_;
  std::shared_ptr<spdlog::logger> previous_;
};

TEST(GuardedServer, AClientOverItsCapGets503AndTheOperatorOneWarning) {
  LogCapture log;
  ServerLimits limits;
  limits.workers = 4;
  limits.per_client = 1;
  limits.max_queue_wait = 50ms;
  const auto error = [](httplib::Response& res, int status, const std::string& code,
                        const std::string& message) {
    res.status = status;
    res.set_content("{\"error\":{\"code\":\"" + code + "\",\"message\":\"" + message + "\"}}",
                    "application/json");
  };
  GuardedServer server("unit", limits, error, nullptr);
  testing::Latch latch;
  server.Get("/hold", [&](const httplib::Request&, httplib::Response& res) {
    latch.enter();
    res.set_content("{}", "application/json");
  });
  server.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok", "text/plain");
  });
  const int port = server.bind_to_any_port("127.0.0.1");
  ASSERT_GT(port, 0);
  std::thread serving([&] { server.listen_after_bind(); });

  httplib::Client holder("127.0.0.1", port);
  holder.set_read_timeout(20, 0);
  std::thread held([&] { holder.Get("/hold"); });
  ASSERT_TRUE(latch.waitEntered(1));

  // The same address again, three times: each waits 50 ms for its turn, then the busy lane.
  for (int i = 0; i < 3; ++i) {
    httplib::Client other("127.0.0.1", port);
    other.set_read_timeout(10, 0);
    const auto refused = other.Get("/hold");
    ASSERT_TRUE(refused) << httplib::to_string(refused.error());
    EXPECT_EQ(refused->status, 503);
    EXPECT_NE(refused->body.find("server_busy"), std::string::npos) << refused->body;
    EXPECT_EQ(refused->get_header_value("Retry-After"), "1");
  }
  httplib::Client health("127.0.0.1", port);
  const auto healthz = health.Get("/healthz");
  ASSERT_TRUE(healthz);
  EXPECT_EQ(healthz->status, 200);

  latch.release();
  held.join();
  server.stop();
  serving.join();

  const std::string text = log.text();
  const std::string line = "unit: saturated: 1 connection(s) answered 503 server_busy";
  const auto first = text.find(line);
  ASSERT_NE(first, std::string::npos) << text;
  EXPECT_NE(text.find("the client address 127.0.0.1 had requests in progress on 1 workers"),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find("saturated", first + line.size()), std::string::npos)
      << "one line per interval, not one per connection:\n" << text;
}

}  // namespace
}  // namespace ultracore::engine
