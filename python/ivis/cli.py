"""The ``ivis`` command line: embed a data file (or the built-in digits) and plot it.

Examples
--------
ivis                                   # embeds scikit-learn's digits, writes ivis-output/
ivis cells.csv --label-column type     # CSV with a label column to colour the plot
ivis data.h5:X --shuffle-mode batch    # an HDF5 dataset, streamed from disk
ivis new.csv --load-model model.ivis   # embed new data with a saved model
ivis export model.ivis model.onnx      # export a saved model to ONNX (docs/deployment.md)

Only the standard library is imported before the arguments are parsed, so ``ivis --help``
answers at once; NumPy, scikit-learn and Keras load when there is work to do.
"""

import argparse
import os
import sys
import tempfile

DEFAULT_OUTPUT_DIR = "ivis-output"
CHECKPOINT_NAME = "checkpoint.ivis"
# Options a checkpoint fixes: a resumed run keeps the parameters it was trained with.
_CHECKPOINT_PARAMS = (
    "embedding_dims", "k", "distance", "batch_size", "epochs", "n_epochs_without_progress", "early_stopping", "model",
    "knn_distance_metric", "n_trees", "negative_sampling", "supervision_metric", "supervision_weight",
    "validation_fraction", "learning_rate", "weight_decay", "random_state",
)


def build_parser():
    from ivis._params import NEGATIVE_SAMPLING, NEIGHBOUR_SEARCHES, NETWORK_NAMES, STOPPING_RULES  # no Keras: --help stays fast

    parser = argparse.ArgumentParser(
        prog="ivis",
        description=(
            "Reduce the dimensionality of a dataset with ivis and write the embedding and a scatter "
            "plot. Without an input file, embeds scikit-learn's handwritten digits."
        ),
        epilog="To export a saved model to ONNX: ivis export MODEL_FOLDER OUT.onnx (see ivis export --help).",
    )
    parser.add_argument(
        "input", nargs="?",
        help="data file: .csv, .tsv, .npy, or an HDF5 dataset as FILE.h5:DATASET (default: built-in digits)",
    )
    parser.add_argument("-o", "--output-dir", default=DEFAULT_OUTPUT_DIR, help="folder for the outputs (default: %(default)s)")
    parser.add_argument("--format", choices=("csv", "npy"), default="csv", help="embedding file format (default: %(default)s)")
    parser.add_argument("--label-column", help="CSV/TSV column holding labels: colours the plot, excluded from the features")
    parser.add_argument("--supervised", action="store_true", help="train with the label column as targets")
    parser.add_argument("--dataset", help="dataset name inside an HDF5 file (alternative to FILE.h5:DATASET)")
    parser.add_argument("--no-plot", action="store_true", help="do not write the PNG plot")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files and model folders")
    parser.add_argument("--save-model", metavar="DIR", help="save the trained model to this folder")
    parser.add_argument("--load-model", metavar="DIR", help="embed the input with a saved model instead of training")
    parser.add_argument("--checkpoint-dir", metavar="DIR",
                        help=f"while training, keep a resumable checkpoint in DIR/{CHECKPOINT_NAME} (the latest only)")
    parser.add_argument("--checkpoint-every", metavar="N", type=int, default=None,
                        help="epochs between checkpoints (default: 1)")
    parser.add_argument("--resume", metavar="CHECKPOINT",
                        help="continue training a checkpoint (or saved model) on the input, with its saved parameters; "
                             "pass the same --shuffle-mode as before")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")

    model = parser.add_argument_group("model parameters (see ivis.Ivis)")
    model.add_argument("--embedding-dims", type=int, default=2)
    model.add_argument("-k", "--k", type=int, default=None, help="neighbours per point (default: 15 for the built-in data, else 150)")
    model.add_argument("--distance", default="pn")
    model.add_argument("--batch-size", type=int, default=128)
    model.add_argument("--epochs", type=int, default=1000)
    model.add_argument("--n-epochs-without-progress", type=int, default=20)
    model.add_argument("--early-stopping", choices=STOPPING_RULES, default="loss", help="stop on the loss or the embedding")
    model.add_argument("--model", default="szubert", choices=NETWORK_NAMES)
    model.add_argument("--knn-distance-metric", default="angular")
    model.add_argument("--n-trees", type=int, default=50)
    model.add_argument("--neighbour-search", choices=NEIGHBOUR_SEARCHES, default="annoy",
                       help="'clustered': exact distances within nearby clusters, faster on wide in-memory data "
                            "(default: %(default)s)")
    model.add_argument("--no-precompute", action="store_true", help="query neighbours per batch instead of precomputing them")
    model.add_argument("--shuffle-mode", choices=("all", "batch", "none"), default="all",
                       help="'batch' reads contiguous batches: much faster for HDF5 on disk")
    model.add_argument("--negative-sampling", choices=NEGATIVE_SAMPLING, default="in_batch",
                       help="negatives from the other anchors of a batch (faster) or from all rows (default: %(default)s)")
    model.add_argument("--supervision-metric", default="sparse_categorical_crossentropy")
    model.add_argument("--supervision-weight", type=float, default=0.5)
    model.add_argument("--validation-fraction", type=float, default=None,
                       help="with --supervised: share of labelled rows held out for early stopping")
    model.add_argument("--learning-rate", type=float, default=0.001)
    model.add_argument("--weight-decay", type=float, default=0.0, help="decoupled weight decay of the hidden layers")
    model.add_argument("--random-state", type=int, default=None, help="seed for repeatable results")
    return parser


EXPORT_COMMAND = "export"


def build_export_parser():
    parser = argparse.ArgumentParser(
        prog=f"ivis {EXPORT_COMMAND}",
        description=(
            "Export a saved ivis model to ONNX, to embed data with onnxruntime or another ONNX runtime "
            "(no TensorFlow needed there). Writes OUT.onnx and its manifest OUT.onnx.json. Needs: pip install 'ivis[onnx]'."
        ),
    )
    parser.add_argument("model", metavar="MODEL_FOLDER", help="a model folder written by --save-model or Ivis.save_model")
    parser.add_argument("output", metavar="OUT.onnx", help="the ONNX file to write; its manifest goes to OUT.onnx.json")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing OUT.onnx and OUT.onnx.json")
    return parser


def run_export(args):
    from ivis import load_model
    from ivis.onnx_export import check_destinations, manifest_path

    check_destinations(args.output, args.overwrite, "Pass --overwrite")  # before Keras loads: a refusal comes at once
    model = load_model(args.model)
    manifest = model.export_onnx(args.output, overwrite=args.overwrite)
    outputs = ", ".join(manifest["outputs"])
    print(f"ivis: wrote {args.output} (input: {manifest['input']['n_features']} float32 features per row; outputs: {outputs})")
    print(f"ivis: wrote its manifest to {manifest_path(args.output)}")
    return 0


class CommandError(Exception):
    """An error to report to the user as one line, without a traceback."""


def _split_hdf5(path, dataset):
    if dataset:
        return path, dataset
    for suffix in (".h5:", ".hdf5:", ".hdf:"):
        if suffix in path:
            file_part, _, name = path.rpartition(":")
            return file_part, name
    return path, None


def load_input(args):
    """Return ``(X, labels, label_name, description, closer)`` for the command's input."""
    import numpy as np

    if args.input is None:
        from sklearn.datasets import load_digits
        from sklearn.preprocessing import MinMaxScaler

        digits = load_digits()
        X = MinMaxScaler().fit_transform(digits.data).astype(np.float32)
        return X, digits.target, "digit", "scikit-learn digits (1,797 images of 8x8 pixels)", None
    path, dataset = _split_hdf5(args.input, args.dataset)
    if not os.path.exists(path):
        raise CommandError(f"input file not found: {path}")
    lower = path.lower()
    if lower.endswith((".h5", ".hdf5", ".hdf")):
        import h5py

        handle = h5py.File(path, "r")
        if dataset is None:
            names = [name for name, item in handle.items() if isinstance(item, h5py.Dataset)]
            handle.close()
            raise CommandError(f"name the HDF5 dataset: {path}:NAME or --dataset NAME (datasets here: {', '.join(names) or 'none'})")
        if dataset not in handle:
            handle.close()
            raise CommandError(f"no dataset {dataset!r} in {path}")
        return handle[dataset], None, None, f"{path}:{dataset}", handle.close
    if lower.endswith(".npy"):
        return np.load(path, mmap_mode="r"), None, None, path, None
    if lower.endswith((".csv", ".tsv", ".txt")):
        return _load_table(path, args.label_column, "\t" if lower.endswith(".tsv") else ",")
    raise CommandError(f"unsupported input {path!r}: use .csv, .tsv, .npy or an HDF5 file (.h5)")


def _load_table(path, label_column, delimiter):
    import numpy as np
    import pandas as pd

    frame = pd.read_csv(path, sep=delimiter)
    labels = None
    if label_column is not None:
        if label_column not in frame.columns:
            raise CommandError(f"no column {label_column!r} in {path}; columns are: {', '.join(map(str, frame.columns))}")
        labels = frame.pop(label_column).to_numpy()
    non_numeric = [str(c) for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if non_numeric:
        raise CommandError(
            f"non-numeric columns in {path}: {', '.join(non_numeric)}; name a label column with "
            "--label-column or remove them"
        )
    return frame.to_numpy(dtype=np.float32), labels, label_column, path, None


def _check_outputs(paths, overwrite):
    existing = [p for p in paths if p and os.path.exists(p)]
    if existing and not overwrite:
        raise CommandError(f"{', '.join(existing)} already exist(s); pass --overwrite to replace, or choose --output-dir")


def write_embedding(embedding, path, fmt):
    import numpy as np

    tmp = f"{path}.partial"
    if fmt == "npy":
        with open(tmp, "wb") as handle:
            np.save(handle, embedding)
    else:
        header = ",".join(f"ivis{i + 1}" for i in range(embedding.shape[1]))
        np.savetxt(tmp, embedding, delimiter=",", header=header, comments="", fmt="%.6g")
    os.replace(tmp, path)  # never leave a half-written file under the final name


def stream_embedding(model, X, path, fmt, chunk_rows=65536):
    """Embed ``X`` chunk by chunk straight into the file at ``path``; return the embedding.

    An ``.npy`` output is filled with ``transform_to`` and returned memory-mapped; a CSV is
    written chunk by chunk. Either way a half-written file never has the final name.
    """
    import numpy as np

    if fmt == "npy":
        tmp = f"{path[:-len('.npy')]}.partial.npy"
        model.transform_to(X, tmp, chunk_rows=chunk_rows)
        os.replace(tmp, path)
        return np.load(path, mmap_mode="r")
    tmp = f"{path}.partial"
    parts = []
    chunks = (X[start:start + chunk_rows] for start in range(0, X.shape[0], chunk_rows))
    with open(tmp, "w") as handle:
        for i, part in enumerate(model.transform_generator(chunks)):
            if i == 0:
                handle.write(",".join(f"ivis{j + 1}" for j in range(part.shape[1])) + "\n")
            np.savetxt(handle, part, delimiter=",", fmt="%.6g")
            parts.append(part)  # kept for the plot: embedding_dims floats per row
    os.replace(tmp, path)
    return np.concatenate(parts)


def write_plot(embedding, labels, label_name, title, path):
    from ivis.plotting import scatter_figure

    figure = scatter_figure(embedding, labels, title, legend_title=label_name, figsize=(7, 6), dpi=120)
    figure.tight_layout()
    tmp = f"{path}.partial.png"
    figure.savefig(tmp)
    os.replace(tmp, path)


def _estimator(args):
    from ivis import Ivis

    k = args.k if args.k is not None else (15 if args.input is None else 150)
    return Ivis(
        embedding_dims=args.embedding_dims, k=k, distance=args.distance, batch_size=args.batch_size,
        epochs=args.epochs, n_epochs_without_progress=args.n_epochs_without_progress,
        early_stopping=args.early_stopping, n_trees=args.n_trees,
        neighbour_search=args.neighbour_search, knn_distance_metric=args.knn_distance_metric, precompute=not args.no_precompute,
        negative_sampling=args.negative_sampling, model=args.model,
        supervision_metric=args.supervision_metric, supervision_weight=args.supervision_weight,
        validation_fraction=args.validation_fraction, learning_rate=args.learning_rate,
        weight_decay=args.weight_decay, verbose=0 if args.quiet else 1, random_state=args.random_state,
    )


def _resumed_estimator(args):
    from ivis import load_model

    model = load_model(args.resume)
    defaults = build_parser().parse_args([])
    for name in _CHECKPOINT_PARAMS:
        given = getattr(args, name)
        if given != getattr(defaults, name) and given != getattr(model, name):
            raise CommandError(
                f"--{name.replace('_', '-')} {given} differs from the checkpoint's {getattr(model, name)!r}; "
                "a resumed run keeps the parameters it was trained with, so leave the option out"
            )
    model.verbose = 0 if args.quiet else 1
    state = model._training_state_
    if state.get("complete", True):
        print(f"ivis: training the finished model {args.resume} for {model.epochs} more epochs", file=sys.stderr)
    else:
        print(f"ivis: resuming {args.resume} after epoch {state['epochs_trained']} of {model.epochs}", file=sys.stderr)
    return model


def _checkpoint_callbacks(args):
    if args.checkpoint_dir is None:
        return None
    from ivis.nn.callbacks import ModelCheckpoint

    return [ModelCheckpoint(args.checkpoint_dir, CHECKPOINT_NAME, args.checkpoint_every or 1)]


def _check_writable(path, option):
    """Fail now, not after training, if ``path`` (a folder to create or fill) cannot be written."""
    existing = os.path.abspath(path)
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise CommandError(f"{option} {path}: {existing} is a file, not a folder; choose another path")
    try:
        handle, probe = tempfile.mkstemp(prefix=".ivis-write-test-", dir=existing)
    except OSError as error:
        raise CommandError(f"{option} {path}: cannot write to {existing} ({error.strerror or error}); choose another path") from None
    os.close(handle)
    os.remove(probe)


def _check_model_destination(path, option, overwrite, resumed=None):
    """Fail now, not after training, if saving a model folder to ``path`` would be refused."""
    from ivis.persistence import check_replaceable  # no Keras

    if os.path.lexists(path):
        continuing = resumed is not None and os.path.exists(resumed) and os.path.samefile(path, resumed)
        if not overwrite and not continuing:
            raise CommandError(f"{option} {path} already exists; pass --overwrite to replace it, or choose another path")
        try:
            check_replaceable(path)
        except FileExistsError as error:
            raise CommandError(f"{option} {path}: {error}") from None
    _check_writable(os.path.dirname(os.path.abspath(path)), option)


def check_destinations(args, embedding_path, plot_path):
    """Check every path the run will write before any work starts."""
    _check_writable(args.output_dir, "-o/--output-dir")
    _check_outputs([embedding_path, plot_path], args.overwrite)
    if args.save_model and not args.load_model:
        _check_model_destination(args.save_model, "--save-model", args.overwrite)
    if args.checkpoint_dir:
        # A checkpoint of an earlier run is replaced only with --overwrite, or when this run resumes it.
        checkpoint = os.path.join(args.checkpoint_dir, CHECKPOINT_NAME)
        _check_model_destination(checkpoint, "--checkpoint-dir", args.overwrite, resumed=args.resume)


def run(args):
    embedding_path = os.path.join(args.output_dir, f"embedding.{args.format}")
    plot_path = None if args.no_plot else os.path.join(args.output_dir, "embedding.png")
    if args.supervised and not args.label_column and args.input is not None:
        raise CommandError("--supervised needs --label-column")
    if args.resume and args.load_model:
        raise CommandError("--resume trains and --load-model only embeds; pass one of them")
    if args.checkpoint_every is not None and (args.checkpoint_every < 1 or not args.checkpoint_dir):
        raise CommandError("--checkpoint-every takes a positive number of epochs, with --checkpoint-dir")
    check_destinations(args, embedding_path, plot_path)

    X, labels, label_name, description, close = load_input(args)
    # HDF5 data stays on disk: fitted batch by batch, embedded straight into the output file.
    from ivis.data.inputs import is_h5py_dataset

    streamed = is_h5py_dataset(X)
    try:
        print(f"ivis: embedding {description}", file=sys.stderr)
        shuffle_mode = {"all": True, "batch": "batch", "none": False}[args.shuffle_mode]
        if args.load_model:
            from ivis import load_model

            model = load_model(args.load_model)
            model.verbose = 0 if args.quiet else 1
            embedding = None if streamed else model.transform(X)
        else:
            model = _resumed_estimator(args) if args.resume else _estimator(args)
            model.callbacks = _checkpoint_callbacks(args)
            targets = labels if args.supervised else None
            if streamed:
                model.fit(X, targets, shuffle_mode=shuffle_mode)
            else:
                embedding = model.fit_transform(X, targets, shuffle_mode=shuffle_mode)
        if streamed:
            os.makedirs(args.output_dir, exist_ok=True)
            embedding = stream_embedding(model, X, embedding_path, args.format)
    finally:
        if close is not None:
            close()
    os.makedirs(args.output_dir, exist_ok=True)
    if not streamed:
        write_embedding(embedding, embedding_path, args.format)
    print(f"ivis: wrote the embedding ({embedding.shape[0]} x {embedding.shape[1]}) to {embedding_path}")
    if plot_path is not None:
        if embedding.shape[1] < 2:
            print("ivis: no plot for a 1-dimensional embedding", file=sys.stderr)
        else:
            write_plot(embedding, labels, label_name, f"ivis embedding of {description}", plot_path)
            print(f"ivis: wrote the plot to {plot_path}")
    if args.save_model and not args.load_model:
        model.save_model(args.save_model, overwrite=args.overwrite)
        print(f"ivis: saved the model to {args.save_model}")
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    exporting = argv[:1] == [EXPORT_COMMAND]
    args = build_export_parser().parse_args(argv[1:]) if exporting else build_parser().parse_args(argv)
    try:
        return run_export(args) if exporting else run(args)
    except ImportError as error:
        if not exporting:
            raise
        print(f"ivis: error: {error}", file=sys.stderr)  # a missing optional package, with its install line
        return 2
    except CommandError as error:
        print(f"ivis: error: {error}", file=sys.stderr)
        return 2
    except (ValueError, TypeError, FileExistsError, OSError) as error:
        # Errors from the estimator already say what is wrong and how to fix it.
        print(f"ivis: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
