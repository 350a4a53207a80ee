// The HeadlessBrowser driver (tests/support/browser.h) in headless Chromium, on a page of its
// own (a data: URL, no server): typing fires input events, a mouse click reaches the button,
// confirm() dialogs are answered as set, a thrown script error surfaces, waitFor awaits a
// condition set later by a timer, and the screenshot is a PNG of the viewport's size.

#include "browser.h"

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>

#include <gtest/gtest.h>

namespace ultracore::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr char kPage[] =
    "data:text/html,<!DOCTYPE html><html><body style='margin:0'>"
    "<input id=name><span id=echo></span>"
    "<button id=go style='position:absolute;top:600px;left:40px'>Go</button>"
    "<div id=out></div><script>"
    "document.getElementById('name').addEventListener('input', e => "
    "  document.getElementById('echo').textContent = e.target.value.toUpperCase());"
    "document.getElementById('go').addEventListener('click', () => {"
    "  const ok = confirm('Really?');"
    "  document.getElementById('out').textContent = (ok ? 'yes ' : 'no ') + document.getElementById('name').value;"
    "  setTimeout(() => document.body.dataset.later = '1', 300); });"
    "</script></body></html>";

std::uint32_t bigEndian(const std::string& bytes, std::size_t at) {
  std::uint32_t v = 0;
  for (std::size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(bytes[at + i]);
  return v;
}

TEST(HeadlessBrowserTest, TypesClicksAnswersDialogsAndTakesScreenshots) {
  HeadlessBrowser browser(HeadlessBrowser::Options{800, 700, 30s});
  browser.navigate(kPage);
  browser.type("#name", "ada lovelace");
  EXPECT_EQ(browser.evaluate("document.getElementById('echo').textContent"), "ADA LOVELACE");

  browser.click("#go");
  ASSERT_TRUE(browser.waitFor("document.getElementById('out').textContent !== ''", 5s));
  EXPECT_EQ(browser.evaluate("document.getElementById('out').textContent"), "yes ada lovelace");
  ASSERT_EQ(browser.dialogs().size(), 1u);
  EXPECT_EQ(browser.dialogs()[0], "Really?");
  EXPECT_TRUE(browser.waitFor("document.body.dataset.later === '1'", 5s));

  browser.setDialogAnswer(false);
  browser.type("#name", "x");
  browser.press("Tab");
  browser.click("#go");
  ASSERT_TRUE(browser.waitFor("document.getElementById('out').textContent === 'no x'", 5s))
      << browser.evaluate("document.getElementById('out').textContent");

  EXPECT_EQ(browser.evaluate("Promise.resolve(6 * 7)"), 42);
  EXPECT_TRUE(browser.evaluate("undefined").is_null());
  EXPECT_THROW(browser.evaluate("(() => { throw new Error('boom'); })()"), BrowserError);
  EXPECT_THROW(browser.click("#missing"), BrowserError);
  EXPECT_FALSE(browser.waitFor("window.neverSet === true", 200ms));

  const fs::path png = fs::temp_directory_path() / "ultracore-browser-driver-test.png";
  browser.screenshot(png);
  std::ifstream in(png, std::ios::binary);
  const std::string bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  fs::remove(png);
  ASSERT_GT(bytes.size(), 24u);
  EXPECT_EQ(bytes.substr(1, 3), "PNG");
  EXPECT_EQ(bigEndian(bytes, 16), 800u);  // IHDR width
  EXPECT_EQ(bigEndian(bytes, 20), 700u);  // IHDR height
}

}  // namespace
}  // namespace ultracore::testing
