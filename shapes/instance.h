#pragma once

// Shape instances: a definition with every parameter bound, plus an optional client filter.
// Many subscriptions with the same bound values share one instance (and one log), so an
// instance's identity is a hash of everything that changes its rows.

#include <compare>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "shapes/definition.h"
#include "shapes/expr.h"

namespace shapebridge::shapes {

// The identity of a shape instance: the first 128 bits of a SHA-256 over the definition version,
// the canonical bound predicate (filter included), the bound values and the columns. Prints as
// 32 lower-case hex digits.
class InstanceId {
 public:
  constexpr InstanceId() = default;
  constexpr InstanceId(uint64_t high, uint64_t low) : high_(high), low_(low) {}

  // Parses the 32-digit hex form.
  static absl::StatusOr<InstanceId> Parse(std::string_view hex);

  std::string ToString() const;
  constexpr uint64_t high() const { return high_; }
  constexpr uint64_t low() const { return low_; }
  constexpr bool valid() const { return high_ != 0 || low_ != 0; }
  friend constexpr auto operator<=>(InstanceId, InstanceId) = default;

 private:
  uint64_t high_ = 0;
  uint64_t low_ = 0;
};

std::ostream& operator<<(std::ostream& os, InstanceId id);

// An instance. Immutable; shared (std::shared_ptr) by the router's index and the subscriptions
// that serve it.
class ShapeInstance {
 public:
  // Binds every parameter of `definition` (each must have a value of its type; values for
  // parameters the definition does not declare are errors) and ANDs on `filter`, an expression in
  // the WHERE language over the shape's columns only, without parameters ("" for none). Errors
  // are InvalidArgument naming the shape and the parameter or the filter construct. Checking the
  // values against the caller's claims is the caller's job.
  static absl::StatusOr<std::shared_ptr<const ShapeInstance>> Create(
      std::shared_ptr<const ShapeDefinition> definition, ParamValues values,
      std::string_view filter = "");

  ShapeInstance(const ShapeInstance&) = delete;
  ShapeInstance& operator=(const ShapeInstance&) = delete;

  InstanceId id() const { return id_; }
  const ShapeDefinition& definition() const { return *definition_; }
  const std::shared_ptr<const ShapeDefinition>& shared_definition() const { return definition_; }
  const ParamValues& values() const { return values_; }
  // The bound WHERE ANDed with the filter, over the table's columns; null when every row of the
  // table belongs to the instance.
  const Expr* predicate() const { return predicate_.get(); }
  // The client filter as given to Create ("" for none).
  const std::string& filter() const { return filter_; }
  // Canonical(predicate()), "" when there is none.
  const std::string& canonical_predicate() const { return canonical_; }

  // Whether a full row of the table (one value per table column, none kUnchanged) belongs to the
  // instance. An evaluation error (an overflow in the predicate, say) is returned as is.
  absl::StatusOr<bool> Matches(const std::vector<Value>& row) const;

 private:
  ShapeInstance() = default;

  std::shared_ptr<const ShapeDefinition> definition_;
  ParamValues values_;
  std::unique_ptr<const Expr> predicate_;
  std::string filter_;
  std::string canonical_;
  InstanceId id_;
};

}  // namespace shapebridge::shapes

template <>
struct std::hash<shapebridge::shapes::InstanceId> {
  size_t operator()(shapebridge::shapes::InstanceId id) const noexcept {
    return static_cast<size_t>(id.low() ^ (id.high() * 0x9e3779b97f4a7c15ULL));
  }
};
