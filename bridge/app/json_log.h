#pragma once

#include <memory>
#include <string_view>

#include "spdlog/formatter.h"

namespace shapebridge {

// A spdlog formatter that writes one JSON object per line:
//   {"time":"2026-11-30T11:27:07.123456Z","level":"info","component":"replication",
//    "slot":"shapebridge","msg":"streaming from 0/0 (protocol 1)"}
// shapebridge's messages start with "[component key=value ...]"; the component and the pairs
// become fields (so slot, shape, instance and client ids can be queried), the rest is "msg".
class JsonLogFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override;
  std::unique_ptr<spdlog::formatter> clone() const override;
};

}  // namespace shapebridge
