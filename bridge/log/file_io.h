#pragma once

// The file primitives both logs use: errno as a Status, whole-file reads, complete writes and
// directory syncs.

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace shapebridge::fileio {

// A Status for the current errno: ResourceExhausted for ENOSPC, PermissionDenied for EACCES and
// EPERM, Internal otherwise; the message is "WHAT PATH: strerror".
absl::Status ErrnoError(std::string_view what, const std::string& path);
// The whole file.
absl::StatusOr<std::string> ReadWholeFile(const std::string& path);
// Writes all of `data` to `fd` (retrying short writes and EINTR); errors name `what` and `path`.
absl::Status WriteAll(int fd, std::string_view data, std::string_view what,
                      const std::string& path);
// fsyncs a directory so a created or renamed entry survives a crash (best effort).
void SyncDirectory(const std::string& dir);

}  // namespace shapebridge::fileio
