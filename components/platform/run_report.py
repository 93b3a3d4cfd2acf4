"""The local run report: `index.html` in the run's folder, linking every stage's reports and artifacts.

kfp.local leaves one folder per task under the run's folder, each with the task's output artifacts and,
when the task succeeded, `executor_output.json` with their metadata. The report lists the stages in
pipeline order with status and seconds; HTML reports are copied and Markdown reports rendered under
`reports/` (so a browser opens them as pages), and metrics and confusion matrices are shown inline, with
the metrics that are undefined (and why) under the verdict.
Like the stage reports, it fetches nothing from the network.
"""
import json
import os
import shutil

from components import reports
from components.evaluation.blessing import undefined_line


def _outputs(task_dir):
    """{output name: metadata} from a task's executor output, or {} when the task did not finish."""
    path = os.path.join(task_dir, "executor_output.json")
    if not os.path.isfile(path):
        return {}
    with open(path) as source:
        artifacts = json.load(source).get("artifacts", {})
    return {name: (entry.get("artifacts") or [{}])[0].get("metadata", {}) for name, entry in artifacts.items()}


def _report_page(source, target, title):
    with open(source, encoding="utf-8") as report:
        text = report.read()
    if text.lstrip().startswith("<!DOCTYPE html>"):
        shutil.copyfile(source, target)
    else:
        reports.write_text(target, reports.markdown_page(title, text))


def _metrics_table(metadata):
    return reports.html_table(["metric", "value"], [(k, reports.number(v)) for k, v in sorted(metadata.items())],
                              numeric=(1,))


def _confusion_table(metadata):
    matrix = metadata.get("confusionMatrix", {})
    categories = [c.get("displayName", "") for c in matrix.get("annotationSpecs", [])]
    rows = [(categories[i] if i < len(categories) else i, *row.get("row", []))
            for i, row in enumerate(matrix.get("rows", []))]
    return "<p class=\"muted\">confusion matrix (rows: actual, columns: predicted)</p>" + reports.html_table(
        ["", *categories], rows, numeric=tuple(range(1, len(categories) + 1)))


def _verdict_sections(blessing, pushed, validation):
    """The verdict with what was published, the blessing's reasons, the anomaly count and any warnings."""
    verdict = "BLESSED" if blessing.get("blessed") else "NOT BLESSED"
    published = (f"published version {int(pushed['version'])} at {pushed['path']}" if pushed.get("pushed")
                 else "nothing published" if not blessing.get("blessed")
                 else "nothing published: " + pushed.get("reason", "").removeprefix("blessed, but "))
    count = int(validation.get("anomaly_count", 0))
    anomalies = ("no data anomalies" if not count else
                 f"{count} data {'anomaly' if count == 1 else 'anomalies'} (reported as warnings: "
                 f"--warn-on-anomalies)")
    sections = [f"<p class=\"verdict\"><span class=\"{'ok' if blessing.get('blessed') else 'bad'}\">{verdict}</span>: "
                f"{reports.escape(published)} · <span class=\"{'bad' if count else 'ok'}\">"
                f"{reports.escape(anomalies)}</span></p>",
                "<ul class=\"reasons\">" + "".join(f"<li>{reports.escape(reason)}</li>"
                                                     for reason in blessing.get("reasons", [])) + "</ul>"]
    if blessing.get("undefined"):
        sections.append("<h2>Undefined metrics</h2><ul class=\"undefined\">" + "".join(
            f"<li>{reports.escape(undefined_line(item))}</li>" for item in blessing["undefined"]) + "</ul>")
    if validation.get("warnings"):
        sections.append("<h2>Warnings</h2><ul class=\"warnings\">" + "".join(
            f"<li>{reports.escape(line.strip().removeprefix('- '))}</li>" for line in validation["warnings"]) + "</ul>")
    return sections


def write_run_report(run_dir, stage_order, stages, errors, outputs):
    """Writes `<run_dir>/index.html`; `stages` maps a stage to its status, seconds and how Beam ran it (`beam`).
    Returns the path."""
    os.makedirs(os.path.join(run_dir, "reports"), exist_ok=True)
    rows = []
    for stage in stage_order:
        task_dir = os.path.join(run_dir, stage)
        state = stages.get(stage, {})
        status = state.get("status", "NOT RUN")
        links, inline = [], []
        if os.path.isdir(task_dir):
            metadata = _outputs(task_dir)
            for name in sorted((set(os.listdir(task_dir)) | set(metadata)) - {"executor_output.json"}):
                path = os.path.join(task_dir, name)
                if name.endswith("_report") or name == "learning_curves":
                    if os.path.isfile(path):
                        page = f"reports/{stage}-{name}.html"
                        _report_page(path, os.path.join(run_dir, page), f"{stage}: {name.replace('_', ' ')}")
                        links.append(f"<a class=\"report\" href=\"{page}\">{reports.escape(name)}</a>")
                elif name == "metrics" and name in metadata:
                    inline.append(_metrics_table(metadata[name]))
                elif name == "confusion_matrix" and metadata.get(name):
                    inline.append(_confusion_table(metadata[name]))
                elif os.path.exists(path):
                    links.append(f"<a class=\"artifact\" href=\"{stage}/{name}\">{reports.escape(name)}</a>")
                elif name == "pushed_model" and metadata.get(name):
                    pushed = metadata[name]
                    links.append(reports.escape(f"version {int(pushed['version'])}" if pushed.get("pushed")
                                                else "nothing published"))
        if state.get("beam"):
            inline.append(f"<p class=\"muted\">Beam: {reports.escape(state['beam'])}</p>")
        seconds = state.get("seconds")
        css = "ok" if status == "SUCCESS" else "bad" if status == "FAILURE" else "muted"
        rows.append((reports.Raw(f"<b>{reports.escape(stage)}</b>"),
                     reports.Raw(f"<span class=\"{css}\">{reports.escape(status)}</span>"),
                     "-" if seconds is None else f"{seconds:.1f}",
                     reports.Raw(" · ".join(links) + "".join(inline))))
    sections = [reports.html_table(["stage", "status", "seconds", "reports and artifacts"], rows, numeric=(2,))]
    if errors:
        sections.append("<h2>Errors</h2>" + "".join(f"<pre class=\"bad\">{reports.escape(e)}</pre>" for e in errors))
    if outputs:
        sections[:0] = _verdict_sections(outputs["blessing"].metadata, outputs["pushed_model"].metadata,
                                         outputs["anomalies"].metadata)
    else:
        sections.insert(0, "<p class=\"bad\">The run failed: nothing was published.</p>")
    path = os.path.join(run_dir, "index.html")
    reports.write_text(path, reports.html_page(f"Run {os.path.basename(os.path.normpath(run_dir))}", *sections))
    return path
