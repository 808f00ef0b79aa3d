"""fastattrs builds core's value classes without importing attrs: each must be what attrs
itself would build from the same class body (same members, fields, signature, repr, equality,
hashing, immutability, pickling, validators), and attrs' functions must work on it."""

from __future__ import annotations

import copy
import importlib
import inspect
import pickle
import weakref
from typing import Any, ClassVar

import attrs
import pytest

from ipfs_accelerate_py import errors, fastattrs
from ipfs_accelerate_py.fastattrs import field, frozen

MODULES = (
    "ipfs_accelerate_py.types",
    "ipfs_accelerate_py.calls",
    "ipfs_accelerate_py.config",
    "ipfs_accelerate_py.attempts",
    "ipfs_accelerate_py.plugins",
    "ipfs_accelerate_py.resilience.retry",
)
# every class on the way to a first reply: one built by attrs instead would load attrs there
EXPECTED = {
    "types": "ToolCall Message Usage ChatResponse ToolCallDelta StreamChunk EmbeddingResponse "
    "ImageResponse GenerateResponse ModelInfo ChatRequest EmbedRequest GenerateRequest",
    "calls": "HttpCall Credential CallableCall",
    "config": "BackendSpec Settings",
    "attempts": "CallOptions PluginHooks",
    "plugins": "Registration",
    "retry": "RetryPolicy",
}
GENERATED = (
    "__init__",
    "__repr__",
    "__eq__",
    "__ne__",
    "__hash__",
    "__setattr__",
    "__delattr__",
    "__getstate__",
    "__setstate__",
    "__match_args__",
    "__replace__",
    "__attrs_own_setattr__",
    "__attrs_attrs__",
    "__attrs_props__",
    "__weakref__",
)


def built_here() -> list[type]:
    found = []
    for name in MODULES:
        module = importlib.import_module(name)
        found += [
            v
            for v in vars(module).values()
            if isinstance(v, type) and "__fastattrs__" in v.__dict__ and v.__module__ == name
        ]
    return found


def attrs_twin(cls: type) -> type:
    """What attrs builds from the same class body and options."""
    spec = cls.__dict__["__fastattrs__"]
    body = {}
    for key, value in spec.raw.items():
        if type(value).__name__ == "_Field":
            value = attrs.field(**value.kwargs)
        body[key] = value
    body.pop("__dict__", None)
    body.pop("__weakref__", None)
    options = dict(spec.options)
    if options.get("on_setattr") == fastattrs.setters.validate:
        options["on_setattr"] = attrs.setters.validate
    plain = type(cls.__name__, cls.__bases__, body)
    twin: type = getattr(attrs, spec.kind)(plain, **options)
    return twin


def sample_args(cls: type, variant: str = "a") -> dict[str, Any]:
    """Arguments for every field without a default (strings: nothing here checks types)."""
    return {
        a.name: f"{a.name}-{variant}"
        for a in attrs.fields(cls)
        if a.default is attrs.NOTHING and a.init
    }


def test_every_class_on_the_way_to_a_first_reply_is_built_here() -> None:
    names = {f"{c.__module__.rsplit('.', 1)[-1]}:{c.__name__}" for c in built_here()}
    expected = {f"{mod}:{name}" for mod, listed in EXPECTED.items() for name in listed.split()}
    assert expected <= names


@pytest.mark.parametrize("cls", built_here(), ids=lambda c: c.__qualname__)
def test_a_class_is_what_attrs_builds(cls: type) -> None:
    twin = attrs_twin(cls)
    attrs.fields(cls)  # resolves __attrs_attrs__ (and __attrs_props__, or drops it: attrs < 25.4)
    for name in GENERATED:  # the same members generated, or kept from the body
        assert (name in cls.__dict__) == (name in twin.__dict__), name
    for name in set(cls.__dict__) - set(GENERATED) - {"__fastattrs__"}:
        assert name in twin.__dict__, name
    assert cls.__slots__ == twin.__slots__  # type: ignore[attr-defined]
    assert cls.__match_args__ == twin.__match_args__  # type: ignore[attr-defined]
    assert cls.__mro__[1:] == twin.__mro__[1:]
    assert cls.__hash__ is twin.__hash__ or (cls.__hash__ is not None) == (
        twin.__hash__ is not None
    )
    assert attrs.has(cls)
    assert attrs.fields(cls) == attrs.fields(twin)
    assert isinstance(cls.__dict__["__attrs_attrs__"], tuple)  # resolved once, then stored
    assert getattr(cls, "__attrs_props__", None) == getattr(twin, "__attrs_props__", None)
    init, twin_init = cls.__init__, twin.__init__  # type: ignore[misc]
    assert str(inspect.signature(init)) == str(inspect.signature(twin_init))
    assert init.__annotations__ == twin_init.__annotations__
    for name in ("__init__", "__repr__", "__eq__", "__hash__"):
        if name in twin.__dict__ and callable(twin.__dict__[name]):
            ours, theirs = cls.__dict__[name], twin.__dict__[name]
            assert (ours.__qualname__, ours.__doc__, ours.__module__) == (
                theirs.__qualname__,
                theirs.__doc__,
                theirs.__module__,
            )
    if cls.__init__ is not object.__init__ and sample_args(cls):
        with pytest.raises(TypeError) as ours_error:
            cls()
        with pytest.raises(TypeError) as twin_error:
            twin()
        assert str(ours_error.value) == str(twin_error.value)


@pytest.mark.parametrize("cls", built_here(), ids=lambda c: c.__qualname__)
def test_instances_behave_as_attrs_instances(cls: type) -> None:
    twin = attrs_twin(cls)
    args = sample_args(cls)
    a, again, b = cls(**args), cls(**args), twin(**args)
    other = cls(**sample_args(cls, "b")) if args else None
    assert repr(a) == repr(b)
    assert a.__getstate__() == b.__getstate__()
    assert attrs.asdict(a) == attrs.asdict(b)
    assert attrs.astuple(a) == attrs.astuple(b)
    assert (a == again) == (b == twin(**args))
    assert (a != again) == (b != twin(**args))
    if other is not None:
        assert (a == other) == (b == twin(**sample_args(cls, "b")))
    assert (a == b) is False  # another class, as with attrs
    try:
        hashes = (hash(a), hash(again))
    except TypeError as exc:  # a dict in a field: unhashable, for attrs too
        with pytest.raises(TypeError, match=str(exc)):
            hash(b)
    else:
        assert hashes[0] == hashes[1] or cls.__hash__ is object.__hash__
        hash(b)
    assert weakref.ref(a)() is a
    assert not hasattr(a, "__dict__") and not hasattr(b, "__dict__")
    spec = cls.__dict__["__fastattrs__"]
    if spec.frozen:
        first = attrs.fields(cls)[0].name
        for change in (lambda o: setattr(o, first, 1), lambda o: delattr(o, first)):
            with pytest.raises(attrs.exceptions.FrozenInstanceError):
                change(a)
            with pytest.raises(attrs.exceptions.FrozenInstanceError):
                change(b)
    assert copy.copy(a).__getstate__() == a.__getstate__()
    for clone in (lambda o: pickle.loads(pickle.dumps(o)), copy.deepcopy):
        if cls.__name__ == "Message":  # its default extra, a mappingproxy, cannot be pickled
            with pytest.raises(TypeError, match="cannot pickle 'mappingproxy'"):
                clone(a)
            continue
        restored = clone(a)
        assert type(restored) is cls and restored.__getstate__() == a.__getstate__()
    name = next(iter(args), attrs.fields(cls)[-1].name)
    value = "changed" if args else getattr(a, name)
    for evolve in (attrs.evolve, fastattrs.evolve):
        changed = evolve(a, **{name: value})
        assert type(changed) is cls and getattr(changed, name) == value
        assert changed.__getstate__() == {**a.__getstate__(), name: value}


def test_validators_run_as_attrs_runs_them() -> None:
    from ipfs_accelerate_py.config import BackendSpec
    from ipfs_accelerate_py.resilience.retry import RetryPolicy

    spec_twin, policy_twin = attrs_twin(BackendSpec), attrs_twin(RetryPolicy)
    for make in (BackendSpec, spec_twin):
        with pytest.raises(errors.ConfigurationError, match="idempotency_header must be"):
            make("n", "p", None, idempotency_header="bad header")
    for make in (RetryPolicy, policy_twin):
        with pytest.raises(errors.ConfigurationError, match="max_retries must be an integer"):
            make(max_retries=-1)
        policy = make()
        with pytest.raises(errors.ConfigurationError, match="jitter must be between 0 and 1"):
            policy.jitter = 2
        policy.jitter = 0.5  # checked on set, then set
        assert policy.jitter == 0.5
        policy.max_retries = 3
        assert attrs.evolve(policy, jitter=0.1).max_retries == 3
        with attrs.validators.disabled():
            assert make(max_retries=-1).max_retries == -1
            policy.backoff_factor = 0
    assert RetryPolicy.__hash__ is None and policy_twin.__hash__ is None
    assert RetryPolicy() == RetryPolicy() and RetryPolicy() != RetryPolicy(max_retries=1)
    attribute = RetryPolicy.__init__.__globals__["__attr_max_retries"]
    assert attribute.name == "max_retries" and attribute.default == 5  # the real one's


def test_what_is_outside_the_subset_is_built_by_attrs() -> None:
    @frozen(kw_only=True)
    class KeywordOnly:
        x: int

    @frozen
    class OwnEquality:
        x: int

        def __eq__(self, other: object) -> bool:
            return True

        __hash__ = object.__hash__

    @frozen
    class Base:
        x: int

    @frozen
    class Derived(Base):
        y: int = 0

    @frozen
    class Private:
        _x: int

    @frozen
    class WithClassVar:
        x: int
        shared: ClassVar[int] = 1

    @frozen
    class Super:
        x: int

        def twice(self) -> str:
            return str(super().__repr__())

    @frozen
    class Converted:
        x: int = field(default=1, converter=int)

    @frozen
    class DefaultThenMandatory:
        x: int = 0

    for cls in (KeywordOnly, OwnEquality, Derived, Private, WithClassVar, Super, Converted):
        assert "__fastattrs__" not in cls.__dict__, cls
        assert attrs.has(cls)
    assert "__fastattrs__" in Base.__dict__ and "__fastattrs__" in DefaultThenMandatory.__dict__
    assert KeywordOnly(x=1).x == 1 and Private(x=2)._x == 2
    assert Converted("3").x == 3 and OwnEquality(1) == OwnEquality(2)
    assert Derived(1, 2) == Derived(1, 2) and attrs.fields(Derived)[0].name == "x"
    assert Super(1).twice().startswith("<")  # super() still finds the class attrs built
    with pytest.raises(ValueError, match="No mandatory attributes"):

        @frozen
        class Mandatory:
            x: int = 0
            y: str  # type: ignore[misc]


def test_fields_of_a_plain_subclass_are_its_bases() -> None:
    @frozen
    class Point:
        x: int
        y: int = 0

    class Named(Point):
        __slots__ = ()

    assert [a.name for a in attrs.fields(Named)] == ["x", "y"]
    assert attrs.evolve(Named(1), y=2) == Named(1, 2)
    assert repr(Named(1)) == "Named(x=1, y=0)"


def test_a_recursive_repr_is_cut_as_attrs_cuts_it() -> None:
    @frozen
    class Box:
        items: list[Any] = field(factory=list)

    box = Box()
    box.items.append(box)
    assert repr(box) == "Box(items=[...])"


def test_an_attrs_subclass_extends_a_class_built_here() -> None:
    """As router_types' Routed* responses and the hf plugin's TextGenerationResponse do."""
    from ipfs_accelerate_py.types import ChatResponse

    @attrs.frozen(slots=True)
    class Routed(ChatResponse):
        deployment: str | None = None

    base = [a.name for a in attrs.fields(ChatResponse)]
    assert [a.name for a in attrs.fields(Routed)] == [*base, "deployment"]
    reply = Routed("hi", deployment="a")
    assert reply.text == "hi" and reply["text"] == "hi" and reply.deployment == "a"
    assert reply == Routed("hi", deployment="a") != Routed("hi", deployment="b")
    assert repr(reply).startswith("Routed(text='hi', model=None")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        reply.text = "x"  # type: ignore[misc]
    assert attrs.evolve(reply, text="x").deployment == "a"
    assert not hasattr(reply, "__dict__")


def test_every_init_comes_compiled_with_the_package() -> None:
    """_fastattrs_inits.py holds, for each class, the same code fastattrs would compile; if a
    class changed, regenerate it: .venv/bin/python scripts/fastattrs-inits"""
    known = fastattrs._precompiled()  # type: ignore[attr-defined]
    stale = [c.__qualname__ for c in built_here() if c.__fastattrs__.script not in known]
    assert not stale, f"run scripts/fastattrs-inits: {stale} changed"
    assert len(known) == len(built_here()), "run scripts/fastattrs-inits: a class is gone"
    for cls in built_here():
        script = cls.__fastattrs__.script  # type: ignore[attr-defined]
        namespace: dict[str, Any] = {}
        exec(compile(script, "<check>", "exec"), dict(cls.__init__.__globals__), namespace)  # type: ignore[misc]
        fresh, ours = namespace["__init__"].__code__, cls.__init__.__code__  # type: ignore[misc]
        for attribute in ("co_code", "co_consts", "co_names", "co_varnames", "co_argcount"):
            assert getattr(ours, attribute) == getattr(fresh, attribute), (cls, attribute)
        assert ours.co_name == "__init__" and ours.co_filename.startswith("<attrs generated")
