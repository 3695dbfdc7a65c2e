"""The kernel driver of examples/tools/quarto-standin (NOT Quarto).

  $QUARTO_PYTHON kernel_driver.py JOB.json RESULT.json

quarto-standin runs this file with the interpreter named by $QUARTO_PYTHON,
the way Quarto runs its own driver (src/resources/jupyter/jupyter.py) with it.
That interpreter does not run the cells: it builds a notebook from them and
hands it to nbclient, which asks jupyter_client's KernelSpecManager for the
kernelspec of the job's kernel name (the first <data dir>/kernels/<name>/ on
the Jupyter data path) and starts the kernel from that kernelspec's argv. So
the cells run in whatever interpreter the kernelspec names, which need not be
$QUARTO_PYTHON.

JOB.json (written by quarto-standin):
  {"doc": "report.qmd", "doc_dir": "/abs/dir", "kernel_name": "python3",
   "expected_spec_dir": "/.../kernels/python3", "total": 3,
   "cells": [{"code": "...", "number": 1, "line": 15, "error": false}, ...]}
  ("cells" holds only the cells to evaluate, `#| eval: false` ones are left
  out; "number" is the cell's place among the document's "total" cells.)

RESULT.json (read by quarto-standin to write the report):
  {"kernel_executable": "...", "failed": null or the cell's index in "cells",
   "outputs": [[{"markdown": false, "text": "..."}, ...], ...]}   # one list per cell

Progress, each cell's outputs and errors go to stdout/stderr, which the compile
service captures in output.log.

Exit status: 0 when every cell ran; 1 when a cell raised (the error is shown,
as Quarto shows it, and the remaining cells are not run); 2 when the render
could not start: nbclient/nbformat/jupyter_client not importable, no kernelspec
of that name, or the kernel did not start.

Plain Python 3 plus Debian's Jupyter stack (python3-nbclient, python3-nbformat,
python3-jupyter-client, python3-ipykernel for the kernel itself), nothing else.
"""
import json
import os
import re
import sys

PREFIX = "quarto-standin: "
for _stream in (sys.stdout, sys.stderr):  # a cell's output never kills the log over encoding
    _stream.reconfigure(errors="backslashreplace")


def say(msg, stream=sys.stdout):
    stream.write(PREFIX + msg + "\n")
    stream.flush()


try:
    import nbformat
    from jupyter_client.kernelspec import NoSuchKernel
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError
except ImportError as e:
    say("QUARTO_PYTHON=%s cannot import the Jupyter stack the kernel driver needs (%s). "
        "Quarto needs jupyter_client, nbclient and nbformat in that interpreter "
        "(Debian: python3-jupyter-client python3-nbclient python3-nbformat)."
        % (sys.executable, e), sys.stderr)
    sys.exit(2)

# Run before the document's cells, not shown in the report: the one reliable
# answer to "which interpreter did the cells run in".
PROBE = "import sys as _standin_sys\nprint(_standin_sys.executable)\ndel _standin_sys\n"

# Per cell. Quarto sets no per-cell limit; the compile's own timeout bounds the
# whole render anyway. This only stops a hand run from hanging on a stuck cell.
CELL_TIMEOUT = 600

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # IPython colours its tracebacks


def plain(text):
    return ANSI.sub("", text)


def output_pieces(cell, errors=True):
    """A cell's outputs as [{"markdown": bool, "text": str}], in order.

    Markdown pieces (a display's text/markdown) go into the report as they are;
    the rest go into a code block, as Quarto shows text output. errors=False
    leaves out tracebacks."""
    pieces = []
    for out in cell.get("outputs", []):
        kind = out.get("output_type")
        if kind == "stream":
            pieces.append({"markdown": False, "text": out.get("text", "")})
        elif kind in ("execute_result", "display_data"):
            data = out.get("data", {})
            if "text/markdown" in data:
                pieces.append({"markdown": True, "text": data["text/markdown"]})
            elif "text/plain" in data:
                pieces.append({"markdown": False, "text": data["text/plain"] + "\n"})
            else:  # images, HTML only, ...: this stand-in writes plain Markdown
                pieces.append({"markdown": False,
                               "text": "[%s output: not rendered by the stand-in]\n"
                               % ", ".join(sorted(data))})
        elif kind == "error" and errors:
            pieces.append({"markdown": False,
                           "text": plain("\n".join(out.get("traceback", []))) + "\n"})
    return pieces


def show(pieces):
    """Echo a cell's outputs into the log, indented under its progress line."""
    for p in pieces:
        for line in p["text"].rstrip("\n").split("\n"):
            sys.stdout.write("    | " + line + "\n")
    sys.stdout.flush()


def main(job_file, result_file):
    with open(job_file, encoding="utf-8") as f:
        job = json.load(f)
    name, cells = job["kernel_name"], job["cells"]

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": name, "language": "python", "display_name": name}
    nb.cells.append(nbformat.v4.new_code_cell(PROBE))
    for c in cells:
        cell = nbformat.v4.new_code_cell(c["code"])
        if c.get("error"):  # `#| error: true`: nbclient lets tagged cells raise
            cell.metadata["tags"] = ["raises-exception"]
        nb.cells.append(cell)

    # resources' metadata.path is the kernel's working directory: the
    # document's directory, as Quarto runs it.
    client = NotebookClient(nb, kernel_name=name, timeout=CELL_TIMEOUT, allow_errors=False,
                            resources={"metadata": {"path": job["doc_dir"]}})

    # The kernel manager resolves the name through jupyter_client's
    # KernelSpecManager; this is the kernelspec the kernel is started from.
    km = client.create_kernel_manager()
    try:
        spec = km.kernel_spec
    except NoSuchKernel:
        spec = None
    if spec is None:
        say("jupyter_client found no kernelspec named %r on the Jupyter data path of %s"
            % (name, sys.executable), sys.stderr)
        return 2
    say("kernel %s: jupyter_client starts it from %s, argv %s"
        % (name, os.path.join(spec.resource_dir, "kernel.json"), json.dumps(spec.argv)))
    expected = job.get("expected_spec_dir")
    if expected and os.path.abspath(spec.resource_dir) != os.path.abspath(expected):
        say("WARNING: that is not the kernelspec found on the data path (%s)" % expected,
            sys.stderr)

    result = {"kernel_executable": None, "failed": None, "outputs": [[] for _ in cells]}
    status, where = 0, "starting it"
    try:
        with client.setup_kernel():
            where = "running the sys.executable probe"
            probe = client.execute_cell(nb.cells[0], 0, store_history=False)  # cells keep In [1]...
            text = "".join(o.get("text", "") for o in probe.get("outputs", [])
                           if o.get("output_type") == "stream" and o.get("name") == "stdout")
            result["kernel_executable"] = text.strip()
            say("kernel sys.executable: %s" % result["kernel_executable"])
            if result["kernel_executable"] != sys.executable:
                say("note: the cells run in %s, not in %s that runs this driver: QUARTO_PYTHON "
                    "only picks the driver's interpreter, the kernelspec picks the kernel's"
                    % (result["kernel_executable"], sys.executable))
            for i, c in enumerate(cells):
                where = "cell %d/%d (line %d)" % (c["number"], job["total"], c["line"])
                try:
                    client.execute_cell(nb.cells[i + 1], i + 1)
                except CellExecutionError as e:
                    result["outputs"][i] = output_pieces(nb.cells[i + 1])
                    result["failed"] = i
                    say("  %s ... FAILED" % where)
                    show(output_pieces(nb.cells[i + 1], errors=False))  # what it printed first
                    # nbclient's message is the one Quarto prints: the cell's
                    # code, then the kernel's traceback.
                    sys.stderr.write("An error occurred while executing cell %d (%s, line %d):\n%s\n"
                                     % (c["number"], job["doc"], c["line"],
                                        plain(str(e)).rstrip("\n")))
                    sys.stderr.flush()
                    status = 1
                    break
                result["outputs"][i] = output_pieces(nb.cells[i + 1])
                say("  %s ... done" % where)
                show(result["outputs"][i])
            where = "shutting it down"
    except Exception as e:  # the kernel did not start, died, or a cell timed out
        say("the kernel %s failed (%s): %s: %s"
            % (name, where, type(e).__name__, plain(str(e))), sys.stderr)
        status = 2

    with open(result_file, "w", encoding="utf-8") as f:
        json.dump(result, f)
    return status


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: kernel_driver.py JOB.json RESULT.json (run by quarto-standin)")
    sys.exit(main(sys.argv[1], sys.argv[2]))
