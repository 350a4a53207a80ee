#pragma once
/// @file
/// The dev broker's append-only journal: the on-disk copy of every topic and record of the
/// in-memory mock cluster, so that a stopped broker can be started again with the same log.
///
/// File layout (all integers little-endian):
///   magic "UCDBJRN1"
///   frames: u32 payload_length, u32 crc32(payload), payload
/// Payload kinds (first byte):
///   'T' topic:  u32 topic_id, i32 partitions, u16 name_length, name
///   'R' record: u32 topic_id, i32 partition, i64 offset, i64 timestamp, i8 timestamp_type,
///               bytes key, bytes value, u32 header_count, {u16 name_length, name, bytes value}*
///   where "bytes" is i32 length (-1 = null) followed by the bytes.
/// A frame cut short by a crash (or failing its CRC) ends the journal; it is truncated away.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace ultracore::devbroker {

struct JournalTopic {
  uint32_t id = 0;
  std::string name;
  int32_t partitions = 0;
};

struct JournalHeader {
  std::string name;
  std::optional<std::string> value;  ///< nullopt = null header value
};

struct JournalRecord {
  uint32_t topic_id = 0;
  int32_t partition = 0;
  int64_t offset = 0;
  int64_t timestamp = -1;
  int8_t timestamp_type = 0;  ///< rd_kafka_timestamp_type_t
  std::optional<std::string> key;
  std::optional<std::string> value;
  std::vector<JournalHeader> headers;
};

/// What a journal file holds, in file order.
struct JournalContents {
  std::vector<JournalTopic> topics;
  std::vector<JournalRecord> records;
  uint64_t valid_bytes = 0;  ///< length of the intact prefix (magic + whole frames)
  bool torn_tail = false;    ///< bytes after valid_bytes were ignored
};

/// Reads a journal; a missing file reads as empty. Throws std::runtime_error on a file that is
/// not a journal.
JournalContents readJournal(const std::filesystem::path& file);

/// Appends frames to a journal. Frames are buffered until sync(), which writes and fsyncs.
/// Not thread-safe: owned by the journaling loop.
class JournalWriter {
 public:
  /// Opens (creating if needed) and truncates the file to keep_bytes (0 = start a new file).
  JournalWriter(const std::filesystem::path& file, uint64_t keep_bytes);
  ~JournalWriter();
  JournalWriter(const JournalWriter&) = delete;
  JournalWriter& operator=(const JournalWriter&) = delete;

  void appendTopic(const JournalTopic& topic);
  void appendRecord(const JournalRecord& record);
  /// Writes buffered frames and fsyncs. Throws std::runtime_error on I/O failure.
  void sync();
  bool pending() const { return !buffer_.empty(); }

 private:
  void appendFrame(const std::string& payload);

  int fd_ = -1;
  std::filesystem::path file_;
  std::string buffer_;
};

/// Writes a whole journal to file (via a temporary file and rename).
void rewriteJournal(const std::filesystem::path& file, const std::vector<JournalTopic>& topics,
                    const std::vector<JournalRecord>& records);

/// Writes text to path atomically: path.tmp, fsync, rename.
void writeFileAtomically(const std::filesystem::path& path, const std::string& text);

}  // namespace ultracore::devbroker
