// materialize and rebuild: a backlog in the bench's Kafka (the dev broker or Apache Kafka), the
// engine (--role projections) as a subprocess, timed until every projection's stored offsets reach the topics' end offsets.
// materialize also measures, in the same run and database, the PostgreSQL ceiling (the same
// final rows written by COPY + one INSERT ... SELECT) and a per-event-commit baseline.
// rebuild keeps that engine running and times the live rebuild of each projection through
// the admin endpoint, POST -> the new generation switched in.

#include <libpq-fe.h>

#include <algorithm>
#include <ctime>
#include <fstream>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <thread>

#include <httplib.h>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "tools/bench/bench_support.h"
#include "tools/bench/benches.h"
#include "tools/bench/history.h"
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
  std::cerr << "producing into " << broker.description() << " (" << options.partitions
            << " partitions per topic)...\n";
  const auto started = Clock::now();
  backlog.bytes = produceAll(broker.bootstrap(), backlog.events);
  backlog.produce_s = secondsSince(started);
  backlog.ends = watermarks(broker.bootstrap(), {{kCustomersTopic, options.partitions},
                                                 {kAccountsTopic, options.partitions}});
  std::int64_t total = 0;
  for (const auto& [tp, marks] : backlog.ends) {
    if (marks.low != 0) {
      throw std::runtime_error("retention dropped records of " + tp.first + "[" +
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

/// Starts the engine (--role projections) and waits until its projections reached the
/// backlog's end offsets. The engine keeps running in `engine`; stopEngine() ends the pass.
EnginePass catchUpPass(const TempDir& dir, const std::filesystem::path& manifest,
                       const std::string& postgres_url, const Backlog& backlog,
                       const std::string& log_name, int timeout_s,
                       std::unique_ptr<Process>& engine) {
  const auto started = Clock::now();
  engine = startEngine(dir, manifest, log_name, {"--role", "projections"});
  EnginePass pass;
  pass.catch_up = waitCaughtUp(postgres_url, *engine, started, kProjections, backlog.ends,
                               std::chrono::seconds(timeout_s));
  pass.maxrss_bytes = pass.catch_up.peak_rss_bytes;
  const double n = static_cast<double>(backlog.events.size());
  pass.events_per_s = n / (pass.catch_up.caught_up_s - pass.catch_up.first_progress_s);
  pass.wall_events_per_s = n / pass.catch_up.caught_up_s;
  return pass;
}

/// Stops the engine; `pass` gets its CPU time and peak RSS over its whole life.
void stopEngine(Process& engine, EnginePass& pass) {
  // VmHWM is a high-water mark: one last read before the stop covers everything until then.
  pass.maxrss_bytes = std::max(pass.maxrss_bytes, engine.peakRssBytes());
  const int code = engine.stop();
  if (code != 0) std::cerr << "warning: engine exited with " << code << "\n";
  const rusage& usage = engine.usage();
  pass.cpu_s = static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
               static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
  // Not rusage's ru_maxrss: Linux carries the high-water mark across execve, so a child
  // forked from this bench reports the bench's own RSS at fork time (its generated backlog:
  // 300-500 MiB for 1M events) even when the engine never comes close.
}

EnginePass runEnginePass(const TempDir& dir, const std::filesystem::path& manifest,
                         const std::string& postgres_url, const Backlog& backlog,
                         const std::string& log_name, int timeout_s) {
  std::unique_ptr<Process> engine;
  EnginePass pass = catchUpPass(dir, manifest, postgres_url, backlog, log_name, timeout_s, engine);
  stopEngine(*engine, pass);
  return pass;
}

/// Records in `topic` (every partition, log start 0: loadBacklog checks it).
std::int64_t topicEvents(const Backlog& backlog, const std::string& topic) {
  std::int64_t total = 0;
  for (const auto& [tp, marks] : backlog.ends) {
    if (tp.first == topic) total += marks.high - marks.low;
  }
  return total;
}

/// The C++ accounts projection written as a sql view (plugins/sql): the same table, the same
/// rows for the bench's events (it does not refuse events of unopened accounts, as the C++
/// plugin does; the bench has none).
constexpr const char* kAccountsAsSql = R"json({
  "schema_version": 1,
  "tables": "CREATE TABLE IF NOT EXISTS {schema}.accounts (account_id text NOT NULL, tenant_id text NOT NULL DEFAULT 'DEFAULT', customer_id text NOT NULL, account_type text NOT NULL, currency text NOT NULL, balance numeric NOT NULL DEFAULT 0, status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')), version bigint NOT NULL, opened_at timestamptz NOT NULL, updated_at timestamptz NOT NULL, PRIMARY KEY (tenant_id, account_id)); CREATE INDEX IF NOT EXISTS accounts_tenant_customer_idx ON {schema}.accounts (tenant_id, customer_id); CREATE INDEX IF NOT EXISTS accounts_id_idx ON {schema}.accounts (account_id)",
  "on": {
    "AccountOpened": "INSERT INTO {schema}.accounts (account_id, tenant_id, customer_id, account_type, currency, version, opened_at, updated_at) VALUES (:aggregate_id, :tenant_id, :data.customer_id!, :data.account_type!, :data.currency!, COALESCE(:aggregate_version::bigint, 1), :occurred_at::timestamptz, :occurred_at::timestamptz)",
    "FundsDeposited": "UPDATE {schema}.accounts SET balance = balance + :data.amount!::numeric, version = COALESCE(:aggregate_version::bigint, version + 1), updated_at = :occurred_at::timestamptz WHERE tenant_id = :tenant_id AND account_id = :aggregate_id",
    "FundsWithdrawn": "UPDATE {schema}.accounts SET balance = balance - :data.amount!::numeric, version = COALESCE(:aggregate_version::bigint, version + 1), updated_at = :occurred_at::timestamptz WHERE tenant_id = :tenant_id AND account_id = :aggregate_id",
    "AccountClosed": "UPDATE {schema}.accounts SET status = 'closed', version = COALESCE(:aggregate_version::bigint, version + 1), updated_at = :occurred_at::timestamptz WHERE tenant_id = :tenant_id AND account_id = :aggregate_id"
  }
})json";

struct SqlCase {
  double cpp_events_per_s = 0;
  double sql_events_per_s = 0;
  std::int64_t events = 0;
  bool same_rows = false;
};

/// The accounts topic materialized twice in one fresh database, one projection per pass, with
/// the same batch and workers: the C++ accounts plugin, then the same view as a sql view.
SqlCase runSqlCase(const TempDir& dir, const Broker& broker, const Backlog& backlog,
                   const MaterializeOptions& options) {
  BenchDatabase database;
  SqlCase out;
  out.events = topicEvents(backlog, kAccountsTopic);
  std::map<TopicPartition, Watermarks> ends;
  for (const auto& [tp, marks] : backlog.ends) {
    if (tp.first == kAccountsTopic) ends[tp] = marks;
  }
  const auto plugins = binDir().parent_path() / "plugins";
  for (const bool sql : {false, true}) {
    const std::string name = sql ? "accounts_sql" : "accounts";
    const auto manifest = dir.path() / ("projections-" + name + ".yaml");
    {
      std::ofstream m(manifest);
      m << "kafka:\n  bootstrap.servers: " << broker.bootstrap() << "\n";
      for (const auto& [key, value] : defaultKafkaProperties(broker.kind() == "real")) {
        m << "  " << key << ": " << kafkaProperty(parseKafkaProperties(options.kafka),
                                                   broker.kind() == "real", key) << "\n";
      }
      m << "postgres:\n  url: " << database.url() << "\napi: { listen: 127.0.0.1:0 }\n"
        << "admin: { listen: 127.0.0.1:0 }\nplugins:\n"
        << "  - { name: accounts, library: " << (plugins / "accounts/libultracore_accounts.so").string()
        << " }\n  - { name: sql, library: " << (plugins / "sql/libultracore_sql.so").string()
        << " }\nprojections:\n  - name: " << name << "\n    plugin: " << (sql ? "sql" : "accounts")
        << "\n    topics: [" << kAccountsTopic << "]\n    batch: { max_events: " << options.max_events
        << ", max_wait_ms: " << options.max_wait_ms << ", synchronous_commit: "
        << (options.synchronous_commit ? "true" : "false") << " }\n    workers: " << options.workers
        << "\n    on_error: dead_letter\n";
      if (sql) m << "    config: " << json::parse(kAccountsAsSql).dump() << "\n";
    }
    std::cerr << "sql case: " << name << " catching up...\n";
    const auto started = Clock::now();
    auto engine = startEngine(dir, manifest, "engine-" + name + ".log", {"--role", "projections"});
    const CatchUp catch_up = waitCaughtUp(database.url(), *engine, started, {{name, {kAccountsTopic}}},
                                          ends, std::chrono::seconds(options.timeout_s));
    engine->stop();
    const double rate = static_cast<double>(out.events) /
                        (catch_up.caught_up_s - catch_up.first_progress_s);
    (sql ? out.sql_events_per_s : out.cpp_events_per_s) = rate;
  }
  pqxx::connection connection(database.url());
  pqxx::nontransaction txn(connection);
  const std::string columns =
      "SELECT account_id, tenant_id, customer_id, account_type, currency, balance, status, "
      "version, opened_at, updated_at FROM ";
  out.same_rows =
      txn.exec1("SELECT count(*) FROM ((" + columns + "accounts.accounts EXCEPT " + columns +
                "accounts_sql.accounts) UNION ALL (" + columns + "accounts_sql.accounts EXCEPT " +
                columns + "accounts.accounts)) t")[0]
              .as<long>() == 0 &&
      txn.exec1("SELECT count(*) FROM accounts.accounts")[0].as<long>() > 0;
  return out;
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
                   "ON CONFLICT (tenant_id, customer_id) DO NOTHING;"
                   "INSERT INTO bench_ceiling.accounts SELECT * FROM in_accounts "
                   "ON CONFLICT (tenant_id, account_id) DO NOTHING;"
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

/// md5 of a read model table's rows (projection "accounts": table SCHEMA.accounts, key
/// account_id), rows of a loaded history (materialize --history) left out: the stream did not
/// make them.
std::string modelChecksum(pqxx::transaction_base& txn, const std::string& schema,
                          const std::string& projection) {
  const std::string id_column = projection.substr(0, projection.size() - 1) + "_id";
  return txn
      .exec("SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM " +
            txn.quote_name(schema) + "." + txn.quote_name(projection) + " AS t WHERE t." +
            id_column + " NOT LIKE '" + kHistoryPrefix + "%'")[0][0]
      .as<std::string>();
}

/// The live read model of `projection` (customers or accounts; table `<name>.<name>`) equals
/// the folded stream (the ceiling's table) row for row, `generation` is live, and its
/// processed_events hold exactly `events` rows. A mismatch is described on stderr.
bool readModelMatches(const std::string& url, const std::string& projection, int generation,
                      std::int64_t events) {
  pqxx::connection connection(url);
  pqxx::nontransaction txn(connection);
  const std::string history = std::string("'") + kHistoryPrefix + "%'";
  const std::string table = projection + "." + projection;
  const bool same = modelChecksum(txn, projection, projection) ==
                    modelChecksum(txn, "bench_ceiling", projection);
  // The keys a generation stores its offsets and processed_events under
  // (migrations/0004_generations.sql).
  const auto row = txn.exec_params1(
      "SELECT ultracore_generation_key($1, $2), ultracore_live_key($1), "
      "(SELECT count(*) FROM processed_events WHERE projection = ultracore_generation_key($1, $2) "
      "AND aggregate_id NOT LIKE " + history + ")",
      projection, generation);
  const auto key = row[0].as<std::string>();
  const auto live_key = row[1].as<std::string>();
  const auto processed = row[2].as<std::int64_t>();
  if (!same) std::cerr << "mismatch: " << table << " differs from the folded stream\n";
  if (live_key != key) {
    std::cerr << "mismatch: the live key of " << projection << " is " << live_key << ", expected "
              << key << "\n";
  }
  if (processed != events) {
    std::cerr << "mismatch: processed_events of " << key << " hold " << processed
              << " rows, expected " << events << "\n";
  }
  return same && live_key == key && processed == events;
}

// ---- the baseline: one transaction per event -------------------------------------------

/// `synchronous`: each COMMIT waits for its WAL flush (the server's default, as a naive consumer
/// runs); otherwise `synchronous_commit = off`, as the engine's batches commit by default.
double runBaseline(const std::string& url, const Backlog& backlog, std::size_t sample,
                   bool synchronous) {
  pqxx::connection connection(url);
  const std::string schema = synchronous ? "bench_baseline" : "bench_baseline_async";
  {
    pqxx::work txn(connection);
    txn.exec("DROP SCHEMA IF EXISTS " + schema + " CASCADE; CREATE SCHEMA " + schema +
             "; SET LOCAL search_path = " + schema +
             ", public;"
             "CREATE TABLE customers (LIKE customers.customers INCLUDING ALL);"
             "CREATE TABLE accounts (LIKE accounts.accounts INCLUDING ALL);"
             "CREATE TABLE processed_events (LIKE public.processed_events INCLUDING ALL);"
             "CREATE TABLE offsets (LIKE public.ultracore_offsets INCLUDING ALL)");
    txn.commit();
  }
  if (!synchronous) {
    pqxx::nontransaction txn(connection);
    txn.exec("SET synchronous_commit = off");
  }
  {
    pqxx::nontransaction txn(connection);
    txn.exec("SET search_path = " + schema + ", public");
  }
  connection.prepare("processed",
                     "INSERT INTO processed_events (projection, event_id, "
                     "aggregate_id, event_type, topic, partition, \"offset\") VALUES ($1, $2, $3, "
                     "$4, $5, $6, $7) ON CONFLICT (projection, event_id) DO NOTHING RETURNING 1");
  connection.prepare("offset",
                     "INSERT INTO offsets (projection, topic, partition, "
                     "next_offset) VALUES ($1, $2, $3, $4) ON CONFLICT (projection, topic, "
                     "partition) DO UPDATE SET next_offset = EXCLUDED.next_offset, "
                     "updated_at = now()");
  connection.prepare("customer_created",
                     "INSERT INTO customers (customer_id, tenant_id, first_name, "
                     "last_name, email, phone, date_of_birth, status, version, created_at, "
                     "updated_at) VALUES ($1, 'DEFAULT', $2, $3, $4, $5, $6::date, 'active', "
                     "$7::bigint, $8::timestamptz, $8::timestamptz)");
  connection.prepare("customer_updated",
                     "UPDATE customers SET email = $2, phone = $3, "
                     "version = $4::bigint, updated_at = $5::timestamptz WHERE customer_id = $1");
  connection.prepare("account_opened",
                     "INSERT INTO accounts (account_id, tenant_id, customer_id, "
                     "account_type, currency, balance, status, version, opened_at, updated_at) "
                     "VALUES ($1, 'DEFAULT', $2, $3, $4, 0, 'open', $5::bigint, $6::timestamptz, "
                     "$6::timestamptz)");
  connection.prepare("account_moved",
                     "UPDATE accounts SET balance = balance + $2::numeric, "
                     "version = $3::bigint, updated_at = $4::timestamptz WHERE account_id = $1");
  connection.prepare("account_closed",
                     "UPDATE accounts SET status = 'closed', version = $2::bigint, "
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

std::string mib(std::int64_t bytes) {
  return fmtNumber(static_cast<double>(bytes) / 1048576.0, 1) + " MiB";
}

// ---- the live rebuild: the admin endpoint's POST .../rebuild, polled until the switch ------

struct LiveRebuild {
  std::string projection;
  int generation = 0;
  std::int64_t events = 0;         ///< records in the projection's topic
  double seconds = 0;              ///< POST -> a GET reports the new generation live
  double first_progress_s = -1;    ///< POST -> the new generation's first committed batch
  double switching_s = -1;         ///< POST -> a GET first reports phase "switching" (if seen)
  double engine_events_per_s = 0;  ///< the engine's own figure once done (events_done / run)
  double events_per_s = 0;         ///< events / seconds
  std::string estimate;            ///< what `ultracore-ctl rebuild` printed for the disk it takes
  std::int64_t disk_before = 0;    ///< pg_database_size when it started
  std::int64_t disk_peak = 0;      ///< the largest pg_database_size seen until live (every ~1 s)
  bool matches = false;
};

/// One admin request (no token: the bench's manifest sets none); its JSON answer, or throws
/// with the status and body when the status is not `expected_status`.
json adminCall(httplib::Client& admin, const std::string& method, const std::string& path,
               int expected_status) {
  auto answer = method == "POST" ? admin.Post(path, "", "application/json") : admin.Get(path);
  if (!answer) {
    throw std::runtime_error(method + " " + path + ": " + httplib::to_string(answer.error()));
  }
  if (answer->status != expected_status) {
    throw std::runtime_error(method + " " + path + ": HTTP " + std::to_string(answer->status) +
                             " " + answer->body);
  }
  return json::parse(answer->body);
}

std::int64_t databaseBytes(pqxx::connection& connection) {
  pqxx::nontransaction txn(connection);
  return txn.exec("SELECT pg_database_size(current_database())")[0][0].as<std::int64_t>();
}

/// Starts the rebuild of `projection` as an operator does, `ultracore-ctl rebuild --no-wait`
/// (its disk estimate, then the admin POST), and polls GET .../rebuild every 50 ms until the
/// generation it started is live; the database's size about every second. Throws if the
/// rebuild fails, the engine exits or `timeout` passes.
LiveRebuild rebuildLive(const TempDir& dir, const std::filesystem::path& manifest,
                        httplib::Client& admin, Process& engine, const std::string& postgres_url,
                        const std::string& projection, std::int64_t events,
                        std::chrono::seconds timeout) {
  LiveRebuild result;
  result.projection = projection;
  result.events = events;
  pqxx::connection connection(postgres_url);
  const std::string path = "/api/v1/projections/" + projection + "/rebuild";
  result.disk_before = databaseBytes(connection);
  result.disk_peak = result.disk_before;
  const auto started = Clock::now();
  {
    const auto log = dir.path() / ("ctl-rebuild-" + projection + ".log");
    Process ctl({(binDir() / "ultracore-ctl").string(), "--config", manifest.string(), "rebuild",
                 projection, "--no-wait"},
                log);
    const int code = ctl.wait(std::chrono::seconds(120));
    const std::string output = ctl.log();
    if (code != 0) {
      throw std::runtime_error("ultracore-ctl rebuild " + projection + " exited " +
                               std::to_string(code) + ":\n" + output);
    }
    // "rebuild of P: the new generation takes about X MiB on the database's disk ... free: Y"
    const std::string about = "takes about ", building = "building generation ";
    if (const auto at = output.find(about); at != std::string::npos) {
      const auto from = at + about.size();
      result.estimate = output.substr(from, output.find(" on ", from) - from);
    }
    const auto generation = output.find(building);
    if (generation == std::string::npos) {
      throw std::runtime_error("ultracore-ctl rebuild " + projection + " did not say which "
                               "generation it started:\n" + output);
    }
    result.generation = std::stoi(output.substr(generation + building.size()));
  }
  auto last_size = Clock::now();
  while (true) {
    if (Clock::now() - last_size >= std::chrono::seconds(1)) {
      result.disk_peak = std::max(result.disk_peak, databaseBytes(connection));
      last_size = Clock::now();
    }
    // The first committed batch as materialize sees it (its stored offsets), not the admin's
    // events_done, which the engine updates on its 250 ms control tick.
    if (result.first_progress_s < 0) {
      pqxx::nontransaction txn(connection);
      const bool progressed =
          txn.exec_params1(
                 "SELECT EXISTS (SELECT 1 FROM ultracore_offsets "
                 "WHERE projection = ultracore_generation_key($1, $2) AND next_offset > 0)",
                 projection, result.generation)[0]
              .as<bool>();
      if (progressed) result.first_progress_s = secondsSince(started);
    }
    if (!engine.running()) throw std::runtime_error("the engine exited:\n" + engine.log());
    if (secondsSince(started) > static_cast<double>(timeout.count())) {
      throw std::runtime_error("the rebuild of " + projection + " did not switch within " +
                               std::to_string(timeout.count()) + " s");
    }
    const json generations = adminCall(admin, "GET", path, 200);
    const double now_s = secondsSince(started);
    const json& rebuild = generations.at("rebuild");
    if (!rebuild.is_null() && rebuild.at("generation") == result.generation) {
      const std::string phase = rebuild.at("phase").get<std::string>();
      if (phase == "failed" || phase == "cancelled") {
        throw std::runtime_error("the rebuild of " + projection + " " + phase + ": " +
                                 rebuild.value("detail", std::string()));
      }
      if (result.switching_s < 0 && phase == "switching") result.switching_s = now_s;
    }
    if (generations.at("live_generation").get<int>() >= result.generation) {
      result.seconds = now_s;
      if (!rebuild.is_null()) result.engine_events_per_s = rebuild.value("events_per_second", 0.0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  result.events_per_s = static_cast<double>(events) / result.seconds;
  return result;
}

/// The keys every materialize/rebuild JSON starts with (what ran), then `figures`.
json runJson(const std::string& bench, const MaterializeOptions& options, const Broker& broker,
             const Backlog& backlog, json figures) {
  json out{{"bench", bench},
           {"commit", gitCommit()},
           {"kafka_broker", broker.kind()},
           {"broker", broker.description()},
           {"events", backlog.events.size()},
           {"partitions_per_topic", options.partitions},
           {"batch_max_events", options.max_events},
           {"batch_max_wait_ms", options.max_wait_ms},
           {"workers", options.workers},
           {"synchronous_commit", options.synchronous_commit},
           {"kafka_overrides", options.kafka},
           {"fetch_wait_max_ms", kafkaProperty(parseKafkaProperties(options.kafka),
                                               broker.kind() == "real", "fetch.wait.max.ms")}};
  out.update(figures);
  return out;
}

}  // namespace

int runMaterialize(const MaterializeOptions& options) {
  TempDir dir;
  BenchDatabase database;
  Broker broker(dir, {{kCustomersTopic, options.partitions}, {kAccountsTopic, options.partitions}},
                options.broker);
  const Backlog backlog = loadBacklog(broker, options);
  const auto manifest_for = [&](bool synchronous_commit) {
    return writeManifest(
        dir, {broker.bootstrap(), database.url(), "127.0.0.1:0", "127.0.0.1:0", options.max_events,
              options.max_wait_ms, options.workers, parseKafkaProperties(options.kafka),
              synchronous_commit, broker.kind() == "real"});
  };
  const auto manifest = manifest_for(options.synchronous_commit);
  std::cerr << "engine catching up...\n";
  const PgCounters counters_before = readCounters(database.url());
  const EnginePass engine = runEnginePass(dir, manifest, database.url(), backlog, "engine.log",
                                          options.timeout_s);
  const PgCounters counters_after = readCounters(database.url());
  const double n_events = static_cast<double>(backlog.events.size());
  std::cerr << "PostgreSQL ceiling (COPY + one merge)...\n";
  const Ceiling ceiling = runCeiling(database.url(), backlog);
  const bool customers_match =
      readModelMatches(database.url(), "customers", 1, topicEvents(backlog, kCustomersTopic));
  const bool accounts_match =
      readModelMatches(database.url(), "accounts", 1, topicEvents(backlog, kAccountsTopic));
  const bool matches = customers_match && accounts_match;
  std::cerr << "baseline (one transaction per event, " << options.baseline_sample
            << " events)...\n";
  const double baseline = runBaseline(database.url(), backlog, options.baseline_sample, true);
  const double baseline_async =
      runBaseline(database.url(), backlog, options.baseline_sample, false);
  // The engine the other way too (batch.synchronous_commit flipped), from empty tables, so
  // engine and baseline can be compared with the same setting on both sides (issue 18.6).
  double engine_other_way = 0;
  if (options.engine_both_ways) {
    std::cerr << "engine again with batch.synchronous_commit "
              << (options.synchronous_commit ? "false" : "true") << "...\n";
    resetEngineTables(database.url());
    const auto other = manifest_for(!options.synchronous_commit);
    engine_other_way =
        runEnginePass(dir, other, database.url(), backlog, "engine-other-way.log", options.timeout_s)
            .events_per_s;
    manifest_for(options.synchronous_commit);  // the history pass runs as the first
  }
  json history_json;
  std::vector<TableRow> history_rows;
  if (options.history > 0) {
    const TableSizes sizes0 = readSizes(database.url());
    const auto seeds0 = timeSeedQueries(database.url(), backlog.events.front().aggregate_id);
    std::cerr << "history: loading " << options.history
              << " processed_events rows per projection (COPY)...\n";
    const HistoryLoad load =
        loadHistory(database.url(), {"customers", "accounts"},
                    static_cast<std::int64_t>(options.history), options.partitions);
    const TableSizes sizes_loaded = readSizes(database.url());
    std::cerr << "engine catching up over the history...\n";
    const PgCounters hist_before = readCounters(database.url());
    const EnginePass hist = runEnginePass(dir, manifest, database.url(), backlog,
                                          "engine-history.log", options.timeout_s);
    const PgCounters hist_after = readCounters(database.url());
    const TableSizes sizesN = readSizes(database.url());
    const auto seedsN =
        timeSeedQueries(database.url(), std::string(kHistoryPrefix) + "C-00000042");
    const json pass0 = counterDelta(counters_before, counters_after, n_events);
    const json passN = counterDelta(hist_before, hist_after, n_events);
    const std::string label = fmtNumber(static_cast<double>(options.history));
    auto both = [&](const std::string& what, const std::string& at0, const std::string& atN,
                    const std::string& note) {
      history_rows.push_back({what, atN, "history 0: " + at0 + (note.empty() ? "" : "; " + note)});
    };
    both("engine at history " + label, fmtNumber(engine.events_per_s) + " events/s",
         fmtNumber(hist.events_per_s) + " events/s", "same backlog, same run");
    history_rows.push_back({"history " + label + " / history 0",
                            fmtNumber(hist.events_per_s / engine.events_per_s * 100, 1) + " %",
                            "target >= 80 %"});
    both("processed_events rows", fmtNumber(static_cast<double>(sizes0.pe_rows)),
         fmtNumber(static_cast<double>(sizesN.pe_rows)), "after the pass (reltuples)");
    both("processed_events heap", mib(sizes0.pe_heap_bytes), mib(sizesN.pe_heap_bytes), "");
    both("processed_events indexes", mib(sizes0.pe_index_bytes), mib(sizesN.pe_index_bytes), "");
    both("read models (customers + accounts)", mib(sizes0.read_model_bytes),
         mib(sizesN.read_model_bytes), "tables and indexes");
    both("engine peak RSS", mib(engine.maxrss_bytes), mib(hist.maxrss_bytes), "VmHWM");
    both("WAL per event",
         fmtNumber(pass0.at("wal_bytes_per_event").get<double>()) + " B, " +
             fmtNumber(pass0.at("wal_fpi_per_event").get<double>(), 2) + " FPI",
         fmtNumber(passN.at("wal_bytes_per_event").get<double>()) + " B, " +
             fmtNumber(passN.at("wal_fpi_per_event").get<double>(), 2) + " FPI",
         "pg_stat_wal over the pass (full-page images)");
    both("processed_events index reads per event",
         fmtNumber(pass0.at("pe_idx_blks_read_per_event").get<double>(), 2),
         fmtNumber(passN.at("pe_idx_blks_read_per_event").get<double>(), 2),
         "pg_statio idx_blks_read (not in shared_buffers)");
    both("checkpoints during the pass", std::to_string(pass0.at("checkpoints").get<std::int64_t>()),
         std::to_string(passN.at("checkpoints").get<std::int64_t>()), "pg_stat_bgwriter");
    for (std::size_t q = 0; q < seedsN.size(); ++q) {
      both("seed query " + std::to_string(q + 1), fmtNumber(seeds0[q].median_ms, 2) + " ms",
           fmtNumber(seedsN[q].median_ms, 2) + " ms", seedsN[q].sql.substr(0, 60) + " (median of 5)");
    }
    history_rows.push_back({"history load", fmtNumber(load.copy_s + load.index_s, 1) + " s",
                            fmtNumber(static_cast<double>(load.rows)) + " rows: COPY " +
                                fmtNumber(load.copy_s, 1) + " s, indexes " +
                                fmtNumber(load.index_s, 1) + " s, VACUUM ANALYZE + CHECKPOINT " +
                                fmtNumber(load.vacuum_s, 1) + " s; loaded: " +
                                mib(sizes_loaded.pe_heap_bytes) + " heap, " +
                                mib(sizes_loaded.pe_index_bytes) + " indexes"});
    const bool history_matches =
        readModelMatches(database.url(), "customers", 1, topicEvents(backlog, kCustomersTopic)) &&
        readModelMatches(database.url(), "accounts", 1, topicEvents(backlog, kAccountsTopic));
    history_rows.push_back({"read model check (history pass)", history_matches ? "ok" : "MISMATCH",
                            "the stream's rows == folded stream (history rows left out)"});
    auto sizesJson = [](const TableSizes& sizes) {
      return json{{"rows", sizes.pe_rows},
                  {"heap", sizes.pe_heap_bytes},
                  {"indexes", sizes.pe_index_bytes},
                  {"read_models", sizes.read_model_bytes}};
    };
    auto seedJson = [](const std::vector<SeedQuery>& seeds) {
      json out = json::array();
      for (const auto& q : seeds) {
        out.push_back({{"sql", q.sql}, {"median_ms", q.median_ms}, {"plan", q.plan}});
      }
      return out;
    };
    history_json = {{"rows_per_projection", options.history},
                    {"engine_events_per_s", hist.events_per_s},
                    {"ratio", hist.events_per_s / engine.events_per_s},
                    {"engine_peak_rss_bytes", hist.maxrss_bytes},
                    {"load_rows", load.rows},
                    {"load_copy_s", load.copy_s},
                    {"load_index_s", load.index_s},
                    {"load_vacuum_s", load.vacuum_s},
                    {"pass0", pass0},
                    {"passN", passN},
                    {"sizes0", sizesJson(sizes0)},
                    {"sizesN", sizesJson(sizesN)},
                    {"seed0", seedJson(seeds0)},
                    {"seedN", seedJson(seedsN)},
                    {"read_model_matches", history_matches}};
  }
  std::cerr << "sql case (the accounts projection as a sql view)...\n";
  const SqlCase sql_case = runSqlCase(dir, broker, backlog, options);
  broker.stop();

  const double n = static_cast<double>(backlog.events.size());
  const double ceiling_rows_per_s = static_cast<double>(ceiling.rows) / ceiling.seconds;
  const double ceiling_events_per_s = n / ceiling.seconds;
  const std::size_t sample = std::min(options.baseline_sample, backlog.events.size());
  printTable(
      "materialize: " + fmtNumber(n) + " events (" + std::to_string(options.partitions) +
          " partitions per topic, batch " + std::to_string(options.max_events) + "/" +
          std::to_string(options.max_wait_ms) + " ms, workers " + std::to_string(options.workers) +
          (options.synchronous_commit ? ", synchronous_commit" : "") + ", fetch.wait.max.ms " +
          kafkaProperty(parseKafkaProperties(options.kafka), broker.kind() == "real",
                        "fetch.wait.max.ms") + ") on " +
          broker.description() + ", commit " + gitCommit().substr(0, 12),
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
        "one transaction per event (processed_events + row + offset), synchronous_commit on, "
        "sample of first " + fmtNumber(static_cast<double>(sample)) + " events"},
       {"baseline, synchronous_commit off", fmtNumber(baseline_async) + " events/s",
        "the same, committing as the engine does by default (engine / this: " +
            fmtNumber(engine.events_per_s / baseline_async, 1) + " x)"},
       {"engine, synchronous_commit " + std::string(options.synchronous_commit ? "off" : "on"),
        options.engine_both_ways ? fmtNumber(engine_other_way) + " events/s" : "-",
        options.engine_both_ways
            ? "batch.synchronous_commit flipped, same backlog (engine / baseline with the same "
              "setting: " +
                  fmtNumber(engine_other_way / (options.synchronous_commit ? baseline_async : baseline), 1) +
                  " x)"
            : "run with --engine-both-ways"},
       {"engine / ceiling", fmtNumber(engine.events_per_s / ceiling_events_per_s * 100, 1) + " %",
        "events/s vs the ceiling's events/s (same final rows); target >= 60 %"},
       {"engine / baseline", fmtNumber(engine.events_per_s / baseline, 1) + " x", "target >= 20 x"},
       {"engine peak RSS", mib(engine.maxrss_bytes), "VmHWM of the engine process; target < 256 MiB"},
       {"engine CPU", fmtNumber(engine.cpu_s, 1) + " s",
        "user+sys (rusage), whole process life"},
       {"read model check", matches ? "ok" : "MISMATCH",
        "engine tables == folded stream; processed_events of each projection == its topic's "
        "events"},
       {"load", fmtNumber(static_cast<double>(backlog.bytes) / 1048576.0, 1) + " MiB JSON",
        "produced in " + fmtNumber(backlog.produce_s, 1) + " s (lz4 batches)"}});
  writeJson(options.json_path,
            runJson("materialize", options, broker, backlog,
                    json{{"engine_events_per_s", engine.events_per_s},
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
                 {"baseline_async_events_per_s", baseline_async},
                 {"engine_other_commit_mode_events_per_s", engine_other_way},
                 {"history", history_json},
                 {"baseline_sample_events", sample},
                 {"engine_vs_ceiling", engine.events_per_s / ceiling_events_per_s},
                 {"engine_vs_baseline", engine.events_per_s / baseline},
                 {"read_model_matches", matches},
                 {"sql_case", {{"events", sql_case.events},
                               {"cpp_events_per_s", sql_case.cpp_events_per_s},
                               {"sql_events_per_s", sql_case.sql_events_per_s},
                               {"sql_vs_cpp", sql_case.sql_events_per_s / sql_case.cpp_events_per_s},
                               {"same_rows", sql_case.same_rows}}}}));
  printTable("materialize, sql case: the accounts topic (" +
                 fmtNumber(static_cast<double>(sql_case.events)) +
                 " events), one projection per pass, same batch and workers, fresh database",
             {{"C++ accounts plugin", fmtNumber(sql_case.cpp_events_per_s) + " events/s",
               "plugins/accounts"},
              {"sql view (plugins/sql)", fmtNumber(sql_case.sql_events_per_s) + " events/s",
               "the same table and rows, written in the manifest"},
              {"sql / C++", fmtNumber(sql_case.sql_events_per_s / sql_case.cpp_events_per_s * 100, 1) +
                                " %",
               "target >= 50 %"},
              {"sql case check", sql_case.same_rows ? "ok" : "MISMATCH",
               "accounts_sql.accounts == accounts.accounts"}});
  if (!history_rows.empty()) {
    printTable("materialize --history " + fmtNumber(static_cast<double>(options.history)) +
                   ": the same backlog over a year of earlier rows, same run",
               history_rows);
  }
  const bool history_ok =
      history_json.is_null() || history_json.at("read_model_matches").get<bool>();
  return matches && history_ok && sql_case.same_rows ? 0 : 1;
}

struct TimeTravelRun {
  double seconds = 0;
  double events_per_s = 0;
  std::int64_t peak_rss_bytes = 0;  ///< VmHWM of ultracore-ctl, sampled every 50 ms
  bool matches = false;
};

/// `ultracore-ctl rebuild PROJECTION --until <now> --into bench_time_travel`, to its end: its
/// time, peak RSS, and whether the schema it built equals the folded stream.
TimeTravelRun runTimeTravel(const TempDir& dir, const std::filesystem::path& manifest,
                            const std::string& postgres_url, const std::string& projection,
                            std::int64_t events, std::chrono::seconds timeout) {
  constexpr const char* kSchema = "bench_time_travel";
  TimeTravelRun run;
  // A minute ahead: every event of the run is older, whatever the clocks' small differences.
  const auto until = std::chrono::system_clock::now() + std::chrono::minutes(1);
  const std::time_t until_t = std::chrono::system_clock::to_time_t(until);
  char until_text[32];
  std::strftime(until_text, sizeof until_text, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&until_t));
  const auto started = Clock::now();
  Process ctl({(binDir() / "ultracore-ctl").string(), "--config", manifest.string(), "rebuild",
               projection, "--until", until_text, "--into", kSchema},
              dir.path() / "ctl-time-travel.log");
  while (ctl.running()) {
    run.peak_rss_bytes = std::max(run.peak_rss_bytes, ctl.peakRssBytes());
    if (secondsSince(started) > static_cast<double>(timeout.count())) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const int code = ctl.wait(std::chrono::seconds(1));
  run.seconds = secondsSince(started);
  if (code != 0) {
    throw std::runtime_error("ultracore-ctl rebuild --until exited " + std::to_string(code) +
                             ":\n" + ctl.log());
  }
  run.events_per_s = static_cast<double>(events) / run.seconds;
  pqxx::connection connection(postgres_url);
  pqxx::nontransaction txn(connection);
  run.matches = modelChecksum(txn, kSchema, projection) ==
                modelChecksum(txn, "bench_ceiling", projection);
  if (!run.matches) std::cerr << "mismatch: " << kSchema << "." << projection << " differs\n";
  return run;
}

int runRebuild(const MaterializeOptions& options) {
  TempDir dir;
  BenchDatabase database;
  Broker broker(dir, {{kCustomersTopic, options.partitions}, {kAccountsTopic, options.partitions}},
                options.broker);
  const Backlog backlog = loadBacklog(broker, options);
  const int admin_port = freePort();
  const auto manifest =
      writeManifest(dir, {broker.bootstrap(), database.url(), "127.0.0.1:0",
                          "127.0.0.1:" + std::to_string(admin_port), options.max_events,
                          options.max_wait_ms, options.workers, parseKafkaProperties(options.kafka),
                          options.synchronous_commit, broker.kind() == "real"});
  std::cerr << "first pass (materialize)...\n";
  std::unique_ptr<Process> engine;
  EnginePass first =
      catchUpPass(dir, manifest, database.url(), backlog, "engine.log", options.timeout_s, engine);
  // The expected rows, for the check after each switch: written while the engine idles,
  // before the rebuilds' clocks start (its timing is materialize's business, not reported).
  std::cerr << "expected read models (the ceiling's tables)...\n";
  runCeiling(database.url(), backlog);

  httplib::Client admin("127.0.0.1", admin_port);
  admin.set_read_timeout(30, 0);
  const double cpu_before = engine->cpuSecondsSoFar();
  std::vector<LiveRebuild> rebuilds;
  // accounts first: 90 % of the events.
  for (const auto& [projection, topic] :
       {std::pair{"accounts", kAccountsTopic}, std::pair{"customers", kCustomersTopic}}) {
    std::cerr << "live rebuild of " << projection << "...\n";
    LiveRebuild rebuild =
        rebuildLive(dir, manifest, admin, *engine, database.url(), projection,
                    topicEvents(backlog, topic), std::chrono::seconds(options.timeout_s));
    rebuild.matches =
        readModelMatches(database.url(), projection, rebuild.generation, rebuild.events);
    rebuilds.push_back(rebuild);
  }
  const double rebuild_cpu_s = engine->cpuSecondsSoFar() - cpu_before;
  stopEngine(*engine, first);
  // Time travel over the same log, the engine stopped: ultracore-ctl itself folds the accounts
  // topic into a schema of its own (its duplicate check a table there, not memory).
  std::cerr << "time travel (ultracore-ctl rebuild accounts --until ... --into ...)...\n";
  const std::int64_t travel_events = topicEvents(backlog, kAccountsTopic);
  const TimeTravelRun travel =
      runTimeTravel(dir, manifest, database.url(), "accounts", travel_events,
                    std::chrono::seconds(options.timeout_s));
  broker.stop();

  const double n = static_cast<double>(backlog.events.size());
  double rebuild_s = 0;
  double applying_s = 0;  // first progress -> live: what compares with materialize's events/s
  bool matches = true;
  for (const auto& r : rebuilds) {
    rebuild_s += r.seconds;
    applying_s += r.seconds - r.first_progress_s;
    matches = matches && r.matches;
  }
  const double rebuild_events_per_s = n / rebuild_s;
  const double applying_events_per_s = n / applying_s;
  const double first_s = first.catch_up.caught_up_s - first.catch_up.first_progress_s;
  const auto percent = [&](double events_per_s) {
    return fmtNumber(events_per_s / first.events_per_s * 100, 1) + " %";
  };
  std::vector<TableRow> rows;
  json per_projection = json::object();
  json extra_disk = json::object();
  std::string ratios;
  for (const auto& r : rebuilds) {
    const std::string phases =
        "join + first batch " + fmtNumber(r.first_progress_s, 1) + " s, then " +
        (r.switching_s < 0
             ? fmtNumber(r.seconds - r.first_progress_s, 1) + " s to live (switching not seen)"
             : fmtNumber(r.switching_s - r.first_progress_s, 1) + " s building, " +
                   fmtNumber(r.seconds - r.switching_s, 1) + " s switching");
    rows.push_back({"rebuild " + r.projection, fmtNumber(r.events_per_s) + " events/s",
                    fmtNumber(static_cast<double>(r.events)) + " events, POST -> generation " +
                        std::to_string(r.generation) + " live " + fmtNumber(r.seconds, 1) +
                        " s: " + phases + " (engine says " + fmtNumber(r.engine_events_per_s) +
                        " events/s)"});
    ratios += ", " + r.projection + " " + percent(r.events_per_s);
    extra_disk[r.projection] = {{"before_bytes", r.disk_before},
                                {"peak_bytes", r.disk_peak},
                                {"ctl_estimate", r.estimate}};
    per_projection[r.projection] = {
        {"generation", r.generation},
        {"events", r.events},
        {"rebuild_s", r.seconds},
        {"rebuild_events_per_s", r.events_per_s},
        {"first_progress_s", r.first_progress_s},
        {"applying_events_per_s", static_cast<double>(r.events) / (r.seconds - r.first_progress_s)},
        {"switching_seen_s", r.switching_s < 0 ? json() : json(r.switching_s)},
        {"engine_events_per_s", r.engine_events_per_s},
        {"vs_materialize", r.events_per_s / first.events_per_s},
        {"read_model_matches", r.matches}};
  }
  rows.push_back({"rebuild (both)", fmtNumber(rebuild_events_per_s) + " events/s",
                  "all events / both rebuilds' POST -> live, " + fmtNumber(rebuild_s, 1) +
                      " s (one after the other)"});
  rows.push_back({"rebuild (both) excl. join", fmtNumber(applying_events_per_s) + " events/s",
                  "all events / both rebuilds' first progress -> live, " +
                      fmtNumber(applying_s, 1) + " s (stored offsets polled every 50 ms)"});
  rows.push_back({"materialize (first pass)", fmtNumber(first.events_per_s) + " events/s",
                  "same run, same log, empty tables, workers " + std::to_string(options.workers) +
                      " on both projections at once: first committed batch -> caught up " +
                      fmtNumber(first_s, 1) + " s"});
  rows.push_back({"rebuild / materialize", percent(rebuild_events_per_s),
                  "excl. join " + percent(applying_events_per_s) + ratios +
                      "; a rebuild is one projection at a time"});
  for (const auto& r : rebuilds) {
    rows.push_back({"rebuild " + r.projection + ": extra disk",
                    mib(r.disk_peak - r.disk_before),
                    "peak pg_database_size while both generations existed, less the size at the "
                    "start (" + mib(r.disk_before) + "; sampled every ~1 s, WAL not included); "
                    "ultracore-ctl rebuild estimated " +
                        (r.estimate.empty() ? std::string("nothing") : r.estimate)});
  }
  rows.push_back({"engine peak RSS", mib(first.maxrss_bytes),
                  "VmHWM, one engine through the first pass and both rebuilds; target < 256 MiB"});
  rows.push_back({"time travel: accounts", fmtNumber(travel.events_per_s) + " events/s",
                  fmtNumber(static_cast<double>(travel_events)) +
                      " events in " + fmtNumber(travel.seconds, 1) +
                      " s (ultracore-ctl rebuild --until <after the last event> --into, the "
                      "engine stopped)"});
  rows.push_back({"time travel peak RSS", mib(travel.peak_rss_bytes),
                  "VmHWM of ultracore-ctl, sampled every 50 ms; target < 256 MiB"});
  rows.push_back({"time travel check", travel.matches ? "ok" : "MISMATCH",
                  "its schema's accounts == the folded stream"});
  rows.push_back({"engine CPU", fmtNumber(first.cpu_s, 1) + " s",
                  "user+sys over the first pass and both rebuilds; the rebuilds alone " +
                      fmtNumber(rebuild_cpu_s, 1) + " s"});
  rows.push_back({"read model check", matches ? "ok" : "MISMATCH",
                  "after each switch: live tables == folded stream; processed_events of the new "
                  "generation == its topic's events"});
  printTable("rebuild (live: ultracore-ctl rebuild --no-wait, then GET .../rebuild polled): " +
                 fmtNumber(n) + " events (" +
                 std::to_string(options.partitions) + " partitions per topic, batch " +
                 std::to_string(options.max_events) + "/" + std::to_string(options.max_wait_ms) +
                 " ms, fetch.wait.max.ms " +
                 kafkaProperty(parseKafkaProperties(options.kafka), broker.kind() == "real",
                        "fetch.wait.max.ms") +
                 ") on " + broker.description() + ", commit " + gitCommit().substr(0, 12),
             rows);
  writeJson(options.json_path,
            runJson("rebuild", options, broker, backlog,
                    json{{"rebuild_events_per_s", rebuild_events_per_s},
                 {"rebuild_s", rebuild_s},
                 {"rebuild_applying_events_per_s", applying_events_per_s},
                 {"rebuild_cpu_s", rebuild_cpu_s},
                 {"projections", per_projection},
                 {"materialize_events_per_s", first.events_per_s},
                 {"materialize_wall_events_per_s", first.wall_events_per_s},
                 {"materialize_catch_up_s", first.catch_up.caught_up_s},
                 {"rebuild_vs_materialize", rebuild_events_per_s / first.events_per_s},
                 {"engine_peak_rss_bytes", first.maxrss_bytes},
                 {"engine_cpu_s", first.cpu_s},
                 {"rebuild_extra_disk_bytes", extra_disk},
                 {"time_travel", {{"seconds", travel.seconds},
                                  {"events_per_s", travel.events_per_s},
                                  {"peak_rss_bytes", travel.peak_rss_bytes},
                                  {"read_model_matches", travel.matches}}},
                 {"read_model_matches", matches}}));
  return matches && travel.matches ? 0 : 1;
}

}  // namespace ultracore::bench
