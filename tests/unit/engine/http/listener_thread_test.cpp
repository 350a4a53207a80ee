#include "engine/http/listener_thread.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <thread>

namespace ultracore::engine {
namespace {

using namespace std::chrono_literals;

// Stops LISTENER on a thread of its own; a stop that never returns ends the test binary with
// a message instead of leaving ctest to its timeout.
void stopWithin(ListenerThread& listener, std::chrono::seconds limit) {
  std::promise<void> stopped;
  auto done = stopped.get_future();
  std::thread([&listener, stopped = std::move(stopped)]() mutable {
    listener.stop();
    stopped.set_value();
  }).detach();
  if (done.wait_for(limit) != std::future_status::ready) {
    std::fprintf(stderr, "ListenerThread::stop() did not return within %llds\n",
                 static_cast<long long>(limit.count()));
    std::_Exit(1);
  }
}

// httplib 0.11's own stop() right after the listening thread was started is lost (the thread
// has not set the server running yet) and join() waits for ever: the engine hung on a SIGTERM
// right after start-up. Here the stop comes at once, every time.
TEST(ListenerThread, AStopRightAfterStartReturns) {
  for (int i = 0; i < 20; ++i) {
    httplib::Server server;
    ASSERT_GT(server.bind_to_any_port("127.0.0.1"), 0);
    ListenerThread listener;
    listener.start(server);
    stopWithin(listener, 30s);
    EXPECT_FALSE(server.is_running());
  }
}

TEST(ListenerThread, ServesUntilStopped) {
  httplib::Server server;
  server.Get("/ping", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("pong", "text/plain");
  });
  const int port = server.bind_to_any_port("127.0.0.1");
  ASSERT_GT(port, 0);
  ListenerThread listener;
  listener.start(server);
  httplib::Client client("127.0.0.1", port);
  const auto res = client.Get("/ping");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->body, "pong");
  stopWithin(listener, 30s);
  httplib::Client after("127.0.0.1", port);
  EXPECT_FALSE(after.Get("/ping"));  // nothing listens any more
  stopWithin(listener, 30s);         // a second stop is harmless
}

}  // namespace
}  // namespace ultracore::engine
