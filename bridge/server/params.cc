#include "bridge/server/params.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace shapebridge {

namespace {

// A claim's JSON scalar as Postgres text, or nullopt for objects and arrays.
std::optional<std::string> ScalarText(const nlohmann::json& j) {
  if (j.is_string()) return j.get<std::string>();
  if (j.is_boolean()) return j.get<bool>() ? "true" : "false";
  if (j.is_number_integer()) return std::to_string(j.get<int64_t>());
  if (j.is_number_unsigned()) return std::to_string(j.get<uint64_t>());
  if (j.is_number_float()) return j.dump();
  return std::nullopt;
}

// The claim's values typed as `element`.
absl::StatusOr<std::vector<Value>> ClaimValues(const std::string& where,
                                               const shapes::ShapeParam& param,
                                               const nlohmann::json& claim) {
  const shapes::SqlType element{param.type.id, false};
  std::vector<const nlohmann::json*> items;
  if (claim.is_array()) {
    for (const auto& item : claim) items.push_back(&item);
  } else {
    items.push_back(&claim);
  }
  std::vector<Value> out;
  for (const nlohmann::json* item : items) {
    std::optional<std::string> text = ScalarText(*item);
    if (!text) {
      return absl::PermissionDeniedError(
          absl::StrCat(where, ": the token's claim \"", param.claim, "\" holds ", item->dump(),
                       ", not a value of type ", element.ToString()));
    }
    absl::StatusOr<Value> v = shapes::ParseTypedText(element, *text);
    if (!v.ok()) {
      return absl::PermissionDeniedError(absl::StrCat(where, ": the token's claim \"", param.claim,
                                                      "\": ", std::string(v.status().message())));
    }
    out.push_back(*std::move(v));
  }
  return out;
}

}  // namespace

absl::StatusOr<shapes::ParamValues> BindParams(const shapes::ShapeDefinition& definition,
                                               const std::map<std::string, std::string>& request,
                                               const nlohmann::json& claims) {
  const std::string shape = absl::StrCat("shape ", definition.name);
  for (const auto& [name, value] : request) {
    const bool known = std::any_of(definition.params.begin(), definition.params.end(),
                                   [&](const shapes::ShapeParam& p) { return p.name == name; });
    if (!known) {
      return absl::InvalidArgumentError(
          absl::StrCat(shape, ": unknown parameter $", name,
                       definition.params.empty() ? " (the shape takes no parameters)" : ""));
    }
  }
  shapes::ParamValues values;
  for (const shapes::ShapeParam& p : definition.params) {
    const std::string where = absl::StrCat(shape, ": parameter $", p.name);
    const nlohmann::json* claim = nullptr;
    if (!p.claim.empty()) {
      if (claims.is_object() && claims.contains(p.claim)) claim = &claims.at(p.claim);
      if (claim == nullptr || claim->is_null()) {
        return absl::PermissionDeniedError(absl::StrCat(shape, ": the token has no claim \"",
                                                        p.claim, "\" (parameter $", p.name, ")"));
      }
    }
    auto given = request.find(p.name);
    if (p.source == shapes::ParamSource::kClaim) {
      if (given != request.end()) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, " comes from the token's claim \"", p.claim, "\": do not send it"));
      }
      absl::StatusOr<std::vector<Value>> typed = ClaimValues(where, p, *claim);
      if (!typed.ok()) return typed.status();
      if (p.type.array) {
        values.emplace(p.name, shapes::MakeArray(*typed, shapes::SqlType{p.type.id, false}));
      } else {
        if (claim->is_array()) {
          return absl::PermissionDeniedError(absl::StrCat(where, ": the token's claim \"", p.claim,
                                                          "\" is an array; the parameter is ",
                                                          p.type.ToString()));
        }
        values.emplace(p.name, (*typed)[0]);
      }
      continue;
    }
    if (given == request.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat(shape, ": missing parameter $", p.name, " (", p.type.ToString(), ")"));
    }
    absl::StatusOr<Value> v = shapes::ParseTypedText(p.type, given->second);
    if (!v.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": ", std::string(v.status().message())));
    }
    if (claim != nullptr) {
      absl::StatusOr<std::vector<Value>> allowed = ClaimValues(where, p, *claim);
      if (!allowed.ok()) return allowed.status();
      std::vector<Value> wanted = {*v};
      if (p.type.array) {
        // Each element must be allowed.
        absl::StatusOr<std::vector<Value>> elements = shapes::ArrayElements(*v, p.type);
        if (!elements.ok()) {
          return absl::InvalidArgumentError(
              absl::StrCat(where, ": ", std::string(elements.status().message())));
        }
        wanted = *std::move(elements);
      }
      for (const Value& w : wanted) {
        if (std::find(allowed->begin(), allowed->end(), w) == allowed->end()) {
          return absl::PermissionDeniedError(absl::StrCat(
              where, " = ", w.DebugString(), " is not among the token's claim \"", p.claim, "\""));
        }
      }
    }
    values.emplace(p.name, *std::move(v));
  }
  return values;
}

std::vector<shapes::ParamValues> TokenBindings(const shapes::ShapeDefinition& definition,
                                               const nlohmann::json& claims, size_t max) {
  std::vector<shapes::ParamValues> bindings = {{}};
  for (const shapes::ShapeParam& p : definition.params) {
    if (p.claim.empty() || !claims.is_object() || !claims.contains(p.claim)) return {};
    const nlohmann::json& claim = claims.at(p.claim);
    absl::StatusOr<std::vector<Value>> typed = ClaimValues("", p, claim);
    if (claim.is_null() || !typed.ok()) return {};
    std::vector<Value> candidates;
    if (p.type.array) {
      candidates.push_back(shapes::MakeArray(*typed, shapes::SqlType{p.type.id, false}));
    } else if (p.source == shapes::ParamSource::kRequest) {
      candidates = *std::move(typed);
    } else if (!claim.is_array()) {
      candidates.push_back((*typed)[0]);
    }
    std::vector<shapes::ParamValues> next;
    for (const shapes::ParamValues& b : bindings) {
      for (const Value& c : candidates) {
        if (next.size() >= max) break;
        shapes::ParamValues bound = b;
        bound.insert_or_assign(p.name, c);
        next.push_back(std::move(bound));
      }
    }
    bindings = std::move(next);
  }
  return bindings;
}

}  // namespace shapebridge
