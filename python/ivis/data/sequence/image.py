"""Image files on disk as indexable datasets, decoded with Pillow when indexed."""

import os
from concurrent.futures import ThreadPoolExecutor
from numbers import Integral

import numpy as np

from ivis._params import resolve_n_jobs
from ivis.data.sequence.sequence import IndexableDataset, item_or_batch, row_positions

# Pillow mode and channel count of each colour mode.
_COLOR_MODES = {"grayscale": ("L", 1), "rgb": ("RGB", 3), "rgba": ("RGBA", 4)}
# Pillow filter behind each resize method; "area" averages source pixels, as BOX does.
_RESIZE_METHODS = {
    "bilinear": "BILINEAR",
    "nearest": "NEAREST",
    "bicubic": "BICUBIC",
    "lanczos": "LANCZOS",
    "area": "BOX",
}


def _pil_image():
    # Imported on first use: Pillow is optional and ``ivis.data.sequence`` must import fast.
    try:
        from PIL import Image
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "ImageDataset needs Pillow to decode images; install it with `pip install pillow`."
        ) from err
    return Image


def _resample_filter(image_module, method):
    # Pillow >= 9.1 groups the filters in an enum; older releases expose module constants.
    filters = getattr(image_module, "Resampling", image_module)
    return getattr(filters, _RESIZE_METHODS[method])


def _check_img_shape(img_shape):
    if (
        not isinstance(img_shape, (tuple, list))
        or len(img_shape) != 2
        or not all(isinstance(s, Integral) and not isinstance(s, bool) for s in img_shape)
        or not all(s > 0 for s in img_shape)
    ):
        raise ValueError(
            f"img_shape must be a (height, width) pair of positive integers; got {img_shape!r}"
        )
    return int(img_shape[0]), int(img_shape[1])


def _check_choice(name, value, valid):
    if value not in valid:
        raise ValueError(f"Unknown {name} {value!r}; valid values are: {', '.join(valid)}")
    return value


def _as_numpy_dtype(dtype):
    # Accept framework dtypes (for example ``tf.uint8``) without importing the framework.
    return np.dtype(getattr(dtype, "as_numpy_dtype", dtype))


class ImageDataset(IndexableDataset):
    """Image files on disk, read, resized and returned as arrays when indexed.

    Every image comes back with shape ``(height, width, channels)``, so the dataset has
    shape ``(n_images, height, width, channels)``. Such rows need a model that accepts
    3-dimensional inputs (a convolutional network, built outside ivis and passed as its
    ``model``); neighbour retrieval with the default Annoy index needs
    :class:`FlattenedImageDataset` instead. Nothing is kept in memory but the file paths,
    so the collection can be of any size.

    Parameters
    ----------
    filepath_list : sequence of str or os.PathLike
        The image files, one per row, in row order. Any format Pillow can decode.
    img_shape : tuple of int
        ``(height, width)`` that every image is resized to.
    color_mode : {'rgb', 'grayscale', 'rgba'}, default='rgb'
        Colour mode the images are converted to; gives 3, 1 or 4 channels.
    resize_method : {'bilinear', 'nearest', 'bicubic', 'lanczos', 'area'}, default='bilinear'
        Interpolation used when resizing. ``'area'`` averages the source pixels under
        each target pixel (Pillow's box filter).
    preserve_aspect_ratio : bool, default=False
        If True, an image is scaled to fit inside ``img_shape`` without distortion and then
        padded with zeros, evenly on both sides, to exactly ``img_shape``.
    dtype : numpy dtype, default=numpy.float32
        Type of the returned arrays. Pixel values lie in [0, 255].
    preprocessing_function : callable, optional
        Applied to every image array after resizing and casting to ``dtype``; its result is
        returned as is. It must keep the image's shape, since :attr:`shape` promises it.
    n_jobs : int or None, default=-1
        Number of threads that read the images of a batch in :meth:`get_batch`. ``None`` or
        1 reads serially; -1 uses every core (-2 all but one, and so on).

    Raises
    ------
    ValueError
        If ``filepath_list`` is empty, ``img_shape`` is not two positive integers, or
        ``color_mode``, ``resize_method`` or ``n_jobs`` is not a valid value.

    Examples
    --------
    Given ``paths``, a list of image files:

    >>> dataset = ImageDataset(paths, img_shape=(64, 64), color_mode="grayscale")
    >>> dataset.shape  # (len(paths), 64, 64, 1)
    >>> batch = dataset.get_batch([0, 5, 2])  # array of shape (3, 64, 64, 1)
    """

    def __init__(
        self,
        filepath_list,
        img_shape,
        color_mode="rgb",
        resize_method="bilinear",
        preserve_aspect_ratio=False,
        dtype=np.float32,
        preprocessing_function=None,
        n_jobs=-1,
    ):
        if isinstance(filepath_list, (str, bytes, os.PathLike)):
            raise TypeError("filepath_list must be a sequence of file paths, not a single path")
        self.filepath_list = [os.fspath(path) for path in filepath_list]
        if not self.filepath_list:
            raise ValueError("filepath_list is empty; an ImageDataset needs at least one image")
        self.img_shape = _check_img_shape(img_shape)
        self.color_mode = _check_choice("color_mode", color_mode, tuple(_COLOR_MODES))
        self.resize_method = _check_choice("resize_method", resize_method, tuple(_RESIZE_METHODS))
        self.preserve_aspect_ratio = bool(preserve_aspect_ratio)
        self.dtype = _as_numpy_dtype(dtype)
        if preprocessing_function is not None and not callable(preprocessing_function):
            raise TypeError("preprocessing_function must be callable or None")
        self.preprocessing_function = preprocessing_function
        self.n_jobs = n_jobs
        self._n_threads = resolve_n_jobs(n_jobs)
        self._pil_mode, self.channels = _COLOR_MODES[color_mode]

    @property
    def shape(self):
        """tuple of int: ``(n_images, height, width, channels)``."""
        return (len(self.filepath_list), *self.img_shape, self.channels)

    def __len__(self):
        return len(self.filepath_list)

    def read_image(self, filepath):
        """Read one image file into an array in the dataset's colour mode.

        Parameters
        ----------
        filepath : str or os.PathLike
            The image file.

        Returns
        -------
        numpy.ndarray
            ``uint8`` array of shape ``(rows, cols, channels)`` at the file's own size.
            16-bit images are scaled down to 8 bits.

        Raises
        ------
        FileNotFoundError
            If the file does not exist.
        OSError
            If the file cannot be read or decoded as an image; the message names the file.
        """
        image_module = _pil_image()
        filepath = os.fspath(filepath)
        try:
            with image_module.open(filepath) as img:
                if img.mode.startswith("I;16"):
                    # Pillow clips 16-bit values to 255 when converting; rescale them instead.
                    scaled = np.asarray(img, dtype=np.float32) / 257.0
                    img = image_module.fromarray(scaled.round().astype(np.uint8))
                # convert() decodes the pixels while the file is still open.
                img = img.convert(self._pil_mode)
        except FileNotFoundError as err:
            raise FileNotFoundError(f"Image file not found: {filepath!r}") from err
        except (OSError, ValueError, SyntaxError) as err:
            # Pillow reports corrupt or unknown files with any of these.
            raise OSError(f"Could not read image file {filepath!r}: {err}") from err
        arr = np.asarray(img)
        return arr[:, :, np.newaxis] if arr.ndim == 2 else arr

    def resize_image(self, img):
        """Resize an image array to ``img_shape``, padding it if the aspect ratio is kept.

        Parameters
        ----------
        img : numpy.ndarray
            Array of shape ``(rows, cols, channels)`` (or ``(rows, cols)``), such as
            :meth:`read_image` returns.

        Returns
        -------
        numpy.ndarray
            Array of shape ``(height, width, channels)``, of the same dtype as ``img`` when
            that is ``uint8`` and ``float32`` otherwise.
        """
        img = np.asarray(img)
        if img.ndim == 2:
            img = img[:, :, np.newaxis]
        if img.ndim != 3:
            raise ValueError(f"Expected an image of shape (rows, cols, channels); got {img.shape}")
        height, width = self.img_shape
        rows, cols = img.shape[:2]
        if not self.preserve_aspect_ratio:
            return self._resample(img, height, width)
        scale = min(height / rows, width / cols)
        new_rows = min(height, max(1, round(rows * scale)))
        new_cols = min(width, max(1, round(cols * scale)))
        resized = self._resample(img, new_rows, new_cols)
        padded = np.zeros((height, width, img.shape[2]), dtype=resized.dtype)
        top, left = (height - new_rows) // 2, (width - new_cols) // 2
        padded[top : top + new_rows, left : left + new_cols] = resized
        return padded

    def _resample(self, img, rows, cols):
        if img.shape[:2] == (rows, cols):
            return img
        image_module = _pil_image()
        resample = _resample_filter(image_module, self.resize_method)
        size = (cols, rows)  # Pillow sizes are (width, height)
        if img.dtype == np.uint8 and img.shape[2] in (1, 3, 4):
            pil = image_module.fromarray(img[:, :, 0] if img.shape[2] == 1 else img)
            out = np.asarray(pil.resize(size, resample))
            return out[:, :, np.newaxis] if out.ndim == 2 else out
        # Other dtypes or channel counts: resize each channel as a 32-bit float image.
        channels = [
            np.asarray(
                image_module.fromarray(np.ascontiguousarray(img[:, :, c], np.float32)).resize(
                    size, resample
                )
            )
            for c in range(img.shape[2])
        ]
        return np.stack(channels, axis=-1)

    def _load(self, filepath):
        img = self.resize_image(self.read_image(filepath)).astype(self.dtype, copy=False)
        if self.preprocessing_function is not None:
            img = np.asarray(self.preprocessing_function(img))
        return img

    def get_batch(self, idx_seq):
        """Read the images at the given positions, in that order.

        With ``n_jobs`` other than 1 the files are read by a pool of threads (Pillow
        releases the GIL while decoding); the result is identical to a serial read.

        Parameters
        ----------
        idx_seq : sequence of int
            Row positions; may repeat and may be negative.

        Returns
        -------
        numpy.ndarray
            Array of shape ``(len(idx_seq), height, width, channels)``.
        """
        paths = [self.filepath_list[i] for i in row_positions(idx_seq, len(self.filepath_list))]
        if not paths:
            return np.empty((0, *self.shape[1:]), dtype=self.dtype)
        n_threads = min(self._n_threads, len(paths))
        if n_threads > 1:
            with ThreadPoolExecutor(max_workers=n_threads) as pool:
                images = list(pool.map(self._load, paths))
        else:
            images = [self._load(path) for path in paths]
        return np.stack(images)

    def __getitem__(self, idx):
        """Return one image for an integer ``idx``, or a batch for a slice or an index list."""
        return item_or_batch(self, idx)


class FlattenedImageDataset(ImageDataset):
    """Image files on disk, returned as flat rows of pixel values.

    The same as :class:`ImageDataset`, except that each image is flattened to one row of
    ``height * width * channels`` values, so the dataset is 2-dimensional and works with
    ivis's default neighbour retrieval (the Annoy index) and its default dense network.

    Parameters
    ----------
    filepath_list, img_shape, color_mode, resize_method, preserve_aspect_ratio, dtype, \
preprocessing_function
        As for :class:`ImageDataset`. ``preprocessing_function`` sees the unflattened image.
    n_jobs : int or None, default=None
        Number of reader threads in :meth:`get_batch`; ``None`` or 1 reads serially, -1 uses
        every core.
    """

    def __init__(
        self,
        filepath_list,
        img_shape,
        color_mode="rgb",
        resize_method="bilinear",
        preserve_aspect_ratio=False,
        dtype=np.float32,
        preprocessing_function=None,
        n_jobs=None,
    ):
        super().__init__(
            filepath_list,
            img_shape,
            color_mode=color_mode,
            resize_method=resize_method,
            preserve_aspect_ratio=preserve_aspect_ratio,
            dtype=dtype,
            preprocessing_function=preprocessing_function,
            n_jobs=n_jobs,
        )

    @property
    def shape(self):
        """tuple of int: ``(n_images, height * width * channels)``."""
        height, width = self.img_shape
        return (len(self.filepath_list), height * width * self.channels)

    def _load(self, filepath):
        return super()._load(filepath).reshape(-1)
