// Evaluation of a type-checked WHERE expression with Postgres semantics.

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "shapes/decimal.h"
#include "shapes/expr.h"
#include "shapes/expr_internal.h"

namespace shapebridge::shapes {
namespace {

using internal::CastValue;
using internal::CompareValues;
using internal::IsIntFamily;

struct Context {
  const std::vector<Value>& row;
  const ParamValues& params;
};

absl::StatusOr<Value> Eval(const Expr& e, const Context& ctx);
bool HasColumn(const Expr& e);

absl::Status OutOfRange(TypeId id) {
  switch (id) {
    case TypeId::kInt2:
      return absl::OutOfRangeError("smallint out of range");
    case TypeId::kInt4:
      return absl::OutOfRangeError("integer out of range");
    default:
      return absl::OutOfRangeError("bigint out of range");
  }
}

bool Fits(TypeId id, int64_t v) {
  if (id == TypeId::kInt2) return v >= INT16_MIN && v <= INT16_MAX;
  if (id == TypeId::kInt4) return v >= INT32_MIN && v <= INT32_MAX;
  return true;
}

// Three-valued boolean: nullopt is NULL.
std::optional<bool> Tri(const Value& v) {
  if (v.is_null()) return std::nullopt;
  return v.bool_value();
}

absl::StatusOr<Decimal> AsDecimal(const Value& v, TypeId id) {
  if (IsIntFamily(id)) return Decimal::FromInt(v.int_value());
  return Decimal::Parse(v.string_value());
}

absl::StatusOr<Value> IntArith(Op op, TypeId type, int64_t a, int64_t b) {
  int64_t r = 0;
  switch (op) {
    case Op::kAdd:
      if (__builtin_add_overflow(a, b, &r)) return OutOfRange(type);
      break;
    case Op::kSub:
      if (__builtin_sub_overflow(a, b, &r)) return OutOfRange(type);
      break;
    case Op::kMul:
      if (__builtin_mul_overflow(a, b, &r)) return OutOfRange(type);
      break;
    case Op::kDiv:
      if (b == 0) return absl::InvalidArgumentError("division by zero");
      if (b == -1) {
        if (__builtin_sub_overflow(int64_t{0}, a, &r)) return OutOfRange(type);
      } else {
        r = a / b;  // C++ truncates toward zero, as Postgres does
      }
      break;
    case Op::kMod:
      if (b == 0) return absl::InvalidArgumentError("division by zero");
      r = b == -1 ? 0 : a % b;
      break;
    default:
      return absl::InternalError("not an arithmetic operator");
  }
  if (!Fits(type, r)) return OutOfRange(type);
  return Value::Int(r);
}

absl::StatusOr<Value> FloatArith(Op op, bool is_float4, double a, double b) {
  double r = 0;
  switch (op) {
    case Op::kAdd:
      r = is_float4 ? static_cast<double>(static_cast<float>(a) + static_cast<float>(b)) : a + b;
      break;
    case Op::kSub:
      r = is_float4 ? static_cast<double>(static_cast<float>(a) - static_cast<float>(b)) : a - b;
      break;
    case Op::kMul:
      r = is_float4 ? static_cast<double>(static_cast<float>(a) * static_cast<float>(b)) : a * b;
      break;
    case Op::kDiv:
      if (b == 0.0 && !std::isnan(a)) return absl::InvalidArgumentError("division by zero");
      r = is_float4 ? static_cast<double>(static_cast<float>(a) / static_cast<float>(b)) : a / b;
      break;
    default:
      return absl::InternalError("not a float operator");
  }
  // Postgres's float overflow and underflow checks.
  if (std::isinf(r) && !std::isinf(a) && !std::isinf(b)) {
    return absl::OutOfRangeError("value out of range: overflow");
  }
  if ((op == Op::kMul || op == Op::kDiv) && r == 0.0 && a != 0.0 &&
      (op == Op::kDiv ? !std::isinf(b) : b != 0.0)) {
    return absl::OutOfRangeError("value out of range: underflow");
  }
  return Value::Float(r);
}

absl::StatusOr<Value> Arith(const Expr& e, const Value& a, const Value& b) {
  const SqlType& ta = e.args[0]->type;
  const SqlType& tb = e.args[1]->type;
  const TypeId rt = e.type.id;
  if (ta.id == TypeId::kDate || tb.id == TypeId::kDate) {
    if (ta.id == TypeId::kDate && tb.id == TypeId::kDate) {
      const int64_t x = a.int_value();
      const int64_t y = b.int_value();
      auto is_inf = [](int64_t d) {
        return d == Value::kDateInfinity || d == Value::kDateMinusInfinity;
      };
      if (is_inf(x) || is_inf(y)) {
        return absl::InvalidArgumentError("cannot subtract infinite dates");
      }
      return IntArith(Op::kSub, TypeId::kInt4, x, y);
    }
    const int64_t days = ta.id == TypeId::kDate ? a.int_value() : b.int_value();
    int64_t n = ta.id == TypeId::kDate ? b.int_value() : a.int_value();
    if (days == Value::kDateInfinity || days == Value::kDateMinusInfinity) {
      return Value::Date(days);
    }
    if (e.op == Op::kSub) n = -n;
    const int64_t r = days + n;
    // Postgres's date range: 4714-11-24 BC .. 5874897-12-31.
    if (r < -2440588 || r > 2145042905) return absl::OutOfRangeError("date out of range");
    return Value::Date(r);
  }
  if (IsIntFamily(rt)) return IntArith(e.op, rt, a.int_value(), b.int_value());
  if (rt == TypeId::kNumeric) {
    absl::StatusOr<Decimal> x = AsDecimal(a, ta.id);
    absl::StatusOr<Decimal> y = AsDecimal(b, tb.id);
    if (!x.ok()) return x.status();
    if (!y.ok()) return y.status();
    absl::StatusOr<Decimal> r;
    switch (e.op) {
      case Op::kAdd:
        r = Decimal::Add(*x, *y);
        break;
      case Op::kSub:
        r = Decimal::Sub(*x, *y);
        break;
      case Op::kMul:
        r = Decimal::Mul(*x, *y);
        break;
      case Op::kDiv:
        r = Decimal::Div(*x, *y);
        break;
      case Op::kMod:
        r = Decimal::Mod(*x, *y);
        break;
      default:
        return absl::InternalError("not a numeric operator");
    }
    if (!r.ok()) return r.status();
    if (r->digit_count() > kMaxDigits) {
      return absl::OutOfRangeError("value overflows numeric format");
    }
    return Value::String(ValueKind::kNumeric, r->ToString());
  }
  // Float: convert both sides to the result type first.
  absl::StatusOr<Value> x = CastValue(a, ta, e.type);
  absl::StatusOr<Value> y = CastValue(b, tb, e.type);
  if (!x.ok()) return x.status();
  if (!y.ok()) return y.status();
  return FloatArith(e.op, rt == TypeId::kFloat4, x->float_value(), y->float_value());
}

// Postgres's MatchText (like_match.c), ported: bytewise, except that _ consumes one UTF-8
// character; \ escapes the next pattern byte. The trailing-escape error is raised only when the
// matcher reaches it, as in Postgres.
enum class LikeResult : uint8_t { kTrue, kFalse, kAbort, kError };

LikeResult MatchText(std::string_view t, std::string_view p) {
  auto next_char = [](std::string_view& s) {
    const unsigned char c = static_cast<unsigned char>(s[0]);
    size_t n = 1;
    if (c >= 0xF0) {
      n = 4;
    } else if (c >= 0xE0) {
      n = 3;
    } else if (c >= 0xC0) {
      n = 2;
    }
    s.remove_prefix(std::min(n, s.size()));
  };
  if (p.size() == 1 && p[0] == '%') return LikeResult::kTrue;
  while (!t.empty() && !p.empty()) {
    if (p[0] == '\\') {
      p.remove_prefix(1);
      if (p.empty()) return LikeResult::kError;
      if (p[0] != t[0]) return LikeResult::kFalse;
    } else if (p[0] == '%') {
      p.remove_prefix(1);
      while (!p.empty()) {
        if (p[0] == '%') {
          p.remove_prefix(1);
        } else if (p[0] == '_') {
          if (t.empty()) return LikeResult::kAbort;
          next_char(t);
          p.remove_prefix(1);
        } else {
          break;
        }
      }
      if (p.empty()) return LikeResult::kTrue;
      char first = p[0];
      if (p[0] == '\\') {
        if (p.size() < 2) return LikeResult::kError;
        first = p[1];
      }
      while (!t.empty()) {
        if (t[0] == first) {
          const LikeResult m = MatchText(t, p);
          if (m != LikeResult::kFalse) return m;
        }
        next_char(t);
      }
      return LikeResult::kAbort;
    } else if (p[0] == '_') {
      next_char(t);
      p.remove_prefix(1);
      continue;
    } else if (p[0] != t[0]) {
      return LikeResult::kFalse;
    }
    t.remove_prefix(1);
    p.remove_prefix(1);
  }
  if (!t.empty()) return LikeResult::kFalse;
  while (!p.empty() && p[0] == '%') p.remove_prefix(1);
  return p.empty() ? LikeResult::kTrue : LikeResult::kAbort;
}

absl::StatusOr<bool> Like(std::string s, std::string p, bool ilike) {
  if (ilike) {
    // ASCII case folding: what lower() does in the C locale, which Postgres's ILIKE uses.
    s = absl::AsciiStrToLower(s);
    p = absl::AsciiStrToLower(p);
  }
  const LikeResult r = MatchText(s, p);
  if (r == LikeResult::kError) {
    return absl::InvalidArgumentError("LIKE pattern must not end with escape character");
  }
  return r == LikeResult::kTrue;
}

absl::StatusOr<Value> EvalOp(const Expr& e, const Context& ctx) {
  const auto& args = e.args;
  switch (e.op) {
    case Op::kAnd:
    case Op::kOr: {
      const bool is_and = e.op == Op::kAnd;
      bool saw_null = false;
      for (const auto& a : args) {
        absl::StatusOr<Value> v = Eval(*a, ctx);
        if (!v.ok()) return v;
        std::optional<bool> b = Tri(*v);
        if (!b) {
          saw_null = true;
        } else if (*b != is_and) {
          return Value::Bool(!is_and);
        }
      }
      return saw_null ? Value::Null() : Value::Bool(is_and);
    }
    case Op::kNot: {
      absl::StatusOr<Value> v = Eval(*args[0], ctx);
      if (!v.ok() || v->is_null()) return v;
      return Value::Bool(!v->bool_value());
    }
    case Op::kIsNull:
    case Op::kIsNotNull:
    case Op::kIsTrue:
    case Op::kIsNotTrue:
    case Op::kIsFalse:
    case Op::kIsNotFalse: {
      absl::StatusOr<Value> v = Eval(*args[0], ctx);
      if (!v.ok()) return v;
      // A NULL array is NULL; an array with NULL elements is not (Postgres tests the datum).
      const bool null = v->is_null();
      switch (e.op) {
        case Op::kIsNull:
          return Value::Bool(null);
        case Op::kIsNotNull:
          return Value::Bool(!null);
        case Op::kIsTrue:
          return Value::Bool(!null && v->bool_value());
        case Op::kIsNotTrue:
          return Value::Bool(null || !v->bool_value());
        case Op::kIsFalse:
          return Value::Bool(!null && !v->bool_value());
        default:
          return Value::Bool(null || v->bool_value());
      }
    }
    case Op::kEq:
    case Op::kNe:
    case Op::kLt:
    case Op::kLe:
    case Op::kGt:
    case Op::kGe: {
      absl::StatusOr<Value> a = Eval(*args[0], ctx);
      if (!a.ok()) return a;
      absl::StatusOr<Value> b = Eval(*args[1], ctx);
      if (!b.ok()) return b;
      if (a->is_null() || b->is_null()) return Value::Null();
      absl::StatusOr<int> c = CompareValues(*a, args[0]->type, *b, args[1]->type);
      if (!c.ok()) return c.status();
      switch (e.op) {
        case Op::kEq:
          return Value::Bool(*c == 0);
        case Op::kNe:
          return Value::Bool(*c != 0);
        case Op::kLt:
          return Value::Bool(*c < 0);
        case Op::kLe:
          return Value::Bool(*c <= 0);
        case Op::kGt:
          return Value::Bool(*c > 0);
        default:
          return Value::Bool(*c >= 0);
      }
    }
    case Op::kBetween:
    case Op::kNotBetween: {
      // a BETWEEN b AND c is a >= b AND a <= c; NOT BETWEEN is a < b OR a > c.
      absl::StatusOr<Value> a = Eval(*args[0], ctx);
      if (!a.ok()) return a;
      const bool negated = e.op == Op::kNotBetween;
      bool saw_null = false;
      for (int i = 1; i <= 2; ++i) {
        absl::StatusOr<Value> bound = Eval(*args[i], ctx);
        if (!bound.ok()) return bound;
        if (a->is_null() || bound->is_null()) {
          saw_null = true;
          continue;
        }
        absl::StatusOr<int> c = CompareValues(*a, args[0]->type, *bound, args[i]->type);
        if (!c.ok()) return c.status();
        const bool in_range = i == 1 ? *c >= 0 : *c <= 0;
        if (!in_range) return Value::Bool(negated);
      }
      return saw_null ? Value::Null() : Value::Bool(!negated);
    }
    case Op::kIn:
    case Op::kNotIn: {
      // Postgres turns x IN (items) into one x = ANY(array) of the items without columns (when
      // there are two or more), OR-ed with x = item for each item with a column, in order; the
      // OR stops at the first true. NOT IN is the negation.
      absl::StatusOr<Value> a = Eval(*args[0], ctx);
      if (!a.ok()) return a;
      const bool negated = e.op == Op::kNotIn;
      std::vector<size_t> array_items;
      std::vector<size_t> single_items;
      for (size_t i = 1; i < args.size(); ++i) {
        (HasColumn(*args[i]) ? single_items : array_items).push_back(i);
      }
      if (array_items.size() <= 1) {
        single_items.clear();
        for (size_t i = 1; i < args.size(); ++i) single_items.push_back(i);
        array_items.clear();
      }
      // With two or more items Postgres compares in the common type of all operands: with dates
      // and timestamps mixed, every date becomes a timestamp, which fails beyond its range.
      bool has_date = false;
      bool has_timestamp = false;
      for (const auto& arg : args) {
        has_date = has_date || arg->type == SqlType{TypeId::kDate};
        has_timestamp = has_timestamp || arg->type == SqlType{TypeId::kTimestamp} ||
                        arg->type == SqlType{TypeId::kTimestampTz};
      }
      auto widen = [&](const Value& v, const SqlType& type) -> absl::Status {
        if (!has_date || !has_timestamp || args.size() < 3 || v.is_null() ||
            type != SqlType{TypeId::kDate}) {
          return absl::OkStatus();
        }
        return CastValue(v, type, SqlType{TypeId::kTimestamp}).status();
      };
      if (absl::Status s = widen(*a, args[0]->type); !s.ok()) return s;
      bool saw_null = false;
      auto compare = [&](size_t i, const Value& item) -> absl::StatusOr<bool> {
        if (absl::Status s = widen(item, args[i]->type); !s.ok()) return s;
        if (a->is_null() || item.is_null()) {
          saw_null = true;
          return false;
        }
        absl::StatusOr<int> c = CompareValues(*a, args[0]->type, item, args[i]->type);
        if (!c.ok()) return c.status();
        return *c == 0;
      };
      if (!array_items.empty()) {
        std::vector<Value> values;
        for (size_t i : array_items) {
          absl::StatusOr<Value> v = Eval(*args[i], ctx);
          if (!v.ok()) return v;
          values.push_back(*std::move(v));
        }
        for (size_t k = 0; k < array_items.size(); ++k) {
          absl::StatusOr<bool> eq = compare(array_items[k], values[k]);
          if (!eq.ok()) return eq.status();
          if (*eq) return Value::Bool(!negated);
        }
      }
      for (size_t i : single_items) {
        absl::StatusOr<Value> v = Eval(*args[i], ctx);
        if (!v.ok()) return v;
        absl::StatusOr<bool> eq = compare(i, *v);
        if (!eq.ok()) return eq.status();
        if (*eq) return Value::Bool(!negated);
      }
      return saw_null ? Value::Null() : Value::Bool(negated);
    }
    case Op::kEqAny: {
      absl::StatusOr<Value> a = Eval(*args[0], ctx);
      if (!a.ok()) return a;
      absl::StatusOr<Value> arr = Eval(*args[1], ctx);
      if (!arr.ok()) return arr;
      if (arr->is_null()) return Value::Null();
      const SqlType element{args[1]->type.id, false};
      absl::StatusOr<std::vector<Value>> elements = internal::ArrayElements(*arr, element.id);
      if (!elements.ok()) return elements.status();
      if (elements->empty()) return Value::Bool(false);
      if (a->is_null()) return Value::Null();
      bool saw_null = false;
      for (const Value& v : *elements) {
        if (v.is_null()) {
          saw_null = true;
          continue;
        }
        absl::StatusOr<int> c = CompareValues(*a, args[0]->type, v, element);
        if (!c.ok()) return c.status();
        if (*c == 0) return Value::Bool(true);
      }
      return saw_null ? Value::Null() : Value::Bool(false);
    }
    case Op::kContains:
    case Op::kContainedBy:
    case Op::kOverlaps: {
      absl::StatusOr<Value> a = Eval(*args[0], ctx);
      if (!a.ok()) return a;
      absl::StatusOr<Value> b = Eval(*args[1], ctx);
      if (!b.ok()) return b;
      if (a->is_null() || b->is_null()) return Value::Null();
      const SqlType element{args[0]->type.id, false};
      absl::StatusOr<std::vector<Value>> x = internal::ArrayElements(*a, element.id);
      if (!x.ok()) return x.status();
      absl::StatusOr<std::vector<Value>> y = internal::ArrayElements(*b, element.id);
      if (!y.ok()) return y.status();
      // NULL elements never match anything (Postgres's array_contain_compare).
      auto found = [&element](const Value& v,
                              const std::vector<Value>& in) -> absl::StatusOr<bool> {
        if (v.is_null()) return false;
        for (const Value& w : in) {
          if (w.is_null()) continue;
          absl::StatusOr<int> c = CompareValues(v, element, w, element);
          if (!c.ok()) return c.status();
          if (*c == 0) return true;
        }
        return false;
      };
      if (e.op == Op::kOverlaps) {
        for (const Value& v : *x) {
          absl::StatusOr<bool> f = found(v, *y);
          if (!f.ok()) return f.status();
          if (*f) return Value::Bool(true);
        }
        return Value::Bool(false);
      }
      const std::vector<Value>& needles = e.op == Op::kContains ? *y : *x;
      const std::vector<Value>& haystack = e.op == Op::kContains ? *x : *y;
      for (const Value& v : needles) {
        absl::StatusOr<bool> f = found(v, haystack);
        if (!f.ok()) return f.status();
        if (!*f) return Value::Bool(false);
      }
      return Value::Bool(true);
    }
    case Op::kNeg: {
      absl::StatusOr<Value> v = Eval(*args[0], ctx);
      if (!v.ok() || v->is_null()) return v;
      const TypeId t = e.type.id;
      if (IsIntFamily(t)) return IntArith(Op::kSub, t, 0, v->int_value());
      if (t == TypeId::kNumeric) {
        absl::StatusOr<Decimal> d = Decimal::Parse(v->string_value());
        if (!d.ok()) return d.status();
        return Value::String(ValueKind::kNumeric, d->Negate().ToString());
      }
      return Value::Float(-v->float_value());
    }
    case Op::kAdd:
    case Op::kSub:
    case Op::kMul:
    case Op::kDiv:
    case Op::kMod: {
      absl::StatusOr<Value> a = Eval(*args[0], ctx);
      if (!a.ok()) return a;
      absl::StatusOr<Value> b = Eval(*args[1], ctx);
      if (!b.ok()) return b;
      if (a->is_null() || b->is_null()) return Value::Null();
      return Arith(e, *a, *b);
    }
    case Op::kConcat: {
      absl::StatusOr<Value> a = Eval(*args[0], ctx);
      if (!a.ok()) return a;
      absl::StatusOr<Value> b = Eval(*args[1], ctx);
      if (!b.ok()) return b;
      if (a->is_null() || b->is_null()) return Value::Null();
      if (e.type.id == TypeId::kBytea) {
        return Value::String(ValueKind::kBytes, a->string_value() + b->string_value());
      }
      return Value::String(ValueKind::kText, internal::FormatText(*a, args[0]->type) +
                                                 internal::FormatText(*b, args[1]->type));
    }
    case Op::kLike:
    case Op::kNotLike:
    case Op::kILike:
    case Op::kNotILike: {
      absl::StatusOr<Value> a = Eval(*args[0], ctx);
      if (!a.ok()) return a;
      absl::StatusOr<Value> b = Eval(*args[1], ctx);
      if (!b.ok()) return b;
      if (a->is_null() || b->is_null()) return Value::Null();
      const bool ilike = e.op == Op::kILike || e.op == Op::kNotILike;
      absl::StatusOr<bool> m = Like(a->string_value(), b->string_value(), ilike);
      if (!m.ok()) return m.status();
      const bool negated = e.op == Op::kNotLike || e.op == Op::kNotILike;
      return Value::Bool(*m != negated);
    }
    case Op::kLower:
    case Op::kUpper: {
      absl::StatusOr<Value> v = Eval(*args[0], ctx);
      if (!v.ok() || v->is_null()) return v;
      // ASCII only: what Postgres does in the C locale.
      return Value::String(ValueKind::kText, e.op == Op::kLower
                                                 ? absl::AsciiStrToLower(v->string_value())
                                                 : absl::AsciiStrToUpper(v->string_value()));
    }
    case Op::kCoalesce: {
      for (const auto& a : args) {
        absl::StatusOr<Value> v = Eval(*a, ctx);
        if (!v.ok()) return v;
        if (!v->is_null()) return CastValue(*v, a->type, e.type);
      }
      return Value::Null();
    }
    case Op::kCast: {
      absl::StatusOr<Value> v = Eval(*args[0], ctx);
      if (!v.ok()) return v;
      return CastValue(*v, args[0]->type, e.cast_to);
    }
  }
  return absl::InternalError("unknown operator");
}

bool HasColumn(const Expr& e) {
  if (e.kind == Expr::Kind::kColumn) return true;
  for (const auto& a : e.args) {
    if (HasColumn(*a)) return true;
  }
  return false;
}

// A float4 value parsed from text as a double (core's ParseTextValue) is rounded to float, the
// value Postgres holds.
Value Float4Rounded(const Value& v, const SqlType& type) {
  if (type.id == TypeId::kFloat4 && !type.array && v.kind() == ValueKind::kFloat) {
    return Value::Float(static_cast<float>(v.float_value()));
  }
  return v;
}

absl::StatusOr<Value> Eval(const Expr& e, const Context& ctx) {
  switch (e.kind) {
    case Expr::Kind::kLiteral:
      return e.literal;
    case Expr::Kind::kColumn: {
      if (e.column < 0 || static_cast<size_t>(e.column) >= ctx.row.size()) {
        return absl::InvalidArgumentError(
            absl::StrCat("row has no value for column \"", e.name, "\""));
      }
      const Value& v = ctx.row[static_cast<size_t>(e.column)];
      if (v.is_unchanged()) {
        return absl::InvalidArgumentError(
            absl::StrCat("column \"", e.name, "\" is an unchanged TOAST value"));
      }
      if (!v.is_null() && v.kind() != internal::ValueKindFor(e.type)) {
        return absl::InvalidArgumentError(absl::StrCat("column \"", e.name, "\" is ",
                                                       e.type.ToString(), " but its value is ",
                                                       std::string(ValueKindName(v.kind()))));
      }
      return Float4Rounded(v, e.type);
    }
    case Expr::Kind::kParam: {
      auto it = ctx.params.find(e.name);
      if (it == ctx.params.end()) {
        return absl::InvalidArgumentError(absl::StrCat("no value for parameter $", e.name));
      }
      const Value& v = it->second;
      if (!v.is_null() && v.kind() != internal::ValueKindFor(e.type)) {
        return absl::InvalidArgumentError(absl::StrCat("parameter $", e.name, " is ",
                                                       e.type.ToString(), " but its value is ",
                                                       std::string(ValueKindName(v.kind()))));
      }
      return Float4Rounded(v, e.type);
    }
    case Expr::Kind::kOp:
      return EvalOp(e, ctx);
  }
  return absl::InternalError("unknown expression kind");
}

}  // namespace

absl::StatusOr<Value> Evaluate(const Expr& expr, const std::vector<Value>& row,
                               const ParamValues& params) {
  return Eval(expr, Context{row, params});
}

absl::StatusOr<bool> Matches(const Expr& expr, const std::vector<Value>& row,
                             const ParamValues& params) {
  absl::StatusOr<Value> v = Evaluate(expr, row, params);
  if (!v.ok()) return v.status();
  return !v->is_null() && v->kind() == ValueKind::kBool && v->bool_value();
}

}  // namespace shapebridge::shapes
