#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "bridge/common/pg.h"
#include "shapes/definition.h"

namespace shapebridge {

// Reads a table's columns (in attribute order, the order of pgoutput's tuples) and its primary key
// from the catalog. NotFound names the table when it does not exist; a table without a primary
// key is FailedPrecondition (shapes identify rows by it).
absl::StatusOr<shapes::TableSchema> LoadTableSchema(PgConnection& sql, const std::string& table);

}  // namespace shapebridge
