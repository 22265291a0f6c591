#include "plugin/agent/task_list.hpp"

namespace secretshim::plugin {

using nlohmann::json;

json taskListPage(const std::map<TaskKey, const std::vector<std::string>*>& secretsByKey,
                  const TaskPageStart& start, std::size_t budget) {
    auto it = secretsByKey.begin();
    if (start.afterBundle) {
        it = secretsByKey.upper_bound({start.after, *start.afterBundle});
    } else if (!start.after.empty()) {
        // Keys sort by id first: the tasks with that id are adjacent.
        for (it = secretsByKey.lower_bound({start.after, ""}); it != secretsByKey.end() && it->first.id == start.after;)
            ++it;
    }
    TaskListReply page;
    std::size_t used = 2;  // []
    for (; it != secretsByKey.end(); ++it) {
        TaskInfo entry{it->first.id, it->first.bundle, *it->second};
        const std::size_t size = entry.toJson().dump().size() + 1;  // and a comma
        if (!page.tasks.empty() && used + size > budget) {
            page.more = true;
            break;
        }
        used += size;
        page.tasks.push_back(std::move(entry));
    }
    return page.toJson();
}

}  // namespace secretshim::plugin
