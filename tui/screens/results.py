"""Results: the test-set confusion matrix (100 classes or 20 superclasses) and per-class PR / ROC
curves with AP and AUC, sortable worst-first, plus micro and macro averages; calibration (ECE and
a reliability table); a TTA tab when the run evaluated test-time augmentation (per view, merged,
cost). The test images behind a cell, a pair, a class's errors or the top losses open over it
(`tui.screens.error_images`)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from rich import box
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import DataTable, Footer, Static, TabbedContent, TabPane
from textual.worker import get_current_worker

from engine.tta_views import DEFAULT_VIEWS
from tui.messages import ResultsLoaded
from tui.orchestration import error_analysis
from tui.orchestration.calibration_table import reliability_table
from tui.orchestration.evaldata import (
    EVAL_FILE,
    EvalData,
    EvalDataError,
    TTAScores,
    fit_name,
    load_eval,
    most_confused,
    row_normalise,
)
from tui.orchestration.no_results import NoResults, evaluate_best, no_results
from tui.orchestration.test_images import ImagesUnavailable, run_test_images
from tui.screens.common import CifarScreen, TitleBar, pct, synthetic_tag
from tui.widgets.confusion import ConfusionMatrix
from tui.widgets.plots import Line, MetricPlot

MACRO, MICRO = "macro", "micro"
TOP_LOSSES = 60  # the `l` panel's images


def _num(x: float) -> str:
    return "-" if x is None or math.isnan(x) else f"{x:.3f}"


class ResultsScreen(CifarScreen):
    DEFAULT_CSS = """
    ResultsScreen #side { width: 42; padding: 0 0 0 1; }
    ResultsScreen #cell { height: 5; border-bottom: solid $panel-lighten-2; }
    ResultsScreen #pairs { height: 1fr; }
    ResultsScreen #scale { height: 1; }
    ResultsScreen #classes { width: 44; }
    ResultsScreen #tabs { height: 1fr; }
    ResultsScreen TabPane { padding: 0; height: 1fr; }
    ResultsScreen TabPane > Horizontal { height: 1fr; }
    ResultsScreen ContentSwitcher { height: 1fr; }
    ResultsScreen #calibration-scroll { height: 1fr; padding: 0 1; }
    ResultsScreen #damaged { display: none; border: round $error; padding: 0 1; height: auto; }
    ResultsScreen.-damaged #damaged { display: block; }
    ResultsScreen.-damaged #tabs { display: none; }
    """
    BINDINGS = [
        Binding("z", "toggle_coarse", "superclasses"),
        # the tabs' titles say their keys: the footer keeps its room for the others
        Binding("m", "tab('confusion')", "matrix", show=False),
        Binding("p", "tab('curves')", "PR/ROC", show=False),
        Binding("c", "tab('calibration')", "calibration", show=False),
        Binding("t", "tab('tta')", "TTA"),  # shown only for a run with TTA (check_action)
        Binding("enter", "cell_images", "images"),  # of the cell (the confusion tab only)
        Binding("f", "class_errors(True)", "false pos."),
        Binding("F", "class_errors(False)", "false neg."),
        Binding("l", "top_losses", "top losses"),
        Binding("a", "sort('ap')", "sort AP", show=False),
        Binding("u", "sort('auc')", "sort AUC", show=False),
        Binding("n", "sort('name')", "sort name", show=False),
        # said by the no-results panel; with results, `e` / `E` evaluate best.pt again
        Binding("e", "evaluate(False)", "evaluate best.pt", show=False),
        Binding("E", "evaluate(True)", "evaluate best.pt with TTA", show=False),
        Binding("R", "resume", "resume the run", show=False),
    ]

    def __init__(self, run_dir: Path) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.data: EvalData | None = None
        self.coarse = False
        self.sort_key = "ap"
        self.sort_desc = False  # worst first
        self.pairs_rows: list[tuple[int, int]] = []
        self.missing: NoResults | None = None  # why there is no eval.npz (None: there is one)
        self.evaluating = False
        self.panel_text = Text()  # what the no-results panel says

    def compose(self) -> ComposeResult:
        yield TitleBar("Results", id="title")
        yield Static("", id="damaged")
        with TabbedContent(id="tabs"):
            with TabPane("Confusion (m)", id="confusion"), Horizontal():
                with Vertical():
                    yield ConfusionMatrix(id="matrix")
                    yield Static("", id="scale")
                with Vertical(id="side"):
                    yield Static("loading ...", id="cell")
                    yield DataTable(id="pairs", cursor_type="row", zebra_stripes=True)
            with TabPane("PR / ROC (p)", id="curves"), Horizontal():
                yield DataTable(id="classes", cursor_type="row", zebra_stripes=True)
                with Vertical():
                    yield MetricPlot("precision-recall", xlabel="recall", limits=(0, 1), id="pr")
                    yield MetricPlot("ROC", xlabel="false-positive rate", limits=(0, 1), id="roc")
            with (
                TabPane("Calibration (c)", id="calibration"),
                VerticalScroll(id="calibration-scroll"),
            ):
                yield Static("", id="calibration-panel")
        yield Footer()

    def on_mount(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, exit_on_error=False, group="results", name="loading results")
    def load(self) -> None:
        if not (self.run_dir / EVAL_FILE).exists():
            self.post_message(ResultsLoaded(None, missing=no_results(self.run_dir)))
            return
        try:
            data = load_eval(self.run_dir)
        except EvalDataError as exc:
            self.post_message(ResultsLoaded(None, str(exc)))
            return
        self.post_message(ResultsLoaded(data))

    @on(ResultsLoaded)
    def _loaded(self, message: ResultsLoaded) -> None:
        self.missing = message.missing if isinstance(message.missing, NoResults) else None
        self.refresh_bindings()
        if self.missing is not None:
            self._show_missing(self.missing)
            return
        if message.error is not None or not isinstance(message.data, EvalData):
            self._show_damage(str(message.error))
            return
        self.remove_class("-damaged")
        self.data = d = message.data
        for warning in d.warnings:
            self.notify(warning, title=self.run_dir.name, severity="warning", timeout=10)
        self.query_one("#title", TitleBar).set(*self._title_parts())
        self.query_one("#scale", Static).update(
            Text.assemble(
                ("row-normalised, log colour: ", "dim"),
                ("▀", "rgb(40,11,84)"),
                ("0.1%", "dim"),
                (" ▀", "rgb(120,28,109)"),
                ("1%", "dim"),
                (" ▀", "rgb(196,55,83)"),
                ("5%", "dim"),
                (" ▀", "rgb(247,131,17)"),
                ("30%", "dim"),
                (" ▀", "rgb(252,253,191)"),
                ("100%", "dim"),
                ("  z: superclasses", "dim"),
            )
        )
        self._show_matrix()
        self._fill_classes()
        self._show_calibration()
        if d.tta is not None:
            self._add_tta_tab(d.tta)
        if self.query_one("#tabs", TabbedContent).active == "confusion":
            self.query_one("#matrix", ConfusionMatrix).focus()

    def _show_damage(self, error: str) -> None:
        """A panel in place of the tabs: what cannot be shown, and why; the keys still work."""
        self.query_one("#title", TitleBar).set(self.run_dir.name, Text("NO RESULTS", style="bold"))
        panel = self.query_one("#damaged", Static)
        panel.update(
            Text.assemble(
                ("cannot show this run's test results\n", "bold red"),
                f"{error}\n",
                ("4: all runs  ·  1: setup", "dim"),
            )
        )
        self.add_class("-damaged")

    def _show_missing(self, why: NoResults) -> None:
        """No eval.npz: why (a failure in red), and what can be done (evaluate, resume)."""
        self.query_one("#title", TitleBar).set(
            self.run_dir.name, Text(f"NO TEST RESULTS ({why.status})", style="bold")
        )
        keys = [
            *(["e: evaluate the best checkpoint", "E: with TTA"] if why.can_evaluate else []),
            *(["R: resume"] if why.can_resume else []),
            "4: all runs",
        ]
        self.panel_text = Text.assemble(
            (f"{why.reason}\n", "bold red" if why.failure else "bold"),
            ("" if why.can_evaluate else "no intact best.pt to evaluate\n", "dim"),
            ("  ·  ".join(keys), "bold"),
        )
        self.query_one("#damaged", Static).update(self.panel_text)
        self.add_class("-damaged")

    # ------------------------------------------------------------------ actions

    def action_evaluate(self, tta: bool) -> None:
        if self.evaluating:
            self.notify("an evaluation is running already", severity="warning")
            return
        views = list(DEFAULT_VIEWS) if tta else None
        self.evaluating = True
        self._progress("starting the evaluation ...")
        self.evaluate(views)

    @work(thread=True, exclusive=True, exit_on_error=False, group="eval", name="the evaluation")
    def evaluate(self, views: list[str] | None) -> None:
        worker = get_current_worker()
        try:
            evaluate_best(
                self.run_dir,
                views,
                lambda line: self.app.call_from_thread(self._progress, line),
                cancelled=lambda: worker.is_cancelled,
            )
        except RuntimeError as exc:
            self.app.call_from_thread(self._evaluated, str(exc))
            return
        self.app.call_from_thread(self._evaluated, None)

    def _progress(self, line: str) -> None:
        self.query_one("#title", TitleBar).set(self.run_dir.name, Text(line, style="bold"))

    def _evaluated(self, error: str | None) -> None:
        self.evaluating = False
        if error is not None:
            self.notify(error, title="evaluation failed", severity="error", timeout=10)
            self.load()
            return
        self.notify("evaluated: best.pt on the test set", title=self.run_dir.name)
        self.data = None
        self.load()

    def action_resume(self) -> None:
        from tui.screens.resume import resume_run

        resume_run(self.cifar, self.run_dir)

    # ------------------------------------------------------------------ confusion

    def _names(self) -> list[str]:
        assert self.data is not None
        return self.data.coarse_names if self.coarse else self.data.class_names

    def _counts(self) -> np.ndarray:
        assert self.data is not None
        return self.data.coarse_confusion() if self.coarse else self.data.confusion

    def _show_matrix(self) -> None:
        matrix = self.query_one("#matrix", ConfusionMatrix)
        counts, names = self._counts(), self._names()
        matrix.set_matrix(counts, names, coarse=self.coarse)
        table = self.query_one("#pairs", DataTable)
        table.clear(columns=True)
        pairs = most_confused(counts, top=30)
        n_width = max([len("n"), *(len(str(p.count)) for p in pairs)])
        # the side panel's width (CSS), less a scrollbar, 4 cells' padding, the n and % columns:
        # what is left is shared by the two names, each wrapped in two lines or abbreviated
        room = (self.query_one("#side").size.width or 42) - 2 - 8 - n_width - 3
        name_width = max(room // 2, 6)
        table.add_column("true", width=name_width)
        table.add_column("predicted as", width=name_width)
        table.add_column("n", width=n_width)
        table.add_column("%", width=3)
        self.pairs_rows = []
        for pair in pairs:
            true, pred = (fit_name(names[k], name_width) for k in (pair.true, pair.pred))
            height = 2 if "\n" in true + pred else 1
            rate = pct(pair.rate, 0, unit="")
            table.add_row(true, pred, pair.count, rate, height=height)
            self.pairs_rows.append((pair.true, pair.pred))
        matrix.move_to(*matrix.cursor)

    @on(ConfusionMatrix.CursorMoved)
    def _cursor(self, message: ConfusionMatrix.CursorMoved) -> None:
        if self.data is None:
            return
        counts, names = self._counts(), self._names()
        t, p = message.true, message.pred
        if t >= len(names) or p >= len(names):
            return
        support = int(counts[t].sum())
        share = row_normalise(counts)[t, p]
        kind = "superclass" if self.coarse else "class"
        text = Text()
        text.append("true ", style="dim")
        text.append(f"{names[t]} ({t})\n", style="bold")
        text.append("pred ", style="dim")
        text.append(f"{names[p]} ({p})\n", style="bold")
        text.append(f"{int(counts[t, p])} of {support} test images ({pct(share, 1)})\n")
        recall = counts[t, t] / support if support else float("nan")
        text.append(f"{kind} recall {pct(recall, 1)}", style="dim")
        self.query_one("#cell", Static).update(text)

    @on(DataTable.RowSelected, "#pairs")
    def _pair_selected(self, event: DataTable.RowSelected) -> None:
        if 0 <= event.cursor_row < len(self.pairs_rows):
            matrix = self.query_one("#matrix", ConfusionMatrix)
            matrix.move_to(*self.pairs_rows[event.cursor_row])
            self._open_images(self._cell_selection(*self.pairs_rows[event.cursor_row]))

    def action_toggle_coarse(self) -> None:
        if self.data is None:
            return
        self.coarse = not self.coarse
        matrix = self.query_one("#matrix", ConfusionMatrix)
        t, p = matrix.cursor
        f2c = self.data.fine_to_coarse
        if self.coarse:
            matrix.cursor = (int(f2c[t]), int(f2c[p]))
        else:  # back to the first fine class of each superclass
            matrix.cursor = (int(np.argmax(f2c == t)), int(np.argmax(f2c == p)))
        self._show_matrix()
        self.query_one("#tabs", TabbedContent).active = "confusion"

    def action_tab(self, tab: str) -> None:
        self.query_one("#tabs", TabbedContent).active = tab
        target = {
            "confusion": "#matrix",
            "curves": "#classes",
            "calibration": "#calibration-scroll",
        }.get(tab)
        if target is not None:
            self.query_one(target).focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "tab" and parameters == ("tta",):  # no TTA tab: no `t` key in the footer
            return self.data is not None and self.data.tta is not None
        if action == "cell_images":
            active = self.query_one("#tabs", TabbedContent).active
            return self.data is not None and active == "confusion"
        if action in ("class_errors", "top_losses"):
            return self.data is not None
        if action == "evaluate":  # a run with results may be evaluated again (with TTA)
            return self.missing.can_evaluate if self.missing else True  # damaged: redo it
        if action == "resume":  # e.g. a run stopped after an epoch (tested as it stopped)
            if self.missing is not None:
                return self.missing.can_resume
            return self.data is not None and self.data.summary.status == "interrupted"
        return True

    # ------------------------------------------------------------------ error images

    def _predictions(self) -> error_analysis.Predictions | None:
        """The run's predictions, or None having said why there are none."""
        p = self.data.predictions if self.data is not None else None
        if p is None and self.data is not None:
            self.notify(error_analysis.NO_PREDICTIONS, severity="warning", timeout=8)
        return p

    def _cell_selection(self, true: int, pred: int) -> error_analysis.Selection | None:
        d, p = self.data, self._predictions()
        if d is None or p is None:
            return None
        if self.coarse:
            return error_analysis.superclass_cell(p, d.coarse_names, d.fine_to_coarse, true, pred)
        return error_analysis.cell(p, d.class_names, true, pred)

    @on(TabbedContent.TabActivated)
    def _tab_changed(self) -> None:
        self.refresh_bindings()  # enter: images of a cell only in the confusion tab

    def action_cell_images(self) -> None:
        """The images of the confusion cell under the cursor."""
        self._open_images(self._cell_selection(*self.query_one("#matrix", ConfusionMatrix).cursor))

    def action_class_errors(self, positives: bool) -> None:
        """False positives / negatives of the class highlighted in the PR/ROC table, or in the
        confusion tab of the matrix row's class (fine classes only)."""
        d = self.data
        if d is None:
            return
        tabs = self.query_one("#tabs", TabbedContent)
        if tabs.active == "curves":
            table = self.query_one("#classes", DataTable)
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
            if key in (MACRO, MICRO, None):
                self.notify("move to a class's row first (the averages have no images)")
                return
            k = int(key)
        elif self.coarse:
            self.notify("false positives and negatives are per class: z for the fine classes")
            return
        else:
            k = self.query_one("#matrix", ConfusionMatrix).cursor[0]
        p = self._predictions()
        if p is None:
            return
        pick = error_analysis.false_positives if positives else error_analysis.false_negatives
        self._open_images(pick(p, d.class_names, k))

    def action_top_losses(self) -> None:
        p = self._predictions()
        if p is not None:
            self._open_images(error_analysis.top_losses(p, TOP_LOSSES))

    def _open_images(self, selection: error_analysis.Selection | None) -> None:
        if selection is not None:
            self.load_images(selection)

    @work(thread=True, exclusive=True, exit_on_error=False, group="images", name="reading images")
    def load_images(self, selection: error_analysis.Selection) -> None:
        """Read the test images (a CIFAR-100 file: once), then show the panel."""
        from tui.screens.error_images import ErrorImagesScreen

        d = self.data
        assert d is not None and d.predictions is not None
        images, why = None, None
        if len(selection.rows):
            try:
                images = run_test_images(
                    self.run_dir, d.stored_images, d.synthetic, int(d.predictions.index.max()) + 1
                )
            except ImagesUnavailable as exc:
                why = str(exc)
        screen = ErrorImagesScreen(
            selection,
            d.predictions,
            d.class_names,
            images,
            run_name=self.run_dir.name,
            unavailable=why,
        )
        self.app.call_from_thread(self.app.push_screen, screen)

    # ------------------------------------------------------------------ calibration

    def _show_calibration(self) -> None:
        d = self.data
        assert d is not None
        panel = self.query_one("#calibration-panel", Static)
        rel = d.calibration()
        if rel is None:
            panel.update(Text(error_analysis.NO_PREDICTIONS, style="bold"))
            return
        tag = "  SYNTHETIC" if d.synthetic else ""
        engine_ece = d.summary.ece
        said = f"; the engine's summary says {engine_ece:.4f}" if engine_ece is not None else ""
        title = (
            f"calibration of the best checkpoint: ECE {rel.ece:.4f} over {rel.total:,} test "
            f"images, {len(rel.counts)} equal-width confidence bins{said}{tag}"
        )
        note = f"\n{error_analysis.DERIVED}" if d.predictions and d.predictions.derived else ""
        panel.update(reliability_table(rel, title + note))

    # ------------------------------------------------------------------ TTA

    def _add_tta_tab(self, tta: TTAScores) -> None:
        """A tab for test-time augmentation, added only for runs that evaluated it."""
        content = self._tta_renderable(tta)
        panels = self.query("#tta-panel")
        if panels:
            panels.first(Static).update(content)
        else:
            tabs = self.query_one("#tabs", TabbedContent)
            tabs.add_pane(TabPane("TTA (t)", Static(content, id="tta-panel"), id="tta"))
        parts = self._title_parts()  # TTA's top-1 beside the plain one
        parts.insert(4, f"TTA top-1 {pct(tta.top1)} ({tta.cost}x)")
        self.query_one("#title", TitleBar).set(*parts)
        self.refresh_bindings()

    def _title_parts(self) -> list[str | Text]:
        d = self.data
        assert d is not None
        top1 = d.accuracy() if d.summary.test_top1 is None else d.summary.test_top1
        if d.report is not None:  # eval.npz is the dashboard's evaluation
            top1 = d.accuracy()
        status = d.summary.status
        return [
            self.run_dir.name,
            synthetic_tag(d.synthetic),
            Text(status.upper(), style="bold red")
            if status in ("diverged", "crashed")
            else Text(f"({status})" if status not in ("", "done") else ""),
            f"test top-1 {pct(top1)}"
            + (f" (best.pt, e{d.report.get('epoch')}, evaluated here)" if d.report else ""),
            f"AP macro {_num(d.macro_ap)} micro {_num(d.micro_ap)}",
            f"AUC macro {_num(d.macro_auc)} micro {_num(d.micro_auc)}",
        ]

    def _tta_renderable(self, tta: TTAScores) -> Table:
        d = self.data
        assert d is not None
        plain = d.summary.test_top1
        tag = "  SYNTHETIC" if d.synthetic else ""
        table = Table(
            box=box.SIMPLE_HEAD,
            title=f"test-time augmentation, best checkpoint, {tta.count:,} test images{tag}",
            title_justify="left",
            caption=_tta_caption(tta),
            caption_justify="left",
        )
        table.add_column("view", no_wrap=True)
        table.add_column("top-1", justify="right")
        table.add_column("top-5", justify="right")
        table.add_column("vs plain", justify="right")

        def delta(top1: float) -> str:
            return "" if plain is None else pct(top1 - plain, sign=True, unit="")

        for v in tta.views:
            table.add_row(v.view, pct(v.top1), pct(v.top5), delta(v.top1))
        table.add_row(
            f"merged ({len(tta.views)} views)",
            pct(tta.top1),
            pct(tta.top5),
            delta(tta.top1),
            style="bold",
        )
        return table

    # ------------------------------------------------------------------ PR / ROC

    def _fill_classes(self) -> None:
        d = self.data
        assert d is not None
        table = self.query_one("#classes", DataTable)
        table.clear(columns=True)
        arrow = "v" if self.sort_desc else "^"
        labels = {"name": "class", "ap": "AP", "auc": "AUC"}
        cols = {k: v + (f" {arrow}" if k == self.sort_key else "") for k, v in labels.items()}
        table.add_column(cols["name"], key="name", width=16)
        table.add_column(cols["ap"], key="ap", width=6)
        table.add_column(cols["auc"], key="auc", width=6)
        table.add_column("n", key="n", width=5)
        table.add_row(
            Text("macro avg", style="bold"), _num(d.macro_ap), _num(d.macro_auc), "", key=MACRO
        )
        table.add_row(
            Text("micro avg", style="bold"), _num(d.micro_ap), _num(d.micro_auc), "", key=MICRO
        )
        support = d.support
        order = list(range(len(d.class_names)))
        if self.sort_key == "name":
            order.sort(key=lambda k: d.class_names[k], reverse=self.sort_desc)
        else:
            values = d.ap if self.sort_key == "ap" else d.auc
            # NaN (class absent from the test set) sorts last either way
            order.sort(
                key=lambda k: (
                    math.isnan(values[k]),
                    -values[k] if self.sort_desc else values[k],
                )
            )
        for k in order:
            table.add_row(
                d.class_names[k], _num(d.ap[k]), _num(d.auc[k]), int(support[k]), key=str(k)
            )
        table.move_cursor(row=0)
        table.scroll_home(animate=False)
        self._show_curves(MACRO)

    @on(DataTable.RowHighlighted, "#classes")
    def _class_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key is not None and event.row_key.value is not None:
            self._show_curves(event.row_key.value)

    def _show_curves(self, key: str) -> None:
        d = self.data
        if d is None:
            return
        grid = d.grid.tolist()
        macro_pr = Line(f"macro AP {_num(d.macro_ap)}", grid, d.macro_pr.tolist())
        macro_roc = Line(f"macro AUC {_num(d.macro_auc)}", grid, d.macro_roc.tolist())
        tag = " SYNTHETIC" if d.synthetic else ""
        if key == MACRO:
            pr_lines, roc_lines, name = [macro_pr], [macro_roc], "macro average"
        elif key == MICRO:
            pr_lines = [Line(f"micro AP {_num(d.micro_ap)}", grid, d.micro_pr.tolist()), macro_pr]
            roc_lines = [
                Line(f"micro AUC {_num(d.micro_auc)}", grid, d.micro_roc.tolist()),
                macro_roc,
            ]
            name = "micro average"
        else:
            k = int(key)
            name = d.class_names[k]
            pr_lines = [Line(f"AP {_num(d.ap[k])}", grid, d.pr_precision[k].tolist()), macro_pr]
            roc_lines = [Line(f"AUC {_num(d.auc[k])}", grid, d.roc_tpr[k].tolist()), macro_roc]
        self.query_one("#pr", MetricPlot).show(pr_lines, title=f"PR: {name}{tag}")
        self.query_one("#roc", MetricPlot).show(roc_lines, title=f"ROC: {name}{tag}")

    def action_sort(self, key: str) -> None:
        if self.data is None:
            return
        if key == self.sort_key:
            self.sort_desc = not self.sort_desc
        else:
            self.sort_key, self.sort_desc = key, False
        self._fill_classes()
        self.action_tab("curves")


def _tta_caption(tta: TTAScores) -> str:
    text = (
        f"merged = mean of the views' softmax probabilities; cost {tta.cost}x "
        f"({tta.cost} forward passes per image)"
    )
    if tta.requested > len(tta.views):
        text += f"; {tta.requested} views asked for, duplicates evaluated once"
    return text
