# Conversions between R data and the arrays the Python core takes and returns.

# Checks `X` and returns it as a dense double matrix or as a sparse 'dgCMatrix' (R only).
check_X <- function(X, arg = "X") {
  if (inherits(X, "python.builtin.object")) return(X)
  if (inherits(X, "Matrix")) {
    if (!requireNamespace("Matrix", quietly = TRUE)) {
      stop(sprintf("`%s` is a Matrix object, but the 'Matrix' package is not installed.", arg),
           call. = FALSE)
    }
    if (inherits(X, "sparseMatrix")) {
      X <- methods::as(methods::as(methods::as(X, "CsparseMatrix"), "generalMatrix"), "dMatrix")
      return(X)
    }
    X <- as.matrix(X)
  }
  if (is.data.frame(X)) {
    ok <- vapply(X, function(col) is.numeric(col) || is.logical(col), logical(1L))
    if (!all(ok)) {
      bad <- names(X)[!ok]
      kinds <- vapply(X[!ok], function(col) class(col)[[1L]], character(1L))
      stop(sprintf(paste0(
        "`%s` must be numeric, but its column%s %s %s not (%s). Drop %s or encode %s as ",
        "numbers (for example with model.matrix()) first."
      ), arg, if (length(bad) > 1L) "s" else "", paste0("'", bad, "'", collapse = ", "),
      if (length(bad) > 1L) "are" else "is", paste(kinds, collapse = ", "),
      if (length(bad) > 1L) "them" else "it", if (length(bad) > 1L) "them" else "it"),
      call. = FALSE)
    }
    rn <- if (.row_names_info(X) > 0L) row.names(X) else NULL
    X <- as.matrix(X)
    if (is.logical(X)) storage.mode(X) <- "double"
    rownames(X) <- rn
  }
  if (!is.matrix(X)) {
    stop(sprintf(paste0(
      "`%s` must be a numeric matrix, a data frame or a sparse Matrix, not %s. ",
      "For a single sample use matrix(x, nrow = 1)."
    ), arg, describe_class(X)), call. = FALSE)
  }
  if (!(is.numeric(X) || is.logical(X))) {
    stop(sprintf("`%s` must be numeric, but it is a %s matrix.", arg, typeof(X)), call. = FALSE)
  }
  if (!is.double(X)) storage.mode(X) <- "double"
  X
}

x_to_python <- function(X) {
  if (inherits(X, "python.builtin.object")) return(X)
  if (inherits(X, "dgCMatrix")) {
    return(reticulate::r_to_py(X, convert = FALSE)$tocsr())
  }
  reticulate::np_array(unname(X), dtype = "float64", order = "C")
}

x_rownames <- function(X) {
  if (inherits(X, "python.builtin.object")) return(NULL)
  rownames(X)
}

x_nrow <- function(X) {
  if (inherits(X, "python.builtin.object")) {
    return(as.integer(reticulate::py_to_r(reticulate::py_len(X))))
  }
  nrow(X)
}

# Checks `Y` and returns it ready for Python conversion (R only): a character vector
# (NA = missing label) for classification, a double vector or matrix for regression.
check_Y <- function(Y, n) {
  if (is.null(Y) || inherits(Y, "python.builtin.object")) return(Y)
  if (is.data.frame(Y)) {
    if (ncol(Y) != 1L) {
      stop(sprintf(paste0(
        "`Y` is a data frame with %d columns; give a vector (one label or value per row ",
        "of `X`) or a numeric matrix."
      ), ncol(Y)), call. = FALSE)
    }
    Y <- Y[[1L]]
  }
  if (NROW(Y) != n) {
    stop(sprintf("`Y` has %d labels but `X` has %d rows; give one label per row of `X`.",
                 NROW(Y), n), call. = FALSE)
  }
  if (is.factor(Y) || is.character(Y) || is.logical(Y)) {
    return(structure(as.character(Y), ivis_labels = TRUE))
  }
  if (is.numeric(Y)) {
    if (is.matrix(Y)) {
      storage.mode(Y) <- "double"
      return(unname(Y))
    }
    return(as.double(Y))
  }
  stop(sprintf(paste0(
    "`Y` must be a factor or character vector (classes; NA marks an unlabelled sample) ",
    "or numeric (regression), not %s."
  ), describe_class(Y)), call. = FALSE)
}

y_to_python <- function(Y) {
  if (is.null(Y) || inherits(Y, "python.builtin.object")) return(Y)
  np <- reticulate::import("numpy", convert = FALSE)
  if (isTRUE(attr(Y, "ivis_labels"))) {
    # Python strings, None for a missing label (NA_character_ would become the string "NA").
    labels <- as.list(as.character(Y))
    labels[is.na(Y)] <- list(NULL)
    return(np$array(reticulate::r_to_py(labels), dtype = "object"))
  }
  if (is.matrix(Y)) return(reticulate::np_array(Y, dtype = "float64", order = "C"))
  np$array(Y, dtype = "float64")
}

# A Python array result as an R double matrix with the given dimnames.
as_r_matrix <- function(x, rownames = NULL, colnames = NULL) {
  if (inherits(x, "python.builtin.object")) x <- reticulate::py_to_r(x)
  if (!is.matrix(x)) x <- matrix(as.vector(x), ncol = 1L)
  if (!is.double(x)) storage.mode(x) <- "double"
  if (!is.null(rownames) && length(rownames) != nrow(x)) rownames <- NULL
  if (!is.null(colnames) && length(colnames) != ncol(x)) colnames <- NULL
  dimnames(x) <- if (is.null(rownames) && is.null(colnames)) NULL else list(rownames, colnames)
  x
}

# Evaluates `expr`; a Python exception becomes an R error whose message is the Python
# message (its class and the Python exception object are kept on the condition).
with_python_errors <- function(expr) {
  tryCatch(expr, python.builtin.BaseException = function(e) {
    type <- sub("^python\\.builtin\\.", "", class(e)[[1L]])
    message <- tryCatch(reticulate::py_str(e), error = function(err) conditionMessage(e))
    if (!nzchar(message)) message <- type
    stop(errorCondition(
      message,
      class = c(paste0("ivis_", type), "ivis_python_error"),
      python_type = type,
      python_exception = e,
      call = NULL
    ))
  })
}
