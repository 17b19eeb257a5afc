#pragma once

#include <string>
#include <utility>

namespace shapebridge::testing {

// GET over HTTP/1.0 on loopback: the status code (0 when it cannot connect) and the body.
std::pair<int, std::string> HttpGet(int port, const std::string& path);

// The value of one series in a Prometheus text exposition ("name" or "name{labels}"); 0 when
// absent.
double MetricValue(const std::string& text, const std::string& series);

}  // namespace shapebridge::testing
