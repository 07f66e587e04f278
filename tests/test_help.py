"""Help that teaches: every command explains itself, with defaults and worked examples.

Parametrized over ``cli.commands`` so that a new command cannot ship without
help and examples.  ``bncli --help`` must not import the heavy libraries
(numpy, pyarrow, pandas, rich): that keeps it fast.
"""

from __future__ import annotations

import json
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from bncli import __version__
from bncli.cli import cli

COMMANDS = sorted(cli.commands)
HEAVY = ("numpy", "pyarrow", "pandas", "rich")


def _help(*args: str) -> str:
    result = CliRunner().invoke(cli, [*args, "--help"], prog_name="bncli", catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def _examples(text: str) -> list[str]:
    """The command lines listed after 'Examples:'."""
    assert "Examples:" in text
    tail = text[text.index("Examples:") + len("Examples:") :]
    return [line.strip() for line in tail.splitlines() if line.strip().startswith(("bncli ", "cat ", "zcat "))]


@pytest.mark.parametrize("args", [[]] + [[c] for c in COMMANDS], ids=["bncli"] + COMMANDS)
def test_help_has_summary_options_and_examples(args):
    text = _help(*args)
    lines = text.splitlines()
    assert lines[0].startswith("Usage: bncli")
    assert lines[1] == "" and lines[2].startswith("  ") and lines[2].strip()  # the summary comes first
    assert "Options:" in text and "-h, --help" in text
    examples = _examples(text)
    assert any(e.startswith("bncli ") for e in examples), examples
    command = cli.commands[args[0]] if args else cli
    reads_data = not args or any(p.name in ("inputs", "data_path") for p in command.params)
    if reads_data:  # a command that reads tables shows how it sits in a pipeline
        assert any("|" in e for e in examples), "no pipeline among the examples"
    assert text.rstrip().rfind("Examples:") > text.find("Options:"), "examples come last"


@pytest.mark.parametrize("args", [[]] + [[c] for c in COMMANDS], ids=["bncli"] + COMMANDS)
def test_short_and_long_help_options_agree(args):
    runner = CliRunner()
    short = runner.invoke(cli, [*args, "-h"], prog_name="bncli")
    long = runner.invoke(cli, [*args, "--help"], prog_name="bncli")
    assert short.exit_code == long.exit_code == 0
    assert short.stdout == long.stdout


def _unset(value) -> bool:
    """Click >= 8.3 marks 'no default' with a sentinel rather than None."""
    return type(value).__name__ == "Sentinel" or repr(value).endswith("UNSET")


@pytest.mark.parametrize("name", COMMANDS)
def test_every_option_with_a_value_shows_its_default(name):
    """Options that take a value and have a default say what it is ('[default: ...]')."""
    command = cli.commands[name]
    ctx = click.Context(command, info_name=name)
    for param in command.params:
        if not isinstance(param, click.Option) or param.is_flag or param.count or param.required:
            continue
        record = param.get_help_record(ctx)
        assert record is not None, param.name
        default = param.get_default(ctx, call=True)
        if default is not None and default != () and not _unset(default):
            assert "default:" in record[1], f"{name} {record[0]}: no default shown"


@pytest.mark.parametrize("name", COMMANDS)
def test_examples_only_use_options_that_exist(name):
    """Each example's bncli options are real options of that command (help cannot drift)."""
    command = cli.commands[name]
    known = {o for p in command.params if isinstance(p, click.Option) for o in p.opts + p.secondary_opts}
    known |= {"-h", "--help"}
    for example in _examples(_help(name)):
        for part in example.split("|"):
            words = part.split()
            if words[:2] != ["bncli", name]:
                continue
            for word in words[2:]:
                if word.startswith("-") and word != "-":
                    assert word.split("=")[0] in known, f"{example!r}: unknown option {word}"


def test_command_list_shows_whole_summaries():
    listing = _help().split("Commands:")[1].split("Examples:")[0]
    assert "..." not in listing


def test_version():
    for flag in ("--version", "-V"):
        result = CliRunner().invoke(cli, [flag], prog_name="bncli")
        assert result.exit_code == 0
        assert result.stdout.strip() == f"bncli, version {__version__}"


def test_python_dash_m_bncli_help():
    proc = subprocess.run([sys.executable, "-m", "bncli", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Usage: bncli ")
    assert "Examples:" in proc.stdout and proc.stderr == ""


_PROBE = """
import json, sys
from bncli.cli import main
sys.argv = ["bncli", *json.loads(sys.argv[1])]
try:
    main()
except SystemExit as e:
    code = e.code
heavy = [m for m in {heavy!r} if m in sys.modules]
sys.stderr.write(json.dumps({{"code": code, "heavy": heavy}}))
"""


@pytest.mark.parametrize("args", [["--help"], ["--version"]] + [[c, "--help"] for c in COMMANDS], ids=str)
def test_help_does_not_import_heavy_modules(args):
    code = _PROBE.format(heavy=HEAVY)
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(args)], capture_output=True, text=True, timeout=60)
    result = json.loads(proc.stderr.strip().splitlines()[-1])
    assert result == {"code": 0, "heavy": []}
