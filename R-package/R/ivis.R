#' Create an ivis model
#'
#' `ivis()` creates an ivis model: a siamese neural network trained on triplets
#' of points that reduces data to `embedding_dims` dimensions while keeping
#' both local and global structure. Train it with `model$fit(X)` and embed data
#' with `model$transform(X)`.
#'
#' Only the arguments you supply are passed to the Python core, so any argument
#' you leave out takes the Python default. Whole numbers (`k = 15`, `epochs = 5`)
#' are passed as integers. Invalid values are reported by the Python core when
#' the model is fitted, with a message naming the parameter.
#'
#' @param embedding_dims Number of dimensions of the embedding.
#' @param k Number of nearest neighbours retrieved for each point. Must be less
#'   than the number of rows of the data minus one.
#' @param distance The triplet loss: one of `"pn"`, `"euclidean"`,
#'   `"manhattan_pn"`, `"manhattan"`, `"chebyshev"`, `"chebyshev_pn"`,
#'   `"softmax_ratio_pn"`, `"softmax_ratio"`, `"cosine"`, `"cosine_pn"`, or a
#'   Python callable taking `(y_true, y_pred)`.
#' @param batch_size Size of the mini-batches used in training.
#' @param epochs Maximum number of training epochs.
#' @param n_epochs_without_progress Training stops after this many epochs
#'   without improvement of the loss.
#' @param n_trees Number of random projection trees of the Annoy nearest
#'   neighbour index.
#' @param ntrees Deprecated; use `n_trees`.
#' @param knn_distance_metric Distance used to find nearest neighbours:
#'   `"angular"`, `"euclidean"`, `"manhattan"`, `"hamming"` or `"dot"`.
#' @param search_k Number of nodes inspected per nearest neighbour query; `-1`
#'   means `n_trees * k`.
#' @param neighbour_search How nearest neighbours are found: `"annoy"` (an
#'   Annoy index; any data and metric, reusable through `annoy_index_path`) or
#'   `"clustered"` (exact distances to the rows of the clusters nearest to each
#'   row's own, as many as hold 95% of the exact neighbours of a sample of rows;
#'   for dense matrices with the `"angular"` or `"euclidean"` metric, about
#'   five times faster than Annoy on wide data, and exact on up to 5,500 rows).
#' @param precompute Whether to compute all nearest neighbours before training
#'   (faster, uses more memory).
#' @param negative_sampling Where each point's negative comes from:
#'   `"in_batch"` (another point of the same training batch, reusing its
#'   network pass: epochs about a fifth faster; on small data early stopping
#'   then ends training sooner; it applies when `shuffle_mode` is `TRUE`) or
#'   `"all_rows"` (drawn from all rows, as the published algorithm does).
#' @param model The network: `"szubert"`, `"hinton"`, `"maaten"`, or a Keras
#'   model (a Python object) to which an embedding layer is appended.
#' @param supervision_metric Keras loss used for the labels in supervised mode.
#'   The default, `"sparse_categorical_crossentropy"`, is for classes; use a
#'   regression loss such as `"mae"` for a numeric `Y`.
#' @param supervision_weight Weight, between 0 and 1, of the supervised loss
#'   against the triplet loss in supervised mode.
#' @param validation_fraction Supervised mode only: the share (between 0 and 1)
#'   of the labelled samples to hold out. Their labels are not trained on;
#'   early stopping watches the supervised loss on them, and the weights of the
#'   epoch where it was lowest are kept. Useful on small labelled data. `NULL`
#'   (the default) trains on every label and stops on the training loss.
#' @param learning_rate Step size of the Adam optimizer. To vary it during
#'   training, pass a `keras.callbacks.LearningRateScheduler` in `callbacks`.
#' @param weight_decay Decoupled weight decay of the network's hidden layers:
#'   each step shrinks their weights by `learning_rate * weight_decay` times
#'   themselves. Values around 10 regularise small supervised problems; `0`
#'   (the default) disables it.
#' @param annoy_index_path Path of an Annoy index built beforehand; if `NULL`,
#'   an index is built in a temporary folder.
#' @param callbacks A list of Keras callbacks (Python objects) used in training.
#' @param build_index_on_disk Whether to build the Annoy index on disk.
#' @param neighbour_matrix Optional matrix of precomputed nearest neighbours:
#'   row `i` holds the **1-based** row numbers of the neighbours of sample `i`
#'   (as returned by R functions such as `FNN::get.knn()`). It is checked and
#'   passed to Python 0-based. A Python sequence object is passed unchanged.
#' @param verbose Verbosity of training output; `0` is silent.
#' @param random_state Seed (whole number) for reproducible results.
#'
#' @return An object of class `ivis_model`: an environment with these members,
#'   which change the model in place (like the Python object they wrap):
#'   \describe{
#'     \item{`fit(X, Y = NULL, ...)`}{Trains the model on `X` (a numeric matrix,
#'       data frame, or sparse `Matrix`) and returns the model, so that
#'       `model <- model$fit(X)` works. `Y` makes training supervised: a factor
#'       or character vector for classes (`NA` marks an unlabelled sample, for
#'       semi-supervised training) or a numeric vector for regression. Further
#'       arguments (such as `shuffle_mode`) go to the Python `fit()`.}
#'     \item{`transform(X)`}{The embedding of `X`: a matrix with one row per
#'       row of `X` (row names kept) and `embedding_dims` columns.}
#'     \item{`fit_transform(X, Y = NULL, ...)`}{Trains on `X`, then embeds it.}
#'     \item{`score_samples(X)`}{For a model trained with labels: the
#'       supervised network's output for `X` (class probabilities, with one
#'       column per class named after it).}
#'     \item{`save_model(path, overwrite = FALSE, ...)`}{Saves the trained model
#'       to the folder `path`; see [load_ivis()]. Without `overwrite`, an
#'       existing `path` is an error. With `overwrite = TRUE`, only an ivis
#'       model folder holding nothing but the files ivis writes is replaced; a
#'       folder with other files in it is refused, never emptied.}
#'     \item{`get_params()`}{The model's parameters, as a named list.}
#'     \item{`py`}{The underlying Python `ivis.Ivis` object, for advanced use.}
#'   }
#'
#' @seealso [load_ivis()], [predict.ivis_model()], [install_ivis()]
#' @examples
#' if (ivis_available()) {
#'   X <- scale(data.matrix(iris[, 1:4]))
#'   model <- ivis(k = 15, epochs = 5, verbose = 0)
#'   model <- model$fit(X)
#'   xy <- model$transform(X)
#'   head(xy)
#' }
#' @export
ivis <- function(embedding_dims = 2L, k = 150L, distance = "pn", batch_size = 128L,
                 epochs = 1000L, n_epochs_without_progress = 20L, n_trees = 50L,
                 ntrees = NULL, knn_distance_metric = "angular", search_k = -1L,
                 neighbour_search = "annoy", precompute = TRUE, negative_sampling = "in_batch", model = "szubert",
                 supervision_metric = "sparse_categorical_crossentropy",
                 supervision_weight = 0.5, validation_fraction = NULL,
                 learning_rate = 0.001, weight_decay = 0, annoy_index_path = NULL,
                 callbacks = NULL,
                 build_index_on_disk = TRUE, neighbour_matrix = NULL, verbose = 1L,
                 random_state = NULL) {
  args <- prepare_args(capture_args(match.call(), environment()))
  core <- ivis_core()
  py <- with_python_errors(do.call(core$Ivis, to_python_args(args)))
  new_ivis_model(py)
}

# Wraps a Python `Ivis` object in an `ivis_model`.
new_ivis_model <- function(py) {
  self <- new.env(parent = emptyenv())
  self$py <- py

  self$fit <- function(X, Y = NULL, ...) {
    X <- check_X(X)
    Y <- check_Y(Y, x_nrow(X))
    with_python_errors(py$fit(x_to_python(X), y_to_python(Y), ...))
    invisible(self)
  }
  self$transform <- function(X) {
    X <- check_X(X)
    out <- with_python_errors(py$transform(x_to_python(X)))
    as_r_matrix(out, x_rownames(X))
  }
  self$fit_transform <- function(X, Y = NULL, ...) {
    X <- check_X(X)
    Y <- check_Y(Y, x_nrow(X))
    out <- with_python_errors(py$fit_transform(x_to_python(X), y_to_python(Y), ...))
    as_r_matrix(out, x_rownames(X))
  }
  self$score_samples <- function(X) {
    X <- check_X(X)
    out <- with_python_errors(py$score_samples(x_to_python(X)))
    as_r_matrix(out, x_rownames(X), model_classes(py))
  }
  self$save_model <- function(path, overwrite = FALSE, ...) {
    path <- path.expand(path)
    with_python_errors(py$save_model(path, overwrite = overwrite, ...))
    invisible(self)
  }
  self$get_params <- function() {
    params <- with_python_errors(py$get_params())
    nm <- params$neighbour_matrix
    if (is.matrix(nm) && is.numeric(nm)) params$neighbour_matrix <- nm + 1L
    params
  }
  lockEnvironment(self, bindings = TRUE)
  structure(self, class = "ivis_model")
}

# Class names of a model trained on labels, else NULL.
model_classes <- function(py) {
  classes <- tryCatch(py_attr_or_null(py, "classes_"), error = function(e) NULL)
  if (is.null(classes)) return(NULL)
  as.character(as.vector(classes))
}

# TRUE when the Python estimator has fitted attributes (names ending in "_").
model_is_fitted <- function(py) {
  builtins <- reticulate::import_builtins(convert = FALSE)
  attrs <- as.character(reticulate::py_to_r(builtins$sorted(builtins$vars(py))))
  any(grepl("^[^_].*_$", attrs))
}

#' @export
print.ivis_model <- function(x, ...) {
  py <- x$py
  fitted <- tryCatch(model_is_fitted(py), error = function(e) NA)
  params <- tryCatch(x$get_params(), error = function(e) list())
  shown <- vapply(names(params), function(name) {
    value <- params[[name]]
    text <- if (is.null(value)) {
      "NULL"
    } else if (is.matrix(value)) {
      sprintf("<%d x %d matrix>", nrow(value), ncol(value))
    } else if (inherits(value, "python.builtin.object")) {
      "<Python object>"
    } else if (is.character(value) && length(value) == 1L) {
      encodeString(value, quote = "\"")
    } else if (is.atomic(value) && length(value) == 1L) {
      format(value)
    } else {
      "<...>"
    }
    sprintf("%s = %s", name, text)
  }, character(1L))
  state <- if (isTRUE(fitted)) " (fitted)" else if (isFALSE(fitted)) " (not fitted)" else ""
  cat("<ivis model>", state, "\n", sep = "")
  classes <- if (isTRUE(fitted)) model_classes(py) else NULL
  if (length(classes)) cat(pack_lines(c("classes:", classes)), sep = "\n")
  if (length(shown)) cat(pack_lines(shown, sep = ","), sep = "\n")
  invisible(x)
}

# Joins `items` (each followed by `sep`, then a space) into indented lines of at most `width` characters, never splitting an item.
pack_lines <- function(items, sep = "", width = getOption("width", 80L), indent = "  ") {
  lines <- character()
  line <- ""
  for (i in seq_along(items)) {
    item <- paste0(items[[i]], if (i < length(items)) sep else "")
    candidate <- if (nzchar(line)) paste(line, item) else item
    if (nzchar(line) && nchar(indent) + nchar(candidate) > width) {
      lines <- c(lines, line)
      line <- item
    } else {
      line <- candidate
    }
  }
  paste0(indent, c(lines, line))
}

#' Embed new data with a trained ivis model
#'
#' @param object A trained `ivis_model`.
#' @param newdata A numeric matrix, data frame or sparse `Matrix` with the same
#'   columns as the training data.
#' @param type `"embedding"` (the default) for `object$transform(newdata)`, or
#'   `"scores"` for `object$score_samples(newdata)` (models trained with
#'   labels only).
#' @param ... Not used.
#' @return A matrix with one row per row of `newdata`.
#' @seealso [ivis()]
#' @examples
#' if (ivis_available()) {
#'   X <- scale(data.matrix(iris[, 1:4]))
#'   model <- ivis(k = 15, epochs = 5, verbose = 0)$fit(X)
#'   head(predict(model, X[1:5, ]))
#' }
#' @export
predict.ivis_model <- function(object, newdata, type = c("embedding", "scores"), ...) {
  type <- match.arg(type)
  if (missing(newdata)) {
    stop("predict() needs `newdata`: an ivis model does not keep its training data.",
         call. = FALSE)
  }
  switch(type,
    embedding = object$transform(newdata),
    scores = object$score_samples(newdata)
  )
}

#' Load a saved ivis model
#'
#' Loads a model folder written by `model$save_model(path)` in R or by
#' `Ivis.save_model(path)` in Python.
#'
#' @param path Folder holding the saved model.
#' @return An `ivis_model` (see [ivis()]).
#' @seealso [ivis()]
#' @examples
#' if (ivis_available()) {
#'   X <- scale(data.matrix(iris[, 1:4]))
#'   model <- ivis(k = 15, epochs = 5, verbose = 0)$fit(X)
#'   path <- file.path(tempdir(), "iris-model")
#'   model$save_model(path, overwrite = TRUE)
#'   same <- load_ivis(path)
#'   all.equal(same$transform(X), model$transform(X))
#' }
#' @export
load_ivis <- function(path) {
  path <- path.expand(path)
  if (!dir.exists(path)) {
    stop(sprintf(paste0(
      "There is no saved ivis model at '%s': give the folder written by ",
      "model$save_model() in R or Ivis.save_model() in Python."
    ), path), call. = FALSE)
  }
  core <- ivis_core()
  py <- with_python_errors(
    if (reticulate::py_has_attr(core, "load_model")) {
      core$load_model(path)
    } else {
      core$Ivis()$load_model(path)
    }
  )
  new_ivis_model(py)
}
