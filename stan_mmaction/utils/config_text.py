"""Reading config text that came from a file as data, never as code.

MMEngine stores the training config as Python text inside every
checkpoint (``meta['config']``, ``message_hub['runtime_info']['cfg']``) and
turns it back into a ``Config`` with ``Config.fromstring(text, '.py')``,
which executes it: a checkpoint could run anything on ``--resume``.
:func:`config_text_to_dict` reads the same text with :mod:`ast` and keeps
the assignments whose values are plain data (what ``Config.pretty_text``
writes: literals, ``dict(...)``, lists, tuples, names assigned earlier);
everything else is left out, nothing is run, no ``_base_`` file is read.
"""
import ast
import json
from typing import Any, Dict

#: Parsing gives up beyond this many characters (a config is a few KB).
MAX_CONFIG_CHARS = 1 << 22


class _NotData(Exception):
    pass


def _value(node: ast.AST, names: Dict[str, Any]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        items = [_value(e, names) for e in node.elts]
        return tuple(items) if isinstance(node, ast.Tuple) else \
            (set(items) if isinstance(node, ast.Set) else items)
    if isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):  # {**other}
            raise _NotData
        return {_value(k, names): _value(v, names)
                for k, v in zip(node.keys, node.values)}
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
            node.func.id == 'dict' and not node.args and \
            all(k.arg is not None for k in node.keywords):
        return {k.arg: _value(k.value, names) for k in node.keywords}
    if isinstance(node, ast.UnaryOp) and isinstance(
            node.op, (ast.USub, ast.UAdd)):
        operand = _value(node.operand, names)
        if isinstance(operand, (int, float, complex)) and \
                not isinstance(operand, bool):
            return -operand if isinstance(node.op, ast.USub) else operand
        raise _NotData
    if isinstance(node, ast.Name) and node.id in names:
        return names[node.id]
    raise _NotData


def config_text_to_dict(text: str, file_format: str = '.py') -> dict:
    """The data of a config's text, with nothing executed.

    Args:
        text (str): the text (Python, JSON or YAML).
        file_format (str): ``'.py'``, ``'.json'``, ``'.yaml'`` or
            ``'.yml'``. Defaults to ``'.py'``.

    Returns:
        dict: top-level names -> values; Python assignments whose value is
        not plain data are left out, and so is everything in text that does
        not parse (``{}``).
    """
    if not isinstance(text, str) or len(text) > MAX_CONFIG_CHARS:
        return {}
    if file_format == '.json':
        try:
            data = json.loads(text)
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}
    if file_format in ('.yaml', '.yml'):
        import yaml
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError:
            return {}
        return data if isinstance(data, dict) else {}
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return {}
    names: Dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and \
                isinstance(node.targets[0], ast.Name):
            try:
                names[node.targets[0].id] = _value(node.value, names)
            except (_NotData, RecursionError, TypeError):
                names.pop(node.targets[0].id, None)
    return names
