#include "tools/bench/workload.h"

#include <cstdio>
#include <random>
#include <stdexcept>

#include <librdkafka/rdkafka.h>

namespace ultracore::bench {
namespace {

constexpr const char* kFirstNames[] = {"Ada", "Grace", "Alan", "Barbara", "Edsger", "Margaret",
                                       "Donald", "Frances", "Niklaus", "Radia", "Ken", "Shafi",
                                       "Tony", "Leslie", "Sophie", "Bjarne"};
constexpr const char* kLastNames[] = {"Lovelace", "Hopper", "Turing", "Liskov", "Dijkstra",
                                      "Hamilton", "Knuth", "Allen", "Wirth", "Perlman",
                                      "Thompson", "Goldwasser", "Hoare", "Lamport", "Wilson",
                                      "Stroustrup"};
constexpr const char* kAccountTypes[] = {"checking", "savings", "business"};
constexpr const char* kCurrencies[] = {"EUR", "USD", "GBP", "CHF"};

std::string uuid(std::mt19937_64& rng) {
  const std::uint64_t a = rng(), b = rng();
  char out[37];
  std::snprintf(out, sizeof(out), "%08x-%04x-4%03x-%04x-%012llx",
                static_cast<unsigned>(a >> 32), static_cast<unsigned>((a >> 16) & 0xffff),
                static_cast<unsigned>(a & 0xfff),
                static_cast<unsigned>(0x8000 | ((b >> 48) & 0x3fff)),
                static_cast<unsigned long long>(b & 0xffffffffffffULL));
  return out;
}

/// 2026-01-01T00:00:00.000Z plus `ms`.
std::string timestamp(std::int64_t ms) {
  const std::int64_t s = ms / 1000;
  const int days = static_cast<int>(s / 86400);
  // January to March of 2026 is enough for any benchmark size (1 event per 5 ms).
  static constexpr int kMonthDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int month = 0, day = days;
  while (month < 11 && day >= kMonthDays[month]) day -= kMonthDays[month++];
  char out[64];
  std::snprintf(out, sizeof(out), "2026-%02d-%02dT%02d:%02d:%02d.%03dZ", month + 1, day + 1,
                static_cast<int>(s % 86400 / 3600), static_cast<int>(s % 3600 / 60),
                static_cast<int>(s % 60), static_cast<int>(ms % 1000));
  return out;
}

void jsonString(std::string& out, const std::string& value) {
  out.push_back('"');
  for (char c : value) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('"');
}

void field(std::string& out, const char* name, const std::string& value, bool comma = true) {
  if (comma) out.push_back(',');
  out.push_back('"');
  out += name;
  out += "\":";
  jsonString(out, value);
}

}  // namespace

const char* eventTypeName(EventType type) {
  switch (type) {
    case EventType::kCustomerCreated: return "CustomerCreated";
    case EventType::kCustomerUpdated: return "CustomerUpdated";
    case EventType::kAccountOpened: return "AccountOpened";
    case EventType::kFundsDeposited: return "FundsDeposited";
    case EventType::kFundsWithdrawn: return "FundsWithdrawn";
    case EventType::kAccountClosed: return "AccountClosed";
  }
  return "?";
}

bool isCustomerEvent(EventType type) {
  return type == EventType::kCustomerCreated || type == EventType::kCustomerUpdated;
}

std::string formatCents(std::int64_t cents) {
  const bool negative = cents < 0;
  const std::uint64_t magnitude = negative ? static_cast<std::uint64_t>(-cents) : cents;
  char out[32];
  std::snprintf(out, sizeof(out), "%s%llu.%02llu", negative ? "-" : "",
                static_cast<unsigned long long>(magnitude / 100),
                static_cast<unsigned long long>(magnitude % 100));
  return out;
}

std::vector<BenchEvent> generateEvents(std::size_t count, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<BenchEvent> events;
  events.reserve(count);
  struct Aggregate {
    std::string id;
    std::int64_t version = 0;
  };
  std::vector<Aggregate> customers;
  std::vector<Aggregate> accounts;  // open ones
  std::size_t customer_seq = 0, account_seq = 0;
  auto pick = [&](std::size_t n) { return static_cast<std::size_t>(rng() % n); };
  auto name = [&](const auto& list) { return std::string(list[pick(std::size(list))]); };
  while (events.size() < count) {
    BenchEvent event;
    const double roll = static_cast<double>(rng() % 10000) / 10000.0;
    event.event_id = uuid(rng);
    event.occurred_at = timestamp(static_cast<std::int64_t>(events.size()) * 5);
    if (customers.size() < 10 || roll < 0.06) {
      char id[32];
      std::snprintf(id, sizeof(id), "CUST-%08zu", ++customer_seq);
      customers.push_back({id, 1});
      event.type = EventType::kCustomerCreated;
      event.aggregate_id = id;
      event.version = 1;
      event.first_name = name(kFirstNames);
      event.last_name = name(kLastNames);
      event.email = event.first_name + "." + event.last_name + "." + std::to_string(customer_seq) +
                    "@example.com";
      event.phone = "+44 20 7946 " + std::to_string(1000 + pick(9000));
      char dob[16];
      std::snprintf(dob, sizeof(dob), "19%02zu-%02zu-%02zu", 40 + pick(60), 1 + pick(12),
                    1 + pick(28));
      event.date_of_birth = dob;
    } else if (roll < 0.10) {
      Aggregate& customer = customers[pick(customers.size())];
      event.type = EventType::kCustomerUpdated;
      event.aggregate_id = customer.id;
      event.version = ++customer.version;
      event.email = "updated." + std::to_string(event.version) + "." + customer.id +
                    "@mail.example.org";
      event.phone = "+44 161 496 " + std::to_string(1000 + pick(9000));
    } else if (accounts.size() < 10 || roll < 0.17) {
      char id[32];
      std::snprintf(id, sizeof(id), "ACC-%09zu", ++account_seq);
      accounts.push_back({id, 1});
      event.type = EventType::kAccountOpened;
      event.aggregate_id = id;
      event.version = 1;
      event.customer_id = customers[pick(customers.size())].id;
      event.account_type = name(kAccountTypes);
      event.currency = name(kCurrencies);
    } else if (roll < 0.175) {
      const std::size_t index = pick(accounts.size());
      event.type = EventType::kAccountClosed;
      event.aggregate_id = accounts[index].id;
      event.version = accounts[index].version + 1;
      accounts[index] = accounts.back();
      accounts.pop_back();
    } else {
      Aggregate& account = accounts[pick(accounts.size())];
      event.type = roll < 0.65 ? EventType::kFundsDeposited : EventType::kFundsWithdrawn;
      event.aggregate_id = account.id;
      event.version = ++account.version;
      event.amount_cents = 1 + static_cast<std::int64_t>(pick(250000));
    }
    events.push_back(std::move(event));
  }
  return events;
}

std::string toEnvelope(const BenchEvent& event) {
  std::string out;
  out.reserve(420);
  out.push_back('{');
  field(out, "event_id", event.event_id, false);
  field(out, "event_type", eventTypeName(event.type));
  field(out, "aggregate_type", isCustomerEvent(event.type) ? "Customer" : "Account");
  field(out, "aggregate_id", event.aggregate_id);
  out += ",\"aggregate_version\":" + std::to_string(event.version);
  field(out, "tenant_id", "DEFAULT");
  field(out, "user_id", "bench-user-0042");
  field(out, "occurred_at", event.occurred_at);
  out += ",\"event_data\":{";
  switch (event.type) {
    case EventType::kCustomerCreated:
      field(out, "first_name", event.first_name, false);
      field(out, "last_name", event.last_name);
      field(out, "email", event.email);
      field(out, "phone", event.phone);
      field(out, "date_of_birth", event.date_of_birth);
      break;
    case EventType::kCustomerUpdated:
      field(out, "email", event.email, false);
      field(out, "phone", event.phone);
      break;
    case EventType::kAccountOpened:
      field(out, "customer_id", event.customer_id, false);
      field(out, "account_type", event.account_type);
      field(out, "currency", event.currency);
      break;
    case EventType::kFundsDeposited:
    case EventType::kFundsWithdrawn:
      field(out, "amount", formatCents(event.amount_cents), false);
      field(out, "reference", "TRX-" + event.event_id.substr(0, 13));
      break;
    case EventType::kAccountClosed:
      break;
  }
  out += "}}";
  return out;
}

namespace {

struct Delivery {
  std::vector<BenchEvent>* events;
  std::size_t delivered = 0;
  std::string first_error;
};

void onDelivery(rd_kafka_t*, const rd_kafka_message_t* message, void* opaque) {
  auto* state = static_cast<Delivery*>(opaque);
  if (message->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    if (state->first_error.empty()) state->first_error = rd_kafka_err2str(message->err);
    return;
  }
  auto& event = (*state->events)[reinterpret_cast<std::uintptr_t>(message->_private)];
  event.partition = message->partition;
  event.offset = message->offset;
  ++state->delivered;
}

}  // namespace

std::size_t produceAll(const std::string& bootstrap, std::vector<BenchEvent>& events) {
  char error[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  Delivery state;
  state.events = &events;
  for (const auto& [key, value] : std::vector<std::pair<std::string, std::string>>{
           {"bootstrap.servers", bootstrap},
           {"enable.idempotence", "true"},
           {"acks", "all"},
           {"linger.ms", "20"},
           {"batch.size", "1000000"},
           {"compression.type", "lz4"},
           {"partitioner", "murmur2_random"},
           {"queue.buffering.max.messages", "500000"},
           {"message.timeout.ms", "120000"}}) {
    if (rd_kafka_conf_set(conf, key.c_str(), value.c_str(), error, sizeof(error)) !=
        RD_KAFKA_CONF_OK) {
      throw std::runtime_error(error);
    }
  }
  rd_kafka_conf_set_dr_msg_cb(conf, onDelivery);
  rd_kafka_conf_set_opaque(conf, &state);
  rd_kafka_t* producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error, sizeof(error));
  if (producer == nullptr) throw std::runtime_error(error);
  std::size_t bytes = 0;
  for (std::size_t i = 0; i < events.size(); ++i) {
    const BenchEvent& event = events[i];
    const std::string value = toEnvelope(event);
    bytes += value.size();
    const char* topic = isCustomerEvent(event.type) ? kCustomersTopic : kAccountsTopic;
    for (;;) {
      const rd_kafka_resp_err_t err = rd_kafka_producev(
          producer, RD_KAFKA_V_TOPIC(topic),
          RD_KAFKA_V_KEY(event.aggregate_id.data(), event.aggregate_id.size()),
          RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
          RD_KAFKA_V_OPAQUE(reinterpret_cast<void*>(static_cast<std::uintptr_t>(i))),
          RD_KAFKA_V_END);
      if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        rd_kafka_poll(producer, 20);
        continue;
      }
      if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        rd_kafka_destroy(producer);
        throw std::runtime_error(std::string("produce: ") + rd_kafka_err2str(err));
      }
      break;
    }
    rd_kafka_poll(producer, 0);
  }
  rd_kafka_flush(producer, 120000);
  rd_kafka_destroy(producer);
  if (!state.first_error.empty() || state.delivered != events.size()) {
    throw std::runtime_error("produce: " + std::to_string(state.delivered) + " of " +
                             std::to_string(events.size()) + " delivered; " + state.first_error);
  }
  return bytes;
}

FinalState foldEvents(const std::vector<BenchEvent>& events) {
  FinalState state;
  for (const BenchEvent& event : events) {
    switch (event.type) {
      case EventType::kCustomerCreated: {
        auto& c = state.customers[event.aggregate_id];
        c = {event.first_name, event.last_name, event.email,      event.phone,
             event.date_of_birth, event.occurred_at, event.occurred_at, event.version};
        break;
      }
      case EventType::kCustomerUpdated: {
        auto& c = state.customers.at(event.aggregate_id);
        c.email = event.email;
        c.phone = event.phone;
        c.version = event.version;
        c.updated_at = event.occurred_at;
        break;
      }
      case EventType::kAccountOpened: {
        auto& a = state.accounts[event.aggregate_id];
        a.customer_id = event.customer_id;
        a.account_type = event.account_type;
        a.currency = event.currency;
        a.opened_at = a.updated_at = event.occurred_at;
        a.version = event.version;
        break;
      }
      case EventType::kFundsDeposited:
      case EventType::kFundsWithdrawn:
      case EventType::kAccountClosed: {
        auto& a = state.accounts.at(event.aggregate_id);
        if (event.type == EventType::kFundsDeposited) a.balance_cents += event.amount_cents;
        if (event.type == EventType::kFundsWithdrawn) a.balance_cents -= event.amount_cents;
        if (event.type == EventType::kAccountClosed) a.closed = true;
        if (event.type != EventType::kAccountClosed) a.moved = true;
        a.version = event.version;
        a.updated_at = event.occurred_at;
        break;
      }
    }
  }
  return state;
}

}  // namespace ultracore::bench
