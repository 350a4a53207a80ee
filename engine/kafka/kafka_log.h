#pragma once
/// @file
/// librdkafka's own log lines through the engine's logger (spdlog), instead of raw
/// `%4|1795931592.106|COMMITFAIL|rdkafka#consumer-1| ...` lines on stderr.
///
/// makeKafkaConf() routes every configuration it builds here. librdkafka calls the log
/// callback from its internal threads; spdlog's default logger is thread-safe.

#include <string>

#include <librdkafka/rdkafka.h>
#include <spdlog/common.h>

namespace ultracore::engine {

/// Sets the log callback on `conf`: each line becomes one spdlog line
/// `[<name>] librdkafka <FACILITY>: <message>` at the level kafkaLogLevel() maps.
void routeKafkaLog(rd_kafka_conf_t* conf);

/// The name the lines of client `rk` carry (a runner's label, "api", "admin"); until it is
/// set, and after forgetKafkaClient(), librdkafka's own name (rd_kafka_name: client.id#type-N).
/// Thread-safe.
void nameKafkaClient(const rd_kafka_t* rk, std::string name);
void forgetKafkaClient(const rd_kafka_t* rk);

/// librdkafka's syslog levels (0 emergency .. 7 debug) as spdlog levels: 0-2 critical,
/// 3 error, 4 warn, 5-6 info, 7 debug.
spdlog::level::level_enum kafkaLogLevel(int syslog_level);

}  // namespace ultracore::engine
