"""Import files built to exhaust the machine (issue 19, item 16): a zip bomb and a single huge
line are one error line naming the file (and the line), before anything is written, in
bounded memory."""

from __future__ import annotations

import tempfile
import tracemalloc
import zipfile

import pytest
from typer.testing import CliRunner

from mailer import audience_files
from mailer.cli import app
from mailer.store.subscriber_files import IMPORT_CHUNK_ROWS
from tests.mailchimp_export import csv_bytes, file_name, member, write_zip
from tests.subscriber_rows import subscribers

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


# -- issue 23 §2: the two-files rule across chunks, with no set of every address in memory ------
# The addresses met so far live in a scratch SQLite file asked one chunk at a time; these rows
# cross IMPORT_CHUNK_ROWS (the real one), so every repeat below is found in an earlier chunk.

GONE = "Gone.Reader+news@gmail.com"  # forgotten; met again as another spelling of its mailbox


def forget(engine, settings, address: str) -> None:
    from mailer.store import subscribers as subs
    from mailer.store.db import session

    with session(engine) as db:
        subs.forget_subscriber(db, address, secret=settings.secret_key)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_engine(request, mailer_env, monkeypatch):
    """The engine of the database the CLI uses: the test's SQLite file, or a fresh PostgreSQL
    database (the scratch file of the addresses met is SQLite either way)."""
    from mailer.config import get_settings
    from mailer.store.db import get_engine, reset_engines

    if request.param == "postgresql":
        monkeypatch.setenv("MAILER_DATABASE_URL", request.getfixturevalue("pg_url"))
        get_settings.cache_clear()
        reset_engines()
    return get_engine(get_settings().database_url)


def test_a_csv_import_over_several_chunks_keeps_one_row_per_address(run, any_engine, settings,
                                                                    tmp_path, monkeypatch):
    import json

    engine = any_engine
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the scratch file goes
    forget(engine, settings, GONE)
    first = [f"reader{n}@example.org" for n in range(IMPORT_CHUNK_ROWS)]  # the first chunk
    later = ["reader1999@example.org",  # the first chunk's last address, again at the border
             "READER5@example.org",  # another case of its local part
             "  reader7@EXAMPLE.org ",  # the domain's case and blanks: the same address
             "gonereader@googlemail.com",  # the forgotten mailbox
             *[f"new{n}@example.org" for n in range(IMPORT_CHUNK_ROWS)],
             "NEW3@example.org", "reader42@example.org"]  # repeats of the second and first chunk
    path = tmp_path / "readers.csv"
    path.write_text("email,name\n" + "".join(f"{a},R\n" for a in first + later))
    result = run("import", str(path), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["added"] == 2 * IMPORT_CHUNK_ROWS and report["existing"] == 0
    assert report["duplicates"] == 5
    gone_line = 1 + len(first) + 4  # the header, the first chunk, three rows, then it
    assert report["forgotten"] == [{"line": gone_line, "email": "gonereader@googlemail.com"}]
    stored = subscribers(engine)
    assert len(stored) == 2 * IMPORT_CHUNK_ROWS
    assert "reader5@example.org" in stored and "READER5@example.org" not in stored
    assert not any("gone" in address for address in stored)
    assert list(tmp_path.glob("mailer-import-*")) == []  # the scratch file is gone


def test_a_mailchimp_import_over_several_chunks_applies_the_two_files_rule(run, engine,
                                                                          settings, tmp_path):
    import json

    forget(engine, settings, GONE)
    subscribed = [member(n) for n in range(IMPORT_CHUNK_ROWS)]  # the first chunk of its file
    subscribed += [member(1, email="Reader1999@example.org"),  # repeated in the same file
                   member(2, email="cleaned.one@EXAMPLE.org"),  # in the cleaned file too
                   member(3, email="gonereader@gmail.com"),  # the forgotten mailbox
                   member(4, email="unsub.two@example.org")]  # in the unsubscribed file too
    files = {
        file_name("cleaned"): csv_bytes("cleaned", [member(9, email="Cleaned.One@example.org")]),
        file_name("unsubscribed"): csv_bytes("unsubscribed", [
            member(8, email="Unsub.Two@example.org")]),
        file_name("subscribed"): csv_bytes("subscribed", subscribed),
    }
    result = run("import-mailchimp", str(write_zip(tmp_path / "big.zip", files)), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["added"] == {"bounced": 1, "unsubscribed": 1, "active": IMPORT_CHUNK_ROWS}
    assert report["duplicates"] == 1
    border = 2 + IMPORT_CHUNK_ROWS  # the header is line 1
    assert [(t["email"], t["first"]["file"], t["again"]["line"], t["kept"])
            for t in report["in_two_files"]] == [
        ("cleaned.one@example.org", file_name("cleaned"), border + 1, "bounced"),
        ("unsub.two@example.org", file_name("unsubscribed"), border + 3, "unsubscribed")]
    assert report["forgotten"] == [{"file": file_name("subscribed"), "line": border + 2,
                                    "email": "gonereader@gmail.com"}]
    stored = subscribers(engine)
    assert stored["Cleaned.One@example.org"].status == "bounced"
    assert stored["Unsub.Two@example.org"].status == "unsubscribed"
    assert len(stored) == IMPORT_CHUNK_ROWS + 2


def test_no_room_for_the_scratch_file_is_one_error_line_and_writes_nothing(run, engine,
                                                                         tmp_path, monkeypatch):
    path = tmp_path / "readers.csv"
    path.write_text("email\nann@example.org\n")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-folder"))
    one_error_line(run("import", str(path)), "no-such-folder", "TMPDIR")
    assert subscribers(engine) == {}
