// libFuzzer target for the pure decoders. The first input byte picks the decode context, the rest
// is one pgoutput message. Anything that decodes must re-encode to exactly the input (the wire
// format has one encoding per message) and decode again to an equal message; anything that does
// not decode must be an InvalidArgument error. The same bytes are also fed to DecodeFrame.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "bridge/replication/decoder/pgoutput.h"
#include "bridge/replication/decoder/walsender_frame.h"

namespace {

using shapebridge::pgoutput::DecodeContext;

// The three contexts a real stream can be in (protocol 1 has no streams).
constexpr DecodeContext kContexts[] = {
    {.protocol_version = 1, .in_stream = false},
    {.protocol_version = 2, .in_stream = false},
    {.protocol_version = 2, .in_stream = true},
};

[[noreturn]] void Fail(const char* what, std::string_view detail) {
  std::fprintf(stderr, "pgoutput_fuzzer: %s: %.*s\n", what, static_cast<int>(detail.size()),
               detail.data());
  std::abort();
}

void FuzzPgoutput(const DecodeContext& context, std::string_view bytes) {
  namespace pgoutput = shapebridge::pgoutput;
  const absl::StatusOr<pgoutput::Message> decoded = pgoutput::Decode(bytes, context);
  if (!decoded.ok()) {
    if (decoded.status().code() != absl::StatusCode::kInvalidArgument) {
      Fail("decode error is not InvalidArgument", decoded.status().ToString());
    }
    return;
  }
  const std::string text = pgoutput::DebugString(*decoded);
  const std::string encoded = pgoutput::Encode(*decoded, context);
  if (encoded != bytes) {
    Fail("re-encoding differs from the input", text);
  }
  const absl::StatusOr<pgoutput::Message> again = pgoutput::Decode(encoded, context);
  if (!again.ok()) {
    Fail("re-encoded message does not decode", again.status().ToString());
  }
  if (!(*again == *decoded)) {
    Fail("round trip changed the message", text);
  }
}

void FuzzFrame(std::string_view bytes) {
  namespace walsender = shapebridge::walsender;
  const absl::StatusOr<walsender::ServerFrame> frame = walsender::DecodeFrame(bytes);
  if (!frame.ok()) {
    if (frame.status().code() != absl::StatusCode::kInvalidArgument) {
      Fail("frame error is not InvalidArgument", frame.status().ToString());
    }
    return;
  }
  std::string encoded;
  if (const auto* data = std::get_if<walsender::XLogData>(&*frame)) {
    encoded =
        walsender::EncodeXLogData(data->wal_start, data->wal_end, data->send_time, data->payload);
  } else {
    encoded = walsender::EncodeKeepalive(std::get<walsender::Keepalive>(*frame));
  }
  if (encoded != bytes) {
    Fail("frame re-encoding differs from the input", "");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) {
    return 0;
  }
  const DecodeContext& context = kContexts[data[0] % std::size(kContexts)];
  const std::string_view bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  FuzzPgoutput(context, bytes);
  FuzzFrame(bytes);
  return 0;
}
