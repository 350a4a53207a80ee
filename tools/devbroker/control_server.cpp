#include "control_server.h"

#include <httplib.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>
#include <vector>

namespace ultracore::devbroker {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

/// A client mistake: answered with `status` and {"error": message}.
struct BadRequest {
  int status;
  std::string message;
};

// Kafka protocol ApiKeys by name (the ones a client can send to this broker and a few more).
constexpr std::pair<const char*, int16_t> kApiKeys[] = {
    {"Produce", 0},
    {"Fetch", 1},
    {"ListOffsets", 2},
    {"Metadata", 3},
    {"OffsetCommit", 8},
    {"OffsetFetch", 9},
    {"FindCoordinator", 10},
    {"JoinGroup", 11},
    {"Heartbeat", 12},
    {"LeaveGroup", 13},
    {"SyncGroup", 14},
    {"DescribeGroups", 15},
    {"ListGroups", 16},
    {"SaslHandshake", 17},
    {"ApiVersions", 18},
    {"CreateTopics", 19},
    {"DeleteTopics", 20},
    {"DeleteRecords", 21},
    {"InitProducerId", 22},
    {"OffsetForLeaderEpoch", 23},
    {"AddPartitionsToTxn", 24},
    {"AddOffsetsToTxn", 25},
    {"EndTxn", 26},
    {"TxnOffsetCommit", 28},
    {"DescribeConfigs", 32},
    {"AlterConfigs", 33},
    {"SaslAuthenticate", 36},
    {"CreatePartitions", 37},
    {"DeleteGroups", 42},
    {"OffsetDelete", 47},
};

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::optional<long long> parseInt(const std::string& text) {
  long long value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

std::string param(const httplib::Request& req, const char* name) {
  if (!req.has_param(name)) throw BadRequest{400, std::string("missing parameter '") + name + "'"};
  return req.get_param_value(name);
}

long long intParam(const httplib::Request& req, const char* name, long long min, long long max,
                   std::optional<long long> fallback = std::nullopt) {
  if (!req.has_param(name) && fallback) return *fallback;
  auto text = param(req, name);
  auto value = parseInt(text);
  if (!value || *value < min || *value > max)
    throw BadRequest{400, std::string("parameter '") + name + "' must be an integer in [" +
                              std::to_string(min) + ", " + std::to_string(max) + "], got '" + text +
                              "'"};
  return *value;
}

std::string apiName(int16_t key) {
  for (const auto& [name, k] : kApiKeys)
    if (k == key) return name;
  return "ApiKey" + std::to_string(key);
}

int16_t parseApi(const std::string& text) {
  if (auto n = parseInt(text)) {
    if (*n < 0 || *n > 100) throw BadRequest{400, "api must be an ApiKey in [0, 100]"};
    return static_cast<int16_t>(*n);
  }
  for (const auto& [name, key] : kApiKeys)
    if (lower(name) == lower(text)) return key;
  if (lower(text) == "listoffset" || lower(text) == "offsets") return 2;
  std::string known;
  for (const auto& [name, key] : kApiKeys) known += std::string(known.empty() ? "" : ", ") + name;
  throw BadRequest{400, "unknown api '" + text + "'; use an ApiKey number or one of: " + known};
}

rd_kafka_resp_err_t parseErrorCode(const std::string& text) {
  const rd_kafka_err_desc* descs = nullptr;
  size_t count = 0;
  rd_kafka_get_err_descs(&descs, &count);
  auto number = parseInt(text);
  std::string wanted = lower(text);
  if (wanted.rfind("rd_kafka_resp_err_", 0) == 0) wanted = wanted.substr(18);
  for (size_t i = 0; i < count; ++i) {
    if (!descs[i].name) continue;
    if (number ? descs[i].code == *number : lower(descs[i].name) == wanted) return descs[i].code;
  }
  throw BadRequest{400, "unknown error code '" + text +
                            "'; use an rd_kafka_resp_err_t number or name, e.g. 6 or "
                            "NOT_LEADER_FOR_PARTITION"};
}

void reply(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump() + "\n", "application/json");
}

}  // namespace

struct ControlServer::Impl {
  MockCluster& cluster;
  int default_partitions;
  std::string data_dir;
  httplib::Server server;
  std::thread thread;

  Impl(MockCluster& c, int partitions, std::string dir)
      : cluster(c), default_partitions(partitions), data_dir(std::move(dir)) {}

  int32_t brokerId(const std::string& text) const {
    if (text == "all" || text == "-1") return -1;
    auto id = parseInt(text);
    if (!id || *id < 1 || *id > cluster.brokers())
      throw BadRequest{404, "no broker '" + text + "' (brokers are 1.." +
                                std::to_string(cluster.brokers()) + ", or 'all')"};
    return static_cast<int32_t>(*id);
  }

  /// Runs a handler, turning BadRequest and failures into JSON errors.
  template <typename F>
  httplib::Server::Handler guarded(F f) {
    return [f](const httplib::Request& req, httplib::Response& res) {
      try {
        f(req, res);
      } catch (const BadRequest& e) {
        reply(res, e.status, {{"error", e.message}});
      } catch (const KafkaError& e) {
        reply(res, e.code() == RD_KAFKA_RESP_ERR__TIMED_OUT ? 503 : 500, {{"error", e.what()}});
      } catch (const std::exception& e) {
        reply(res, 500, {{"error", e.what()}});
      }
    };
  }

  void routes() {
    server.Get("/health", guarded([this](const httplib::Request&, httplib::Response& res) {
                 reply(res, 200,
                       {{"status", "ok"},
                        {"bootstrap", cluster.bootstrap()},
                        {"brokers", cluster.brokers()},
                        {"data_dir", data_dir.empty() ? json(nullptr) : json(data_dir)}});
               }));

    server.Post(R"(/brokers/([^/]+)/(down|up))",
                guarded([this](const httplib::Request& req, httplib::Response& res) {
                  int32_t id = brokerId(req.matches[1]);
                  bool down = req.matches[2] == "down";
                  auto err = down ? rd_kafka_mock_broker_set_down(cluster.get(), id)
                                  : rd_kafka_mock_broker_set_up(cluster.get(), id);
                  if (err) throw KafkaError("broker " + std::string(req.matches[1]), err);
                  reply(res, 200, {{"broker", id}, {"state", down ? "down" : "up"}});
                }));

    server.Post(R"(/brokers/([^/]+)/rtt)",
                guarded([this](const httplib::Request& req, httplib::Response& res) {
                  int32_t id = brokerId(req.matches[1]);
                  auto ms = static_cast<int>(intParam(req, "ms", 0, 600000));
                  auto err = rd_kafka_mock_broker_set_rtt(cluster.get(), id, ms);
                  if (err) throw KafkaError("broker " + std::string(req.matches[1]), err);
                  reply(res, 200, {{"broker", id}, {"rtt_ms", ms}});
                }));

    server.Post("/errors", guarded([this](const httplib::Request& req, httplib::Response& res) {
                  int16_t api = parseApi(param(req, "api"));
                  rd_kafka_resp_err_t code = parseErrorCode(param(req, "code"));
                  auto count = static_cast<size_t>(intParam(req, "count", 1, 100000, 1));
                  json answer = {{"api", api},
                                 {"api_name", apiName(api)},
                                 {"code", static_cast<int>(code)},
                                 {"code_name", rd_kafka_err2name(code)},
                                 {"count", count}};
                  if (req.has_param("broker")) {
                    int32_t id = brokerId(req.get_param_value("broker"));
                    if (id < 0) throw BadRequest{400, "broker must be one broker id here"};
                    auto rtt = static_cast<int>(intParam(req, "rtt_ms", 0, 600000, 0));
                    for (size_t i = 0; i < count; ++i) {
                      auto err = rd_kafka_mock_broker_push_request_error_rtts(cluster.get(), id,
                                                                              api, 1, code, rtt);
                      if (err) throw KafkaError("push error to broker " + std::to_string(id), err);
                    }
                    answer["broker"] = id;
                    answer["rtt_ms"] = rtt;
                  } else {
                    std::vector<rd_kafka_resp_err_t> errors(count, code);
                    rd_kafka_mock_push_request_errors_array(cluster.get(), api, count,
                                                            errors.data());
                  }
                  reply(res, 200, answer);
                }));

    server.Delete("/errors", guarded([this](const httplib::Request& req, httplib::Response& res) {
                    int16_t api = parseApi(param(req, "api"));
                    rd_kafka_mock_clear_request_errors(cluster.get(), api);
                    reply(res, 200, {{"api", api}, {"api_name", apiName(api)}, {"cleared", true}});
                  }));

    server.Post("/topics", guarded([this](const httplib::Request& req, httplib::Response& res) {
                  std::string name = param(req, "name");
                  if (!validTopicName(name))
                    throw BadRequest{400,
                                     "invalid topic name '" + name +
                                         "' (1-249 characters of [a-zA-Z0-9._-], not . or ..)"};
                  auto partitions =
                      static_cast<int>(intParam(req, "partitions", 1, 10000, default_partitions));
                  if (!cluster.createTopic(name, partitions))
                    throw BadRequest{409, "topic '" + name + "' already exists"};
                  reply(res, 201, {{"name", name}, {"partitions", partitions}});
                }));

    server.Get(
        "/topics", guarded([this](const httplib::Request&, httplib::Response& res) {
          json topics = json::array();
          for (const auto& t : cluster.topics(milliseconds(3000))) {
            json parts = json::array();
            for (const auto& w : cluster.watermarks(t.name, t.partitions, milliseconds(3000))) {
              json p = {{"partition", w.partition}};
              if (w.error) {
                p["error"] = rd_kafka_err2str(w.error);
              } else {
                p["low"] = w.low;
                p["high"] = w.high;
              }
              parts.push_back(p);
            }
            topics.push_back(
                {{"name", t.name}, {"partitions", t.partitions}, {"watermarks", parts}});
          }
          reply(res, 200, {{"topics", topics}});
        }));

    server.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return;
      reply(res, res.status,
            {{"error", res.status == 404 ? "no such endpoint: " + req.method + " " + req.path
                       : res.status == 400
                           ? "malformed request (a POST needs a body or Content-Length: 0, "
                             "e.g. curl -d '' ...)"
                           : "HTTP " + std::to_string(res.status)}});
    });
  }
};

ControlServer::ControlServer(MockCluster& cluster, int default_partitions, std::string data_dir)
    : impl_(std::make_unique<Impl>(cluster, default_partitions, std::move(data_dir))) {
  impl_->routes();
  // httplib's default sets SO_REUSEPORT, which lets a second process bind the same port and
  // silently share its connections; a busy --control-port must fail instead.
  impl_->server.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
}

ControlServer::~ControlServer() { stop(); }

int ControlServer::start(int port) {
  int bound = port;
  if (port == 0) {
    bound = impl_->server.bind_to_any_port("127.0.0.1");
  } else if (!impl_->server.bind_to_port("127.0.0.1", port)) {
    bound = -1;
  }
  if (bound <= 0)
    throw std::runtime_error("cannot listen on 127.0.0.1:" + std::to_string(port) +
                             " for the control channel");
  impl_->thread = std::thread([this] { impl_->server.listen_after_bind(); });
  return bound;
}

void ControlServer::stop() {
  if (!impl_) return;
  impl_->server.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

}  // namespace ultracore::devbroker
