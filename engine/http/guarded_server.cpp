#include "engine/http/guarded_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <optional>
#include <string_view>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>

namespace ultracore::engine {

namespace {

using Clock = std::chrono::steady_clock;

/// What a connection job does on the thread that runs it.
enum class Lane { kWorker, kBusy };
thread_local Lane tl_lane = Lane::kWorker;

/// The request being served on this worker thread: the gate marks it when the connection
/// must close after the answer (its body was not read).
struct RequestState {
  bool close_after = false;
};
thread_local RequestState* tl_request = nullptr;

constexpr auto kWriteTimeout = std::chrono::seconds(5);
/// After an early answer, unread body bytes are drained for this long (bounded) before the
/// close, so the client reads the answer instead of a reset.
constexpr auto kLinger = std::chrono::milliseconds(500);
constexpr std::size_t kLingerBytes = 1 << 20;
constexpr std::size_t kBusyHeadBytes = 8192;
/// A connection with no whole request head after this long leaves its worker for the parking.
constexpr int kParkAfterMs = 5;
/// How often the parking looks again at a connection whose request head is incomplete.
constexpr auto kHeadPeekInterval = std::chrono::milliseconds(20);

int msLeft(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return static_cast<int>(std::max<std::int64_t>(0, left.count()));
}

bool pollFor(int fd, short events, int timeout_ms) {
  pollfd p{fd, events, 0};
  for (;;) {
    const int n = ::poll(&p, 1, timeout_ms);
    if (n < 0 && errno == EINTR) continue;
    return n > 0;
  }
}

std::string addressOf(const sockaddr_storage& address, int& port) {
  char text[INET6_ADDRSTRLEN] = "";
  if (address.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&address);
    ::inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text));
    port = ntohs(in->sin_port);
  } else if (address.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&address);
    ::inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof(text));
    port = ntohs(in6->sin6_port);
  }
  return text;
}

enum class Head { kIncomplete, kComplete, kTooLarge };

/// Whether the socket's unread bytes hold a whole request head. kComplete also when there is
/// nothing left to wait for (the peer closed, or the socket failed: httplib sees it). Peeks
/// only; the bytes stay for httplib.
Head peekHead(int fd, std::size_t max_head_bytes) {
  thread_local std::vector<char> buffer;  // reused: the parking peeks often
  buffer.resize(max_head_bytes + 4);
  const ssize_t n = ::recv(fd, buffer.data(), buffer.size(), MSG_PEEK | MSG_DONTWAIT);
  if (n < 0) {
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? Head::kIncomplete
                                                                      : Head::kComplete;
  }
  if (n == 0) return Head::kComplete;
  const std::string_view seen(buffer.data(), static_cast<std::size_t>(n));
  const std::size_t end = seen.find("\r\n\r\n");
  if (end != std::string_view::npos) {
    return end + 4 > max_head_bytes ? Head::kTooLarge : Head::kComplete;
  }
  return seen.size() >= buffer.size() ? Head::kTooLarge : Head::kIncomplete;
}

std::string peerAddress(int fd, int& port) {
  sockaddr_storage address{};
  socklen_t length = sizeof(address);
  port = 0;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) return "";
  return addressOf(address, port);
}

/// Reads and drops what the client still sends, for at most kLinger, then closes.
void lingerAndClose(int fd) {
  ::shutdown(fd, SHUT_WR);
  const auto deadline = Clock::now() + kLinger;
  std::size_t drained = 0;
  char buffer[16384];
  while (drained < kLingerBytes && pollFor(fd, POLLIN, msLeft(deadline))) {
    const ssize_t n = ::recv(fd, buffer, sizeof(buffer), 0);
    if (n <= 0) break;
    drained += static_cast<std::size_t>(n);
  }
  ::close(fd);
}

std::string busyAnswer(bool health) {
  const std::string body = health ? R"({"status":"ok"})"
                                  : R"({"error":{"status":503,"code":"server_busy",)"
                                    R"("message":"the server is busy; retry later"}})";
  return std::string(health ? "HTTP/1.1 200 OK\r\n" : "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n") +
         "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\nConnection: close\r\n\r\n" + body;
}

/// One connection on a worker: every read of a request shares one deadline and one byte
/// budget, set when the request starts; writes wait at most kWriteTimeout each.
class ConnectionStream final : public httplib::Stream {
 public:
  explicit ConnectionStream(int fd) : fd_(fd) {}

  void beginRequest(Clock::time_point deadline, std::size_t budget) {
    deadline_ = deadline;
    budget_ = budget;
    timed_out_ = false;
    written_ = 0;
  }
  bool timedOut() const { return timed_out_; }
  std::size_t written() const { return written_; }
  bool buffered() const { return offset_ < size_; }

  bool is_readable() const override { return buffered() || pollFor(fd_, POLLIN, msLeft(deadline_)); }
  bool is_writable() const override {
    return pollFor(fd_, POLLOUT, static_cast<int>(std::chrono::milliseconds(kWriteTimeout).count()));
  }

  ssize_t read(char* ptr, std::size_t size) override {
    if (buffered()) {
      const std::size_t n = std::min(size, size_ - offset_);
      std::memcpy(ptr, buffer_ + offset_, n);
      offset_ += n;
      return static_cast<ssize_t>(n);
    }
    if (budget_ == 0) return -1;
    if (!pollFor(fd_, POLLIN, msLeft(deadline_))) {
      timed_out_ = true;
      return -1;
    }
    const std::size_t want = std::min(sizeof(buffer_), budget_);
    const ssize_t n = ::recv(fd_, buffer_, want, 0);
    if (n <= 0) return n;
    budget_ -= static_cast<std::size_t>(n);
    size_ = static_cast<std::size_t>(n);
    offset_ = 0;
    return read(ptr, size);
  }

  ssize_t write(const char* ptr, std::size_t size) override {
    if (!is_writable()) return -1;
    const ssize_t n = ::send(fd_, ptr, size, MSG_NOSIGNAL);
    if (n > 0) written_ += static_cast<std::size_t>(n);
    return n;
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override { ip = peerAddress(fd_, port); }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    sockaddr_storage address{};
    socklen_t length = sizeof(address);
    port = 0;
    ip.clear();
    if (::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length) == 0) {
      ip = addressOf(address, port);
    }
  }
  socket_t socket() const override { return fd_; }

 private:
  int fd_;
  char buffer_[4096];
  std::size_t offset_ = 0;
  std::size_t size_ = 0;
  Clock::time_point deadline_ = Clock::now();
  std::size_t budget_ = 0;
  bool timed_out_ = false;
  std::size_t written_ = 0;
};

}  // namespace

// ---- the pollers: busy lane and parking -----------------------------------------------------

/// One thread polling many connections at once, none of which holds a worker. Subclasses say
/// what a readable connection and a passed deadline do; both return true when the entry is
/// finished (its descriptor closed or handed on).
class GuardedServer::Poller {
 public:
  virtual ~Poller() = default;

  /// Takes `fd` over (closes it at once when the poller is full).
  void adopt(int fd, Clock::time_point deadline, std::size_t keep_alive_left = 0,
             std::optional<Clock::time_point> head_started = std::nullopt) {
    {
      std::lock_guard lock(mutex_);
      if (stopping_ || inbox_.size() + held_.load() >= capacity_) {
        ::close(fd);
        return;
      }
      Entry entry;
      entry.fd = fd;
      entry.deadline = deadline;
      entry.keep_alive_left = keep_alive_left;
      entry.head_started = head_started;
      inbox_.push_back(std::move(entry));
    }
    wake();
  }

 protected:
  struct Entry {
    int fd = -1;
    Clock::time_point deadline;
    std::size_t keep_alive_left = 0;  ///< parking: requests the connection may still make
    std::optional<Clock::time_point> head_started;  ///< parking: first byte of an incomplete head
    Clock::time_point quiet_until;    ///< not polled for input before (an incomplete head)
    std::string head;                 ///< busy lane: the request head read so far
    bool answered = false;            ///< busy lane: answered, now draining until the close
    std::size_t drained = 0;
  };

  explicit Poller(std::size_t capacity) : capacity_(capacity) {
    if (::pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0) throw std::runtime_error("pipe2 failed");
  }

  /// Called by the subclass's constructor (the loop calls its overrides) and destructor.
  void start() { thread_ = std::thread([this] { loop(); }); }
  void stop() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake();
    if (thread_.joinable()) thread_.join();
    for (const auto& entry : entries_) ::close(entry.fd);
    for (const auto& entry : inbox_) ::close(entry.fd);
    entries_.clear();
    inbox_.clear();
    ::close(wake_[0]);
    ::close(wake_[1]);
  }

  virtual bool onReadable(Entry& entry) = 0;
  virtual bool onDeadline(Entry& entry) = 0;

 private:
  void wake() {
    const char byte = 1;
    [[maybe_unused]] const ssize_t n = ::write(wake_[1], &byte, 1);
  }

  void loop() {
    std::vector<pollfd> polled;
    char buffer[256];
    for (;;) {
      {
        std::lock_guard lock(mutex_);
        if (stopping_) return;
        for (auto& entry : inbox_) {
          ::fcntl(entry.fd, F_SETFL, ::fcntl(entry.fd, F_GETFL) | O_NONBLOCK);
          entries_.push_back(std::move(entry));
        }
        inbox_.clear();
        held_ = entries_.size();
      }
      polled.clear();
      polled.push_back({wake_[0], POLLIN, 0});
      const auto polled_at = Clock::now();
      auto next = polled_at + std::chrono::milliseconds(100);
      for (const auto& entry : entries_) {
        const bool quiet = polled_at < entry.quiet_until;
        polled.push_back({entry.fd, static_cast<short>(quiet ? 0 : POLLIN), 0});
        next = std::min(next, quiet ? std::min(entry.deadline, entry.quiet_until) : entry.deadline);
      }
      ::poll(polled.data(), polled.size(), msLeft(next) + 1);
      if (polled[0].revents != 0) {
        while (::read(wake_[0], buffer, sizeof(buffer)) > 0) {
        }
      }
      const auto now = Clock::now();
      for (std::size_t i = 0; i < entries_.size(); ++i) {
        Entry& entry = entries_[i];
        const bool wakes = polled[i + 1].revents != 0 ||
                           (entry.quiet_until != Clock::time_point{} && now >= entry.quiet_until);
        const bool finished = (wakes && onReadable(entry)) ||
                              (entry.fd >= 0 && now >= entry.deadline && onDeadline(entry));
        if (finished) entry.fd = -1;
      }
      entries_.erase(std::remove_if(entries_.begin(), entries_.end(),
                                    [](const Entry& entry) { return entry.fd < 0; }),
                     entries_.end());
    }
  }

  std::size_t capacity_;
  int wake_[2] = {-1, -1};
  std::mutex mutex_;
  bool stopping_ = false;
  std::vector<Entry> inbox_;
  std::atomic<std::size_t> held_{0};
  std::vector<Entry> entries_;  ///< the loop's thread only
  std::thread thread_;
};

/// Connections no worker can serve: reads a small request head, answers /healthz or 503,
/// drains briefly and closes.
class GuardedServer::BusyLane final : public Poller {
 public:
  BusyLane(std::size_t capacity, std::chrono::milliseconds head_timeout)
      : Poller(capacity), head_timeout_(head_timeout) {
    start();
  }
  ~BusyLane() override { stop(); }

  void adopt(int fd) { Poller::adopt(fd, Clock::now() + head_timeout_); }

 private:
  bool onReadable(Entry& entry) override {
    char buffer[4096];
    const ssize_t n = ::recv(entry.fd, buffer, sizeof(buffer), 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return false;
    if (n <= 0) return closeEntry(entry);
    if (entry.answered) {
      entry.drained += static_cast<std::size_t>(n);
      return entry.drained > kLingerBytes && closeEntry(entry);
    }
    entry.head.append(buffer, std::min<std::size_t>(static_cast<std::size_t>(n),
                                                    kBusyHeadBytes - entry.head.size()));
    if (entry.head.find("\r\n\r\n") != std::string::npos || entry.head.size() >= kBusyHeadBytes) {
      answer(entry);
    }
    return false;
  }

  bool onDeadline(Entry& entry) override {
    if (entry.answered) return closeEntry(entry);
    answer(entry);
    return false;
  }

  static bool closeEntry(Entry& entry) {
    ::close(entry.fd);
    return true;
  }

  static void answer(Entry& entry) {
    const bool health = entry.head.rfind("GET /healthz ", 0) == 0 ||
                        entry.head.rfind("GET /healthz?", 0) == 0 ||
                        entry.head.rfind("HEAD /healthz ", 0) == 0;
    const std::string text = busyAnswer(health);
    [[maybe_unused]] const ssize_t n = ::send(entry.fd, text.data(), text.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    ::shutdown(entry.fd, SHUT_WR);
    entry.answered = true;
    entry.deadline = Clock::now() + kLinger;
  }

  std::chrono::milliseconds head_timeout_;
};

/// Connections between two requests (and new ones that have sent nothing yet or only part of
/// a request head): they wait here instead of on a worker, so idle keep-alive connections and
/// trickled heads (slowloris) hold a descriptor, never a thread. The parking only peeks: a
/// connection goes back to the pool once its whole head has arrived; a head that began more
/// than `request_timeout` ago gets 408, one over `max_head_bytes` 431; a connection idle past
/// `keep_alive` is closed.
class GuardedServer::Parking final : public Poller {
 public:
  Parking(GuardedServer& server, std::size_t capacity) : Poller(capacity), server_(server) { start(); }
  ~Parking() override { stop(); }

  void park(int fd, std::size_t keep_alive_left, std::optional<Clock::time_point> head_started) {
    const auto deadline = head_started ? *head_started + server_.limits_.request_timeout
                                       : Clock::now() + server_.limits_.keep_alive;
    adopt(fd, deadline, keep_alive_left, head_started);
  }

 private:
  bool onReadable(Entry& entry) override {
    entry.quiet_until = {};
    switch (peekHead(entry.fd, server_.limits_.max_head_bytes)) {
      case Head::kComplete:
        server_.resume(entry.fd, entry.keep_alive_left, entry.head_started);
        return true;
      case Head::kTooLarge:
        return refuse(entry, 431);
      case Head::kIncomplete:
        break;
    }
    if (!entry.head_started) {
      entry.head_started = Clock::now();
      entry.deadline = *entry.head_started + server_.limits_.request_timeout;
    }
    entry.quiet_until = Clock::now() + kHeadPeekInterval;  // poll() would wake at once
    return false;
  }

  bool onDeadline(Entry& entry) override {
    if (entry.head_started) return refuse(entry, 408);
    ::close(entry.fd);
    return true;
  }

  bool refuse(Entry& entry, int status) {
    const std::string text = server_.errorAnswer(status);
    [[maybe_unused]] const ssize_t n = ::send(entry.fd, text.data(), text.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    ::shutdown(entry.fd, SHUT_RDWR);
    ::close(entry.fd);
    return true;
  }

  GuardedServer& server_;
};

// ---- the worker pool ------------------------------------------------------------------------

/// httplib's task queue: `workers` threads, at most `queue` connections waiting, none longer
/// than max_queue_wait; the others go to the busy lane.
class GuardedServer::Pool final : public httplib::TaskQueue {
 public:
  Pool(GuardedServer& server, const ServerLimits& limits)
      : server_(server), queue_(limits.queue), max_wait_(limits.max_queue_wait) {
    for (std::size_t i = 0; i < limits.workers; ++i) threads_.emplace_back([this] { work(); });
    janitor_ = std::thread([this] { expire(); });
    std::lock_guard lock(server_.pool_mutex_);
    server_.pool_ = this;
  }

  void enqueue(std::function<void()> fn) override {
    {
      std::lock_guard lock(mutex_);
      if (idle_ > jobs_.size() || jobs_.size() < queue_) {
        jobs_.push_back({Clock::now(), std::move(fn)});
        cv_.notify_one();
        return;
      }
    }
    runBusy(fn);
  }

  void shutdown() override {
    {
      // Parked connections that turn readable from now on are closed, not queued.
      std::lock_guard lock(server_.pool_mutex_);
      server_.pool_ = nullptr;
    }
    {
      std::lock_guard lock(mutex_);
      shutdown_ = true;
    }
    cv_.notify_all();
    cv_expire_.notify_all();
    for (auto& thread : threads_) thread.join();
    if (janitor_.joinable()) janitor_.join();
  }

 private:
  struct Job {
    Clock::time_point queued;
    std::function<void()> fn;
  };

  static void runBusy(const std::function<void()>& fn) {
    tl_lane = Lane::kBusy;
    fn();
    tl_lane = Lane::kWorker;
  }

  void work() {
    for (;;) {
      Job job;
      {
        std::unique_lock lock(mutex_);
        ++idle_;
        cv_.wait(lock, [&] { return shutdown_ || !jobs_.empty(); });
        --idle_;
        if (jobs_.empty()) return;  // shutdown
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      job.fn();
    }
  }

  /// Hands connections that waited too long to the busy lane, so they are answered even when
  /// every worker is held.
  void expire() {
    std::unique_lock lock(mutex_);
    while (!shutdown_) {
      cv_expire_.wait_for(lock, std::chrono::milliseconds(50));
      const auto oldest = Clock::now() - max_wait_;
      std::vector<std::function<void()>> expired;
      while (!jobs_.empty() && jobs_.front().queued < oldest) {
        expired.push_back(std::move(jobs_.front().fn));
        jobs_.pop_front();
      }
      if (expired.empty()) continue;
      lock.unlock();
      for (const auto& fn : expired) runBusy(fn);
      lock.lock();
    }
  }

  GuardedServer& server_;
  std::size_t queue_;
  std::chrono::milliseconds max_wait_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::condition_variable cv_expire_;
  std::deque<Job> jobs_;
  std::size_t idle_ = 0;
  bool shutdown_ = false;
  std::vector<std::thread> threads_;
  std::thread janitor_;
};

// ---- the server -----------------------------------------------------------------------------

bool isJsonContentType(const std::string& content_type) {
  std::string type = content_type.substr(0, content_type.find(';'));
  while (!type.empty() && std::isspace(static_cast<unsigned char>(type.back()))) type.pop_back();
  std::transform(type.begin(), type.end(), type.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return type == "application/json";
}

bool needsJsonContentType(const httplib::Request& req) {
  if (req.method == "POST") return true;
  const std::string length = req.get_header_value("Content-Length");
  return req.has_header("Transfer-Encoding") || (!length.empty() && length != "0");
}


GuardedServer::GuardedServer(std::string name, ServerLimits limits, ErrorWriter error, Gate gate)
    : name_(std::move(name)),
      limits_(limits),
      error_(std::move(error)),
      gate_(std::move(gate)),
      busy_(std::make_shared<BusyLane>(limits_.busy_connections, limits_.busy_head_timeout)) {
  parking_ = std::make_shared<Parking>(*this, limits_.idle_connections);
  new_task_queue = [this] { return new Pool(*this, limits_); };
  set_payload_max_length(limits_.max_body_bytes);
  const auto early = [this](const httplib::Request& req, httplib::Response& res) {
    if ((gate_ && gate_(req, res)) || refuseBody(req, res)) {
      // The body (if any) stays unread: this connection serves no further request.
      res.set_header("Connection", "close");
      if (tl_request != nullptr) tl_request->close_after = true;
      return true;
    }
    return false;
  };
  set_pre_routing_handler([early](const httplib::Request& req, httplib::Response& res) {
    return early(req, res) ? HandlerResponse::Handled : HandlerResponse::Unhandled;
  });
  // `Expect: 100-continue`: answer before the client sends the body at all.
  set_expect_100_continue_handler([early](const httplib::Request& req, httplib::Response& res) {
    return early(req, res) ? res.status : 100;
  });
}

GuardedServer::~GuardedServer() = default;

bool GuardedServer::refuseBody(const httplib::Request& req, httplib::Response& res) const {
  if (req.has_header("Transfer-Encoding")) {
    error_(res, 411, "length_required",
           "send the body with a Content-Length (Transfer-Encoding is not accepted)");
    return true;
  }
  const std::string encoding = req.get_header_value("Content-Encoding");
  if (req.has_header("Content-Encoding") && encoding != "identity") {
    error_(res, 415, "unsupported_encoding", "Content-Encoding is not accepted; send the body as is");
    return true;
  }
  const bool reads_body = req.method == "POST" || req.method == "PUT" || req.method == "PATCH" ||
                          req.method == "DELETE";
  if (req.get_header_value_count("Content-Length") > 1) {
    error_(res, 400, "bad_request", "more than one Content-Length");
    return true;
  }
  if (!req.has_header("Content-Length")) {
    if (req.method == "POST" || req.method == "PUT" || req.method == "PATCH") {
      error_(res, 411, "length_required", "a " + req.method + " needs a Content-Length");
      return true;
    }
    // A DELETE without a body: make httplib read none instead of reading until the close.
    if (reads_body) const_cast<httplib::Request&>(req).set_header("Content-Length", "0");
    return false;
  }
  const std::string length = req.get_header_value("Content-Length");
  if (length.empty() || length.size() > 18 ||
      !std::all_of(length.begin(), length.end(), [](unsigned char c) { return std::isdigit(c); })) {
    error_(res, 400, "bad_request", "Content-Length must be a number");
    return true;
  }
  const std::size_t bytes = std::stoull(length);
  if (bytes > limits_.max_body_bytes) {
    error_(res, 413, "body_too_large",
           "the request body is larger than " + std::to_string(limits_.max_body_bytes) + " bytes");
    return true;
  }
  // httplib does not read the body of a GET (or HEAD, OPTIONS): it would be taken for the next
  // request, so the connection closes after this one.
  if (!reads_body && bytes > 0 && tl_request != nullptr) tl_request->close_after = true;
  return false;
}

bool GuardedServer::acquireClient(const std::string& client) {
  std::unique_lock lock(clients_mutex_);
  // A client over its cap waits a little for one of its own requests to end: served in turns,
  // not refused at once (a gateway or the bench sends many requests from one address).
  const bool got = clients_cv_.wait_for(lock, limits_.max_queue_wait,
                                        [&] { return clients_[client] < limits_.per_client; });
  if (got) {
    ++clients_[client];
  } else if (clients_[client] == 0) {
    clients_.erase(client);
  }
  return got;
}

void GuardedServer::releaseClient(const std::string& client) {
  {
    std::lock_guard lock(clients_mutex_);
    const auto it = clients_.find(client);
    if (it == clients_.end()) return;
    if (--it->second == 0) clients_.erase(it);
  }
  clients_cv_.notify_all();
}

std::string GuardedServer::errorAnswer(int status) const {
  httplib::Response res;
  if (status == 408) {
    error_(res, 408, "request_timeout",
           "the request was not received within " + std::to_string(limits_.request_timeout.count()) +
               " ms");
  } else {
    error_(res, 431, "header_too_large",
           "the request head is larger than " + std::to_string(limits_.max_head_bytes) + " bytes");
  }
  const char* reason = status == 408 ? "Request Timeout" : "Request Header Fields Too Large";
  return "HTTP/1.1 " + std::to_string(status) + " " + reason +
         "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(res.body.size()) +
         "\r\nConnection: close\r\n\r\n" + res.body;
}

void GuardedServer::toBusyLane(int sock, const std::string& why) {
  busy_->adopt(sock);
  ++refused_;
  // At most one line per kSaturationLogInterval: a flood must not flood the log too.
  const auto now = Clock::now().time_since_epoch().count();
  auto last = last_saturation_log_.load();
  if (now - last < std::chrono::duration_cast<Clock::duration>(kSaturationLogInterval).count() ||
      !last_saturation_log_.compare_exchange_strong(last, now)) {
    return;
  }
  spdlog::warn("{}: saturated: {} connection(s) answered 503 server_busy by the busy lane since "
               "the last such line (latest: {}; limits: {} workers, {} per client address)",
               name_, refused_.exchange(0), why, limits_.workers, limits_.per_client);
}

bool GuardedServer::process_and_close_socket(socket_t sock) {
  return serve(sock, keep_alive_max_count_, std::nullopt);
}

void GuardedServer::resume(int fd, std::size_t keep_alive_left,
                           std::optional<std::chrono::steady_clock::time_point> head_started) {
  std::lock_guard lock(pool_mutex_);
  if (pool_ == nullptr || svr_sock_ == INVALID_SOCKET) {
    ::close(fd);
    return;
  }
  pool_->enqueue([this, fd, keep_alive_left, head_started] { serve(fd, keep_alive_left, head_started); });
}

bool GuardedServer::serve(int sock, std::size_t keep_alive_left,
                          std::optional<std::chrono::steady_clock::time_point> head_started) {
  if (tl_lane == Lane::kBusy) {
    toBusyLane(sock, "no worker was free");
    return false;
  }
  int port = 0;
  const std::string client = peerAddress(sock, port);
  ConnectionStream stream(sock);
  RequestState state;
  bool ok = false;
  bool park = false;
  for (; keep_alive_left > 0; --keep_alive_left, head_started.reset()) {
    // Until a whole request head is here, the connection waits in the parking, not on this
    // worker (idle keep-alive connections, and heads trickled a byte at a time).
    if (!stream.buffered()) {
      if (!pollFor(sock, POLLIN, kParkAfterMs)) {
        park = svr_sock_ != INVALID_SOCKET;
        break;
      }
      const Head head = peekHead(sock, limits_.max_head_bytes);
      if (head == Head::kTooLarge) {
        const std::string text = errorAnswer(431);
        stream.write(text.data(), text.size());
        state.close_after = true;
        break;
      }
      if (head == Head::kIncomplete) {
        if (!head_started) head_started = Clock::now();
        park = svr_sock_ != INVALID_SOCKET;
        break;
      }
    }
    // A client holds at most per_client workers with requests in progress.
    if (!acquireClient(client)) {
      toBusyLane(sock, "the client address " + client + " had requests in progress on " +
                           std::to_string(limits_.per_client) + " workers");
      return false;
    }
    state = RequestState{};
    stream.beginRequest(head_started.value_or(Clock::now()) + limits_.request_timeout,
                        limits_.max_head_bytes + limits_.max_body_bytes);
    bool closed = false;
    tl_request = &state;
    ok = process_request(stream, keep_alive_left == 1, closed, nullptr);
    tl_request = nullptr;
    if (stream.timedOut()) state.close_after = true;  // httplib may have answered 400 itself
    if (stream.timedOut() && stream.written() == 0) {
      const std::string text = errorAnswer(408);
      stream.write(text.data(), text.size());
      state.close_after = true;
    }
    releaseClient(client);
    if (!ok || closed || state.close_after) break;
  }
  if (park) {
    parking_->park(sock, keep_alive_left, head_started);
  } else if (state.close_after) {
    lingerAndClose(sock);
  } else {
    ::shutdown(sock, SHUT_RDWR);
    ::close(sock);
  }
  return ok;
}

}  // namespace ultracore::engine
