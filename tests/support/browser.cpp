#include "browser.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <sstream>
#include <thread>

extern char** environ;

namespace ultracore::testing {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

std::string base64Decode(const std::string& in) {
  static const std::string kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve(in.size() * 3 / 4);
  unsigned bits = 0;
  int count = 0;
  for (char c : in) {
    if (c == '=') break;
    const auto at = kAlphabet.find(c);
    if (at == std::string::npos) continue;
    bits = (bits << 6) | static_cast<unsigned>(at);
    count += 6;
    if (count >= 8) {
      count -= 8;
      out.push_back(static_cast<char>((bits >> count) & 0xff));
    }
  }
  return out;
}

/// A JavaScript string literal holding `text` (JSON's escaping is valid JavaScript).
std::string jsString(const std::string& text) { return json(text).dump(); }

std::string readFile(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

std::string HeadlessBrowser::findChromium() {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "/usr/bin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    const fs::path candidate = fs::path(dir.empty() ? "." : dir) / "chromium";
    if (::access(candidate.c_str(), X_OK) == 0) return candidate.string();
  }
  return "";
}

HeadlessBrowser::HeadlessBrowser(Options options) : options_(options) {
  const std::string chromium = findChromium();
  if (chromium.empty()) {
    throw BrowserError(
        "chromium is not installed (not on PATH): run tools/install-deps, which installs "
        "Debian's chromium package that the browser tests drive headless");
  }
  std::random_device random;
  dir_ = fs::temp_directory_path() / ("ultracore-browser-" + std::to_string(random()));
  fs::create_directories(dir_ / "profile");

  // Built before fork: only async-signal-safe calls in the child.
  std::vector<std::string> argv = {
      chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
      "--no-first-run", "--no-default-browser-check", "--disable-extensions",
      "--hide-scrollbars", "--mute-audio", "--remote-debugging-pipe",
      "--window-size=" + std::to_string(options_.width) + "," + std::to_string(options_.height),
      "--user-data-dir=" + (dir_ / "profile").string(), "about:blank"};
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    const std::string name = entry.substr(0, entry.find('='));
    if (name != "HOME" && name != "XDG_CONFIG_HOME" && name != "XDG_CACHE_HOME") env.push_back(entry);
  }
  // Nothing written to the real home directory.
  env.push_back("HOME=" + dir_.string());
  env.push_back("XDG_CONFIG_HOME=" + (dir_ / "config").string());
  env.push_back("XDG_CACHE_HOME=" + (dir_ / "cache").string());
  std::vector<char*> argv_c, env_c;
  for (auto& a : argv) argv_c.push_back(a.data());
  argv_c.push_back(nullptr);
  for (auto& e : env) env_c.push_back(e.data());
  env_c.push_back(nullptr);
  const std::string log = (dir_ / "chromium.log").string();

  int to[2], from[2];
  if (::pipe2(to, O_CLOEXEC) != 0 || ::pipe2(from, O_CLOEXEC) != 0) {
    throw BrowserError(std::string("pipe: ") + std::strerror(errno));
  }
  pid_ = ::fork();
  if (pid_ < 0) throw BrowserError(std::string("fork: ") + std::strerror(errno));
  if (pid_ == 0) {
    ::setpgid(0, 0);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    // Chromium reads commands on fd 3 and writes answers on fd 4. Moved high first, so that
    // dup2 onto 3 and 4 never meets an fd that already is 3 or 4 (and keeps its CLOEXEC).
    const int in = ::fcntl(to[0], F_DUPFD, 10);
    const int out = ::fcntl(from[1], F_DUPFD, 10);
    ::dup2(in, 3);
    ::dup2(out, 4);
    ::close(in);
    ::close(out);
    const int null = ::open("/dev/null", O_RDONLY);
    const int logfd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (null >= 0) ::dup2(null, 0);
    if (logfd >= 0) {
      ::dup2(logfd, 1);
      ::dup2(logfd, 2);
    }
    ::execve(argv_c[0], argv_c.data(), env_c.data());
    ::_exit(127);
  }
  ::setpgid(pid_, pid_);
  ::close(to[0]);
  ::close(from[1]);
  to_browser_ = to[1];
  from_browser_ = from[0];

  try {
    // The pipe's browser target: open a page of our own and talk to it through a flat session.
    const json target = call("Target.createTarget", {{"url", "about:blank"}}, true);
    const json attached = call("Target.attachToTarget",
                               {{"targetId", target.at("targetId")}, {"flatten", true}}, true);
    session_ = attached.at("sessionId").get<std::string>();
    call("Page.enable");
    call("Runtime.enable");
    call("Emulation.setDeviceMetricsOverride", {{"width", options_.width},
                                                {"height", options_.height},
                                                {"deviceScaleFactor", 1},
                                                {"mobile", false}});
  } catch (...) {
    shutdown();
    throw;
  }
}

HeadlessBrowser::~HeadlessBrowser() {
  shutdown();
  std::error_code ignored;
  fs::remove_all(dir_, ignored);
}

void HeadlessBrowser::shutdown() {
  if (pid_ > 0) {
    if (to_browser_ >= 0) {
      try {
        send({{"id", next_id_++}, {"method", "Browser.close"}});
      } catch (const std::exception&) {
        // Already gone: the group is killed below.
      }
    }
    const auto deadline = Clock::now() + std::chrono::seconds(5);
    int status = 0;
    while (::waitpid(pid_, &status, WNOHANG) == 0 && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ::killpg(pid_, SIGKILL);  // helpers (renderer, GPU, zygote) and the browser if it hung
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }
  if (to_browser_ >= 0) ::close(to_browser_);
  if (from_browser_ >= 0) ::close(from_browser_);
  to_browser_ = from_browser_ = -1;
}

std::string HeadlessBrowser::log() const { return readFile(dir_ / "chromium.log"); }

void HeadlessBrowser::fail(const std::string& what) const {
  std::string tail = log();
  if (tail.size() > 2000) tail = "..." + tail.substr(tail.size() - 2000);
  throw BrowserError("headless chromium: " + what + (tail.empty() ? "" : "\nchromium stderr:\n" + tail));
}

void HeadlessBrowser::send(const json& message) {
  std::string bytes = message.dump();
  bytes.push_back('\0');
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(to_browser_, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail(std::string("cannot write to the DevTools pipe: ") + std::strerror(errno));
    done += static_cast<std::size_t>(n);
  }
}

bool HeadlessBrowser::receive(json& message, Clock::time_point deadline) {
  for (;;) {
    const auto end = buffer_.find('\0');
    if (end != std::string::npos) {
      message = json::parse(buffer_.substr(0, end));
      buffer_.erase(0, end + 1);
      return true;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return false;
    pollfd fd{from_browser_, POLLIN, 0};
    const int ready = ::poll(&fd, 1, static_cast<int>(left.count()) + 1);
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) continue;
    char chunk[65536];
    const ssize_t n = ::read(from_browser_, chunk, sizeof(chunk));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail("the browser closed the DevTools pipe (did it crash?)");
    buffer_.append(chunk, static_cast<std::size_t>(n));
  }
}

void HeadlessBrowser::handleEvent(const json& message) {
  const std::string method = message.value("method", "");
  const json& params = message.contains("params") ? message["params"] : json::object();
  if (method == "Page.javascriptDialogOpening") {
    dialogs_.push_back(params.value("message", ""));
    // Answered at once, without waiting: the page's script is blocked until then.
    json answer = {{"id", next_id_++},
                   {"method", "Page.handleJavaScriptDialog"},
                   {"params", {{"accept", dialog_accept_}, {"promptText", dialog_prompt_}}}};
    if (message.contains("sessionId")) answer["sessionId"] = message["sessionId"];
    send(answer);
    return;
  }
  if (method == "Runtime.consoleAPICalled") {
    std::string line = "console." + params.value("type", std::string("log")) + ":";
    for (const auto& arg : params.value("args", json::array())) {
      line += " " + (arg.contains("value") ? (arg["value"].is_string() ? arg["value"].get<std::string>()
                                                                       : arg["value"].dump())
                                           : arg.value("description", arg.value("type", "")));
    }
    console_.push_back(line);
    return;
  }
  if (method == "Runtime.exceptionThrown") {
    const json& details = params.value("exceptionDetails", json::object());
    std::string text = details.value("text", "");
    if (details.contains("exception")) text += " " + details["exception"].value("description", "");
    console_.push_back("uncaught: " + text);
    return;
  }
  if (method == "Page.loadEventFired" || method == "Page.navigatedWithinDocument" ||
      method == "Page.frameNavigated") {
    events_.push_back(message);
  }
}

json HeadlessBrowser::call(const std::string& method, const json& params, bool browser_level) {
  const int id = next_id_++;
  json message = {{"id", id}, {"method", method}, {"params", params}};
  if (!browser_level) message["sessionId"] = session_;
  send(message);
  const auto deadline = Clock::now() + options_.timeout;
  json answer;
  for (;;) {
    if (!receive(answer, deadline)) {
      fail(method + ": no answer within " + std::to_string(options_.timeout.count()) + " ms");
    }
    if (answer.contains("id") && answer["id"] == id) break;
    if (answer.contains("method")) handleEvent(answer);
  }
  if (answer.contains("error")) {
    throw BrowserError(method + " failed: " + answer["error"].value("message", answer["error"].dump()));
  }
  return answer.value("result", json::object());
}

void HeadlessBrowser::navigate(const std::string& url) {
  events_.clear();
  const json result = call("Page.navigate", {{"url", url}});
  if (result.contains("errorText") && !result["errorText"].get<std::string>().empty()) {
    throw BrowserError("cannot load " + url + ": " + result["errorText"].get<std::string>());
  }
  // No loaderId: the navigation stayed in the document (only the fragment changed).
  if (!result.contains("loaderId")) return;
  const auto deadline = Clock::now() + options_.timeout;
  for (;;) {
    for (const auto& event : events_) {
      if (event["method"] == "Page.loadEventFired") {
        events_.clear();
        return;
      }
    }
    events_.clear();
    json message;
    if (!receive(message, deadline)) fail("no load event for " + url);
    if (message.contains("method")) handleEvent(message);
  }
}

json HeadlessBrowser::evaluate(const std::string& expression) {
  const json result = call("Runtime.evaluate", {{"expression", expression},
                                                {"returnByValue", true},
                                                {"awaitPromise", true},
                                                {"userGesture", true}});
  if (result.contains("exceptionDetails")) {
    const json& details = result["exceptionDetails"];
    std::string text = details.value("text", "exception");
    if (details.contains("exception")) text += " " + details["exception"].value("description", "");
    throw BrowserError("script failed: " + text + "\nin: " + expression);
  }
  const json& value = result.value("result", json::object());
  return value.contains("value") ? value["value"] : json();
}

bool HeadlessBrowser::waitFor(const std::string& condition, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  const std::string expression = "(() => { try { return !!(" + condition + "); } catch (e) { return false; } })()";
  for (;;) {
    if (evaluate(expression).get<bool>()) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

void HeadlessBrowser::click(const std::string& selector) {
  const json box = evaluate(
      "(() => { const e = document.querySelector(" + jsString(selector) + ");"
      " if (!e) throw new Error('no element matches ' + " + jsString(selector) + ");"
      " e.scrollIntoView({block: 'center', inline: 'center'});"
      " const r = e.getBoundingClientRect(); return [r.left + r.width / 2, r.top + r.height / 2]; })()");
  const double x = box.at(0).get<double>();
  const double y = box.at(1).get<double>();
  call("Input.dispatchMouseEvent", {{"type", "mouseMoved"}, {"x", x}, {"y", y}});
  call("Input.dispatchMouseEvent",
       {{"type", "mousePressed"}, {"x", x}, {"y", y}, {"button", "left"}, {"buttons", 1}, {"clickCount", 1}});
  call("Input.dispatchMouseEvent",
       {{"type", "mouseReleased"}, {"x", x}, {"y", y}, {"button", "left"}, {"buttons", 0}, {"clickCount", 1}});
}

void HeadlessBrowser::type(const std::string& selector, const std::string& text) {
  evaluate("(() => { const e = document.querySelector(" + jsString(selector) + ");"
           " if (!e) throw new Error('no element matches ' + " + jsString(selector) + ");"
           " e.focus(); if ('value' in e) { e.value = ''; e.dispatchEvent(new Event('input', {bubbles: true})); } })()");
  if (!text.empty()) call("Input.insertText", {{"text", text}});
}

void HeadlessBrowser::press(const std::string& key) {
  struct Key {
    const char* name;
    int code;
    const char* text;
  };
  static const Key kKeys[] = {{"Enter", 13, "\r"}, {"Tab", 9, ""}, {"Escape", 27, ""}, {"Backspace", 8, ""}};
  for (const Key& k : kKeys) {
    if (key != k.name) continue;
    json down = {{"type", std::string(k.text).empty() ? "rawKeyDown" : "keyDown"},
                 {"key", k.name}, {"code", k.name}, {"windowsVirtualKeyCode", k.code}};
    if (std::string(k.text).size() > 0) down["text"] = k.text;
    call("Input.dispatchKeyEvent", down);
    call("Input.dispatchKeyEvent",
         {{"type", "keyUp"}, {"key", k.name}, {"code", k.name}, {"windowsVirtualKeyCode", k.code}});
    return;
  }
  throw BrowserError("press: unsupported key '" + key + "' (Enter, Tab, Escape, Backspace)");
}

void HeadlessBrowser::setDialogAnswer(bool accept, const std::string& prompt_text) {
  dialog_accept_ = accept;
  dialog_prompt_ = prompt_text;
}

void HeadlessBrowser::screenshot(const fs::path& png) {
  const json result = call("Page.captureScreenshot", {{"format", "png"}, {"captureBeyondViewport", false}});
  const std::string bytes = base64Decode(result.at("data").get<std::string>());
  if (png.has_parent_path()) fs::create_directories(png.parent_path());
  std::ofstream out(png, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw BrowserError("cannot write " + png.string());
}

}  // namespace ultracore::testing
