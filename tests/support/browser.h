#pragma once
/// @file
/// HeadlessBrowser: a real headless Chromium (Debian's `chromium`, installed by
/// tools/install-deps) driven by the tests through the Chrome DevTools Protocol over
/// `--remote-debugging-pipe`: JSON messages, each ended by a NUL byte, written to the browser's
/// fd 3 and read from its fd 4. No websocket, no extra library.
///
/// One page (tab) per browser. Every call blocks until Chromium answers, at most the time-out
/// given in Options; a failure throws BrowserError with what Chromium said (and the end of
/// its stderr when it died). JavaScript dialogs (alert/confirm/prompt) are answered at once
/// as setDialogAnswer says (default: accept).
///
/// Chromium and its helpers run in their own process group, killed by the destructor.
/// Not thread-safe: use one instance from one thread.

#include <chrono>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace ultracore::testing {

/// Chromium is missing, died, timed out, or a command or script failed.
class BrowserError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class HeadlessBrowser {
 public:
  struct Options {
    int width = 1280;   ///< viewport, CSS pixels (screenshots have this size)
    int height = 900;
    /// Per call (navigate, evaluate, click, one waitFor poll...).
    std::chrono::milliseconds timeout = std::chrono::seconds(30);
  };

  /// Starts Chromium with a fresh profile in a temporary directory and opens about:blank.
  /// Throws BrowserError when `chromium` is not on PATH (naming tools/install-deps).
  explicit HeadlessBrowser(Options options);
  HeadlessBrowser() : HeadlessBrowser(Options{}) {}
  ~HeadlessBrowser();
  HeadlessBrowser(const HeadlessBrowser&) = delete;
  HeadlessBrowser& operator=(const HeadlessBrowser&) = delete;

  /// The `chromium` executable on PATH, or "" when it is not installed.
  static std::string findChromium();

  /// Loads `url` and waits for its load event (a change of the fragment only: returns once
  /// the browser has applied it). Throws when the page cannot be loaded.
  void navigate(const std::string& url);

  /// Evaluates a JavaScript expression in the page; a promise is awaited. Returns its value
  /// as JSON (undefined: null). Throws BrowserError with the exception's text when it throws.
  nlohmann::json evaluate(const std::string& expression);

  /// Evaluates `condition` until it is truthy; false when `timeout` passes first. A condition
  /// that throws counts as false (the page may still be loading).
  bool waitFor(const std::string& condition, std::chrono::milliseconds timeout);

  /// A real mouse click (press and release) at the centre of the first element matching the
  /// CSS `selector`, scrolled into view first. Throws when nothing matches.
  void click(const std::string& selector);

  /// Focuses the first element matching `selector`, clears its value, and types `text` into
  /// it (input events fire as for a person typing).
  void type(const std::string& selector, const std::string& text);

  /// Presses one key in the focused element: "Enter", "Tab", "Escape" or "Backspace".
  void press(const std::string& key);

  /// How the next JavaScript dialogs are answered: accept (OK) or dismiss (Cancel); a
  /// prompt() gets `prompt_text`. The messages of the dialogs answered so far: dialogs().
  void setDialogAnswer(bool accept, const std::string& prompt_text = "");
  const std::vector<std::string>& dialogs() const { return dialogs_; }

  /// Writes a PNG of the viewport (Options width x height) to `png` (directories created).
  void screenshot(const std::filesystem::path& png);

  /// console.* messages and uncaught exceptions of the page so far, one line each: for the
  /// failure message of a test.
  const std::vector<std::string>& consoleMessages() const { return console_; }
  /// What Chromium printed on stderr so far.
  std::string log() const;

 private:
  /// Sends one command (to the page unless `browser_level`) and returns its result; events
  /// that arrive meanwhile are handled. Throws on an error answer or a time-out.
  nlohmann::json call(const std::string& method, const nlohmann::json& params = nlohmann::json::object(),
                      bool browser_level = false);
  void send(const nlohmann::json& message);
  /// Reads the next message; false when `deadline` passes first.
  bool receive(nlohmann::json& message, std::chrono::steady_clock::time_point deadline);
  void handleEvent(const nlohmann::json& message);
  void shutdown();
  [[noreturn]] void fail(const std::string& what) const;

  Options options_;
  std::filesystem::path dir_;  ///< profile, HOME and stderr log
  int pid_ = -1;
  int to_browser_ = -1;
  int from_browser_ = -1;
  std::string buffer_;
  int next_id_ = 1;
  std::string session_;  ///< the page's CDP session
  std::vector<nlohmann::json> events_;  ///< events not consumed yet (navigate waits on them)
  bool dialog_accept_ = true;
  std::string dialog_prompt_;
  std::vector<std::string> dialogs_;
  std::vector<std::string> console_;
};

}  // namespace ultracore::testing
