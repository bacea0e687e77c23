"""``with_options``: a command's options declared once, as a dataclass, and received as one value."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import typer
from typer.testing import CliRunner

from mailer.cli._app import with_options


@dataclass(frozen=True)
class GreetOptions:
    name: Annotated[str, typer.Option("--name", help="Who.")]
    times: Annotated[int, typer.Option("--times", "-t", min=1, max=3, help="How often.")] = 1


def greeter() -> typer.Typer:
    app = typer.Typer()

    @app.command()
    @with_options(GreetOptions)
    def greet(options: GreetOptions) -> None:
        """Say hello."""
        typer.echo(repr(options))

    return app


def test_the_command_gets_one_value_with_every_option():
    result = CliRunner().invoke(greeter(), ["--name", "Ferris", "-t", "2"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "GreetOptions(name='Ferris', times=2)"


def test_defaults_required_options_and_ranges_come_from_the_fields():
    runner, app = CliRunner(), greeter()
    assert "times=1" in runner.invoke(app, ["--name", "Ferris"]).output
    assert runner.invoke(app, []).exit_code == 2  # --name has no default: required
    assert runner.invoke(app, ["--name", "Ferris", "--times", "4"]).exit_code == 2
