"""Inference engines behind one declared interface (``Engine``): ``window``, ``step`` and ``sequence``.

- TFLite: ai-edge-litert (preferred) or tflite-runtime, both through signature
  runners ``window``, ``step`` and ``sequence`` of the same file.
- ONNX: ONNX Runtime, one graph: the sequence form, called as the window and step forms too.

Every engine has ``window``; ``step`` and ``sequence`` (any number of tokens from a state) where it says so
(``has_step``, ``has_sequence``: every format 2 file has both), so that a context of n words costs n steps.
The Keras model in training (``nextword.train.model.KerasEngine``) is an engine with the window form only.

Only files that ``read_model_file`` accepted (metadata present, checksum good)
reach an engine. TFLite interpreters are not thread-safe, so each engine
serialises its calls with a lock.
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
from nextword.errors import EngineError
from nextword.modelfile.contract import (
    C_OUT,
    ENGINE_EXTRAS,
    ENGINES,
    H_OUT,
    PROBS,
    SEQUENCE,
    STEP,
    TOKEN,
    TOKENS,
    WINDOW,
    C,
    H,
)
from nextword.modelfile.reader import ModelFile, read_model_file

_TFLITE_MODULES = {"ai-edge-litert": "ai_edge_litert.interpreter", "tflite-runtime": "tflite_runtime.interpreter"}


@runtime_checkable
class Engine(Protocol):
    """What every engine provides: a ``Predictor`` calls nothing else."""

    name: str
    has_step: bool       #: ``step`` works
    has_sequence: bool   #: ``sequence`` works

    def window(self, tokens: np.ndarray) -> np.ndarray:
        """(batch, window) pre-padded ids -> (batch, vocab) probabilities."""

    def step(self, token: np.ndarray, h: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(batch,) ids and (layers, batch, hidden) states -> (probs, h, c)."""

    def sequence(self, tokens: np.ndarray, h: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(batch, steps) pre-padded ids from a state -> (probs after the last, h, c)."""

    def padded_steps(self, steps: int) -> int:
        """The number of steps to run ``steps`` tokens as (masked padding up to a length the engine runs cheaper)."""

    def declared_shapes(self) -> dict[tuple[str, str], tuple[int | None, ...]]:
        """(form, tensor name) -> the shape the graph declares (None: any); empty where nothing is declared."""


def installed_engines(fmt: str) -> list[str]:
    return [name for name in ENGINES[fmt] if _available(name)]


def _available(name: str) -> bool:
    module = _TFLITE_MODULES.get(name, "onnxruntime")
    try:
        return importlib.util.find_spec(module.split(".")[0]) is not None
    except (ImportError, ValueError):
        return False


def _failed(engine: str, err: Exception) -> EngineError:
    """An inference that fails inside the engine is an EngineError: a file that passed every check at load can
    still hold a graph that fails on some input (a damaged, re-signed file); it must not escape untyped.
    (A try/except at each call, not a context manager: this is the hot path of every suggestion.)"""
    detail = " ".join(str(err).split())[:200]
    return EngineError(f"{engine} failed to run the model ({type(err).__name__}: {detail}); the file is damaged "
                       "or was edited after export: export it again")


def _allocated_steps(steps: int) -> int:
    """The step count a TFLite sequence call runs for a context of ``steps`` ids, pre-padded (the padding is
    masked: the state passes through unchanged). A new length re-allocates the subgraph (~18 us on the ptb
    preset's int8 file) while a padding step costs ~4.5 us, so lengths share a few allocations: exact up to
    6, then even counts up to 16, then multiples of 4 (measured against other sets: docs/benchmarks.md)."""
    if steps <= 6:
        return steps
    return steps + steps % 2 if steps <= 16 else -(-steps // 4) * 4


class _SignatureCall:
    """One signature of a TFLite interpreter, called like its ``SignatureRunner`` but re-allocated only when
    an input's shape changes.

    The runner resizes every input and re-allocates the subgraph on each call: 13-20 us of a 50 us
    suggestion on the ptb preset's int8 file (docs/benchmarks.md). The same wrapper calls the runner makes
    are made here, minus the ones that change nothing. Both TFLite packages (tflite-runtime 2.14,
    ai-edge-litert) keep them on the runner; a version that does not is called through the runner itself.
    """

    def __init__(self, runner) -> None:
        self.runner = runner
        try:
            self._wrapper = runner._interpreter_wrapper
            self._subgraph = int(runner._subgraph_index)
            self._inputs = dict(runner._inputs)
            self._outputs = dict(runner._outputs)
        except (AttributeError, TypeError, ValueError):
            self._wrapper = None
        self._shapes: dict[str, tuple[int, ...]] = {}  # input shapes the subgraph is allocated for

    def __call__(self, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        if self._wrapper is None:
            return self.runner(**inputs)
        wrapper, subgraph = self._wrapper, self._subgraph
        try:
            if any(self._shapes.get(name) != value.shape for name, value in inputs.items()):
                self._shapes = {}  # until the allocation below succeeds
                for name, value in inputs.items():
                    wrapper.ResizeInputTensor(self._inputs[name], np.array(value.shape, np.int32), False, subgraph)
                wrapper.AllocateTensors(subgraph)
                self._shapes = {name: value.shape for name, value in inputs.items()}
            for name, value in inputs.items():
                wrapper.SetTensor(self._inputs[name], value, subgraph)
            wrapper.Invoke(subgraph)
            return {name: wrapper.GetTensor(index, subgraph) for name, index in self._outputs.items()}  # copies
        except Exception:
            self._shapes = {}  # whatever failed, the next call resizes and allocates afresh
            raise


class TFLiteEngine:
    def __init__(self, model: ModelFile, name: str, threads: int | None = None) -> None:
        self.name = name
        interpreter_class = importlib.import_module(_TFLITE_MODULES[name]).Interpreter
        try:
            self._interpreter = interpreter_class(model_content=model.data, num_threads=threads)
            signatures = self._interpreter.get_signature_list()
            self._window = _SignatureCall(self._interpreter.get_signature_runner(WINDOW))
            self._step = _SignatureCall(self._interpreter.get_signature_runner(STEP)) if STEP in signatures else None
            self._sequence = (_SignatureCall(self._interpreter.get_signature_runner(SEQUENCE))
                              if SEQUENCE in signatures else None)
        except (ValueError, RuntimeError) as err:
            message = " ".join(str(err).split())
            hint = ""
            if "opcode" in message or "op for builtin" in message:
                hint = (f"; {name} is too old for this file's ops: install ai-edge-litert "
                        "(pip install \"nextword[litert]\") or use the float16/float32 file")
            raise EngineError(f"{name} cannot load {model.path.name}: {message[:300]}{hint}") from None
        self._lock = threading.Lock()

    @property
    def has_step(self) -> bool:
        return self._step is not None

    @staticmethod
    def padded_steps(steps: int) -> int:
        """How many steps to run a context of ``steps`` ids for (more only by masked padding)."""
        return _allocated_steps(steps)

    @property
    def has_sequence(self) -> bool:
        return self._sequence is not None

    def io_names(self) -> dict[str, tuple[list[str], list[str]]]:
        """Form -> (input names, output names), as the engine sees them."""
        return {form: (sorted(sig["inputs"]), sorted(sig["outputs"]))
                for form, sig in self._interpreter.get_signature_list().items()}

    def declared_shapes(self) -> dict[tuple[str, str], tuple[int | None, ...]]:
        """(form, tensor name) -> shape as the graph declares it, None for a dynamic dimension."""
        shapes = {}
        for form, runner in ((WINDOW, self._window), (STEP, self._step), (SEQUENCE, self._sequence)):
            if runner is None:
                continue
            for details in (runner.runner.get_input_details(), runner.runner.get_output_details()):
                for name, detail in details.items():
                    signature = detail.get("shape_signature", detail.get("shape"))
                    shapes[(form, name)] = tuple(int(d) if int(d) >= 0 else None for d in signature)
        return shapes

    def window(self, tokens: np.ndarray) -> np.ndarray:
        with self._lock:
            try:
                return self._window(**{TOKENS: np.ascontiguousarray(tokens, np.int32)})[PROBS]
            except Exception as err:  # noqa: BLE001 - engines raise their own types (RuntimeError ...)
                raise _failed(self.name, err) from None

    def step(self, token: np.ndarray, h: np.ndarray, c: np.ndarray):
        with self._lock:
            try:
                out = self._step(**{TOKEN: np.ascontiguousarray(token, np.int32),
                                    H: np.ascontiguousarray(h, np.float32), C: np.ascontiguousarray(c, np.float32)})
            except Exception as err:  # noqa: BLE001
                raise _failed(self.name, err) from None
        return out[PROBS], out[H_OUT], out[C_OUT]

    def sequence(self, tokens: np.ndarray, h: np.ndarray, c: np.ndarray):
        """(batch, steps) tokens from state h, c; the subgraph is resized when ``steps`` changes."""
        with self._lock:
            try:
                out = self._sequence(**{TOKENS: np.ascontiguousarray(tokens, np.int32),
                                        H: np.ascontiguousarray(h, np.float32), C: np.ascontiguousarray(c, np.float32)})
            except Exception as err:  # noqa: BLE001
                raise _failed(self.name, err) from None
        return out[PROBS], out[H_OUT], out[C_OUT]


class OnnxEngine:
    """One ONNX graph, the sequence form; the window and step forms are calls of it (``contract.FORMS``)."""

    name = "onnxruntime"
    has_step = has_sequence = True

    @staticmethod
    def padded_steps(steps: int) -> int:
        return steps  # ONNX Runtime plans each run anyway: padding would only add steps

    def __init__(self, model: ModelFile, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        options.log_severity_level = 3
        # The int8 file's weights are int8 initializers read through DequantizeLinear. By default ONNX Runtime
        # keeps those nodes (for its QDQ kernel fusions) and dequantizes every matrix on every call; with its
        # QDQ handling off it folds them into float32 constants once, at load: the same numbers, bit for bit,
        # and a word 0.78 -> 0.27 ms on the ptb preset's int8 file (docs/benchmarks.md). Float files have no
        # such nodes.
        options.add_session_config_entry("session.disable_quant_qdq", "1")
        try:
            self._session = ort.InferenceSession(model.data, options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own exception types
            raise EngineError(f"onnxruntime cannot load {model.path.name}: {' '.join(str(err).split())[:300]}") from None
        self._state_shape = (model.config.num_layers, model.config.hidden_size)

    def declared_shapes(self) -> dict[tuple[str, str], tuple[int | None, ...]]:
        """(form, tensor name) -> shape as the graph declares it, None for a dynamic (symbolic) dimension."""
        return {(SEQUENCE, arg.name): tuple(d if isinstance(d, int) and d >= 0 else None for d in (arg.shape or ()))
                for arg in (*self._session.get_inputs(), *self._session.get_outputs())}

    def io_names(self) -> dict[str, tuple[list[str], list[str]]]:
        session = self._session
        return {SEQUENCE: (sorted(i.name for i in session.get_inputs()), sorted(o.name for o in session.get_outputs()))}

    def sequence(self, tokens: np.ndarray, h: np.ndarray, c: np.ndarray):
        try:
            return self._run(tokens, h, c)
        except Exception as err:  # noqa: BLE001 - onnxruntime raises its own types (InvalidArgument ...)
            raise _failed(self.name, err) from None

    def _run(self, tokens: np.ndarray, h: np.ndarray, c: np.ndarray):
        probs, h_out, c_out = self._session.run(
            [PROBS, H_OUT, C_OUT],
            {TOKENS: np.ascontiguousarray(tokens, np.int32), H: np.ascontiguousarray(h, np.float32),
             C: np.ascontiguousarray(c, np.float32)},
        )
        return probs, h_out, c_out

    def window(self, tokens: np.ndarray) -> np.ndarray:
        """A pre-padded window from the zero state: padding is masked, so this is the window form."""
        layers, hidden = self._state_shape
        zero = np.zeros((layers, len(tokens), hidden), np.float32)
        return self.sequence(tokens, zero, zero)[0]

    def step(self, token: np.ndarray, h: np.ndarray, c: np.ndarray):
        return self.sequence(np.asarray(token, np.int32).reshape(-1, 1), h, c)


def open_engine(model: ModelFile | str | Path, engine: str | None = None, threads: int | None = None):
    """An engine for a checked model file; ``engine`` picks one by name, else the best installed."""
    if not isinstance(model, ModelFile):
        model = read_model_file(model)
    names = ENGINES[model.format]
    if engine is not None and engine not in names:
        raise EngineError(f"engine {engine!r} cannot run {model.format} files; choose one of {', '.join(names)}")
    candidates = [engine] if engine else list(names)
    available = [name for name in candidates if _available(name)]
    if not available:
        extra = ENGINE_EXTRAS[candidates[0]]
        raise EngineError(f"no engine for {model.format} files is installed ({' or '.join(candidates)}); "
                          f"install one: pip install \"nextword[{extra}]\"")
    if model.format == "tflite":
        return TFLiteEngine(model, available[0], threads)
    return OnnxEngine(model, threads)
