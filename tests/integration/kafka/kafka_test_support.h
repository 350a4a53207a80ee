#pragma once
/// @file
/// Pieces the real-Kafka tests share: a manifest whose kafka: block the test chooses, the
/// partition watermarks, stored-offset sums and a transactional producer. Everything talks to
/// a real Apache Kafka cluster (KafkaCluster) and the real PostgreSQL.

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "engine_harness.h"

namespace ultracore::testing {

/// The ledger test projection's plugin and batch lines, under a `- name: ...` entry.
inline const std::string kLedger =
    "    plugin: ledger\n    batch: { max_events: 100, max_wait_ms: 10 }\n";

/// Runs a clean pass of the ledger over `topic` into `url` (a fresh database) in its own
/// consumer group, until its stored offsets sum to `records_in_log`, and stops it. Fails the
/// test (gtest assertions) when it does not get there.
void cleanPass(const TempDir& dir, const std::string& bootstrap, const std::string& url,
               const std::string& topic, std::size_t records_in_log);

/// The ledger in `url` equals the clean pass in `clean_url` (its rows, processed_events and
/// offsets), and holds `distinct` events, each applied once (gtest expectations).
void expectSameAsCleanPass(const std::string& url, const std::string& clean_url,
                           std::size_t distinct);

/// writeManifest() with `kafka_yaml` (lines indented by two spaces) instead of the harness'
/// session time-out lines; bootstrap.servers stays.
std::filesystem::path writeKafkaManifest(const TempDir& dir, const std::string& bootstrap,
                                         const std::string& postgres_url,
                                         const std::string& kafka_yaml,
                                         const std::string& projections_yaml,
                                         const std::string& name);

/// Makes the manifest's API listen on 127.0.0.1:`port` (writeManifest's says port 0).
void setApiPort(const std::filesystem::path& manifest, int port);

/// The real-Kafka API tests' manifest (`name` in `dir`): the customers projection (2 workers)
/// and the accounts projection, batches of 500 / 5 ms, session.timeout.ms 6000, the API on
/// 127.0.0.1:`port`. The two topics must exist.
std::filesystem::path writeApiManifest(const TempDir& dir, const std::string& bootstrap,
                                       const std::string& postgres_url, int port,
                                       const std::string& name);

/// True once the API on 127.0.0.1:`port` answers GET /readyz with 200 (within `timeout`).
bool waitForApiReady(int port, std::chrono::seconds timeout = std::chrono::seconds(120));

/// Low and high watermark of one partition, asked of the broker.
std::pair<std::int64_t, std::int64_t> watermarks(const std::string& bootstrap,
                                                 const std::string& topic, int partition);

/// Sum of the stored next offsets of a projection key ("0" before the tables exist).
std::string storedSum(const std::string& url, const std::string& projection = "");

/// The ledger projection's checksums (rows, processed_events, offsets) for comparing a
/// database with a clean pass.
std::string ledgerRows(const std::string& url);
std::string processedRows(const std::string& url);
std::string offsetRows(const std::string& url);

/// Every record value of `topic` from the start of each partition to its log end now
/// (read_committed, no consumer group).
std::vector<std::string> readTopic(const std::string& bootstrap, const std::string& topic,
                                   int partitions);

/// Records produced in Kafka transactions by one transactional producer: each inner vector
/// is one transaction, committed when `commit[i]`, else aborted. Throws on any failure.
void produceTransactions(const std::string& bootstrap, const std::string& transactional_id,
                         const std::vector<std::vector<Record>>& transactions,
                         const std::vector<bool>& commit);

}  // namespace ultracore::testing
