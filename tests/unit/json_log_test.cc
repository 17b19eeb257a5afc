// JSON log lines: the "[component key=value]" prefix becomes fields, the rest the message, and
// anything in the message is escaped.

#include "bridge/app/json_log.h"

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "spdlog/details/log_msg.h"

namespace shapebridge {
namespace {

nlohmann::json Format(std::string_view payload, spdlog::level::level_enum level) {
  spdlog::details::log_msg msg(spdlog::source_loc{}, "shapebridge", level,
                               spdlog::string_view_t(payload.data(), payload.size()));
  spdlog::memory_buf_t out;
  JsonLogFormatter().format(msg, out);
  const std::string line(out.data(), out.size());
  EXPECT_TRUE(line.ends_with("\n"));
  EXPECT_EQ(line.find('\n'), line.size() - 1) << "one line";
  return nlohmann::json::parse(line);
}

TEST(JsonLogTest, PrefixBecomesFields) {
  const auto j = Format("[snapshot shape=tasks instance=00ff] done in 19 ms", spdlog::level::info);
  EXPECT_EQ(j["level"], "info");
  EXPECT_EQ(j["component"], "snapshot");
  EXPECT_EQ(j["shape"], "tasks");
  EXPECT_EQ(j["instance"], "00ff");
  EXPECT_EQ(j["msg"], "done in 19 ms");
  const std::string time = j["time"];
  EXPECT_EQ(time.size(), std::string("2026-11-30T11:27:07.123456Z").size());
  EXPECT_EQ(time.back(), 'Z');
}

TEST(JsonLogTest, MessagesAreEscaped) {
  const auto j = Format("[server sub=ada] bad \"filter\"\n\tat \\ position 3", spdlog::level::warn);
  EXPECT_EQ(j["level"], "warning");
  EXPECT_EQ(j["sub"], "ada");
  EXPECT_EQ(j["msg"], "bad \"filter\"\n\tat \\ position 3");
}

TEST(JsonLogTest, PlainMessagesAndInvalidUtf8) {
  EXPECT_EQ(Format("no prefix here", spdlog::level::err)["msg"], "no prefix here");
  EXPECT_FALSE(Format("no prefix here", spdlog::level::err).contains("component"));
  const auto j = Format("[log] bytes \xff\xfe from the database", spdlog::level::info);
  EXPECT_EQ(j["component"], "log");
  EXPECT_NE(j["msg"].get<std::string>().find("from the database"), std::string::npos);
}

}  // namespace
}  // namespace shapebridge
