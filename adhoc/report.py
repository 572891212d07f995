"""Rendering of cross-play results: heatmap (PNG), markdown, self-contained HTML, a terminal table."""

from __future__ import annotations

import base64
import html
import io

import numpy as np

from adhoc.crossplay import CrossPlayResult


def _plays(result: CrossPlayResult, name: str) -> str:
    """"lever 3" / "block 17": the known convention a member plays, or "" when the game has none."""
    conv = result.member_conventions.get(name)
    if not conv:
        return ""
    kind = {"lever": "lever", "cmg": "block", "cmg-s": "block", "cmg-h": "block"}.get(result.game, "convention")
    return f"{kind} {conv['convention']}"


def _label(result: CrossPlayResult, name: str) -> str:
    plays = _plays(result, name)
    return f"{name} ({plays})" if plays else name


def fit_title(fig, ax, text: str, fontsize: float = 10, within_axes: bool = False) -> None:
    """``ax``'s title, its lines wrapped at word boundaries until it fits the figure's width (``within_axes``:
    the axes' own width, for a figure of several panels), so a long agent path or game name never runs off
    the image or into the next panel; each line's breaks stay as given."""
    import textwrap

    limit = 0.96 * fig.bbox.width * (ax.get_position().width if within_axes else 1.0)
    title = ax.set_title(text, fontsize=fontsize)
    renderer = fig.canvas.get_renderer()
    chars = max(len(line) for line in text.splitlines())
    while title.get_window_extent(renderer).width > limit and chars > 12:
        chars = int(chars * 0.85)
        title.set_text("\n".join(textwrap.fill(line, chars)
                                  for line in text.splitlines()))


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


CELL_TEXT_MAX = 24  # members up to which every cell carries its value
TICK_LABELS_MAX = 64  # past this many members only every k-th member is labelled (k = ceil(n / 64))


def heatmap_figure(result: CrossPlayResult):
    """The heatmap's matplotlib figure (see :func:`heatmap_png`); the caller closes it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = result.order()
    shown = welfare(result) if result.payoff == "general_sum" else result.matrix
    m = shown[np.ix_(order, order)]
    labels = [_label(result, result.members[i]) for i in order]
    n = len(order)
    size = min(16.0, max(5.0, 0.32 * n + 3.0))
    fig, ax = plt.subplots(figsize=(size + 1.2, size), dpi=150 if n <= 32 else 110)
    if result.payoff == "zero_sum":  # diverging, centred at 0: the row member wins (blue) or loses (red)
        vmax = max(1e-9, float(np.abs(shown).max()))
        im = ax.imshow(m, cmap="RdBu", vmin=-vmax, vmax=vmax, interpolation="nearest")
    else:
        vmax = max(1e-9, float(np.max(shown)), float(np.max(np.diag(shown))))
        im = ax.imshow(m, cmap="viridis", vmin=min(0.0, float(m.min())), vmax=vmax, interpolation="nearest")
    step = -(-n // TICK_LABELS_MAX)  # 1 up to 64 members, 2 up to 128, 4 at 256, ...
    ticks = np.arange(0, n, step)
    fs = 9 if n <= 16 else 7 if n <= 32 else 5
    ax.set_xticks(ticks, [labels[k] for k in ticks], rotation=90, fontsize=fs)
    ax.set_yticks(ticks, [labels[k] for k in ticks], fontsize=fs)
    thinned = f" (every {({2: '2nd', 3: '3rd'}).get(step, f'{step}th')} member labelled)" if step > 1 else ""
    ax.set_xlabel("partner in seat 1" + thinned)
    ax.set_ylabel("member in seat 0" + thinned)
    if n <= CELL_TEXT_MAX:
        cell_fs = 7 if n <= 16 else 6
        for i in range(n):
            for j in range(n):
                dark = abs(m[i, j]) > 0.6 * vmax if result.payoff == "zero_sum" else m[i, j] < 0.6 * vmax
                ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=cell_fs,
                        color="white" if dark else "black")
    edge = 0
    convs = result.conventions or []
    for cluster in convs[:-1] if len(convs) > 1 else []:
        edge += len(cluster)
        ax.axhline(edge - 0.5, color="white", lw=1.2 if n <= 64 else 0.6)
        ax.axvline(edge - 0.5, color="white", lw=1.2 if n <= 64 else 0.6)
    mt = result.metrics
    if result.payoff == "zero_sum":
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03, label="payoff of the row member (seat 0)")
        best = int(np.nanargmax(mt["score"])) if np.isfinite(mt["score"]).any() else None
        top = f"best score {result.members[best]} {mt['score'][best]:.3f}, " if best is not None else ""
        fit_title(fig, ax, f"Zero-sum cross-play on {result.game}: payoff of the row member (seat 1 gets its "
                           f"negative)\n{top}{result.episodes} episodes per ordered pair")
        return fig
    general = result.payoff == "general_sum"
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03, label="welfare X0 + X1" if general else "mean return")
    fit_title(fig, ax, ("General-sum cross-play on {}: welfare X0 + X1; per seat " if general else "Cross-play on {}: ")
              .format(result.game) + f"SP {mt['sp_mean']:.3f}, XP {mt['xp_mean']:.3f}\n"
                       f"{len(result.conventions)} convention{'s' * (len(result.conventions) != 1)}, "
                       f"{result.episodes} episodes per ordered pair")
    return fig


def welfare(result: CrossPlayResult) -> np.ndarray:
    """W = X0 + X1 [N, N] of a game that pays each seat its own reward (the matrix itself for a common payoff)."""
    return result.matrix if result.matrix_seat1 is None else result.matrix + result.matrix_seat1


def heatmap_png(result: CrossPlayResult) -> bytes:
    """Members ordered by convention cluster, cluster boundaries drawn, labelled, with a colour bar. Every cell
    carries its value up to ``CELL_TEXT_MAX`` members (none past it: the colours carry it); past
    ``TICK_LABELS_MAX`` members only every k-th member is labelled, so that the labels stay readable."""
    return _png(heatmap_figure(result))


def _rows(result: CrossPlayResult) -> list[tuple[str, ...]]:
    mt = result.metrics
    if result.payoff == "zero_sum":
        return _zero_sum_rows(result)
    ci = mt["ci95"]
    fmt = lambda k: f"{mt[k]:.3f} [{ci[k][0]:.3f}, {ci[k][1]:.3f}]"  # noqa: E731
    per = " (welfare per seat)" if result.payoff == "general_sum" else ""
    rows = [(f"self-play mean (SP){per}", fmt("sp_mean")), (f"cross-play mean (XP){per}", fmt("xp_mean")),
            ("gap SP − XP", fmt("gap")), ("proportional loss (SP − XP)/SP", f"{mt['proportional_loss']:.3f}"),
            ("conventions", str(len(result.conventions)))]
    for key, cross in mt.get("cross", {}).items():
        rows.append((f"{key}: mean / worst partner{per}", f"{cross['mean']:.3f} / {cross['worst_partner']:.3f}"))
    if per:
        rows.insert(0, ("payoff", "general-sum: each seat its own; SP, XP, gap and conventions on (X0 + X1)/2"))
    return rows


def _zero_sum_rows(result: CrossPlayResult) -> list[tuple[str, ...]]:
    mt = result.metrics
    rows = [("payoff", "zero-sum: the row member's X0; seat 1 gets −X0")]
    score = np.asarray(mt["score"], dtype=float)
    if np.isfinite(score).any():
        for label, k in (("best member (score)", int(np.nanargmax(score))), ("worst member (score)",
                                                                             int(np.nanargmin(score)))):
            lo, hi = mt["ci95"]["score"][k]
            rows.append((label, f"{result.members[k]} {score[k]:.3f} [{lo:.3f}, {hi:.3f}]"))
    n = len(result.members)
    if n > 1:
        off = ~np.eye(n, dtype=bool)
        rows.append(("draws (pairs of two members)", f"{np.asarray(mt['draw'])[off].mean():.3f}"))
    rows.append(("not applicable", "SP, XP, gap, conventions (nothing to coordinate on)"))
    for key, cross in mt.get("cross", {}).items():
        rows.append((f"{key}: mean payoff / vs strongest", f"{cross['mean']:.3f} / {cross['worst_partner']:.3f}"))
    return rows


def _member_rows(result: CrossPlayResult) -> list[tuple[str, ...]]:
    mt = result.metrics
    out = []
    for i, name in enumerate(result.members):
        conv = result.member_conventions.get(name)
        plays = f"{_plays(result, name)} (p={conv['probability']:.2f})" if conv else "-"
        if result.payoff == "zero_sum":
            lo, hi = mt["ci95"]["score"][i]
            out.append((name, f"{mt['score'][i]:.3f} [{lo:.3f}, {hi:.3f}]", f"{mt['payoff_seat0'][i]:.3f}",
                        f"{mt['payoff_seat1'][i]:.3f}", f"{mt['win_rate'][i]:.3f}", f"{mt['draw_rate'][i]:.3f}",
                        f"{mt['loss_rate'][i]:.3f}", plays))
            continue
        cluster = next(k for k, c in enumerate(result.conventions) if name in c)
        own = (f"{mt['score'][i]:.3f}",) if result.payoff == "general_sum" else ()
        out.append((name, f"{mt['self_play'][i]:.3f}", f"{mt['row_xp'][i]:.3f}", f"{mt['col_xp'][i]:.3f}", *own,
                    str(cluster), plays))
    return out


MEMBER_HEADER = ("member", "self-play", "XP as seat 0", "XP as seat 1", "cluster", "plays")
MEMBER_HEADERS = {
    "common": MEMBER_HEADER,
    "zero_sum": ("member", "score [95% CI]", "payoff as seat 0", "payoff as seat 1", "win", "draw", "loss", "plays"),
    "general_sum": ("member", "self-play welfare/seat", "XP welfare/seat as seat 0", "XP welfare/seat as seat 1",
                    "own payoff (both seats)", "cluster", "plays"),
}


def _subtitle(result: CrossPlayResult, markdown_text: bool) -> str:
    """The report's opening paragraph: what the numbers are (the common payoff's exactly as it always was)."""
    head = f"{len(result.members)} members, {result.episodes} episodes per ordered pair"
    if result.payoff == "zero_sum":
        return (f"{head}; 95% bootstrap confidence intervals over episodes. Zero-sum: each cell is the payoff of the "
                f"row member (seat 0), and seat 1 gets its negative; score = a member's mean payoff over both "
                f"seatings with the others; win/draw/loss by the sign of its own return. Self-play and cross-play "
                f"means, the gap and conventions do not apply.")
    welfare_text = (" General-sum: each seat gets its own payoff (cells: X0, X1); the heatmap shows the welfare "
                    "X0 + X1, and SP, XP, gap and conventions are computed on the welfare per seat (X0 + X1)/2; "
                    "own payoff = a member's mean payoff over both seatings with the others."
                    if result.payoff == "general_sum" else "")
    if markdown_text:
        return (f"{head}, 95% bootstrap confidence intervals over episodes. Conventions: clusters of members whose "
                f"normalised cross-play (X[i,j]/X[i,i]) is at least {result.threshold:g} both ways." + welfare_text)
    return (f"{head}; 95% bootstrap confidence intervals over episodes; conventions = clusters of members whose "
            f"normalised cross-play X[i,j]/X[i,i] is at least {result.threshold:g} both ways." + welfare_text)


def _cell(result: CrossPlayResult, i: int, j: int) -> str:
    """One cell of the matrix as text: X[i, j]; a zero-sum game's X0[i, j]; a general-sum one's "X0, X1"."""
    if result.payoff == "general_sum":
        return f"{result.matrix[i, j]:.2f}, {result.matrix_seat1[i, j]:.2f}"
    return f"{result.matrix[i, j]:.2f}"


def _payoff_table(result: CrossPlayResult) -> tuple[tuple[str, ...], list[tuple[str, ...]]] | None:
    """The matrix as a table for the reports of games that pay each seat its own reward, up to ``CELL_TEXT_MAX``
    members: zero-sum cells "X0 (W w D d L l)" (the row member's rates), general-sum cells "X0, X1"."""
    if result.payoff == "common" or len(result.members) > CELL_TEXT_MAX:
        return None
    order = result.order()
    mt = result.metrics

    def text(i, j):
        if result.payoff == "zero_sum":
            return f"{_cell(result, i, j)} (W {mt['win'][i][j]:.2f} D {mt['draw'][i][j]:.2f} L {mt['loss'][i][j]:.2f})"
        return _cell(result, i, j)

    header = ("seat 0 \\ seat 1", *(result.members[j] for j in order))
    return header, [(result.members[i], *(text(i, j) for j in order)) for i in order]


def _payoff_caption(result: CrossPlayResult) -> str:
    return ("Payoff of the row member in seat 0 against the column member in seat 1 (seat 1 gets its negative); "
            "W/D/L: the row member's win/draw/loss rates." if result.payoff == "zero_sum" else
            "Payoffs (seat 0, seat 1) of the row member in seat 0 and the column member in seat 1.")


def markdown(result: CrossPlayResult) -> str:
    lines = [f"# Cross-play report: {result.game}", "", _subtitle(result, markdown_text=True), "",
             "![heatmap](heatmap.png)", "", "| metric | value |", "|---|---|"]
    lines += [f"| {a} | {b} |" for a, b in _rows(result)]
    if result.conventions is not None:
        lines += ["", "## Conventions", ""]
        lines += [f"{k}. {', '.join(c)}" for k, c in enumerate(result.conventions)]
    if (table := _payoff_table(result)) is not None:
        header, rows = table
        lines += ["", "## Payoffs", "", _payoff_caption(result), "", "| " + " | ".join(header) + " |",
                  "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
    header = MEMBER_HEADERS[result.payoff]
    lines += ["", "## Members", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in _member_rows(result)]
    return "\n".join(lines) + "\n"


def html_table(header, rows) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def html_page(title: str, subtitle: str, png: bytes, body: str, alt: str = "figure") -> str:
    """A self-contained page: title, a one-paragraph subtitle, the figure inlined, then ``body`` (HTML)."""
    img = base64.b64encode(png).decode()
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 1000px; margin: 2em auto;
       color: #222; line-height: 1.45; padding: 0 1em; }}
h1 {{ font-size: 1.6em; margin-bottom: .2em; }} h2 {{ font-size: 1.2em; margin-top: 1.6em; }}
.sub {{ color: #555; }} img {{ max-width: 100%; border: 1px solid #ddd; }}
table {{ border-collapse: collapse; margin: .6em 0; font-size: .92em; }}
th, td {{ border-bottom: 1px solid #e2e2e2; padding: .3em .8em; text-align: left; }}
th {{ background: #f4f4f4; }} td:not(:first-child) {{ font-variant-numeric: tabular-nums; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p class="sub">{html.escape(subtitle)}</p>
<img alt="{html.escape(alt)}" src="data:image/png;base64,{img}">
{body}
</body></html>
"""


def html_report(result: CrossPlayResult, png: bytes) -> str:
    body = f"<h2>Summary</h2>{html_table(('metric', 'value'), _rows(result))}\n"
    if result.conventions is not None:
        convs = "".join(f"<li>{html.escape(', '.join(c))}</li>" for c in result.conventions)
        body += f"<h2>Conventions ({len(result.conventions)})</h2><ol start=\"0\">{convs}</ol>\n"
    if (table := _payoff_table(result)) is not None:
        body += f"<h2>Payoffs</h2><p>{html.escape(_payoff_caption(result))}</p>{html_table(*table)}\n"
    body += f"<h2>Members</h2>{html_table(MEMBER_HEADERS[result.payoff], _member_rows(result))}"
    return html_page(f"Cross-play report: {result.game}", _subtitle(result, markdown_text=False), png, body,
                     alt="cross-play heatmap")


def terminal_table(result: CrossPlayResult, max_members: int = 12, max_width: int = 100) -> str:
    """Metrics, then (up to ``max_members``) the matrix: rows are members in seat 0, columns partners in seat 1,
    both grouped by convention. Columns carry the members' names when they fit in ``max_width`` characters,
    else the rows' numbers (column k is row k)."""
    kind = {"common": "", "zero_sum": " (zero-sum)", "general_sum": " (general-sum)"}[result.payoff]
    lines = [f"cross-play on {result.game}{kind}: {len(result.members)} members x {result.episodes} episodes per pair"]
    lines += [f"  {a:<34} {b}" for a, b in _rows(result)]
    if len(result.members) <= max_members:
        order = result.order()
        names = [result.members[i] for i in order]
        cluster = {m: k for k, c in enumerate(result.conventions or []) for m in c}
        texts = 5 if result.payoff == "common" else max(len(_cell(result, i, j)) for i in order for j in order)
        cell = max(5, texts, *(len(n) for n in names))
        by_name = len(names) * (cell + 1) + max(len(n) for n in names) + 20 <= max_width
        if not by_name:
            cell = max(5, texts)
            names = [f"{k:>2} {n}" for k, n in enumerate(names)]
        corner = "seat 0 \\ seat 1"
        width = max(len(corner), *(len(n) for n in names))
        heads = [result.members[i] for i in order] if by_name else [str(k) for k in range(len(order))]
        what = {"common": "mean return of the row member in seat 0 with the column partner in seat 1",
                "zero_sum": "payoff of the row member in seat 0 against the column member in seat 1 (seat 1 gets "
                            "its negative)",
                "general_sum": "payoffs (seat 0, seat 1) of the row member in seat 0 and the column partner in "
                               "seat 1"}[result.payoff]
        lines.append(f"  {what}" + ("" if by_name else " (columns numbered as the rows)"))
        tail = "" if result.conventions is None else "   convention"
        lines.append(f"  {corner:<{width}}  " + " ".join(f"{h:>{cell}}" for h in heads) + tail)
        for name, i in zip(names, order):
            lines.append(f"  {name:<{width}}  " + " ".join(f"{_cell(result, i, j):>{cell}}" for j in order)
                         + ("" if result.conventions is None else f"   {cluster[result.members[i]]}"))
        if result.payoff == "zero_sum":
            mt = result.metrics
            lines.append(f"  {'member':<{width}}  {'score':>7}  {'win':>5}  {'draw':>5}  {'loss':>5}"
                         "   (over both seatings with the others)")
            for name, i in zip(names, order):
                lines.append(f"  {name:<{width}}  {mt['score'][i]:7.3f}  {mt['win_rate'][i]:5.3f}  "
                             f"{mt['draw_rate'][i]:5.3f}  {mt['loss_rate'][i]:5.3f}")
    else:
        lines.append(f"  ({len(result.members)} members: the matrix is in the report, heatmap.png and matrix.npy)")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- evaluation of one agent (adhoc evaluate)
def _ci_text(value, ci) -> str:
    """'v [lo, hi]', or '–' for a value that does not exist (a scripted partner's regret)."""
    return "–" if value is None else f"{value:.3f}" + ("" if ci is None else f" [{ci[0]:.3f}, {ci[1]:.3f}]")


def _evaluation_rows(result) -> list[tuple[str, str]]:
    mt = result.metrics
    fmt = lambda k: _ci_text(mt[k], mt["ci95"][k])  # noqa: E731
    rows = [("mean return", fmt("mean_return")), ("worst-case return", fmt("worst_return")),
            ("worst partner", mt["worst_partner"]), ("mean regret", fmt("mean_regret")),
            ("max regret", fmt("max_regret"))]
    if "win_rate" in mt:  # zero-sum: the agent's outcomes, by the sign of its own return
        rows.append(("win / draw / loss", " / ".join(_ci_text(mt[f"{k}_rate"], None) for k in ("win", "draw", "loss"))
                     + "  (mean over partners)"))
    if "nash_conv" in mt:  # --exploitability: OpenSpiel's, of the agent playing both seats
        rows.append(("NashConv", f"{mt['nash_conv']:.4f}  (OpenSpiel's; the agent in both seats)"))
    if "exploitability" in mt:
        rows.append(("exploitability", f"{mt['exploitability']:.4f}  (OpenSpiel's; 0 at a Nash equilibrium)"))
    if "episode_payoffs" in mt:
        rows.append(("round 1 → K", " → ".join(f"{v:.3f}" for v in mt["episode_payoffs"]) + "  (mean over partners)"))
    best = mt.get("best_history_policy")
    if best:
        value = f"{best['lower']:.3f}" if best["upper"] - best["lower"] < 5e-4 else \
            f"between {best['lower']:.3f} and {best['upper']:.3f}"
        copies = sorted({p for p in best.get("policies", []) if p != "search"})
        lower = f"; lower end: {', '.join(copies)} (open, then copy; sampled)" if copies else ""
        rows.append(("best possible", f"{value}: the best history-dependent policy with these partners "
                     f"(not told which it meets); round 1 → K " + " → ".join(f"{v:.3f}" for v in best["per_round"])
                     + lower))
    return rows


EVALUATION_HEADER = ("partner", "return [95% CI]", "agent in seat 0", "agent in seat 1", "partner self-play",
                     "regret [95% CI]")


def _evaluation_header(result) -> tuple[str, ...]:
    curve = "episode_payoffs" in result.metrics["per_partner"][0]
    return EVALUATION_HEADER + (("episode 1 → K of the interaction",) if curve else ())


def _evaluation_partner_rows(result) -> list[tuple[str, ...]]:
    return [(p["partner"], _ci_text(p["return"], p["ci95"]["return"]), _ci_text(p["return_seat0"], None),
             _ci_text(p["return_seat1"], None), _ci_text(p["self_play"], None),
             _ci_text(p["regret"], p["ci95"]["regret"]))
            + ((" → ".join(f"{v:.3f}" for v in p["episode_payoffs"]),) if "episode_payoffs" in p else ())
            for p in result.metrics["per_partner"]]


def _evaluation_subtitle(result) -> str:
    pops = ", ".join(f"{p['label']} ({p['method']}, {len(p['members'])})" for p in result.partners)
    return (f"Agent {result.agent} on {result.game} with {len(result.metrics['per_partner'])} partners from {pops}; "
            f"{result.episodes} episodes per partner and seating; return = mean over the seatings played (both, "
            f"unless the agent has one seat or the partner is scripted); regret = partner's self-play return − return (– for scripted "
            f"partners, which have none); 95% bootstrap confidence intervals over episodes."
            + _evaluation_payoff_text(result.metrics.get("payoff")))


def _evaluation_payoff_text(kind: str | None) -> str:
    """What the returns are in a game that pays each seat its own reward ('' for a common payoff)."""
    if kind == "zero_sum":
        return (" Zero-sum: each return is the agent's own seat's payoff; self-play and regret do not apply (–); "
                "win / draw / loss by the sign of the agent's return.")
    if kind == "general_sum":
        return (" General-sum: each return is the agent's own seat's payoff; a partner's self-play is its seat-0 "
                "payoff.")
    return ""


def evaluation_png(result) -> bytes:
    """Bars: the agent's return with each partner (95% CI); dots: the partner's own self-play return."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result.metrics["per_partner"]
    n = len(rows)
    ret = np.array([p["return"] for p in rows])
    err = np.abs(np.array([p["ci95"]["return"] for p in rows]).T - ret[None])
    curve = result.metrics.get("episode_payoffs")
    width = min(16.0, max(5.0, 0.35 * n + 2.5))
    if curve:  # a second panel: the payoff of round 1 -> K, per partner and on average
        fig, (ax, ax2) = plt.subplots(1, 2, figsize=(width + 4.5, 4.2), dpi=130,
                                      gridspec_kw={"width_ratios": [width, 4.5]})
        rounds = np.arange(1, len(curve) + 1)
        for p in rows:
            ax2.plot(rounds, p["episode_payoffs"], color="#4c72b0", alpha=0.25, lw=0.8)
        ax2.plot(rounds, curve, color="#4c72b0", lw=2.2, marker="o", label="agent (mean over partners)")
        best = result.metrics.get("best_history_policy")
        if best:
            ax2.plot(rounds, best["per_round"], color="#333", ls="--", marker=".", label="best possible")
        ax2.set_xticks(rounds)
        ax2.set_xlabel("round" if best else "episode of the interaction")
        ax2.set_ylabel("payoff")
        ax2.set_ylim(-0.02, 1.15 * max(1e-9, max(max(p["episode_payoffs"]) for p in rows), *(best or {}).get("per_round", [0])))
        ax2.legend(fontsize=7, loc="upper left")
        ax2.set_title("adaptation: payoff per round (thin: each partner)", fontsize=9)
    else:
        fig, ax = plt.subplots(figsize=(width, 4.2), dpi=130)
    x = np.arange(n)
    ax.bar(x, ret, yerr=err, color="#4c72b0", capsize=2, label="agent with partner (both seats)")
    sp = [np.nan if p["self_play"] is None else p["self_play"] for p in rows]
    ax.scatter(x, sp, color="#dd8452", zorder=3, s=14, label="partner self-play")
    ax.axhline(result.metrics["mean_return"], color="#333", lw=1, ls="--", label="mean return")
    ax.set_xticks(x, [p["partner"] for p in rows], rotation=90, fontsize=7 if n > 16 else 8)
    ax.set_ylabel("return")
    fit_title(fig, ax, f"{result.agent} on {result.game}: mean {result.metrics['mean_return']:.3f}, "
                       f"worst {result.metrics['worst_return']:.3f}", within_axes=bool(curve))
    top = max(1e-9, float(ret.max() + err[1].max()), float(np.nanmax(sp)) if np.isfinite(sp).any() else 0.0)
    ax.set_ylim(min(0.0, float(ret.min())), 1.3 * top)  # headroom for the legend
    ax.legend(fontsize=7, loc="upper left", ncol=3)
    return _png(fig)


def evaluation_markdown(result) -> str:
    lines = [f"# Evaluation: {result.agent}", "", _evaluation_subtitle(result), "", "![returns](returns.png)", "",
             "| metric | value [95% CI] |", "|---|---|"]
    lines += [f"| {a} | {b} |" for a, b in _evaluation_rows(result)]
    header = _evaluation_header(result)
    lines += ["", "## Partners", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in _evaluation_partner_rows(result)]
    return "\n".join(lines) + "\n"


def evaluation_html(result, png: bytes) -> str:
    body = (f"<h2>Summary</h2>{html_table(('metric', 'value [95% CI]'), _evaluation_rows(result))}\n"
            f"<h2>Partners</h2>{html_table(_evaluation_header(result), _evaluation_partner_rows(result))}")
    return html_page(f"Evaluation: {result.agent}", _evaluation_subtitle(result), png, body, alt="returns per partner")


def evaluation_table(result) -> str:
    lines = [f"evaluation of {result.agent} on {result.game}: {len(result.metrics['per_partner'])} partners x "
             f"{result.episodes} episodes per seating"]
    lines += [f"  {a:<20} {b}" for a, b in _evaluation_rows(result)]
    rows = _evaluation_partner_rows(result)
    width = max(len(r[0]) for r in rows)
    curve = "  episode 1 → K" if len(rows[0]) > len(EVALUATION_HEADER) else ""
    lines.append(f"  {'partner':<{width}}  {'return [95% CI]':<22}  {'self-play':>9}  regret{curve}")
    lines += [f"  {r[0]:<{width}}  {r[1]:<22}  {r[4]:>9}  "
              + (f"{r[5].split(' ')[0]:<6}  {r[6]}" if curve else r[5].split(" ")[0]) for r in rows]
    return "\n".join(lines)
