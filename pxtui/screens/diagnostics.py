"""`d` (or `:diagnostics`): the answer to "why is there no data".

An empty table has many causes that look alike from the live view: an agent that stopped
heartbeating, a probe that did not attach, kernel headers that were not found so nothing
compiled, a ring buffer that overflowed, a connector that failed, a table that is full and
evicting, or simply no traffic in the window. This screen shows, per agent, everything the
broker's GetStatus reports about each of those (the same data as `pxtui status`), with a short
list of the likely reasons at the top of each agent, and keeps it current.

The status call goes over the network, so it runs in a thread worker on a timer, never on the
event loop; a call still in flight when the timer fires is not doubled. The agents' widgets are
updated in place, so an expanded probe list stays expanded and the scroll position stays put.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime, tzinfo
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Collapsible, Footer, Static

from cluster.api import vizier_pb2 as pb
from pxtui.format import format_bytes, format_duration, format_time_short
from pxtui.runner import VizierUnavailable
from pxtui.widgets.glyphs import UNICODE, Glyphs

StatusSource = Callable[[], pb.StatusResponse]

STALE_HEARTBEAT_S = 10.0  # an agent silent for longer is probably not answering queries either


def _state(agent: pb.AgentStatus) -> tuple[str, str]:
    """(status key for the glyph table, style) for an agent state like AGENT_STATE_HEALTHY."""
    state = agent.state.upper()
    if state.endswith("HEALTHY") and "UNHEALTHY" not in state:
        return "ok", "green"
    if any(word in state for word in ("UNRESPONSIVE", "FAIL", "DISCONNECTED", "DEAD", "UNHEALTHY")):
        return "failed", "bold red"
    return "pending", "yellow"


def _short_state(state: str) -> str:
    return state.removeprefix("AGENT_STATE_") or "UNKNOWN"


def agent_errors(agent: pb.AgentStatus) -> list[str]:
    """The agent's own error and each failing connector's ("name: why"), one per entry."""
    return [part.strip() for part in agent.error.split("; ") if part.strip()]


def reasons(agent: pb.AgentStatus, now_ns: int) -> list[tuple[str, str]]:
    """Why this agent may be contributing no rows: (text, style), worst first; empty when healthy."""
    out: list[tuple[str, str]] = []
    key, _ = _state(agent)
    if key != "ok":
        out.append((f"agent is {_short_state(agent.state)}: queries skip it or wait for it", "bold red"))
    if agent.last_heartbeat_ns and now_ns - agent.last_heartbeat_ns > STALE_HEARTBEAT_S * 1e9:
        out.append((f"no heartbeat for {format_duration(now_ns - agent.last_heartbeat_ns)}", "bold red"))
    if agent.kernel_headers.strip().lower().startswith("missing"):
        out.append(("kernel headers missing: the BPF programs could not be built", "bold red"))
    if not agent.probes:
        out.append(("no probes attached: nothing is being traced", "bold red"))
    for err in agent_errors(agent):
        out.append((f"error: {err}", "red"))
    if agent.events_lost:
        out.append((f"{agent.events_lost} events lost (buffer full): some requests are missing", "yellow"))
    if agent.tables and not any(t.rows for t in agent.tables):
        out.append(("every table is empty: is there traffic on this host? (pxtui demo start)", "yellow"))
    for t in agent.tables:
        if t.rows_evicted:
            out.append(
                (f"{t.name} is full: {t.rows_evicted} oldest rows evicted (cap {format_bytes(t.max_bytes)})", "yellow")
            )
    return out


def agent_summary(agent: pb.AgentStatus, now_ns: int, glyphs: Glyphs) -> Text:
    """The agent's header, its likely problems, and its counters, as lines of text."""
    key, style = _state(agent)
    text = Text(no_wrap=False)
    text.append(f"{glyphs.status[key]} ", style=style)
    text.append(agent.hostname or "(no hostname)", style="bold")
    text.append(f"  {agent.agent_id[:8]}  asid {agent.asid}  ", style="dim")
    text.append(_short_state(agent.state), style=style)
    if agent.last_heartbeat_ns:
        age = max(0, now_ns - agent.last_heartbeat_ns)
        text.append(f"  heartbeat {format_duration(age)} ago", style="dim")
    else:
        text.append("  no heartbeat yet", style="yellow")
    problems = reasons(agent, now_ns)
    for line, st in problems:
        text.append(f"\n  {glyphs.arrow} {line}", style=st)
    if not problems:
        text.append(f"\n  {glyphs.arrow} collecting: nothing wrong found", style="green")
    text.append("\n  kernel headers  ", style="dim")
    text.append(agent.kernel_headers or "unknown")
    text.append("\n  events          ", style="dim")
    text.append(f"seen {agent.events_seen:,}  ")
    text.append(f"lost {agent.events_lost:,}", style="bold red" if agent.events_lost else "")
    text.append(f"  parse errors {agent.parse_errors:,}", style="yellow" if agent.parse_errors else "")
    text.append(f"  connections {agent.conns_active:,}")
    text.append(f"  connections reset {agent.conns_reset:,}" if agent.conns_reset else "", style="yellow")
    errors = agent_errors(agent)
    text.append("\n  errors          ", style="dim")
    text.append("; ".join(errors) if errors else "none", style="red" if errors else "")
    return text


def tables_table(agent: pb.AgentStatus, tz: tzinfo | None) -> Table | Text:
    """Each table's rows, bytes against its cap (a full one is yellow), evictions and its time window."""
    if not agent.tables:
        return Text("  no tables yet", style="dim")
    table = Table(box=None, pad_edge=False, padding=(0, 2, 0, 0), show_edge=False, header_style="bold dim")
    # every column but the window keeps its full width at 80 columns; the window wraps instead
    names = max(len(t.name) for t in agent.tables) + 2
    table.add_column("  table", no_wrap=True, min_width=names)
    for name, width in (("rows", 7), ("bytes", 8), ("cap", 8), ("evicted", 7)):
        table.add_column(name, justify="right", no_wrap=True, min_width=width)
    table.add_column("window", ratio=1)
    for t in agent.tables:
        if t.rows and t.min_time_ns and t.max_time_ns:
            first = format_time_short(t.min_time_ns, tz)[:8]
            last = format_time_short(t.max_time_ns, tz)[:8]
            window = f"{first}-{last} ({format_duration(max(0, t.max_time_ns - t.min_time_ns))})"
        else:
            window = "-"
        style = "dim" if not t.rows else "yellow" if t.max_bytes and t.bytes >= 0.9 * t.max_bytes else ""
        table.add_row(
            f"  {t.name}",
            f"{t.rows:,}",
            format_bytes(t.bytes),
            format_bytes(t.max_bytes) if t.max_bytes else "-",
            Text(f"{t.rows_evicted:,}", style="yellow" if t.rows_evicted else ""),
            window,
            style=style,
        )
    return table


class AgentView(Vertical):
    """One agent: summary, probes (collapsed: there are dozens), tables. Updated in place."""

    DEFAULT_CSS = """
    AgentView { height: auto; margin-bottom: 1; }
    AgentView > Static { height: auto; }
    AgentView Collapsible { padding: 0; margin: 0 0 0 2; border: none; background: transparent; }
    AgentView Collapsible > Contents { padding: 0 0 0 2; }
    """

    def __init__(self, agent: pb.AgentStatus, now_ns: int, tz: tzinfo | None, glyphs: Glyphs) -> None:
        super().__init__()
        self.agent = agent
        self.now_ns = now_ns
        self.tz = tz
        self.glyphs = glyphs

    def compose(self) -> ComposeResult:
        yield Static(agent_summary(self.agent, self.now_ns, self.glyphs), classes="agent-summary")
        symbols = {"collapsed_symbol": ">", "expanded_symbol": "v"} if self.glyphs.ascii else {}
        with Collapsible(title=self._probes_title(), collapsed=True, **symbols):
            yield Static(self._probes_text(), classes="agent-probes")
        yield Static(tables_table(self.agent, self.tz), classes="agent-tables")

    def _probes_title(self) -> str:
        return f"probes attached ({len(self.agent.probes)})"

    def _probes_text(self) -> Text:
        if not self.agent.probes:
            return Text("none", style="bold red")
        return Text("\n".join(self.agent.probes))

    def show(self, agent: pb.AgentStatus, now_ns: int) -> None:
        """New numbers for the same agent; the probe list keeps its expanded/collapsed state."""
        self.agent, self.now_ns = agent, now_ns
        self.query_one(".agent-summary", Static).update(agent_summary(agent, now_ns, self.glyphs))
        self.query_one(Collapsible).title = self._probes_title()
        self.query_one(".agent-probes", Static).update(self._probes_text())
        self.query_one(".agent-tables", Static).update(tables_table(agent, self.tz))


class DiagnosticsScreen(Screen[None]):
    """Every agent's health and counters, refreshed every `refresh_s` seconds while shown."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "close", "Back"),
        Binding("r", "refresh_now", "Refresh"),
        Binding("j", "scroll(1)", "Down", show=False),
        Binding("k", "scroll(-1)", "Up", show=False),
    ]

    DEFAULT_CSS = """
    DiagnosticsScreen { layout: vertical; }
    DiagnosticsScreen #diag-head { height: auto; background: $panel; padding: 0 1; }
    DiagnosticsScreen #diag-body { height: 1fr; padding: 0 1; }
    DiagnosticsScreen #diag-problem { height: auto; color: $error; padding: 0 1; display: none; }
    DiagnosticsScreen #diag-problem.-shown { display: block; }
    DiagnosticsScreen Footer { height: 1; }
    """

    def __init__(
        self,
        source: StatusSource | None,
        *,
        refresh_s: float = 2.0,
        tz: tzinfo | None = None,
        clock: Callable[[], datetime] | None = None,
        glyphs: Glyphs = UNICODE,
    ) -> None:
        super().__init__()
        self.source = source
        self.refresh_s = refresh_s
        self.tz = tz
        self.clock = clock or datetime.now
        self.glyphs = glyphs
        self.status: pb.StatusResponse | None = None
        self.fetch_count = 0  # completed fetches, successful or not (tests poll this)
        self.problem: str | None = None
        self._in_flight = False
        self._timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield Static(self._head_text(), id="diag-head")
        yield Static("", id="diag-problem")
        yield VerticalScroll(id="diag-body")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#diag-body").focus()
        if self.source is None:
            self._set_problem(
                "Diagnostics need a live Vizier: this view replays a recording, which has no agents "
                "to ask. Run `pxtui status` against the Vizier that made it, or `pxtui live` without --data."
            )
            self.fetch_count += 1
            return
        self._timer = self.set_interval(self.refresh_s, self.action_refresh_now)
        self.action_refresh_now()

    def _head_text(self) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append("Diagnostics", style="bold")
        st = self.status
        if st is not None:
            healthy = sum(_state(a)[0] == "ok" for a in st.agents)
            text.append(
                f"  agents {healthy}/{len(st.agents)}", style="green" if healthy == len(st.agents) else "yellow"
            )
            lost = sum(a.events_lost for a in st.agents)
            text.append(f"  lost {lost:,}", style="bold red" if lost else "")
            if st.vizier_version:
                text.append(f"  vizier {st.vizier_version}", style="dim")
        text.append(f"  at {self.clock():%H:%M:%S} · every {self.refresh_s:g} s", style="dim")
        return text

    # ---------------------------------------------------------------- fetching

    def action_refresh_now(self) -> None:
        if self._in_flight or self.source is None:
            return
        self._in_flight = True
        self._fetch(self.source)

    @work(thread=True, exclusive=False, group="diagnostics", exit_on_error=False)
    def _fetch(self, source: StatusSource) -> None:
        """GetStatus off the event loop; the result (or why it failed) is handed back."""
        result: pb.StatusResponse | None = None
        problem: str | None = None
        try:
            result = source()
        except VizierUnavailable as e:
            problem = str(e)
        except Exception as e:  # the screen must survive a client bug and say what happened
            problem = f"status failed: {type(e).__name__}: {e}"
        with contextlib.suppress(RuntimeError):  # the app is shutting down
            self.app.call_from_thread(self._apply, result, problem)

    async def _apply(self, result: pb.StatusResponse | None, problem: str | None) -> None:
        try:
            if not self.is_attached:
                return
            if problem is not None:
                self._set_problem(f"{problem} (showing the last status; retrying every {self.refresh_s:g} s)")
            else:
                assert result is not None
                self._set_problem(None)
                self.status = result
                await self._show_agents(result)
            self.query_one("#diag-head", Static).update(self._head_text())
        finally:
            self._in_flight = False
            self.fetch_count += 1

    def _set_problem(self, problem: str | None) -> None:
        self.problem = problem
        box = self.query_one("#diag-problem", Static)
        box.update(problem or "")
        box.set_class(problem is not None, "-shown")

    async def _show_agents(self, st: pb.StatusResponse) -> None:
        body = self.query_one("#diag-body", VerticalScroll)
        now_ns = int(self.clock().timestamp() * 1e9)
        views = {v.agent.agent_id: v for v in body.query(AgentView)}
        wanted = [a.agent_id for a in st.agents]
        if list(views) != wanted or not wanted:  # agents joined or left: rebuild (rare); else update in place
            await body.remove_children()
            if not st.agents:
                await body.mount(
                    Static(
                        Text(
                            "no agents have registered with the broker: is a PEM running? "
                            "(pxtui up, or pxtui agent --broker ADDR)",
                            style="bold red",
                        )
                    )
                )
                return
            await body.mount_all([AgentView(a, now_ns, self.tz, self.glyphs) for a in st.agents])
            return
        for a in st.agents:
            views[a.agent_id].show(a, now_ns)

    # ---------------------------------------------------------------- keys

    def action_scroll(self, lines: int) -> None:
        self.query_one("#diag-body", VerticalScroll).scroll_relative(y=lines, animate=False)

    def action_close(self) -> None:
        if self._timer is not None:
            self._timer.stop()
        self.dismiss(None)
