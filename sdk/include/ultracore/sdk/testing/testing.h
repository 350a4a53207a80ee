#pragma once
/// @file
/// The plugin test kit: everything a projection test includes.
///
///   #include <ultracore/sdk/testing/testing.h>
///   namespace kit = ultracore::sdk::testing;
///
///   class MyTest : public kit::ProjectionTest {};   // skips without ULTRACORE_TEST_PG/_PG
///   TEST_F(MyTest, Works) {
///     kit::EventLog log;
///     log.add("my.topic", "evt-1", "ThingCreated", "T-1", {{"name", "x"}});
///     auto source = kit::ProjectionSource::fromPlugin(MY_PLUGIN_PATH, "things");
///     kit::ProjectionRun run(databaseUrl(), source);
///     ASSERT_TRUE(kit::succeeded(run.apply(log.events())));
///     EXPECT_EQ(run.value("SELECT name FROM {schema}.things WHERE id = 'T-1'"), "x");
///     EXPECT_TRUE(kit::buildsDeterministically(databaseUrl(), source, log.events()));
///   }
///
/// Test-only: links libpqxx and GoogleTest (CMake target UltraCore::testing). Plugins
/// themselves never include it.
#include "ultracore/sdk/testing/determinism.h"
#include "ultracore/sdk/testing/events.h"
#include "ultracore/sdk/testing/pg_writer.h"
#include "ultracore/sdk/testing/projection_run.h"
