#pragma once

#include <map>
#include <string>
#include <vector>

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

// Every binding of the definition's parameters that the token's claims permit (at most `max`),
// for checking a row against what a token may reach: a claim parameter takes the claim (as
// BindParams does); a request parameter limited by a claim takes each of the claim's values in
// turn, or, for an array parameter, all of them at once. None when a parameter comes from the
// request with no claim to limit it, or when a claim is missing or holds values the parameter's
// type does not take.
std::vector<shapes::ParamValues> TokenBindings(const shapes::ShapeDefinition& definition,
                                               const nlohmann::json& claims, size_t max);

}  // namespace shapebridge
