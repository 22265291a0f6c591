// Reading fields of a message (or of any JSON the programs did not write
// themselves) without trusting its types: a field of the wrong type reads
// as absent. nlohmann's value() and get<>() throw on a wrong type, and
// operator[] on a const object asserts on a missing key.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace secretshim::plugin {

// The string at `key`; null when absent or not a string.
inline const std::string* stringAt(const nlohmann::json& j, const char* key) {
    const auto it = j.find(key);  // end() on a non-object too
    return it != j.end() && it->is_string() ? &it->get_ref<const std::string&>() : nullptr;
}

inline std::string stringField(const nlohmann::json& j, const char* key) {
    const std::string* s = stringAt(j, key);
    return s ? *s : std::string();
}

inline bool boolField(const nlohmann::json& j, const char* key) {
    const auto it = j.find(key);
    return it != j.end() && it->is_boolean() && it->get<bool>();
}

// A non-negative integer; 0 when absent or of another type.
inline std::uint64_t uintField(const nlohmann::json& j, const char* key) {
    const auto it = j.find(key);
    return it != j.end() && it->is_number_unsigned() ? it->get<std::uint64_t>() : 0;
}

// An integer; 0 when absent or of another type.
inline std::int64_t intField(const nlohmann::json& j, const char* key) {
    const auto it = j.find(key);
    return it != j.end() && it->is_number_integer() ? it->get<std::int64_t>() : 0;
}

// The value at `key` as it is; null when absent.
inline const nlohmann::json& anyField(const nlohmann::json& j, const char* key) {
    static const nlohmann::json null;
    const auto it = j.find(key);
    return it != j.end() ? *it : null;
}

}  // namespace secretshim::plugin
