"""Every `nbo` command explains itself: `--help` works and shows an example to paste."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from training.cli import app


def _leaf_commands(command, path: tuple[str, ...] = ()):
    if hasattr(command, "commands"):
        for name, sub in command.commands.items():
            yield from _leaf_commands(sub, (*path, name))
    else:
        yield path, command


COMMANDS = list(_leaf_commands(typer.main.get_command(app)))


def test_the_cli_has_the_commands_the_readme_promises():
    names = {" ".join(path) for path, _ in COMMANDS}
    expected = {"simulate", "decide", "serve", "train churn", "train uplift", "report", "explain", "campaign analyze",
                "campaign plan", "monitor", "policy evaluate", "promote", "rollback"}
    assert expected <= names, sorted(expected - names)


@pytest.mark.parametrize("path", [path for path, _ in COMMANDS], ids=[" ".join(path) for path, _ in COMMANDS])
def test_help_has_an_example(path):
    result = CliRunner().invoke(app, [*path, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "Example" in result.output, f"`nbo {' '.join(path)} --help` shows no example"
    assert f"nbo {path[0]}" in result.output, "the example should be a command to paste"


def test_serve_prints_a_curl_example_that_is_valid_json():
    import json
    import shlex

    from training.cli_serve import curl_example

    words = shlex.split(curl_example(3000, with_key=True).replace("$NBO_API_KEY", "secret"))
    assert words[:5] == ["curl", "-s", "-X", "POST", "http://127.0.0.1:3000/decide"]
    assert "Authorization: Bearer secret" in words
    assert json.loads(words[words.index("-d") + 1]) == {"customers": [{"customer_id": "C0000001"}]}
    assert "Authorization" not in curl_example(3000, with_key=False)
