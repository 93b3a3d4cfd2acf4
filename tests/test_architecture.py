"""The layers the design promises (docs/design.md): stage logic without kfp, no import cycle between the
project's modules, and a pipeline.py that is the pipeline only."""
import ast
import os
import subprocess
import sys

from helpers import REPO

PACKAGE = "components"


def project_modules():
    """{module name: path} of every Python module of the project (the package, pipeline.py, pipeline_cli.py)."""
    modules = {"pipeline": os.path.join(REPO, "pipeline.py"), "pipeline_cli": os.path.join(REPO, "pipeline_cli.py")}
    for folder, _, names in os.walk(os.path.join(REPO, PACKAGE)):
        for name in names:
            if name.endswith(".py"):
                relative = os.path.relpath(os.path.join(folder, name), REPO)[:-len(".py")].split(os.sep)
                modules[".".join(relative[:-1] if relative[-1] == "__init__" else relative)] = os.path.join(
                    folder, name)
    return modules


def imports_of(path, modules):
    """The project modules a file imports anywhere (at the top or inside a function)."""
    found = set()
    for node in ast.walk(ast.parse(open(path).read())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        found.update(name for name in names if name in modules)
    return found


def import_cycles(graph):
    """Every cycle in a {module: imported modules} graph, each as a list of modules (Tarjan's components)."""
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(module):
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in sorted(graph.get(module, ())):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1 or module in graph.get(module, ()):
                cycles.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return cycles


def project_graph():
    modules = project_modules()
    graph = {name: imports_of(path, modules) - {name} for name, path in modules.items()}
    # `python pipeline.py` runs the command line: only as a script, never when the pipeline is imported.
    graph["pipeline"].discard("pipeline_cli")
    return graph


def test_no_import_cycle_between_the_projects_modules():
    assert import_cycles(project_graph()) == []


def test_the_cycle_check_finds_a_cycle():
    graph = project_graph()
    graph["components.errors"] = graph["components.errors"] | {"components.training.user_module"}
    assert [cycle for cycle in import_cycles(graph)
            if {"components.errors", "components.training.user_module"} <= set(cycle)]


def test_stage_logic_and_the_packages_below_it_import_no_kfp():
    """The three layers: plain logic, thin components (components/stages.py), wiring (pipeline.py)."""
    for name, path in project_modules().items():
        if name.startswith(("components.stage_logic", "components.data", "components.state",
                            "components.evaluation", "components.training", "components.tf_serving",
                            "components.validation")):
            tree = ast.parse(open(path).read())
            imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
            imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
            assert not {module for module in imported if module == "kfp" or module.startswith("kfp.")}, name


def test_pipeline_py_is_the_pipeline_and_the_command_line_is_apart():
    source = open(os.path.join(REPO, "pipeline.py")).read()
    assert len(source.splitlines()) <= 300
    assert "argparse" not in source
    assert "def parse_args" in open(os.path.join(REPO, "pipeline_cli.py")).read()


def test_ingest_imports_no_tensorflow():
    """A local run forks ingest from the warm process once ingest's modules are imported (components/platform/
    warm_stages.py): with TensorFlow among them, ingest would wait seconds for an import it never uses."""
    check = subprocess.run([sys.executable, "-c", "import sys, components.stage_logic.ingest; "
                            "print(sorted(name for name in sys.modules if name.split('.')[0] == 'tensorflow'))"],
                           cwd=REPO, capture_output=True, text=True, check=True)
    assert check.stdout.strip() == "[]"
