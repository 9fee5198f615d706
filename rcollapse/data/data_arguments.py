"""A data set file is its data module's arguments: every key a user types is ``dataset.<name>``.

A file of ``conf/dataset`` names the data module (``_target_``) and holds its own arguments
(``batch_size``, ``max_length``, ...) and, beside them, its source's (``num_train``, ``path``,
``num_prompts``, ...). The source's class is named in a node that holds only internals,
``source: {_target_: ..., _partial_: true}``; the data module builds ``source(**arguments)`` from
the arguments that are not its own (:func:`build_source`). A key that is neither the module's
nor the source's fails, naming ``dataset.<key>`` and the arguments that exist
(:func:`check_dataset_config`, also run by the stages' config checks before anything is built).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Mapping

from rcollapse.config.checks import ConfigError

GROUP = "dataset"
# a data module's arguments that are built objects or come from the runner, never a data set file's keys
BUILT = frozenset(("tokenizer",))


def accepted_arguments(cls) -> set[str] | None:
    """The keyword arguments ``cls(...)`` takes, following ``**kwargs`` up to the base classes'
    ``__init__`` (``StackExchangeOfflineSource`` passes them on); None when it takes any."""
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        parameters = inspect.signature(init).parameters.values()
        names |= {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)} - {"self"}
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            return names
    return None


def module_arguments(module_cls) -> set[str]:
    """A data module's own arguments (its ``**source_args`` are the source's, not followed)."""
    parameters = inspect.signature(module_cls.__init__).parameters.values()
    return {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)} - {"self"}


def _class_of(source):
    return source.func if isinstance(source, functools.partial) else source


def is_unbuilt(source) -> bool:
    """A source still to be built: a class, or a ``functools.partial`` of one (``_partial_: true``)."""
    return isinstance(source, type) or (isinstance(source, functools.partial) and isinstance(source.func, type))


def unknown_arguments(module_cls, source_cls, keys) -> list[str]:
    """Of ``keys`` (a data set file's keys besides the module's source nodes), those that are
    neither an argument of ``module_cls`` nor of ``source_cls``."""
    own = module_arguments(module_cls)
    theirs = accepted_arguments(source_cls) if source_cls is not None else set()
    return [k for k in keys if k not in own and (theirs is not None and k not in theirs)]


def _unknown_message(keys, module_cls, source_cls, prefix: str = GROUP) -> str:
    own = sorted(module_arguments(module_cls) - BUILT)
    theirs = sorted(accepted_arguments(source_cls) or ()) if source_cls is not None else []
    where = f"{module_cls.__name__} ({', '.join(own)})"
    if source_cls is not None:
        where += f" or of its source {source_cls.__name__} ({', '.join(theirs) or 'none'})"
    names = ", ".join(f"{prefix}.{k}" for k in keys)
    return f"{names}: not an argument of the data module {where}"


def build_source(source, arguments: dict, module_cls, prefix: str = GROUP):
    """The data set's source: ``source(**arguments)`` when ``source`` is a class or a partial of
    one (a data set file's ``source: {_target_: ..., _partial_: true}``), ``source`` itself when
    it is built already (code that passes an object; then ``arguments`` must be empty). A key
    that neither ``module_cls`` nor the source takes raises :class:`ConfigError` naming
    ``{prefix}.<key>``."""
    if not is_unbuilt(source):
        if arguments:
            why = "it has no source" if source is None else f"its source ({type(source).__name__}) is built already"
            raise ConfigError(f"{', '.join(f'{prefix}.{k}' for k in sorted(arguments))}: not an argument of the "
                              f"data module {module_cls.__name__}, and {why}")
        return source
    unknown = unknown_arguments(module_cls, _class_of(source), arguments)
    if unknown:
        raise ConfigError(_unknown_message(unknown, module_cls, _class_of(source), prefix))
    return source(**arguments)


def check_dataset_config(dataset) -> None:
    """Every key of a composed ``dataset`` node (a mapping with ``_target_``) is an argument of
    its data module or of the source that takes the flat arguments, and every key of a source
    node is its class's: raise :class:`ConfigError` naming the first that is not, before
    anything is built. The module says which node takes the flat arguments
    (``FLAT_SOURCES``: the first that is not null)."""
    from hydra.utils import get_class
    from omegaconf import OmegaConf

    if OmegaConf.is_config(dataset):
        dataset = OmegaConf.to_container(dataset, resolve=False)  # values unread: `???` and `${...}` as written
    target = dataset.get("_target_") if isinstance(dataset, Mapping) else None
    if not target:
        return
    module_cls = get_class(str(target))
    nodes = [name for name, value in dataset.items() if _is_source_node(value)]
    flat = next((n for n in getattr(module_cls, "FLAT_SOURCES", ()) if dataset.get(n) is not None), None)
    source_cls = get_class(str(dataset[flat]["_target_"])) if flat is not None else None
    keys = [k for k in dataset if not str(k).startswith("_") and k not in nodes]
    unknown = unknown_arguments(module_cls, source_cls, keys)
    if unknown:
        raise ConfigError(_unknown_message(unknown, module_cls, source_cls))
    for name in nodes:
        node_cls = get_class(str(dataset[name]["_target_"]))
        extra = [k for k in dataset[name] if not str(k).startswith("_")]
        allowed = accepted_arguments(node_cls)
        bad = [k for k in extra if allowed is not None and k not in allowed]
        if bad:
            raise ConfigError(f"{', '.join(f'{GROUP}.{name}.{k}' for k in bad)}: not an argument of "
                              f"{node_cls.__name__} ({', '.join(sorted(allowed))})")


def _is_source_node(value) -> bool:
    return isinstance(value, Mapping) and "_target_" in value
