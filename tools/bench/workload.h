#pragma once
/// @file
/// The benchmark workload: a deterministic stream of customers/accounts events (DESIGN.md
/// envelopes with realistic field sizes, many aggregates), its production into the dev broker,
/// and the final read-model state it must produce.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace ultracore::bench {

constexpr const char* kCustomersTopic = "ultracore.customers.events";
constexpr const char* kAccountsTopic = "ultracore.accounts.events";

enum class EventType : std::uint8_t {
  kCustomerCreated,
  kCustomerUpdated,
  kAccountOpened,
  kFundsDeposited,
  kFundsWithdrawn,
  kAccountClosed,
};
const char* eventTypeName(EventType type);
bool isCustomerEvent(EventType type);

/// One event; the fields its type uses are set. Amounts are in cents (exact).
struct BenchEvent {
  EventType type;
  std::string event_id;
  std::string aggregate_id;
  std::int64_t version = 0;
  std::string occurred_at;
  // customers
  std::string first_name, last_name, email, phone, date_of_birth;
  // accounts
  std::string customer_id, account_type, currency;
  std::int64_t amount_cents = 0;
  // where it landed
  int partition = -1;
  std::int64_t offset = -1;
};

/// `count` events in a valid log order (a customer exists before its accounts, an account is
/// opened before money moves, nothing after a close). About 10% customer events.
std::vector<BenchEvent> generateEvents(std::size_t count, std::uint64_t seed);

/// The envelope JSON of DESIGN.md.
std::string toEnvelope(const BenchEvent& event);

std::string formatCents(std::int64_t cents);  ///< -12345 -> "-123.45"

/// Produces every event (key = aggregate_id, murmur2 partitioner, idempotent, acks=all,
/// lz4-compressed batches) and fills in partition/offset. Returns the envelope bytes sent.
std::size_t produceAll(const std::string& bootstrap, std::vector<BenchEvent>& events);

/// The rows the read models must hold after the whole stream (columns as in the plugins).
struct FinalState {
  struct Customer {
    std::string first_name, last_name, email, phone, date_of_birth, created_at, updated_at;
    std::int64_t version = 0;
  };
  struct Account {
    std::string customer_id, account_type, currency, opened_at, updated_at;
    std::int64_t balance_cents = 0;
    std::int64_t version = 0;
    bool closed = false;
    bool moved = false;  ///< any deposit/withdrawal: the balance is then NUMERIC with scale 2
  };
  std::map<std::string, Customer> customers;
  std::map<std::string, Account> accounts;
};
FinalState foldEvents(const std::vector<BenchEvent>& events);

}  // namespace ultracore::bench
