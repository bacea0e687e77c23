"""Issues from a git repository: a shallow, sparse checkout of its ``content/`` folder, kept in
the cache directory and brought up to date with ``git fetch`` (only what changed) on each run."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpcore

from mailer.errors import SourceError
from mailer.sources.guard import RefusedAddress, check_host_by_name
from mailer.ratelimit import backoff_delay
from mailer.sources.http import MAX_RETRY_AFTER, FetchPolicy

MAX_GIT_MESSAGE = 400  # characters of git's stderr kept in the error line


class GitCheckout:
    def __init__(self, url: str, branch: str, subdir: str, cache_dir: Path, policy: FetchPolicy) -> None:
        self.url, self.branch, self.subdir, self.policy = url, branch, subdir.strip("/"), policy
        digest = hashlib.sha256(f"{url}\n{branch}".encode()).hexdigest()[:16]
        # Absolute once: git runs in other folders (the clone from the cache, the rest inside
        # the checkout), where a relative path would name a folder nested inside itself.
        self.path = Path(cache_dir).absolute() / "git" / digest

    def update(self) -> Path:
        """Clone or fetch, then return the folder of issues in the fresh checkout."""
        self._check_address()
        if (self.path / ".git").is_dir():
            self._retrying(["fetch", "--depth", "1", "--no-tags", "origin", self.branch], self.path)
            self._git(["reset", "--hard", "--quiet", "FETCH_HEAD"], self.path)
        else:
            self._clone()
        issues = self.path / self.subdir if self.subdir else self.path
        if not _inside(issues, self.path):
            raise SourceError(f"issue source git: {self.subdir}/ of {self.url} leads out of the checkout "
                              "(a symbolic link); refusing to read it")
        if not issues.is_dir():
            raise SourceError(f"issue source git: {self.url} (branch {self.branch}) has no "
                              f"{self.subdir}/ folder (set MAILER_SOURCE_GIT_PATH)")
        return issues

    def _check_address(self) -> None:
        host = network_host(self.url)
        if host is None:
            return  # a path or file:// URL: nothing on the network to protect
        try:
            check_host_by_name(host, self.policy.allow_private)
        except RefusedAddress as refusal:
            raise SourceError(f"issue source git: {self.url}: {refusal}") from None
        except httpcore.ConnectError:
            pass  # an unknown name: git's own error says it best

    def _clone(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(self.path.name + ".partial")
        _remove_tree(partial)
        self._retrying(["clone", "--quiet", "--depth", "1", "--no-tags", "--single-branch", "--branch",
                        self.branch, "--no-checkout", "--", self.url, str(partial)], self.path.parent)
        if self.subdir:
            self._git(["sparse-checkout", "set", "--no-cone", f"/{self.subdir}/"], partial)
        self._git(["checkout", "--quiet", self.branch], partial)
        partial.rename(self.path)  # a clone cut short never looks like a usable checkout

    def _retrying(self, args: list[str], cwd: Path) -> None:
        for attempt in range(1, self.policy.tries + 1):
            try:
                self._git(args, cwd)
                return
            except SourceError as error:
                if attempt == self.policy.tries:
                    raise SourceError(f"{error} ({_tries(self.policy.tries)})") from None
            time.sleep(backoff_delay(attempt, base=self.policy.backoff, cap=MAX_RETRY_AFTER))

    def _git(self, args: list[str], cwd: Path) -> None:
        env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true", "LC_ALL": "C"}
        # No redirects: one could lead git to a host that was never checked. No symbolic links:
        # git writes a link as a small file holding its target, so nothing points out of the
        # checkout (a link to /etc/passwd or ../../secret is not an issue to read and mail).
        command = ["git", "-c", f"http.userAgent={self.policy.user_agent}", "-c", "http.followRedirects=false",
                   "-c", "core.symlinks=false",
                   "-c", f"http.lowSpeedTime={int(self.policy.timeout)}", "-c", "http.lowSpeedLimit=1", *args]
        try:
            result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                                    timeout=self.policy.timeout * 6)
        except FileNotFoundError as error:
            if shutil.which("git") is None:
                raise SourceError("issue source git: the git program is not installed") from None
            raise SourceError(f"issue source git: cannot run git {args[0]} in {cwd}: "
                              f"{error.strerror or error}") from None
        except subprocess.TimeoutExpired:
            raise SourceError(f"issue source git: git {args[0]} of {self.url} timed out") from None
        if result.returncode != 0:
            raise SourceError(f"issue source git: git {args[0]} of {self.url} (branch {self.branch}) "
                              f"failed: {_one_line(result.stderr)}")


def _tries(count: int) -> str:
    return f"{count} tr{'ies' if count > 1 else 'y'}"


def _inside(path: Path, root: Path) -> bool:
    resolved, top = path.resolve(), root.resolve()
    return resolved == top or top in resolved.parents


def network_host(url: str) -> str | None:
    """The host a git URL reaches over the network (scp-like ``user@host:path`` too), or None."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        return None
    if parts.netloc:
        return parts.hostname
    head = url.split("/", 1)[0]
    if ":" in head and len(head.split(":", 1)[0]) > 1:  # user@host:path; C:\\ is a drive
        return head.split(":", 1)[0].rpartition("@")[2].strip("[]") or None
    return None  # a local path


def _one_line(stderr: str) -> str:
    """What git said, on one line: its messages (not its progress), the error last."""
    lines = [line.strip().removeprefix("fatal: ").removeprefix("error: ") for line in stderr.splitlines()]
    said = "; ".join(line for line in lines if line and not line.startswith(("Cloning into", "remote: ")))
    return said[-MAX_GIT_MESSAGE:] or "failed without a message"


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
