// The WHERE language: types, lexer, a recursive-descent parser that type-checks as it builds the
// tree (Postgres operator precedence and operand type resolution), Bind, Canonical, Conjuncts.
// Evaluation is in eval.cc; value text input/output and casts in values.cc.

#include "shapes/expr.h"

#include <algorithm>
#include <cctype>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "shapes/expr_internal.h"

namespace shapebridge::shapes {

using internal::CanCast;
using internal::CastValue;
using internal::Comparable;
using internal::FormatText;
using internal::IsNumericFamily;
using internal::NumericRank;

std::string SqlType::ToString() const {
  std::string_view base;
  switch (id) {
    case TypeId::kUnknown:
      base = "unknown";
      break;
    case TypeId::kBool:
      base = "bool";
      break;
    case TypeId::kInt2:
      base = "int2";
      break;
    case TypeId::kInt4:
      base = "int4";
      break;
    case TypeId::kInt8:
      base = "int8";
      break;
    case TypeId::kFloat4:
      base = "float4";
      break;
    case TypeId::kFloat8:
      base = "float8";
      break;
    case TypeId::kNumeric:
      base = "numeric";
      break;
    case TypeId::kText:
      base = "text";
      break;
    case TypeId::kUuid:
      base = "uuid";
      break;
    case TypeId::kTimestamp:
      base = "timestamp";
      break;
    case TypeId::kTimestampTz:
      base = "timestamptz";
      break;
    case TypeId::kDate:
      base = "date";
      break;
    case TypeId::kJsonb:
      base = "jsonb";
      break;
    case TypeId::kBytea:
      base = "bytea";
      break;
  }
  return absl::StrCat(std::string(base), array ? "[]" : "");
}

std::optional<SqlType> SqlTypeFromOid(uint32_t oid) {
  switch (oid) {
    case pgtype::kBool:
      return SqlType{TypeId::kBool};
    case pgtype::kBytea:
      return SqlType{TypeId::kBytea};
    case pgtype::kInt2:
      return SqlType{TypeId::kInt2};
    case pgtype::kInt4:
      return SqlType{TypeId::kInt4};
    case pgtype::kInt8:
      return SqlType{TypeId::kInt8};
    case pgtype::kFloat4:
      return SqlType{TypeId::kFloat4};
    case pgtype::kFloat8:
      return SqlType{TypeId::kFloat8};
    case pgtype::kNumeric:
      return SqlType{TypeId::kNumeric};
    case pgtype::kText:
    case pgtype::kVarchar:
    case pgtype::kBpchar:
    case pgtype::kName:
      return SqlType{TypeId::kText};
    case pgtype::kUuid:
      return SqlType{TypeId::kUuid};
    case pgtype::kTimestamp:
      return SqlType{TypeId::kTimestamp};
    case pgtype::kTimestampTz:
      return SqlType{TypeId::kTimestampTz};
    case pgtype::kDate:
      return SqlType{TypeId::kDate};
    case pgtype::kJsonb:
      return SqlType{TypeId::kJsonb};
    case 1000:
      return SqlType{TypeId::kBool, true};
    case 1001:
      return SqlType{TypeId::kBytea, true};
    case 1005:
      return SqlType{TypeId::kInt2, true};
    case 1007:
      return SqlType{TypeId::kInt4, true};
    case 1016:
      return SqlType{TypeId::kInt8, true};
    case 1021:
      return SqlType{TypeId::kFloat4, true};
    case 1022:
      return SqlType{TypeId::kFloat8, true};
    case 1231:
      return SqlType{TypeId::kNumeric, true};
    case 1009:  // _text
    case 1015:  // _varchar
    case 1014:  // _bpchar
    case 1003:  // _name
      return SqlType{TypeId::kText, true};
    case 2951:
      return SqlType{TypeId::kUuid, true};
    case 1115:
      return SqlType{TypeId::kTimestamp, true};
    case 1185:
      return SqlType{TypeId::kTimestampTz, true};
    case 1182:
      return SqlType{TypeId::kDate, true};
    case 3807:
      return SqlType{TypeId::kJsonb, true};
    default:
      return std::nullopt;
  }
}

std::optional<SqlType> ParseTypeName(std::string_view name) {
  std::string n = absl::AsciiStrToLower(std::string(internal::TrimWs(name)));
  bool array = false;
  if (n.size() > 2 && n.ends_with("[]")) {
    array = true;
    n = std::string(internal::TrimWs(n.substr(0, n.size() - 2)));
  }
  // Collapse runs of spaces ("double   precision").
  std::string c;
  for (char ch : n) {
    if (ch == ' ' && (c.empty() || c.back() == ' ')) continue;
    c.push_back(ch);
  }
  static const std::pair<std::string_view, TypeId> kNames[] = {
      {"bool", TypeId::kBool},
      {"boolean", TypeId::kBool},
      {"int2", TypeId::kInt2},
      {"smallint", TypeId::kInt2},
      {"int", TypeId::kInt4},
      {"int4", TypeId::kInt4},
      {"integer", TypeId::kInt4},
      {"int8", TypeId::kInt8},
      {"bigint", TypeId::kInt8},
      {"float4", TypeId::kFloat4},
      {"real", TypeId::kFloat4},
      {"float8", TypeId::kFloat8},
      {"float", TypeId::kFloat8},
      {"double precision", TypeId::kFloat8},
      {"numeric", TypeId::kNumeric},
      {"decimal", TypeId::kNumeric},
      {"text", TypeId::kText},
      {"varchar", TypeId::kText},
      {"character varying", TypeId::kText},
      {"uuid", TypeId::kUuid},
      {"timestamp", TypeId::kTimestamp},
      {"timestamp without time zone", TypeId::kTimestamp},
      {"timestamptz", TypeId::kTimestampTz},
      {"timestamp with time zone", TypeId::kTimestampTz},
      {"date", TypeId::kDate},
      {"jsonb", TypeId::kJsonb},
      {"bytea", TypeId::kBytea},
  };
  for (const auto& [text, id] : kNames) {
    if (c == text) return SqlType{id, array};
  }
  return std::nullopt;
}

std::string_view OpName(Op op) {
  switch (op) {
    case Op::kEq:
      return "=";
    case Op::kNe:
      return "<>";
    case Op::kLt:
      return "<";
    case Op::kLe:
      return "<=";
    case Op::kGt:
      return ">";
    case Op::kGe:
      return ">=";
    case Op::kAnd:
      return "and";
    case Op::kOr:
      return "or";
    case Op::kNot:
      return "not";
    case Op::kNeg:
      return "-";
    case Op::kAdd:
      return "+";
    case Op::kSub:
      return "-";
    case Op::kMul:
      return "*";
    case Op::kDiv:
      return "/";
    case Op::kMod:
      return "%";
    case Op::kConcat:
      return "||";
    case Op::kLike:
      return "like";
    case Op::kNotLike:
      return "not like";
    case Op::kILike:
      return "ilike";
    case Op::kNotILike:
      return "not ilike";
    case Op::kLower:
      return "lower";
    case Op::kUpper:
      return "upper";
    case Op::kIsNull:
      return "is null";
    case Op::kIsNotNull:
      return "is not null";
    case Op::kIsTrue:
      return "is true";
    case Op::kIsNotTrue:
      return "is not true";
    case Op::kIsFalse:
      return "is false";
    case Op::kIsNotFalse:
      return "is not false";
    case Op::kBetween:
      return "between";
    case Op::kNotBetween:
      return "not between";
    case Op::kIn:
      return "in";
    case Op::kNotIn:
      return "not in";
    case Op::kEqAny:
      return "= any";
    case Op::kContains:
      return "@>";
    case Op::kContainedBy:
      return "<@";
    case Op::kOverlaps:
      return "&&";
    case Op::kCoalesce:
      return "coalesce";
    case Op::kCast:
      return "::";
  }
  return "?";
}

std::unique_ptr<Expr> Expr::Clone() const {
  auto e = std::make_unique<Expr>();
  e->kind = kind;
  e->op = op;
  e->type = type;
  e->position = position;
  e->literal = literal;
  e->column = column;
  e->name = name;
  e->cast_to = cast_to;
  e->args.reserve(args.size());
  for (const auto& a : args) e->args.push_back(a->Clone());
  return e;
}

namespace {

using ExprPtr = std::unique_ptr<Expr>;

// ---------------------------------------------------------------------------------------------
// Lexer.

enum class Tok : uint8_t {
  kEnd,
  kIdent,   // text: case-folded unless quoted
  kNumber,  // text: as written
  kString,  // text: unescaped
  kParam,   // text: name without $
  kOp,      // text: = <> != < > <= >= || @> <@ && + - * / % ::
  kLParen,
  kRParen,
  kComma,
  kLBracket,
  kRBracket,
};

struct Token {
  Tok kind = Tok::kEnd;
  std::string text;
  bool quoted = false;  // a "quoted" identifier: never a keyword
  int position = 0;
};

absl::Status Error(std::string message) { return absl::InvalidArgumentError(std::move(message)); }

std::string At(int position) { return absl::StrCat(" (position ", position, ")"); }

// Reads a token quoted by s[*i] (' or "), where a doubled quote stands for one. On success the
// text between the quotes, with *i just past the closing quote; nullopt when it is unterminated.
std::optional<std::string> ReadQuoted(std::string_view s, size_t* i) {
  const char quote = s[*i];
  std::string text;
  size_t j = *i + 1;
  while (true) {
    if (j >= s.size()) return std::nullopt;
    if (s[j] == quote) {
      if (j + 1 < s.size() && s[j + 1] == quote) {
        text.push_back(quote);
        j += 2;
        continue;
      }
      break;
    }
    text.push_back(s[j++]);
  }
  *i = j + 1;
  return text;
}

absl::StatusOr<std::vector<Token>> Lex(std::string_view s) {
  std::vector<Token> out;
  size_t i = 0;
  auto is_ident_start = [](unsigned char c) { return std::isalpha(c) || c == '_' || c >= 0x80; };
  auto is_ident_char = [](unsigned char c) {
    return std::isalnum(c) || c == '_' || c == '$' || c >= 0x80;
  };
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    const int pos = static_cast<int>(i);
    if (std::isspace(c)) {
      ++i;
      continue;
    }
    if (s.substr(i, 2) == "--") {
      while (i < s.size() && s[i] != '\n') ++i;
      continue;
    }
    if (s.substr(i, 2) == "/*") {
      const size_t end = s.find("*/", i + 2);
      if (end == std::string_view::npos) return Error("unterminated /* comment" + At(pos));
      i = end + 2;
      continue;
    }
    Token t;
    t.position = pos;
    if (is_ident_start(c)) {
      // E'...' strings (backslash escapes) are not supported; report them clearly.
      if ((c == 'e' || c == 'E') && i + 1 < s.size() && s[i + 1] == '\'') {
        return Error("E'...' string constants are not supported" + At(pos));
      }
      size_t j = i;
      while (j < s.size() && is_ident_char(static_cast<unsigned char>(s[j]))) ++j;
      t.kind = Tok::kIdent;
      t.text = absl::AsciiStrToLower(std::string(s.substr(i, j - i)));
      i = j;
    } else if (c == '"') {
      std::optional<std::string> text = ReadQuoted(s, &i);
      if (!text) return Error("unterminated quoted identifier" + At(pos));
      if (text->empty()) return Error("zero-length delimited identifier" + At(pos));
      t.kind = Tok::kIdent;
      t.text = *std::move(text);
      t.quoted = true;
    } else if (c == '\'') {
      std::optional<std::string> text = ReadQuoted(s, &i);
      if (!text) return Error("unterminated quoted string" + At(pos));
      t.kind = Tok::kString;
      t.text = *std::move(text);
    } else if (std::isdigit(c) || (c == '.' && i + 1 < s.size() && std::isdigit(s[i + 1]))) {
      size_t j = i;
      while (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) ++j;
      if (j < s.size() && s[j] == '.' && s.substr(j, 2) != "..") {
        ++j;
        while (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) ++j;
      }
      if (j < s.size() && (s[j] == 'e' || s[j] == 'E')) {
        size_t k = j + 1;
        if (k < s.size() && (s[k] == '+' || s[k] == '-')) ++k;
        if (k < s.size() && std::isdigit(static_cast<unsigned char>(s[k]))) {
          while (k < s.size() && std::isdigit(static_cast<unsigned char>(s[k]))) ++k;
          j = k;
        }
      }
      // Postgres rejects junk directly after a number ("123abc").
      if (j < s.size() && is_ident_start(static_cast<unsigned char>(s[j]))) {
        return Error(absl::StrCat("trailing junk after numeric literal at or near \"",
                                  std::string(s.substr(i, j - i + 1)), "\"", At(pos)));
      }
      t.kind = Tok::kNumber;
      t.text = std::string(s.substr(i, j - i));
      i = j;
    } else if (c == '$') {
      size_t j = i + 1;
      if (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) {
        return Error("positional parameters ($1) are not supported, use $name" + At(pos));
      }
      if (j >= s.size() || !is_ident_start(static_cast<unsigned char>(s[j]))) {
        return Error("syntax error at or near \"$\"" + At(pos));
      }
      while (j < s.size() && (std::isalnum(static_cast<unsigned char>(s[j])) || s[j] == '_')) {
        ++j;
      }
      t.kind = Tok::kParam;
      t.text = std::string(s.substr(i + 1, j - i - 1));
      i = j;
    } else if (c == '(') {
      t.kind = Tok::kLParen;
      ++i;
    } else if (c == ')') {
      t.kind = Tok::kRParen;
      ++i;
    } else if (c == ',') {
      t.kind = Tok::kComma;
      ++i;
    } else if (c == '[') {
      t.kind = Tok::kLBracket;
      ++i;
    } else if (c == ']') {
      t.kind = Tok::kRBracket;
      ++i;
    } else {
      // Postgres reads the longest run of operator characters as one operator.
      static constexpr std::string_view kOpChars = "+-*/<>=~!@#%^&|`?:";
      size_t j = i;
      while (j < s.size() && kOpChars.find(s[j]) != std::string_view::npos) {
        if (j > i && (s.substr(j, 2) == "--" || s.substr(j, 2) == "/*")) break;
        ++j;
      }
      if (j == i) {
        return Error(
            absl::StrCat("syntax error at or near \"", std::string(1, s[i]), "\"", At(pos)));
      }
      std::string op(s.substr(i, j - i));
      // "::" is not an operator character run in Postgres; split it off a longer run.
      if (op.size() > 2 && op.starts_with("::")) op = "::";
      // A run ending in + or - is only kept whole when it contains ~ ! @ # % ^ & | ` ?
      // (Postgres's rule); otherwise the trailing +/- is a separate (unary) operator.
      while (op.size() > 1 && (op.back() == '+' || op.back() == '-') &&
             op.find_first_of("~!@#%^&|`?") == std::string::npos) {
        op.pop_back();
      }
      static constexpr std::string_view kKnown[] = {
          "=",  "<>", "!=", "<", ">", "<=", ">=", "||", "@>",
          "<@", "&&", "+",  "-", "*", "/",  "%",  "::"};
      bool known = false;
      for (std::string_view k : kKnown) known = known || op == k;
      if (!known) {
        return Error(absl::StrCat("operator is not supported: ", op, At(pos)));
      }
      t.kind = Tok::kOp;
      t.text = op;
      i += op.size();
    }
    out.push_back(std::move(t));
  }
  Token end;
  end.kind = Tok::kEnd;
  end.position = static_cast<int>(s.size());
  out.push_back(end);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Parser and type checker.

bool IsUnknown(const Expr& e) { return e.type.id == TypeId::kUnknown && !e.type.array; }

// Postgres's select_common_type over numbers: the widest of int2 < int4 < int8 < numeric <
// float4 < float8 (each casts implicitly to the ones after it).
SqlType CommonNumericType(const SqlType& a, const SqlType& b) {
  return NumericRank(a.id) >= NumericRank(b.id) ? a : b;
}

ExprPtr MakeOp(Op op, SqlType type, int position) {
  auto e = std::make_unique<Expr>();
  e->kind = Expr::Kind::kOp;
  e->op = op;
  e->type = type;
  e->position = position;
  return e;
}

ExprPtr MakeLiteral(Value v, SqlType type, int position) {
  auto e = std::make_unique<Expr>();
  e->kind = Expr::Kind::kLiteral;
  e->literal = std::move(v);
  e->type = type;
  e->position = position;
  return e;
}

// Gives an unknown-typed literal (a string or NULL) the type `to`, as Postgres does when the
// other operand fixes it. Other expressions are left alone.
absl::Status Resolve(Expr& e, const SqlType& to) {
  if (!IsUnknown(e) || e.kind != Expr::Kind::kLiteral) return absl::OkStatus();
  if (to.id == TypeId::kUnknown && !to.array) return absl::OkStatus();
  if (e.literal.is_null()) {
    e.type = to;
    return absl::OkStatus();
  }
  absl::StatusOr<Value> v = internal::InputText(to, e.literal.string_value());
  if (!v.ok()) {
    return absl::Status(v.status().code(),
                        absl::StrCat(std::string(v.status().message()), At(e.position)));
  }
  e.literal = *std::move(v);
  e.type = to;
  return absl::OkStatus();
}

// An unknown literal with nothing to fix its type becomes text (Postgres's rule).
absl::Status ResolveDefault(Expr& e) {
  if (IsUnknown(e) && e.kind == Expr::Kind::kLiteral && !e.literal.is_null()) {
    return Resolve(e, SqlType{TypeId::kText});
  }
  return absl::OkStatus();
}

absl::Status NoOperator(std::string_view op, const Expr& a, const Expr& b, int position) {
  return Error(absl::StrCat("operator does not exist: ", a.type.ToString(), " ", std::string(op),
                            " ", b.type.ToString(), At(position)));
}

// Resolves the unknown side of a binary operator from the other side.
absl::Status ResolvePair(Expr& a, Expr& b) {
  if (IsUnknown(a) && !IsUnknown(b)) return Resolve(a, b.type);
  if (IsUnknown(b) && !IsUnknown(a)) return Resolve(b, a.type);
  if (IsUnknown(a) && IsUnknown(b)) {
    // Two unknowns: strings are text; NULL = NULL stays unknown-typed but is text to Postgres.
    if (absl::Status s = Resolve(a, SqlType{TypeId::kText}); !s.ok()) return s;
    return Resolve(b, SqlType{TypeId::kText});
  }
  return absl::OkStatus();
}

absl::Status RequireBool(Expr& e, std::string_view construct) {
  if (absl::Status s = Resolve(e, SqlType{TypeId::kBool}); !s.ok()) return s;
  if (e.type != SqlType{TypeId::kBool}) {
    return Error(absl::StrCat("argument of ", std::string(construct),
                              " must be type boolean, not type ", e.type.ToString(),
                              At(e.position)));
  }
  return absl::OkStatus();
}

absl::StatusOr<ExprPtr> MakeComparison(Op op, std::string_view op_text, ExprPtr a, ExprPtr b,
                                       int position) {
  if (absl::Status s = ResolvePair(*a, *b); !s.ok()) return s;
  const bool ordering = op != Op::kEq && op != Op::kNe;
  const bool both_unknown_null = IsUnknown(*a) && IsUnknown(*b);
  if (!both_unknown_null && !Comparable(a->type, b->type, ordering)) {
    return NoOperator(op_text, *a, *b, position);
  }
  ExprPtr e = MakeOp(op, SqlType{TypeId::kBool}, position);
  e->args.push_back(std::move(a));
  e->args.push_back(std::move(b));
  return e;
}

class Parser {
 public:
  Parser(std::vector<Token> tokens, const Schema& schema, const ParamTypes& params)
      : tokens_(std::move(tokens)), schema_(schema), params_(params) {}

  absl::StatusOr<ExprPtr> ParseAll() {
    absl::StatusOr<ExprPtr> e = ParseExpr();
    if (!e.ok()) return e;
    if (Peek().kind != Tok::kEnd) return SyntaxError(Peek());
    if (absl::Status s = RequireBool(**e, "WHERE"); !s.ok()) return s;
    return e;
  }

 private:
  static constexpr int kMaxDepth = 200;

  const Token& Peek(size_t ahead = 0) const {
    return tokens_[std::min(pos_ + ahead, tokens_.size() - 1)];
  }
  const Token& Next() { return tokens_[pos_ < tokens_.size() - 1 ? pos_++ : pos_]; }
  bool IsKeyword(const Token& t, std::string_view kw) const {
    return t.kind == Tok::kIdent && !t.quoted && t.text == kw;
  }
  bool PeekKeyword(std::string_view kw, size_t ahead = 0) const {
    return IsKeyword(Peek(ahead), kw);
  }
  bool PeekOp(std::string_view op) const { return Peek().kind == Tok::kOp && Peek().text == op; }

  absl::Status SyntaxError(const Token& t) const {
    if (t.kind == Tok::kEnd) return Error("syntax error at end of input" + At(t.position));
    std::string text = t.text;
    switch (t.kind) {
      case Tok::kLParen:
        text = "(";
        break;
      case Tok::kRParen:
        text = ")";
        break;
      case Tok::kComma:
        text = ",";
        break;
      case Tok::kLBracket:
        text = "[";
        break;
      case Tok::kRBracket:
        text = "]";
        break;
      case Tok::kString:
        text = "'" + t.text + "'";
        break;
      case Tok::kParam:
        text = "$" + t.text;
        break;
      default:
        break;
    }
    return Error(absl::StrCat("syntax error at or near \"", text, "\"", At(t.position)));
  }

  absl::Status Expect(Tok kind) {
    if (Peek().kind != kind) return SyntaxError(Peek());
    Next();
    return absl::OkStatus();
  }

  // Depth guard: deeply nested input must fail, not overflow the stack.
  struct DepthGuard {
    explicit DepthGuard(int* d) : depth(d) { ++*depth; }
    ~DepthGuard() { --*depth; }
    int* depth;
  };
  absl::Status CheckDepth() const {
    if (depth_ > kMaxDepth) {
      return Error("expression is nested too deeply" + At(Peek().position));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<ExprPtr> ParseExpr() { return ParseOr(); }

  absl::StatusOr<ExprPtr> ParseOr() {
    DepthGuard g(&depth_);
    if (absl::Status s = CheckDepth(); !s.ok()) return s;
    absl::StatusOr<ExprPtr> left = ParseAnd();
    if (!left.ok() || !PeekKeyword("or")) return left;
    const int position = Peek().position;
    ExprPtr e = MakeOp(Op::kOr, SqlType{TypeId::kBool}, position);
    if (absl::Status s = AddBoolArg(*e, *std::move(left), "OR"); !s.ok()) return s;
    while (PeekKeyword("or")) {
      Next();
      absl::StatusOr<ExprPtr> right = ParseAnd();
      if (!right.ok()) return right;
      if (absl::Status s = AddBoolArg(*e, *std::move(right), "OR"); !s.ok()) return s;
    }
    return e;
  }

  // Appends a boolean argument to an n-ary AND/OR, flattening a nested one of the same op.
  absl::Status AddBoolArg(Expr& parent, ExprPtr arg, std::string_view construct) {
    if (absl::Status s = RequireBool(*arg, construct); !s.ok()) return s;
    if (arg->kind == Expr::Kind::kOp && arg->op == parent.op) {
      for (auto& a : arg->args) parent.args.push_back(std::move(a));
    } else {
      parent.args.push_back(std::move(arg));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<ExprPtr> ParseAnd() {
    absl::StatusOr<ExprPtr> left = ParseNot();
    if (!left.ok() || !PeekKeyword("and")) return left;
    const int position = Peek().position;
    ExprPtr e = MakeOp(Op::kAnd, SqlType{TypeId::kBool}, position);
    if (absl::Status s = AddBoolArg(*e, *std::move(left), "AND"); !s.ok()) return s;
    while (PeekKeyword("and")) {
      Next();
      absl::StatusOr<ExprPtr> right = ParseNot();
      if (!right.ok()) return right;
      if (absl::Status s = AddBoolArg(*e, *std::move(right), "AND"); !s.ok()) return s;
    }
    return e;
  }

  absl::StatusOr<ExprPtr> ParseNot() {
    if (PeekKeyword("not")) {
      DepthGuard g(&depth_);
      if (absl::Status s = CheckDepth(); !s.ok()) return s;
      const int position = Next().position;
      absl::StatusOr<ExprPtr> arg = ParseNot();
      if (!arg.ok()) return arg;
      if (absl::Status s = RequireBool(**arg, "NOT"); !s.ok()) return s;
      ExprPtr e = MakeOp(Op::kNot, SqlType{TypeId::kBool}, position);
      e->args.push_back(*std::move(arg));
      return e;
    }
    return ParseIs();
  }

  absl::StatusOr<ExprPtr> ParseIs() {
    absl::StatusOr<ExprPtr> left = ParseComparison();
    if (!left.ok()) return left;
    ExprPtr e = *std::move(left);
    while (true) {
      const int position = Peek().position;
      Op op;
      if (PeekKeyword("isnull")) {
        Next();
        op = Op::kIsNull;
      } else if (PeekKeyword("notnull")) {
        Next();
        op = Op::kIsNotNull;
      } else if (PeekKeyword("is")) {
        Next();
        const bool negated = PeekKeyword("not");
        if (negated) Next();
        const Token& t = Peek();
        if (IsKeyword(t, "null")) {
          op = negated ? Op::kIsNotNull : Op::kIsNull;
        } else if (IsKeyword(t, "true")) {
          op = negated ? Op::kIsNotTrue : Op::kIsTrue;
        } else if (IsKeyword(t, "false")) {
          op = negated ? Op::kIsNotFalse : Op::kIsFalse;
        } else if (IsKeyword(t, "distinct") || IsKeyword(t, "unknown") ||
                   IsKeyword(t, "document") || IsKeyword(t, "normalized")) {
          return Error(absl::StrCat("IS ", negated ? "NOT " : "", absl::AsciiStrToUpper(t.text),
                                    " is not supported", At(t.position)));
        } else {
          return SyntaxError(t);
        }
        Next();
      } else {
        return e;
      }
      if (op == Op::kIsNull || op == Op::kIsNotNull) {
        if (absl::Status s = ResolveDefault(*e); !s.ok()) return s;
      } else if (absl::Status s = RequireBool(*e, absl::AsciiStrToUpper(std::string(OpName(op))));
                 !s.ok()) {
        return s;
      }
      ExprPtr is = MakeOp(op, SqlType{TypeId::kBool}, position);
      is->args.push_back(std::move(e));
      e = std::move(is);
    }
  }

  std::optional<Op> PeekComparisonOp() const {
    if (Peek().kind != Tok::kOp) return std::nullopt;
    const std::string& t = Peek().text;
    if (t == "=") return Op::kEq;
    if (t == "<>" || t == "!=") return Op::kNe;
    if (t == "<") return Op::kLt;
    if (t == "<=") return Op::kLe;
    if (t == ">") return Op::kGt;
    if (t == ">=") return Op::kGe;
    return std::nullopt;
  }

  absl::StatusOr<ExprPtr> ParseComparison() {
    absl::StatusOr<ExprPtr> left = ParseBetweenInLike();
    if (!left.ok()) return left;
    std::optional<Op> op = PeekComparisonOp();
    if (!op) return left;
    const Token& optok = Next();
    const int position = optok.position;
    const std::string op_text = optok.text;
    absl::StatusOr<ExprPtr> result;
    if (PeekKeyword("any") || PeekKeyword("some") || PeekKeyword("all")) {
      const Token& kw = Peek();
      if (*op != Op::kEq || kw.text == "all") {
        return Error(absl::StrCat(op_text, " ", absl::AsciiStrToUpper(kw.text),
                                  "(...) is not supported, only = ANY(array)", At(kw.position)));
      }
      Next();
      if (absl::Status s = Expect(Tok::kLParen); !s.ok()) return s;
      if (PeekKeyword("select")) return Error("subqueries are not supported" + At(Peek().position));
      absl::StatusOr<ExprPtr> array = ParseExpr();
      if (!array.ok()) return array;
      if (absl::Status s = Expect(Tok::kRParen); !s.ok()) return s;
      result = MakeEqAny(*std::move(left), *std::move(array), position);
    } else {
      absl::StatusOr<ExprPtr> right = ParseBetweenInLike();
      if (!right.ok()) return right;
      result = MakeComparison(*op, op_text, *std::move(left), *std::move(right), position);
    }
    if (!result.ok()) return result;
    // Comparison operators do not associate in Postgres: a < b < c is an error.
    if (PeekComparisonOp()) return SyntaxError(Peek());
    return result;
  }

  absl::StatusOr<ExprPtr> MakeEqAny(ExprPtr left, ExprPtr array, int position) {
    if (IsUnknown(*array)) {
      if (IsUnknown(*left)) {
        if (absl::Status s = ResolveDefault(*left); !s.ok()) return s;
      }
      if (absl::Status s = Resolve(*array, SqlType{left->type.id, true}); !s.ok()) return s;
    }
    if (!array->type.array) {
      return Error(absl::StrCat("op ANY/ALL (array) requires array on right side, not ",
                                array->type.ToString(), At(array->position)));
    }
    if (absl::Status s = Resolve(*left, SqlType{array->type.id}); !s.ok()) return s;
    if (!Comparable(left->type, SqlType{array->type.id}, false)) {
      return Error(absl::StrCat("operator does not exist: ", left->type.ToString(), " = ANY(",
                                array->type.ToString(), ")", At(position)));
    }
    ExprPtr e = MakeOp(Op::kEqAny, SqlType{TypeId::kBool}, position);
    e->args.push_back(std::move(left));
    e->args.push_back(std::move(array));
    return e;
  }

  absl::StatusOr<ExprPtr> ParseBetweenInLike() {
    absl::StatusOr<ExprPtr> left = ParseOther();
    if (!left.ok()) return left;
    bool negated = false;
    size_t ahead = 0;
    if (PeekKeyword("not") &&
        (PeekKeyword("between", 1) || PeekKeyword("in", 1) || PeekKeyword("like", 1) ||
         PeekKeyword("ilike", 1) || PeekKeyword("similar", 1))) {
      negated = true;
      ahead = 1;
    }
    const Token& kw = Peek(ahead);
    if (IsKeyword(kw, "between")) {
      pos_ += ahead + 1;
      return ParseBetween(*std::move(left), negated, kw.position);
    }
    if (IsKeyword(kw, "in")) {
      pos_ += ahead + 1;
      return ParseIn(*std::move(left), negated, kw.position);
    }
    if (IsKeyword(kw, "like") || IsKeyword(kw, "ilike")) {
      pos_ += ahead + 1;
      const bool ilike = kw.text == "ilike";
      absl::StatusOr<ExprPtr> pattern = ParseOther();
      if (!pattern.ok()) return pattern;
      if (PeekKeyword("escape"))
        return Error("LIKE ... ESCAPE is not supported" + At(Peek().position));
      const Op op =
          ilike ? (negated ? Op::kNotILike : Op::kILike) : (negated ? Op::kNotLike : Op::kLike);
      ExprPtr a = *std::move(left);
      ExprPtr b = *std::move(pattern);
      if (absl::Status s = ResolvePair(*a, *b); !s.ok()) return s;
      const SqlType text{TypeId::kText};
      if (a->type != text || b->type != text) {
        return NoOperator(ilike ? "~~*" : "~~", *a, *b, kw.position);
      }
      ExprPtr e = MakeOp(op, SqlType{TypeId::kBool}, kw.position);
      e->args.push_back(std::move(a));
      e->args.push_back(std::move(b));
      return e;
    }
    if (IsKeyword(kw, "similar")) return Error("SIMILAR TO is not supported" + At(kw.position));
    return left;
  }

  absl::StatusOr<ExprPtr> ParseBetween(ExprPtr left, bool negated, int position) {
    if (PeekKeyword("symmetric") || PeekKeyword("asymmetric")) {
      return Error("BETWEEN SYMMETRIC is not supported" + At(Peek().position));
    }
    absl::StatusOr<ExprPtr> low = ParseOther();
    if (!low.ok()) return low;
    if (!PeekKeyword("and")) return SyntaxError(Peek());
    Next();
    absl::StatusOr<ExprPtr> high = ParseOther();
    if (!high.ok()) return high;
    ExprPtr a = std::move(left);
    ExprPtr b = *std::move(low);
    ExprPtr c = *std::move(high);
    // Postgres resolves the three operands to one common type; here each bound against the
    // operand, which gives the same results for the supported types.
    if (IsUnknown(*a)) {
      const Expr* typed = !IsUnknown(*b) ? b.get() : (!IsUnknown(*c) ? c.get() : nullptr);
      if (typed != nullptr) {
        if (absl::Status s = Resolve(*a, typed->type); !s.ok()) return s;
      } else if (absl::Status s = ResolveDefault(*a); !s.ok()) {
        return s;
      }
    }
    for (Expr* bound : {b.get(), c.get()}) {
      if (absl::Status s = ResolvePair(*a, *bound); !s.ok()) return s;
      if (!(IsUnknown(*a) && IsUnknown(*bound)) && !Comparable(a->type, bound->type, true)) {
        return NoOperator(">=", *a, *bound, position);
      }
    }
    ExprPtr e = MakeOp(negated ? Op::kNotBetween : Op::kBetween, SqlType{TypeId::kBool}, position);
    e->args.push_back(std::move(a));
    e->args.push_back(std::move(b));
    e->args.push_back(std::move(c));
    return e;
  }

  // A comma-separated list of expressions, then `close` (consumed); empty only when allowed.
  absl::StatusOr<std::vector<ExprPtr>> ParseList(Tok close, bool allow_empty) {
    std::vector<ExprPtr> items;
    if (!allow_empty || Peek().kind != close) {
      while (true) {
        absl::StatusOr<ExprPtr> item = ParseExpr();
        if (!item.ok()) return item.status();
        items.push_back(*std::move(item));
        if (Peek().kind != Tok::kComma) break;
        Next();
      }
    }
    if (absl::Status s = Expect(close); !s.ok()) return s;
    return items;
  }

  absl::StatusOr<ExprPtr> ParseIn(ExprPtr left, bool negated, int position) {
    if (Peek().kind != Tok::kLParen) return SyntaxError(Peek());
    Next();
    if (PeekKeyword("select")) return Error("subqueries are not supported" + At(Peek().position));
    absl::StatusOr<std::vector<ExprPtr>> list = ParseList(Tok::kRParen, /*allow_empty=*/false);
    if (!list.ok()) return list.status();
    std::vector<ExprPtr> items = *std::move(list);
    // The operand's type comes from the first typed item when it is itself unknown.
    if (IsUnknown(*left)) {
      for (const ExprPtr& item : items) {
        if (!IsUnknown(*item)) {
          if (absl::Status s = Resolve(*left, item->type); !s.ok()) return s;
          break;
        }
      }
      if (absl::Status s = ResolveDefault(*left); !s.ok()) return s;
    }
    ExprPtr e = MakeOp(negated ? Op::kNotIn : Op::kIn, SqlType{TypeId::kBool}, position);
    e->args.push_back(std::move(left));
    for (ExprPtr& item : items) {
      if (absl::Status s = ResolvePair(*e->args[0], *item); !s.ok()) return s;
      if (!(IsUnknown(*e->args[0]) && IsUnknown(*item)) &&
          !Comparable(e->args[0]->type, item->type, false)) {
        return NoOperator("=", *e->args[0], *item, item->position);
      }
      e->args.push_back(std::move(item));
    }
    return e;
  }

  // || @> <@ && (Postgres's "other operators": left associative, one level).
  absl::StatusOr<ExprPtr> ParseOther() {
    absl::StatusOr<ExprPtr> left = ParseAdditive();
    if (!left.ok()) return left;
    ExprPtr e = *std::move(left);
    while (Peek().kind == Tok::kOp &&
           (PeekOp("||") || PeekOp("@>") || PeekOp("<@") || PeekOp("&&"))) {
      const Token& t = Next();
      const std::string op_text = t.text;
      const int position = t.position;
      absl::StatusOr<ExprPtr> right = ParseAdditive();
      if (!right.ok()) return right;
      absl::StatusOr<ExprPtr> made =
          op_text == "||" ? MakeConcat(std::move(e), *std::move(right), position)
                          : MakeArrayOp(op_text, std::move(e), *std::move(right), position);
      if (!made.ok()) return made;
      e = *std::move(made);
    }
    return e;
  }

  absl::StatusOr<ExprPtr> MakeConcat(ExprPtr a, ExprPtr b, int position) {
    const SqlType text{TypeId::kText};
    // bytea || bytea (an unknown side is bytea) concatenates bytes.
    const SqlType bytea{TypeId::kBytea};
    if ((a->type == bytea && (IsUnknown(*b) || b->type == bytea)) ||
        (b->type == bytea && IsUnknown(*a))) {
      if (absl::Status s = Resolve(*a, bytea); !s.ok()) return s;
      if (absl::Status s = Resolve(*b, bytea); !s.ok()) return s;
      ExprPtr e = MakeOp(Op::kConcat, bytea, position);
      e->args.push_back(std::move(a));
      e->args.push_back(std::move(b));
      return e;
    }
    // text || anynonarray and anynonarray || text: the unknown side is text.
    if (IsUnknown(*a) && IsUnknown(*b)) {
      if (absl::Status s = Resolve(*a, text); !s.ok()) return s;
      if (absl::Status s = Resolve(*b, text); !s.ok()) return s;
    } else if (IsUnknown(*a)) {
      if (absl::Status s = Resolve(*a, text); !s.ok()) return s;
    } else if (IsUnknown(*b)) {
      if (absl::Status s = Resolve(*b, text); !s.ok()) return s;
    }
    const bool ok = !a->type.array && !b->type.array && (a->type == text || b->type == text) &&
                    a->type.id != TypeId::kJsonb && b->type.id != TypeId::kJsonb;
    if (!ok) return NoOperator("||", *a, *b, position);
    ExprPtr e = MakeOp(Op::kConcat, text, position);
    e->args.push_back(std::move(a));
    e->args.push_back(std::move(b));
    return e;
  }

  absl::StatusOr<ExprPtr> MakeArrayOp(const std::string& op_text, ExprPtr a, ExprPtr b,
                                      int position) {
    if (IsUnknown(*a) && b->type.array) {
      if (absl::Status s = Resolve(*a, b->type); !s.ok()) return s;
    }
    if (IsUnknown(*b) && a->type.array) {
      if (absl::Status s = Resolve(*b, a->type); !s.ok()) return s;
    }
    if (!a->type.array || a->type != b->type || a->type.id == TypeId::kJsonb) {
      return NoOperator(op_text, *a, *b, position);
    }
    const Op op =
        op_text == "@>" ? Op::kContains : (op_text == "<@" ? Op::kContainedBy : Op::kOverlaps);
    ExprPtr e = MakeOp(op, SqlType{TypeId::kBool}, position);
    e->args.push_back(std::move(a));
    e->args.push_back(std::move(b));
    return e;
  }

  absl::StatusOr<ExprPtr> MakeArithmetic(Op op, const std::string& op_text, ExprPtr a, ExprPtr b,
                                         int position) {
    // An unknown operand takes the other's type; with two unknowns, or an unknown added to a
    // date, Postgres finds several candidate operators.
    if ((IsUnknown(*a) && IsUnknown(*b)) ||
        (op == Op::kAdd && ((IsUnknown(*a) && b->type == SqlType{TypeId::kDate}) ||
                            (IsUnknown(*b) && a->type == SqlType{TypeId::kDate})))) {
      return Error(absl::StrCat("operator is not unique: ", a->type.ToString(), " ", op_text, " ",
                                b->type.ToString(), At(position)));
    }
    if (IsUnknown(*a) && !IsUnknown(*b)) {
      if (absl::Status s = Resolve(*a, b->type); !s.ok()) return s;
    } else if (IsUnknown(*b) && !IsUnknown(*a)) {
      // date - 'unknown' and date + 'unknown' take integer like Postgres's date +/- int4.
      const SqlType t = a->type.id == TypeId::kDate && !a->type.array && op == Op::kAdd
                            ? SqlType{TypeId::kInt4}
                            : a->type;
      if (absl::Status s = Resolve(*b, t); !s.ok()) return s;
    }
    std::optional<SqlType> type = internal::ArithmeticType(op, a->type, b->type);
    if (!type) return NoOperator(op_text, *a, *b, position);
    ExprPtr e = MakeOp(op, *type, position);
    e->args.push_back(std::move(a));
    e->args.push_back(std::move(b));
    return e;
  }

  absl::StatusOr<ExprPtr> ParseAdditive() {
    absl::StatusOr<ExprPtr> left = ParseMultiplicative();
    if (!left.ok()) return left;
    ExprPtr e = *std::move(left);
    while (PeekOp("+") || PeekOp("-")) {
      const Token& t = Next();
      const std::string op_text = t.text;
      const int position = t.position;
      absl::StatusOr<ExprPtr> right = ParseMultiplicative();
      if (!right.ok()) return right;
      absl::StatusOr<ExprPtr> made = MakeArithmetic(op_text == "+" ? Op::kAdd : Op::kSub, op_text,
                                                    std::move(e), *std::move(right), position);
      if (!made.ok()) return made;
      e = *std::move(made);
    }
    return e;
  }

  absl::StatusOr<ExprPtr> ParseMultiplicative() {
    absl::StatusOr<ExprPtr> left = ParseUnary();
    if (!left.ok()) return left;
    ExprPtr e = *std::move(left);
    while (PeekOp("*") || PeekOp("/") || PeekOp("%")) {
      const Token& t = Next();
      const std::string op_text = t.text;
      const int position = t.position;
      absl::StatusOr<ExprPtr> right = ParseUnary();
      if (!right.ok()) return right;
      const Op op = op_text == "*" ? Op::kMul : (op_text == "/" ? Op::kDiv : Op::kMod);
      absl::StatusOr<ExprPtr> made =
          MakeArithmetic(op, op_text, std::move(e), *std::move(right), position);
      if (!made.ok()) return made;
      e = *std::move(made);
    }
    return e;
  }

  absl::StatusOr<ExprPtr> ParseUnary() {
    if (PeekOp("-") || PeekOp("+")) {
      DepthGuard g(&depth_);
      if (absl::Status s = CheckDepth(); !s.ok()) return s;
      const Token& t = Next();
      const bool minus = t.text == "-";
      const int position = t.position;
      absl::StatusOr<ExprPtr> arg = ParseUnary();
      if (!arg.ok()) return arg;
      ExprPtr a = *std::move(arg);
      // Postgres folds a minus into a numeric constant (also a parenthesized one), so that
      // -2147483648 is a constant; its type follows from the digits as for any constant.
      if (auto it = raw_numbers_.find(a.get()); minus && it != raw_numbers_.end()) {
        const auto [digits, negative] = it->second;
        raw_numbers_.erase(it);
        return NumberLiteral(digits, !negative, a->position);
      }
      if (absl::Status s = ResolveDefault(*a); !s.ok()) return s;
      if (a->type.array || !IsNumericFamily(a->type.id)) {
        return Error(absl::StrCat("operator does not exist: ", minus ? "-" : "+", " ",
                                  a->type.ToString(), At(position)));
      }
      if (!minus) return a;
      ExprPtr e = MakeOp(Op::kNeg, a->type, position);
      e->args.push_back(std::move(a));
      return e;
    }
    return ParseCast();
  }

  absl::StatusOr<SqlType> ParseTypeAfterCast() {
    const Token& first = Peek();
    if (first.kind != Tok::kIdent) return SyntaxError(first);
    std::string name = Next().text;
    auto take = [&](std::string_view word) {
      if (PeekKeyword(word)) {
        Next();
        name += " " + std::string(word);
        return true;
      }
      return false;
    };
    if (name == "double") {
      if (!take("precision")) return SyntaxError(Peek());
    } else if (name == "character") {
      if (!take("varying")) {
        return Error("type character (bpchar) is not supported, use text" + At(first.position));
      }
    } else if (name == "timestamp") {
      if (PeekKeyword("with") || PeekKeyword("without")) {
        take("with") || take("without");
        if (!take("time") || !take("zone")) return SyntaxError(Peek());
      }
    }
    if (Peek().kind == Tok::kLParen) {
      return Error(
          absl::StrCat("type modifiers (", name, "(...)) are not supported", At(Peek().position)));
    }
    if (Peek().kind == Tok::kLBracket && Peek(1).kind == Tok::kRBracket) {
      Next();
      Next();
      name += "[]";
    }
    std::optional<SqlType> type = ParseTypeName(name);
    if (!type) {
      return Error(absl::StrCat("type \"", name, "\" is not supported", At(first.position)));
    }
    return *type;
  }

  absl::StatusOr<ExprPtr> MakeCast(ExprPtr arg, const SqlType& to, int position) {
    // A cast of an unknown literal is a typed literal (Postgres reads it with the type's input
    // function); casts of other literals are folded too, so 5::int8 is one literal.
    if (arg->kind == Expr::Kind::kLiteral) {
      raw_numbers_.erase(arg.get());  // the cast literal replaces it
      if (IsUnknown(*arg)) {
        if (absl::Status s = Resolve(*arg, to); !s.ok()) return s;
        return arg;
      }
      if (!CanCast(arg->type, to)) {
        return Error(absl::StrCat("cannot cast type ", arg->type.ToString(), " to ", to.ToString(),
                                  At(position)));
      }
      // Postgres folds immutable casts of constants when it plans; casts involving date/time
      // and text depend on settings (stable), so they run with the row, as does a cast that
      // fails here (Postgres may skip it: coalesce stops at the first non-null constant).
      const bool stable =
          (internal::IsDateTimeFamily(to.id) || internal::IsDateTimeFamily(arg->type.id)) &&
          arg->type.id != to.id;
      absl::StatusOr<Value> v = CastValue(arg->literal, arg->type, to);
      if (v.ok() && !stable) return MakeLiteral(*std::move(v), to, arg->position);
    }
    if (!CanCast(arg->type, to)) {
      return Error(absl::StrCat("cannot cast type ", arg->type.ToString(), " to ", to.ToString(),
                                At(position)));
    }
    ExprPtr e = MakeOp(Op::kCast, to, position);
    e->cast_to = to;
    e->args.push_back(std::move(arg));
    return e;
  }

  absl::StatusOr<ExprPtr> ParseCast() {
    absl::StatusOr<ExprPtr> left = ParsePrimary();
    if (!left.ok()) return left;
    ExprPtr e = *std::move(left);
    while (PeekOp("::") || Peek().kind == Tok::kLBracket) {
      if (Peek().kind == Tok::kLBracket) {
        return Error("array subscripts are not supported" + At(Peek().position));
      }
      const int position = Next().position;
      absl::StatusOr<SqlType> to = ParseTypeAfterCast();
      if (!to.ok()) return to.status();
      absl::StatusOr<ExprPtr> made = MakeCast(std::move(e), *to, position);
      if (!made.ok()) return made;
      e = *std::move(made);
    }
    return e;
  }

  // An integer literal (with its folded sign) is int4 when it fits, else int8, else numeric;
  // anything with a point or an exponent is numeric (Postgres's rule).
  absl::StatusOr<ExprPtr> NumberLiteral(const std::string& digits, bool negative, int position) {
    const std::string text = negative ? "-" + digits : digits;
    const bool integral = digits.find_first_of(".eE") == std::string::npos;
    ExprPtr e;
    if (integral && internal::InputText(SqlType{TypeId::kInt4}, text).ok()) {
      e = MakeLiteral(*internal::InputText(SqlType{TypeId::kInt4}, text), SqlType{TypeId::kInt4},
                      position);
    } else if (absl::StatusOr<Value> v = internal::InputText(SqlType{TypeId::kInt8}, text);
               integral && v.ok()) {
      e = MakeLiteral(*std::move(v), SqlType{TypeId::kInt8}, position);
    } else {
      absl::StatusOr<Value> n = internal::InputText(SqlType{TypeId::kNumeric}, text);
      if (!n.ok()) return Error(absl::StrCat(std::string(n.status().message()), At(position)));
      e = MakeLiteral(*std::move(n), SqlType{TypeId::kNumeric}, position);
    }
    raw_numbers_[e.get()] = {digits, negative};
    return e;
  }

  absl::StatusOr<ExprPtr> ParsePrimary() {
    DepthGuard g(&depth_);
    if (absl::Status s = CheckDepth(); !s.ok()) return s;
    const Token& t = Peek();
    switch (t.kind) {
      case Tok::kNumber:
        Next();
        return NumberLiteral(t.text, false, t.position);
      case Tok::kString: {
        Next();
        return MakeLiteral(Value::String(ValueKind::kText, t.text), SqlType{TypeId::kUnknown},
                           t.position);
      }
      case Tok::kParam: {
        Next();
        auto it = params_.find(t.text);
        if (it == params_.end()) {
          return Error(absl::StrCat("unknown parameter $", t.text, " at position ", t.position));
        }
        auto e = std::make_unique<Expr>();
        e->kind = Expr::Kind::kParam;
        e->name = t.text;
        e->type = it->second;
        e->position = t.position;
        return e;
      }
      case Tok::kLParen: {
        Next();
        if (PeekKeyword("select") || PeekKeyword("with") || PeekKeyword("values")) {
          return Error("subqueries are not supported" + At(Peek().position));
        }
        absl::StatusOr<ExprPtr> inner = ParseExpr();
        if (!inner.ok()) return inner;
        if (Peek().kind == Tok::kComma) {
          return Error("row constructors are not supported" + At(Peek().position));
        }
        if (absl::Status s = Expect(Tok::kRParen); !s.ok()) return s;
        return inner;
      }
      case Tok::kIdent:
        return ParseIdentifier();
      default:
        return SyntaxError(t);
    }
  }

  absl::StatusOr<ExprPtr> ParseIdentifier() {
    const Token t = Next();
    if (!t.quoted) {
      if (t.text == "true" || t.text == "false") {
        return MakeLiteral(Value::Bool(t.text == "true"), SqlType{TypeId::kBool}, t.position);
      }
      if (t.text == "null") return MakeLiteral(Value::Null(), SqlType{}, t.position);
      if (t.text == "select" || t.text == "exists") {
        return Error("subqueries are not supported" + At(t.position));
      }
      if (t.text == "array") return ParseArray(t.position);
      if (t.text == "cast" && Peek().kind == Tok::kLParen) {
        Next();
        absl::StatusOr<ExprPtr> arg = ParseExpr();
        if (!arg.ok()) return arg;
        if (!PeekKeyword("as")) return SyntaxError(Peek());
        Next();
        absl::StatusOr<SqlType> to = ParseTypeAfterCast();
        if (!to.ok()) return to.status();
        if (absl::Status s = Expect(Tok::kRParen); !s.ok()) return s;
        return MakeCast(*std::move(arg), *to, t.position);
      }
      // Typed literals: DATE '...', TIMESTAMP '...', TIMESTAMPTZ '...', and the like.
      if (Peek().kind == Tok::kString || PeekKeyword("with") || PeekKeyword("without") ||
          PeekKeyword("precision") || PeekKeyword("varying")) {
        std::optional<SqlType> type;
        if (t.text == "double" || t.text == "character" || t.text == "timestamp") {
          --pos_;
          absl::StatusOr<SqlType> parsed = ParseTypeAfterCast();
          if (!parsed.ok()) return parsed.status();
          type = *parsed;
        } else {
          type = ParseTypeName(t.text);
        }
        if (type && Peek().kind == Tok::kString) {
          const Token lit = Next();
          ExprPtr e = MakeLiteral(Value::String(ValueKind::kText, lit.text), SqlType{}, t.position);
          if (absl::Status s = Resolve(*e, *type); !s.ok()) return s;
          return e;
        }
        if (!type || Peek().kind != Tok::kString) return SyntaxError(Peek());
      }
      if (IsReserved(t.text)) return SyntaxError(t);
    }
    if (Peek().kind == Tok::kLParen) return ParseFunction(t);
    for (size_t i = 0; i < schema_.size(); ++i) {
      if (schema_[i].name == t.text) {
        if (schema_[i].type.id == TypeId::kUnknown) {
          return Error(absl::StrCat("column \"", t.text,
                                    "\" has a type shapes do not support (position ", t.position,
                                    ")"));
        }
        auto e = std::make_unique<Expr>();
        e->kind = Expr::Kind::kColumn;
        e->column = static_cast<int>(i);
        e->name = t.text;
        e->type = schema_[i].type;
        e->position = t.position;
        return e;
      }
    }
    if (Peek().kind == Tok::kOp && Peek().text == ".") {
      return Error("qualified column names are not supported" + At(t.position));
    }
    return Error(absl::StrCat("unknown column \"", t.text, "\" at position ", t.position));
  }

  static bool IsReserved(const std::string& w) {
    static constexpr std::string_view kReserved[] = {
        "and",  "or",    "not",      "is",     "in",      "like",    "ilike",    "between", "any",
        "some", "all",   "case",     "when",   "then",    "else",    "end",      "escape",  "as",
        "from", "where", "distinct", "isnull", "notnull", "similar", "symmetric"};
    for (std::string_view r : kReserved) {
      if (w == r) return true;
    }
    return false;
  }

  absl::StatusOr<ExprPtr> ParseFunction(const Token& name) {
    const int position = name.position;
    Op op;
    if (name.text == "lower") {
      op = Op::kLower;
    } else if (name.text == "upper") {
      op = Op::kUpper;
    } else if (name.text == "coalesce") {
      op = Op::kCoalesce;
    } else if (name.text == "exists") {
      return Error("subqueries are not supported" + At(position));
    } else {
      return Error(absl::StrCat("function ", name.text, "() is not supported", At(position),
                                ": shapes may use only lower, upper, coalesce"));
    }
    Next();  // (
    if (PeekKeyword("select")) return Error("subqueries are not supported" + At(Peek().position));
    absl::StatusOr<std::vector<ExprPtr>> list = ParseList(Tok::kRParen, /*allow_empty=*/true);
    if (!list.ok()) return list.status();
    std::vector<ExprPtr> args = *std::move(list);
    if (op == Op::kLower || op == Op::kUpper) {
      if (args.size() != 1) {
        return Error(absl::StrCat("function ", name.text, "() takes one argument", At(position)));
      }
      if (absl::Status s = ResolveDefault(*args[0]); !s.ok()) return s;
      if (IsUnknown(*args[0])) {
        if (absl::Status s = Resolve(*args[0], SqlType{TypeId::kText}); !s.ok()) return s;
      }
      if (args[0]->type != SqlType{TypeId::kText}) {
        return Error(absl::StrCat("function ", name.text, "(", args[0]->type.ToString(),
                                  ") does not exist", At(position)));
      }
      ExprPtr e = MakeOp(op, SqlType{TypeId::kText}, position);
      e->args = std::move(args);
      return e;
    }
    if (args.empty()) return Error("coalesce() needs at least one argument" + At(position));
    // Postgres's select_common_type: the first typed argument sets the category; numbers
    // promote to the widest; unknowns adopt the result; all unknown is text.
    std::optional<SqlType> common;
    for (const ExprPtr& a : args) {
      if (IsUnknown(*a)) continue;
      if (!common) {
        common = a->type;
        continue;
      }
      if (a->type == *common) continue;
      if (!common->array && !a->type.array && IsNumericFamily(common->id) &&
          IsNumericFamily(a->type.id)) {
        common = CommonNumericType(*common, a->type);
        continue;
      }
      if (!common->array && !a->type.array && internal::IsDateTimeFamily(common->id) &&
          internal::IsDateTimeFamily(a->type.id)) {
        auto rank = [](TypeId id) {
          return id == TypeId::kDate ? 0 : (id == TypeId::kTimestamp ? 1 : 2);
        };
        if (rank(a->type.id) > rank(common->id)) common = a->type;
        continue;
      }
      return Error(absl::StrCat("COALESCE types ", common->ToString(), " and ", a->type.ToString(),
                                " cannot be matched", At(a->position)));
    }
    const SqlType type = common.value_or(SqlType{TypeId::kText});
    for (ExprPtr& a : args) {
      if (absl::Status s = Resolve(*a, type); !s.ok()) return s;
    }
    ExprPtr e = MakeOp(Op::kCoalesce, type, position);
    e->args = std::move(args);
    return e;
  }

  // ARRAY[c1, c2, ...] of constants becomes one array literal.
  absl::StatusOr<ExprPtr> ParseArray(int position) {
    if (Peek().kind == Tok::kLParen) return Error("subqueries are not supported" + At(position));
    if (absl::Status s = Expect(Tok::kLBracket); !s.ok()) return s;
    absl::StatusOr<std::vector<ExprPtr>> list = ParseList(Tok::kRBracket, /*allow_empty=*/true);
    if (!list.ok()) return list.status();
    std::vector<ExprPtr> items = *std::move(list);
    std::optional<SqlType> common;
    for (const ExprPtr& item : items) {
      if (item->kind != Expr::Kind::kLiteral) {
        return Error("ARRAY[...] elements must be constants" + At(item->position));
      }
      if (item->type.array)
        return Error("multidimensional arrays are not supported" + At(item->position));
      if (IsUnknown(*item)) continue;
      if (!common) {
        common = item->type;
      } else if (*common != item->type) {
        if (IsNumericFamily(common->id) && IsNumericFamily(item->type.id)) {
          common = CommonNumericType(*common, item->type);
        } else {
          return Error(absl::StrCat("ARRAY types ", common->ToString(), " and ",
                                    item->type.ToString(), " cannot be matched",
                                    At(item->position)));
        }
      }
    }
    if (!common) {
      if (items.empty()) return Error("cannot determine type of empty array" + At(position));
      common = SqlType{TypeId::kText};
    }
    std::vector<std::optional<std::string>> elements;
    for (ExprPtr& item : items) {
      raw_numbers_.erase(item.get());
      if (absl::Status s = Resolve(*item, *common); !s.ok()) return s;
      absl::StatusOr<Value> v = CastValue(item->literal, item->type, *common);
      if (!v.ok()) {
        return absl::Status(v.status().code(),
                            absl::StrCat(std::string(v.status().message()), At(item->position)));
      }
      if (v->is_null()) {
        elements.push_back(std::nullopt);
      } else {
        elements.push_back(FormatText(*v, *common));
      }
    }
    return MakeLiteral(Value::String(ValueKind::kArray, internal::JoinArray(elements)),
                       SqlType{common->id, true}, position);
  }

  std::vector<Token> tokens_;
  // Number constants as written (digits, negated): the literals a unary minus folds into.
  std::map<const Expr*, std::pair<std::string, bool>> raw_numbers_;
  size_t pos_ = 0;
  int depth_ = 0;
  const Schema& schema_;
  const ParamTypes& params_;
};

// ---------------------------------------------------------------------------------------------
// Canonical rendering.

enum Prec : int {
  kPrecOr = 1,
  kPrecAnd = 2,
  kPrecNot = 3,
  kPrecIs = 4,
  kPrecCmp = 5,
  kPrecLike = 6,
  kPrecOther = 7,
  kPrecAdd = 8,
  kPrecMul = 9,
  kPrecUnary = 10,
  kPrecCast = 11,
  kPrecPrimary = 12,
};

struct Rendered {
  std::string text;
  int prec;
};

bool IsReservedWord(const std::string& w) {
  static constexpr std::string_view kWords[] = {
      "and",        "or",        "not",     "is",        "null",       "true",        "false",
      "between",    "in",        "like",    "ilike",     "array",      "select",      "exists",
      "any",        "some",      "all",     "date",      "timestamp",  "timestamptz", "isnull",
      "notnull",    "cast",      "as",      "escape",    "distinct",   "from",        "similar",
      "case",       "when",      "then",    "else",      "end",        "with",        "values",
      "double",     "character", "where",   "symmetric", "asymmetric", "unknown",     "document",
      "normalized", "precision", "varying", "without"};
  for (std::string_view k : kWords) {
    if (w == k) return true;
  }
  return ParseTypeName(w).has_value();
}

std::string QuoteIdent(const std::string& name) {
  bool plain =
      !name.empty() && (std::islower(static_cast<unsigned char>(name[0])) || name[0] == '_');
  for (char c : name) {
    plain = plain && (std::islower(static_cast<unsigned char>(c)) ||
                      std::isdigit(static_cast<unsigned char>(c)) || c == '_');
  }
  if (plain && !IsReservedWord(name)) return name;
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string QuoteString(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += '\'';
    out += c;
  }
  return out + "'";
}

Rendered RenderLiteral(const Expr& e) {
  const Value& v = e.literal;
  if (v.is_null()) {
    if (IsUnknown(e)) return {"null", kPrecPrimary};
    return {"null::" + e.type.ToString(), kPrecCast};
  }
  if (IsUnknown(e)) return {QuoteString(v.string_value()), kPrecPrimary};
  if (e.type.array) {
    return {QuoteString(v.string_value()) + "::" + e.type.ToString(), kPrecCast};
  }
  switch (e.type.id) {
    case TypeId::kBool:
      return {v.bool_value() ? "true" : "false", kPrecPrimary};
    case TypeId::kInt4: {
      const std::string s = std::to_string(v.int_value());
      return {s, v.int_value() < 0 ? kPrecUnary : kPrecPrimary};
    }
    case TypeId::kText:
      return {QuoteString(v.string_value()), kPrecPrimary};
    case TypeId::kNumeric:
      if (v.string_value().find('.') != std::string::npos) {
        return {v.string_value(), v.string_value()[0] == '-' ? kPrecUnary : kPrecPrimary};
      }
      break;
    default:
      break;
  }
  // Everything else as a typed string: '...'::type reads back to the same value.
  return {QuoteString(FormatText(v, e.type)) + "::" + e.type.ToString(), kPrecCast};
}

Rendered Render(const Expr& e);

std::string Wrap(const Expr& e, int min_prec) {
  Rendered r = Render(e);
  if (r.prec < min_prec) return "(" + r.text + ")";
  return r.text;
}

std::string JoinArgs(const Expr& e, size_t from) {
  std::vector<std::string> parts;
  for (size_t i = from; i < e.args.size(); ++i) parts.push_back(Render(*e.args[i]).text);
  return absl::StrJoin(parts, ", ");
}

void CollectFlattened(const Expr& e, Op op, std::vector<const Expr*>* out) {
  if (e.kind == Expr::Kind::kOp && e.op == op) {
    for (const auto& a : e.args) CollectFlattened(*a, op, out);
  } else {
    out->push_back(&e);
  }
}

Rendered Render(const Expr& e) {
  switch (e.kind) {
    case Expr::Kind::kLiteral:
      return RenderLiteral(e);
    case Expr::Kind::kColumn:
      return {QuoteIdent(e.name), kPrecPrimary};
    case Expr::Kind::kParam:
      return {"$" + e.name, kPrecPrimary};
    case Expr::Kind::kOp:
      break;
  }
  const auto& a = e.args;
  switch (e.op) {
    case Op::kAnd:
    case Op::kOr: {
      std::vector<const Expr*> items;
      CollectFlattened(e, e.op, &items);
      const int prec = e.op == Op::kAnd ? kPrecAnd : kPrecOr;
      std::vector<std::string> parts;
      for (const Expr* item : items) parts.push_back(Wrap(*item, prec + 1));
      if (e.op == Op::kAnd) std::sort(parts.begin(), parts.end());
      return {absl::StrJoin(parts, e.op == Op::kAnd ? " and " : " or "), prec};
    }
    case Op::kNot:
      return {"not " + Wrap(*a[0], kPrecNot), kPrecNot};
    case Op::kEq:
    case Op::kNe:
    case Op::kLt:
    case Op::kLe:
    case Op::kGt:
    case Op::kGe:
      return {absl::StrCat(Wrap(*a[0], kPrecCmp + 1), " ", std::string(OpName(e.op)), " ",
                           Wrap(*a[1], kPrecCmp + 1)),
              kPrecCmp};
    case Op::kEqAny:
      return {absl::StrCat(Wrap(*a[0], kPrecCmp + 1), " = any(", Render(*a[1]).text, ")"),
              kPrecCmp};
    case Op::kIsNull:
    case Op::kIsNotNull:
    case Op::kIsTrue:
    case Op::kIsNotTrue:
    case Op::kIsFalse:
    case Op::kIsNotFalse:
      return {absl::StrCat(Wrap(*a[0], kPrecIs), " ", std::string(OpName(e.op))), kPrecIs};
    case Op::kBetween:
    case Op::kNotBetween:
      return {absl::StrCat(Wrap(*a[0], kPrecOther), " ", std::string(OpName(e.op)), " ",
                           Wrap(*a[1], kPrecOther), " and ", Wrap(*a[2], kPrecOther)),
              kPrecLike};
    case Op::kIn:
    case Op::kNotIn:
      return {absl::StrCat(Wrap(*a[0], kPrecOther), " ", std::string(OpName(e.op)), " (",
                           JoinArgs(e, 1), ")"),
              kPrecLike};
    case Op::kLike:
    case Op::kNotLike:
    case Op::kILike:
    case Op::kNotILike:
      return {absl::StrCat(Wrap(*a[0], kPrecOther), " ", std::string(OpName(e.op)), " ",
                           Wrap(*a[1], kPrecOther)),
              kPrecLike};
    case Op::kConcat:
    case Op::kContains:
    case Op::kContainedBy:
    case Op::kOverlaps:
      return {absl::StrCat(Wrap(*a[0], kPrecOther), " ", std::string(OpName(e.op)), " ",
                           Wrap(*a[1], kPrecOther + 1)),
              kPrecOther};
    case Op::kAdd:
    case Op::kSub:
      return {absl::StrCat(Wrap(*a[0], kPrecAdd), " ", std::string(OpName(e.op)), " ",
                           Wrap(*a[1], kPrecAdd + 1)),
              kPrecAdd};
    case Op::kMul:
    case Op::kDiv:
    case Op::kMod:
      return {absl::StrCat(Wrap(*a[0], kPrecMul), " ", std::string(OpName(e.op)), " ",
                           Wrap(*a[1], kPrecMul + 1)),
              kPrecMul};
    case Op::kNeg: {
      std::string inner = Wrap(*a[0], kPrecUnary);
      // "--" would start a comment.
      if (inner.starts_with("-")) inner = "(" + inner + ")";
      return {"-" + inner, kPrecUnary};
    }
    case Op::kCast:
      return {absl::StrCat(Wrap(*a[0], kPrecCast), "::", e.cast_to.ToString()), kPrecCast};
    case Op::kLower:
    case Op::kUpper:
    case Op::kCoalesce:
      return {absl::StrCat(std::string(OpName(e.op)), "(", JoinArgs(e, 0), ")"), kPrecPrimary};
  }
  return {"?", kPrecPrimary};
}

absl::StatusOr<ExprPtr> BindImpl(const Expr& expr, const ParamValues& values) {
  if (expr.kind == Expr::Kind::kParam) {
    auto it = values.find(expr.name);
    if (it == values.end()) {
      return Error(absl::StrCat("no value for parameter $", expr.name));
    }
    const Value& v = it->second;
    if (!v.is_null()) {
      const ValueKind want = internal::ValueKindFor(expr.type);
      if (v.kind() != want) {
        return Error(absl::StrCat("parameter $", expr.name, " is ", expr.type.ToString(),
                                  " but its value is ", std::string(ValueKindName(v.kind()))));
      }
      if (want == ValueKind::kInt) {
        absl::StatusOr<Value> checked = CastValue(v, SqlType{TypeId::kInt8}, expr.type);
        if (!checked.ok()) {
          return Error(absl::StrCat("parameter $", expr.name, ": ",
                                    std::string(checked.status().message())));
        }
      }
    }
    if (expr.type == SqlType{TypeId::kFloat4} && v.kind() == ValueKind::kFloat) {
      return MakeLiteral(Value::Float(static_cast<float>(v.float_value())), expr.type,
                         expr.position);
    }
    return MakeLiteral(v, expr.type, expr.position);
  }
  auto e = std::make_unique<Expr>();
  e->kind = expr.kind;
  e->op = expr.op;
  e->type = expr.type;
  e->position = expr.position;
  e->literal = expr.literal;
  e->column = expr.column;
  e->name = expr.name;
  e->cast_to = expr.cast_to;
  for (const auto& a : expr.args) {
    absl::StatusOr<ExprPtr> b = BindImpl(*a, values);
    if (!b.ok()) return b;
    e->args.push_back(*std::move(b));
  }
  return e;
}

constexpr size_t kMaxTokens = 10000;
constexpr int kMaxTreeDepth = 256;

int TreeDepth(const Expr& e) {
  int depth = 0;
  for (const auto& a : e.args) depth = std::max(depth, TreeDepth(*a));
  return depth + 1;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Expr>> ParseWhere(std::string_view text, const Schema& schema,
                                                 const ParamTypes& params) {
  absl::StatusOr<std::vector<Token>> tokens = Lex(text);
  if (!tokens.ok()) return tokens.status();
  if (tokens->size() == 1) return Error("empty WHERE expression");
  // Bounds that keep every recursive walk of the tree (evaluation, rendering, destruction) shallow.
  if (tokens->size() > kMaxTokens) {
    return Error(absl::StrCat("expression is too long (more than ", kMaxTokens, " tokens)"));
  }
  Parser parser(*std::move(tokens), schema, params);
  absl::StatusOr<std::unique_ptr<Expr>> e = parser.ParseAll();
  if (e.ok() && TreeDepth(**e) > kMaxTreeDepth) {
    return Error(
        absl::StrCat("expression is nested too deeply (more than ", kMaxTreeDepth, " levels)"));
  }
  // Every rejection of client text is InvalidArgument, also a constant out of range.
  if (!e.ok() && e.status().code() != absl::StatusCode::kInvalidArgument) {
    return Error(std::string(e.status().message()));
  }
  return e;
}

absl::StatusOr<std::unique_ptr<Expr>> Bind(const Expr& expr, const ParamValues& values) {
  return BindImpl(expr, values);
}

std::string Canonical(const Expr& expr) { return Render(expr).text; }

namespace {

// Replaces every non-null literal of `e` by a parameter whose name renders as "$N::type".
void ParameterizeLiterals(Expr* e, std::vector<std::optional<std::string>>* params) {
  if (e->kind == Expr::Kind::kLiteral && !e->literal.is_null()) {
    std::string text;
    if (IsUnknown(*e) || e->type.array) {
      text = e->literal.string_value();
    } else {
      text = FormatText(e->literal, e->type);
    }
    params->push_back(std::move(text));
    e->kind = Expr::Kind::kParam;
    e->name = std::to_string(params->size());
    if (!IsUnknown(*e)) absl::StrAppend(&e->name, "::", e->type.ToString());
    return;
  }
  for (auto& a : e->args) ParameterizeLiterals(a.get(), params);
}

}  // namespace

std::string ToSql(const Expr& expr, std::vector<std::optional<std::string>>* params) {
  std::unique_ptr<Expr> copy = expr.Clone();
  ParameterizeLiterals(copy.get(), params);
  return Render(*copy).text;
}

absl::StatusOr<Value> ParseTypedText(const SqlType& type, std::string_view text) {
  absl::StatusOr<Value> v = internal::InputText(type, text);
  if (!v.ok() && v.status().code() != absl::StatusCode::kInvalidArgument) {
    return absl::InvalidArgumentError(v.status().message());
  }
  return v;
}

absl::StatusOr<std::vector<Value>> ArrayElements(const Value& array, const SqlType& array_type) {
  return internal::ArrayElements(array, array_type.id);
}

Value MakeArray(const std::vector<Value>& elements, const SqlType& element_type) {
  std::vector<std::optional<std::string>> texts;
  texts.reserve(elements.size());
  for (const Value& e : elements) {
    if (e.is_null()) {
      texts.push_back(std::nullopt);
    } else {
      texts.push_back(FormatText(e, element_type));
    }
  }
  return Value::String(ValueKind::kArray, internal::JoinArray(texts));
}

std::vector<const Expr*> Conjuncts(const Expr& expr) {
  std::vector<const Expr*> out;
  CollectFlattened(expr, Op::kAnd, &out);
  return out;
}

}  // namespace shapebridge::shapes
