#pragma once

// A stable content hash for shape identity: definition versions and instance ids must be the same
// on every node and across restarts, so they cannot use std::hash.

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace shapebridge::shapes {

// SHA-256 (FIPS 180-4) of `data`.
std::array<uint8_t, 32> Sha256(std::string_view data);

// The lower-case hex form of `bytes`.
std::string HexString(const uint8_t* bytes, size_t size);

// Appends `field` to `out` so that a sequence of fields encodes unambiguously (length-prefixed),
// whatever bytes the fields contain.
void AppendHashField(std::string* out, std::string_view field);

}  // namespace shapebridge::shapes
