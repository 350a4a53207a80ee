#include "engine/kafka/kafka_log.h"

#include <map>
#include <mutex>

#include <spdlog/spdlog.h>

namespace ultracore::engine {
namespace {

std::mutex names_mutex;
std::map<const rd_kafka_t*, std::string>& names() {
  static auto* map = new std::map<const rd_kafka_t*, std::string>();  // outlives every client
  return *map;
}

std::string nameOf(const rd_kafka_t* rk) {
  {
    std::lock_guard lock(names_mutex);
    if (const auto it = names().find(rk); it != names().end()) return it->second;
  }
  return rk == nullptr ? "librdkafka" : rd_kafka_name(rk);
}

void logLine(const rd_kafka_t* rk, int level, const char* facility, const char* message) {
  spdlog::log(kafkaLogLevel(level), "[{}] librdkafka {}: {}", nameOf(rk),
              facility == nullptr ? "" : facility, message == nullptr ? "" : message);
}

}  // namespace

void routeKafkaLog(rd_kafka_conf_t* conf) { rd_kafka_conf_set_log_cb(conf, logLine); }

void nameKafkaClient(const rd_kafka_t* rk, std::string name) {
  std::lock_guard lock(names_mutex);
  names()[rk] = std::move(name);
}

void forgetKafkaClient(const rd_kafka_t* rk) {
  std::lock_guard lock(names_mutex);
  names().erase(rk);
}

spdlog::level::level_enum kafkaLogLevel(int syslog_level) {
  if (syslog_level <= 2) return spdlog::level::critical;
  if (syslog_level == 3) return spdlog::level::err;
  if (syslog_level == 4) return spdlog::level::warn;
  if (syslog_level <= 6) return spdlog::level::info;
  return spdlog::level::debug;
}

}  // namespace ultracore::engine
