"""A stride-1 unpadded convolution whose gradients are computed the fastest safe way for the device it runs on."""

from __future__ import annotations

import copy
import enum
import threading
import time

import keras
import tensorflow as tf

_STRIDES = [1, 1, 1, 1]
# Under ``"auto"`` a form other than TensorFlow's is taken only when it is faster by more than this
# fraction. Timed alone, a millisecond-sized gradient can look 20-35 % faster in one process and not in
# the next (the residual blocks' kernel gradient in bfloat16 on a 2-core Xeon), and inside a training
# step the 9-product form lost to TensorFlow's by 10 %; the wins worth having were 2x and more (the
# head's kernel gradient at 256x256: 11 ms against 21 ms; on 2 AVX2 cores TensorFlow's backward pass of
# the head took 180 ms, the forward forms a small part of it).
_MARGIN = 0.30
# Seconds a timing of one gradient's two forms aims at (at least 3 and at most 30 alternating rounds).
_BUDGET = 1.0
_ROUNDS = (3, 30)


class ConvGradient(enum.StrEnum):
    """How :func:`valid_conv2d` computes its gradients."""

    AUTO = "auto"  # for each gradient the faster form, timed at first use per shape, dtype and device
    TENSORFLOW = "tensorflow"  # TensorFlow's own: Conv2DBackpropInput and Conv2DBackpropFilter
    FORWARD = "forward"  # input gradient by a forward convolution, kernel gradient by matrix products


def _conv_gradient(value) -> ConvGradient:
    try:
        return ConvGradient(value)
    except ValueError:
        raise ValueError(
            f"gradient must be one of {[g.value for g in ConvGradient]}. Received: gradient={value!r}"
        ) from None


# The two forms of each gradient. Neither of ours is a convolution whose filter is image-sized: oneDNN's
# AVX-512 path aborts the process on such a convolution (the ResNet generator's head, 7x7 to one
# channel, at 256x256 output: ``tensor.cc Check failed: dtype() == expected_dtype`` in MklConvOp).


def _input_gradient_tensorflow(input_shape, kernel, upstream):
    return tf.raw_ops.Conv2DBackpropInput(
        input_sizes=input_shape, filter=kernel, out_backprop=upstream, strides=_STRIDES, padding="VALID"
    )


def _input_gradient_forward(input_shape, kernel, upstream):
    """The output gradient, zero-padded by ``kernel - 1``, correlated with the kernel flipped in space and
    with its in and out channels swapped (a "full" correlation)."""
    kh, kw = kernel.shape[0], kernel.shape[1]
    full = tf.pad(upstream, [[0, 0], [kh - 1, kh - 1], [kw - 1, kw - 1], [0, 0]])
    flipped = tf.transpose(tf.reverse(kernel, axis=[0, 1]), [0, 1, 3, 2])
    return tf.nn.conv2d(full, flipped, strides=1, padding="VALID")


def _kernel_gradient_tensorflow(inputs, kernel_shape, upstream):
    return tf.raw_ops.Conv2DBackpropFilter(
        input=inputs, filter_sizes=kernel_shape, out_backprop=upstream, strides=_STRIDES, padding="VALID"
    )


def _kernel_gradient_matmul(inputs, kernel_shape, upstream):
    """``dk[i, j] = sum over pixels p of inputs[p + (i, j)]^T upstream[p]`` as matrix products over the pixels.

    With fewer output than input channels (the generator's head) one product of the inputs, pixels by
    channels, with the ``kh * kw`` shifted copies of the zero-padded output gradient side by side;
    otherwise one product per kernel tap of the shifted inputs with the output gradient.
    """
    kh, kw, cin, cout = kernel_shape
    if cout < cin:
        height, width = tf.shape(inputs)[1], tf.shape(inputs)[2]
        full = tf.pad(upstream, [[0, 0], [kh - 1, kh - 1], [kw - 1, kw - 1], [0, 0]])
        taps = [full[:, kh - 1 - i:kh - 1 - i + height, kw - 1 - j:kw - 1 - j + width, :]
                for i in range(kh) for j in range(kw)]
        products = tf.matmul(
            tf.reshape(inputs, [-1, cin]), tf.reshape(tf.stack(taps, axis=3), [-1, kh * kw * cout]), transpose_a=True
        )
        return tf.transpose(tf.reshape(products, [cin, kh, kw, cout]), [1, 2, 0, 3])
    height, width = tf.shape(upstream)[1], tf.shape(upstream)[2]
    columns = tf.reshape(upstream, [-1, cout])
    taps = [tf.matmul(tf.reshape(inputs[:, i:i + height, j:j + width, :], [-1, cin]), columns, transpose_a=True)
            for i in range(kh) for j in range(kw)]
    return tf.reshape(tf.stack(taps), [kh, kw, cin, cout])


_INPUT_GRADIENTS = {"tensorflow": _input_gradient_tensorflow, "forward": _input_gradient_forward}
_KERNEL_GRADIENTS = {"tensorflow": _kernel_gradient_tensorflow, "matmul": _kernel_gradient_matmul}

# (input shape, kernel shape, dtype, device type, XLA) -> the choice under "auto" (see gradient_choices)
_CHOICES: dict[tuple, dict] = {}
_CHOICES_LOCK = threading.Lock()


def gradient_choices() -> list[dict]:
    """The gradients ``"auto"`` chose in this process, one entry per shape, dtype and device.

    Each entry has ``input_shape``, ``kernel_shape``, ``dtype``, ``device``
    (``"CPU"`` or ``"GPU"``), ``xla``, the forms chosen (``input_gradient``:
    ``"tensorflow"`` or ``"forward"``; ``kernel_gradient``: ``"tensorflow"`` or
    ``"matmul"``), and ``milliseconds``, the best time of each form (``None``
    where nothing was timed, with the ``reason`` why). JSON-serializable, in
    order of first use.
    """
    with _CHOICES_LOCK:
        return copy.deepcopy(list(_CHOICES.values()))


def _choice_key(record: dict) -> tuple:
    return (tuple(record["input_shape"]), tuple(record["kernel_shape"]), record["dtype"], record["device"],
            bool(record["xla"]))


def use_gradient_choices(records, source="gradient choices") -> None:
    """Use these recorded choices (entries of :func:`gradient_choices`) for their shapes from now on.

    "auto" chooses by timing, and two processes can time a close pair either way; the two forms differ by
    round-off, which Adam's normalized update can enlarge where a gradient is near zero. A run records its
    choices beside its checkpoints and a resumed run installs them before its first step, so resuming gives
    the weights an uninterrupted run would have had. Entries replace this process's choices for the same
    shapes; ``source`` (e.g. the file) names the records in errors.
    """
    if not isinstance(records, list):
        raise ValueError(f"{source}: expected a list of gradient choices, got {type(records).__name__}")
    parsed = {}
    for i, record in enumerate(records):
        try:
            key = _choice_key(record)
            if record["input_gradient"] not in _INPUT_GRADIENTS or record["kernel_gradient"] not in _KERNEL_GRADIENTS:
                raise ValueError(f"unknown forms {record['input_gradient']!r}, {record['kernel_gradient']!r}")
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{source}: entry {i} is not a gradient choice ({type(exc).__name__}: {exc})") from None
        parsed[key] = copy.deepcopy(record)
    with _CHOICES_LOCK:
        _CHOICES.update(parsed)


def _in_xla_context() -> bool:
    try:
        from tensorflow.python.ops import control_flow_util

        return control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())
    except Exception:  # pragma: no cover - a TensorFlow without this private helper
        return False


def _device_type(tensor) -> str:
    name = getattr(tensor, "device", "") or ""
    device_type = tf.DeviceSpec.from_string(name).device_type
    return device_type or ("GPU" if tf.config.list_logical_devices("GPU") else "CPU")


def _time_alternately(functions) -> list[float]:
    """The smallest wall time in seconds of each of ``functions`` (called in turn), after a warm-up call."""
    for function in functions:
        function().numpy()
    best = [float("inf")] * len(functions)
    rounds = done = 0
    while done < max(rounds, 1):
        for i, function in enumerate(functions):
            start = time.perf_counter()
            function().numpy()
            best[i] = min(best[i], time.perf_counter() - start)
        done += 1
        rounds = rounds or max(_ROUNDS[0], min(_ROUNDS[1], int(_BUDGET / max(sum(best), 1e-6))))
    return best


def _fetch_one(function):
    """``function`` as a graph that returns one element of its result: all is computed, little is copied."""
    return tf.function(lambda: function()[0, 0, 0, 0], autograph=False)


def _measure(input_shape, kernel_shape, dtype, device) -> dict:
    """Time both forms of both gradients eagerly on ``device`` with random tensors of these shapes."""
    output_shape = [input_shape[0], input_shape[1] - kernel_shape[0] + 1, input_shape[2] - kernel_shape[1] + 1,
                    kernel_shape[3]]
    with tf.device(f"/{device}:0"):
        # Stateless: a tf.random.Generator would be a variable, mirrored under a distribution strategy.
        inputs, kernel, upstream = (tf.cast(tf.random.stateless_normal(shape, seed=[0, i]), dtype)
                                    for i, shape in enumerate((input_shape, kernel_shape, output_shape)))
        milliseconds, chosen = {}, {}
        for half, forms, make in (
            ("input_gradient", _INPUT_GRADIENTS, lambda form: lambda: form(input_shape, kernel, upstream)),
            ("kernel_gradient", _KERNEL_GRADIENTS, lambda form: lambda: form(inputs, kernel_shape, upstream)),
        ):
            names = list(forms)
            calls = [_fetch_one(make(forms[name])) for name in names]
            seconds = dict(zip(names, _time_alternately(calls)))
            ours = names[1]
            chosen[half] = ours if seconds[ours] < (1 - _MARGIN) * seconds["tensorflow"] else "tensorflow"
            milliseconds[half] = {name: round(1000 * s, 3) for name, s in seconds.items()}
    return {**chosen, "milliseconds": milliseconds}


def _choose(inputs, kernel) -> tuple[str, str]:
    """The input and kernel gradient forms ``"auto"`` uses for this convolution (timed at first use)."""
    xla = _in_xla_context()
    key = (tuple(inputs.shape.as_list()), tuple(kernel.shape.as_list()), inputs.dtype.name, _device_type(inputs),
           xla)
    with _CHOICES_LOCK:
        if key not in _CHOICES:
            record = {"input_shape": list(key[0]), "kernel_shape": list(key[1]), "dtype": key[2], "device": key[3],
                      "xla": xla}
            reason = None
            if xla:
                reason = "XLA compiles the gradient: TensorFlow's own, not timed"
            elif not inputs.shape.is_fully_defined():
                reason = "shape not fully known: TensorFlow's own, not timed"
            else:
                try:
                    with tf.init_scope():
                        record.update(_measure(key[0], key[1], key[2], key[3]))
                except Exception as exc:  # a context where eager timing is impossible
                    reason = f"not timed ({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''})"
            if reason is not None:
                record.update(input_gradient="tensorflow", kernel_gradient="tensorflow", milliseconds=None,
                              reason=reason)
            _CHOICES[key] = record
        record = _CHOICES[key]
    return record["input_gradient"], record["kernel_gradient"]


def _with_gradient(mode: ConvGradient):
    @tf.custom_gradient
    def conv(inputs, kernel):
        outputs = tf.nn.conv2d(inputs, kernel, strides=1, padding="VALID")

        def grad(upstream):
            input_form, kernel_form = ("forward", "matmul") if mode is ConvGradient.FORWARD else _choose(inputs, kernel)
            d_inputs = _INPUT_GRADIENTS[input_form](tf.shape(inputs), kernel, upstream)
            d_kernel = _KERNEL_GRADIENTS[kernel_form](inputs, kernel.shape.as_list(), upstream)
            return d_inputs, d_kernel

        return outputs, grad

    return conv


_CUSTOM = {mode: _with_gradient(mode) for mode in (ConvGradient.AUTO, ConvGradient.FORWARD)}


def valid_conv2d(inputs, kernel, gradient=ConvGradient.AUTO):
    """``tf.nn.conv2d(inputs, kernel, 1, "VALID")`` with the gradients computed the fastest safe way.

    The values are TensorFlow's; the gradients equal TensorFlow's to float
    round-off. Each gradient has two forms:

    * input gradient: TensorFlow's ``Conv2DBackpropInput``, or the output
      gradient, zero-padded by ``kernel - 1`` on each side, convolved with the
      kernel flipped in space and with its in and out channels swapped
      (``"forward"``);
    * kernel gradient: TensorFlow's ``Conv2DBackpropFilter``, or matrix
      products over the pixels of shifted copies of the inputs or of the
      output gradient (``"matmul"``).

    No form passes an image-sized filter to a convolution (oneDNN's AVX-512
    path aborts the process on one). Which is faster depends on the shape and
    the CPU: for the ResNet generator's last 7x7 convolution (64 -> 1 channel
    at 262x262) on two AVX2 cores TensorFlow 2.21 took 0.8 to 1.1 s for each
    gradient, the forward convolution about 25 ms and the matrix products
    about 45 ms; for the stem TensorFlow's input gradient was faster; for a
    3x3 residual convolution the forms were within a few percent of each
    other (``python benchmarks/convolution.py``).

    Args:
        inputs: ``(batch, height, width, in_channels)``.
        kernel: ``(kh, kw, in_channels, out_channels)``.
        gradient: ``"auto"`` (for each gradient, the faster of TensorFlow's
            form and ours, timed on the first use of a shape, dtype and
            device in the process; TensorFlow's own under XLA or where it
            cannot be timed; see :func:`gradient_choices` and
            :func:`use_gradient_choices`), ``"tensorflow"``
            (TensorFlow's own gradient) or ``"forward"`` (the forward
            convolution and the matrix products). Defaults to `"auto"`.

    Returns:
        ``(batch, height - kh + 1, width - kw + 1, out_channels)``.
    """
    gradient = _conv_gradient(gradient)
    if gradient is ConvGradient.TENSORFLOW:
        return tf.nn.conv2d(inputs, kernel, strides=1, padding="VALID")
    return _CUSTOM[gradient](inputs, kernel)


@keras.saving.register_keras_serializable(package="mr2ct")
class ValidConv2D(keras.layers.Conv2D):
    """``keras.layers.Conv2D`` with stride 1 and no padding, trained through :func:`valid_conv2d`.

    Same weights, same outputs and the same gradients (to float round-off) as
    ``keras.layers.Conv2D(filters, kernel_size, padding="valid")``; only the
    way TensorFlow computes the gradients differs. The ResNet generator's
    convolutions that follow a reflection padding are of this kind.

    Args:
        filters: output channels.
        kernel_size: an integer or a pair.
        gradient: ``"auto"``, ``"tensorflow"`` or ``"forward"``, as in
            :func:`valid_conv2d`. Defaults to `"auto"`.
        **kwargs: any other ``keras.layers.Conv2D`` argument except strides,
            padding, dilation and groups (which must keep their defaults).
    """

    def __init__(self, filters, kernel_size, gradient=ConvGradient.AUTO, **kwargs):
        super().__init__(filters, kernel_size, **kwargs)
        required = {"strides": (1, 1), "padding": "valid", "dilation_rate": (1, 1), "groups": 1,
                    "data_format": "channels_last"}
        for name, value in required.items():
            if getattr(self, name) != value:
                raise ValueError(f"ValidConv2D needs {name}={value!r}. Received: {name}={getattr(self, name)!r}")
        self.gradient = _conv_gradient(gradient)

    def convolution_op(self, inputs, kernel):
        if keras.backend.backend() != "tensorflow":  # pragma: no cover - mr2ct runs on TensorFlow
            return super().convolution_op(inputs, kernel)
        return valid_conv2d(tf.convert_to_tensor(inputs), tf.convert_to_tensor(kernel), gradient=self.gradient)

    def get_config(self):
        config = super().get_config()
        config["gradient"] = self.gradient.value
        return config
