"""`wasikv new`: start an application from one of the bundled templates."""

from __future__ import annotations

import re
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

import click

#: Each template (a directory in wasikv/templates) and its one-line description.
TEMPLATES = {
    "command": "a command component (`wasikv build && wasikv run app.wasm`) counting its runs",
    "http": "an HTTP component (`wasikv up --build`): a counter at /counter",
    "watch": "an HTTP component storing notes and a key-value watcher keeping their word counts",
}

#: The text replaced by the application's name in every template file.
PLACEHOLDER = "{{name}}"

# The name is also a directory, the manifest's application name and a
# component name, so it follows the manifest's rule for component names.
_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?\Z")

# Stored without their leading dot so that setuptools' package-data globs ship
# them and they do not act on this repository.
_RENAMED = {"gitignore": ".gitignore"}


class NewAppError(Exception):
    """The application could not be created; nothing was written."""


def template_files(template: str) -> dict[str, str]:
    """The files of `template`: name in the new application -> text with the placeholder."""
    if template not in TEMPLATES:
        raise NewAppError(f"unknown template {template!r}; choose one of {', '.join(TEMPLATES)}")
    folder: Traversable = resources.files("wasikv") / "templates" / template
    return {
        _RENAMED.get(entry.name, entry.name): entry.read_text(encoding="utf-8")
        for entry in sorted(folder.iterdir(), key=lambda entry: entry.name)
        if entry.is_file()
    }


def create_app(template: str, name: str, parent: str | Path = ".") -> Path:
    """Write a new application `parent/name` from `template`, with `name` as its application name.

    `name` must be a plain name (letters, digits, '-' and '_', starting and
    ending with a letter or digit). The directory may exist only if it is
    empty; otherwise `NewAppError` is raised and nothing is written.
    """
    if not _NAME.match(name):
        raise NewAppError(
            f"invalid application name {name!r}: use letters, digits, '-' and '_', "
            "starting and ending with a letter or digit (for example 'my-app')"
        )
    files = template_files(template)
    target = Path(parent) / name
    if target.exists() and not target.is_dir():
        raise NewAppError(f"{target} already exists and is not a directory; choose another name")
    if target.is_dir() and any(target.iterdir()):
        raise NewAppError(f"directory {target} already exists and is not empty; choose another name")
    target.mkdir(parents=True, exist_ok=True)
    for file_name, text in files.items():
        (target / file_name).write_text(text.replace(PLACEHOLDER, name), encoding="utf-8")
    return target


def _next_steps(template: str, name: str) -> str:
    if template == "command":
        return f"cd {name} && wasikv build && wasikv run app.wasm"
    return f"cd {name} && wasikv up --build"


@click.command("new")
@click.argument("template", required=False, type=click.Choice(list(TEMPLATES)), metavar="TEMPLATE")
@click.argument("name", required=False, metavar="NAME")
@click.option("--list", "list_templates", is_flag=True, help="List the templates and exit.")
def new(template: str | None, name: str | None, list_templates: bool) -> None:
    """Create the application NAME (a new directory) from TEMPLATE: command, http or watch.

    The directory gets app.py, wasikv.toml, .gitignore and a README.md; the
    manifest's application name is NAME. An existing directory must be
    empty. `wasikv new --list` shows the templates.
    """
    if list_templates:
        width = max(len(known) for known in TEMPLATES)
        for known, description in TEMPLATES.items():
            click.echo(f"{known:<{width}}  {description}")
        return
    if template is None or name is None:
        raise click.UsageError("give a TEMPLATE and a NAME (see `wasikv new --list`)")
    try:
        target = create_app(template, name)
    except NewAppError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        raise click.ClickException(f"{where}{exc.strerror or exc}") from None
    click.echo(f"created {target} from the {template} template; next: {_next_steps(template, name)}")
