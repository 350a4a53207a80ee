#pragma once
/// @file
/// Everything a plugin author includes.
#include "ultracore/sdk/api.h"
#include "ultracore/sdk/catalog.h"
#include "ultracore/sdk/envelope.h"
#include "ultracore/sdk/event.h"
#include "ultracore/sdk/fields.h"
#include "ultracore/sdk/logger.h"
#include "ultracore/sdk/plugin.h"
#include "ultracore/sdk/projection.h"
#include "ultracore/sdk/schema_migration.h"
#include "ultracore/sdk/status.h"
#include "ultracore/sdk/version.h"
#include "ultracore/sdk/writer.h"
