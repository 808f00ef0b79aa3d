"""attrs classes built without importing attrs: core's value types on the way to a first reply.

Importing attrs costs ~10 ms and building an attrs class ~0.4 ms: with the twenty-odd classes
on the way from ``import`` to a first reply, most of the time core added to it. Modules
declare those classes with this module's ``frozen``, ``define`` and ``field`` exactly as with
attrs'::

    if TYPE_CHECKING:
        from attrs import field, frozen
    else:
        from .fastattrs import field, frozen

so that mypy (and its attrs plugin) sees attrs' own, and the class body is unchanged. At run
time, for the small subset of attrs the core uses (slotted classes; ``frozen`` with ``repr``
and ``eq``; ``define`` with ``on_setattr=setters.validate``; fields with ``default``,
``factory``, ``repr``, ``eq`` and ``validator``), the class is built here: the same
``__slots__``, ``__init__`` (the code attrs generates), ``__repr__``, ``__eq__``/``__ne__``,
``__hash__``, frozen ``__setattr__``/``__delattr__`` (raising attrs' FrozenInstanceError),
``__getstate__``/``__setstate__``, ``__match_args__`` and validators. ``__attrs_attrs__`` and
``__attrs_props__`` are computed on first access, by building the same class with attrs
itself (a "twin") and taking its; so ``attrs.fields``, ``attrs.evolve``, ``attrs.asdict``,
``attrs.has`` and ``attrs.validate`` work on these classes as on any attrs class, loading
attrs only then (a validator given ``attribute`` reads its ``name`` without it). Anything
outside that subset (another option, a base class with fields, a custom ``__init__`` or
``__eq__``, a method using ``super()``) is handed to attrs as it is.
``core/tests/test_fastattrs.py`` checks every class built here against its twin.
"""

from __future__ import annotations

import linecache
import sys
import threading
from types import FunctionType
from typing import TYPE_CHECKING, Any

__all__ = ["define", "evolve", "field", "frozen", "setters"]

if TYPE_CHECKING:
    from attrs import define, evolve, field, frozen, setters
else:

    class _Nothing:
        """attrs' NOTHING for this module: "no argument given" (its repr is attrs')."""

        __slots__ = ()

        def __repr__(self) -> str:
            return "NOTHING"

        def __bool__(self) -> bool:
            return False

    NOTHING = _Nothing()

    class setters:  # stands for the module attrs.setters
        """``setters.validate``: the one ``on_setattr`` hook supported here."""

        validate = "validate"

    class _Field:
        """What ``field(...)`` returns here: its keyword arguments, read by the decorator."""

        __slots__ = ("kwargs",)

        def __init__(self, kwargs: dict[str, Any]) -> None:
            self.kwargs = kwargs

    _FIELD_OPTIONS = frozenset(("default", "factory", "repr", "eq", "validator"))

    def field(**kwargs: Any) -> Any:
        """``attrs.field``: options outside the supported subset go to attrs at once."""
        if not _FIELD_OPTIONS.issuperset(kwargs) or (
            "default" in kwargs and kwargs.get("factory") is not None
        ):
            import attrs

            return attrs.field(**kwargs)
        return _Field(kwargs)

    def frozen(maybe_cls: type | None = None, **options: Any) -> Any:
        """``attrs.frozen``."""
        return _decorator("frozen", maybe_cls, options)

    def define(maybe_cls: type | None = None, **options: Any) -> Any:
        """``attrs.define``."""
        return _decorator("define", maybe_cls, options)

    def evolve(inst: Any, /, **changes: Any) -> Any:
        """``attrs.evolve``: for a class built here, without loading attrs."""
        spec = type(inst).__dict__.get("__fastattrs__")
        if spec is None:
            import attrs

            return attrs.evolve(inst, **changes)
        for name in spec.names:
            if name not in changes:
                changes[name] = getattr(inst, name)
        return type(inst)(**changes)

    def _decorator(kind: str, maybe_cls: type | None, options: dict[str, Any]) -> Any:
        def wrap(cls: type) -> type:
            spec = _Spec.of(kind, cls, options)
            if spec is None:
                return _with_attrs(kind, cls, options)
            return spec.build(cls)

        return wrap if maybe_cls is None else wrap(maybe_cls)

    def _with_attrs(kind: str, cls: type, options: dict[str, Any]) -> type:
        """The class built by attrs itself (fields given here turned into attrs')."""
        import attrs

        for name, value in list(cls.__dict__.items()):
            if type(value) is _Field:
                setattr(cls, name, attrs.field(**value.kwargs))
        if options.get("on_setattr") == setters.validate:
            options = {**options, "on_setattr": attrs.setters.validate}
        result: type = getattr(attrs, kind)(cls, **options)
        return result

    # what attrs would write itself: a class defining one of these goes to attrs
    _OWN_METHODS = frozenset(
        (
            "__init__",
            "__eq__",
            "__ne__",
            "__hash__",
            "__getstate__",
            "__setstate__",
            "__setattr__",
            "__delattr__",
            "__match_args__",
            "__replace__",
            "__slots__",
            "__attrs_pre_init__",
            "__attrs_post_init__",
            "__attrs_init__",
            "__attrs_attrs__",
            "__lt__",
            "__le__",
            "__gt__",
            "__ge__",
        )
    )

    class _Spec:
        """A class's fields and options, for the subset built here."""

        __slots__ = (
            "annotations",
            "cls",
            "defaults",
            "eq",
            "eq_keys",
            "eq_names",
            "factories",
            "frozen",
            "kind",
            "names",
            "options",
            "raw",
            "repr",
            "repr_names",
            "script",
            "twin",
            "validators",
        )

        @classmethod
        def of(cls, kind: str, target: type, options: dict[str, Any]) -> _Spec | None:
            """The spec of ``target``, or None when attrs must build it."""
            allowed = {"slots": True, "repr": None, "eq": None}
            if kind == "define":
                allowed["on_setattr"] = setters.validate
            for key, value in options.items():
                if key not in allowed:
                    return None
                if key in ("repr", "eq") and not isinstance(value, bool):
                    return None
                if key not in ("repr", "eq") and value != allowed[key]:
                    return None
            if kind == "define" and options.get("on_setattr") != setters.validate:
                return None  # define's default hooks (convert + validate): not needed yet
            own = target.__dict__
            eq = options.get("eq", True)
            want_repr = options.get("repr", True)
            if not _OWN_METHODS.isdisjoint(own) or (want_repr and "__repr__" in own):
                return None
            for base in target.__mro__[1:-1]:  # plain slotted bases without fields only
                if base.__dict__.get("__slots__", None) != () or "__attrs_attrs__" in vars(base):
                    return None
                if getattr(base, "__annotations__", None):  # its own (3.10+): fields
                    return None
            for value in own.values():
                if not _plain_member(value):
                    return None
            if "__annotations__" not in own and (
                "__annotate__" in own or any(type(v) is _Field for v in own.values())
            ):
                return None  # annotations evaluated lazily (3.14 without the future import)
            annotations: dict[str, Any] = dict(own.get("__annotations__", {}))
            spec = cls()
            spec.kind, spec.frozen = kind, kind == "frozen"
            spec.options, spec.raw, spec.annotations = options, dict(own), annotations
            spec.repr, spec.eq, spec.twin = want_repr, eq, None
            spec.defaults, spec.factories, spec.validators, spec.eq_keys = {}, {}, {}, {}
            names, repr_names, eq_names = [], [], []
            seen_default = False
            for name, annotation in annotations.items():
                if "ClassVar" in str(annotation):
                    return None  # attrs skips ClassVars (under any spelling): let it
                if name.startswith("_"):
                    return None  # attrs' __init__ takes it by another name (its alias)
                value = own.get(name, NOTHING)
                shows, compares = True, True
                if type(value) is _Field:
                    kw = value.kwargs
                    shows, compares = kw.get("repr", True), kw.get("eq", True)
                    if not isinstance(shows, bool):
                        return None
                    if not isinstance(compares, bool):
                        if not callable(compares):
                            return None
                        spec.eq_keys[name] = compares  # attrs' eq=key: compare key(value)
                        compares = True
                    if kw.get("validator") is not None:
                        if not callable(kw["validator"]):
                            return None
                        spec.validators[name] = kw["validator"]
                    if kw.get("factory") is not None:
                        spec.factories[name] = kw["factory"]
                    elif "default" in kw:
                        spec.defaults[name] = kw["default"]
                elif value is not NOTHING:
                    if type(value).__name__ == "_CountingAttr":  # an attrs.field()
                        return None
                    spec.defaults[name] = value
                has_default = name in spec.defaults or name in spec.factories
                if seen_default and not has_default:
                    return None  # attrs raises its error
                seen_default = seen_default or has_default
                names.append(name)
                if shows:
                    repr_names.append(name)
                if compares:
                    eq_names.append(name)
            for name, value in own.items():
                if type(value) is _Field and name not in annotations:
                    return None  # an unannotated field: attrs decides
            spec.names, spec.repr_names, spec.eq_names = (
                tuple(names),
                tuple(repr_names),
                tuple(eq_names),
            )
            return spec

        def build(self, cls: type) -> type:
            """The slotted class, with the methods attrs would write."""
            names, qualname = self.names, cls.__qualname__
            cd = {k: v for k, v in self.raw.items() if k not in names and k not in _DROP}
            methods: dict[str, Any] = {"__init__": self._init(cls)}
            if self.repr:
                methods["__repr__"] = _repr(self.repr_names)
            if self.eq:
                methods["__eq__"], methods["__ne__"] = _eq(self.eq_names, self.eq_keys)
                if self.frozen:
                    salt = hash(f"{qualname}{id(self)}")
                    methods["__hash__"] = _hash(self.eq_names, salt, self.eq_keys)
                else:
                    cd["__hash__"] = None
            if self.frozen:
                methods["__setattr__"], methods["__delattr__"] = _frozen_setattr()
            elif self.options.get("on_setattr") == setters.validate:
                methods["__setattr__"] = _validating_setattr(cls, self)
                cd["__attrs_own_setattr__"] = True
            methods["__getstate__"], methods["__setstate__"] = _state(names)
            if sys.version_info >= (3, 13):  # copy.replace(), as attrs adds it there
                methods["__replace__"] = _replace()
            for method in methods.values():
                method.__module__ = cls.__module__
                method.__qualname__ = f"{qualname}.{method.__name__}"
                method.__doc__ = f"Method generated by attrs for class {qualname}."
            cd.update(methods)
            cd["__match_args__"] = names
            cd["__attrs_attrs__"] = _Lazy("__attrs_attrs__")
            cd["__attrs_props__"] = _Lazy("__attrs_props__")
            cd["__fastattrs__"] = self
            weakref = any(b.__dict__.get("__weakref__") is not None for b in cls.__mro__[1:-1])
            cd["__slots__"] = (*names, "__weakref__") if not weakref else names
            cd["__qualname__"] = qualname
            built: type = type(cls)(cls.__name__, cls.__bases__, cd)
            self.cls = built
            return built

        def _init(self, cls: type) -> Any:
            """``__init__``: the code attrs generates for these options."""
            globs: dict[str, Any] = {
                "NOTHING": NOTHING,
                "_cached_setattr_get": object.__setattr__.__get__,
                "_run_validators": _run_validators,
            }
            args, lines = [], ["    _setattr = _cached_setattr_get(self)"]
            for name in self.names:
                if name in self.factories:
                    globs[f"__attr_factory_{name}"] = self.factories[name]
                    args.append(f"{name}=NOTHING")
                    lines += [
                        f"    if {name} is not NOTHING:",
                        f"        _setattr('{name}', {name})",
                        "    else:",
                        f"        _setattr('{name}', __attr_factory_{name}())",
                    ]
                    continue
                if name in self.defaults:
                    globs[f"__attr_default_{name}"] = self.defaults[name]
                    args.append(f"{name}=__attr_default_{name}")
                else:
                    args.append(name)
                lines.append(f"    _setattr('{name}', {name})")
            if self.validators:
                lines.append("    if _run_validators():")
                for name, validator in self.validators.items():
                    globs[f"__attr_validator_{name}"] = validator
                    globs[f"__attr_{name}"] = _Attribute(self, name)
                    lines.append(
                        f"        __attr_validator_{name}(self, __attr_{name}, self.{name})"
                    )
            script = "def __init__(self, {}):\n{}\n".format(", ".join(args), "\n".join(lines))
            self.script = script
            filename = f"<attrs generated methods {cls.__module__}.{cls.__qualname__}>"
            linecache.cache[filename] = (len(script), None, script.splitlines(True), filename)
            compiled = _precompiled().get(script)
            if compiled is not None:  # the same code, compiled with the package
                code = compiled.__code__.replace(
                    co_name="__init__", co_filename=filename, co_firstlineno=1
                )
                if sys.version_info >= (3, 11):
                    code = code.replace(co_qualname="__init__")
                defaults = [
                    NOTHING if name in self.factories else self.defaults[name]
                    for name in self.names
                    if name in self.factories or name in self.defaults
                ]
                init = FunctionType(code, globs, "__init__", tuple(defaults) or None)
            else:
                exec(compile(script, filename, "exec"), globs)
                init = globs["__init__"]
            init.__annotations__ = {"return": None, **self.annotations}
            return init

        def build_twin(self) -> type:
            """The same class built by attrs (for its ``__attrs_attrs__``), once."""
            with _twin_lock:
                return self._twin()

        def _twin(self) -> type:
            if self.twin is None:
                import attrs

                ns: dict[str, Any] = {
                    "__annotations__": dict(self.annotations),
                    "__module__": self.cls.__module__,
                    "__qualname__": self.cls.__qualname__,
                }
                for name in self.names:
                    value = self.raw.get(name, NOTHING)
                    if type(value) is _Field:
                        ns[name] = attrs.field(**value.kwargs)
                    elif value is not NOTHING:
                        ns[name] = value
                options = dict(self.options)
                if options.get("on_setattr") == setters.validate:
                    options["on_setattr"] = attrs.setters.validate
                body = type(self.cls.__name__, (), ns)
                self.twin = getattr(attrs, self.kind)(body, **options)
            return self.twin

    _DROP = ("__dict__", "__weakref__")
    _twin_lock = threading.RLock()
    _inits: dict[str, Any] | None = None

    def _precompiled() -> dict[str, Any]:
        """``_fastattrs_inits.INITS``: each known ``__init__`` script's function, compiled
        with the package (compiling one here costs ~0.1 ms); empty if that module is absent."""
        global _inits
        if _inits is None:
            try:
                from ._fastattrs_inits import INITS
            except ImportError:
                INITS = {}
            _inits = INITS
        return _inits

    def inits_source(specs: list[_Spec]) -> str:
        """The text of ``_fastattrs_inits.py`` for ``specs`` (see scripts/fastattrs-inits)."""
        out = [
            '"""The ``__init__`` of each class ``fastattrs`` builds, compiled with the package',
            "so that importing core compiles none (~0.1 ms each). Generated by",
            "``scripts/fastattrs-inits``: do not edit. A class changed since is compiled at",
            "import as before, and core/tests/test_fastattrs.py fails until this file is",
            'generated again."""',
            "",
            "# mypy: ignore-errors",
            "",
        ]
        keys = []
        ordered = sorted(specs, key=lambda s: (s.cls.__module__, s.cls.__qualname__))
        for i, spec in enumerate(ordered):
            body = spec.script.partition("\n")[2]
            params = ", ".join(["self", *spec.names])
            out += [f"# {spec.cls.__module__}.{spec.cls.__qualname__}"]
            out += [f"def _{i}({params}):", body.rstrip("\n"), ""]
            keys.append(f"    {spec.script!r}: _{i},")
        return "\n".join([*out, "INITS = {", *keys, "}", ""])

    def _plain_member(value: Any) -> bool:
        """Not something attrs rewrites when it copies the class: no ``super()`` /
        ``__class__`` cell in a method, no ``functools.cached_property``."""
        if type(value).__name__ == "cached_property":
            return False
        if isinstance(value, (classmethod, staticmethod)):
            value = value.__func__
        elif isinstance(value, property):
            return all(_plain_member(f) for f in (value.fget, value.fset, value.fdel) if f)
        code = getattr(value, "__code__", None)
        return code is None or "__class__" not in code.co_freevars

    def _run_validators() -> bool:
        """False only after ``attrs.validators.set_disabled(True)``."""
        config = sys.modules.get("attr._config")
        return config is None or config._run_validators is True

    class _Lazy:
        """``__attrs_attrs__`` / ``__attrs_props__`` of a class built here: its twin's, the
        first time it is read (then stored on the class in place of this descriptor)."""

        __slots__ = ("name",)

        def __init__(self, name: str) -> None:
            self.name = name

        def __get__(self, instance: Any, owner: type | None = None) -> Any:
            for klass in type(instance).__mro__ if owner is None else owner.__mro__:
                spec = klass.__dict__.get("__fastattrs__")
                if spec is not None and klass.__dict__.get(self.name) is self:
                    twin = spec.build_twin()
                    for name in ("__attrs_attrs__", "__attrs_props__"):
                        if name in twin.__dict__:
                            setattr(klass, name, twin.__dict__[name])
                        elif type(klass.__dict__.get(name)) is _Lazy:
                            delattr(klass, name)  # an older attrs: no such attribute
                    return getattr(klass, self.name)
            raise AttributeError(self.name)

    class _Attribute:
        """What a validator is given as its ``attribute`` here: the name at once, anything
        else read from the twin's ``attrs.Attribute``."""

        __slots__ = ("name", "spec")

        def __init__(self, spec: _Spec, name: str) -> None:
            self.spec, self.name = spec, name

        def real(self) -> Any:
            """The twin's ``attrs.Attribute`` of this field."""
            twin = self.spec.build_twin()
            return next(a for a in twin.__attrs_attrs__ if a.name == self.name)

        def __getattr__(self, item: str) -> Any:
            return getattr(self.real(), item)

        def __repr__(self) -> str:
            return repr(self.real())

    _repr_context = threading.local()

    def _repr(names: tuple[str, ...]) -> Any:
        def __repr__(self: Any) -> str:
            try:
                working = _repr_context.already_repring
            except AttributeError:
                working = {id(self)}
                _repr_context.already_repring = working
            else:
                if id(self) in working:
                    return "..."
                working.add(id(self))
            try:
                parts = ", ".join(f"{name}={getattr(self, name)!r}" for name in names)
                return f"{self.__class__.__qualname__.rsplit('>.', 1)[-1]}({parts})"
            finally:
                working.remove(id(self))

        return __repr__

    def _eq(names: tuple[str, ...], keys: dict[str, Any]) -> tuple[Any, Any]:
        def __eq__(self: Any, other: Any) -> Any:
            if other.__class__ is not self.__class__:
                return NotImplemented
            result: Any = True
            for name in names:
                mine, theirs = getattr(self, name), getattr(other, name)
                key = keys.get(name)
                if key is not None:
                    mine, theirs = key(mine), key(theirs)
                result = mine == theirs
                if not result:
                    return result
            return result

        def __ne__(self: Any, other: Any) -> Any:
            result = self.__eq__(other)
            if result is NotImplemented:
                return NotImplemented
            return not result

        return __eq__, __ne__

    def _hash(names: tuple[str, ...], salt: int, keys: dict[str, Any]) -> Any:
        def __hash__(self: Any) -> int:
            values = [getattr(self, name) for name in names]
            for i, name in enumerate(names):
                key = keys.get(name)
                if key is not None:
                    values[i] = key(values[i])
            return hash((salt, *values))

        return __hash__

    def _frozen_setattr() -> tuple[Any, Any]:
        def __setattr__(self: Any, name: str, value: Any) -> None:
            from attrs.exceptions import FrozenInstanceError

            raise FrozenInstanceError

        def __delattr__(self: Any, name: str) -> None:
            from attrs.exceptions import FrozenInstanceError

            raise FrozenInstanceError

        return __setattr__, __delattr__

    def _validating_setattr(cls: type, spec: _Spec) -> Any:
        validators = {name: (v, _Attribute(spec, name)) for name, v in spec.validators.items()}
        set_slot = object.__setattr__

        def __setattr__(self: Any, name: str, val: Any) -> None:
            check = validators.get(name)
            if check is not None and _run_validators():
                check[0](self, check[1], val)
            set_slot(self, name, val)

        return __setattr__

    def _replace() -> Any:
        def __replace__(self: Any, /, **changes: Any) -> Any:
            return evolve(self, **changes)

        return __replace__

    def _state(names: tuple[str, ...]) -> tuple[Any, Any]:
        def __getstate__(self: Any) -> dict[str, Any]:
            return {name: getattr(self, name) for name in names}

        def __setstate__(self: Any, state: Any) -> None:
            set_slot = object.__setattr__.__get__(self)
            if isinstance(state, tuple):
                for name, value in zip(names, state, strict=False):
                    set_slot(name, value)
            else:
                for name in names:
                    if name in state:
                        set_slot(name, state[name])

        return __getstate__, __setstate__
