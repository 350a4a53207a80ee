#include "engine/kafka/kafka_config.h"

#include "engine/kafka/kafka_log.h"

namespace ultracore::engine {

void KafkaHandleDeleter::operator()(rd_kafka_t* rk) const {
  rd_kafka_destroy(rk);  // may still log: the name stays until it returns
  forgetKafkaClient(rk);
}

KafkaConf makeKafkaConf(std::initializer_list<const std::map<std::string, std::string>*> layers) {
  KafkaConf conf(rd_kafka_conf_new());
  routeKafkaLog(conf.get());
  char error[512];
  for (const auto* layer : layers) {
    for (const auto& [key, value] : *layer) {
      if (rd_kafka_conf_set(conf.get(), key.c_str(), value.c_str(), error, sizeof(error)) !=
          RD_KAFKA_CONF_OK) {
        throw KafkaConfigError("kafka property '" + key + "' = '" + value + "': " + error);
      }
    }
  }
  return conf;
}

KafkaHandle makeUnsubscribedConsumer(
    std::initializer_list<const std::map<std::string, std::string>*> layers,
    const std::string& log_name) {
  KafkaConf conf = makeKafkaConf(layers);
  char error[512];
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf.get(), error, sizeof(error));
  if (rk == nullptr) throw KafkaConfigError(std::string("cannot create a Kafka client: ") + error);
  conf.release();  // owned by rk now
  nameKafkaClient(rk, log_name);
  return KafkaHandle(rk);
}

}  // namespace ultracore::engine
