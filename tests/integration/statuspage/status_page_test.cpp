// The admin status page in a real browser: a running engine (customers and accounts
// projections, admin token set) catches up on a burst of events (the customers burst produced
// while that projection is paused, so its lag chart has a peak); headless Chromium loads
// http://127.0.0.1:<admin port>/#token=<token>, once dumping the DOM its script built and once
// taking a screenshot. The DOM must show each projection's name, state, a row per partition
// with lag 0, the applied count, events/s and both charts with data points (the lag chart's
// peak is the paused burst); the screenshot must
// be a 1280x900 PNG that shows the page (the state badge's green, the lag line's orange). A
// wrong or missing token shows the "Access denied" message instead.
//
// Chromium is Debian's `chromium` package (tools/install-deps). Without it the test fails,
// naming tools/install-deps.

#include <httplib.h>

#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <regex>
#include <set>
#include <sstream>

#include <gtest/gtest.h>

#include "browser.h"
#include "engine_harness.h"
#include "png_image.h"

namespace ultracore::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using nlohmann::json;

constexpr char kToken[] = "page-s3cret";
constexpr char kCustomersTopic[] = "ultracore.customers.events";
constexpr char kAccountsTopic[] = "ultracore.accounts.events";
constexpr int kPartitions = 3;
constexpr int kCustomers = 600;
constexpr int kAccounts = 150;
constexpr int kWidth = 1280;
constexpr int kHeight = 900;

std::string readText(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// One headless Chromium run. stdout (the DOM for --dump-dom) and stderr go to separate files.
/// Chromium forks helpers (zygote, GPU, network, renderer): it runs in its own process group
/// (Subprocess), and the whole group is SIGKILLed afterwards, whether it exited or timed out.
struct ChromiumRun {
  std::optional<int> status;  ///< nullopt: timed out (and killed)
  std::string out;
  std::string err;
};

ChromiumRun runChromium(const std::string& chromium, const fs::path& work, const std::string& name,
                        const std::vector<std::string>& extra_args, const std::string& url) {
  const fs::path profile = work / ("profile-" + name);
  fs::create_directories(profile);
  const fs::path out = work / (name + ".out");
  const fs::path err = work / (name + ".err");
  // sh only redirects stderr, then exec's chromium: same pid, same process group.
  std::vector<std::string> argv = {"/bin/sh", "-c", "exec \"$0\" \"$@\" 2>\"$CHROMIUM_STDERR\"", chromium,
                                   "--headless", "--no-sandbox", "--disable-gpu",
                                   "--disable-dev-shm-usage", "--disable-background-networking",
                                   "--disable-component-update", "--disable-sync", "--no-first-run",
                                   "--user-data-dir=" + profile.string(),
                                   "--virtual-time-budget=5000"};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  argv.push_back(url);
  Subprocess process(argv,
                     {{"CHROMIUM_STDERR", err.string()},
                      {"HOME", work.string()},  // nothing written to the real home directory
                      {"XDG_CONFIG_HOME", (work / "config").string()},
                      {"XDG_CACHE_HOME", (work / "cache").string()}},
                     out);
  ChromiumRun run;
  run.status = process.wait(120s);
  ::killpg(process.pid(), SIGKILL);  // helpers left behind, if any (ESRCH when none)
  process.kill();                    // reaps the main process if it timed out
  run.out = readText(out);
  run.err = readText(err);
  return run;
}

/// What the page's script rendered: the dumped DOM up to the script itself (whose source holds
/// every message and class name the checks look for).
std::string rendered(const std::string& html) { return html.substr(0, html.find("<script>")); }

/// The text of the element that starts at `open_at`: up to the next `marker` or the end.
std::string section(const std::string& text, std::size_t open_at, const std::string& marker) {
  const auto next = text.find(marker, open_at + 1);
  return text.substr(open_at, next == std::string::npos ? std::string::npos : next - open_at);
}

int count(const std::string& text, const std::string& needle) {
  int n = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

/// The number of x,y points of every polyline in the <svg data-series="..."> of `card`.
int chartPoints(const std::string& card, const std::string& series) {
  const auto at = card.find("<svg class=\"chart-svg\" data-series=\"" + series + "\"");
  if (at == std::string::npos) return -1;
  const std::string svg = card.substr(at, card.find("</svg>", at) - at);
  int points = 0;
  const std::regex polyline("<polyline[^>]* points=\"([^\"]*)\"");
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), polyline); it != std::sregex_iterator(); ++it) {
    std::stringstream coordinates((*it)[1].str());
    for (std::string point; coordinates >> point;) {
      if (std::regex_match(point, std::regex("[0-9.]+,[0-9.]+"))) ++points;
    }
  }
  return points;
}

class StatusPageTest : public ::testing::Test {
 protected:
  StatusPageTest()
      : broker_(DevBroker::Options{1, kPartitions, {kCustomersTopic, kAccountsTopic}}) {}

  void SetUp() override {
    chromium_ = HeadlessBrowser::findChromium();
    ASSERT_FALSE(chromium_.empty())
        << "chromium is not installed (not on PATH): run tools/install-deps, which installs "
           "Debian's chromium package that this test drives headless";

    manifest_ = writeManifest(dir_, broker_.bootstrap(), db_.url(),
                              "  - { name: customers, plugin: customers, topics: [ultracore.customers.events],\n"
                              "      batch: { max_events: 100, max_wait_ms: 20 } }\n"
                              "  - { name: accounts, plugin: accounts, topics: [ultracore.accounts.events],\n"
                              "      batch: { max_events: 100, max_wait_ms: 20 } }\n");
    setAdminToken(manifest_, kToken);

    engine_ = startEngine(manifest_, dir_.path() / "engine.log");
    ASSERT_TRUE(waitForEngineRunning(*engine_)) << engine_->log();
    port_ = adminPort(*engine_);
    ASSERT_NE(port_, 0) << engine_->log();
    client_ = std::make_unique<httplib::Client>("127.0.0.1", port_);
    client_->set_read_timeout(10s);
  }
  void TearDown() override {
    if (!engine_) return;
    engine_->signal(SIGTERM);
    EXPECT_EQ(engine_->wait(30s), 0) << engine_->log();
  }

  httplib::Headers auth() const { return {{"Authorization", std::string("Bearer ") + kToken}}; }
  /// GET /api/v1/projections with the whole chart history: {name -> projection}.
  std::map<std::string, json> projections() {
    auto res = client_->Get("/api/v1/projections?history_since=0", auth());
    if (!res || res->status != 200) throw std::runtime_error("GET /api/v1/projections failed");
    std::map<std::string, json> out;
    const json doc = json::parse(res->body);
    for (const auto& p : doc["projections"]) out[p["name"].get<std::string>()] = p;
    return out;
  }
  std::string dump() {
    try {
      return json(projections()).dump(2);
    } catch (const std::exception& e) {
      return e.what();
    }
  }
  void post(const std::string& path) {
    auto res = client_->Post(path.c_str(), auth(), "", "application/json");
    if (!res || res->status != 202) throw std::runtime_error("POST " + path + " failed");
  }
  std::int64_t stored(const std::string& projection) {
    const std::string v = queryValue(db_.url(), "SELECT sum(greatest(next_offset, 0)) FROM ultracore_offsets "
                                                "WHERE projection = '" + projection + "'");
    return v.empty() ? 0 : std::stoll(v);
  }
  std::string url(const std::string& fragment) const {
    return "http://127.0.0.1:" + std::to_string(port_) + "/" + fragment;
  }
  ChromiumRun chromium(const std::string& name, const std::vector<std::string>& args, const std::string& fragment) {
    return runChromium(chromium_, dir_.path(), name, args, url(fragment));
  }

  DevBroker broker_;
  TestDatabase db_;
  TempDir dir_;
  std::string chromium_;
  fs::path manifest_;
  std::unique_ptr<Subprocess> engine_;
  std::unique_ptr<httplib::Client> client_;
  int port_ = 0;
};

TEST_F(StatusPageTest, ShowsStateLagPerPartitionCountsAndChartsAfterABurst) {
  // customers: paused with its partitions assigned, so the burst waits in Kafka as lag.
  ASSERT_TRUE(waitUntil([&] { return projections().at("customers")["partitions"].size() == kPartitions; }, 60s))
      << dump() << engine_->log();
  post("/api/v1/projections/customers/pause");
  ASSERT_TRUE(waitUntil([&] { return projections().at("customers")["state"] == "paused"; }, 30s)) << dump();

  std::vector<Record> records;
  for (int i = 0; i < kCustomers; ++i) {
    const std::string id = "CUST-PAGE-" + std::to_string(i);
    records.push_back({kCustomersTopic, id,
                       envelope("c" + std::to_string(i), "CustomerCreated", id,
                                {{"first_name", "Ada"}, {"last_name", "Page"}, {"email", "ada" + std::to_string(i) + "@example.com"}})});
  }
  for (int i = 0; i < kAccounts; ++i) {
    const std::string id = "ACC-PAGE-" + std::to_string(i);
    records.push_back({kAccountsTopic, id,
                       envelope("a" + std::to_string(i), "AccountOpened", id,
                                {{"customer_id", "CUST-PAGE-" + std::to_string(i)}, {"account_type", "checking"}, {"currency", "EUR"}})});
  }
  produce(broker_.bootstrap(), records);
  // The engine's sampler records the paused burst as lag in the chart history, then resume.
  ASSERT_TRUE(waitUntil([&] {
    const json customers = projections().at("customers");  // held: the loop reads into it
    for (const auto& point : customers["history"]) {
      if (point["lag"] == kCustomers) return true;
    }
    return false;
  }, 60s)) << dump();
  EXPECT_EQ(stored("customers"), 0) << "offsets moved while paused";
  post("/api/v1/projections/customers/resume");
  ASSERT_TRUE(waitUntil([&] { return stored("customers") == kCustomers && stored("accounts") == kAccounts; }, 120s))
      << engine_->log();
  // What the page will read: running, lag 0 everywhere, and at least two chart points each.
  ASSERT_TRUE(waitUntil([&] {
    for (const auto& entry : projections()) {
      const json& p = entry.second;
      if (p["lag"] != 0 || p["state"] != "running" || p["history"].size() < 2) return false;
    }
    return true;
  }, 60s)) << dump();

  // The history is only sent when asked for; a bad history_since is a 400.
  auto plain = client_->Get("/api/v1/projections", auth());
  ASSERT_TRUE(plain && plain->status == 200);
  EXPECT_FALSE(json::parse(plain->body)["projections"][0].contains("history")) << plain->body;
  auto bad = client_->Get("/api/v1/projections?history_since=yesterday", auth());
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400) << bad->body;

  const ChromiumRun dom = chromium("dom", {"--dump-dom"}, std::string("#token=") + kToken);
  ASSERT_EQ(dom.status, 0) << "chromium --dump-dom failed or timed out\n" << dom.err;
  std::ofstream(dir_.path() / "status.html") << dom.out;
  const std::string html = rendered(dom.out);
  ASSERT_NE(html.find("<h1>UltraCore projections</h1>"), std::string::npos) << html << dom.err;
  EXPECT_EQ(html.find("Access denied"), std::string::npos) << html;
  EXPECT_EQ(html.find("Cannot read"), std::string::npos) << html;
  EXPECT_NE(html.find("2 projection(s)"), std::string::npos) << html;

  for (const auto& [name, applied] : {std::pair<std::string, int>{"customers", kCustomers}, {"accounts", kAccounts}}) {
    SCOPED_TRACE(name);
    const auto at = html.find("<div class=\"card\" data-projection=\"" + name + "\"");
    ASSERT_NE(at, std::string::npos) << html;
    const std::string card = section(html, at, "<div class=\"card\"");
    EXPECT_NE(card.find("<h2>" + name + " <span class=\"state running\">running</span></h2>"), std::string::npos) << card;
    EXPECT_EQ(count(card, "<tr class=\"partition\""), kPartitions) << card;
    EXPECT_EQ(count(card, "data-lag=\"0\""), kPartitions) << card;
    const std::string topic = name == "customers" ? kCustomersTopic : kAccountsTopic;
    for (int partition = 0; partition < kPartitions; ++partition) {
      EXPECT_NE(card.find("data-topic=\"" + topic + "\" data-partition=\"" + std::to_string(partition) + "\" data-lag=\"0\""),
                std::string::npos) << card;
    }
    EXPECT_NE(card.find("<b class=\"applied\">" + std::to_string(applied) + "</b>"), std::string::npos) << card;
    EXPECT_NE(card.find("<b class=\"lag\">0</b>"), std::string::npos) << card;
    EXPECT_NE(card.find("<b class=\"failed\">0</b>"), std::string::npos) << card;
    EXPECT_NE(card.find("<div class=\"generation\" data-generation=\"1\">generation <b>1</b> in schema <b>" + name + "</b>"),
              std::string::npos) << card;
    EXPECT_TRUE(std::regex_search(card, std::regex("<b class=\"rate\">[0-9]+\\.[0-9]</b>"))) << card;
    EXPECT_GE(chartPoints(card, "events_per_second"), 2) << card;
    EXPECT_GE(chartPoints(card, "lag"), 2) << card;
    // The lag chart's highest point: the paused burst for customers; accounts never lagged by
    // more than its burst.
    std::smatch peak;
    ASSERT_TRUE(std::regex_search(card, peak, std::regex("data-series=\"lag\" data-peak=\"([0-9]+)\""))) << card;
    if (name == "customers") {
      EXPECT_EQ(std::stoi(peak[1]), kCustomers) << card;
    } else {
      EXPECT_LE(std::stoi(peak[1]), kAccounts) << card;
    }
  }

  const fs::path png = dir_.path() / "status.png";
  const ChromiumRun shot = chromium("screenshot", {"--screenshot=" + png.string(),
      "--window-size=" + std::to_string(kWidth) + "," + std::to_string(kHeight)}, std::string("#token=") + kToken);
  ASSERT_EQ(shot.status, 0) << "chromium --screenshot failed or timed out\n" << shot.err;
  ASSERT_TRUE(fs::exists(png)) << shot.err;
  // For humans: the last screenshot and its DOM stay in the build tree.
  const fs::path artifacts = binaryDir() / "test-artifacts";
  fs::create_directories(artifacts);
  fs::copy_file(png, artifacts / "status.png", fs::copy_options::overwrite_existing);
  fs::copy_file(dir_.path() / "status.html", artifacts / "status.html", fs::copy_options::overwrite_existing);

  const auto [width, height] = readPngSize(png);
  EXPECT_EQ(width, static_cast<std::uint32_t>(kWidth));
  EXPECT_EQ(height, static_cast<std::uint32_t>(kHeight));
  const PngImage image = readPng(png);
  std::set<std::uint32_t> colours;
  int badge_green = 0, lag_orange = 0, dark_text = 0;
  const auto near = [](const PngImage::Rgb& c, int r, int g, int b) {
    return std::abs(c.r - r) <= 8 && std::abs(c.g - g) <= 8 && std::abs(c.b - b) <= 8;
  };
  for (std::uint32_t y = 0; y < image.height; ++y) {
    for (std::uint32_t x = 0; x < image.width; ++x) {
      const auto c = image.at(x, y);
      colours.insert((std::uint32_t{c.r} << 16) | (std::uint32_t{c.g} << 8) | c.b);
      if (near(c, 0x22, 0xaa, 0x77)) ++badge_green;  // "running" badge, throughput line
      if (near(c, 0xcc, 0x55, 0x00)) ++lag_orange;   // lag line
      if (c.r < 80 && c.g < 80 && c.b < 80) ++dark_text;
    }
  }
  EXPECT_GT(colours.size(), 16u) << "the screenshot is nearly one colour: " << png;
  EXPECT_GT(badge_green, 200) << "no green 'running' badge in the screenshot";
  EXPECT_GT(lag_orange, 20) << "no lag chart line in the screenshot";
  EXPECT_GT(dark_text, 500) << "no text in the screenshot";
}

TEST_F(StatusPageTest, AWrongOrMissingTokenShowsAccessDenied) {
  const ChromiumRun wrong = chromium("wrong-token", {"--dump-dom"}, "#token=not-the-token");
  ASSERT_EQ(wrong.status, 0) << wrong.err;
  const std::string wrong_html = rendered(wrong.out);
  EXPECT_NE(wrong_html.find("<div id=\"error\" role=\"alert\" class=\"shown\">Access denied: the admin token in "
                            "this page's address was refused (HTTP 401)."),
            std::string::npos) << wrong.out << wrong.err;
  EXPECT_EQ(wrong_html.find("data-projection="), std::string::npos) << "no data without the token\n" << wrong.out;

  const ChromiumRun missing = chromium("no-token", {"--dump-dom"}, "");
  ASSERT_EQ(missing.status, 0) << missing.err;
  const std::string missing_html = rendered(missing.out);
  EXPECT_NE(missing_html.find("<div id=\"error\" role=\"alert\" class=\"shown\">Access denied: this endpoint "
                              "needs the admin token (HTTP 401)."),
            std::string::npos) << missing.out << missing.err;
  EXPECT_EQ(missing_html.find("data-projection="), std::string::npos) << missing.out;
}

}  // namespace
}  // namespace ultracore::testing
