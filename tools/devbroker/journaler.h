#pragma once
/// @file
/// Keeps the mock cluster's log on disk (--data-dir) and puts it back on start.
///
/// Journaling: an internal consumer (librdkafka's simple consumer: no consumer group, so it
/// never touches group state) reads every partition of every topic and appends each record to
/// DIR/journal.ucj; each poll batch is written and fsynced. Topics are discovered by a
/// metadata refresh every 500 ms.
/// Restore: the journal's topics are created with their partition counts, and every record is
/// produced again, in journal order, by an idempotent producer into the same partition with
/// its key, headers and timestamp. The mock numbers records contiguously from 0, so the
/// offsets come out as before; they are checked against the journal.
///
/// Created and used on the main thread only.

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "journal.h"
#include "mock_cluster.h"

namespace ultracore::devbroker {

class Journaler {
 public:
  /// Takes an exclusive lock on dir (one broker per data dir). Throws if dir is in use.
  Journaler(MockCluster& cluster, std::filesystem::path dir);
  ~Journaler();
  Journaler(const Journaler&) = delete;
  Journaler& operator=(const Journaler&) = delete;

  /// Recreates the journal's topics and replays its records. Call before any client can know
  /// the broker's address. Returns a one-line summary. Throws on any mismatch.
  std::string restore();
  /// Starts consuming: journaled partitions from their end, others from the beginning.
  /// Journals the topics that exist now (e.g. the --topic ones) before returning.
  void start();
  /// One round: refresh metadata when due, consume what is there (waiting up to `wait`),
  /// write and fsync.
  void pollOnce(std::chrono::milliseconds wait);
  /// Journals every partition up to its current high watermark. Returns false on time-out.
  bool drain(std::chrono::milliseconds timeout);

  const std::filesystem::path& journalFile() const { return file_; }

 private:
  struct TopicState {
    uint32_t id = 0;
    int32_t partitions = 0;
    rd_kafka_topic_t* handle = nullptr;
    std::vector<int64_t> next;  ///< next offset to journal, per partition
    std::vector<bool> started;
  };

  void refreshMetadata();
  void startPartitions(const std::string& name, TopicState& topic);
  void journalMessage(const rd_kafka_message_t* message);

  MockCluster& cluster_;
  std::filesystem::path dir_;
  std::filesystem::path file_;
  int lock_fd_ = -1;
  uint64_t keep_bytes_ = 0;
  std::unique_ptr<JournalWriter> writer_;
  KafkaHandle consumer_;
  rd_kafka_queue_t* queue_ = nullptr;
  std::map<std::string, TopicState> topics_;
  uint32_t next_topic_id_ = 1;
  std::chrono::steady_clock::time_point next_refresh_{};
  std::chrono::steady_clock::time_point next_error_log_{};
};

}  // namespace ultracore::devbroker
