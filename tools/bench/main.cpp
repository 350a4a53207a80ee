// ultracore-bench: materialize | latency | rebuild (docs/PERFORMANCE.md).
// Needs ULTRACORE_PG (a server where it may create and drop a scratch database) and the
// build's bin/ultracore-engine, bin/ultracore-devbroker and plugins; --kafka-broker real also
// needs Java and the Kafka jars (tools/kafka/install).

#include <iostream>

#include <CLI/CLI.hpp>

#include "tools/bench/benches.h"

namespace {

void addBrokerOptions(CLI::App* sub, ultracore::bench::BrokerChoice& broker) {
  auto* kind = sub->add_option("--kafka-broker", broker.kind,
                               "mock: the dev broker (librdkafka's mock cluster, default); real: "
                               "Apache Kafka, one KRaft node started by tools/kafka/cluster in "
                               "the scratch directory and stopped at the end")
                   ->check(CLI::IsMember({"mock", "real"}));
  sub->add_option("--bootstrap", broker.bootstrap,
                     "HOST:PORT[,...] of an existing Kafka cluster: the bench creates its topics "
                     "there (they must not exist) and deletes only those")
      ->excludes(kind);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace ultracore::bench;
  CLI::App app{"UltraCore benchmarks: each prints a table and, with --json, writes it as JSON"};
  app.require_subcommand(1);

  MaterializeOptions materialize;
  bool materialize_quick = false;
  auto* m = app.add_subcommand("materialize",
                               "catch-up throughput of a backlog vs the PostgreSQL ceiling and a "
                               "per-event-commit baseline");
  MaterializeOptions rebuild;
  bool rebuild_quick = false;
  auto* r = app.add_subcommand("rebuild",
                               "live rebuild of each projection from the full log "
                               "(admin POST .../rebuild until the switch), beside "
                               "the first materialization");
  for (auto [sub, options, quick] : {std::tuple{m, &materialize, &materialize_quick},
                                     std::tuple{r, &rebuild, &rebuild_quick}}) {
    sub->add_option("--events", options->events, "events in the backlog (default 1,000,000)");
    sub->add_option("--partitions", options->partitions, "partitions per topic (default 48)");
    sub->add_option("--batch-max-events", options->max_events, "batch.max_events (default 500)");
    sub->add_option("--batch-max-wait-ms", options->max_wait_ms, "batch.max_wait_ms (default 20)");
    sub->add_option("--workers", options->workers,
                    "workers: of both projections, live runners per projection (default 2, as "
                    "shipped)")
        ->check(CLI::Range(1, 64));
    sub->add_option("--timeout", options->timeout_s, "give up after this many seconds");
    sub->add_option("--json", options->json_path, "also write the results here");
    sub->add_option("--kafka", options->kafka,
                    "extra consumer property for the engine's manifest, key=value (repeatable)");
    addBrokerOptions(sub, options->broker);
    sub->add_flag("--quick", *quick, "50,000 events (under a minute)");
    sub->add_flag("--synchronous-commit", options->synchronous_commit,
                  "batch.synchronous_commit: true (wait for the WAL flush; default as shipped: "
                  "false)");
  }
  m->add_option("--baseline-events", materialize.baseline_sample,
                "events applied one transaction each for the baseline (default 20,000)");
  m->add_flag("--engine-both-ways", materialize.engine_both_ways,
              "also time the engine with batch.synchronous_commit flipped, beside the baselines "
              "with it on and off");
  m->add_option("--history", materialize.history,
                "also time a second pass over N earlier processed_events rows per projection "
                "(and N/10 customers and accounts), loaded by COPY: a year of history");

  LatencyOptions latency;
  bool latency_quick = false;
  auto* l = app.add_subcommand("latency", "command and read-your-write latency at fixed rates");
  l->add_option("--rates", latency.rates, "commands per second (default 50 200)");
  l->add_option("--duration", latency.duration_s, "seconds per rate (default 20)");
  l->add_option("--idle", latency.idle_s,
                "seconds without requests after the warm-up, to measure the idle CPU of the "
                "engine and the broker (default 10)")
      ->check(CLI::Range(0, 3600));
  l->add_option("--batch-max-wait-ms", latency.max_wait_ms, "batch.max_wait_ms (default 20)");
  l->add_option("--workers", latency.workers, "client connections (default 16)");
  l->add_option("--projection-workers", latency.projection_workers,
                "workers: of both projections (default 2, as shipped)")
      ->check(CLI::Range(1, 64));
  l->add_option("--json", latency.json_path, "also write the results here");
  l->add_option("--samples", latency.samples_path,
                "write every request as CSV: rate, scheduled start (s), command, read-your-write "
                "and GET ms (to find when the tail happens)");
  l->add_option("--kafka", latency.kafka,
                "librdkafka property for the engine's manifest, key=value (repeatable; e.g. "
                "fetch.wait.max.ms=100)");
  l->add_option("--account-rate", latency.account_rate,
                "deposits per second for the spread and hot accounts cases (default 200; 0: skip "
                "them)");
  l->add_option("--spread-accounts", latency.spread_accounts,
                "accounts the spread case deposits into (default 400)")
      ->check(CLI::Range(1, 100000));
  l->add_option("--hot-accounts", latency.hot_accounts,
                "accounts the hot case concentrates its deposits on (default 4)")
      ->check(CLI::Range(1, 100000));
  addBrokerOptions(l, latency.broker);
  l->add_flag("--quick", latency_quick, "8 s per rate");
  l->add_flag("--synchronous-commit", latency.synchronous_commit,
              "batch.synchronous_commit: true (wait for the WAL flush; default as shipped: false)");

  CLI11_PARSE(app, argc, argv);
  try {
    if (m->parsed()) {
      if (materialize_quick && m->count("--events") == 0) materialize.events = 50000;
      if (materialize_quick && m->count("--baseline-events") == 0) materialize.baseline_sample = 5000;
      return runMaterialize(materialize);
    }
    if (r->parsed()) {
      if (rebuild_quick && r->count("--events") == 0) rebuild.events = 50000;
      return runRebuild(rebuild);
    }
    if (latency_quick && l->count("--duration") == 0) latency.duration_s = 8;
    if (latency_quick && l->count("--idle") == 0) latency.idle_s = 3;
    return runLatency(latency);
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
