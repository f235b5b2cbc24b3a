"""Reading a run of ansible-playbook with the ansible.posix.json callback, for the unit tests."""


def failures(run):
    """host -> (name of the task that failed it or found it unreachable, that task's result).
    A loop's own message only says an item failed, so the items' messages replace it."""
    found = {}
    for play in run["plays"]:
        for task in play["tasks"]:
            for host, result in task["hosts"].items():
                if result.get("failed") or result.get("unreachable"):
                    items = [item.get("msg", "") for item in result.get("results", []) if item.get("failed")]
                    if items:
                        result = {**result, "msg": " ".join(items)}
                    found.setdefault(host, (task["task"]["name"], result))
    return found
