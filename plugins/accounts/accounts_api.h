#pragma once
/// @file
/// AccountsApi: the accounts plugin's commands and queries (see accounts_api.cpp).

#include "ultracore/sdk/sdk.h"

namespace ultracore::plugins::accounts {

/// Stateless after construction; handle() is safe from many threads.
class AccountsApi final : public sdk::RouteTable {
 public:
  explicit AccountsApi(const sdk::ApiContext& context);
};

}  // namespace ultracore::plugins::accounts
