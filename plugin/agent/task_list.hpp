// The reply to "task.ls", one page at a time: every reply must fit in one
// protocol message (kMaxMessage, 64 KiB), and 500 running tasks do not.
// The client asks again with "after" and "after_bundle": the id and bundle
// of the last task it got, until "more" is false. Tasks are listed in the
// order of their keys (id, then bundle: two containerd namespaces may run
// the same id), so a task started or flushed between two pages is listed
// at most once and none is repeated. A client from before bundles sends
// "after" alone: its next page starts after every task with that id (it may
// miss one of two tasks with the same id, split across a page boundary).
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "plugin/agent/task_key.hpp"
#include "plugin/protocol/messages.hpp"

namespace secretshim::plugin {

// Where a page starts: after the task (after, *afterBundle); without
// afterBundle, after every task whose id is `after`. An empty `after`
// without a bundle: from the first task.
struct TaskPageStart {
    std::string after;
    std::optional<std::string> afterBundle;
};

// {"ok":true,"tasks":[{"id","bundle","secrets"}...],"more":bool}: the tasks
// of `secretsByKey` after `start`, as many as fit in `budget` bytes of JSON
// (at least one, which always fits: a task's id, bundle and names came in
// one create request of at most kMaxMessage bytes).
nlohmann::json taskListPage(const std::map<TaskKey, const std::vector<std::string>*>& secretsByKey,
                            const TaskPageStart& start, std::size_t budget = kTaskPageBudget);

}  // namespace secretshim::plugin
