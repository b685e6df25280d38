"""`pxtui vizier`, `pxtui agent` and `pxtui kelvin`: the server roles, for clusters and simulated ones.

Their options are the roles' own (argparse in cluster.vizier.server and cluster.pem.agent_main), so
a container's command line and `pxtui agent --help` always agree with what the process accepts.
"""

from __future__ import annotations

import sys

import click

PASS_THROUGH = {"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []}


@click.command(context_settings=PASS_THROUGH, add_help_option=False)
@click.pass_context
def vizier(ctx: click.Context) -> None:
    """Run the query broker, Kelvin and agent registry (no PEM); agents join with `pxtui agent`.
    See `pxtui vizier --help`."""
    from cluster.vizier.server import main

    sys.exit(main(list(ctx.args)))


@click.command(context_settings=PASS_THROUGH, add_help_option=False)
@click.pass_context
def agent(ctx: click.Context) -> None:
    """Run a PEM that joins a broker: `pxtui agent --broker ADDR`. See `pxtui agent --help`."""
    from cluster.pem.agent_main import main

    sys.exit(main(list(ctx.args)))


@click.command(context_settings=PASS_THROUGH, add_help_option=False)
@click.pass_context
def kelvin(ctx: click.Context) -> None:
    """Run a Kelvin (merges query results) that joins a broker: `pxtui kelvin --broker ADDR`."""
    from cluster.vizier.kelvin import main

    sys.exit(main(list(ctx.args)))
