#include "engine_harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <stdexcept>
#include <thread>

#include <librdkafka/rdkafka.h>
#include <pqxx/pqxx>

namespace ultracore::testing {

std::string envelope(const std::string& event_id, const std::string& event_type,
                     const std::string& aggregate_id, const nlohmann::json& data,
                     const std::string& tenant) {
  return nlohmann::json{{"event_id", event_id},
                        {"event_type", event_type},
                        {"aggregate_type", "Test"},
                        {"aggregate_id", aggregate_id},
                        {"tenant_id", tenant},
                        {"user_id", "test-user"},
                        {"occurred_at", "2026-11-26T12:00:00.000Z"},
                        {"event_data", data}}
      .dump();
}

namespace {

struct DeliveryState {
  std::size_t delivered = 0;
  std::string first_error;
};

void onDelivery(rd_kafka_t*, const rd_kafka_message_t* message, void* opaque) {
  auto* state = static_cast<DeliveryState*>(opaque);
  if (message->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    if (state->first_error.empty()) state->first_error = rd_kafka_err2str(message->err);
  } else {
    ++state->delivered;
  }
}

}  // namespace

void produce(const std::string& bootstrap, const std::vector<Record>& records) {
  char error[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  DeliveryState state;
  for (const auto& [key, value] : std::vector<std::pair<std::string, std::string>>{
           {"bootstrap.servers", bootstrap},
           {"enable.idempotence", "true"},
           {"acks", "all"},
           {"linger.ms", "5"},
           {"message.timeout.ms", "30000"}}) {
    if (rd_kafka_conf_set(conf, key.c_str(), value.c_str(), error, sizeof(error)) !=
        RD_KAFKA_CONF_OK) {
      throw std::runtime_error(error);
    }
  }
  rd_kafka_conf_set_dr_msg_cb(conf, onDelivery);
  rd_kafka_conf_set_opaque(conf, &state);
  rd_kafka_t* producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error, sizeof(error));
  if (producer == nullptr) throw std::runtime_error(error);
  for (const auto& record : records) {
    for (;;) {
      const rd_kafka_resp_err_t err = rd_kafka_producev(
          producer, RD_KAFKA_V_TOPIC(record.topic.c_str()),
          RD_KAFKA_V_PARTITION(record.partition < 0 ? RD_KAFKA_PARTITION_UA : record.partition),
          RD_KAFKA_V_KEY(record.key.data(), record.key.size()),
          RD_KAFKA_V_VALUE(const_cast<char*>(record.value.data()), record.value.size()),
          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
      if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        rd_kafka_poll(producer, 50);
        continue;
      }
      if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        rd_kafka_destroy(producer);
        throw std::runtime_error(std::string("produce: ") + rd_kafka_err2str(err));
      }
      break;
    }
    rd_kafka_poll(producer, 0);
  }
  rd_kafka_flush(producer, 60000);
  rd_kafka_destroy(producer);
  if (!state.first_error.empty() || state.delivered != records.size()) {
    throw std::runtime_error("produce: " + std::to_string(state.delivered) + " of " +
                             std::to_string(records.size()) + " delivered; " + state.first_error);
  }
}

std::string queryValue(const std::string& url, const std::string& sql) {
  pqxx::connection connection(url);
  pqxx::nontransaction txn(connection);
  const auto result = txn.exec(sql);
  if (result.empty() || result[0][0].is_null()) return "";
  return result[0][0].c_str();
}

bool waitUntil(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    try {
      if (condition()) return true;
    } catch (const std::exception&) {  // e.g. the table does not exist yet
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return condition();
}

std::filesystem::path writeManifest(const TempDir& dir, const std::string& bootstrap,
                                    const std::string& postgres_url,
                                    const std::string& projections_yaml, const std::string& name) {
  const auto path = dir.path() / name;
  std::ofstream out(path);
  out << "kafka:\n"
      << "  bootstrap.servers: " << bootstrap << "\n"
      << "  session.timeout.ms: 3000\n"
      << "  heartbeat.interval.ms: 500\n"
      << "postgres:\n  url: " << postgres_url << "\n"
      << "api:\n  listen: 127.0.0.1:0\n"  // free ports: tests may run side by side
      << "admin:\n  listen: 127.0.0.1:0\n"
      << "plugins:\n"
      << "  - { name: customers, library: " << (binaryDir() / "plugins/customers/libultracore_customers.so").string() << " }\n"
      << "  - { name: accounts, library: " << (binaryDir() / "plugins/accounts/libultracore_accounts.so").string() << " }\n"
      << "  - { name: ledger, library: " << (binaryDir() / "tests/plugins/libultracore_test_ledger.so").string() << " }\n"
      << "projections:\n"
      << projections_yaml;
  return path;
}

void setAdminToken(const std::filesystem::path& manifest, const std::string& token) {
  std::ifstream in(manifest);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string admin = "admin:\n  listen: 127.0.0.1:0\n";
  const auto at = text.find(admin);
  if (at == std::string::npos) throw std::runtime_error(manifest.string() + " has no admin block");
  text.insert(at + admin.size(), "  token: " + token + "\n");
  std::ofstream(manifest) << text;
}

int freePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("cannot find a free port: socket() failed");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    ::close(fd);
    throw std::runtime_error("cannot find a free port");
  }
  ::close(fd);
  return ntohs(address.sin_port);
}

int adminPort(const Subprocess& engine) {
  const std::string log = engine.log();
  const std::string marker = "admin listening on 127.0.0.1:";
  const auto at = log.find(marker);
  return at == std::string::npos ? 0 : std::stoi(log.substr(at + marker.size()));
}

std::unique_ptr<Subprocess> startEngine(const std::filesystem::path& manifest,
                                        const std::filesystem::path& log,
                                        const std::vector<std::string>& extra_args) {
  std::vector<std::string> argv{binPath("ultracore-engine").string(), "--config", manifest.string()};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  return std::make_unique<Subprocess>(argv, std::map<std::string, std::string>{}, log);
}

bool waitForEngineRunning(const Subprocess& engine) {
  return waitUntil([&] { return engine.log().find("engine running") != std::string::npos; },
                   std::chrono::seconds(60));
}

std::pair<int, std::string> runCtl(const std::filesystem::path& manifest,
                                   const std::vector<std::string>& args,
                                   const std::filesystem::path& log, std::chrono::seconds timeout) {
  std::vector<std::string> argv = {binPath("ultracore-ctl").string(), "--config", manifest.string()};
  argv.insert(argv.end(), args.begin(), args.end());
  Subprocess process(argv, {}, log);
  const auto status = process.wait(timeout);
  return {status.value_or(-1), process.log()};
}

std::string tableChecksum(const std::string& url, const std::string& select_sql) {
  return queryValue(url, "SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM (" +
                             select_sql + ") AS t");
}

}  // namespace ultracore::testing
