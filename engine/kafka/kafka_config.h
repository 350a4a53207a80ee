#pragma once
/// @file
/// librdkafka configuration from the manifest's property maps.

#include <map>
#include <memory>
#include <stdexcept>
#include <string>

#include <librdkafka/rdkafka.h>

#include "engine/kafka/kafka_log.h"

namespace ultracore::engine {

class KafkaConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct KafkaConfDeleter {
  void operator()(rd_kafka_conf_t* conf) const { rd_kafka_conf_destroy(conf); }
};
using KafkaConf = std::unique_ptr<rd_kafka_conf_t, KafkaConfDeleter>;

/// Destroys the handle, then forgets its log name (kafka_log.h).
struct KafkaHandleDeleter {
  void operator()(rd_kafka_t* rk) const;
};
using KafkaHandle = std::unique_ptr<rd_kafka_t, KafkaHandleDeleter>;

/// Applies `properties` in order over librdkafka's defaults; later maps override earlier ones.
/// Throws KafkaConfigError naming the property and librdkafka's reason. librdkafka's log lines
/// go to the engine's logger (routeKafkaLog); name the client with nameKafkaClient().
KafkaConf makeKafkaConf(std::initializer_list<const std::map<std::string, std::string>*> layers);

/// A consumer handle built from `layers` (makeKafkaConf) that the caller never subscribes:
/// for metadata, watermarks, admin requests and assign()-only reading. Its log lines carry
/// `log_name`. Throws KafkaConfigError.
KafkaHandle makeUnsubscribedConsumer(
    std::initializer_list<const std::map<std::string, std::string>*> layers,
    const std::string& log_name);

}  // namespace ultracore::engine
