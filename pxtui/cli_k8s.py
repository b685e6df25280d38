"""`pxtui deploy` and `pxtui delete`: put pxtui on a Kubernetes cluster, or take it off.

Both render k8s/base (pxtui/k8s_manifests.py) and talk to the API server with the `kubernetes`
client (pxtui/k8s_apply.py); kubectl is not needed. Also `cluster_vizier`, which the live, run and
status commands use for `--cluster CONTEXT`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from pxtui.k8s_manifests import BASE_NAMESPACE, ManifestError, default_base_dir, render, to_yaml

EXIT_USAGE = 2
EXIT_CLUSTER = 3  # cannot reach, or are refused by, the API server (as for the Vizier)

CONTEXT_HELP = "kubeconfig context (default: the current one)."
NAMESPACE_HELP = "Namespace for pxtui's objects."
MANIFESTS_HELP = "The kustomize base to render (default: k8s/base of this checkout)."


def _fail(code: int, message: str) -> None:
    click.echo(f"pxtui: {message}", err=True)
    sys.exit(code)


def _objects(manifests: str | None, namespace: str, image: str | None) -> list[dict]:
    base = Path(manifests) if manifests else default_base_dir()
    try:
        return render(base, namespace=namespace, image=image)
    except ManifestError as e:
        _fail(EXIT_USAGE, str(e))
    raise AssertionError


def _connect(context: str | None):
    from pxtui.cluster_access import KubeError, api_client

    try:
        return api_client(context)
    except KubeError as e:
        _fail(EXIT_USAGE if e.config else EXIT_CLUSTER, str(e))
    raise AssertionError


@click.command()
@click.option("--context", "context", help=CONTEXT_HELP)
@click.option("-n", "--namespace", default=BASE_NAMESPACE, show_default=True, help=NAMESPACE_HELP)
@click.option("--image", help="Container image for the Vizier and the PEMs (default: the kustomization's).")
@click.option("--manifests", metavar="DIR", help=MANIFESTS_HELP)
@click.option(
    "--print",
    "print_only",
    is_flag=True,
    help="Print the rendered objects as YAML instead (no cluster needed; the Secret has no key).",
)
def deploy(context: str | None, namespace: str, image: str | None, manifests: str | None, print_only: bool) -> None:
    """Deploy pxtui (namespace, read-only RBAC, Vizier, PEM DaemonSet) with server-side apply."""
    objs = _objects(manifests, namespace, image)
    if print_only:
        click.echo(to_yaml(objs), nl=False)
        return
    from pxtui import k8s_apply
    from pxtui.cluster_access import KubeError, server_of

    api = _connect(context)
    click.echo(f"deploying pxtui to namespace {namespace} via {server_of(api)}", err=True)
    try:
        k8s_apply.deploy(api, objs, lambda o: click.echo(f"  {o}"))
    except KubeError as e:
        _fail(EXIT_USAGE if e.config else EXIT_CLUSTER, str(e))
    finally:
        api.close()
    click.echo(
        f"done. Once the pods are ready: pxtui status --cluster {context or '<context>'}"
        + ("" if namespace == BASE_NAMESPACE else f" (with PXTUI_NAMESPACE={namespace})"),
        err=True,
    )


@click.command()
@click.option("--context", "context", help=CONTEXT_HELP)
@click.option("-n", "--namespace", default=BASE_NAMESPACE, show_default=True, help=NAMESPACE_HELP)
@click.option("--manifests", metavar="DIR", help=MANIFESTS_HELP)
def delete(context: str | None, namespace: str, manifests: str | None) -> None:
    """Delete everything `pxtui deploy` created, in reverse order (the signing key too)."""
    from pxtui import k8s_apply
    from pxtui.cluster_access import KubeError, server_of

    objs = _objects(manifests, namespace, None)
    api = _connect(context)
    click.echo(f"deleting pxtui from namespace {namespace} via {server_of(api)}", err=True)
    try:
        k8s_apply.delete(api, objs, lambda o: click.echo(f"  {o}"))
    except KubeError as e:
        _fail(EXIT_USAGE if e.config else EXIT_CLUSTER, str(e))
    finally:
        api.close()


CLUSTER_HELP = (
    "Reach the Vizier deployed in this kubeconfig context through a port-forward "
    "(namespace: PXTUI_NAMESPACE, default pxtui)."
)


def cluster_vizier(cluster: str | None, vizier: str | None, data: str | None = None) -> str | None:
    """The broker address to use: `vizier` unchanged without --cluster, else a port-forward's local address.

    The port-forward lives as long as the click command: it is registered with the command's
    context, which closes it on any exit.
    """
    if cluster is None:
        return vizier
    if vizier is not None or data is not None:
        _fail(EXIT_USAGE, "--cluster picks the Vizier itself: drop --vizier/--data")
    from pxtui.cluster_access import DEFAULT_NAMESPACE, KubeError, vizier_port_forward

    namespace = os.environ.get("PXTUI_NAMESPACE") or DEFAULT_NAMESPACE
    try:
        return click.get_current_context().with_resource(vizier_port_forward(cluster, namespace))
    except KubeError as e:
        _fail(EXIT_USAGE if e.config else EXIT_CLUSTER, str(e))
    raise AssertionError
