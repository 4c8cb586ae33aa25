#pragma once
// Reads a JWT's claims without verifying it (tests check what the broker passed through).
#include <nlohmann/json.hpp>
#include <string>

namespace test_support {

/// The decoded payload of a compact JWT; null when it is not one.
nlohmann::json jwt_claims(const std::string& token);

/// The third (signature) part of a compact JWT; empty when it is not one.
std::string jwt_signature(const std::string& token);

}  // namespace test_support
