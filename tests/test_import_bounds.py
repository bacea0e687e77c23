"""Import files built to exhaust the machine (issue 19, item 16): a zip bomb and a single huge
line are one error line naming the file (and the line), before anything is written, in
bounded memory."""

from __future__ import annotations

import tracemalloc
import zipfile

import pytest
from typer.testing import CliRunner

from mailer import audience_files
from mailer.cli import app
from tests.mailchimp_export import csv_bytes, file_name, member, write_zip
from tests.test_mailchimp_import import subscribers

LONG_LINE = 20 * 1024 * 1024  # 20 MiB: far over the 1 MiB line cap, small for the test machine


@pytest.fixture
def run(mailer_env):
    runner = CliRunner()
    return lambda *args: runner.invoke(app, ["subscribers", *args])


def one_error_line(result, *needles: str) -> None:
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error:") and result.stderr.count("\n") == 1, result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr


def bomb(path, *, rows: int = 400_000) -> None:
    """A few hundred KB that inflate to ~100 MB: the same row over and over."""
    row = csv_bytes("subscribed", [member(1)]).split(b"\r\n", 1)[1]
    head = csv_bytes("subscribed", [])
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open(file_name("subscribed"), "w") as member_file:
            member_file.write(head)
            for _ in range(rows // 1000):
                member_file.write(row * 1000)


def test_a_zip_bomb_is_refused_before_reading(run, engine, tmp_path):
    export = tmp_path / "bomb.zip"
    bomb(export)
    assert export.stat().st_size < 2_000_000
    tracemalloc.start()
    try:
        result = run("import-mailchimp", str(export))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    one_error_line(result, "bomb.zip", file_name("subscribed"))
    assert subscribers(engine) == {}
    assert peak < 30 * 1024 * 1024


def test_a_zip_of_many_members_is_refused(run, engine, tmp_path):
    files = {f"notes/{n}.txt": b"x" for n in range(audience_files.MAX_EXPORT_MEMBERS + 1)}
    files[file_name("subscribed")] = csv_bytes("subscribed", [member(1)])
    one_error_line(run("import-mailchimp", str(write_zip(tmp_path / "many.zip", files))),
                   "many.zip", "files")
    assert subscribers(engine) == {}


def test_an_export_over_the_size_cap_is_refused(run, engine, tmp_path, monkeypatch):
    monkeypatch.setattr(audience_files, "MAX_EXPORT_BYTES", 1000)
    files = {file_name("subscribed"): csv_bytes("subscribed", [member(n) for n in range(20)])}
    one_error_line(run("import-mailchimp", str(write_zip(tmp_path / "big.zip", files))),
                   "big.zip", "uncompressed")
    assert subscribers(engine) == {}


def test_a_normal_export_still_imports(run, engine, tmp_path):
    files = {file_name("subscribed"): csv_bytes("subscribed", [member(n) for n in range(50)])}
    result = run("import-mailchimp", str(write_zip(tmp_path / "ok.zip", files)))
    assert result.exit_code == 0, result.output
    assert len(subscribers(engine)) == 50


def long_line_file(path, head: bytes, good_rows: bytes) -> None:
    with path.open("wb") as handle:
        handle.write(head + good_rows)
        chunk = b"x" * (1024 * 1024)
        for _ in range(LONG_LINE // len(chunk)):
            handle.write(chunk)
        handle.write(b"\r\n" + good_rows)


def imported_in_bounded_memory(run, *args):
    tracemalloc.start()
    try:
        result = run(*args)
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_huge_line_in_a_subscriber_csv_is_one_error_naming_file_and_line(run, engine, tmp_path):
    path = tmp_path / "readers.csv"
    long_line_file(path, b"email,name\r\n", b"a@example.org,A\r\nb@example.org,B\r\n")
    result, peak = imported_in_bounded_memory(run, "import", str(path))
    one_error_line(result, "readers.csv", "line 4")
    assert subscribers(engine) == {}  # refused before the rows above it went in
    assert peak < LONG_LINE // 4


def test_a_huge_line_in_a_mailchimp_export_is_one_error_naming_file_and_line(run, engine,
                                                                            tmp_path):
    folder = tmp_path / "export"
    folder.mkdir()
    rows = csv_bytes("subscribed", [member(1), member(2)])
    head, body = rows.split(b"\r\n", 1)
    long_line_file(folder / file_name("subscribed"), head + b"\r\n", body)
    result, peak = imported_in_bounded_memory(run, "import-mailchimp", str(folder))
    one_error_line(result, file_name("subscribed"), "line 4")
    assert subscribers(engine) == {}
    assert peak < LONG_LINE // 4


def lie_about_size(path, declared: int) -> None:
    """Rewrite the zip's one member's uncompressed size, in its local and central headers."""
    data = bytearray(path.read_bytes())
    local = data.find(b"PK\x03\x04")
    central = data.find(b"PK\x01\x02")
    data[local + 22:local + 26] = declared.to_bytes(4, "little")
    data[central + 24:central + 28] = declared.to_bytes(4, "little")
    path.write_bytes(bytes(data))


def test_a_zip_whose_headers_lie_about_a_size_is_one_error_line(run, engine, tmp_path):
    files = {file_name("subscribed"): csv_bytes("subscribed", [member(n) for n in range(200)])}
    export = write_zip(tmp_path / "liar.zip", files)
    lie_about_size(export, 2000)
    one_error_line(run("import-mailchimp", str(export)), "liar.zip", file_name("subscribed"))
    assert subscribers(engine) == {}
