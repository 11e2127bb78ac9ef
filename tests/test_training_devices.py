"""Data-parallel training on two devices (IVIS_TRAINING_DEVICES): the same quality as on one.

Each fit runs in a fresh process, as several CPU devices must be made before the backend
starts: two logical CPU devices on TensorFlow, XLA's host device count on JAX. The suite runs
this file under TensorFlow; scripts/test-backend.sh runs it again under JAX.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

# Made before the backend starts: TensorFlow's logical CPU devices (JAX reads XLA_FLAGS).
FIT = r"""
import json, os, sys
import keras
if keras.backend.backend() == "tensorflow":
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import numpy as np
from sklearn.datasets import load_digits
from sklearn.manifold import trustworthiness
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import MinMaxScaler
from ivis import Ivis, load_model
from ivis.nn import devices

X, y = load_digits(return_X_y=True)
X, y = MinMaxScaler().fit_transform(X[:1792]).astype(np.float32), y[:1792]
model = Ivis(k=15, epochs=4, batch_size=128, verbose=0, random_state=0).fit(X)
distribution = devices.distribution_of(model.encoder_)
embedding = model.transform(X)
folder = os.path.join(sys.argv[1], "model")
model.save_model(folder)
reloaded = float(np.abs(load_model(folder).transform(X) - embedding).max())
model.set_params(epochs=1).fit(X)  # trained again on the devices it was built on
print(json.dumps({
    "replicas": distribution.replicas if distribution else 1,
    "devices": list(distribution.devices) if distribution else [],
    "trustworthiness": float(trustworthiness(X, embedding, n_neighbors=10)),
    "knn_accuracy": float(cross_val_score(KNeighborsClassifier(10), embedding, y, cv=3).mean()),
    "epochs": len(model.loss_history_),
    "reload_difference": reloaded,
    "warm_fit_replicas": devices.distribution_of(model.encoder_).replicas if distribution else 1,
}))
"""


def _fit(devices, folder):
    env = dict(os.environ, IVIS_TRAINING_DEVICES=str(devices), TF_CPP_MIN_LOG_LEVEL="2")
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2").strip()
    env["PYTHONPATH"] = os.pathsep.join([p for p in sys.path if p])
    folder.mkdir()
    out = subprocess.run([sys.executable, "-c", FIT, str(folder)], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_two_devices_train_as_well_as_one(tmp_path):
    one, two = _fit(1, tmp_path / "one"), _fit(2, tmp_path / "two")
    assert one["replicas"] == 1 and two["replicas"] == 2 and len(set(two["devices"])) == 2
    assert one["epochs"] == two["epochs"] == 5  # the same number of triplets (4 epochs, then 1 more)
    assert two["warm_fit_replicas"] == 2 and two["reload_difference"] < 1e-5
    assert two["trustworthiness"] > 0.75 and two["trustworthiness"] >= one["trustworthiness"] - 0.03
    assert two["knn_accuracy"] >= one["knn_accuracy"] - 0.08


def test_the_setting_is_checked():
    from ivis.nn import devices

    assert devices.requested_devices("") == 1 and devices.requested_devices(" 3 ") == 3
    assert devices.requested_devices("ALL") == "all"
    with pytest.raises(ValueError, match="IVIS_TRAINING_DEVICES='two' is not a device count"):
        devices.requested_devices("two")
    with pytest.raises(ValueError, match="asks for 64 devices"):
        devices.data_parallel("64")
    assert devices.data_parallel("1") is None


def test_batches_that_do_not_split_evenly_are_named():
    from ivis.nn import devices

    even = devices.DataParallel(("a", "b"), handle=None, batch_shards=1, even_batches=True)
    devices.check_batches(even, 1792, 128)
    with pytest.raises(ValueError, match="batch_size=128 with 1797 rows gives batches of 128 and 5 rows"):
        devices.check_batches(even, 1797, 128)
    devices.check_batches(devices.DataParallel(("a", "b"), handle=None, batch_shards=2), 1797, 128)


def test_in_batch_negatives_stay_within_each_device_share():
    from ivis.data.triplets import sample_triplets

    rng = np.random.default_rng(0)
    anchors = rng.permutation(1000)[:13]
    neighbours = rng.integers(0, 1000, (1000, 5))
    _, negatives = sample_triplets(anchors, neighbours, 1000, rng, in_batch=True, shards=2)
    first, second = negatives[:7], negatives[7:]  # shares of 7 and 6 anchors, as TensorFlow splits
    assert (first < 7).all() and (second < 6).all()
    assert (first != np.arange(7)).all() and (second != np.arange(6)).all()
