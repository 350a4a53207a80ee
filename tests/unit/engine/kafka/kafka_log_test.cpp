// librdkafka's log lines reach the engine's logger (spdlog) with the client's name and a level,
// not stderr. A producer pointed at a closed loopback port makes librdkafka log its failed
// connection; no broker is needed for that.

#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

#include <chrono>
#include <mutex>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include "engine/kafka/kafka_config.h"

namespace ultracore::engine {
namespace {

/// A loopback port nothing listens on: bound (so no one else takes it) but never listening,
/// so a connect is refused.
class ClosedPort {
 public:
  ClosedPort() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address));
    socklen_t size = sizeof(address);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &size);
    port_ = ntohs(address.sin_port);
  }
  ~ClosedPort() { ::close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

/// The default logger replaced by one writing into a string for the test's lifetime.
class CapturedLog {
 public:
  CapturedLog() : previous_(spdlog::default_logger()) {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(stream_);
    sink->set_pattern("%l %v");
    auto logger = std::make_shared<spdlog::logger>("test", sink);
    logger->set_level(spdlog::level::trace);
    logger->flush_on(spdlog::level::trace);
    spdlog::set_default_logger(logger);
  }
  ~CapturedLog() { spdlog::set_default_logger(previous_); }
  std::string text() {
    spdlog::default_logger()->flush();
    std::lock_guard lock(mutex_);
    return stream_.str();
  }

 private:
  std::mutex mutex_;
  std::ostringstream stream_;
  std::shared_ptr<spdlog::logger> previous_;
};

/// Polls until the captured log holds `needle` (bounded: 30 s); returns the log.
std::string waitForLine(CapturedLog& log, rd_kafka_t* rk, const std::string& needle) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  std::string text = log.text();
  while (text.find(needle) == std::string::npos && std::chrono::steady_clock::now() < deadline) {
    rd_kafka_poll(rk, 50);
    text = log.text();
  }
  return text;
}

TEST(KafkaLog, ALibrdkafkaLineReachesTheLoggerWithTheClientsNameAndALevel) {
  CapturedLog log;
  ClosedPort port;
  // debug=broker: librdkafka keeps logging (level 7) while it retries the connection.
  const std::map<std::string, std::string> properties{
      {"bootstrap.servers", "127.0.0.1:" + std::to_string(port.port())},
      {"reconnect.backoff.ms", "10"},
      {"debug", "broker"}};
  KafkaConf conf = makeKafkaConf({&properties});
  char error[512];
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf.get(), error, sizeof(error));
  ASSERT_NE(rk, nullptr) << error;
  conf.release();
  KafkaHandle handle(rk);
  const std::string own_name = rd_kafka_name(rk);

  // Unnamed: librdkafka's name. The refused connection is FAIL at syslog level 3: "error".
  std::string text = waitForLine(log, rk, "Connection refused");
  EXPECT_NE(text.find("error [" + own_name + "] librdkafka FAIL: "), std::string::npos) << text;
  EXPECT_NE(text.find("debug [" + own_name + "] librdkafka "), std::string::npos) << text;

  nameKafkaClient(rk, "probe");
  text = waitForLine(log, rk, "debug [probe] librdkafka ");  // an error line may come first
  EXPECT_NE(text.find("debug [probe] librdkafka "), std::string::npos) << text;
  EXPECT_EQ(text.find("%7|"), std::string::npos) << "a raw librdkafka line: " << text;
}

TEST(KafkaLog, SyslogLevelsMapToSpdlogLevels) {
  EXPECT_EQ(kafkaLogLevel(0), spdlog::level::critical);
  EXPECT_EQ(kafkaLogLevel(2), spdlog::level::critical);
  EXPECT_EQ(kafkaLogLevel(3), spdlog::level::err);
  EXPECT_EQ(kafkaLogLevel(4), spdlog::level::warn);
  EXPECT_EQ(kafkaLogLevel(5), spdlog::level::info);
  EXPECT_EQ(kafkaLogLevel(6), spdlog::level::info);
  EXPECT_EQ(kafkaLogLevel(7), spdlog::level::debug);
}

}  // namespace
}  // namespace ultracore::engine
