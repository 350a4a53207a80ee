#pragma once
/// @file
/// Console: the operator console's endpoints on the admin port (issue 16), served by
/// AdminServer after its token check. All JSON, all read-only except the dead-letter actions:
///
///   GET  /api/v1/topics[?all=1]            topics: partitions, leader, ISR, watermarks, msg/s
///   GET  /api/v1/groups                    consumer groups: members, assignment, offsets, lag
///   GET  /api/v1/messages?topic=...        message browser: a bounded scan (console_messages.h)
///   GET  /api/v1/messages/record?topic=&partition=&offset=
///                                          one record and what the engine did with it
///   GET  /api/v1/dead-letters[?projection=&status=&aggregate=&event_id=&limit=]
///   GET  /api/v1/dead-letters/{id}
///   POST /api/v1/dead-letters/{id}/retry   what `ultracore-ctl dead-letters retry --no-wait` does
///   POST /api/v1/dead-letters/{id}/discard {"reason": "..."}: as `... discard --no-wait`
///   GET  /api/v1/parked[?projection=]      parked aggregates with their held-back events
///
/// Kafka is reached through one shared handle (librdkafka's calls are thread-safe) and, for
/// the message browser, a short-lived consumer per request; PostgreSQL through a small pool.
/// A sampler thread reads the tracked topics' high watermarks every 5 s (messages/s).
/// Created on the main thread; start() after the runners exist, stop() before them.

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine/http/console_messages.h"
#include "engine/http/console_topics.h"
#include "engine/http/pg_pool.h"
#include "engine/kafka/kafka_config.h"
#include "engine/manifest/manifest.h"
#include "engine/runner/engine.h"

namespace httplib {
struct Request;
struct Response;
}  // namespace httplib

namespace ultracore::engine {

class Console {
 public:
  Console(const Manifest& manifest, Engine& engine);
  ~Console();
  Console(const Console&) = delete;
  Console& operator=(const Console&) = delete;

  void start();
  void stop();  ///< idempotent

  /// Answers `req` when it is one of the console's routes; false when it is not.
  bool handle(const httplib::Request& req, httplib::Response& res);

  /// The manifest's topics: its `topics:` section when present, else the projections' topics.
  static std::vector<std::string> manifestTopics(const Manifest& manifest);

 private:
  rd_kafka_t* kafka();
  void sampleLoop();
  void topics(const httplib::Request& req, httplib::Response& res);
  void groups(httplib::Response& res);
  void messages(const httplib::Request& req, httplib::Response& res);
  void record(const httplib::Request& req, httplib::Response& res);
  void deadLetters(const httplib::Request& req, httplib::Response& res);
  void deadLetter(const httplib::Request& req, httplib::Response& res, const std::string& rest);
  void parked(const httplib::Request& req, httplib::Response& res);

  const Manifest& manifest_;
  Engine& engine_;
  std::vector<std::string> manifest_topics_;
  PgPool pool_;
  MessageBrowser browser_;
  TopicRates rates_;
  std::atomic<int> scans_{0};  ///< message browser scans running now

  std::mutex kafka_mutex_;
  KafkaHandle kafka_;

  std::thread sampler_;
  std::mutex stop_mutex_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;
};

}  // namespace ultracore::engine
