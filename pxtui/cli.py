"""The `pxtui` command.

Exit codes, kept stable for CI: 0 ok, 1 script error (the message gives line and column),
2 usage, 3 cannot reach or authenticate to the Vizier.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import click

from cluster import paths
from pxtui.config import ClientConfig, save_file
from pxtui.runner import ScriptError, VizierUnavailable
from pxtui.scripts import Script, ScriptNotFound, bundled, find, load_path

EXIT_SCRIPT = 1
EXIT_USAGE = 2
EXIT_VIZIER = 3

CONTEXT = {"help_option_names": ["-h", "--help"]}


def _fail(code: int, message: str) -> None:
    click.echo(f"pxtui: {message}", err=True)
    sys.exit(code)


def parse_script_args(tokens: tuple[str, ...]) -> dict[str, str]:
    """Script variables after `--`, as Pixie's CLI takes them: --name=value, --name value, -name value."""
    out: dict[str, str] = {}
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if not tok.startswith("-") or tok in ("-", "--"):
            _fail(EXIT_USAGE, f"unexpected script argument {tok!r}: use --name=value")
        name = tok.lstrip("-")
        if "=" in name:
            name, value = name.split("=", 1)
        elif i + 1 < len(tokens):
            i += 1
            value = tokens[i]
        else:
            _fail(EXIT_USAGE, f"script argument --{name} needs a value")
        out[name] = value
        i += 1
    return out


def _load_script(script: str | None, file: str | None) -> Script:
    if (script is None) == (file is None):
        _fail(EXIT_USAGE, "name a bundled script (e.g. px/http_data) or pass -f PATH, not both")
    try:
        return load_path(file) if file else find(script)  # type: ignore[arg-type]
    except ScriptNotFound as e:
        _fail(EXIT_USAGE, str(e))
    raise AssertionError


def _client(vizier: str | None, api_key: str | None):
    from pxtui.client import VizierClient, configured_vizier_key

    cfg = ClientConfig.resolve(vizier, api_key)
    try:
        vizier_key = configured_vizier_key()  # with it, scripts are sealed for the Vizier (cluster/auth/e2e.py)
    except VizierUnavailable as e:
        _fail(EXIT_VIZIER, str(e))
    return VizierClient(cfg.vizier, cfg.api_key, vizier_key=vizier_key)


def _script_help(script: Script) -> str:
    lines = [f"{script.id}: {script.short}".rstrip(": "), "", "Arguments (after --):"]
    for v in script.vis.variables:
        req = " (required)" if v.required else f" (default {v.default!r})"
        lines.append(f"  --{v.name}  Type: {v.type}{req}  {v.description}")
    if not script.vis.variables:
        lines.append("  none")
    return "\n".join(lines)


DATA_HELP = ("Replay a recording made by `pxtui record DIR` in this process: no Vizier, no root, no network. "
             "Relative times (-5m) count back from the recording's end time, not from now.")


def _set_timeout(timeout: float | None) -> None:
    """--timeout outranks PXTUI_TIMEOUT, which the client reads (flags, then environment)."""
    if timeout is not None:
        os.environ["PXTUI_TIMEOUT"] = f"{timeout:g}"


def _runner(data: str | None, vizier: str | None, api_key: str | None):
    """The gRPC client, or with --data the in-process runner over a recording."""
    if data is None:
        return _client(vizier, api_key)
    from cluster.store.recording import RecordingError
    from pxtui.local_runner import LocalRunner

    try:
        return LocalRunner.open(data)
    except RecordingError as e:
        _fail(EXIT_USAGE, f"--data: {e}")
    raise AssertionError


def _run_once(script: Script, args: dict[str, str], output: str, vizier: str | None, api_key: str | None,
              data: str | None = None) -> None:
    from pxtui import output as out

    if "help" in args:
        click.echo(_script_help(script))
        return
    client = _runner(data, vizier, api_key)
    try:
        result = client.run(script, args)
    except ScriptError as e:
        msg = str(e)
        if "Missing required argument" in msg:
            msg += "\n\n" + _script_help(script)
        _fail(EXIT_SCRIPT, msg)
    except VizierUnavailable as e:
        _fail(EXIT_VIZIER, str(e))
    finally:
        client.close()
    resolved = args if script.vis.empty else script.vis.resolve_args(args)
    if output == "json":
        doc = out.json_document(script.id, resolved, result.tables, result.warnings)
        click.echo(json.dumps(doc))
    elif output == "jsonl":
        out.write_jsonl(sys.stdout, result.tables)
    elif output == "csv":
        out.write_csv(sys.stdout, result.tables)
    else:
        click.echo(out.render_table_text(result.tables), nl=False)
    for w in result.warnings:
        click.echo(f"warning: {w}", err=True)


@click.group(context_settings=CONTEXT)
@click.version_option("0.1.0", prog_name="pxtui")
def main() -> None:
    """pxtui: live, full-body traffic of every service, from eBPF, in your terminal."""


# ---- the embedded Vizier ----------------------------------------------------------------------
def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _running_pid() -> int | None:
    try:
        pid = int(paths.pid_file().read_text())
    except (FileNotFoundError, ValueError):
        return None
    return pid if _pid_alive(pid) else None


def _ensure_api_key(addr: str) -> None:
    """Give this user a working key in its config file, creating one when it has none that the Vizier knows."""
    from cluster.auth.api_keys import ApiKeyStore, AuthError
    from cluster.auth.e2e import local_vizier_public_key_text

    store = ApiKeyStore(paths.api_keys_file())
    current = ClientConfig.resolve().api_key
    pinned = local_vizier_public_key_text()  # read here, on the Vizier's host: never learnt over the network
    try:
        store.verify(current)
        save_file(vizier=addr, vizier_public_key=pinned)
        return
    except AuthError:
        pass
    rec, key = store.create("pxtui-up")
    p = save_file(vizier=addr, api_key=key, vizier_public_key=pinned)
    click.echo(f"created API key {rec.id} ({rec.name}); saved to {p}")


@main.command()
@click.option("--foreground", is_flag=True, help="Stay attached (logs to the terminal).")
@click.option("--addr", default=paths.DEFAULT_ADDR, show_default=True, help="Where the broker listens.")
@click.option("--body-cap", default=512, show_default=True, help="Bytes of each body kept.")
@click.option("--pems", default=0, type=click.IntRange(0, 64),
              help="Simulate a cluster: run N PEM processes that join the broker (0 = one PEM embedded).")
@click.option("--netns", is_flag=True, help="With --pems: each PEM in its own network namespace and address.")
@click.option("--kelvins", default=0, type=click.IntRange(0, 16),
              help="With --pems: also run K Kelvin processes that merge query results (else the broker merges).")
@click.option("--wait", "wait_s", default=90.0, show_default=True, help="Seconds to wait for readiness.")
def up(foreground: bool, addr: str, body_cap: int, pems: int, netns: bool, kelvins: int, wait_s: float) -> None:
    """Start the embedded Vizier (PEM, Kelvin, broker, metadata) on this host, or a simulated cluster."""
    from cluster.vizier import local_cluster

    if os.geteuid() != 0:
        _fail(EXIT_USAGE, "the Vizier loads eBPF programs and must run as root (sudo pxtui up)")
    if netns and not pems:
        _fail(EXIT_USAGE, "--netns needs --pems N: it puts each of the N PEMs in its own network namespace")
    if kelvins and not pems:
        _fail(EXIT_USAGE, "--kelvins needs --pems N: the embedded Vizier merges in its own process")
    paths.ensure_state_dir()
    pid = _running_pid()
    if pid is not None:
        _ensure_api_key(paths.addr_file().read_text().strip() if paths.addr_file().exists() else addr)
        click.echo(f"the Vizier is already running (pid {pid}); `pxtui down` first to change its shape")
        return
    _ensure_api_key(addr)
    cmd = [sys.executable, "-m", "cluster.vizier.embedded", "--addr", addr, "--body-cap", str(body_cap)]
    if foreground:
        if pems:
            _fail(EXIT_USAGE, "--foreground runs the embedded Vizier only; a simulated cluster runs in the background")
        os.execv(sys.executable, cmd)
    if pems:
        try:
            cluster = local_cluster.start(addr, pems, netns, body_cap, paths.log_file(), kelvins)
        except (RuntimeError, ValueError) as e:
            _fail(EXIT_VIZIER, f"cannot set up the simulated nodes: {e}")
        watched, want = cluster.vizier_pid, pems + kelvins
        click.echo(f"starting the Vizier (pid {cluster.vizier_pid}), {pems} PEMs and {kelvins} Kelvins "
                   f"(pids {' '.join(map(str, cluster.agent_pids))}); loading eBPF probes…", err=True)
    else:
        logf = open(paths.log_file(), "ab")  # noqa: SIM115 (handed to the child)
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=str(Path(__file__).resolve().parent.parent))
        watched, want = proc.pid, 1
        click.echo(f"starting the Vizier (pid {proc.pid}); loading eBPF probes…", err=True)
    client = _client(addr, None)
    deadline = time.monotonic() + wait_s
    try:
        while time.monotonic() < deadline:
            if not _pid_alive(watched):
                tail = paths.log_file().read_text(errors="replace").splitlines()[-15:]
                _fail(EXIT_VIZIER, "the Vizier exited during start-up:\n  " + "\n  ".join(tail))
            try:
                st = client.get_status()
            except VizierUnavailable:
                time.sleep(0.25)
                continue
            healthy = [a for a in st.agents if a.state == "AGENT_STATE_HEALTHY"]
            if len(healthy) < want:  # the broker answers before its PEMs have loaded their probes
                time.sleep(0.25)
                continue
            a = next((h for h in healthy if h.probes), healthy[0])
            click.echo(f"Vizier up on {addr}: {len(healthy)} agent(s) healthy, {len(a.probes)} probes attached "
                       f"each, kernel headers {a.kernel_headers}")
            return
    finally:
        client.close()
    _fail(EXIT_VIZIER, f"the Vizier did not become ready within {wait_s:g} s; see {paths.log_file()}")


@main.command()
def down() -> None:
    """Stop the embedded Vizier, or the simulated cluster (its PEMs and namespaces too)."""
    from cluster.vizier import local_cluster

    cluster = local_cluster.LocalCluster.load()
    if cluster is not None:
        local_cluster.stop(cluster)
        for f in (paths.pid_file(), paths.addr_file()):
            f.unlink(missing_ok=True)
        click.echo(f"stopped the Vizier and {len(cluster.agent_pids)} PEM/Kelvin processes")
        return
    pid = _running_pid()
    if pid is None:
        click.echo("the Vizier is not running")
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and _pid_alive(pid):
        time.sleep(0.1)
    if _pid_alive(pid):
        os.kill(pid, signal.SIGKILL)
    click.echo(f"stopped the Vizier (pid {pid})")


def _fmt_ns(ns: int) -> str:
    if not ns:
        return "-"
    return time.strftime("%H:%M:%S", time.localtime(ns / 1e9))


@main.command()
@click.option("--vizier", help="Broker address (else PXTUI_VIZIER, else the config file).")
@click.option("--api-key", help="API key (else PXTUI_API_KEY, else the config file).")
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text")
@click.option("--cluster", metavar="CONTEXT",
              help="Reach the Vizier in this kubeconfig context by port-forward (namespace: PXTUI_NAMESPACE).")
def status(vizier: str | None, api_key: str | None, output: str, cluster: str | None) -> None:
    """Agents, probes, kernel headers, events seen and lost, and each table's rows, bytes and window."""
    from google.protobuf.json_format import MessageToDict

    from pxtui.cli_k8s import cluster_vizier

    vizier = cluster_vizier(cluster, vizier)
    client = _client(vizier, api_key)
    try:
        st = client.get_status()
    except VizierUnavailable as e:
        _fail(EXIT_VIZIER, str(e))
    finally:
        client.close()
    if output == "json":
        click.echo(json.dumps(MessageToDict(st, preserving_proto_field_name=True), indent=1))
        return
    now = time.time_ns()
    for a in st.agents:
        ago = f", last heartbeat {(now - a.last_heartbeat_ns) / 1e9:.1f} s ago" if a.last_heartbeat_ns else ""
        click.echo(f"agent {a.agent_id} (asid {a.asid}) on {a.hostname}: {a.state}{ago}")
        if a.error:
            click.echo(f"  error: {a.error}")
        click.echo(f"  kernel headers: {a.kernel_headers}")
        click.echo(f"  probes ({len(a.probes)}): {', '.join(a.probes)}")
        click.echo(f"  events seen: {a.events_seen}   lost: {a.events_lost}   parse errors: {a.parse_errors}"
                   f"   connections: {a.conns_active}   connections reset: {a.conns_reset}")
        if not a.tables:
            continue
        w = max(14, *(len(t.name) + 1 for t in a.tables))
        click.echo(f"  {'table':<{w}}{'rows':>10}{'bytes':>14}{'cap':>12}{'evicted':>10}  window")
        for t in a.tables:
            window = f"{_fmt_ns(t.min_time_ns)} .. {_fmt_ns(t.max_time_ns)}" if t.rows else "-"
            click.echo(f"  {t.name:<{w}}{t.rows:>10}{t.bytes:>14}{t.max_bytes:>12}{t.rows_evicted:>10}  {window}")


# ---- scripts ---------------------------------------------------------------------------------
OUTPUT = click.Choice(["table", "json", "jsonl", "csv"])


@main.command(context_settings={**CONTEXT, "ignore_unknown_options": True})
@click.argument("script", required=False)
@click.option("-f", "--file", "file", help="A .pxl file, or a directory with one .pxl and vis.json.")
@click.option("-o", "--output", type=OUTPUT, default="table", show_default=True)
@click.option("--data", "data", metavar="DIR", help=DATA_HELP)
@click.option("--vizier", help="Broker address (else PXTUI_VIZIER, else the config file).")
@click.option("--api-key", help="API key (else PXTUI_API_KEY, else the config file).")
@click.argument("script_args", nargs=-1, type=click.UNPROCESSED)
@click.option("--cluster", metavar="CONTEXT",
              help="Reach the Vizier in this kubeconfig context by port-forward (namespace: PXTUI_NAMESPACE).")
@click.option("--timeout", type=click.FloatRange(min=0.1), metavar="SECONDS",
              help="This query's deadline on the Vizier (else PXTUI_TIMEOUT, else the Vizier's 10 s).")
def run(script: str | None, file: str | None, output: str, data: str | None, vizier: str | None,
        api_key: str | None, script_args: tuple[str, ...], cluster: str | None, timeout: float | None) -> None:
    """Run SCRIPT once and print its tables: pxtui run px/http_data -- --start_time=-1m

    With --data DIR it runs against a recording instead of the Vizier, and `now` is the recording's
    end time, so -5m means the last five minutes of the recording."""
    from pxtui.cli_k8s import cluster_vizier

    s = _load_script(script, file)
    vizier = cluster_vizier(cluster, vizier, data)
    _set_timeout(timeout)
    _run_once(s, parse_script_args(script_args), output, vizier, api_key, data)


@main.command()
@click.argument("directory", metavar="DIR")
@click.option("-t", "--table", "tables", multiple=True, help="Record only this table (repeatable; default all).")
@click.option("--vizier", help="Broker address (else PXTUI_VIZIER, else the config file).")
@click.option("--api-key", help="API key (else PXTUI_API_KEY, else the config file).")
def record(directory: str, tables: tuple[str, ...], vizier: str | None, api_key: str | None) -> None:
    """Save every table of every agent, with schemas and a metadata snapshot, to DIR (Arrow IPC files).

    Replay it anywhere with `pxtui run --data DIR SCRIPT` or `pxtui live --data DIR`: no agent, no root."""
    from cluster.store.recording import RecordingError
    from pxtui.recorder import record as do_record

    cfg = ClientConfig.resolve(vizier, api_key)
    try:
        m = do_record(cfg.vizier, cfg.api_key, directory, list(tables) or None)
    except RecordingError as e:
        _fail(EXIT_USAGE, str(e))
    except VizierUnavailable as e:
        _fail(EXIT_VIZIER, str(e))
    rows = sum(m.tables.values())
    click.echo(f"recorded {len(m.tables)} tables, {rows} rows, from {len(m.agents)} agent(s) on "
               f"{m.hostname or '?'} into {directory} (ends {_fmt_ns(m.end_time_ns)})")


@main.command(context_settings={**CONTEXT, "ignore_unknown_options": True})
@click.argument("script", required=False, default=None)
@click.option("-f", "--file", "file", help="A .pxl file, or a directory with one .pxl and vis.json.")
@click.option("--once", is_flag=True, help="Run once and print (for CI and pipes), no TUI.")
@click.option("-o", "--output", type=OUTPUT, default="table", show_default=True, help="With --once.")
@click.option("--refresh", default=2.0, show_default=True, help="Seconds between refreshes.")
@click.option("--data", "data", metavar="DIR", help=DATA_HELP)
@click.option("--ascii", "ascii_only", is_flag=True, help="Draw with ASCII only (also PXTUI_ASCII=1).")
@click.option("--vizier", help="Broker address (else PXTUI_VIZIER, else the config file).")
@click.option("--api-key", help="API key (else PXTUI_API_KEY, else the config file).")
@click.argument("script_args", nargs=-1, type=click.UNPROCESSED)
@click.option("--cluster", metavar="CONTEXT",
              help="Reach the Vizier in this kubeconfig context by port-forward (namespace: PXTUI_NAMESPACE).")
@click.option("--timeout", type=click.FloatRange(min=0.1), metavar="SECONDS",
              help="This query's deadline on the Vizier (else PXTUI_TIMEOUT, else the Vizier's 10 s).")
def live(script: str | None, file: str | None, once: bool, output: str, refresh: float, data: str | None,
         ascii_only: bool, vizier: str | None, api_key: str | None, script_args: tuple[str, ...],
         cluster: str | None, timeout: float | None) -> None:
    """The live TUI for SCRIPT (default px/http_data); --once prints instead.

    With --data DIR it shows a recording instead of the Vizier, and `now` is the recording's end time."""
    if script is None and file is None:
        script = "px/http_data"
    from pxtui.cli_k8s import cluster_vizier

    s = _load_script(script, file)
    args = parse_script_args(script_args)
    vizier = cluster_vizier(cluster, vizier, data)
    _set_timeout(timeout)
    if once:
        _run_once(s, args, output, vizier, api_key, data)
        return
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        _fail(EXIT_USAGE, "the live view needs a terminal; use `pxtui live SCRIPT --once -o json` in pipes and CI")
    from pxtui.app import PxApp

    client = _runner(data, vizier, api_key)
    app = PxApp(client, s, args, refresh_s=refresh, ascii_only=ascii_only or None)
    try:
        app.run()
    finally:
        client.close()
    if app.return_code:  # the app crashed (Textual has restored the terminal and printed why)
        sys.exit(app.return_code)


@main.group()
def scripts() -> None:
    """Bundled scripts."""


@scripts.command("list")
def scripts_list() -> None:
    """The bundled scripts with their one-line descriptions."""
    all_scripts = bundled()
    width = max((len(k) for k in all_scripts), default=10)
    for sid, s in all_scripts.items():
        click.echo(f"{sid:<{width}}  {s.short}")


# ---- API keys --------------------------------------------------------------------------------
@main.group("api-key")
def api_key_group() -> None:
    """Client API keys of the local Vizier (stored hashed)."""


@api_key_group.command("create")
@click.option("--name", default="cli")
@click.option(
    "--mode",
    type=click.Choice(["full", "restricted", "pii"]),
    default="full",
    show_default=True,
    help="Data access: full; restricted (bodies, headers, SQL text redacted); pii (PII masked in strings).",
)
def api_key_create(name: str, mode: str) -> None:
    from cluster.auth.api_keys import ApiKeyStore
    from cluster.auth.e2e import local_vizier_public_key_text

    paths.ensure_state_dir()
    rec, key = ApiKeyStore(paths.api_keys_file()).create(name, mode)
    click.echo(f"id {rec.id}  name {rec.name}  mode {rec.mode}\n{key}\n(shown once: only its hash is stored)")
    click.echo(f"Vizier key (pin it on the client as PXTUI_VIZIER_KEY): {local_vizier_public_key_text()}")


@api_key_group.command("list")
def api_key_list() -> None:
    from cluster.auth.api_keys import ApiKeyStore

    for k in ApiKeyStore(paths.api_keys_file()).list():
        created = time.strftime("%Y-%m-%d %H:%M", time.localtime(k.created_ns / 1e9))
        click.echo(f"{k.id}  {k.name:<16} {k.mode:<10} created {created}")


@api_key_group.command("delete")
@click.argument("key_id")
def api_key_delete(key_id: str) -> None:
    from cluster.auth.api_keys import ApiKeyStore

    if not ApiKeyStore(paths.api_keys_file()).delete(key_id):
        _fail(EXIT_USAGE, f"no API key with id {key_id}")
    click.echo(f"deleted {key_id}")


# ---- demo workload ---------------------------------------------------------------------------
@main.group()
def demo() -> None:
    """A small HTTP microservice demo on this host (frontend, catalog, load generator)."""


@demo.command("start")
@click.option("--rate", default=5.0, show_default=True, help="Requests per second from the load generator.")
def demo_start(rate: float) -> None:
    from pxtui import demo as d

    click.echo(d.start(rate))


@demo.command("stop")
def demo_stop() -> None:
    from pxtui import demo as d

    click.echo(d.stop())


from pxtui.cli_relay import relay  # noqa: E402  (registered here so `python -m pxtui.cli relay` sees it)

main.add_command(relay)
from pxtui.cli_k8s import delete as k8s_delete  # noqa: E402
from pxtui.cli_k8s import deploy as k8s_deploy  # noqa: E402

main.add_command(k8s_deploy)
main.add_command(k8s_delete)

from pxtui.cli_cluster import agent as agent_command  # noqa: E402
from pxtui.cli_cluster import kelvin as kelvin_command  # noqa: E402
from pxtui.cli_cluster import vizier as vizier_command  # noqa: E402

main.add_command(vizier_command)
main.add_command(agent_command)
main.add_command(kelvin_command)

if __name__ == "__main__":
    main()
