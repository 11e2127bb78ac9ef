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
#' @param k Number of nearest neighbours retrieved for each point; it must be
#'   below the number of rows of the data (at most `nrow(X) - 1`). The default,
#'   150 (as in Python), suits data of thousands of rows or more; for smaller
#'   data pass a smaller `k` (such as 15 for `iris`), or use [ivis_embed()],
#'   which chooses `k` from the number of rows.
#' @param distance The triplet loss: one of `"pn"`, `"euclidean"`,
#'   `"manhattan_pn"`, `"manhattan"`, `"chebyshev"`, `"chebyshev_pn"`,
#'   `"softmax_ratio_pn"`, `"softmax_ratio"`, `"cosine"`, `"cosine_pn"`; one of
#'   the contrastive losses `"infonce"`, `"neg"`, `"infonce_pn"`,
#'   `"infonce_global"`, which compare each anchor with every other point of its
#'   batch and separate clusters more sharply (`"infonce_global"` also keeps the
#'   batch's distances correlated with the input's; see `docs/quality.md` in the
#'   ivis repository); or a Python
#'   callable taking `(y_true, y_pred)`.
#' @param batch_size Size of the mini-batches used in training.
#' @param epochs Maximum number of training epochs.
#' @param n_epochs_without_progress Training stops after this many epochs
#'   without improvement of the loss (or, with `early_stopping = "embedding"`,
#'   of the embedding).
#' @param early_stopping What decides when training has converged: `"loss"`
#'   (the training loss has not fallen for `n_epochs_without_progress` epochs,
#'   as published) or `"embedding"` (a fixed sample of at most 2,000 training
#'   rows is embedded after each epoch, or every few epochs on small data, and
#'   training stops once the share of their 10 nearest neighbours kept in the
#'   embedding has not risen by 0.005 for `n_epochs_without_progress` epochs
#'   and 200 training steps). `"embedding"` suits the contrastive losses, whose
#'   loss keeps falling long after the embedding has settled; it cannot be
#'   combined with `validation_fraction`.
#' @param n_trees Number of random projection trees of the Annoy nearest
#'   neighbour index.
#' @param ntrees Deprecated; use `n_trees`.
#' @param knn_distance_metric Distance used to find nearest neighbours:
#'   `"angular"`, `"euclidean"`, `"manhattan"`, `"hamming"` or `"dot"`.
#' @param search_k Number of nodes the Annoy index inspects per nearest
#'   neighbour query; `-1` means `n_trees * (k + 1)`.
#' @param neighbour_search How nearest neighbours are found: `"annoy"` (an
#'   Annoy index; any data and metric, reusable through `annoy_index_path`) or
#'   `"clustered"` (exact distances to the rows of the clusters nearest to each
#'   row's own, as many as hold 95% of the exact neighbours of a sample of rows;
#'   for dense matrices with the `"angular"` or `"euclidean"` metric, faster
#'   than Annoy on wide data and exact on small data; measured in
#'   `docs/neighbours.md` of the ivis repository).
#' @param precompute Whether to compute all nearest neighbours before training
#'   (faster, uses more memory).
#' @param negative_sampling Where each point's negative comes from:
#'   `"in_batch"` (another point of the same training batch, reusing its
#'   network pass, so epochs are shorter, as measured in `bench/REPORT.md` of
#'   the ivis repository; on small data early stopping then ends training sooner; it applies when `shuffle_mode` is `TRUE`) or
#'   `"all_rows"` (drawn from all rows, as the published algorithm does).
#' @param model The network: `"szubert"`, `"hinton"`, `"maaten"`, or a Keras
#'   model (a Python object) to which an embedding layer is appended.
#' @param supervision_metric Keras loss used for `Y` in supervised mode. The
#'   default, `"sparse_categorical_crossentropy"`, is for classes; a regression
#'   loss such as `"mae"` or `"mse"` trains on numeric values. See `fit()` below
#'   for what each kind of `Y` does with each loss.
#' @param supervision_weight Weight, between 0 and 1, of the supervised loss
#'   against the triplet loss in supervised mode.
#' @param validation_fraction Supervised mode only: the share (between 0 and 1)
#'   of the labelled samples to hold out. Their labels are not trained on;
#'   early stopping watches the supervised loss on them, and the weights of the
#'   epoch where it was lowest are kept. Useful on small labelled data. `NULL`
#'   (the default) trains on every label and stops on the training loss.
#' @param learning_rate Step size of the Adam optimizer. With a contrastive
#'   loss (`"infonce"`, `"neg"` and the losses built on them) it is reached
#'   through a warm-up: it rises linearly from a tenth of its value over the
#'   first steps. To vary it during training, pass a
#'   `keras.callbacks.LearningRateScheduler` in `callbacks`.
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
#'       `model <- model$fit(X)` works. `Y` (one value per row of `X`) makes
#'       training supervised; further arguments (such as `shuffle_mode`) go to
#'       the Python `fit()`. What `Y` means depends on its type and on
#'       `supervision_metric`:
#'       \itemize{
#'         \item a factor: classes, one output per level, in the order of the
#'           levels (unused levels included); `NA` marks an unlabelled row
#'           (semi-supervised training);
#'         \item a character or logical vector: classes, sorted; `NA` marks an
#'           unlabelled row;
#'         \item a numeric vector with the default (classification) loss: whole
#'           numbers are class labels (`NA` unlabelled); non-whole values are an
#'           error that names `supervision_metric = "mae"`;
#'         \item a numeric vector or matrix with a regression loss (`"mae"`,
#'           `"mse"`, `"huber"`, ...): values to predict, one column per
#'           target; `NA` marks an unlabelled row. Scale them to unit variance;
#'         \item a 0/1 matrix with `"categorical_crossentropy"` (one-hot rows) or
#'           `"binary_crossentropy"` (several labels per row).
#'       }}
#'     \item{`transform(X)`}{The embedding of `X`: a matrix with one row per
#'       row of `X` (row names kept) and `embedding_dims` columns.}
#'     \item{`fit_transform(X, Y = NULL, ...)`}{Trains on `X`, then embeds it.}
#'     \item{`score_samples(X)`}{For a model trained with labels: the
#'       supervised network's output for `X`. For classes, one column per class
#'       named after it, in the order of the factor's levels (probabilities that
#'       sum to 1); for regression, one column per target.}
#'     \item{`save_model(path, overwrite = FALSE, ...)`}{Saves the trained model
#'       to the folder `path`; see [load_ivis()]. Without `overwrite`, an
#'       existing `path` is an error. With `overwrite = TRUE`, only an ivis
#'       model folder holding nothing but the files ivis writes is replaced; a
#'       folder with other files in it is refused, never emptied. (`saveRDS()` cannot keep the
#'       Python part of a model: a model restored by `readRDS()` says so when
#'       used.)}
#'     \item{`get_params()`}{The model's parameters, as a named list.}
#'     \item{`set_params(...)`}{Changes parameters, named as in `ivis()` (whole
#'       numbers become integers, as in `ivis()`), and returns the model. They
#'       apply from the next `fit()`.}
#'     \item{`loss_history()`}{The training loss of each epoch so far (a data
#'       frame with columns `epoch`, `loss` and, when `validation_fraction` was
#'       used, `validation_loss`). `plot(model)` draws it; `summary(model)`
#'       sums up the model.}
#'     \item{`py`}{The underlying Python `ivis.Ivis` object, for advanced use.}
#'   }
#'
#' @seealso [ivis_embed()] to embed data in one call, [load_ivis()],
#'   [predict.ivis_model()], [summary.ivis_model()], [install_ivis()]
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
                 epochs = 1000L, n_epochs_without_progress = 20L,
                 early_stopping = "loss", n_trees = 50L,
                 ntrees = NULL, knn_distance_metric = "angular", search_k = -1L,
                 neighbour_search = "annoy", precompute = TRUE, negative_sampling = "in_batch", model = "szubert",
                 supervision_metric = "sparse_categorical_crossentropy",
                 supervision_weight = 0.5, validation_fraction = NULL,
                 learning_rate = 0.001, weight_decay = 0, annoy_index_path = NULL,
                 callbacks = NULL,
                 build_index_on_disk = TRUE, neighbour_matrix = NULL, verbose = 1L,
                 random_state = NULL) {
  check_not_data(embedding_dims)
  args <- prepare_args(capture_args(match.call(), environment()))
  core <- ivis_core()
  py <- with_python_errors(do.call(core$Ivis, to_python_args(args)))
  new_ivis_model(py)
}

# `ivis(X)`, as one would call umap(X) or Rtsne(X), would take the data as embedding_dims.
check_not_data <- function(embedding_dims) {
  if (is.matrix(embedding_dims) || is.data.frame(embedding_dims) ||
      inherits(embedding_dims, "Matrix") ||
      (is.numeric(embedding_dims) && length(embedding_dims) > 1L)) {
    what <- if (is.null(dim(embedding_dims))) {
      sprintf("a vector of length %d", length(embedding_dims))
    } else {
      sprintf("a %d x %d %s", nrow(embedding_dims), ncol(embedding_dims),
              if (is.data.frame(embedding_dims)) "data frame" else "matrix")
    }
    stop(sprintf(paste0(
      "ivis() creates a model and takes no data: its first argument is embedding_dims, but ",
      "it got %s. To embed data in one call use ivis_embed(X, ...), which returns the ",
      "embedding; or create the model and fit it: ivis(k = 15)$fit_transform(X)."
    ), what), call. = FALSE)
  }
}

# Wraps a Python `Ivis` object in an `ivis_model`.
new_ivis_model <- function(py) {
  self <- new.env(parent = emptyenv())
  self$py <- py
  # The Python object, unless the model was restored by readRDS()/load().
  live <- function() {
    if (reticulate::py_is_null_xptr(py)) stop(restored_model_message(), call. = FALSE)
    py
  }

  self$fit <- function(X, Y = NULL, ...) {
    X <- check_X(X, action = "fit")
    Y <- check_Y(Y, x_nrow(X))
    with_python_errors(live()$fit(x_to_python(X), y_to_python(Y), ...))
    invisible(self)
  }
  self$transform <- function(X) {
    X <- check_X(X, action = "transform")
    out <- with_python_errors(live()$transform(x_to_python(X)))
    as_r_matrix(out, x_rownames(X))
  }
  self$fit_transform <- function(X, Y = NULL, ...) {
    X <- check_X(X, action = "fit_transform")
    Y <- check_Y(Y, x_nrow(X))
    out <- with_python_errors(live()$fit_transform(x_to_python(X), y_to_python(Y), ...))
    as_r_matrix(out, x_rownames(X))
  }
  self$score_samples <- function(X) {
    X <- check_X(X, action = "score_samples")
    out <- with_python_errors(live()$score_samples(x_to_python(X)))
    as_r_matrix(out, x_rownames(X), model_classes(py))
  }
  self$save_model <- function(path, overwrite = FALSE, ...) {
    path <- path.expand(path)
    with_python_errors(live()$save_model(path, overwrite = overwrite, ...))
    invisible(self)
  }
  self$get_params <- function() {
    params <- with_python_errors(live()$get_params())
    nm <- params$neighbour_matrix
    if (is.matrix(nm) && is.numeric(nm)) params$neighbour_matrix <- nm + 1L
    # reticulate converts a Python int beyond R's integer range by wrapping it around.
    seed <- reticulate::py_get_attr(live(), "random_state")
    if (inherits(seed, "python.builtin.int")) {
      params["random_state"] <- list(whole_number(reticulate::py_str(seed)))
    }
    params
  }
  self$set_params <- function(...) {
    args <- list(...)
    check_param_names(names(args))
    if (!is.null(args$embedding_dims)) check_not_data(args$embedding_dims)
    args <- to_python_args(prepare_args(args))
    with_python_errors(do.call(live()$set_params, args))
    invisible(self)
  }
  self$loss_history <- function() {
    loss_history(live())
  }
  lockEnvironment(self, bindings = TRUE)
  structure(self, class = "ivis_model")
}

# A whole number written in decimal, as an R integer when it fits, else a double.
whole_number <- function(text) {
  value <- as.numeric(text)
  if (abs(value) <= .Machine$integer.max) as.integer(value) else value
}

restored_model_message <- function() {
  paste0(
    "This ivis model was restored from saveRDS() or a saved R session, which cannot keep its ",
    "Python part (the trained network). Save models with model$save_model(path) and load ",
    "them with load_ivis(path)."
  )
}

# Stops unless every name is a parameter of ivis().
check_param_names <- function(names) {
  known <- names(formals(ivis))
  if (length(names) == 0L || any(!nzchar(names))) {
    stop("set_params() takes named parameters, as in ivis(): for example set_params(k = 30).",
         call. = FALSE)
  }
  unknown <- setdiff(names, known)
  if (length(unknown)) {
    stop(sprintf(
      "set_params(): %s %s not a parameter of ivis(); the parameters are: %s.",
      paste0("`", unknown, "`", collapse = ", "), if (length(unknown) > 1L) "are" else "is",
      paste(known, collapse = ", ")
    ), call. = FALSE)
  }
}

# The loss per epoch of a Python estimator, as a data frame (no rows before fitting).
loss_history <- function(py) {
  loss <- as.numeric(unlist(py_attr_or_null(py, "loss_history_") %||% list()))
  history <- data.frame(epoch = seq_along(loss), loss = loss)
  validation <- as.numeric(unlist(py_attr_or_null(py, "validation_loss_history_") %||% list()))
  if (length(validation)) {
    # validation losses belong to the last epochs (those trained with validation_fraction)
    history$validation_loss <- c(rep(NA_real_, length(loss) - length(validation)), validation)
  }
  history
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
  if (reticulate::py_is_null_xptr(py)) {
    cat("<ivis model> (not usable)", pack_lines(strwrap(restored_model_message(), 70)), sep = "\n")
    return(invisible(x))
  }
  fitted <- tryCatch(model_is_fitted(py), error = function(e) NA)
  params <- tryCatch(x$get_params(), error = function(e) list())
  shown <- vapply(names(params), function(name) {
    sprintf("%s = %s", name, format_param(params[[name]]))
  }, character(1L))
  state <- if (isTRUE(fitted)) " (fitted)" else if (isFALSE(fitted)) " (not fitted)" else ""
  cat("<ivis model>", state, "\n", sep = "")
  classes <- if (isTRUE(fitted)) model_classes(py) else NULL
  if (length(classes)) cat(pack_lines(c("classes:", classes)), sep = "\n")
  if (length(shown)) cat(pack_lines(shown, sep = ","), sep = "\n")
  invisible(x)
}

# A parameter value in one short piece of text.
format_param <- function(value) {
  if (is.null(value)) {
    "NULL"
  } else if (is.matrix(value)) {
    sprintf("<%d x %d matrix>", nrow(value), ncol(value))
  } else if (inherits(value, "python.builtin.object")) {
    "<Python object>"
  } else if (is.character(value) && length(value) == 1L) {
    encodeString(value, quote = "\"")
  } else if (is.atomic(value) && length(value) == 1L) {
    format(value, digits = 15)
  } else {
    "<...>"
  }
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

#' Summarise an ivis model
#'
#' @param object An `ivis_model`.
#' @param x A `summary_ivis_model` or an `ivis_model`.
#' @param ... Not used (for `plot()`: passed to [graphics::plot()]).
#' @return `summary()`: a list of class `summary_ivis_model` with `fitted`,
#'   `supervised`, `classes` (or `NULL`), `n_features`, `embedding_dims`,
#'   `epochs` (trained so far), `final_loss`, `seconds` (of the last fit) and
#'   `params` (the parameters that differ from the defaults of [ivis()]).
#'   `plot()`: the model, invisibly, after drawing the training loss of each
#'   epoch (and the validation loss, when there is one).
#' @seealso [ivis()]
#' @examples
#' if (ivis_available()) {
#'   X <- scale(data.matrix(iris[, 1:4]))
#'   model <- ivis(k = 15, epochs = 5, verbose = 0)$fit(X)
#'   summary(model)
#'   plot(model)
#' }
#' @export
summary.ivis_model <- function(object, ...) {
  py <- object$py
  if (reticulate::py_is_null_xptr(py)) stop(restored_model_message(), call. = FALSE)
  params <- object$get_params()
  defaults <- lapply(formals(ivis), eval)
  changed <- Filter(function(name) {
    !identical(unname(unlist(params[[name]])), unname(unlist(defaults[[name]]))) &&
      !isTRUE(all.equal(params[[name]], defaults[[name]]))
  }, intersect(names(params), names(defaults)))
  fitted <- isTRUE(tryCatch(model_is_fitted(py), error = function(e) FALSE))
  history <- if (fitted) loss_history(py) else data.frame(epoch = integer(), loss = numeric())
  timings <- if (fitted) py_attr_or_null(py, "timings_") else NULL
  classes <- if (fitted) model_classes(py) else NULL
  structure(list(
    fitted = fitted,
    supervised = fitted && !is.null(py_attr_or_null(py, "supervised_head_")),
    classes = classes,
    n_features = if (fitted) as.integer(py_attr_or_null(py, "n_features_in_")) else NA_integer_,
    embedding_dims = as.integer(params$embedding_dims),
    epochs = nrow(history),
    final_loss = if (nrow(history)) history$loss[[nrow(history)]] else NA_real_,
    seconds = if (is.null(timings)) NA_real_ else
      sum(unlist(timings[intersect(names(timings), c("neighbours", "training"))])),
    params = params[changed]
  ), class = "summary_ivis_model")
}

#' @rdname summary.ivis_model
#' @export
print.summary_ivis_model <- function(x, ...) {
  cat("ivis model", if (x$fitted) "(fitted)" else "(not fitted)", "\n")
  if (x$fitted) {
    cat(sprintf("  %d features -> %d dimensions; %d epoch%s trained, final loss %.4g%s\n",
                x$n_features, x$embedding_dims, x$epochs, if (x$epochs == 1L) "" else "s",
                x$final_loss,
                if (is.na(x$seconds)) "" else sprintf(" (last fit: %.1f s)", x$seconds)))
    if (x$supervised) {
      if (length(x$classes)) {
        cat(pack_lines(c(sprintf("supervised, %d classes:", length(x$classes)), x$classes)),
            sep = "\n")
      } else {
        cat("  supervised (regression)\n")
      }
    }
  }
  if (length(x$params)) {
    shown <- vapply(names(x$params), function(name) {
      sprintf("%s = %s", name, format_param(x$params[[name]]))
    }, character(1L))
    cat("  parameters other than the defaults:\n")
    cat(pack_lines(shown, sep = ",", indent = "    "), sep = "\n")
  }
  invisible(x)
}

#' @rdname summary.ivis_model
#' @export
plot.ivis_model <- function(x, ...) {
  if (reticulate::py_is_null_xptr(x$py)) stop(restored_model_message(), call. = FALSE)
  history <- x$loss_history()
  if (nrow(history) == 0L) {
    stop("This ivis model has not been trained yet: plot() draws its training loss per epoch; ",
         "call model$fit(X) first.", call. = FALSE)
  }
  has_validation <- "validation_loss" %in% names(history)
  range_y <- range(c(history$loss, if (has_validation) history$validation_loss), na.rm = TRUE)
  graphics::plot(history$epoch, history$loss, type = "b", pch = 20, ylim = range_y,
                 xlab = "epoch", ylab = "loss", main = "ivis training loss", ...)
  if (has_validation) {
    graphics::lines(history$epoch, history$validation_loss, type = "b", pch = 1, lty = 2)
    graphics::legend("topright", c("training", "validation (supervised)"), lty = 1:2,
                     pch = c(20, 1), bty = "n")
  }
  invisible(x)
}

#' Embed data with ivis in one call
#'
#' Creates an ivis model, trains it on `X` (and `Y`, if given) and returns the
#' embedding, as `uwot::umap()` and `Rtsne::Rtsne()` do. The trained model is
#' attached as the attribute `"model"`, to embed new data later
#' (`predict(attr(xy, "model"), newdata)`) or to save it.
#'
#' Unlike [ivis()], which keeps the Python defaults, `k` and `batch_size` are
#' chosen from the number of rows when not given: `k` is a tenth of the rows,
#' between 1 and 150 (150, the default of [ivis()], from 1,500 rows on), and
#' `batch_size` is 128, or half the rows for fewer than 256 rows.
#'
#' @param X A numeric matrix, data frame or sparse `Matrix`, one row per
#'   sample.
#' @param Y Optional labels or values for supervised training (see `fit()` in
#'   [ivis()] for what each type does).
#' @param embedding_dims Number of dimensions of the embedding.
#' @param k,batch_size As in [ivis()]; `NULL` chooses them from the number of
#'   rows (see Details).
#' @param ... Further arguments of [ivis()], such as `epochs`, `random_state`
#'   or `supervision_metric`.
#' @return A matrix with one row per row of `X` (row names kept) and
#'   `embedding_dims` columns, with the trained `ivis_model` as attribute
#'   `"model"`.
#' @seealso [ivis()] for the model and all its arguments.
#' @examples
#' if (ivis_available()) {
#'   xy <- ivis_embed(scale(data.matrix(iris[, 1:4])), epochs = 5, verbose = 0)
#'   plot(xy, col = iris$Species)
#'   model <- attr(xy, "model")
#' }
#' @export
ivis_embed <- function(X, Y = NULL, embedding_dims = 2L, k = NULL, batch_size = NULL, ...) {
  X <- check_X(X, action = "fit_transform")
  n <- x_nrow(X)
  if (is.null(k)) k <- max(1L, min(150L, n %/% 10L, n - 1L))
  if (is.null(batch_size)) batch_size <- if (n < 256L) max(1L, n %/% 2L) else 128L
  model <- ivis(embedding_dims = embedding_dims, k = k, batch_size = batch_size, ...)
  embedding <- model$fit_transform(X, Y)
  attr(embedding, "model") <- model
  embedding
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
