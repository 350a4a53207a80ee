#pragma once
/// @file
/// Test kit, part 4: GoogleTest helpers. A fixture that skips (with a clear message) when no
/// test database is configured, a Status matcher, and the determinism check: the read model
/// must depend only on the events, never on time, randomness, batch boundaries, duplicates
/// or restarts (projection.h states this contract; the engine retries and splits batches).

#include <algorithm>
#include <iterator>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "ultracore/sdk/event.h"
#include "ultracore/sdk/status.h"
#include "ultracore/sdk/testing/projection_run.h"

namespace ultracore::sdk::testing {

/// EXPECT_TRUE(succeeded(status)) prints the status message on failure.
inline ::testing::AssertionResult succeeded(const Status& status) {
  if (status.isOk()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "status " << static_cast<int>(status.code()) << ": " << status.message();
}

/// Base fixture for projection tests: skips the test when no database is configured;
/// databaseUrl() is the one to hand to ProjectionRun.
class ProjectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto url = testDatabaseUrl();
    if (!url) GTEST_SKIP() << kNoTestDatabaseMessage;
    url_ = *url;
  }
  const std::string& databaseUrl() const { return url_; }

 private:
  std::string url_;
};

struct DeterminismOptions {
  ProjectionRun::Options run;                      ///< projection name, config
  std::size_t reference_batch_size = 500;          ///< the first two builds
  std::vector<std::size_t> other_batch_sizes = {1, 7};  ///< a build per size
  bool duplicates = true;  ///< a build with every event delivered again, and a restart
  std::size_t max_reported_rows = 5;
};

namespace detail {

inline std::string describeDifference(const SchemaSnapshot& expected, const SchemaSnapshot& actual,
                                      std::size_t max_rows) {
  std::ostringstream out;
  for (const auto& [table, want] : expected) {
    auto it = actual.find(table);
    if (it == actual.end()) {
      out << "\n  table " << table << " is missing";
      continue;
    }
    const TableSnapshot& got = it->second;
    if (want.columns != got.columns) out << "\n  table " << table << ": columns differ";
    std::vector<std::string> only_want, only_got;
    std::set_difference(want.rows.begin(), want.rows.end(), got.rows.begin(), got.rows.end(),
                        std::back_inserter(only_want));
    std::set_difference(got.rows.begin(), got.rows.end(), want.rows.begin(), want.rows.end(),
                        std::back_inserter(only_got));
    if (only_want.empty() && only_got.empty()) continue;
    out << "\n  table " << table << ": " << want.rows.size() << " vs " << got.rows.size()
        << " rows";
    for (std::size_t i = 0; i < std::min(max_rows, only_want.size()); ++i) {
      out << "\n    - " << only_want[i];
    }
    for (std::size_t i = 0; i < std::min(max_rows, only_got.size()); ++i) {
      out << "\n    + " << only_got[i];
    }
  }
  for (const auto& [table, ignored] : actual) {
    if (expected.count(table) == 0) out << "\n  table " << table << " is unexpected";
  }
  return out.str();
}

}  // namespace detail

/// Builds the model from scratch several times and compares every table of the schema with
/// the first build: (1) again with the same batches (catches now(), random(), sequences,
/// anything that is not a function of the events), (2) once per other batch size (catches
/// dependence on batch boundaries: the engine may split a batch to isolate a poison event),
/// (3) with every event delivered twice, some duplicates inside a batch and some in later
/// batches, and a restart (new projection instance + setupSchema again) half-way (catches
/// in-memory state and non-idempotent DDL). Duplicates are dropped by event_id before
/// apply(), as the engine does. Fails with the differing rows ("-" first build, "+" other).
inline ::testing::AssertionResult buildsDeterministically(const std::string& url,
                                                          const ProjectionSource& source,
                                                          const std::vector<Event>& events,
                                                          const DeterminismOptions& options = {}) {
  auto build = [&](const std::vector<Event>& input, std::size_t batch_size, bool restart,
                   SchemaSnapshot& out) -> Status {
    ProjectionRun run(url, source, options.run);
    if (restart) {
      const std::size_t half = input.size() / 2;
      std::span<const Event> all(input);
      if (Status s = run.apply(all.first(half), batch_size); !s) return s;
      run.restart();
      if (Status s = run.apply(all.subspan(half), batch_size); !s) return s;
    } else if (Status s = run.apply(input, batch_size); !s) {
      return s;
    }
    out = run.snapshot();
    return Status::ok();
  };

  struct Variant {
    std::string name;
    std::vector<Event> events;
    std::size_t batch_size;
    bool restart;
  };
  std::vector<Variant> variants;
  variants.push_back({"a second build from scratch", events, options.reference_batch_size, false});
  for (std::size_t size : options.other_batch_sizes) {
    variants.push_back({"batches of " + std::to_string(size), events, size, false});
  }
  if (options.duplicates) {
    // e0 e1 e0 e2 e1 e3 e2 ... then the whole log again: first occurrences keep log order.
    std::vector<Event> doubled;
    for (std::size_t i = 0; i < events.size(); ++i) {
      doubled.push_back(events[i]);
      if (i > 0) doubled.push_back(events[i - 1]);
    }
    doubled.insert(doubled.end(), events.begin(), events.end());
    variants.push_back({"every event delivered again (batches of 3) with a restart",
                        std::move(doubled), 3, true});
  }

  SchemaSnapshot reference;
  try {
    if (Status s = build(events, options.reference_batch_size, false, reference); !s) {
      return ::testing::AssertionFailure() << "the first build failed: " << s.message();
    }
    bool any_rows = false;
    for (const auto& [table, snap] : reference) any_rows = any_rows || !snap.rows.empty();
    if (!any_rows) {
      return ::testing::AssertionFailure()
             << "the first build wrote no rows: nothing to compare (are the events right?)";
    }
    for (const Variant& variant : variants) {
      SchemaSnapshot other;
      if (Status s = build(variant.events, variant.batch_size, variant.restart, other); !s) {
        return ::testing::AssertionFailure()
               << "not deterministic: the build with " << variant.name
               << " failed: " << s.message();
      }
      if (other != reference) {
        return ::testing::AssertionFailure()
               << "not deterministic: the build with " << variant.name
               << " differs from the first build:"
               << detail::describeDifference(reference, other, options.max_reported_rows);
      }
    }
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "determinism check: " << e.what();
  }
  return ::testing::AssertionSuccess()
         << "deterministic over " << variants.size() + 1 << " builds";
}

}  // namespace ultracore::sdk::testing
