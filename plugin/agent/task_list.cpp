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
    TaskPageBuilder page(budget);
    for (; it != secretsByKey.end(); ++it)
        if (!page.add({it->first.id, it->first.bundle, *it->second})) break;
    return page.page().toJson();
}

}  // namespace secretshim::plugin
