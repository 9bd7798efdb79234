"""Options declared once: a dataclass field's default, type and help are the command-line flag.

A settings dataclass marks the fields users may set from the command line with :func:`option`::

    mem_every: int = field(default=10, metadata=option("every N-th frame joins the memory", metavar="N"))

:func:`add_options` builds the flags from those fields (the default shown in the help is the
field's own), and :func:`apply_options` turns what the user gave into a copy of a base instance
(a preset's, or what the weights recommend): flags not given leave the base's value alone.
Adding an option is one field in one dataclass.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from contextlib import contextmanager
from typing import Any, Callable, Iterator, TypeVar

T = TypeVar("T")
_KEY = "qmra_option"


@dataclass(frozen=True)
class Option:
    """How one dataclass field appears on the command line.

    - ``flag``: default ``--field-name``; for a bool field, a flag that sets the value opposite to
      its default (``--no-pipeline`` sets False);
    - ``both_ways``: a bool field gets ``--field-name`` and ``--no-field-name`` (a switch whose
      default changed, so that command lines written for the old default keep working);
    - ``parse``: text → value (default: the type of the field's default); raise
      ``argparse.ArgumentTypeError`` for bad text;
    - ``default_text``: what the help says the default is, where the field's value is not the whole
      story (e.g. "what the weights recommend, else 10");
    - ``show``: a value → how the help writes it (``384`` → ``"384 px"``);
    - ``group``: the title of the help section the flag is listed in (None: the command's own).
    """

    help: str
    flag: str | None = None
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    parse: Callable[[str], Any] | None = None
    default_text: str | None = None
    show: Callable[[Any], str] | None = None
    group: str | None = None
    both_ways: bool = False

    def shown(self, value: Any) -> str:
        """``value`` as the help writes it."""
        if value is None:
            return self.default_text or "none"
        if self.show is not None:
            return self.show(value)
        if isinstance(value, bool):
            return "on" if value else "off"
        return str(value)


def option(help: str, **details: Any) -> dict[str, Option]:
    """Field metadata that makes the field a command-line option (see :class:`Option`)."""
    return {_KEY: Option(help, **details)}


def declared_options(cls: type) -> list[tuple[dataclasses.Field, Option]]:
    """The fields of dataclass ``cls`` that are command-line options, in declaration order."""
    return [(f, f.metadata[_KEY]) for f in dataclasses.fields(cls) if _KEY in f.metadata]


def flag_of(field: dataclasses.Field, opt: Option) -> str:
    if opt.flag:
        return opt.flag
    name = field.name.replace("_", "-")
    return f"--no-{name}" if field.default is True else f"--{name}"


def add_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type,
                default_text: Callable[[str, Option, str], str] | None = None) -> None:
    """Add one flag per option field of ``cls``, in its help section (:attr:`Option.group`). A flag
    not given leaves no attribute on the parsed namespace, so :func:`apply_options` can tell "not
    given" from "given the default". ``default_text(field_name, option, text)`` may rewrite what the
    help says the default is (``text``: the field's own) where this command's default comes from
    elsewhere."""
    for field, opt in declared_options(cls):
        default = field.default
        flag = flag_of(field, opt)
        common = {"dest": field.name, "default": argparse.SUPPRESS}
        section = help_section(parser, opt.group)
        if isinstance(default, bool) and opt.both_ways:
            shown = opt.shown(default)
            if default_text is not None:
                shown = default_text(field.name, opt, shown)
            section.add_argument(f"--{field.name.replace('_', '-')}", action=argparse.BooleanOptionalAction,
                                 help=f"{opt.help}; default: {shown}", **common)
            continue
        if isinstance(default, bool):
            section.add_argument(flag, action="store_const", const=not default, help=opt.help, **common)
            continue
        kind = opt.parse or (type(default) if default is not None else str)
        shown = opt.shown(default)
        if default_text is not None:
            shown = default_text(field.name, opt, shown)
        section.add_argument(flag, type=kind, metavar=opt.metavar, choices=opt.choices,
                             help=f"{opt.help}; default: {shown}", **common)


def help_section(parser: argparse.ArgumentParser | argparse._ArgumentGroup,
                 title: str | None) -> argparse.ArgumentParser | argparse._ArgumentGroup:
    """The argument group of ``parser`` titled ``title``, made the first time (None: ``parser``)."""
    if title is None or not isinstance(parser, argparse.ArgumentParser):
        return parser
    for group in parser._action_groups:
        if group.title == title:
            return group
    return parser.add_argument_group(title)


def given_options(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The option fields of ``cls`` that the user gave on the command line, by field name."""
    return {f.name: getattr(args, f.name) for f, _ in declared_options(cls) if hasattr(args, f.name)}


def apply_options(args: argparse.Namespace, base: T) -> T:
    """``base`` (a dataclass instance) with the options the user gave applied."""
    with _named_by_flag(type(base)):
        return dataclasses.replace(base, **given_options(args, type(base)))  # type: ignore[type-var]


def from_options(args: argparse.Namespace, cls: type[T], **fixed: Any) -> T:
    """A new ``cls`` from its defaults, the options given, and ``fixed`` values."""
    with _named_by_flag(cls):
        return cls(**{**given_options(args, cls), **fixed})


@contextmanager
def _named_by_flag(cls: type) -> Iterator[None]:
    """A dataclass's own check names the field (``max_memory_frames must be ...``); on the command line
    the user wrote the flag, so the message names that (``--max-memory-frames must be ...``)."""
    from qmra.errors import QmraError

    try:
        yield
    except QmraError as error:
        message = str(error)
        for field, opt in declared_options(cls):
            if message.startswith(f"{field.name} "):
                raise type(error)(flag_of(field, opt) + message[len(field.name):]) from None
        raise
