// The reply to "task.ls", one page at a time: every reply must fit in one
// protocol message (kMaxMessage, 64 KiB), and 500 running tasks do not.
// The client asks again with "after": the last id it got, until "more" is
// false. Ids are listed in order, so a task started or flushed between two
// pages is listed at most once and none is repeated.
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "plugin/protocol/messages.hpp"

namespace secretshim::plugin {

// Room left for the reply's envelope: {"ok":true,"more":true,"tasks":[...]}.
inline constexpr std::size_t kTaskPageBudget = kMaxMessage - 256;

// {"ok":true,"tasks":[{"id","secrets"}...],"more":bool}: the tasks of
// `secretsById` whose id sorts after `after` ("" = from the first), as many
// as fit in `budget` bytes of JSON (at least one, which always fits: a
// task's names came in a create request of at most kMaxMessage bytes).
nlohmann::json taskListPage(const std::map<std::string, const std::vector<std::string>*>& secretsById,
                            const std::string& after, std::size_t budget = kTaskPageBudget);

}  // namespace secretshim::plugin
