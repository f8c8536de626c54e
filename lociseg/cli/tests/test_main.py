from __future__ import annotations

from lociseg.cli.main import COMMANDS, build_app, run


def test_help_lists_registered_commands(capsys):
    assert run(["--help"]) == 0
    out = capsys.readouterr().out
    app = build_app()
    assert {c.name for c in app.registered_commands} == set(COMMANDS)  # every command module imports
    for name in COMMANDS:
        assert name in out


def test_unknown_command_is_a_usage_error(capsys):
    assert run(["no-such-command"]) == 2
    assert "no-such-command" in capsys.readouterr().err
