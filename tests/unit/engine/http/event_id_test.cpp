// Command event ids under an Idempotency-Key: RFC 4122 version 5 UUIDs, the same for a retry of
// the same command, different for anything else. The known answers come from Python's
// uuid.uuid5, an independent implementation.

#include "engine/http/event_id.h"

#include <set>
#include <stdexcept>

#include <gtest/gtest.h>

namespace ultracore::engine {
namespace {

sdk::NewEvent deposit(const std::string& account = "ACC-1", const std::string& amount = "100.25") {
  sdk::NewEvent event;
  event.topic = "ultracore.accounts.events";
  event.event_type = "FundsDeposited";
  event.aggregate_type = "Account";
  event.aggregate_id = account;
  event.event_data = {{"amount", amount}};
  return event;
}

TEST(EventId, UuidV5MatchesPythonsUuid5) {
  // uuid.uuid5(uuid.NAMESPACE_DNS, "python.org"), the example of Python's documentation.
  EXPECT_EQ(uuidV5("6ba7b810-9dad-11d1-80b4-00c04fd430c8", "python.org"),
            "886313e1-3b8a-5372-9b90-0c9aee199e5d");
  EXPECT_THROW(uuidV5("not-a-uuid", "x"), std::invalid_argument);
}

TEST(EventId, CommandEventIdIsAVersion5UuidOfTenantKeyIndexAndContent) {
  // uuid.uuid5(uuid.UUID("2697f903-587e-5708-879a-8b908210d391"),
  //   "7:DEFAULT5:key-11:025:ultracore.accounts.events14:FundsDeposited7:Account5:ACC-1"
  //   '19:{"amount":"100.25"}')
  EXPECT_EQ(commandEventId("DEFAULT", "key-1", 0, deposit()), "b7d57192-3ac3-5a6b-87fe-31433bd55231");
}

TEST(EventId, ARetryOfTheSameCommandGetsTheSameIdWhateverItsVersion) {
  sdk::NewEvent first = deposit();
  first.aggregate_version = 3;
  sdk::NewEvent retry = deposit();
  retry.aggregate_version = 4;  // the first attempt was applied before the retry validated
  EXPECT_EQ(commandEventId("DEFAULT", "k", 0, first), commandEventId("DEFAULT", "k", 0, retry));
}

TEST(EventId, EveryInputChangesTheId) {
  std::set<std::string> ids{
      commandEventId("DEFAULT", "k", 0, deposit()),
      commandEventId("OTHER", "k", 0, deposit()),
      commandEventId("DEFAULT", "k2", 0, deposit()),
      commandEventId("DEFAULT", "k", 1, deposit()),
      commandEventId("DEFAULT", "k", 0, deposit("ACC-2")),
      commandEventId("DEFAULT", "k", 0, deposit("ACC-1", "100.26")),
      // Length prefixes: moving a character from the tenant to the key is another name.
      commandEventId("DEFAULTk", "", 0, deposit()),
  };
  sdk::NewEvent withdrawn = deposit();
  withdrawn.event_type = "FundsWithdrawn";
  ids.insert(commandEventId("DEFAULT", "k", 0, withdrawn));
  EXPECT_EQ(ids.size(), 8u);
}

}  // namespace
}  // namespace ultracore::engine
