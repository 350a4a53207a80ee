#include "tools/bench/history.h"

#include <libpq-fe.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <stdexcept>

#include <pqxx/pqxx>

#include "tools/bench/bench_support.h"

namespace ultracore::bench {
namespace {

/// processed_events' leaf tables: itself, or its partitions.
constexpr const char* kProcessedEventsLeaves =
    "(SELECT relid FROM pg_partition_tree(to_regclass('public.processed_events')) WHERE isleaf "
    "UNION ALL SELECT c.oid FROM pg_class c WHERE c.oid = to_regclass('public.processed_events') "
    "AND c.relkind = 'r')";

using Clock = std::chrono::steady_clock;

double since(Clock::time_point started) {
  return std::chrono::duration<double>(Clock::now() - started).count();
}

/// splitmix64: fast, and the same history for the same seed.
struct Random {
  std::uint64_t state;
  std::uint64_t next() {
    std::uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
};

void appendUuid(std::string& out, Random& random) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::uint64_t high = random.next(), low = random.next();
  high = (high & ~0xF000ULL) | 0x4000ULL;  // version 4
  low = (low & ~(0xC000000000000000ULL)) | 0x8000000000000000ULL;
  char text[36];
  int pos = 0;
  for (int i = 0; i < 16; ++i) {
    const std::uint64_t word = i < 8 ? high : low;
    const int shift = 56 - 8 * (i % 8);
    const auto byte = static_cast<unsigned>((word >> shift) & 0xFF);
    if (i == 4 || i == 6 || i == 8 || i == 10) text[pos++] = '-';
    text[pos++] = kHex[byte >> 4];
    text[pos++] = kHex[byte & 0xF];
  }
  out.append(text, 36);
}

void appendTime(std::string& out, std::time_t seconds, int micros) {
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char text[48];
  const int n = std::snprintf(text, sizeof text, "%04d-%02d-%02d %02d:%02d:%02d.%06d+00",
                              tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                              tm.tm_min, tm.tm_sec, micros);
  out.append(text, static_cast<std::size_t>(n));
}

class Copy {
 public:
  Copy(PGconn* conn, const std::string& sql) : conn_(conn), sql_(sql) {
    PGresult* result = PQexec(conn_, sql.c_str());
    const bool ok = PQresultStatus(result) == PGRES_COPY_IN;
    const std::string error = ok ? "" : PQresultErrorMessage(result);
    PQclear(result);
    if (!ok) throw std::runtime_error(sql + ": " + error);
    buffer_.reserve(kChunk + 4096);
  }
  std::string& buffer() { return buffer_; }
  void flushIfFull() {
    if (buffer_.size() >= kChunk) flush();
  }
  void finish() {
    flush();
    if (PQputCopyEnd(conn_, nullptr) != 1) throw std::runtime_error(PQerrorMessage(conn_));
    PGresult* result = PQgetResult(conn_);
    const bool ok = PQresultStatus(result) == PGRES_COMMAND_OK;
    const std::string error = ok ? "" : PQresultErrorMessage(result);
    PQclear(result);
    while (PGresult* rest = PQgetResult(conn_)) PQclear(rest);
    if (!ok) throw std::runtime_error(sql_ + ": " + error);
  }

 private:
  static constexpr std::size_t kChunk = 1 << 20;
  void flush() {
    if (buffer_.empty()) return;
    if (PQputCopyData(conn_, buffer_.data(), static_cast<int>(buffer_.size())) != 1) {
      throw std::runtime_error(std::string("COPY: ") + PQerrorMessage(conn_));
    }
    buffer_.clear();
  }
  PGconn* conn_;
  std::string sql_;
  std::string buffer_;
};

void exec(PGconn* conn, const std::string& sql) {
  PGresult* result = PQexec(conn, sql.c_str());
  const auto status = PQresultStatus(result);
  const bool ok = status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK;
  const std::string error = ok ? "" : PQresultErrorMessage(result);
  PQclear(result);
  if (!ok) throw std::runtime_error(sql.substr(0, 200) + ": " + error);
}

/// How processed_events' indexes are rebuilt after the COPY: the constraint or index
/// definitions as the server prints them (so a later schema is loaded the same way).
struct IndexDefinition {
  std::string drop;
  std::string create;
};

std::vector<IndexDefinition> processedEventsIndexes(pqxx::connection& connection) {
  pqxx::nontransaction txn(connection);
  std::vector<IndexDefinition> out;
  for (const auto& row : txn.exec(
           "SELECT pg_get_indexdef(i.indexrelid), ic.relname, c.conname, "
           "pg_get_constraintdef(c.oid) FROM pg_index i JOIN pg_class ic ON ic.oid = "
           "i.indexrelid LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.conrelid "
           "= i.indrelid WHERE i.indrelid = 'public.processed_events'::regclass")) {
    if (!row[2].is_null()) {
      const std::string name = txn.quote_name(row[2].as<std::string>());
      out.push_back({"ALTER TABLE public.processed_events DROP CONSTRAINT " + name,
                     "ALTER TABLE public.processed_events ADD CONSTRAINT " + name + " " +
                         row[3].as<std::string>()});
    } else {
      out.push_back({"DROP INDEX public." + txn.quote_name(row[1].as<std::string>()),
                     row[0].as<std::string>()});
    }
  }
  return out;
}

}  // namespace

void resetEngineTables(const std::string& url) {
  pqxx::connection connection(url);
  pqxx::work txn(connection);
  txn.exec(
      "TRUNCATE customers.customers, accounts.accounts, public.processed_events, "
      "public.ultracore_offsets");
  txn.commit();
}

HistoryLoad loadHistory(const std::string& url, const std::vector<std::string>& projections,
                        std::int64_t rows_per_projection, int partitions) {
  HistoryLoad load;
  resetEngineTables(url);
  pqxx::connection connection(url);
  const auto indexes = processedEventsIndexes(connection);

  PGconn* conn = PQconnectdb(url.c_str());
  if (PQstatus(conn) != CONNECTION_OK) {
    const std::string error = PQerrorMessage(conn);
    PQfinish(conn);
    throw std::runtime_error("history: " + error);
  }
  try {
    auto started = Clock::now();
    // One transaction: the COPY into tables without indexes, then the index builds. Session
    // settings of the loader only (the engine's pass runs with the server's defaults).
    exec(conn, "SET maintenance_work_mem = '512MB'");
    exec(conn, "BEGIN");
    for (const auto& index : indexes) exec(conn, index.drop);
    const std::int64_t aggregates = std::max<std::int64_t>(1, rows_per_projection / 10);
    Random random{20261129};
    const std::time_t now = std::time(nullptr);
    const std::time_t first = now - 365 * 24 * 3600;
    const double step = (365.0 * 24 * 3600 - 3600) / static_cast<double>(rows_per_projection);
    {
      Copy copy(conn,
                "COPY public.processed_events (projection, event_id, aggregate_id, event_type, "
                "topic, partition, \"offset\", processed_at) FROM STDIN");
      std::vector<std::vector<std::int64_t>> offsets(
          projections.size(), std::vector<std::int64_t>(static_cast<std::size_t>(partitions), 0));
      for (std::int64_t i = 0; i < rows_per_projection; ++i) {
        const double at = static_cast<double>(first) + step * static_cast<double>(i);
        const auto seconds = static_cast<std::time_t>(at);
        const int micros = static_cast<int>((at - static_cast<double>(seconds)) * 1e6);
        for (std::size_t p = 0; p < projections.size(); ++p) {
          const bool customers = projections[p] == "customers";
          std::string& out = copy.buffer();
          out += projections[p];
          out += '\t';
          appendUuid(out, random);
          char aggregate[32];
          const auto which = random.next() % static_cast<std::uint64_t>(aggregates);
          const int n = std::snprintf(aggregate, sizeof aggregate, "%s%s-%08lld", kHistoryPrefix,
                                      customers ? "C" : "A", static_cast<long long>(which));
          out += '\t';
          out.append(aggregate, static_cast<std::size_t>(n));
          out += '\t';
          out += customers ? (random.next() % 5 == 0 ? "CustomerCreated" : "CustomerUpdated")
                           : (random.next() % 2 == 0 ? "FundsDeposited" : "FundsWithdrawn");
          out += '\t';
          out += customers ? "ultracore.customers.events" : "ultracore.accounts.events";
          const auto partition = static_cast<std::size_t>(random.next() %
                                                          static_cast<std::uint64_t>(partitions));
          out += '\t';
          out += std::to_string(partition);
          out += '\t';
          out += std::to_string(offsets[p][partition]++);
          out += '\t';
          appendTime(out, seconds, micros);
          out += '\n';
          ++load.rows;
        }
        copy.flushIfFull();
        if ((i + 1) % 1000000 == 0) {
          std::cerr << "  history: " << (i + 1) << " of " << rows_per_projection
                    << " rows per projection copied\n";
        }
      }
      copy.finish();
    }
    {
      Copy copy(conn,
                "COPY customers.customers (customer_id, tenant_id, first_name, last_name, email, "
                "phone, date_of_birth, status, version, created_at, updated_at) FROM STDIN");
      for (std::int64_t i = 0; i < aggregates; ++i) {
        char id[32];
        std::snprintf(id, sizeof id, "%sC-%08lld", kHistoryPrefix, static_cast<long long>(i));
        copy.buffer() += std::string(id) + "\tDEFAULT\tAda\tLovelace\tada" + std::to_string(i) +
                         "@example.com\t+44 20 7946 0000\t1815-12-10\tactive\t3\t"
                         "2025-12-01 10:00:00+00\t2026-06-01 10:00:00+00\n";
        copy.flushIfFull();
      }
      copy.finish();
    }
    {
      Copy copy(conn,
                "COPY accounts.accounts (account_id, tenant_id, customer_id, account_type, "
                "currency, balance, status, version, opened_at, updated_at) FROM STDIN");
      for (std::int64_t i = 0; i < aggregates; ++i) {
        char id[32], customer[32];
        std::snprintf(id, sizeof id, "%sA-%08lld", kHistoryPrefix, static_cast<long long>(i));
        std::snprintf(customer, sizeof customer, "%sC-%08lld", kHistoryPrefix,
                      static_cast<long long>(i));
        copy.buffer() += std::string(id) + "\tDEFAULT\t" + customer +
                         "\tCHECKING\tEUR\t1234.56\topen\t11\t2025-12-01 10:00:00+00\t"
                         "2026-06-01 10:00:00+00\n";
        copy.flushIfFull();
      }
      copy.finish();
    }
    load.copy_s = since(started);
    started = Clock::now();
    std::cerr << "  history: rebuilding processed_events' indexes...\n";
    for (const auto& index : indexes) exec(conn, index.create);
    exec(conn, "COMMIT");
    load.index_s = since(started);
    started = Clock::now();
    // What autovacuum would have done over a year, and the load's dirty pages written out,
    // so the timed pass starts from a settled server.
    exec(conn, "VACUUM (ANALYZE) public.processed_events");
    exec(conn, "VACUUM (ANALYZE) customers.customers");
    exec(conn, "VACUUM (ANALYZE) accounts.accounts");
    exec(conn, "CHECKPOINT");
    load.vacuum_s = since(started);
  } catch (...) {
    PQfinish(conn);
    throw;
  }
  PQfinish(conn);
  return load;
}

PgCounters readCounters(const std::string& url) {
  pqxx::connection connection(url);
  pqxx::nontransaction txn(connection);
  PgCounters c;
  const auto wal = txn.exec1("SELECT wal_records, wal_fpi, wal_bytes::bigint FROM pg_stat_wal");
  c.wal_records = wal[0].as<std::int64_t>();
  c.wal_fpi = wal[1].as<std::int64_t>();
  c.wal_bytes = wal[2].as<std::int64_t>();
  const auto bg = txn.exec1(
      "SELECT checkpoints_timed + checkpoints_req, buffers_backend FROM pg_stat_bgwriter");
  c.checkpoints = bg[0].as<std::int64_t>();
  c.buffers_backend = bg[1].as<std::int64_t>();
  const auto io = txn.exec1(
      "SELECT coalesce(sum(idx_blks_read), 0)::bigint, coalesce(sum(idx_blks_hit), 0)::bigint, "
      "coalesce(sum(heap_blks_read), 0)::bigint, coalesce(sum(heap_blks_hit), 0)::bigint "
      "FROM pg_statio_user_tables WHERE relid IN " + std::string(kProcessedEventsLeaves));
  c.pe_idx_blks_read = io[0].as<std::int64_t>();
  c.pe_idx_blks_hit = io[1].as<std::int64_t>();
  c.pe_heap_blks_read = io[2].as<std::int64_t>();
  c.pe_heap_blks_hit = io[3].as<std::int64_t>();
  return c;
}

nlohmann::json counterDelta(const PgCounters& b, const PgCounters& a, double events) {
  auto per = [&](std::int64_t x) { return events > 0 ? static_cast<double>(x) / events : 0.0; };
  return {{"wal_records", a.wal_records - b.wal_records},
          {"wal_fpi", a.wal_fpi - b.wal_fpi},
          {"wal_bytes", a.wal_bytes - b.wal_bytes},
          {"wal_bytes_per_event", per(a.wal_bytes - b.wal_bytes)},
          {"wal_fpi_per_event", per(a.wal_fpi - b.wal_fpi)},
          {"checkpoints", a.checkpoints - b.checkpoints},
          {"buffers_backend", a.buffers_backend - b.buffers_backend},
          {"pe_idx_blks_read", a.pe_idx_blks_read - b.pe_idx_blks_read},
          {"pe_idx_blks_hit", a.pe_idx_blks_hit - b.pe_idx_blks_hit},
          {"pe_idx_blks_read_per_event", per(a.pe_idx_blks_read - b.pe_idx_blks_read)},
          {"pe_heap_blks_read", a.pe_heap_blks_read - b.pe_heap_blks_read},
          {"pe_heap_blks_hit", a.pe_heap_blks_hit - b.pe_heap_blks_hit}};
}

TableSizes readSizes(const std::string& url) {
  pqxx::connection connection(url);
  pqxx::nontransaction txn(connection);
  TableSizes s;
  txn.exec("ANALYZE public.processed_events");  // reltuples counts the pass's rows too
  const auto pe = txn.exec1(
      "SELECT coalesce(sum(c.reltuples) FILTER (WHERE c.reltuples > 0), 0)::bigint, "
      "coalesce(sum(pg_relation_size(t.relid)), 0)::bigint, "
      "coalesce(sum(pg_indexes_size(t.relid)), 0)::bigint "
      "FROM " + std::string(kProcessedEventsLeaves) + " t JOIN pg_class c ON c.oid = t.relid");
  s.pe_rows = pe[0].as<std::int64_t>();
  s.pe_heap_bytes = pe[1].as<std::int64_t>();
  s.pe_index_bytes = pe[2].as<std::int64_t>();
  s.read_model_bytes = txn.exec1("SELECT pg_total_relation_size('customers.customers') + "
                                 "pg_total_relation_size('accounts.accounts')")[0]
                           .as<std::int64_t>();
  return s;
}

std::vector<SeedQuery> timeSeedQueries(const std::string& url, const std::string& aggregate_id) {
  pqxx::connection connection(url);
  pqxx::nontransaction txn(connection);
  std::vector<SeedQuery> out{
      {"SELECT * FROM processed_events ORDER BY processed_at DESC LIMIT 10", 0, ""},
      {"SELECT * FROM processed_events WHERE aggregate_id = " + txn.quote(aggregate_id), 0, ""}};
  for (auto& query : out) {
    std::vector<double> ms;
    for (int i = 0; i < 5; ++i) {
      const auto started = Clock::now();
      txn.exec(query.sql);
      ms.push_back(since(started) * 1000);
    }
    query.median_ms = percentile(ms, 50);
    for (const auto& row : txn.exec("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + query.sql)) {
      query.plan += row[0].as<std::string>() + "\n";
    }
  }
  return out;
}

}  // namespace ultracore::bench
