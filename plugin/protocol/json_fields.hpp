// Reading fields of a message without trusting its types: a field of the
// wrong type reads as absent (nlohmann's value() would throw).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace secretshim::plugin {

inline std::string stringField(const nlohmann::json& j, const char* key) {
    const auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

inline bool boolField(const nlohmann::json& j, const char* key) {
    const auto it = j.find(key);
    return it != j.end() && it->is_boolean() && it->get<bool>();
}

}  // namespace secretshim::plugin
