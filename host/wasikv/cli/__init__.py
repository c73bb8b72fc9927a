"""The `wasikv` command line.

- `launcher`: the console script's entry point (`wasikv.cli.launcher:main`);
- `main`: the click group and the commands `run`, `up`, `build`, `inspect`...;
- `kv`, `new`, `cache`: the subcommand groups the group loads when used;
- `describe`: what `wasikv inspect` shows of a component;
- `progress`, `exit_status`: the progress display and the exit statuses.

The click group is `wasikv.cli.main.main`. This package imports nothing on
purpose: the launcher, inside it, must be running before click loads so a
Ctrl-C meanwhile exits 130 (and `wasikv.cli.main` names the module, so a
re-export of the group under that name would be shadowed by it).
"""
