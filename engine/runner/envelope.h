#pragma once
/// @file
/// The engine parses envelopes with the SDK's rules (ultracore/sdk/envelope.h): a record that
/// fails there is poison, before any plugin sees it.

#include "ultracore/sdk/envelope.h"

namespace ultracore::engine {

using sdk::parseEnvelope;

}  // namespace ultracore::engine
