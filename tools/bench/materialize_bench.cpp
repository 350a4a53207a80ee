// materialize and rebuild: a backlog in the dev broker, the engine (--role projections) as a
// subprocess, timed until every projection's stored offsets reach the topics' end offsets.
// materialize also measures, in the same run and database, the PostgreSQL ceiling (the same
// final rows written by COPY + one INSERT ... SELECT) and a per-event-commit baseline.

#include <libpq-fe.h>

#include <iostream>
#include <memory>
#include <stdexcept>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "tools/bench/bench_support.h"
#include "tools/bench/benches.h"
#include "tools/bench/workload.h"

namespace ultracore::bench {
namespace {

using nlohmann::json;

const std::vector<std::pair<std::string, std::vector<std::string>>> kProjections = {
    {"customers", {kCustomersTopic}}, {"accounts", {kAccountsTopic}}};

struct Backlog {
  std::vector<BenchEvent> events;
  std::map<TopicPartition, Watermarks> ends;
  std::size_t bytes = 0;
  double produce_s = 0;
};

Backlog loadBacklog(const Broker& broker, const MaterializeOptions& options) {
  Backlog backlog;
  std::cerr << "generating " << options.events << " events...\n";
  backlog.events = generateEvents(options.events, 20261127);
  std::cerr << "producing into the dev broker (" << options.partitions
            << " partitions per topic)...\n";
  const auto started = Clock::now();
  backlog.bytes = produceAll(broker.bootstrap(), backlog.events);
  backlog.produce_s = secondsSince(started);
  backlog.ends = watermarks(broker.bootstrap(), {{kCustomersTopic, options.partitions},
                                                 {kAccountsTopic, options.partitions}});
  std::int64_t total = 0;
  for (const auto& [tp, marks] : backlog.ends) {
    if (marks.low != 0) {
      throw std::runtime_error("the dev broker's retention dropped records of " + tp.first + "[" +
                               std::to_string(tp.second) + "] (log start " +
                               std::to_string(marks.low) + "): use more --partitions");
    }
    total += marks.high;
  }
  if (total != static_cast<std::int64_t>(backlog.events.size())) {
    throw std::runtime_error("the topics hold " + std::to_string(total) + " records, expected " +
                             std::to_string(backlog.events.size()));
  }
  std::cerr << "produced " << backlog.events.size() << " events (" << backlog.bytes / 1048576
            << " MiB of JSON) in " << backlog.produce_s << " s\n";
  return backlog;
}

struct EnginePass {
  CatchUp catch_up;
  double cpu_s = 0;
  std::int64_t maxrss_bytes = 0;  ///< the engine's VmHWM (sampled, and read once before stop)
  double events_per_s = 0;        ///< from the first committed batch to caught up
  double wall_events_per_s = 0;   ///< from the engine's start (group join included)
};

EnginePass runEnginePass(const TempDir& dir, const std::filesystem::path& manifest,
                         const std::string& postgres_url, const Backlog& backlog,
                         const std::string& log_name, int timeout_s) {
  const auto started = Clock::now();
  auto engine = startEngine(dir, manifest, log_name, {"--role", "projections"});
  EnginePass pass;
  pass.catch_up = waitCaughtUp(postgres_url, *engine, started, kProjections, backlog.ends,
                               std::chrono::seconds(timeout_s));
  // VmHWM is a high-water mark: one last read before the stop covers the whole catch-up.
  pass.maxrss_bytes = std::max(pass.catch_up.peak_rss_bytes, engine->peakRssBytes());
  const int code = engine->stop();
  if (code != 0) std::cerr << "warning: engine exited with " << code << "\n";
  const rusage& usage = engine->usage();
  pass.cpu_s = static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
               static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
  // Not rusage's ru_maxrss: Linux carries the high-water mark across execve, so a child
  // forked from this bench reports the bench's own RSS at fork time (its generated backlog:
  // 300-500 MiB for 1M events) even when the engine never comes close.
  const double n = static_cast<double>(backlog.events.size());
  pass.events_per_s = n / (pass.catch_up.caught_up_s - pass.catch_up.first_progress_s);
  pass.wall_events_per_s = n / pass.catch_up.caught_up_s;
  return pass;
}

// ---- the PostgreSQL ceiling: COPY into temp tables, one INSERT ... SELECT each ----------

void copyText(std::string& out, const std::string& value) {
  for (char c : value) {
    if (c == '\\' || c == '\t' || c == '\n' || c == '\r') out.push_back('\\');
    out.push_back(c);
  }
}

struct CopyRows {
  std::string data;
  std::size_t rows = 0;
  void add(std::initializer_list<std::string> values) {
    bool first = true;
    for (const auto& value : values) {
      if (!first) data.push_back('\t');
      first = false;
      copyText(data, value);
    }
    data.push_back('\n');
    ++rows;
  }
};

void pqCheck(PGresult* result, ExecStatusType expected, const std::string& what) {
  const bool ok = PQresultStatus(result) == expected;
  const std::string error = ok ? "" : PQresultErrorMessage(result);
  PQclear(result);
  if (!ok) throw std::runtime_error(what + ": " + error);
}

void copyIn(PGconn* conn, const std::string& copy_sql, const std::string& data) {
  pqCheck(PQexec(conn, copy_sql.c_str()), PGRES_COPY_IN, copy_sql);
  constexpr std::size_t kChunk = 1 << 20;
  for (std::size_t pos = 0; pos < data.size(); pos += kChunk) {
    const auto size = static_cast<int>(std::min(kChunk, data.size() - pos));
    if (PQputCopyData(conn, data.data() + pos, size) != 1) {
      throw std::runtime_error(std::string("COPY: ") + PQerrorMessage(conn));
    }
  }
  if (PQputCopyEnd(conn, nullptr) != 1) throw std::runtime_error(PQerrorMessage(conn));
  pqCheck(PQgetResult(conn), PGRES_COMMAND_OK, copy_sql);
  while (PGresult* rest = PQgetResult(conn)) PQclear(rest);
}

struct Ceiling {
  std::size_t rows = 0;
  double seconds = 0;
};

Ceiling runCeiling(const std::string& url, const Backlog& backlog) {
  {
    pqxx::connection connection(url);
    pqxx::work txn(connection);
    txn.exec(
        "CREATE SCHEMA bench_ceiling;"
        "CREATE TABLE bench_ceiling.customers (LIKE customers.customers INCLUDING ALL);"
        "CREATE TABLE bench_ceiling.accounts (LIKE accounts.accounts INCLUDING ALL);"
        "CREATE TABLE bench_ceiling.processed_events (LIKE public.processed_events INCLUDING ALL)");
    txn.commit();
  }
  // The rows are prepared before the clock starts: the ceiling is PostgreSQL's, not ours.
  const FinalState state = foldEvents(backlog.events);
  CopyRows customers, accounts, processed;
  for (const auto& [id, c] : state.customers) {
    customers.add({id, "DEFAULT", c.first_name, c.last_name, c.email, c.phone, c.date_of_birth,
                   "active", std::to_string(c.version), c.created_at, c.updated_at});
  }
  for (const auto& [id, a] : state.accounts) {
    accounts.add({id, "DEFAULT", a.customer_id, a.account_type, a.currency,
                  a.moved ? formatCents(a.balance_cents) : "0", a.closed ? "closed" : "open",
                  std::to_string(a.version), a.opened_at, a.updated_at});
  }
  for (const BenchEvent& event : backlog.events) {
    const bool customer = isCustomerEvent(event.type);
    processed.add({customer ? "customers" : "accounts", event.event_id, event.aggregate_id,
                   eventTypeName(event.type), customer ? kCustomersTopic : kAccountsTopic,
                   std::to_string(event.partition), std::to_string(event.offset)});
  }
  PGconn* conn = PQconnectdb(url.c_str());
  if (PQstatus(conn) != CONNECTION_OK) {
    const std::string error = PQerrorMessage(conn);
    PQfinish(conn);
    throw std::runtime_error("ceiling: " + error);
  }
  Ceiling ceiling;
  const auto started = Clock::now();
  try {
    pqCheck(PQexec(conn,
                   "BEGIN;"
                   "CREATE TEMP TABLE in_customers (LIKE customers.customers INCLUDING DEFAULTS) "
                   "ON COMMIT DROP;"
                   "CREATE TEMP TABLE in_accounts (LIKE accounts.accounts INCLUDING DEFAULTS) "
                   "ON COMMIT DROP;"
                   "CREATE TEMP TABLE in_processed (LIKE public.processed_events INCLUDING "
                   "DEFAULTS) ON COMMIT DROP"),
            PGRES_COMMAND_OK, "ceiling setup");
    copyIn(conn, "COPY in_customers FROM STDIN", customers.data);
    copyIn(conn, "COPY in_accounts FROM STDIN", accounts.data);
    copyIn(conn,
           "COPY in_processed (projection, event_id, aggregate_id, event_type, topic, partition, "
           "\"offset\") FROM STDIN",
           processed.data);
    pqCheck(PQexec(conn,
                   "INSERT INTO bench_ceiling.customers SELECT * FROM in_customers "
                   "ON CONFLICT (customer_id) DO NOTHING;"
                   "INSERT INTO bench_ceiling.accounts SELECT * FROM in_accounts "
                   "ON CONFLICT (account_id) DO NOTHING;"
                   "INSERT INTO bench_ceiling.processed_events SELECT * FROM in_processed "
                   "ON CONFLICT (projection, event_id) DO NOTHING;"
                   "COMMIT"),
            PGRES_COMMAND_OK, "ceiling merge");
  } catch (...) {
    PQfinish(conn);
    throw;
  }
  ceiling.seconds = secondsSince(started);
  PQfinish(conn);
  ceiling.rows = customers.rows + accounts.rows + processed.rows;
  return ceiling;
}

/// The engine's read model equals the folded stream (the ceiling's tables), row for row.
bool readModelMatches(const std::string& url, std::size_t events) {
  pqxx::connection connection(url);
  pqxx::nontransaction txn(connection);
  auto checksum = [&](const std::string& table) {
    return txn
        .exec("SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM " + table +
              " AS t")[0][0]
        .as<std::string>();
  };
  const bool same = checksum("customers.customers") == checksum("bench_ceiling.customers") &&
                    checksum("accounts.accounts") == checksum("bench_ceiling.accounts");
  const auto processed = txn.exec("SELECT count(*) FROM processed_events")[0][0].as<std::size_t>();
  return same && processed == events;
}

// ---- the baseline: one transaction per event -------------------------------------------

double runBaseline(const std::string& url, const Backlog& backlog, std::size_t sample) {
  pqxx::connection connection(url);
  {
    pqxx::work txn(connection);
    txn.exec(
        "CREATE SCHEMA bench_baseline;"
        "CREATE TABLE bench_baseline.customers (LIKE customers.customers INCLUDING ALL);"
        "CREATE TABLE bench_baseline.accounts (LIKE accounts.accounts INCLUDING ALL);"
        "CREATE TABLE bench_baseline.processed_events (LIKE public.processed_events INCLUDING ALL);"
        "CREATE TABLE bench_baseline.offsets (LIKE public.ultracore_offsets INCLUDING ALL)");
    txn.commit();
  }
  connection.prepare("processed",
                     "INSERT INTO bench_baseline.processed_events (projection, event_id, "
                     "aggregate_id, event_type, topic, partition, \"offset\") VALUES ($1, $2, $3, "
                     "$4, $5, $6, $7) ON CONFLICT (projection, event_id) DO NOTHING RETURNING 1");
  connection.prepare("offset",
                     "INSERT INTO bench_baseline.offsets (projection, topic, partition, "
                     "next_offset) VALUES ($1, $2, $3, $4) ON CONFLICT (projection, topic, "
                     "partition) DO UPDATE SET next_offset = EXCLUDED.next_offset, "
                     "updated_at = now()");
  connection.prepare("customer_created",
                     "INSERT INTO bench_baseline.customers (customer_id, tenant_id, first_name, "
                     "last_name, email, phone, date_of_birth, status, version, created_at, "
                     "updated_at) VALUES ($1, 'DEFAULT', $2, $3, $4, $5, $6::date, 'active', "
                     "$7::bigint, $8::timestamptz, $8::timestamptz)");
  connection.prepare("customer_updated",
                     "UPDATE bench_baseline.customers SET email = $2, phone = $3, "
                     "version = $4::bigint, updated_at = $5::timestamptz WHERE customer_id = $1");
  connection.prepare("account_opened",
                     "INSERT INTO bench_baseline.accounts (account_id, tenant_id, customer_id, "
                     "account_type, currency, balance, status, version, opened_at, updated_at) "
                     "VALUES ($1, 'DEFAULT', $2, $3, $4, 0, 'open', $5::bigint, $6::timestamptz, "
                     "$6::timestamptz)");
  connection.prepare("account_moved",
                     "UPDATE bench_baseline.accounts SET balance = balance + $2::numeric, "
                     "version = $3::bigint, updated_at = $4::timestamptz WHERE account_id = $1");
  connection.prepare("account_closed",
                     "UPDATE bench_baseline.accounts SET status = 'closed', version = $2::bigint, "
                     "updated_at = $3::timestamptz WHERE account_id = $1");
  const std::size_t count = std::min(sample, backlog.events.size());
  const auto started = Clock::now();
  for (std::size_t i = 0; i < count; ++i) {
    const BenchEvent& e = backlog.events[i];
    const bool customer = isCustomerEvent(e.type);
    const std::string projection = customer ? "customers" : "accounts";
    const std::string topic = customer ? kCustomersTopic : kAccountsTopic;
    pqxx::work txn(connection);
    const auto fresh = txn.exec_prepared("processed", projection, e.event_id, e.aggregate_id,
                                         eventTypeName(e.type), topic, e.partition, e.offset);
    if (!fresh.empty()) {
      switch (e.type) {
        case EventType::kCustomerCreated:
          txn.exec_prepared("customer_created", e.aggregate_id, e.first_name, e.last_name, e.email,
                            e.phone, e.date_of_birth, e.version, e.occurred_at);
          break;
        case EventType::kCustomerUpdated:
          txn.exec_prepared("customer_updated", e.aggregate_id, e.email, e.phone, e.version,
                            e.occurred_at);
          break;
        case EventType::kAccountOpened:
          txn.exec_prepared("account_opened", e.aggregate_id, e.customer_id, e.account_type,
                            e.currency, e.version, e.occurred_at);
          break;
        case EventType::kFundsDeposited:
        case EventType::kFundsWithdrawn:
          txn.exec_prepared(
              "account_moved", e.aggregate_id,
              formatCents(e.type == EventType::kFundsDeposited ? e.amount_cents : -e.amount_cents),
              e.version, e.occurred_at);
          break;
        case EventType::kAccountClosed:
          txn.exec_prepared("account_closed", e.aggregate_id, e.version, e.occurred_at);
          break;
      }
    }
    txn.exec_prepared("offset", projection, topic, e.partition, e.offset + 1);
    txn.commit();
  }
  return static_cast<double>(count) / secondsSince(started);
}

std::vector<std::string> kafkaLines(const std::vector<std::string>& properties) {
  std::vector<std::string> lines;
  for (const auto& property : properties) {
    const auto eq = property.find('=');
    if (eq == std::string::npos) throw std::runtime_error("--kafka wants key=value: " + property);
    lines.push_back(property.substr(0, eq) + ": " + property.substr(eq + 1));
  }
  return lines;
}

std::string mib(std::int64_t bytes) {
  return fmtNumber(static_cast<double>(bytes) / 1048576.0, 1) + " MiB";
}

}  // namespace

int runMaterialize(const MaterializeOptions& options) {
  TempDir dir;
  BenchDatabase database;
  Broker broker(dir, {{kCustomersTopic, options.partitions}, {kAccountsTopic, options.partitions}});
  const Backlog backlog = loadBacklog(broker, options);
  const auto manifest = writeManifest(
      dir, {broker.bootstrap(), database.url(), "127.0.0.1:0", options.max_events,
            options.max_wait_ms, options.workers, kafkaLines(options.kafka),
            options.synchronous_commit});
  std::cerr << "engine catching up...\n";
  const EnginePass engine = runEnginePass(dir, manifest, database.url(), backlog, "engine.log",
                                          options.timeout_s);
  broker.stop();
  std::cerr << "PostgreSQL ceiling (COPY + one merge)...\n";
  const Ceiling ceiling = runCeiling(database.url(), backlog);
  const bool matches = readModelMatches(database.url(), backlog.events.size());
  std::cerr << "baseline (one transaction per event, " << options.baseline_sample
            << " events)...\n";
  const double baseline = runBaseline(database.url(), backlog, options.baseline_sample);

  const double n = static_cast<double>(backlog.events.size());
  const double ceiling_rows_per_s = static_cast<double>(ceiling.rows) / ceiling.seconds;
  const double ceiling_events_per_s = n / ceiling.seconds;
  const std::size_t sample = std::min(options.baseline_sample, backlog.events.size());
  printTable(
      "materialize: " + fmtNumber(n) + " events (" + std::to_string(options.partitions) +
          " partitions per topic, batch " + std::to_string(options.max_events) + "/" +
          std::to_string(options.max_wait_ms) + " ms, workers " + std::to_string(options.workers) +
          (options.synchronous_commit ? ", synchronous_commit" : "") + "), commit " +
          gitCommit().substr(0, 12),
      {{"engine", fmtNumber(engine.events_per_s) + " events/s",
        "first committed batch -> caught up: " +
            fmtNumber(engine.catch_up.caught_up_s - engine.catch_up.first_progress_s, 1) + " s"},
       {"engine incl. start-up", fmtNumber(engine.wall_events_per_s) + " events/s",
        "process start -> caught up: " + fmtNumber(engine.catch_up.caught_up_s, 1) +
            " s (group join " + fmtNumber(engine.catch_up.first_progress_s, 1) + " s)"},
       {"PostgreSQL ceiling", fmtNumber(ceiling_rows_per_s) + " rows/s",
        fmtNumber(static_cast<double>(ceiling.rows)) + " rows (read models + processed_events) by "
        "COPY + one INSERT..SELECT each, " + fmtNumber(ceiling.seconds, 1) + " s = " +
            fmtNumber(ceiling_events_per_s) + " events/s"},
       {"baseline", fmtNumber(baseline) + " events/s",
        "one transaction per event (processed_events + row + offset), sample of first " +
            fmtNumber(static_cast<double>(sample)) + " events"},
       {"engine / ceiling", fmtNumber(engine.events_per_s / ceiling_events_per_s * 100, 1) + " %",
        "events/s vs the ceiling's events/s (same final rows); target >= 60 %"},
       {"engine / baseline", fmtNumber(engine.events_per_s / baseline, 1) + " x", "target >= 20 x"},
       {"engine peak RSS", mib(engine.maxrss_bytes), "VmHWM of the engine process; target < 256 MiB"},
       {"engine CPU", fmtNumber(engine.cpu_s, 1) + " s",
        "user+sys (rusage), whole process life"},
       {"read model check", matches ? "ok" : "MISMATCH",
        "engine tables == folded stream; processed_events == events"},
       {"load", fmtNumber(static_cast<double>(backlog.bytes) / 1048576.0, 1) + " MiB JSON",
        "produced in " + fmtNumber(backlog.produce_s, 1) + " s (lz4 batches)"}});
  writeJson(options.json_path,
            json{{"bench", "materialize"},
                 {"commit", gitCommit()},
                 {"events", backlog.events.size()},
                 {"partitions_per_topic", options.partitions},
                 {"batch_max_events", options.max_events},
                 {"batch_max_wait_ms", options.max_wait_ms},
                 {"workers", options.workers},
                 {"synchronous_commit", options.synchronous_commit},
                 {"kafka_overrides", options.kafka},
                 {"engine_events_per_s", engine.events_per_s},
                 {"engine_wall_events_per_s", engine.wall_events_per_s},
                 {"engine_catch_up_s", engine.catch_up.caught_up_s},
                 {"engine_first_batch_s", engine.catch_up.first_progress_s},
                 {"engine_peak_rss_bytes", engine.maxrss_bytes},
                 {"engine_cpu_s", engine.cpu_s},
                 {"ceiling_rows", ceiling.rows},
                 {"ceiling_s", ceiling.seconds},
                 {"ceiling_rows_per_s", ceiling_rows_per_s},
                 {"ceiling_events_per_s", ceiling_events_per_s},
                 {"baseline_events_per_s", baseline},
                 {"baseline_sample_events", sample},
                 {"engine_vs_ceiling", engine.events_per_s / ceiling_events_per_s},
                 {"engine_vs_baseline", engine.events_per_s / baseline},
                 {"read_model_matches", matches}});
  return matches ? 0 : 1;
}

int runRebuild(const MaterializeOptions& options) {
  TempDir dir;
  BenchDatabase database;
  Broker broker(dir, {{kCustomersTopic, options.partitions}, {kAccountsTopic, options.partitions}});
  const Backlog backlog = loadBacklog(broker, options);
  const auto manifest = writeManifest(
      dir, {broker.bootstrap(), database.url(), "127.0.0.1:0", options.max_events,
            options.max_wait_ms, options.workers, kafkaLines(options.kafka)});
  std::cerr << "first pass (materialize)...\n";
  const EnginePass first = runEnginePass(dir, manifest, database.url(), backlog, "engine-1.log",
                                         options.timeout_s);
  // README's manual replay, for both projections, with the engine stopped.
  {
    pqxx::connection connection(database.url());
    pqxx::work txn(connection);
    txn.exec("TRUNCATE customers.customers; TRUNCATE accounts.accounts;"
             "DELETE FROM processed_events WHERE projection IN ('customers', 'accounts');"
             "UPDATE ultracore_offsets SET next_offset = -2 "
             "WHERE projection IN ('customers', 'accounts')");
    txn.commit();
  }
  std::cerr << "rebuild...\n";
  const EnginePass rebuild = runEnginePass(dir, manifest, database.url(), backlog, "engine-2.log",
                                           options.timeout_s);
  const double n = static_cast<double>(backlog.events.size());
  printTable(
      "rebuild: " + fmtNumber(n) + " events (" + std::to_string(options.partitions) +
          " partitions per topic), commit " + gitCommit().substr(0, 12),
      {{"rebuild", fmtNumber(rebuild.events_per_s) + " events/s",
        "first committed batch -> caught up: " +
            fmtNumber(rebuild.catch_up.caught_up_s - rebuild.catch_up.first_progress_s, 1) + " s"},
       {"rebuild incl. start-up", fmtNumber(rebuild.wall_events_per_s) + " events/s",
        "process start -> caught up: " + fmtNumber(rebuild.catch_up.caught_up_s, 1) + " s"},
       {"materialize (first pass)", fmtNumber(first.events_per_s) + " events/s",
        "same run, same log, empty tables: " +
            fmtNumber(first.catch_up.caught_up_s - first.catch_up.first_progress_s, 1) + " s"},
       {"rebuild / materialize", fmtNumber(rebuild.events_per_s / first.events_per_s * 100, 1) + " %",
        "the rebuild runs over the first pass's deleted rows (no VACUUM in between)"},
       {"rebuild peak RSS", mib(rebuild.maxrss_bytes), ""},
       {"rebuild CPU", fmtNumber(rebuild.cpu_s, 1) + " s", "user+sys"}});
  writeJson(options.json_path, json{{"bench", "rebuild"},
                                    {"commit", gitCommit()},
                                    {"events", backlog.events.size()},
                                    {"partitions_per_topic", options.partitions},
                                    {"rebuild_events_per_s", rebuild.events_per_s},
                                    {"rebuild_wall_events_per_s", rebuild.wall_events_per_s},
                                    {"rebuild_catch_up_s", rebuild.catch_up.caught_up_s},
                                    {"rebuild_peak_rss_bytes", rebuild.maxrss_bytes},
                                    {"rebuild_cpu_s", rebuild.cpu_s},
                                    {"materialize_events_per_s", first.events_per_s},
                                    {"materialize_catch_up_s", first.catch_up.caught_up_s}});
  return 0;
}

}  // namespace ultracore::bench
