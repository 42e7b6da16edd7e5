"""From a request's values to a plan: every argument checked, then the argv for the
installed Airflow's major version. Nothing here runs anything."""

from __future__ import annotations

from collections.abc import Mapping

from bridge.catalogue.model import Api, Arg, Cli, Context, Plan, Unavailable, Use, Values
from bridge.catalogue.values import parse_value
from bridge.errors import RequestError
from bridge.text.redact import Masked, Secret, mask_value


def collect(api: Api, raw: Mapping[str, list[str]], ctx: Context) -> Values:
    """Validate every argument of ``api`` present in ``raw`` (name -> texts)."""
    values: Values = {}
    for arg in api.args:
        texts = raw.get(arg.name)
        if not texts:
            continue
        if len(texts) > 1 and len(set(texts)) > 1:
            raise RequestError(f"argument '{arg.name}' was given {len(texts)} different values")
        if arg.is_upload:
            continue  # staged by the upload code while the body was read, not text
        value = parse_value(arg, texts[0], ctx)
        if arg.named_only and value is not False and api.name not in ctx.cli_commands:
            raise RequestError(
                f"argument '{arg.name}' of {api.name} answers only when the operator names "
                f"{api.name} in full in cli_commands: it {arg.named_only}"
            )
        values[arg.name] = value
    missing = [a.name for a in api.args if a.required and not a.is_upload and a.name not in values]
    if missing:
        raise RequestError(f"The argument(s) {missing} are required")
    return values


def option(flag: str, arg: Arg, value: str, values: Values | None = None) -> str:
    """``--flag=value`` as an argv element; shown masked when the argument is secret."""
    text = f"{flag}={value}"
    if arg.secret is Secret.NONE:
        return text
    return Masked(text, f"{flag}={mask_value(arg.secret, value, values)}")


def _shown(arg: Arg | None, value: str, values: Values) -> str:
    """A positional as an argv element; shown masked when the argument is secret."""
    if arg is None or arg.secret is Secret.NONE:
        return value
    return Masked(value, mask_value(arg.secret, value, values))


def plan_cli(api: Api, values: Values, ctx: Context, want_json: bool) -> Plan:
    """Turn validated values into the argv (after ``airflow``) for this Airflow version."""
    mapping = api.by_major[ctx.airflow_major]
    if isinstance(mapping, Unavailable):  # pragma: no cover - availability is checked first
        raise RequestError(mapping.why)
    if not isinstance(mapping, Cli):
        plan = mapping(values, ctx)
        if want_json and not plan.json_output:
            raise RequestError(f"output=json is not supported for {api.name} as called")
        return plan
    return _plan_from_cli(api, mapping, values, ctx, want_json)


def _plan_from_cli(api: Api, cli: Cli, values: Values, ctx: Context, want_json: bool) -> Plan:
    # output=json among the values: the caller's, or the bridge's for a list it filters.
    want_json = want_json or values.get("output") == "json"
    warnings: list[str] = []
    installed = ctx.cli
    missing = [name for name in cli.also_required if name not in values]
    if missing:
        raise RequestError(
            f"The argument(s) {missing} are required for {api.name} on Airflow "
            f"{ctx.airflow_major}.x"
        )
    options: list[str] = []
    for name, value in values.items():
        if name in cli.positionals or name == "output" or value is False:
            continue  # output=json is handled below; a false boolean adds nothing
        arg = api.arg(name)
        if arg is None:  # pragma: no cover - collect() keeps only the API's own arguments
            raise RequestError(f"argument '{name}' is not one of {api.name}'s")
        used = api.use_of(arg, ctx.airflow_major)
        if used.use is Use.BRIDGE:
            continue
        if used.use is Use.IGNORED:
            warnings.append(f"'{name}' was ignored: {used.detail}")
            continue
        if used.use is not Use.OPTION:
            raise RequestError(
                f"argument '{name}' of {api.name} has no equivalent on Airflow "
                f"{ctx.airflow_major}.x: {used.detail}"
            )
        flag = used.detail
        if installed is not None and installed.lacks(cli.words, flag):
            raise RequestError(
                f"argument '{name}' of {api.name} has no equivalent on Airflow "
                f"{installed.version}: 'airflow {' '.join(cli.words)}' has no {flag} option"
            )
        if value is True:
            options.append(flag)
        else:
            options.append(option(flag, arg, value, values))
    command = installed.command(cli.words) if installed is not None else None
    json_capable = command.json_capable if command is not None else cli.json_capable
    if want_json and not (json_capable or cli.always_json):
        raise RequestError(f"output=json is not supported for {api.name}")
    json_output = want_json or cli.always_json
    if json_output:
        options.append("--output=json")
    positionals = [
        _shown(api.arg(name), values[name], values) for name in cli.positionals if name in values
    ]
    # A fixed flag this version lacks means the same as its absence here (--yes on a pause
    # that never asks, before 2.9).
    fixed = [
        flag for flag in cli.fixed if installed is None or not installed.lacks(cli.words, flag)
    ]
    argv = [*cli.words, *fixed, *options]
    if positionals:
        argv += ["--", *positionals]
    return Plan(argv=argv, warnings=tuple(warnings), json_output=json_output)
