"""What every command shares: one-line user errors, option groups, the resolver glue, progress, summaries.

Resolution of option values follows :mod:`pipeline.config` (flag > ``--config`` file > the model's stored
settings > default); :func:`resolve` is the click side of it: it reads which options the user actually gave,
fills the others from the config file (checked against the command's own options, cast by the option's own
click type) and leaves the rest None for the lower layers.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click
from click.core import ParameterSource
from tqdm import tqdm

from models.errors import ModelError
from pipeline.config import DURATION, WINDOW_KINDS, PipelineSettings, config_values, default_text, load_config
from pipeline.errors import LogwardenError
from pipeline.sources.files import count_bytes
from pipeline.stages import presets

ERROR_EXIT = 2
INTERRUPTED_EXIT = 130  # 128 + SIGINT, what a shell reports for a command stopped with Ctrl-C
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 110}
_GIVEN = (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT, ParameterSource.PROMPT)


class UserError(click.ClickException):
    """Printed as one ``logwarden: error: ...`` line on stderr, exit status 2; never a traceback."""

    exit_code = ERROR_EXIT

    def show(self, file: Any = None) -> None:
        click.echo(f"logwarden: error: {self.format_message()}", err=True)


def _as_user_error(exc: click.UsageError) -> UserError:
    ctx = exc.ctx
    hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
    return UserError(" ".join(exc.format_message().split()) + hint)


class Command(click.Command):
    """A command whose user mistakes (bad flags, bad input, bad model) end in one line and exit status 2."""

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as exc:
            raise _as_user_error(exc) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (LogwardenError, ModelError) as exc:
            raise UserError(str(exc)) from None
        except KeyboardInterrupt:
            # Ctrl-C: one line, the shell's status for SIGINT; files being written are left as they were.
            click.echo("logwarden: interrupted", err=True)
            ctx.exit(INTERRUPTED_EXIT)


def warn(message: str) -> None:
    """One ``logwarden: warning: ...`` line on stderr: the run goes on, but the user should know."""
    click.echo(f"logwarden: warning: {message}", err=True)


class Group(click.Group):
    """The main group: commands are :class:`Command`; ``logwarden detect ... | head`` is not an error."""

    command_class = Command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            raise _as_user_error(exc) from None
        except (LogwardenError, ModelError) as exc:
            raise UserError(str(exc)) from None
        except BrokenPipeError:
            # The reader went away; that is not an error.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            ctx.exit(0)


# ------------------------------------------------------------------------------------------ options
def config_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--config", "config_file", type=click.Path(dir_okay=False),
                        help="YAML file with any of this command's options, keys as the long names (flags win; "
                             "an unknown key is an error).")(f)


def _setting(name: str) -> str:
    return default_text(PipelineSettings, name)


Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def _model_default(_name: str) -> str:
    return "  [default: the model's]"


def decoding_options(from_model: bool = False) -> Decorator:
    """``--log-format``, ``--time-format``, ``--max-line-bytes``, ``--timezone``, ``--year``.

    Defaults: the model's, when it has one."""
    tail = _model_default if from_model else _setting

    def add(f: Callable[..., Any]) -> Callable[..., Any]:
        year_default = tail("year") or "  [default: the current year, the previous one for dates ahead of now]"
        f = click.option("--year", type=click.IntRange(1, 9999), metavar="YEAR",
                         help="Year of timestamps written without one (syslog's 'Jun 14 15:16:01')."
                         + year_default)(f)
        f = click.option("--timezone", metavar="ZONE",
                         help="IANA zone of timestamps written without one, e.g. Europe/Berlin."
                         + tail("timezone"))(f)
        f = click.option("--max-line-bytes", type=int,
                         help="Truncate longer lines (counted)." + tail("max_line_bytes"))(f)
        f = click.option("--time-format", help="strptime format of the timestamp fields (auto-detected if "
                         "omitted)." + tail("time_format"))(f)
        f = click.option("--preset", metavar="NAME",
                         help="A known log shape (cri, docker, kubectl, rfc3164, rfc5424, nginx, apache, logfmt, "
                         "loghub-hdfs, ...; `logwarden presets` lists them): sets the layout, time format, entity "
                         "and window; options given explicitly override each part." + tail("preset"))(f)
        return click.option(
            "--log-format",
            help="logparser-style layout, e.g. '<Date> <Time> <Level> <Component>: <Content>'. <Content> is the "
            "message. Text outside <Name> fields is literal (a space run matches any whitespace; '( ... )?' is an "
            "optional part; '\\[' is '['), so Loghub's layouts work as written and '<Time>|<Pid>|<Content>' "
            "needs no escapes. Each field ends where the text after it first appears; lines that do not fit are "
            "kept whole as unmatched. Without it JSON lines are detected and other lines are taken whole. 'auto' "
            "tries every preset on the first lines and says which one it picked."
            + tail("log_format"),
        )(f)

    return add


def window_options(from_model: bool = False) -> Decorator:
    """Entity and window options (defaults: the model's, when it has one)."""
    tail = _model_default if from_model else _setting
    return lambda f: _window_options(f, tail)


def _window_options(f: Callable[..., Any], tail: Callable[[str], str]) -> Callable[..., Any]:
    f = click.option("--max-clock-skew", type=DURATION,
                     help="Event times further ahead of the time a line was read (a Kafka record's timestamp, "
                     "now for files) are bad timestamps: counted, and the line is windowed as untimed."
                     + tail("max_clock_skew"))(f)
    f = click.option("--allowed-lateness", type=DURATION,
                     help="How late (event time) a record may be and still join its window; raise it when "
                     "the summary says most records came late." + tail("allowed_lateness"))(f)
    f = click.option("--window-size", type=DURATION, help="Tumbling window length." + tail("window_size"))(f)
    f = click.option("--max-session", type=DURATION, help="Cut sessions longer than this." + tail("max_session"))(f)
    f = click.option("--session-gap", type=DURATION,
                     help="Silence that ends a session window." + tail("session_gap"))(f)
    f = click.option("--window", type=click.Choice(WINDOW_KINDS), help="Window kind." + tail("window"))(f)
    f = click.option("--entity-field", help="Decoded field naming the entity, e.g. host.name or Component.")(f)
    return click.option(
        "--entity-regex",
        help=r"Every match in the message is an entity, e.g. 'blk_-?\d+' (a named group picks part).")(f)


def untimed_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--allow-untimed`` for the commands that window files (see :mod:`pipeline.embedded`)."""
    return click.option(
        "--allow-untimed", is_flag=True, default=None,
        help="Window the input even when most lines have no readable timestamp (refused otherwise: windows "
        "would not follow event time). Stored with the model.")(f)


def input_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """PATH... plus ``--config`` and the decoding options: what every file command takes."""
    f = decoding_options()(f)
    f = config_option(f)
    return click.argument("paths", nargs=-1, required=True, metavar="PATH...")(f)


# --------------------------------------------------------------------------------------- resolution
def accepted_keys(command: click.Command) -> dict[str, str]:
    """Config-file key -> option name: each option's name and long flag names (``topic`` for ``--topic``)."""
    keys: dict[str, str] = {}
    for param in command.params:
        if not isinstance(param, click.Option) or param.name in (None, "config_file"):
            continue
        keys[param.name] = param.name
        for flag in (*param.opts, *param.secondary_opts):
            if flag.startswith("--"):
                keys[flag[2:].replace("-", "_")] = param.name
    return keys


def resolve(flags: dict[str, Any]) -> dict[str, Any]:
    """The command's options: given on the command line (or its environment variable) > ``--config`` file.

    Options given neither way keep their click default, which is None for every option a lower layer (the
    model's settings, the dataclass defaults of :mod:`pipeline.config`) decides.
    """
    ctx = click.get_current_context()
    path = flags.get("config_file")
    config = config_values(load_config(path), accepted_keys(ctx.command), path) if path else {}
    values = dict(flags)
    for param in ctx.command.params:
        name = param.name
        if name is None or name == "config_file":
            continue
        if ctx.get_parameter_source(name) in _GIVEN:
            continue
        if name in config:
            raw = config[name]
            if getattr(param, "multiple", False) and isinstance(raw, str):
                raw = [raw]
            try:
                values[name] = param.type_cast_value(ctx, raw)
            except click.BadParameter as exc:
                raise LogwardenError(f"config file {path}: {name}: {exc.message}") from None
        elif values.get(name) == ():
            values[name] = None
    return values


def settings_from(values: dict[str, Any], stored: dict[str, Any] | None = None) -> PipelineSettings:
    """Pipeline settings: defaults < the model's stored settings < a ``--preset`` < resolved values.

    A preset given as a flag or in the config file sits just under the other flags and keys: it replaces
    what the model stored, and every option given explicitly overrides its part (:func:`presets.apply`).
    """
    settings = PipelineSettings().merged(stored)
    if values.get("preset"):
        settings = settings.merged(presets.apply(values["preset"], values))
    return settings.merged(values)


def open_registry(model_dir: str, bootstrap_servers: str | None = None) -> Any:
    """The registry ``--model-dir`` names: a directory, or ``kafka:TOPIC`` (Kafka client imported only then)."""
    if str(model_dir).startswith("kafka:"):
        from pipeline.config import DEFAULT_BOOTSTRAP_SERVERS  # noqa: PLC0415
        from pipeline.stream.model_topic import TopicRegistry  # noqa: PLC0415

        return TopicRegistry(bootstrap_servers or DEFAULT_BOOTSTRAP_SERVERS, str(model_dir).partition(":")[2])
    from models.registry import ModelRegistry  # noqa: PLC0415

    return ModelRegistry(model_dir)


# ------------------------------------------------------------------------------------ presentation
@contextmanager
def progress_bar(paths: tuple[str, ...], label: str) -> Iterator[Callable[[int], object] | None]:
    """A byte-based tqdm bar on stderr when it is a terminal; nothing otherwise.

    ``count_bytes`` also opens every input once, so a missing or corrupt file fails before any work.
    """
    total = count_bytes(paths)
    if not sys.stderr.isatty():
        yield None
        return
    # delay: no bar at all for inputs that take less than a moment.
    with tqdm(total=total, unit="B", unit_scale=True, desc=label, file=sys.stderr, leave=False, delay=0.5) as bar:
        yield bar.update
