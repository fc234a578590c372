"""The package's import floors (docs/architecture.md, "Floors"): every
import goes to the importer's floor or below, no modules import each other
in a circle, and no tool imports another tool. Read with ``ast`` (lazy
imports inside functions count)."""
import ast
import os
import os.path as osp
import re

from conftest import REPO_ROOT

PACKAGE = 'stan_mmaction'


def floors() -> dict:
    """{part: floor} from the table in docs/architecture.md."""
    text = open(osp.join(REPO_ROOT, 'docs', 'architecture.md')).read()
    section = text.split('## Floors', 1)[1].split('\n## ', 1)[0]
    found = {}
    for floor, parts in re.findall(r'^\| (\d+) \| ([^|]+) \|', section,
                                   re.M):
        for part in re.findall(r'`([\w.]+)`', parts):
            found[part] = int(floor)
    return found


def _module_name(path: str) -> str:
    rel = osp.relpath(path, REPO_ROOT)[:-3].replace(os.sep, '.')
    return rel[:-len('.__init__')] if rel.endswith('.__init__') else rel


def _exists(module: str) -> bool:
    base = osp.join(REPO_ROOT, *module.split('.'))
    return osp.isfile(base + '.py') or osp.isdir(base)


def package_imports() -> dict:
    """{module: set of package modules it imports}."""
    graph = {}
    for folder, _, files in os.walk(osp.join(REPO_ROOT, PACKAGE)):
        for name in files:
            if not name.endswith('.py'):
                continue
            path = osp.join(folder, name)
            module = _module_name(path)
            package = module if name == '__init__.py' else \
                module.rsplit('.', 1)[0]
            targets = set()
            for node in ast.walk(ast.parse(open(path).read())):
                if isinstance(node, ast.ImportFrom):
                    if node.level:
                        parts = package.split('.')
                        parts = parts[:len(parts) - node.level + 1]
                        base = '.'.join(parts + ([node.module]
                                                 if node.module else []))
                    else:
                        base = node.module or ''
                    if base.split('.')[0] != PACKAGE:
                        continue
                    for alias in node.names:
                        sub = f'{base}.{alias.name}'
                        targets.add(sub if _exists(sub) else base)
                elif isinstance(node, ast.Import):
                    targets.update(a.name for a in node.names
                                   if a.name.split('.')[0] == PACKAGE)
            graph[module] = targets
    return graph


def _part(module: str) -> str:
    parts = module.split('.')
    return parts[1] if len(parts) > 1 else '__init__'


def test_floor_table_names_every_part_of_the_package():
    table = floors()
    parts = {_part(m) for m in package_imports()}
    assert parts == set(table), (parts ^ set(table))


def upward_imports(graph: dict, table: dict) -> list:
    return [f'{a} -> {b}' for a, targets in sorted(graph.items())
            for b in sorted(targets) if table[_part(b)] > table[_part(a)]]


def find_circle(graph: dict):
    """One import circle of ``graph`` as a list of modules, or None. A
    package's ``__init__`` importing its modules while they name the
    package (``from . import x``) is Python's normal layout, not a
    circle: imports of one's own parent packages are left out."""
    graph = {a: {b for b in targets if not a.startswith(b + '.')}
             for a, targets in graph.items()}
    state, path = {}, []

    def visit(node):
        state[node] = 'open'
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 'open':
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                circle = visit(nxt)
                if circle:
                    return circle
        path.pop()
        state[node] = 'done'
        return None

    for node in sorted(graph):
        if node not in state:
            circle = visit(node)
            if circle:
                return circle
    return None


def test_every_import_goes_to_its_floor_or_below():
    upward = upward_imports(package_imports(), floors())
    assert not upward, upward


def test_no_modules_import_each_other_in_a_circle():
    circle = find_circle(package_imports())
    assert circle is None, ' -> '.join(circle)


def test_the_checks_see_an_upward_import_and_a_circle():
    """The two checks above on made-up graphs."""
    table = dict(utils=1, apis=5)
    assert upward_imports({'stan_mmaction.utils.x': {
        'stan_mmaction.apis.y'}}, table) == [
            'stan_mmaction.utils.x -> stan_mmaction.apis.y']
    assert upward_imports({'stan_mmaction.apis.y': {
        'stan_mmaction.utils.x'}}, table) == []
    a, b = 'stan_mmaction.apis.inference', 'stan_mmaction.apis.video_stream'
    assert find_circle({a: {b}, b: {a}}) == [a, b, a]
    assert find_circle({a: {b}, b: set()}) is None
    # a module naming its own package is no circle
    assert find_circle({'stan_mmaction.apis': {a}, a: {
        'stan_mmaction.apis'}}) is None


def test_tools_never_import_each_other():
    tools = osp.join(REPO_ROOT, 'tools')
    names = {osp.splitext(f)[0] for _, _, files in os.walk(tools)
             for f in files if f.endswith('.py')} - {'_bootstrap'}
    found = []
    for folder, _, files in os.walk(tools):
        for name in files:
            if not name.endswith('.py'):
                continue
            path = osp.join(folder, name)
            for node in ast.walk(ast.parse(open(path).read())):
                modules = []
                if isinstance(node, ast.Import):
                    modules = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and not node.level:
                    modules = [node.module or '']
                found += [f'{name} imports {m}' for m in modules
                          if m.split('.')[0] in names]
    assert not found, found
