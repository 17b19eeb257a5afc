#include "bridge/app/json_log.h"

#include <chrono>
#include <ctime>
#include <string>

#include "nlohmann/json.hpp"

namespace shapebridge {

namespace {

std::string Timestamp(spdlog::log_clock::time_point t) {
  const auto micros =
      std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
  const std::time_t seconds = static_cast<std::time_t>(micros / 1'000'000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char buffer[40];
  const size_t n = std::strftime(buffer, sizeof(buffer), "%Y-%m-%dT%H:%M:%S", &utc);
  char fraction[16];
  std::snprintf(fraction, sizeof(fraction), ".%06lldZ", static_cast<long long>(micros % 1'000'000));
  return std::string(buffer, n) + fraction;
}

}  // namespace

void JsonLogFormatter::format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) {
  nlohmann::ordered_json line;
  line["time"] = Timestamp(msg.time);
  const auto level = spdlog::level::to_string_view(msg.level);
  line["level"] = std::string(level.data(), level.size());
  std::string_view text(msg.payload.data(), msg.payload.size());
  // "[component key=value ...] rest"
  if (text.starts_with('[')) {
    const size_t close = text.find(']');
    if (close != std::string_view::npos) {
      std::string_view head = text.substr(1, close - 1);
      bool first = true;
      while (!head.empty()) {
        const size_t space = head.find(' ');
        const std::string_view word = head.substr(0, space);
        if (first) {
          line["component"] = std::string(word);
          first = false;
        } else if (const size_t eq = word.find('='); eq != std::string_view::npos) {
          line[std::string(word.substr(0, eq))] = std::string(word.substr(eq + 1));
        }
        if (space == std::string_view::npos) break;
        head.remove_prefix(space + 1);
      }
      text.remove_prefix(close + 1);
      if (text.starts_with(' ')) text.remove_prefix(1);
    }
  }
  line["msg"] = std::string(text);
  // Invalid UTF-8 (bytes from the database in a message) is replaced, never a broken line.
  const std::string out = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  dest.append(out.data(), out.data() + out.size());
  dest.push_back('\n');
}

std::unique_ptr<spdlog::formatter> JsonLogFormatter::clone() const {
  return std::make_unique<JsonLogFormatter>();
}

}  // namespace shapebridge
