"""Machinery of the property-based bad-input tests (``tests/**/test_*_robustness.py``).

Each subpackage's test module lists, for every public function and class, how to call it with
small valid inputs (a :class:`Spec`: the callable and one :class:`Arg` per argument). The tests
then let hypothesis pick one argument and one way of breaking it:

==============  ==================================================  ================================
corruption      what the argument becomes                           accepted outcome
==============  ==================================================  ================================
``rank``        a tensor with a dimension too few (or too many)     TypeError/ValueError naming it
``dtype``       int, bool or complex (float for index tensors)      TypeError/ValueError naming it
``numpy``       the same values as a NumPy array                    TypeError/ValueError naming it
``list``        the same values as nested lists                     TypeError/ValueError naming it
``meta``        the tensor on the ``meta`` device                   an error naming it, or a result
``empty``       a tensor with one dimension of size 0               an error naming it, or a result
                                                                    with no NaN (empty or zeros)
``nan``         one entry NaN                                       an error naming it, or a result
                                                                    with NaN in it (NaN in, NaN out)
``range``       an index tensor with an entry out of range          TypeError/ValueError naming it
``int``         a bad int (negative/zero below the minimum, float,  TypeError/ValueError naming it
                bool, str)
``huge``        an int size far beyond the input (10**9)            an error naming it, or a result
                                                                    (clamped), fast and small
``number``      0, a negative, NaN, inf or a str for a positive     TypeError/ValueError naming it
                number
``choice``      an unknown name or a non-string                     TypeError/ValueError naming it
``text``        a number or ``None`` for a string                   TypeError/ValueError naming it
``fraction``    -0.5, 1.5, NaN or a str for a number in [0, 1]      TypeError/ValueError naming it
``real``        NaN, an infinity or a str for a finite real         TypeError/ValueError naming it
==============  ==================================================  ================================

NumPy array arguments (:func:`A`, for the float64 references) are broken by ``rank``, ``dtype``
(bool, complex or str arrays), ``empty`` and ``nan``, with the same accepted outcomes.

"Naming it" means the message contains the argument's name (or one of ``Arg.aliases``) as a
word. Any other exception (RuntimeError, IndexError, ZeroDivisionError, ...) fails the test, and
so does a call that runs longer than a few seconds or asks for more than 2 GiB of memory (a
limit on the address space stops it before it can harm the machine).
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import math
import pkgutil
import re
import resource
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from hypothesis import strategies as st

EXAMPLES = 25  # examples per spec: about two per (argument, corruption) pair of a typical spec
HEAVY = 10  # for specs whose call trains or runs a model
HUGE = 10**9
TIME_LIMIT_S = 8.0
EXTRA_MEMORY = 3 << 30  # bytes of address space a call may add


def _warm_up() -> None:
    """Run, once and unguarded, the error paths that import big modules lazily (sympy, dynamo,
    triton for meta tensors), so that no import happens under the memory limit of :func:`guarded`
    (a failed import would leave a half-initialised module behind for every later test)."""
    meta, cpu = torch.ones(3, 3, device="meta"), torch.ones(3, 3)
    ops = [lambda: meta & cpu.bool(), lambda: meta + cpu, lambda: meta @ cpu, lambda: cpu @ meta,
           lambda: torch.where(cpu > 0, meta, cpu), lambda: meta.item(), lambda: float(meta.sum()),
           lambda: torch.cat([meta, cpu]), lambda: meta[cpu.bool()], lambda: torch.nn.functional.linear(meta, cpu),
           lambda: (meta > 0).any().item(), lambda: torch.stack([meta, cpu]), lambda: meta.tolist()]
    for op in ops:
        with contextlib.suppress(Exception):
            op()
    with contextlib.suppress(ImportError):
        import triton  # noqa: F401


_warm_up()


# ---- how to call a function ---------------------------------------------------------------------

@dataclass
class Arg:
    """One argument: its valid value (a factory, so every example gets fresh tensors) and its kind.

    kind: ``"tensor"`` (float), ``"index"`` (integer tensor with values in ``[low, high)``),
    ``"bool_tensor"``, ``"int"`` (``minimum``; ``huge`` if a huge value must be refused or
    clamped), ``"positive"`` (a finite number > 0, or >= 0 with ``allow_zero``), ``"choice"``
    (one of ``choices``), ``"other"`` (passed as is, never broken). For tensors, ``rank`` is
    ``(min, max)`` (``max=None``: any number of leading batch dims), ``nan`` says what a NaN
    must do (``"propagate"``: NaN in the output or an error; ``"any"``: any result or an error,
    for outputs that are indices, masks or counts), and ``empty=False`` skips the empty case
    (an empty value is meaningless and refused by a check tested elsewhere).
    """

    value: Callable[[], object]
    kind: str = "tensor"
    rank: tuple[int, int | None] | None = None
    minimum: int = 0
    huge: bool = False
    allow_zero: bool = False
    choices: tuple = ()
    low: int = 0
    high: int = 0
    nan: str = "propagate"
    empty: bool = True
    meta: bool = True
    aliases: tuple[str, ...] = ()
    optional: bool = False  # None is a valid value (not a "choice" corruption)


@dataclass
class Spec:
    """A public callable and its arguments, all by keyword unless ``positional`` names them.

    ``call`` turns the built keyword arguments into the call (default ``fn(**kwargs)``); a class's
    spec builds the object in ``call`` and then calls its ``forward``.
    """

    name: str
    fn: Callable
    args: dict[str, Arg]
    call: Callable[[Callable, dict], object] | None = None
    positional: tuple[str, ...] = ()
    skip: dict[str, str] = field(default_factory=dict)  # "how" or "arg:how" -> why it does not apply
    examples: int | None = None  # hypothesis examples for this spec (default EXAMPLES; HEAVY for slow calls)

    def invoke(self, kwargs: dict) -> object:
        if self.call is not None:
            return self.call(self.fn, kwargs)
        pos = [kwargs.pop(n) for n in self.positional]
        return self.fn(*pos, **kwargs)


def T(*shape: int, dtype: torch.dtype = torch.float64, seed: int = 0, scale: float = 1.0, **kw) -> Arg:
    """A float tensor argument of ``shape`` (random normal)."""
    kw.setdefault("rank", (len(shape), len(shape)))

    def make() -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return torch.randn(*shape, generator=g, dtype=torch.float64).mul(scale).to(dtype)

    return Arg(make, "tensor", **kw)


def U(*shape: int, low: float = 0.0, high: float = 1.0, dtype: torch.dtype = torch.float64, seed: int = 0,
      **kw) -> Arg:
    """A float tensor argument of ``shape``, uniform in ``[low, high)`` (images, probabilities)."""
    kw.setdefault("rank", (len(shape), len(shape)))

    def make() -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return (low + (high - low) * torch.rand(*shape, generator=g, dtype=torch.float64)).to(dtype)

    return Arg(make, "tensor", **kw)


def Idx(*shape: int, high: int, low: int = 0, seed: int = 0, **kw) -> Arg:
    """An integer (int64) tensor of ``shape`` with entries in ``[low, high)``."""
    kw.setdefault("rank", (len(shape), len(shape)))
    kw.setdefault("nan", "any")

    def make() -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return torch.randint(low, high, shape, generator=g)

    return Arg(make, "index", low=low, high=high, **kw)


def A(*shape: int, seed: int = 0, **kw) -> Arg:
    """A NumPy float64 array argument of ``shape`` (random normal), for the NumPy references."""
    kw.setdefault("rank", (len(shape), len(shape)))
    return Arg(lambda: np.random.default_rng(seed).normal(size=shape), "array", **kw)


def B(make: Callable[[], torch.Tensor], **kw) -> Arg:
    """A bool tensor argument (a mask) made by ``make``."""
    kw.setdefault("nan", "any")
    return Arg(make, "bool_tensor", **kw)


def Int(value: int, minimum: int = 1, *, huge: bool = False, **kw) -> Arg:
    """An int argument ``>= minimum``; ``huge`` if a size far beyond the input must be refused or clamped."""
    return Arg(lambda: value, "int", minimum=minimum, huge=huge, **kw)


def P(value: float, *, allow_zero: bool = False, **kw) -> Arg:
    """A finite positive (or non-negative) number."""
    return Arg(lambda: value, "positive", allow_zero=allow_zero, **kw)


def C(value: str, choices: tuple[str, ...], **kw) -> Arg:
    """One of a few names."""
    return Arg(lambda: value, "choice", choices=choices, **kw)


def Text(value: str, **kw) -> Arg:
    """A string argument (a sentence, a path): breaking it passes a number or ``None``."""
    return Arg(lambda: value, "text", **kw)


def Fraction(value: float, *, closed: bool = False, **kw) -> Arg:
    """A number in ``(0, 1)`` (``[0, 1]`` with ``closed``): broken by -0.5, 1.5, NaN and a str."""
    return Arg(lambda: value, "fraction", allow_zero=closed, **kw)


def Real(value: float, **kw) -> Arg:
    """Any finite real number: broken by NaN, inf and a str."""
    return Arg(lambda: value, "real", **kw)


def Keep(value: object) -> Arg:
    """Passed as is, never broken (a model, a callable, a flag)."""
    return Arg(value if callable(value) and not isinstance(value, type) else (lambda: value), "other")


def fresh(value: object) -> Arg:
    """Like :func:`Keep`, but ``value`` is a factory called for every example (a fresh model)."""
    return Arg(value, "other")


def module(cls: type, init: dict[str, Arg], forward: dict[str, Arg], *, name: str | None = None,
           positional: tuple[str, ...] = (), build: Callable[[dict], object] | None = None,
           skip: dict[str, str] | None = None) -> Spec:
    """A spec for an ``nn.Module``: constructor arguments (prefixed ``init.``) and forward arguments."""
    args = {f"init.{n}": a for n, a in init.items()} | dict(forward)

    def call(_fn: Callable, kwargs: dict) -> object:
        ctor = {n[5:]: v for n, v in kwargs.items() if n.startswith("init.")}
        fw = {n: v for n, v in kwargs.items() if not n.startswith("init.")}
        obj = cls(**ctor) if build is None else build(ctor)
        pos = [fw.pop(n) for n in positional]
        return obj(*pos, **fw)

    return Spec(name or cls.__name__, cls, args, call=call, skip=dict(skip or {}))


# ---- breaking one argument -------------------------------------------------------------------------

def corruptions(arg: Arg) -> list[str]:
    """The ways ``arg`` can be broken (see the module docstring)."""
    if arg.kind == "array":
        out = ["dtype", "empty", "nan"] if arg.empty else ["dtype", "nan"]
        if arg.rank is None or arg.rank[0] > 0 or arg.rank[1] is not None:
            out.insert(0, "rank")
        return out
    if arg.kind in ("tensor", "index", "bool_tensor"):
        out = ["dtype", "numpy", "list"]
        if arg.rank is None or arg.rank[0] > 0 or arg.rank[1] is not None:
            out.insert(0, "rank")
        if arg.meta:
            out.append("meta")
        if arg.empty:
            out.append("empty")
        if arg.kind == "tensor":
            out.append("nan")
        if arg.kind == "index":
            out.append("range")
        return out
    if arg.kind == "int":
        return ["int", "huge"] if arg.huge else ["int"]
    if arg.kind == "positive":
        return ["number"]
    if arg.kind == "choice":
        return ["choice"]
    if arg.kind == "text":
        return ["text"]
    if arg.kind == "fraction":
        return ["fraction"]
    if arg.kind == "real":
        return ["real"]
    return []


@st.composite
def broken_value(draw: st.DrawFn, arg: Arg, how: str) -> tuple[object, str]:
    """A bad value for ``arg`` broken ``how``, and the outcome rule (``"error"`` or ``how``)."""
    if arg.kind == "array":
        return _broken_array(draw, arg, how)
    if how in ("rank", "dtype", "numpy", "list", "meta", "empty", "nan", "range"):
        x = arg.value()
        assert isinstance(x, torch.Tensor), "tensor kinds need a tensor value"
        if how == "rank":
            lo, hi = arg.rank if arg.rank is not None else (x.dim(), x.dim())
            options = []
            if lo is not None and lo > 0:
                options.append("fewer")
            if hi is not None:
                options.append("more")
            if not options:
                raise AssertionError("a tensor argument without a rank limit cannot be broken by rank")
            kind = draw(st.sampled_from(options))
            if kind == "fewer":
                y = x  # lo - 1 dims: index away leading dims (a 0-d tensor for lo = 1)
                while y.dim() > lo - 1:
                    y = y[0]
                return y.clone(), "error"
            y = x  # hi + 1 dims: new leading dims of size 3
            while y.dim() <= hi:
                y = y.unsqueeze(0).expand(3, *y.shape)
            return y.clone(), "error"
        if how == "dtype":
            if arg.kind == "index":
                return x.to(draw(st.sampled_from([torch.float32, torch.float64]))), "error"
            if arg.kind == "bool_tensor":
                return x.to(draw(st.sampled_from([torch.float32, torch.int64, torch.uint8]))), "dtype_mask"
            dtype = draw(st.sampled_from([torch.int64, torch.int32, torch.bool, torch.complex64]))
            return (x.to(dtype) if dtype != torch.complex64 else x.to(torch.complex64)), "error"
        if how == "numpy":
            return x.numpy(), "error"
        if how == "list":
            return x.tolist(), "error"
        if how == "meta":
            return x.to("meta"), "meta"
        if how == "empty":
            if x.dim() == 0:
                return x, "skip"
            dim = draw(st.integers(0, x.dim() - 1))
            return x.narrow(dim, 0, 0).clone(), "empty"
        if how == "nan":
            if x.numel() == 0:
                return x, "skip"
            y = x.clone()
            y.view(-1)[draw(st.integers(0, x.numel() - 1))] = float("nan")
            return y, "nan" if arg.nan == "propagate" else "nan_any"
        if how == "range":
            y = x.clone()
            if y.numel() == 0:
                return y, "skip"
            i = draw(st.integers(0, y.numel() - 1))
            y.view(-1)[i] = draw(st.sampled_from([arg.low - 1, arg.high, arg.high + 5]))
            return y, "error"
    if how == "int":
        options = [arg.minimum - 1, float(arg.value()), "3", True]
        if arg.minimum > -(10**6):
            options.append(arg.minimum - 7)
        return draw(st.sampled_from(options)), "error"
    if how == "huge":
        return HUGE, "huge"
    if how == "number":
        bad = [-1.0, float("nan"), float("inf"), "1.0"]
        if not arg.allow_zero:
            bad.append(0.0)
        return draw(st.sampled_from(bad)), "error"
    if how == "text":
        return draw(st.sampled_from([3, None] if not arg.optional else [3, 2.5])), "error"
    if how == "real":
        return draw(st.sampled_from([float("nan"), float("inf"), float("-inf"), "1.0"])), "error"
    if how == "fraction":
        return draw(st.sampled_from([-0.5, 1.5, float("nan"), "0.5"])), "error"
    if how == "choice":
        return draw(st.sampled_from(["foo", 3] if arg.optional else ["foo", 3, None])), "error"
    raise AssertionError(how)


def _broken_array(draw: st.DrawFn, arg: Arg, how: str) -> tuple[object, str]:
    """:func:`broken_value` for a NumPy array argument."""
    x = np.asarray(arg.value())
    if how == "rank":
        lo, hi = arg.rank if arg.rank is not None else (x.ndim, x.ndim)
        options = (["fewer"] if lo is not None and lo > 0 else []) + (["more"] if hi is not None else [])
        if draw(st.sampled_from(options)) == "fewer":
            y = x
            while y.ndim > lo - 1:
                y = y[0]
            return np.array(y), "error"
        y = x
        while y.ndim <= hi:
            y = np.broadcast_to(y[None], (3, *y.shape))
        return np.array(y), "error"
    if how == "dtype":
        kind = draw(st.sampled_from(["bool", "complex", "str"]))
        return {"bool": x > 0, "complex": x + 1j, "str": x.astype(str)}[kind], "error"
    if how == "empty":
        if x.ndim == 0:
            return x, "skip"
        dim = draw(st.integers(0, x.ndim - 1))
        return np.take(x, np.arange(0), axis=dim), "empty"
    if how == "nan":
        y = x.astype(np.float64, copy=True)
        y.flat[draw(st.integers(0, y.size - 1))] = np.nan
        return y, "nan" if arg.nan == "propagate" else "nan_any"
    raise AssertionError(how)


# ---- running one call safely ------------------------------------------------------------------------

class CallTimeoutError(Exception):
    pass


@contextlib.contextmanager
def guarded(seconds: float = TIME_LIMIT_S, extra_bytes: int = EXTRA_MEMORY) -> Iterator[None]:
    """Stop a call that runs past ``seconds`` or grows the address space by more than ``extra_bytes``."""

    def on_alarm(signum, frame):
        raise CallTimeoutError(f"the call ran longer than {seconds} s")

    old_handler = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as f:
        vm = int(f.read().split()[0]) * resource.getpagesize()
    limit = vm + extra_bytes if hard == resource.RLIM_INFINITY else min(hard, vm + extra_bytes)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler)


def _names_argument(message: str, names: tuple[str, ...]) -> bool:
    return any(re.search(rf"(?<![\w.]){re.escape(n)}(?!\w)", message) for n in names)


def _float_tensors(x: object) -> Iterator[torch.Tensor]:
    if isinstance(x, torch.Tensor):
        if x.is_floating_point() or x.is_complex():
            yield x
    elif isinstance(x, np.ndarray):
        if x.dtype.kind in "fc":
            yield torch.from_numpy(np.ascontiguousarray(x))
    elif isinstance(x, (tuple, list)):
        for y in x:
            yield from _float_tensors(y)
    elif isinstance(x, dict):
        for y in x.values():
            yield from _float_tensors(y)
    elif isinstance(x, float):
        yield torch.tensor(x)
    elif hasattr(x, "__dataclass_fields__"):
        for n in x.__dataclass_fields__:
            yield from _float_tensors(getattr(x, n))


def _has_nan(x: object) -> bool:
    return any(bool(torch.isnan(t).any()) for t in _float_tensors(x) if t.device.type != "meta")


def check_outcome(spec: Spec, arg_name: str, arg: Arg, how: str, rule: str, kwargs: dict) -> None:
    """Call ``spec`` with ``kwargs`` (one argument broken) and assert the outcome ``rule`` allows."""
    names = (arg_name.removeprefix("init."), *arg.aliases)
    where = f"{spec.name}({arg_name}={how})"
    try:
        with guarded():
            result = spec.invoke(dict(kwargs))
    except (TypeError, ValueError) as err:
        msg = str(err)
        assert _names_argument(msg, names), f"{where}: {type(err).__name__} does not name {names}: {msg}"
        return
    except CallTimeoutError as err:
        raise AssertionError(f"{where}: {err}") from None
    except MemoryError as err:
        raise AssertionError(f"{where}: asked for too much memory ({err})") from None
    except Exception as err:
        raise AssertionError(f"{where}: raised {type(err).__name__}: {str(err)[:300]}") from err
    if rule == "error":
        raise AssertionError(f"{where}: accepted the bad value and returned {type(result).__name__}")
    if rule == "dtype_mask":
        raise AssertionError(f"{where}: accepted a mask of another dtype (a bool mask is required)")
    if rule == "empty":
        assert not _has_nan(result), f"{where}: an empty input gave NaN"
    if rule == "nan":
        assert _has_nan(result), f"{where}: a NaN in the input vanished from the output"


def run_example(spec: Spec, data: st.DataObject) -> None:
    """One hypothesis example: break one argument of ``spec`` one way and check the outcome."""
    options = [(n, how) for n, a in spec.args.items() for how in corruptions(a)
               if how not in spec.skip and f"{n}:{how}" not in spec.skip]
    if not options:
        raise AssertionError(f"{spec.name}: nothing to break (give its arguments kinds)")
    name, how = data.draw(st.sampled_from(options), label="argument, corruption")
    arg = spec.args[name]
    bad, rule = data.draw(broken_value(arg, how), label="bad value")
    if rule == "skip":
        return
    kwargs = {n: (bad if n == name else a.value()) for n, a in spec.args.items()}
    check_outcome(spec, name, arg, how, rule, kwargs)


def breakable(specs: list[Spec]) -> list[str]:
    """Names of the specs with at least one argument that can be broken (the others only run validly)."""
    return [s.name for s in specs if any(c not in s.skip and f"{n}:{c}" not in s.skip
                                        for n, a in s.args.items() for c in corruptions(a))]


def check_spec(spec: Spec) -> None:
    """Run the property test of one spec with its own number of examples (the rest of the settings
    come from the loaded hypothesis profile, e.g. the derandomised ``ci`` one)."""
    from hypothesis import given, settings

    @settings(max_examples=spec.examples or EXAMPLES)
    @given(data=st.data())
    def bad_input(data: st.DataObject) -> None:
        run_example(spec, data)

    bad_input()


def heavy(spec: Spec) -> Spec:
    """Mark a spec whose every call trains or runs a model: fewer examples."""
    spec.examples = HEAVY
    return spec


def run_valid(spec: Spec) -> object:
    """The spec's valid call must work (else the table is wrong, not the function)."""
    with guarded():
        return spec.invoke({n: a.value() for n, a in spec.args.items()})


# ---- which callables are public ------------------------------------------------------------------

def public_callables(package: str) -> dict[str, Callable]:
    """Every public function and class of ``package``'s modules: a module's ``__all__`` where it has
    one, else the functions and classes it defines whose names do not start with ``_``."""
    pkg = importlib.import_module(package)
    found: dict[str, Callable] = {}
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{package}.{info.name}")
        names = getattr(mod, "__all__", None)
        if names is None:
            names = [n for n, o in vars(mod).items() if not n.startswith("_")
                     and getattr(o, "__module__", None) == mod.__name__]
        for n in names:
            obj = getattr(mod, n)
            if inspect.isfunction(obj) or inspect.isclass(obj):
                found[f"{info.name}.{n}"] = obj
    return found


def describe(specs: list[Spec]) -> str:
    """One line per spec: name, arguments and the corruptions tried (for the notes)."""
    lines = []
    for s in specs:
        cs = sum(len([c for c in corruptions(a) if c not in s.skip and f"{n}:{c}" not in s.skip])
                 for n, a in s.args.items())
        lines.append(f"{s.name}: {len(s.args)} args, {cs} (argument, corruption) pairs")
    return "\n".join(lines)


def finite(x: float) -> bool:
    return isinstance(x, float) and math.isfinite(x)


__all__ = ["A", "Arg", "B", "C", "Fraction", "Idx", "Int", "Keep", "P", "Real", "Spec", "T", "Text", "U", "breakable",
           "check_outcome", "check_spec", "corruptions", "describe", "fresh", "heavy", "module", "np",
           "public_callables", "run_example", "run_valid"]


def table_tests(specs: list[Spec], callables: list[str] | dict[str, Callable], not_tabled: dict | set, *,
                test_file: str, fixtures: tuple[str, ...] = ()) -> tuple[Callable, ...]:
    """The four tests every bad-input table runs, for a test module to bind at its top level::

        (test_every_public_callable_has_a_spec, test_the_valid_call_works,
         test_bad_input_is_refused_by_name_or_documented, test_table_summary) = table_tests(...)

    ``callables`` are the public names the table must cover (a spec named ``f[variant]`` covers
    ``f``), ``not_tabled`` the ones left out with a reason, ``fixtures`` pytest fixtures the calls
    need (e.g. a process group).
    """
    import pytest

    by_name = {s.name: s for s in specs}
    uses = pytest.mark.usefixtures(*fixtures) if fixtures else (lambda f: f)

    def test_every_public_callable_has_a_spec() -> None:
        names = {s.name.split("[")[0] for s in specs}
        missing = [n for n in callables if n not in names and n not in not_tabled]
        assert not missing, f"add a Spec to {test_file} for {missing}"

    @uses
    @pytest.mark.parametrize("name", list(by_name))
    def test_the_valid_call_works(name: str) -> None:
        run_valid(by_name[name])

    @uses
    @pytest.mark.parametrize("name", breakable(specs))
    def test_bad_input_is_refused_by_name_or_documented(name: str) -> None:
        check_spec(by_name[name])

    def test_table_summary() -> None:
        assert len(describe(specs).splitlines()) == len(specs)

    return (test_every_public_callable_has_a_spec, test_the_valid_call_works,
            test_bad_input_is_refused_by_name_or_documented, test_table_summary)
