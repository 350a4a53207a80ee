#include "journal.h"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>

namespace ultracore::devbroker {
namespace {

constexpr char kMagic[8] = {'U', 'C', 'D', 'B', 'J', 'R', 'N', '1'};
constexpr uint32_t kMaxFrame = 1U << 30;

std::array<uint32_t, 256> makeCrcTable() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1U) ? 0xEDB88320U ^ (c >> 1) : c >> 1;
    table[i] = c;
  }
  return table;
}

uint32_t crc32(const char* data, size_t size) {
  static const std::array<uint32_t, 256> kTable = makeCrcTable();
  uint32_t c = 0xFFFFFFFFU;
  for (size_t i = 0; i < size; ++i)
    c = kTable[(c ^ static_cast<unsigned char>(data[i])) & 0xFFU] ^ (c >> 8);
  return c ^ 0xFFFFFFFFU;
}

template <typename T>
void put(std::string& out, T value) {
  auto u = static_cast<std::make_unsigned_t<T>>(value);
  for (size_t i = 0; i < sizeof(T); ++i) out.push_back(static_cast<char>((u >> (8 * i)) & 0xFFU));
}

void putBytes(std::string& out, const std::optional<std::string>& bytes) {
  if (!bytes) {
    put<int32_t>(out, -1);
    return;
  }
  put<int32_t>(out, static_cast<int32_t>(bytes->size()));
  out += *bytes;
}

/// Bounds-checked reader over one frame's payload; throws on a short payload.
class Reader {
 public:
  Reader(const char* data, size_t size) : data_(data), size_(size) {}

  template <typename T>
  T get() {
    need(sizeof(T));
    std::make_unsigned_t<T> u = 0;
    for (size_t i = 0; i < sizeof(T); ++i)
      u |= static_cast<std::make_unsigned_t<T>>(static_cast<unsigned char>(data_[pos_ + i]))
           << (8 * i);
    pos_ += sizeof(T);
    return static_cast<T>(u);
  }
  std::string string(size_t n) {
    need(n);
    std::string s(data_ + pos_, n);
    pos_ += n;
    return s;
  }
  std::optional<std::string> bytes() {
    auto n = get<int32_t>();
    if (n < 0) return std::nullopt;
    return string(static_cast<size_t>(n));
  }

 private:
  void need(size_t n) const {
    if (size_ - pos_ < n) throw std::runtime_error("journal frame is shorter than its contents");
  }
  const char* data_;
  size_t size_;
  size_t pos_ = 0;
};

std::string encodeTopic(const JournalTopic& topic) {
  std::string p;
  p.push_back('T');
  put<uint32_t>(p, topic.id);
  put<int32_t>(p, topic.partitions);
  put<uint16_t>(p, static_cast<uint16_t>(topic.name.size()));
  p += topic.name;
  return p;
}

std::string encodeRecord(const JournalRecord& r) {
  std::string p;
  p.reserve(64 + (r.key ? r.key->size() : 0) + (r.value ? r.value->size() : 0));
  p.push_back('R');
  put<uint32_t>(p, r.topic_id);
  put<int32_t>(p, r.partition);
  put<int64_t>(p, r.offset);
  put<int64_t>(p, r.timestamp);
  put<int8_t>(p, r.timestamp_type);
  putBytes(p, r.key);
  putBytes(p, r.value);
  put<uint32_t>(p, static_cast<uint32_t>(r.headers.size()));
  for (const auto& h : r.headers) {
    put<uint16_t>(p, static_cast<uint16_t>(h.name.size()));
    p += h.name;
    putBytes(p, h.value);
  }
  return p;
}

void decodeFrame(const char* data, size_t size, JournalContents& out) {
  Reader in(data, size);
  auto kind = in.get<int8_t>();
  if (kind == 'T') {
    JournalTopic t;
    t.id = in.get<uint32_t>();
    t.partitions = in.get<int32_t>();
    t.name = in.string(in.get<uint16_t>());
    out.topics.push_back(std::move(t));
  } else if (kind == 'R') {
    JournalRecord r;
    r.topic_id = in.get<uint32_t>();
    r.partition = in.get<int32_t>();
    r.offset = in.get<int64_t>();
    r.timestamp = in.get<int64_t>();
    r.timestamp_type = in.get<int8_t>();
    r.key = in.bytes();
    r.value = in.bytes();
    auto count = in.get<uint32_t>();
    for (uint32_t i = 0; i < count; ++i) {
      JournalHeader h;
      h.name = in.string(in.get<uint16_t>());
      h.value = in.bytes();
      r.headers.push_back(std::move(h));
    }
    out.records.push_back(std::move(r));
  } else {
    throw std::runtime_error("unknown journal frame kind");
  }
}

void writeAll(int fd, const std::string& data, const std::filesystem::path& file) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error("cannot write " + file.string() + ": " + std::strerror(errno));
    }
    done += static_cast<size_t>(n);
  }
}

void syncDirectory(const std::filesystem::path& dir) {
  int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

}  // namespace

JournalContents readJournal(const std::filesystem::path& file) {
  JournalContents out;
  std::ifstream in(file, std::ios::binary);
  if (!in) return out;
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (data.empty()) return out;
  if (data.size() < sizeof(kMagic) || std::memcmp(data.data(), kMagic, sizeof(kMagic)) != 0) {
    if (data.size() < sizeof(kMagic) &&
        std::memcmp(data.data(), kMagic, data.size()) == 0) {  // crashed while creating
      out.torn_tail = true;
      return out;
    }
    throw std::runtime_error(file.string() + " is not a dev broker journal (bad magic)");
  }
  size_t pos = sizeof(kMagic);
  out.valid_bytes = pos;
  while (pos < data.size()) {
    if (data.size() - pos < 8) break;
    Reader head(data.data() + pos, 8);
    auto length = head.get<uint32_t>();
    auto crc = head.get<uint32_t>();
    if (length > kMaxFrame || data.size() - pos - 8 < length) break;
    const char* payload = data.data() + pos + 8;
    if (crc32(payload, length) != crc) break;
    decodeFrame(payload, length, out);
    pos += 8 + length;
    out.valid_bytes = pos;
  }
  out.torn_tail = out.valid_bytes < data.size();
  return out;
}

JournalWriter::JournalWriter(const std::filesystem::path& file, uint64_t keep_bytes) : file_(file) {
  fd_ = ::open(file.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0)
    throw std::runtime_error("cannot open journal " + file.string() + ": " + std::strerror(errno));
  if (keep_bytes < sizeof(kMagic)) keep_bytes = 0;
  if (::ftruncate(fd_, static_cast<off_t>(keep_bytes)) != 0 ||
      ::lseek(fd_, static_cast<off_t>(keep_bytes), SEEK_SET) < 0) {
    int err = errno;
    ::close(fd_);
    throw std::runtime_error("cannot truncate journal " + file.string() + ": " +
                             std::strerror(err));
  }
  if (keep_bytes == 0) {
    buffer_.assign(kMagic, sizeof(kMagic));
    sync();
    syncDirectory(file.parent_path());
  }
}

JournalWriter::~JournalWriter() {
  if (fd_ >= 0) ::close(fd_);
}

void JournalWriter::appendTopic(const JournalTopic& topic) { appendFrame(encodeTopic(topic)); }

void JournalWriter::appendRecord(const JournalRecord& record) { appendFrame(encodeRecord(record)); }

void JournalWriter::appendFrame(const std::string& payload) {
  put<uint32_t>(buffer_, static_cast<uint32_t>(payload.size()));
  put<uint32_t>(buffer_, crc32(payload.data(), payload.size()));
  buffer_ += payload;
}

void JournalWriter::sync() {
  if (buffer_.empty()) return;
  writeAll(fd_, buffer_, file_);
  buffer_.clear();
  if (::fsync(fd_) != 0)
    throw std::runtime_error("cannot fsync " + file_.string() + ": " + std::strerror(errno));
}

void rewriteJournal(const std::filesystem::path& file, const std::vector<JournalTopic>& topics,
                    const std::vector<JournalRecord>& records) {
  auto tmp = file;
  tmp += ".tmp";
  {
    JournalWriter writer(tmp, 0);
    for (const auto& t : topics) writer.appendTopic(t);
    for (const auto& r : records) {
      writer.appendRecord(r);
      if (writer.pending() && (&r - records.data()) % 10000 == 0) writer.sync();
    }
    writer.sync();
  }
  std::filesystem::rename(tmp, file);
  syncDirectory(file.parent_path());
}

void writeFileAtomically(const std::filesystem::path& path, const std::string& text) {
  auto tmp = path;
  tmp += ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    throw std::runtime_error("cannot write " + tmp.string() + ": " + std::strerror(errno));
  try {
    writeAll(fd, text, tmp);
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::fsync(fd);
  ::close(fd);
  std::filesystem::rename(tmp, path);
  syncDirectory(path.parent_path());
}

}  // namespace ultracore::devbroker
