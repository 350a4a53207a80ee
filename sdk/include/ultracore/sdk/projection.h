#pragma once
/// @file
/// Projection: turns events into rows of a read model.

#include <span>
#include <string>

#include "ultracore/sdk/version.h"

#include <nlohmann/json.hpp>

#include "ultracore/sdk/event.h"
#include "ultracore/sdk/logger.h"
#include "ultracore/sdk/status.h"
#include "ultracore/sdk/writer.h"

namespace ultracore::sdk {

/// What the engine tells a projection when it creates it. Valid for the projection's life.
struct ProjectionContext {
  std::string projection_name;  ///< the manifest's name for this instance
  std::string schema;           ///< the schema it writes into (also Writer::schema())
  nlohmann::json config = nlohmann::json::object();  ///< the manifest entry's `config:` map
  Logger* logger = nullptr;     ///< never null when the engine creates the projection
};

/// Created by the engine through the plugin's factory, and destroyed through the plugin's
/// destroy function: one instance per runner (a projection with `workers: N` has N, a rebuild
/// or a restart after rollback/reset/reload gets new ones), so keep no state between batches
/// that another instance would need. Before any instance's first apply(), setupSchema() has
/// run on the schema it writes into (by one of the instances). apply() is called from one
/// runner thread at a time per instance, never concurrently on one instance.
///
/// Guarantees given to apply(): events of one aggregate arrive in log order; an event whose
/// event_id this projection already applied is never passed again; the writes of one call
/// commit atomically with the batch's offsets. A call may be retried with the same events if
/// the transaction failed, and the engine may split a batch to isolate a failing event: apply
/// must depend only on the events and on what is in the database, never on batch boundaries.
class ULTRACORE_SDK_API Projection {
 public:
  virtual ~Projection() = default;

  /// Version of the DDL below; bump it when the tables change.
  virtual int schemaVersion() const = 0;

  /// Idempotent DDL for the projection's tables in `{schema}` (CREATE ... IF NOT EXISTS).
  /// The engine creates the schema itself and runs this in a transaction.
  virtual Status setupSchema(Writer& db) = 0;

  /// Applies the events, in order, inside the batch's transaction. Return a non-ok Status to
  /// reject the batch; the projection's on_error policy decides what happens next.
  virtual Status apply(std::span<const Event> events, Writer& db) = 0;
};

}  // namespace ultracore::sdk
