#pragma once

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "nlohmann/json_fwd.hpp"
#include "shapes/definition.h"

namespace shapebridge {

// Binds every parameter of a shape definition for one subscription: parameters from a claim take
// the token's claim; request parameters take the request's text (Postgres's text form of the
// parameter's type) and, when constrained by a claim, must be among the claim's values (every
// element, for an array). Errors say what to change:
//   InvalidArgument: "shape tasks: missing parameter $project (int4)",
//     "shape tasks: parameter $project: invalid input syntax for type integer: \"x\"",
//     "shape tasks: unknown parameter $projekt", "shape tasks: parameter $user comes from the
//     token's claim \"sub\": do not send it"
//   PermissionDenied: "shape tasks: parameter $project = 7 is not among the token's claim
//     \"projects\"", "shape tasks: the token has no claim \"projects\" (parameter $project)"
absl::StatusOr<shapes::ParamValues> BindParams(const shapes::ShapeDefinition& definition,
                                               const std::map<std::string, std::string>& request,
                                               const nlohmann::json& claims);

}  // namespace shapebridge
