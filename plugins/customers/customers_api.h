#pragma once
/// @file
/// CustomersApi: the customers plugin's commands and queries (see customers_api.cpp).

#include <optional>
#include <variant>

#include "ultracore/sdk/sdk.h"

namespace ultracore::plugins::customers {

/// Stateless after construction; handle() is safe from many threads.
class CustomersApi final : public sdk::RouteTable {
 public:
  explicit CustomersApi(const sdk::ApiContext& context);
};

}  // namespace ultracore::plugins::customers
