"""Data-parallel training on several devices: the one module that knows each backend's way.

Set the environment variable :data:`ENVIRONMENT` (``IVIS_TRAINING_DEVICES``) to train on
several devices of one machine: every training batch is split among them and their weight
updates are combined, so training on ``n`` devices sees the same triplets as on one.

- ``1`` or unset: one device, as always.
- an integer ``n`` of 2 or more: the first ``n`` devices (GPUs or TPUs when there are any,
  CPU devices otherwise).
- ``all``: every such device.

On TensorFlow (the default backend) the networks are built and trained under a
:class:`tf.distribute.MirroredStrategy`: each replica trains on its share of a batch (the
first ``ceil(n / replicas)`` rows to the first replica, and so on), so anchors take their
in-batch negatives from their own share (:attr:`DataParallel.batch_shards`). On JAX,
Keras's distribution API (:class:`keras.distribution.DataParallel`) shards each batch over
the devices of one global computation, so a batch is sampled as on one device; its batches
must divide evenly among the devices.
"""

import contextlib
import os
import weakref
from dataclasses import dataclass

import keras

ENVIRONMENT = "IVIS_TRAINING_DEVICES"

# One distribution per backend and device list and process: a model trained again (a warm
# fit) must train under the distribution its weights were created in.
_distributions = {}


@dataclass(frozen=True)
class DataParallel:
    """How training is spread over devices.

    Attributes
    ----------
    devices : tuple of str
        The devices, by name.
    handle : object
        The backend's object: a ``tf.distribute.MirroredStrategy`` or a
        ``keras.distribution.DataParallel``.
    batch_shards : int
        Parts of a batch that are sampled separately: one per replica on TensorFlow, where
        each replica sees only its part; 1 on JAX, where a batch is one global array.
    multi_step : bool
        Whether several training steps may run per call into the compiled step; TensorFlow
        2.21's MirroredStrategy fails on Keras's multi-step loop, so there it is one step.
    even_batches : bool
        Whether every batch must split evenly among the devices (JAX's sharded arrays).
    """

    devices: tuple
    handle: object
    batch_shards: int
    multi_step: bool = True
    even_batches: bool = False

    @property
    def replicas(self):
        """Devices a batch is split among."""
        return len(self.devices)

    def scope(self):
        """The context in which networks are built and trained on these devices."""
        return self.handle.scope()


def requested_devices(value=None):
    """The device count :data:`ENVIRONMENT` asks for: an int of 1 or more, or ``'all'``.

    Raises
    ------
    ValueError
        If the variable holds anything else.
    """
    value = os.environ.get(ENVIRONMENT, "") if value is None else value
    text = str(value).strip().lower()
    if text in ("", "1"):
        return 1
    if text == "all":
        return "all"
    if text.isdigit() and int(text) >= 1:
        return int(text)
    raise ValueError(
        f"{ENVIRONMENT}={value!r} is not a device count. Set it to a whole number of devices "
        "(1 for one device) or to 'all'."
    )


def data_parallel(value=None):
    """The :class:`DataParallel` that :data:`ENVIRONMENT` asks for, or None for one device.

    Raises
    ------
    ValueError
        If the setting is not a device count or asks for more devices than there are, or if
        the backend has no data-parallel training.
    """
    requested = requested_devices(value)
    if requested == 1:
        return None
    backend = keras.backend.backend()
    if backend not in _BACKENDS:
        raise ValueError(
            f"Training on several devices ({ENVIRONMENT}) works on the TensorFlow and JAX backends; "
            f"KERAS_BACKEND is {backend!r}. Unset {ENVIRONMENT} to train on one device."
        )
    listed, make = _BACKENDS[backend]
    available = listed()
    count = len(available) if requested == "all" else requested
    if count > len(available):
        raise ValueError(
            f"{ENVIRONMENT}={count} asks for {count} devices, but {backend} sees {len(available)}: "
            f"{', '.join(available)}. Ask for at most {len(available)}; on CPU, see docs/distributed.md "
            "for making several CPU devices."
        )
    devices = tuple(available[:count])
    if count == 1:
        return None
    key = (backend, devices)
    if key not in _distributions:
        _distributions[key] = make(devices)
    return _distributions[key]


def _tensorflow_devices():
    import tensorflow as tf

    logical = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    return [device.name for device in logical]


def _mirrored(devices):
    import tensorflow as tf

    return DataParallel(devices, tf.distribute.MirroredStrategy(list(devices)), len(devices), multi_step=False)


def _jax_devices():
    return list(keras.distribution.list_devices())


def _keras_data_parallel(devices):
    return DataParallel(devices, keras.distribution.DataParallel(devices=list(devices)), 1, even_batches=True)


# backend -> (its devices, the DataParallel over some of them)
_BACKENDS = {"tensorflow": (_tensorflow_devices, _mirrored), "jax": (_jax_devices, _keras_data_parallel)}


@contextlib.contextmanager
def training_scope(distribution):
    """``distribution``'s scope, or nothing for None (one device)."""
    if distribution is None:
        yield
        return
    with distribution.scope():
        yield


def for_fit(warm_encoder, n_rows, batch_size):
    """The distribution a fit trains under: the one ``warm_encoder`` was built under (a fit
    that continues training), else the one :data:`ENVIRONMENT` asks for; checked against the batches."""
    distribution = distribution_of(warm_encoder) if warm_encoder is not None else data_parallel()
    check_batches(distribution, n_rows, batch_size)
    return distribution


def check_batches(distribution, n_rows, batch_size):
    """Raise ``ValueError`` if ``distribution`` needs even batches and a batch does not split evenly."""
    if distribution is None or not distribution.even_batches:
        return
    replicas, last = distribution.replicas, n_rows % batch_size
    if batch_size % replicas or last % replicas:
        raise ValueError(
            f"Training on {replicas} devices with the JAX backend splits every batch evenly among them, "
            f"but batch_size={batch_size} with {n_rows} rows gives batches of {batch_size} and {last or batch_size} "
            f"rows. Choose a batch_size that is a multiple of {replicas} and leaves a last batch that is one too "
            f"(n_rows % batch_size), or train on one device ({ENVIRONMENT}=1)."
        )


# encoder -> the DataParallel its weights were created under (absent: one device).
_built_under = weakref.WeakKeyDictionary()


def remember(encoder, distribution):
    """Record that ``encoder`` was built under ``distribution`` (None: one device)."""
    if distribution is not None:
        _built_under[encoder] = distribution


def distribution_of(encoder):
    """The distribution ``encoder`` was built under, for training it again; None for one device.

    A model loaded from a folder (or unpickled) was built on one device and trains on one.
    """
    return _built_under.get(encoder)
