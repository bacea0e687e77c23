"""What the GitHub Actions runner would obey in a command's output (workflow commands), so tests
can check that hostile issue text cannot inject any."""

from __future__ import annotations


# The commands the runner knows (a line naming another is printed as it is).
RUNNER_COMMANDS = {"error", "warning", "notice", "debug", "add-mask", "set-output", "save-state",
                   "group", "endgroup", "add-path", "set-env", "add-matcher", "remove-matcher",
                   "echo", "stop-commands"}


def runner_commands(stdout: str) -> list[tuple[str, str]]:
    """(command, rest of the line) for each line the GitHub runner would obey."""
    obeyed, stop_token = [], None
    for line in stdout.splitlines():
        command = workflow_command(line, RUNNER_COMMANDS | ({stop_token} if stop_token else set()))
        if command is None:
            continue
        if stop_token is not None:
            if command[0] == stop_token:
                stop_token = None
            continue
        if command[0] == "stop-commands":
            stop_token = command[1].rsplit("::", 1)[-1]
            continue
        obeyed.append(command)
    return obeyed


def workflow_command(line: str, known: set[str]) -> tuple[str, str] | None:
    text = line.lstrip()
    if text.startswith("::") and "::" in text[2:]:  # ::name props::data
        name = text[2:].split("::", 1)[0].split(" ", 1)[0]
        if name in known:
            return name, text
    if "##[" in line and "]" in line[line.index("##[") :]:  # the older ##[name props]data
        inner = line[line.index("##[") + 3 :].split("]", 1)[0]
        name = inner.split(" ", 1)[0]
        if name in known:
            return name, line
    return None
