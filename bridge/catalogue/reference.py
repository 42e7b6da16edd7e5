"""The API reference (docs/reference/api.md), generated from the catalogue: every API, its
arguments with their kinds, and what each becomes on Airflow 2 and 3."""

from __future__ import annotations

from collections.abc import Callable

from bridge.catalogue.cli_classes import ARGUMENT_REASONS, EXPLICIT_ONLY_REASONS
from bridge.catalogue.model import KIND_HELP, Api, Arg, Cli, Unavailable, Use
from bridge.catalogue.table import APIS
from bridge.config.settings import Settings
from bridge.text.redact import Secret

MAJORS = (2, 3)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _on(api: Api, arg: Arg, major: int) -> str:
    """What Airflow ``major`` does with one argument of ``api``."""
    used = api.use_of(arg, major)
    if used.use is Use.BRIDGE:
        return "the bridge's own"
    if used.use is Use.NONE:
        return "-"
    if used.use is Use.BUILT:
        return "see the API's description"
    if used.use is Use.POSITIONAL:
        return "positional"
    if used.use is Use.OPTION:
        return f"`{used.detail}`"
    if used.use is Use.IGNORED:
        return f"ignored, with a warning: {used.detail}"
    return f"400: {used.detail}"


def _command(api: Api, major: int) -> str:
    mapping = api.by_major.get(major)
    if api.internal:
        return "answered by the bridge"
    if mapping is None:
        return f"not supported on Airflow {major}.x (400)"
    if isinstance(mapping, Unavailable):
        return f"400: {mapping.why}"
    if not isinstance(mapping, Cli):
        doc = (mapping.__doc__ or "").strip().split("\n\n")[0]
        return " ".join(doc.split())
    words = " ".join([*mapping.words, *mapping.fixed])
    options = " [options]" if mapping.options else ""
    positionals = " ".join(mapping.positionals)
    shown = f"`airflow {words}{options}" + (f" -- {positionals}`" if positionals else "`")
    if mapping.always_json:
        shown += ", with `--output=json` (the bridge reads the result)"
    elif mapping.json_capable:
        shown += "; `output=json` supported"
    if mapping.also_required:
        shown += f"; requires {', '.join(f'`{n}`' for n in mapping.also_required)} here"
    return shown


def _notes(api: Api) -> list[str]:
    notes = []
    if api.methods != ("GET", "POST"):
        notes.append(f"Method: {' or '.join(api.methods)}.")
    if api.requires_command:
        notes.append(f"Answers only where the installed CLI has `airflow {api.requires_command}`.")
    if api.long_running:
        notes.append(
            "A service: it runs in the foreground (streamed, until `command_timeout`) unless "
            "`daemon=true`."
        )
    if api.mask_output:
        notes.append("URI passwords in its output are masked.")
    secret = [a.name for a in api.args if a.secret is not Secret.NONE]
    if secret:
        notes.append(
            "Shown masked in `arguments`, `airflow_cmd` and logs: "
            + ", ".join(f"`{name}`" for name in secret)
            + "."
        )
    return notes


def api_markdown(example: Callable[[Api], str]) -> str:
    """The reference; ``example(api)`` gives an API's example curl command."""
    lines = [
        "# API reference",
        "",
        "<!-- Generated from bridge/catalogue/table.py by `python -m bridge.docs`; do not edit."
        " -->",
        "",
        "Every API answers at `/admin/rest_api/api?api=NAME&ARG=VALUE...` (GET, or POST with a "
        "form body). The [API guide](../api.md) explains the envelope, streaming and status "
        "codes; this page lists what each API takes and runs.",
        "",
        "## Argument kinds",
        "",
        "| Kind | Accepted |",
        "|---|---|",
        *(f"| `{kind.value}` | {_cell(text)} |" for kind, text in KIND_HELP.items()),
        "",
        "No value may contain NUL; surrounding whitespace is stripped except for `text` and "
        "`document`. A value is only ever one argv element: it never becomes an option.",
        "",
        "## APIs",
        "",
        "The Airflow 2 and Airflow 3 columns say what each major's CLI gets of an argument: a "
        "positional, an option, a warning that it was ignored, or a 400 and why. *The bridge's "
        "own* means the bridge itself acts on the argument, the same on every major, instead "
        "of handing it to a CLI command as an option (`wait`, `wait_timeout`, `follow`...).",
        "",
        " · ".join(f"[`{api.name}`](#{api.name})" for api in APIS),
        "",
    ]
    for api in APIS:
        lines += [f"### {api.name}", "", _cell(api.description) + ".", ""]
        lines.append(f"- Scope: `{api.scope.value}` (what a named token needs to call it)")
        lines += [f"- Airflow {major}: {_command(api, major)}" for major in MAJORS]
        lines += [f"- {note}" for note in _notes(api)]
        lines.append("")
        if api.args:
            lines += [
                "| Argument | Required | Kind | Description | Airflow 2 | Airflow 3 |",
                "|---|---|---|---|---|---|",
            ]
            for arg in api.args:
                required = "yes" if arg.required else "no"
                cells = [f"`{arg.name}`", required, f"`{arg.kind.value}`", arg.description]
                cells += [_on(api, arg, major) for major in MAJORS]
                lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
            lines.append("")
        lines += ["```sh", example(api), "```", ""]
    lines += _installed_cli_section()
    return "\n".join(lines).rstrip() + "\n"


def _installed_cli_section() -> list[str]:
    """Every other command: what this page cannot list (it depends on the host), the rules."""
    default = Settings().cli_commands
    return [
        "## Commands of the installed CLI",
        "",
        "Every other command of the installed Airflow answers as `api=` its words joined by "
        "dots, where the operator's `cli_commands` patterns allow it; which commands that is "
        "depends on the host, so they are listed on its test page and in its OpenAPI document, "
        "not here. Their arguments come from the CLI's own parser:",
        "",
        "| Parser | Argument |",
        "|---|---|",
        "| a positional or option | named by its argparse `dest` (`dag_id`, `section`) |",
        "| a flag (`store_true`) | `bool`: true adds the flag |",
        "| `type=int` | `int` |",
        "| a date type | `date` |",
        "| `choices` | one of them, else 400 |",
        "| `subdir` | `dags_path` |",
        "| a value whose dest or help names a file, path, save, log, pid or output, unless "
        "the reviewed table says it is none | `server_path`; a file the command writes (any "
        "the table does not say it only reads) must be new |",
        "| a JSON value (`conf`, `env_vars`, `task_params`) | `text`, its sensitive keys "
        "masked where shown |",
        "| a `section` | `text`, never the bridge's own section |",
        "| anything else | `text` |",
        "| `-o/--output` | `output=json`, as for every API |",
        "",
        "A named token needs the `admin` scope to call them (shared/API.md: every command the "
        "seed's APIs do not name). "
        "An argument the command does not have is a 400 listing those it has. Values are passed "
        "as `--flag=value`, positionals after `--`. Passwords, URIs, connection JSON and "
        "variable values are masked where shown.",
        "",
        "The default `cli_commands`, which change nothing, write no file and reveal no "
        "secret: "
        + ", ".join(f"`{pattern}`" for pattern in default)
        + ". A pattern with `*` or `?` never reaches a command that "
        + "; ".join(EXPLICIT_ONLY_REASONS)
        + ": such a command answers only when `cli_commands` names it in full. Nor does a "
        "call giving an argument that "
        + "; ".join(ARGUMENT_REASONS)
        + " (`treat_dag_id_as_regex`, `task_regex`, `show_values`, `file_io`, "
        "`drop_archives`...): it answers only when its command is named in full.",
        "",
    ]
